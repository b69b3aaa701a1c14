"""No vrrp_instance loses its VIPs to a block keyword pykeep does not act on (issue 11).

keepalived reads some keywords' ``{ … }`` as a block of values
(track_process, track_bfd, linkbeat_interfaces …), others as a block of
keywords (bfd_instance, garp_group, vrrp_track_process …).  Read as plain
keywords, such a block's ``}`` closed the vrrp_instance around it, and the
VIPs declared after it were lost.  Every block keyword of keepalived 2.2.7
is fed here in its place, ahead of the instance's VIPs; the parse must keep
every VIP and every later keyword, with no brace diagnostic.  The netns test
runs such a configuration and finds the VIP (and a route written
``via inet``) in the kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pykeep import config
from pykeep.config.diagnostics import Severity
from pykeep.config.keywords import BLOCK, VALUES, keepalived_keywords
from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, workdir

STRUCTURE = {
    Severity.UNKNOWN_KEYWORD,
    Severity.UNEXPECTED_BOB,
    Severity.MISSING_BOB,
    Severity.UNEXPECTED_EOB,
    Severity.MISSING_EOB,
}

# What each block holds: a line that would close the enclosing block early if
# the block were read as plain keywords (a value, or one of its keywords).
_INNER = {
    "vrrp_instance/track_process": "tp_all weight 10",
    "vrrp_instance/track_bfd": "bfd_all weight 10",
    "vrrp_instance/track_interface": "eth1",
    "vrrp_instance/track_script": "chk_all",
    "vrrp_instance/track_file": "tf_all",
    "vrrp_instance/unicast_peer": "10.99.0.12",
    "vrrp_instance/virtual_ipaddress_excluded": "10.99.1.1/32",
    "vrrp_instance/virtual_routes": "10.98.0.0/16 via inet 10.99.0.1 dev eth0",
    "vrrp_instance/virtual_rules": "from 10.97.0.0/16 table 100 preference 100",
    "vrrp_instance/authentication": "auth_type PASS\n        auth_pass secret",
}


def _instance_blocks(style: str) -> str:
    """Every block or value-block keyword keepalived allows inside a vrrp_instance."""
    out = []
    for path, kind in keepalived_keywords():
        parent, _sep, name = path.rpartition("/")
        if parent != "vrrp_instance" or not kind or name == "virtual_ipaddress":
            continue
        if name == "unicast_peer":
            continue  # a unicast peer changes the mode, not the parse: kept out of the run
        inner = _INNER[path]
        if style == "one line" and "\n" not in inner:
            out.append(f"    {name} {{ {inner} }}")
        else:
            out.append(f"    {name} {{\n        {inner}\n    }}")
    return "\n".join(out) + "\n"


def _top_blocks() -> str:
    """Every top-level block of keepalived's VRRP side, each with something inside."""
    return (
        "track_group tg_all {\n    group {\n        VI_1\n    }\n}\n"
        "garp_group {\n    garp_interval 1\n    interfaces {\n        eth0\n    }\n}\n"
        "linkbeat_interfaces {\n    eth0\n}\n"
        "interface_up_down_delays {\n    eth0 1 1\n}\n"
        "vrrp_track_process tp_all {\n    process sshd\n    weight 10\n}\n"
        "bfd_instance bfd_all {\n    neighbor_ip 10.99.0.13\n    min_rx 100\n"
        "    min_tx 100\n    multiplier 3\n    weight 10\n}\n"
        "vrrp_script chk_all {\n    script /bin/true\n    interval 1\n}\n"
        "track_file tf_all {\n    file /tmp/pykeep-blocks-track\n}\n"
    )


def blocks_conf(style: str = "lines", vip: str = "10.99.0.200/32", interface: str = "eth0") -> str:
    """One instance (VIPs last) inside every block keyword; the same text for keepalived."""
    return (
        "global_defs {\n    router_id pk\n}\n"
        f"{_top_blocks()}"
        "vrrp_instance VI_1 {\n"
        "    state MASTER\n"
        f"    interface {interface}\n"
        "    virtual_router_id 61\n"
        "    advert_int 1\n"
        f"{_instance_blocks(style)}"
        "    priority 200\n"
        f"    virtual_ipaddress {{\n        {vip}\n    }}\n"
        "}\n"
    )


