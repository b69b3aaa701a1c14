"""The checker + IPVS half of the daemon: health checks drive the kernel's IPVS table.

keepalived runs this half in its own "checker" process (keepalived/check/
check_daemon.c); pykeep runs it as one trio task beside VRRP.  It glues two
finished libraries together and owns nothing else:

- :mod:`healthcheck` runs the checkers on keepalived's schedule and reports
  batched transitions (one :class:`healthcheck.scheduler.Scheduler` per real
  server, so a reload can keep or replace each server's checkers alone);
- :mod:`ipvs` (``ipvs.service.Reconciler``) turns config + health into the
  minimal netlink operations.

What lives here: the wiring (transitions → ``Reconciler.transition``), the
operator's drain set (weight 0 through the desired state, so it survives
reloads and health changes), keepalived's migrate_checkers on reload
(check_daemon.c ``reload_check_thread`` → ``migrate_checkers``: a server
whose checker configuration is unchanged keeps its state and is not
re-announced), scripts (quorum_up/down, notify_up/down, never awaited on the
event path), one structured log event per check transition and per IPVS
operation in keepalived's words (check_tcp.c, ipwrapper.c), and the status
the operations layer shows.

All kernel calls run in a worker thread under one lock, so netlink never
stalls the VRRP timers and never interleaves two requests.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import math
import queue
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import outcome
import trio

from healthcheck.api import Checker, MultiStepChecker, Result, Target
from healthcheck.policy import Timing, Transition, resolve_timing
from healthcheck.scheduler import Scheduler, build_checker, step_count
from ipvs.announce import LoAnnouncer, wanted
from ipvs.desired import dest_port, service_keys
from ipvs.diff import Op, OpKind
from ipvs.fnat import Fnat
from ipvs.fnat import how as fnat_how
from ipvs.netlink import IpvsUnavailable, Kernel
from ipvs.policy import (
    PoolDecision,
    QuorumEvent,
    checkers_active,
    effective_hysteresis,
    effective_quorum,
    initial_health,
    rs_key,
)
from ipvs.service import KernelLike, Reconciler
from ipvs.table import DestKey, Proto, ServiceKey, Table, dest_key
from pykeep import log as pklog
from pykeep.config.model import (
    Config,
    IPAddress,
    LvsTimeouts,
    RealServer,
    Script,
    VirtualServer,
)
from pykeep.ops import status
from pykeep.ops.drain import DrainSet
from pykeep.ops.status import LatencyRecorder

if TYPE_CHECKING:  # pykeep.smtp is loaded when a real server's change is mailed
    from pykeep.smtp import Alert, Mailer

#: How often the kernel's IPVS counters are re-read for status and metrics.
STATS_INTERVAL = 5.0
#: For how long after a status or metrics read the counters are kept fresh.
#: keepalived reads them only when asked (ipvswrapper.c ``ipvs_update_stats``,
#: from SNMP and the dumps); a dump of the whole table every few seconds
#: through netlink, parsed in Python, was most of the checker side's CPU on a
#: large table and held back check results queued behind it.
STATS_INTEREST = 120.0
#: How long shutdown waits for ``omega`` scripts before killing them.
STOP_SCRIPTS_GRACE = 5.0

T = TypeVar("T")
_Job = tuple[Callable[[], Any], trio.lowlevel.TrioToken, Callable[[Any], None]]
StatsMap = dict[tuple[ServiceKey, DestKey | None], dict[str, int]]


class LvsUnavailable(RuntimeError):
    """The checker/IPVS half cannot run; the message is the one line the daemon prints."""


# --------------------------------------------------------------------------
# keepalived's wording


def _proto_name(skey: ServiceKey) -> str:
    return Proto(skey.proto).name.lower() if skey.proto else "fwm"


def fmt_rs(address: str, port: int | None, proto: str = "tcp") -> str:
    """keepalived's FMT_RS: ``[IP]:proto:PORT`` (check_data.c format_rs)."""
    return f"[{address}]:{proto}:{port if port is not None else 0}"


def _rs_name(vs: VirtualServer, rs: RealServer) -> str:
    """A configured real server as keepalived names it in FIFO lines and mails."""
    proto = "none" if vs.fwmark is not None else vs.protocol.value.lower()
    return fmt_rs(str(rs.address), rs.port, proto)


