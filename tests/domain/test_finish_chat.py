"""``add_to_chat`` per line: the finish tells Bitrix24 whether to post the call to the employee's chat."""

from __future__ import annotations

from bridge.domain.commands import CrmFinish
from bridge.domain.events import CallerHungUp
from bridge.domain.scheme import ToVoicemail
from tests.domain.builders import LINE, Driver, route, started


def test_a_quiet_line_finishes_without_the_chat_message_and_others_keep_bitrix24s_default() -> None:
    quiet = route(ToVoicemail("1005"), default_ext="1004", add_to_chat=False)
    d = Driver(quiet)
    d(started())
    assert d(CallerHungUp(), 1) == [CrmFinish("k.1", 5, 0, "304", add_to_chat=False)]
    assert quiet.line_chat(LINE) is False
    assert quiet.line_chat("74990000000") is True, "a line that is not configured: Bitrix24's default"
    d = Driver(route(ToVoicemail("1005"), default_ext="1004"))
    d(started())
    assert d(CallerHungUp(), 1) == [CrmFinish("k.1", 5, 0, "304", add_to_chat=True)]
