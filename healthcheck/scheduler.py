"""The trio shell that runs checkers on keepalived's schedule and reports transitions.

It owns tasks and time, nothing else: each checker is one task in the
scheduler's nursery that sleeps until :mod:`healthcheck.policy` says to run,
runs one attempt (each I/O step bounded by its timeout, the attempt by a
guard), and feeds the result back.  Any
exception a checker raises becomes a failed result (``crash: …``), so no
peer and no plugin can crash the scheduler.  Real-server transitions are
batched (``batch_window``) before they reach the consumer, the way seesaw
batches notifications before they reach its engine.

The consumer (issue "ipvs") chooses an opaque, hashable ``key`` per real
server, calls :meth:`Scheduler.add` with the RealServer and its
VirtualServer (for inheritance), and receives lists of
:class:`~healthcheck.policy.Transition`, through a callback or a trio
memory channel.  Each server's initial state is delivered first
(reason ``"initial"``; down with ``alpha``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import cast

import trio

from healthcheck.api import Checker, MultiStepChecker, Result, Target
from healthcheck.dns import DnsChecker
from healthcheck.file import FileChecker
from healthcheck.http import ClientTls, HttpChecker
from healthcheck.misc import MiscChecker
from healthcheck.ping import PingChecker
from healthcheck.plugin import registered_checkers
from healthcheck.policy import CheckerPolicy, ServerPolicy, Timing, Transition, resolve_timing
from healthcheck.smtp import SmtpChecker
from healthcheck.tcp import TcpChecker
from healthcheck.udp import UdpChecker
from pykeep.config.model import Checker as CheckerModel
from pykeep.config.model import (
    Config,
    DnsCheck,
    FileCheck,
    HttpCheck,
    MiscCheck,
    PingCheck,
    PluginCheck,
    RealServer,
    SmtpCheck,
    TcpCheck,
    UdpCheck,
    VirtualServer,
)
from pykeep.script_security import check_script_secure

#: Extra time the scheduler allows past a checker's own timeouts before it cancels it.
GUARD = 1.0
#: How many ``timeout``-bounded steps the guard allows one attempt.  keepalived
#: re-arms ``connect_timeout`` for every I/O step of a check (connect, TLS,
#: send, each read: check_http.c ``http_connect_thread``/``http_request_thread``
#: /``http_read_thread``, check_tcp.c, check_smtp.c), so a check may take several
#: timeouts and pass; the checkers bound each step themselves.  This guard only
#: stops a checker that ignores its timeout (a plugin) and a peer that trickles
#: bytes one read at a time, which keepalived would wait on for ever.
GUARD_STEPS = 4


def build_checker(
    model: CheckerModel, rs: RealServer, vs: VirtualServer, config: Config | None = None
) -> tuple[Checker, Target, Timing]:
    """Turn one configured checker into (checker, target, resolved timing).

    ``config`` supplies what a checker needs from outside its virtual server:
    the ``track_file`` a FILE_CHECK names, and script security for MISC_CHECK.
    Raises ValueError for a plugin keyword no installed plugin serves, a
    FILE_CHECK naming no track_file, and a MISC_CHECK script that keepalived
    would disable (check_misc.c ``check_misc_script_security`` removes the
    checker: it neither runs nor counts).
    """
    g = config.global_defs if config is not None else None
    timing = resolve_timing(vs, rs, model)
    c = model.common
    target = Target(
        address=str(c.connect_ip or rs.address),
        port=c.connect_port if c.connect_port is not None else rs.port,
        bindto=str(c.bindto) if c.bindto is not None else None,
        bind_port=c.bind_port,
        bind_if=c.bind_if,
        fwmark=c.fwmark,
    )
    checker: Checker
    if isinstance(model, TcpCheck):
        checker = TcpChecker()
    elif isinstance(model, HttpCheck):
        tls = None
        if g is not None and (g.ssl_certificate or g.ssl_key or g.ssl_ca):
            tls = ClientTls(g.ssl_certificate, g.ssl_key, g.ssl_password, g.ssl_ca)
        checker = HttpChecker.from_model(model, rs.virtualhost, vs.virtualhost, tls)
    elif isinstance(model, MiscCheck):
        if model.misc_path is None:
            raise ValueError(f"{model.common.loc}: MISC_CHECK without misc_path")
        script = model.misc_path
        if model.user and not script.user:
            script = dataclasses.replace(script, user=model.user, group=model.group)
        user = g.script_user if g is not None else None
        group = g.script_group if g is not None else None
        verdict = check_script_secure(
            script,
            enforce=g is not None and g.enable_script_security,
            default_user=user,
            default_group=group,
        )
        if not verdict.runnable:
            what = "due to insecure" if verdict.inhibited else "since not found/accessible"
            if verdict.reason == "not executable":
                what = "since not executable"
            raise ValueError(f"Disabling misc script {script.path} {what} ({verdict.reason})")
        # check_misc.c: misc_timeout defaults to delay_loop
        timeout = model.misc_timeout or timing.delay_loop
        timing = dataclasses.replace(timing, connect_timeout=timeout)
        checker = MiscChecker(script, model.misc_dynamic, timeout, user, group)
    elif isinstance(model, UdpCheck):
        checker = UdpChecker(
            model.payload,
            model.require_reply,
            model.reply_min_length,
            model.reply_max_length,
            model.reply_data,
        )
    elif isinstance(model, SmtpCheck):
        checker = SmtpChecker(model.helo_name)
    elif isinstance(model, DnsCheck):
        checker = DnsChecker(model.query_type, model.name)
    elif isinstance(model, PingCheck):
        checker = PingChecker()
    elif isinstance(model, FileCheck):
        # check_file.c: the checker watches the named track_file's file; without
        # a weight of its own it takes the track_file's (file_end_handler).
        files = config.vrrp_track_files if config is not None else ()
        tf = next((t for t in files if t.name == model.track_file), None)
        if tf is None:
            raise ValueError(f"{model.common.loc}: track_file {model.track_file} not found")
        if model.weight is None:
            weight, reverse = tf.weight, tf.weight_reverse
        else:
            weight, reverse = model.weight, model.weight_reverse
        checker = FileChecker(tf.file, weight, reverse, tf.init_file)
    elif isinstance(model, PluginCheck):
        plugin = registered_checkers().get(model.keyword)
        if plugin is None:
            raise ValueError(f"{model.common.loc}: no plugin serves {model.keyword}")
        checker = plugin.make(model.options)
    else:  # pragma: no cover - the model's union is closed
        raise ValueError(f"unknown checker {model!r}")
    return checker, target, timing


def step_count(checker: Checker) -> int:
    """How many steps one attempt walks: ``steps`` of a :class:`MultiStepChecker`, else 1.

    The same test as ``isinstance(checker, MultiStepChecker)`` (every member of
    the protocol present), without it: isinstance against a runtime-checkable
    Protocol walks the protocol's members on every call, and cost a visible
    share of a 10,000-server start-up, once per real server and wrapper.
    """
    if getattr(checker, "check", None) is None or getattr(checker, "check_step", None) is None:
        return 1
    steps = getattr(checker, "steps", None)
    return steps if isinstance(steps, int) else 1


async def attempt(checker: Checker, target: Target, timeout: float, step: int = 0) -> Result:
    """One guarded attempt: never raises (except cancellation), never outlives its guard."""
    multi = step_count(checker) > 1
    return await _attempt(checker, target, timeout, step, multi)


async def _attempt(
    checker: Checker, target: Target, timeout: float, step: int, multi: bool
) -> Result:
    if getattr(checker, "bounds_itself", False):
        # One step under its own timeout (TCP_CHECK): a second cancel scope
        # around it only cost CPU at every check.
        try:
            return await checker.check(target, timeout)
        except Exception as e:
            return Result.failed(f"crash: {type(e).__name__}: {e}"[:200])
    with trio.move_on_after(timeout * GUARD_STEPS + GUARD):
        try:
            if multi:
                return await cast(MultiStepChecker, checker).check_step(target, timeout, step)
            return await checker.check(target, timeout)
        except Exception as e:
            return Result.failed(f"crash: {type(e).__name__}: {e}"[:200])
    return Result.failed("timeout")


Deliver = Callable[[list[Transition]], object] | trio.MemorySendChannel[list[Transition]]


@dataclass
class _Entry:
    server: ServerPolicy
    runs: list[tuple[Checker, Target, float]]


@dataclass
class Scheduler:
    """Runs every added real server's checkers; delivers batched transitions."""

    deliver: Deliver
    batch_window: float = 0.05
    rand: Callable[[], float] = random.random
    checks_done: int = 0
    _servers: dict[Hashable, _Entry] = field(default_factory=dict)
    _pending: list[Transition] = field(default_factory=list)
    _wake: trio.Event = field(default_factory=trio.Event)

    def add(
        self, key: Hashable, rs: RealServer, vs: VirtualServer, config: Config | None = None
    ) -> None:
        """Register a real server's checkers (before :meth:`run`)."""
        built = [build_checker(m, rs, vs, config) for m in rs.checkers]
        self.add_checkers(key, built, [m.keyword for m in rs.checkers])

    def add_checkers(
        self,
        key: Hashable,
        built: list[tuple[Checker, Target, Timing]],
        names: list[str] | None = None,
    ) -> None:
        """Lower-level :meth:`add`: already built checkers (tests, plugins, bench)."""
        policies = [CheckerPolicy(t, step_count(c)) for c, _, t in built]
        runs = [(c, tg, t.connect_timeout) for c, tg, t in built]
        self._servers[key] = _Entry(ServerPolicy(key, policies, names or []), runs)

    def state(self, key: Hashable) -> bool:
        return self._servers[key].server.alive

    def _immediate(self) -> bool:
        """No batching asked for and a plain callback: transitions go out as they happen."""
        return not self.batch_window and not isinstance(self.deliver, trio.MemorySendChannel)

    def _emit(self, tr: Transition) -> None:
        if self._immediate():
            cast(Callable[[list[Transition]], object], self.deliver)([tr])
            return
        self._pending.append(tr)
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; cancellation stops every check (scripts are killed)."""
        entries = list(self._servers.values())
        if self._immediate() and len(entries) == 1 and len(entries[0].runs) == 1:
            # One server with one checker (the LVS service runs one scheduler per
            # real server): its one loop runs in this task.  A nursery, a second
            # task and a flusher per server were a large share of a 10,000-server
            # start-up, and change nothing a single loop does.
            entry = entries[0]
            checker, target, timeout = entry.runs[0]
            first = entry.server.checkers[0].first_at(trio.current_time(), self.rand())
            self._emit(entry.server.initial())
            task_status.started()
            await self._drive(entry.server, 0, checker, target, timeout, first)
            return
        async with trio.open_nursery() as nursery:
            if not self._immediate():
                nursery.start_soon(self._flusher)
            now = trio.current_time()
            for entry in self._servers.values():
                self._emit(entry.server.initial())
                for index, (checker, target, timeout) in enumerate(entry.runs):
                    first = entry.server.checkers[index].first_at(now, self.rand())
                    nursery.start_soon(
                        self._drive, entry.server, index, checker, target, timeout, first
                    )
            task_status.started()

    async def _drive(
        self,
        server: ServerPolicy,
        index: int,
        checker: Checker,
        target: Target,
        timeout: float,
        next_at: float,
    ) -> None:
        policy = server.checkers[index]
        # Decided once, not per attempt (see step_count).
        multi = policy.steps > 1 and step_count(checker) > 1
        while True:
            await trio.sleep_until(next_at)
            result = await _attempt(checker, target, timeout, policy.step, multi)
            self.checks_done += 1
            decision, transition = server.record(index, result, trio.current_time())
            if transition is not None:
                self._emit(transition)
            next_at = decision.next_at

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            if self.batch_window:
                await trio.sleep(self.batch_window)
            self._wake = trio.Event()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            if isinstance(self.deliver, trio.MemorySendChannel):
                await self.deliver.send(batch)
            else:
                self.deliver(batch)
