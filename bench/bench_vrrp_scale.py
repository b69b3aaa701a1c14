"""VRRP at scale: 255 instances, pykeep against keepalived on the same rig (issue 14).

Two namespaces on a bridge, VRID 1..N on one interface, advert_int 1, one VIP
each; "a" has priority 150 (master), "b" 100 (backup).  Each run starts a
pair of pykeep or of keepalived, the kinds interleaved, and observes them
from the kernel, never by asking the daemon:

- a netlink socket in each namespace hears every address added or removed,
  time-stamped on arrival: exec -> stale VIPs removed, exec -> all VIPs on
  the master, SIGHUP -> reload applied (an extra VIP toggled on VI_1), and
  the correctness of every run (all VIPs on the master, none ever on the
  backup, no VIP of the master removed during the reloads);
- a raw VRRP socket in the backup's namespace time-stamps every advert with
  the kernel's receive time (``SO_TIMESTAMPNS``: this process's reader
  threads may read it hundreds of ms later): the spread of the master's
  first adverts (alignment) and each VRID's interval minus advert_int
  (timer lateness on the wire, for both daemons alike);
- CPU (each thread's run time in ``/proc/PID/task/TID/schedstat``, in ns,
  so that 10 idle instances do not round to zero clock ticks) and RSS from
  ``/proc`` for each daemon and all its processes, and voluntary context
  switches (wake-ups) per second;
- the idle RSS of each daemon running the manual's seed 003 dual-master
  pair (``SEED003``, one config per node), measured once per run.

``python -m bench.bench_vrrp_scale [--runs R] [--window S] [--instances N]``
(root).  A run of both kinds takes about 2 × (S + 15) s.  ``--timers`` only
runs the in-process timer lateness comparison (timerfd queue, plain
``trio.sleep_until``, and the former busy-wait).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import functools
import itertools
import math
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sim.netns import Rig, unique_rig_name
from tests.netns_vrrp import Router, lan, router, workdir

CLONE_NEWNET = 0x40000000
RTMGRP_IPV4_IFADDR = 0x10
RTM_NEWADDR = 20
RTM_DELADDR = 21
SO_TIMESTAMPNS = 35  # asm-generic/socket.h; SCM_TIMESTAMPNS has the same value
MASTER_ADDR = "10.99.0.11/24"
BACKUP_ADDR = "10.99.0.12/24"
EXTRA_VIP = "10.97.0.1"
#: the manual's dual-master pair (instances on eth0); the RSS row runs it as is
SEED003 = Path("/work/shared/corpus/seed-configs")
SEED003_FILES = ("seed003-dual-master-a.conf", "seed003-dual-master-b.conf")


def vip(i: int) -> str:
    return f"10.98.{i // 256}.{i % 256}"


def scale_conf(n: int, priority: int, *, extra: bool = False) -> str:
    """N instances on eth0, VRID 1..N, one VIP each; ``extra`` adds an excluded VIP to VI_1.

    The reloads toggle an *excluded* VIP: it is added and removed like any
    other, but adverts do not list it.  A VIP in the advert list of the
    master only would make the backup drop VI_1's adverts as an address
    mismatch (vrrp.c vrrp_check_packet, for pykeep and keepalived alike),
    and take VI_1 over whenever the reloads keep the lists apart for three
    intervals: a takeover the rig, not the daemon, would cause.
    """
    parts = ["global_defs {\n    router_id pk\n}\n"]
    for i in range(1, n + 1):
        excluded = (
            f"    virtual_ipaddress_excluded {{\n        {EXTRA_VIP}/32\n    }}\n"
            if extra and i == 1
            else ""
        )
        parts.append(
            f"vrrp_instance VI_{i} {{\n    state BACKUP\n    interface eth0\n"
            f"    virtual_router_id {i}\n    priority {priority}\n    advert_int 1\n"
            f"    virtual_ipaddress {{\n        {vip(i)}/32\n    }}\n{excluded}}}\n"
        )
    return "".join(parts)


# ---------------------------------------------------------------- observers


def socket_in(ns: str, family: int, kind: int, proto: int) -> socket.socket:
    """A socket created inside network namespace ``ns``; this thread returns home after."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            return socket.socket(family, kind, proto)
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(home)
        os.close(target)


