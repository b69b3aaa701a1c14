"""ECHO_CHECK { send "PING" expect "PONG" }: a REDIS_CHECK-like example plugin.

It shows the whole plugin contract of :mod:`healthcheck.plugin` in about
twenty lines of checker: a ``parse`` for the block's own lines and a
checker with one ``check`` method.  Retries and timing come from pykeep.
"""

from __future__ import annotations

import trio

from healthcheck.api import Result, Target
from healthcheck.tcp import open_tcp


class EchoChecker:
    def __init__(self, send: bytes, expect: bytes) -> None:
        self.send, self.expect = send, expect

    async def check(self, target: Target, timeout: float) -> Result:
        with trio.move_on_after(timeout):
            async with await open_tcp(target) as stream:
                await stream.send_all(self.send + b"\r\n")
                reply = await stream.receive_some(512)
                if reply.startswith(self.expect):
                    return Result.passed("echo ok")
                return Result.failed(f"unexpected {reply[:16]!r}")
        return Result.failed("timeout")


class Plugin:
    keyword = "ECHO_CHECK"

    def parse(self, lines: list[tuple[str, ...]]) -> object:
        opts = {"send": "PING", "expect": "PONG"}
        for words in lines:
            if len(words) != 2 or words[0] not in opts:
                raise ValueError(f"unknown or malformed line {' '.join(words)!r}")
            opts[words[0]] = words[1]
        return opts

    def make(self, options: object) -> EchoChecker:
        assert isinstance(options, dict)
        return EchoChecker(options["send"].encode(), options["expect"].encode())


plugin = Plugin()
