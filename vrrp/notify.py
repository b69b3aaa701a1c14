"""Notify scripts and the notify FIFO, as keepalived calls them.

keepalived (keepalived/vrrp/vrrp_notify.c ``send_instance_notifies``,
``notify_fifo``) runs, on every state change of an instance or sync group:

- the state-specific script (``notify_master``/``_backup``/``_fault``/
  ``_stop``) with no extra arguments,
- then the generic ``notify`` script with ``INSTANCE|GROUP name state prio``
  (a group's priority is written as 0),
- writes ``INSTANCE "name" STATE prio`` (``GROUP "name" STATE 0``) plus a
  newline to both ``notify_fifo`` and ``vrrp_notify_fifo``,
- and sends an e-mail alert where ``smtp_alert`` asks for one, once per
  state (``vrrp_smtp_notifier``; :mod:`pykeep.smtp`).

The FIFOs are keepalived's (lib/notify.c ``fifo_open``/``fifo_close``): a
missing FIFO is created (mode 0644) and removed again at stop, an existing
one is left in place; its ``*_fifo_script`` is started with the FIFO's path
as last argument; the daemon keeps the FIFO open read-write, so a line is
never lost to a reader that is a moment late and a write never blocks.

Scripts run in their own tasks: the event loop never waits for them, and a
hung one is killed after its timeout (pykeep.scripts kills the process group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from pykeep import scripts
from pykeep.config.model import Config, GlobalDefs, Notify, Script, VrrpInstance

#: keepalived gives notify scripts no timeout of their own; we bound them so a
#: hung script cannot pile up processes forever.
NOTIFY_TIMEOUT = 30.0
#: how long a notify_fifo_script may take to exit after SIGTERM at stop
FIFO_SCRIPT_GRACE = 2.0
FIFO_MODE = 0o644 & ~0o177

if TYPE_CHECKING:
    from pykeep.smtp import Alert, Mailer


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    """Who notifies: an instance or a sync group, with its scripts."""

    kind: str  # "INSTANCE" or "GROUP"
    name: str
    notify: Notify
    smtp_alert: bool | None = None  # None: global smtp_alert_vrrp / smtp_alert


def priority_changes_wanted(inst: VrrpInstance, config: Config) -> bool:
    """vrrp.c ``vrrp_complete_instance``: the instance's ``notify_priority_changes``,
    else its sync group's, else global ``vrrp_notify_priority_changes``."""
    if inst.notify_priority_changes is not None:
        return inst.notify_priority_changes
    for group in config.vrrp_sync_groups:
        if inst.name in group.group and group.notify_priority_changes is not None:
            return group.notify_priority_changes
    return config.global_defs.vrrp_notify_priority_changes


def fifo_line(kind: str, name: str, state: str, priority: int | None) -> str:
    """vrrp_notify.c ``notify_fifo``: ``%s "%s" %s %d``; groups carry priority 0."""
    return f'{kind} "{name}" {state} {priority or 0}\n'


class NotifyFifo:
    """One notify FIFO held open for the daemon's life (lib/notify.c ``fifo_open``)."""

    def __init__(self, path: str, script: Script | None) -> None:
        self.path = path
        self.script = script
        self.fd = -1
        self.created = False

    def open(self, log: Callable[[str], None]) -> bool:
        """Create the FIFO if missing, then open it; False (logged) when unusable."""
        try:
            # S_IRUSR|S_IWUSR|S_IRGRP|S_IROTH under keepalived's default umask
            # 0177 (core/main.c umask(umask_val)): the FIFO ends up 0600
            os.mkfifo(self.path, FIFO_MODE)
            self.created = True
        except FileExistsError:
            pass
        except OSError as exc:
            log(f"Unable to create notify fifo {self.path}: {exc.strerror}")
            return False
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            log(f"Unable to open notify fifo {self.path} - errno {exc.errno}")
            self.close()
            return False
        return True

    def write(self, line: str) -> None:
        if self.fd != -1:
            with contextlib.suppress(OSError):  # a full pipe drops the line, as keepalived's
                os.write(self.fd, line.encode())

    def close(self) -> None:
        """Unlink first, so a script that reopens on EOF cannot find it (``fifo_close``)."""
        if self.created:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.created = False
        if self.fd != -1:
            os.close(self.fd)
            self.fd = -1


