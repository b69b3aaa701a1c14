"""Config-test speed: ``pykeep -t`` against ``keepalived -t`` on 10,000 real servers.

Both commands are timed end to end (process start included), best of a few
runs, on the same generated file; the ratio is what the issue's target (≤3×)
is about.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(real_servers: int = 10_000, per_vs: int = 100) -> str:
    """A realistic LVS config: virtual servers of ``per_vs`` real servers with mixed checkers."""
    out: list[str] = ["global_defs {\n    router_id BENCH\n}\n"]
    n_vs = (real_servers + per_vs - 1) // per_vs
    made = 0
    for v in range(n_vs):
        vip = f"10.{100 + v // 250}.{v % 250}.1"
        out.append(
            f"virtual_server {vip} 80 {{\n    delay_loop 6\n    lb_algo wlc\n"
            "    lb_kind NAT\n    protocol TCP\n    persistence_timeout 50\n"
        )
        for r in range(per_vs):
            if made >= real_servers:
                break
            made += 1
            rip = f"172.{16 + v // 250}.{v % 250}.{r + 1}"
            if r % 2:
                check = (
                    "        HTTP_GET {\n            url {\n                path /health\n"
                    "                status_code 200\n            }\n"
                    "            connect_timeout 3\n            retry 3\n"
                    "            delay_before_retry 3\n        }\n"
                )
            else:
                check = "        TCP_CHECK {\n            connect_timeout 3\n        }\n"
            out.append(f"    real_server {rip} 8080 {{\n        weight 1\n{check}    }}\n")
        out.append("}\n")
    return "".join(out)


def _time(cmd: list[str], runs: int) -> tuple[float, int]:
    best = float("inf")
    rc = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, capture_output=True, timeout=600).returncode
        best = min(best, time.perf_counter() - t0)
    return best, rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--real-servers", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    keepalived = shutil.which("keepalived")
    with tempfile.TemporaryDirectory(prefix="pk-bench-") as tmp:
        path = Path(tmp) / "keepalived.conf"
        path.write_text(generate(args.real_servers))
        ours, our_rc = _time([sys.executable, "-m", "pykeep", "-t", "-f", str(path)], args.runs)
        print(f"pykeep -t      {args.real_servers} real servers: {ours:.3f} s (exit {our_rc})")
        if keepalived is None:
            print("keepalived not installed: no ratio")
            return 1
        theirs, their_rc = _time([keepalived, "-t", "-f", str(path)], args.runs)
        print(f"keepalived -t  {args.real_servers} real servers: {theirs:.3f} s (exit {their_rc})")
        ratio = ours / theirs if theirs > 0 else float("inf")
        print(f"ratio pykeep/keepalived: {ratio:.2f}x (target <= 3x)")
        if our_rc != their_rc:
            print("verdicts differ!")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
