"""SMTP_CHECK (keepalived check_smtp.c): banner 220, ``HELO name`` → 250, ``QUIT``.

As keepalived does (check_smtp.c ``smtp_connect_thread``, ``smtp_get_line_cb``,
``smtp_put_line_cb``), ``connect_timeout`` bounds each step: the connect, each
read, each write; the scheduler's guard bounds the whole dialogue.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import trio

from healthcheck.api import Result, Target
from healthcheck.tcp import StepTimeout, open_tcp, os_reason, receive_step, step

_MAX_LINE = 4096


async def _reply(stream: trio.SocketStream, buf: bytearray, timeout: float) -> int:
    """Read one (possibly multi-line) SMTP reply; return its code (0 if garbled)."""
    while True:
        while b"\n" not in buf:
            if len(buf) > _MAX_LINE:
                return 0
            data = await receive_step(stream, _MAX_LINE, timeout)
            if not data:
                return 0
            buf += data
        line, _, rest = bytes(buf).partition(b"\n")
        buf[:] = rest
        if len(line) < 3 or not line[:3].isdigit():
            return 0
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3])


@dataclass(frozen=True)
class SmtpChecker:
    helo_name: str | None = None

    async def check(self, target: Target, timeout: float) -> Result:
        helo = self.helo_name or socket.gethostname()
        try:
            with step(timeout):
                stream = await open_tcp(target)
            async with stream:
                buf = bytearray()
                if (code := await _reply(stream, buf, timeout)) != 220:
                    return Result.failed(f"banner {code}")
                with step(timeout):
                    await stream.send_all(f"HELO {helo}\r\n".encode())
                if (code := await _reply(stream, buf, timeout)) != 250:
                    return Result.failed(f"helo {code}")
                with step(timeout):
                    await stream.send_all(b"QUIT\r\n")
                return Result.passed("helo 250")
        except StepTimeout as e:
            return Result.failed(e.reason)
        except OSError as e:
            return Result.failed(os_reason(e))
        except trio.BrokenResourceError:
            return Result.failed("connection reset")