def op_event(op: Op, before: Table) -> str:
    """One IPVS operation as keepalived's ipwrapper.c logs the matching change."""
    vs = _fmt_skey(op.skey)
    if op.dkey is None:
        return {
            OpKind.ADD_SERVICE: f"Adding VS {vs}",
            OpKind.EDIT_SERVICE: f"Updating VS {vs}",
            OpKind.DEL_SERVICE: f"Removing Virtual Server {vs}",
        }.get(op.kind, f"{op.kind.value} {vs}")
    rs = fmt_rs(op.dkey.address, op.dkey.port, _proto_name(op.skey))
    if op.kind is OpKind.ADD_DEST:
        w = op.dest.weight if op.dest is not None else 0
        # ipwrapper.c perform_svr_state / init_service_rs: an inhibited
        # server is added at weight 0 and only later "Enabled".
        return f"Adding service {rs} to VS {vs}" + (" (inhibited)" if w == 0 else "")
    if op.kind is OpKind.DEL_DEST:
        return f"Removing service {rs} from VS {vs}"
    old = op.was  # the table ``before`` shares may have changed in place since
    old_entry = before.get(op.skey)
    if old is None and old_entry is not None:
        old = old_entry.dests.get(op.dkey)
    new_w = op.dest.weight if op.dest is not None else 0
    old_w = old.weight if old is not None else 0
    if new_w == 0 and old_w != 0:
        return f"Disabling service {rs} from VS {vs}"
    if old_w == 0 and new_w != 0:
        return f"Enabling service {rs} to VS {vs}"
    # ipwrapper.c update_svr_wgt
    return f"Changing weight from {old_w} to {new_w} for service {rs} of VS {vs}"


def _fmt_skey(skey: ServiceKey) -> str:
    if skey.fwmark:
        return f"FWM {skey.fwmark}"
    return f"[{skey.address}]:{_proto_name(skey)}:{skey.port}"


def check_event(keyword: str, target: Target, up: bool) -> str:
    """A checker's verdict on a state change, in keepalived's words.

    TCP_CHECK has exact sentences (check_tcp.c tcp_epilog / tcp_check_thread);
    the others share keepalived's generic "Check on service … failed." form.
    """
    where = fmt_rs(target.address, target.port)
    if keyword == "TCP_CHECK":
        return f"TCP connection to {where} {'success' if up else 'failed'}."
    return f"{keyword} on service {where} {'succeeded' if up else 'failed'}."


# --------------------------------------------------------------------------
# per-checker bookkeeping for status and metrics


class RecordedChecker:
    """Wraps a checker to count results and time attempts; verdicts pass through unchanged.

    The scheduler only reports server-level transitions; the operations layer
    also wants each checker's successes, failures, last failure reason and
    latency, so they are taken here, on the way through.
    """

    def __init__(self, inner: Checker, keyword: str, target: Target) -> None:
        self.inner = inner
        # Decided once, without isinstance against the Protocol (see step_count).
        self._steps = step_count(inner)
        self.bounds_itself: bool = getattr(inner, "bounds_itself", False)
        self.keyword = keyword
        self.target = target
        self.successes = 0
        self.failures = 0
        self.last_ok: bool | None = None
        self.last_reason: str | None = None
        self.latency = LatencyRecorder()
        #: told the checker's first result (MISC_CHECK's first-run e-mail)
        self.on_first: Callable[[Result], None] | None = None

    @property
    def steps(self) -> int:
        return self._steps

    def _note(self, result: Result, started: float) -> Result:
        self.latency.observe(max(0.0, trio.current_time() - started))
        self.last_ok = result.ok
        first = self.successes + self.failures == 0
        if result.ok:
            self.successes += 1
        else:
            self.failures += 1
            self.last_reason = result.reason
        if first and self.on_first is not None:
            self.on_first(result)
        return result

    async def check(self, target: Target, timeout: float) -> Result:
        started = trio.current_time()
        try:
            result = await self.inner.check(target, timeout)
        except Exception as e:  # the scheduler would say the same; keep the count right
            result = Result.failed(f"crash: {type(e).__name__}: {e}"[:200])
        return self._note(result, started)

    async def check_step(self, target: Target, timeout: float, step: int) -> Result:
        started = trio.current_time()
        try:
            result = await cast(MultiStepChecker, self.inner).check_step(target, timeout, step)
        except Exception as e:
            result = Result.failed(f"crash: {type(e).__name__}: {e}"[:200])
        return self._note(result, started)


#: Values :func:`_strip_loc` returns as they are, without looking inside.
_PLAIN = frozenset({str, int, float, bool, bytes})


@functools.cache
def _compared(cls: type) -> tuple[str, ...]:
    """A config dataclass's field names but ``loc``: looked up once per type, not per value."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "loc")


def _strip_loc(value: object) -> object:
    """A comparable form of a config value without source locations.

    migrate_checkers compares checker settings; a checker that only moved to
    another line of the file is unchanged.
    """
    if value is None or type(value) in _PLAIN:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            tuple((name, _strip_loc(getattr(value, name))) for name in _compared(type(value))),
        )
    if isinstance(value, tuple | list):
        return tuple(_strip_loc(v) for v in value)
    return value


def checker_signature(vs: VirtualServer, rs: RealServer) -> object:
    """Everything that decides how a real server is checked (check_daemon.c migrate_checkers).

    Two real servers with the same signature are checked identically, so on
    reload the running checkers and their state carry over.
    """
    timings: tuple[Timing, ...] = tuple(resolve_timing(vs, rs, m) for m in rs.checkers)
    return (
        str(rs.address),
        rs.port,
        rs.virtualhost,
        vs.virtualhost,
        _strip_loc(rs.checkers),
        timings,
    )


@dataclass
class _Checked:
    """One real server's running checkers."""

    key: str
    #: the configuration it was started from (frozen), for :attr:`signature`
    servers: tuple[VirtualServer, RealServer]
    checkers: list[RecordedChecker]
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    scheduler: Scheduler | None = None

    @functools.cached_property
    def signature(self) -> object:
        """:func:`checker_signature`, computed when a reload first compares it.

        The configuration is frozen, so computing it late gives the same
        value; computed at start it cost a tenth of a 10,000-server start-up.
        """
        return checker_signature(*self.servers)


