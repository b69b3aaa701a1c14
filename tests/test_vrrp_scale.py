"""VRRP at scale and the timers behind it (issue 14; issue 13 items 4 and 5).

The namespace test runs 255 instances on two routers and asserts only
outcomes seen in the kernel: every VIP on the master, none ever on the
backup, a crashed run's VIPs removed, and no VIP removed from the master
across ten reloads.  Timing belongs in bench/bench_vrrp_scale.py.

The pure tests pin what the scale work relies on: one timer queue whose
deadlines, moved later again and again (a backup hearing its master), never
wake the process for nothing; missed deadlines that fire once, not once per
missed period; GARP pacing that restarts after a long stop instead of
sending the backlog at once; stale-VIP removal that happens before the
daemon loads its event loop, logging and netlink libraries; and (issue 14's
first-advert spread) instances started together that begin at one time
however slow their start-up, and timer passes whose adverts all leave
before any instance's VIP work, in step even when a task is busy.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from bench.bench_vrrp_scale import EXTRA_VIP, Watch, scale_conf, vip
from pykeep.config import load_text
from pykeep.config.model import Config, IPAddress, IPAddressSpec, VrrpInstance
from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, workdir
from vrrp import packet
from vrrp import timer as timer_mod
from vrrp.driver import Env, _Run, instance_key
from vrrp.garp import Announcer
from vrrp.machine import (
    AddVips,
    AdvertReceived,
    Event,
    MachineParams,
    Reload,
    ScheduleTimer,
    Start,
    TimerFired,
    TimerKind,
    TrackerChanged,
    VrrpMachine,
)
from vrrp.notify import Notifier
from vrrp.packet import Advert
from vrrp.service import VrrpService
from vrrp.socket import PoolSocket, Received, SocketKey, SocketPool, build_ipv4, parse_ipv4
from vrrp.timer import TimerQueue
from vrrp.vip import Interface

ROOT = Path(__file__).resolve().parent.parent
N = 255
MARGIN = 2.0
START = 5.0  # interpreter start-up of a fresh daemon on a loaded machine


# ---------------------------------------------------------------- pure


def test_moved_deadlines_never_wake_the_queue() -> None:
    """A deadline pushed back before it is due costs no wake-up (real clock, timerfd)."""
    fired: list[float] = []
    stats: dict[str, int] = {}

    async def main() -> None:
        q = TimerQueue()
        async with trio.open_nursery() as nursery:
            await nursery.start(q.run)
            t = q.timer(lambda: fired.append(trio.current_time()))
            for _ in range(15):
                t.set(trio.current_time() + 0.5)
                q.flush()  # as the socket reader does after each drained batch
                await trio.sleep(0.02)
            t.cancel()
            await trio.sleep(0.6)  # past every deadline that was ever set
            stats.update(wakeups=q.wakeups, idle=q.idle_wakeups)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert fired == []
    assert stats == {"wakeups": 0, "idle": 0}


def test_moved_deadlines_rearm_the_kernel_timer_rarely(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup's deadline moved at every advert re-arms the timerfd every few moves, not
    at each, with no wake-up for nothing while the moves go on; when they stop (the
    master is gone) the kernel's stale deadline may wake the queue once, early, and the
    last deadline still fires, once."""
    arms: list[float | None] = []
    real_arm = timer_mod._TimerFd.arm

    def counting(self: timer_mod._TimerFd, at: float | None) -> None:
        arms.append(at)
        real_arm(self, at)

    monkeypatch.setattr(timer_mod._TimerFd, "arm", counting)
    fired: list[float] = []
    stats: dict[str, int] = {}
    last: list[float] = []

    async def main() -> None:
        q = TimerQueue()
        async with trio.open_nursery() as nursery:
            await nursery.start(q.run)
            t = q.timer(lambda: fired.append(trio.current_time()))
            for _ in range(40):  # an advert every 20 ms, the deadline 0.3 s ahead
                last[:] = [trio.current_time() + 0.3]
                t.set(last[0])
                q.flush()
                await trio.sleep(0.02)
            stats.update(moving=q.wakeups)
            await trio.sleep(0.5)
            stats.update(wakeups=q.wakeups, idle=q.idle_wakeups)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert len(fired) == 1 and fired[0] >= last[0] - 1e-3
    assert stats["moving"] == 0 and stats["wakeups"] - stats["idle"] == 1, stats
    assert stats["idle"] <= 1, stats
    assert 2 <= len(arms) <= 15, arms  # one per move would be 40


