"""Running keepalived's external scripts: notify*, vrrp_script, MISC_CHECK, quorum_up/down.

keepalived runs every script the same way (core/notify.c, lib/scheduler.c), so
pykeep has one runner for all of them:

- :func:`check_script_secure` is keepalived's ``check_script_secure``: when a
  script would run with root privileges, every component of its path must be
  unwritable by anyone but root.  With ``enable_script_security`` such a script
  is refused (``SecurityVerdict.runnable`` False); without it keepalived only
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
import grp
import os
import pwd
import signal
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import trio

from pykeep.config.model import Script

#: How long a timed-out script gets between SIGTERM and SIGKILL.
KILL_GRACE = 2.0


@dataclass(frozen=True, slots=True)
class SecurityVerdict:
    """What keepalived's ``check_script_secure`` concluded about one script.

    ``reason`` names the first problem found ("" when none), in keepalived's
    words: "not found", "not executable", "unsafe permissions", "wrong file type".
    """

    runnable: bool
    insecure: bool = False
    reason: str = ""
    path: str = ""


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


@dataclass(frozen=True, slots=True)
class Identity:
    """A resolved run-as identity."""

    uid: int
    gid: int


def resolve_identity(
    user: str | None,
    group: str | None,
    *,
    default_user: str | None = None,
    default_group: str | None = None,
) -> Identity:
    """Resolve ``user``/``group`` (names or numbers) the way keepalived does.

    A user without a group runs with that user's primary group
    (keepalived core/global_parser.c ``set_script_uid_gid``); nothing given
    means our own identity.  Raises ValueError with a one-line reason for an
    unknown name.
    """
    user = user or default_user
    group = group or default_group
    uid, gid = os.geteuid(), os.getegid()
    if user:
        try:
            pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except (KeyError, OverflowError):
            raise ValueError(f"unknown script user {user!r}") from None
        uid, gid = pw.pw_uid, pw.pw_gid
    if group:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except (KeyError, OverflowError):
            raise ValueError(f"unknown script group {group!r}") from None
    return Identity(uid, gid)


def _which(name: str) -> str | None:
    for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _is_executable(st: os.stat_result, ident: Identity) -> bool:
    """keepalived core/notify.c ``is_executable``: the x bit for the class we fall in."""
    if ident.uid == 0:
        return bool(st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    if ident.uid == st.st_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if ident.gid == st.st_gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _path_weakness(path: str) -> str:
    """keepalived core/notify.c ``check_security``: walk ``/``, ``/a``, ``/a/b``…

    Every directory and the final file must be root-owned and not writable by
    a non-root group or by the world; a directory with the sticky bit (/tmp)
    may be world-writable.  Returns "" when safe, else the reason.
    """
    parts = [p for p in path.split("/") if p]
    prefixes = ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
    for i, prefix in enumerate(prefixes):
        last = i == len(prefixes) - 1
        try:
            st = os.lstat(prefix)
        except OSError:
            return "not found"
        if (not last and not stat.S_ISDIR(st.st_mode)) or (
            last and not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode))
        ):
            return "wrong file type"
        sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        writable_by_others = (st.st_gid != 0 and st.st_mode & stat.S_IWGRP) or (
            st.st_mode & stat.S_IWOTH
        )
        if st.st_uid != 0 or (not sticky_dir and writable_by_others):
            return f"unsafe permissions on {prefix}"
    return ""


def check_script_secure(
    script: Script,
    *,
    enforce: bool,
    default_user: str | None = None,
    default_group: str | None = None,
) -> SecurityVerdict:
    """keepalived's ``check_script_secure`` (core/notify.c) for one script.

    ``enforce`` is ``global_defs { enable_script_security }``.  Only a script
    that would run with root privileges (as uid 0 or gid 0, or set-uid/gid
    root) has its path checked, exactly as keepalived does.  A script whose
    first word starts with ``</`` only tests that a file opens: always runnable.
    """
    if not script.argv:
        return SecurityVerdict(False, reason="empty command")
    argv0 = script.argv[0]
    if argv0.startswith("<") and argv0[1:].lstrip(" \t").startswith("/"):
        return SecurityVerdict(True, path=argv0)
    try:
        ident = resolve_identity(
            script.user, script.group, default_user=default_user, default_group=default_group
        )
    except ValueError as e:
        return SecurityVerdict(False, reason=str(e), path=argv0)
    found = argv0 if "/" in argv0 else _which(argv0)
    if found is None:
        return SecurityVerdict(False, reason="not found", path=argv0)
    real = os.path.realpath(found)
    try:
        st = os.stat(real)
    except OSError:
        return SecurityVerdict(False, reason="not found", path=argv0)
    if not stat.S_ISREG(st.st_mode):
        return SecurityVerdict(False, reason="wrong file type", path=real)
    if not _is_executable(st, ident):
        return SecurityVerdict(False, reason="not executable", path=real)
    privileged = (
        ident.uid == 0
        or ident.gid == 0
        or (st.st_uid == 0 and st.st_mode & stat.S_IXUSR and st.st_mode & stat.S_ISUID)
        or (st.st_gid == 0 and st.st_mode & stat.S_IXGRP and st.st_mode & stat.S_ISGID)
    )
    if not privileged:
        return SecurityVerdict(True, path=real)
    for candidate in dict.fromkeys((os.path.abspath(found), real)):
        weakness = _path_weakness(candidate)
        if weakness == "not found" or weakness == "wrong file type":
            return SecurityVerdict(False, reason=weakness, path=candidate)
        if weakness:
            return SecurityVerdict(not enforce, insecure=True, reason=weakness, path=candidate)
    return SecurityVerdict(True, path=real)


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
) -> ScriptResult:
    """Run ``script.argv + args`` and wait for it, at most ``timeout`` seconds.

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
