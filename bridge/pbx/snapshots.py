"""Channels that exist now, as the resyncs list them: ARI ``Channel`` objects and AMI ``CoreShowChannel`` events."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.pbx import wire
from bridge.pbx.events import LiveChannel


def from_ari(item: object) -> LiveChannel:
    """An ARI ``Channel`` object (``GET /channels``)."""
    if not isinstance(item, Mapping):
        raise wire.Malformed("channel is not an object")
    caller = wire.optional_mapping(item, "caller") or {}
    dialplan = wire.optional_mapping(item, "dialplan") or {}
    return LiveChannel(
        id=wire.text(item, "id"),
        name=wire.optional_text(item, "name"),
        state=wire.optional_text(item, "state"),
        caller=wire.optional_text(caller, "number"),
        caller_name=wire.optional_text(caller, "name"),
        linkedid=wire.optional_text(item, "linkedid"),
        app=wire.optional_text(dialplan, "app_name"),
        app_data=wire.optional_text(dialplan, "app_data"),
        context=wire.optional_text(dialplan, "context"),
        exten=wire.optional_text(dialplan, "exten"),
        created=wire.optional_text(item, "creationtime"),
    )


def from_ami(message: wire.AmiMessage) -> LiveChannel:
    """An AMI ``CoreShowChannel`` event."""
    return LiveChannel(
        id=wire.header(message, "Uniqueid"),
        name=wire.header(message, "Channel"),
        state=wire.optional_header(message, "ChannelStateDesc"),
        caller=ami_number(message, "CallerIDNum"),
        caller_name=ami_number(message, "CallerIDName"),
        linkedid=wire.optional_header(message, "Linkedid") or wire.header(message, "Uniqueid"),
        app=wire.optional_header(message, "Application"),
        app_data=wire.optional_header(message, "ApplicationData"),
        context=wire.optional_header(message, "Context"),
        exten=wire.optional_header(message, "Exten"),
    )


def ami_number(message: wire.AmiMessage, key: str) -> str:
    """A caller ID field; Asterisk writes ``<unknown>`` for none."""
    value = wire.optional_header(message, key)
    return "" if value == "<unknown>" else value
