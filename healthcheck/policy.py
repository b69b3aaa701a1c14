"""keepalived's checker retry and scheduling rules, as a pure state machine.

This module owns everything that decides *when* a checker runs next and
*whether* a real server is up: ``delay_loop``, ``warmup``, ``retry``
(``nb_get_retry``), ``delay_before_retry``, ``alpha``, ``fast_recovery``,
HTTP_GET's walk over its ``url`` blocks, ``misc_dynamic`` weights, and the
rule that a real server with several checkers is up only while all pass.
It never touches sockets, tasks or clocks: the caller passes ``now`` (float
seconds) and the :class:`~healthcheck.api.Result` of each attempt, and gets
back when to run next and what changed.  :mod:`healthcheck.scheduler` is the
trio shell around it; tests drive it with plain floats.

Theory of operation (keepalived check_api.c, check_data.c, check_tcp.c,
check_http.c, check_misc.c, ipwrapper.c):

- Settings inherit virtual_server → real_server → checker, then fall back
  to the checker type's defaults (check_data.c ``validate_check_config``):
  ``retry`` 1 (MISC_CHECK 0, DNS_CHECK 3), ``delay_before_retry`` 1 s
  (HTTP_GET/SSL_GET 3 s, DNS_CHECK ``delay_loop``), ``warmup`` ``delay_loop``.
- The first attempt runs ``BOOTSTRAP_DELAY`` + a random fraction of
  ``warmup`` after start (check_api.c ``register_checkers_thread``), which
  staggers checks so they do not all fire in the same tick.
- A checker starts up, or down with ``alpha``.  ``retry_it`` is preset to
  ``retry`` (check_data.c) so the very first failure takes a server down.
- Once it has run, an up checker goes down after ``retry`` + 1 consecutive
  failures, the retries spaced by ``delay_before_retry``; a down checker
  goes up after one success (check_tcp.c ``tcp_epilog``).
- HTTP_GET/SSL_GET probe one URL per attempt and advance on success; a full
  successful walk is what brings the checker up; a URL that fails ``retry``
  + 1 times takes it down and is re-probed every max(delay_before_retry,
  delay_loop) until it passes, after which the walk restarts from the first
  URL (check_http.c ``epilog``).  ``fast_recovery`` re-probes at once while
  the checker has never completed a walk, or is down without a known
  failing URL.
- MISC_CHECK with ``misc_dynamic``: the result carries a weight; a change is
  reported even while the server stays up, and a failure resets it
  (check_misc.c ``misc_check_child_thread``).
- A real server is alive while no checker is down (ipwrapper.c
  ``set_checker_state``/``update_svr_checker_state``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from healthcheck.api import Result
from pykeep.config.model import Checker as CheckerModel
from pykeep.config.model import CheckerCommon, HttpCheck, RealServer, VirtualServer

#: keepalived lib/scheduler.h BOOTSTRAP_DELAY: checkers start one second after launch.
BOOTSTRAP_DELAY = 1.0
#: check_data.c: the virtual_server's default connect_timeout.
DEFAULT_CONNECT_TIMEOUT = 5.0

Flavour = Literal["tcp", "http"]


@dataclass(frozen=True, slots=True)
class Timing:
    """One checker's resolved settings, after inheritance and type defaults."""

    delay_loop: float = 60.0
    warmup: float = 60.0
    retry: int = 1
    delay_before_retry: float = 1.0
    alpha: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    fast_recovery: bool = False
    flavour: Flavour = "tcp"


# keyword -> (default_retry, default_delay_before_retry or None for delay_loop)
# check_api.c queue_checker, check_http.c, check_misc.c, check_dns.c
_TYPE_DEFAULTS: dict[str, tuple[int, float | None]] = {
    "HTTP_GET": (1, 3.0),
    "SSL_GET": (1, 3.0),
    "MISC_CHECK": (0, 1.0),
    "DNS_CHECK": (3, None),
}


def _first(*values: float | int | bool | None) -> float | int | bool | None:
    return next((v for v in values if v is not None), None)


