"""Model-checked election property over random schedules (issue 3, "Must show" 2).

N = 2..5 routers with random priorities, random (bounded) advert loss and
random kill / restart / graceful stop, on sim.vrrpnet's fake network and
clock.  After every fault exactly one MASTER emerges within
Master_Down_Interval + one advert interval (RFC 5798 §6.4.2 / §6.4.3), and
two MASTERs never coexist longer than that.  Once quiet, the MASTER has the
highest live priority (RFC 5798 §6.4.2 preemption; keepalived
vrrp_state_backup discards lower-priority adverts).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.vrrpnet import VrrpNet


@dataclass(frozen=True)
class Schedule:
    priorities: list[int]
    version: int
    adver_int: float
    loss: float
    seed: int
    faults: list[tuple[float, str, int]]  # (gap in bounds, kind, router)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    n = draw(st.integers(2, 5))
    priorities = draw(st.lists(st.integers(1, 254), min_size=n, max_size=n))
    version = draw(st.sampled_from([2, 3]))
    adver_int = 1.0 if version == 2 else draw(st.sampled_from([0.1, 0.5, 1.0, 2.5]))
    loss = draw(st.sampled_from([0.0, 0.0, 0.05, 0.2]))
    faults = draw(
        st.lists(
            st.tuples(
                st.floats(0.05, 2.0),
                st.sampled_from(["kill", "restart", "stop"]),
                st.integers(0, n - 1),
            ),
            min_size=1,
            max_size=4,
        )
    )
    seed = draw(st.integers(0, 2**32 - 1))
    return Schedule(priorities, version, adver_int, loss, seed, faults)


def fault(net: VrrpNet, kind: str, i: int) -> None:
    if kind == "kill":
        net.kill(i)
    elif kind == "stop":
        net.stop(i)
    elif not net.routers[i].alive:
        net.start(i)


def run(s: Schedule, keywords: list[tuple[bool, bool, int]] | None = None) -> VrrpNet:
    net = VrrpNet(s.priorities, version=s.version, adver_int=s.adver_int, loss=s.loss, seed=s.seed)
    for r, (quiet, answer, adverts) in zip(net.routers, keywords or [], strict=False):
        r.params = replace(
            r.params,
            lower_prio_no_advert=quiet,
            higher_prio_send_advert=answer,
            down_timer_adverts=adverts,
        )
    bound = net.bound
    for i in range(len(s.priorities)):
        net.start(i)
    t = 2 * bound  # settled
    for gap, kind, i in s.faults:
        t += gap * bound
        net.at(t, functools.partial(fault, net, kind, i))
    t_end = t + 2 * bound
    net.run_until(t_end)
    problems = net.check_election(t_end)
    assert not problems, problems
    # Quiet at the end (no disturbance for a whole bound): the master is one
    # of the highest-priority live routers (an equal-priority master keeps
    # the role, RFC 5798 §6.4.2 resets the timer on ">=").
    if net.loss == 0.0 or max(net.disturbances) < t_end - net.bound:
        want = net.expected_master_priority()
        masters = net.masters()
        if want is None:
            assert masters == []
        else:
            assert len(masters) == 1
            assert net.routers[masters[0]].params.priority == want
    return net


@settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(schedules())
def test_one_master_after_every_fault(s: Schedule) -> None:
    run(s)


@st.composite
def keyword_schedules(draw: st.DrawFn) -> tuple[Schedule, list[tuple[bool, bool, int]]]:
    """Schedules whose routers mix lower_prio_no_advert, higher_prio_send_advert and
    down_timer_adverts.  At most 3 down adverts: the convergence bound counts 3."""
    s = draw(schedules())
    n = len(s.priorities)
    kw = st.tuples(st.booleans(), st.booleans(), st.integers(1, 3))
    return s, draw(st.lists(kw, min_size=n, max_size=n))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keyword_schedules())
def test_one_master_with_election_keywords(
    case: tuple[Schedule, list[tuple[bool, bool, int]]],
) -> None:
    """The same property when masters keep quiet about lower priorities, answer
    higher ones, or give up on fewer lost adverts (vrrp.c vrrp_state_master_rx)."""
    run(*case)


def test_fixed_schedule_crash_and_preempt_back() -> None:
    """A readable instance: crash the master, watch takeover, restart it, watch preemption."""
    s = Schedule([150, 100, 200], 2, 1.0, 0.0, 1, [(1.0, "kill", 2), (1.0, "restart", 2)])
    net = run(s)
    assert [net.routers[i].params.priority for i in net.masters()] == [200]


def test_through_the_codec() -> None:
    """The same property with every advert encoded and decoded by vrrp.packet."""
    net = VrrpNet([100, 200, 150], version=3, adver_int=0.1, seed=3, wire=True)
    for i in range(3):
        net.start(i)
    net.at(2.0, lambda: net.kill(1))
    net.run_until(4.0)
    assert net.check_election(4.0) == []
    assert [net.routers[i].params.priority for i in net.masters()] == [150]