def test_timer_fires_at_deadline_then_once_after_a_stop() -> None:
    """Each timer holds one deadline: a long stall fires it once, not once per period."""
    seen: list[float] = []

    async def main() -> None:
        q = TimerQueue()
        async with trio.open_nursery() as nursery:
            await nursery.start(q.run)
            t = q.timer(lambda: seen.append(trio.current_time()))
            t.set(10.0)
            await trio.sleep_until(10.5)
            t.set(11.0)
            # The process is "stopped" for 60 s: nothing runs, the clock moves on.
            clock.jump(60)
            await trio.sleep(5)
            nursery.cancel_scope.cancel()

    clock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(main, clock=clock)
    assert seen[0] == pytest.approx(10.0)
    assert len(seen) == 2 and seen[1] >= 70.0


def test_deadlines_due_together_stay_together() -> None:
    """Periodic owners fired in one pass and re-armed from the pass's time (``q.now``)
    fire together again: one wake-up per period however long each owner's work takes
    (an advert sent), where re-arming from the clock would spread them, one wake-up each."""
    n, period, passes = 40, 0.15, 4
    stats: dict[str, int] = {}
    seen: list[set[float]] = []

    async def main() -> None:
        q = TimerQueue()
        async with trio.open_nursery() as nursery:
            await nursery.start(q.run)
            start = trio.current_time() + 0.05
            timers: list[timer_mod.Timer] = []
            for _ in range(n):

                def fire(k: int = len(timers)) -> None:
                    seen.append({q.now})
                    time.sleep(0.0005)  # the owner's work: the clock moves on
                    timers[k].set(q.now + period)

                timers.append(q.timer(fire))
            for t in timers:
                t.set(start)
            await trio.sleep_until(start + period * (passes - 0.5))
            stats.update(wakeups=q.wakeups, idle=q.idle_wakeups)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert len(seen) == n * passes
    assert stats["wakeups"] - stats["idle"] == passes, stats
    assert len(set().union(*seen)) == passes


def test_deadline_set_due_during_a_pass_waits_for_the_next() -> None:
    """An owner that re-arms at the pass's own time (a deadline its machine did not
    take) fires again at the next wake-up, never again and again within one pass."""
    per_pass: list[int] = []
    fires: list[float] = []

    async def main() -> None:
        q = TimerQueue()
        async with trio.open_nursery() as nursery:
            await nursery.start(q.run)

            def fire() -> None:
                fires.append(q.now)
                if len(fires) < 5:
                    t.set(q.now)

            t = q.timer(fire)
            t.set(trio.current_time() + 0.01)
            await trio.sleep(0.3)
            per_pass.extend(fires.count(x) for x in set(fires))
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert len(fires) == 5 and per_pass == [1] * 5, fires


def test_garp_pacing_restarts_after_a_long_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """After SIGSTOP/SIGCONT the queued GARPs stay one interval apart (no backlog burst)."""
    sent: list[float] = []
    vips: list[IPAddress] = [IPv4Address(f"10.98.0.{i}") for i in range(1, 4)]

    async def main() -> None:
        ann = Announcer("lo", 1, b"\0" * 6, 0.5, 0.5)
        monkeypatch.setattr(ann, "_send", lambda _frame, _proto: sent.append(trio.current_time()))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ann.announce, vips, 5)
            await trio.sleep(1.2)  # a few frames out, the rest queued on the pacing
            clock.jump(120)  # stopped for two minutes
            await trio.sleep(20)
        ann.close()

    clock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(main, clock=clock)
    assert len(sent) == 15
    gaps = [y - x for x, y in itertools.pairwise(sent)]
    assert min(gaps) >= 0.5 - 1e-9, gaps


