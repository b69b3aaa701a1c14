"""PING_CHECK (keepalived check_ping.c): one ICMP echo.

Linux "ping sockets" (SOCK_DGRAM, IPPROTO_ICMP) need no raw privilege when
``net.ipv4.ping_group_range`` allows and let the kernel match replies to us;
otherwise a raw socket is used and replies are matched by id and sequence.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
from dataclasses import dataclass

import trio

from healthcheck.api import Result, Target
from healthcheck.tcp import os_reason


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def _open(family: int, proto: int) -> tuple[trio.socket.SocketType, bool]:
    """A ping socket if ``ping_group_range`` allows us, else a raw ICMP socket.

    Debian ships ``ping_group_range = 1 0`` (nobody), so a daemon running as
    root gets EACCES for the datagram kind and needs CAP_NET_RAW's raw socket,
    which delivers every ICMP packet (with the IPv4 header) for us to filter.
    """
    try:
        return trio.socket.socket(family, socket.SOCK_DGRAM, proto), False
    except PermissionError:
        return trio.socket.socket(family, socket.SOCK_RAW, proto), True


@dataclass(frozen=True)
class PingChecker:
    payload: bytes = b"pykeep-ping-check"

    async def check(self, target: Target, timeout: float) -> Result:
        v6 = ":" in target.address
        family, proto, kind, reply_kind = (
            (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, 129)
            if v6
            else (socket.AF_INET, socket.IPPROTO_ICMP, 8, 0)
        )
        try:
            sock, raw = _open(family, proto)
        except OSError as e:
            return Result.failed(os_reason(e))
        with sock:
            ident = os.getpid() & 0xFFFF
            seq = next(_SEQ) & 0xFFFF
            head = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
            # The kernel fills in the ICMPv6 checksum (it needs the pseudo-header).
            csum = 0 if v6 else _checksum(head + self.payload)
            packet = struct.pack("!BBHHH", kind, 0, csum, ident, seq) + self.payload
            try:
                await sock.sendto(packet, (target.address, 0))
                with trio.move_on_after(timeout):
                    while True:
                        reply = await sock.recv(65535)
                        if raw and not v6 and reply:
                            reply = reply[(reply[0] & 0x0F) * 4 :]  # strip the IPv4 header
                        if _is_our_reply(reply, reply_kind, raw, ident, seq, self.payload):
                            return Result.passed("echo reply")
            except OSError as e:
                return Result.failed(os_reason(e))
        return Result.failed("timeout")


_SEQ = itertools.count(1)


def _is_our_reply(reply: bytes, kind: int, raw: bool, ident: int, seq: int, data: bytes) -> bool:
    """An echo reply to this very request (a ping socket's kernel rewrites the id)."""
    if len(reply) < 8 or reply[0] != kind or reply[8:] != data:
        return False
    got_ident, got_seq = struct.unpack_from("!HH", reply, 4)
    return got_seq == seq and (got_ident == ident or not raw)
