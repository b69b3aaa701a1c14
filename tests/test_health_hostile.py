"""No peer can crash the scheduler: random bytes, endless headers, slowloris.

Each hostile server is probed by HTTP_GET, SSL_GET, SMTP_CHECK and
TCP_CHECK through one Scheduler on the real clock with short timeouts; the
scheduler must keep running, report the servers down, and keep checking.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
from collections.abc import Awaitable, Callable

import trio

from healthcheck.policy import Transition
from healthcheck.scheduler import Scheduler
from pykeep.config.model import (
    CheckerCommon,
    HttpCheck,
    HttpUrl,
    RealServer,
    SmtpCheck,
    TcpCheck,
    VirtualServer,
)

Handler = Callable[[trio.abc.Stream], Awaitable[None]]


def tolerant(handler: Handler) -> Handler:
    """The checker hangs up on these servers; that must not end the test's nursery."""

    async def wrapped(stream: trio.abc.Stream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await handler(stream)

    return wrapped


async def random_bytes(stream: trio.abc.Stream) -> None:
    with trio.move_on_after(2):
        for _ in range(50):
            await stream.send_all(os.urandom(1000))
    await stream.aclose()


async def endless_headers(stream: trio.abc.Stream) -> None:
    await stream.send_all(b"HTTP/1.0 200 OK\r\n")
    with trio.move_on_after(3):
        while True:
            await stream.send_all(b"X-Pad: " + b"a" * 1000 + b"\r\n")
    await stream.aclose()


async def slowloris(stream: trio.abc.Stream) -> None:
    with trio.move_on_after(5):
        for b in b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100:
            await stream.send_all(bytes([b]))
            await trio.sleep(0.05)
    await stream.aclose()


async def garbage_status(stream: trio.abc.Stream) -> None:
    await stream.send_all(b"\x00\xffHTTP/9 abc\r\n\r\n\xfe" * 10)
    await stream.aclose()


def test_hostile_servers_cannot_crash_the_scheduler() -> None:
    got: list[Transition] = []
    sched = Scheduler(got.extend, batch_window=0.01)

    async def main() -> None:
        async with trio.open_nursery() as n:
            ports = []
            for h in (random_bytes, endless_headers, slowloris, garbage_status):
                ls = await n.start(
                    functools.partial(trio.serve_tcp, tolerant(h), 0, host="127.0.0.1")
                )
                ports.append(ls[0].socket.getsockname()[1])
            common = CheckerCommon(connect_timeout=0.5, delay_loop=0.3, retry=0)
            vs = VirtualServer(delay_loop=0.3, warmup=0.1)
            for port in ports:
                rs = RealServer(
                    address=ipaddress.ip_address("127.0.0.1"),
                    port=port,
                    checkers=(
                        HttpCheck(common=common, urls=(HttpUrl("/"),)),
                        HttpCheck(common=common, urls=(HttpUrl("/"),), ssl=True),
                        SmtpCheck(common=common),
                    ),
                )
                sched.add(("hostile", port), rs, vs)
                sched.add(
                    ("tcp", port),
                    RealServer(address=rs.address, port=port, checkers=(TcpCheck(common=common),)),
                    vs,
                )
            await n.start(sched.run)
            await trio.sleep(4)
            n.cancel_scope.cancel()

    trio.run(main)
    assert sched.checks_done > 40
    downs = {t.key for t in got if not t.up}
    assert all(isinstance(k, tuple) and k[0] == "hostile" for k in downs)
    assert len(downs) == 4
    for key in downs:
        assert not sched.state(key)
    assert all(sched.state(("tcp", k[1])) for k in downs if isinstance(k, tuple))
