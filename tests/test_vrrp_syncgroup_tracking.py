"""Sync-group tracking (vrrp.c ``sync_group_tracking_init``), beside keepalived.

Two instances run without a group; a SIGHUP adds a ``vrrp_sync_group``
holding both, with a group-level ``track_interface``.  Both must stay
MASTER through the reload, both must go to FAULT (VIPs gone) when the
tracked link goes down and come back when it comes up: the outcome must be
the same under both daemons.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pykeep.config.model import (
    Config,
    Script,
    TrackRef,
    VrrpInstance,
    VrrpScript,
    VrrpSyncGroup,
    VrrpTrackFile,
)
from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, workdir
from vrrp.syncgroup import member_tracking

Make = Callable[..., Rig]
MDI = 3 + 106 / 256
START = 8.0
VIPS = ("10.99.0.200", "10.99.0.201")


def test_members_take_group_tracking() -> None:
    """vrrp_complete_instance drops member weights; sync_group_tracking_init adds the group's."""
    cfg = Config(
        vrrp_scripts=(
            VrrpScript(name="s_w", script=Script(("true",)), weight=10),
            VrrpScript(name="s0", script=Script(("true",))),
        ),
        vrrp_track_files=(VrrpTrackFile(name="f1", file="/x"),),
    )
    inst = VrrpInstance(
        name="v",
        virtual_router_id=1,
        track_interface=(TrackRef("eth2", weight=5), TrackRef("eth3")),
        track_script=(TrackRef("s_w"), TrackRef("s0")),
        track_file=(TrackRef("f1"), TrackRef("f2", weight=4)),
    )
    group = VrrpSyncGroup(
        name="g",
        group=("v", "w"),
        track_interface=(TrackRef("eth1"), TrackRef("eth3", weight=9)),
        track_script=(TrackRef("s_w", weight=-20),),
    )
    eff, msgs = member_tracking(inst, group, cfg)
    assert eff.track_interface == (TrackRef("eth2", weight=0), TrackRef("eth3"), TrackRef("eth1"))
    # the member's weighted script went; the group's weighted one is added with its weight
    assert eff.track_script == (TrackRef("s0"), TrackRef("s_w", weight=-20))
    assert eff.track_file == (TrackRef("f1", weight=0),)
    assert "(v) ignoring eth2 tracked interface weight due to SYNC group" in msgs
    assert "(v) ignoring tracked script s_w with weights due to SYNC group" in msgs
    assert "(v) ignoring tracked file f2 with weight 4 due to SYNC group" in msgs
    weighted = VrrpSyncGroup(name="g", group=("v",), sync_group_tracking_weight=True)
    eff2, msgs2 = member_tracking(inst, weighted, cfg)
    assert (eff2.track_interface, eff2.track_script, msgs2) == (
        inst.track_interface,
        inst.track_script,
        [],
    )
    assert member_tracking(inst, None, cfg) == (inst, [])


def _conf(group: bool) -> str:
    out = "global_defs {\n    router_id pk\n}\n"
    if group:
        out += (
            "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n"
            "    track_interface {\n        eth1\n    }\n}\n"
        )
    for n, vip in enumerate(VIPS, 1):
        out += (
            f"vrrp_instance VI_{n} {{\n    state BACKUP\n    interface eth0\n"
            f"    virtual_router_id {50 + n}\n    priority 150\n    advert_int 1\n"
            f"    virtual_ipaddress {{\n        {vip}/32\n    }}\n}}\n"
        )
    return out


def _held(rig: Rig) -> tuple[bool, bool]:
    addrs = {a.split("/")[0] for a in rig.addresses("a")}
    return (VIPS[0] in addrs, VIPS[1] in addrs)


def _run(rig: Rig, wd: Path, kind: str) -> list[tuple[bool, bool]]:
    node = router(rig, "a", kind, _conf(False), wd).start()
    seen: list[tuple[bool, bool]] = []
    try:
        until(lambda: _held(rig) == (True, True), MDI + START)
        node.conf.write_text(_conf(True))
        node.signal(signal.SIGHUP)
        time.sleep(2.0)
        seen.append(_held(rig))  # kept MASTER through the reload
        rig.run("a", ["ip", "link", "set", "eth1", "down"])
        with contextlib.suppress(AssertionError):  # recorded below either way
            until(lambda: _held(rig) == (False, False), 3.0)
        time.sleep(1.0)  # and neither comes back while the link is down
        seen.append(_held(rig))
        rig.run("a", ["ip", "link", "set", "eth1", "up"])
        until(lambda: _held(rig) == (True, True), 2 * MDI + 3)
        seen.append(_held(rig))
    finally:
        node.stop()
        rig.run("a", ["ip", "link", "set", "eth1", "up"], check=False)
    return seen


@pytest.mark.netns
def test_group_track_interface_added_by_reload_faults_both_like_keepalived(rig: Make) -> None:
    r = rig(hint="vxsg")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"}, aux=True)
        seen = {kind: _run(r, wd, kind) for kind in ("keepalived", "pykeep")}
    assert seen["pykeep"] == seen["keepalived"] == [(True, True), (False, False), (True, True)]
