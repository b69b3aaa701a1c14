"""The BFD speaker against real peers: FRR's bfdd, in a namespace pair."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sim.netns import Rig
from tests.bfd_rig import Bfdd, KeepalivedBfd, pair, start_speaker, until

Make = Callable[..., Rig]

# 50 ms x 5 on both sides: keepalived's 10 ms default is measured in
# bench/bench_bfd.py; on a loaded 2-core test machine a 50 ms detection time
# flaps whoever the peers are.
SLOW = {"min_rx_us": 50_000, "min_tx_us": 50_000}
SLOW_KA = "  min_rx 50\n  min_tx 50\n"


@pytest.mark.netns
def test_session_with_frr_bfdd_comes_up_and_expires_when_bfdd_dies(
    rig: Make,
) -> None:
    r = rig(hint="bf_")
    pair(r)
    bfdd = Bfdd(r, 50, 50, 5).start()
    ours = start_speaker(r, **SLOW)
    try:
        # Down -> Init -> Up takes a few packets at the idle rate (1 s).
        assert until(lambda: ours.last_up() is True, 10.0), "".join(ours.text)
        assert until(lambda: bfdd.status() == "up", 5.0, 0.2), bfdd.status()
        time.sleep(1.0)
        assert ours.last_up() is True, "".join(ours.text)  # stays up at the fast rate
        # bfdd reads our parameters off the wire: keepalived's multiplier 5
        # and the configured 50 ms, after the poll sequence.
        remote = bfdd.show().split("Remote timers:", 1)[1]
        assert "Detect-multiplier: 5" in remote and "Receive interval: 50ms" in remote, remote
        assert "Transmission interval: 50ms" in remote, remote
        killed = time.monotonic()
        bfdd.kill()
        assert until(lambda: ours.last_up() is False, 2.0), "".join(ours.text)
        down_at = ours.first_after(killed, up=False)
        assert down_at is not None
        # 5 x 50 ms detection; a loaded 2-core machine gets a protocol-scale margin.
        assert down_at - killed < 1.0, down_at - killed
        # A new bfdd (new discriminator) brings the session back.
        bfdd.start()
        assert until(lambda: ours.last_up() is True, 10.0), "".join(ours.text)
    finally:
        bfdd.close()
        ours.proc.kill()
        ours.proc.wait(5)


@pytest.mark.netns
def test_session_with_keepalived_bfd_both_ways(rig: Make, tmp_path: Path) -> None:
    r = rig(hint="bf_")
    pair(r)
    ka = KeepalivedBfd(r, tmp_path, SLOW_KA).start()
    ours = start_speaker(r, name="ka", **SLOW)
    try:
        assert until(lambda: ours.last_up() is True, 10.0), "".join(ours.text)
        assert until(lambda: ka.said("(ka) Entering Up state") >= 1, 5.0), "".join(ka.lines)
        time.sleep(1.0)
        assert ours.last_up() is True and ka.said("Entering Down") == 0, "".join(ka.lines)
        # keepalived's BFD process dies: our side expires (5 x 50 ms).
        killed = time.monotonic()
        os.kill(ka.bfd_child(), signal.SIGKILL)
        assert until(lambda: ours.last_up() is False, 3.0), "".join(ours.text)
        down_at = ours.first_after(killed, up=False)
        assert down_at is not None and down_at - killed < 1.0, down_at
        # keepalived restarts its BFD child; the session comes back.
        assert until(lambda: ours.last_up() is True, 15.0), "".join(ours.text) + "".join(ka.lines)
        # keepalived goes Up again when our next (idle-rate) packet says Up.
        assert until(lambda: ka.said("(ka) Entering Up state") >= 2, 5.0), "".join(ka.lines)
        # Now we die: keepalived's side expires.
        ours.proc.kill()
        assert until(lambda: ka.said("Control Detection Time Expired") >= 1, 3.0), "".join(ka.lines)
    finally:
        ka.stop()
        ours.proc.kill()
        ours.proc.wait(5)


@pytest.mark.netns
def test_ipv6_session_with_frr_bfdd(rig: Make) -> None:
    """IPv6 single hop with ``hoplimit 255``: keepalived's IPv6 default of 64 fails
    RFC 5881's check in bfdd, as keepalived's own does (bfd.h BFD_CONTROL_HOPLIMIT)."""
    r = rig(hint="bf_")
    for node, addr in (("a", "fd00:79::1"), ("b", "fd00:79::2")):
        r.add_node(node)
        for key in ("all", "default"):
            r.sysctl(node, f"net.ipv6.conf.{key}.accept_dad", 0)
        r.connect(node, "lan", addrs=[f"{addr}/64"])
    bfdd = Bfdd(r, 50, 50, 5, local="fd00:79::2", peer="fd00:79::1").start()
    ours = start_speaker(r, neighbor="fd00:79::2", source="fd00:79::1", ttl=255, **SLOW)
    try:
        assert until(lambda: ours.last_up() is True, 10.0), "".join(ours.text)
        assert until(lambda: bfdd.status() == "up", 5.0, 0.2), bfdd.show()
        killed = time.monotonic()
        bfdd.kill()
        assert until(lambda: ours.last_up() is False, 3.0), "".join(ours.text)
        down_at = ours.first_after(killed, up=False)
        assert down_at is not None and down_at - killed < 1.0, down_at
    finally:
        bfdd.close()
        ours.proc.kill()
        ours.proc.wait(5)
