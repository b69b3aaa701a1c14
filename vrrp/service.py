"""All VRRP instances of the daemon under one nursery, with reload.

What keepalived's VRRP child does around its instances (keepalived/vrrp/
vrrp_daemon.c ``start_vrrp``/``reload_vrrp_thread``, vrrp.c ``vrrp_exist``,
``clear_diff_vrrp``):

- at start-up, every configured VIP still on an interface is removed first:
  a crashed run left it there and we do not own it yet;
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

from collections import Counter
from collections.abc import Callable
from typing import Any

import trio

from pykeep import log as pklog
from pykeep.config.model import Config, VrrpInstance, VrrpScript, VrrpTrackFile
from vrrp.driver import Env, InstanceDriver, SyncCoord, instance_key
from vrrp.machine import PRIO_OWNER
from vrrp.notify import Notifier
from vrrp.socket import SocketPool
from vrrp.track import LinkWatcher, ScriptStatus, run_vrrp_script, watch_track_file
from vrrp.vip import Netlink, VipSet


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
        self.pool = SocketPool()
        self.links = LinkWatcher()
        self.fanouts: dict[tuple[str, str], _Fanout] = {}
        self._nursery: trio.Nursery | None = None
        self._env: Env | None = None
        self.reloads = 0
        self.reload_failures = 0

    # ------------------------------------------------------------ trackers
    def _subscribe(self, kind: str, name: str, cb: Callable[[Any], None]) -> Callable[[], None]:
        if kind == "if":
            self.links.watch(name, cb)
            return lambda: self.links.unwatch(name, cb)
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
                self._nursery.start_soon(
                    self._scoped,
                    fan.scope,
                    lambda tf=definition, f=fan: watch_track_file(tf, f.publish),
                )

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
                await nursery.start(self.links.run)
                g = self.config.global_defs
                notifier = Notifier(
                    nursery,
                    enforce_security=g.enable_script_security,
                    script_user=g.script_user,
                    script_group=g.script_group,
                    global_fifo=g.vrrp_notify_fifo or g.notify_fifo,
                    log=self.log.info,
                )
                self._env = Env(
                    netlink=netlink,
                    pool=self.pool,
                    notifier=notifier,
                    log=self.log,
                    subscribe=self._subscribe,
                )
                self._remove_leftovers(self.config)
                self._start_trackers(self.config)
                await self._start_instances(self.config, list(self.config.vrrp_instances))
                task_status.started()
                await trio.sleep_forever()
        finally:
            for ann in self._env.announcers.values() if self._env else ():
                ann.close()
            self.pool.close()
            netlink.close()

    def _remove_leftovers(self, config: Config) -> None:
        """keepalived removes configured VIPs left by a previous run before starting."""
        assert self._env is not None
        for inst in config.vrrp_instances:
            vs = VipSet(
                self._env.netlink,
                inst.interface,
                inst.virtual_ipaddress,
                inst.virtual_ipaddress_excluded,
                inst.virtual_routes,
            )
            vs.down(force=True)

    async def _start_instances(self, config: Config, instances: list[VrrpInstance]) -> None:
        assert self._nursery is not None and self._env is not None
        new: dict[str, InstanceDriver] = {}
        for inst in instances:
            driver = InstanceDriver(inst, config, self._env)
            self.drivers[driver.key] = driver
            new[inst.name] = driver
        for group in config.vrrp_sync_groups:
            members = {n: new[n] for n in group.group if n in new}
            if members and len(members) == len([n for n in group.group if config.instance(n)]):
                self.coords.append(SyncCoord(group, members, self._env.notifier))
        for driver in new.values():
            await self._nursery.start(driver.run)

    async def shutdown(self) -> None:
        """Stop every instance cleanly (priority-0 adverts, VIPs removed)."""
        async with trio.open_nursery() as n:
            for driver in list(self.drivers.values()):
                n.start_soon(driver.stop)
        self.drivers.clear()
        if self._env is not None:
            await self._env.notifier.drain(5.0)

    async def reload(self, config: Config) -> None:
        """Apply a freshly loaded config: match by identity, keep what is unchanged."""
        assert self._env is not None
        self.reloads += 1
        old = self.config
        self.config = config
        new_by_key = {instance_key(i): i for i in config.vrrp_instances}
        gone = [d for k, d in self.drivers.items() if k not in new_by_key]
        for driver in gone:
            self.log.info(f"({driver.name}) removed by reload - stopping")
            await driver.stop()
            del self.drivers[driver.key]
        self._start_trackers(config)
        added: list[VrrpInstance] = []
        for key, inst in new_by_key.items():
            existing = self.drivers.get(key)
            if existing is None:
                added.append(inst)
                continue
            if inst != existing.inst or config.global_defs != old.global_defs:
                existing.reload(inst, config)
        if added:
            await self._start_instances(config, added)

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
