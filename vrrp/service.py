"""All VRRP instances of the daemon under one nursery, with reload.

What keepalived's VRRP child does around its instances (keepalived/vrrp/
vrrp_daemon.c ``start_vrrp``/``reload_vrrp_thread``, vrrp.c ``vrrp_exist``,
``clear_diff_vrrp``):

- at start-up, every configured VIP still on an interface is removed first:
  a crashed run left it there and we do not own it yet (the daemon already
  did so before its heavy imports; here it costs one address dump);
- links and addresses are read in one dump each for all instances, and one
  timer queue (:mod:`vrrp.timer`) wakes every instance: N instances cost
  neither N netlink lookups nor N kernel timers;
- the instances of a start (or of a reload's additions) all listen first,
  then all start at one time (vrrp/driver.py ``StartBatch``), so that their
  timers fire, and their adverts leave, together;
- trackers shared by several instances (links, vrrp_scripts, track files)
  run once and fan out to the instances that use them;
- on reload, old and new instances are matched by VRID, family, interface
  and unicast peers — never by name.  A matched instance keeps its state,
  VIPs and advert timer (no gap); a vanished one leaves with a priority-0
  advert; a new one starts in BACKUP.

Counters of dropped input, by reason, are exposed by :meth:`VrrpService.counters`
for the metrics work.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import trio

from pykeep import log as pklog
from pykeep.config.model import Config, VrrpInstance, VrrpScript, VrrpTrackFile
from vrrp.driver import Env, InstanceDriver, StartBatch, SyncCoord, instance_key
from vrrp.links import leftover_candidates, remove_leftovers
from vrrp.machine import PRIO_OWNER, State
from vrrp.notify import Notifier, NotifyTarget
from vrrp.socket import SocketPool
from vrrp.static import StaticEntries, del_rule
from vrrp.syncgroup import group_of, member_tracking
from vrrp.timer import TimerQueue
from vrrp.track import (
    LinkWatcher,
    ScriptStatus,
    read_track_file,
    run_vrrp_script,
    vip_addresses,
    watch_track_file,
)
from vrrp.vip import Netlink

TYPE_CHECKING = False
if TYPE_CHECKING:  # loaded when a configuration uses them (start-up time, memory)
    from vrrp.bfd import BfdSpeaker


class _Fanout:
    """Last value of one tracked object plus the callbacks that want it."""

    def __init__(self) -> None:
        self.value: Any = None
        self.callbacks: list[Callable[[Any], None]] = []
        self.scope: trio.CancelScope | None = None
        self.definition: object = None

    def publish(self, value: Any) -> None:
        self.value = value
        for cb in list(self.callbacks):
            cb(value)


class VrrpService:
    """Owns the shared sockets, netlink, trackers and every instance driver."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.log = pklog.get("vrrp")
        self.drivers: dict[tuple[Any, ...], InstanceDriver] = {}
        self.coords: list[SyncCoord] = []
        self.timers = TimerQueue()
        self.pool = SocketPool(after_drain=self.timers.flush)
        self.timers.before_fire = self.pool.drain_nowait
        self.links = LinkWatcher()
        self.links.ours = vip_addresses(config)  # VIPs never become an advert source
        self.links.log = self.log.info
        self.fanouts: dict[tuple[str, str], _Fanout] = {}
        self._bfd: BfdSpeaker | None = None
        self._procs: tuple[Any, trio.CancelScope] | None = None  # definitions, their watcher
        self._nursery: trio.Nursery | None = None
        self._env: Env | None = None
        self.static: StaticEntries | None = None
        self.reloads = 0
        self.reload_failures = 0

    # ------------------------------------------------------------ trackers
    def _subscribe(self, kind: str, name: str, cb: Callable[[Any], None]) -> Callable[[], None]:
        if kind == "if":
            self.links.watch(name, cb)
            return lambda: self.links.unwatch(name, cb)
        if kind == "addr":  # the interface's source addresses (vrrp/track.py Sources)
            self.links.watch_addresses(name, cb)
            return lambda: self.links.unwatch_addresses(name, cb)
        fan = self.fanouts.get((kind, name))
        if fan is None:
            return lambda: None
        fan.callbacks.append(cb)
        if fan.value is not None:
            cb(fan.value)

        def unsubscribe() -> None:
            if cb in fan.callbacks:
                fan.callbacks.remove(cb)

        return unsubscribe

    def _start_trackers(self, config: Config) -> None:
        """Start runners for vrrp_scripts / track files that are new or changed."""
        assert self._nursery is not None
        g = config.global_defs
        wanted: dict[tuple[str, str], VrrpScript | VrrpTrackFile] = {}
        for vs in config.vrrp_scripts:
            wanted[("script", vs.name)] = vs
        for tf in config.vrrp_track_files:
            wanted[("file", tf.name)] = tf
        for key, fan in list(self.fanouts.items()):
            if wanted.get(key) != fan.definition:
                if fan.scope is not None:
                    fan.scope.cancel()
                del self.fanouts[key]
        for key, definition in wanted.items():
            if key in self.fanouts:
                continue
            fan = _Fanout()
            fan.definition = definition
            fan.scope = trio.CancelScope()
            self.fanouts[key] = fan
            if isinstance(definition, VrrpScript):
                status = ScriptStatus.for_script(definition)
                self._nursery.start_soon(
                    self._scoped,
                    fan.scope,
                    lambda vs=definition, st=status, f=fan: run_vrrp_script(
                        vs,
                        st,
                        f.publish,
                        enforce_security=g.enable_script_security,
                        script_user=g.script_user,
                        script_group=g.script_group,
                        log=self.log.info,
                    ),
                )
            else:
                # vrrp_track.c initialise_vrrp_file_tracking_priorities: the file's
                # value counts before any instance starts, so an instance it
                # faults starts in FAULT and never announces BACKUP first.
                fan.value = read_track_file(definition)
                self._nursery.start_soon(
                    self._scoped,
                    fan.scope,
                    lambda tf=definition, f=fan: watch_track_file(tf, f.publish, last=f.value),
                )

    def _start_bfd(self, config: Config) -> None:
        """One BFD speaker for every bfd_instance (vrrp/bfd.py), updated in place on reload.

        Fanouts for tracked names persist across reloads, as keepalived keeps
        ``bfd_up`` (vrrp.c, reload of vrrp_track_bfds); a tracked name with no
        session (keepalived's BFD side disabled it) never publishes: never Up.
        """
        assert self._nursery is not None
        for inst in config.vrrp_instances:
            for ref in inst.track_bfd:
                self.fanouts.setdefault(("bfd", ref.name), _Fanout())
        for group in config.vrrp_sync_groups:  # members track the group's too
            for ref in group.track_bfd:
                self.fanouts.setdefault(("bfd", ref.name), _Fanout())
        if self._bfd is not None:
            self._bfd.update(config.bfd_instances)
            return
        if not config.bfd_instances:
            return

        def publish(name: str, up: bool) -> None:
            fan = self.fanouts.get(("bfd", name))
            if fan is not None and fan.value != up:
                fan.publish(up)

        from vrrp.bfd import BfdSpeaker

        self._bfd = BfdSpeaker(config.bfd_instances, publish, log=self.log.info)
        self._nursery.start_soon(self._bfd.run)

    def _start_processes(self, config: Config) -> None:
        """One watcher for every vrrp_track_process (vrrp/process.py), replaced when they change.

        It starts listening and makes its first scan here, before any instance subscribes, so that
        instances start from the processes' present state, as keepalived
        reads /proc before its instances start.  Fanouts of names still
        defined persist across reloads: an unchanged quorum never bounces.
        """
        assert self._nursery is not None
        defs = config.vrrp_track_processes
        names = {("process", d.name) for d in defs}
        for key in [k for k in self.fanouts if k[0] == "process" and k not in names]:
            del self.fanouts[key]
        if self._procs is not None:
            if self._procs[0] == defs:
                return
            self._procs[1].cancel()
            self._procs = None
        if not defs:
            return
        for key in names:
            self.fanouts.setdefault(key, _Fanout())

        def publish(name: str, up: bool) -> None:
            fan = self.fanouts.get(("process", name))
            if fan is not None and fan.value != up:
                if fan.value is not None:  # vrrp_track.c process_update_track_process_status
                    self.log.info(f"Quorum {'gained' if up else 'lost'} for tracked process {name}")
                fan.publish(up)

        from vrrp.process import ProcessWatcher

        watcher = ProcessWatcher(defs, publish)
        watcher.start()
        if watcher.sock is None:
            self.log.info(
                "no proc connector in this network namespace: tracked processes are "
                "read from /proc every 0.2 s"
            )
        scope = trio.CancelScope()
        self._procs = (defs, scope)
        self._nursery.start_soon(self._scoped, scope, watcher.run)

    @staticmethod
    async def _scoped(scope: trio.CancelScope, fn: Callable[[], Any]) -> None:
        with scope:
            await fn()

    # ------------------------------------------------------------ life cycle
    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        netlink = Netlink()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.pool.attach(nursery)
                await nursery.start(self.timers.run)
                await nursery.start(self.links.run)
                g = self.config.global_defs
                notifier = Notifier(
                    nursery,
                    enforce_security=g.enable_script_security,
                    script_user=g.script_user,
                    script_group=g.script_group,
                    global_defs=g,  # notify FIFOs, their scripts, SMTP alerts
                    log=self.log.info,
                )
                self._env = Env(
                    netlink=netlink,
                    pool=self.pool,
                    notifier=notifier,
                    log=self.log,
                    subscribe=self._subscribe,
                    timers=self.timers,
                )
                self._remove_leftovers(self.config)
                self._log_unknown_vrids(self.config)
                # vrrp_daemon.c start_vrrp: static entries before any instance runs.
                self.static = StaticEntries(netlink, self.log.info)
                self.static.start(self.config)
                self._start_trackers(self.config)
                self._start_bfd(self.config)
                self._start_processes(self.config)
                delay = self.config.global_defs.vrrp_startup_delay
                if delay:  # vrrp_daemon.c start_vrrp (not on reload)
                    self.log.info(f"Delaying startup for {delay:g} seconds")
                    self._env.startup_until = trio.current_time() + delay
                notifier.hold()
                try:
                    await self._start_instances(self.config, list(self.config.vrrp_instances))
                finally:
                    notifier.release(self._notify_order())
                task_status.started()
                await trio.sleep_forever()
        finally:
            for ann in self._env.announcers.values() if self._env else ():
                ann.close()
            self.pool.close()
            netlink.close()

    def _remove_leftovers(self, config: Config) -> None:
        """keepalived removes configured VIPs left by a previous run before starting.

        Only the addresses actually present are removed (one dump, then one
        request each); rules and routes are removed as keepalived does, forcibly.
        """
        assert self._env is not None
        netlink = self._env.netlink
        for dev, vip in remove_leftovers(leftover_candidates(config)):
            self.log.info(f"removing VIP {vip} left on {dev} by a previous run")
        for inst in config.vrrp_instances:
            for rule in inst.virtual_rules:  # rules first, as vrrp_restore_interface
                with contextlib.suppress(OSError, ValueError):
                    del_rule(netlink, rule)
            for route in inst.virtual_routes:
                with contextlib.suppress(OSError, ValueError):
                    netlink.del_route(route, inst.interface)

    def _log_unknown_vrids(self, config: Config) -> None:
        """Global ``log_unknown_vrids``: the socket pool logs adverts nobody runs."""
        self.pool.log_unknown = self.log.info if config.global_defs.log_unknown_vrids else None

    async def _start_instances(self, config: Config, instances: list[VrrpInstance]) -> None:
        assert self._nursery is not None and self._env is not None
        # One link and one address dump serve every instance of the batch.
        self._env.netlink.refresh()
        # Every instance listens first, then all start at one time (StartBatch).
        batch = self._env.batch = StartBatch()
        new: dict[str, InstanceDriver] = {}
        try:
            for inst in instances:
                driver = InstanceDriver(self._tracked(inst, config, log=True), config, self._env)
                self.drivers[driver.key] = driver
                new[inst.name] = driver
        finally:
            self._env.batch = None
        for group in config.vrrp_sync_groups:
            members = {n: new[n] for n in group.group if n in new}
            if members and len(members) == len([n for n in group.group if config.instance(n)]):
                self.coords.append(SyncCoord(group, members, self._env.notifier))
        try:
            for driver in new.values():
                await self._nursery.start(driver.run)
        finally:
            batch.begin(trio.current_time())
        await batch.all_started()

    def _notify_order(self) -> Callable[[NotifyTarget, str], tuple[int, int]]:
        """keepalived's notify order in its start-up and stop passes (Notifier.hold).

        Start-up: instances entering FAULT, in config order (vrrp.c
        ``vrrp_complete_init``), then sync groups in FAULT or BACKUP, then the
        instances entering BACKUP (vrrp_scheduler.c ``vrrp_init_state``), then
        the rest, such as an address owner's MASTER.  Stop: every instance's
        STOP in config order, then every sync group's (vrrp_notify.c
        ``notify_shutdown``).
        """
        inst_ix = {i.name: n for n, i in enumerate(self.config.vrrp_instances)}
        group_ix = {g.name: n for n, g in enumerate(self.config.vrrp_sync_groups)}

        def order(target: NotifyTarget, state: str) -> tuple[int, int]:
            if target.kind == "GROUP":
                return (1, group_ix.get(target.name, 0))
            ix = inst_ix.get(target.name, 0)
            if state in ("FAULT", "STOP"):
                return (0, ix)
            return (2, ix) if state == "BACKUP" else (3, 0)

        return order

    async def shutdown(self) -> None:
        """Stop every instance cleanly (priority-0 adverts, VIPs removed)."""
        if self._env is not None:
            self._env.notifier.hold()
        try:
            async with trio.open_nursery() as n:
                for driver in list(self.drivers.values()):
                    n.start_soon(driver.stop)
        finally:
            if self._env is not None:
                for coord in self.coords:
                    self._env.notifier.notify(coord.target, "STOP", None)
                self._env.notifier.release(self._notify_order())
        self.drivers.clear()
        if self.static is not None:  # vrrp_terminate_phase2: after the VIPs
            self.static.stop()
            self.static = None
        if self._env is not None:
            await self._env.notifier.drain(5.0)

    async def reload(self, config: Config) -> None:
        """Apply a freshly loaded config: match by identity, keep what is unchanged."""
        assert self._env is not None
        self.reloads += 1
        old = self.config
        self.config = config
        self._log_unknown_vrids(config)
        self.links.ours = vip_addresses(config)
        new_by_key = {instance_key(i): i for i in config.vrrp_instances}
        gone = [d for k, d in self.drivers.items() if k not in new_by_key]
        for driver in gone:
            self.log.info(f"({driver.name}) removed by reload - stopping")
            await driver.stop()
            del self.drivers[driver.key]
        if self.static is not None:  # start_vrrp on reload: clear_diff_static_*, then add
            self.static.reload(config)
        self._start_trackers(config)
        self._start_bfd(config)
        self._start_processes(config)
        # Model equality leaves source lines out, so an instance that only
        # moved in the file is unchanged and left alone, as clear_diff_vrrp
        # leaves it.  A changed vrrp_script or track file gets a new runner
        # (_start_trackers), so every instance resubscribes.
        same = config.global_defs == old.global_defs and _tracked_defs(config) == _tracked_defs(old)
        added: list[VrrpInstance] = []
        for key, inst in new_by_key.items():
            existing = self.drivers.get(key)
            if existing is None:
                added.append(inst)
                continue
            inst = self._tracked(inst, config, log=True)
            if same and inst == existing.inst:
                existing.adopt(inst, config)
            else:
                existing.reload(inst, config)
        if added:
            await self._start_instances(config, added)
        self._regroup(config)
        if config.global_defs.fifo_write_vrrp_states_on_reload:  # vrrp/notify.py
            fresh = {instance_key(i) for i in added}
            kept = [self.drivers[k] for k in new_by_key if k in self.drivers and k not in fresh]
            self._env.notifier.states_on_reload(
                [(c.config.name, c.group.state.value) for c in self.coords],
                [(d.name, d.state.value, d.machine.effective_priority) for d in kept],
            )

    def _tracked(self, inst: VrrpInstance, config: Config, *, log: bool) -> VrrpInstance:
        """The instance with its sync group's tracking (vrrp/syncgroup.py member_tracking)."""
        eff, msgs = member_tracking(inst, group_of(inst.name, config), config)
        for line in msgs if log else ():
            self.log.warning(line)
        return eff

    def _regroup(self, config: Config) -> None:
        """Sync groups after a reload: matched members keep their state.

        A group that is new, or whose members changed, gets a fresh
        coordinator whose state is its members' (vrrp_sync.c
        ``vrrp_sync_set_group``: FAULT if one is, MASTER if all are, else
        BACKUP); an unchanged one keeps its own; a removed one frees its
        members.
        """
        assert self._env is not None
        by_name = {d.name: d for d in self.drivers.values()}
        kept: list[SyncCoord] = []
        for group in config.vrrp_sync_groups:
            members = {n: by_name[n] for n in group.group if n in by_name}
            if len(members) < 2:
                continue
            same = next(
                (c for c in self.coords if c.config == group and c.drivers == members), None
            )
            if same is not None:
                kept.append(same)
                continue
            coord = SyncCoord(group, members, self._env.notifier)
            states = {d.machine.state for d in members.values()}
            coord.group.state = (
                State.FAULT
                if State.FAULT in states
                else State.MASTER
                if states == {State.MASTER}
                else State.BACKUP
            )
            coord.group._announced = True  # running members: no start-up notify
            kept.append(coord)
        for old in self.coords:
            if old not in kept:
                for d in old.drivers.values():
                    if d.coord is old:
                        d.coord = None
                        d.machine.sync_gate = None
                        d.machine.sync_fault = False
        self.coords = kept

    # ------------------------------------------------------------ views
    def counters(self) -> dict[str, Counter[str]]:
        """Dropped/accepted counters per instance name, plus ``"<socket>"`` for pre-demux drops."""
        out: dict[str, Counter[str]] = {"<socket>": self.pool.dropped()}
        for d in self.drivers.values():
            out[d.name] = Counter(d.counters())
        return out

    def states(self) -> dict[str, str]:
        return {d.name: d.state.value for d in self.drivers.values()}

    def driver(self, name: str) -> InstanceDriver | None:
        """The running instance called ``name`` (names are unique in a loaded config)."""
        return next((d for d in self.drivers.values() if d.name == name), None)

    def clear_counters(self) -> None:
        """STATS_CLEAR: zero every instance's counters once the stats file is written.

        Pre-demux socket drops live in vrrp/socket.py and are not cleared
        (keepalived has no such counter to clear).
        """
        for d in self.drivers.values():
            d.clear_counters()

    def failover(self, name: str) -> bool:
        """Toggle ``ctl failover`` on instance ``name``; True when now held down.

        Raises KeyError for an unknown instance and ValueError for an address
        owner (priority 255 is not lowered by tracking, vrrp_track.c).
        """
        driver = self.driver(name)
        if driver is None:
            raise KeyError(name)
        if driver.params.priority == PRIO_OWNER:
            raise ValueError(f"{name} is the address owner (priority 255); it cannot hand over")
        held = driver.failover()
        self.log.info(f"({name}) failover {'requested' if held else 'released'} by operator")
        return held


def _tracked_defs(config: Config) -> tuple[object, ...]:
    """The definitions instances subscribe to by name; a change replaces their runners."""
    return (config.vrrp_scripts, config.vrrp_track_files, config.vrrp_track_processes)