# --------------------------------------------------------------------------
# the reconciler, with the operator's drains applied to the desired state


@dataclass
class DrainingReconciler(Reconciler):
    """``ipvs.service.Reconciler`` whose pools hold drained real servers at weight 0.

    Drain changes weight only: a drained server still counts for quorum
    (it is healthy, the operator just wants no new connections), and a
    failed drained server leaves the pool as any failed server does.
    Quorum events are collected for the log.
    """

    drained: DrainSet = field(default_factory=DrainSet)
    quorum_events: list[tuple[VirtualServer, PoolDecision]] = field(default_factory=list)

    def _decisions(self, only: Collection[VirtualServer] | None = None) -> dict[str, PoolDecision]:
        out = super()._decisions(only)
        for vs in self.config.virtual_servers if only is None else only:
            d = out.get(vs.key)
            if d is None:
                continue
            if d.event is not None:
                self.quorum_events.append((vs, d))
            if not self.drained.pairs:
                continue
            members = tuple(
                dataclasses.replace(m, weight=self.drained.effective_weight(vs, m.rs, m.weight))
                if not m.sorry
                else m
                for m in d.members
            )
            if members != d.members:
                out[vs.key] = dataclasses.replace(d, members=members)
        return out

    def _pool_weight(self, vs: VirtualServer, rs: RealServer, weight: int) -> int:
        """A drained server at weight 0, for one server's change (as ``_decisions`` does)."""
        return self.drained.effective_weight(vs, rs, weight) if self.drained.pairs else weight


# --------------------------------------------------------------------------
# the service


def open_lvs(config: Config, options: argparse.Namespace | Any) -> LvsService | None:
    """The checker/IPVS service for ``config``, or None when it has nothing to do.

    None with ``-P`` (VRRP only) or without virtual servers: VRRP runs on.
    Otherwise the kernel must have IPVS; without it keepalived's checker
    process cannot start, and neither do we (:class:`LvsUnavailable`, one line).
    """
    if getattr(options, "vrrp", False) or not config.virtual_servers:
        return None
    try:
        # A probe only: pyroute2 binds a socket to the thread that uses it, so
        # the service opens its own kernel on its kernel thread.
        Kernel.open().close()
    except IpvsUnavailable as e:
        n = len(config.virtual_servers)
        raise LvsUnavailable(
            f"Stopping: cannot run the checkers of {n} virtual server(s): {e}"
        ) from None
    return LvsService(
        config,
        open_kernel=Kernel.open,
        release_on_stop=not getattr(options, "dont_release_ipvs", False),
    )


class _Unopened:
    """The kernel before ``run`` opened it: every call is refused, never silently dropped."""

    def _refuse(self, *args: object) -> Any:
        raise RuntimeError("IPVS is not open yet")

    read = apply = flush = start_sync_daemon = stop_sync_daemon = _refuse


