"""One virtme-ng boot shared by the test modules that need real IPVS.

Why: a boot costs 40-100 s of emulated CPU before any test work starts, and
CI has a 20-minute budget for the whole suite.  The modules that only need a
kernel with IP_VS (not their own long-running rig) each *register a part* at
import time: a function that writes its inputs into its own directory and
returns the bash to run there.  The first test asking for the session fixture
``shared_vm`` (tests/conftest.py) boots once and runs every registered part in
turn, each in its own ``$W`` directory, under its own ``timeout``, with its exit
status in ``$W/rc`` and its output in ``$W/log``; a hung or failing part costs
only its own tests.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim import vm

Prepare = Callable[[Path], str]
"""Writes a part's inputs into its directory and returns the bash script to run there."""


@dataclass(frozen=True)
class Part:
    prepare: Prepare
    timeout: float


PARTS: dict[str, Part] = {}


def register(name: str, prepare: Prepare, timeout: float) -> None:
    PARTS[name] = Part(prepare, timeout)


def python(code: str) -> str:
    """A part's bash that runs ``code`` with the venv's python (host paths are seen in the VM)."""
    return f"{sys.executable} - <<'PYEOF'\n{code}\nPYEOF"


@dataclass(frozen=True)
class SharedRun:
    """What the one boot left: the runner's own result and each part's directory."""

    result: vm.VmResult
    dirs: dict[str, Path]
    phases: list[str]

    def part(self, name: str) -> Path:
        """The part's directory, after checking it ran to completion (its rc exists)."""
        d = self.dirs[name]
        if not (d / "rc").exists():
            log = (d / "log").read_text(errors="replace") if (d / "log").exists() else ""
            raise AssertionError(
                f"VM part {name!r} did not finish (runner rc {self.result.returncode}, "
                f"timed out: {self.result.timed_out}):\n{log[-3000:]}\n{self.result.stderr[-2000:]}"
            )
        return d

    def rc(self, name: str) -> int:
        return int((self.part(name) / "rc").read_text().strip() or 255)

    def log(self, name: str) -> str:
        path = self.dirs[name] / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def json(self, name: str, file: str = "result.json") -> dict[str, Any]:
        """The JSON object a part saved, or a failure carrying the part's log."""
        path = self.part(name) / file
        assert path.exists(), f"no {file} (rc={self.rc(name)}): {self.log(name)[-3000:]}"
        data: dict[str, Any] = json.loads(path.read_text())
        return data


def run(root: Path) -> SharedRun:
    """Boot once and run every registered part (in registration order)."""
    lines: list[str] = ["modprobe ip_vs"]
    dirs: dict[str, Path] = {}
    for name, part in PARTS.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "part.sh").write_text(part.prepare(d))
        q = shlex.quote(str(d))
        lines += [
            # Each part starts from an empty IPVS table: a part may leave an
            # entry behind on purpose (test_ipvs_vm keeps a foreign service).
            "ipvsadm -C",
            f"export W={q} PYKEEP_VM_RWDIR={q}",
            f"timeout -k 10 {int(part.timeout)} bash {q}/part.sh > {q}/log 2>&1",
            f"echo $? > {q}/rc",
            f'echo "part {name}: rc $(cat {q}/rc)"',
            f'echo "part {name} done" >&2',
        ]
        dirs[name] = d
    total = sum(p.timeout + 15 for p in PARTS.values()) + 300  # + boot under emulation
    phases: list[str] = []
    result = vm.in_vm(
        "\n".join(lines),
        timeout=total,
        rwdir=root,
        progress=lambda phase, _t: phases.append(phase),
    )
    return SharedRun(result, dirs, phases)