def resolve_timing(vs: VirtualServer, rs: RealServer, checker: CheckerModel) -> Timing:
    """Inherit virtual_server → real_server → checker (check_data.c ``validate_check_config``)."""
    c: CheckerCommon = checker.common
    keyword = checker.keyword
    if isinstance(checker, HttpCheck) and checker.ssl:
        keyword = "SSL_GET"
    default_retry, default_dbr = _TYPE_DEFAULTS.get(keyword, (1, 1.0))
    delay_loop = float(_first(c.delay_loop, rs.delay_loop, vs.delay_loop) or 0.0)
    warmup = _first(c.warmup, rs.warmup, vs.warmup)
    dbr = _first(c.delay_before_retry, rs.delay_before_retry, vs.delay_before_retry)
    return Timing(
        delay_loop=delay_loop,
        warmup=float(warmup) if warmup is not None else delay_loop,
        retry=int(_first(c.retry, rs.retry, vs.retry, default_retry) or 0),
        delay_before_retry=float(dbr if dbr is not None else (default_dbr or delay_loop)),
        alpha=bool(_first(c.alpha, rs.alpha, vs.alpha)),
        connect_timeout=float(
            _first(c.connect_timeout, rs.connect_timeout, vs.connect_timeout)
            or DEFAULT_CONNECT_TIMEOUT
        ),
        fast_recovery=isinstance(checker, HttpCheck) and checker.fast_recovery,
        flavour="http" if isinstance(checker, HttpCheck) else "tcp",
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """What one attempt's result means.

    ``next_at``/``step``: when to run next and which step (URL index).
    ``up``: True/False when the checker changed state, None otherwise.
    ``weight_changed``/``weight``: a misc_dynamic weight change.
    """

    next_at: float
    step: int
    up: bool | None = None
    reason: str = ""
    weight_changed: bool = False
    weight: int | None = None


@dataclass(slots=True)
class CheckerPolicy:
    """The retry state of one checker (keepalived's ``checker_t`` counters)."""

    timing: Timing
    steps: int = 1
    is_up: bool = field(init=False)
    has_run: bool = field(default=False, init=False)
    retry_it: int = field(init=False)
    step: int = field(default=0, init=False)
    failed_step: int | None = field(default=None, init=False)
    weight: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # check_data.c: alpha starts the checker failed; retry_it preset so that
        # a single failure counts before the checker has ever run.
        self.is_up = not self.timing.alpha
        self.retry_it = self.timing.retry
        self.steps = max(1, self.steps)

    def first_at(self, now: float, rand: float) -> float:
        """When to run first; ``rand`` in [0, 1] (check_api.c ``register_checkers_thread``)."""
        return now + BOOTSTRAP_DELAY + self.timing.warmup * rand

    def record(self, result: Result, now: float) -> Decision:
        if self.timing.flavour == "http":
            return self._http_epilog(result, now)
        return self._tcp_epilog(result, now)

    def _weight_update(self, result: Result) -> bool:
        if result.ok and result.weight != self.weight:
            self.weight = result.weight
            return True
        return False

    def _tcp_epilog(self, result: Result, now: float) -> Decision:
        # check_tcp.c tcp_epilog (check_udp.c, check_smtp.c, check_dns.c,
        # check_ping.c and check_misc.c follow the same rule).
        t = self.timing
        delay = t.delay_loop
        up: bool | None = None
        weight_changed = self._weight_update(result)
        if result.ok or ((self.is_up or not self.has_run) and self.retry_it >= t.retry):
            self.retry_it = 0
            if result.ok and not self.is_up:
                up = True
            elif not result.ok and self.is_up:
                up = False
                # check_misc.c: a failure drops the dynamic weight
                weight_changed = self.weight is not None
                self.weight = None
            if up is not None:
                self.is_up = up
        elif self.is_up:
            delay = t.delay_before_retry
            self.retry_it += 1
        self.has_run = True
        return Decision(now + delay, 0, up, result.reason, weight_changed, self.weight)

    def _http_epilog(self, result: Result, now: float) -> Decision:
        # check_http.c epilog(): REGISTER_CHECKER_NEW on success,
        # REGISTER_CHECKER_RETRY (via timeout_epilog) on failure.
        t = self.timing
        up: bool | None = None
        if result.ok:
            self.step += 1
            walk_done = self.step >= self.steps
            self.retry_it = 0
            if walk_done and self.failed_step is None:
                if not self.is_up or not self.has_run:
                    up = True if not self.is_up else None
                    self.is_up = True
                    self.has_run = True
                self.step = 0
            elif self.failed_step is not None:
                # the failed URL passes again: restart the walk from the first URL
                self.failed_step = None
                self.step = 0
            elif walk_done:
                self.step = 0
            delay = t.delay_loop
            if not self.has_run:
                self.retry_it = t.retry
        elif self.is_up or not self.has_run:
            # timeout_epilog → epilog(REGISTER_CHECKER_RETRY)
            self.has_run = True
            self.retry_it += 1
            if self.retry_it > t.retry:
                if self.is_up:
                    up = False
                    self.is_up = False
                self.failed_step = self.step
        # else: already known dead, epilog(REGISTER_CHECKER_FAILED) just re-probes
        if not result.ok:
            delay = (
                max(t.delay_before_retry, t.delay_loop)
                if self.failed_step is not None
                else t.delay_before_retry
            )
        if t.fast_recovery and (not self.has_run or (not self.is_up and self.failed_step is None)):
            delay = 0.0
        return Decision(now + delay, self.step, up, result.reason)


@dataclass(frozen=True, slots=True)
class Transition:
    """A real server's state change, as delivered to the consumer (issue "ipvs").

    ``key`` is whatever the consumer chose to identify the real server.
    ``weight`` None means "the configured weight"; an int is a
    misc_dynamic weight.  A weight change while the server stays up comes
    with ``up`` True and ``reason`` ``"weight"``.
    """

    key: object
    up: bool
    reason: str
    weight: int | None = None


@dataclass(slots=True)
class ServerPolicy:
    """Combines a real server's checkers: alive while none is down (ipwrapper.c)."""

    key: object
    checkers: list[CheckerPolicy]
    names: list[str] = field(default_factory=list)
    alive: bool = field(init=False)

    def __post_init__(self) -> None:
        self.alive = all(c.is_up for c in self.checkers)
        if not self.names:
            self.names = [f"checker{i}" for i in range(len(self.checkers))]

    @property
    def weight(self) -> int | None:
        return next((c.weight for c in self.checkers if c.weight is not None), None)

    def initial(self) -> Transition:
        reason = "initial" if self.alive else "initial (alpha)"
        return Transition(self.key, self.alive, reason, None)

    def record(self, index: int, result: Result, now: float) -> tuple[Decision, Transition | None]:
        """Feed checker ``index``'s result; return its decision and any server transition."""
        decision = self.checkers[index].record(result, now)
        alive = all(c.is_up for c in self.checkers)
        name = self.names[index]
        if alive != self.alive:
            self.alive = alive
            return decision, Transition(self.key, alive, f"{name}: {result.reason}", self.weight)
        if decision.weight_changed and alive:
            return decision, Transition(self.key, True, "weight", self.weight)
        return decision, None
