"""IPsec AH (RFC 2402, HMAC-MD5-96) around VRRPv2 adverts, as keepalived does it.

keepalived's ``auth_type AH`` is not kernel IPsec: the daemon writes the AH
header itself between the IPv4 header and the VRRP header, and checks it
itself on receive (keepalived/vrrp/vrrp.c ``vrrp_build_ipsecah``,
``vrrp_update_pkt``, ``vrrp_in_chk_ipsecah``; keepalived/include/vrrp_ipsecah.h
for the layout).  The wire format that must match, byte for byte:

- IPv4 protocol 51; the AH header is 24 bytes: next header 112, payload
  length 4 (32-bit words minus 2), 2 reserved zero bytes, the SPI, the
  sequence number, and 12 bytes of ICV (the MD5 digest truncated to 96 bits);
- the SPI is the sender's IPv4 source address (there is no SA negotiation in
  multicast, so keepalived picks a value unique to the sender);
- the VRRP header says auth type 2 and its 8-byte authentication field is
  zero; the VRRP checksum covers the VRRP part only, as for the other types;
- the ICV is HMAC-MD5 keyed with the 8-byte, zero-padded ``auth_pass``, over
  the IPv4 header with the mutable fields zeroed (TOS, fragment offset,
  header checksum; the TTL too, but only in unicast mode, where routers may
  decrement it), then the AH header with a zero ICV, then the VRRP part.

One sequence counter per instance serves both directions (vrrp.h
``ipsecah_counter``): a received advert must carry a number above it and
then becomes it; each advert sent (not each unicast copy) increments it.

Pure: bytes and integers in, bytes or a :class:`vrrp.packet.Rejected` out.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from dataclasses import dataclass

from vrrp.packet import PROTO_VRRP, Rejected

PROTO_AH = 51
AH_LEN = 24
ICV_LEN = 12  # HMAC_MD5_TRUNC
AH_PAYLOAD_LEN = 4  # IPSEC_AH_PLEN: (12*8 + 3*32)/32 - 2
#: keepalived stops incrementing here and flags the counter as cycled
SEQ_LIMIT = 0xFFFFFFFD

_IP4 = struct.Struct("!BBHHHBBH4s4s")
_AH = struct.Struct("!BBHII")  # next_header payload_len reserved spi seq (ICV follows)
_ZERO_ICV = b"\0" * ICV_LEN


@dataclass(slots=True)
class SeqCounter:
    """keepalived's ``seq_counter_t``: the anti-replay number, shared by send and receive."""

    seq: int = 0
    cycle: bool = False

    def next_send(self) -> int:
        """The number for the next advert (vrrp.c ``vrrp_update_pkt``)."""
        if self.seq > SEQ_LIMIT:
            self.cycle = True
        else:
            self.seq += 1
        return self.seq

    def entering_master(self) -> None:
        """A cycled counter restarts on becoming master (vrrp.c ``vrrp_state_goto_master``)."""
        if self.cycle:
            self.cycle = False
            self.seq = 0

    def lower_priority_heard(self, seq: int) -> None:
        """As master, an advert of lower priority resyncs the counter past it.

        vrrp.c ``vrrp_state_master_rx`` ("IPSEC-AH : Syncing seq_num"):
        the next advert sent then carries the peer's number + 2.
        """
        self.seq = (seq + 1) & 0xFFFFFFFF
        self.cycle = False


def icv(key: bytes, ip_header: bytes, ah_header: bytes, vrrp: bytes, *, unicast: bool) -> bytes:
    """The 96-bit ICV over a packet whose AH header has a zero ICV field.

    ``ip_header`` is as sent or received; the mutable fields are zeroed here
    (``vrrp_in_chk_ipsecah``: TOS, frag_off, check; TTL only in unicast).
    """
    head = bytearray(ip_header)
    head[1] = 0  # TOS
    head[6:8] = b"\0\0"  # flags + fragment offset
    head[10:12] = b"\0\0"  # header checksum
    if unicast:
        head[8] = 0  # TTL
    ah = ah_header[: AH_LEN - ICV_LEN] + _ZERO_ICV
    return hmac.new(key, bytes(head) + ah + vrrp, hashlib.md5).digest()[:ICV_LEN]


