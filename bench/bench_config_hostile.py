"""Hostile config inputs: ``pykeep -t`` beside ``keepalived -t`` on each, in the same run.

The inputs of issue 13 ("big inputs are slow and large"): 5 MB of random
bytes, 100,000 lines of ``}``, and a generated file of 2.5 million VIPs
(about 60 MB).  Each command is run in turn with the other (interleaved, so
both see the same spells of load) and measured by ``wait4``: CPU time
(user + system) and peak RSS of the process tree's largest member, and wall
time.  The target is pykeep within 5x keepalived on each input.  keepalived
writes each diagnostic to stderr as it goes, pykeep prints its capped list:
both outputs are discarded.

``--vips N`` makes the last input smaller for a quick look; ``--only``
measures one input (``random``, ``braces`` or ``vips``); ``--runs`` is the
number of interleaved rounds (the best of each is reported).
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def random_bytes(path: Path, size: int = 5 * 1024 * 1024) -> None:
    path.write_bytes(random.Random(13).randbytes(size))


def braces(path: Path, count: int = 100_000) -> None:
    path.write_text("}\n" * count)


def vips(path: Path, count: int = 2_500_000) -> None:
    """One vrrp_instance whose virtual_ipaddress block holds ``count`` /32 addresses."""
    with open(path, "w") as f:
        f.write(
            "vrrp_instance VI_1 {\n    interface lo\n    state MASTER\n"
            "    virtual_router_id 51\n    priority 100\n    virtual_ipaddress {\n"
        )
        n = 0
        for a in range(10, 250):
            if n >= count:
                break
            lines = []
            for b in range(256):
                for c in range(256):
                    lines.append(f"        10.{a}.{b}.{c}/32\n")
            take = min(len(lines), count - n)
            f.write("".join(lines[:take]))
            n += take
        f.write("    }\n}\n")


def measure(cmd: list[str], timeout: float = 900) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds, peak RSS in MB and the exit code of one run."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, proc.returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vips", type=int, default=2_500_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--only", choices=["random", "braces", "vips"])
    args = ap.parse_args(argv)
    keepalived = shutil.which("keepalived")
    if keepalived is None:
        print("keepalived not installed: no comparison")
        return 1
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="pk-bench-") as tmp:
        inputs: dict[str, tuple[Callable[[Path], None], Path]] = {
            "5 MB random bytes": (random_bytes, Path(tmp) / "random.conf"),
            "100,000 '}'": (braces, Path(tmp) / "braces.conf"),
            f"{args.vips:,} VIPs": (
                functools.partial(vips, count=args.vips),
                Path(tmp) / "vips.conf",
            ),
        }
        if args.only is not None:
            inputs = {k: v for k, v in inputs.items() if v[1].stem == args.only}
        print(f"{'input':<22} {'':>10} {'wall s':>8} {'cpu s':>8} {'rss MB':>8} {'exit':>5}")
        for name, (make, path) in inputs.items():
            make(path)
            cmds = {
                "pykeep": [sys.executable, "-m", "pykeep", "-t", "-f", str(path)],
                "keepalived": [keepalived, "-t", "-f", str(path)],
            }
            best: dict[str, tuple[float, float, int, int]] = {}
            for _ in range(args.runs):
                for who, cmd in cmds.items():
                    got = measure(cmd)
                    if who not in best or got[1] < best[who][1]:
                        best[who] = got
            size = path.stat().st_size / 1e6
            for who in cmds:
                wall, cpu, rss, rc = best[who]
                label = f"{name} ({size:.0f} MB)" if who == "pykeep" else ""
                print(f"{label:<22} {who:>10} {wall:8.2f} {cpu:8.2f} {rss:8d} {rc:5d}")
            cpu_ratio = best["pykeep"][1] / max(best["keepalived"][1], 1e-3)
            wall_ratio = best["pykeep"][0] / max(best["keepalived"][0], 1e-3)
            rss_ratio = best["pykeep"][2] / max(best["keepalived"][2], 1)
            print(
                f"{'':<22} {'ratio':>10} {wall_ratio:7.1f}x {cpu_ratio:7.1f}x {rss_ratio:7.1f}x"
                f"   (target <= 5x)"
            )
            worst = max(worst, cpu_ratio)
            path.unlink()
    return 0 if worst <= 5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
