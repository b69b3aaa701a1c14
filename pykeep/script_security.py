"""Who a script runs as, and whether keepalived would let it run (lib/notify.c).

This is the pure half of :mod:`pykeep.scripts`: only ``os``, ``stat``,
``pwd`` and ``grp``, so that the config test can judge scripts as keepalived
does without importing the runner's event loop.

- :func:`resolve_identity` and :func:`default_user_missing` mirror
  ``set_uid_gid`` / ``get_default_script_user``: a script without its own user
  runs as ``script_user``, else as ``keepalived_script`` when that user
  exists, else as ourselves; with ``enable_script_security`` and neither,
  keepalived refuses the script.
- :func:`check_script_secure` mirrors ``check_script_secure``: the path is
  resolved first (``realpath``), keeping the file name as written when it
  names the same file, and only then is every component judged, on the
  resolved path and on the real file.  So ``/bin/true`` on a merged-/usr
  system is judged as ``/usr/bin/true``, never refused for ``/bin`` being a
  symbolic link.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass

from pykeep.config.model import Script

#: keepalived's fallback run-as user (lib/notify.c get_default_script_user).
DEFAULT_SCRIPT_USER = "keepalived_script"


@dataclass(frozen=True, slots=True)
class SecurityVerdict:
    """What keepalived's ``check_script_secure`` concluded about one script.

    ``runnable`` False means keepalived disables the script (SC_INHIBIT,
    SC_NOTFOUND, or not executable).  ``insecure`` is SC_INSECURE: some path
    component is writable by a non-root user.  ``is_script`` is SC_ISSCRIPT
    (the file was found), which is what makes keepalived insist on
    ``enable_script_security``.  ``reason`` names the first problem ("" when
    none): "not found", "not executable", "unsafe permissions on …",
    "wrong file type", or an unknown user.  ``path`` is the resolved path
    keepalived would run (``/usr/bin/true`` for ``/bin/true``).
    """

    runnable: bool
    insecure: bool = False
    reason: str = ""
    path: str = ""
    is_script: bool = False

    @property
    def inhibited(self) -> bool:
        """keepalived's SC_INHIBIT: refused for its permissions or file type, not for absence."""
        return not self.runnable and (
            self.insecure or self.reason == "wrong file type" or self.reason.startswith("unknown")
        )


@dataclass(frozen=True, slots=True)
class Identity:
    """A resolved run-as identity."""

    uid: int
    gid: int


def _lookup_user(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, OverflowError):
        raise ValueError(f"unknown script user {user!r}") from None


def default_user_missing(script_user: str | None, enforce: bool) -> bool:
    """True when keepalived cannot pick a default user (notify.c get_default_script_user).

    Without ``script_user`` keepalived falls back to ``keepalived_script``;
    only under ``enable_script_security`` is that user's absence an error
    ("Unable to set default user keepalived_script for script").
    """
    if script_user or not enforce:
        return False
    try:
        pwd.getpwnam(DEFAULT_SCRIPT_USER)
    except KeyError:
        return True
    return False


def resolve_identity(
    user: str | None,
    group: str | None,
    *,
    default_user: str | None = None,
    default_group: str | None = None,
) -> Identity:
    """Resolve ``user``/``group`` (names or numbers) the way keepalived does.

    A user without a group runs with that user's primary group
    (keepalived lib/notify.c ``set_uid_gid``).  With no user of its own and no
    ``script_user``, the script runs as ``keepalived_script`` when that user
    exists, else as ourselves (``get_default_script_user``).  Raises
    ValueError with a one-line reason for an unknown name.
    """
    if not user:
        user, group = default_user, group or default_group
        if not user:
            try:
                pw = pwd.getpwnam(DEFAULT_SCRIPT_USER)
            except KeyError:
                pw = None
            if pw is not None:
                user = DEFAULT_SCRIPT_USER
    uid, gid = os.geteuid(), os.getegid()
    if user:
        pw = _lookup_user(user)
        uid, gid = pw.pw_uid, pw.pw_gid
    if group:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except (KeyError, OverflowError):
            raise ValueError(f"unknown script group {group!r}") from None
    return Identity(uid, gid)