def test_vrrp_daemon_loads_no_unused_feature(tmp_path: Path) -> None:
    """A VRRP-only config starts without checkers, IPVS, BFD, the metrics' HTTP stack,
    the renderer extras structlog would load when installed (rich: 16 MiB), or the
    asyncio, ssl and hmac (OpenSSL) that structlog and trio name but a VRRP daemon
    never uses (6 MiB); and all of them still work for whoever imports them afterwards."""
    conf = tmp_path / "k.conf"
    conf.write_text(scale_conf(3, 150))
    probe = f"""
import argparse, importlib.util, json, os, sys
import vrrp.links as links
calls = []
def report(wanted):
    calls.append(wanted)
    if len(calls) == 1:  # the daemon's early removal, before its imports
        return []
    # the VRRP service's, once the daemon is up: everything is imported
    import structlog.dev, trio
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in
        ("rich", "pygments", "h11", "healthcheck", "ipvs", "asyncio", "ssl", "_ssl", "hmac",
         "hashlib", "_hashlib") or m in
        ("pykeep.lvs", "pykeep.ops.metrics", "vrrp.bfd", "vrrp.process"))
    print(json.dumps({{"loaded": loaded, "dev_rich": structlog.dev.rich is not None}}))
    if importlib.util.find_spec("rich") is not None:
        import rich  # hidden from structlog only: a plugin may still use it
    import asyncio, hmac, ssl, structlog.stdlib, trio._dtls, trio._ssl
    same = (trio._ssl._stdlib_ssl.SSLContext is ssl.SSLContext,
            structlog.stdlib.asyncio.get_running_loop is asyncio.get_running_loop,
            trio._dtls.hmac.digest is hmac.digest)
    print(json.dumps({{"after": "ok", "same": same}}), flush=True)
    os._exit(0)
links.remove_leftovers = report
from pykeep import daemon
opts = argparse.Namespace(use_file={str(conf)!r}, dont_fork=True, log_console=True,
                          pid={str(tmp_path / "p.pid")!r}, vrrp_pid={str(tmp_path / "v.pid")!r},
                          checkers_pid={str(tmp_path / "c.pid")!r},
                          control_socket={str(tmp_path / "ctl.sock")!r})
daemon.main(opts)
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    assert lines == [
        {"loaded": [], "dev_rich": False},
        {"after": "ok", "same": [True, True, True]},
    ], out.stderr[-2000:]


def test_stale_vips_removed_before_heavy_imports(tmp_path: Path) -> None:
    """The daemon removes a crashed run's VIPs before trio, structlog or pyroute2 load."""
    conf = tmp_path / "k.conf"
    conf.write_text(scale_conf(3, 150))
    probe = f"""
import argparse, json, sys
import vrrp.links as links
seen = {{}}
def fake(wanted):
    seen.update({{m: m in sys.modules for m in ("trio", "structlog", "pyroute2")}})
    seen["wanted"] = sorted(f"{{d}} {{v}}" for d, v in wanted)
    raise SystemExit(0)
links.remove_leftovers = fake
from pykeep import daemon
opts = argparse.Namespace(use_file={str(conf)!r}, vrrp=True, dont_fork=True,
                          pid={str(tmp_path / "p.pid")!r}, log_console=True)
try:
    daemon.main(opts)
except SystemExit:
    pass
print(json.dumps(seen))
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen.get("wanted") == [f"eth0 {vip(i)}/32" for i in (1, 2, 3)], out.stderr
    assert seen == {**seen, "trio": False, "structlog": False, "pyroute2": False}


# ---------------------------------------------------------------- namespaces


class _Recorder:
    """Stands in for a running instance driver: records what a reload does to it."""

    def __init__(self, inst: VrrpInstance) -> None:
        self.inst = inst
        self.name = inst.name
        self.key = instance_key(inst)
        self.calls: list[str] = []

    def adopt(self, inst: VrrpInstance, _config: Config) -> None:
        self.calls.append("adopt")
        self.inst = inst

    def reload(self, inst: VrrpInstance, _config: Config) -> None:
        self.calls.append("reload")
        self.inst = inst


def _reload_calls(before: str, after: str) -> dict[str, list[str]]:
    """Run VrrpService.reload from ``before`` to ``after``; what each instance was told."""

    def load(text: str) -> Config:
        r = load_text(text, "k.conf", interface_exists=lambda _n: True)
        assert not r.aborted, r.diagnostics
        return r.config

    old, new = load(before), load(after)
    service = VrrpService(old)
    drivers = {inst.name: _Recorder(inst) for inst in old.vrrp_instances}
    service.drivers = {d.key: d for d in drivers.values()}  # type: ignore[misc]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            service._nursery = nursery
            service._env = object()  # type: ignore[assignment]
            await service.reload(new)
            nursery.cancel_scope.cancel()

    trio.run(main)
    return {name: d.calls for name, d in drivers.items()}


def test_reload_that_only_moves_lines_reapplies_nothing() -> None:
    """A comment on top shifts every line: no instance is re-applied (vrrp.c clear_diff_vrrp)."""
    script = 'vrrp_script chk {\n    script "/bin/true"\n    interval 1\n}\n'
    track = "    advert_int 1\n    track_script {\n        chk\n    }\n"

    def conf(*, extra: bool = False) -> str:
        return script + scale_conf(40, 150, extra=extra).replace("    advert_int 1\n", track)

    moved = "# a comment\n\n" + conf()
    assert _reload_calls(conf(), moved) == {f"VI_{i}": ["adopt"] for i in range(1, 41)}
    # The controls: a real change reaches the one instance it changes …
    calls = _reload_calls(conf(), conf(extra=True))
    assert calls == {f"VI_{i}": ["reload" if i == 1 else "adopt"] for i in range(1, 41)}
    # … and a changed vrrp_script gets a new runner, to which every tracker resubscribes.
    calls = _reload_calls(conf(), moved.replace("interval 1", "interval 2"))
    assert calls == {f"VI_{i}": ["reload"] for i in range(1, 41)}


@pytest.mark.netns
def test_255_instances_one_master_no_gap_across_reloads(rig: Callable[..., Rig]) -> None:
    r = rig(hint="pfscal")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24", "b": "10.99.0.12/24"})
        watch = Watch(r)
        try:
            vips = {vip(i) for i in range(1, N + 1)}
            # A crashed run's leftovers on the master-to-be: removed at start.
            batch = "".join(f"address add {v}/32 dev eth0\n" for v in sorted(vips))
            subprocess.run(["ip", "-n", r.ns("a"), "-batch", "-"], input=batch, text=True)
            a = router(r, "a", "pykeep", scale_conf(N, 150), wd)
            b = router(r, "b", "pykeep", scale_conf(N, 100), wd)
            t0 = time.monotonic()
            a.start()

            def held(node: str) -> set[str]:
                have: set[str] = set()
                for ev in list(watch.events[node]):
                    if ev.t >= t0:
                        (have.add if ev.added else have.discard)(ev.address)
                return have

            until(lambda: vips <= held("a"), 3 + START + MARGIN + 10, 0.1)
            # The backup joins the running master (as after a reboot) and must stay backup.
            b.start()
            until(lambda: b.text().count("Entering BACKUP STATE (init)") == N, START + 10)
            t_up = max(e.t for e in list(watch.events["a"]) if e.added and e.address in vips)
            # Every leftover was removed before the master added its VIPs back.
            removed = {e.address for e in list(watch.events["a"]) if not e.added and e.t >= t0}
            assert removed == vips
            for k in range(10):
                extra = k % 2 == 0
                a.conf.write_text(scale_conf(N, 150, extra=extra))
                ts = time.monotonic()
                a.signal(signal.SIGHUP)

                def applied(ts: float = ts, extra: bool = extra) -> bool:
                    return any(
                        e.t >= ts and e.address == EXTRA_VIP and e.added == extra
                        for e in list(watch.events["a"])
                    )

                until(applied, 10)
            time.sleep(1.5)  # more than an advert interval after the last reload
            gap = [
                e.address
                for e in list(watch.events["a"])
                if not e.added and e.address in vips and e.t > t_up
            ]
            assert gap == [], f"VIPs removed from the master: {gap[:5]}"
            assert vips <= held("a")
            taken = [e.address for e in list(watch.events["b"]) if e.added and e.t >= t0]
            assert taken == [], f"the backup took VIPs: {taken[:5]}"
            assert "Entering MASTER STATE" not in b.text()
            assert b.text().count("Entering BACKUP STATE (init)") == N
        finally:
            watch.close()


def test_cached_advert_header_is_the_one_built_anew() -> None:
    """The send path's patched header template equals a freshly built keepalived header."""
    sent: list[bytes] = []

    class Tx:
        def sendto(self, data: bytes, _flags: int, _addr: tuple[str, int]) -> int:
            sent.append(data)
            return len(data)

    src, grp = IPv4Address("10.99.0.11"), IPv4Address("224.0.0.18")
    ps = PoolSocket(SocketKey(4, "eth0", None, grp), 2, grp, rx=None, tx=Tx())  # type: ignore[arg-type]
    payloads = [bytes(range(20)), bytes(24)]
    for ip_id in (1, 2, 0x7FFF, 0xFFFF, 0x10000 + 5):
        for payload in payloads:
            datagram = ps.datagram(payload, src=src, dst=grp, ttl=255, ip_id=ip_id)
            assert datagram is not None and ps.sendto_nowait(datagram)
            assert sent[-1] == build_ipv4(payload, src=src, dst=grp, ttl=255, ip_id=ip_id)


