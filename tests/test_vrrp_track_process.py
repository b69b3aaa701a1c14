"""vrrp_track_process: the matching and quorum rules, and a master that loses its process.

keepalived follows processes through the kernel's proc connector, which only
answers the initial network namespace (from any other, keepalived logs
"Failed to set/clear process event listen - errno 111" and stays in FAULT).
So the end-to-end test runs the tracking router, pykeep and then keepalived
with the same file, in the initial namespace on one veth whose other end is
the backup's namespace; VRRP traffic stays on that veth.
"""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pykeep.config import load_text
from pykeep.config.model import VrrpTrackProcess
from sim.netns import Rig
from tests.netns_vrrp import Router, router, until, vrrp_conf, workdir
from vrrp.machine import track_effect
from vrrp.process import (
    PROC_EVENT_EXEC,
    PROC_EVENT_EXIT,
    PROC_EVENT_FORK,
    ProcessWatcher,
    ProcInfo,
    parse_events,
    read_procs,
)
from vrrp.process_rules import Cause, Quorum, check_params, matches
from vrrp.syncgroup import member_tracking

Make = Callable[..., Rig]


def _tp(conf: str, name: str = "P") -> VrrpTrackProcess:
    res = load_text(f"vrrp_track_process {name} {{\n{conf}\n}}\n")
    (tp,) = res.config.vrrp_track_processes
    return tp


def _cmd(*argv: str) -> bytes:
    return b"".join(a.encode() + b"\0" for a in argv)


def test_config_and_quorum_rules() -> None:
    """vrrp_parser.c vrrp_tprocess_*_handler values, then track_process.c matching."""
    tp = _tp("process sleep 10 x\nweight 20 reverse\nquorum 2\nquorum_max 3\ndelay 0.5")
    assert (tp.process, tp.params, tp.param_match, tp.full_command) == (
        "sleep",
        ("10", "x"),
        "exact",
        True,
    )
    assert (tp.weight, tp.weight_reverse, tp.quorum, tp.quorum_max) == (20, True, 2, 3)
    assert tp.terminate_delay == tp.fork_delay == 0.5
    plain = _tp("process nginx")
    assert (plain.full_command, plain.param_match, plain.quorum, plain.quorum_max) == (
        False,
        "none",
        1,
        2**32 - 1,
    )
    # quorum_max 0 alone: up while no such process runs
    assert (_tp("process x\nquorum_max 0").quorum, _tp("process x\nquorum_max 0").quorum_max) == (
        0,
        0,
    )
    res = load_text("vrrp_track_process P {\nprocess x\nquorum 5\nquorum_max 2\n}\n")
    assert any("quorum_max is less than quorum" in d.message for d in res.diagnostics)
    refs = load_text(
        "vrrp_track_process P {\nprocess x\nweight 7 reverse\n}\n"
        "vrrp_instance V {\ninterface eth0\nvirtual_router_id 1\ntrack_process {\n"
        "P weight\nQ\nP weight -3 noreverse\nP\n}\n}\n",
        interface_exists=lambda _n: True,
    )
    said = [d.message for d in refs.diagnostics]
    assert said[:3] == [
        "(V) weight without value specified for track process P - ignoring",
        "(V) track process Q not found, ignoring...",
        "(V) duplicate track_process P - ignoring",
    ], said
    ((ref),) = refs.config.vrrp_instances[0].track_process
    assert (ref.weight, ref.reverse) == (-3, False)
    res = load_text("vrrp_track_process P {\nweight 3\n}\n")
    assert any("process name not specified" in d.message for d in res.diagnostics)
    assert not res.config.vrrp_track_processes
    # comm is compared whole; cmdline's argv[0] only with full_command
    assert matches(plain, "nginx", None) and not matches(plain, "nginx:", None)
    assert not matches(plain, None, _cmd("nginx"))  # a zombie has no comm
    assert matches(tp, None, _cmd("sleep", "10", "x"))
    assert not matches(tp, None, _cmd("sleep", "10", "x", "y"))
    assert not matches(tp, None, _cmd("/bin/sleep", "10", "x"))
    assert not matches(tp, None, b"")
    part = _tp("process sleep 10\nparam_match partial")
    assert matches(part, None, _cmd("sleep", "10", "more")) and not matches(
        part, None, _cmd("sleep", "100")
    )
    init = _tp("process sleep 10\nparam_match initial")
    assert matches(init, None, _cmd("sleep", "100")) and not matches(init, None, _cmd("sleep", "9"))
    bare = _tp("process sleep\nparam_match")  # exact with no parameters: none allowed
    assert check_params(bare, b"") and not check_params(bare, b"5\0")
    # quorum: an exit waits terminate_delay, an exec is immediate, a fork waits fork_delay
    q = Quorum.for_process(tp, 2)
    assert q.up
    assert q.update(1, Cause.EXIT, 10.0) is None and q.deadline == 10.5
    assert q.update(2, Cause.EXEC, 10.2) is None and q.deadline is None and q.up  # cancelled
    assert q.update(1, Cause.EXIT, 11.0) is None
    assert q.fire(11.4) is None and q.fire(11.5) is False
    assert q.update(2, Cause.FORK, 12.0) is None and q.fire(12.5) is True
    assert q.update(4, Cause.EXEC, 13.0) is False  # above quorum_max
    # weights as track_script's (vrrp_track.c process_update_track_process_status)
    assert track_effect(0, False, False).fault and not track_effect(0, True, False).fault
    assert track_effect(-30, False, False).delta == -30
    assert track_effect(20, True, True).delta == -20