def write_fifo(path: str, line: str) -> bool:
    """Write one line to a FIFO without ever blocking (nobody reading: skip)."""
    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            with open(path, "a") as f:
                f.write(line)
            return True
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        os.write(fd, line.encode())
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class Notifier:
    """Launches notify scripts in a nursery it does not wait on."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        enforce_security: bool = False,
        script_user: str | None = None,
        script_group: str | None = None,
        global_fifo: Script | None = None,
        log: Callable[[str], None] = lambda _m: None,
        timeout: float = NOTIFY_TIMEOUT,
        global_defs: GlobalDefs | None = None,
    ) -> None:
        self.nursery = nursery
        self.enforce = enforce_security
        self.script_user = script_user
        self.script_group = script_group
        self.global_fifo = global_fifo
        self.log = log
        self.timeout = timeout
        self.launched = 0
        self.active = 0
        self._idle = trio.Event()
        self._idle.set()
        #: the open notify_fifo / vrrp_notify_fifo (global_defs given)
        self.fifos: list[NotifyFifo] = []
        self._script_scopes: list[trio.CancelScope] = []
        self._script_pids: list[int] = []
        self._held: list[tuple[NotifyTarget, str, int | None]] | None = None
        self.mailer: Mailer | None = None
        self._mail_defs: GlobalDefs | None = None
        self.smtp_default = False
        self.no_email_faults = False
        self.smtp_sent = 0
        self._last_email: dict[tuple[str, str], str] = {}
        if global_defs is not None:
            self.global_fifo = None
            self._setup(global_defs)

    def _setup(self, g: GlobalDefs) -> None:
        # Mail needs both; the mailer (and pykeep.smtp) loads with the first alert.
        self._mail_defs = g if g.notification_email and g.smtp_server else None
        # vrrp.c vrrp_complete_instance: smtp_alert_vrrp, else smtp_alert, else off
        default = g.smtp_alert_vrrp if g.smtp_alert_vrrp is not None else g.smtp_alert
        self.smtp_default = bool(default)
        self.no_email_faults = g.no_email_faults
        seen: set[str] = set()
        for fifo, script in (
            (g.notify_fifo, g.notify_fifo_script),
            (g.vrrp_notify_fifo, g.vrrp_notify_fifo_script),
        ):
            if fifo is None or not fifo.argv or fifo.argv[0] in seen:
                continue
            seen.add(fifo.argv[0])
            nf = NotifyFifo(fifo.argv[0], script)
            # the script starts before the daemon opens the FIFO (fifo_open)
            if nf.script is not None:
                scope = trio.CancelScope(shield=True)
                self._script_scopes.append(scope)
                self.nursery.start_soon(self._fifo_script, nf.script, nf.path, scope)
            if nf.open(self.log):
                self.fifos.append(nf)
        if self.fifos or self._script_scopes:
            self.nursery.start_soon(self._hold_fifos)

    def _secure(self, script: Script) -> bool:
        """check_script_secure with the daemon's defaults; an insecure script is logged, not run."""
        verdict = scripts.check_script_secure(
            script,
            enforce=self.enforce,
            default_user=self.script_user,
            default_group=self.script_group,
        )
        if not verdict.runnable:
            self.log(f"Script {script.path} {verdict.reason} - not running")
        return verdict.runnable

    async def _fifo_script(self, script: Script, path: str, scope: trio.CancelScope) -> None:
        """Runs for the daemon's life (keepalived: TIMER_NEVER).

        keepalived SIGTERMs every script it runs as the first step of its
        stop (vrrp_daemon.c ``vrrp_terminate_phase1``), before the instances
        write their STOP lines, so the FIFO script never reads those:
        :meth:`terminate_scripts` does the same.  The task is shielded so
        that the script gets that SIGTERM rather than an instant SIGKILL,
        and is killed if it still runs :data:`FIFO_SCRIPT_GRACE` later.
        """
        if not self._secure(script):
            return
        with scope:
            result = await scripts.run_script(
                script,
                (path,),
                default_user=self.script_user,
                default_group=self.script_group,
                on_spawn=self._script_pids.append,
            )
        if scope.cancelled_caught:
            return
        if result.reason:
            self.log(f"notify_fifo_script {script.path} exited: {result.reason}")

    async def _hold_fifos(self) -> None:
        try:
            await trio.sleep_forever()
        finally:
            self.close_fifos()
            for scope in self._script_scopes:
                scope.deadline = trio.current_time() + FIFO_SCRIPT_GRACE

    def terminate_scripts(self) -> None:
        """SIGTERM the FIFO scripts' process groups (``script_killall``), once."""
        for pid in self._script_pids:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGTERM)
        self._script_pids.clear()
        for scope in self._script_scopes:
            scope.deadline = min(scope.deadline, trio.current_time() + FIFO_SCRIPT_GRACE)

    def close_fifos(self) -> None:
        for nf in self.fifos:
            nf.close()
        self.fifos.clear()

    def hold(self) -> None:
        """Collect notifies instead of firing them, until :meth:`release`.

        keepalived fires the notifies of its start-up and stop in passes over
        its lists (vrrp.c ``vrrp_complete_init``, vrrp_scheduler.c
        ``vrrp_init_state``, vrrp_notify.c ``notify_shutdown``); pykeep's
        instances start and stop as separate tasks, so the service collects
        their notifies and fires them in keepalived's order.
        """
        self._held = []

    def release(self, order: Callable[[NotifyTarget, str], tuple[int, int]]) -> None:
        """Fire the collected notifies sorted by ``order``, ties in the order they came.

        Only each target's first notify is placed by ``order``; any later one
        (a change during the pass) keeps its place after everything else.
        """
        held, self._held = self._held or [], None
        seen: set[tuple[str, str]] = set()
        ranked: list[tuple[tuple[int, int], int, NotifyTarget, str, int | None]] = []
        for n, (target, state, priority) in enumerate(held):
            first = (target.kind, target.name) not in seen
            seen.add((target.kind, target.name))
            rank = order(target, state) if first else (sys.maxsize, 0)
            ranked.append((rank, n, target, state, priority))
        for _, _, target, state, priority in sorted(ranked, key=lambda r: (r[0], r[1])):
            self.notify(target, state, priority)

    def notify(self, target: NotifyTarget, state: str, priority: int | None) -> None:
        """Fire everything keepalived fires for ``state``; returns at once."""
        if self._held is not None:
            self._held.append((target, state, priority))
            return
        by_state = {
            "MASTER": target.notify.master,
            "BACKUP": target.notify.backup,
            "FAULT": target.notify.fault,
            "STOP": target.notify.stop,
            "DELETED": target.notify.deleted,
        }
        specific = by_state.get(state)
        generic = target.notify.generic
        if state == "STOP":
            self.terminate_scripts()  # the daemon is stopping: scripts go first
        line = fifo_line(target.kind, target.name, state, priority)
        self._write_fifos(line)
        chain: list[tuple[Script, tuple[str, ...]]] = []
        if specific is not None:
            chain.append((specific, ()))
        if generic is not None:
            args: tuple[str, ...] = (target.kind, target.name, state, str(priority or 0))
            chain.append((generic, args))
        self._email(target, state)
        if chain:
            self.active += 1
            self._idle = trio.Event()
            self.nursery.start_soon(self._run_chain, chain)

    def states_on_reload(
        self, groups: list[tuple[str, str]], instances: list[tuple[str, str, int]]
    ) -> None:
        """``fifo_write_vrrp_states_on_reload``: the FIFO lines a reload writes again.

        vrrp_scheduler.c ``vrrp_init_state`` on reload: every sync group's
        line (``notify_group_fifo``), then, in config order, each kept
        instance that is not master (``notify_instance_fifo``; a master
        carried over takes the path that writes nothing).  No script runs.
        """
        lines = [fifo_line("GROUP", name, state, None) for name, state in groups]
        lines += [
            fifo_line("INSTANCE", name, state, prio)
            for name, state, prio in instances
            if state != "MASTER"
        ]
        for line in lines:
            self._write_fifos(line)

    def _write_fifos(self, line: str) -> None:
        """One line to every notify FIFO: the global_defs ones and the legacy global one."""
        if self.global_fifo is not None and self.global_fifo.argv:
            write_fifo(self.global_fifo.argv[0], line)
        for nf in self.fifos:
            nf.write(line)

    def priority_changed(self, target: NotifyTarget, master: bool, priority: int) -> None:
        """vrrp_notify.c ``send_instance_priority_notifies``: a FIFO line only,
        ``MASTER_PRIORITY`` for a master, ``BACKUP_PRIORITY`` in any other state."""
        state = "MASTER_PRIORITY" if master else "BACKUP_PRIORITY"
        line = fifo_line(target.kind, target.name, state, priority)
        self._write_fifos(line)

    def _email(self, target: NotifyTarget, state: str) -> None:
        """vrrp_notify.c ``vrrp_smtp_notifier``: one alert per state entered."""
        if self._mail_defs is None or state == "STOP":
            # keepalived formats a "Stopping" alert, but its stopping process
            # exits before the SMTP exchange runs: none is ever delivered.
            return
        wanted = target.smtp_alert if target.smtp_alert is not None else self.smtp_default
        key = (target.kind, target.name)
        if not wanted or self._last_email.get(key) == state:
            return
        if state == "FAULT" and self.no_email_faults:
            # vrrp_notify.c send_instance_notifies / send_group_notifies: no
            # alert, and the last state e-mailed stays the one before, so a
            # return to it from FAULT is not e-mailed either.
            return
        if self.mailer is None:
            from pykeep.smtp import Mailer

            self.mailer = Mailer.from_config(self._mail_defs)
            assert self.mailer is not None
        alert = self.mailer.vrrp_alert(target.kind, target.name, state)
        if alert is None:
            return
        self._last_email[key] = state
        self.active += 1
        self._idle = trio.Event()
        self.nursery.start_soon(self._send_email, alert)

    async def _send_email(self, alert: Alert) -> None:
        from pykeep import smtp

        try:
            assert self.mailer is not None
            reason = await smtp.send(self.mailer, alert)
            if reason:
                self.log(reason)
            else:
                self.smtp_sent += 1
        finally:
            self.active -= 1
            if self.active == 0:
                self._idle.set()

    async def drain(self, timeout: float) -> None:
        """Give running notify scripts (notify_stop at shutdown) ``timeout`` to finish."""
        with trio.move_on_after(timeout):
            await self._idle.wait()

    async def _run_chain(self, chain: list[tuple[Script, tuple[str, ...]]]) -> None:
        try:
            await self._run_scripts(chain)
        finally:
            self.active -= 1
            if self.active == 0:
                self._idle.set()

    async def _run_scripts(self, chain: list[tuple[Script, tuple[str, ...]]]) -> None:
        for script, args in chain:
            if not self._secure(script):
                continue
            self.launched += 1
            with contextlib.suppress(OSError):
                result = await scripts.run_script(
                    script,
                    args,
                    timeout=self.timeout,
                    default_user=self.script_user,
                    default_group=self.script_group,
                )
                if result.timed_out:
                    self.log(f"Script {script.path} timed out - killed")
