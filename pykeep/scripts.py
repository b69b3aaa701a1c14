"""Running keepalived's external scripts: notify*, vrrp_script, MISC_CHECK, quorum_up/down.

keepalived runs every script the same way (core/notify.c, lib/scheduler.c), so
pykeep has one runner for all of them:

- :func:`check_script_secure` is keepalived's ``check_script_secure``
  (lib/notify.c), kept in :mod:`pykeep.script_security` so the config test
  can use it without the event loop: the path is resolved first, then every
  component must be unwritable by anyone but root when the script would run
  with root privileges.  With ``enable_script_security`` such a script is
  refused (``SecurityVerdict.runnable`` False); without it keepalived only
  logs the weakness, and so do we (``insecure`` True, still runnable).
- :func:`run_script` runs a :class:`~pykeep.config.model.Script` with extra
  arguments, as ``user``/``group``, in its own process group, and kills the
  whole group when it outlives ``timeout`` (SIGTERM, then SIGKILL after a
  grace period, as keepalived's child timeout does).  A script that is not
  directly executable (no ``#!``) is run by ``/bin/sh``, as keepalived does.

Callers: ``vrrp`` (notify scripts, vrrp_script), ``healthcheck.misc``
(MISC_CHECK) and ``ipvs`` (quorum_up/down, notify_up/down).  Nothing here
raises for a bad script: the outcome is a value with a reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import trio

from pykeep.config.model import Script
from pykeep.script_security import (
    Identity,
    SecurityVerdict,
    check_script_secure,
    default_user_missing,
    resolve_identity,
)

__all__ = [
    "Identity",
    "ScriptResult",
    "SecurityVerdict",
    "check_script_secure",
    "default_user_missing",
    "resolve_identity",
    "run_script",
]

#: How long a timed-out script gets between SIGTERM and SIGKILL.
KILL_GRACE = 2.0


@dataclass(frozen=True, slots=True)
class ScriptResult:
    """How one run ended.

    ``exit_code`` is the process's exit status, or None when it was killed by
    a signal (``signal``) or never started (``reason`` says why).
    """

    exit_code: int | None
    timed_out: bool = False
    signal: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def run_script(
    script: Script,
    args: Sequence[str] = (),
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    default_user: str | None = None,
    default_group: str | None = None,
    kill_grace: float = KILL_GRACE,
    on_spawn: Callable[[int], None] | None = None,
) -> ScriptResult:
    """Run ``script.argv + args`` and wait for it, at most ``timeout`` seconds.

    ``on_spawn`` receives the child's pid (its process group) once it runs,
    for callers that must signal a long-lived script themselves.

    The child gets its own process group so that a hung script and everything
    it spawned are killed together.  Output goes to /dev/null, as keepalived
    sends it.  Cancelling the caller kills the group too (cleanup in
    ``finally``), so no script outlives the task that ran it.
    """
    if not script.argv:
        return ScriptResult(None, reason="empty command")
    try:
        ident = resolve_identity(
            script.user, script.group, default_user=default_user, default_group=default_group
        )
    except ValueError as e:
        return ScriptResult(None, reason=str(e))
    argv = [*script.argv, *args]
    same = ident.uid == os.geteuid() and ident.gid == os.getegid()
    as_ident = None if same else ident
    try:
        proc = await _spawn(argv, env, as_ident)
    except OSError as e:
        if e.errno != errno.ENOEXEC:
            return ScriptResult(None, reason=f"cannot run {argv[0]}: {e.strerror}")
        # keepalived runs a script without #! through the shell (notify.c system_call)
        try:
            proc = await _spawn(["/bin/sh", *argv], env, as_ident)
        except OSError as e2:
            return ScriptResult(None, reason=f"cannot run {argv[0]}: {e2.strerror}")
    if on_spawn is not None:
        on_spawn(proc.pid)
    timed_out = False
    try:
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            await proc.wait()
        if proc.returncode is None:
            timed_out = True
            _kill_group(proc.pid, signal.SIGTERM)
            with trio.move_on_after(kill_grace):
                await proc.wait()
            if proc.returncode is None:
                _kill_group(proc.pid, signal.SIGKILL)
                await proc.wait()
    finally:
        if proc.returncode is None:
            _kill_group(proc.pid, signal.SIGKILL)
            with trio.CancelScope(shield=True):
                await proc.wait()
    rc = proc.returncode
    assert rc is not None
    if rc < 0:
        return ScriptResult(
            None, timed_out, signal=-rc, reason="timeout" if timed_out else "signal"
        )
    return ScriptResult(rc, timed_out, reason="timeout" if timed_out else "")


async def _spawn(
    argv: list[str], env: Mapping[str, str] | None, ident: Identity | None
) -> trio.Process:
    env_ = dict(env) if env is not None else None
    if ident is None:
        return await trio.lowlevel.open_process(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env_,
            process_group=0,
        )
    return await trio.lowlevel.open_process(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env_,
        process_group=0,
        user=ident.uid,
        group=ident.gid,
        extra_groups=[],
    )