@dataclass
class AddrEvent:
    t: float
    added: bool
    address: str


@dataclass
class Advert:
    t: float
    src: str
    vrid: int
    priority: int


class Watch:
    """Background readers: address events in both namespaces, adverts in the backup's."""

    def __init__(self, rig: Rig) -> None:
        self.events: dict[str, list[AddrEvent]] = {"a": [], "b": []}
        self.adverts: list[Advert] = []
        self._socks: list[socket.socket] = []
        self._stop = False
        self._threads: list[threading.Thread] = []
        for node in ("a", "b"):
            s = socket_in(rig.ns(node), socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            s.bind((0, RTMGRP_IPV4_IFADDR))
            self._start(s, functools.partial(self._addr, node))
        raw = socket_in(rig.ns("b"), socket.AF_INET, socket.SOCK_RAW, 112)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        raw.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        mreq = struct.pack("4s4s", socket.inet_aton("224.0.0.18"), socket.inet_aton("10.99.0.12"))
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        self._start(raw, self._advert, stamped=True)

    def _start(
        self, s: socket.socket, handle: Callable[[bytes, float], None], *, stamped: bool = False
    ) -> None:
        """Read ``s`` in a thread; ``stamped``: date each datagram by the kernel's receive time.

        This process's threads share one interpreter lock with the main
        thread's polling: a datagram may wait a few hundred ms to be read
        here, and ``time.monotonic()`` at the read would date it then.  The
        kernel's ``SO_TIMESTAMPNS`` (realtime) is moved onto the monotonic
        clock with an offset read when the reader starts.
        """
        s.settimeout(0.2)
        self._socks.append(s)
        offset = time.monotonic() - time.time()
        space = socket.CMSG_SPACE(16)

        def loop() -> None:
            while not self._stop:
                try:
                    if stamped:
                        data, anc, _flags, _addr = s.recvmsg(1 << 16, space)
                    else:
                        data = s.recv(1 << 16)
                except TimeoutError:
                    continue
                except OSError:
                    return
                t = time.monotonic()
                if stamped:
                    for level, kind, value in anc:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                            sec, nsec = struct.unpack("=qq", value[:16])
                            t = sec + nsec / 1e9 + offset
                handle(data, t)

        th = threading.Thread(target=loop, daemon=True)
        th.start()
        self._threads.append(th)

    def _addr(self, node: str, data: bytes, t: float) -> None:
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, off)
            if length < 16:
                break
            if kind in (RTM_NEWADDR, RTM_DELADDR) and data[off + 16] == socket.AF_INET:
                aoff, end = off + 24, off + length
                while aoff + 4 <= end:
                    alen, atype = struct.unpack_from("=HH", data, aoff)
                    if alen < 4:
                        break
                    if atype == 2 and alen == 8:  # IFA_LOCAL
                        addr = socket.inet_ntoa(data[aoff + 4 : aoff + 8])
                        self.events[node].append(AddrEvent(t, kind == RTM_NEWADDR, addr))
                    aoff += (alen + 3) & ~3
            off += (length + 3) & ~3

    def _advert(self, data: bytes, t: float) -> None:
        hl = (data[0] & 15) * 4
        if len(data) >= hl + 3:
            src = socket.inet_ntoa(data[12:16])
            self.adverts.append(Advert(t, src, data[hl + 1], data[hl + 2]))

    def close(self) -> None:
        self._stop = True
        for s in self._socks:
            s.close()
        for th in self._threads:
            th.join(1)


# ---------------------------------------------------------------- /proc


