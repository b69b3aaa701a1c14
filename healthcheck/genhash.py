"""``genhash``: print the MD5 digest keepalived's HTTP_GET/SSL_GET would compute.

Mirrors Debian's keepalived 2.2.7 ``genhash`` (keepalived/check/check_genhash.c):
the same options, a bare hex digest on stdout, ``-v`` dumping the header and
body buffers exactly as keepalived does (lib/utils.c ``dump_buffer``), and
exit status 0 once the command line parsed (1 for usage errors), whatever
the server did.  ``-r``/``--old-format`` prints the pre-2.0 form
``MD5SUM = <hex>`` that older documentation shows.

Entry points: the ``genhash`` console script and ``pykeep --genhash``, both
calling :func:`main`.
"""

from __future__ import annotations

import errno
import ipaddress
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from healthcheck.api import Target
from healthcheck.http import HttpChecker, ResponseStream, build_request

USAGE = """Usage: {prog}{sub} COMMAND [OPTIONS]
Commands:
   -s server-address -p port -u url
   -S -s server-address -p port -u url
   -h

Options:
Either long or short options are allowed.
   --use-ssl         -S       Use SSL connection to remote server.
   --use-sni         -I       Use SNI during SSL handshake (uses virtualhost setting; see -V).
   --server          -s       Use the specified remote server address.
   --port            -p       Use the specified remote server port.
   --url             -u       Use the specified remote server url.
   --use-virtualhost -V       Use the specified virtualhost in GET query.
   --verbose         -v       Use verbose mode output.
   --help            -h       Display this short inlined help screen.
   --fwmark          -m       Use the specified FW mark.
   --protocol        -P       Use the specified HTTP protocol - '1.0', 1.0c', '1.1'.
                                1.0c means 1.0 with 'Connection: close'
   --timeout         -t       Timeout in seconds
"""

_LONG = {
    "help": "h", "verbose": "v", "use-ssl": "S", "use-sni": "I", "server": "s",
    "use-virtualhost": "V", "port": "p", "url": "u", "fwmark": "m", "protocol": "P",
    "timeout": "t", "old-format": "r",
}  # fmt: skip
_WITH_ARG = set("sVpumPt")
#: check_genhash.c leaves connection_to at UINT_MAX microseconds when -t is absent.
DEFAULT_TIMEOUT = 4294967295 / 1e6


@dataclass
class Options:
    server: str = ""
    port: int = 0
    url: str = ""
    ssl: bool = False
    sni: bool = False
    vhost: str | None = None
    verbose: bool = False
    fwmark: int | None = None
    protocol: str = "1.0"
    timeout: float = DEFAULT_TIMEOUT
    old_format: bool = False


class UsageError(Exception):
    pass


def parse(argv: Sequence[str]) -> Options:
    """getopt_long with keepalived's messages; raises UsageError (message may be empty)."""
    if len(argv) <= 1:
        raise UsageError("")
    o = Options()
    seen: set[str] = set()
    bad = False
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            break
        pairs: list[tuple[str, str | None]] = []
        if a.startswith("--"):
            name, eq, val_ = a[2:].partition("=")
            val: str | None = val_
            if name not in _LONG:
                sys.stderr.write(f"Unknown option {a}\n")
                bad = True
                continue
            c = _LONG[name]
            if c in _WITH_ARG and not eq:
                if i >= len(args):
                    sys.stderr.write(f"Missing parameter for option --{name}\n")
                    bad = True
                    continue
                val = args[i]
                i += 1
            pairs.append((c, val if c in _WITH_ARG else None))
        elif a.startswith("-") and len(a) > 1:
            j = 1
            while j < len(a):
                c = a[j]
                j += 1
                if c not in _WITH_ARG and c not in "hvSIr":
                    sys.stderr.write(f"Unknown option -{c}\n")
                    bad = True
                    continue
                if c in _WITH_ARG:
                    val = a[j:]
                    if not val:
                        if i >= len(args):
                            sys.stderr.write(f"Missing parameter for option -{c}\n")
                            bad = True
                            break
                        val = args[i]
                        i += 1
                    pairs.append((c, val))
                    break
                pairs.append((c, None))
        else:
            raise UsageError(f"Unexpected argument(s): {' '.join(args[i - 1 :])}")
        for c, val in pairs:
            _apply(o, c, val or "", seen)
            if c == "h":
                bad = True
    if bad:
        raise UsageError("")
    if not {"s", "p", "u"} <= seen:
        raise UsageError("")
    return o


