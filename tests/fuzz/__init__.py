"""Seeded fuzzers for what hostile input reaches: adverts, configs, the control socket, checkers.

Each target module has ``run(n, seed, workdir) -> Tally``: ``n`` inputs made
from a fixed seed, each fed to the real code; a rejection is a reason the
code gave (a ``Rejected`` reason, a diagnostic kind, an error code), a crash
is anything else (an exception, a hang, a connection closed without a
reply).  ``tests/test_fuzz.py`` runs them small in ``make test``;
``python -m tests.fuzz`` (``make fuzz``) runs them at full size.
"""

from __future__ import annotations

import signal
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType


@dataclass
class Tally:
    """What one fuzz run saw: inputs, rejections by reason, and crashes."""

    target: str
    inputs: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    crashes: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejections[reason] += 1

    def crash(self, sample: object, exc: BaseException | None = None, why: str = "") -> None:
        """Record a crash with a short sample of its input (for the report)."""
        where = ""
        if exc is not None:
            last = traceback.extract_tb(exc.__traceback__)[-1:]
            loc = f" at {last[0].filename}:{last[0].lineno}" if last else ""
            where = f"{type(exc).__name__}: {str(exc)[:120]}{loc}"
        self.crashes.append(f"{why or where} <- {repr(sample)[:160]}")

    def row(self) -> str:
        return (
            f"{self.target:<10} inputs {self.inputs:>9,}  accepted {self.accepted:>9,}  "
            f"distinct rejections {len(self.rejections):>5}  crashes {len(self.crashes)}"
        )


class Hang(Exception):
    """An input took longer than the watchdog allows."""


@contextmanager
def watchdog(seconds: int) -> Iterator[None]:
    """Raise ``Hang`` in the main thread if the block runs longer than ``seconds``."""

    def fire(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"no result within {seconds}s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
