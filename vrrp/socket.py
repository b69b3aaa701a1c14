"""Raw IP protocol-112 sockets, opened the way keepalived opens them.

keepalived keeps a *pool* of sockets keyed by (family, interface, unicast
source) and demultiplexes the instances that share one by VRID
(keepalived/vrrp/vrrp.c ``open_sockpool_socket``, ``open_vrrp_read_socket``,
``open_vrrp_send_socket``; keepalived/vrrp/vrrp_if.c ``if_setsockopt_*``).
Mirroring that matters on the wire:

- IPv4 adverts are sent with ``IP_HDRINCL`` and a header we build: TOS 0xc0,
  TTL 255 (``unicast_ttl`` in unicast mode), DF clear and an IP id that
  counts up per instance from 1 (keepalived ``vrrp_update_pkt``).
- IPv6 adverts leave with traffic class 0xc0, hop limit 255, the interface's
  link-local source given in ``IPV6_PKTINFO`` and the checksum filled in by
  the kernel (``IPV6_CHECKSUM`` at offset 6), as keepalived asks for.
- Multicast receive sockets join the instance's group (224.0.0.18 / ff02::12,
  or ``mcast_dst_ip``) on the interface only, turn ``IP_MULTICAST_ALL`` off
  and bind to the group, so the kernel hands each socket only what was sent
  to its group; unicast ones bind to ``unicast_src_ip``.  Both are bound to
  the device.  The pool key holds the group for multicast and the source
  for unicast (vrrp_scheduler.c ``already_exist_sock``): two instances with
  the same VRID on different groups never see each other's adverts.

One receive socket serves every instance of its key: each wake-up drains it
(``recv`` until EAGAIN) and hands each datagram to the instance with its
VRID; sends are non-blocking writes that only wait when the kernel's buffer
is full.  A backup hears its master's same advert every interval: an IPv4
datagram whose bytes equal those of the last one its VRID accepted (the IP
id and header checksum aside) goes to the instance's repeat hook unparsed.

This module moves bytes only: it parses the IPv4 header far enough to hand
the VRRP payload, source, destination and TTL to ``vrrp.packet.decode``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import socket
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, cast

import trio

from pykeep.config.model import IPAddress, frozen_dataclass

IPPROTO_VRRP = 112
IP_MULTICAST_ALL = 49  # linux/in.h; not exported by Python's socket module
IPV6_MULTICAST_ALL = 29  # linux/in6.h
SO_ATTACH_FILTER = 26  # asm-generic/socket.h
VRRP_TOS = 0xC0
VRRP_TTL = 255

MCAST4 = ipaddress.IPv4Address("224.0.0.18")
MCAST6 = ipaddress.IPv6Address("ff02::12")


@frozen_dataclass
class Received:
    """One VRRP datagram as the kernel delivered it."""

    payload: bytes  # the VRRP part, IP header stripped
    src: IPAddress
    dst: IPAddress
    ttl: int | None  # IPv4 TTL or IPv6 hop limit; None when the kernel did not say
    ip_total_length: int | None = None  # IPv4 header's total length, for decode()
    ip_header_length: int = 20


class Datagram(NamedTuple):
    """An IPv4 advert built for the send socket: bytes, send flags, destination."""

    data: bytes
    flags: int
    addr: tuple[str, int]


@frozen_dataclass
class SocketKey:
    """What keepalived's socket pool keys on (``sock_t`` in vrrp.h)."""

    family: int  # 4 or 6
    ifname: str
    unicast_src: IPAddress | None
    #: the multicast group (None for unicast): instances on different groups
    #: have sockets of their own
    group: IPAddress | None = None


