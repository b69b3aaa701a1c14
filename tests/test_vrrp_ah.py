"""``auth_type AH``: RFC 2402 HMAC-MD5-96 around VRRPv2, as keepalived 2.2.7 does it.

The pure tests pin the layout and the anti-replay rules of vrrp/ah.py; the
netns tests put pykeep beside Debian's keepalived: a mixed pair elects one
master in both role assignments (each daemon accepts the other's ICV), and
captured adverts agree field for field, with each side's ICV verified by
the other's rules.
"""

from __future__ import annotations

import ipaddress
import itertools
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, vrrp_conf, wait_owner, workdir
from vrrp import ah, packet

SRC = ipaddress.IPv4Address("10.99.0.11")
GROUP = ipaddress.IPv4Address("224.0.0.18")
KEY = packet.pad_password("s3cret")
VIP = "10.99.0.200"
Make = Callable[..., Rig]
#: Master_Down_Interval of the priority-150 router, and room for a daemon's
#: start-up on a loaded machine (a protocol-scale margin, not a timing claim)
MDI = 3 + 106 / 256
START = 8.0


def _advert(prio: int = 150) -> bytes:
    adv = packet.Advert(
        version=2,
        vrid=51,
        priority=prio,
        interval_cs=100,
        addresses=(ipaddress.IPv4Address(VIP),),
        auth_type=packet.AUTH_AH,
    )
    return packet.encode(adv)


def _sealed(seq: int, *, key: bytes = KEY, unicast: bool = False, ttl: int = 255) -> bytes:
    return ah.seal(
        _advert(), src=SRC, dst=GROUP, ttl=ttl, ip_id=7, seq=seq, key=key, unicast=unicast
    )


def test_layout_is_keepalived_s() -> None:
    data = _sealed(1)
    assert len(data) == 20 + 24 + 20  # IP, AH, VRRPv2 with one address and 8 auth bytes
    assert data[9] == ah.PROTO_AH and data[1] == 0xC0
    assert int.from_bytes(data[2:4], "big") == len(data)
    head = data[20:44]
    assert head[0] == packet.PROTO_VRRP and head[1] == 4 and head[2:4] == b"\0\0"
    assert head[4:8] == SRC.packed  # SPI is the source address
    assert int.from_bytes(head[8:12], "big") == 1
    vrrp = data[44:]
    assert vrrp[4] == packet.AUTH_AH and vrrp[-8:] == b"\0" * 8
    assert packet.checksum(vrrp) == 0  # the VRRP checksum covers the VRRP part only


def test_receive_checks_icv_spi_and_sequence() -> None:
    counter = ah.SeqCounter()
    pkt = ah.parse(_sealed(5))
    assert isinstance(pkt, ah.AhPacket)
    assert ah.verify(pkt, key=KEY, counter=counter, unicast=False) is None
    assert counter.seq == 5
    # replay, or an older number: dropped
    bad = ah.verify(pkt, key=KEY, counter=counter, unicast=False)
    assert isinstance(bad, packet.Rejected) and bad.reason == "auth_ah_seq"
    # wrong password
    other = ah.parse(_sealed(9, key=packet.pad_password("other")))
    assert isinstance(other, ah.AhPacket)
    bad = ah.verify(other, key=KEY, counter=counter, unicast=False)
    assert isinstance(bad, packet.Rejected) and bad.reason == "auth_ah"
    # mutable fields (TOS, fragment, checksum) do not count; the TTL counts in multicast only
    raw = bytearray(_sealed(10))
    raw[1], raw[10], raw[11] = 0, 0x12, 0x34
    pkt2 = ah.parse(bytes(raw))
    assert isinstance(pkt2, ah.AhPacket)
    assert ah.verify(pkt2, key=KEY, counter=counter, unicast=False) is None
    hopped = bytearray(_sealed(21, unicast=True, ttl=64))
    hopped[8] = 60  # a router decremented the TTL on the way: still valid in unicast
    h = ah.parse(bytes(hopped))
    assert isinstance(h, ah.AhPacket)
    assert ah.verify(h, key=KEY, counter=counter, unicast=True) is None
    hopped = bytearray(_sealed(22))
    hopped[8] = 60  # ... but not in multicast
    h = ah.parse(bytes(hopped))
    assert isinstance(h, ah.AhPacket)
    bad = ah.verify(h, key=KEY, counter=counter, unicast=False)
    assert isinstance(bad, packet.Rejected) and bad.reason == "auth_ah"
    # SPI other than the source address
    spoof = bytearray(_sealed(30))
    spoof[12:16] = ipaddress.IPv4Address("10.99.0.99").packed
    s = ah.parse(bytes(spoof))
    assert isinstance(s, ah.AhPacket)
    bad = ah.verify(s, key=KEY, counter=counter, unicast=False)
    assert isinstance(bad, packet.Rejected) and bad.reason in ("auth_ah", "auth_ah_spi")
    # an AH header for another protocol is ignored
    other_proto = bytearray(_sealed(31))
    other_proto[20] = 6
    r = ah.parse(bytes(other_proto))
    assert isinstance(r, packet.Rejected) and r.reason == "ah_next_header"


