"""Differential test: pykeep's genhash against Debian keepalived 2.2.7's genhash.

20 generated pages (chunked bodies, bodies over 64 KiB, Content-Length
shorter than the body, none at all, lower-case header…) are served on
loopback.  The server writes each response in pieces of at most 4000 bytes
with a pause between them, so both programs see the same read boundaries
and the ``-v`` dumps (which show each read) are comparable byte for byte.
"""

from __future__ import annotations

import random
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import trio
import trustme

from healthcheck.api import Target
from healthcheck.genhash import main as genhash_main
from healthcheck.http import (
    HttpChecker,
    dump_buffer,
    extract_content_length,
    extract_status_code,
)
from pykeep.config.model import HttpUrl, StatusRange

PIECE = 4000


def _chunked(body: bytes, size: int) -> bytes:
    out = b"".join(
        f"{len(body[i : i + size]):x}\r\n".encode() + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    )
    return out + b"0\r\n\r\n"


def _pages() -> list[bytes]:
    rnd = random.Random(5)
    pages = []
    for n in (0, 1, 17, 1000, 3900, 5000, 65536, 65537, 70000, 150000):
        body = bytes(rnd.getrandbits(8) for _ in range(n)) if n < 5000 else rnd.randbytes(n)
        pages.append(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % n + body)
    text = b"<html>" + b"pykeep " * 20000 + b"</html>"
    pages += [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(text[:3000], 700),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(text, 8192),
        b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n" + text[:5000],
        b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n" + text[:90000],
        b"HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\n" + text[:300],
        b"HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
        b"HTTP/1.0 200 OK\r\nContent-Length: 70000\r\n\r\n" + text[:70000],
        b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n" + text[:40],
        b"HTTP/1.0 500 Oops\r\nContent-Length:  12 \r\n\r\n" + text[:12],
        b"HTTP/1.0 200 OK\r\nX-Pad: " + b"p" * 3000 + b"\r\nContent-Length: 2000\r\n\r\n"
        + text[:2000],
    ]  # fmt: skip
    assert len(pages) == 20
    return pages


PAGES = _pages()


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
            m = re.match(rb"GET /(\d+) ", buf)
            resp = PAGES[int(m.group(1))] if m else b"HTTP/1.0 400 Bad\r\n\r\n"
            for i in range(0, len(resp), PIECE):
                conn.sendall(resp[i : i + PIECE])
                time.sleep(0.012)

    def loop() -> None:
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield lsock.getsockname()[1]
    finally:
        stop.set()
        t.join()
        lsock.close()


def _run(cmd: list[str]) -> tuple[int, str, str]:
    p = subprocess.run(cmd, capture_output=True, timeout=60)
    out = re.sub(rb"= \d+ usecs", b"= N usecs", p.stdout)
    return p.returncode, out.decode("latin-1"), p.stderr.decode("latin-1")


OURS = [sys.executable, "-m", "healthcheck.genhash"]


@pytest.mark.skipif(shutil.which("genhash") is None, reason="Debian keepalived not installed")
@pytest.mark.parametrize("index", range(20))
def test_genhash_matches_keepalived(server: int, index: int) -> None:
    args = ["-s", "127.0.0.1", "-p", str(server), "-u", f"/{index}"]
    assert _run(OURS + args) == _run(["genhash", *args])
    # -v dumps each read of the body; how the kernel splits the stream into
    # reads is not the program's doing (a loaded machine merges two paced
    # pieces in one run and not the other), so the dumps are compared joined.
    ours, theirs = _run([*OURS, "-v", *args]), _run(["genhash", "-v", *args])
    assert _joined_reads(ours) == _joined_reads(theirs)


def _joined_reads(res: tuple[int, str, str]) -> tuple[int, str, bytes, str]:
    """``-v`` output with its "HTML Buffer" dumps replaced by the bytes they show, joined."""
    rc, out, err = res
    kept: list[str] = []
    body = bytearray()
    in_body = False
    for line in out.splitlines():
        if line.startswith("-") and "[" in line:
            in_body = "HTML Buffer" in line
            if in_body:
                continue
        if in_body and re.match(r"[0-9a-f]{4}  ", line):
            # "0000  41 42 … 48 - 49 … 50   ABCD…": 16 bytes in a fixed 49-column field
            body += bytes.fromhex(" ".join(t for t in line[6:55].split() if t != "-"))
            continue
        kept.append(line)
    return rc, "\n".join(kept), bytes(body), err


