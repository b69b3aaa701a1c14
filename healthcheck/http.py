"""HTTP_GET and SSL_GET (keepalived check_http.c, check_ssl.c).

The request is keepalived's exact template (``GET path HTTP/1.x``,
``User-Agent: KeepAliveClient``, optional ``Connection: close``, ``Host``).
The response head is parsed by h11, so a hostile peer yields a clean
"bad response" reason.  The ``digest`` and ``regex`` run on the raw bytes
after the blank line, because keepalived hashes what came off the wire:
a chunked body is hashed with its chunk framing, bounded by a
``Content-Length:`` header found the way keepalived finds it
(lib/html.c ``extract_content_length``: case-sensitive, first match).
:class:`ResponseStream` is that byte-exact, sans-I/O reader; genhash uses it
too, with its verbose dump.

As in keepalived, ``connect_timeout`` bounds each I/O step (the connect, the
TLS handshake, the request, each read), not the whole attempt; the scheduler's
guard (:data:`healthcheck.scheduler.GUARD_STEPS`) still stops a slowloris peer
that keepalived would wait on for ever.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ssl import SSLContext

import h11
import trio

from healthcheck.api import Result, Target
from healthcheck.tcp import StepTimeout, open_tcp, os_reason, receive_step, step
from pykeep.config.model import HttpCheck, HttpUrl, StatusRange

#: keepalived check_http.h MAX_BUFFER_LENGTH: reads are at most this minus one.
MAX_BUFFER_LENGTH = 4096
#: How much body a ``regex`` is matched against.
REGEX_WINDOW = 1 << 20
ULONG_MAX = (1 << 64) - 1

DELIM_BEGIN = "-----------------------["
DELIM_END = "]-----------------------\n"
HTTP_HEADER_HEXA = DELIM_BEGIN + "    HTTP Header Buffer    " + DELIM_END
HTTP_HEADER_ASCII = DELIM_BEGIN + " HTTP Header Ascii Buffer " + DELIM_END
HTML_HEADER_HEXA = DELIM_BEGIN + "        HTML Buffer        " + DELIM_END
HTML_HASH = DELIM_BEGIN + "    HTML hash resulting    " + DELIM_END
HTML_HASH_FINAL = DELIM_BEGIN + " HTML hash final resulting " + DELIM_END

_STRTOUL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(\d+)")


def _strtoul(buf: bytes, pos: int) -> tuple[int, int]:
    """C ``strtoul(…, 10)``: (value, index of the first unparsed byte)."""
    m = _STRTOUL.match(buf, pos)
    if not m:
        return 0, pos
    value = int(m.group(2))
    value = ULONG_MAX if value > ULONG_MAX else value
    if m.group(1) == b"-":
        value = (-value) & ULONG_MAX
    return value, m.end()


def dump_buffer(data: bytes) -> str:
    """keepalived lib/utils.c ``dump_buffer``: offset, hex in two groups of 8, ASCII."""
    out = []
    for off in range(0, len(data), 16):
        row = data[off : off + 16]
        cells = [f" {b:02x}" if i < len(row) else "   " for i, b in enumerate(row.ljust(16))]
        text = "".join(chr(b) if 0x20 <= b <= 0x7E else "." for b in row).ljust(16)
        out.append(f"{off & 0xFFFF:04d} {''.join(cells[:8])} -{''.join(cells[8:])}   {text}\n")
    return "".join(out)


def extract_status_code(buf: bytes) -> int:
    """lib/html.c ``extract_status_code``: the three digits after the first space."""
    i = 0
    while i < len(buf) and buf[i] not in b" \r":
        i += 1
    if i >= len(buf) or buf[i] != 0x20:
        return 0
    i += 1
    if i + 3 >= len(buf) or buf[i] == 0x20 or buf[i + 3] != 0x20:
        return 0
    code, end = _strtoul(buf, i)
    return code if end == i + 3 else 0


def extract_content_length(buf: bytes) -> int | None:
    """lib/html.c ``extract_content_length``: None is keepalived's SIZE_MAX (no bound)."""
    text = buf.split(b"\0", 1)[0]
    at = text.find(b"Content-Length:")
    if at < 0:
        return None
    start = at + len(b"Content-Length:")
    value, end = _strtoul(text, start)
    if end < len(text) and text[end] not in b"\r\n":
        return None
    return None if value == ULONG_MAX else value


