"""HTTP_GET and SMTP_CHECK against a hostile server: mutated replies, lies, garbage, hang-ups.

A loopback server answers each probe with the reply made for this input:
a valid reply mutated (status line, headers, Content-Length that lies,
chunked framing, NULs, huge lines), random bytes, nothing at all, or a
reply cut short; sent whole or in pieces.  The checker must return a
``Result`` within its timeout (a rejection is its reason, cut before any
echoed reply bytes and with digits folded, so that "status 503" and
"status 404" are one kind); anything raised, or no
answer within twice the timeout, is a crash.
"""

from __future__ import annotations

import functools
import random
import re
from pathlib import Path

import trio

from healthcheck.api import Result, Target
from healthcheck.http import HttpChecker
from healthcheck.smtp import SmtpChecker
from pykeep.config.model import HttpUrl
from tests.fuzz import Tally

TIMEOUT = 0.5
HTTP_OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
    b"Connection: close\r\n\r\nhello"
)
HTTP_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
SMTP_OK = [b"220 mx.example ESMTP\r\n", b"250 mx.example\r\n", b"221 bye\r\n"]
PIECES = [
    b"\x00", b"\r", b"\n", b"\r\n", b"\r\n\r\n", b":", b" ", b"HTTP/1.1 ", b"999",
    b"-1", b"Content-Length: 99999999999999999999\r\n", b"Content-Length: -5\r\n",
    b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffff\r\n", b"X: " + b"a" * 70_000,
    b"\xff\xfe", b"220", b"250-", b"550 no\r\n",
]  # fmt: skip


def _mutate(rnd: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 5)):
        op = rnd.randrange(4)
        i = rnd.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] = rnd.randrange(256)
        elif op == 1:
            del b[i : i + rnd.randint(1, 20)]
        elif op == 2:
            b[i:i] = rnd.choice(PIECES)
        else:
            b[i:i] = rnd.randbytes(rnd.randint(1, 16))
    return bytes(b)


def _reply(rnd: random.Random, smtp: bool) -> list[bytes]:
    """The pieces the server sends, in order (an empty piece: hang up there)."""
    kind = rnd.randrange(6)
    if smtp:
        steps = list(SMTP_OK)
        if kind == 0:
            return [rnd.randbytes(rnd.randint(0, 300))]
        if kind == 1:
            return [*steps[: rnd.randint(0, 2)], b""]
        if kind < 5:
            k = rnd.randrange(len(steps))
            steps[k] = _mutate(rnd, steps[k])
        return steps
    base = rnd.choice([HTTP_OK, HTTP_CHUNKED])
    if kind == 0:
        return [rnd.randbytes(rnd.randint(0, 2000))]
    if kind == 1:
        return [base[: rnd.randint(0, len(base))], b""]
    data = _mutate(rnd, base) if kind < 5 else base
    if rnd.random() < 0.3:  # in pieces
        cuts = sorted(rnd.randint(0, len(data)) for _ in range(3))
        return [data[: cuts[0]], data[cuts[0] : cuts[1]], data[cuts[1] : cuts[2]], data[cuts[2] :]]
    return [data]


_DIGITS = re.compile(r"\d+")


def run(n: int, seed: int, workdir: Path | None = None) -> Tally:
    rnd = random.Random(seed)
    tally = Tally("checkers")
    http = HttpChecker(urls=(HttpUrl("/"),))
    smtp = SmtpChecker(helo_name="fuzz")
    script: list[list[bytes]] = []

    async def serve(stream: trio.SocketStream) -> None:
        pieces = script[0] if script else []
        try:
            async with stream:
                with trio.move_on_after(TIMEOUT * 2):
                    if not smtp_mode[0]:
                        await stream.receive_some(65536)  # the request
                    for k, piece in enumerate(pieces):
                        if not piece:
                            return
                        if smtp_mode[0] and k:
                            await stream.receive_some(65536)  # HELO, QUIT
                        await stream.send_all(piece)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    smtp_mode = [False]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, serve, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            target = Target("127.0.0.1", port)
            for _ in range(n):
                smtp_mode[0] = rnd.random() < 0.3
                script[:] = [_reply(rnd, smtp_mode[0])]
                checker = smtp if smtp_mode[0] else http
                tally.inputs += 1
                try:
                    with trio.fail_after(TIMEOUT * 2 + 1):
                        res = await checker.check(target, TIMEOUT)
                except Exception as exc:
                    tally.crash(script[0], exc)
                    continue
                if not isinstance(res, Result):
                    tally.crash(script[0], why=f"check returned {type(res).__name__}")
                elif res.ok:
                    tally.accepted += 1
                else:
                    name = "smtp" if smtp_mode[0] else "http"
                    kind = ": ".join(res.reason.split(": ")[:2])  # not the echoed bytes
                    tally.reject(f"{name}: {_DIGITS.sub('N', kind)}")
            nursery.cancel_scope.cancel()

    trio.run(main)
    return tally
