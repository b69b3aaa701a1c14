"""A real server's web page: answers every GET with its own name.

Why: seed 003 §3.1.2 puts ``lvs-RS1-156`` / ``lvs-RS2-157`` in each real server's
index.html so that ``for i in $(seq 10); do curl http://VIP/; done`` shows the
scheduler alternating (§3.3.3).  This is that page, without Apache: standard
library only, so it runs in any namespace (and in the virtme-ng VM) with the
project venv or a bare python3.

Run: ``python -m sim.httpd --name lvs-RS1-156 [--port 80] [--bind 0.0.0.0]``.
Every path answers 200 with ``<name>\\n`` (health checks may probe any URL);
``--status PATH=CODE`` overrides one path, so a checker can be made to fail
without stopping the server.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType


class _Handler(BaseHTTPRequestHandler):
    server_version = "pykeep-sim-httpd"
    protocol_version = "HTTP/1.1"
    body: bytes = b""
    statuses: dict[str, int] = {}  # noqa: RUF012 - replaced per server by make_handler

    def _reply(self, send_body: bool) -> None:
        code = self.statuses.get(self.path.split("?", 1)[0], 200)
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if send_body:
            self.wfile.write(self.body)

    def do_GET(self) -> None:
        self._reply(True)

    def do_HEAD(self) -> None:
        self._reply(False)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: our stdout may be a pipe nobody reads


def make_handler(name: str, statuses: dict[str, int]) -> type[BaseHTTPRequestHandler]:
    return type(
        "Handler",
        (_Handler,),
        {"body": (name + "\n").encode(), "statuses": dict(statuses)},
    )


def _parse_status(items: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        path, _, code = item.partition("=")
        if not path.startswith("/") or not code.isdigit():
            raise SystemExit(f"sim.httpd: --status wants PATH=CODE, got {item!r}")
        out[path] = int(code)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.httpd", description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="the text every GET answers")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--status", action="append", default=[], metavar="PATH=CODE")
    args = p.parse_args(argv)

    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    try:
        server = ThreadingHTTPServer(
            (args.bind, args.port), make_handler(args.name, _parse_status(args.status))
        )
    except OSError as exc:
        print(f"sim.httpd: cannot listen on {args.bind}:{args.port}: {exc}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