def ipv4_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement sum, for the IPv4 header we build."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def build_ipv4(payload: bytes, *, src: IPAddress, dst: IPAddress, ttl: int, ip_id: int) -> bytes:
    """The IPv4 header keepalived's ``vrrp_build_ip4`` writes, plus payload."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        VRRP_TOS,
        20 + len(payload),
        ip_id & 0xFFFF,
        0,
        ttl,
        IPPROTO_VRRP,
        0,
        src.packed,
        dst.packed,
    )
    check = ipv4_checksum(header)
    return header[:10] + struct.pack("!H", check) + header[12:] + payload


_IP4_FIELDS = struct.Struct("!BxH4xBB2x4s4s")  # ver/ihl, total length, ttl, proto, src, dst
_ADDRESSES: dict[bytes, ipaddress.IPv4Address] = {}


def _address(raw: bytes) -> ipaddress.IPv4Address:
    """One address object per sender and group, not one per datagram."""
    found = _ADDRESSES.get(raw)
    if found is None:
        if len(_ADDRESSES) >= 4096:
            _ADDRESSES.clear()  # bounded whatever arrives
        found = _ADDRESSES[raw] = ipaddress.IPv4Address(raw)
    return found


def parse_ipv4(datagram: bytes) -> Received | str:
    """Split a raw IPv4 datagram; a reason when unusable.

    The same checks and reasons as ``vrrp.packet.parse_ipv4``, on the
    per-datagram path of every backup: one unpack, cached address objects.
    """
    if len(datagram) < 20:
        return "short"
    ver_ihl, tot_len, ttl, proto, src, dst = _IP4_FIELDS.unpack_from(datagram)
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or ihl < 20 or len(datagram) < ihl:
        return "short"
    if proto != IPPROTO_VRRP:
        return "not_vrrp"
    return Received(
        payload=datagram[ihl:],
        src=_address(src),
        dst=_address(dst),
        ttl=ttl,
        ip_total_length=tot_len,
        ip_header_length=ihl,
    )


def _bind_device(sock: socket.socket, ifname: str) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode() + b"\0")


def _no_receive(sock: socket.socket) -> None:
    """keepalived's ``if_setsockopt_no_receive``: a BPF filter that accepts nothing.

    A raw send socket would otherwise queue every VRRP packet on the link.
    """
    insn = (ctypes.c_ubyte * 8)(*struct.pack("=HBBI", 0x06, 0, 0, 0))  # BPF_RET|BPF_K 0
    prog = struct.pack("@HP", 1, ctypes.addressof(insn))  # struct sock_fprog (padded)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)


def open_receive(key: SocketKey, ifindex: int, group: IPAddress) -> socket.socket:
    """keepalived's ``open_vrrp_read_socket`` for one pool entry."""
    fam = socket.AF_INET if key.family == 4 else socket.AF_INET6
    sock = socket.socket(fam, socket.SOCK_RAW, IPPROTO_VRRP)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        if key.family == 4:
            sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
        if key.unicast_src is None:
            if key.family == 4:
                mreqn = struct.pack("4s4si", group.packed, b"\0" * 4, ifindex)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
                sock.bind((str(group), 0))
            else:
                mreq = struct.pack("16sI", group.packed, ifindex)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
                sock.bind((str(group), 0, 0, ifindex))
        elif key.family == 4:
            sock.bind((str(key.unicast_src), 0))
        else:
            src6 = ipaddress.IPv6Address(str(key.unicast_src))
            sock.bind((str(src6), 0, 0, ifindex if src6.is_link_local else 0))
        if key.family == 6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        _bind_device(sock, key.ifname)
        if key.family == 6:
            # The kernel verifies (and drops) bad v6 checksums, as for keepalived.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 6)
    except BaseException:
        sock.close()
        raise
    return sock


def open_send(key: SocketKey, ifindex: int) -> socket.socket:
    """keepalived's ``open_vrrp_send_socket``."""
    fam = socket.AF_INET if key.family == 4 else socket.AF_INET6
    sock = socket.socket(fam, socket.SOCK_RAW, IPPROTO_VRRP)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
        if key.family == 4:
            sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 6)
            if key.unicast_src is None:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, VRRP_TTL)
        _bind_device(sock, key.ifname)
        if key.unicast_src is None:
            if key.family == 4:
                mreqn = struct.pack("4s4si", b"\0" * 4, b"\0" * 4, ifindex)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        if key.family == 4:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, VRRP_TOS)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, VRRP_TOS)
        _no_receive(sock)
    except BaseException:
        sock.close()
        raise
    return sock


