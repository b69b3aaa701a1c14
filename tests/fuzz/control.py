"""The control socket: malformed, oversize and wrongly typed requests over a real socket.

One client sends every request line to ``serve_control`` (a stub daemon
behind it) and reads the replies.  Every non-blank line must get exactly one
reply object, in order, and the server must still answer a ``status``
afterwards; a missing reply or a server error is a crash.  A rejection is
the error code of a reply.
"""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
import trio

from pykeep.ops.control import MAX_LINE, ControlError, serve_control
from tests.fuzz import Tally

VALID: list[dict[str, Any]] = [
    {"cmd": "status"},
    {"cmd": "drain", "vs": "10.0.0.1:80", "rs": "192.168.1.10:80"},
    {"cmd": "undrain", "vs": "10.0.0.1:80", "rs": "192.168.1.10:80"},
    {"cmd": "failover", "instance": "VI_1"},
    {"cmd": "reload"},
]
ODD_VALUES: list[Any] = [
    None, True, 0, -1, 1.5, float("inf"), "", "x" * 300, [], {}, [1, [2, [3]]],
    {"a": {"b": {}}}, "\u0000", "\udcff", "é", 10**20,
]  # fmt: skip


class StubDaemon:
    """Accepts well-formed requests; refuses one instance name, fails on another."""

    async def status(self) -> Mapping[str, Any]:
        return {"instances": 1}

    async def drain(self, vs: str, rs: str) -> Mapping[str, Any]:
        return {"vs": vs, "rs": rs}

    async def undrain(self, vs: str, rs: str) -> Mapping[str, Any]:
        raise ControlError("not_drained", f"{rs} is not drained")

    async def failover(self, instance: str) -> Mapping[str, Any]:
        if instance != "VI_1":
            raise ControlError("unknown_instance", instance)
        return {"instance": instance}

    async def reload(self) -> Mapping[str, Any]:
        return {"message": "configuration reloaded"}


def request(rnd: random.Random) -> bytes:
    """One request line, without its newline (never blank: each must get a reply)."""
    kind = rnd.randrange(10)
    base = dict(rnd.choice(VALID))
    base["id"] = rnd.randint(0, 1000)
    if kind == 0:
        line = rnd.randbytes(rnd.randint(1, 200)).replace(b"\n", b"x")
    elif kind == 1:  # a huge integer somewhere
        digits = rnd.choice([4301, 10_000, 60_000, 100_000])
        key = rnd.choice(["id", "vs", "instance", "cmd"])
        line = json.dumps({**base, key: 0}).replace('": 0', '": ' + "7" * digits, 1).encode()
    elif kind == 2:  # deep nesting
        depth = rnd.choice([100, 1000, 20_000, 40_000])
        line = b"[" * depth + b"]" * depth
    elif kind == 3:  # oversize
        line = b'{"cmd": "status", "pad": "' + b"p" * (MAX_LINE + rnd.randint(1, 5000)) + b'"}'
    elif kind == 4:  # a wrong type in every field in turn
        key = rnd.choice(["cmd", "id", "vs", "rs", "instance"])
        line = json.dumps({**base, key: rnd.choice(ODD_VALUES)}).encode()
    elif kind == 5:  # truncated JSON
        text = json.dumps(base).encode()
        line = text[: rnd.randint(1, len(text) - 1)]
    elif kind == 6:  # not an object
        line = json.dumps(rnd.choice(ODD_VALUES)).encode()
    elif kind == 7:  # unknown command
        line = json.dumps(
            {**base, "cmd": rnd.choice(["", "STATUS", "rm -rf", "x" * 5000])}
        ).encode()
    else:
        line = json.dumps(base).encode()
    return line if line.strip() else b"?"


def _exchange(path: Path, lines: list[bytes]) -> list[bytes]:
    """Send the lines from a thread and read replies until each line had one."""
    data = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(path))
        try:
            s.sendall(b"\n".join(lines) + b"\n")
            s.shutdown(socket.SHUT_WR)
            while chunk := s.recv(1 << 20):
                data += chunk
        except OSError:  # the server hung up early: the missing replies tell
            pass
    return data.splitlines()


def run(n: int, seed: int, workdir: Path) -> Tally:
    rnd = random.Random(seed)
    tally = Tally("control")
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "control.sock"
    batches: list[list[bytes]] = []
    left = n
    while left > 0:
        size = min(left, 200)
        batches.append([request(rnd) for _ in range(size)])
        left -= size

    async def main() -> None:
        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_control, StubDaemon(), path)
                for lines in batches:
                    replies = await trio.to_thread.run_sync(_exchange, path, lines)
                    tally.inputs += len(lines)
                    if len(replies) != len(lines):
                        tally.crash(
                            lines[len(replies) :][:1],
                            why=f"{len(replies)} replies to {len(lines)} requests",
                        )
                    for line, raw in zip(lines, replies, strict=False):
                        try:
                            reply = json.loads(raw)
                        except ValueError as exc:
                            tally.crash(line, exc)
                            continue
                        if reply.get("ok") is True:
                            tally.accepted += 1
                        else:
                            tally.reject(str(reply.get("error", {}).get("code")))
                last = await trio.to_thread.run_sync(_exchange, path, [b'{"cmd": "status"}'])
                if not last or not json.loads(last[0]).get("ok"):
                    tally.crash(b"status", why="the server stopped answering")
                nursery.cancel_scope.cancel()

    with structlog.testing.capture_logs() as events:
        trio.run(main)
    for e in events:
        if e["event"] in ("control.connection_failed", "control.failed"):
            tally.crash(e, why=e["event"])
    unexplained = sum(tally.rejections.values()) - sum(
        1 for e in events if e["event"] in ("control.bad_request", "control.refused")
    )
    if unexplained:
        tally.crash(unexplained, why="rejections without a logged reason")
    return tally
