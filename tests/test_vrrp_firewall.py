"""``vrrp_strict`` / ``nftables`` / ``no_accept``: the nftables drop rules, beside keepalived.

Each daemon runs the same config alone in the same namespace; while it is
master, ``nft list ruleset`` must read the same (table, sets, chains, rules
and the VIPs in the drop set), the VIP must really be unreachable from the
client (no_accept: a non-owner master does not answer for it), and after a
stop the table must be gone.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pykeep.config.model import GlobalDefs, IPAddressSpec, VrrpInstance
from sim.netns import Rig
from tests.netns_vrrp import lan, probe_once, router, until, vrrp_conf, workdir
from vrrp import firewall

Make = Callable[..., Rig]
MDI = 3 + 106 / 256
START = 12.0  # daemon start-up on a machine loaded by the VM tests


def test_scripts_name_the_table_and_priority() -> None:
    v4 = firewall.vips_script(4, "kt", -5)
    assert "add table ip kt" in v4 and "priority -5;" in v4
    assert "add rule ip kt in ip daddr @vips drop" in v4
    v6 = firewall.vips_script(6)
    assert "add rule ip6 keepalived out icmpv6 type @neighbor-discovery accept" in v6
    vm = firewall.vmac_elements(6, "vrrp.7", "eth0", add=False)
    assert 'delete element ip6 keepalived vmac_map { "vrrp.7" : "eth0" }' in vm
    assert 'delete element ip6 keepalived vmac_set { "vrrp.7" }' in vm


def test_only_non_owners_without_accept_get_a_drop_set() -> None:
    """vrrp.c vrrp_complete_instance: base_priority != 255 and !accept."""
    vip = (IPAddressSpec(ipaddress.ip_interface("10.0.0.1/32")),)
    g = GlobalDefs()
    base = VrrpInstance(name="v", virtual_router_id=1, priority=100, virtual_ipaddress=vip)
    assert firewall.NoAccept.for_instance(replace(base, accept=True), g) is None
    assert firewall.NoAccept.for_instance(replace(base, accept=False, priority=255), g) is None
    na = firewall.NoAccept.for_instance(replace(base, accept=False), g)
    assert na is not None and na.addrs == {4: ["10.0.0.1"]} and na.table == "keepalived"


def _run(rig: Rig, wd: Path, kind: str, conf: str, vip: str) -> dict[str, Any]:
    node = router(rig, "a", kind, conf, wd).start()
    try:
        until(lambda: any(a.split("/")[0] == vip for a in rig.addresses("a")), MDI + START)
        time.sleep(1.0)
        ruleset = rig.run("a", ["nft", "list", "ruleset"]).stdout
        reachable = probe_once(rig, "client", vip, timeout=1.0)["ok"]
    finally:
        node.stop()
    time.sleep(0.3)
    return {
        "ruleset": ruleset,
        "reachable": reachable,
        "after": rig.run("a", ["nft", "list", "ruleset"]).stdout.strip(),
        "log": node.text(),
    }


CASES = {
    "strict4": (4, "    vrrp_strict\n", ""),
    "strict6": (6, "    vrrp_strict\n", ""),
    "named_no_accept4": (4, "    nftables kt\n    nftables_priority -5\n", "    no_accept\n"),
}


@pytest.mark.netns
@pytest.mark.parametrize("case", list(CASES))
def test_ruleset_matches_keepalived(rig: Make, case: str) -> None:
    family, globals_, extra = CASES[case]
    vip = "10.99.0.200" if family == 4 else "fd00::200"
    conf = vrrp_conf(
        priority=150,
        vips=(f"{vip}/{32 if family == 4 else 64}",),
        version=2 if family == 4 else 3,
        globals_=globals_,
        extra=extra,
    )
    r = rig(hint="wrfw")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"}, client="10.99.0.100/24,fd00::100/64")
        seen = {kind: _run(r, wd, kind, conf, vip) for kind in ("keepalived", "pykeep")}
    logs = {k: v.pop("log") for k, v in seen.items()}
    ours, theirs = seen["pykeep"], seen["keepalived"]
    assert ours == theirs, (ours, theirs, logs["pykeep"])
    assert vip in ours["ruleset"] and "drop" in ours["ruleset"]
    assert not ours["reachable"]  # the drop rule is in effect
    assert ours["after"] == ""
    assert "setting firewall drop rule" in logs["pykeep"]
