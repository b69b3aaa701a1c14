"""VRRP at scale and the timers behind it (issue 14; issue 13 items 4 and 5).

The namespace test runs 255 instances on two routers and asserts only
outcomes seen in the kernel: every VIP on the master, none ever on the
backup, a crashed run's VIPs removed, and no VIP removed from the master
across ten reloads.  Timing belongs in bench/bench_vrrp_scale.py.

The pure tests pin what the scale work relies on: one timer queue whose
deadlines, moved later again and again (a backup hearing its master), never
wake the process for nothing; missed deadlines that fire once, not once per
missed period; GARP pacing that restarts after a long stop instead of
sending the backlog at once; and stale-VIP removal that happens before the
daemon loads its event loop, logging and netlink libraries.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import trio
import trio.testing

from bench.bench_vrrp_scale import EXTRA_VIP, Watch, scale_conf, vip
from pykeep.config.model import IPAddress
from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, workdir
from vrrp.garp import Announcer
from vrrp.socket import PoolSocket, SocketKey, build_ipv4
from vrrp.timer import TimerQueue

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
            assert ps.send_nowait(payload, src=src, dst=grp, ttl=255, ip_id=ip_id)
            assert sent[-1] == build_ipv4(payload, src=src, dst=grp, ttl=255, ip_id=ip_id)
