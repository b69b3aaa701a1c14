"""Judging a chaos run: ownership samples and captured adverts in, one row out.

Why pure and separate: the verdict (how long two routers held the VIP, and how
much of that the protocol does not excuse) must not depend on which daemon ran
or how the fault was made, and it must be testable without a rig.

The protocol bound of a dual-master episode: a router that holds the VIP while
a higher-priority master is alive must give it up when it *receives* that
master's advert (RFC 3768 §6.4.3, keepalived ``vrrp_state_master_rx``).  So an
episode is excused until the first advert the backup actually received after
the episode began (or after the fault window that explains it: a freeze, a
partition), plus ``MARGIN`` for scheduling on a loaded host.  A no-master
episode is excused only inside a scenario's fault window (for a dead master:
the backup's Master_Down_Interval).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sim.chaos_rig import ADDRS, ADVERT_INT, PRIORITY, Advert, master_down_interval

MARGIN = 0.5 * ADVERT_INT
"""Scheduling slack on a loaded 2-core host: half an advert interval."""
RACE = 0.1
"""An advert that arrived this soon before the VIP appeared crossed the takeover
decision in flight (the daemon decides, then adds the address): not proof of a
false takeover."""
SAMPLE_SLACK = 0.05
"""A no-master blip shorter than this outside any fault window is a sampling artefact
(the two routers are read one after the other)."""

Window = tuple[float, float]
Samples = Sequence[tuple[float, frozenset[str]]]


@dataclass
class Plan:
    """What a scenario did, in wall time, and what the protocol allows for it."""

    t0: float
    t_end: float = 0.0
    t_ref: float = 0.0
    """Recovery is measured from here (the repair, or the fault if nothing is repaired)."""
    bound: float = 0.0
    """The protocol's recovery bound in seconds."""
    final: frozenset[str] = frozenset({"a"})
    dual_ok: list[Window] = field(default_factory=list)
    none_ok: list[Window] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    expect_split: bool = False
    """One-way partition: dual-master inside the fault is the point, not a defect."""