def seal(
    vrrp: bytes,
    *,
    src: ipaddress.IPv4Address,
    dst: ipaddress.IPv4Address,
    ttl: int,
    ip_id: int,
    seq: int,
    key: bytes,
    unicast: bool,
    tos: int = 0xC0,
) -> bytes:
    """A whole IPv4 datagram (for an ``IP_HDRINCL`` socket): IP header, AH, VRRP.

    ``vrrp`` is the encoded VRRPv2 part (auth type 2, zero auth data).  The IP
    header checksum is left zero, as keepalived leaves it, for the kernel to fill.
    """
    total = 20 + AH_LEN + len(vrrp)
    ip = _IP4.pack(0x45, tos, total, ip_id & 0xFFFF, 0, ttl, PROTO_AH, 0, src.packed, dst.packed)
    spi = int.from_bytes(src.packed, "big")  # ah->spi = ip->saddr
    head = _AH.pack(PROTO_VRRP, AH_PAYLOAD_LEN, 0, spi, seq & 0xFFFFFFFF)
    digest = icv(key, ip, head, vrrp, unicast=unicast)
    return ip + head + digest + vrrp


@dataclass(frozen=True, slots=True)
class AhPacket:
    """A received IPv4 datagram carrying AH, split into its parts."""

    ip_header: bytes
    ah_header: bytes
    vrrp: bytes
    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    ttl: int
    total_length: int

    @property
    def spi(self) -> int:
        return int(_AH.unpack_from(self.ah_header)[3])

    @property
    def seq(self) -> int:
        return int(_AH.unpack_from(self.ah_header)[4])

    @property
    def header_length(self) -> int:
        """IP header plus AH: what precedes the VRRP part (for decode's length check)."""
        return len(self.ip_header) + AH_LEN


def parse(datagram: bytes) -> AhPacket | Rejected:
    """Split an AF_INET raw-socket datagram of protocol 51.

    Too short for IP + AH + a VRRP header is dropped ("IPv4 VRRP packet with
    AH too short", vrrp.c ``vrrp_get_header``); an AH header for another
    protocol is silently ignored (``VRRP_PACKET_DROP`` in vrrp_check_packet).
    """
    if len(datagram) < 20:
        return Rejected("short", len(datagram), 20)
    ver_ihl, _tos, tot_len, _id, _frag, ttl, proto, _csum, s, d = _IP4.unpack_from(datagram)
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or ihl < 20:
        return Rejected("short", len(datagram), 20)
    if proto != PROTO_AH:
        return Rejected("not_vrrp", proto, PROTO_AH)
    if len(datagram) < ihl + AH_LEN + 8:
        return Rejected("short", len(datagram), ihl + AH_LEN + 8)
    ah = datagram[ihl : ihl + AH_LEN]
    if ah[0] != PROTO_VRRP:
        return Rejected("ah_next_header", ah[0], PROTO_VRRP)
    return AhPacket(
        ip_header=datagram[:ihl],
        ah_header=ah,
        vrrp=datagram[ihl + AH_LEN :],
        src=ipaddress.IPv4Address(s),
        dst=ipaddress.IPv4Address(d),
        ttl=ttl,
        total_length=tot_len,
    )


def verify(pkt: AhPacket, *, key: bytes, counter: SeqCounter, unicast: bool) -> Rejected | None:
    """keepalived's ``vrrp_in_chk_ipsecah``: ICV, then SPI, then anti-replay.

    A good packet moves the counter up to its sequence number, even if a
    later receive check then drops it, as in keepalived (the counter is
    updated inside the AH check).  The secret is never echoed in a reason.
    """
    want = icv(key, pkt.ip_header, pkt.ah_header, pkt.vrrp, unicast=unicast)
    if not hmac.compare_digest(want, pkt.ah_header[AH_LEN - ICV_LEN :]):
        return Rejected("auth_ah", "bad ICV", None)
    if pkt.spi != int.from_bytes(pkt.src.packed, "big"):
        return Rejected("auth_ah_spi", pkt.spi, str(pkt.src))
    if pkt.seq <= counter.seq:
        return Rejected("auth_ah_seq", pkt.seq, counter.seq + 1)
    counter.seq = pkt.seq
    return None
