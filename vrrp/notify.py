"""Notify scripts and the notify FIFO, as keepalived calls them.

keepalived (keepalived/vrrp/vrrp_notify.c ``send_instance_notifies``,
``notify_fifo``) runs, on every state change of an instance or sync group:

- the state-specific script (``notify_master``/``_backup``/``_fault``/
  ``_stop``) with no extra arguments,
- then the generic ``notify`` script with ``INSTANCE|GROUP name state prio``,
- and writes ``INSTANCE "name" STATE prio`` (``GROUP "name" STATE``) plus a
  newline to ``notify_fifo`` / ``vrrp_notify_fifo``.

Scripts run in their own tasks: the event loop never waits for them, and a
hung one is killed after its timeout (pykeep.scripts kills the process group).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

import trio

from pykeep import scripts
from pykeep.config.model import Notify, Script

#: keepalived gives notify scripts no timeout of their own; we bound them so a
#: hung script cannot pile up processes forever.
NOTIFY_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    """Who notifies: an instance or a sync group, with its scripts."""

    kind: str  # "INSTANCE" or "GROUP"
    name: str
    notify: Notify
    fifo: Script | None = None


def fifo_line(kind: str, name: str, state: str, priority: int | None) -> str:
    if kind == "GROUP" or priority is None:
        return f'{kind} "{name}" {state}\n'
    return f'{kind} "{name}" {state} {priority}\n'


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

    def notify(self, target: NotifyTarget, state: str, priority: int | None) -> None:
        """Fire everything keepalived fires for ``state``; returns at once."""
        by_state = {
            "MASTER": target.notify.master,
            "BACKUP": target.notify.backup,
            "FAULT": target.notify.fault,
            "STOP": target.notify.stop,
            "DELETED": target.notify.deleted,
        }
        specific = by_state.get(state)
        generic = target.notify.generic
        line = fifo_line(target.kind, target.name, state, priority)
        for fifo in (target.fifo, self.global_fifo):
            if fifo is not None and fifo.argv:
                write_fifo(fifo.argv[0], line)
        chain: list[tuple[Script, tuple[str, ...]]] = []
        if specific is not None:
            chain.append((specific, ()))
        if generic is not None:
            args: tuple[str, ...] = (target.kind, target.name, state)
            if priority is not None:
                args += (str(priority),)
            chain.append((generic, args))
        if chain:
            self.active += 1
            self._idle = trio.Event()
            self.nursery.start_soon(self._run_chain, chain)

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
            verdict = scripts.check_script_secure(
                script,
                enforce=self.enforce,
                default_user=self.script_user,
                default_group=self.script_group,
            )
            if not verdict.runnable:
                self.log(f"Script {script.path} {verdict.reason} - not running")
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
