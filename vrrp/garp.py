"""Gratuitous ARP and unsolicited Neighbour Advertisements over AF_PACKET.

The frames are byte-for-byte what keepalived sends (keepalived/vrrp/vrrp_arp.c
``send_gratuitous_arp_immediate``, vrrp_ndisc.c
``ndisc_send_unsolicited_na_immediate``):

- GARP: broadcast Ethernet frame, ARP *request*, sender = target = the VIP,
  sender MAC = the interface's MAC, target MAC = ff:ff:ff:ff:ff:ff, no padding
  (the NIC pads short frames, veth does not);
- NA: to 33:33:00:00:00:01 / ff02::1 from the VIP itself, hop limit 255,
  Override flag always, Router flag when the interface forwards IPv6, one
  target link-layer address option.

``vrrp_garp_interval`` / ``vrrp_gna_interval`` space consecutive frames on one
interface (keepalived's per-interface ``garp_delay``), so a burst for many
VIPs does not flood switches.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

import trio

from pykeep.config.model import IPAddress

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = b"\xff" * 6
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
ALL_NODES = ipaddress.IPv6Address("ff02::1")


def arp_frame(mac: bytes, vip: ipaddress.IPv4Address) -> bytes:
    """keepalived's gratuitous ARP: a broadcast request for our own VIP."""
    eth = BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + vip.packed + BROADCAST + vip.packed
    return eth + arp


def _icmp6_checksum(src: bytes, dst: bytes, payload: bytes) -> int:
    pseudo = src + dst + struct.pack("!I3xB", len(payload), 58)
    data = pseudo + payload
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def na_frame(mac: bytes, vip: ipaddress.IPv6Address, *, router: bool) -> bytes:
    """keepalived's unsolicited NA for ``vip`` (RFC 4861 §4.4, §7.2.6)."""
    flags = 0x20000000 | (0x80000000 if router else 0)  # Override [+ Router]
    body = struct.pack("!BBHI", 136, 0, 0, flags) + vip.packed + struct.pack("!BB", 2, 1) + mac
    check = _icmp6_checksum(vip.packed, ALL_NODES.packed, body)
    body = body[:2] + struct.pack("!H", check) + body[4:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(body), 58, 255) + vip.packed + ALL_NODES.packed
    eth = ALL_NODES_MAC + mac + struct.pack("!H", ETH_P_IPV6)
    return eth + ip6 + body


def ipv6_forwarding(ifname: str) -> bool:
    """keepalived sets the NA Router flag from the interface's forwarding sysctl."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/forwarding") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


class Announcer:
    """One AF_PACKET socket per interface, with keepalived's pacing.

    ``interval4``/``interval6`` are the minimum gaps between two GARPs / NAs
    on this interface; 0 sends a burst back to back.
    """

    def __init__(
        self, ifname: str, ifindex: int, mac: bytes, interval4: float, interval6: float
    ) -> None:
        self.ifname = ifname
        self.ifindex = ifindex
        self.mac = mac
        self.interval4 = interval4
        self.interval6 = interval6
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._sock.setblocking(False)
        self._next4 = 0.0
        self._next6 = 0.0
        self._lock = trio.Lock()
        self.sent = 0

    def close(self) -> None:
        self._sock.close()

    def _send(self, frame: bytes, proto: int) -> None:
        try:
            self._sock.sendto(frame, (self.ifname, proto))
            self.sent += 1
        except OSError:
            # The link went down under us; the tracker will move us to FAULT.
            pass

    async def announce(self, vips: list[IPAddress], repeat: int) -> None:
        """Send ``repeat`` rounds of GARP/NA for every VIP, paced per family."""
        router = ipv6_forwarding(self.ifname)
        async with self._lock:
            for _ in range(max(repeat, 0)):
                for vip in vips:
                    if isinstance(vip, ipaddress.IPv4Address):
                        await self._pace(4)
                        self._send(arp_frame(self.mac, vip), ETH_P_ARP)
                    else:
                        await self._pace(6)
                        self._send(na_frame(self.mac, vip, router=router), ETH_P_IPV6)

    async def _pace(self, family: int) -> None:
        """Wait for this interface's next free slot for ``family``.

        The next slot counts from when a frame actually left, never from a
        slot that was due while the process was stopped: after SIGSTOP/SIGCONT
        the queued frames go out one interval apart again instead of all at
        once (keepalived's vrrp_arp.c sets ``garp_next_time`` from
        ``time_now`` each time it sends).
        """
        interval = self.interval4 if family == 4 else self.interval6
        if interval <= 0:
            return
        nxt = self._next4 if family == 4 else self._next6
        if nxt > trio.current_time():
            await trio.sleep_until(nxt)
        # Late by less than an interval (timer jitter): keep the cadence.  Later
        # than that: the slot was missed, and the next one counts from now.
        now = trio.current_time()
        start = nxt if now - nxt < interval else now
        if family == 4:
            self._next4 = start + interval
        else:
            self._next6 = start + interval
