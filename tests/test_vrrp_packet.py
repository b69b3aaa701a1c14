"""vrrp.packet: golden vector, keepalived's receive checks in order, scapy as oracle."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.packet import Raw

from vrrp import packet
from vrrp.packet import Advert, ReceiveParams, Rejected, decode, decode_ipv4, encode

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
GOLDEN = bytes.fromhex(
    "01005e0000122edfabc29fd9080045c00028000e0000ff70d0170a63000be0000012"
    "213396010101f25b0a6300c87269676270770000"
)
GOLDEN_RX = ReceiveParams(vrid=51, auth_type=1, auth_pass=b"rigbpw", addresses=(V4("10.99.0.200"),))
GROUP4 = V4("224.0.0.18")
GROUP6 = V6("ff02::12")


def golden_advert() -> Advert:
    return Advert(2, 51, 150, 100, (V4("10.99.0.200"),), 1, packet.pad_password("rigbpw"))


def test_golden_vector_encodes_byte_for_byte() -> None:
    assert encode(golden_advert()) == GOLDEN[14 + 20 :]


def test_golden_vector_decodes() -> None:
    src, adv = decode_ipv4(GOLDEN[14:], expected=GOLDEN_RX)
    assert src == V4("10.99.0.11")
    assert isinstance(adv, Advert)
    assert (adv.vrid, adv.priority, adv.adver_int, adv.addresses) == (
        51,
        150,
        1.0,
        (V4("10.99.0.200"),),
    )
    assert adv.addr_mismatch is None


def golden_payload() -> bytes:
    return GOLDEN[14 + 20 :]


def rx(payload: bytes, exp: ReceiveParams = GOLDEN_RX, ttl: int = 255) -> Advert | Rejected:
    return decode(payload, src=V4("10.99.0.11"), dst=GROUP4, ttl=ttl, expected=exp)


def with_csum(b: bytes) -> bytes:
    b = b[:6] + b"\0\0" + b[8:]
    return b[:6] + struct.pack("!H", packet.checksum(b)) + b[8:]


def patch(offset: int, value: int) -> bytes:
    b = bytearray(golden_payload())
    b[offset] = value
    return with_csum(bytes(b))


# Each row: what is wrong, the expected reason.  Order and names follow
# keepalived/vrrp/vrrp.c vrrp_check_packet (the VRID lookup precedes it in
# vrrp_scheduler.c vrrp_dispatcher_read).
REJECTIONS: list[tuple[str, bytes, ReceiveParams, int, str]] = [
    ("truncated header", golden_payload()[:7], GOLDEN_RX, 255, "short"),
    ("other vrid", patch(1, 52), GOLDEN_RX, 255, "vrid"),
    ("truncated body", golden_payload()[:-1], GOLDEN_RX, 255, "length"),
    ("naddr says 2", patch(3, 2), GOLDEN_RX, 255, "length"),
    ("ttl 64 (RFC 3768 §7.1)", golden_payload(), GOLDEN_RX, 64, "ttl"),
    ("version 3 on a v2 instance", patch(0, 0x31), GOLDEN_RX, 255, "length"),
    ("auth type 7", patch(4, 7), GOLDEN_RX, 255, "auth_type"),
    ("auth none vs PASS", patch(4, 0), GOLDEN_RX, 255, "auth_type"),
    ("bad password", with_csum(golden_payload()[:-8] + b"wrongpw\0"), GOLDEN_RX, 255, "auth_pass"),
    ("adver_int 2 vs 1", patch(5, 2), GOLDEN_RX, 255, "adver_int"),
    ("type 2", patch(0, 0x22), GOLDEN_RX, 255, "type"),
    ("checksum", golden_payload()[:7] + b"\0" + golden_payload()[8:], GOLDEN_RX, 255, "checksum"),
]


@pytest.mark.parametrize(
    ("what", "payload", "exp", "ttl", "reason"), REJECTIONS, ids=[r[0] for r in REJECTIONS]
)
def test_rejections_in_keepalived_order(
    what: str, payload: bytes, exp: ReceiveParams, ttl: int, reason: str
) -> None:
    r = rx(payload, exp, ttl)
    assert isinstance(r, Rejected), what
    assert r.reason == reason


def test_wrong_version_same_length() -> None:
    """A v3 header of v2 length: the version check fires (vrrp_check_packet "wrong version")."""
    r = rx(golden_payload(), ReceiveParams(version=3, vrid=51, addresses=GOLDEN_RX.addresses))
    assert isinstance(r, Rejected) and r.reason == "version"


def test_ttl_not_checked_in_unicast() -> None:
    exp = ReceiveParams(
        vrid=51, auth_type=1, auth_pass=b"rigbpw", addresses=GOLDEN_RX.addresses, unicast=True
    )
    r = decode(golden_payload(), src=V4("10.99.0.11"), dst=V4("10.99.0.12"), ttl=64, expected=exp)
    assert isinstance(r, Advert)


def test_multicast_when_unicast_expected_is_dst() -> None:
    exp = ReceiveParams(
        vrid=51, auth_type=1, auth_pass=b"rigbpw", addresses=GOLDEN_RX.addresses, unicast=True
    )
    r = rx(golden_payload(), exp)
    assert isinstance(r, Rejected) and r.reason == "dst"


def test_address_mismatch_is_accepted_but_flagged() -> None:
    """Issue 3: count and log an address-list mismatch, still accept the advert."""
    exp = ReceiveParams(vrid=51, auth_type=1, auth_pass=b"rigbpw", addresses=(V4("10.99.0.201"),))
    r = rx(golden_payload(), exp)
    assert isinstance(r, Advert) and r.addr_mismatch == "addr_list"
    r = rx(golden_payload(), ReceiveParams(vrid=51, auth_type=1, auth_pass=b"rigbpw"))
    assert isinstance(r, Advert) and r.addr_mismatch == "addr_count"


def test_ip_total_length_mismatch() -> None:
    ip = bytearray(GOLDEN[14:])
    ip[2:4] = struct.pack("!H", 41)
    _src, r = decode_ipv4(bytes(ip), expected=GOLDEN_RX)
    assert isinstance(r, Rejected) and r.reason == "ip_length"


def test_v3_checksum_as_v2_unicast() -> None:
    """keepalived's unicast checksum compatibility: pseudo-header dst = multicast group."""
    src, peer = V4("10.0.0.1"), V4("10.0.0.2")
    adv = Advert(3, 9, 100, 100, (V4("10.0.0.100"),))
    old_style = encode(adv, src=src, dst=GROUP4)
    exp = ReceiveParams(version=3, vrid=9, addresses=adv.addresses, unicast=True)
    assert isinstance(decode(old_style, src=src, dst=peer, ttl=255, expected=exp), Advert)
    new_style = encode(adv, src=src, dst=peer)
    assert isinstance(decode(new_style, src=src, dst=peer, ttl=255, expected=exp), Advert)
    assert new_style != old_style