@dataclass
class ResponseStream:
    """keepalived check_http.c ``http_process_response``, byte for byte.

    Feed each received chunk; ``read_size`` is how much keepalived would ask
    for next.  ``verbose`` receives genhash's ``-v`` dump as it happens.
    """

    digest: bool = True
    keep_body: bool = False
    verbose: Callable[[str], None] | None = None
    buffer: bytearray = field(default_factory=bytearray)
    head: bytes | None = None
    status_code: int = 0
    content_len: int | None = None
    rx_bytes: int = 0
    body: bytearray = field(default_factory=bytearray)
    md5: hashlib._Hash = field(default_factory=hashlib.md5)

    def read_size(self) -> int:
        return MAX_BUFFER_LENGTH - 1 - len(self.buffer)

    def _say(self, text: str) -> None:
        if self.verbose is not None:
            self.verbose(text)

    def _take(self, data: bytes) -> None:
        if self.keep_body and len(self.body) < REGEX_WINDOW:
            self.body += data[: REGEX_WINDOW - len(self.body)]

    def _bounded(self, r: int) -> int:
        cl = self.content_len
        return r if cl is None or cl >= self.rx_bytes + r else cl - self.rx_bytes

    def feed(self, data: bytes) -> None:
        old = len(self.buffer)
        self.buffer += data
        if self.head is None:
            self._say(HTTP_HEADER_HEXA)
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            raw = bytes(self.buffer)
            self.head = raw[: end + 4]
            self.status_code = extract_status_code(raw)
            self.content_len = extract_content_length(raw)
            if self.verbose is not None:  # the dumps cost more than the check itself
                self._say(dump_buffer(self.head))
                self._say(HTTP_HEADER_ASCII + self.head.split(b"\0", 1)[0].decode("latin-1") + "\n")
            rest = raw[end + 4 :]
            if rest and self.digest and (self.content_len is None or self.content_len > 0):
                n = self._bounded(len(rest))
                self.md5.update(rest[:n])
                if self.verbose is not None:
                    self._say(HTML_HEADER_HEXA + dump_buffer(rest[:n]))
            self._take(rest)
            self.rx_bytes = len(rest)
        else:
            new = bytes(self.buffer[old:])
            if self.digest and (self.content_len is None or self.content_len > self.rx_bytes):
                n = self._bounded(len(new))
                self.md5.update(new[:n])
                if self.verbose is not None:
                    self._say(dump_buffer(new[:n]))
            self._take(new)
            self.rx_bytes += len(self.buffer)
        self.buffer.clear()

    def finish(self) -> bytes:
        """At EOF: the digest, with genhash's closing dump."""
        digest = self.md5.digest()
        if self.verbose is not None:
            self._say("\n" + HTML_HASH + dump_buffer(digest) + HTML_HASH_FINAL)
        return digest


def build_request(path: str, host: str, port: int | None, protocol: str, vhost: bool) -> bytes:
    """check_http.c ``request_template``: keepalived's request, exactly."""
    minor = 1 if protocol == "1.1" else 0
    close = "Connection: close\r\n" if protocol in ("1.0C", "1.0c", "1.1") else ""
    host_hdr = host if vhost else (f"[{host}]" if ":" in host else host) + f":{port}"
    agent = "User-Agent: KeepAliveClient\r\n"
    return f"GET {path} HTTP/1.{minor}\r\n{agent}{close}Host: {host_hdr}\r\n\r\n".encode("latin-1")


def unverified_context() -> ssl.SSLContext:
    """keepalived's SSL_GET verifies nothing (check_ssl.c ``init_ssl_ctx``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(frozen=True)
class ClientTls:
    """The top-level ``SSL { certificate key password ca }`` block (check_ssl.c).

    keepalived's ``build_ssl_ctx`` loads the certificate chain, the key (with
    the password) and the CA file into the one context every SSL_GET uses; it
    never turns verification on, so the CA file changes nothing on the wire
    but must load.  A file that does not load is an error before any check.
    """

    certificate: str | None = None
    key: str | None = None
    password: str | None = None
    ca: str | None = None

    def context(self) -> ssl.SSLContext:
        """The client context; raises ValueError with keepalived's reason if a file fails."""
        ctx = unverified_context()
        if self.certificate:
            try:
                ctx.load_cert_chain(self.certificate, self.key or None, self.password)
            except (OSError, ssl.SSLError) as e:
                raise ValueError(f"SSL error : Cant load certificate file... ({e})") from None
        elif self.key:
            raise ValueError("SSL error : Cant load key file... (no certificate)")
        if self.ca:
            try:
                ctx.load_verify_locations(self.ca)
            except (OSError, ssl.SSLError) as e:
                raise ValueError(f"SSL error : Cant load CA file... ({e})") from None
        return ctx


_REGEX_FLAGS = {"caseless": re.I, "multiline": re.M, "dotall": re.S, "extended": re.X}


