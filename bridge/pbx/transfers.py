"""ARI ``BridgeBlindTransfer`` / ``BridgeAttendedTransfer`` -> ``Transferred``, best effort.

A blind transfer out of a Stasis bridge puts a Local channel in the transferer's place (``replace_channel``): that
is the new leg; it enters Stasis at once and answers with its ``Dial`` status. ``exten`` is reported as ``ext``
when it is short (at most 6 characters, an extension), else as ``number``. An attended transfer names the new
party's channel (``transfer_target``), whose extension comes from the ``device`` template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.domain.events import Transferred
from bridge.pbx import wire
from bridge.pbx.outcomes import EndpointTemplate

SHORT_EXTEN = 6


def succeeded(message: Mapping[str, Any]) -> bool:
    return wire.optional_text(message, "result") == "Success"


def blind(message: Mapping[str, Any]) -> Transferred:
    exten = wire.optional_text(message, "exten")
    replace = wire.optional_mapping(message, "replace_channel")
    leg = wire.optional_text(replace, "id") if replace else ""
    short = len(exten) <= SHORT_EXTEN
    return Transferred(leg=leg, ext=exten if short else "", number="" if short else exten)


def replaced_by_local(message: Mapping[str, Any]) -> bool:
    replace = wire.optional_mapping(message, "replace_channel") or {}
    return wire.optional_text(replace, "name").startswith("Local/")


def attended(message: Mapping[str, Any], device: EndpointTemplate) -> Transferred | None:
    target = wire.optional_mapping(message, "transfer_target") or wire.optional_mapping(
        message, "transferer_second_leg"
    )
    if target is None:
        return None
    ext = device.value_of_channel(wire.optional_text(target, "name")) or ""
    return Transferred(leg=wire.text(target, "id"), ext=ext, attended=True)
