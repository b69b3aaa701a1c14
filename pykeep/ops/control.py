"""The runtime control socket: JSON lines over a Unix stream socket.

keepalived has no runtime API (keepalived issue #1296): operators edit the
config and send SIGHUP.  pykeep listens on ``/run/pykeep/control.sock``
(mode 0600, root only) and serves one JSON object per line::

    → {"cmd": "drain", "vs": "10.0.0.1:80", "rs": "192.168.1.10:80", "id": 7}
    ← {"id": 7, "ok": true, "result": {...}}
    ← {"id": 7, "ok": false, "error": {"code": "unknown_rs", "message": "..."}}

Commands: ``status``, ``drain VS RS``, ``undrain VS RS``, ``failover
INSTANCE``, ``reload``.  The socket only parses and dispatches; the daemon
implements ``ControlHandler``.  A bad request gets an error object and the
connection stays usable; nothing a client sends can reach the daemon's
state except through a handler method that accepted it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import structlog
import trio

from pykeep.ops.drain import DrainSpecError

if TYPE_CHECKING:
    from pykeep.ops.status import Snapshot

DEFAULT_SOCKET = Path("/run/pykeep/control.sock")
MAX_LINE = 64 * 1024  # a request is a few hundred bytes; refuse to buffer more than this

log = structlog.get_logger("pykeep.ops.control")


class ControlError(Exception):
    """A request the daemon refuses; ``code`` is stable for scripts, ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ControlHandler(Protocol):
    """What the daemon implements for the control socket.

    Each method either returns a JSON-ready mapping (echoed to the client
    as ``result``) or raises ``ControlError``.  Methods run in the daemon's
    trio loop, one request at a time per connection.
    """

    async def status(self) -> Snapshot: ...

    async def drain(self, vs: str, rs: str) -> Mapping[str, Any]: ...

    async def undrain(self, vs: str, rs: str) -> Mapping[str, Any]: ...

    async def failover(self, instance: str) -> Mapping[str, Any]: ...

    async def reload(self) -> Mapping[str, Any]: ...


# cmd -> the string arguments it needs, in order
COMMANDS: dict[str, tuple[str, ...]] = {
    "status": (),
    "drain": ("vs", "rs"),
    "undrain": ("vs", "rs"),
    "failover": ("instance",),
    "reload": (),
}


def _error(req_id: object, code: str, message: str) -> dict[str, Any]:
    return {"id": req_id, "ok": False, "error": {"code": code, "message": message}}


def _bad(req_id: object, code: str, message: str) -> dict[str, Any]:
    """Refuse a malformed request: the client gets the reason, and so does the log."""
    log.info("control.bad_request", code=code, reason=message)
    return _error(req_id, code, message)


def _parse(line: bytes) -> tuple[Any, dict[str, Any] | None]:
    """The request object, or None and a ``_bad`` reply saying why there is none.

    Any ValueError is bad JSON for the client: invalid UTF-8, malformed text,
    and an integer of more than 4300 digits (Python's limit on int(str)).
    Nesting deep enough to exhaust the recursion limit is refused too.
    """
    try:
        return json.loads(line), None
    except ValueError as exc:
        return None, _bad(None, "bad_json", f"request is not JSON: {str(exc)[:200]}")
    except RecursionError:
        return None, _bad(None, "bad_json", "request is nested too deeply")


async def dispatch(handler: ControlHandler, line: bytes) -> dict[str, Any]:
    """One request line in, one response object out; never raises for bad input."""
    request, refusal = _parse(line)
    if refusal is not None:
        return refusal
    if not isinstance(request, dict):
        return _bad(None, "bad_request", "request must be a JSON object")
    req_id = request.get("id")
    cmd = request.get("cmd")
    if not isinstance(cmd, str):
        return _bad(req_id, "bad_request", "missing 'cmd' (a string)")
    if cmd not in COMMANDS:
        known = ", ".join(COMMANDS)
        return _bad(req_id, "unknown_command", f"unknown command {cmd[:100]!r} (known: {known})")
    args: list[str] = []
    for name in COMMANDS[cmd]:
        value = request.get(name)
        if not isinstance(value, str) or not value:
            return _bad(req_id, "missing_argument", f"{cmd} needs {name!r} (a string)")
        args.append(value)
    try:
        method: Callable[..., Awaitable[Any]] = getattr(handler, cmd)
        result = await method(*args)
        # A snapshot exists only once its module is loaded (pykeep/ops/dumps.py).
        status = sys.modules.get("pykeep.ops.status")
        if status is not None and isinstance(result, status.Snapshot):
            result = status.to_dict(result)
        result = dict(result)
    except ControlError as exc:
        log.info("control.refused", cmd=cmd, args=args, code=exc.code, reason=exc.message)
        return _error(req_id, exc.code, exc.message)
    except DrainSpecError as exc:  # the handler parsed an operator's VS/RS and it was wrong
        log.info("control.refused", cmd=cmd, args=args, code="bad_argument", reason=str(exc))
        return _error(req_id, "bad_argument", str(exc))
    except Exception as exc:  # a handler bug must not take the socket (or the daemon) down
        log.exception("control.failed", cmd=cmd, args=args)
        return _error(req_id, "internal", f"{type(exc).__name__}: {exc}")
    log.info("control.done", cmd=cmd, args=args)
    return {"id": req_id, "ok": True, "result": result}