def _apply(o: Options, c: str, val: str, seen: set[str]) -> None:
    seen.add(c)
    if c == "v":
        o.verbose = True
    elif c == "S":
        o.ssl = True
    elif c == "I":
        o.sni = True
    elif c == "r":
        o.old_format = True
    elif c == "s":
        try:
            o.server = str(ipaddress.ip_address(val))
        except ValueError:
            raise UsageError(f"server should be an IP, not {val}") from None
    elif c == "V":
        o.vhost = val
    elif c == "p":
        if not val.isdigit() or not 0 < int(val) <= 65535:
            raise UsageError(f"invalid port number '{val}'")
        o.port = int(val)
    elif c == "u":
        o.url = val
    elif c == "m":
        s = val.lstrip(" \t")
        if not s.isdigit():
            raise UsageError(f"invalid fwmark '{val}'")
        o.fwmark = int(s)
    elif c == "P":
        if val not in ("1.0", "1.0c", "1.0C", "1.1"):
            raise UsageError(f"invalid HTTP protocol version '{val}'")
        o.protocol = "1.0C" if val in ("1.0c", "1.0C") else val
    elif c == "t":
        s = val.lstrip(" \t")
        if not s.isdigit():
            raise UsageError(f"invalid timeout '{val}'")
        o.timeout = float(int(s))


async def run(o: Options, out: list[str], err: list[str]) -> None:
    """Fetch once and write what keepalived's genhash would print into ``out``/``err``."""
    target = Target(o.server, o.port, fwmark=o.fwmark)
    reader = ResponseStream(digest=True, verbose=out.append if o.verbose else None)
    checker = HttpChecker(urls=(), ssl=o.ssl, enable_sni=o.sni, sni_name=o.vhost)
    got_data = False
    with trio.move_on_after(o.timeout):
        # check_http.c http_check_thread / timeout_epilog messages
        try:
            with trio.move_on_after(o.timeout) as cs:
                stream = await checker.open(target, o.vhost)
            if cs.cancelled_caught:
                out.append("Timeout connecting\n")
                return
        except (trio.BrokenResourceError, ssl.SSLError):
            out.append("SSL handshake/communication error connecting to\n")
            return
        except OSError as e:
            out.append(
                "Connection failed\n" if e.errno == errno.ECONNREFUSED else "Error connecting\n"
            )
            return
        async with stream:
            request = build_request(o.url, o.vhost or o.server, o.port, o.protocol, bool(o.vhost))
            try:
                await stream.send_all(request)
            except (trio.BrokenResourceError, OSError):
                out.append("Cannot send get request to\n")
                return
            while True:
                size = reader.read_size()
                try:
                    data = await stream.receive_some(size) if size > 0 else b""
                except (trio.BrokenResourceError, OSError):
                    out.append("Read error with\n")
                    return
                got_data = got_data or bool(data)
                if not data:
                    break
                reader.feed(bytes(data))
        digest = reader.finish()
        if reader.head is None:
            err.append("no data received from remote webserver\n")
        elif o.old_format:
            out.append(f"MD5SUM = {digest.hex()}\n")
        else:
            out.append(digest.hex() + "\n")
        return
    out.append("Timeout HTTP read\n" if got_data else "Timeout WEB read\n")


def main(argv: Sequence[str] | None = None, prog: str = "genhash") -> int:
    """Console script; ``pykeep --genhash`` passes its remaining arguments as ``argv``."""
    args = list(sys.argv[1:] if argv is None else argv)
    sub = "" if prog == "genhash" else " --genhash"
    try:
        opts = parse(["genhash", *args][1:] if args else [])
    except UsageError as e:
        if str(e):
            sys.stderr.write(f"{e}\n")
        sys.stderr.write(USAGE.format(prog=prog, sub=sub))
        return 1
    out: list[str] = []
    err: list[str] = []
    start = time.monotonic()
    trio.run(run, opts, out, err)
    if opts.verbose:
        usecs = int((time.monotonic() - start) * 1e6)
        out.append(f"\nGlobal response time for [{opts.url}] = {usecs} usecs\n")
    sys.stderr.write("".join(err))
    sys.stdout.write("".join(out))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
