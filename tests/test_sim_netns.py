"""The namespace rig comes up, carries traffic, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from sim import netns
from sim.netns import Rig
from tests.conftest import RigFactory

pytestmark = pytest.mark.netns


def _ours(rig_name: str) -> list[str]:
    return netns.list_namespaces(f"pk-{rig_name}-")


def test_two_nodes_ping_over_bridge_then_gone(rig: RigFactory) -> None:
    r = rig()
    r.connect("a", "lan", addrs=["10.1.0.1/24"])
    r.connect("b", "lan", addrs=["10.1.0.2/24"])
    assert set(_ours(r.name)) == {r.ns("a"), r.ns("b"), r.switch_ns}
    assert r.ping("a", "10.1.0.2")
    sleeper = r.popen("b", ["sleep", "300"])
    assert netns.namespace_pids(r.ns("b")) == [sleeper.pid]
    r.close()
    assert _ours(r.name) == []
    assert sleeper.poll() is not None
    assert not (netns.STATE_DIR / f"{r.name}.json").exists()


def test_cable_cut_and_link_down(rig: RigFactory) -> None:
    r = rig()
    r.connect("a", "lan", addrs=["10.1.0.1/24"])
    r.connect("b", "lan", addrs=["10.1.0.2/24"])
    r.cable("b", "lan", up=False)
    assert not r.ping("a", "10.1.0.2")
    assert "UP" in r.ip("b", "link", "show", "eth0").split(">")[0]
    r.cable("b", "lan", up=True)
    assert r.ping("a", "10.1.0.2", count=3)  # the first echo may race the carrier
    r.link_set("b", up=False)
    assert not r.ping("a", "10.1.0.2")


def test_sysctl_returns_old_value_and_is_per_namespace(rig: RigFactory) -> None:
    r = rig()
    r.add_node("a")
    old = r.sysctl("a", "net.ipv4.conf.all.arp_ignore", 1)
    assert old == "0"
    assert netns.read_sysctl(r.ns("a"), "net.ipv4.conf.all.arp_ignore") == "1"
    assert netns.read_sysctl(None, "net.ipv4.conf.all.arp_ignore") == old


def test_socket_in_namespace_sees_only_that_namespace(rig: RigFactory) -> None:
    import socket

    r = rig()
    r.connect("a", "lan", addrs=["10.1.0.1/24"])
    s = netns.socket_in(r.ns("a"), socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.bind(("10.1.0.1", 0))  # the address exists only inside pk-…-a


def test_down_cleans_up_after_a_killed_owner() -> None:
    """A process that built a rig is SIGKILLed: `python -m sim down --rig` still cleans."""
    name = netns.unique_rig_name("crash")
    code = (
        "import sys, time; from sim.netns import Rig\n"
        f"r = Rig({name!r}); r.connect('a', 'lan', addrs=['10.1.0.1/24'])\n"
        "p = r.popen('a', ['sleep', '300']); print(p.pid, flush=True); time.sleep(300)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        child = int(owner.stdout.readline())
        owner.send_signal(signal.SIGKILL)
        owner.wait(5)
        assert _ours(name)
        rigs, _ = netns.status()
        # (a concurrent pytest session's stale-rig sweep may already have removed it)
        assert any(st.name == name and not st.owner_alive for st in rigs) or not _ours(name)
        out = subprocess.run(
            [sys.executable, "-m", "sim", "down", "--rig", name],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert name in out or out.strip() == "nothing to remove"
        assert _ours(name) == []
        time.sleep(0.1)
        assert not os.path.exists(f"/proc/{child}") or _zombie_or_gone(child)
    finally:
        if owner.poll() is None:
            owner.kill()
        netns.down(rig=name)


def _zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_rig_name_collision_is_refused(rig: RigFactory) -> None:
    r = rig()
    r.add_node("a")
    with pytest.raises(netns.NetnsError, match="already exists"):
        Rig(r.name)


def test_children_of_a_sigkilled_leader_are_reaped_at_teardown(rig: RigFactory) -> None:
    """A daemon SIGKILLed alone (a crash) leaves children; the rig still cleans them."""
    r = rig()
    r.add_node("a")
    leader = r.popen("a", ["sh", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE)
    assert leader.stdout is not None
    child = int(leader.stdout.readline())
    r.kill(leader, sig=signal.SIGKILL)
    assert leader.poll() is not None and not _zombie_or_gone(child)
    r.close()
    time.sleep(0.1)
    assert _zombie_or_gone(child)
    assert netns.namespace_pids(r.ns("a")) == []