def test_decode_runs_the_ah_check_in_keepalived_s_order() -> None:
    params = packet.ReceiveParams(
        vrid=51,
        interval_cs=100,
        auth_type=packet.AUTH_AH,
        auth_pass=b"s3cret",
        addresses=(ipaddress.IPv4Address(VIP),),
    )
    vrrp = _advert()
    calls: list[int] = []

    def ok() -> packet.Rejected | None:
        calls.append(1)
        return None

    got = packet.decode(vrrp, src=SRC, dst=GROUP, ttl=255, expected=params, auth_check=ok)
    assert isinstance(got, packet.Advert) and got.auth_type == packet.AUTH_AH and calls
    # no AH header at all for an AH instance: an auth-type mismatch
    got2 = packet.decode(vrrp, src=SRC, dst=GROUP, ttl=255, expected=params)
    assert isinstance(got2, packet.Rejected) and got2.reason == "auth_type"
    # a wrong TTL is rejected before the AH check runs (the counter is untouched)
    calls.clear()
    got3 = packet.decode(vrrp, src=SRC, dst=GROUP, ttl=64, expected=params, auth_check=ok)
    assert isinstance(got3, packet.Rejected) and got3.reason == "ttl" and not calls


def test_sequence_counter_rules() -> None:
    c = ah.SeqCounter()
    assert [c.next_send() for _ in range(3)] == [1, 2, 3]
    c.lower_priority_heard(100)  # master hears a lower priority: resync past it
    assert c.next_send() == 102
    c.seq = ah.SEQ_LIMIT + 1
    assert c.next_send() == ah.SEQ_LIMIT + 1 and c.cycle
    c.entering_master()
    assert c.seq == 0 and not c.cycle


# ---------------------------------------------------------------- against keepalived

AH_AUTH = "    authentication {\n        auth_type AH\n        auth_pass s3cret\n    }\n"


def _conf(prio: int, unicast: tuple[str, str] | None = None) -> str:
    extra = AH_AUTH
    if unicast is not None:
        # unicast: the ICV is computed with the TTL zeroed (vrrp_in_chk_ipsecah)
        extra += (
            f"    unicast_src_ip {unicast[0]}\n    unicast_peer {{\n        {unicast[1]}\n    }}\n"
        )
    return vrrp_conf(priority=prio, extra=extra)


