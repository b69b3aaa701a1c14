"""pykeep against Debian's keepalived 2.2.7 (issue 4, must-show 2).

Both role assignments, failover and preemption both ways, VRRPv2 with PASS
authentication and VRRPv3; then a capture taken in the client namespace
(tcpdump writes it, scapy dissects it) shows pykeep's adverts and GARPs equal
keepalived's field for field, the source MAC aside.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.utils import rdpcap

from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, vrrp_conf, wait_owner, workdir

pytestmark = pytest.mark.netns

VIP = "10.99.0.200"
MARGIN = 1.0
START = 5.0  # interpreter start-up of a fresh daemon on a loaded machine
Make = Callable[..., Rig]


def mdi(prio: int) -> float:
    return 3 + (256 - prio) / 256


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("master_kind", ["keepalived", "pykeep"])
def test_failover_and_preemption_both_ways(rig: Make, master_kind: str, version: int) -> None:
    backup_kind = "pykeep" if master_kind == "keepalived" else "keepalived"
    r = rig(hint="vinter")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24", "b": "10.99.0.12/24"})
        auth = "rigbpw" if version == 2 else None
        a = router(
            r, "a", master_kind, vrrp_conf(priority=150, version=version, auth_pass=auth), wd
        )
        b = router(
            r, "b", backup_kind, vrrp_conf(priority=100, version=version, auth_pass=auth), wd
        )
        a.start()
        b.start()
        ma, mb = r.mac("a"), r.mac("b")
        wait_owner(r, "client", VIP, ma, mdi(150) + START + MARGIN)
        time.sleep(1.2)  # the backup has heard adverts and stays backup
        assert not b.has_vip(VIP), b.text()
        a.stop()  # graceful: priority 0, the other daemon takes over at skew time
        wait_owner(r, "client", VIP, mb, (256 - 100) / 256 + MARGIN + 0.5)
        a.start()  # preemption back across implementations
        wait_owner(r, "client", VIP, ma, mdi(150) + START + MARGIN)
        until(lambda: not b.has_vip(VIP), 1.5)
        a.crash((f"{VIP}/32",))  # dead host: takeover at Master_Down_Interval
        wait_owner(r, "client", VIP, mb, mdi(100) + MARGIN)
        b.stop()
        assert not b.has_vip(VIP)


def _capture(rig: Rig, wd: Path, kind: str, seconds: float) -> list[Any]:
    """Start ``kind`` alone as master, capture its adverts and GARPs from the client."""
    pcap = wd / f"{kind}.pcap"
    dump = rig.popen(
        "client",
        ["tcpdump", "--immediate-mode", "-i", "eth0", "-U", "-n", "-w", str(pcap), "vrrp or arp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    conf = vrrp_conf(priority=150, auth_pass="rigbpw", globals_="    vrrp_garp_master_delay 1\n")
    node = router(rig, "a", kind, conf, wd).start()
    wait_owner(rig, "client", VIP, rig.mac("a"), mdi(150) + START + MARGIN)
    time.sleep(seconds)
    node.stop()
    time.sleep(1.0)
    rig.kill(dump)
    return list(rdpcap(str(pcap)))


def _advert_fields(p: Any) -> dict[str, Any]:
    ip, v = p[IP], p[VRRP]
    return {
        "eth.dst": p[Ether].dst,
        "eth.type": p[Ether].type,
        "ip": (ip.version, ip.ihl, ip.tos, ip.len, int(ip.flags), ip.frag, ip.ttl, ip.proto),
        "ip.src": ip.src,
        "ip.dst": ip.dst,
        "vrrp": (v.version, v.type, v.vrid, v.priority, v.ipcount, v.authtype, v.adv),
        "vrrp.chksum": v.chksum,
        "vrrp.addrlist": list(v.addrlist),
        "vrrp.auth": (v.auth1, v.auth2),
        "len": len(p),
    }


def _garp_fields(p: Any) -> dict[str, Any]:
    a = p[ARP]
    return {
        "eth.dst": p[Ether].dst,
        "eth.type": p[Ether].type,
        "arp": (a.hwtype, a.ptype, a.hwlen, a.plen, a.op, a.psrc, a.hwdst, a.pdst),
        "sha_is_src": a.hwsrc == p[Ether].src,
        "len": len(p),
    }


def test_capture_matches_keepalived_field_for_field(rig: Make) -> None:
    r = rig(hint="vcapt")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"})
        seen: dict[str, list[Any]] = {}
        for kind in ("keepalived", "pykeep"):
            seen[kind] = _capture(r, wd, kind, 2.5)
        mac_a = r.mac("a")
        summary: dict[str, dict[str, Any]] = {}
        for kind, pkts in seen.items():
            ours = [p for p in pkts if p.haslayer(Ether) and p[Ether].src == mac_a]
            adverts = [p for p in ours if p.haslayer(VRRP) and p[VRRP].priority == 150]
            stops = [p for p in ours if p.haslayer(VRRP) and p[VRRP].priority == 0]
            garps = [
                p for p in ours if p.haslayer(ARP) and p[ARP].psrc == VIP and p[ARP].pdst == VIP
            ]
            assert adverts and garps and stops, f"{kind}: {len(adverts)} {len(garps)} {len(stops)}"
            first_advert = ours.index(adverts[0])
            first_garp = ours.index(garps[0])
            ids = [p[IP].id for p in adverts]
            summary[kind] = {
                "advert": _advert_fields(adverts[0]),
                "stop": _advert_fields(stops[0]),
                "garp": _garp_fields(garps[0]),
                # the advert goes out before the GARP burst (vrrp_state_master_tx)
                "advert_first": first_advert < first_garp,
                # garp_master_repeat 5, then 5 more after garp_master_delay
                "garps": len(garps),
                "ids_step": sorted({(b - a) & 0xFFFF for a, b in itertools.pairwise(ids)}),
                "garp_sizes": sorted({len(g) for g in garps}),
            }
        assert summary["pykeep"] == summary["keepalived"]
        assert not any(p.haslayer(VRRPv3) for p in seen["pykeep"])