def test_watcher_counts_forks_and_exits() -> None:
    """One scan serves every definition; exec is immediate, a fork waits fork_delay."""
    got: list[tuple[str, bool]] = []
    procs: list[ProcInfo] = []

    def watcher(*defs: VrrpTrackProcess) -> ProcessWatcher:
        return ProcessWatcher(defs, lambda n, up: got.append((n, up)), reader=lambda _c: procs)

    procs[:] = [ProcInfo(10, "sleep", 1, _cmd("sleep", "7")), ProcInfo(11, "daemon", 1, b"")]
    w = watcher(_tp("process sleep 7"), _tp("process daemon\nquorum 2", "D"))
    w.scan_now()
    assert got == [("P", True), ("D", False)]
    got.clear()
    procs.append(ProcInfo(12, "daemon", 1, b""))  # exec: at once
    procs.append(ProcInfo(13, "sleep", 10, _cmd("sleep", "7")))  # P's child
    del procs[0]  # the parent exits, its child lives on: P stays up
    w.step(0.0)
    assert got == [("D", True)]
    got.clear()
    del procs[-1]  # no sleep left: down now (no terminate_delay)
    w.step(0.2)
    assert got == [("P", False)]
    # quorum reached by a fork of a counted process waits fork_delay
    procs[:] = [ProcInfo(30, "sleep", 1, _cmd("sleep", "7"))]
    w = watcher(_tp("process sleep 7\nquorum 2\nfork_delay 1"))
    w.scan_now()
    got.clear()
    procs.append(ProcInfo(31, "sleep", 30, _cmd("sleep", "7")))
    w.step(1.0)
    assert got == [] and w.quorums["P"].deadline == 2.0
    w.step(2.0)
    assert got == [("P", True)]
    # connector events: only the named process is looked at
    procs[:] = [ProcInfo(40, "sleep", 1, _cmd("sleep", "7"))]
    w = watcher(_tp("process sleep 7\nterminate_delay 0.5"))
    w.reader_one = lambda pid, _c: next((p for p in procs if p.pid == pid), None)
    w.start(connector=lambda: None)
    got.clear()
    w.on_event(PROC_EVENT_FORK, 41, 40, 0.0)  # child of a counted process
    w.on_event(PROC_EVENT_EXIT, 40, 0, 0.1)
    w.on_event(PROC_EVENT_EXIT, 41, 0, 0.2)
    assert got == [] and w.quorums["P"].deadline == 0.7
    procs.append(ProcInfo(42, "sleep", 1, _cmd("sleep", "7")))
    w.on_event(PROC_EVENT_EXEC, 42, 0, 0.3)  # back before the delay ends
    w.fire_due(1.0)
    assert got == [] and w.pids["P"] == {42}
    procs[-1] = ProcInfo(42, "other", 1, _cmd("other"))
    w.on_event(PROC_EVENT_EXEC, 42, 0, 2.0)  # it exec'd something else
    assert got == [("P", False)]

    # the datagrams as linux/cn_proc.h lays them out; a thread's fork or exit is left out
    def ev(what: int, *data: int) -> bytes:
        body = struct.pack("=IIIIHH", 1, 1, 0, 0, 40, 0) + struct.pack("=IIQ", what, 0, 0)
        body += struct.pack("=iiii", *data, *(0,) * (4 - len(data)))
        return struct.pack("=IHHII", 16 + len(body), 3, 0, 0, 0) + body

    assert parse_events(ev(PROC_EVENT_FORK, 40, 40, 41, 41)) == [(PROC_EVENT_FORK, 41, 40)]
    assert parse_events(ev(PROC_EVENT_FORK, 40, 40, 43, 40)) == []
    assert parse_events(ev(PROC_EVENT_EXIT, 41, 41) + ev(PROC_EVENT_EXIT, 43, 40)) == [
        (PROC_EVENT_EXIT, 41, 0)
    ]
    # the live /proc reader sees this very test process
    me = [p for p in read_procs(True) if p.pid == os.getpid()]
    assert me and me[0].comm and me[0].cmdline


