"""One real server's change costs that server, not its pool, and decides the same.

keepalived handles a checker's verdict with one IPVS command for that server
and a quorum judged on a running weight sum (check/ipwrapper.c
``update_svr_checker_state``, ``perform_svr_state``, ``update_quorum_state``).
The reconciler does the same when nothing else in the pool can move
(``Reconciler._change_one``) and re-decides the pool otherwise.  Random pools
and random results go through a reconciler with that shortcut and one without
it: every event must send the same operations and leave the same tables.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Collection, Iterable

import pytest

from ipvs.diff import Op
from ipvs.policy import rs_key
from ipvs.service import Reconciler
from pykeep.config.model import (
    CheckerCommon,
    Config,
    LbKind,
    RealServer,
    Script,
    TcpCheck,
    VirtualServer,
    VirtualServerGroup,
    VsgEntry,
)
from pykeep.lvs import DrainingReconciler, op_event
from pykeep.ops.drain import DrainSet
from tests.test_ipvs_service import FakeKernel

IP = ipaddress.ip_address


class RefusingKernel(FakeKernel):
    """Refuses the next batch when told to, applying none of it."""

    refuse = False

    def apply(self, ops: Collection[Op]) -> None:
        if self.refuse:
            self.refuse = False
            raise RuntimeError("IPVS refused 1 request(s): add-dest: File exists")
        super().apply(ops)


def _server(rnd: random.Random, addresses: list[str]) -> RealServer:
    alpha_check = TcpCheck(common=CheckerCommon(alpha=rnd.choice([None, None, True, False])))
    return RealServer(
        address=IP(rnd.choice(addresses)),
        port=rnd.choice([80, 80, 8080, 8081]),
        weight=rnd.choice([0, 1, 1, 2, 3, 5]),
        lb_kind=rnd.choice([None, None, None, LbKind.DR, LbKind.NAT]),
        inhibit_on_failure=rnd.choice([None, None, True, False]),
        alpha=rnd.choice([None, None, True, False]),
        checkers=rnd.choice([(TcpCheck(),), (TcpCheck(),), (alpha_check,), ()]),
    )


def _script(name: str) -> Script:
    return Script((f"/bin/{name}",))


def random_config(rnd: random.Random) -> tuple[Config, DrainSet]:
    """A few virtual servers with random pools, quorum, sorry servers and drains."""
    groups: list[VirtualServerGroup] = []
    vss: list[VirtualServer] = []
    drained = DrainSet()
    for i in range(rnd.randint(1, 3)):
        pool_addrs = [f"10.0.{i + 1}.{n}" for n in range(1, rnd.randint(2, 6))]
        if rnd.random() < 0.2:
            pool_addrs.append(f"fd00::{i + 1}")
        pool = tuple(_server(rnd, pool_addrs) for _ in range(rnd.randint(1, 8)))
        shape = rnd.choice(["inet", "inet", "inet", "fwmark", "group", "twin"])
        where: dict[str, object]
        if shape == "fwmark":
            where = {"fwmark": 10 + i}
            spec = f"fwmark {10 + i}"
        elif shape == "group":
            name = f"g{i}"
            entries = [VsgEntry(IP(f"10.0.20{i}.1"), IP(f"10.0.20{i}.2"), 80)]
            if rnd.random() < 0.5:
                entries.append(VsgEntry(fwmark=100 + i))
            groups.append(VirtualServerGroup(name, tuple(entries)))
            where = {"group": name}
            spec = f"group {name}"
        elif shape == "twin" and vss and vss[-1].address is not None:
            # a second virtual server on the same service: merged, never the shortcut
            where = {"address": vss[-1].address, "port": vss[-1].port}
            spec = f"{vss[-1].address}:{vss[-1].port}/tcp"
        else:
            where = {"address": IP(f"10.0.0.{i + 1}"), "port": 80}
            spec = f"10.0.0.{i + 1}:80/tcp"
        total = sum(r.weight for r in pool)
        sorry = None
        if rnd.random() < 0.4:
            twin = rnd.choice(pool)  # the sorry server is often also a real server
            sorry = RealServer(
                address=twin.address if rnd.random() < 0.6 else IP("10.0.9.9"),
                port=rnd.choice([twin.port, 80, 8080]),
                weight=rnd.randint(0, 3),
                lb_kind=rnd.choice([None, LbKind.DR, LbKind.NAT]),
            )
        vs = VirtualServer(
            **where,  # type: ignore[arg-type]
            lb_kind=rnd.choice([LbKind.NAT, LbKind.DR]),
            real_servers=pool,
            quorum=rnd.randint(0, total + 2),
            hysteresis=rnd.choice([0, 0, 1, 2, 3]),
            inhibit_on_failure=rnd.random() < 0.3,
            alpha=rnd.random() < 0.2,
            omega=rnd.random() < 0.2,
            sorry_server=sorry,
            sorry_server_inhibit=rnd.random() < 0.5,
            quorum_up=_script(f"up{i}") if rnd.random() < 0.5 else None,
            quorum_down=_script(f"down{i}") if rnd.random() < 0.5 else None,
        )
        vss.append(vs)
        if rnd.random() < 0.3:
            rs = rnd.choice(pool)
            host = f"[{rs.address}]" if rs.address.version == 6 else str(rs.address)
            drained = drained.add(spec, f"{host}:{rs.port}")
    return Config(virtual_server_groups=tuple(groups), virtual_servers=tuple(vss)), drained


def _pair(cfg: Config, drained: DrainSet) -> tuple[Reconciler, Reconciler]:
    if drained.pairs:
        return (
            DrainingReconciler(cfg, RefusingKernel(), drained=drained),
            DrainingReconciler(cfg, RefusingKernel(), drained=drained, incremental=False),
        )
    return Reconciler(cfg, RefusingKernel()), Reconciler(cfg, RefusingKernel(), incremental=False)


def _outcome(r: Reconciler, call: str, *args: object) -> tuple[list[tuple[Op, object]], str]:
    try:
        ops = getattr(r, call)(*args)
    except RuntimeError as e:
        return [], str(e)
    return [(op, op.was) for op in ops], ""


def _same_state(a: Reconciler, b: Reconciler, where: str) -> None:
    ka, kb = a.kernel, b.kernel
    assert isinstance(ka, FakeKernel) and isinstance(kb, FakeKernel)
    assert ka.table == kb.table, where
    assert a.applied == b.applied == ka.table, where  # applied, updated in place, is the kernel's
    assert a.quorum == b.quorum, where
    assert a.health == b.health, where
    assert a.shared == b.shared, where
    assert a.pending_scripts == b.pending_scripts, where
    if isinstance(a, DrainingReconciler) and isinstance(b, DrainingReconciler):
        assert a.quorum_events == b.quorum_events, where


def test_one_servers_change_decides_as_the_whole_pool_would() -> None:
    """Random configurations, 60 events each, shortcut against the full path."""
    shortcut, changes = drive(range(SEEDS))
    # the comparison means something only if both paths ran, many times
    assert shortcut > changes // 8, (shortcut, changes)  # about a quarter here
    assert shortcut < changes, (shortcut, changes)


SEEDS = 80


def drive(seeds: Iterable[int], steps: int = 60) -> tuple[int, int]:
    """Each seed's configuration and events through both reconcilers, compared at every step.

    Returns how many changes took the shortcut, and how many changes there were.
    """
    shortcut = changes = 0
    for seed in seeds:
        rnd = random.Random(seed)
        cfg, drained = random_config(rnd)
        fast, full = _pair(cfg, drained)
        taken: list[str] = []
        change_one = fast._change_one

        def counted(
            *args: object, _inner: object = change_one, _taken: list[str] = taken
        ) -> list[Op] | None:
            ops = _inner(*args)  # type: ignore[operator]
            if ops is not None:
                _taken.append("fast")
            return ops  # type: ignore[no-any-return]

        fast._change_one = counted  # type: ignore[method-assign,assignment]
        where = f"seed {seed} at start"
        assert _outcome(fast, "start") == _outcome(full, "start"), where
        _same_state(fast, full, where)
        keys = [rs_key(v, r) for v in cfg.virtual_servers for r in v.real_servers]
        keys.append("10.0.0.9:tcp:80/10.0.1.1:80")  # a server no configuration names
        for step in range(steps):
            roll = rnd.random()
            if roll < 0.03:
                for r in (fast, full):
                    assert isinstance(r.kernel, RefusingKernel)
                    r.kernel.refuse = True
                call: tuple[object, ...] = ("transition", rnd.choice(keys), False)
            elif roll < 0.06:
                call = ("reload", cfg)
            else:
                key = rnd.choice(keys)
                h = fast.health.get(key)
                up = (not h.alive) if h is not None and rnd.random() < 0.7 else rnd.random() < 0.5
                weight = rnd.choice([None, None, None, 0, 1, 4, 7, 70000])
                call = ("transition", key, up, weight)
                changes += 1
            where = f"seed {seed} step {step}: {call}"
            before = len(taken)
            assert _outcome(fast, *call) == _outcome(full, *call), where  # type: ignore[arg-type]
            _same_state(fast, full, where)
            shortcut += len(taken) - before
    return shortcut, changes


def _big_pool(n: int, **kw: object) -> Config:
    pool = tuple(
        RealServer(
            address=IP(f"10.1.{i // 250}.{i % 250 + 1}"), port=80, weight=2, checkers=(TcpCheck(),)
        )
        for i in range(n)
    )
    vs = VirtualServer(address=IP("10.0.0.1"), port=80, real_servers=pool, **kw)  # type: ignore[arg-type]
    return Config(virtual_servers=(vs,))


def test_a_change_neither_re_decides_the_pool_nor_copies_the_table() -> None:
    """A failure that keeps quorum is one command; the one that loses it re-decides."""
    cfg = _big_pool(400, quorum=400, inhibit_on_failure=True)  # quorum holds while half live
    r = Reconciler(cfg, FakeKernel())
    r.start()
    decided: list[int] = []
    decisions = r._decisions

    def counting(only: Collection[VirtualServer] | None = None) -> dict[str, object]:
        decided.append(len(only) if only is not None else -1)
        return decisions(only)  # type: ignore[return-value]

    r._decisions = counting  # type: ignore[method-assign,assignment]
    table = r.applied
    entry = next(iter(table.values()))
    vs = cfg.virtual_servers[0]
    keys = [rs_key(vs, rs) for rs in vs.real_servers]
    for key in keys[:200]:
        ops = r.transition(key, False)
        assert [(o.kind.value, o.dest and o.dest.weight) for o in ops] == [("edit-dest", 0)]
    assert decided == [] and r.applied is table and next(iter(table.values())) is entry
    assert r.quorum[vs.key] and sum(d.weight for d in entry.dests.values()) == 400
    r.transition(keys[200], False)  # 398 < 400: quorum lost, the full path
    assert decided == [1] and not r.quorum[vs.key]


def test_a_disabled_server_is_logged_as_disabled() -> None:
    """The log line compares with the weight before the change (ipwrapper.c
    ``perform_svr_state``), though the table it was copied from changed in place."""
    cfg = _big_pool(3, inhibit_on_failure=True)
    r = Reconciler(cfg, FakeKernel())
    r.start()
    vs = cfg.virtual_servers[0]
    before = dict(r.applied)  # as the service keeps it for its log lines
    (op,) = r.transition(rs_key(vs, vs.real_servers[1]), False)
    assert op_event(op, before) == "Disabling service [10.1.0.2]:tcp:80 from VS [10.0.0.1]:tcp:80"
    before = dict(r.applied)
    (op,) = r.transition(rs_key(vs, vs.real_servers[1]), True)
    assert op_event(op, before) == "Enabling service [10.1.0.2]:tcp:80 to VS [10.0.0.1]:tcp:80"


@pytest.mark.parametrize("weight", [None, 9])
def test_a_changed_weight_is_one_edit(weight: int | None) -> None:
    """MISC_CHECK's dynamic weight moves the running sum, and a drained server stays at 0."""
    cfg = _big_pool(3, quorum=5)
    vs = cfg.virtual_servers[0]
    drained = DrainSet().add("10.0.0.1:80/tcp", "10.1.0.3:80")
    r = DrainingReconciler(cfg, FakeKernel(), drained=drained)
    r.start()
    ops = r.transition(rs_key(vs, vs.real_servers[0]), True, 7)
    assert [(o.kind.value, o.dest and o.dest.weight) for o in ops] == [("edit-dest", 7)]
    assert r._live[vs.key][1] == 7 + 2 + 2
    assert r.transition(rs_key(vs, vs.real_servers[2]), True, weight) == []  # drained: 0 still


