"""The wheel a user installs: built from the tree, installed into a fresh venv, run.

It proves what an editable install in the project's own venv cannot: that the
wheel carries every module the commands need (a missing subpackage would only
show here), ships ``py.typed`` for library users, declares its licence as an
SPDX expression, and holds no ``tests`` package.  About half a minute, most of
it pip building in isolated environments from its cache.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pykeep", "vrrp", "healthcheck", "ipvs", "sim")
SAMPLE = """\
global_defs {
    router_id LVS_DEVEL
}
virtual_server 192.168.77.100 80 {
    delay_loop 6
    lb_algo wlc
    lb_kind DR
    protocol TCP
    real_server 192.168.77.11 80 {
        weight 3
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 3
        }
    }
}
"""


FIND_TESTS = (
    "import importlib.util, pykeep; print(importlib.util.find_spec('tests'), pykeep.__file__)"
)


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build`` on a copy of the tree (the work tree stays clean)."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in (*PACKAGES, "tests"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    built = run([sys.executable, "-m", "build", "--outdir", str(out), str(src)])
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "is deprecated" not in built.stderr, built.stderr  # e.g. a licence table
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel and its dependencies, nothing else."""
    env_dir = tmp_path_factory.mktemp("venv")
    made = run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    assert made.returncode == 0, made.stderr
    (wheel,) = dist.glob("pykeep-*.whl")
    installed = run(
        [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"),
         "install", "-q", str(wheel)]
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return env_dir


def test_build_gives_a_wheel_and_an_sdist(dist: Path) -> None:
    assert len(list(dist.glob("pykeep-*.whl"))) == 1
    assert len(list(dist.glob("pykeep-*.tar.gz"))) == 1


def test_wheel_contents(dist: Path) -> None:
    (wheel,) = dist.glob("pykeep-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == set(PACKAGES), tops  # no tests, no examples, no bench
    for pkg in PACKAGES:
        assert f"{pkg}/py.typed" in names
    for module in ("pykeep/ops/view.py", "pykeep/config/model.py", "vrrp/machine.py"):
        assert module in names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "License-Expression: GPL-2.0-or-later" in text


def test_installed_commands_work(venv: Path, tmp_path: Path) -> None:
    bin_dir = venv / "bin"
    version = run([str(bin_dir / "pykeep"), "--version"])
    assert version.returncode == 0 and "pykeep 0.1.0" in version.stdout + version.stderr
    conf = tmp_path / "keepalived.conf"
    conf.write_text(SAMPLE)
    checked = run([str(bin_dir / "pykeep"), "-t", "-f", str(conf)], cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    conf.write_text(SAMPLE.replace("lb_algo wlc", "lb_algo nope"))
    refused = run([str(bin_dir / "pykeep"), "-t", "-f", str(conf)], cwd=tmp_path)
    assert refused.returncode != 0 and f"({conf}: Line 6)" in refused.stdout + refused.stderr
    usage = run([str(bin_dir / "genhash"), "--help"])
    assert "Usage: genhash" in usage.stdout + usage.stderr, usage
    assert "Traceback" not in usage.stderr


def test_installed_tree_has_no_tests_package(venv: Path, tmp_path: Path) -> None:
    probe = run(
        [str(venv / "bin" / "python"), "-c", FIND_TESTS], cwd=tmp_path
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    spec, where = probe.stdout.split()
    assert spec == "None"
    assert where.startswith(str(venv)), where  # the wheel's copy, not the work tree
