"""What a many-server start-up must not pay per real server, and that the savings change nothing.

A 10,000-server start-up spent its CPU on per-server work that decides
nothing: a trip to the kernel's thread for every server's initial state
(which sends no command), a nursery and a flusher task per one-checker
scheduler, isinstance against a runtime-checkable Protocol, and a reload
signature computed before any reload.  These tests pin the shortcuts to the
long way round: same health, same commands, same transitions.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing

import pykeep.lvs as lvs
from healthcheck.api import MultiStepChecker, Result, Target
from healthcheck.http import HttpChecker
from healthcheck.policy import Timing, Transition, resolve_timing
from healthcheck.scheduler import Scheduler, step_count
from healthcheck.tcp import TcpChecker
from ipvs.policy import rs_key
from ipvs.service import Reconciler
from pykeep.config.model import (
    Checker,
    CheckerCommon,
    Config,
    HttpCheck,
    HttpUrl,
    RealServer,
    TcpCheck,
    VirtualServer,
)
from tests.test_ipvs_service import FakeKernel
from tests.test_lvs_transition_cost import random_config

IP = ipaddress.ip_address


# ------------------------------------------------------------ Reconciler.quiet


def test_quiet_transitions_send_nothing_and_change_only_health() -> None:
    """Random pools and events: whenever ``quiet`` says so, ``transition`` sends nothing."""
    quiet = loud = 0
    for seed in range(60):
        rnd = random.Random(seed)
        cfg, _ = random_config(rnd)
        r = Reconciler(cfg, FakeKernel())
        r.start()
        keys = [rs_key(v, s) for v in cfg.virtual_servers for s in v.real_servers]
        keys.append("10.0.0.9:tcp:80/10.0.1.1:80")  # a server no configuration names
        for step in range(60):
            key = rnd.choice(keys)
            up = rnd.random() < 0.5
            weight = rnd.choice([None, None, None, 0, 3])
            said = r.quiet(key, up, weight)
            kernel = r.kernel
            assert isinstance(kernel, FakeKernel)
            sent, applied, quorum = len(kernel.ops), r.applied.copy(), dict(r.quorum)
            ops = r.transition(key, up, weight)
            where = f"seed {seed} step {step}: {key} {up} {weight}"
            if said:
                quiet += 1
                assert ops == [], where
                assert len(kernel.ops) == sent, where
                assert r.applied == applied and r.quorum == quorum, where
            else:
                loud += 1
    # both answers were given, many times, or the test proved nothing
    assert quiet > 300 and loud > 300, (quiet, loud)


# ------------------------------------------------------------ step_count


class _Steps:
    steps = 3

    async def check(self, target: Target, timeout: float) -> Result:
        return Result.passed()

    async def check_step(self, target: Target, timeout: float, step: int) -> Result:
        return Result.passed()


class _NoSteps:
    async def check(self, target: Target, timeout: float) -> Result:
        return Result.passed()

    async def check_step(self, target: Target, timeout: float, step: int) -> Result:
        return Result.passed()


class _StepsOnly:
    steps = 2

    async def check(self, target: Target, timeout: float) -> Result:
        return Result.passed()


def test_step_count_agrees_with_the_protocol() -> None:
    http = HttpChecker.from_model(
        HttpCheck(urls=(HttpUrl(path="/a"), HttpUrl(path="/b"))), None, None, None
    )
    target = Target("10.0.0.1", 80)
    plain: list[Any] = [TcpChecker(), http, _Steps(), _NoSteps(), _StepsOnly()]
    wrapped = [lvs.RecordedChecker(c, "X", target) for c in plain]
    for c in plain + wrapped:
        want = c.steps if isinstance(c, MultiStepChecker) else 1
        assert step_count(c) == want, c
    assert step_count(http) == 2 and step_count(wrapped[1]) == 2
    assert step_count(TcpChecker()) == 1 and step_count(_StepsOnly()) == 1


# ------------------------------------------------------------ Scheduler, one server


class _Flaky:
    """Passes, then fails for ever."""

    bounds_itself = True

    def __init__(self) -> None:
        self.calls = 0

    async def check(self, target: Target, timeout: float) -> Result:
        self.calls += 1
        await trio.sleep(0)
        return Result.passed() if self.calls == 1 else Result.failed("refused")


def _timing() -> Timing:
    return Timing(delay_loop=2.0, warmup=0.0, retry=0, delay_before_retry=1.0)


def test_one_server_scheduler_delivers_initial_first_then_changes() -> None:
    """The LVS service's shape (one server, one checker, no batching), and a channel."""

    async def main() -> None:
        got: list[list[Transition]] = []
        checker = _Flaky()
        sched = Scheduler(got.append, batch_window=0)
        sched.add_checkers("a", [(checker, Target("10.0.0.1", 80), _timing())], ["TCP_CHECK"])
        async with trio.open_nursery() as nursery:
            await nursery.start(sched.run)
            assert got == [[Transition("a", True, "initial", None)]]  # before any check
            await trio.sleep(10)
            nursery.cancel_scope.cancel()
        assert got[1:] == [[Transition("a", False, "TCP_CHECK: refused", None)]]
        assert sched.checks_done >= 4 and not sched.state("a")
        calls = checker.calls
        await trio.sleep(10)
        assert checker.calls == calls  # cancelled: no check runs any more

        send, receive = trio.open_memory_channel[list[Transition]](10)
        chan = Scheduler(send, batch_window=0)
        chan.add_checkers("b", [(_Flaky(), Target("10.0.0.2", 80), _timing())], ["TCP_CHECK"])
        async with trio.open_nursery() as nursery:
            await nursery.start(chan.run)
            first = await receive.receive()
            second = await receive.receive()
            nursery.cancel_scope.cancel()
        assert [first, second] == [
            [Transition("b", True, "initial", None)],
            [Transition("b", False, "TCP_CHECK: refused", None)],
        ]

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.01))