# ---------------------------------------------------------------- the repeat path

_MASTER = IPv4Address("10.99.0.11")
_OTHER = IPv4Address("10.99.0.13")
_VIP = IPv4Address("10.98.0.1")


def _adverts(version: int) -> list[AdvertReceived]:
    """One object per distinct advert, reused as the driver reuses its last accepted one."""
    cs = 100
    out = []
    for src in (_MASTER, _OTHER):
        for prio in (150, 100, 50, 0):
            out.append(AdvertReceived(Advert(version, 1, prio, cs, (_VIP,)), src))
    out.append(AdvertReceived(Advert(version, 1, 150, cs, (), addr_mismatch="addr_count"), _MASTER))
    if version == 3:
        out.append(AdvertReceived(Advert(3, 1, 150, 50, (_VIP,)), _MASTER))
    return out


_VARIANTS = [
    MachineParams(name="VI_1", vrid=1, addresses=(_VIP,)),
    MachineParams(name="VI_1", vrid=1, addresses=(_VIP,), version=3),
    MachineParams(name="VI_1", vrid=1, addresses=(_VIP,), nopreempt=True),
    MachineParams(name="VI_1", vrid=1, addresses=(_VIP,), preempt_delay=2.0),
    MachineParams(
        name="VI_1", vrid=1, addresses=(_VIP,), skip_check_adv_addr=True, drop_addr_mismatch=False
    ),
    MachineParams(name="VI_1", vrid=1, addresses=(_VIP,), down_timer_adverts=5, priority=120),
]


