"""sd_notify messages seen by a socket the test listens on, and the systemd unit."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pykeep.ops.sdnotify import Notifier

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "contrib" / "pykeep.service"


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    with sock:
        yield sock, str(path)


def _recv(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_lifecycle_messages(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("2 instances, 1 MASTER")
    assert _recv(sock) == ["READY=1", "STATUS=2 instances, 1 MASTER"]
    assert n.reloading()
    msg = _recv(sock)
    assert msg[0] == "RELOADING=1"
    assert msg[1].startswith("MONOTONIC_USEC=") and int(msg[1].split("=")[1]) > 0
    assert n.ready()
    assert _recv(sock) == ["READY=1"]
    assert n.status("VI_1 MASTER")
    assert _recv(sock) == ["STATUS=VI_1 MASTER"]
    assert n.stopping()
    assert _recv(sock) == ["STOPPING=1"]


def test_abstract_socket() -> None:
    name = f"pykeep-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(100) == b"READY=1"


def test_outside_systemd_is_a_silent_no_op(tmp_path: Path) -> None:
    assert not Notifier({}).enabled
    assert not Notifier({}).ready()
    assert not Notifier({"NOTIFY_SOCKET": "relative"}).ready()
    # a vanished socket must not raise
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).stopping()


def test_unit_passes_systemd_analyze_verify() -> None:
    """The shipped file as it is (ExecStart goes through /usr/bin/env, which exists)."""
    text = UNIT.read_text()
    assert "Type=notify\n" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID\n" in text
    assert "ExecStart=/usr/bin/env pykeep --dont-fork $DAEMON_ARGS\n" in text
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "pykeep.service" not in proc.stderr, proc.stderr


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The check above is not vacuous: the same verify rejects a mangled copy."""
    broken = tmp_path / "pykeep.service"
    broken.write_text(UNIT.read_text().replace("Type=notify", "Type=notifyy"))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert "pykeep.service" in proc.stderr  # what the check above asserts is absent