class KernelThread:
    """Runs every kernel call on one dedicated thread.

    pyroute2 keeps its netlink transport in a ``threading.local``
    (pyroute2/netlink/core.py): an IPVS socket used from a thread other than
    the one that set it up fails (ECONNRESET on family discovery), so
    ``trio.to_thread``'s pool of threads will not do.  Calls are queued and
    waited for shielded, so the caller's lock covers the whole call even
    when it is cancelled.  Before ``start`` calls run inline (tests).
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="pykeep-ipvs", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread = None

    def _loop(self) -> None:
        while (job := self._queue.get()) is not None:
            fn, token, done = job
            result = outcome.capture(fn)
            try:
                token.run_sync_soon(done, result)
            except trio.RunFinishedError:
                return

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._thread is None:
            return fn(*args)
        box: list[outcome.Outcome[T]] = []
        finished = trio.Event()

        def done(result: outcome.Outcome[T]) -> None:
            box.append(result)
            finished.set()

        self._queue.put((functools.partial(fn, *args), trio.lowlevel.current_trio_token(), done))
        with trio.CancelScope(shield=True):
            await finished.wait()
        return box[0].unwrap()


class LvsService:
    """Health checks + IPVS for one configuration; reloadable; status for the ops layer."""

    def __init__(
        self,
        config: Config,
        kernel: KernelLike | None = None,
        *,
        open_kernel: Callable[[], KernelLike] | None = None,
        drained: DrainSet | None = None,
        batch_window: float = 0.05,
        release_on_stop: bool = True,
    ) -> None:
        self.config = config
        # ``-I`` / ``--dont-release-ipvs``: leave the IPVS table as it is on stop
        # (check_daemon.c checker_terminate_phase1 skips clear_services).
        self.release_on_stop = release_on_stop
        self.kernel: KernelLike = kernel if kernel is not None else _Unopened()
        self._open_kernel = open_kernel
        self._worker = KernelThread()
        self.reconciler = DrainingReconciler(config, self.kernel, drained=drained or DrainSet())
        self.log = pklog.get("lvs")
        self.batch_window = batch_window
        self._checked: dict[str, _Checked] = {}
        self._queue: list[tuple[_Checked, Transition]] = []
        self._wake = trio.Event()
        self._lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self._stats: StatsMap = {}
        self._stats_wanted = -math.inf  # trio time of the last status read
        self._stopped = False
        self.started = False
        # pykeep's cluster mode: FULLNAT's nftables table, announce_on_lo's addresses.
        self.fnat = Fnat()
        self.lo = LoAnnouncer()

    @property
    def drained(self) -> DrainSet:
        return self.reconciler.drained

    # ------------------------------------------------------------ running

    async def run(
        self, *, task_status: trio.TaskStatus[LvsService] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Adopt the kernel table, start every checker, follow transitions until cancelled.

        On the way out (cancellation) the table is cleaned, as ``shutdown``
        does, unless ``shutdown`` already ran.
        """
        self._worker.start()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._open_kernel is not None:
                    try:
                        self.kernel = await self._worker.call(self._open_kernel)
                    except RuntimeError as e:
                        # open_lvs probed it a moment ago; the daemon goes on with VRRP
                        self.log.error(f"Stopping checkers: {e}")
                        task_status.started(self)
                        return
                    self.reconciler.kernel = self.kernel
                await self._start_table()
                self._log_activation()
                await self._apply_fnat(start=True)
                nursery.start_soon(self.lo.run)
                for vs in self.config.virtual_servers:
                    for rs in vs.real_servers:
                        self._start_checker(nursery, vs, rs)
                nursery.start_soon(self._consume)
                nursery.start_soon(self._stats_loop)
                self.started = True
                task_status.started(self)
        finally:
            self._nursery = None
            with trio.CancelScope(shield=True):
                await self.shutdown()
                close = getattr(self.kernel, "close", None)
                if close is not None and self._open_kernel is not None:
                    with contextlib.suppress(Exception):
                        await self._worker.call(close)
            self._worker.stop()

    async def _start_table(self) -> None:
        g = self.config.global_defs
        if g.lvs_timeouts != LvsTimeouts() and hasattr(self.kernel, "set_timeouts"):
            try:
                await self._worker.call(self.kernel.set_timeouts, g.lvs_timeouts)
            except RuntimeError as e:
                self.log.error("lvs_timeouts not set", reason=str(e))
        if self.reconciler.local_addresses == set() and any(
            vs.ha_suspend for vs in self.config.virtual_servers
        ):
            self.reconciler.local_addresses = set(await trio.to_thread.run_sync(_local_addresses))
        async with self._lock:
            before = dict(self.reconciler.applied)
            try:
                ops = await self._worker.call(self.reconciler.start)
            except RuntimeError as e:
                self.log.error("IPVS start failed", reason=str(e))
                ops = []
            self._after(ops, before, init=True)

    def _start_checker(self, nursery: trio.Nursery, vs: VirtualServer, rs: RealServer) -> None:
        key = rs_key(vs, rs)
        built: list[tuple[Checker, Target, Timing]] = []
        recorded: list[RecordedChecker] = []
        for m in rs.checkers:
            try:
                checker, target, timing = build_checker(m, rs, vs, self.config)
            except ValueError as e:
                self.log.error("checker not started", server=key, reason=str(e))
                continue
            rc = RecordedChecker(checker, m.keyword, target)
            if m.keyword == "MISC_CHECK":
                rc.on_first = functools.partial(self._misc_first, key, vs, rs, not timing.alpha)
            recorded.append(rc)
            built.append((rc, target, timing))
        entry = _Checked(key, (vs, rs), recorded)
        self._checked[key] = entry
        if not built:
            return

        def deliver(batch: list[Transition]) -> None:
            for tr in batch:
                self._queue.append((entry, tr))
            self._wake.set()

        sched = Scheduler(deliver, batch_window=0.0)
        sched.add_checkers(key, built, [c.keyword for c in recorded])
        entry.scheduler = sched

        async def guarded() -> None:
            with entry.scope:
                await sched.run()

        nursery.start_soon(guarded)

    async def _consume(self) -> None:
        while True:
            await self._wake.wait()
            if self.batch_window:
                await trio.sleep(self.batch_window)  # batch, as seesaw does before its engine
            self._wake = trio.Event()
            batch, self._queue = self._queue, []
            live = [(e, tr) for e, tr in batch if self._checked.get(e.key) is e]
            if live:
                await self._apply(live)

    async def _apply(self, batch: list[tuple[_Checked, Transition]]) -> None:
        inline = 0
        async with self._lock:
            for entry, tr in batch:
                if self._stopped:
                    return
                was = self.reconciler.health.get(entry.key)
                if tr.reason.startswith("initial"):
                    if was is not None and was.alive == tr.up:
                        continue
                else:
                    self._log_check(entry, tr)
                before = dict(self.reconciler.applied)
                try:
                    if self.reconciler.quiet(entry.key, tr.up, tr.weight):
                        # Nothing for the kernel (each server's initial state at
                        # start-up): no trip to its thread, thousands of them.
                        # The loop still yields now and then, as the trips did.
                        ops = self.reconciler.transition(entry.key, tr.up, tr.weight)
                        inline += 1
                        if inline % 256 == 0:
                            await trio.lowlevel.cancel_shielded_checkpoint()
                    else:
                        ops = await self._worker.call(
                            self.reconciler.transition, entry.key, tr.up, tr.weight
                        )
                except RuntimeError as e:
                    self.log.error("IPVS sync failed", server=entry.key, reason=str(e))
                    continue
                # ipwrapper.c perform_svr_state: the server's notifies come before
                # the quorum change its transition causes (update_quorum_state).
                if was is not None and was.alive != tr.up:
                    self._notify_rs(entry.key, tr.up)
                    self._email_rs(entry.key, tr)
                self._after(ops, before)

    def _log_check(self, entry: _Checked, tr: Transition) -> None:
        name, _, why = tr.reason.partition(": ")
        rc = next((c for c in entry.checkers if c.keyword == name), None)
        if tr.reason == "weight":
            self.log.info(
                f"Dynamic weight of service {entry.key} is now {tr.weight}",
                server=entry.key,
                weight=tr.weight,
            )
            return
        if rc is not None:
            event = check_event(rc.keyword, rc.target, tr.up)
        else:
            event = f"Check on service {entry.key} {'succeeded' if tr.up else 'failed'}."
        self.log.info(event, server=entry.key, up=tr.up, reason=why or tr.reason)

    def _notify_rs(self, key: str, up: bool) -> None:
        """notify_up / notify_down of a real server (ipwrapper.c do_rs_notifies).

        Only real changes are notified, never a server's initial state.
        """
        for vs, rs in self._servers(key):
            script = rs.notify_up if up else rs.notify_down
            if script is not None:
                self._spawn(script)
            self._fifo(f"RS {_rs_name(vs, rs)} {vs.key} {'UP' if up else 'DOWN'}\n")

    def _servers(self, key: str) -> Iterable[tuple[VirtualServer, RealServer]]:
        """The configured (virtual server, real server) pairs behind a health key."""
        for vs in self.config.virtual_servers:
            if not key.startswith(vs.key + "/"):
                continue  # rs_key for every server of every service made each change O(N)
            if self.config is self.reconciler.config:
                rs = self.reconciler.server(vs, key)  # a table built once per configuration
                if rs is not None:
                    yield vs, rs
                continue
            for rs in vs.real_servers:
                if rs_key(vs, rs) == key:
                    yield vs, rs

    def _email_rs(self, key: str, tr: Transition) -> None:
        """The checker's e-mail for a real server's change (check_tcp.c
        ``tcp_epilog`` and its twins, smtp.c ``SMTP_MSG_RS``; pykeep/smtp.py)."""
        from pykeep import smtp

        g = self.config.global_defs
        mailer = smtp.Mailer.from_config(g)  # None: no notification_email or smtp_server
        if mailer is None or self._nursery is None:
            return
        keyword, _, why = tr.reason.partition(": ")
        for vs, rs in self._servers(key):
            if not smtp.checker_mail_wanted(rs, g, True):
                continue
            alert = mailer.checker_alert(_rs_name(vs, rs), smtp.fmt_vs(vs), tr.up, keyword, why)
            if alert is not None:
                self._nursery.start_soon(self._send_email, mailer, alert)

    def _misc_first(
        self, key: str, vs: VirtualServer, rs: RealServer, started_up: bool, result: Result
    ) -> None:
        """check_misc.c ``misc_check_child_thread`` mails a MISC_CHECK's first
        result even when it leaves the server as it was (its condition lacks
        ``tcp_epilog``'s ``checker_was_up``); a first result that changes the
        server is mailed with the change (:meth:`_email_rs`)."""
        from pykeep import smtp

        g = self.config.global_defs
        mailer = smtp.Mailer.from_config(g)
        if (
            mailer is None
            or self._nursery is None
            or result.ok != started_up
            or not smtp.checker_mail_wanted(rs, g, False)
        ):
            return
        h = self.reconciler.health.get(key)
        alert = mailer.checker_alert(
            _rs_name(vs, rs),
            smtp.fmt_vs(vs),
            h.alive if h is not None else started_up,
            "MISC_CHECK",
            result.reason,
            passed=result.ok,
        )
        if alert is not None:
            self._nursery.start_soon(self._send_email, mailer, alert)

    def _email_vs(self, vs: VirtualServer, up: bool, weight: int, init: bool) -> None:
        """ipwrapper.c ``do_vs_notifies``: a virtual server's quorum change (pykeep/smtp.py)."""
        from pykeep import smtp

        g = self.config.global_defs
        mailer = smtp.Mailer.from_config(g)
        if mailer is None or self._nursery is None or not smtp.quorum_alerts_on(vs, g):
            return
        alert = mailer.quorum_alert(vs, up, weight, init)
        self._nursery.start_soon(self._send_email, mailer, alert)

    async def _send_email(self, mailer: Mailer, alert: Alert) -> None:
        from pykeep import smtp

        reason = await smtp.send(mailer, alert)
        if reason:
            self.log.warning(reason)

    def _fifo(self, line: str) -> None:
        """ipwrapper.c ``notify_fifo_vs`` / ``notify_fifo_rs``: the same line goes to
        ``notify_fifo`` and ``lvs_notify_fifo``; nobody reading means it is dropped."""
        from vrrp.notify import write_fifo

        g = self.config.global_defs
        for fifo in (g.notify_fifo, g.lvs_notify_fifo):
            if fifo is not None and fifo.argv:
                write_fifo(fifo.argv[0], line)

    def _spawn(self, script: Script) -> None:
        from pykeep.scripts import run_script

        if self._nursery is not None:
            self._nursery.start_soon(self._run_script, run_script, script)

    async def _run_script(self, runner: Any, script: Script) -> None:
        result = await runner(script)
        if not result.ok:
            self.log.warning(
                "script failed",
                script=" ".join(script.argv),
                exit_code=result.exit_code,
                reason=result.reason,
            )

    def _after(self, ops: list[Op], before: Table, init: bool = False) -> None:
        """Log what was sent, quorum changes, and start the scripts the policy asked for."""
        for vs, d in self.reconciler.quorum_events:
            if d.event in (QuorumEvent.UP, QuorumEvent.DOWN):
                self._fifo(f"VS {vs.key} {'UP' if d.event is QuorumEvent.UP else 'DOWN'}\n")
                self._email_vs(vs, d.event is QuorumEvent.UP, d.live_weight, init)
            # ipwrapper.c update_quorum_state prints the quorum and hysteresis that
            # validate_check_config left (quorum lowered to the total weight), and
            # their unsigned sum or difference.
            q, h = effective_quorum(vs), effective_hysteresis(vs)
            if d.event is QuorumEvent.UP:
                self.log.info(
                    f"Gained quorum {q}+{h}={(q + h) % 2**32} <= {d.live_weight} for VS {vs.key}",
                    vs=vs.key,
                )
            elif d.event is QuorumEvent.DOWN:
                self.log.info(
                    f"Lost quorum {q}-{h}={(q - h) % 2**32} > {d.live_weight} for VS {vs.key}",
                    vs=vs.key,
                )
        self.reconciler.quorum_events.clear()
        if not init:
            # The initial table goes in without a line per command (ipwrapper.c
            # init_service_vs / init_service_rs log nothing); the checkers'
            # activation says what is served (:meth:`_log_activation`).
            for op in ops:
                self.log.info(op_event(op, before), op=op.kind.value, ipvs=str(op))
        while self.reconciler.pending_scripts:
            self._spawn(self.reconciler.pending_scripts.pop(0))
        self.lo.set(wanted(self.config, self.reconciler.quorum))

    def _log_activation(self) -> None:
        """keepalived's line per checker once the table is set, at start and at each reload.

        check_api.c register_checkers_thread (start_check runs it after
        init_services, reload or not): "Activating", or "Deactivating" while
        ha_suspend holds the virtual server's checkers, then one line for the
        BFD checker, which Debian's build carries.
        """
        for vs in self.config.virtual_servers:
            vsg = self.config.vsg(vs.group) if vs.group else None
            word = "A" if checkers_active(vs, self.reconciler.local_addresses, vsg) else "Dea"
            for rs in vs.real_servers:
                line = f"{word}ctivating healthchecker for service {_rs_name(vs, rs)}"
                for _ in rs.checkers:
                    self.log.info(f"{line} for VS {vs.key}")
        self.log.info("Activating BFD healthchecker")

    async def _apply_fnat(self, start: bool = False) -> None:
        """FULLNAT's nftables table follows the configuration (ipvs/fnat.py)."""
        had = self.fnat.active
        err = await self.fnat.apply(self.config)
        if err is not None:
            self.log.error("FNAT source NAT not applied", reason=err)
        elif self.fnat.active and (start or not had):
            for line in fnat_how(self.config):
                self.log.info(line)

    async def _stats_loop(self) -> None:
        read = getattr(self.kernel, "read_with_stats", None)
        if read is None:
            return
        while True:
            if trio.current_time() - self._stats_wanted < STATS_INTEREST:
                # A read only: the kernel thread serialises it with the changes,
                # so transitions do not wait for it behind the lock.
                try:
                    _, self._stats = await self._worker.call(read)
                except (RuntimeError, OSError) as e:
                    self.log.debug("IPVS stats not read", reason=str(e))
            await trio.sleep(STATS_INTERVAL)

    # ------------------------------------------------------------ daemon hooks

    async def reload(self, config: Config) -> None:
        """Switch to ``config`` (keepalived check_daemon.c reload_check_thread).

        Real servers whose checker signature is unchanged keep their running
        checkers and health and are not re-announced; the others restart
        fresh.  An unchanged config sends no netlink operation.
        """
        async with self._lock:
            if self._stopped or not self.started:
                self.config = self.reconciler.config = config
                return
            wanted: dict[str, tuple[VirtualServer, RealServer]] = {
                rs_key(vs, rs): (vs, rs) for vs in config.virtual_servers for rs in vs.real_servers
            }
            restart: list[tuple[VirtualServer, RealServer]] = []
            for key, entry in list(self._checked.items()):
                pair = wanted.get(key)
                if pair is None or checker_signature(*pair) != entry.signature:
                    entry.scope.cancel()
                    del self._checked[key]
                    self.reconciler.health.pop(key, None)
            for key, pair in wanted.items():
                if key not in self._checked:
                    restart.append(pair)
            self.config = config
            before = dict(self.reconciler.applied)
            try:
                ops = await self._worker.call(self.reconciler.reload, config)
            except RuntimeError as e:
                self.log.error("IPVS reload failed", reason=str(e))
                ops = []
            self._after(ops, before)
            self._log_activation()
            await self._apply_fnat()
            if self._nursery is not None:
                for vs, rs in restart:
                    self._start_checker(self._nursery, vs, rs)
            self.log.info("lvs reloaded", kept=len(wanted) - len(restart), restarted=len(restart))

    async def set_drained(self, drained: DrainSet) -> None:
        """Apply the operator's drain set: drained real servers go to weight 0 (one EDIT each)."""
        async with self._lock:
            self.reconciler.drained = drained
            if not self.started or self._stopped:
                return
            before = dict(self.reconciler.applied)
            try:
                ops = await self._worker.call(self.reconciler.reload, self.config)
            except RuntimeError as e:
                self.log.error("IPVS drain failed", reason=str(e))
                return
            self._after(ops, before)

    async def drain(self, vs: str, rs: str) -> None:
        """Drain one (VS, RS) as the operator names them; the ops layer persists the set."""
        await self.set_drained(self.drained.add(vs, rs))

    async def undrain(self, vs: str, rs: str) -> None:
        await self.set_drained(self.drained.remove(vs, rs))

    def vrrp_state(
        self, instance_name: str, is_master: bool, local_addrs: Collection[IPAddress]
    ) -> None:
        """A VRRP instance changed state: ``ha_suspend`` and ``lvs_sync_daemon`` follow.

        Called from the VRRP side's trio task; the sync daemon's netlink call
        is queued behind the kernel lock when the service runs.
        """
        addrs = set(local_addrs)
        if self._nursery is None:
            self._vrrp_state_now(instance_name, is_master, addrs)
            return
        self.reconciler.local_addresses = addrs
        self._nursery.start_soon(self._vrrp_state_locked, instance_name, is_master, addrs)

    async def _vrrp_state_locked(self, instance: str, master: bool, addrs: set[IPAddress]) -> None:
        async with self._lock:
            await self._worker.call(self._vrrp_state_now, instance, master, addrs)

    def _vrrp_state_now(self, instance: str, master: bool, addrs: set[IPAddress]) -> None:
        try:
            self.reconciler.vrrp_state(instance, master, addrs)
        except (RuntimeError, OSError) as e:
            self.log.error("lvs_sync_daemon not changed", instance=instance, reason=str(e))

    async def shutdown(self) -> None:
        """Stop the checkers, then remove our IPVS entries (or flush: ``lvs_flush_on_stop``).

        Idempotent: the daemon calls it on SIGTERM and ``run`` again on its way out.
        """
        if self._stopped or not self.started:
            return
        self._stopped = True
        for entry in self._checked.values():
            entry.scope.cancel()
        await self.lo.clear()  # announce_on_lo: a stopped director stops attracting traffic
        if not self.release_on_stop:
            self.log.info("Leaving the IPVS configuration in place (--dont-release-ipvs)")
            return
        async with self._lock:
            before = dict(self.reconciler.applied)
            log_before = len(self.reconciler.log)
            try:
                await self._worker.call(self.reconciler.stop)
            except (RuntimeError, OSError) as e:
                self.log.error("IPVS cleanup failed", reason=str(e))
            for op in self.reconciler.log[log_before:]:
                self.log.info(op_event(op, before), op=op.kind.value, ipvs=str(op))
            err = await self.fnat.remove()
            if err is not None:
                self.log.error("FNAT table not removed", reason=err)
            scripts = list(self.reconciler.pending_scripts)
            self.reconciler.pending_scripts.clear()
        if scripts:
            from pykeep.scripts import run_script

            with trio.move_on_after(STOP_SCRIPTS_GRACE):
                async with trio.open_nursery() as n:
                    for s in scripts:
                        n.start_soon(self._run_script, run_script, s)

    # ------------------------------------------------------------ status

    def virtual_servers(self) -> list[status.VirtualServerStatus]:
        """Cached health, weights, checker results and the last IPVS stats; no netlink.

        Reading status keeps the IPVS counters fresh for :data:`STATS_INTEREST`
        seconds; the first read after a quiet spell has the last ones read.
        """
        with contextlib.suppress(RuntimeError):  # outside trio: no clock, nothing to wake
            self._stats_wanted = trio.current_time()
        out: list[status.VirtualServerStatus] = []
        cfg = self.config
        applied = self.reconciler.applied
        for vs in cfg.virtual_servers:
            try:
                skeys = list(service_keys(vs, cfg))
            except ValueError:
                skeys = []
            rss = tuple(self._rs_status(vs, rs, skeys, applied) for rs in vs.real_servers)
            quorum_up = self.reconciler.quorum.get(vs.key, True)
            out.append(
                status.virtual_server_status(
                    vs,
                    rss,
                    quorum_up=quorum_up,
                    sorry_server_active=vs.sorry_server is not None and not quorum_up,
                    stats=_sum_stats(self._stats.get((k, None)) for k in skeys),
                )
            )
        return out

    def _rs_status(
        self, vs: VirtualServer, rs: RealServer, skeys: list[ServiceKey], applied: Table
    ) -> status.RealServerStatus:
        key = rs_key(vs, rs)
        h = self.reconciler.health.get(key) or initial_health(vs, rs)
        alive = h.alive or not rs.checkers
        weight: int | None = None
        dkeys: list[tuple[ServiceKey, DestKey]] = []
        for sk in skeys:
            dk = dest_key(rs.address, dest_port(vs, rs, sk))
            dkeys.append((sk, dk))
            entry = applied.get(sk)
            # one get: the kernel thread may be changing this entry in place
            dest = None if entry is None else entry.dests.get(dk)
            if weight is None and dest is not None:
                weight = dest.weight
        entry_c = self._checked.get(key)
        checkers = tuple(
            status.CheckerStatus(
                kind=c.keyword,
                target=str(c.target),
                up=alive or bool(c.last_ok),
                successes=c.successes,
                failures=c.failures,
                last_reason=c.last_reason,
                latency=c.latency.snapshot(),
            )
            for c in (entry_c.checkers if entry_c is not None else [])
        )
        return status.real_server_status(
            vs,
            rs,
            alive=alive,
            effective_weight=weight or 0,
            drained=self.drained.is_drained(vs, rs),
            in_ipvs=weight is not None,
            checkers=checkers,
            stats=_sum_stats(self._stats.get(k) for k in dkeys),
        )


