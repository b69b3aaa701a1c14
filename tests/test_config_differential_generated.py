"""Generated differential: ``pykeep -t`` against ``keepalived -t`` on 500 generated files.

The sample of the full run (``make differential``, 20,000 files): the same
generator and runner, seed 2, every keyword of the tables in focus at least
once.  keepalived is the oracle; both judge each file in one ``pk-df-…``
namespace.  Agreement must not fall below what the full run reaches now (a
ratchet: raise the floors as disagreements are fixed), and on every file
keepalived crashes or hangs on, pykeep must still give a clean diagnostic.
"""

from __future__ import annotations

import shutil

import pytest

from tests.differential.generator import keyword_paths
from tests.differential.runner import Report, describe, generate, namespace, run

# At least 500, and enough for every keyword of the tables to be in focus once.
SAMPLE = max(500, len(keyword_paths()))
# Floors from the full run, with a margin for the sample's smaller size (this
# sample, seed 2: 98.98 % exit codes and 95.72 % line sets agree; files using
# pykeep's own keywords are counted apart, runner.py).
EXIT_FLOOR = 0.97
LINES_FLOOR = 0.93


@pytest.fixture(scope="module")
def report() -> Report:
    if shutil.which("keepalived") is None:
        pytest.fail("keepalived is not installed: run 'make setup'")
    cases = generate(SAMPLE, seed=2)
    with namespace() as ns:
        return run(cases, ns, jobs=2)


@pytest.mark.netns
def test_sample_covers_every_keyword(report: Report) -> None:
    focused = {(v.case.block, v.case.keyword) for v in report.verdicts}
    every = {("/".join(p) or "(top)", n) for p, n, _k in keyword_paths()}
    assert len(every) >= 400
    assert focused == every


@pytest.mark.netns
def test_agreement_with_keepalived(report: Report) -> None:
    total = report.total()
    assert total.n >= 0.8 * SAMPLE, report.render(0)
    worst = [describe(v) for v in report.compared if not v.exit_agrees][:5]
    assert total.exit >= EXIT_FLOOR * total.n, report.render(0) + "\n" + "\n".join(worst)
    assert total.lines >= LINES_FLOOR * total.n, report.render(0)


@pytest.mark.netns
def test_clean_diagnostic_where_keepalived_fails(report: Report) -> None:
    for v in report.verdicts:
        assert v.clean, describe(v) if not v.excluded else v.ours.text
        assert v.ours.code in (0, 2, 4, 5, 6)
