"""The checker contract: one attempt, one verdict (seesaw's ``Check(timeout) -> Result``).

A checker knows how to probe a :class:`Target` once and say whether that one
attempt passed, and why.  It holds no state between attempts: retries,
intervals, warmup and up/down state belong to :mod:`healthcheck.policy` (pure)
and :mod:`healthcheck.scheduler` (the trio shell), exactly as keepalived keeps
them in ``checker_t`` rather than in each check_*.c probe.

A checker may raise; the scheduler turns any exception into a failed
:class:`Result` (reason ``"crash: …"``), so no peer can crash the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to connect: keepalived's ``conn_opts_t`` (check_api.h).

    ``address`` is a literal IP string; ``port`` None for checkers that have
    no port (PING_CHECK, MISC_CHECK, FILE_CHECK).
    """

    address: str
    port: int | None = None
    bindto: str | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    fwmark: int | None = None

    def __str__(self) -> str:
        if self.port is None:
            return self.address
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Result:
    """The verdict of one attempt.

    ``reason`` is a short, stable name for why (``"connect refused"``,
    ``"status 500"``, ``"timeout"``); counters and logs use the same words.
    ``weight`` is set only by checkers that steer the real server's weight
    (MISC_CHECK with ``misc_dynamic``): the new weight, or None for "the
    configured weight".
    """

    ok: bool
    reason: str = ""
    weight: int | None = None

    @classmethod
    def passed(cls, reason: str = "ok", weight: int | None = None) -> Result:
        return cls(True, reason, weight)

    @classmethod
    def failed(cls, reason: str) -> Result:
        return cls(False, reason)


@runtime_checkable
class Checker(Protocol):
    """What every checker, built-in or plugin, provides.

    ``timeout`` is keepalived's ``connect_timeout`` for this checker: the
    whole attempt must finish within it (the scheduler also enforces it).
    """

    async def check(self, target: Target, timeout: float) -> Result: ...


@runtime_checkable
class MultiStepChecker(Checker, Protocol):
    """A checker whose attempts walk several steps, like HTTP_GET's ``url`` blocks.

    keepalived checks one URL per attempt and advances to the next only on
    success (check_http.c ``epilog``); the policy tracks which step is next,
    so the checker only needs to probe step ``step``.  ``check`` alone probes
    every step in order and fails at the first failure, for standalone use.
    """

    @property
    def steps(self) -> int: ...

    async def check_step(self, target: Target, timeout: float, step: int) -> Result: ...