class VrrpStates(Protocol):
    """What :func:`follow_vrrp` reads of ``vrrp.service.VrrpService``."""

    def states(self) -> dict[str, str]: ...


def master_addresses(config: Config, states: dict[str, str]) -> set[IPAddress]:
    """The virtual addresses this host holds: those of its MASTER instances."""
    return {
        spec.address.ip
        for inst in config.vrrp_instances
        if states.get(inst.name) == "MASTER"
        for spec in inst.virtual_ipaddress
    }


async def follow_vrrp(
    service: LvsService,
    vrrp: VrrpStates,
    config: Callable[[], Config],
    interval: float = 0.2,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Tell ``service`` about every VRRP state change (ha_suspend, lvs_sync_daemon).

    keepalived's VRRP process notifies the checker process on each
    transition (vrrp/vrrp_lvs.c, check_api.c ``update_checker_activity``);
    VrrpService has no transition callback, so its states are sampled.
    """
    seen: dict[str, str] = {}
    task_status.started()
    while True:
        states = vrrp.states()
        if states != seen:
            addrs = master_addresses(config(), states)
            for name, state in states.items():
                if seen.get(name) != state:
                    service.vrrp_state(name, state == "MASTER", addrs)
            seen = dict(states)
        await trio.sleep(interval)


def _sum_stats(items: Iterable[dict[str, int] | None]) -> status.IpvsStats | None:
    got = [s for s in items if s is not None]
    if not got:
        return None
    total = {k: sum(s.get(k, 0) for s in got) for k in ("conns", "inpkts", "outpkts")}
    total |= {k: sum(s.get(k, 0) for s in got) for k in ("inbytes", "outbytes")}
    return status.IpvsStats(
        conns=total["conns"],
        inpkts=total["inpkts"],
        outpkts=total["outpkts"],
        inbytes=total["inbytes"],
        outbytes=total["outbytes"],
        active_conns=sum(s.get("active", 0) for s in got),
        inactive_conns=sum(s.get("inactive", 0) for s in got),
    )


def _local_addresses() -> list[IPAddress]:
    """This host's addresses, for ``ha_suspend`` before VRRP has said anything (-C)."""
    import ipaddress

    try:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            return [ipaddress.ip_address(m.get_attr("IFA_ADDRESS")) for m in ipr.get_addr()]
    except Exception:  # no netlink (sandbox): ha_suspend then waits for VRRP
        return []