#: takes a datagram for its VRID; True when the same bytes again may go to the repeat hook
Subscriber = Callable[[Received], "bool | None"]
#: handles a repeat of the last accepted datagram, read at the given trio time;
#: False: it goes the full way
RepeatHook = Callable[[float], bool]
#: datagrams read per wake-up at most, so one busy link cannot starve the rest
DRAIN_BATCH = 256


@dataclass
class PoolSocket:
    """One pool entry: a receive and a send socket shared by several VRIDs."""

    key: SocketKey
    ifindex: int
    group: IPAddress
    rx: socket.socket
    tx: socket.socket
    subscribers: dict[int, Subscriber] = field(default_factory=dict)
    #: per VRID: the repeat hook, and the last accepted datagram's compared parts
    repeats: dict[int, RepeatHook] = field(default_factory=dict)
    _accepted: dict[int, tuple[bytes, bytes, bytes]] = field(default_factory=dict)
    #: datagrams dropped before any instance saw them, by reason
    dropped: Counter[str] = field(default_factory=Counter)
    #: called once per drained batch (the timer queue's deferred re-arm)
    after_drain: Callable[[], None] = field(default=lambda: None)
    #: the pool, told of adverts for VRIDs nobody runs (log_unknown_vrids)
    pool: SocketPool | None = None
    #: IPv4 header templates of the adverts sent, with their partial checksums
    _headers: dict[tuple[object, ...], tuple[bytearray, int, tuple[str, int]]] = field(
        default_factory=dict
    )

    def datagram(
        self, payload: bytes, *, src: IPAddress, dst: IPAddress, ttl: int, ip_id: int
    ) -> Datagram | None:
        """One IPv4 advert ready for :meth:`sendto_nowait`; None for IPv6 (use :meth:`send`).

        The header differs between two adverts of an instance only in its id
        and checksum: both are patched into a cached template (the checksum
        from a cached partial sum), which is a fifth of building it anew.
        Building apart from sending lets the timer pass build every due
        advert first and then send them back to back (vrrp/driver.py).
        """
        if self.key.family != 4:
            return None
        flags = socket.MSG_DONTROUTE if self.key.unicast_src is None else 0
        ck = (src, dst, ttl, len(payload))
        cached = self._headers.get(ck)
        if cached is None:
            header = bytearray(build_ipv4(b"", src=src, dst=dst, ttl=ttl, ip_id=0))
            struct.pack_into("!HH", header, 2, 20 + len(payload), 0)
            struct.pack_into("!H", header, 10, 0)
            partial = sum(struct.unpack("!10H", header))
            cached = (header, partial, (str(dst), 0))
            if len(self._headers) > 64:
                self._headers.clear()
            self._headers[ck] = cached
        header, partial, addr = cached
        ip_id &= 0xFFFF
        total = partial + ip_id
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        struct.pack_into("!H", header, 4, ip_id)
        struct.pack_into("!H", header, 10, ~total & 0xFFFF)
        return Datagram(bytes(header) + payload, flags, addr)

    def sendto_nowait(self, datagram: Datagram) -> bool:
        """Hand a built datagram to the kernel; False when its buffer is full (nothing sent)."""
        try:
            self.tx.sendto(datagram.data, datagram.flags, datagram.addr)
        except BlockingIOError:
            return False
        return True

    async def send_datagram(self, datagram: Datagram) -> None:
        """Send a built datagram, waiting while the kernel's buffer is full."""
        while not self.sendto_nowait(datagram):
            await trio.lowlevel.wait_writable(self.tx)

    async def send(
        self,
        payload: bytes,
        *,
        src: IPAddress,
        dst: IPAddress,
        ttl: int,
        ip_id: int,
    ) -> None:
        """Send one advert (keepalived ``vrrp_send_pkt``)."""
        datagram = self.datagram(payload, src=src, dst=dst, ttl=ttl, ip_id=ip_id)
        if datagram is not None:
            await self.send_datagram(datagram)
            return
        flags = socket.MSG_DONTROUTE if self.key.unicast_src is None else 0
        dst6 = ipaddress.IPv6Address(str(dst))
        scope = self.ifindex if (dst6.is_multicast or dst6.is_link_local) else 0
        anc = [
            (
                socket.IPPROTO_IPV6,
                socket.IPV6_PKTINFO,
                src.packed + struct.pack("@I", self.ifindex),
            )
        ]
        if self.key.unicast_src is not None:
            anc.append((socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, struct.pack("@i", ttl)))
        while True:
            try:
                self.tx.sendmsg([payload], anc, flags, (str(dst6), 0, 0, scope))
                return
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.tx)

    def receive_nowait(self) -> Received | str:
        """The next queued datagram, or the reason it is unusable; BlockingIOError if none."""
        if self.key.family == 4:
            return parse_ipv4(self.rx.recv(65535))
        data, ancdata, _flags, addr = self.rx.recvmsg(65535, 256)
        ttl: int | None = None
        dst: IPAddress = self.group
        for level, kind, value in ancdata:
            if level != socket.IPPROTO_IPV6:
                continue
            if kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
                ttl = int(struct.unpack("@i", value[:4])[0])
            elif kind == socket.IPV6_PKTINFO and len(value) >= 16:
                dst = ipaddress.IPv6Address(value[:16])
        peer = cast(tuple[str, int, int, int], addr)
        src = ipaddress.IPv6Address(peer[0].split("%")[0])
        return Received(payload=data, src=src, dst=dst, ttl=ttl)

    async def receive(self) -> Received | str:
        """Next datagram, or the reason it is unusable."""
        while True:
            try:
                return self.receive_nowait()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.rx)

    def _dispatch(self, got: Received | str, datagram: bytes | None = None) -> None:
        if isinstance(got, str):
            self.dropped[got] += 1
            return
        if len(got.payload) < 2:
            self.dropped["length"] += 1
            return
        vrid = got.payload[1]
        handler = self.subscribers.get(vrid)
        if handler is None:
            # keepalived drops adverts for VRIDs it does not run, silently
            # unless log_unknown_vrids (vrrp_scheduler.c vrrp_dispatcher_read).
            self.dropped["vrid"] += 1
            if self.pool is not None and self.pool.log_unknown is not None:
                self.pool.log_unknown(
                    f"Unknown VRID({vrid}) received on interface({self.key.ifname}). ignoring..."
                )
            return
        if handler(got) and datagram is not None and vrid in self.repeats:
            self._accepted[vrid] = (datagram[12:], datagram[8:10], datagram[:4])
        else:
            self._accepted.pop(vrid, None)

    def _repeat(self, datagram: bytes, now: float) -> bool:
        """Hand a repeat of its VRID's last accepted datagram to the repeat hook.

        Compared: version, header length, TOS, total length, TTL, protocol,
        addresses, options and the whole VRRP part, everything
        ``parse_ipv4`` and ``vrrp.packet.decode`` read; not the IP id and
        checksum, which change with every advert (vrrp.c vrrp_update_pkt).
        """
        ihl = (datagram[0] & 0x0F) << 2
        if len(datagram) <= ihl + 1:
            return False
        vrid = datagram[ihl + 1]
        seen = self._accepted.get(vrid)
        if (
            seen is None
            or datagram[12:] != seen[0]
            or datagram[8:10] != seen[1]
            or datagram[:4] != seen[2]
        ):
            return False
        return self.repeats[vrid](now)

    async def run(self) -> None:
        """Read forever: one wake-up drains the socket, each datagram to its VRID."""
        while True:
            await trio.lowlevel.wait_readable(self.rx)
            self.drain_nowait()
            self.after_drain()

    def drain_nowait(self) -> None:
        """Dispatch what the socket holds now (up to a batch), without waiting.

        The batch is dated once, when the drain starts: every datagram in it
        had arrived by then, and the clock read costs as much as the repeat
        path itself (255 adverts arrive together from an aligned master).
        """
        rx = self.rx
        v4 = self.key.family == 4
        now = trio.current_time()
        for _ in range(DRAIN_BATCH):
            try:
                if not v4:
                    self._dispatch(self.receive_nowait())
                    continue
                datagram = rx.recv(65535)
            except BlockingIOError:
                return
            if not self._repeat(datagram, now):
                self._dispatch(parse_ipv4(datagram), datagram)

    def close(self) -> None:
        for sock in (self.rx, self.tx):
            if sock.fileno() >= 0:
                # A task waiting on the fd must hear of it before the fd goes away.
                with contextlib.suppress(RuntimeError):
                    trio.lowlevel.notify_closing(sock)
                sock.close()