def test_garbage_never_raises() -> None:
    import random

    rng = random.Random(7)
    exp = ReceiveParams(vrid=None, addresses=GOLDEN_RX.addresses)
    for _ in range(10_000):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
        assert isinstance(decode_ipv4(blob, expected=exp)[1], Advert | Rejected)
        r = decode(blob, src=V4("10.0.0.1"), dst=GROUP4, ttl=255, expected=exp)
        assert isinstance(r, Advert | Rejected)


# ----- scapy oracle (scapy only here, never in vrrp/)

v4addrs = st.lists(st.integers(0, 2**32 - 1).map(V4), max_size=6)
v6addrs = st.lists(st.integers(0, 2**128 - 1).map(V6), min_size=1, max_size=4)
# scapy's VRRP.dispatch_hook only recognises v3 from 9 bytes on, so the v3
# oracle needs at least one address (keepalived always sends one).
v4addrs3 = st.lists(st.integers(0, 2**32 - 1).map(V4), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    vrid=st.integers(1, 255),
    prio=st.integers(0, 255),
    adv=st.integers(1, 255),
    addrs=v4addrs,
    pw=st.binary(max_size=8),
)
def test_v2_encode_matches_scapy(
    vrid: int, prio: int, adv: int, addrs: list[V4], pw: bytes
) -> None:
    auth = packet.pad_password(pw)
    ours = Advert(2, vrid, prio, adv * 100, tuple(addrs), 1, auth)
    raw = encode(ours)
    s = VRRP(raw)
    assert (s.version, s.type, s.vrid, s.priority, s.ipcount, s.authtype, s.adv) == (
        2, 1, vrid, prio, len(addrs), 1, adv,
    )  # fmt: skip
    assert [V4(a) for a in s.addrlist] == addrs
    assert struct.pack("!II", s.auth1, s.auth2) == auth
    # scapy recomputes the checksum the same way
    s2 = VRRP(raw)
    s2.chksum = None
    assert bytes(s2) == raw
    # and scapy-built packets decode in ours
    built = bytes(
        VRRP(vrid=vrid, priority=prio, adv=adv, addrlist=[str(a) for a in addrs], authtype=1,
             auth1=s.auth1, auth2=s.auth2)
    )  # fmt: skip
    exp = ReceiveParams(vrid=vrid, interval_cs=adv * 100, auth_type=1, auth_pass=pw,
                        addresses=tuple(addrs))  # fmt: skip
    back = decode(built, src=V4("10.0.0.1"), dst=GROUP4, ttl=255, expected=exp)
    assert isinstance(back, Advert)
    assert back.addresses == tuple(addrs) and back.priority == prio


