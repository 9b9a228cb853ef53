"""Draining the journal into Bitrix24: batching, pacing, offline mirroring, checks before resending.

See :mod:`bridge.delivery.loop` for the cycle and :mod:`bridge.delivery.settle` for what each answer does.
"""

from bridge.delivery.hooks import DeliveryObserver
from bridge.delivery.loop import Delivery, RecordingLoader
from bridge.delivery.recordings import recording_loader

__all__ = ["Delivery", "DeliveryObserver", "RecordingLoader", "recording_loader"]