def _encode(response: Mapping[str, Any]) -> bytes:
    try:
        text = json.dumps(response, separators=(",", ":"), default=str)
    except (ValueError, RecursionError) as exc:  # e.g. an echoed id that cannot be written
        log.info("control.unencodable", reason=str(exc)[:200])
        fallback = _error(None, "internal", f"response could not be encoded: {str(exc)[:200]}")
        text = json.dumps(fallback, separators=(",", ":"))
    return text.encode() + b"\n"


def _peer_uid(stream: trio.SocketStream) -> int | None:
    try:
        raw = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


async def _serve_connection(handler: ControlHandler, stream: trio.SocketStream) -> None:
    """One client; whatever goes wrong here ends this connection, never the server."""
    try:
        await _converse(handler, stream)
    except Exception:
        log.exception("control.connection_failed")
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()


async def _converse(handler: ControlHandler, stream: trio.SocketStream) -> None:
    """Read request lines, answer each; returns when the client hangs up."""
    uid = _peer_uid(stream)
    if uid is not None and uid not in (0, os.geteuid()):
        # The socket is 0600 already; this only matters if someone loosened it.
        await stream.send_all(_encode(_error(None, "permission", "root only")))
        return
    buf = b""
    discarding = False  # inside an over-long line: drop bytes up to its newline
    while True:
        try:
            data = await stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        if not data:
            return
        buf += data
        # All complete lines at once: splitting one off at a time would copy
        # the rest of the buffer for each (quadratic in a chunk of tiny lines).
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if discarding:
                discarding = False
                continue
            if not line.strip():
                continue
            if len(line) > MAX_LINE:  # it came whole in fewer reads than the check below sees
                reply = _bad(None, "too_long", f"request line over {MAX_LINE} bytes")
            else:
                reply = await dispatch(handler, line)
            if not await _reply(stream, reply):
                return
        if len(buf) > MAX_LINE:
            buf = b""
            if not discarding:
                discarding = True
                err = _bad(None, "too_long", f"request line over {MAX_LINE} bytes")
                if not await _reply(stream, err):
                    return


async def _reply(stream: trio.SocketStream, response: Mapping[str, Any]) -> bool:
    try:
        await stream.send_all(_encode(response))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    return True


async def _claim(path: Path) -> None:
    """Remove a stale socket left by a crash, but never steal a live daemon's socket."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(f"{path} exists and is not a socket")
    probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with probe:
        try:
            await probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)
            return
    raise OSError(f"{path} is in use by another running pykeep")


async def serve_control(
    handler: ControlHandler,
    path: Path = DEFAULT_SOCKET,
    *,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``path`` until cancelled; the socket file is removed on the way out.

    Start with ``await nursery.start(serve_control, handler, path)`` so the
    socket exists (mode 0600) before the daemon reports READY=1.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    await _claim(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(16)
    except BaseException:
        sock.close()
        raise
    ino = path.stat().st_ino
    listener = trio.SocketListener(sock)
    log.info("control.listening", path=str(path))
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(path)
            await trio.serve_listeners(
                lambda stream: _serve_connection(handler, cast(trio.SocketStream, stream)),
                [listener],
                handler_nursery=nursery,
            )
    finally:
        # No await here: on cancellation a checkpoint would raise before the unlink.
        try:
            if path.stat().st_ino == ino:
                path.unlink()
        except FileNotFoundError:
            pass
        listener.socket.close()


class ControlUnavailable(Exception):
    """The daemon's socket cannot be reached; the message says why in one line."""


def call(request: Mapping[str, Any], path: Path = DEFAULT_SOCKET, timeout: float = 30.0) -> Any:
    """Send one request and return the response object (blocking; for ``pykeep ctl``)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(dict(request)).encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except FileNotFoundError:
        raise ControlUnavailable(f"{path}: no such socket (is pykeep running?)") from None
    except PermissionError:
        raise ControlUnavailable(f"{path}: permission denied (root only)") from None
    except ConnectionRefusedError:
        raise ControlUnavailable(f"{path}: connection refused (is pykeep running?)") from None
    except TimeoutError:
        raise ControlUnavailable(f"{path}: no answer within {timeout:g}s") from None
    except OSError as exc:
        raise ControlUnavailable(f"{path}: {exc.strerror or exc}") from None
    line = buf.split(b"\n", 1)[0]
    if not line:
        raise ControlUnavailable(f"{path}: the daemon closed the connection without answering")
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        raise ControlUnavailable(f"{path}: answer is not JSON") from None
