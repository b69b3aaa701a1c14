"""pykeep/lvs.py against an in-memory kernel: checks → IPVS ops, reload, drain, bad states.

The checkers are replaced by a switchboard (``Switch``) so that each test says
which real servers pass; the scheduler, the policy, the reconciler and the
diff are the real ones, on trio's MockClock.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Collection, Iterator
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import pytest
import trio
import trio.testing

import pykeep.lvs as lvs
from healthcheck.api import Result, Target
from healthcheck.policy import Timing, resolve_timing
from ipvs.diff import Op, OpKind, apply_ops
from ipvs.table import Table, copy_table
from pykeep.config.model import (
    Checker,
    CheckerCommon,
    Config,
    IPAddress,
    LvsSyncDaemon,
    RealServer,
    Script,
    TcpCheck,
    VirtualServer,
)
from pykeep.ops.drain import DrainSet

IP = ipaddress.ip_address


class FakeKernel:
    """Applies ops to a table, as the kernel would, and records them."""

    def __init__(self) -> None:
        self.table: Table = {}
        self.ops: list[Op] = []
        self.fail_next = False

    def read(self, with_stats: bool = False) -> Table:
        return copy_table(self.table)

    def apply(self, ops: Collection[Op]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("IPVS refused 1 request(s): boom")
        apply_ops(self.table, list(ops))
        self.ops.extend(ops)

    def flush(self) -> None:
        self.table.clear()

    def start_sync_daemon(self, d: LvsSyncDaemon, master: bool) -> None:
        raise OSError("no sync daemon here")

    def stop_sync_daemon(self, master: bool) -> None:
        pass

    def weights(self) -> dict[str, int]:
        return {
            f"{d.address}:{d.port}": dest.weight
            for e in self.table.values()
            for d, dest in e.dests.items()
        }


class Switch:
    """Which addresses pass their check right now."""

    up: ClassVar[set[str]] = set()

    class Probe:
        async def check(self, target: Target, timeout: float) -> Result:
            await trio.sleep(0.01)
            if target.address in Switch.up:
                return Result.passed()
            return Result.failed("connect refused")


@pytest.fixture(autouse=True)
def fake_checkers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def build(
        m: Checker, rs: RealServer, vs: VirtualServer, config: object = None
    ) -> tuple[object, Target, Timing]:
        return Switch.Probe(), Target(str(rs.address), rs.port), resolve_timing(vs, rs, m)

    monkeypatch.setattr(lvs, "build_checker", build)
    Switch.up = set()
    yield


def check(**kw: object) -> TcpCheck:
    common = CheckerCommon(delay_loop=2.0, retry=0, warmup=0.0, connect_timeout=1.0)
    return TcpCheck(common=replace(common, **kw))  # type: ignore[arg-type]


def config(weights: tuple[int, ...] = (1, 2, 3), **kw: object) -> Config:
    rss = tuple(
        RealServer(address=IP(f"10.0.1.{i + 1}"), port=80, weight=w, checkers=(check(),))
        for i, w in enumerate(weights)
    )
    vs = VirtualServer(address=IP("10.0.0.1"), port=80, real_servers=rss, **kw)  # type: ignore[arg-type]
    return Config(virtual_servers=(vs,))


async def started(svc: lvs.LvsService, nursery: trio.Nursery) -> None:
    await nursery.start(svc.run)
    await trio.sleep(10)  # bootstrap (1 s) + a few delay_loops on the mock clock


def run(test: object) -> None:
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0.01))  # type: ignore[arg-type]


def test_transitions_become_ipvs_ops_and_stop_removes_them() -> None:
    Switch.up = {"10.0.1.1", "10.0.1.3"}
    k = FakeKernel()

    async def main() -> None:
        svc = lvs.LvsService(config(), k)
        async with trio.open_nursery() as n:
            await started(svc, n)
            assert k.weights() == {"10.0.1.1:80": 1, "10.0.1.3:80": 3}
            Switch.up.add("10.0.1.2")
            await trio.sleep(5)
            assert k.weights() == {"10.0.1.1:80": 1, "10.0.1.2:80": 2, "10.0.1.3:80": 3}
            assert [o.kind for o in k.ops[-1:]] == [OpKind.ADD_DEST]
            Switch.up.discard("10.0.1.1")
            await trio.sleep(5)  # retry 0: one failure takes it down
            assert [o.kind for o in k.ops[-1:]] == [OpKind.DEL_DEST]
            vss = svc.virtual_servers()
            alive = {r.address: (r.alive, r.in_ipvs) for r in vss[0].real_servers}
            assert alive == {
                "10.0.1.1": (False, False),
                "10.0.1.2": (True, True),
                "10.0.1.3": (True, True),
            }
            c = vss[0].real_servers[1].checkers[0]
            assert c.kind == "TCP_CHECK" and c.successes >= 1 and c.latency is not None
            await svc.shutdown()
            assert k.table == {}
            n.cancel_scope.cancel()

    run(main)


def test_inhibit_on_failure_edits_weight_zero() -> None:
    Switch.up = {"10.0.1.1", "10.0.1.2", "10.0.1.3"}
    k = FakeKernel()

    async def main() -> None:
        svc = lvs.LvsService(config(inhibit_on_failure=True), k)
        async with trio.open_nursery() as n:
            await started(svc, n)
            Switch.up.discard("10.0.1.2")
            await trio.sleep(5)
            assert k.weights()["10.0.1.2:80"] == 0
            assert k.ops[-1].kind is OpKind.EDIT_DEST
            op = k.ops[-1]
            assert op.dkey is not None and op.dest is not None
            before = copy_table(k.table)
            before[op.skey].dests[op.dkey] = replace(op.dest, weight=2)
            assert lvs.op_event(op, before).startswith("Disabling service [10.0.1.2]:tcp:80")
            n.cancel_scope.cancel()

    run(main)


def test_reload_migrates_checker_state_and_unchanged_is_zero_ops() -> None:
    Switch.up = {"10.0.1.1"}
    k = FakeKernel()

    async def main() -> None:
        svc = lvs.LvsService(config(), k)
        async with trio.open_nursery() as n:
            await started(svc, n)
            before = len(k.ops)
            kept = dict(svc._checked)
            await svc.reload(config())
            await trio.sleep(0.5)  # a restarted checker would announce itself now
            assert len(k.ops) == before
            assert svc._checked == kept  # same running checkers, same state
            # One weight changes: one EDIT, health kept (10.0.1.2/3 still down).
            await svc.reload(config((5, 2, 3)))
            await trio.sleep(0.5)
            assert [o.kind for o in k.ops[before:]] == [OpKind.EDIT_DEST]
            assert k.weights() == {"10.0.1.1:80": 5}
            # A changed checker restarts fresh (up until proven down), others keep state.
            cfg = config((5, 2, 3))
            vs = cfg.virtual_servers[0]
            rs2 = replace(vs.real_servers[1], checkers=(check(delay_loop=3.0),))
            vs2 = replace(vs, real_servers=(vs.real_servers[0], rs2, vs.real_servers[2]))
            await svc.reload(replace(cfg, virtual_servers=(vs2,)))
            assert "10.0.1.2:80" in k.weights()
            await trio.sleep(10)
            assert k.weights() == {"10.0.1.1:80": 5}
            n.cancel_scope.cancel()

    run(main)


def test_drain_edits_weight_zero_kept_across_reload_and_undrain_restores() -> None:
    Switch.up = {"10.0.1.1", "10.0.1.2", "10.0.1.3"}
    k = FakeKernel()

    async def main() -> None:
        svc = lvs.LvsService(config(), k)
        async with trio.open_nursery() as n:
            await started(svc, n)
            before = len(k.ops)
            await svc.drain("10.0.0.1:80", "10.0.1.2:80")
            assert [(o.kind, o.dest.weight if o.dest else None) for o in k.ops[before:]] == [
                (OpKind.EDIT_DEST, 0)
            ]
            rs = svc.virtual_servers()[0].real_servers[1]
            assert rs.drained and rs.effective_weight == 0 and rs.alive
            await svc.reload(config())
            assert k.weights()["10.0.1.2:80"] == 0
            await svc.undrain("10.0.0.1:80", "10.0.1.2:80")
            assert k.weights()["10.0.1.2:80"] == 2
            assert len(k.ops) == before + 2
            n.cancel_scope.cancel()

    run(main)


def test_drained_set_given_at_start_applies_from_the_first_sync() -> None:
    Switch.up = {"10.0.1.1", "10.0.1.2", "10.0.1.3"}
    k = FakeKernel()
    drained = DrainSet().add("[10.0.0.1]:tcp:80", "10.0.1.3")

    async def main() -> None:
        svc = lvs.LvsService(config(), k, drained=drained)
        async with trio.open_nursery() as n:
            await started(svc, n)
            assert k.weights() == {"10.0.1.1:80": 1, "10.0.1.2:80": 2, "10.0.1.3:80": 0}
            n.cancel_scope.cancel()

    run(main)


def test_bad_states_never_raise() -> None:
    k = FakeKernel()

    async def main() -> None:
        svc = lvs.LvsService(config(), k)
        # before start: status, drain, reload, vrrp_state, shutdown all harmless
        assert [r.in_ipvs for r in svc.virtual_servers()[0].real_servers] == [False] * 3
        await svc.set_drained(DrainSet().add("10.0.0.1:80", "10.0.1.1"))
        await svc.reload(config())
        svc.vrrp_state("VI_1", True, [IP("10.0.0.1")])
        await svc.shutdown()
        assert k.ops == []
        Switch.up = {"10.0.1.1"}
        async with trio.open_nursery() as n:
            await started(svc, n)
            k.fail_next = True  # the kernel refuses: logged, the service goes on
            Switch.up.add("10.0.1.2")
            await trio.sleep(5)
            Switch.up.add("10.0.1.3")
            await trio.sleep(5)
            assert "10.0.1.3:80" in k.weights()
            await svc.reload(Config())  # every virtual server gone
            assert k.table == {}
            assert svc.virtual_servers() == []
            await svc.shutdown()
            await svc.shutdown()
            n.cancel_scope.cancel()

    run(main)


def test_sync_daemon_failure_is_logged_not_raised() -> None:
    from pykeep.config.model import GlobalDefs

    d = LvsSyncDaemon(interface="eth0", vrrp_instance="VI_1")
    cfg = replace(config(), global_defs=GlobalDefs(lvs_sync_daemon=d))
    svc = lvs.LvsService(cfg, FakeKernel())
    svc.vrrp_state("VI_1", True, [])


def test_open_lvs_none_for_vrrp_only_or_no_virtual_servers() -> None:
    assert lvs.open_lvs(config(), argparse.Namespace(vrrp=True)) is None
    assert lvs.open_lvs(Config(), argparse.Namespace(vrrp=False)) is None


def test_log_wording_matches_keepalived() -> None:
    assert (
        lvs.check_event("TCP_CHECK", Target("10.0.0.1", 80), True)
        == "TCP connection to [10.0.0.1]:tcp:80 success."
    )
    assert lvs.check_event("TCP_CHECK", Target("10.0.0.1", 80), False).endswith("failed.")
    k = FakeKernel()
    cfg = config((1,))
    from ipvs.desired import desired_table
    from ipvs.diff import diff

    ops = diff({}, desired_table(cfg), None)
    assert [lvs.op_event(o, {}) for o in ops] == [
        "Adding VS [10.0.0.1]:tcp:80",
        "Adding service [10.0.1.1]:tcp:80 to VS [10.0.0.1]:tcp:80",
    ]
    apply_ops(k.table, ops)
    gone = diff(k.read(), {}, set(k.table))
    assert lvs.op_event(gone[-1], k.table).startswith("Removing")


def test_follow_vrrp_reports_changes_with_master_vips() -> None:
    from pykeep.config.model import IPAddressSpec, VrrpInstance

    vip = IPAddressSpec(address=ipaddress.ip_interface("10.0.0.1/32"))
    inst = VrrpInstance(name="VI_1", virtual_router_id=1, virtual_ipaddress=(vip,))
    cfg = replace(config(ha_suspend=True), vrrp_instances=(inst,))
    seen: list[tuple[str, bool, set[object]]] = []

    class Vrrp:
        state = "BACKUP"

        def states(self) -> dict[str, str]:
            return {"VI_1": self.state}

    class Probe(lvs.LvsService):
        def vrrp_state(self, name: str, master: bool, addrs: Collection[IPAddress]) -> None:
            seen.append((name, master, set(addrs)))

    async def main() -> None:
        vrrp = Vrrp()
        async with trio.open_nursery() as n:
            await n.start(lvs.follow_vrrp, Probe(cfg, FakeKernel()), vrrp, lambda: cfg)
            await trio.sleep(1)
            vrrp.state = "MASTER"
            await trio.sleep(1)
            n.cancel_scope.cancel()

    run(main)
    assert seen == [("VI_1", False, set()), ("VI_1", True, {IP("10.0.0.1")})]


def test_kernel_is_opened_and_used_on_one_thread_only() -> None:
    """pyroute2 binds its transport to a thread: open and every call share one."""
    import threading

    threads: set[int] = set()

    class ThreadKernel(FakeKernel):
        def read(self, with_stats: bool = False) -> Table:
            threads.add(threading.get_ident())
            return super().read(with_stats)

        def apply(self, ops: Collection[Op]) -> None:
            threads.add(threading.get_ident())
            super().apply(ops)

        def close(self) -> None:
            threads.add(threading.get_ident())

    def opener() -> FakeKernel:
        threads.add(threading.get_ident())
        return ThreadKernel()

    Switch.up = {"10.0.1.1"}

    async def main() -> None:
        svc = lvs.LvsService(config(), open_kernel=opener)
        async with trio.open_nursery() as n:
            await started(svc, n)
            assert isinstance(svc.kernel, ThreadKernel)
            assert set(svc.kernel.weights()) == {"10.0.1.1:80"}
            n.cancel_scope.cancel()

    run(main)
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_kernel_that_fails_to_open_leaves_an_inert_service() -> None:
    def opener() -> FakeKernel:
        raise RuntimeError("the kernel has no IPVS")

    async def main() -> None:
        svc = lvs.LvsService(config(), open_kernel=opener)
        async with trio.open_nursery() as n:
            await n.start(svc.run)
            await svc.reload(config())
            await svc.set_drained(DrainSet().add("10.0.0.1:80", "10.0.1.1"))
            assert len(svc.virtual_servers()) == 1

    run(main)


def test_notify_and_quorum_scripts_run_without_blocking(tmp_path: Path) -> None:
    """rs notify_down and the virtual server's quorum_down run through pykeep.scripts."""
    from pykeep.config.model import Script

    out = tmp_path / "events"

    def script(word: str) -> Script:
        return Script(argv=("/bin/sh", "-c", f"echo {word} >> {out}"))

    cfg = config((1, 1, 1), quorum=3, quorum_down=script("quorum_down"))
    vs = cfg.virtual_servers[0]
    rs2 = replace(vs.real_servers[1], notify_down=script("rs2_down"))
    cfg = replace(cfg, virtual_servers=(replace(vs, real_servers=(vs.real_servers[0], rs2)),))
    Switch.up = {"10.0.1.1", "10.0.1.2"}

    async def main() -> None:
        svc = lvs.LvsService(cfg, FakeKernel())
        async with trio.open_nursery() as n:
            await n.start(svc.run)
            await trio.sleep(1.5)  # bootstrap; both up, quorum (2 of 2) up
            Switch.up.discard("10.0.1.2")
            with trio.fail_after(20):
                while len(out.read_text().split() if out.exists() else []) < 2:
                    await trio.sleep(0.1)
            n.cancel_scope.cancel()

    trio.run(main)
    assert sorted(out.read_text().split()) == ["quorum_down", "rs2_down"]


