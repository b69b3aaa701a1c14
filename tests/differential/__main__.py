"""``python -m tests.differential``: the full generated differential against ``keepalived -t``.

Prints agreement percentages by block; exits 1 when an exit code differs or
line-set agreement falls below the target, so ``make differential`` fails.
"""

from __future__ import annotations

import argparse
import signal
import sys

from tests.differential.runner import generate, namespace, run

EXIT_TARGET = 100.0
LINES_TARGET = 99.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.differential")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--show", type=int, default=10, help="disagreements to print")
    ap.add_argument("--workdir", help="keep the generated files here")
    a = ap.parse_args(argv)
    # A stopped run still deletes its namespace and files (the finally blocks).
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(143))
    cases = generate(a.count, a.seed, a.start)
    with namespace() as ns:
        report = run(cases, ns, a.jobs, a.workdir, keep=a.workdir is not None)
    print(report.render(a.show))
    t = report.total()
    if not t.n:
        return 1
    exit_pct, lines_pct = 100.0 * t.exit / t.n, 100.0 * t.lines / t.n
    clean = all(v.clean for v in report.excluded)
    return 0 if exit_pct >= EXIT_TARGET and lines_pct >= LINES_TARGET and clean else 1


if __name__ == "__main__":
    sys.exit(main())