@pytest.mark.netns
@pytest.mark.parametrize(
    ("master_kind", "unicast"), [("keepalived", False), ("pykeep", False), ("pykeep", True)]
)
def test_mixed_pair_elects_one_master(rig: Make, master_kind: str, unicast: bool) -> None:
    backup_kind = "pykeep" if master_kind == "keepalived" else "keepalived"
    r = rig(hint="wrah")
    ua = ("10.99.0.11", "10.99.0.12") if unicast else None
    ub = ("10.99.0.12", "10.99.0.11") if unicast else None
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24", "b": "10.99.0.12/24"})
        a = router(r, "a", master_kind, _conf(150, ua), wd).start()
        b = router(r, "b", backup_kind, _conf(100, ub), wd).start()
        try:
            wait_owner(r, "client", VIP, r.mac("a"), MDI + START)
            time.sleep(2.5)  # the backup keeps hearing (and accepting) the master
            assert a.has_vip(VIP) and not b.has_vip(VIP), a.text() + b.text()
            a.stop()  # priority 0 under AH: the backup takes over at once
            wait_owner(r, "client", VIP, r.mac("b"), 3.0)
            a.start()  # the restarted master's counter restarts: it still preempts
            wait_owner(r, "client", VIP, r.mac("a"), MDI + START)
            until(lambda: not b.has_vip(VIP), 2.0)
        finally:
            a.stop()
            b.stop()
        for text in (a.text(), b.text()):
            assert "invalid IPSEC HMAC-MD5" not in text and "bad ICV" not in text, text


def _capture(rig: Rig, wd: Path, kind: str) -> list[bytes]:
    """IPv4 datagrams (protocol 51) sent by ``kind`` alone as master, seen from the client."""
    pcap = wd / f"{kind}.pcap"
    dump = rig.popen(
        "client",
        ["tcpdump", "--immediate-mode", "-i", "eth0", "-U", "-n", "-w", str(pcap), "ip proto 51"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    node = router(rig, "a", kind, _conf(150), wd).start()
    try:
        wait_owner(rig, "client", VIP, rig.mac("a"), MDI + START)
        time.sleep(2.2)
    finally:
        node.stop()
    time.sleep(0.5)
    rig.kill(dump)
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

    return [bytes(p[Ether].payload) for p in rdpcap(str(pcap)) if p.haslayer(Ether)]


def _fields(d: bytes) -> dict[str, Any]:
    pkt = ah.parse(d)
    assert isinstance(pkt, ah.AhPacket), pkt
    ip = pkt.ip_header
    return {
        "ip": (ip[0], ip[1], int.from_bytes(ip[2:4], "big"), ip[6:8], ip[8], ip[9]),
        "ip.src/dst": (str(pkt.src), str(pkt.dst)),
        "ah": (pkt.ah_header[:4], pkt.spi),
        "vrrp": pkt.vrrp,
    }


@pytest.mark.netns
def test_captured_adverts_match_keepalived_and_verify(rig: Make) -> None:
    r = rig(hint="wrahc")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"})
        seen = {kind: _capture(r, wd, kind) for kind in ("keepalived", "pykeep")}
    shapes = {}
    for kind, datagrams in seen.items():
        adverts = [d for d in datagrams if len(d) > 44 and d[44 + 2] == 150]
        stops = [d for d in datagrams if len(d) > 44 and d[44 + 2] == 0]
        assert len(adverts) >= 2 and stops, (kind, len(adverts), len(stops))
        counter = ah.SeqCounter()
        seqs = []
        for d in [*adverts, *stops]:
            pkt = ah.parse(d)
            assert isinstance(pkt, ah.AhPacket)
            # each daemon's ICV holds under the other's verification rules
            assert ah.verify(pkt, key=KEY, counter=counter, unicast=False) is None, kind
            seqs.append(pkt.seq)
        shapes[kind] = {
            "advert": _fields(adverts[0]),
            "stop": _fields(stops[0]),
            "seq_first": seqs[0],
            "seq_steps": sorted({b - a for a, b in itertools.pairwise(seqs)}),
        }
    assert shapes["pykeep"] == shapes["keepalived"]
