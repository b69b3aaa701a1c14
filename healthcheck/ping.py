"""PING_CHECK (keepalived check_ping.c): one ICMP echo, over a datagram ICMP socket.

Linux "ping sockets" (SOCK_DGRAM, IPPROTO_ICMP) need no raw privilege when
``net.ipv4.ping_group_range`` allows; as root a raw socket would also do, but
the datagram socket lets the kernel match replies to us.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class PingChecker:
    payload: bytes = b"pykeep-ping-check"

    async def check(self, target: Target, timeout: float) -> Result:
        v6 = ":" in target.address
        family, proto, kind = (
            (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128) if v6 else (socket.AF_INET, 1, 8)
        )
        try:
            sock = trio.socket.socket(family, socket.SOCK_DGRAM, proto)
        except OSError as e:
            return Result.failed(os_reason(e))
        with sock:
            seq = os.getpid() & 0xFFFF
            head = struct.pack("!BBHHH", kind, 0, 0, 0, seq)
            csum = 0 if v6 else _checksum(head + self.payload)
            packet = struct.pack("!BBHHH", kind, 0, csum, 0, seq) + self.payload
            try:
                await sock.sendto(packet, (target.address, 0))
                with trio.move_on_after(timeout):
                    while True:
                        reply = await sock.recv(65535)
                        if len(reply) >= 8 and reply[0] in (0, 129) and reply[8:] == self.payload:
                            return Result.passed("echo reply")
            except OSError as e:
                return Result.failed(os_reason(e))
        return Result.failed("timeout")
