"""Run every benchmark: ``python -m bench [NAME…]``.

Each ``bench/bench_*.py`` module has a ``main() -> None`` that measures pykeep
against keepalived (or ipvsadm, or scapy) in the same run and prints the
ratio. Benchmarks are never part of ``make test``: timing belongs here.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def main(argv: list[str] | None = None) -> int:
    wanted = set(argv if argv is not None else sys.argv[1:])
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    failed = 0
    for name in names:
        short = name.removeprefix("bench_")
        if wanted and short not in wanted and name not in wanted:
            continue
        print(f"== {short}", flush=True)
        started = time.monotonic()
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception as exc:  # one broken benchmark must not hide the others
            failed += 1
            print(f"!! {short} failed: {type(exc).__name__}: {exc}", flush=True)
        print(f"   ({time.monotonic() - started:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
