"""The trio shell around one instance's sans-I/O state machine.

Everything protocol-related is decided by :class:`vrrp.machine.VrrpMachine`;
this module only moves things in and out of it:

- datagrams from the shared pool socket are checked with
  :func:`vrrp.packet.decode` *in the socket's reader* (so a flood of garbage
  is dropped and counted without ever queueing), and good adverts are queued
  for the instance task;
- the machine's timers are absolute deadlines in ``machine.timers``; the
  earliest is handed to the process's one timer queue (:mod:`vrrp.timer`),
  which wakes the task at that deadline to feed ``TimerFired`` — no task
  sleeps on a deadline of its own, and nothing spins;
- tracker changes arrive as callbacks and become ``TrackerChanged`` events;
- actions are executed in the order the machine returned them: advert out,
  VIPs in (netlink), GARP bursts (background task, paced), notify scripts
  (background tasks, never awaited), and the state-change log line in
  keepalived's words;
- instances started together begin at one time, once all of them listen
  (:class:`StartBatch`), and the adverts of one timer pass leave back to
  back at its end, before any instance's VIP work: 255 instances' adverts
  leave within milliseconds of each other, every interval (issue 14).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import ipaddress
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from pykeep import log as pklog
from pykeep.config.model import (
    Config,
    IPAddress,
    IPAddressSpec,
    VrrpInstance,
    VrrpSyncGroup,
    frozen_dataclass,
)
from vrrp import packet
from vrrp.garp import Announcer
from vrrp.ifconfig import reset_promote_secondaries, set_promote_secondaries
from vrrp.machine import (
    SOURCE_TRACKER,
    Action,
    AddVips,
    AdminStop,
    AdvertReceived,
    CancelTimer,
    EnterState,
    Event,
    MachineParams,
    NotifyMasterRxLowerPri,
    PriorityChanged,
    Reload,
    RemoveVips,
    RunNotify,
    ScheduleTimer,
    SendAdvert,
    SendGarpBurst,
    SourceAddress,
    Start,
    State,
    TimerFired,
    TrackEffect,
    TrackerChanged,
    VrrpMachine,
    params_from_config,
    track_effect,
    track_file_effect,
)
from vrrp.notify import Notifier, NotifyTarget, priority_changes_wanted
from vrrp.socket import Datagram, PoolSocket, Received, SocketKey, SocketPool
from vrrp.syncgroup import GroupNotify, SyncGroup
from vrrp.timer import DUE_SLACK, TimerQueue
from vrrp.vip import Interface, Netlink, VipSet
from vrrp.vmac import Vmac, VmacError
from vrrp.vmac import ifname as vmac_ifname

if TYPE_CHECKING:  # imported when a configuration uses them (start-up cost)
    from vrrp.ahsocket import AhSocket
    from vrrp.firewall import NoAccept

#: bound on adverts queued for one instance; beyond it they are dropped and counted
QUEUE_DEPTH = 256

#: the tracker key under which ``ctl failover`` holds the priority down
FAILOVER_TRACKER = "ctl:failover"


@frozen_dataclass
class TransitionRecord:
    """The last state change of an instance, for status/dumps/metrics."""

    at: float  # wall clock (keepalived's last_transition is a timeval)
    old: State
    new: State
    reason: str


class _Wake:
    """Queue marker: no event, just fire what is due and recompute the next deadline.

    ``at``: the time of the timer pass that found the task with work queued
    (see :meth:`InstanceDriver._pass_time`); None: another task moved the
    deadlines.
    """

    __slots__ = ("at",)

    def __init__(self, at: float | None = None) -> None:
        self.at = at


_WAKE = _Wake()


class _Run:
    """Queue item: actions the machine already decided, to execute in order."""

    __slots__ = ("actions",)

    def __init__(self, actions: list[Action | _Staged]) -> None:
        self.actions = actions


class _Staged:
    """An advert built during a timer pass, sent at the pass's end (TimerQueue.at_pass_end).

    It heads the instance's queued actions, so that the task, should the
    kernel have refused it, sends it before the VIP work that follows.
    """

    __slots__ = ("datagram", "queued", "sent", "sock")

    def __init__(self, sock: PoolSocket, datagram: Datagram) -> None:
        self.sock = sock
        self.datagram = datagram
        self.sent = False
        self.queued = False  # heads a _Run already


class StartBatch:
    """Instances started together: each sets up, then all begin at one time, in order.

    keepalived opens every instance's socket first, then dates every
    instance's timers in one pass (vrrp_scheduler.c vrrp_dispatcher_init:
    vrrp_open_sockpool, then vrrp_register_workers -> vrrp_init_state,
    vrrp_init_sands), so their adverts leave aligned, and none loses any of
    its first Master_Down_Interval to the others' start-up, however slow.
    The service starts each driver up to :meth:`begin`'s point, then
    begins them all with one time and waits until every one has taken it.
    They take it in the order they joined (the configuration's), one after
    the other, so their "(init)" lines and start-up actions come in
    keepalived's order; a scheduler's batch would run them in any order.
    """

    def __init__(self) -> None:
        self.at: float | None = None
        self._turns: list[trio.Event] = []
        self._done: list[bool] = []
        self._next = 0  # the first instance that has not started
        self._all = trio.Event()

    def join(self) -> int:
        """A new instance's turn."""
        self._turns.append(trio.Event())
        self._done.append(False)
        return len(self._turns) - 1

    def begin(self, now: float) -> None:
        """Every instance of the batch starts at ``now`` (once; later calls change nothing)."""
        if self.at is None:
            self.at = now
            self._hand_on()

    async def start_time(self, turn: int) -> float:
        await self._turns[turn].wait()
        assert self.at is not None
        return self.at

    def arrived(self, turn: int) -> None:
        """Instance ``turn`` has started (or left before it could): the next one's turn."""
        self._done[turn] = True
        self._hand_on()

    def _hand_on(self) -> None:
        while self._next < len(self._done) and self._done[self._next]:
            self._next += 1
        if self._next == len(self._done):
            self._all.set()
        elif self.at is not None:
            self._turns[self._next].set()

    async def all_started(self) -> None:
        if self._done and not all(self._done):
            await self._all.wait()


@dataclass
class Env:
    """What all instance drivers share; owned by :class:`vrrp.service.VrrpService`."""

    netlink: Netlink
    pool: SocketPool
    notifier: Notifier
    log: Any
    announcers: dict[str, Announcer] = field(default_factory=dict)
    #: the one timer source of all instances (run by the service)
    timers: TimerQueue = field(default_factory=TimerQueue)
    #: the instances being started together (set by the service while it starts them)
    batch: StartBatch | None = None
    #: the end of global vrrp_startup_delay (set once, at the first start)
    startup_until: float | None = None
    #: subscribe(kind, name, callback) -> unsubscribe; kind "if", "script", "file"
    subscribe: Callable[[str, str, Callable[[Any], None]], Callable[[], None]] = (
        lambda _k, _n, _cb: lambda: None
    )

    def announcer(self, iface: Interface, interval4: float, interval6: float) -> Announcer:
        a = self.announcers.get(iface.name)
        if a is None:
            a = Announcer(iface.name, iface.index, iface.mac, interval4, interval6)
            self.announcers[iface.name] = a
        return a


def instance_key(inst: VrrpInstance) -> tuple[Any, ...]:
    """keepalived's ``vrrp_exist``: VRID, family, interface and unicast peers, not the name."""
    return (
        inst.virtual_router_id,
        inst.family,
        inst.interface,
        inst.is_unicast,
        frozenset(p.address for p in inst.unicast_peers),
    )


def vip_key(spec: IPAddressSpec) -> tuple[object, ...]:
    """A VIP as the kernel sees it: where it sits in the file does not count.

    Lines move when a reload adds an instance above; keepalived compares the
    address itself (vrrp.c ``clear_diff_vrrp_vip`` -> ``address_exist``).
    """
    return (spec.address, spec.dev, spec.label, spec.scope, spec.broadcast)


def mcast_group(inst: VrrpInstance, config: Config) -> IPAddress:
    """Where an instance's adverts go: ``mcast_dst_ip``, else the global group
    (vrrp.c ``vrrp_complete_instance`` fills ``mcast_daddr`` from global_defs)."""
    if inst.mcast_dst_ip is not None:
        return inst.mcast_dst_ip
    g = config.global_defs
    return g.vrrp_mcast_group4 if inst.family == 4 else g.vrrp_mcast_group6


def own_address(inst: VrrpInstance, iface: Interface | None) -> IPAddress | None:
    """The advert source keepalived picks (vrrp.c ``vrrp_complete_instance``)."""
    if inst.unicast_src_ip is not None:
        return inst.unicast_src_ip
    if inst.mcast_src_ip is not None:
        return inst.mcast_src_ip
    if iface is None:
        return None
    return iface.ipv4 if inst.family == 4 else iface.ipv6_ll


class InstanceDriver:
    """Runs one vrrp_instance: socket subscription, timers, actions."""

    def __init__(self, inst: VrrpInstance, config: Config, env: Env) -> None:
        self.env = env
        self.inst = inst
        self.config = config
        self.log = env.log
        self.iface = env.netlink.interface(inst.interface) if inst.interface else None
        self.src = own_address(inst, self.iface)
        #: use_vmac: the macvlan, and the links adverts and GARPs use (None: self.iface)
        self.vmac: Vmac | None = None
        self.advert_link: Interface | None = None
        self.garp_link: Interface | None = None
        #: no_accept mode: the nftables drop set for this instance's VIPs
        self.no_accept: NoAccept | None = None
        self.params: MachineParams = params_from_config(
            inst, config.global_defs, own_address=self.src
        )
        self.machine = VrrpMachine(self.params)
        self.receive_params = self.params.receive_params()
        self.vips = VipSet(
            env.netlink,
            vmac_ifname(inst) or inst.interface,
            inst.virtual_ipaddress,
            inst.virtual_ipaddress_excluded,
            inst.virtual_routes,
            inst.virtual_rules,
        )
        #: datagrams this instance dropped, by packet.Rejected reason
        self.rejected: Counter[str] = Counter()
        self.ip_id = 0
        self.coord: SyncCoord | None = None  # set by the service for sync-group members
        self._send, self._recv = trio.open_memory_channel[Event | _Wake | _Run](QUEUE_DEPTH)
        self._socket: PoolSocket | AhSocket | None = None
        self._ah: AhSocket | None = None  # auth_type AH: the same object as _socket
        self._unsubs: list[Callable[[], None]] = []
        self._promoted = False  # promote_secondaries set on the interface (vrrp/ifconfig.py)
        self._timer = env.timers.timer(self._on_timer)
        #: the task is between two queue reads: events must queue behind it
        self._busy = True
        self._queued = 0  # items in the queue (cheaper than the channel's statistics)
        self._advert_cache: tuple[int, MachineParams, IPAddress, bytes] | None = None
        #: the last advert accepted without remarks, and the receive parameters
        #: it was checked against: the socket's repeat path (``_on_repeat``)
        self._repeatable: tuple[AdvertReceived, packet.ReceiveParams] | None = None
        self._nursery: trio.Nursery | None = None
        self._done = trio.Event()
        #: the batch this instance starts with (None: it starts on its own), and its turn
        self._batch = env.batch
        self._turn = 0 if self._batch is None else self._batch.join()
        #: the latest time the machine was handed by this task
        self._seen = -math.inf
        self.target = NotifyTarget("INSTANCE", inst.name, inst.notify, inst.smtp_alert)
        #: the last EnterState seen, and how many there were since start
        self.last_transition: TransitionRecord | None = None
        self.transitions = 0
        #: ``ctl failover`` is holding this instance's priority at the minimum
        self.failover_active = False

    # ------------------------------------------------------------ views
    @property
    def name(self) -> str:
        return self.inst.name

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def key(self) -> tuple[Any, ...]:
        return instance_key(self.inst)

    def counters(self) -> dict[str, int]:
        out = {f"rx_drop_{k}": v for k, v in self.rejected.items()}
        out.update(self.machine.counters)
        return out

    def clear_counters(self) -> None:
        """STATS_CLEAR: zero what ``counters()`` reports (vrrp_print.c vrrp_print_stats)."""
        self.rejected.clear()
        self.machine.counters.clear()

    @property
    def effective_priority(self) -> int:
        return self.machine.effective_priority

    @property
    def master_priority(self) -> int:
        """The priority of the current master: ours when MASTER, the last heard otherwise."""
        if self.machine.state is State.MASTER:
            return self.machine.effective_priority
        return self.machine.master_priority if self.machine.master_src is not None else 0

    @property
    def master_router(self) -> str | None:
        """Who the master is: our own source address when MASTER, the advert source otherwise."""
        if self.machine.state is State.MASTER:
            return str(self.src) if self.src is not None else None
        src = self.machine.master_src
        return str(src) if src is not None else None

    def failover(self) -> bool:
        """Toggle the operator's hand-over; True when the priority is now held down.

        The first call adds a tracker that pulls the effective priority to 1
        (the floor of vrrp_track.c ``vrrp_set_effective_priority``): the next
        advert carries it, and a preempting peer takes over after its
        Master_Down_Interval, exactly as when a tracked script fails.  The
        hold stays across reloads until a second call removes it; restoring
        it automatically once the peer is master would only hand the VIPs
        straight back (the restored, higher priority preempts again).  An
        address owner (priority 255) ignores tracking, so it is refused by
        the caller.
        """
        if self.failover_active:
            self.failover_active = False
            self.feed_nowait(TrackerChanged(FAILOVER_TRACKER, 0, False))
        else:
            self.failover_active = True
            delta = -(self.params.priority + 255)  # always below the floor; clamped to 1
            self.feed_nowait(TrackerChanged(FAILOVER_TRACKER, delta, False))
        return self.failover_active

    # ------------------------------------------------------------ inputs
    def _on_datagram(self, got: Received) -> bool:
        """Runs in the pool socket's reader task: check, count, queue.

        True tells the socket that the same bytes again may take the repeat
        path (``_on_repeat``): the advert passed every check without remarks.
        """
        result = packet.decode(
            got.payload,
            src=got.src,
            dst=got.dst,
            ttl=got.ttl,
            expected=self.receive_params,
            ip_total_length=got.ip_total_length,
            ip_header_length=got.ip_header_length,
            auth_check=self._ah.auth_check if self._ah is not None else None,
        )
        if isinstance(result, packet.Rejected):
            self.rejected[result.reason] += 1
            if self.rejected[result.reason] <= 3 or self.rejected[result.reason] % 1000 == 0:
                self.log.info(f"({self.name}) dropped advert from {got.src}: {result}")
            self._repeatable = None
            return False
        if result.addr_mismatch:
            # counted here; the machine drops it unless skip_check_adv_addr applies
            self.rejected[result.addr_mismatch] += 1
        if self._ah is not None and self.machine.state is State.MASTER:
            mine = self.machine.effective_priority
            if result.priority < mine or (
                result.priority == mine and self.src is not None and int(got.src) < int(self.src)
            ):
                self._ah.master_heard_lower()  # vrrp.c vrrp_state_master_rx
        event = AdvertReceived(result, got.src)
        if self._can_inline():
            self._inline(self.machine.handle(event, trio.current_time()))
        else:
            self.feed_nowait(event)
        if self._ah is not None or result.addr_mismatch:
            self._repeatable = None
            return False
        self._repeatable = (event, self.receive_params)
        return True

    def _on_ah_datagram(self, got: Received) -> None:
        """AH adverts change with every packet (sequence number, ICV): no repeat path."""
        self._on_datagram(got)

    def _on_repeat(self, now: float) -> bool:
        """The socket heard the last accepted advert again, byte for byte, at ``now``
        (its batch's time); False: decode it.

        decode() is a function of the bytes, the source, destination and TTL
        (all among the bytes compared) and the receive parameters, so its
        verdict stands; the machine still decides (``repeat_advert``), and
        declines anything but a BACKUP's plain Master_Down reset.
        """
        last = self._repeatable
        if last is None or last[1] is not self.receive_params or not self._can_inline():
            return False
        m = self.machine
        if not m.repeat_advert(last[0], now):
            return False
        self._timer.set(min(m.timers.values(), default=None))
        return True

    # ------------------------------------------------------------ inline path
    # Most adverts received only move the Master_Down deadline, and most timer
    # expiries only send an advert.  Handling them where they arrive (the
    # socket reader, the timer queue) instead of waking the instance's task
    # halves the scheduling per advert; anything else the machine decides is
    # queued for the task, in order.  Only when the task is idle with an
    # empty queue, so that events are never reordered.
    def _can_inline(self) -> bool:
        return not self._busy and self.coord is None and self._queued == 0

    def _inline(self, actions: list[Action], *, staged: bool = False) -> None:
        """Execute what needs no task; queue the rest, in order, for the task.

        ``staged`` (a timer pass): the first advert is built now and sent at
        the pass's end (:meth:`TimerQueue.at_pass_end`), with every other
        advert of the pass; what follows it (VIPs, GARPs, notify) waits for
        the task, which runs after the pass.  This instance has decided
        before its advert leaves, and all due adverts leave before any
        instance's VIP work, as in keepalived's order (vrrp.c
        vrrp_state_goto_master: the advert, then vrrp_state_become_master).
        """
        m = self.machine
        i = 0
        head: _Staged | None = None
        while i < len(actions):
            action = actions[i]
            if isinstance(action, SendAdvert):
                if not staged:
                    if not self._send_advert_nowait(action.priority):
                        break
                elif head is not None:
                    break  # a second advert: after the first, by the task
                else:
                    head = self._stage_advert(action.priority)
                    if head is None:
                        break
            elif not isinstance(action, (ScheduleTimer, CancelTimer)):
                # Timer actions only echo ``machine.timers``, which is read below.
                break
            i += 1
        if i < len(actions):
            rest: list[Action | _Staged] = list(actions[i:])
            if head is not None:
                head.queued = True
                rest.insert(0, head)
            self.feed_nowait(_Run(rest))
        self._timer.set(min(m.timers.values(), default=None))

    def _on_timer(self) -> None:
        """The timer queue's callback: this instance's earliest deadline has come."""
        if not self._can_inline():
            self.wake(self.env.timers.now)
            return
        # The queue's pass time, shared by every deadline of the pass (vrrp/timer.py).
        self._inline(self._fire_due(self.env.timers.now), staged=True)

    def _fire_due(self, now: float) -> list[Action]:
        """Whatever is overdue fires once, however late we are (after SIGSTOP/SIGCONT):
        the machine re-arms from ``now``, as keepalived's scheduler does, so missed
        periods never queue up.  A deadline within ``DUE_SLACK`` ahead of ``now``
        fires at its own time: the machine takes it as current, not stale."""
        m = self.machine
        out: list[Action] = []
        self._seen = max(self._seen, now)
        for kind, at in sorted(m.timers.items(), key=lambda kv: kv[1]):
            if at <= now + DUE_SLACK and kind in m.timers:
                out.extend(m.handle(TimerFired(kind), max(now, at)))
        return out

    def feed_nowait(self, event: Event | _Wake | _Run) -> None:
        try:
            self._send.send_nowait(event)
            self._queued += 1
        except trio.WouldBlock:
            self.rejected["queue_full"] += 1
        except trio.ClosedResourceError:
            pass

    def _tracker_event(self, name: str, delta: int, fault: bool) -> None:
        self.feed_nowait(TrackerChanged(name, delta, fault))

    def _follows_interface_address(self) -> bool:
        """Does the advert source come from the interface, and follow its addresses?

        Not with a configured source (keepalived_netlink.c
        ``netlink_if_address_filter`` never moves ``VRRP_FLAG_SADDR_FROM_CONFIG``
        instances), nor for an IPv6 VMAC holding its own link-local copy
        (keepalived replaces that copy rather than faulting).
        """
        inst = self.inst
        if inst.unicast_src_ip is not None or inst.mcast_src_ip is not None:
            return False
        if inst.family == 6 and inst.use_vmac is not None and not inst.vmac_xmit_base:
            return False
        return bool(inst.interface) and self.iface is not None

    def _take_source(self, addr: IPAddress | None) -> None:
        """Record the interface's new source address; a lost one stays our ``src``
        until the machine has said goodbye with it (the priority-0 advert of
        vrrp.c ``vrrp_state_leave_master``, sent before keepalived forgets it)."""
        iface = self.iface
        if iface is not None and self.inst.family == 4:
            v4 = addr if isinstance(addr, ipaddress.IPv4Address) else None
            self.iface = dataclasses.replace(iface, ipv4=v4)
        elif iface is not None:
            v6 = addr if isinstance(addr, ipaddress.IPv6Address) else None
            self.iface = dataclasses.replace(iface, ipv6_ll=v6)
        if addr is not None:
            self.src = addr
            self.params = dataclasses.replace(self.params, own_address=addr)

    def _on_sources(self, addr: IPAddress | None) -> None:
        """The watcher's news of the interface's addresses, for our family."""
        iface = self.iface
        now = None if iface is None else iface.ipv4 if self.inst.family == 4 else iface.ipv6_ll
        if addr == now:
            return
        self._take_source(addr)
        self.feed_nowait(SourceAddress(addr))

    def _initial_trackers(self) -> list[TrackerChanged | SourceAddress]:
        """Subscribe to every tracked object and return its present effect."""
        events: list[TrackerChanged | SourceAddress] = []
        inst = self.inst
        if self._follows_interface_address():
            # The watcher tells the present address during subscribe (its
            # view is newer than the start-up dump), then every change.
            heard: list[IPAddress | None] = []
            live = False

            def on_sources(sources: Any) -> None:
                addr = sources.of(inst.family)
                if live:
                    self._on_sources(addr)
                else:
                    heard.append(addr)

            self._unsubs.append(self.env.subscribe("addr", inst.interface or "", on_sources))
            live = True
            if heard and heard[-1] != self.src:
                self._take_source(heard[-1])
                self.src = heard[-1]
            events.append(SourceAddress(self.src))  # None: a fault, as below
        if self.src is None:
            # vrrp_track.c initialise_vrrp_tracking_priorities
            self.log.info(
                f"({self.name}) entering FAULT state (no IPv{inst.family} address for interface)"
            )
            if not events:
                events.append(TrackerChanged(SOURCE_TRACKER, 0, True))
        scripts_by_name = {s.name: s for s in self.config.vrrp_scripts}
        files_by_name = {f.name: f for f in self.config.vrrp_track_files}
        if_refs: dict[str, tuple[int | None, bool]] = {}
        if inst.interface and not inst.dont_track_primary:
            if_refs[inst.interface] = (None, False)
        for ref in inst.track_interface:
            if_refs[ref.name] = (ref.weight, ref.reverse)
        for ifname, (weight, reverse) in if_refs.items():
            info = self.env.netlink.interface(ifname)
            eff = track_effect(weight, reverse, info is not None and info.up)
            events.append(TrackerChanged(f"if:{ifname}", eff.delta, eff.fault))

            def on_link(
                up: Any, n: str = ifname, w: int | None = weight, r: bool = reverse
            ) -> None:
                e = track_effect(w, r, bool(up))
                self._tracker_event(f"if:{n}", e.delta, e.fault)

            self._unsubs.append(self.env.subscribe("if", ifname, on_link))
        for ref in inst.track_script:
            vs = scripts_by_name.get(ref.name)
            if vs is None:
                continue
            weight = ref.weight if ref.weight is not None else vs.weight
            reverse = ref.reverse if ref.weight is not None else vs.weight_reverse
            eff = track_effect(weight, reverse, not vs.init_fail)
            events.append(TrackerChanged(f"script:{vs.name}", eff.delta, eff.fault))

            def on_script(ok: Any, n: str = vs.name, w: int = weight, r: bool = reverse) -> None:
                e = track_effect(w, r, bool(ok))
                self._tracker_event(f"script:{n}", e.delta, e.fault)

            self._unsubs.append(self.env.subscribe("script", vs.name, on_script))
        for ref in inst.track_file:
            tf = files_by_name.get(ref.name)
            if tf is None:
                continue
            weight = ref.weight if ref.weight is not None else tf.weight
            reverse = ref.reverse if ref.weight is not None else tf.weight_reverse
            # The service read the file before any instance started and hands
            # its value over during subscribe: that is the initial effect.
            events.append(
                self._track_live(
                    "file",
                    tf.name,
                    functools.partial(_file_effect, weight, reverse),
                    initial=0,
                )
            )
        for ref in inst.track_bfd:
            # The weight was settled when parsed (vrrp_track.c alloc_track_bfd).
            # A tracked BFD session counts as down until it reports Up
            # (vrrp_track.c alloc_vrrp_tracked_bfd, initialise_track_bfd_state);
            # the rules are track_script's (vrrp_scheduler.c vrrp_handle_bfd_event).
            effect = _up_effect(ref.weight or 0, ref.reverse)
            events.append(self._track_live("bfd", ref.name, effect))
        for ref in inst.track_process:
            # Weight and reverse were settled when parsed (vrrp_track.c
            # alloc_track_process); the rules are track_script's (vrrp_track.c
            # process_update_track_process_status).  The watcher scanned /proc
            # before any instance started; without one, quorum is never gained.
            ev = self._track_live("process", ref.name, _up_effect(ref.weight or 0, ref.reverse))
            if ev.fault and not ref.reverse:  # unweighted, and quorum not gained
                self.log.info(
                    f"({self.name}) entering FAULT state (tracked process {ref.name}"
                    " quorum not achieved)"
                )
            events.append(ev)
        return events

    def _track_live(
        self, kind: str, name: str, effect: Callable[[Any], TrackEffect], initial: Any = False
    ) -> TrackerChanged:
        """Subscribe to a tracker that holds live state, and return its initial effect.

        Such a tracker (a BFD session, a process watcher, a track file the
        service read before any instance started) delivers its present value
        during ``subscribe``: that value is the initial one, so a reload keeps
        an Up session Up, and never a queued event behind a stale one.  Until
        it has said anything the object counts as ``initial``.
        """
        now: list[Any] = []

        def on_change(value: Any) -> None:
            if not now:
                now.append(value)
                return
            e = effect(value)
            self._tracker_event(f"{kind}:{name}", e.delta, e.fault)

        self._unsubs.append(self.env.subscribe(kind, name, on_change))
        if not now:
            now.append(initial)
        eff = effect(now[0])
        return TrackerChanged(f"{kind}:{name}", eff.delta, eff.fault)

    # ------------------------------------------------------------ life cycle
    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Subscribe, start the machine, then serve events until stopped."""
        inst = self.inst
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self.iface is None:
                    self.log.error(f"({self.name}) interface {inst.interface} not found")
                else:
                    await self._vmac_up()
                    if inst.promote_secondaries and inst.interface:
                        self._promoted = set_promote_secondaries(inst.interface)
                    await self._firewall_up()
                    link = self.advert_link or self.iface
                    group = mcast_group(inst, self.config)
                    key = SocketKey(
                        inst.family,
                        link.name,
                        inst.unicast_src_ip,
                        None if inst.is_unicast else group,
                    )
                    try:
                        if self.params.auth_type == packet.AUTH_AH:
                            # AH adverts use a protocol-51 socket of their own (vrrp/ahsocket.py)
                            from vrrp.ahsocket import AhSocket

                            ahs = AhSocket(
                                key,
                                link.index,
                                group,
                                inst.virtual_router_id,
                                self.params.auth_pass,
                                unicast=inst.is_unicast,
                            )
                            self._socket = self._ah = ahs
                            nursery.start_soon(ahs.run, self._on_ah_datagram)
                        else:
                            self._socket = self.env.pool.subscribe(
                                key,
                                link.index,
                                group,
                                inst.virtual_router_id,
                                self._on_datagram,
                                repeat=self._on_repeat,
                            )
                    except OSError as exc:
                        self.log.error(f"({self.name}) cannot open VRRP socket: {exc}")
                if self.params.config_fault:
                    self.log.info(
                        f"({self.name}) Cannot use unicast without any peers - going to fault state"
                    )
                for ev in self._initial_trackers():
                    await self._handle(ev)
                # Listening now; the machine starts with the rest of its batch.
                task_status.started()
                batch = self._batch
                start = trio.current_time() if batch is None else await batch.start_time(self._turn)
                await self._handle(Start(self.env.startup_until), start)
                self._leave_batch()
                await self._serve()
                nursery.cancel_scope.cancel()
        finally:
            self._leave_batch()
            self._timer.cancel()
            for unsub in self._unsubs:
                unsub()
            self._unsubs.clear()
            if self._ah is not None:
                self._ah.close()
            elif self._socket is not None:
                self.env.pool.unsubscribe(self._socket.key, inst.virtual_router_id)
            if self.machine.vips_set or self.vips.is_up:
                # Cancelled without a clean stop: never leave a VIP behind.
                self.vips.down()
            if self.vmac is not None:
                try:
                    self.vmac.down()
                except VmacError as exc:
                    self.log.error(f"({self.name}) {exc}")
            if self._promoted and inst.interface:
                reset_promote_secondaries(inst.interface)
            if self.no_accept is not None:
                self.no_accept.stop()
            self._done.set()

    async def _serve(self) -> None:
        m = self.machine
        timer = self._timer
        while True:
            timer.set(min(m.timers.values(), default=None))
            self.env.timers.flush()
            self._busy = False
            event = await self._recv.receive()
            self._queued -= 1
            self._busy = True
            now = trio.current_time()
            if isinstance(event, _Run):
                await self._do_all(event.actions)
                continue
            if isinstance(event, _Wake):
                # The timer queue's deadline, or a sync-group sibling moved our timers.
                if event.at is not None:
                    now = self._pass_time(event.at, now)
                if self.coord is None:
                    await self._do_all(self._fire_due(now))
                    continue
                for kind, at in sorted(m.timers.items(), key=lambda kv: kv[1]):
                    if at <= now + DUE_SLACK and kind in m.timers:
                        await self._handle(TimerFired(kind), now)
                continue
            await self._handle(event, now)
            if isinstance(event, AdminStop):
                return

    def _leave_batch(self) -> None:
        if self._batch is not None:
            self._batch.arrived(self._turn)
            self._batch = None

    def wake(self, at: float | None = None) -> None:
        """Re-read the timers: another task changed this machine's deadlines
        (``at``: the timer pass found them due while this task had work queued)."""
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
            self._send.send_nowait(_WAKE if at is None else _Wake(at))
            self._queued += 1

    def _pass_time(self, at: float, now: float) -> float:
        """When deadlines a timer pass found due, while this task had work queued, fire.

        At the pass's own time, as inline (vrrp/timer.py ``fire_due``): a
        task still handing over a moment ago's work (a GARP burst due a
        millisecond before the advert) must not date its next advert from
        its own later turn, or the masters due together drift apart, for
        good.  Never before a time the machine has already been given, and
        the present once the task is over half an advert interval late (the
        machine re-arms from now, as after a stop: missed periods never
        queue up).
        """
        if now - at > 0.5 * self.params.adver_int:
            return now
        return max(at, self._seen)

    async def stop(self) -> None:
        """Leave cleanly: priority-0 advert, VIPs removed, notify_stop; then return."""
        self.feed_nowait(AdminStop())
        with trio.move_on_after(2):
            await self._done.wait()

    def adopt(self, inst: VrrpInstance, config: Config) -> None:
        """A reload left this instance as it was: take the new objects, re-apply nothing.

        ``inst`` equals the running one (source lines aside) under the same
        globals and tracked definitions, so keepalived's clear_diff_vrrp finds
        nothing to change and restore_vrrp_state carries the state over: no
        GARP, no VIP, timer or subscription moves.  Holding the new objects
        lets the old configuration go.
        """
        self.inst = inst
        self.config = config

    def reload(self, inst: VrrpInstance, config: Config) -> None:
        """Same instance identity, possibly new parameters: state and VIPs stay."""
        old_vips = {vip_key(a) for a in self.vips.addresses}
        retrack = _tracking(self.inst, self.config) != _tracking(inst, config)
        self.inst = inst
        self.config = config
        if inst.promote_secondaries and not self._promoted and self.iface and inst.interface:
            # vrrp.c vrrp_complete_instance runs again on a reload: a flag set now
            # acts now; one removed leaves the setting on until the stop.
            self._promoted = set_promote_secondaries(inst.interface)
        self.src = own_address(inst, self.iface)
        self.params = params_from_config(inst, config.global_defs, own_address=self.src)
        self.receive_params = self.params.receive_params()
        if self._ah is not None:  # a changed auth_pass keys the next ICV
            self._ah.secret = packet.pad_password(self.params.auth_pass)
        self.target = NotifyTarget("INSTANCE", inst.name, inst.notify, inst.smtp_alert)
        new_vips = VipSet(
            self.env.netlink,
            vmac_ifname(inst) or inst.interface,
            inst.virtual_ipaddress,
            inst.virtual_ipaddress_excluded,
            inst.virtual_routes,
            inst.virtual_rules,
        )
        new_keys = {vip_key(a) for a in new_vips.addresses}
        if self.vips.is_up and new_keys != old_vips:
            # keepalived clear_diff_vrrp: drop what went away, add what is new.
            gone = VipSet(
                self.env.netlink,
                inst.interface,
                tuple(a for a in self.vips.addresses if vip_key(a) not in new_keys),
            )
            gone.is_up = True
            gone.down()
            new_vips.up()
        if self.vips.is_up and new_vips.rules != self.vips.rules:
            # vrrp.c clear_diff_vrrp_vrules: remove the rules that went away, add the rest.
            from vrrp.static import rules_gone

            lost = tuple(rules_gone(self.vips.rules, new_vips.rules))
            gone_rules = VipSet(self.env.netlink, None, (), rules=lost)
            gone_rules.down(force=True)
            VipSet(self.env.netlink, None, (), rules=new_vips.rules).up()
        new_vips.is_up = self.vips.is_up
        self.vips = new_vips
        if retrack and self._nursery is not None:
            # Tracked objects changed (or its sync group's did): subscribe
            # afresh; an object no longer tracked stops counting.
            for unsub in self._unsubs:
                unsub()
            self._unsubs.clear()
            events = self._initial_trackers()
            names = {e.name if isinstance(e, TrackerChanged) else SOURCE_TRACKER for e in events}
            for untracked in set(self.machine.trackers) - names:
                self.feed_nowait(TrackerChanged(untracked, 0, False))
            for ev in events:
                self.feed_nowait(ev)
        self.feed_nowait(Reload(self.params))

    # ------------------------------------------------------------ actions
    async def _handle(self, event: Event, now: float | None = None) -> None:
        if now is None:
            now = trio.current_time()
        self._seen = max(self._seen, now)
        if self.coord is not None:
            await self.coord.handle(self, event, now)
            return
        await self._do_all(self.machine.handle(event, now))

    async def _do_all(self, actions: list[Action] | list[Action | _Staged]) -> None:
        """Execute actions in order; yield once after an advert this task sent before VIPs.

        Instances whose deadlines fired in one pass but whose adverts only
        their task can send (unicast, IPv6, AH, sync groups, a busy task)
        run in one scheduler batch: yielding after the send lets each of
        them send before any adds its VIPs, the inline path's order.
        """
        for k, action in enumerate(actions):
            sends = isinstance(action, SendAdvert) or (
                isinstance(action, _Staged) and not action.sent
            )
            await self._do(action)
            if sends and any(isinstance(a, AddVips) for a in actions[k + 1 :]):
                await trio.lowlevel.checkpoint()

    async def _do(self, action: object) -> None:
        if isinstance(action, SendAdvert):
            await self._send_advert(action.priority)
        elif isinstance(action, _Staged):
            if not action.sent:  # the kernel refused it at the pass's end
                try:
                    await action.sock.send_datagram(action.datagram)
                except (OSError, trio.ClosedResourceError) as exc:
                    self.log.info(f"({self.name}) send advert error: {exc!r}")
                action.sent = True
        elif isinstance(action, AddVips):
            await self._firewall_drop(True)
            for err in self.vips.up():
                self.log.error(f"({self.name}) {err}")
        elif isinstance(action, RemoveVips):
            for err in self.vips.down():
                self.log.error(f"({self.name}) {err}")
            await self._firewall_drop(False)
        elif isinstance(action, SendGarpBurst):
            self._garp(action.count, action.reason)
        elif isinstance(action, RunNotify):
            self.env.notifier.notify(self.target, action.state.value, action.priority)
        elif isinstance(action, NotifyMasterRxLowerPri):
            script = self.inst.notify.master_rx_lower_pri
            if script is not None:
                self.env.notifier.notify(
                    NotifyTarget("INSTANCE", self.name, type(self.inst.notify)(generic=script)),
                    "MASTER_RX_LOWER_PRI",
                    self.machine.effective_priority,
                )
        elif isinstance(action, PriorityChanged):
            # vrrp_track.c vrrp_set_effective_priority
            self.log.info(
                f"({self.name}) Changing effective priority from {action.old} to {action.new}"
            )
            if priority_changes_wanted(self.inst, self.config):
                self.env.notifier.priority_changed(self.target, action.master, action.new)
        elif isinstance(action, EnterState):
            if action.new is State.MASTER and self._ah is not None:
                self._ah.counter.entering_master()
            if action.new is not action.old:
                self.transitions += 1
                self.last_transition = TransitionRecord(
                    time.time(), action.old, action.new, action.reason
                )
            self._log_state(action)

    def _log_state(self, action: EnterState) -> None:
        new = action.new
        if new is State.STOP:
            self.log.info(f"({self.name}) Stopped")
            return
        suffix = " (init)" if action.reason == "init" else ""
        self.log.info(f"({self.name}) Entering {new.value} STATE{suffix}")

    def _send_advert_nowait(self, priority: int) -> bool:
        """Send a multicast advert without waiting; False when only the task may send it."""
        built = self._build_advert(priority)
        if built is None:
            return False
        sock, datagram, ip_id = built
        try:
            if not sock.sendto_nowait(datagram):
                return False
        except OSError as exc:
            self.log.info(f"({self.name}) send advert error: {exc!r}")
        self.ip_id = ip_id
        return True

    def _stage_advert(self, priority: int) -> _Staged | None:
        """Build the advert now, send it at the end of the timer pass; None: the task sends it."""
        built = self._build_advert(priority)
        if built is None:
            return None
        sock, datagram, self.ip_id = built
        staged = _Staged(sock, datagram)
        self.env.timers.at_pass_end(functools.partial(self._send_staged, staged))
        return staged

    def _send_staged(self, staged: _Staged) -> None:
        try:
            staged.sent = staged.sock.sendto_nowait(staged.datagram)
        except OSError as exc:
            staged.sent = True  # consumed, as _send_advert_nowait does
            self.log.info(f"({self.name}) send advert error: {exc!r}")
        if not staged.sent and not staged.queued:
            staged.queued = True
            self.feed_nowait(_Run([staged]))

    def _build_advert(self, priority: int) -> tuple[PoolSocket, Datagram, int] | None:
        """A multicast IPv4 advert ready to send, with its IP id; None: the task sends it."""
        sock, inst = self._socket, self.inst
        if not isinstance(sock, PoolSocket) or self.src is None or inst.is_unicast or priority == 0:
            return None
        dst = mcast_group(inst, self.config)
        # An instance sends the same VRRP part every second: encode it once per
        # priority and parameter set (a reload brings new params, a new entry).
        c = self._advert_cache
        if c is not None and c[0] == priority and c[1] is self.params and c[2] == dst:
            payload = c[3]
        else:
            payload = packet.encode(self.params.advert(priority), src=self.src, dst=dst)
            self._advert_cache = (priority, self.params, dst, payload)
        ip_id = self.ip_id % 0xFFFF + 1
        datagram = sock.datagram(payload, src=self.src, dst=dst, ttl=255, ip_id=ip_id)
        return None if datagram is None else (sock, datagram, ip_id)

    async def _send_advert(self, priority: int) -> None:
        if self._socket is None or self.src is None:
            return
        inst = self.inst
        advert = self.params.advert(priority)
        # IP id counts per advert, not per peer (vrrp.c vrrp_update_pkt).
        self.ip_id = self.ip_id % 0xFFFF + 1
        if inst.is_unicast:
            dests: list[IPAddress] = [p.address for p in inst.unicast_peers]
            ttl = inst.unicast_ttl
        else:
            dests = [mcast_group(inst, self.config)]
            ttl = 255
        for dst in dests:
            csum_dst = dst
            if inst.is_unicast and inst.v3_checksum_as_v2 and inst.family == 4:
                csum_dst = self.config.global_defs.vrrp_mcast_group4
            payload = packet.encode(advert, src=self.src, dst=csum_dst)
            try:
                await self._socket.send(payload, src=self.src, dst=dst, ttl=ttl, ip_id=self.ip_id)
            except (OSError, trio.ClosedResourceError) as exc:
                self.log.info(f"({self.name}) send advert error: {exc!r}")
                return
        if priority == 0:
            self.log.info(f"({self.name}) sent 0 priority")

    async def _firewall_up(self) -> None:
        """no_accept: the instance's drop set exists from start-up (vrrp/firewall.py)."""
        inst = self.inst
        if inst.priority >= 255 or inst.accept is not False:
            return  # accept mode, or the address owner: no firewall
        from vrrp.firewall import FirewallError, NoAccept

        self.no_accept = NoAccept.for_instance(inst, self.config.global_defs)
        if self.no_accept is None:
            return
        try:
            await trio.to_thread.run_sync(self.no_accept.start)
        except FirewallError as exc:
            self.log.error(f"({self.name}) firewall not set up: {exc}")
            self.no_accept = None

    async def _firewall_drop(self, on: bool) -> None:
        """vrrp.c vrrp_state_become_master / leave_master: the VIPs' drop rule."""
        if self.no_accept is None or self.no_accept.dropping == on:
            return
        from vrrp.firewall import FirewallError

        word = "setting" if on else "removing"
        self.log.info(f"({self.name}) {word} firewall drop rule")
        try:
            await trio.to_thread.run_sync(self.no_accept.drop, on)
        except FirewallError as exc:
            self.log.error(f"({self.name}) {exc}")

    async def _vmac_up(self) -> None:
        """use_vmac: create the macvlan before the socket opens on it (vrrp/vmac.py)."""
        self.vmac = Vmac.for_instance(self.inst)
        if self.vmac is None or self.iface is None:
            return
        try:
            index = await trio.to_thread.run_sync(self.vmac.up)
        except (VmacError, OSError) as exc:
            self.log.error(f"({self.name}) {exc}")
            self.vmac = None
            return
        getattr(self.env.netlink, "stale", lambda: None)()  # a new link: re-read the table
        mac = bytes(int(b, 16) for b in self.vmac.mac.split(":"))
        link = dataclasses.replace(self.iface, name=self.vmac.name, index=index, mac=mac)
        if self.vmac.kind == "ipvlan":
            # vrrp.c vrrp_complete_instance: the adverts use the ipvlan, the
            # VIPs (and their GARPs) stay on the configured interface
            self.advert_link = link
            self.log.info(f"({self.name}) ipvlan {self.vmac.name} up on {self.iface.name}")
            return
        self.garp_link = link
        if not self.vmac.xmit_base:
            self.advert_link = self.garp_link
        self.log.info(f"({self.name}) VMAC {self.vmac.name} up on {self.iface.name}")

    def _garp(self, count: int, reason: str = "master") -> None:
        """GARP/NA for each VIP on the link it sits on (vrrp.c vrrp_send_link_update).

        "extra_if" sends one frame for the first VIP of each link other than
        the instance's (vrrp.c vrrp_send_vmac_update, for garp_extra_if).
        """
        if self.iface is None or self._nursery is None or count <= 0:
            return
        link = self.garp_link or self.iface
        g = self.config.global_defs
        inst = self.inst
        by_link: dict[str, list[IPAddress]] = {}
        for s in (*inst.virtual_ipaddress, *inst.virtual_ipaddress_excluded):
            if s.dev is None or s.dev == link.name:
                if reason != "extra_if":
                    by_link.setdefault(link.name, []).append(s.address.ip)
            elif s.dev != inst.interface:  # the base link of a VMAC: not this VIP's link
                vips = by_link.setdefault(s.dev, [])
                if reason != "extra_if" or not vips:
                    vips.append(s.address.ip)
        for name, vips in by_link.items():
            out = link if name == link.name else self.env.netlink.interface(name)
            if out is None:
                continue
            ann = self.env.announcer(
                out,
                g.vrrp_garp_interval,
                g.vrrp_gna_interval,
            )
            if pklog.detail_enabled():
                self.log.info(
                    f"({self.name}) Sending/queueing gratuitous ARPs on {name} for "
                    + " ".join(str(v) for v in vips)
                )
            self._nursery.start_soon(ann.announce, vips, count)


