"""The virtme-ng runner: the shared boot proves real IPVS works inside; a timeout kills qemu.

The probe is a part of the boot the IPVS modules share (tests/vmshare.py): the
runner's own behaviour (progress phases, exit status, stdout and stderr kept
apart, files back through the rwdir) is checked on that same boot.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sim import vm
from tests import vmshare

pytestmark = pytest.mark.vm

PROBE = r"""
set -e
modprobe ip_vs
test -e /proc/net/ip_vs
ipvsadm -C  # what earlier parts of the shared boot left
ipvsadm -A -t 192.168.65.127:80 -s rr
ipvsadm -a -t 192.168.65.127:80 -r 192.168.65.156:80 -g -w 1
ipvsadm -a -t 192.168.65.127:80 -r 192.168.65.157:80 -g -w 2
ipvsadm -Sn > "$W/ipvsadm.txt"
test "$PYKEEP_IN_VM" = 1 && echo "in_vm: True"
# The runner's image of the interpreter and the project, laid over the host paths.
findmnt -n -o SOURCE,FSTYPE "$PWD/pykeep" > "$W/pykeep-mount.txt"  # cwd: the project
ipvsadm -C
ip netns add pk-vmprobe-a
ip link add br0 type bridge
ip link add v0 type veth peer name v1 netns pk-vmprobe-a
echo "netns+veth+bridge ok"
ip link del br0
ip netns del pk-vmprobe-a
exit 7
"""


vmshare.register("probe", lambda _w: PROBE, timeout=240)


def test_ipvs_round_trip_in_one_boot(shared_vm: vmshare.SharedRun) -> None:
    res = shared_vm.result
    assert not res.timed_out
    assert res.returncode == 0, res.stderr[-2000:]
    assert shared_vm.rc("probe") == 7  # the part's own exit code
    out = shared_vm.log("probe")
    assert (shared_vm.part("probe") / "ipvsadm.txt").read_text().splitlines() == [
        "-A -t 192.168.65.127:80 -s rr",
        "-a -t 192.168.65.127:80 -r 192.168.65.156:80 -g -w 1",
        "-a -t 192.168.65.127:80 -r 192.168.65.157:80 -g -w 2",
    ]
    assert "in_vm: True" in out
    # The project is read from the runner's image, not over 9p (sim/vm.py _cache_image).
    assert (shared_vm.part("probe") / "pykeep-mount.txt").read_text().split() == ["pk", "overlay"]
    assert "netns+veth+bridge ok" in out
    # The runner keeps the script's stdout and stderr apart.
    assert "part probe: rc 7" in res.stdout and "part probe done" not in res.stdout
    assert "part probe done" in res.stderr
    assert "booting" in shared_vm.phases and res.boot_seconds is not None
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
