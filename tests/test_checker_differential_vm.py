"""The runtime checker differential (issue 12, "Runtime too"): keepalived -C vs pykeep -C.

The run itself is ``make differential-vm`` (``python -m tests.differential_vm``:
200 generated cases, one VM boot, about 15 minutes).  It is not part of the
shared VM boot of ``make test``: pykeep's start alone takes two to four
minutes of emulated CPU there, beyond what one part may cost.  Here: the pure
parts (the generator's independence of cases, the table split, the change
recorder, the verdict) and the two reconciler fixes the run led to.
"""

from __future__ import annotations

import random
from collections.abc import Collection

from ipvs.diff import Op, apply_ops
from ipvs.policy import decide, rs_key
from ipvs.service import Reconciler
from ipvs.table import ServiceKey, Table, copy_table
from pykeep.config import load_text
from pykeep.config.model import Config, VirtualServer
from sim.proc_ipvs import proc_entries
from tests.differential_vm import compare, generator

PROC = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0AC80001:0050 rr
  -> 0A63000A:1F41      Masq    3      0          0
  -> 0A63000B:1F42      Masq    0      0          0
FWM  000003EA wlc persistent 300
  -> 0A63000C:0000      Route   2      0          0
"""


def test_cases_are_reproducible_and_own_their_addresses() -> None:
    seen: dict[str, int] = {}
    for i in range(300):
        c = generator.case(7, i)
        assert c == generator.case(7, i)
        heads = [line.split()[1:] for line in c.text.splitlines() if "virtual_server " in line]
        assert heads, c.text
        for line in c.text.splitlines():
            words = line.split()
            if line.startswith("virtual_server ") and words[1] not in ("group", "fwmark"):
                spec = words[1]
            elif line.startswith(("virtual_server fwmark", "    fwmark")):
                spec = words[-1].rstrip("{").strip() if words[-1] != "{" else words[-2]
            elif line.startswith("    10.201."):
                spec = words[0].split("-")[0]
            else:
                continue
            assert generator.owner(spec) == i, (spec, i)
            assert seen.setdefault(spec, i) == i


def test_every_scheduler_kind_and_head_is_generated() -> None:
    text = "".join(generator.case(1, i).text for i in range(200))
    for s in generator.SCHEDULERS:
        assert f"lb_algo {s}\n" in text, s
    for word in (
        "lb_kind DR",
        "lb_kind TUN",
        "lb_kind NAT",
        "quorum",
        "hysteresis",
        "alpha",
        "omega",
        "sorry_server_inhibit",
        "inhibit_on_failure",
        "virtual_server_group",
        "fwmark",
        "persistence_granularity",
        "ops",
        "HTTP_GET",
        "TCP_CHECK",
        "MISC_CHECK",
        "misc_dynamic",
        "connect_port",
        "digest",
        "virtualhost",
    ):
        assert word in text, word


def test_targets_flap_and_end_in_their_final_state() -> None:
    behaviours = {t.behaviour for t in generator.TARGETS}
    assert behaviours == set(generator.BEHAVIOURS)
    for t in generator.TARGETS:
        states = [generator.phase_up(t, p) for p in range(4)]
        assert states[0] == generator.initial_up(t)
        final = t.behaviour in ("up", "flap_up")
        assert states[-1] == final
        assert (len(set(states)) == 2) == t.behaviour.startswith("flap")


def test_proc_table_and_ipvsadm_lines_split_by_case() -> None:
    entries = proc_entries(PROC)
    assert entries == {
        "TCP 10.200.0.1:80": "+",
        "TCP 10.200.0.1:80 -> 10.99.0.10:8001": "3",
        "TCP 10.200.0.1:80 -> 10.99.0.11:8002": "0",
        "FWM 1002": "+",
        "FWM 1002 -> 10.99.0.12:0": "2",
    }
    assert {compare.entry_case(k) for k in entries} == {0, 2}
    saved = "-A -t 10.200.0.1:80 -s rr\n-a -t 10.200.0.1:80 -r 10.99.0.10:8001 -m -w 3\n"
    saved += "-A -f 3005 -s wlc\n-A -t 10.201.1.3:80 -s rr\n-A -t 192.0.2.1:80 -s rr\n"
    assert compare.table_by_case(saved) == {
        0: ["-A -t 10.200.0.1:80 -s rr", "-a -t 10.200.0.1:80 -r 10.99.0.10:8001 -m -w 3"],
        5: ["-A -f 3005 -s wlc"],
        101: ["-A -t 10.201.1.3:80 -s rr"],
        -1: ["-A -t 192.0.2.1:80 -s rr"],
    }


def test_recorder_keeps_each_entrys_order_and_judge_finds_divergence() -> None:
    rs = "TCP 10.200.0.1:80 -> 10.99.0.10:8001"
    svc = "TCP 10.200.0.1:80"
    k, p = compare.Recorder(), compare.Recorder()
    for snap in ({svc: "+", rs: "1"}, {svc: "+", rs: "1"}, {svc: "+"}, {svc: "+", rs: "1"}):
        k.feed(snap)
    for snap in ({svc: "+", rs: "1"}, {svc: "+"}):
        p.feed(snap)
    assert k.sequences[rs] == ["-", "1", "-", "1"]
    line = "-A -t 10.200.0.1:80 -s rr\n"
    vs = compare.judge(
        [0],
        {"keepalived": line, "pykeep": line},
        {"keepalived": k.sequences, "pykeep": p.sequences},
    )
    assert vs[0].table_same and not vs[0].changes_same
    assert rs in vs[0].describe()
    same = compare.judge(
        [0], {"keepalived": line, "pykeep": ""}, {"keepalived": k.sequences, "pykeep": k.sequences}
    )
    assert not same[0].table_same and same[0].changes_same


class _Kernel:
    """Applies ops to a table as the kernel would."""

    def __init__(self) -> None:
        self.table: Table = {}

    def read(self, with_stats: bool = False) -> Table:
        return copy_table(self.table)

    def apply(self, ops: Collection[Op]) -> None:
        apply_ops(self.table, list(ops))

    def flush(self) -> None:
        self.table.clear()

    def start_sync_daemon(self, d: object, master: bool) -> None:
        raise OSError("no sync daemon here")

    def stop_sync_daemon(self, master: bool) -> None:
        pass


def _generated_config(count: int) -> Config:
    text = generator.merged([generator.case(1, i) for i in range(count)])
    return load_text(text, "gen.conf").config


def test_a_transition_resyncs_only_its_virtual_server_and_agrees_with_a_full_sync() -> None:
    """The differential's 200-server files made each check result cost the whole table.

    A transition now recomputes its own virtual server; the kernel must end
    up exactly where a full resync would put it, op for op.
    """

    class Full(Reconciler):
        def _index(self) -> dict[str, tuple[VirtualServer, frozenset[ServiceKey]]]:
            return {}

    cfg = _generated_config(30)
    ka, kb = _Kernel(), _Kernel()
    a, b = Reconciler(cfg, ka), Full(cfg, kb)
    a.start()
    b.start()
    keys = [rs_key(v, r) for v in cfg.virtual_servers for r in v.real_servers]
    rng = random.Random(5)
    for i in range(300):
        key, up, weight = rng.choice(keys), rng.random() < 0.5, rng.choice((None, None, 0, 3))
        ops_a, ops_b = a.transition(key, up, weight), b.transition(key, up, weight)
        assert [str(o) for o in ops_a] == [str(o) for o in ops_b], (i, key)
        assert ka.table == kb.table and a.quorum == b.quorum, (i, key)
    assert a.pending_scripts == b.pending_scripts


def test_weightless_pool_stays_on_its_sorry_server_as_keepalived() -> None:
    """quorum 1 over servers of weight 0: keepalived lowers quorum to 0 and hysteresis
    to UINT_MAX (check_data.c validate_check_config), so quorum is never gained and the
    sorry server keeps the pool (seen in the VM: keepalived's table for case 58).
    pykeep used to gain and lose quorum at every evaluation."""
    cfg = load_text(
        "virtual_server 10.9.0.1 80 {\n lb_algo rr\n lb_kind NAT\n"
        " sorry_server 10.9.1.30 80\n real_server 10.9.1.12 80 {\n  weight 0\n"
        "  TCP_CHECK {\n   connect_timeout 1\n  }\n }\n}\n",
        "w0.conf",
    ).config
    vs = cfg.virtual_servers[0]
    quorum: bool | None = None
    for _ in range(4):
        d = decide(vs, {}, quorum)
        quorum = d.quorum_up
        assert quorum is False
        assert [(str(m.rs.address), m.sorry) for m in d.members] == [("10.9.1.30", True)]
    k = _Kernel()
    r = Reconciler(cfg, k)
    r.start()
    assert r.transition(rs_key(vs, vs.real_servers[0]), True) == []
