"""UDP_CHECK (keepalived check_udp.c): send ``payload``, optionally require a reply.

Without ``require_reply`` keepalived passes unless the kernel reports the
port unreachable (an ICMP error surfacing as ECONNREFUSED on the connected
socket) before the timeout; with it, a reply within the length bounds (and
equal to ``reply_data`` as a prefix, when given) is needed.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import trio

from healthcheck.api import Result, Target
from healthcheck.tcp import open_socket, os_reason


@dataclass(frozen=True)
class UdpChecker:
    payload: bytes = b""
    require_reply: bool = False
    min_length: int | None = None
    max_length: int | None = None
    reply_data: bytes | None = None

    async def check(self, target: Target, timeout: float) -> Result:
        try:
            sock = await open_socket(target, socket.SOCK_DGRAM)
        except OSError as e:
            return Result.failed(os_reason(e))
        with sock:
            try:
                await sock.send(self.payload)
                with trio.move_on_after(timeout):
                    reply = await sock.recv(65535)
                    return self._judge(reply)
            except OSError as e:
                return Result.failed(os_reason(e))
        return Result.failed("no reply") if self.require_reply else Result.passed("no error")

    def _judge(self, reply: bytes) -> Result:
        if not self.require_reply:
            return Result.passed("reply")
        if self.min_length is not None and len(reply) < self.min_length:
            return Result.failed("reply too short")
        if self.max_length is not None and len(reply) > self.max_length:
            return Result.failed("reply too long")
        if self.reply_data is not None and not reply.startswith(self.reply_data):
            return Result.failed("reply mismatch")
        return Result.passed("reply")
