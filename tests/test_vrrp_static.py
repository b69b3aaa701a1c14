"""static_ipaddress / static_routes / static_rules and virtual_rules, beside keepalived.

Each daemon runs the same config alone in the same namespace.  What the
kernel holds (``ip addr``, ``ip route``/``ip -6 route`` of every table,
``ip rule``/``ip -6 rule``) must read the same under both: while master,
after a reload that drops one static rule and adds another, and after
stop (back to what the namespace had before).
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pykeep.config.model import RuleSpec
from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, vrrp_conf, workdir
from vrrp import rules

Make = Callable[..., Rig]
MDI = 3 + 106 / 256
START = 8.0


def _attrs(body: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    off = 12
    while off + 4 <= len(body):
        alen, kind = struct.unpack_from("=HH", body, off)
        out[kind] = body[off + 4 : off + alen]
        off += (alen + 3) & ~3
    return out


def test_rule_messages_carry_what_keepalived_sends() -> None:
    """vrrp_iprule.c netlink_rule: header table below 256, FRA_TABLE above, proto 18."""
    fam, body = rules.rule_body(
        RuleSpec(("from", "10.1.0.0/16", "not", "table", "100"), preference=200)
    )
    family, dst_len, src_len, _tos, table, _r1, _r2, action, flags = struct.unpack_from(
        "=BBBBBBBBI", body
    )
    at = _attrs(body)
    assert (fam, family, src_len, dst_len) == (socket.AF_INET, socket.AF_INET, 16, 0)
    assert (table, action, flags) == (100, rules.FR_ACT_TO_TBL, rules.FIB_RULE_INVERT)
    assert at[rules.FRA_SRC] == ipaddress.IPv4Address("10.1.0.0").packed
    assert struct.unpack("=I", at[rules.FRA_PRIORITY]) == (200,)
    assert at[rules.FRA_PROTOCOL] == bytes([rules.RTPROT_KEEPALIVED])

    _fam, body = rules.rule_body(
        RuleSpec(
            ("to", "fd00::/64", "lookup", "300", "fwmark", "0x10/0xff", "no_track"),
            preference=5,
            family=6,
        )
    )
    at = _attrs(body)
    assert body[4] == 0 and struct.unpack("=I", at[rules.FRA_TABLE]) == (300,)
    assert struct.unpack("=I", at[rules.FRA_FWMARK]) == (0x10,)
    assert struct.unpack("=I", at[rules.FRA_FWMASK]) == (0xFF,)
    assert rules.FRA_PROTOCOL not in at  # no_track: keepalived leaves the protocol alone

    _fam, body = rules.rule_body(RuleSpec(("iif", "eth1", "goto", "300"), preference=100))
    at = _attrs(body)
    assert body[7] == rules.FR_ACT_GOTO and at[rules.FRA_IIFNAME] == b"eth1\0"
    with pytest.raises(ValueError, match="unknown rule option frobnicate"):
        rules.rule_body(RuleSpec(("from", "all", "frobnicate", "table", "1"), preference=1))
    with pytest.raises(ValueError, match="no action"):
        rules.rule_body(RuleSpec(("from", "all"), preference=1))


STATIC = """\
static_ipaddress {
    10.98.0.5/24 dev eth0
    10.98.1.5/24
    fd98::5/64 dev eth0
}
static_routes {
    10.97.0.0/16 via 10.99.0.1 dev eth0
    10.96.0.0/16 via 10.99.0.1 table 100
    fd97::/48 via fd00::1 dev eth0
}
static_rules {
    from 10.95.0.0/16 table 100 preference 1000
    to 10.94.0.0/16 lookup 101 priority 1001
    from fd95::/48 table 100 preference 1000
}
"""
RELOADED = STATIC.replace(
    "    to 10.94.0.0/16 lookup 101 priority 1001\n",
    "    fwmark 7 table 102 preference 1002\n",
)
VIRTUAL = """\
    virtual_routes {
        10.93.0.0/16 via 10.99.0.1 dev eth0
    }
    virtual_rules {
        from 10.99.0.200 table 100 preference 900
        from fd00::200 table 100 preference 900
    }
"""


def _kernel(rig: Rig) -> dict[str, str]:
    views = {
        "addr": ["ip", "addr"],
        "route": ["ip", "route", "show", "table", "all"],
        "route6": ["ip", "-6", "route", "show", "table", "all"],
        "rule": ["ip", "rule"],
        "rule6": ["ip", "-6", "rule"],
    }
    return {k: rig.run("a", argv).stdout for k, argv in views.items()}


def _run(rig: Rig, wd: Path, kind: str, conf: str, reloaded: str) -> dict[str, object]:
    node = router(rig, "a", kind, conf, wd).start()
    try:
        until(lambda: any(a.startswith("10.99.0.200/") for a in rig.addresses("a")), MDI + START)
        until(lambda: "10.94.0.0/16" in rig.run("a", ["ip", "rule"]).stdout, 3.0)
        time.sleep(1.0)
        master = _kernel(rig)
        node.conf.write_text(reloaded)
        node.signal(signal.SIGHUP)
        until(lambda: "fwmark 0x7" in rig.run("a", ["ip", "rule"]).stdout, 5.0)
        time.sleep(1.0)
        after_reload = _kernel(rig)
    finally:
        node.stop()
    time.sleep(0.3)
    return {"master": master, "reload": after_reload, "stopped": _kernel(rig), "log": node.text()}


@pytest.mark.netns
def test_static_and_virtual_entries_match_keepalived(rig: Make) -> None:
    """Addresses, routes and rules: added at start, diffed on reload, gone at stop."""
    r = rig(hint="vxst")

    def conf(static: str) -> str:
        return vrrp_conf(
            priority=150,
            vips=("10.99.0.200/32",),
            extra=VIRTUAL,
            before=static,
        )

    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24,fd00::11/64"}, client="10.99.0.100/24,fd00::100/64")
        before = _kernel(r)
        seen = {
            kind: _run(r, wd, kind, conf(STATIC), conf(RELOADED))
            for kind in ("keepalived", "pykeep")
        }
    logs = {k: v.pop("log") for k, v in seen.items()}
    ours, theirs = seen["pykeep"], seen["keepalived"]
    for phase in ("master", "reload", "stopped"):
        assert ours[phase] == theirs[phase], (phase, ours[phase], theirs[phase], logs["pykeep"])
    master = ours["master"]
    assert isinstance(master, dict)
    assert "10.98.1.5/24" in master["addr"] and "fd98::5/64" in master["addr"]
    assert "10.96.0.0/16 via 10.99.0.1 dev eth0 table 100 proto keepalived" in master["route"]
    assert "fd97::/48 via fd00::1 dev eth0 proto keepalived" in master["route6"]
    assert "1000:\tfrom 10.95.0.0/16 lookup 100 proto keepalived" in master["rule"]
    assert "900:\tfrom 10.99.0.200 lookup 100 proto keepalived" in master["rule"]
    assert "900:\tfrom fd00::200 lookup 100 proto keepalived" in master["rule6"]
    reloaded = ours["reload"]
    assert isinstance(reloaded, dict)
    assert "10.94.0.0/16" not in reloaded["rule"] and "fwmark 0x7" in reloaded["rule"]
    assert ours["stopped"] == before
