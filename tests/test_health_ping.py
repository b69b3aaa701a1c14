"""PING_CHECK against real ICMP (keepalived check_ping.c), inside a namespace of our own.

The namespace's loopback is the only peer: up, the echo is answered; down,
the same check must fail.  Debian's ``ping_group_range`` refuses ping
sockets even to root, so this also proves the raw-socket path.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.netns

PROBE = """
import sys, trio
from healthcheck.api import Target
from healthcheck.ping import PingChecker
r = trio.run(PingChecker().check, Target(sys.argv[1]), 1.0)
print(r.ok, r.reason)
"""


def _ping(ns: str, address: str) -> str:
    out = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", PROBE, address],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_ping_check_follows_the_peer() -> None:
    ns = f"pk-ping-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        assert _ping(ns, "127.0.0.1").startswith("False")  # lo is down in a new namespace
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        assert _ping(ns, "127.0.0.1") == "True echo reply"
        assert _ping(ns, "::1") == "True echo reply"
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
