"""Craft VRRP / ARP frames with scapy and put them on a rig segment.

Why: the fault tests (issue 4 "bad input") must show that wrong-TTL, bad-checksum,
truncated, wrong-version, wrong-auth, wrong-VRID and wrong-interval adverts, and a
flood of garbage, are dropped and counted.  Those frames cannot come from a
well-behaved daemon, so they are built here byte by byte and sent from an
AF_PACKET socket opened inside a node's namespace (no subprocess per frame, so a
10,000-frame flood takes well under a second).

scapy only builds the frames; the daemon never imports it.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sim.netns import Rig, socket_in

VRRP_MCAST_MAC = "01:00:5e:00:00:12"
VRRP_MCAST_V4 = "224.0.0.18"
VRRP_MCAST_V6 = "ff02::12"
VRRP_MCAST_MAC_V6 = "33:33:00:00:00:12"


def vrrp_mac(vrid: int, v6: bool = False) -> str:
    """The virtual router MAC 00-00-5E-00-01-{VRID} (RFC 5798 §7.3; 02 for IPv6)."""
    return f"00:00:5e:00:{'02' if v6 else '01'}:{vrid:02x}"


def advert(
    src_mac: str,
    src_ip: str,
    vrid: int,
    priority: int,
    vips: Sequence[str],
    *,
    version: int = 2,
    advert_int: float = 1.0,
    auth_pass: str | None = None,
    ttl: int = 255,
    dst: str | None = None,
    chksum: int | None = None,
) -> bytes:
    """A VRRP advertisement frame as keepalived would send it (unless told otherwise).

    ``version`` 2: RFC 3768, ``advert_int`` in seconds, optional PASS auth.
    ``version`` 3: RFC 5798, interval in centiseconds, IPv4 or IPv6 by ``src_ip``.
    ``chksum`` forces a (wrong) checksum; ``ttl`` other than 255 must be dropped.
    """
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.layers.vrrp import VRRP, VRRPv3
    from scapy.packet import Packet

    ip: Packet
    body: Packet
    v6 = ":" in src_ip
    if v6:
        ip = IPv6(src=src_ip, dst=dst or VRRP_MCAST_V6, hlim=ttl, nh=112)
        ether = Ether(src=src_mac, dst=VRRP_MCAST_MAC_V6)
    else:
        # keepalived sends TOS 0xc0 (internetwork control), DF unset.
        ip = IP(src=src_ip, dst=dst or VRRP_MCAST_V4, ttl=ttl, proto=112, tos=0xC0)
        ether = Ether(src=src_mac, dst=VRRP_MCAST_MAC)
    if version == 3 or v6:
        body = VRRPv3(
            vrid=vrid, priority=priority, adv=round(advert_int * 100), addrlist=list(vips)
        )
    else:
        kw: dict[str, Any] = {}
        if auth_pass is not None:
            raw = auth_pass.encode()[:8].ljust(8, b"\0")
            kw = {
                "authtype": 1,
                "auth1": int.from_bytes(raw[:4], "big"),
                "auth2": int.from_bytes(raw[4:], "big"),
            }
        body = VRRP(
            version=version,
            vrid=vrid,
            priority=priority,
            adv=int(advert_int),
            addrlist=list(vips),
            **kw,
        )
    if chksum is not None:
        body.chksum = chksum
    return bytes(ether / ip / body)


def garp(src_mac: str, ip: str) -> bytes:
    """A gratuitous ARP request (sender = target = ``ip``), as keepalived's GARP."""
    from scapy.layers.l2 import ARP, Ether

    return bytes(
        Ether(src=src_mac, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=src_mac, psrc=ip, hwdst="00:00:00:00:00:00", pdst=ip)
    )


def with_bad_checksum(frame: bytes) -> bytes:
    """The frame with its VRRP checksum (bytes 6-7 of the VRRP header) inverted."""
    ihl = (frame[14] & 0x0F) * 4 if frame[12:14] == b"\x08\x00" else 40
    off = 14 + ihl + 6
    return frame[:off] + bytes(b ^ 0xFF for b in frame[off : off + 2]) + frame[off + 2 :]


def truncated(frame: bytes, keep: int) -> bytes:
    """The first ``keep`` bytes (the IP header still claims the full length)."""
    return frame[:keep]


def _ipv4_checksum(header: bytes) -> int:
    total: int = sum(int(w) for w in struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def garbage(count: int, *, src_mac: str, src_ip: str, seed: int = 0) -> list[bytes]:
    """``count`` random protocol-112 frames: valid Ethernet+IPv4 (so the kernel
    delivers them to the daemon's raw socket), random VRRP bytes of 0-80 octets.

    Built with ``struct``, not scapy: 10,000 scapy packets take seconds.
    """
    rng = random.Random(seed)
    ether = bytes.fromhex(VRRP_MCAST_MAC.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
    ether += b"\x08\x00"
    src = socket.inet_aton(src_ip)
    dst = socket.inet_aton(VRRP_MCAST_V4)
    frames = []
    for ident in range(count):
        payload = rng.randbytes(rng.randint(0, 80))
        hdr = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), ident & 0xFFFF, 0, 255, 112, 0, src, dst
        )
        hdr = hdr[:10] + struct.pack("!H", _ipv4_checksum(hdr)) + hdr[12:]
        frames.append(ether + hdr + payload)
    return frames


class Injector:
    """An AF_PACKET socket on ``ifname`` inside ``node``'s namespace."""

    def __init__(self, rig: Rig, node: str, ifname: str = "eth0") -> None:
        self.sock = socket_in(rig.ns(node), socket.AF_PACKET, socket.SOCK_RAW)
        # The interface name is resolved at bind time, by the socket's own namespace.
        self.sock.bind((ifname, 0))
        self.sent = 0

    def send(self, frames: bytes | Iterable[bytes], *, interval: float = 0.0) -> int:
        if isinstance(frames, bytes):
            frames = [frames]
        n = 0
        for frame in frames:
            self.sock.send(frame)
            n += 1
            if interval:
                time.sleep(interval)
        self.sent += n
        return n

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Injector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def inject(
    rig: Rig,
    node: str,
    frames: bytes | Iterable[bytes],
    *,
    ifname: str = "eth0",
    interval: float = 0.0,
) -> int:
    """Send ``frames`` from ``node``'s ``ifname``; returns how many were sent."""
    with Injector(rig, node, ifname) as inj:
        return inj.send(frames, interval=interval)
