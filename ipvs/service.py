"""The IPVS service: keeps the kernel's table equal to config + health.

This is the thin shell around the pure core.  It holds the only state the
core needs across events (each real server's health, each virtual
server's quorum) and, on every change, recomputes the desired table,
diffs it against what it last applied, and sends the difference:

- ``start``: read the kernel table back, flush it with ``lvs_flush``,
  set ``lvs_timeouts``, adopt what already matches and fix the rest;
- ``transition``: a health change from the checkers (keys are
  ``policy.rs_key``), ignored while ``ha_suspend`` holds the checkers; one
  server's change costs that server, not its pool (:meth:`Reconciler._change_one`);
- ``reload``: a new configuration; health survives for servers that still
  exist (keepalived check_daemon.c ``migrate_checkers``), so an unchanged
  reload sends nothing and a changed weight one EDIT;
- ``vrrp_state``: drives ``lvs_sync_daemon`` (master while the named VRRP
  instance is MASTER, backup otherwise) and ``ha_suspend``;
- ``stop``: remove what pykeep added, or flush with ``lvs_flush_on_stop``,
  and run the ``omega`` notifications.

``Reconciler`` is synchronous (tests drive it directly); ``run`` is the
trio task that feeds it from a channel of transitions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

import structlog
import trio

from pykeep.config.model import (
    Config,
    IPAddress,
    LvsSyncDaemon,
    RealServer,
    Script,
    VirtualServer,
)

from .desired import DesiredError, desired_table, dest_of, dest_port, service_keys, vs_entries
from .diff import Op, OpKind, diff, same_dest
from .policy import (
    Member,
    PoolDecision,
    RsHealth,
    checkers_active,
    decide,
    dest_ident,
    effective_hysteresis,
    effective_quorum,
    forget_layouts,
    inhibit,
    initial_health,
    live_share,
    member_weight,
    quorum_after,
    real_weight,
    rs_health,
    rs_key,
    seen_health,
    shared_after,
    shared_dests,
    shared_group,
    stop_scripts,
)
from .table import Dest, DestKey, ServiceEntry, ServiceKey, Table, copy_table

log = structlog.get_logger("ipvs")


class KernelLike(Protocol):
    """What the reconciler needs of ``netlink.Kernel`` (a fake in pure tests)."""

    def read(self, with_stats: bool = False) -> Table: ...
    def apply(self, ops: Collection[Op]) -> None: ...
    def flush(self) -> None: ...
    def start_sync_daemon(self, d: LvsSyncDaemon, master: bool) -> None: ...
    def stop_sync_daemon(self, master: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one server's change needs of its virtual server, worked out once per configuration."""

    skeys: tuple[ServiceKey, ...]  # its kernel services, in the order ``diff`` sends them
    quorum: int  # effective_quorum: a sum over the whole pool
    hysteresis: int
    #: Servers whose destination another server of the pool, or the sorry
    #: server, may also hold: their changes re-decide the pool.
    crowded: frozenset[int]


