"""The virtme-ng runner: one boot proves real IPVS works inside; a timeout kills qemu."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sim import vm

pytestmark = pytest.mark.vm

PROBE = r"""
set -e
modprobe ip_vs
test -e /proc/net/ip_vs
ipvsadm -A -t 192.168.65.127:80 -s rr
ipvsadm -a -t 192.168.65.127:80 -r 192.168.65.156:80 -g -w 1
ipvsadm -a -t 192.168.65.127:80 -r 192.168.65.157:80 -g -w 2
ipvsadm -Sn > "$PYKEEP_VM_RWDIR/ipvsadm.txt"
python -c 'from pyroute2 import IPVS
from sim import vm
with IPVS() as i:
    print("pyroute2 services:", len(i.service("dump")))
print("has_ipvs:", vm.kernel_has_ipvs(), "in_vm:", vm.inside_vm())'
ip netns add pk-vmprobe-a
ip link add br0 type bridge
ip link add v0 type veth peer name v1 netns pk-vmprobe-a
echo "netns+veth+bridge ok"
echo "to stderr" >&2
exit 7
"""


def test_ipvs_round_trip_in_one_boot() -> None:
    phases: list[str] = []
    res = vm.in_vm(PROBE, timeout=240, progress=lambda phase, t: phases.append(phase))
    assert not res.timed_out
    assert res.returncode == 7, res.stderr[-2000:]  # the script's own exit code
    assert res.files["ipvsadm.txt"].decode().splitlines() == [
        "-A -t 192.168.65.127:80 -s rr",
        "-a -t 192.168.65.127:80 -r 192.168.65.156:80 -g -w 1",
        "-a -t 192.168.65.127:80 -r 192.168.65.157:80 -g -w 2",
    ]
    assert "pyroute2 services: 1" in res.stdout
    assert "has_ipvs: True in_vm: True" in res.stdout
    assert "netns+veth+bridge ok" in res.stdout
    assert "to stderr" in res.stderr
    assert "booting" in phases and res.boot_seconds is not None
    assert not vm.kernel_has_ipvs(load=False) or os.path.exists("/proc/net/ip_vs")


def _cmdlines_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def test_timeout_kills_qemu(tmp_path: Path) -> None:
    rw = tmp_path / "rw"
    t0 = time.monotonic()
    seen: list[int] = []

    def peek(phase: str, elapsed: float) -> None:
        if not seen:
            seen.extend(p for p in _cmdlines_mentioning(str(rw)) if vm._comm(p).startswith("qemu"))

    res = vm.in_vm("sleep 600", timeout=8, rwdir=rw, progress=peek)
    assert res.timed_out and res.returncode < 0
    assert time.monotonic() - t0 < 30
    assert seen, "qemu was never seen running"
    time.sleep(0.5)
    assert _cmdlines_mentioning(str(rw)) == []  # qemu and the vng tree are gone
