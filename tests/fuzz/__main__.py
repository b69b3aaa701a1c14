"""``python -m tests.fuzz [--seed N] [--scale F] [TARGET…]``: every fuzzer at full size.

Full size is the project's target: 10^6 adverts, 10^5 configurations,
10^4 control requests, 10^4 checker probes.  ``--scale 0.01`` runs a
hundredth of each.  Prints one row per target and exits 1 on any crash.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz import advert, checkers, config, control

FULL = {"advert": 1_000_000, "config": 100_000, "control": 10_000, "checkers": 10_000}
TARGETS = {
    "advert": advert.run,
    "config": config.run,
    "control": control.run,
    "checkers": checkers.run,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("targets", nargs="*", choices=[[], *FULL], default=[])
    opts = ap.parse_args(argv)
    crashed = 0
    with tempfile.TemporaryDirectory(prefix="pykeep-fuzz-") as tmp:
        for name in opts.targets or list(FULL):
            n = max(1, int(FULL[name] * opts.scale))
            started = time.monotonic()
            tally = TARGETS[name](n, opts.seed, Path(tmp) / name)
            print(f"{tally.row()}  ({time.monotonic() - started:.1f} s)", flush=True)
            for line in tally.crashes[:20]:
                print(f"    crash: {line}")
            crashed += len(tally.crashes)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
