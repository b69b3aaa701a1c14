"""The control socket with a fake daemon behind it: every ``pykeep ctl`` command round-trips,
bad requests get error objects, and the drain set survives reloads and restarts.

``FakeDaemon`` is also the reference for how the real daemon implements ControlHandler.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio

from pykeep.config.model import Config, VirtualServer, VrrpInstance
from pykeep.ops import ctl, drain
from pykeep.ops.control import ControlError, call, serve_control
from pykeep.ops.status import (
    RealServerStatus,
    Snapshot,
    VirtualServerStatus,
    VrrpInstanceStatus,
    VrrpState,
)
from tests.test_ops_drain import config as lvs_config


def make_config(rs_ports: tuple[int, ...] = (80,)) -> Config:
    base = lvs_config(rs_ports)
    vi = VrrpInstance(name="VI_1", virtual_router_id=51, interface="eth0", priority=150)
    return Config(vrrp_instances=(vi,), virtual_servers=base.virtual_servers)


class FakeDaemon:
    """What pykeep/daemon.py does for each control request, minus VRRP and netlink."""

    def __init__(self, config: Config, state_file: Path) -> None:
        self.config = config
        self.next_config = config
        self.state_file = state_file
        self.drained = drain.load(state_file)
        self.failovers: list[str] = []
        self.reloads = 0

    def _rs(self, vs: VirtualServer) -> tuple[RealServerStatus, ...]:
        return tuple(
            RealServerStatus(
                address=str(rs.address),
                port=rs.port,
                weight=rs.weight,
                effective_weight=self.drained.effective_weight(vs, rs, rs.weight),
                alive=True,
                drained=self.drained.is_drained(vs, rs),
            )
            for rs in vs.real_servers
        )

    async def status(self) -> Snapshot:
        instances = tuple(
            VrrpInstanceStatus(
                name=i.name,
                vrid=i.virtual_router_id,
                interface=i.interface,
                state=VrrpState.MASTER,
                wantstate=VrrpState.MASTER,
                base_priority=i.priority,
                effective_priority=i.priority,
            )
            for i in self.config.vrrp_instances
        )
        servers = tuple(
            VirtualServerStatus(key=vs.key, real_servers=self._rs(vs))
            for vs in self.config.virtual_servers
        )
        return Snapshot(
            taken_at=0.0,
            vrrp_instances=instances,
            virtual_servers=servers,
            drained_unknown=tuple(self.drained.unmatched(self.config)),
        )

    async def drain(self, vs: str, rs: str) -> Mapping[str, Any]:
        targets = drain.resolve(self.config, vs, rs)
        if not targets:
            raise ControlError("unknown_rs", f"no real server {rs} in virtual server {vs}")
        new = self.drained.add(vs, rs)
        drain.save(new, self.state_file)  # persist first: a failed save changes nothing
        self.drained = new
        return {"message": f"drained {rs} in {vs}", "real_servers": len(targets)}

    async def undrain(self, vs: str, rs: str) -> Mapping[str, Any]:
        new = self.drained.remove(vs, rs)
        if new == self.drained:
            raise ControlError("not_drained", f"{rs} in {vs} is not drained")
        drain.save(new, self.state_file)
        self.drained = new
        return {"message": f"undrained {rs} in {vs}"}

    async def failover(self, instance: str) -> Mapping[str, Any]:
        if self.config.instance(instance) is None:
            raise ControlError("unknown_instance", f"no vrrp_instance {instance}")
        self.failovers.append(instance)
        return {"message": f"{instance}: priority lowered, waiting for the peer"}

    async def reload(self) -> Mapping[str, Any]:
        self.config = self.next_config
        self.reloads += 1
        return {"message": "reloaded"}


class Explodes(FakeDaemon):
    async def reload(self) -> Mapping[str, Any]:
        raise RuntimeError("handler bug")

    async def failover(self, instance: str) -> Mapping[str, Any]:
        return 42  # type: ignore[return-value]  # a handler bug of another kind


def run_with_server(
    handler: FakeDaemon, sock: Path, body: Callable[[], Awaitable[None]]
) -> list[MutableMapping[str, Any]]:
    """Serve ``handler`` on ``sock`` while ``body`` runs; returns the control log events."""

    async def main() -> None:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_control, handler, sock)
                await body()
                nursery.cancel_scope.cancel()

    # structlog's default logger prints to stdout, where ctl's output is asserted
    with structlog.testing.capture_logs() as events:
        trio.run(main)
    return events


async def ctl_run(argv: list[str]) -> int:
    return await trio.to_thread.run_sync(ctl.main, argv)


def test_every_ctl_command_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sock = tmp_path / "run" / "control.sock"
    daemon = FakeDaemon(make_config(), tmp_path / "drain.json")
    s = ["--socket", str(sock)]

    async def body() -> None:
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert await ctl_run(["status", *s]) == 0
        out = capsys.readouterr().out
        assert "VI_1: MASTER vrid 51 on eth0, priority 150" in out
        assert "192.168.1.10:80" in out and "weight 3/3" in out

        assert await ctl_run(["drain", "10.0.0.1:80", "192.168.1.10:80", *s]) == 0
        assert capsys.readouterr().out == "drained 192.168.1.10:80 in 10.0.0.1:80\n"
        assert await ctl_run(["status", "--json", *s]) == 0
        status = json.loads(capsys.readouterr().out)
        rs = status["virtual_servers"][0]["real_servers"][0]
        assert (rs["drained"], rs["effective_weight"], rs["weight"]) == (True, 0, 3)
        assert await ctl_run([*s, "status"]) == 0  # --socket before the command works too
        assert "weight 0/3 DRAINED" in capsys.readouterr().out

        assert await ctl_run(["undrain", "10.0.0.1:80", "192.168.1.10:80", *s]) == 0
        assert capsys.readouterr().out == "undrained 192.168.1.10:80 in 10.0.0.1:80\n"
        assert await ctl_run(["failover", "VI_1", *s]) == 0
        assert "VI_1: priority lowered" in capsys.readouterr().out
        assert daemon.failovers == ["VI_1"]
        assert await ctl_run(["reload", *s]) == 0
        assert capsys.readouterr().out == "reloaded\n"
        assert daemon.reloads == 1

        # refusals: exit 1, one line naming the cause
        assert await ctl_run(["drain", "10.0.0.1:80", "192.168.1.99:80", *s]) == 1
        assert capsys.readouterr().err == (
            "pykeep ctl: drain: no real server 192.168.1.99:80 in virtual server 10.0.0.1:80\n"
        )
        assert await ctl_run(["drain", "web:80", "192.168.1.10", *s]) == 1
        assert "is not an IP address" in capsys.readouterr().err
        assert await ctl_run(["failover", "VI_9", *s]) == 1
        assert capsys.readouterr().err == "pykeep ctl: failover: no vrrp_instance VI_9\n"
        assert await ctl_run(["undrain", "10.0.0.1:80", "192.168.1.10:80", *s]) == 1
        capsys.readouterr()
        # usage errors: exit 2, one line
        assert await ctl_run(["drain", "10.0.0.1:80", *s]) == 2
        assert await ctl_run(["frobnicate", *s]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 2 and "Traceback" not in err

    run_with_server(daemon, sock, body)
    assert not sock.exists()  # removed on shutdown


def test_ctl_without_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["status", "--socket", str(tmp_path / "none.sock")]) == 2
    err = capsys.readouterr().err
    assert err == f"pykeep ctl: {tmp_path / 'none.sock'}: no such socket (is pykeep running?)\n"


def _raw_exchange(sock: Path, payload: bytes) -> list[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_bad_requests_get_error_objects(tmp_path: Path) -> None:
    sock = tmp_path / "control.sock"
    daemon = Explodes(make_config(), tmp_path / "drain.json")

    async def body() -> None:
        lines = [
            b"{not json",
            b"[1, 2]",
            b'{"id": 1}',
            b'{"id": 2, "cmd": "format_disk"}',
            b'{"id": 3, "cmd": "drain", "vs": "10.0.0.1:80"}',
            b'{"id": 4, "cmd": "failover", "instance": 7}',
            b'{"id": 5, "cmd": "reload"}',
            b"\xff\xfe",
            b'{"id": 6, "cmd": "drain", "vs": "10.0.0.1:80", "rs": "192.168.1.10"}',
            b'{"id": 7, "cmd": "status"}',
            b'{"id": 9, "cmd": "failover", "instance": "VI_1"}',
        ]
        replies = await trio.to_thread.run_sync(_raw_exchange, sock, b"\n".join(lines) + b"\n\n")
        codes = [(r.get("id"), r["ok"], r.get("error", {}).get("code")) for r in replies]
        assert codes == [
            (None, False, "bad_json"),
            (None, False, "bad_request"),
            (1, False, "bad_request"),
            (2, False, "unknown_command"),
            (3, False, "missing_argument"),
            (4, False, "missing_argument"),
            (5, False, "internal"),
            (None, False, "bad_json"),
            (6, True, None),
            (7, True, None),
            (9, False, "internal"),
        ]
        assert "format_disk" in replies[3]["error"]["message"]
        assert replies[6]["error"]["message"] == "RuntimeError: handler bug"
        # the daemon's state moved only for the one valid drain
        assert len(daemon.drained) == 1
        # an endless line is refused once, and the connection keeps serving
        payload = b"x" * 200_000 + b'\n{"id": 8, "cmd": "status"}\n'
        too_long = await trio.to_thread.run_sync(_raw_exchange, sock, payload)
        assert [(r["id"], r["ok"]) for r in too_long] == [(None, False), (8, True)]
        assert too_long[0]["error"]["code"] == "too_long"
        ok = await trio.to_thread.run_sync(call, {"cmd": "status"}, sock)
        assert ok["ok"] is True

    events = run_with_server(daemon, sock, body)
    failed = [e for e in events if e["event"] == "control.failed"]
    assert [e["cmd"] for e in failed] == ["reload", "failover"]
    assert any(e["event"] == "control.done" and e["cmd"] == "drain" for e in events)


def test_stale_socket_is_replaced_but_a_live_one_is_not_stolen(tmp_path: Path) -> None:
    sock = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))
    stale.close()  # a crashed daemon's leftover: the file exists, nobody listens
    daemon = FakeDaemon(make_config(), tmp_path / "drain.json")

    async def body() -> None:
        with pytest.raises(OSError, match="in use by another running pykeep"):
            await serve_control(daemon, sock)
        reply = await trio.to_thread.run_sync(call, {"cmd": "status"}, sock)
        assert reply["ok"]

    run_with_server(daemon, sock, body)
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match="not a socket"):
        trio.run(serve_control, daemon, tmp_path / "file")


def test_drain_survives_reload_and_restart(tmp_path: Path) -> None:
    sock = tmp_path / "control.sock"
    state = tmp_path / "lib" / "drain.json"
    first = FakeDaemon(make_config(), state)
    vs, rs = "10.0.0.1:80", "192.168.1.10:80"

    async def drain_then_reload() -> None:
        reply = await trio.to_thread.run_sync(call, {"cmd": "drain", "vs": vs, "rs": rs}, sock)
        assert reply["ok"], reply
        # SIGHUP-style reload with a new Config object that has the same VS/RS
        first.next_config = make_config(rs_ports=(80, 8080))
        assert (await trio.to_thread.run_sync(call, {"cmd": "reload"}, sock))["ok"]
        status = (await trio.to_thread.run_sync(call, {"cmd": "status"}, sock))["result"]
        servers = status["virtual_servers"][0]["real_servers"]
        assert [(r["port"], r["drained"], r["effective_weight"]) for r in servers[:2]] == [
            (80, True, 0),
            (8080, False, 3),
        ]

    run_with_server(first, sock, drain_then_reload)
    assert stat.S_IMODE(state.stat().st_mode) == 0o600

    # a new process: the drain comes back from the state file
    second = FakeDaemon(make_config(), state)

    async def after_restart() -> None:
        status = (await trio.to_thread.run_sync(call, {"cmd": "status"}, sock))["result"]
        first_rs = status["virtual_servers"][0]["real_servers"][0]
        assert (first_rs["drained"], first_rs["effective_weight"]) == (True, 0)
        reply = await trio.to_thread.run_sync(call, {"cmd": "undrain", "vs": vs, "rs": rs}, sock)
        assert reply["ok"]

    run_with_server(second, sock, after_restart)
    assert len(drain.load(state)) == 0
    assert os.listdir(state.parent) == ["drain.json"]


def test_hostile_requests_get_a_reply_and_a_logged_reason(tmp_path: Path) -> None:
    """Issue 13 failure 6: a 100,000-digit integer used to close the connection silently."""
    sock = tmp_path / "control.sock"
    daemon = Explodes(make_config(), tmp_path / "drain.json")
    lines = [
        b'{"id": ' + b"1" * 10_000 + b', "cmd": "status"}',
        b'{"id": 1, "cmd": "drain", "vs": ' + b"1" * 100_000 + b', "rs": "x"}',
        b"[" * 30_000 + b"]" * 30_000,
        b'{"ok": false, "error": {"code": "spoofed"}}',
        b'{"id": 2, "cmd": ' + b'"' + b"c" * 50_000 + b'"}',
        b'{"id": 3, "cmd": ["status"]}',
        b'{"id": 4, "cmd": "failover", "instance": null}',
        b'{"id": NaN, "cmd": "status"}',
    ]

    async def body() -> None:
        replies = await trio.to_thread.run_sync(_raw_exchange, sock, b"\n".join(lines) + b"\n")
        codes = [(r["ok"], r.get("error", {}).get("code")) for r in replies]
        assert codes == [
            (False, "bad_json"),
            (False, "too_long"),
            (False, "bad_json"),
            (False, "bad_request"),
            (False, "unknown_command"),
            (False, "bad_request"),
            (False, "missing_argument"),
            (True, None),
        ]
        assert "digits" in replies[0]["error"]["message"]
        assert len(replies[4]["error"]["message"]) < 300  # the echo of a 50 kB name is cut
        # still serving on a fresh connection
        ok = await trio.to_thread.run_sync(call, {"cmd": "status"}, sock)
        assert ok["ok"] is True

    events = run_with_server(daemon, sock, body)
    bad = [e for e in events if e["event"] == "control.bad_request"]
    assert [e["code"] for e in bad] == [
        "bad_json",
        "too_long",
        "bad_json",
        "bad_request",
        "unknown_command",
        "bad_request",
        "missing_argument",
    ]
    assert all(e["reason"] for e in bad)
    assert not [e for e in events if e["event"] == "control.connection_failed"]
    assert len(daemon.drained) == 0


def test_a_reload_that_fails_for_any_reason_keeps_the_running_config(tmp_path: Path) -> None:
    """Issue 13 failure 1: a loader that raises (or refuses) leaves one error line, no change."""
    from pykeep.ops.view import Ops

    running = make_config()

    def raises() -> tuple[Config | None, list[str]]:
        raise MemoryError("include read without limit")

    def refuses() -> tuple[Config | None, list[str]]:
        return None, ["(k.conf: Line 3) first\n    hint: h", "(k.conf: Line 9) second"]

    for loader, first in ((raises, "MemoryError: include read without limit"), (refuses, "first")):
        ops = Ops(running, vrrp=None, loader=loader, drain_file=tmp_path / "drain.json")
        with structlog.testing.capture_logs() as events:
            errors = trio.run(ops.apply_reload)
        assert errors and ops.config is running
        assert ops.reload_failures == 1 and not ops.last_reload_ok
        lines = [e["event"] for e in events if e["log_level"] == "error"]
        assert len(lines) == 1, lines
        assert lines[0].startswith("Reload failed - keeping the running configuration: ")
        assert first in lines[0]


def test_a_reload_that_fails_to_apply_puts_the_running_config_back(tmp_path: Path) -> None:
    from pykeep.ops.view import Ops

    running, new = make_config(), make_config(rs_ports=(80, 81))
    applied: list[Config] = []

    class Vrrp:
        async def reload(self, config: Config) -> None:
            applied.append(config)
            if config is new:
                raise RuntimeError("instance table bug")

    ops = Ops(running, vrrp=None, loader=lambda: (new, []), drain_file=tmp_path / "d.json")
    ops.vrrp = Vrrp()  # type: ignore[assignment]
    with structlog.testing.capture_logs() as events:
        errors = trio.run(ops.apply_reload)
    assert errors == ["applying it failed (RuntimeError: instance table bug)"]
    assert applied == [new, running] and ops.config is running
    lines = [e["event"] for e in events if e["log_level"] == "error"]
    assert lines == [
        "Reload failed - keeping the running configuration: "
        "applying it failed (RuntimeError: instance table bug)"
    ]