def test_sync_group_members_take_group_process() -> None:
    conf = (
        "vrrp_track_process P {\n process sleep\n weight 10\n}\n"
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress {\n 10.0.0.1\n }\n}\n"
        "vrrp_sync_group G {\n group {\n A\n }\n track_process {\n P weight -5\n }\n}\n"
    )
    cfg = load_text(conf, interface_exists=lambda _n: True).config
    inst, _msgs = member_tracking(cfg.vrrp_instances[0], cfg.vrrp_sync_groups[0], cfg)
    assert [(r.name, r.weight) for r in inst.track_process] == [("P", -5)]


# ------------------------------------------------------------------ end to end

HOST_IP, PEER_IP, VIP = "10.99.7.11", "10.99.7.12", "10.99.7.200"


class HostRouter(Router):
    """A router in the initial namespace, on the test's own veth."""

    ifname: str = ""

    def has_vip(self, vip: str) -> bool:
        out = subprocess.run(
            ["ip", "-o", "-4", "addr", "show", "dev", self.ifname],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return f" {vip}/" in out


@pytest.fixture
def host_link(rig: Make) -> Iterator[tuple[Rig, str]]:
    """Rig node "b" and a veth from the initial namespace into it (deleted after)."""
    r = rig(hint="pr")
    ns = r.add_node("b")
    ifname = f"pk-pr-h{random.randrange(0x10000):04x}"
    peer = ifname.replace("-h", "-p")
    subprocess.run(
        ["ip", "link", "add", ifname, "type", "veth", "peer", "name", peer, "netns", ns],
        check=True,
    )
    try:
        subprocess.run(["ip", "addr", "add", f"{HOST_IP}/24", "dev", ifname], check=True)
        subprocess.run(["ip", "link", "set", ifname, "up"], check=True)
        r.run("b", ["ip", "link", "set", peer, "name", "eth0"])
        r.run("b", ["ip", "addr", "add", f"{PEER_IP}/24", "dev", "eth0"])
        r.run("b", ["ip", "link", "set", "eth0", "up"])
        r.run("b", ["ip", "link", "set", "lo", "up"])
        yield r, ifname
    finally:
        subprocess.run(["ip", "link", "del", ifname], check=False)


def _marker() -> list[str]:
    return ["sleep", f"86399.{random.randrange(10**6):06d}"]


def _until(a: Router, b: Router, pred: Callable[[], bool], timeout: float) -> float:
    try:
        return until(pred, timeout)
    except AssertionError as e:
        raise AssertionError(
            f"{e}\n--- {a.kind} tracking:\n{a.text()}\n--- backup:\n{b.text()}"
        ) from None


def _run_tracking(r: Rig, ifname: str, kind: str, wd: Path) -> dict[str, float]:
    marker = _marker()
    tracker = f"vrrp_track_process SLP {{\n    process {' '.join(marker)}\n}}\n"  # exact parameters
    conf = vrrp_conf(
        priority=150,
        interface=ifname,
        vips=(f"{VIP}/32",),
        before=tracker,
        extra="    track_process {\n        SLP\n    }\n",
    )
    proc = subprocess.Popen(marker)
    path = wd / f"host-{kind}.conf"
    path.write_text(conf)
    a = HostRouter(r, "", kind, path, wd)  # "": the initial namespace
    a.ifname = ifname
    # The backup, in a namespace, tracks it too with a weight: there pykeep
    # reads /proc (no proc connector); 100 + 10 still loses to 150.
    conf_b = vrrp_conf(
        priority=100,
        vips=(f"{VIP}/32",),
        before=tracker,
        extra="    track_process {\n        SLP weight 10\n    }\n",
    )
    b = router(r, "b", "pykeep", conf_b, wd)
    out: dict[str, float] = {}
    try:
        b.start()
        a.start()
        _until(a, b, lambda: a.has_vip(VIP), 15.0)
        _until(a, b, lambda: not b.has_vip(VIP), 5.0)
        # A reload that changes the definition re-reads the processes and
        # re-subscribes: the live quorum holds, the master never bounces.
        faults = a.text().count("FAULT")
        delayed = tracker.replace("\n}\n", "\n    terminate_delay 0.1\n}\n")
        path.write_text(conf.replace(tracker, delayed))
        a.signal(signal.SIGHUP)
        _until(a, b, lambda: "Reloading" in a.text(), 5.0)
        time.sleep(1.5)
        assert a.has_vip(VIP) and a.text().count("FAULT") == faults, a.text()
        assert "terminate_delay" in path.read_text() and "Reload failed" not in a.text()
        proc.kill()
        proc.wait()
        # pykeep sees the exit within its 0.2 s scan; FAULT drops the VIP at once
        out["lost"] = _until(a, b, lambda: not a.has_vip(VIP), 5.0)
        out["taken"] = _until(a, b, lambda: b.has_vip(VIP), 5.0)
        assert "FAULT" in a.text(), a.text()
        assert "Quorum lost for tracked process SLP" in a.text(), a.text()
        _until(a, b, lambda: "Quorum lost for tracked process SLP" in b.text(), 3.0)
        assert "read from /proc every 0.2 s" in b.text(), b.text()
        proc = subprocess.Popen(marker)
        out["back"] = _until(a, b, lambda: a.has_vip(VIP), 10.0)
        _until(a, b, lambda: not b.has_vip(VIP), 5.0)
        if kind == "pykeep":
            assert "not supported" not in a.text(), a.text()
            assert "read from /proc" not in a.text(), a.text()  # the proc connector
        assert "Quorum gained for tracked process SLP" in b.text(), b.text()
    finally:
        proc.kill()
        proc.wait()
        a.stop()
        b.stop()
    return out


@pytest.mark.netns
def test_master_tracking_process_like_keepalived(host_link: tuple[Rig, str]) -> None:
    """Process killed: the master goes FAULT and the backup takes the VIP; back: it preempts.

    The same file under Debian's keepalived 2.2.7 in the same place does the same.
    """
    r, ifname = host_link
    with workdir() as wd:
        seen = {kind: _run_tracking(r, ifname, kind, wd) for kind in ("pykeep", "keepalived")}
    # Protocol-scale margins only: pykeep scans /proc every 0.2 s, keepalived
    # hears the exit at once; both drop the VIP well inside one advert.
    for kind, t in seen.items():
        assert t["lost"] < 3.0, (kind, t)