def _always(_name: str) -> bool:
    return True


@pytest.mark.parametrize("style", ["lines", "one line"])
def test_every_block_keyword_keeps_the_instance_vips(style: str) -> None:
    text = blocks_conf(style)
    # The test covers every block keyword keepalived allows in a vrrp_instance.
    kinds = {
        p.rpartition("/")[2]
        for p, k in keepalived_keywords()
        if p.startswith("vrrp_instance/") and k in (BLOCK, VALUES)
    }
    assert {w for w in kinds if f"    {w} {{" in text} == kinds - {"unicast_peer"}
    r = config.load_text(text, "blocks.conf", interface_exists=_always)
    assert [str(d) for d in r.diagnostics if d.severity in STRUCTURE] == []
    (vi,) = r.config.vrrp_instances
    assert [str(a.address) for a in vi.virtual_ipaddress] == ["10.99.0.200/32"]
    assert vi.priority == 200  # read after every block: nothing closed the instance early
    assert [str(a.address) for a in vi.virtual_ipaddress_excluded] == ["10.99.1.1/32"]
    assert [str(x.via) for x in vi.virtual_routes] == ["10.99.0.1"]
    # The blocks pykeep does not act on say so, each on its own line.
    warned = {d.message.split("'")[1] for d in r.diagnostics if "not supported" in d.message}
    # bfd_instance and track_bfd act (tests/test_bfd_vrrp.py), and so do the
    # tracked processes (tests/test_vrrp_track_process.py): no warning.
    assert not warned & {"track_bfd", "bfd_instance", "track_process", "vrrp_track_process"}
    assert "garp_group" in warned


def test_a_block_keyword_at_the_end_of_the_instance_keeps_the_blocks_after_it() -> None:
    """The next vrrp_instance after a track_bfd block is read whole too."""
    text = (
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress {\n  10.0.0.1\n }\n track_bfd {\n  b1\n }\n}\n"
        "vrrp_instance B {\n interface eth0\n virtual_router_id 2\n"
        " track_process {\n  p1\n }\n virtual_ipaddress {\n  10.0.0.2\n }\n}\n"
    )
    r = config.load_text(text, "two.conf", interface_exists=_always)
    assert [str(d) for d in r.diagnostics if d.severity in STRUCTURE] == []
    got = {
        v.name: [str(a.address.ip) for a in v.virtual_ipaddress] for v in r.config.vrrp_instances
    }
    assert got == {"A": ["10.0.0.1"], "B": ["10.0.0.2"]}


Make = Callable[..., Rig]
KEEPALIVED_KIND = "keepalived"


@pytest.mark.netns
def test_running_instance_with_every_block_holds_its_vip_and_route(rig: Make) -> None:
    """keepalived, then pykeep, run the same file: same VIP, same ``via inet`` route in the kernel.

    keepalived 2.2.7 is the real peer: it must hold the VIP on this file too
    (the blocks are its own), and ``ip route`` must read the same under both
    (``proto keepalived``).  About 15 s: two daemon start-ups and a takeover each.
    """
    r = rig(hint="lg_blk")
    lan(r, {"a": "10.99.0.11/24"}, aux=True)
    routes: dict[str, str] = {}
    track = Path("/tmp/pykeep-blocks-track")
    track.write_text("0\n")
    try:
        with workdir() as wd:
            for kind in (KEEPALIVED_KIND, "pykeep"):
                a = router(r, "a", kind, blocks_conf(), wd).start()
                try:
                    until(lambda a=a: a.has_vip("10.99.0.200"), 20)  # type: ignore[misc]
                    until(lambda: "10.98.0.0/16" in r.ip("a", "route", "show"), 5)
                    routes[kind] = r.ip("a", "route", "show")
                    if kind == "pykeep":
                        log = a.text()
                        assert "'garp_group' is not supported by pykeep" in log
                finally:
                    a.stop()
                assert not a.has_vip("10.99.0.200")
                assert "10.98.0.0/16" not in r.ip("a", "route", "show")
    finally:
        track.unlink(missing_ok=True)
    assert "10.98.0.0/16 via 10.99.0.1 dev eth0 proto keepalived" in routes["pykeep"]
    assert routes["pykeep"] == routes[KEEPALIVED_KIND]