def _up_effect(weight: int, reverse: bool) -> Callable[[Any], TrackEffect]:
    """A live tracker's value (up or down) as its effect on the instance."""
    return lambda up: track_effect(weight, reverse, bool(up))


def _file_effect(weight: int, reverse: bool, value: Any) -> TrackEffect:
    return track_file_effect(int(value), weight, reverse)


def _tracking(inst: VrrpInstance, config: Config) -> tuple[object, ...]:
    """What decides an instance's tracker subscriptions (``_initial_trackers``)."""
    return (
        inst.interface,
        inst.unicast_src_ip,  # with neither, the interface's address is followed
        inst.mcast_src_ip,
        inst.dont_track_primary,
        inst.track_interface,
        inst.track_script,
        inst.track_file,
        inst.track_bfd,
        inst.track_process,
        config.vrrp_scripts,
        config.vrrp_track_files,
        config.vrrp_track_processes,
    )


class SyncCoord:
    """A vrrp_sync_group: routes members' events through :class:`vrrp.syncgroup.SyncGroup`.

    The group may act on several members at once; each action is executed on
    the driver it is tagged with, and siblings whose timers moved are woken.
    """

    def __init__(
        self, group: VrrpSyncGroup, drivers: dict[str, InstanceDriver], notifier: Notifier
    ) -> None:
        self.config = group
        self.drivers = drivers
        self.notifier = notifier
        self.group = SyncGroup(group.name, {n: d.machine for n, d in drivers.items()})
        self.target = NotifyTarget("GROUP", group.name, group.notify, group.smtp_alert)
        for d in drivers.values():
            d.coord = self

    async def handle(self, origin: InstanceDriver, event: Event, now: float) -> None:
        touched: set[str] = set()
        actions = self.group.handle(origin.name, event, now)
        for k, (name, action) in enumerate(actions):
            if isinstance(action, GroupNotify):
                self.notifier.notify(self.target, action.state.value, None)
                continue
            driver = self.drivers.get(name)
            if driver is None:
                continue
            touched.add(name)
            await driver._do(action)
            if isinstance(action, SendAdvert) and any(
                n == name and isinstance(a, AddVips) for n, a in actions[k + 1 :]
            ):
                # as InstanceDriver._do_all: other groups' adverts before our VIPs
                await trio.lowlevel.checkpoint()
        for name in touched - {origin.name}:
            self.drivers[name].wake()