# ------------------------------------------------------------ LvsService start-up


@pytest.fixture
def passing_checkers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    class Pass:
        bounds_itself = True

        async def check(self, target: Target, timeout: float) -> Result:
            await trio.sleep(0)
            return Result.passed()

    def build(
        m: Checker, rs: RealServer, vs: VirtualServer, config: object = None
    ) -> tuple[object, Target, Timing]:
        return Pass(), Target(str(rs.address), rs.port), resolve_timing(vs, rs, m)

    monkeypatch.setattr(lvs, "build_checker", build)
    yield


def _pool(n: int) -> Config:
    check = TcpCheck(common=CheckerCommon(delay_loop=600.0, warmup=600.0, connect_timeout=1.0))
    rss = tuple(
        RealServer(address=IP(f"10.1.{i // 250}.{i % 250 + 1}"), port=80, checkers=(check,))
        for i in range(n)
    )
    return Config(
        virtual_servers=(VirtualServer(address=IP("10.0.0.1"), port=80, real_servers=rss),)
    )


@pytest.mark.usefixtures("passing_checkers")
def test_start_up_takes_no_kernel_trip_per_server() -> None:
    """500 servers start up: every initial state noted, the kernel's thread used once or twice."""
    n = 500
    cfg = _pool(n)

    async def main() -> None:
        kernel = FakeKernel()
        svc = lvs.LvsService(cfg, kernel)
        trips: list[object] = []
        real_call = svc._worker.call

        async def call(fn: Any, *args: Any) -> Any:
            trips.append(fn)
            return await real_call(fn, *args)

        svc._worker.call = call  # type: ignore[method-assign]
        async with trio.open_nursery() as nursery:
            await nursery.start(svc.run)
            await trio.sleep(0.5)  # before the first check (bootstrap delay: 1 s)
            assert len(svc.reconciler.health) == n
            assert all(h.alive for h in svc.reconciler.health.values())
            assert sum(len(e.dests) for e in kernel.table.values()) == n
            assert len(trips) <= 2, trips  # the table's start, nothing per server
            # the reload signature is not computed until a reload compares it
            assert all("signature" not in vars(e) for e in svc._checked.values())
            await svc.reload(cfg)
            assert len(svc._checked) == n  # unchanged servers kept their checkers
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.01))