class SocketPool:
    """All pool sockets of the daemon, shared by instances as in keepalived."""

    def __init__(self, after_drain: Callable[[], None] = lambda: None) -> None:
        self.after_drain = after_drain
        #: global log_unknown_vrids: where the line goes (None: not logged)
        self.log_unknown: Callable[[str], None] | None = None
        self.sockets: dict[SocketKey, PoolSocket] = {}
        self._nursery: trio.Nursery | None = None

    def attach(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def subscribe(
        self,
        key: SocketKey,
        ifindex: int,
        group: IPAddress,
        vrid: int,
        handler: Subscriber,
        repeat: RepeatHook | None = None,
    ) -> PoolSocket:
        """Register ``handler`` (and ``repeat``) for ``vrid`` on the socket for ``key``."""
        ps = self.sockets.get(key)
        if ps is None:
            rx = open_receive(key, ifindex, group)
            try:
                tx = open_send(key, ifindex)
            except BaseException:
                rx.close()
                raise
            ps = PoolSocket(
                key=key,
                ifindex=ifindex,
                group=group,
                rx=rx,
                tx=tx,
                after_drain=self.after_drain,
                pool=self,
            )
            self.sockets[key] = ps
            assert self._nursery is not None, "SocketPool.attach() first"
            self._nursery.start_soon(self._serve, ps)
        ps.subscribers[vrid] = handler
        ps._accepted.pop(vrid, None)
        if repeat is not None:
            ps.repeats[vrid] = repeat
        else:
            ps.repeats.pop(vrid, None)
        return ps

    def unsubscribe(self, key: SocketKey, vrid: int) -> None:
        ps = self.sockets.get(key)
        if ps is None:
            return
        ps.subscribers.pop(vrid, None)
        ps.repeats.pop(vrid, None)
        ps._accepted.pop(vrid, None)
        if not ps.subscribers:
            del self.sockets[key]
            ps.close()

    async def _serve(self, ps: PoolSocket) -> None:
        # Closed by unsubscribe(), or the interface went away.
        with contextlib.suppress(trio.ClosedResourceError, OSError):
            await ps.run()

    def drain_nowait(self) -> None:
        """Dispatch every advert already queued on any socket, before timers fire.

        A backup stopped past its Master_Down time (SIGSTOP, a starved host)
        wakes with its timer due and its master's adverts queued.
        keepalived's scheduler moves every ready socket's read thread to the
        ready queue before any timeout thread of that epoll round
        (lib/scheduler.c thread_fetch_next_queue), and the VRRP read
        thread's timeout is the socket's own, so the adverts are read and
        the timer never fires.  trio runs ready tasks in no fixed order,
        so the timer queue calls this first.
        """
        for ps in list(self.sockets.values()):
            if ps.rx.fileno() >= 0:
                with contextlib.suppress(OSError):
                    ps.drain_nowait()

    def dropped(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for ps in self.sockets.values():
            total.update(ps.dropped)
        return total

    def close(self) -> None:
        for ps in self.sockets.values():
            ps.close()
        self.sockets.clear()