def test_genhash_errors_match(server: int) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = str(s.getsockname()[1])
    for args in (
        ["-s", "127.0.0.1", "-p", closed, "-u", "/"],
        ["-s", "nonsense", "-p", "1", "-u", "/"],
        ["-s", "127.0.0.1", "-p", "99999", "-u", "/"],
        ["-s", "127.0.0.1", "-u", "/"],
        ["-s", "127.0.0.1", "-p", "1", "-u", "/", "extra"],
    ):
        ours, theirs = _run(OURS + args), _run(["genhash", *args])
        assert ours[:2] == theirs[:2], args
        assert ours[2].replace("__main__.py", "genhash") == theirs[2], args


def test_old_md5sum_format(server: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert genhash_main(["-r", "-s", "127.0.0.1", "-p", str(server), "-u", "/5"]) == 0
    assert re.fullmatch(r"MD5SUM = [0-9a-f]{32}\n", capsys.readouterr().out)


def test_keepalived_extractors() -> None:
    """lib/html.c extract_status_code / extract_content_length quirks."""
    assert extract_status_code(b"HTTP/1.0 204 No\r\n") == 204
    assert extract_status_code(b"HTTP/1.0 20 x\r\n") == 0
    assert extract_content_length(b"content-length: 5\r\n") is None
    assert extract_content_length(b"Content-Length:  12 \r\n") is None
    assert extract_content_length(b"Content-Length:\r\n") == 0
    assert (
        dump_buffer(b"AB")
        == "0000  41 42" + "   " * 6 + " -" + "   " * 8 + "   AB" + " " * 14 + "\n"
    )


def test_http_get_accepts_the_digest_genhash_prints(server: int) -> None:
    """HTTP_GET with ``digest`` set to Debian genhash's output passes, chunked bodies included."""
    for index in (0, 7, 9, 10, 11, 12, 13, 16, 17):
        args = ["-s", "127.0.0.1", "-p", str(server), "-u", f"/{index}"]
        digest = _run(["genhash", *args])[1].strip()
        url = HttpUrl(f"/{index}", digest=digest, status_codes=(StatusRange(200, 599),))
        res = trio.run(HttpChecker([url]).check, Target("127.0.0.1", server), 5.0)
        assert res.ok, (index, res)
        bad = HttpUrl(f"/{index}", digest="f" * 32, status_codes=(StatusRange(200, 599),))
        assert not trio.run(HttpChecker([bad]).check, Target("127.0.0.1", server), 5.0).ok


def test_genhash_ssl_matches_keepalived() -> None:
    """-S against a trustme-certified TLS server: same digest, nothing verified."""
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("www.example").configure_cert(ctx)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    lsock.settimeout(10)
    port = lsock.getsockname()[1]

    def serve(n: int) -> None:
        for _ in range(n):
            try:
                raw, _ = lsock.accept()
                with ctx.wrap_socket(raw, server_side=True) as conn:
                    buf = b""
                    while b"\r\n\r\n" not in buf:
                        buf += conn.recv(4096)
                    conn.sendall(PAGES[8])
                    conn.unwrap()
            except (OSError, ssl.SSLError):
                continue

    t = threading.Thread(target=serve, args=(4,), daemon=True)
    t.start()
    try:
        for sni in ([], ["-I", "-V", "www.example"]):
            args = ["-S", *sni, "-s", "127.0.0.1", "-p", str(port), "-u", "/8"]
            ours, theirs = _run(OURS + args), _run(["genhash", *args])
            assert ours == theirs and re.fullmatch(r"[0-9a-f]{32}\n", ours[1]), (ours, theirs)
    finally:
        t.join(timeout=10)
        lsock.close()
