"""The AMI link's event mask and filters on a real Asterisk 20.20.1: what they leave out of a walked inbound call and
of a watched outbound call changes nothing the translator reports, no hang-up time and no agent's device state.

A second AMI session with the kit's own user (``write = all``) asks for what the bridge asks for (``Events`` with
the link's mask, then its ``Filter`` actions) while the site's session sees every event; both streams go through a
translator of their own.
"""

from __future__ import annotations

from collections import Counter

from bridge.pbx.ami_events import event_filter, event_mask
from bridge.pbx.events import PbxEvent
from bridge.pbx.observe import AmiTranslator
from bridge.pbx.outcomes import EndpointTemplate
from bridge.sim.verdict import ANSWERED, OUTGOING, Expect
from tests.real.ami import Ami, Event
from tests.real.site import Site
from tests.real.test_inbound import walk_the_pair


def translated(site: Site, frames: list[Event]) -> list[PbxEvent]:
    settings = site.daemon.settings.asterisk
    translator = AmiTranslator(EndpointTemplate(settings.device), settings.outbound_contexts, settings.monitor_lines)
    return [event for frame in frames for event in translator.feed(frame.fields)]


def named(frames: list[Event], name: str) -> list[dict[str, str]]:
    return [frame.fields for frame in frames if frame.get("Event") == name]


async def test_the_filters_leave_out_only_what_the_translator_does_not_read(real_site: Site) -> None:
    s = real_site
    kit = s.pbx.kit
    settings = s.daemon.settings.asterisk
    ami = await Ami.connect(kit.ports.pbx_ami, kit.ami_user, kit.ami_secret, "filtered")
    try:
        assert (await ami.action("Events", EventMask=event_mask())).get("Response") == "Success"
        for pattern in event_filter(settings):
            answer = await ami.action("Filter", Operation="Add", Filter=pattern)
            assert answer.get("Response") == "Success", (pattern, answer)
        start_all, start_ours = len(s.pbx_ami.frames), len(ami.frames)
        await walk_the_pair(s, "79990000111")
        walk_ours = len(ami.frames)
        await s.provider("79260000211", "answer", ring=1, talk=2)
        await s.dial_out("1003", "79260000211", talk=30)
        await s.ended("PJSIP/trunk-")
        await s.mirrored(Expect("79260000211", OUTGOING, 13, ANSWERED, talk=s.talk("PJSIP/trunk-"), recorded=True,
                                shown_to=frozenset({13})))  # fmt: skip
        every, ours = s.pbx_ami.frames[start_all:], ami.frames[start_ours:]
    finally:
        await ami.close()
    walk = Counter(frame.get("Event") for frame in ami.frames[start_ours:walk_ours])
    print(f"\nframes of the walked call: {sum(walk.values())} {dict(sorted(walk.items()))}")
    events = translated(s, ours)
    assert events == translated(s, every), "the filtered stream means the same"
    assert any(type(e.event).__name__ == "ObservedAnswered" for e in events), "the outbound call was watched"
    assert [h["Uniqueid"] for h in named(ours, "Hangup")] == [h["Uniqueid"] for h in named(every, "Hangup")]
    agents = [(d["Device"], d["State"]) for d in named(every, "DeviceStateChange") if d["Device"].startswith("PJSIP/")]
    assert agents and [(d["Device"], d["State"]) for d in named(ours, "DeviceStateChange")] == agents
    assert [b for b in named(every, "BridgeEnter") if b["BridgeNumChannels"] == "1"], "Asterisk counts the one entering"
    assert all(b["BridgeNumChannels"] != "1" for b in named(ours, "BridgeEnter"))
    assert [n for n in named(every, "Newstate") if n["Context"] not in settings.outbound_contexts]
    assert all(n["Context"] in settings.outbound_contexts for n in named(ours, "Newstate"))
    assert named(ours, "Newstate"), "a watched call's state changes still come"
