"""Where the pid files go: ``net_namespace``, ``instance`` and ``use_pid_dir``.

keepalived 2.2.7 (core/main.c ``keepalived_main``, namespaces.c
``set_run_mount``) names its pid files so that several daemons can run on
one host:

- by default they are /run/keepalived.pid, /run/vrrp.pid, /run/checkers.pid;
- ``use_pid_dir``, ``net_namespace`` or ``instance`` move them into
  /run/keepalived/;
- ``instance NAME`` adds ``_NAME``: /run/keepalived/keepalived_NAME.pid …;
- ``net_namespace NS`` makes keepalived bind-mount /run/keepalived/NS on
  /run/keepalived in a private mount namespace, so the files are seen from
  outside (by init scripts, by a second keepalived) as
  /run/keepalived/NS/keepalived.pid.  pykeep writes them straight there: the
  outside view is the same, without a mount namespace of its own;
- ``-p``/``-r``/``-c`` override each name;
- at stop keepalived removes the directories it made, when empty.

Pure: paths in, paths out; the daemon creates and removes them.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pykeep.config.model import GlobalDefs

RUN = "/run"
PID_DIR = "/run/keepalived"


@dataclass(frozen=True, slots=True)
class PidFiles:
    main: str
    vrrp: str
    checkers: str
    #: directories to create before writing, and to remove (when empty) at stop
    dirs: tuple[str, ...] = ()


def pid_files(
    *,
    net_namespace: str | None,
    instance: str | None,
    use_pid_dir: bool,
    main: str | None = None,
    vrrp: str | None = None,
    checkers: str | None = None,
) -> PidFiles:
    """keepalived's names for the three pid files; explicit paths win."""
    suffix = f"_{instance}" if instance else ""
    if net_namespace or instance or use_pid_dir:
        base = PID_DIR
        dirs: tuple[str, ...] = (PID_DIR,)
        if net_namespace:
            base = f"{PID_DIR}/{net_namespace}"
            dirs = (PID_DIR, base)
    else:
        base, dirs = RUN, ()
    return PidFiles(
        main=main or f"{base}/keepalived{suffix}.pid",
        vrrp=vrrp or f"{base}/vrrp{suffix}.pid",
        checkers=checkers or f"{base}/checkers{suffix}.pid",
        dirs=dirs,
    )


def make_dirs(files: PidFiles) -> tuple[str, ...]:
    """Create the directories, rwxr-xr-x; those to remove at stop.

    keepalived removes /run/keepalived only when it created it (pidfile.c
    ``create_pid_dir`` / ``remove_pid_dir``) and always tries the namespace's
    own directory (namespaces.c ``unmount_run``).
    """
    remove: list[str] = []
    for d in files.dirs:
        try:
            os.mkdir(d, 0o755)
            remove.append(d)
        except FileExistsError:
            if d != PID_DIR:
                remove.append(d)
    return tuple(remove)


def remove_dirs(dirs: tuple[str, ...]) -> None:
    """Innermost first; a directory that is not empty stays."""
    for d in reversed(dirs):
        with contextlib.suppress(OSError):
            os.rmdir(d)


#: ``-s/--namespace`` given on the command line: it replaces the file's
#: ``net_namespace`` at start and at every reload (main.c ``override_namespace``).
namespace_override: str | None = None


def unsupported_change(old: GlobalDefs, new: GlobalDefs) -> list[str]:
    """What a reload may not change (main.c ``reload_config``): the reload is refused.

    A changed ``instance`` is not among them: keepalived reads that keyword
    only at start (global_parser.c ``instance_handler``) and keeps the name.
    """
    if namespace_override is None and old.net_namespace != new.net_namespace:
        return ["Cannot change network namespace at a reload - please restart pykeep"]
    return []


def syslog_ident(name: str, net_namespace: str | None, instance: str | None) -> str:
    """``NAME[_NS][_INSTANCE]``, as main.c ``make_syslog_ident`` names the syslog lines."""
    return "_".join(part for part in (name, net_namespace, instance) if part)
