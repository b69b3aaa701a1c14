"""Which processes a ``vrrp_track_process`` counts, and when its quorum is gained or lost.

Pure: the trio shell (:mod:`vrrp.process`) reads /proc and feeds the counts
in.  The rules are keepalived 2.2.7's (core/track_process.c):

- a process matches by its comm (15 characters, /proc/PID/stat) or, with
  ``full_command`` (implied by parameters or ``param_match``), by argv[0] of
  /proc/PID/cmdline, compared whole (``read_procs``/``check_process``);
- parameters are compared as the NUL-separated bytes after argv[0]
  (``check_params``): ``exact`` all of them, ``partial`` the leading ones,
  ``initial`` the leading ones with the last given one a prefix;
- the object is up while ``quorum <= count <= quorum_max``; a change caused
  by a process exiting waits ``terminate_delay``, one caused by a fork waits
  ``fork_delay``, one caused by an exec is immediate; a change of the other
  kind cancels a waiting timer (``check_process_fork``,
  ``check_process_termination``, ``process_*_quorum_timer_thread``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pykeep.config.model import VrrpTrackProcess


def params_bytes(params: tuple[str, ...] | None) -> bytes | None:
    """The configured parameters as /proc/PID/cmdline holds them: each NUL-terminated."""
    if params is None:
        return None
    return b"".join(p.encode() + b"\0" for p in params)


def check_params(tp: VrrpTrackProcess, params: bytes) -> bool:
    """Do a process's parameters (the cmdline bytes after argv[0]'s NUL) match?

    track_process.c ``check_params``, including its corner: ``initial``
    compares all but the last configured byte (that parameter's NUL), so the
    last configured parameter only has to start the process's one.
    """
    want = params_bytes(tp.params)
    if tp.param_match == "exact" and want is None and not params:
        return True
    wlen = len(want) if want is not None else 0
    if len(params) < wlen:
        return False
    if tp.param_match == "exact":
        return len(params) == wlen and (want is None or params == want)
    if want is None:
        return True
    if tp.param_match == "partial":
        return params[:wlen] == want
    return wlen == 1 or params[: wlen - 1] == want[: wlen - 1]


def matches(tp: VrrpTrackProcess, comm: str | None, cmdline: bytes | None) -> bool:
    """Is this process (its comm, its raw cmdline) one ``tp`` counts?

    A zombie has no cmdline and is never counted (the caller passes no
    comm for it, as read_procs skips state Z).
    """
    if not tp.full_command:
        # parameters always imply full_command (vrrp_parser.c), so comm alone decides
        return comm is not None and comm == tp.process
    if not cmdline:
        return False
    name, _nul, params = cmdline.partition(b"\0")
    if name != tp.process.encode():
        return False
    return tp.param_match == "none" or check_params(tp, params)


class Cause(Enum):
    """Why the count changed: decides which delay applies."""

    EXEC = "exec"
    FORK = "fork"
    EXIT = "exit"


@dataclass
class Quorum:
    """One tracked process's quorum, with keepalived's fork and terminate delays."""

    quorum: int
    quorum_max: int
    terminate_delay: float = 0.0
    fork_delay: float = 0.0
    up: bool = False
    count: int = 0
    deadline: float | None = None
    _pending: Cause | None = None

    @classmethod
    def for_process(cls, tp: VrrpTrackProcess, count: int) -> Quorum:
        """Up iff the first scan is within quorum (initialise_process_tracking_priorities)."""
        q = cls(tp.quorum, tp.quorum_max, tp.terminate_delay, tp.fork_delay)
        q.count = count
        q.up = q.in_range(count)
        return q

    def in_range(self, n: int) -> bool:
        return self.quorum <= n <= self.quorum_max

    def update(self, count: int, cause: Cause, now: float) -> bool | None:
        """A new count; the new up/down when it changes now, else None."""
        self.count = count
        target = self.in_range(count)
        if self._pending is not None:
            waiting_for_exit = self._pending is Cause.EXIT
            if waiting_for_exit == (cause is Cause.EXIT):
                return None  # the timer judges the count when it fires
            self._pending = self.deadline = None  # the other kind cancels it
            return self._set(target)
        if target == self.up:
            return None
        if cause is Cause.FORK and self.fork_delay:
            self._pending, self.deadline = cause, now + self.fork_delay
            return None
        if cause is Cause.EXIT and self.terminate_delay:
            self._pending, self.deadline = cause, now + self.terminate_delay
            return None
        return self._set(target)

    def fire(self, now: float) -> bool | None:
        """The delay is over: judge the count as it is now."""
        if self.deadline is None or now < self.deadline:
            return None
        self._pending = self.deadline = None
        return self._set(self.in_range(self.count))

    def _set(self, up: bool) -> bool | None:
        if up == self.up:
            return None
        self.up = up
        return up


def cause_of(gone: int, new_pids: set[int], parents: dict[int, int], before: set[int]) -> Cause:
    """Classify one scan's change: exits win; new processes whose parent was
    already counted are forks; any other new process is an exec."""
    if gone and not new_pids:
        return Cause.EXIT
    if new_pids and all(parents.get(p) in before for p in new_pids):
        return Cause.FORK
    if gone and len(new_pids) < gone:
        return Cause.EXIT
    return Cause.EXEC