@pytest.mark.parametrize("params", _VARIANTS, ids=lambda p: f"v{p.version}-{p.priority}")
def test_repeat_advert_ends_where_handle_does(params: MachineParams) -> None:
    """Any event sequence leaves a machine fed through the repeat path equal to one fed
    through ``handle`` only: the repeat path applies nothing handle would not."""
    rng = random.Random(14)
    adverts = _adverts(params.version)
    taken = declined = 0
    for _ in range(40):
        ref, fast = VrrpMachine(params), VrrpMachine(params)
        now = 0.0
        ref.handle(Start(), now)
        fast.handle(Start(), now)
        for _ in range(60):
            now += rng.choice((0.01, 0.3, 1.0, 1.0, 1.0, 4.0))
            roll = rng.random()
            event: Event
            if roll < 0.75:
                # The master's usual advert most of the time, as on the wire.
                event = adverts[0] if rng.random() < 0.7 else rng.choice(adverts)
            elif roll < 0.85:
                event = TimerFired(rng.choice(list(TimerKind)))
            elif roll < 0.95:
                event = TrackerChanged("if:eth0", rng.choice((0, -60, 20)), rng.random() < 0.2)
            else:
                event = Reload(replace(params, priority=rng.choice((90, 100, 160))))
            want = ref.handle(event, now)
            if isinstance(event, AdvertReceived) and fast.repeat_advert(event, now):
                taken += 1
                # What the repeat path drops is only the echo of the timer it set.
                assert all(isinstance(a, ScheduleTimer) for a in want), want
            else:
                declined += isinstance(event, AdvertReceived)
                assert fast.handle(event, now) == want
            assert fast == ref, event
    # preempt_delay always goes the full way (the deadline it keeps depends on now)
    assert (taken > 100 or params.preempt_delay > 0) and declined > 100, (taken, declined)


