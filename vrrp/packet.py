"""VRRP advertisement codec: bytes in, typed adverts or typed rejections out.

Why a module of its own: the trio driver (``vrrp/socket.py`` and friends)
only moves bytes, and the state machine only sees :class:`Advert` values.
Everything about the wire format — VRRPv2 (RFC 3768) for IPv4, VRRPv3
(RFC 5798) for IPv4 and IPv6, the v3 pseudo-header checksum and keepalived's
receive checks — lives here, and nowhere else.

Receive checks follow ``vrrp_check_packet`` in keepalived/vrrp/vrrp.c
(v2.2.7), in its order; the reason names in :class:`Rejected` are the
counter labels the daemon exports.  The VRID lookup happens before that
function in keepalived (``vrrp_dispatcher_read`` in vrrp_scheduler.c), so
it comes first here too.

Encoding uses :mod:`struct` only; this module never imports scapy.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

PROTO_VRRP = 112
VRRP_TTL = 255
ADVERT_TYPE = 1
AUTH_NONE = 0
AUTH_PASS = 1
AUTH_AH = 2
AUTH_LEN = 8
MCAST_GROUP4 = ipaddress.IPv4Address("224.0.0.18")
MCAST_GROUP6 = ipaddress.IPv6Address("ff02::12")

_HDR = struct.Struct("!BBBBBBH")  # vers_type vrid prio naddr authtype/rsvd+int adver_int csum
_HDR3 = struct.Struct("!BBBBHH")  # vers_type vrid prio naddr rsvd:4|max_adver_int:12 csum
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_LITTLE = sys.byteorder == "little"


class Advert(NamedTuple):
    """One VRRP advertisement, version independent.

    A NamedTuple rather than a frozen dataclass: it is built once per
    received packet, and tuple construction is several times cheaper
    (the issue's speed target); it is just as immutable.

    ``interval_cs`` is the advertisement interval in centiseconds for both
    versions (v2 carries whole seconds on the wire, so it must be a multiple
    of 100 there).  ``auth_data`` is the raw 8-byte v2 authentication field
    (the PASS password, zero padded) and empty for v3.

    ``addr_mismatch`` is set by :func:`decode` when the address count or
    list differs from the configured VIPs ("addr_count" / "addr_list"): the
    advert is still returned — counted and logged but accepted, see the
    issue text — and the machine decides whether to count it
    (``vrrp_skip_check_adv_addr``, vrrp.c ``vrrp_state_backup``).
    """

    version: int
    vrid: int
    priority: int
    interval_cs: int
    addresses: tuple[IPAddress, ...] = ()
    auth_type: int = AUTH_NONE
    auth_data: bytes = b""
    checksum: int = 0
    addr_mismatch: str | None = None

    @property
    def adver_int(self) -> float:
        """The advertisement interval in seconds."""
        return self.interval_cs / 100.0


@dataclass(frozen=True, slots=True)
class Rejected:
    """A packet dropped by the receive checks.

    ``reason`` is stable and used verbatim as a counter label:
    ``short``, ``vrid``, ``length``, ``ttl``, ``version``, ``auth_type``,
    ``auth_pass``, ``adver_int``, ``type``, ``ip_length``, ``checksum``,
    ``dst``, ``unicast_src``, ``family`` (plus ``not_vrrp`` from
    :func:`parse_ipv4`); for ``auth_type AH`` also ``auth_ah`` (bad ICV),
    ``auth_ah_spi``, ``auth_ah_seq`` (replay) and ``ah_next_header``
    (:mod:`vrrp.ah`).
    """

    reason: str
    got: object = None
    expected: object = None

    def __str__(self) -> str:
        return f"{self.reason}: got {self.got!r}, expected {self.expected!r}"


@dataclass(frozen=True, slots=True)
class ReceiveParams:
    """What an instance expects of a received advert (vrrp_check_packet's inputs).

    ``vrid`` None skips the VRID check (the driver demultiplexes first).
    ``auth_pass`` is the configured password as bytes, zero padded here.
    ``v3_checksum_as_v2``/unicast: keepalived's unicast checksum
    compatibility (``unicast_chksum_compat``) computes the v3 pseudo-header
    with the multicast group as destination; we accept either form in
    unicast mode, as keepalived's auto-detection does.
    ``verify_checksum6``: keepalived leaves IPv6 checksums to the kernel
    (IPV6_CHECKSUM); a driver that does the same passes False.
    """

    version: int = 2
    family: int = 4
    vrid: int | None = None
    interval_cs: int = 100
    auth_type: int = AUTH_NONE
    auth_pass: bytes = b""
    addresses: tuple[IPAddress, ...] = ()
    unicast: bool = False
    unicast_peers: tuple[IPAddress, ...] = ()
    check_unicast_src: bool = False
    v3_checksum_as_v2: bool = False
    mcast_group4: ipaddress.IPv4Address = MCAST_GROUP4
    verify_checksum6: bool = True
    # Derived once, so the per-packet path compares bytes only.
    packed_addresses: bytes = field(init=False, repr=False, compare=False)
    padded_pass: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "packed_addresses", b"".join(a.packed for a in self.addresses))
        object.__setattr__(self, "padded_pass", pad_password(self.auth_pass))


def checksum(data: bytes, initial: int = 0) -> int:
    """RFC 1071 Internet checksum of ``data``, folded, complemented.

    Sums native-order 16-bit words and swaps at the end: the one's-complement
    sum is byte-order independent (RFC 1071 §2(B)), and this is several
    times faster than unpacking big-endian words.
    """
    if len(data) & 1:
        data += b"\0"
    total: int = sum(memoryview(data).cast("H"))
    if _LITTLE:
        initial = ((initial & 0xFF) << 8) | ((initial >> 8) & 0xFF) if initial else 0
    total += initial
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    if _LITTLE:
        total = ((total & 0xFF) << 8) | (total >> 8)
    return ~total & 0xFFFF


_last_packed: tuple[tuple[IPAddress, ...], bytes] = ((), b"")


def _packed(addresses: tuple[IPAddress, ...]) -> bytes:
    """Packed address list; senders reuse one tuple, so remember the last by identity."""
    global _last_packed
    if addresses is _last_packed[0]:
        return _last_packed[1]
    packed = b"".join(a.packed for a in addresses)
    _last_packed = (addresses, packed)
    return packed


def _pseudo_header(src: IPAddress, dst: IPAddress, length: int) -> bytes:
    if src.version == 4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, PROTO_VRRP, length)
    return src.packed + dst.packed + struct.pack("!I3xB", length, PROTO_VRRP)


@functools.lru_cache(maxsize=256)
def pad_password(password: str | bytes | None) -> bytes:
    """A PASS password as keepalived stores it: truncated/zero-padded to 8 bytes."""
    raw = password.encode() if isinstance(password, str) else (password or b"")
    return raw[:AUTH_LEN].ljust(AUTH_LEN, b"\0")


def encode(
    advert: Advert,
    *,
    src: IPAddress | None = None,
    dst: IPAddress | None = None,
) -> bytes:
    """The VRRP part of an advert (no IP header), checksum filled in.

    v3 needs ``src`` and ``dst`` for the pseudo-header; pass the multicast
    group as ``dst`` for keepalived's ``v3_checksum_as_v2`` unicast variant.
    """
    addrs = _packed(advert.addresses)
    naddr = len(advert.addresses)
    vt = (advert.version << 4) | ADVERT_TYPE
    if advert.version == 2:
        head = _HDR.pack(
            vt, advert.vrid, advert.priority, naddr, advert.auth_type, advert.interval_cs // 100, 0
        )
        body = head + addrs + advert.auth_data.ljust(AUTH_LEN, b"\0")[:AUTH_LEN]
        csum = checksum(body)
    else:
        head = _HDR3.pack(vt, advert.vrid, advert.priority, naddr, advert.interval_cs & 0x0FFF, 0)
        body = head + addrs
        if src is None or dst is None:
            raise ValueError("VRRPv3 encoding needs src and dst for the checksum pseudo-header")
        csum = checksum(_pseudo_header(src, dst, len(body)) + body)
    return body[:6] + struct.pack("!H", csum) + body[8:]


def peek_vrid(ip_payload: bytes) -> int | None:
    """The VRID of a VRRP payload, for the driver's demultiplexing (None if too short)."""
    return ip_payload[1] if len(ip_payload) >= 8 else None


def decode(
    ip_payload: bytes,
    *,
    src: IPAddress,
    dst: IPAddress,
    ttl: int | None,
    expected: ReceiveParams,
    ip_total_length: int | None = None,
    ip_header_length: int = 20,
    auth_check: Callable[[], Rejected | None] | None = None,
) -> Advert | Rejected:
    """Check and decode the VRRP part of a received packet.

    ``ttl`` is the IPv4 TTL or IPv6 hop limit (None: unknown, not checked —
    keepalived's ``rx_ttl_hop_limit == -1``).  ``ip_total_length`` is the
    IPv4 header's total-length field, compared with what was received
    (``ip_header_length`` plus the payload).
    The order of checks is that of vrrp.c ``vrrp_check_packet``.
    """
    n = len(ip_payload)
    if n < 8:
        return Rejected("short", n, 8)
    vt, vrid, prio, naddr = ip_payload[0], ip_payload[1], ip_payload[2], ip_payload[3]
    # keepalived looks the instance up by VRID before checking (vrrp_dispatcher_read).
    if expected.vrid is not None and vrid != expected.vrid:
        return Rejected("vrid", vrid, expected.vrid)
    version = vt >> 4
    family = src.version
    if family != expected.family:
        return Rejected("family", family, expected.family)
    alen = 4 if family == 4 else 16
    # expected_vrrp_pkt_len() trusts the header's own version and naddr.
    want = 8 + naddr * alen + (AUTH_LEN if family == 4 and version == 2 else 0)
    if n != want:
        return Rejected("length", n, want)
    if not expected.unicast and ttl is not None and ttl != VRRP_TTL:
        return Rejected("ttl", ttl, VRRP_TTL)
    if version != expected.version:
        return Rejected("version", version, expected.version)
    if version == 2:
        auth_type = ip_payload[4]
        if auth_type not in (AUTH_NONE, AUTH_PASS, AUTH_AH):
            return Rejected("auth_type", auth_type, expected.auth_type)
        if auth_type != expected.auth_type:
            return Rejected("auth_type", auth_type, expected.auth_type)
        auth_data = ip_payload[-AUTH_LEN:]
        if auth_type == AUTH_PASS and auth_data != expected.padded_pass:
            return Rejected("auth_pass", auth_data, None)  # never echo the secret
        if auth_type == AUTH_AH:
            if auth_check is None:
                # "No AH header but auth type is AH" (vrrp_check_packet)
                return Rejected("auth_type", "no AH header", "AH")
            bad = auth_check()
            if bad is not None:
                return bad
        interval_cs = ip_payload[5] * 100
        # A v2 interval mismatch drops the packet "to prevent concurrent VRID
        # running => multiple master in 1 VRID" (vrrp_check_packet).
        if interval_cs != expected.interval_cs:
            return Rejected("adver_int", interval_cs / 100, expected.interval_cs / 100)
    else:
        auth_type = AUTH_NONE
        auth_data = b""
        interval_cs = struct.unpack_from("!H", ip_payload, 4)[0] & 0x0FFF
    if vt & 0x0F != ADVERT_TYPE:
        return Rejected("type", vt & 0x0F, ADVERT_TYPE)
    mismatch: str | None = None
    if naddr != len(expected.addresses):
        # keepalived logs and counts this (addr_list_err); pykeep accepts the
        # advert as the issue specifies — the machine does the counting.
        mismatch = "addr_count"
    if family == 4 and ip_total_length is not None and ip_total_length != n + ip_header_length:
        return Rejected("ip_length", ip_total_length, n + ip_header_length)
    csum = struct.unpack_from("!H", ip_payload, 6)[0]
    if family == 4 or expected.verify_checksum6:
        if version == 2:
            ok = checksum(ip_payload) == 0
        else:
            ok = checksum(_pseudo_header(src, dst, n) + ip_payload) == 0
            if not ok and family == 4 and (expected.unicast or expected.v3_checksum_as_v2):
                # unicast_chksum_compat: the sender used the multicast group
                # in the pseudo-header (vrrp_check_packet, CHKSUM_COMPATIBILITY_AUTO).
                ok = checksum(_pseudo_header(src, expected.mcast_group4, n) + ip_payload) == 0
        if not ok:
            return Rejected("checksum", csum, None)
    is_mcast = (int(dst) >> 28) == 0xE if family == 4 else (int(dst) >> 120) == 0xFF
    if is_mcast == expected.unicast:
        return Rejected("dst", str(dst), "unicast" if expected.unicast else "multicast")
    body = ip_payload[8 : 8 + naddr * alen]
    addrs: tuple[IPAddress, ...]
    if mismatch is None and body == expected.packed_addresses:
        addrs = expected.addresses  # the common case: reuse, don't re-parse
    elif family == 4:
        addrs = tuple(ipaddress.IPv4Address(body[i : i + 4]) for i in range(0, len(body), 4))
    else:
        addrs = tuple(ipaddress.IPv6Address(body[i : i + 16]) for i in range(0, len(body), 16))
    if (
        mismatch is None
        and addrs is not expected.addresses
        and set(expected.addresses) - set(addrs)
    ):
        mismatch = "addr_list"
    if expected.unicast and expected.check_unicast_src and src not in expected.unicast_peers:
        return Rejected("unicast_src", str(src), None)
    return Advert(version, vrid, prio, interval_cs, addrs, auth_type, auth_data, csum, mismatch)


@dataclass(frozen=True, slots=True)
class IPv4Packet:
    """What :func:`parse_ipv4` pulls out of a raw-socket IPv4 datagram."""

    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    ttl: int
    protocol: int
    total_length: int
    header_length: int
    payload: bytes


def parse_ipv4(datagram: bytes) -> IPv4Packet | Rejected:
    """Split a datagram from an AF_INET raw socket (which includes the IP header).

    IPv6 raw sockets deliver only the payload; the hop limit then comes from
    IPV6_RECVHOPLIMIT ancillary data and goes straight to :func:`decode`.
    The IP total-length check is left to :func:`decode`, where
    vrrp_check_packet does it.
    """
    if len(datagram) < 20:
        return Rejected("short", len(datagram), 20)
    ver_ihl, _tos, tot_len, _id, _frag, ttl, proto, _csum, s, d = _IP4.unpack_from(datagram)
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or ihl < 20 or len(datagram) < ihl:
        return Rejected("short", len(datagram), max(ihl, 20))
    if proto != PROTO_VRRP:
        return Rejected("not_vrrp", proto, PROTO_VRRP)
    return IPv4Packet(
        src=ipaddress.IPv4Address(s),
        dst=ipaddress.IPv4Address(d),
        ttl=ttl,
        protocol=proto,
        total_length=tot_len,
        header_length=ihl,
        payload=datagram[ihl:],
    )


def decode_ipv4(datagram: bytes, *, expected: ReceiveParams) -> tuple[IPAddress, Advert | Rejected]:
    """Convenience for AF_INET raw sockets: parse the IP header, then :func:`decode`.

    Returns the source address (0.0.0.0 when the IP header itself is bad)
    with the result.
    """
    pkt = parse_ipv4(datagram)
    if isinstance(pkt, Rejected):
        return ipaddress.IPv4Address(0), pkt
    return pkt.src, decode(
        pkt.payload,
        src=pkt.src,
        dst=pkt.dst,
        ttl=pkt.ttl,
        expected=expected,
        ip_total_length=pkt.total_length,
        ip_header_length=pkt.header_length,
    )


def build_ipv4(
    payload: bytes,
    *,
    src: ipaddress.IPv4Address,
    dst: ipaddress.IPv4Address,
    ttl: int = VRRP_TTL,
    ident: int = 0,
) -> bytes:
    """An IPv4 header (TOS 0xc0, as keepalived sends) in front of a VRRP payload.

    For tests and the simulator; the driver lets the kernel build headers.
    """
    head = _IP4.pack(
        0x45, 0xC0, 20 + len(payload), ident, 0, ttl, PROTO_VRRP, 0, src.packed, dst.packed
    )
    csum = checksum(head)
    return head[:10] + struct.pack("!H", csum) + head[12:] + payload
