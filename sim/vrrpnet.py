"""A fake network and fake clock for N VRRP routers running the pure machine.

Why: the election properties (one MASTER after a fault, bounded dual-master
time) are about timing across routers, and real namespaces are far too slow
to explore thousands of schedules.  Here each router is a
:class:`vrrp.machine.VrrpMachine`; the "network" is one multicast segment
with a fixed latency and optional loss; time is a float advanced by a heap
of events.  Nothing sleeps and nothing touches the host.

Loss is random per (sender, receiver) pair but bounded: at most
``max_consecutive_loss`` adverts in a row are lost on one pair, so loss
alone can delay but never fake a master failure (that needs
``down_timer_adverts`` losses).  Every lost advert and every fault is
recorded as a *disturbance*; :meth:`VrrpNet.check_election` asserts that
whenever the master count is not exactly one, a disturbance happened less
than one convergence bound (Master_Down_Interval + one advert interval)
earlier — i.e. after every fault exactly one MASTER emerges within the
bound, and two MASTERs never coexist for longer than it.

Later issues reuse this: ``wire=True`` sends every advert through the real
codec (:mod:`vrrp.packet`), and ``on_action`` lets a test observe actions.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from vrrp import packet
from vrrp.machine import (
    Action,
    AdminStop,
    AdvertReceived,
    CancelTimer,
    EnterState,
    MachineParams,
    ScheduleTimer,
    SendAdvert,
    Start,
    State,
    TimerFired,
    TimerKind,
    VrrpMachine,
    master_down_interval,
)

_TIMER = 0
_DELIVER = 1
_CALL = 2


@dataclass
class Router:
    """One simulated host: its parameters, its machine while alive, and whether it holds VIPs."""

    index: int
    params: MachineParams
    machine: VrrpMachine | None = None
    incarnation: int = 0
    deadlines: dict[TimerKind, float] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.machine is not None

    @property
    def is_master(self) -> bool:
        return self.machine is not None and self.machine.state is State.MASTER


class VrrpNet:
    """N routers on one segment.  Drive it with :meth:`run_until` and the fault methods."""

    def __init__(
        self,
        priorities: list[int],
        *,
        version: int = 2,
        adver_int: float = 1.0,
        vrid: int = 51,
        loss: float = 0.0,
        max_consecutive_loss: int = 2,
        latency: float = 0.0005,
        seed: int = 0,
        wire: bool = False,
        on_action: Callable[[float, int, Action], None] | None = None,
    ) -> None:
        self.now = 0.0
        self.rng = random.Random(seed)
        self.loss = loss
        self.max_consecutive_loss = max_consecutive_loss
        self.latency = latency
        self.wire = wire
        self.on_action = on_action
        self.vip = (ipaddress.IPv4Address("10.99.0.200"),)
        self.routers = [
            Router(
                i,
                MachineParams(
                    name=f"R{i}",
                    vrid=vrid,
                    priority=p,
                    adver_int=adver_int,
                    version=version,
                    own_address=ipaddress.IPv4Address(f"10.99.0.{i + 1}"),
                    addresses=self.vip,
                    garp_master_delay=0.0,
                ),
            )
            for i, p in enumerate(priorities)
        ]
        self._heap: list[tuple[float, int, int, int, int, object]] = []
        self._seq = 0
        self._lost_run: dict[tuple[int, int], int] = {}
        self.events = 0
        # disturbances: times of faults and lost adverts.
        # (time, masters, routers alive) at every change.
        self.timeline: list[tuple[float, int, int]] = [(0.0, 0, 0)]
        self.disturbances: list[float] = [0.0]
        self._masters = 0

    # ----- bounds

    @property
    def bound(self) -> float:
        """Master_Down_Interval of the slowest router + one advert interval (+ latencies)."""
        p0 = self.routers[0].params
        lowest = min(r.params.priority for r in self.routers)
        mdi = master_down_interval(lowest, p0.adver_int, p0.version)
        return mdi + p0.adver_int + 4 * self.latency

    # ----- faults

    def start(self, i: int) -> None:
        """Boot router ``i`` (also a restart after :meth:`kill`)."""
        r = self.routers[i]
        r.incarnation += 1
        r.deadlines.clear()
        r.machine = VrrpMachine(r.params)
        self.disturbances.append(self.now)
        self._count(0)
        self._apply(r, r.machine.handle(Start(), self.now))

    def kill(self, i: int) -> None:
        """Crash: the machine vanishes mid-flight (its VIPs with it), no priority-0 advert."""
        r = self.routers[i]
        if r.machine is None:
            return
        was_master = r.is_master
        r.machine = None
        r.incarnation += 1
        r.deadlines.clear()
        self.disturbances.append(self.now)
        self._count(-1 if was_master else 0)

    def stop(self, i: int) -> None:
        """Graceful stop: AdminStop (priority-0 advert if MASTER), then gone."""
        r = self.routers[i]
        if r.machine is None:
            return
        self._apply(r, r.machine.handle(AdminStop(), self.now))
        r.machine = None
        r.incarnation += 1
        r.deadlines.clear()
        self.disturbances.append(self.now)
        self._count(0)

    def at(self, t: float, fn: Callable[[], None]) -> None:
        """Schedule a call (a fault, a probe) at simulated time ``t``."""
        self._push(t, _CALL, -1, 0, fn)

    # ----- the loop

    def run_until(self, t_end: float) -> None:
        heap = self._heap
        routers = self.routers
        while heap and heap[0][0] <= t_end:
            t, _s, kind, idx, inc, payload = heapq.heappop(heap)
            self.now = t
            if kind == _CALL:
                payload()  # type: ignore[operator]
                continue
            r = routers[idx]
            m = r.machine
            if m is None or inc != r.incarnation:
                continue
            self.events += 1
            if kind == _TIMER:
                tk: TimerKind = payload  # type: ignore[assignment]
                if r.deadlines.get(tk) != t:
                    continue  # moved or cancelled since
                del r.deadlines[tk]
                self._apply(r, m.handle(TimerFired(tk), t))
            else:
                self._apply(r, m.handle(payload, t))  # type: ignore[arg-type]
        self.now = t_end

    def _push(self, t: float, kind: int, idx: int, inc: int, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, idx, inc, payload))

    def _count(self, d: int) -> None:
        self._masters += d
        alive = sum(1 for r in self.routers if r.machine is not None)
        self.timeline.append((self.now, self._masters, alive))

    def _apply(self, r: Router, actions: list[Action]) -> None:
        for a in actions:
            if self.on_action is not None:
                self.on_action(self.now, r.index, a)
            if type(a) is SendAdvert:
                self._broadcast(r, a.priority)
            elif type(a) is ScheduleTimer:
                r.deadlines[a.kind] = a.at
                self._push(a.at, _TIMER, r.index, r.incarnation, a.kind)
            elif type(a) is CancelTimer:
                r.deadlines.pop(a.kind, None)
            elif type(a) is EnterState:
                if a.new is State.MASTER:
                    self._count(+1)
                elif a.old is State.MASTER:
                    self._count(-1)

    def _broadcast(self, sender: Router, priority: int) -> None:
        src = sender.params.own_address
        assert src is not None
        advert = sender.params.advert(priority)
        t = self.now + self.latency
        for r in self.routers:
            if r is sender or r.machine is None:
                continue
            key = (sender.index, r.index)
            if self.loss and self.rng.random() < self.loss:
                run = self._lost_run.get(key, 0)
                if run < self.max_consecutive_loss:
                    self._lost_run[key] = run + 1
                    self.disturbances.append(self.now)
                    continue
            self._lost_run[key] = 0
            if self.wire:
                decoded = self._through_wire(advert, src, r.params)
                if isinstance(decoded, packet.Rejected):
                    raise AssertionError(f"own advert rejected: {decoded}")
                advert = decoded
            self._push(t, _DELIVER, r.index, r.incarnation, AdvertReceived(advert, src))

    @staticmethod
    def _through_wire(
        advert: packet.Advert,
        src: ipaddress.IPv4Address | ipaddress.IPv6Address,
        rx: MachineParams,
    ) -> packet.Advert | packet.Rejected:
        dst = packet.MCAST_GROUP4
        assert isinstance(src, ipaddress.IPv4Address)
        raw = packet.build_ipv4(packet.encode(advert, src=src, dst=dst), src=src, dst=dst)
        return packet.decode_ipv4(raw, expected=rx.receive_params())[1]

    # ----- observations

    def masters(self) -> list[int]:
        return [r.index for r in self.routers if r.is_master]

    def check_election(self, t_end: float) -> list[str]:
        """Violations of the convergence property up to ``t_end`` (empty when it holds).

        For every stretch where the master count is not one (and some router
        is alive), some disturbance must lie within ``bound`` before every
        instant of it.
        """
        bound = self.bound
        dist = sorted(self.disturbances)
        problems: list[str] = []
        tl = [*self.timeline, (t_end, -1, -1)]
        for (t0, n, alive), (t1, _, _) in itertools.pairwise(tl):
            if n == 1 or t1 <= t0 or (n == 0 and alive == 0):
                continue
            # the latest disturbance at or before t0 must cover [t0, t1)
            last = max((d for d in dist if d <= t0 + 1e-12), default=0.0)
            # disturbances inside the stretch extend the cover
            cover = last + bound
            for d in dist:
                if t0 < d < t1 and d <= cover:
                    cover = d + bound
            if cover < t1 - 1e-9:
                problems.append(
                    f"{n} masters from {t0:.4f} to {t1:.4f}; last disturbance {last:.4f}, "
                    f"bound {bound:.4f}"
                )
        return problems

    def expected_master_priority(self) -> int | None:
        alive = [r.params.priority for r in self.routers if r.alive]
        return max(alive) if alive else None
