"""No tracebacks, whatever the input: 10,000 mutated corpus configs through the parser.

Every result must be a ``LoadResult`` whose diagnostics are clean values
(a message, a severity, a location that names a line) — never an exception.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pykeep.config import LoadResult, Severity, load_text
from pykeep.config.diagnostics import Diagnostic

CORPUS = Path("/work/shared/corpus")
HERE = Path(__file__).parent / "data" / "config"


def _texts() -> list[str]:
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "README.md")
    files += sorted(HERE.rglob("*.conf"))
    out = [p.read_text(encoding="utf-8", errors="surrogateescape") for p in files]
    assert len(out) >= 30, "the corpus is missing"
    return out


TEXTS = _texts()
NOISE = [
    "{",
    "}",
    '"',
    "'",
    "\\",
    "#",
    "!",
    "$X",
    "${",
    "@",
    "~SEQ(",
    "include",
    "\x00",
    "é",
    "9999999999999999999999",
    "-1",
    "0.0000001",
    "nan",
    "::",
    "1.2.3.4/99",
    "\n",
    "\t",
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text: str = draw(st.sampled_from(TEXTS))
    tokens = text.split(" ")
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 6))
        n = len(tokens)
        i = draw(st.integers(0, max(0, n - 1)))
        if op == 0 and n > 1:
            del tokens[i]
        elif op == 1:
            tokens.insert(i, tokens[i] if n else "x")
        elif op == 2 and n > 1:
            j = draw(st.integers(0, n - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == 3:
            tokens.insert(i, draw(st.sampled_from(NOISE)))
        elif op == 4:
            tokens.insert(i, draw(st.text(max_size=8)))
        elif op == 5:
            tokens = tokens[:i]
        else:
            raw = draw(st.binary(max_size=6)).decode("latin-1")
            tokens.insert(i, raw)
    return " ".join(tokens)


def _check(r: LoadResult) -> None:
    assert isinstance(r, LoadResult)
    assert r.exit_code in (0, 2, 4, 5, 6)
    for d in r.diagnostics:
        assert isinstance(d, Diagnostic)
        assert isinstance(d.severity, Severity)
        assert d.message and "Traceback" not in d.message
        assert "\n" not in str(d).split("\n    hint: ")[0]
        if d.loc is not None:
            assert d.loc.line >= 0


@settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(mutated())
def test_mutated_configs_never_raise(text: str) -> None:
    _check(
        load_text(
            text, "/nonexistent-pykeep-fuzz/k.conf", config_id="h", interface_exists=lambda _n: True
        )
    )