def family_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (keepalived's parent + VRRP child)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of every thread of ``pids`` (schedstat's run time, nanoseconds).

    utime+stime count 10 ms ticks: over a 20 s window an idle daemon reads
    0 or 0.05 %, which makes no ratio.
    """
    total = 0
    for p in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
    return total / 1e9


def status_sum(pids: list[int], key: str) -> int:
    """Sum of a numeric /proc/PID/status field (first column) over processes."""
    total = 0
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
    return total


def wakeups(pids: list[int]) -> int:
    total = 0
    for p in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{p}/task"):
                for line in Path(f"/proc/{p}/task/{tid}/status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
    return total


# ---------------------------------------------------------------- one run


@dataclass
class Result:
    kind: str
    n: int
    stale_removed: float = math.nan  # exec -> last leftover VIP removed
    init: float = math.nan  # exec -> every instance logged its BACKUP (init)
    all_vips: float = math.nan  # exec -> every VIP on the master
    align_ms: float = math.nan  # spread of the master's first adverts
    burst_ms: float = math.nan  # median spread of one interval's adverts, steady state
    late_ms: list[float] = field(default_factory=list)  # advert interval - advert_int
    cpu_master: float = math.nan  # % of one core
    cpu_backup: float = math.nan
    wake_master: float = math.nan  # voluntary context switches per second
    wake_backup: float = math.nan
    rss_master: float = math.nan  # MiB, all processes
    reload_ms: list[float] = field(default_factory=list)
    rss_seed003: float = math.nan  # MiB, the seed 003 dual-master config, idle
    errors: list[str] = field(default_factory=list)


def burst_spread(times: list[float], gap: float = 0.1) -> float:
    """Median span (ms) of the advert bursts: runs of adverts less than ``gap`` apart.

    Aligned instances send one burst per interval, a few ms long, and their
    backup wakes once or twice for it; adverts spread over the interval make
    one run as long as the window.
    """
    spans: list[float] = []
    first = prev = None
    for t in times:
        if first is None or prev is None or t - prev > gap:
            if first is not None and prev is not None:
                spans.append(prev - first)
            first = t
        prev = t
    if first is not None and prev is not None:
        spans.append(prev - first)
    return statistics.median(spans) * 1000 if spans else math.nan


def _wait(pred: Callable[[], bool], timeout: float, step: float = 0.005) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def _inits(r: Router) -> int:
    return r.text().count("Entering BACKUP STATE (init)")


def _pair(rig: Rig, wd: Path, kind: str, n: int) -> tuple[Router, Router]:
    a = router(rig, "a", kind, scale_conf(n, 150), wd)
    b = router(rig, "b", kind, scale_conf(n, 100), wd)
    return a, b


@contextlib.contextmanager
def scale_rig(n: int) -> Iterator[tuple[Rig, Path, Watch]]:
    with Rig(unique_rig_name("pfscl")) as rig, workdir() as wd:
        lan(rig, {"a": MASTER_ADDR, "b": BACKUP_ADDR})
        watch = Watch(rig)
        try:
            yield rig, wd, watch
        finally:
            watch.close()


def run_once(kind: str, n: int, window: float, reloads: int) -> Result:
    res = Result(kind, n)
    with scale_rig(n) as (rig, wd, watch):
        a, b = _pair(rig, wd, kind, n)
        # A crashed run's leftovers: every VIP already on the master-to-be.
        batch = "".join(f"address add {vip(i)}/32 dev eth0\n" for i in range(1, n + 1))
        subprocess.run(["ip", "-n", rig.ns("a"), "-batch", "-"], input=batch, text=True, check=True)
        time.sleep(0.2)
        t0 = time.monotonic()
        a.start()
        assert a.proc is not None
        vips = {vip(i) for i in range(1, n + 1)}

        def held(node: str, since: float) -> set[str]:
            have: set[str] = set()
            for ev in list(watch.events[node]):
                if ev.t < since:
                    continue
                if ev.added:
                    have.add(ev.address)
                else:
                    have.discard(ev.address)
            return have

        _wait(lambda: _inits(a) >= n, 15)
        res.init = time.monotonic() - t0 if _inits(a) >= n else math.nan
        dels = [e.t for e in watch.events["a"] if not e.added and e.address in vips and e.t > t0]
        if len(dels) >= n:
            res.stale_removed = sorted(dels)[n - 1] - t0
        else:
            res.errors.append(f"only {len(dels)} of {n} leftover VIPs removed")
        if _wait(lambda: vips <= held("a", t0), 20, 0.02):
            last = max(e.t for e in watch.events["a"] if e.added and e.address in vips)
            res.all_vips = last - t0
        else:
            res.errors.append(f"master holds {len(vips & held('a', t0))} of {n} VIPs")
        # The backup joins a running master, as after a reboot: it must stay backup.
        b.start()
        if not _wait(lambda: _inits(b) >= n, 20, 0.05):
            res.errors.append(f"backup initialised {_inits(b)} of {n} instances")
        # Adverts settle, and the window starts after garp_master_delay's second
        # GARP burst (5 s after the transition), for both daemons alike.
        time.sleep(6.0)
        firsts: dict[int, float] = {}
        for adv in watch.adverts:
            if adv.src == "10.99.0.11" and adv.t > t0 and adv.vrid not in firsts:
                firsts[adv.vrid] = adv.t
        if len(firsts) == n:
            res.align_ms = (max(firsts.values()) - min(firsts.values())) * 1000
        assert b.proc is not None
        pa, pb = family_pids(a.proc.pid), family_pids(b.proc.pid)
        w0 = time.monotonic()
        c0a, c0b, k0a, k0b = cpu_seconds(pa), cpu_seconds(pb), wakeups(pa), wakeups(pb)
        time.sleep(window)
        dt = time.monotonic() - w0
        res.cpu_master = (cpu_seconds(pa) - c0a) / dt * 100
        res.cpu_backup = (cpu_seconds(pb) - c0b) / dt * 100
        res.wake_master = (wakeups(pa) - k0a) / dt
        res.wake_backup = (wakeups(pb) - k0b) / dt
        res.rss_master = status_sum(pa, "VmRSS") / 1024
        by_vrid: dict[int, list[float]] = {}
        for adv in watch.adverts:
            if adv.src == "10.99.0.11" and w0 <= adv.t <= w0 + dt:
                by_vrid.setdefault(adv.vrid, []).append(adv.t)
        for times in by_vrid.values():
            res.late_ms.extend((y - x - 1.0) * 1000 for x, y in itertools.pairwise(times))
        res.burst_ms = burst_spread(sorted(t for times in by_vrid.values() for t in times))
        # Reloads: toggle an extra VIP on VI_1; SIGHUP -> it appears / goes.
        reload_t0 = time.monotonic()
        for k in range(reloads):
            extra = k % 2 == 0
            a.conf.write_text(scale_conf(n, 150, extra=extra))
            ts = time.monotonic()
            a.signal(signal.SIGHUP)

            def seen(ts: float = ts, extra: bool = extra) -> bool:
                return any(
                    e.t >= ts and e.address == EXTRA_VIP and e.added == extra
                    for e in list(watch.events["a"])
                )

            if _wait(seen, 5, 0.001):
                t = next(
                    e.t
                    for e in list(watch.events["a"])
                    if e.t >= ts and e.address == EXTRA_VIP and e.added == extra
                )
                res.reload_ms.append((t - ts) * 1000)
            else:
                res.errors.append(
                    f"reload {k + 1}: extra VIP not {'added' if extra else 'removed'}"
                )
            time.sleep(0.3)
        gaps = [
            e for e in watch.events["a"] if e.t >= reload_t0 and not e.added and e.address in vips
        ]
        if gaps:
            res.errors.append(f"{len(gaps)} VIP removals on the master during reloads")
        if not vips <= held("a", t0):
            res.errors.append("master lost VIPs")
        taken = [e for e in watch.events["b"] if e.added and e.address in vips]
        if taken:
            during = sum(1 for e in taken if e.t >= reload_t0)
            which = ", ".join(sorted({e.address for e in taken})[:4])
            res.errors.append(f"backup took {len(taken)} VIPs ({which}; {during} during reloads)")
        if _wait(lambda: "Entering MASTER STATE" in b.text(), 0.01):
            res.errors.append("backup entered MASTER state")
        a.stop()
        b.stop()
    return res


def seed003_rss(kind: str, res: Result) -> None:
    """Idle RSS of ``kind`` on node a running the seed 003 dual-master pair with node b.

    Both nodes run their file of the pair; after the transitions and the
    second GARP burst settle, node a's processes are summed.  Correctness:
    each node becomes MASTER of its own instance (a: VI_1, b: VI_2).
    """
    confs = [SEED003 / name for name in SEED003_FILES]
    missing = [str(c) for c in confs if not c.exists()]
    if missing:
        res.errors.append(f"seed 003 RSS not measured: {', '.join(missing)} missing")
        return
    with scale_rig(0) as (rig, wd, _watch):
        a = router(rig, "a", kind, confs[0].read_text(), wd)
        b = router(rig, "b", kind, confs[1].read_text(), wd)
        a.start()
        b.start()
        try:
            time.sleep(8.0)
            assert a.proc is not None
            res.rss_seed003 = status_sum(family_pids(a.proc.pid), "VmRSS") / 1024
            for r, mine in ((a, "VI_1"), (b, "VI_2")):
                if f"({mine}) Entering MASTER STATE" not in r.text():
                    res.errors.append(f"seed 003: node {r.node} never became MASTER of {mine}")
        finally:
            a.stop()
            b.stop()


# ---------------------------------------------------------------- timers


def timer_lateness(mode: str, n: int = 255, seconds: float = 3.0) -> list[float]:
    """Lateness (ms) of N periodic 1 s timers spread over the second, in one trio process.

    ``queue``: vrrp.timer.TimerQueue (timerfd); ``sleep``: one task per timer
    with ``trio.sleep_until``; ``spin``: ``sleep_until`` 1.5 ms early, then
    yield until the deadline (the former driver).
    """
    import trio

    from vrrp.timer import TimerQueue

    late: list[float] = []

    async def main() -> None:
        start = trio.current_time() + 0.2
        end = start + seconds
        async with trio.open_nursery() as nursery:
            if mode == "queue":
                q = TimerQueue()
                await nursery.start(q.run)

                class Periodic:
                    def __init__(self, at: float) -> None:
                        self.at = at
                        self.timer = q.timer(self.fire)
                        self.timer.set(at)

                    def fire(self) -> None:
                        late.append((trio.current_time() - self.at) * 1000)
                        self.at += 1.0
                        if self.at < end:
                            self.timer.set(self.at)

                periodic = [Periodic(start + i / n) for i in range(n)]
                assert len(periodic) == n
            else:

                async def one(at: float) -> None:
                    while at < end:
                        if mode == "sleep":
                            await trio.sleep_until(at)
                        else:
                            await trio.sleep_until(at - 0.0015)
                            while trio.current_time() < at:
                                await trio.sleep(0)
                        late.append((trio.current_time() - at) * 1000)
                        at += 1.0

                for i in range(n):
                    nursery.start_soon(one, start + i / n)
            await trio.sleep_until(end + 0.1)
            nursery.cancel_scope.cancel()

    trio.run(main)
    return late


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _lat(xs: list[float]) -> str:
    top = max(xs, default=math.nan)
    return f"p50 {_pct(xs, 0.5):.3f} / p99 {_pct(xs, 0.99):.3f} / max {top:.3f} ms"


def timers_report(n: int = 255) -> None:
    for mode in ("queue", "sleep", "spin"):
        t0 = time.process_time()
        xs = timer_lateness(mode, n)
        cpu = time.process_time() - t0
        print(f"timer lateness, {n} timers, {mode:5s}: {_lat(xs)}  (CPU {cpu:.2f} s)", flush=True)


# ---------------------------------------------------------------- report


def _med(rs: list[Result], attr: str) -> float:
    xs = [getattr(r, attr) for r in rs if not math.isnan(getattr(r, attr))]
    return statistics.median(xs) if xs else math.nan


def _ratio(p: float, k: float) -> str:
    return f"{p / k:.2f}x" if k and not math.isnan(p) and not math.isnan(k) else "n/a"


def report(results: dict[str, list[Result]]) -> bool:
    p, k = results["pykeep"], results["keepalived"]
    ok = True
    for r in p + k:
        status = "ok" if not r.errors else "FAIL: " + "; ".join(r.errors)
        ok = ok and not r.errors
        print(
            f"  {r.kind:10s} n={r.n} stale-removed {r.stale_removed * 1000:.0f} ms, "
            f"init {r.init * 1000:.0f} ms, all VIPs {r.all_vips:.3f} s, "
            f"align {r.align_ms:.1f} ms, burst {r.burst_ms:.1f} ms, "
            f"CPU master {r.cpu_master:.2f}% backup {r.cpu_backup:.2f}%, "
            f"wake-ups/s {r.wake_master:.0f}/{r.wake_backup:.0f}, "
            f"RSS {r.rss_master:.1f} MiB, reload median "
            f"{statistics.median(r.reload_ms) if r.reload_ms else math.nan:.1f} ms - {status}"
        )
    rows = [
        ("CPU master (% core)", "cpu_master", "<= 3x"),
        ("CPU backup (% core)", "cpu_backup", "<= 3x"),
        ("wake-ups/s master", "wake_master", "no idle wake-ups"),
        ("wake-ups/s backup", "wake_backup", "no idle wake-ups"),
        ("exec -> stale VIPs removed (s)", "stale_removed", "as keepalived"),
        ("exec -> all initialised (s)", "init", "<= 0.5 s"),
        ("exec -> all VIPs on master (s)", "all_vips", "<= 1.1x"),
        ("first-advert spread (ms)", "align_ms", "<= 30 ms"),
        ("advert burst spread, steady (ms)", "burst_ms", "<= 30 ms"),
        ("RSS master (MiB)", "rss_master", ""),
        ("RSS, seed 003 dual-master (MiB)", "rss_seed003", "<= 25 MiB"),
    ]
    n = p[0].n if p else 0
    print(f"\n{n} instances, medians over {len(p)} run(s) | pykeep | keepalived | ratio | target")
    for label, attr, target in rows:
        mp, mk = _med(p, attr), _med(k, attr)
        print(f"  {label:32s} {mp:10.3f} {mk:10.3f} {_ratio(mp, mk):>8s}  {target}")
    rp = [x for r in p for x in r.reload_ms]
    rk = [x for r in k for x in r.reload_ms]
    if rp and rk:
        mp, mk = statistics.median(rp), statistics.median(rk)
        label = "SIGHUP -> reload applied (ms)"
        print(f"  {label:32s} {mp:10.1f} {mk:10.1f} {_ratio(mp, mk):>8s}  <= 2x")
    lp = [x for r in p for x in r.late_ms]
    lk = [x for r in k for x in r.late_ms]
    print(f"  advert interval - 1 s on the wire: pykeep {_lat(lp)}")
    print(f"                                 keepalived {_lat(lk)}")
    print(f"correctness: {'all runs ok' if ok else 'FAILED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_vrrp_scale")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--window", type=float, default=20.0, help="CPU window, seconds")
    ap.add_argument("--instances", type=int, nargs="*", default=[255, 10])
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--timers", action="store_true", help="only the in-process timer comparison")
    args = ap.parse_args([] if argv is None else argv)
    timers_report()
    if args.timers:
        return 0
    ok = True
    for n in args.instances:
        results: dict[str, list[Result]] = {"pykeep": [], "keepalived": []}
        for i in range(args.runs):
            order = ("keepalived", "pykeep") if i % 2 else ("pykeep", "keepalived")
            for kind in order:
                r = run_once(kind, n, args.window, args.reloads if n > 10 else 0)
                if n == args.instances[0]:
                    seed003_rss(kind, r)
                results[kind].append(r)
                print(
                    f"run {i + 1} {kind} n={n}: CPU {r.cpu_master:.2f}%/{r.cpu_backup:.2f}% "
                    f"{'ok' if not r.errors else r.errors}",
                    flush=True,
                )
        ok = report(results) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
