"""``python -m tests.differential_vm``: the runtime checker differential, in the VM.

Generates ``--count`` cases, merges them ``--batch`` to a file, boots the
VM once and runs keepalived -C, then pykeep -C, over every batch (each by a
fresh start, or with ``--reload`` by SIGHUP) against the same real servers; then
compares, per case, the table after settling and each entry's sequence of
changes.  Prints the agreement and every divergence; exits 1 unless every
table is identical.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.differential_vm import compare
from tests.differential_vm.generator import Case, case, merged

REPO = Path(__file__).resolve().parent.parent.parent
CONTROL_SOCKET = "/tmp/pk-vd-ctl.sock"


def commands(rw: Path) -> dict[str, list[str]]:
    def pids(kind: str) -> list[str]:
        return [
            "-p",
            str(rw / f"{kind}.pid"),
            "-r",
            str(rw / f"{kind}-v.pid"),
            "-c",
            str(rw / f"{kind}-c.pid"),
        ]

    return {
        "keepalived": [
            "/usr/sbin/keepalived",
            "-C",
            "-n",
            "-l",
            "-D",
            "-f",
            str(rw / "keepalived.conf"),
            *pids("k"),
        ],
        "pykeep": [
            str(REPO / ".venv" / "bin" / "pykeep"),
            *("-C", "-n", "-l", "-f", str(rw / "pykeep.conf"), *pids("p")),
            *("--control-socket", CONTROL_SOCKET),
        ],
    }


def plan(
    rw: Path,
    count: int,
    seed: int,
    batch: int,
    phase: float,
    start: int = 0,
    reload: bool = False,
) -> dict[str, Any]:
    """Write the guest's plan into ``rw`` and return it."""
    cases: list[Case] = [case(seed, i) for i in range(start, start + count)]
    batches = [cases[i : i + batch] for i in range(0, len(cases), batch)]
    p: dict[str, Any] = {
        "seed": seed,
        "batches": [[c.index for c in b] for b in batches],
        "heads": {str(c.index): c.head for c in cases},
        "confs": [merged(b) for b in batches],
        "phase": phase,
        "reload": reload,
        "start_limit": 900,
        "kinds": ["keepalived", "pykeep"],
        "commands": commands(rw),
        "ready": {"pykeep": CONTROL_SOCKET},
    }
    (rw / "plan.json").write_text(json.dumps(p))
    for i, text in enumerate(p["confs"]):
        (rw / f"batch{i}.conf").write_text(text)
    return p


def guest_script(rw: Path) -> str:
    return f"{sys.executable} -m tests.differential_vm.guest {rw}"


def guest_seconds(p: dict[str, Any]) -> float:
    """A generous bound on the guest's run: pykeep's start, then each batch's phases."""
    per_batch = 2 * (4 * float(p["phase"]) + 30) + float(p["start_limit"])
    return len(p["batches"]) * per_batch + 120


def verdicts(p: dict[str, Any], result: dict[str, Any]) -> list[compare.Verdict]:
    out: list[compare.Verdict] = []
    for b, cases in enumerate(p["batches"]):
        tables = {k: result.get(k, {}).get("tables", {}).get(str(b), "") for k in p["kinds"]}
        changes = {k: result.get(k, {}).get("changes", {}) for k in p["kinds"]}
        out += compare.judge(cases, tables, changes)
    return out


def render(p: dict[str, Any], result: dict[str, Any], vs: list[compare.Verdict], show: int) -> str:
    lines = []
    for kind in p["kinds"]:
        r = result.get(kind, {})
        left = r.get("left_after_stop", "?")
        lines.append(f"{kind}: batches {r.get('timings')}; left after stop: {left!r}")
    n = len(vs)
    tables = sum(v.table_same for v in vs)
    changes = sum(v.changes_same for v in vs)
    lines.append(f"cases run: {n} (seed {p['seed']}, {len(p['batches'])} batches)")
    lines.append(f"identical tables after settling: {tables}/{n}")
    lines.append(f"identical change sequences:      {changes}/{n}")
    by_head: dict[str, list[compare.Verdict]] = {}
    for v in vs:
        by_head.setdefault(p["heads"][str(v.case)], []).append(v)
    for head, hv in sorted(by_head.items()):
        lines.append(
            f"  {head:7} {sum(v.table_same for v in hv)}/{len(hv)} tables, "
            f"{sum(v.changes_same for v in hv)}/{len(hv)} sequences"
        )
    bad = [v for v in vs if not (v.table_same and v.changes_same)]
    for v in bad[:show]:
        lines.append(v.describe())
    if len(bad) > show:
        lines.append(f"... and {len(bad) - show} more divergent cases")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.differential_vm")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--batch", type=int, default=200, help="cases merged into one file")
    ap.add_argument(
        "--reload",
        action="store_true",
        help="load batches after the first by SIGHUP (pykeep refuses a reload whose file "
        "has keepalived's corrections, such as DR ports reset: see the report)",
    )
    ap.add_argument("--phase", type=float, default=40.0, help="seconds between flaps")
    ap.add_argument("--show", type=int, default=20, help="divergent cases to print")
    ap.add_argument("--workdir", help="keep the plan, configs, logs and result here")
    ap.add_argument("--judge", help="only judge the result already in this workdir")
    a = ap.parse_args(argv)
    from sim import vm

    if a.judge:
        rw = Path(a.judge)
        p = json.loads((rw / "plan.json").read_text())
    else:
        rw = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="pk-vd-"))
        rw.mkdir(parents=True, exist_ok=True)
        p = plan(rw, a.count, a.seed, a.batch, a.phase, a.start, a.reload)
        res = vm.in_vm(
            guest_script(rw),
            timeout=guest_seconds(p) + 300,
            rwdir=rw,
            progress=vm.stderr_progress(),
        )
        if not (rw / "result.json").exists():
            tail = f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
            print(f"guest left no result (rc {res.returncode}):\n{tail}")
            return 1
    result = json.loads((rw / "result.json").read_text())
    vs = verdicts(p, result)
    print(render(p, result, vs, a.show))
    print(f"workdir: {rw}")
    if not a.workdir and not a.judge and all(v.table_same for v in vs):
        shutil.rmtree(rw, ignore_errors=True)
    return 0 if vs and all(v.table_same for v in vs) else 1


if __name__ == "__main__":
    sys.exit(main())