def _datagram(payload: bytes, *, ip_id: int, ttl: int = 255, src: IPv4Address = _MASTER) -> bytes:
    return build_ipv4(payload, src=src, dst=IPv4Address("224.0.0.18"), ttl=ttl, ip_id=ip_id)


def test_socket_repeat_path_only_for_the_same_bytes() -> None:
    """A new IP id alone takes the repeat hook; any byte decode reads sends it the full way."""
    grp = IPv4Address("224.0.0.18")
    ps = PoolSocket(SocketKey(4, "eth0", None, grp), 2, grp, rx=None, tx=None)  # type: ignore[arg-type]
    full: list[bytes] = []
    repeats: list[int] = []
    accept = [True]

    def handler(got: Received) -> bool:
        full.append(got.payload)
        return accept[0]

    def hook(now: float) -> bool:
        repeats.append(1)
        return now == 7.0

    ps.subscribers[1] = handler
    ps.repeats[1] = hook
    payload = packet.encode(Advert(2, 1, 150, 100, (_VIP,)), src=_MASTER, dst=grp)

    def feed(datagram: bytes) -> None:
        if not ps._repeat(datagram, 7.0):
            ps._dispatch(parse_ipv4(datagram), datagram)

    feed(_datagram(payload, ip_id=1))
    feed(_datagram(payload, ip_id=2))
    feed(_datagram(payload, ip_id=3))
    assert (len(full), len(repeats)) == (1, 2)
    feed(_datagram(payload, ip_id=4, ttl=254))  # TTL: decode rejects it, full path
    feed(_datagram(payload, ip_id=5, src=_OTHER))  # another sender
    changed = packet.encode(Advert(2, 1, 100, 100, (_VIP,)), src=_MASTER, dst=grp)
    feed(_datagram(changed, ip_id=6))
    assert (len(full), len(repeats)) == (4, 2)
    feed(_datagram(changed, ip_id=7))
    assert (len(full), len(repeats)) == (4, 3)
    accept[0] = False  # a handler that did not accept forgets the bytes
    feed(_datagram(payload, ip_id=8))
    feed(_datagram(payload, ip_id=9))
    assert (len(full), len(repeats)) == (6, 3)


# ---------------------------------------------------------------- start-up and the timer pass
#
# Issue 14's first-advert spread: instances started together must begin at one
# time however slow their start-up, and the adverts of one timer pass must
# leave together, before any instance's VIP work.  The instances below run in
# the real driver and service code over a fake link, send socket and VIP
# table that write into one shared record, under trio's MockClock.


class _Silent:
    def info(self, _msg: str) -> None: ...
    def warning(self, _msg: str) -> None: ...
    def error(self, _msg: str) -> None: ...


class _Tx:
    """The send socket: records the VRID of every advert sent.

    ``refuse_first``: the kernel's buffer is full for each VRID's first advert.
    """

    refuse_first = False

    def __init__(self, record: list[tuple[str, int]]) -> None:
        self.record = record
        self.refused: set[int] = set()

    def sendto(self, data: bytes, _flags: int, _addr: tuple[str, int]) -> int:
        vrid = data[20 + 1]  # after a 20-byte IPv4 header
        if self.refuse_first and vrid not in self.refused:
            self.refused.add(vrid)
            raise BlockingIOError
        self.record.append(("advert", vrid))
        return len(data)


