"""Minimal IPVS operations, table-driven (keepalived ipwrapper.c clear_diff_* / update_svr_wgt)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvs.desired import desired_table
from ipvs.diff import OpKind, apply_ops, diff
from ipvs.table import Dest, DestKey, Proto, Service, ServiceEntry, ServiceKey, Table, copy_table
from pykeep.config.model import Config, RealServer, VirtualServer

IP = ipaddress.ip_address
S1 = ServiceKey.inet(IP("10.0.0.1"), 80, Proto.TCP)
S2 = ServiceKey.mark(7)
D1, D2 = DestKey("10.0.1.1", 80), DestKey("10.0.1.2", 80)


def t(**svcs: dict[DestKey, int]) -> Table:
    keys = {"s1": S1, "s2": S2}
    return {
        keys[k]: ServiceEntry(Service("rr"), {d: Dest(weight=w) for d, w in v.items()})
        for k, v in svcs.items()
    }


CASES = [
    ("unchanged reload: zero ops", t(s1={D1: 1}), t(s1={D1: 1}), []),
    (
        "update_svr_wgt: weight change is one EDIT",
        t(s1={D1: 1, D2: 1}),
        t(s1={D1: 1, D2: 5}),
        [OpKind.EDIT_DEST],
    ),
    (
        "new service: ADD then its dests",
        {},
        t(s1={D1: 1, D2: 1}),
        [OpKind.ADD_SERVICE, OpKind.ADD_DEST, OpKind.ADD_DEST],
    ),
    (
        "clear_diff_rs: removed server is one DEL_DEST",
        t(s1={D1: 1, D2: 1}),
        t(s1={D1: 1}),
        [OpKind.DEL_DEST],
    ),
    (
        "clear_diff_vs: removed service is one DEL (dests go with it)",
        t(s1={D1: 1}, s2={D1: 1}),
        t(s1={D1: 1}),
        [OpKind.DEL_SERVICE],
    ),
    (
        "mixed: del before edit before add",
        t(s1={D1: 1}),
        t(s1={D2: 1}, s2={}),
        [OpKind.ADD_SERVICE, OpKind.DEL_DEST, OpKind.ADD_DEST],
    ),
]


@pytest.mark.parametrize(("name", "cur", "want", "kinds"), CASES, ids=[c[0] for c in CASES])
def test_diff_kinds(name: str, cur: Table, want: Table, kinds: list[OpKind]) -> None:
    ops = diff(cur, want)
    assert [o.kind for o in ops] == kinds
    got = copy_table(cur)
    apply_ops(got, ops)
    assert got == want


def test_service_setting_change_is_edit_service() -> None:
    """ipwrapper.c clear_diff_services: a changed scheduler edits the service in place."""
    cur = t(s1={D1: 1})
    want = copy_table(cur)
    want[S1].service = replace(want[S1].service, sched="wlc", timeout=360, flags=1)
    assert [o.kind for o in diff(cur, want)] == [OpKind.EDIT_SERVICE]


def test_fwd_method_change_is_edit_dest() -> None:
    cur = t(s1={D1: 1})
    want = copy_table(cur)
    want[S1].dests[D1] = Dest(fwd=3, weight=1)
    assert [o.kind for o in diff(cur, want)] == [OpKind.EDIT_DEST]


def test_foreign_services_survive_unless_flush() -> None:
    """keepalived leaves services it did not create alone unless lvs_flush."""
    cur = t(s1={D1: 1}, s2={D1: 1})
    assert diff(cur, t(s1={D1: 1}), owned=set()) == []
    assert [o.kind for o in diff(cur, t(s1={D1: 1}), owned={S2})] == [OpKind.DEL_SERVICE]


def test_config_reload_weight_change_single_edit() -> None:
    """A reload of a config where one weight changed: exactly one EDIT_DEST."""
    servers = tuple(RealServer(address=IP(f"10.0.1.{i}"), port=80, weight=1) for i in range(1, 6))
    cfg = Config(
        virtual_servers=(VirtualServer(address=IP("10.0.0.1"), port=80, real_servers=servers),)
    )
    before = desired_table(cfg)
    assert diff(before, desired_table(cfg)) == []
    servers2 = (*servers[:2], replace(servers[2], weight=9), *servers[3:])
    cfg2 = Config(virtual_servers=(replace(cfg.virtual_servers[0], real_servers=servers2),))
    ops = diff(before, desired_table(cfg2))
    assert len(ops) == 1 and ops[0].kind is OpKind.EDIT_DEST and ops[0].dest is not None
    assert ops[0].dest.weight == 9


def _tables() -> st.SearchStrategy[Table]:
    dkeys = st.sampled_from([DestKey(f"10.0.1.{i}", p) for i in range(1, 5) for p in (80, 81)])
    skeys = st.sampled_from(
        [ServiceKey.inet(IP(f"10.0.0.{i}"), 80, Proto.TCP) for i in range(1, 4)]
        + [ServiceKey.mark(m) for m in (1, 2)]
    )
    dest = st.builds(Dest, fwd=st.sampled_from([0, 2, 3]), weight=st.integers(0, 3))
    svc = st.builds(
        Service, sched=st.sampled_from(["rr", "wlc"]), timeout=st.sampled_from([0, 360])
    )
    entry = st.builds(ServiceEntry, svc, st.dictionaries(dkeys, dest, max_size=4))
    return st.dictionaries(skeys, entry, max_size=4)


@settings(max_examples=200, deadline=None)
@given(_tables(), _tables())
def test_diff_reaches_target_minimally(cur: Table, want: Table) -> None:
    ops = diff(cur, want)
    got = copy_table(cur)
    apply_ops(got, ops)
    assert got == want
    # minimal: never both delete and add the same dest, and nothing touches an equal pair
    touched = {(o.skey, o.dkey) for o in ops if o.dkey is not None}
    assert len(touched) == sum(1 for o in ops if o.dkey is not None)
    assert diff(got, want) == []