def test_dont_release_ipvs_leaves_the_table_on_stop() -> None:
    """``-I``/``--dont-release-ipvs``: check_daemon.c skips clear_services on stop."""
    Switch.up = {"10.0.1.1", "10.0.1.2", "10.0.1.3"}
    k = FakeKernel()

    async def main() -> None:
        svc = lvs.LvsService(config(), k, release_on_stop=False)
        async with trio.open_nursery() as n:
            await started(svc, n)
            before = k.weights()
            assert len(before) == 3
            await svc.shutdown()
            assert k.weights() == before
            n.cancel_scope.cancel()

    run(main)


def test_lvs_notify_fifo_gets_keepalived_lines(tmp_path: Path) -> None:
    """ipwrapper.c notify_fifo_rs / notify_fifo_vs: ``RS <rs> <vs> UP|DOWN`` on each real
    server change and ``VS <vs> UP|DOWN`` on each quorum change, to lvs_notify_fifo and
    to notify_fifo alike."""
    from pykeep.config.model import GlobalDefs

    lvs_fifo, fifo = tmp_path / "lvs.fifo", tmp_path / "all.fifo"
    lvs_fifo.write_text("")
    fifo.write_text("")
    g = GlobalDefs(lvs_notify_fifo=Script((str(lvs_fifo),)), notify_fifo=Script((str(fifo),)))
    cfg = replace(config((1, 1, 1), quorum=2), global_defs=g)
    Switch.up = {"10.0.1.1", "10.0.1.2", "10.0.1.3"}
    k = FakeKernel()

    async def main() -> None:
        svc = lvs.LvsService(cfg, k)
        async with trio.open_nursery() as n:
            await started(svc, n)
            for change in ("-10.0.1.2", "-10.0.1.3", "+10.0.1.3"):
                (Switch.up.add if change[0] == "+" else Switch.up.discard)(change[1:])
                await trio.sleep(5)
            n.cancel_scope.cancel()

    run(main)
    want = [
        "VS [10.0.0.1]:tcp:80 UP",  # quorum at start: "Gained quorum" (update_quorum_state init)
        "RS [10.0.1.2]:tcp:80 [10.0.0.1]:tcp:80 DOWN",
        "RS [10.0.1.3]:tcp:80 [10.0.0.1]:tcp:80 DOWN",
        "VS [10.0.0.1]:tcp:80 DOWN",
        "RS [10.0.1.3]:tcp:80 [10.0.0.1]:tcp:80 UP",
        "VS [10.0.0.1]:tcp:80 UP",
    ]
    assert lvs_fifo.read_text().splitlines() == want
    assert fifo.read_text().splitlines() == want


def test_start_and_reload_log_the_checkers_not_the_initial_table() -> None:
    """keepalived's checker start-up lines: one per checker, none per initial command."""
    from structlog.testing import capture_logs

    Switch.up = {"10.0.1.1", "10.0.1.2", "10.0.1.3"}
    k = FakeKernel()

    async def main() -> None:
        svc = lvs.LvsService(config(), k)
        async with trio.open_nursery() as n:
            with capture_logs() as start:
                await n.start(svc.run)
            with capture_logs() as reload:
                await svc.reload(config())
            n.cancel_scope.cancel()
        each = [
            f"Activating healthchecker for service [10.0.1.{i}]:tcp:80 for VS [10.0.0.1]:tcp:80"
            for i in (1, 2, 3)
        ]
        for logged in (start, reload):
            events = [e["event"] for e in logged]
            activated = [e for e in events if "ctivating" in e]
            assert activated == [*each, "Activating BFD healthchecker"]
            assert not [e for e in events if e.startswith("Adding")], events
        # The service and its three servers went in all the same (then out, at the stop).
        assert [o.kind for o in k.ops[:4]] == [OpKind.ADD_SERVICE, *[OpKind.ADD_DEST] * 3]

    run(main)
