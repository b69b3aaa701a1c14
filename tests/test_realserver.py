"""`pykeep realserver`: the seeds' ipvs_client / rs.sh, idempotent and tested."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sim import netns
from tests.conftest import RigFactory

pytestmark = pytest.mark.netns

VIPS = ["192.168.65.127", "192.168.65.128"]


def _realserver(r: netns.Rig, node: str, *args: str) -> subprocess.CompletedProcess[str]:
    return r.run(node, [sys.executable, "-m", "pykeep.realserver", *args], check=False, timeout=30)


def test_start_is_idempotent_and_stop_restores(rig: RigFactory) -> None:
    r = rig()
    r.connect("rs1", "lan", addrs=["192.168.65.156/24"])
    ns = r.ns("rs1")

    first = _realserver(r, "rs1", "start", "--vip", *VIPS)
    assert first.returncode == 0, first.stderr
    assert "changed 192.168.65.127 on lo: absent -> /32" in first.stdout
    assert "changed net.ipv4.conf.all.arp_ignore: 0 -> 1" in first.stdout
    assert "changed net.ipv4.conf.lo.arp_announce: 0 -> 2" in first.stdout
    assert {"192.168.65.127/32", "192.168.65.128/32"} <= set(r.addresses("rs1", "lo"))
    assert "lo:127" in r.ip("rs1", "addr", "show", "dev", "lo")
    for dev in ("all", "lo"):
        assert netns.read_sysctl(ns, f"net.ipv4.conf.{dev}.arp_ignore") == "1"
        assert netns.read_sysctl(ns, f"net.ipv4.conf.{dev}.arp_announce") == "2"

    again = _realserver(r, "rs1", "start", "--vip", *VIPS)
    assert again.returncode == 0
    assert "changed" not in again.stdout and "nothing to change" in again.stdout
    assert _realserver(r, "rs1", "status", "--vip", *VIPS).returncode == 0

    # seed 000 §1.5: the VIP on lo got lost -> status says so, start puts it back.
    r.ip("rs1", "addr", "del", "192.168.65.128/32", "dev", "lo")
    lost = _realserver(r, "rs1", "status", "--vip", *VIPS)
    assert lost.returncode == 1 and "WRONG   192.168.65.128 on lo = absent" in lost.stdout
    fixed = _realserver(r, "rs1", "start", "-q", "--vip", *VIPS)
    assert fixed.stdout.strip() == "changed 192.168.65.128 on lo: absent -> /32"

    stop = _realserver(r, "rs1", "stop", "--vip", *VIPS)
    assert stop.returncode == 0
    assert "changed net.ipv4.conf.all.arp_ignore: 1 -> 0" in stop.stdout
    assert not {"192.168.65.127/32", "192.168.65.128/32"} & set(r.addresses("rs1", "lo"))
    assert "nothing to change" in _realserver(r, "rs1", "stop", "--vip", *VIPS).stdout


def test_dr_real_server_holds_vip_but_does_not_answer_arp(rig: RigFactory) -> None:
    """The point of the preparation: traffic to the VIP is accepted, ARP is not."""
    r = rig()
    r.connect("client", "lan", addrs=["192.168.65.100/24"])
    r.connect("rs1", "lan", addrs=["192.168.65.156/24"])
    assert _realserver(r, "rs1", "start", "--vip", "192.168.65.127").returncode == 0
    # Without arp_ignore the kernel's weak-host model would answer for the VIP on lo.
    assert not r.ping("client", "192.168.65.127", wait=1)
    r.ip("client", "route", "add", "192.168.65.127/32", "via", "192.168.65.156")
    assert r.ping("client", "192.168.65.127")  # routed to it (as a director does): accepted


def test_bad_input_is_one_line(rig: RigFactory) -> None:
    r = rig()
    r.add_node("rs1")
    bad = _realserver(r, "rs1", "start", "--vip", "192.168.65.300")
    assert bad.returncode == 1
    assert (
        bad.stderr.strip() == "pykeep realserver: invalid VIP '192.168.65.300': not an IP address"
    )
    nodev = _realserver(r, "rs1", "start", "--vip", "10.0.0.1", "--dev", "nope0")
    assert nodev.stderr.strip() == "pykeep realserver: no interface 'nope0'"
    subnet = _realserver(r, "rs1", "start", "--vip", "10.0.0.1/24")
    assert "host address" in subnet.stderr and "Traceback" not in subnet.stderr