def _is_executable(st: os.stat_result, ident: Identity) -> bool:
    """keepalived lib/notify.c ``is_executable``: the x bit for the class we fall in."""
    if ident.uid == 0:
        return bool(st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    if ident.uid == st.st_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if ident.gid == st.st_gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _find_in_path(name: str, ident: Identity) -> str | None:
    """keepalived lib/notify.c ``find_path``: the first regular, executable match in PATH."""
    for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        candidate = os.path.join(d or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and _is_executable(st, ident):
            return candidate
    return None


def _path_weakness(path: str) -> str:
    """keepalived lib/notify.c ``check_security``: walk ``/``, ``/a``, ``/a/b``… without
    following links.

    Every directory must be a directory and the last part a file or a link.
    Each part must be owned by root; a directory without the sticky bit and a
    regular file must also not be writable by a non-root group or the world
    (a link's own mode bits mean nothing, so only its owner counts).  Returns
    "" when safe, else the reason.
    """
    parts = [p for p in path.split("/") if p]
    prefixes = ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
    for i, prefix in enumerate(prefixes):
        last = i == len(prefixes) - 1
        try:
            st = os.lstat(prefix)
        except OSError:
            return "not found"
        mode = st.st_mode
        if (not last and not stat.S_ISDIR(mode)) or (
            last and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode))
        ):
            return "wrong file type"
        judged = (stat.S_ISDIR(mode) and not mode & stat.S_ISVTX) or stat.S_ISREG(mode)
        writable = (st.st_gid != 0 and mode & stat.S_IWGRP) or mode & stat.S_IWOTH
        if st.st_uid != 0 or (judged and writable):
            return f"unsafe permissions on {prefix}"
    return ""


def _resolved(written: str) -> tuple[str, str | None]:
    """keepalived's rewrite of a script's path (notify.c check_script_secure).

    Returns (path to run, real file or None).  The path is ``realpath``; when
    the real file's name differs from the name written (``/bin/sh`` →
    ``/usr/bin/dash``), keepalived keeps the written name in the resolved
    directory (``/usr/bin/sh``) if that is the same file, since programs can
    behave by the name they are called, and judges the real file as well.
    """
    real = os.path.realpath(written, strict=True)
    name, real_name = os.path.basename(written), os.path.basename(real)
    if written == real or name == real_name:
        return real, None
    renamed = os.path.join(os.path.dirname(real), name)
    try:
        a, b = os.stat(real), os.stat(renamed)
    except OSError:
        return real, None
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
        return real, None
    return renamed, real


def check_script_secure(
    script: Script,
    *,
    enforce: bool,
    default_user: str | None = None,
    default_group: str | None = None,
) -> SecurityVerdict:
    """keepalived's ``check_script_secure`` (lib/notify.c) for one script.

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
    if not script.user and default_user_missing(default_user, enforce):
        return SecurityVerdict(
            False, reason=f"unknown script user {DEFAULT_SCRIPT_USER!r}", path=argv0
        )
    try:
        ident = resolve_identity(
            script.user, script.group, default_user=default_user, default_group=default_group
        )
    except ValueError as e:
        return SecurityVerdict(False, reason=str(e), path=argv0)
    found = argv0 if "/" in argv0 else _find_in_path(argv0, ident)
    if found is None:
        return SecurityVerdict(False, reason="not found", path=argv0)
    try:
        path, real = _resolved(found)
        st = os.stat(real or path)
    except (OSError, ValueError):
        return SecurityVerdict(False, reason="not found", path=argv0)
    if not _is_executable(st, ident):
        return SecurityVerdict(False, reason="not executable", path=path, is_script=True)
    privileged = (
        ident.uid == 0
        or ident.gid == 0
        or (st.st_uid == 0 and st.st_mode & stat.S_IXUSR and st.st_mode & stat.S_ISUID)
        or (st.st_gid == 0 and st.st_mode & stat.S_IXGRP and st.st_mode & stat.S_ISGID)
    )
    if not privileged:
        return SecurityVerdict(True, path=path, is_script=True)
    for candidate in (path, real) if real else (path,):
        weakness = _path_weakness(candidate)
        if weakness == "not found" or weakness == "wrong file type":
            return SecurityVerdict(False, reason=weakness, path=candidate, is_script=True)
        if weakness:
            return SecurityVerdict(
                not enforce, insecure=True, reason=weakness, path=candidate, is_script=True
            )
    return SecurityVerdict(True, path=path, is_script=True)
