"""The chaos suite's VM rows (issue 13): real-server chaos and scale, small, in the shared boot.

The part runs :mod:`sim.chaos_vm`'s guest driver at :data:`sim.chaos_vm.SMALL`
for pykeep (keepalived runs the same driver from ``python -m sim chaos``).
What must hold: no crash; after SIGTERM no VIP and no IPVS entry left in the
guest kernel; real-server chaos ends with the table equal to what health
says (inhibited servers at weight 0, quorum's sorry server in only while
quorum is lost, its scripts run up at start, then down and up, as keepalived's)
and loses no request later than the checker bound after a crash; scale
reaches every entry and VIP, comes back to the identical table after
``kill -9`` and a restart, and a SIGHUP removes no entry and changes nothing.
No timing is asserted beyond the bounds the protocol and checker give.

The pure tests pin the helpers the verdict rests on (the expected table, the
``/proc/net/ip_vs`` reader): a wrong expectation would make the part pass
against a wrong table.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from sim import chaos_vm as cv
from tests import vmshare

KINDS = ("pykeep",)
"""keepalived beside it costs two more minutes of the shared boot; ``python -m sim chaos
rs_chaos scale --short --peer keepalived`` runs the same part for both."""

PROC_IP_VS = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A3D0064:0050 wrr
  -> 0A3E0102:0050      Masq    0      0          0
  -> 0A3E0101:0050      Masq    3      1          0
TCP  0A3D0064:0051 rr
  -> 0A3E0909:0051      Masq    1      0          0
"""


def test_proc_ip_vs_is_read_as_entries() -> None:
    assert cv.parse_ip_vs(PROC_IP_VS) == [
        ("10.61.0.100:80", "", 0),
        ("10.61.0.100:80", "10.62.1.1:80", 3),
        ("10.61.0.100:80", "10.62.1.2:80", 0),
        ("10.61.0.100:81", "", 0),
        ("10.61.0.100:81", "10.62.9.9:81", 1),
    ]


def test_expected_table_inhibits_and_swaps_in_the_sorry_server() -> None:
    alive = dict.fromkeys([*cv.inhibit_servers(), *cv.quorum_servers()], True)
    healthy = cv.expected_table(alive)
    assert len(healthy) == 2 + 4 + 4 and ("10.61.0.100:81", "10.62.9.9:81", 1) not in healthy
    alive["10.62.1.3"] = False
    inhibited = cv.expected_table(alive)
    assert ("10.61.0.100:80", "10.62.1.3:80", 0) in inhibited  # kept, weight 0
    alive["10.62.2.1"] = False  # 3 of 4 left: quorum 3 holds, the dead one is removed
    held = cv.expected_table(alive)
    assert ("10.61.0.100:81", "10.62.2.1:81", 1) not in held
    assert ("10.61.0.100:81", "10.62.9.9:81", 1) not in held
    alive["10.62.2.2"] = False  # 2 left: quorum lost, the sorry server alone
    lost = [e for e in cv.expected_table(alive) if e[0].endswith(":81") and e[1]]
    assert lost == [("10.61.0.100:81", "10.62.9.9:81", 1)]


def test_checker_bound_and_scale_addresses() -> None:
    # delay_loop 2 + retry 1 × delay_before_retry 1 + 2 attempts × connect_timeout 1
    assert cv.checker_bound() == 5
    servers = cv.scale_servers(10_000)
    net = ipaddress.ip_network(cv.SCALE_NET)
    assert len(set(servers)) == 10_000
    assert all(ipaddress.ip_address(s) in net and not s.endswith((".0", ".255")) for s in servers)
    assert cv.scale_conf(cv.SMALL).count("real_server ") == cv.SMALL.servers


def test_a_failure_makes_the_row_fail() -> None:
    good = {"scenario": "scale", "daemon": "pykeep", "restart_s": 3.0, "failures": []}
    assert cv.to_row(good).ok()
    assert not cv.to_row({**good, "failures": ["reload removed up to 3 entries"]}).ok()
    assert not cv.to_row({**good, "left_behind": ["VIP 10.63.0.1/32"]}).ok()


def _prepare(rw: Path) -> str:
    return cv.guest_script(rw, ("rs_chaos", "scale"), KINDS, cv.SMALL)


# Measured: see the module's report; every wait in the driver is bounded.
vmshare.register("chaos_vm", _prepare, timeout=900)


@pytest.fixture(scope="module")
def rows(shared_vm: vmshare.SharedRun) -> dict[tuple[str, str], dict[str, Any]]:
    d = shared_vm.part("chaos_vm")
    path = d / "results.json"
    assert path.exists(), shared_vm.log("chaos_vm")[-3000:]
    found = json.loads(path.read_text())
    return {(r["scenario"], r["daemon"]): r for r in found}


def _get(rows: dict[tuple[str, str], dict[str, Any]], scenario: str, kind: str) -> dict[str, Any]:
    assert (scenario, kind) in rows, sorted(rows)
    r = rows[(scenario, kind)]
    assert not r.get("crashes"), r
    assert not r.get("left_behind"), r
    assert not r.get("failures"), r
    return r


@pytest.mark.vm
@pytest.mark.parametrize("kind", KINDS)
def test_real_server_chaos_table_follows_health(
    rows: dict[tuple[str, str], dict[str, Any]], kind: str
) -> None:
    r = _get(rows, "rs_chaos", kind)
    assert r["crash_count"] == cv.SMALL.crashes, r
    assert r["table_equals_health"] is True, r
    assert r["quorum_down_table"] is True and sorted(r["quorum_scripts"]) == cv.QUORUM_SCRIPTS, r
    assert r["out_of_rotation_max_s"] <= cv.checker_bound() + cv.MARGIN, r
    assert r["requests"] > 50 and r["lost_beyond_bound"] == 0, r


@pytest.mark.vm
@pytest.mark.parametrize("kind", KINDS)
def test_scale_survives_kill_and_reload(
    rows: dict[tuple[str, str], dict[str, Any]], kind: str
) -> None:
    r = _get(rows, "scale", kind)
    assert r["start_s"] is not None and r["restart_s"] is not None, r
    assert r["reload_identical"] is True and r["reload_missing_max"] == 0, r
    assert r["rss_mib"] > 0, r
