"""From configuration to running checker, as keepalived builds its checkers.

keepalived creates a checker while it parses the checker's block: the
connection target is the real server's address *as written* at that moment
(check_api.c ``queue_checker``), a FILE_CHECK points at the ``track_file``
it names (check_file.c ``track_file_handler``), and a MISC_CHECK whose script
is refused by script security is removed (check_misc.c
``check_misc_script_security``).  The port corrections of check_data.c
``validate_check_config`` come later and touch only the real server.
Each test runs the checker against a real file, script or server.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import trio

from healthcheck.scheduler import attempt, build_checker
from pykeep import config
from pykeep.config.model import Config, RealServer, VirtualServer


def _load(text: str) -> Config:
    r = config.load_text(text, "k.conf", interface_exists=lambda _n: True)
    assert r.exit_code in (0, 5, 6), [str(d) for d in r.diagnostics]
    return r.config


def _only(cfg: Config) -> tuple[VirtualServer, RealServer]:
    vs = cfg.virtual_servers[0]
    return vs, vs.real_servers[0]


def _run_once(cfg: Config) -> tuple[bool, str]:
    vs, rs = _only(cfg)
    checker, target, _timing = build_checker(rs.checkers[0], rs, vs, cfg)
    res = trio.run(attempt, checker, target, 2.0)
    return res.ok, res.reason


# ------------------------------------------------------------------ FILE_CHECK


def _file_conf(path: Path, tf_weight: str = "", fc_weight: str = "") -> str:
    return (
        f"track_file tf {{\n file {path}\n {tf_weight}\n}}\n"
        "virtual_server 127.0.0.1 80 {\n lb_kind NAT\n protocol TCP\n"
        " real_server 127.0.0.1 80 {\n  FILE_CHECK {\n   track_file tf\n"
        f"   {fc_weight}\n  }}\n }}\n}}\n"
    )


def test_file_check_reads_the_track_files_file(tmp_path: Path) -> None:
    f = tmp_path / "state"
    f.write_text("0\n")
    cfg = _load(_file_conf(f, tf_weight="weight 0"))
    assert _run_once(cfg)[0]
    f.write_text("3\n")  # weight 0: any non-zero value takes the server down
    ok, reason = _run_once(cfg)
    assert not ok and "3" in reason


def test_file_check_takes_the_track_files_weight_unless_its_own(tmp_path: Path) -> None:
    f = tmp_path / "state"
    f.write_text("-300\n")
    # track_file weight 1 (default): -300 × 1 <= -254: down (check_file.c).
    assert not _run_once(_load(_file_conf(f)))[0]
    # its own weight 0 wins over the track_file's.
    f.write_text("5\n")
    assert _run_once(_load(_file_conf(f)))[0]
    assert not _run_once(_load(_file_conf(f, fc_weight="weight 0")))[0]


# ------------------------------------------------------ ports as written


async def _listener(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as n:
        n.start_soon(functools.partial(trio.serve_listeners, handler, listeners))
        task_status.started(listeners[0].socket.getsockname()[1])


def _tcp_result(text_for_port: str) -> tuple[bool, int | None, int | None]:
    """(checker passed, port the checker used, port IPVS gets) against a live server."""
    out: list[tuple[bool, int | None, int | None]] = []

    async def main() -> None:
        async with trio.open_nursery() as n:
            port = await n.start(_listener)
            cfg = _load(text_for_port.format(port=port))
            vs, rs = _only(cfg)
            checker, target, _t = build_checker(rs.checkers[0], rs, vs, cfg)
            res = await attempt(checker, target, 2.0)
            out.append((res.ok, target.port, rs.port))
            n.cancel_scope.cancel()

    trio.run(main)
    return out[0]


def test_fwmark_dr_server_is_checked_on_its_configured_port() -> None:
    """keepalived clears the port for IPVS ("has port specified - clearing") but its
    checker was built with the port as written, so the live server is found up."""
    ok, checked, ipvs_port = _tcp_result(
        "virtual_server fwmark 7 {{\n lb_kind DR\n"
        " real_server 127.0.0.1 {port} {{\n  TCP_CHECK {{\n   connect_timeout 2\n  }}\n }}\n}}\n"
    )
    assert ipvs_port is None
    assert ok and checked is not None and checked > 0


def test_dr_port_reset_leaves_the_checker_on_the_written_port() -> None:
    """ "ports don't match - resetting" changes the IPVS destination, not the checker."""
    ok, checked, ipvs_port = _tcp_result(
        "virtual_server 127.0.0.1 1 {{\n lb_kind DR\n protocol TCP\n"
        " real_server 127.0.0.1 {port} {{\n  TCP_CHECK {{\n   connect_timeout 2\n  }}\n }}\n}}\n"
    )
    assert ipvs_port == 1
    assert ok and checked != 1


# ------------------------------------------------------------------ MISC_CHECK


def test_misc_check_refused_by_script_security_is_removed(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nexit 0\n")
    bad.chmod(0o777)
    text = (
        "global_defs {{\n {sec}\n script_user root\n}}\n"
        "virtual_server 127.0.0.1 80 {{\n lb_kind NAT\n protocol TCP\n"
        f' real_server 127.0.0.1 80 {{{{\n  MISC_CHECK {{{{\n   misc_path "{bad}"\n  }}}}\n'
        " }}\n}}\n"
    )
    cfg = _load(text.format(sec="enable_script_security"))
    vs, rs = _only(cfg)
    with pytest.raises(ValueError, match="insecure"):
        build_checker(rs.checkers[0], rs, vs, cfg)
    # Without script security keepalived only logs the weakness and runs it.
    assert _run_once(_load(text.format(sec="")))[0]


# ------------------------------------------------------------- SMTP_CHECK hosts


async def _smtp_server(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        try:
            await stream.send_all(b"220 pk ESMTP\r\n")
            await stream.receive_some(1024)
            await stream.send_all(b"250 hello\r\n")
            await stream.receive_some(1024)
            await stream.send_all(b"221 bye\r\n")
        except trio.BrokenResourceError:
            pass
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as n:
        n.start_soon(functools.partial(trio.serve_listeners, handler, listeners))
        task_status.started(listeners[0].socket.getsockname()[1])


def test_smtp_check_host_blocks_are_checkers_of_their_own() -> None:
    """check_smtp.c smtp_check_end_handler: one checker per host block, each with its
    own connection options; the first takes the checker's place when the checker
    has none of its own.  One host answers SMTP, the other has nobody listening."""
    out: list[list[tuple[bool, int | None]]] = []

    async def main() -> None:
        async with trio.open_nursery() as n:
            up = await n.start(_smtp_server)
            down = await n.start(_listener)  # accepts and closes: no 220 banner
            text = (
                "virtual_server 127.0.0.1 25 {\n lb_kind NAT\n protocol TCP\n"
                " real_server 127.0.0.1 25 {\n  SMTP_CHECK {\n   helo_name pk.test\n"
                f"   host {{\n    connect_ip 127.0.0.1\n    connect_port {up}\n   }}\n"
                f"   host {{\n    connect_port {down}\n   }}\n"
                "  }\n }\n}\n"
            )
            for own in ("", "   connect_timeout 2\n"):
                cfg = _load(text.replace("helo_name pk.test\n", "helo_name pk.test\n" + own))
                vs, rs = _only(cfg)
                results = []
                for m in rs.checkers:
                    checker, target, _t = build_checker(m, rs, vs, cfg)
                    res = await attempt(checker, target, 2.0)
                    results.append((res.ok, target.port))
                out.append(results)
            n.cancel_scope.cancel()

    trio.run(main)
    without_own, with_own = out
    assert [ok for ok, _p in without_own] == [True, False]
    assert without_own[0][1] != without_own[1][1]
    # with connection options of its own the checker stays, on the real server's port 25
    assert len(with_own) == 3 and with_own[0][1] == 25 and with_own[1:] == without_own


# ------------------------------------------------------------- SSL client certificate


def test_ssl_block_gives_ssl_get_its_client_certificate(tmp_path: Path) -> None:
    """check_ssl.c build_ssl_ctx: the top-level SSL block's certificate, key (with its
    password) and CA go into SSL_GET's context; a server that requires a client
    certificate accepts the check only with it."""
    import ssl

    import trustme

    server_ca, client_ca = trustme.CA(), trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("www.example").configure_cert(server_ctx)
    client_ca.configure_trust(server_ctx)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client = client_ca.issue_cert("director.example")
    cert, key, ca = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    client.cert_chain_pems[0].write_to_path(str(cert))
    from cryptography.hazmat.primitives import serialization as ser

    private = ser.load_pem_private_key(client.private_key_pem.bytes(), None)
    key.write_bytes(
        private.private_bytes(
            ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.BestAvailableEncryption(b"s3cret")
        )
    )
    server_ca.cert_pem.write_to_path(str(ca))

    async def handler(raw: trio.SocketStream) -> None:
        stream = trio.SSLStream(raw, server_ctx, server_side=True)
        try:
            await stream.do_handshake()
            await stream.receive_some(4096)
            await stream.send_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    ssl_block = f"SSL {{\n password s3cret\n ca {ca}\n certificate {cert}\n key {key}\n}}\n"
    results: list[bool] = []

    async def main() -> None:
        async with trio.open_nursery() as n:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            n.start_soon(functools.partial(trio.serve_listeners, handler, listeners))
            vs_text = (
                f"virtual_server 127.0.0.1 {port} {{\n lb_kind NAT\n protocol TCP\n"
                f" real_server 127.0.0.1 {port} {{\n  SSL_GET {{\n   url {{\n    path /\n"
                "    status_code 200\n   }\n   connect_timeout 2\n  }\n }\n}\n"
            )
            for text in (ssl_block + vs_text, vs_text):
                cfg = _load(text)
                vs, rs = _only(cfg)
                checker, target, _t = build_checker(rs.checkers[0], rs, vs, cfg)
                results.append((await attempt(checker, target, 3.0)).ok)
            n.cancel_scope.cancel()

    trio.run(main)
    assert results == [True, False]
    # A certificate that does not load is refused before any check (keepalived stops
    # its checker process: "SSL error : Cant load certificate file...").
    cfg = _load(ssl_block.replace(str(cert), str(tmp_path / "missing.pem")) + _file_free_vs())
    vs, rs = _only(cfg)
    with pytest.raises(ValueError, match="Cant load certificate"):
        build_checker(rs.checkers[0], rs, vs, cfg)


def _file_free_vs() -> str:
    return (
        "virtual_server 127.0.0.1 443 {\n lb_kind NAT\n protocol TCP\n"
        " real_server 127.0.0.1 443 {\n  SSL_GET {\n   url {\n    path /\n   }\n  }\n }\n}\n"
    )
