"""The BFD speaker: every bfd_instance's session on one trio task, as keepalived's BFD process.

keepalived runs BFD in a child process of its own (keepalived/bfd/
bfd_daemon.c) with one receive socket for all sessions and one send socket
a session (bfd_scheduler.c ``bfd_open_fd_in`` / ``bfd_open_fd_out``).  The
speaker keeps that shape inside pykeep's one process:

- one receive socket on port 3784, IPv6 dual-stack when the host has IPv6,
  asking the kernel for the TTL/hop limit and the destination address of
  each datagram (RFC 5881 section 5: the TTL check needs it);
- one send socket a session, bound to the source address on a random port
  in 49152–65535 (RFC 5881 section 4), with TTL 255 (hop limit 64 for IPv6,
  keepalived's default);
- one task and one timer heap for every session: the task sleeps until the
  earliest session deadline or until a datagram arrives, then drains the
  socket.  No task a session, no busy-wait.

The protocol lives in :mod:`vrrp.bfd_session` (pure); this module only moves
bytes and time, and hands each session's Up/Down to ``publish(name, up)``.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import ipaddress
import random
import socket
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import trio

from pykeep.config.model import BfdInstance, IPAddress
from vrrp.bfd_packet import DIAG_NAMES, STATE_NAMES, UP, ControlPacket, Rejected, decode
from vrrp.bfd_session import HOPLIMIT_V6, TTL_V4, Action, Session, Settings, StateChanged

CONTROL_PORT = 3784
SOURCE_PORTS = (49152, 65535)

# Linux socket options the stdlib does not name everywhere.
_IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
_IP_TTL = socket.IP_TTL
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
_IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
_IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
_IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
_CMSG_SPACE = socket.CMSG_SPACE(20) + socket.CMSG_SPACE(4) + 32


def settings_for(bi: BfdInstance) -> Settings:
    """A bfd_instance as the session core wants it (defaults settled as bfd_end_handler)."""
    ttl = bi.ttl or (TTL_V4 if bi.neighbor_ip.version == 4 else HOPLIMIT_V6)
    return Settings(
        name=bi.name,
        min_rx_us=bi.min_rx_us,
        min_tx_us=bi.min_tx_us,
        idle_tx_us=bi.idle_tx_us,
        multiplier=bi.multiplier,
        passive=bi.passive,
        ttl=ttl,
        max_hops=min(bi.max_hops, ttl),
    )


@dataclass
class _Peer:
    config: BfdInstance
    session: Session
    out: socket.socket | None = None


def _session_key(bi: BfdInstance) -> tuple[object, ...]:
    """What a reload must not change for a session to keep its state (not weights, not loc)."""
    return (
        bi.neighbor_ip,
        bi.source_ip,
        bi.min_rx_us,
        bi.min_tx_us,
        bi.idle_tx_us,
        bi.multiplier,
        bi.passive,
        bi.ttl,
        bi.max_hops,
    )


def _plain(addr: str) -> IPAddress:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class BfdSpeaker:
    """Runs the sessions of every bfd_instance; ``publish(name, up)`` on each change."""

    def __init__(
        self,
        instances: Iterable[BfdInstance],
        publish: Callable[[str, bool], None],
        log: Callable[[str], None] = lambda _m: None,
        rng: random.Random | None = None,
    ) -> None:
        self._rng = rng or random.Random()
        self.peers: dict[str, _Peer] = {}
        for bi in instances:
            self.peers[bi.name] = _Peer(bi, Session(settings_for(bi), self._rng))
        self.publish = publish
        self.log = log
        self.dropped: Counter[str] = Counter()
        self.sent = 0
        self.received = 0
        self._heap: list[tuple[float, str]] = []
        self._rx: socket.socket | None = None
        self._sleep: trio.CancelScope | None = None

    def update(self, instances: Iterable[BfdInstance]) -> None:
        """Reload: a session whose parameters did not change keeps its state.

        keepalived copies the state of a same-named session into the reloaded
        one (bfd.c ``bfd_copy_state``), so a reload does not bounce what VRRP
        tracks; a new or changed session starts Down, a removed one stops.
        """
        wanted = {bi.name: bi for bi in instances}
        for name in list(self.peers):
            peer = self.peers[name]
            bi = wanted.get(name)
            if bi is None or _session_key(bi) != _session_key(peer.config):
                if peer.out is not None:
                    peer.out.close()
                del self.peers[name]
        now = trio.current_time()
        for name, bi in wanted.items():
            if name in self.peers:
                self.peers[name].config = bi
                continue
            peer = _Peer(bi, Session(settings_for(bi), self._rng))
            self.peers[name] = peer
            if self._rx is not None:
                self._begin(peer, now)
        if self._sleep is not None:
            self._sleep.cancel()  # new deadlines: the loop recomputes its wake-up

    # ---- sockets ------------------------------------------------------------

    def _open_rx(self) -> socket.socket:
        try:
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            v6 = True
        except OSError:
            # No IPv6 on this host: IPv4 only, as bfd_open_fd_in falls back.
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            v6 = False
        try:
            if v6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                s.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVHOPLIMIT, 1)
                s.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVPKTINFO, 1)
            # IPv4 datagrams, on a dual-stack socket too, carry IPv4 ancillary data.
            s.setsockopt(socket.IPPROTO_IP, _IP_RECVTTL, 1)
            s.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
            s.setblocking(False)
            s.bind(("::" if v6 else "0.0.0.0", CONTROL_PORT))
        except OSError:
            s.close()
            raise
        return s

    def _open_out(self, peer: _Peer) -> socket.socket:
        bi = peer.config
        fam = socket.AF_INET if bi.neighbor_ip.version == 4 else socket.AF_INET6
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setblocking(False)
        try:
            if bi.source_ip is not None:
                # A random port in RFC 5881's range, then the next free one
                # (bfd_scheduler.c bfd_open_fd_out).
                lo, hi = SOURCE_PORTS
                start = self._rng.randint(lo, hi)
                for i in range(hi - lo + 1):
                    port = lo + (start - lo + i) % (hi - lo + 1)
                    try:
                        s.bind((str(bi.source_ip), port))
                        break
                    except OSError as e:
                        if e.errno != errno.EADDRINUSE:
                            raise
            else:
                # keepalived binds nothing then and takes the kernel's port; a
                # port in the RFC's range costs nothing, so take one.
                for _ in range(64):
                    with contextlib.suppress(OSError):
                        s.bind(
                            (
                                "0.0.0.0" if fam == socket.AF_INET else "::",
                                self._rng.randint(*SOURCE_PORTS),
                            )
                        )
                        break
            ttl = peer.session.settings.ttl
            if fam == socket.AF_INET:
                s.setsockopt(socket.IPPROTO_IP, _IP_TTL, ttl)
            else:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        except OSError:
            s.close()
            raise
        return s

    # ---- the loop -----------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the sockets, start every session, then serve until cancelled."""
        try:
            try:
                self._rx = self._open_rx()
            except OSError as e:
                # keepalived's BFD process exits then ("There is no point to
                # stay alive w/o listening socket"): no session runs, and
                # trackers see every session down.
                self.log(f"BFD: cannot listen on port {CONTROL_PORT}: {e.strerror}")
                for name in self.peers:
                    self.publish(name, False)
                task_status.started()
                return
            now = trio.current_time()
            for peer in self.peers.values():
                self._begin(peer, now)
            task_status.started()
            while True:
                now = trio.current_time()
                self._run_due(now)
                deadline = self._heap[0][0] if self._heap else float("inf")
                with trio.move_on_at(deadline) as self._sleep:
                    await trio.lowlevel.wait_readable(self._rx)
                self._sleep = None
                self._drain(trio.current_time())
        finally:
            if self._rx is not None:
                self._rx.close()
            for peer in self.peers.values():
                if peer.out is not None:
                    peer.out.close()
                    peer.out = None

    def _begin(self, peer: _Peer, now: float) -> None:
        name = peer.config.name
        try:
            peer.out = self._open_out(peer)
        except OSError as e:
            # keepalived puts the session in AdminDown when its socket cannot
            # open (bfd_open_fds), and tells VRRP it is not Up.
            self.log(f"BFD_Instance({name}) cannot open its socket: {e.strerror}")
            peer.session.admin_down()
            self.publish(name, False)
            return
        self._act(peer, peer.session.start(now))

    def _schedule(self, peer: _Peer) -> None:
        d = peer.session.deadline()
        if d != float("inf"):
            heapq.heappush(self._heap, (d, peer.config.name))

    def _run_due(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            when, name = heapq.heappop(self._heap)
            peer = self.peers.get(name)
            # Entries are never removed when a deadline moves (or a reload
            # drops the session): one that no longer matches is stale.
            if peer is None or peer.session.deadline() != when:
                continue
            self._act(peer, peer.session.expire(now))

    def _act(self, peer: _Peer, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, StateChanged):
                # keepalived's wording, and like it silent about the initial
                # Down (bfd_scheduler.c bfd_state_down/bfd_state_up).
                if a.state == UP or a.diag:
                    why = ""
                    if a.state != UP:
                        why = (
                            f" (Local diagnostic - {DIAG_NAMES[a.diag]}, "
                            f"Remote diagnostic - {DIAG_NAMES[a.remote_diag]})"
                        )
                    self.log(f"({a.name}) Entering {STATE_NAMES[a.state]} state{why}")
                self.publish(a.name, a.state == UP)
            elif peer.out is not None:
                try:
                    peer.out.sendto(a.packet.encode(), (str(peer.config.neighbor_ip), CONTROL_PORT))
                    self.sent += 1
                except OSError:
                    self.dropped["send_error"] += 1
        self._schedule(peer)

    def _drain(self, now: float) -> None:
        rx = self._rx
        assert rx is not None
        while True:
            try:
                data, anc, flags, src = rx.recvmsg(128, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.dropped["recv_error"] += 1
                return
            if flags & socket.MSG_TRUNC:
                self.dropped["truncated"] += 1
                continue
            self.received += 1
            ttl = 0
            dst = b""
            for level, kind, val in anc:
                if (level, kind) in (
                    (socket.IPPROTO_IP, _IP_TTL),
                    (socket.IPPROTO_IPV6, _IPV6_HOPLIMIT),
                ):
                    ttl = int.from_bytes(val[:4], sys.byteorder) if len(val) >= 4 else val[0]
                elif level == socket.IPPROTO_IP and kind == _IP_PKTINFO and len(val) >= 12:
                    dst = val[8:12]
                elif level == socket.IPPROTO_IPV6 and kind == _IPV6_PKTINFO and len(val) >= 16:
                    dst = val[:16]
            self.handle(data, src[0], dst, ttl, now)

    def handle(self, data: bytes, src: str, dst: bytes, ttl: int, now: float) -> None:
        """One received datagram: decode, find its session, run it.

        ``src`` is the sender as the socket gives it, ``dst`` the packed
        destination address (empty when unknown): they are parsed only for
        the rare lookup by address, not for every packet of an Up session.
        """
        pkt = decode(data)
        if isinstance(pkt, Rejected):
            self.dropped[pkt.reason] += 1
            return
        peer = self._lookup(pkt, src, dst)
        if peer is None:
            self.dropped["no_session"] += 1
            return
        if peer.out is None:
            # AdminDown for want of a socket: a packet is the moment to try
            # again, and without one it is dropped (bfd_handle_packet).
            try:
                peer.out = self._open_out(peer)
            except OSError:
                self.dropped["admin_down"] += 1
                return
        res = peer.session.receive(pkt, ttl, now)
        if isinstance(res, Rejected):
            self.dropped[res.reason] += 1
            return
        self._act(peer, res)

    def _lookup(self, pkt: ControlPacket, src: str, dst: bytes) -> _Peer | None:
        # RFC 5880 6.8.6: by Your Discriminator when set, else by addresses
        # (bfd_data.c find_bfd_by_discr / find_bfd_by_addr).
        if pkt.your_discr:
            for peer in self.peers.values():
                if peer.session.local_discr == pkt.your_discr:
                    return peer
            return None
        try:
            sender = _plain(src)
            local = _plain(str(ipaddress.ip_address(dst))) if dst else None
        except ValueError:
            return None
        for peer in self.peers.values():
            bi = peer.config
            if bi.neighbor_ip == sender and (
                bi.source_ip is None or local is None or bi.source_ip == local
            ):
                return peer
        return None
