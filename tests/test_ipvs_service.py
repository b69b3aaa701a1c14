"""The reconciler against an in-memory kernel: what reaches netlink, event by event."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import replace

import pytest
import trio

from ipvs.diff import Op, OpKind, apply_ops
from ipvs.policy import RsHealth, rs_key
from ipvs.service import Reconciler, run
from ipvs.table import Proto, Service, ServiceEntry, ServiceKey, Table, copy_table
from pykeep.config.model import (
    Config,
    GlobalDefs,
    LvsSyncDaemon,
    RealServer,
    Script,
    TcpCheck,
    VirtualServer,
)

IP = ipaddress.ip_address


class FakeKernel:
    """Applies ops to a table, as the kernel would, and records every call."""

    def __init__(self, table: Table | None = None) -> None:
        self.table: Table = table or {}
        self.ops: list[Op] = []
        self.calls: list[str] = []

    def read(self, with_stats: bool = False) -> Table:
        return copy_table(self.table)

    def apply(self, ops: Collection[Op]) -> None:
        apply_ops(self.table, list(ops))
        self.ops.extend(ops)

    def flush(self) -> None:
        self.table.clear()
        self.calls.append("flush")

    def start_sync_daemon(self, d: LvsSyncDaemon, master: bool) -> None:
        self.calls.append(f"start {'master' if master else 'backup'} {d.interface}")

    def stop_sync_daemon(self, master: bool) -> None:
        self.calls.append(f"stop {'master' if master else 'backup'}")


def servers(*weights: int) -> tuple[RealServer, ...]:
    return tuple(
        RealServer(address=IP(f"10.0.1.{i + 1}"), port=80, weight=w, checkers=(TcpCheck(),))
        for i, w in enumerate(weights)
    )


def config(*weights: int, **kw: object) -> Config:
    g = kw.pop("global_defs", GlobalDefs())
    v = VirtualServer(address=IP("10.0.0.1"), port=80, real_servers=servers(*weights), **kw)  # type: ignore[arg-type]
    return Config(global_defs=g, virtual_servers=(v,))  # type: ignore[arg-type]


def kinds(ops: list[Op]) -> list[str]:
    return [o.kind.value for o in ops]


def test_start_then_restart_adopts_with_zero_ops() -> None:
    k = FakeKernel()
    assert kinds(Reconciler(config(1, 2), k).start()) == ["add-service", "add-dest", "add-dest"]
    assert Reconciler(config(1, 2), k).start() == []


def test_start_fixes_drift_and_leaves_foreign_services() -> None:
    foreign = ServiceKey.inet(IP("10.9.9.9"), 80, Proto.TCP)
    k = FakeKernel({foreign: ServiceEntry(Service("rr"))})
    Reconciler(config(1, 2), k).start()
    mine = ServiceKey.inet(IP("10.0.0.1"), 80, Proto.TCP)
    k.table[mine].service = replace(k.table[mine].service, sched="rr")  # someone ran ipvsadm -E
    assert kinds(Reconciler(config(1, 2), k).start()) == ["edit-service"]
    assert foreign in k.table


def test_lvs_flush_removes_everything_first() -> None:
    foreign = ServiceKey.inet(IP("10.9.9.9"), 80, Proto.TCP)
    k = FakeKernel({foreign: ServiceEntry(Service("rr"))})
    Reconciler(config(1, global_defs=GlobalDefs(lvs_flush=True)), k).start()
    assert k.calls == ["flush"] and foreign not in k.table


def test_transitions_and_reload_keep_health() -> None:
    """check_daemon.c migrate_checkers: a reload keeps what the checkers found."""
    k = FakeKernel()
    cfg = config(1, 2, 3)
    r = Reconciler(cfg, k)
    r.start()
    v = cfg.virtual_servers[0]
    down = rs_key(v, v.real_servers[1])
    assert kinds(r.transition(down, False)) == ["del-dest"]
    assert r.transition(down, False) == []
    assert r.reload(config(1, 2, 3)) == []  # still down after reload
    ops = r.reload(config(1, 2, 7))
    assert kinds(ops) == ["edit-dest"] and ops[0].dest is not None and ops[0].dest.weight == 7
    assert kinds(r.transition(down, True, 9)) == ["add-dest"]  # misc_dynamic weight


def test_reload_lets_the_previous_virtual_servers_go() -> None:
    """rs_key's layout cache must not keep a replaced configuration alive: with
    10,000 real servers every reload would otherwise hold another copy."""
    from ipvs import policy

    old = config(1, 2, 3)
    r = Reconciler(old, FakeKernel())
    r.start()
    assert any(vs is old.virtual_servers[0] for vs, _ in policy._LAYOUTS.values())
    new = config(1, 2, 3)
    assert r.reload(new) == []
    assert not any(vs is old.virtual_servers[0] for vs, _ in policy._LAYOUTS.values())


def test_a_result_that_changes_nothing_syncs_nothing() -> None:
    """A first check confirming the start-up assumption, or a repeated result,
    neither sends anything nor re-decides the pool: at start every server
    reports once, and a re-decided pool per result made start-up quadratic."""
    cfg = config(1, 2, 3)
    r = Reconciler(cfg, FakeKernel())
    r.start()
    synced: list[str] = []
    sync_one = r._sync_one

    def counting(vs: VirtualServer, services: frozenset[ServiceKey]) -> list[Op]:
        synced.append(vs.key)
        return sync_one(vs, services)

    r._sync_one = counting  # type: ignore[method-assign]
    changed: list[str] = []
    change_one = r._change_one

    def counting_one(
        vs: VirtualServer,
        services: frozenset[ServiceKey],
        key: str,
        was: RsHealth | None,
        now: RsHealth,
    ) -> list[Op] | None:
        changed.append(key)
        return change_one(vs, services, key, was, now)

    r._change_one = counting_one  # type: ignore[method-assign]
    v = cfg.virtual_servers[0]
    keys = [rs_key(v, rs) for rs in v.real_servers]
    assert all(r.transition(k, True) == [] for k in keys)  # alive, as assumed
    assert synced == [] and changed == []
    assert kinds(r.transition(keys[1], False)) == ["del-dest"]
    assert r.transition(keys[1], False) == []  # the same again
    assert changed == [keys[1]] and synced == []  # one server's change, not its pool


def test_reload_removes_dropped_virtual_server() -> None:
    k = FakeKernel()
    r = Reconciler(config(1), k)
    r.start()
    assert kinds(r.reload(Config())) == ["del-service"]
    assert k.table == {}


def test_quorum_scripts_are_queued() -> None:
    up, down = Script(("/bin/up",)), Script(("/bin/down",))
    cfg = config(2, 2, quorum=3, quorum_up=up, quorum_down=down)
    r = Reconciler(cfg, FakeKernel())
    r.start()
    assert r.pending_scripts == [up]
    v = cfg.virtual_servers[0]
    r.transition(rs_key(v, v.real_servers[0]), False)
    assert r.pending_scripts == [up, down]


def test_ha_suspend_ignores_checkers_without_vip() -> None:
    """check_api.c update_checker_activity: no VIP, no checker results."""
    cfg = config(1, 1, ha_suspend=True)
    r = Reconciler(cfg, FakeKernel())
    r.start()
    v = cfg.virtual_servers[0]
    key = rs_key(v, v.real_servers[0])
    assert r.transition(key, False) == []
    r.vrrp_state("VI_1", True, [IP("10.0.0.1")])
    assert kinds(r.transition(key, False)) == ["del-dest"]


def test_sync_daemon_follows_vrrp_and_stops() -> None:
    g = GlobalDefs(lvs_sync_daemon=LvsSyncDaemon("eth0", "VI_1", sync_id=5))
    k = FakeKernel()
    r = Reconciler(config(1, global_defs=g), k)
    r.start()
    r.vrrp_state("VI_2", True, [])
    r.vrrp_state("VI_1", False, [])
    r.vrrp_state("VI_1", True, [])
    r.vrrp_state("VI_1", True, [])
    r.stop()
    assert k.calls == ["start backup eth0", "stop backup", "start master eth0", "stop master"]


def test_stop_removes_ours_or_flushes() -> None:
    foreign = ServiceKey.inet(IP("10.9.9.9"), 80, Proto.TCP)
    k = FakeKernel({foreign: ServiceEntry(Service("rr"))})
    r = Reconciler(config(1), k)
    r.start()
    r.stop()
    assert list(k.table) == [foreign]
    r2 = Reconciler(config(1, global_defs=GlobalDefs(lvs_flush_on_stop=True)), k)
    r2.start()
    r2.stop()
    assert k.table == {} and k.calls[-1] == "flush"


def test_omega_runs_down_scripts_on_stop() -> None:
    down = Script(("/bin/down",))
    r = Reconciler(config(1, omega=True, quorum_down=down), FakeKernel())
    r.start()
    r.pending_scripts.clear()
    r.stop()
    assert r.pending_scripts == [down]


def test_trio_shell_feeds_transitions_and_cleans_up() -> None:
    cfg = config(1, 1)
    v = cfg.virtual_servers[0]
    k = FakeKernel()
    seen: list[OpKind] = []

    async def on_ops(ops: list[Op]) -> None:
        seen.extend(o.kind for o in ops)

    async def main() -> None:
        send, recv = trio.open_memory_channel[tuple[str, bool, int | None]](10)
        r = Reconciler(cfg, k)
        async with trio.open_nursery() as n:
            n.start_soon(run, r, recv, on_ops)
            await send.send((rs_key(v, v.real_servers[0]), False, None))
            await send.aclose()

    trio.run(main)
    assert seen == [OpKind.DEL_DEST]
    assert k.table == {}  # stopped: our service removed


def test_refused_ops_resync_from_kernel() -> None:
    """After a refused batch the reconciler trusts the kernel, so the next event repairs."""
    from ipvs.netlink import IpvsError

    class Refusing(FakeKernel):
        refuse = True

        def apply(self, ops: Collection[Op]) -> None:
            if self.refuse:
                self.refuse = False
                raise IpvsError(["add-dest: File exists"])
            super().apply(ops)

    k = Refusing()
    cfg = config(1, 1)
    r = Reconciler(cfg, k)
    with pytest.raises(IpvsError, match="refused 1 request"):
        r.start()
    assert r.applied == {}
    v = cfg.virtual_servers[0]
    r.transition(rs_key(v, v.real_servers[0]), True)
    assert len(k.table) == 1 and len(next(iter(k.table.values())).dests) == 2
