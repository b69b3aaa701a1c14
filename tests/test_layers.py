"""The import-linter contracts in pyproject.toml hold, and would catch a wrong arrow.

A contract that never fails proves nothing, so each wrong arrow is planted in
a temporary copy of the tree and ``lint-imports`` must name the broken contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("pykeep", "vrrp", "healthcheck", "ipvs", "sim")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first, so the copy shadows the editable install of the original.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def plant(path: Path, line: str) -> None:
    """Add an import after the module's ``from __future__`` line."""
    text = path.read_text()
    anchor = "from __future__ import annotations\n"
    assert anchor in text, path
    path.write_text(text.replace(anchor, anchor + line + "\n", 1))


def test_contracts_hold_on_the_tree() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken", "arrow"),
    [
        (
            "vrrp/machine.py",
            "import trio  # noqa",
            "the cores import no trio, no pyroute2, no sockets",
            "vrrp.machine is not allowed to import trio",
        ),
        (
            "ipvs/diff.py",
            "from ipvs import netlink  # noqa",
            "the cores import no trio, no pyroute2, no sockets",
            "ipvs.diff is not allowed to import pyroute2",
        ),
        (
            "pykeep/config/model.py",
            "import pykeep.daemon  # noqa",
            "entry points > operator surfaces > services > ground",
            "pykeep.config is not allowed to import pykeep.daemon",
        ),
        (
            "healthcheck/scheduler.py",
            "from pykeep.ops import metrics  # noqa",
            "entry points > operator surfaces > services > ground",
            "healthcheck is not allowed to import pykeep.ops.metrics",
        ),
        (
            "vrrp/driver.py",
            "import healthcheck.scheduler  # noqa",
            "entry points > operator surfaces > services > ground",
            "vrrp is not allowed to import healthcheck",
        ),
    ],
    ids=["core-imports-trio", "core-imports-netlink", "ground-imports-daemon",
         "service-imports-surface", "service-imports-service"],
)  # fmt: skip
def test_a_wrong_arrow_breaks_a_contract(
    tree: Path, module: str, line: str, broken: str, arrow: str
) -> None:
    plant(tree / module, line)
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{broken} BROKEN" in result.stdout
    assert arrow in result.stdout, result.stdout


# What the contracts say statically, checked at run time as a library user meets it.
CORES = """
import vrrp.machine, vrrp.packet, healthcheck.policy, ipvs.policy, ipvs.diff, pykeep.config
pykeep.config.load_text(
    "virtual_server 10.0.0.1 80 {\\n real_server 10.0.0.2 80 {\\n TCP_CHECK {\\n }\\n }\\n}\\n", "x"
)
"""
GROUND = "import pykeep.config, pykeep.scripts, pykeep.log, pykeep.ops.status, pykeep.ops.drain"


def loaded_after(code: str, tmp_path: Path) -> set[str]:
    probe = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    return set(probe.stdout.split())


def test_cores_load_without_trio_pyroute2_or_socket(tmp_path: Path) -> None:
    """A library user parses a config and builds machines with no I/O stack loaded."""
    modules = loaded_after(CORES, tmp_path)
    assert "vrrp.machine" in modules and "pykeep.config.model" in modules
    assert not {"trio", "pyroute2", "socket"} & modules


def test_ground_loads_without_services_or_daemon(tmp_path: Path) -> None:
    modules = loaded_after(GROUND, tmp_path)
    assert "pykeep.scripts" in modules
    above = {m for m in modules if m.split(".")[0] in ("vrrp", "ipvs", "sim")}
    above |= {m for m in modules if m.startswith("healthcheck.") and m != "healthcheck.plugin"}
    above -= {"healthcheck.api"}  # the checker contract the plugin registry names
    above |= {"pykeep.daemon", "pykeep.cli", "pykeep.lvs", "pykeep.ops.view"} & modules
    assert not above, sorted(above)
