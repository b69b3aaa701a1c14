"""Whether a configured script has someone to run as, judged while parsing, as keepalived does.

keepalived resolves a script's user when it reads the keyword (lib/notify.c
``notify_script_init``, vrrp_parser.c ``vrrp_vscript_end_handler``,
check_misc.c ``misc_end_handler``), not when it runs it:

- ``notify_master "/x.sh" USER [GROUP]``: the words after the script are its
  user and group; an unknown one drops the script with a log line only.
- no user of its own: ``script_user``, else ``keepalived_script``; under
  ``enable_script_security`` with neither, keepalived reports once "Unable to
  set default user keepalived_script for script" (a config error) and drops
  every script that needed the default.

A dropped script is gone from the model: it never runs and it does not count
towards "SECURITY VIOLATION - scripts are being executed".
"""

from __future__ import annotations

from pykeep.config.diagnostics import Severity
from pykeep.config.model import Loc, Script
from pykeep.script_security import DEFAULT_SCRIPT_USER, default_user_missing

TYPE_CHECKING = False  # typing stays unimported at run time: start-up counts (pykeep -t)
if TYPE_CHECKING:
    from pykeep.config.parser import Parser

#: Keywords whose scripts keepalived reads with ``notify_script_init`` (user and
#: group follow the command).  vrrp_script and MISC_CHECK take a ``user``
#: keyword instead; the notify FIFOs name a file (global_parser.c notify_fifo
#: judges its user the same way: ``fifo_kept``).
NOTIFY_INIT_KINDS = frozenset(
    {
        "notify_master",
        "notify_backup",
        "notify_fault",
        "notify_stop",
        "notify",
        "notify_deleted",
        "notify_master_rx_lower_pri",
        "notify_up",
        "notify_down",
        "quorum_up",
        "quorum_down",
        "startup_script",
        "shutdown_script",
        # global_parser.c notify_fifo_script: notify_script_init(1, …)
        "notify_fifo_script",
        "vrrp_notify_fifo_script",
        "lvs_notify_fifo_script",
    }
)

_REPORTED = "_default_script_user_reported"
#: global_defs' mark that a ``script_user`` line named no such user.
FAILED_SCRIPT_USER = "_script_user_failed"


def user_known(user: str, group: str | None) -> bool:
    """Whether keepalived's set_uid_gid finds the user (and group).

    keepalived looks both up by name only (getpwnam_r, getgrnam_r): a number
    is a name no account has, so ``user 1`` is refused even where uid 1 exists.
    """
    import grp
    import pwd

    try:
        pwd.getpwnam(user)
        if group is not None:
            grp.getgrnam(group)
    except (KeyError, ValueError):
        return False
    return True


def default_missing(p: Parser, loc: Loc | None = None) -> bool:
    """True when no default user exists; reports keepalived's error the first time."""
    g = p.state.global_defs
    if g.get(FAILED_SCRIPT_USER):
        return True  # notify.c get_default_script_user: default_user_fail, said already
    if not default_user_missing(g.get("script_user"), bool(g.get("enable_script_security"))):
        return False
    if not g.get(_REPORTED):
        g[_REPORTED] = True
        p.report(
            loc or (p.line.loc if p.line is not None else None),
            Severity.GENERAL_ERROR,
            f"Unable to set default user {DEFAULT_SCRIPT_USER} for script",
            f"add 'script_user USER' to global_defs, or create the user {DEFAULT_SCRIPT_USER}",
        )
    return True


def notify_script_kept(p: Parser, sc: Script, kind: str) -> bool:
    """notify.c ``notify_script_init``: False when the script must be dropped."""
    if kind not in NOTIFY_INIT_KINDS:
        return True
    if sc.user:
        if user_known(sc.user, sc.group):
            return True
        # keepalived only logs this: the verdict does not change.
        p.report(
            sc.loc,
            Severity.INFO,
            f"Invalid user/group for {kind} script {sc.path} - ignoring",
            "the words after the script are USER [GROUP]; quote the whole command",
        )
        return False
    if default_missing(p):
        p.report(
            sc.loc,
            Severity.INFO,
            f"Failed to set default user for {kind} script {sc.path} - ignoring",
            None,
        )
        return False
    return True


def _user_kept(
    p: Parser,
    sc: Script,
    own_user: bool,
    unknown: str,
    no_default: str,
    where: str,
    user_loc: Loc | None = None,
) -> bool:
    """The user check: the script's own user, else the default one.

    An unknown user of its own is reported at its ``user`` line, where
    keepalived's user handler runs; a missing default at the block's '}',
    where its end handler runs.
    """
    if own_user:
        if sc.user and user_known(sc.user, sc.group):
            return True
        p.report(
            user_loc or p.close_loc() or sc.loc,
            Severity.GENERAL_ERROR,
            unknown,
            "name an existing user (and group) after 'user'",
        )
        return False
    if default_missing(p, p.close_loc()):
        p.report(
            p.close_loc() or sc.loc,
            Severity.GENERAL_ERROR,
            no_default,
            f"add 'script_user USER' to global_defs, or 'user USER' to {where}",
        )
        return False
    return True


def vscript_user_kept(
    p: Parser, sc: Script, name: str, own_user: bool, user_loc: Loc | None = None
) -> bool:
    """vrrp_parser.c ``vrrp_vscript_user_handler`` / ``vrrp_vscript_end_handler``."""
    return _user_kept(
        p,
        sc,
        own_user,
        f"Unable to set uid/gid for script '{sc.path}'",
        f"Unable to set default user for vrrp script {name} - removing",
        f"vrrp_script {name}",
        user_loc,
    )


def misc_user_kept(p: Parser, sc: Script, own_user: bool, user_loc: Loc | None = None) -> bool:
    """check_misc.c ``misc_user_handler`` / ``misc_end_handler``."""
    return _user_kept(
        p,
        sc,
        own_user,
        f"Failed to set uid/gid for misc checker script '{sc.path}' - removing",
        f"Unable to set default user for misc script {sc.path} - removing",
        "MISC_CHECK",
        user_loc,
    )


def fifo_kept(p: Parser, user: str | None, group: str | None) -> bool:
    """global_parser.c ``notify_fifo``: a FIFO whose user is unknown is dropped (a log line)."""
    if user is not None:
        return user_known(user, group)
    return not default_missing(p)