def test_a_sorry_server_on_a_real_servers_address_follows_it() -> None:
    """With ``sorry_server_inhibit`` the idle sorry server is held at weight 0
    unless a live real server has its address and port (check_data.c
    ``s_svr_duplicates_rs``), whatever their forwarding: that server's change
    moves the sorry server too, so it re-decides the pool."""
    a = RealServer(IP("10.0.1.1"), 8080, weight=1, lb_kind=LbKind.NAT, checkers=(TcpCheck(),))
    b = RealServer(IP("10.0.1.2"), 80, weight=1, checkers=(TcpCheck(),))
    vs = VirtualServer(
        address=IP("10.0.0.1"),
        port=80,
        lb_kind=LbKind.DR,  # the sorry server's destination takes the service's port
        real_servers=(a, b),
        sorry_server=RealServer(IP("10.0.1.1"), 8080, weight=2),
        sorry_server_inhibit=True,
    )
    cfg = Config(virtual_servers=(vs,))
    fast, full = _pair(cfg, DrainSet())
    assert _outcome(fast, "start") == _outcome(full, "start")
    for up in (False, True, False):
        ops = _outcome(fast, "transition", rs_key(vs, a), up)
        assert ops == _outcome(full, "transition", rs_key(vs, a), up)
        _same_state(fast, full, f"a up={up}")
        (entry,) = fast.applied.values()
        sorry_here = any(d.port == 80 and d.address == "10.0.1.1" for d in entry.dests)
        assert sorry_here is not up  # at weight 0 while a is out