@dataclass
class HttpChecker:
    """HTTP_GET / SSL_GET: one URL per attempt (the policy walks them)."""

    urls: Sequence[HttpUrl]
    ssl: bool = False
    http_protocol: str = "1.0"
    virtualhost: str | None = None  # resolved: url > checker > real_server > virtual_server
    enable_sni: bool = False  # keepalived sends SNI only with ``enable_sni`` (check_ssl.c)
    sni_name: str | None = None
    max_head: int = 64 * 1024
    tls: ClientTls | None = None
    _regexes: list[re.Pattern[bytes] | None] = field(default_factory=list)
    _context: SSLContext | None = None

    def __post_init__(self) -> None:
        if self.ssl:
            self._context = self.tls.context() if self.tls is not None else unverified_context()
        for u in self.urls:
            flags = 0
            for opt in u.regex_options:
                flags |= _REGEX_FLAGS.get(opt, 0)
            self._regexes.append(re.compile(u.regex.encode(), flags) if u.regex else None)

    @classmethod
    def from_model(
        cls,
        model: HttpCheck,
        rs_vhost: str | None = None,
        vs_vhost: str | None = None,
        tls: ClientTls | None = None,
    ) -> HttpChecker:
        """Raises ValueError when ``tls`` names a file that does not load."""
        return cls(
            urls=model.urls,
            ssl=model.ssl,
            http_protocol=model.http_protocol,
            virtualhost=model.virtualhost or rs_vhost or vs_vhost,
            enable_sni=model.enable_sni,
            sni_name=model.sni_name,
            tls=tls,
        )

    @property
    def steps(self) -> int:
        return max(1, len(self.urls))

    async def check(self, target: Target, timeout: float) -> Result:
        res = Result.failed("no url")
        for i in range(len(self.urls)):
            res = await self.check_step(target, timeout, i)
            if not res.ok:
                break
        return res

    async def check_step(self, target: Target, timeout: float, step: int) -> Result:
        if not self.urls:
            return Result.failed("no url")
        url = self.urls[step % len(self.urls)]
        regex = self._regexes[step % len(self.urls)]
        try:
            return await self._get(target, url, regex, timeout)
        except StepTimeout as e:
            return Result.failed(e.reason)
        except OSError as e:
            return Result.failed(os_reason(e))
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError) as e:
            return Result.failed(f"connection error: {e}".rstrip(": "))

    async def open(self, target: Target, vhost: str | None) -> trio.abc.Stream:
        return await self.secure(await open_tcp(target), vhost)

    async def secure(self, stream: trio.abc.Stream, vhost: str | None) -> trio.abc.Stream:
        """SSL_GET's handshake over a connected stream; HTTP_GET's stream as it is."""
        if not self.ssl:
            return stream
        sni = (self.sni_name or vhost) if self.enable_sni else None
        ctx = self._context if self._context is not None else unverified_context()
        tls = trio.SSLStream(stream, ctx, server_hostname=sni, https_compatible=True)
        await tls.do_handshake()
        return tls

    async def _get(
        self, target: Target, url: HttpUrl, regex: re.Pattern[bytes] | None, timeout: float
    ) -> Result:
        vhost = url.virtualhost or self.virtualhost
        request = build_request(
            url.path, vhost or target.address, target.port, self.http_protocol, vhost is not None
        )
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=self.max_head)
        conn.send(h11.Request(method="GET", target=url.path, headers=[("Host", vhost or "x")]))
        reader = ResponseStream(digest=url.digest is not None, keep_body=regex is not None)
        status: int | None = None
        # Each I/O step has its own connect_timeout, as keepalived registers each
        # one with it (check_http.c http_connect_thread, http_request_thread,
        # http_read_thread): a slow but progressing server passes.
        with step(timeout):
            stream: trio.abc.Stream = await open_tcp(target)
        if self.ssl:
            try:
                with step(timeout):
                    stream = await self.secure(stream, vhost)
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
        async with stream:
            with step(timeout):
                await stream.send_all(request)
            while True:
                if reader.read_size() <= 0:
                    return Result.failed("header too large")
                data = await receive_step(stream, reader.read_size(), timeout)
                if not data:
                    break
                reader.feed(data)
                if status is None:
                    conn.receive_data(data)
                    try:
                        event = conn.next_event()
                    except h11.RemoteProtocolError as e:
                        return Result.failed(f"bad response: {e}")
                    if isinstance(event, h11.Response | h11.InformationalResponse):
                        status = event.status_code
        if status is None:
            if reader.head is not None:
                return Result.failed("bad response")
            return Result.failed("no data received")
        ranges = url.status_codes or (StatusRange(200, 299),)
        if not any(status in r for r in ranges):
            return Result.failed(f"status {status}")
        if url.digest is not None:
            got = reader.md5.hexdigest()
            if got != url.digest.lower():
                return Result.failed(f"digest mismatch {got}")
        if regex is not None:
            matched = regex.search(bytes(reader.body)) is not None
            if matched == url.regex_no_match:
                return Result.failed("regex match failed")
        return Result.passed(f"status {status}")
