"""The fuzzers at a modest size with a fixed seed (``make fuzz`` runs them at full size).

Each must see its inputs through without a crash, and reach a spread of
distinct rejections: a fuzzer whose inputs all fail the same first check
would test nothing behind it.
"""

from __future__ import annotations

from pathlib import Path

from tests.fuzz import Tally, advert, checkers, config, control

SEED = 13


def _report(t: Tally, n: int, min_kinds: int) -> None:
    assert t.inputs == n
    assert not t.crashes, "\n".join(t.crashes[:10])
    assert len(t.rejections) >= min_kinds, t.rejections
    assert t.accepted > 0, "no input got through: the mutations are too coarse"


def test_fuzz_advert_decoder() -> None:
    t = advert.run(20_000, SEED)
    _report(t, 20_000, 10)
    assert {"length", "vrid", "checksum", "ttl", "auth_pass"} <= set(t.rejections)


def test_fuzz_config_loader(tmp_path: Path) -> None:
    t = config.run(150, SEED, tmp_path)
    _report(t, 150, 15)


def test_fuzz_control_socket(tmp_path: Path) -> None:
    t = control.run(1_000, SEED, tmp_path)
    _report(t, 1_000, 5)
    assert {"bad_json", "too_long", "bad_request", "missing_argument"} <= set(t.rejections)


def test_fuzz_http_and_smtp_checkers() -> None:
    t = checkers.run(150, SEED)
    _report(t, 150, 5)