@settings(max_examples=300, deadline=None)
@given(
    vrid=st.integers(1, 255),
    prio=st.integers(0, 255),
    adv=st.integers(1, 4095),
    v6=st.booleans(),
    a4=v4addrs3,
    a6=v6addrs,
    src_i=st.integers(1, 2**32 - 2),
)
def test_v3_encode_matches_scapy(
    vrid: int, prio: int, adv: int, v6: bool, a4: list[V4], a6: list[V6], src_i: int
) -> None:
    addrs: tuple[V4, ...] | tuple[V6, ...]
    outer: IP | IPv6
    if v6:
        src: V4 | V6 = V6(0xFE80 << 112 | src_i)
        dst: V4 | V6 = GROUP6
        addrs = tuple(a6)
        outer = IPv6(src=str(src), dst=str(dst), hlim=255, nh=112)
    else:
        src, dst, addrs = V4(src_i), GROUP4, tuple(a4)
        outer = IP(src=str(src), dst=str(dst), ttl=255, proto=112)
    ours = Advert(3, vrid, prio, adv, addrs)
    raw = encode(ours, src=src, dst=dst)
    whole = bytes(outer / Raw(raw))
    s = (IPv6(whole) if v6 else IP(whole))[VRRPv3]
    assert (s.version, s.type, s.vrid, s.priority, s.ipcount, s.adv) == (
        3, 1, vrid, prio, len(addrs), adv,
    )  # fmt: skip
    assert [ipaddress.ip_address(a) for a in s.addrlist] == list(addrs)
    # scapy's own checksum over the pseudo-header agrees with ours
    built = outer / VRRPv3(vrid=vrid, priority=prio, adv=adv, addrlist=[str(a) for a in addrs])
    built_raw = bytes(built)[40 if v6 else 20 :]
    assert built_raw == raw
    exp = ReceiveParams(version=3, family=6 if v6 else 4, vrid=vrid, addresses=addrs)
    back = decode(built_raw, src=src, dst=dst, ttl=255, expected=exp)
    assert isinstance(back, Advert)
    assert back.interval_cs == adv and back.addresses == addrs