@dataclass
class Reconciler:
    """Config + health → kernel, one event at a time."""

    config: Config
    kernel: KernelLike
    pending_scripts: list[Script] = field(default_factory=list)
    health: dict[str, RsHealth] = field(default_factory=dict)
    quorum: dict[str, bool] = field(default_factory=dict)
    local_addresses: set[IPAddress] = field(default_factory=set)
    applied: Table = field(default_factory=dict)
    owned: set[ServiceKey] = field(default_factory=set)
    log: list[Op] = field(default_factory=list)
    sync_master: bool | None = None  # the sync daemon we run: master, backup, none
    #: Destinations that several real servers of one virtual server map onto
    #: (see ``policy.shared_after``): (vs key, destination) -> (weight, the
    #: server whose command set it), or None while the destination is absent.
    shared: dict[tuple[str, str], tuple[int, RealServer] | None] = field(default_factory=dict)
    _indexed: tuple[Config, dict[str, tuple[VirtualServer, frozenset[ServiceKey]]]] | None = field(
        default=None, repr=False
    )
    _servers: tuple[Config, dict[tuple[int, str], RealServer]] | None = field(
        default=None, repr=False
    )
    #: A refused batch left ``applied`` as read back from the kernel: the next
    #: event re-syncs everything, whatever it says.
    _resync: bool = field(default=False, repr=False)
    #: One server's change without re-deciding its pool (:meth:`_change_one`);
    #: off, every change takes the full path (tests compare the two).
    incremental: bool = field(default=True, repr=False)
    #: Each virtual server's live weight as its last decision or change left
    #: it (keyed by ``vs.key``, with the virtual server it was counted for).
    _live: dict[str, tuple[VirtualServer, int]] = field(default_factory=dict, repr=False)
    _plans: tuple[Config, dict[int, _Plan]] | None = field(default=None, repr=False)

    def _decisions(self, only: Collection[VirtualServer] | None = None) -> dict[str, PoolDecision]:
        """Each virtual server's pool (``only`` these, when given); quorum and scripts noted."""
        out: dict[str, PoolDecision] = {}
        for vs in self.config.virtual_servers if only is None else only:
            d = decide(vs, self.health, self.quorum.get(vs.key))
            groups = shared_dests(vs)
            if groups:
                d = self._arbitrate(vs, d, groups)
            out[vs.key] = d
            self.quorum[vs.key] = d.quorum_up
            self._live[vs.key] = (vs, d.live_weight)
            for s in d.scripts:
                self.pending_scripts.append(s)
        return out

    def _arbitrate(
        self, vs: VirtualServer, d: PoolDecision, groups: list[tuple[RealServer, ...]]
    ) -> PoolDecision:
        """One member per shared destination, as keepalived's commands left it.

        At start the first server the pool holds adds the destination and the
        others' adds fail with EEXIST (ipwrapper.c ``init_service_rs``); after
        that each server's own command changes it (:meth:`_shared_event`).
        When quorum is lost to the sorry server, each live server's delete
        goes out in turn, and when it returns each live server's add
        (``perform_quorum_state``); in between nothing is sent.
        """
        members = list(d.members)
        sorry = vs.sorry_server is not None
        was_sorry = sorry and self.quorum.get(vs.key) is False
        now_sorry = sorry and not d.quorum_up
        for group in groups:
            key = (vs.key, str(dest_ident(vs, group[0])))
            live: list[tuple[RealServer, int]] = []
            for rs in group:
                h = rs_health(vs, rs, self.health)
                if h.alive:
                    live.append((rs, real_weight(rs.weight if h.weight is None else h.weight)))
            value: tuple[int, RealServer] | None
            if key not in self.shared:
                held = [r for r in group if inhibit(vs, r) or any(r is x for x, _ in live)]
                first = held[0] if held else None
                weight = next((w for x, w in live if x is first), 0)
                value = None if first is None else (weight, first)
                was_sorry_here = False  # init_service_rs runs before the quorum is judged
            else:
                value = self.shared[key]
                was_sorry_here = was_sorry
            if now_sorry != was_sorry_here:
                for rs, w in live:
                    inh = inhibit(vs, rs)
                    if now_sorry or inh or value is None:
                        old = None if value is None else value[0]
                        after = shared_after(old, not now_sorry, w, inh)
                        value = None if after is None else (after, rs)
            self.shared[key] = value
            members = [m for m in members if m.sorry or all(m.rs is not r for r in group)]
            if value is not None:
                members.append(Member(value[1], value[0]))
        return dataclasses.replace(d, members=tuple(members))

    def _shared_event(self, vs: VirtualServer, key: str, was: RsHealth | None) -> None:
        """Apply one server's command to the destination it shares, if it shares one."""
        if not shared_dests(vs):
            return
        rs = self.server(vs, key)
        if rs is None or shared_group(vs, rs) is None:
            return
        dkey = (vs.key, str(dest_ident(vs, rs)))
        if dkey not in self.shared:
            return  # not decided yet (start, or the sorry server holds the pool)
        if vs.sorry_server is not None and self.quorum.get(vs.key) is False:
            return  # perform_svr_state sends nothing while the sorry server serves
        now = self.health[key]
        before = was if was is not None else initial_health(vs, rs)
        if not rs.checkers:
            return
        change: bool | None
        if before.alive != now.alive:
            change = now.alive
        elif now.alive and before.weight != now.weight:
            change = None
        else:
            return
        weight = real_weight(rs.weight if now.weight is None else now.weight)
        cur = self.shared[dkey]
        inhibits = inhibit(vs, rs)
        if change is True and not inhibits and cur is not None:
            return  # ADD_DEST on an existing destination: EEXIST, nothing changes
        value = shared_after(None if cur is None else cur[0], change, weight, inhibits)
        self.shared[dkey] = None if value is None else (value, rs)

    def _sync(self, current: Table, prune: Collection[ServiceKey] | None) -> list[Op]:
        want = desired_table(self.config, self._decisions())
        ops = self._apply(diff(current, want, prune))
        self.applied = want
        self.owned = set(want)
        return ops

    def _apply(self, ops: list[Op]) -> list[Op]:
        if ops:
            try:
                self.kernel.apply(ops)
            except RuntimeError:
                # Some operations failed: trust the kernel from now on, so the
                # next event diffs against what it really holds.
                self.applied = self.kernel.read()
                self._resync = True
                raise
            self.log.extend(ops)
        return ops

    def start(self) -> list[Op]:
        """Adopt the kernel's table: keep what matches, fix or add the rest."""
        g = self.config.global_defs
        if g.lvs_flush:
            self.kernel.flush()
        current = self.kernel.read()
        return self._sync(current, None if g.lvs_flush else set())

    def quiet(self, key: str, up: bool, weight: int | None = None) -> bool:
        """Whether :meth:`transition` with these arguments sends nothing to the kernel.

        Such a call only notes the server's health, so the caller may make it
        where it stands instead of on the kernel's thread: at start-up every
        real server's initial state is one such call.
        """
        vs, _ = self._index().get(key.rsplit("/", 1)[0], (None, frozenset()))
        return vs is not None and (not self._checking(vs) or self._unchanged(vs, key, up, weight))

    def _checking(self, vs: VirtualServer) -> bool:
        return checkers_active(
            vs, self.local_addresses, self.config.vsg(vs.group) if vs.group else None
        )

    def _unchanged(self, vs: VirtualServer, key: str, up: bool, weight: int | None) -> bool:
        was = self.health.get(key)
        now = RsHealth(up, weight)
        return not self._resync and now == (was if was is not None else self._assumed(vs, key))

    def transition(self, key: str, up: bool, weight: int | None = None) -> list[Op]:
        """One real server changed state (or dynamic weight)."""
        vs, services = self._index().get(key.rsplit("/", 1)[0], (None, frozenset()))
        if vs is not None and not self._checking(vs):
            return []
        was = self.health.get(key)
        now = RsHealth(up, weight)
        if vs is not None and self._unchanged(vs, key, up, weight):
            # A result that changes nothing (a first check confirming the
            # start-up assumption, or a repeat) sends nothing, as keepalived's
            # update_svr_checker_state only acts on a change; it must cost
            # nothing either: thousands arrive at start-up, and a re-decided
            # pool per result made start-up and reloads quadratic.
            self.health[key] = now
            return []
        if self.incremental and vs is not None and services and not self._resync:
            done = self._change_one(vs, services, key, was, now)
            if done is not None:
                return done
        self.health[key] = now
        owner = vs if vs is not None else self._owner(key)
        if owner is not None:
            self._shared_event(owner, key, was)
        if vs is None or not services or self._resync:
            ops = self._sync(self.applied, set())
            self._resync = False
            return ops
        return self._sync_one(vs, services)

    def _assumed(self, vs: VirtualServer, key: str) -> RsHealth | None:
        """The health the last sync assumed for a server no checker has spoken for."""
        rs = self.server(vs, key)
        return None if rs is None else initial_health(vs, rs)

    def _owner(self, key: str) -> VirtualServer | None:
        """The virtual server a health key belongs to, without the index."""
        vs_key = key.rsplit("/", 1)[0]
        return next((v for v in self.config.virtual_servers if v.key == vs_key), None)

    def server(self, vs: VirtualServer, key: str) -> RealServer | None:
        """The real server of ``vs`` a health key names (a table built once per configuration)."""
        if self._servers is None or self._servers[0] is not self.config:
            servers = ((v, r) for v in self.config.virtual_servers for r in v.real_servers)
            table = {(id(v), rs_key(v, r)): r for v, r in servers}
            self._servers = (self.config, table)
        return self._servers[1].get((id(vs), key))

    def _index(self) -> dict[str, tuple[VirtualServer, frozenset[ServiceKey]]]:
        """Each virtual server by key, with its kernel services when no other shares them.

        Built once per configuration: a transition then costs one virtual
        server's pool, not the whole table's (hundreds of servers, each
        reporting at start, made start-up quadratic).  A virtual server whose
        key or services another one also names gets an empty set, and its
        transitions take the full path that merges them.
        """
        if self._indexed is not None and self._indexed[0] is self.config:
            return self._indexed[1]
        keys: dict[str, list[VirtualServer]] = {}
        owners: dict[ServiceKey, int] = {}
        services: dict[int, frozenset[ServiceKey]] = {}
        for vs in self.config.virtual_servers:
            keys.setdefault(vs.key, []).append(vs)
            try:
                services[id(vs)] = frozenset(service_keys(vs, self.config))
            except DesiredError:
                services[id(vs)] = frozenset()
            for skey in services[id(vs)]:
                owners[skey] = owners.get(skey, 0) + 1
        index: dict[str, tuple[VirtualServer, frozenset[ServiceKey]]] = {}
        for key, same in keys.items():
            mine = services[id(same[0])]
            alone = len(same) == 1 and all(owners[skey] == 1 for skey in mine)
            index[key] = (same[0], mine if alone else frozenset())
        self._indexed = (self.config, index)
        return index

    def _sync_one(self, vs: VirtualServer, services: frozenset[ServiceKey]) -> list[Op]:
        """``_sync`` for one virtual server that shares no kernel service.

        The other virtual servers' health and quorum did not change, so their
        pools (and scripts) are what the last sync left.
        """
        d = self._decisions((vs,))[vs.key]
        want = dict(vs_entries(vs, self.config, d.members))
        current = {k: self.applied[k] for k in services if k in self.applied}
        ops = self._apply(diff(current, want, set()))
        # In place: a copy of the whole table per change cost every entry of
        # every virtual server.  Holders of ``applied`` copy it before a change
        # (pykeep/lvs.py), and the entries replaced here are new objects.
        self.applied.update(want)
        self.owned |= set(want)
        return ops

    def _change_one(
        self,
        vs: VirtualServer,
        services: frozenset[ServiceKey],
        key: str,
        was: RsHealth | None,
        now: RsHealth,
    ) -> list[Op] | None:
        """One server's change at the cost of that server; None when its pool must be re-decided.

        keepalived sends one command for the server that changed
        (ipwrapper.c ``update_svr_checker_state``, ``perform_svr_state``) and
        judges quorum on a running sum of live weights (``update_quorum_state``
        after ``set_checker_state``/``update_svr_wgt`` moved it).  So does
        this, when nothing else in the pool can move: the server shares its
        destination with no other server nor the sorry server, and quorum
        holds.  A quorum gained or lost (the sorry server in or out, the
        quorum scripts), shared destinations, a table read back after a
        refusal, a virtual server never decided: :meth:`_sync_one`, which
        this must always equal (tests/test_lvs_transition_cost.py drives both).
        """
        rs = self.server(vs, key)
        live = self._live.get(vs.key)
        quorum_up = self.quorum.get(vs.key)
        if rs is None or live is None or live[0] is not vs or quorum_up is None:
            return None
        plan = self._plan(vs, services)
        if id(rs) in plan.crowded:
            return None
        before, after = seen_health(vs, rs, was), seen_health(vs, rs, now)
        total = live[1] - live_share(rs, before) + live_share(rs, after)
        if quorum_after(plan.quorum, plan.hysteresis, total, quorum_up) != quorum_up:
            return None
        entries: list[tuple[ServiceKey, ServiceEntry]] = []
        for skey in plan.skeys:
            entry = self.applied.get(skey)
            if entry is None:
                return None  # never added, or gone: the full diff adds the service
            if rs.address.version == skey.family or skey.fwmark:
                entries.append((skey, entry))
        weight = member_weight(vs, rs, after, vs.sorry_server is not None and not quorum_up)
        if weight is not None:
            weight = self._pool_weight(vs, rs, weight)
        # diff's order: deletions, edits, additions, each by service
        dels: list[Op] = []
        edits: list[Op] = []
        adds: list[Op] = []
        changes: list[tuple[ServiceEntry, DestKey, Dest | None]] = []
        for skey, entry in entries:
            dkey = DestKey(str(rs.address), dest_port(vs, rs, skey))  # dest_key, without a parse
            have = entry.dests.get(dkey)
            want = None if weight is None else dest_of(vs, rs, weight, skey)
            if have == want:
                continue
            changes.append((entry, dkey, want))
            if want is None:
                dels.append(Op(OpKind.DEL_DEST, skey, entry.service, dkey, have))
            elif have is None:
                adds.append(Op(OpKind.ADD_DEST, skey, entry.service, dkey, want))
            elif not same_dest(have, want):
                edits.append(Op(OpKind.EDIT_DEST, skey, entry.service, dkey, want, have))
        self.health[key] = now
        self._live[vs.key] = (vs, total)
        ops = self._apply(dels + edits + adds)
        for entry, dkey, dest in changes:
            if dest is None:
                del entry.dests[dkey]
            else:
                entry.dests[dkey] = dest
        return ops

    def _pool_weight(self, vs: VirtualServer, rs: RealServer, weight: int) -> int:
        """A pool member's weight; a subclass that adjusts ``_decisions`` adjusts it here too."""
        return weight

    def _plan(self, vs: VirtualServer, services: frozenset[ServiceKey]) -> _Plan:
        """:class:`_Plan` of ``vs``, built once per configuration (it costs the pool)."""
        if self._plans is None or self._plans[0] is not self.config:
            self._plans = (self.config, {})
        plans = self._plans[1]
        plan = plans.get(id(vs))  # the configuration holds vs: its id stays its own
        if plan is not None:
            return plan
        sorry = vs.sorry_server
        everyone = (*vs.real_servers, *((sorry,) if sorry is not None else ()))
        # shared_dests: their commands go through _shared_event and _arbitrate
        crowded = {id(r) for group in shared_dests(vs) for r in group}
        if sorry is not None:
            # decide drops a member on the sorry server's address and port
            # (check_data.c s_svr_duplicates_rs), whatever their forwarding.
            crowded.update(id(r) for r in vs.real_servers if r.address == sorry.address)
        # A destination's key depends on the service only through its family
        # (fwmark services take both) and port (DR/TUN take the service's).
        shapes = {(bool(k.fwmark), k.family, k.port): k for k in services}
        for (fwmark, family, _), skey in shapes.items():
            holders: dict[tuple[IPAddress, int], list[RealServer]] = {}
            for r in everyone:
                if fwmark or r.address.version == family:
                    holders.setdefault((r.address, dest_port(vs, r, skey)), []).append(r)
            for rss in holders.values():
                if len(rss) > 1:
                    crowded.update(id(r) for r in rss)
        plan = _Plan(
            skeys=tuple(sorted(services)),
            quorum=effective_quorum(vs),
            hysteresis=effective_hysteresis(vs),
            crowded=frozenset(crowded),
        )
        plans[id(vs)] = plan
        return plan

    def reload(self, config: Config) -> list[Op]:
        """Switch to ``config``; health of servers that remain is kept."""
        forget_layouts()
        keys = {rs_key(v, r) for v in config.virtual_servers for r in v.real_servers}
        self.health = {k: h for k, h in self.health.items() if k in keys}
        vs_keys = {v.key for v in config.virtual_servers}
        self.quorum = {k: q for k, q in self.quorum.items() if k in vs_keys}
        self.shared = {k: v for k, v in self.shared.items() if k[0] in vs_keys}
        self._live = {}  # the sync below counts every virtual server again
        old_owned = set(self.owned)
        self.config = config
        return self._sync(self.applied, old_owned)

    def vrrp_state(self, instance: str, master: bool, addresses: Collection[IPAddress]) -> None:
        """A VRRP instance changed state; ``addresses`` are the local addresses now.

        ``lvs_sync_daemon`` follows its instance: master daemon while MASTER,
        backup daemon otherwise (keepalived vrrp/vrrp_lvs.c ``ipvs_syncd_master``
        / ``ipvs_syncd_backup``).  ``ha_suspend`` reads ``addresses``.
        """
        self.local_addresses = set(addresses)
        d = self.config.global_defs.lvs_sync_daemon
        if d is None or d.vrrp_instance != instance or self.sync_master is master:
            return
        if self.sync_master is not None:
            self.kernel.stop_sync_daemon(self.sync_master)
        self.kernel.start_sync_daemon(d, master)
        self.sync_master = master

    def stop(self) -> None:
        """Remove our services (or flush everything with ``lvs_flush_on_stop``)."""
        for vs in self.config.virtual_servers:
            for s in stop_scripts(vs, self.health, self.quorum.get(vs.key, False)):
                self.pending_scripts.append(s)
        if self.config.global_defs.lvs_flush_on_stop:
            self.kernel.flush()
        else:
            ops = diff(copy_table(self.applied), {}, set(self.applied))
            if ops:
                self.kernel.apply(ops)
                self.log.extend(ops)
        self.applied = {}
        if self.sync_master is not None:
            self.kernel.stop_sync_daemon(self.sync_master)
            self.sync_master = None


async def run(
    reconciler: Reconciler,
    transitions: trio.MemoryReceiveChannel[tuple[str, bool, int | None]],
    on_ops: Callable[[list[Op]], Awaitable[None]] | None = None,
) -> None:
    """Feed transitions to ``reconciler`` until the channel closes or we are cancelled.

    Netlink calls run in a worker thread: a large sync must not stall the
    VRRP timers sharing the event loop.  On the way out the table is
    cleaned (``stop``), shielded from the cancellation that ended us.
    """
    from pykeep.scripts import run_script

    async def scripts(nursery: trio.Nursery) -> None:
        while reconciler.pending_scripts:
            nursery.start_soon(run_script, reconciler.pending_scripts.pop(0))

    async with trio.open_nursery() as nursery:
        await trio.to_thread.run_sync(reconciler.start)
        await scripts(nursery)
        try:
            async for key, up, weight in transitions:
                try:
                    ops = await trio.to_thread.run_sync(reconciler.transition, key, up, weight)
                except RuntimeError as e:
                    log.error("ipvs sync failed", server=key, reason=str(e))
                    continue
                await scripts(nursery)
                if on_ops is not None and ops:
                    await on_ops(ops)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(reconciler.stop)
                await scripts(nursery)
