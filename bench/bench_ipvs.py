"""IPVS sync speed: pykeep's reconcile of 10,000 destinations vs ``ipvsadm -R``.

Both run in the same virtme-ng VM on Debian's kernel, on the same table
(100 services x 100 destinations), each starting from an empty IPVS:

- ``ipvsadm -R`` restores the table from ``ipvsadm -S`` text (libipvs, one
  netlink request per line);
- pykeep reads the kernel back, diffs against the desired table and
  applies the operations (batched netlink requests, one ACK each), on a
  netlink connection the daemon already holds; opening it (pyroute2 import,
  family lookup) is reported apart, as it happens once per daemon, not per sync.

Prints both times and the ratio (target: pykeep <= 2x ipvsadm).  Each is
timed three times, interleaved; the best and the median ratio are shown
(the emulated VM is noisy when other VMs share the host).
"""

from __future__ import annotations

import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVICES, DESTS = 100, 100

INSIDE = r"""
import json, os, subprocess, time
from pathlib import Path
from ipvs.diff import diff
from ipvs.ipvsadm import format_save
from ipvs.netlink import Kernel
from ipvs.table import Dest, DestKey, Proto, Service, ServiceEntry, ServiceKey
import ipaddress

W = Path(os.environ["W"])
S, D = int(os.environ["S"]), int(os.environ["D"])
table = {}
for s in range(S):
    skey = ServiceKey.inet(ipaddress.ip_address(f"10.100.{s // 250}.{s % 250 + 1}"), 80, Proto.TCP)
    table[skey] = ServiceEntry(Service("wrr"), {
        DestKey(f"10.{101 + d // 250}.{s % 250}.{d % 250 + 1}", 8080): Dest(weight=1 + d % 5)
        for d in range(D)
    })
text = format_save(table)
(W / "table.txt").write_text(text)
res = {"ipvsadm": [], "pykeep": [], "pykeep_open": [], "pykeep_ops": 0}
for _ in range(3):
    subprocess.run(["ipvsadm", "-C"], check=True)
    t = time.perf_counter()
    subprocess.run(["ipvsadm", "-R"], input=text, text=True, check=True)
    res["ipvsadm"].append(time.perf_counter() - t)
    subprocess.run(["ipvsadm", "-C"], check=True)
    t0 = time.perf_counter()
    with Kernel.open() as k:
        t = time.perf_counter()
        ops = diff(k.read(), table)
        k.apply(ops)
        res["pykeep"].append(time.perf_counter() - t)
    res["pykeep_open"].append(t - t0)
    res["pykeep_ops"] = len(ops)
    with Kernel.open() as k:
        res["readback_equal"] = diff(k.read(), table) == []
res["lines"] = len(text.splitlines())
(W / "bench.json").write_text(json.dumps(res))
"""


def run() -> dict[str, object]:
    """Boot the VM, run both syncs, return the raw timings."""
    venv_bin = REPO / ".venv" / "bin"
    kernel = sorted(glob.glob("/boot/vmlinuz-*"))[-1]
    with tempfile.TemporaryDirectory(prefix="pk-bench-ipvs-") as d:
        w = Path(d)
        (w / "inside.py").write_text(INSIDE)
        runner = w / "run.sh"
        runner.write_text(
            "#!/bin/bash\n"
            f"export W={w} S={SERVICES} D={DESTS} PYTHONPATH={REPO} PATH={venv_bin}:$PATH\n"
            f"cd {REPO}\nmodprobe ip_vs\n"
            f"{sys.executable} {w}/inside.py > {w}/vm.log 2>&1\n"
        )
        runner.chmod(0o755)
        env = dict(os.environ, PATH=f"{venv_bin}:{os.environ.get('PATH', '')}")
        subprocess.run(
            ["vng", "-r", kernel, "--disable-kvm", "--user", "root", "--rwdir", str(w),
             "--exec", str(runner)],
            env=env, capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        out = w / "bench.json"
        if not out.exists():
            log = (w / "vm.log").read_text() if (w / "vm.log").exists() else ""
            raise RuntimeError(f"the VM produced no result: {log[-2000:]}")
        result: dict[str, object] = json.loads(out.read_text())
        return result


def main() -> None:
    r = run()
    ipvsadm_runs = [float(x) for x in r["ipvsadm"]]  # type: ignore[attr-defined]
    pykeep_runs = [float(x) for x in r["pykeep"]]  # type: ignore[attr-defined]
    ipvsadm, pykeep = min(ipvsadm_runs), min(pykeep_runs)
    med = statistics.median(pykeep_runs) / statistics.median(ipvsadm_runs)
    runs = ", ".join
    print(f"ipvs sync of {SERVICES * DESTS} destinations ({r['lines']} ipvsadm lines), in the VM:")
    print(f"  ipvsadm -R : {ipvsadm:.3f} s  (runs {runs(f'{x:.3f}' for x in ipvsadm_runs)})")
    print(
        f"  pykeep sync: {pykeep:.3f} s  (runs {runs(f'{x:.3f}' for x in pykeep_runs)}; "
        f"{r['pykeep_ops']} ops, read-back equal: {r['readback_equal']})"
    )
    opens = [float(x) for x in r["pykeep_open"]]  # type: ignore[attr-defined]
    print(f"  (pykeep's one-off Kernel.open: {min(opens):.3f} s)")
    best = pykeep / ipvsadm
    print(f"  ratio pykeep/ipvsadm = {best:.2f}x best, {med:.2f}x median (target <= 2x)")


if __name__ == "__main__":
    main()