class _Pool(SocketPool):
    """One fake send socket per key; ``on_subscribe`` runs as each instance subscribes."""

    def __init__(self, record: list[tuple[str, int]], on_subscribe: Callable[[], None]) -> None:
        super().__init__()
        self.record = record
        self.on_subscribe = on_subscribe

    def subscribe(
        self, key: SocketKey, ifindex: int, group: IPAddress, vrid: int, *_a: Any, **_k: Any
    ) -> PoolSocket:
        self.on_subscribe()
        ps = self.sockets.get(key)
        if ps is None:
            tx = _Tx(self.record)
            ps = PoolSocket(key, ifindex, group, rx=None, tx=tx)  # type: ignore[arg-type]
            self.sockets[key] = ps
        return ps

    def unsubscribe(self, key: SocketKey, vrid: int) -> None:
        pass


class _Netlink:
    """eth0 with the master's address; VIPs added are recorded by their last octet."""

    def __init__(self, record: list[tuple[str, int]]) -> None:
        self.record = record
        self.eth0 = Interface("eth0", 2, bytes(6), True, IPv4Address("10.99.0.11"), None)
        self.on_add: Callable[[], None] = lambda: None

    def refresh(self) -> None:
        pass

    def interface(self, name: str) -> Interface | None:
        return self.eth0 if name == "eth0" else None

    def add_address(self, spec: IPAddressSpec, _ifname: str | None) -> None:
        self.record.append(("vip", int(spec.address.ip.packed[-1])))
        self.on_add()

    def del_address(self, spec: IPAddressSpec, _ifname: str | None) -> None:
        pass


class _Announcer:
    async def announce(self, _vips: list[IPAddress], _count: int) -> None:
        pass

    def close(self) -> None:
        pass


def _run_batch(
    conf: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    setup_cost: float = 0.0,
    until: Callable[[VrrpService], float] | None = None,
    then: Callable[[VrrpService, trio.testing.MockClock], Awaitable[None]] | None = None,
) -> tuple[VrrpService, list[tuple[str, int]], float]:
    """Start every instance of ``conf`` as one batch; each subscribe costs ``setup_cost`` s.

    Returns the service, the record (machines' timer decisions, adverts, VIPs
    added) up to ``until(service)`` (trio time; default: right after start)
    or the end of ``then``, and the time of the last subscribe.
    """
    result = load_text(conf, "k.conf", interface_exists=lambda _n: True)
    assert not result.aborted, result.diagnostics
    config = result.config
    record: list[tuple[str, int]] = []
    clock = trio.testing.MockClock(autojump_threshold=0)
    last = [0.0]
    service = VrrpService(config)

    def subscribed() -> None:
        clock.jump(setup_cost)  # the instance's share of a slow start-up
        last[0] = trio.current_time()

    class Machine(VrrpMachine):
        def handle(self, event: Event, now: float) -> list[Any]:
            if isinstance(event, TimerFired):
                record.append(("decide", self.params.vrid))
            return super().handle(event, now)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(service.timers.run)
            env = Env(
                netlink=_Netlink(record),  # type: ignore[arg-type]
                pool=_Pool(record, subscribed),
                notifier=Notifier(nursery),
                log=_Silent(),
                announcers={"eth0": _Announcer()},  # type: ignore[dict-item]
                timers=service.timers,
            )
            service._nursery, service._env = nursery, env
            await service._start_instances(config, list(config.vrrp_instances))
            if until is not None:
                await trio.sleep_until(until(service))
            if then is not None:
                await then(service, clock)
            nursery.cancel_scope.cancel()

    monkeypatch.setattr("vrrp.driver.VrrpMachine", Machine)
    trio.run(main, clock=clock)
    return service, record, last[0]


