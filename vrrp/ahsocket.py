"""The raw IPPROTO_AH socket of an ``auth_type AH`` instance.

keepalived keys its socket pool on the IP protocol as well as the interface
(vrrp_scheduler.c ``vrrp_open_sockpool``: ``proto = IPPROTO_AH`` for AH
instances), so AH adverts travel on a protocol-51 raw socket of their own
and never reach the protocol-112 path.  AH is rare and per instance, so each
AH instance owns one socket here, which filters by VRID; the bytes it sends
and accepts are decided by the pure :mod:`vrrp.ah`.

The socket offers the two calls the instance driver makes on a pool socket
(``send`` with the VRRP part, and a reader handing ``Received`` values on),
so an AH instance differs from others only in which socket it holds, plus
:meth:`AhSocket.auth_check`, the AH verification handed to
:func:`vrrp.packet.decode` for the datagram being delivered.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
from collections import Counter
from collections.abc import Callable

import trio

from pykeep.config.model import IPAddress
from vrrp import ah
from vrrp.packet import Rejected, pad_password
from vrrp.socket import IP_MULTICAST_ALL, VRRP_TOS, Received, SocketKey

Subscriber = Callable[[Received], None]


def open_ah_socket(
    ifname: str, ifindex: int, group: IPAddress, unicast_src: IPAddress | None
) -> socket.socket:
    """One IPv4 raw socket of protocol 51 that both receives and sends (IP_HDRINCL).

    Options as keepalived's ``open_vrrp_read_socket``/``open_vrrp_send_socket``:
    bound to the device, multicast joined on that interface only with
    ``IP_MULTICAST_ALL`` off and loopback off.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, ah.PROTO_AH)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, VRRP_TOS)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode() + b"\0")
        if unicast_src is None:
            mreqn = struct.pack("4s4si", group.packed, b"\0" * 4, ifindex)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            ifreq = struct.pack("4s4si", b"\0" * 4, b"\0" * 4, ifindex)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, ifreq)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    except BaseException:
        sock.close()
        raise
    return sock


class AhSocket:
    """An AH instance's socket, its anti-replay counter and its key."""

    def __init__(
        self,
        key: SocketKey,
        ifindex: int,
        group: IPAddress,
        vrid: int,
        password: bytes,
        *,
        unicast: bool,
    ) -> None:
        self.key = key
        self.ifindex = ifindex
        self.group = group
        self.vrid = vrid
        self.secret = pad_password(password)
        self.unicast = unicast
        self.counter = ah.SeqCounter()
        self.sock = trio.socket.from_stdlib_socket(
            open_ah_socket(key.ifname, ifindex, group, key.unicast_src)
        )
        #: datagrams dropped before the instance saw them, by reason
        self.dropped: Counter[str] = Counter()
        self._ip_id: int | None = None
        self._seq = 0
        self._pending: ah.AhPacket | None = None

    async def send(
        self, payload: bytes, *, src: IPAddress, dst: IPAddress, ttl: int, ip_id: int
    ) -> None:
        """Seal and send one advert copy; a new ``ip_id`` means a new advert.

        The sequence number advances once per advert, not per unicast peer
        (vrrp.c ``vrrp_update_pkt`` only counts when not called per peer),
        and the driver gives every copy of one advert the same IP id.
        """
        if ip_id != self._ip_id:
            self._ip_id = ip_id
            self._seq = self.counter.next_send()
        data = ah.seal(
            payload,
            src=ipaddress.IPv4Address(str(src)),
            dst=ipaddress.IPv4Address(str(dst)),
            ttl=ttl,
            ip_id=ip_id,
            seq=self._seq,
            key=self.secret,
            unicast=self.unicast,
        )
        flags = socket.MSG_DONTROUTE if self.key.unicast_src is None else 0
        await self.sock.sendto(data, flags, (str(dst), 0))

    def auth_check(self) -> Rejected | None:
        """Verify the AH header of the datagram being delivered (for ``packet.decode``)."""
        pkt = self._pending
        if pkt is None:
            return Rejected("auth_type", "no AH header", "AH")
        return ah.verify(pkt, key=self.secret, counter=self.counter, unicast=self.unicast)

    def master_heard_lower(self) -> None:
        """As master, a lower-priority advert was accepted: resync the counter past it."""
        if self._pending is not None:
            self.counter.lower_priority_heard(self._pending.seq)

    async def run(self, handler: Subscriber) -> None:
        """Read until closed, handing this VRID's adverts to ``handler``."""
        with contextlib.suppress(trio.ClosedResourceError, OSError):
            while True:
                data = await self.sock.recv(65535)
                pkt = ah.parse(data)
                if isinstance(pkt, Rejected):
                    self.dropped[pkt.reason] += 1
                    continue
                if pkt.vrrp[1] != self.vrid:
                    self.dropped["vrid"] += 1
                    continue
                self._pending = pkt
                try:
                    handler(
                        Received(
                            payload=pkt.vrrp,
                            src=pkt.src,
                            dst=pkt.dst,
                            ttl=pkt.ttl,
                            ip_total_length=pkt.total_length,
                            ip_header_length=pkt.header_length,
                        )
                    )
                finally:
                    self._pending = None

    def close(self) -> None:
        self.sock.close()
