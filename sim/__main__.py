"""``python -m sim`` / ``pykeep-sim``: bring the rig up, down, or show it.

Why a CLI: an operator rehearsing a config (seed 000 §2) and a developer after a
crashed test both need one command that builds the two-director rig and one that
removes every trace of it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sim import netns


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pykeep-sim",
        description="The pykeep namespace rigs: up, down, status, demo, chaos, cluster.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    up = sub.add_parser("up", help="create the rig (namespaces, bridge, real servers)")
    up.add_argument("--rig", default="sim", help="rig name (namespaces pk-RIG-NODE)")
    up.add_argument("--mode", choices=("dr", "nat"), default="dr")
    up.add_argument("--real-servers", "-n", type=int, default=2)
    up.add_argument("--no-httpd", action="store_true", help="do not start the HTTP servers")
    up.add_argument(
        "--foreground",
        action="store_true",
        help="stay in the foreground; tear the rig down on Ctrl-C or exit",
    )

    down = sub.add_parser("down", help="delete pk- namespaces and kill processes we started")
    down.add_argument(
        "--rig", help="only this rig (default: every pk- rig, even live ones of running tests)"
    )
    down.add_argument("--stale", action="store_true", help="only rigs whose owner is dead")

    sub.add_parser("status", help="list rigs, their namespaces and processes")

    demo = sub.add_parser("demo", help="the two-director demo (re-executes in a VM if needed)")
    demo.add_argument(
        "--director-cmd",
        help="command template to start a director ({config}, {rundir}, {director})",
    )
    demo.add_argument("--keepalived", action="store_true", help="run keepalived as directors")
    demo.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="[DIRECTOR=]FILE",
        help="keepalived.conf template ({{interface}}, {{vip}}, {{state}}, {{priority}}…);"
        " repeat as dir1=A dir2=B for one file per director",
    )
    demo.add_argument("--mode", choices=("dr", "nat"), default="dr")
    demo.add_argument("--timeout", type=float, default=600.0, help="VM run timeout (s)")

    chaos = sub.add_parser(
        "chaos", help="fault scenarios against pykeep (and keepalived): one row each"
    )
    from sim.chaos import add_arguments

    add_arguments(chaos)

    cluster = sub.add_parser(
        "cluster", help="seed 001's cluster mode: 3 directors behind an ECMP router (FRR, VM)"
    )
    from sim.cluster import add_arguments as cluster_arguments

    cluster_arguments(cluster)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "down":
            removed = netns.down(rig=args.rig, stale_only=args.stale)
            for line in removed:
                print(f"removed {line}")
            if not removed:
                print("nothing to remove")
            return 0
        if args.cmd == "status":
            return _status()
        if args.cmd == "up":
            return _up(args)
        if args.cmd == "demo":
            from sim.demo import main as demo_main

            return demo_main(args)
        if args.cmd == "chaos":
            from sim.chaos import main_args

            return main_args(args)
        if args.cmd == "cluster":
            from sim.cluster import main_args as cluster_main

            return cluster_main(args, list(argv if argv is not None else sys.argv[1:])[1:])
    except netns.NetnsError as exc:
        print(f"pykeep-sim: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


def _status() -> int:
    rigs, orphans = netns.status()
    for st in rigs:
        owner = (
            "detached"
            if st.detached
            else f"owner {st.owner_pid}" + ("" if st.owner_alive else " (dead)")
        )
        print(f"rig {st.name}: {owner}")
        for ns in st.namespaces:
            print(f"  ns   {ns}")
        for p in st.procs:
            print(f"  pid  {p['pid']:<7} [{p['ns']}] {' '.join(p['argv'])}")
    for ns in orphans:
        print(f"stray namespace {ns} (no state file)")
    if not rigs and not orphans:
        print("no rig")
    return 0


def _up(args: argparse.Namespace) -> int:
    from sim import topology

    topo = topology.standard(mode=args.mode, n_real=args.real_servers)
    lab = topology.Lab(topo, name=args.rig, detached=not args.foreground)
    try:
        lab.build()
        if not args.no_httpd:
            lab.start_httpds()
    except BaseException:
        lab.close()
        raise
    print(lab.describe())
    if not args.foreground:
        print(f"rig {args.rig} is up; remove it with: python -m sim down --rig {args.rig}")
        return 0
    import time

    print("Ctrl-C tears the rig down")
    try:
        while True:
            time.sleep(3600)
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
