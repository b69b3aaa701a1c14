"""REDIS_CHECK: a real server is healthy while Redis answers ``PING`` with ``+PONG``.

The whole checker plugin contract of :mod:`healthcheck.plugin`: ``parse``
reads the block's own lines, ``make`` builds a checker, and the checker makes
one attempt and says why it passed or failed.  Retries, intervals, warmup,
alpha and ``inhibit_on_failure`` come from pykeep, as for a built-in checker::

    real_server 10.0.0.11 6379 {
        REDIS_CHECK {
            password s3cret          # optional: AUTH before PING
            retry 2                  # pykeep's own keywords: three failures mark it down
            delay_before_retry 1
        }
    }
"""

from __future__ import annotations

import trio

from healthcheck.api import Result, Target
from healthcheck.tcp import open_tcp, os_reason


def command(*words: str) -> bytes:
    """One command in RESP, so a password may hold spaces or quotes."""
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


async def reply_line(stream: trio.SocketStream) -> bytes:
    """The first line of a reply (``+PONG``, ``-NOAUTH …``), read to at most 512 bytes."""
    data = b""
    while b"\r\n" not in data and len(data) < 512:
        chunk = await stream.receive_some(512)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


class RedisChecker:
    def __init__(self, password: str | None) -> None:
        self.password = password

    async def check(self, target: Target, timeout: float) -> Result:
        with trio.move_on_after(timeout):
            try:
                stream = await open_tcp(target)
            except OSError as e:
                return Result.failed(os_reason(e))
            async with stream:
                if self.password is not None:
                    await stream.send_all(command("AUTH", self.password))
                    reply = await reply_line(stream)
                    if reply != b"+OK":
                        return Result.failed(f"auth: {reply[:40].decode(errors='replace')}")
                await stream.send_all(command("PING"))
                reply = await reply_line(stream)
                if reply == b"+PONG":
                    return Result.passed("pong")
                return Result.failed(reply[:40].decode(errors="replace") or "closed")
        return Result.failed("timeout")


class Plugin:
    keyword = "REDIS_CHECK"

    def parse(self, lines: list[tuple[str, ...]]) -> object:
        password: str | None = None
        for words in lines:
            if len(words) != 2 or words[0] != "password":
                raise ValueError(f"unknown or malformed line {' '.join(words)!r}")
            password = words[1]
        return password

    def make(self, options: object) -> RedisChecker:
        return RedisChecker(options if isinstance(options, str) else None)


plugin = Plugin()
