"""Every built-in checker against real servers started on loopback by the test."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio
import trio.testing
import trustme

from healthcheck.api import Result, Target
from healthcheck.dns import DnsChecker
from healthcheck.http import HttpChecker
from healthcheck.misc import MiscChecker
from healthcheck.policy import Timing, Transition
from healthcheck.scheduler import Scheduler
from healthcheck.smtp import SmtpChecker
from healthcheck.tcp import TcpChecker
from healthcheck.udp import UdpChecker
from pykeep.config.model import HttpCheck, HttpUrl, RealServer, Script, StatusRange, TcpCheck
from pykeep.config.model import VirtualServer as VS

Handler = Callable[[trio.abc.Stream], Awaitable[None]]


async def serve(nursery: trio.Nursery, handler: Handler) -> int:
    """Start a TCP server on 127.0.0.1; return its port."""
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def read_request(stream: trio.abc.Stream) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some(4096)
        if not data:
            break
        buf += data
    return buf


def page(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    head = f"HTTP/1.0 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def run(fn: Callable[[], Awaitable[None]], clock: trio.abc.Clock | None = None) -> None:
    trio.run(fn, clock=clock)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_tcp_check_pass_and_refused() -> None:
    async def main() -> None:
        async with trio.open_nursery() as n:
            port = await serve(n, lambda s: s.aclose())
            ok = await TcpChecker().check(Target("127.0.0.1", port), 2)
            assert ok.ok, ok
            bad = await TcpChecker().check(Target("127.0.0.1", free_port()), 2)
            assert not bad.ok and bad.reason == "connection refused"
            n.cancel_scope.cancel()

    run(main)


def test_http_get_request_digest_regex_status() -> None:
    body = b"<html>hello pykeep</html>\n"
    seen: list[bytes] = []

    async def handler(stream: trio.abc.Stream) -> None:
        seen.append(await read_request(stream))
        await stream.send_all(page(body))
        await stream.aclose()

    async def main() -> None:
        async with trio.open_nursery() as n:
            port = await serve(n, handler)
            t = Target("127.0.0.1", port)
            good = HttpUrl("/x", digest=hashlib.md5(body).hexdigest(), regex="hel+o")
            res = await HttpChecker([good]).check(t, 2)
            assert res.ok, res
            assert (
                seen[0]
                == (
                    "GET /x HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\n"
                    f"Host: 127.0.0.1:{port}\r\n\r\n"
                ).encode()
            )
            res = await HttpChecker([HttpUrl("/x", digest="0" * 32)]).check(t, 2)
            assert not res.ok and res.reason.startswith("digest mismatch")
            res = await HttpChecker([HttpUrl("/x", regex="nomatch")]).check(t, 2)
            assert not res.ok and res.reason == "regex match failed"
            res = await HttpChecker([HttpUrl("/x", status_codes=(StatusRange(301, 302),))]).check(
                t, 2
            )
            assert not res.ok and res.reason == "status 200"
            res = await HttpChecker(
                [HttpUrl("/x", virtualhost="www.example")], http_protocol="1.1"
            ).check(t, 2)
            assert res.ok
            assert b"GET /x HTTP/1.1\r\n" in seen[-1] and b"Connection: close\r\n" in seen[-1]
            assert b"Host: www.example\r\n" in seen[-1]
            n.cancel_scope.cancel()

    run(main)


def test_http_never_answers_times_out() -> None:
    async def handler(stream: trio.abc.Stream) -> None:
        await trio.sleep_forever()

    async def main() -> None:
        async with trio.open_nursery() as n:
            port = await serve(n, handler)
            t0 = trio.current_time()
            res = await HttpChecker([HttpUrl("/")]).check(Target("127.0.0.1", port), 0.5)
            assert not res.ok and res.reason == "timeout"
            assert 0.4 < trio.current_time() - t0 < 3
            n.cancel_scope.cancel()

    run(main)


def test_http_close_mid_body() -> None:
    """keepalived passes a short body unless a digest is configured (check_http.c)."""
    full = b"x" * 100

    async def handler(stream: trio.abc.Stream) -> None:
        await read_request(stream)
        await stream.send_all(page(full)[:-50])
        await stream.aclose()

    async def main() -> None:
        async with trio.open_nursery() as n:
            port = await serve(n, handler)
            t = Target("127.0.0.1", port)
            assert (await HttpChecker([HttpUrl("/")]).check(t, 2)).ok
            res = await HttpChecker([HttpUrl("/", digest=hashlib.md5(full).hexdigest())]).check(
                t, 2
            )
            assert not res.ok and "digest" in res.reason
            n.cancel_scope.cancel()

    run(main)


def test_ssl_get_with_trustme_and_sni(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("www.example")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    snis: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: snis.append(name)

    async def handler(raw: trio.abc.Stream) -> None:
        stream = trio.SSLStream(raw, server_ctx, server_side=True)
        try:
            await read_request(stream)
            await stream.send_all(page(b"secure"))
            await stream.aclose()
        except trio.BrokenResourceError:
            pass

    async def main() -> None:
        async with trio.open_nursery() as n:
            port = await serve(n, handler)
            t = Target("127.0.0.1", port)
            sni = HttpChecker([HttpUrl("/")], ssl=True, virtualhost="www.example", enable_sni=True)
            res = await sni.check(t, 2)
            assert res.ok, res
            assert snis[-1] == "www.example"
            named = HttpChecker([HttpUrl("/")], ssl=True, sni_name="other.example", enable_sni=True)
            res = await named.check(t, 2)
            assert res.ok and snis[-1] == "other.example"
            res = await HttpChecker([HttpUrl("/")], ssl=True, enable_sni=False).check(t, 2)
            assert res.ok and snis[-1] is None
            # keepalived's default (check_http.c): no SNI unless enable_sni is given,
            # even with a virtualhost; the configured checker has the same default.
            plain = HttpChecker.from_model(
                HttpCheck(ssl=True, urls=(HttpUrl("/"),), virtualhost="www.example")
            )
            res = await plain.check(t, 2)
            assert res.ok and snis[-1] is None
            n.cancel_scope.cancel()

    run(main)


def test_udp_echo_and_no_reply() -> None:
    async def main() -> None:
        srv = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await srv.bind(("127.0.0.1", 0))
        port = srv.getsockname()[1]

        async def echo() -> None:
            while True:
                data, addr = await srv.recvfrom(2048)
                await srv.sendto(data, addr)

        async with trio.open_nursery() as n:
            n.start_soon(echo)
            t = Target("127.0.0.1", port)
            assert (await UdpChecker(b"ping", require_reply=True, reply_data=b"pi").check(t, 1)).ok
            res = await UdpChecker(b"ping", require_reply=True, min_length=10).check(t, 1)
            assert not res.ok and res.reason == "reply too short"
            closed = Target("127.0.0.1", free_port())
            res = await UdpChecker(b"ping", require_reply=True).check(closed, 1)
            assert not res.ok
            n.cancel_scope.cancel()
        srv.close()

    run(main)


def test_smtp_and_dns() -> None:
    async def smtp(stream: trio.abc.Stream) -> None:
        await stream.send_all(b"220-hello\r\n220 ready\r\n")
        line = await stream.receive_some(100)
        assert line.startswith(b"HELO pk.test")
        await stream.send_all(b"250 ok\r\n")
        await stream.receive_some(100)
        await stream.aclose()

    async def main() -> None:
        dns = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await dns.bind(("127.0.0.1", 0))

        async def answer() -> None:
            while True:
                q, addr = await dns.recvfrom(512)
                qid = struct.unpack("!H", q[:2])[0]
                await dns.sendto(struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q[12:], addr)

        async with trio.open_nursery() as n:
            port = await serve(n, smtp)
            assert (await SmtpChecker("pk.test").check(Target("127.0.0.1", port), 2)).ok
            n.start_soon(answer)
            t = Target("127.0.0.1", dns.getsockname()[1])
            assert (await DnsChecker("A", "example.com").check(t, 2)).ok
            n.cancel_scope.cancel()
        dns.close()

    run(main)


def test_misc_check_exit_codes(tmp_path: Path) -> None:
    s = tmp_path / "m.sh"
    s.write_text('#!/bin/sh\nexit "$1"\n')
    s.chmod(0o755)

    async def main() -> None:
        t = Target("127.0.0.1")
        r0 = await MiscChecker(Script((str(s), "0"))).check(t, 5)
        r1 = await MiscChecker(Script((str(s), "1")), dynamic=True).check(t, 5)
        r7 = await MiscChecker(Script((str(s), "7")), dynamic=True).check(t, 5)
        r7s = await MiscChecker(Script((str(s), "7"))).check(t, 5)
        assert (r0.ok, r1.ok, r7.ok, r7.weight, r7s.ok) == (True, False, True, 5, False)

    run(main)


def test_scheduler_500_then_200_on_mock_clock() -> None:
    """A real HTTP server answers 500 twice, then 200: down at bootstrap, up later."""
    answers = ["500 Internal Server Error", "500 Internal Server Error"]

    async def handler(stream: trio.abc.Stream) -> None:
        await read_request(stream)
        status = answers.pop(0) if answers else "200 OK"
        await stream.send_all(page(b"ok", status))
        await stream.aclose()

    got: list[tuple[float, Transition]] = []

    def deliver(batch: list[Transition]) -> None:
        got.extend((trio.current_time(), tr) for tr in batch)

    async def main() -> None:
        async with trio.open_nursery() as n:
            port = await serve(n, handler)
            vs = VS(address=ipaddress.ip_address("127.0.0.1"), port=port, delay_loop=10, warmup=0)
            rs = RealServer(
                address=ipaddress.ip_address("127.0.0.1"),
                port=port,
                checkers=(HttpCheck(urls=(HttpUrl("/"),)), TcpCheck()),
            )
            sched = Scheduler(deliver, batch_window=0)
            sched.add("rs-a", rs, vs)
            await n.start(sched.run)
            await trio.sleep(35)
            n.cancel_scope.cancel()

    run(main, clock=trio.testing.MockClock(autojump_threshold=0.2))
    states = [(round(t), tr.up, tr.reason) for t, tr in got]
    # initial up; first HTTP failure counts (retry_it preset) at BOOTSTRAP_DELAY 1 s;
    # the second 500 comes at 11 s; the 200 at 21 s brings it back.
    assert states == [
        (0, True, "initial"),
        (1, False, "HTTP_GET: status 500"),
        (21, True, "HTTP_GET: status 200"),
    ], states


def test_scheduler_survives_crashing_checker() -> None:
    class Boom:
        async def check(self, target: Target, timeout: float) -> Result:
            raise RuntimeError("kaboom")

    got: list[Transition] = []

    async def main() -> None:
        sched = Scheduler(got.extend, batch_window=0, rand=lambda: 0.0)
        sched.add_checkers("k", [(Boom(), Target("127.0.0.1"), Timing(10, 0, 0, 1))])
        async with trio.open_nursery() as n:
            await n.start(sched.run)
            await trio.sleep(25)
            assert sched.checks_done == 3
            n.cancel_scope.cancel()

    run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert [t.up for t in got] == [True, False]
    assert got[1].reason == "checker0: crash: RuntimeError: kaboom"
