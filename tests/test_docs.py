"""Every runnable code block in docs/ runs, and every Python block is runnable.

A page marks a fenced block with an HTML comment on the line before it:

- ``<!-- run -->``: run it (``python`` with this interpreter, ``sh`` with bash
  ``-euo pipefail``) in a fresh directory per page; it must exit 0;
- ``<!-- run netns -->``: the same, in the root-only ``netns`` test;
- ``<!-- file NAME -->``: write it to NAME in that directory first, for the
  blocks that follow.

A ``python`` block must carry one of these, or be nothing but snippet
includes (``--8<-- "examples/…"``) of a package that its own test installs and
runs.  Blocks run with the project's scripts first on PATH and
``examples/redis-check`` importable, as after ``pip install``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: generated from the parser's tables by its own tool and test
GENERATED = {"keywords.md"}
MARKER = re.compile(r"^<!--\s*(run netns|run|file\s+(\S+))\s*-->\s*$")
FENCE = re.compile(r"^```(\S*)")
INCLUDE = re.compile(r'^--8<--\s+"([^"]+)"\s*$')
#: snippet includes whose code the named test installs and runs
INCLUDED_BY_TESTS = {
    "examples/redis-check/pk_redis_check/__init__.py": "tests/test_health_plugin.py",
    "examples/redis-check/pyproject.toml": "tests/test_health_plugin.py",
}


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    text: str
    marker: str | None  # "run", "run netns", "file" or None
    filename: str | None = None


def blocks(page: Path) -> list[Block]:
    out: list[Block] = []
    lines = page.read_text().splitlines()
    marker: tuple[str, str | None] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARKER.match(line)
        if m:
            marker = ("file" if m.group(2) else m.group(1), m.group(2))
            i += 1
            continue
        f = FENCE.match(line)
        if f:
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            kind, name = marker if marker else (None, None)
            out.append(Block(page.name, start, f.group(1), "\n".join(body) + "\n", kind, name))
            marker = None
        elif line.strip():
            marker = None  # a marker belongs to the block right after it
        i += 1
    return out


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if p.name not in GENERATED)


def run_page(page: Path, tmp_path: Path, wanted: str) -> int:
    """Write the page's files, run its ``wanted`` blocks in order; return how many ran."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "examples" / "redis-check")]),
    }
    page_blocks = blocks(page)
    for b in page_blocks:
        if b.marker == "file" and b.filename:
            (tmp_path / b.filename).write_text(b.text)
    ran = 0
    for n, b in enumerate(page_blocks):
        if b.marker != wanted:
            continue
        if b.lang == "python":
            script = tmp_path / f"block{n}.py"
            script.write_text(b.text)
            argv = [sys.executable, str(script)]
        elif b.lang == "sh":
            argv = ["bash", "-euo", "pipefail", "-c", b.text]
        else:
            raise AssertionError(f"{b.page}:{b.line}: cannot run a {b.lang!r} block")
        result = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, (
            f"docs/{b.page}:{b.line} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        ran += 1
    return ran


def test_every_python_block_runs_or_is_tested() -> None:
    seen = 0
    for page in pages():
        for b in blocks(page):
            if b.lang != "python":
                continue
            seen += 1
            body = [ln for ln in b.text.splitlines() if ln.strip()]
            includes = [INCLUDE.match(ln) for ln in body]
            if b.marker is None and body and all(includes):
                for m in includes:
                    assert m is not None
                    path = m.group(1)
                    assert path in INCLUDED_BY_TESTS, f"docs/{b.page}:{b.line}: {path} untested"
                    assert (ROOT / path).is_file() and (ROOT / INCLUDED_BY_TESTS[path]).is_file()
                continue
            assert b.marker is not None, f"docs/{b.page}:{b.line}: a python block nobody runs"
    assert seen >= 5


def _with(marker: str) -> list[Path]:
    return [p for p in pages() if any(b.marker == marker for b in blocks(p))]


@pytest.mark.parametrize("page", _with("run"), ids=lambda p: p.name)
def test_page_blocks_run(page: Path, tmp_path: Path) -> None:
    assert run_page(page, tmp_path, "run") >= 1


@pytest.mark.netns
@pytest.mark.parametrize("page", _with("run netns"), ids=lambda p: p.name)
def test_page_netns_blocks_run(page: Path, tmp_path: Path) -> None:
    assert run_page(page, tmp_path, "run netns") >= 1


def test_pages_with_runnable_blocks() -> None:
    """The pages the issue asks to be runnable stay runnable (a lost marker fails here)."""
    assert {p.name for p in _with("run")} >= {"embedding.md", "checkers.md", "migrating.md"}
    assert {p.name for p in _with("run netns")} >= {"testing.md"}