def test_a_slow_start_up_still_starts_every_instance_at_one_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """40 instances whose start-up takes 1.2 s (a loaded host) all date their timers
    from one time, after the last of them listens (vrrp_scheduler.c
    vrrp_dispatcher_init: sockets first, then one vrrp_init_sands pass): their
    adverts will leave together, and none loses any of its first Master_Down_Interval."""
    n = 40
    service, _record, last = _run_batch(scale_conf(n, 150), monkeypatch, setup_cost=0.03)
    machines = [d.machine for d in service.drivers.values()]
    assert len(machines) == n and last >= 1.2
    deadlines = {m.timers[TimerKind.MASTER_DOWN] for m in machines}
    assert len(deadlines) == 1, sorted(deadlines)
    assert deadlines.pop() >= last + machines[0].master_down_interval


def _unicast(conf: str) -> str:
    peer = "    unicast_src_ip 10.99.0.11\n    unicast_peer {\n        10.99.0.12\n    }\n"
    return conf.replace("    advert_int 1\n", "    advert_int 1\n" + peer)


@pytest.mark.parametrize("mode", ["multicast", "unicast", "buffer-full"])
def test_one_pass_sends_every_advert_before_any_vip(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the Master_Down timers of 40 instances fire in one pass, every instance
    decides, then every advert leaves, then the VIPs are added: the adverts of the
    pass leave back to back (multicast ones at the pass's end, unicast ones from
    each instance's task), never one instance's VIP work apart.  Each instance's
    own order stays keepalived's: its decision, its advert, its VIPs
    (vrrp.c vrrp_state_goto_master, then vrrp_state_become_master).  Adverts
    the kernel refuses at the pass's end (its buffer full) are sent by their
    tasks, still before any VIP."""
    n = 40
    conf = scale_conf(n, 150)
    if mode == "unicast":
        conf = _unicast(conf)
    monkeypatch.setattr(_Tx, "refuse_first", mode == "buffer-full")

    def after_master_down(service: VrrpService) -> float:
        (at,) = {d.machine.timers[TimerKind.MASTER_DOWN] for d in service.drivers.values()}
        return at + 0.5  # the pass and the tasks after it; the next advert is 1 s on

    service, record, _last = _run_batch(conf, monkeypatch, until=after_master_down)
    assert all(d.state.value == "MASTER" for d in service.drivers.values())
    kinds = [kind for kind, _vrid in record]
    assert kinds == ["decide"] * n + ["advert"] * n + ["vip"] * n, kinds
    for kind in ("decide", "advert", "vip"):
        assert sorted(vrid for k, vrid in record if k == kind) == list(range(1, n + 1))


def test_a_pass_finding_work_queued_keeps_the_instance_in_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A timer pass that finds an instance's task with work still queued (the GARP
    burst handed over a moment before) has that instance fire at the pass's time, as
    the others fire inline: the masters due together stay together, where firing at
    the task's later turn would set its adverts apart for good."""
    n = 5

    async def then(service: VrrpService, clock: trio.testing.MockClock) -> None:
        drivers = list(service.drivers.values())
        (down,) = {d.machine.timers[TimerKind.MASTER_DOWN] for d in drivers}
        await trio.sleep_until(down + 0.5)  # every instance is master
        (due,) = {d.machine.timers[TimerKind.ADVERT] for d in drivers}
        await trio.sleep_until(due - 0.1)
        clock.jump(0.1)  # the next adverts are due; the queue has not run yet
        slow = drivers[0]
        netlink = slow.env.netlink
        netlink.on_add = lambda: clock.jump(0.005)  # type: ignore[attr-defined]
        slow.feed_nowait(_Run([AddVips()]))  # work handed over, not yet taken
        assert service.timers.fire_due(trio.current_time()) == n
        await trio.sleep(0.5)  # the task takes its work, then the deadline
        deadlines = {d.machine.timers[TimerKind.ADVERT] for d in drivers}
        assert len(deadlines) == 1, sorted(deadlines)
        assert deadlines.pop() == pytest.approx(due + 1.0)

    _service, record, _last = _run_batch(scale_conf(n, 150), monkeypatch, then=then)
    assert [k for k, _v in record].count("advert") == 2 * n