@dataclass
class Row:
    scenario: str
    daemon: str
    seconds: float
    dual_s: float
    dual_beyond_s: float
    none_s: float
    none_beyond_s: float
    probes: int
    lost: int
    recovery_s: float | None
    bound_s: float
    takeovers: int
    early_takeovers: int
    prio0_adverts: int
    advert_late_max_ms: float | None
    advert_late_p50_ms: float | None
    crashes: list[str]
    left_behind: list[str]
    notes: list[str]
    failures: list[str] = field(default_factory=list)
    """What the scenario's own checks found wrong (the VM rows: table against health)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """A scenario's own measurements, for the JSON report."""

    def ok(self) -> bool:
        """No dual-master beyond the bound (bar a partition), no crash, nothing left, no failure."""
        return (
            not self.crashes
            and not self.left_behind
            and not self.failures
            and self.dual_beyond_s == 0.0
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _segments(samples: Samples, t0: float, t1: float) -> list[tuple[float, float, frozenset[str]]]:
    """Runs of equal ownership clipped to [t0, t1], each lasting until the next sample."""
    out: list[tuple[float, float, frozenset[str]]] = []
    for (t, held), (t_next, _h) in itertools.pairwise(samples):
        s, e = max(t, t0), min(t_next, t1)
        if e <= s:
            continue
        if out and out[-1][2] == held and abs(out[-1][1] - s) < 1e-9:
            out[-1] = (out[-1][0], e, held)
        else:
            out.append((s, e, held))
    return out


def _episodes(segs: list[tuple[float, float, frozenset[str]]], dual: bool) -> list[Window]:
    out: list[Window] = []
    for s, e, held in segs:
        hit = len(held) >= 2 if dual else not held
        if not hit:
            continue
        if out and abs(out[-1][1] - s) < 1e-9:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def _after_windows(t: float, windows: Sequence[Window]) -> float:
    """``t``, pushed to the end of every excuse window it falls in."""
    moved = True
    while moved:
        moved = False
        for ws, we in windows:
            if ws <= t < we:
                t, moved = we, True
    return t


def dual_beyond(episodes: Sequence[Window], plan: Plan, heard: Sequence[float]) -> float:
    """Dual-master seconds past the first advert the backup heard (see module doc)."""
    total = 0.0
    for s, e in episodes:
        base = _after_windows(s, plan.dual_ok)
        if base >= e:
            continue
        nxt = next((t for t in heard if t >= base - 0.02), None)
        allowed = (nxt if nxt is not None else base) + MARGIN
        total += max(0.0, e - allowed)
    return total


def none_beyond(episodes: Sequence[Window], plan: Plan) -> float:
    total = 0.0
    for s, e in episodes:
        base = _after_windows(s, plan.none_ok)
        if e - base > SAMPLE_SLACK:
            total += e - base
    return total


def recovery(segs: list[tuple[float, float, frozenset[str]]], plan: Plan) -> float | None:
    """Seconds from ``t_ref`` until exactly ``final`` held the VIP; None if it never did."""
    for s, e, held in segs:
        if e > plan.t_ref and held == plan.final:
            return max(0.0, s - plan.t_ref)
    return None


def takeovers(
    segs: list[tuple[float, float, frozenset[str]]], heard: Sequence[float]
) -> tuple[int, list[float]]:
    """(times the backup took the VIP, and for each early one the seconds since the last
    master advert it received: less than its Master_Down_Interval is a false takeover)."""
    mdi = master_down_interval(PRIORITY["b"])
    n = 0
    early: list[float] = []
    for prev, cur in itertools.pairwise(segs):
        if "b" in cur[2] and "b" not in prev[2]:
            n += 1
            last = max((t for t in heard if t <= cur[0] - RACE), default=None)
            if last is not None and cur[0] - last < mdi - MARGIN:
                early.append(cur[0] - last)
    return n, early


def lateness(adverts: Sequence[Advert], t0: float, t1: float) -> tuple[float | None, float | None]:
    """(max, median) of the master's advert intervals past ``advert_int``, in ms.

    Gaps over 2.5 intervals are an outage (a freeze, a link down), not a late timer.
    """
    ts = [a.t for a in adverts if a.src == ADDRS["a"] and a.priority > 0 and t0 <= a.t <= t1]
    late = [
        (y - x - ADVERT_INT) * 1000 for x, y in itertools.pairwise(ts) if y - x < 2.5 * ADVERT_INT
    ]
    if not late:
        return None, None
    return max(late), statistics.median(late)


def judge(
    scenario: str,
    daemon: str,
    plan: Plan,
    samples: Samples,
    lan: Sequence[Advert],
    rx: Sequence[Advert],
    probes: int,
    lost: int,
    crashes: list[str],
    left: list[str],
) -> Row:
    segs = _segments(samples, plan.t0, plan.t_end)
    heard = sorted(a.t for a in rx if a.src == ADDRS["a"] and a.priority > PRIORITY["b"])
    duals = _episodes(segs, dual=True)
    nones = _episodes(segs, dual=False)
    beyond = dual_beyond(duals, plan, heard)
    n_take, early = takeovers(segs, heard)
    late_max, late_p50 = lateness(lan, plan.t0, plan.t_end)
    prio0 = sum(1 for a in lan if a.priority == 0 and plan.t0 <= a.t <= plan.t_end)
    notes = list(plan.notes)
    notes += [f"takeover {g:.2f} s after the last advert received" for g in early]
    if plan.expect_split:
        notes.append(f"split brain {sum(e - s for s, e in duals):.2f} s by design")
    return Row(
        scenario=scenario,
        daemon=daemon,
        seconds=round(plan.t_end - plan.t0, 1),
        dual_s=round(sum(e - s for s, e in duals), 3),
        dual_beyond_s=round(beyond, 3),
        none_s=round(sum(e - s for s, e in nones), 3),
        none_beyond_s=round(none_beyond(nones, plan), 3),
        probes=probes,
        lost=lost,
        recovery_s=None if (r := recovery(segs, plan)) is None else round(r, 3),
        bound_s=round(plan.bound, 3),
        takeovers=n_take,
        early_takeovers=len(early),
        prio0_adverts=prio0,
        advert_late_max_ms=None if late_max is None else round(late_max, 1),
        advert_late_p50_ms=None if late_p50 is None else round(late_p50, 1),
        crashes=crashes,
        left_behind=left,
        notes=notes,
    )
