"""``pykeep ipvs …``: look at the kernel's IPVS table the way ipvsadm shows it.

pykeep's own CLI dispatches ``pykeep ipvs ARGS`` to :func:`main`.  The
output is ipvsadm's, so operators' habits and scripts keep working on a host
where ipvsadm is not installed.
"""

from __future__ import annotations

import argparse
import sys

from .ipvsadm import format_list, format_save
from .netlink import IpvsUnavailable, Kernel


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pykeep ipvs", description="show the kernel's IPVS table")
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="like ipvsadm -L")
    ls.add_argument("-n", "--numeric", action="store_true", help="numeric ports")
    ls.add_argument("--stats", action="store_true", help="packet and byte counters")
    ls.add_argument("--rate", action="store_true", help="rates")
    sub.add_parser("save", help="like ipvsadm -Sn")
    return p


def main(argv: list[str]) -> int:
    """Run ``pykeep ipvs`` with ``argv`` (without the leading ``ipvs``); return the exit code."""
    args = _parser().parse_args(argv)
    try:
        with Kernel.open(modprobe=False) as k:
            if args.cmd == "save":
                sys.stdout.write(format_save(k.read()))
                return 0
            mode = "stats" if args.stats else "rate" if args.rate else ""
            table, stats = k.read_with_stats()
            version, size = k.info()
            sys.stdout.write(format_list(table, args.numeric, stats, mode, version, size))
            return 0
    except IpvsUnavailable as e:
        print(f"pykeep ipvs: {e}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError) as e:
        print(f"pykeep ipvs: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
