"""The VRRP state machine of one instance, sans I/O.

Theory of operation
-------------------
This module owns, for one vrrp_instance: the states (INIT, BACKUP, MASTER,
FAULT, and STOP after an admin stop), the timers (the master's advert
timer, the backup's Master_Down timer, the delayed and lower-priority GARP
timers), the election rule, tracking-driven priority and FAULT (an
interface left without an address for our adverts included), and which side
effects a transition asks for.  It must never touch sockets, clocks, netlink
or scripts: time arrives as the ``now`` argument, and side effects leave as
:data:`Action` values that the trio driver performs in order.

``VrrpMachine.handle(event, now) -> list[Action]`` is the only way in.  The
driver feeds it decoded adverts (:mod:`vrrp.packet` does the wire checks),
timer expiries it scheduled on our request, tracker results, changes of the
interface's source address, admin stop and reload.  Timers are absolute
deadlines on the driver's clock; a :class:`TimerFired` for a deadline we
have since moved or cancelled is ignored, so the driver need not be careful
about races.

Which event is handled how in which state is the table ``_TRANSITIONS``
below; the handful of conditions that do not fit a table (the election rule
itself, preempt_delay, sync-group gating) sit right beside it in the
handlers.  Every branch names the RFC section or keepalived (v2.2.7)
function it mirrors: keepalived/vrrp/vrrp.c, vrrp_scheduler.c, vrrp_track.c.

Sync groups are coordinated by :mod:`vrrp.syncgroup`, which gates our move
to MASTER through ``sync_gate`` and pushes :class:`SyncForce` events.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeAlias

# Events, actions and parameters are frozen_dataclass (pykeep/config/model.py):
# the same frozen, slotted dataclasses for less than half the import cost
# (27 -> 12 ms).  Classes without fields keep dataclass, which takes them.
from pykeep.config.model import GlobalDefs, VrrpInstance, frozen_dataclass
from vrrp.packet import (
    AUTH_AH,
    AUTH_NONE,
    AUTH_PASS,
    MCAST_GROUP4,
    Advert,
    IPAddress,
    ReceiveParams,
    pad_password,
)

PRIO_OWNER = 255
PRIO_STOP = 0
#: the tracker name of "the interface has no address for our adverts"
SOURCE_TRACKER = "src"

# --------------------------------------------------------------------------
# states, timers


class State(enum.Enum):
    """keepalived's instance states; STOP is what notify_stop reports."""

    INIT = "INIT"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"
    STOP = "STOP"


class TimerKind(enum.Enum):
    ADVERT = "advert"  # MASTER: Adver_Timer (RFC 5798 §6.4.3)
    MASTER_DOWN = "master_down"  # BACKUP: Master_Down_Timer (RFC 5798 §6.4.2)
    GARP_DELAY = "garp_delay"  # second GARP burst (vrrp_gratuitous_arp_thread)
    GARP_LOWER_PRIO = "garp_lower_prio"  # vrrp_lower_prio_gratuitous_arp_thread


# --------------------------------------------------------------------------
# events (in)


@frozen_dataclass
class Start:
    """Leave INIT (vrrp_scheduler.c ``vrrp_init_state``).

    Send the instance's initial TrackerChanged events first, so that a down
    tracked interface starts us in FAULT.  ``delayed_until``: the end of
    global ``vrrp_startup_delay``, before which no BACKUP's Master_Down_Timer
    runs (vrrp_scheduler.c ``vrrp_init_instance_sands``).
    """

    delayed_until: float | None = None


@frozen_dataclass
class AdvertReceived:
    """An advert that passed :func:`vrrp.packet.decode`, with its IP source."""

    advert: Advert
    src: IPAddress


@frozen_dataclass
class TimerFired:
    kind: TimerKind


@frozen_dataclass
class TrackerChanged:
    """The current effect of one tracked object (interface, script, file, sync group).

    ``name`` keys the tracker (e.g. ``"if:eth0"``, ``"script:chk_nginx"``);
    a later event for the same name replaces the earlier one.  Compute the
    fields with :func:`track_effect` / :func:`track_file_effect`.
    """

    name: str
    delta: int = 0
    fault: bool = False


@frozen_dataclass
class SourceAddress:
    """The interface address our adverts come from changed; None: it has none left.

    Only for an instance without ``mcast_src_ip`` / ``unicast_src_ip``
    (keepalived_netlink.c ``netlink_if_address_filter`` leaves those alone).
    The last IPv4 address (IPv6: link-local) leaving the interface is a fault
    (``down_instance``); an address arriving clears it (``try_up_instance``);
    one address taking over from another only changes our source, which also
    breaks election ties (vrrp.c ``vrrp_saddr_cmp``).
    """

    address: IPAddress | None


@dataclass(frozen=True, slots=True)
class AdminStop:
    """Shutdown or instance removed on reload: leave with a priority-0 advert."""


@frozen_dataclass
class Reload:
    """New parameters for the same instance (matched by the driver, ``vrrp_exist``)."""

    params: MachineParams


@frozen_dataclass
class SyncForce:
    """A sync group pulls this member to ``state`` (vrrp_sync.c vrrp_sync_*)."""

    state: State


Event: TypeAlias = (
    Start
    | AdvertReceived
    | TimerFired
    | TrackerChanged
    | SourceAddress
    | AdminStop
    | Reload
    | SyncForce
)

# --------------------------------------------------------------------------
# actions (out)


@frozen_dataclass
class SendAdvert:
    """Encode and send an advert with this priority (0 on stop/fault)."""

    priority: int


@dataclass(frozen=True, slots=True)
class AddVips:
    """Install virtual_ipaddress (+ _excluded, routes, rules) — vrrp_state_become_master."""


@dataclass(frozen=True, slots=True)
class RemoveVips:
    """Remove everything AddVips installed — vrrp_restore_interface."""


@frozen_dataclass
class SendGarpBurst:
    """Send ``count`` gratuitous ARPs / unsolicited NAs for every VIP.

    ``reason``: "master", "delay", "refresh" or "lower_prio"; "extra_if" is
    one frame for the first VIP on each interface other than the instance's.
    """

    count: int
    reason: str = "master"


@frozen_dataclass
class ScheduleTimer:
    """(Re)arm timer ``kind`` to fire at absolute time ``at``; replaces any earlier one."""

    kind: TimerKind
    at: float


@frozen_dataclass
class CancelTimer:
    kind: TimerKind


@frozen_dataclass
class RunNotify:
    """Run notify_<state> and ``notify`` with ``INSTANCE name STATE priority``."""

    state: State
    priority: int


@frozen_dataclass
class NotifyMasterRxLowerPri:
    """Run notify_master_rx_lower_pri (vrrp_state_master_rx)."""

    src: IPAddress


@frozen_dataclass
class PriorityChanged:
    """Log ``(name) Changing effective priority from OLD to NEW``; with
    ``notify_priority_changes`` a ``MASTER_PRIORITY``/``BACKUP_PRIORITY``
    FIFO line (vrrp_track.c ``vrrp_set_effective_priority``)."""

    old: int
    new: int
    master: bool


@frozen_dataclass
class EnterState:
    """Log ``(name) Entering NEW STATE`` and update metrics."""

    old: State
    new: State
    reason: str


Action: TypeAlias = (
    SendAdvert
    | AddVips
    | RemoveVips
    | SendGarpBurst
    | ScheduleTimer
    | CancelTimer
    | RunNotify
    | NotifyMasterRxLowerPri
    | PriorityChanged
    | EnterState
)

# --------------------------------------------------------------------------
# parameters


@frozen_dataclass
class MachineParams:
    """Everything the machine needs from keepalived.conf, with globals resolved.

    Times in seconds.  ``own_address`` is the source address our adverts
    carry (mcast_src_ip / unicast_src_ip / the interface's primary address);
    it breaks equal-priority ties (vrrp.c ``vrrp_saddr_cmp``).
    """

    name: str
    vrid: int
    priority: int = 100
    adver_int: float = 1.0
    version: int = 2
    family: int = 4
    nopreempt: bool = False
    preempt_delay: float = 0.0
    own_address: IPAddress | None = None
    addresses: tuple[IPAddress, ...] = ()
    auth_type: int = AUTH_NONE
    auth_pass: bytes = b""
    unicast: bool = False
    unicast_peers: tuple[IPAddress, ...] = ()
    check_unicast_src: bool = False
    v3_checksum_as_v2: bool = False
    garp_master_delay: float = 5.0
    garp_master_repeat: int = 5
    garp_master_refresh: float = 0.0
    garp_master_refresh_repeat: int = 1
    garp_lower_prio_delay: float = 0.0
    garp_lower_prio_repeat: int = 0
    # garp_extra_if: while MASTER, one GARP/NA every this many seconds on each
    # other interface holding a VIP (vrrp.c vrrp_send_vmac_update); 0: never.
    garp_extra_if: float = 0.0
    skip_check_adv_addr: bool = False
    # keepalived drops an advert whose address count or list differs from
    # ours (vrrp.c vrrp_check_packet returns VRRP_PACKET_KO after counting
    # addr_list_err), so a VRID clash never elects across clusters. False
    # only counts and accepts, which RFC 3768 §7.1 also allows ("MAY drop").
    drop_addr_mismatch: bool = True
    # vrrp.c vrrp_state_master_rx: a MASTER that hears a lower priority stays
    # silent (and keeps its advert timer), or answers a higher one before
    # yielding.  Strict mode forces both (vrrp_complete_instance).
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    # Master_Down_Interval counts this many advert intervals, not 3 (VRRP_MS_DOWN_TIMER).
    down_timer_adverts: int = 3
    # keepalived's num_config_faults > 0: the instance stays in FAULT whatever
    # its trackers say (unicast_fault_no_peer without a unicast_peer).
    config_fault: bool = False
    mcast_group4: ipaddress.IPv4Address = MCAST_GROUP4

    @property
    def interval_cs(self) -> int:
        return round(self.adver_int * 100)

    def receive_params(self) -> ReceiveParams:
        """What :func:`vrrp.packet.decode` should expect for this instance."""
        return ReceiveParams(
            version=self.version,
            family=self.family,
            vrid=self.vrid,
            interval_cs=self.interval_cs,
            auth_type=self.auth_type,
            auth_pass=self.auth_pass,
            addresses=self.addresses,
            unicast=self.unicast,
            unicast_peers=self.unicast_peers,
            check_unicast_src=self.check_unicast_src,
            v3_checksum_as_v2=self.v3_checksum_as_v2,
            mcast_group4=self.mcast_group4,
        )

    def advert(self, priority: int) -> Advert:
        """The advert this instance sends with ``priority`` (encode it with vrrp.packet)."""
        return Advert(
            version=self.version,
            vrid=self.vrid,
            priority=priority,
            interval_cs=self.interval_cs,
            addresses=self.addresses,
            auth_type=self.auth_type if self.version == 2 else AUTH_NONE,
            # AH leaves the VRRP auth field zero: the secret keys the ICV instead.
            auth_data=pad_password(self.auth_pass)
            if self.version == 2 and self.auth_type == AUTH_PASS
            else b"",
        )


def params_from_config(
    instance: VrrpInstance,
    global_defs: GlobalDefs,
    *,
    own_address: IPAddress | None = None,
) -> MachineParams:
    """Resolve an instance's config against global_defs (vrrp.c vrrp_complete_instance).

    Only the first ``virtual_ipaddress`` entries of the instance's family go
    in the advert, as keepalived does; ``virtual_ipaddress_excluded`` never.
    """
    g = global_defs
    fam = instance.family
    addrs = tuple(s.address.ip for s in instance.virtual_ipaddress if s.address.version == fam)
    own = own_address or instance.unicast_src_ip or instance.mcast_src_ip
    auth = {"PASS": AUTH_PASS, "AH": AUTH_AH}.get(instance.auth_type or "", AUTH_NONE)
    strict = instance.strict_mode if instance.strict_mode is not None else g.vrrp_strict

    def flag(local: bool | None, glob: bool) -> bool:
        return glob if local is None else local

    # vrrp.c vrrp_complete_instance: the instance's garp_extra_if, else the
    # global one (whose "all" then applies too).  Without "all" only VIPs on
    # VMACs made for them would qualify, which pykeep does not make; without
    # a VIP on another interface there is nothing to send.
    if instance.garp_extra_if is None:
        extra, extra_all = (
            g.vrrp_garp_extra_if,
            instance.garp_extra_if_all or g.vrrp_garp_extra_if_all,
        )
    else:
        extra, extra_all = instance.garp_extra_if, instance.garp_extra_if_all
    own_links = {instance.interface}
    if instance.use_vmac is not None:  # the VIPs' own link (vrrp/vmac.py ifname)
        own_links.add(instance.use_vmac or f"vrrp.{instance.virtual_router_id}")
    other_if = any(
        s.dev is not None and s.dev not in own_links
        for s in (*instance.virtual_ipaddress, *instance.virtual_ipaddress_excluded)
    )

    def pick(local: float | int | None, glob: float | int) -> float:
        return float(glob if local is None else local)

    return MachineParams(
        name=instance.name,
        vrid=instance.virtual_router_id,
        priority=instance.priority,
        adver_int=instance.advert_int,
        version=instance.version,
        family=fam,
        nopreempt=instance.nopreempt,
        preempt_delay=instance.preempt_delay,
        own_address=own,
        addresses=addrs,
        auth_type=auth if not strict else AUTH_NONE,
        auth_pass=(instance.auth_pass or "").encode() if auth != AUTH_NONE else b"",
        unicast=instance.is_unicast,
        unicast_peers=tuple(p.address for p in instance.unicast_peers),
        check_unicast_src=bool(
            instance.check_unicast_src
            if instance.check_unicast_src is not None
            else g.vrrp_check_unicast_src
        ),
        v3_checksum_as_v2=instance.v3_checksum_as_v2,
        mcast_group4=g.vrrp_mcast_group4,
        garp_master_delay=pick(instance.garp_master_delay, g.vrrp_garp_master_delay),
        garp_master_repeat=int(pick(instance.garp_master_repeat, g.vrrp_garp_master_repeat)),
        garp_master_refresh=pick(instance.garp_master_refresh, g.vrrp_garp_master_refresh),
        garp_master_refresh_repeat=int(
            pick(instance.garp_master_refresh_repeat, g.vrrp_garp_master_refresh_repeat)
        ),
        # vrrp.c vrrp_complete_instance: unset, the lower-priority GARPs are off
        # in strict mode, else the global ones, which vrrp_complete_init
        # defaults to the *global* master ones (never the instance's); set,
        # strict mode resets them to 0 ("Strict mode requires no repeat garps").
        garp_lower_prio_delay=0.0
        if strict
        else pick(
            instance.garp_lower_prio_delay,
            g.vrrp_garp_lower_prio_delay
            if g.vrrp_garp_lower_prio_delay is not None
            else g.vrrp_garp_master_delay,
        ),
        garp_lower_prio_repeat=0
        if strict
        else int(
            pick(
                instance.garp_lower_prio_repeat,
                g.vrrp_garp_lower_prio_repeat
                if g.vrrp_garp_lower_prio_repeat is not None
                else g.vrrp_garp_master_repeat,
            )
        ),
        skip_check_adv_addr=bool(
            instance.skip_check_adv_addr
            if instance.skip_check_adv_addr is not None
            else g.vrrp_skip_check_adv_addr
        ),
        garp_extra_if=extra if extra_all and other_if else 0.0,
        # vrrp.c vrrp_complete_instance: strict mode resets these three whatever
        # the file says ("Strict mode requires no lower priority advert", ...).
        lower_prio_no_advert=strict
        or flag(instance.lower_prio_no_advert, g.vrrp_lower_prio_no_advert),
        higher_prio_send_advert=not strict
        and flag(instance.higher_prio_send_advert, g.vrrp_higher_prio_send_advert),
        down_timer_adverts=3
        if strict
        else int(pick(instance.down_timer_adverts, g.vrrp_down_timer_adverts)),
        # vrrp.c vrrp_complete_instance: "Cannot use unicast without any peers -
        # going to fault state" rather than falling back to multicast.
        config_fault=instance.unicast_fault_no_peer and not instance.unicast_peers,
    )


# --------------------------------------------------------------------------
# tracking (vrrp_track.c)


@frozen_dataclass
class TrackEffect:
    delta: int = 0
    fault: bool = False


def track_effect(weight: int | None, reverse: bool, ok: bool) -> TrackEffect:
    """What one track_interface / track_script result does to the priority.

    Mirrors vrrp_track.c (``process_script_update_priority``,
    ``initialise_track_script_state``, interface tracking): with
    multiplier m = -1 for ``reverse``, weight 0 (or None: unweighted
    track_interface) means failure → FAULT (with reverse, success → FAULT);
    weight > 0 adds weight·m while OK; weight < 0 adds weight·m while failed.
    """
    m = -1 if reverse else 1
    if not weight:
        return TrackEffect(0, ok != (m == 1))
    if weight > 0:
        return TrackEffect(weight * m if ok else 0)
    return TrackEffect(0 if ok else weight * m)


def track_file_effect(value: int, weight: int, reverse: bool) -> TrackEffect:
    """track_file: value × weight × m; weight 0 and a non-zero value → FAULT.

    vrrp_track.c ``initialise_vrrp_file_tracking_priorities``/``update_track_file_status``.
    """
    m = -1 if reverse else 1
    if not weight:
        return TrackEffect(0, (value != 0) == (m == 1))
    return TrackEffect(value * weight * m)


# --------------------------------------------------------------------------
# timer arithmetic (keepalived vrrp.h VRRP_TIMER_SKEW / VRRP_MS_DOWN_TIMER)


def skew(priority: int, master_adver_int: float, version: int) -> float:
    """Skew_Time in seconds.

    v2 (RFC 3768 §6.1): (256 − prio)/256 s.  v3 (RFC 5798 §6.1):
    (256 − prio) × Master_Adver_Interval / 256.  Integer microseconds like
    keepalived's VRRP_TIMER_SKEW_CALC, so we expire when keepalived would.
    """
    p = 256 - priority
    if version == 3:
        cs = round(master_adver_int * 100)
        return (p * cs * 625 // 16) / 1e6
    return (p * 1_000_000 // 256) / 1e6


def master_down_interval(
    priority: int, master_adver_int: float, version: int, adverts: int = 3
) -> float:
    """Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time (RFC 5798 §6.1)."""
    return adverts * master_adver_int + skew(priority, master_adver_int, version)


# --------------------------------------------------------------------------
# the machine

# state → event type → handler name.  Anything missing is ignored in that
# state (e.g. adverts in FAULT/INIT/STOP, as vrrp_dispatcher_read drops them).
_TRANSITIONS: dict[State, dict[type, str]] = {
    State.INIT: {
        Start: "_start",
        TrackerChanged: "_tracker",
        SourceAddress: "_source",
        Reload: "_reload",
        AdminStop: "_stop",
    },
    State.BACKUP: {
        AdvertReceived: "_backup_rx",
        TimerFired: "_backup_timer",
        TrackerChanged: "_tracker",
        SourceAddress: "_source",
        AdminStop: "_stop",
        Reload: "_reload",
        SyncForce: "_sync_force",
    },
    State.MASTER: {
        AdvertReceived: "_master_rx",
        TimerFired: "_master_timer",
        TrackerChanged: "_tracker",
        SourceAddress: "_source",
        AdminStop: "_stop",
        Reload: "_reload",
        SyncForce: "_sync_force",
    },
    State.FAULT: {
        TrackerChanged: "_tracker",
        SourceAddress: "_source",
        AdminStop: "_stop",
        Reload: "_reload",
        SyncForce: "_sync_force",
    },
    State.STOP: {},
}

_EPS = 1e-9


@dataclass
class VrrpMachine:
    """One VRRP instance's protocol state.  Drive it only through :meth:`handle`."""

    params: MachineParams
    state: State = State.INIT
    # wantstate: where we would be without the sync group (vrrp_t.wantstate).
    wantstate: State = State.BACKUP
    effective_priority: int = 0
    master_adver_int: float = 0.0
    ms_down_timer: float = 0.0
    master_src: IPAddress | None = None
    master_priority: int = 0
    timers: dict[TimerKind, float] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    trackers: dict[str, TrackEffect] = field(default_factory=dict)
    vips_set: bool = False
    preempt_time: float | None = None
    garp_refresh_at: float | None = None
    garp_extra_at: float | None = None
    # Set by a sync group: may this member become MASTER now?
    sync_gate: Callable[[VrrpMachine], bool] | None = None
    # True while a sync group holds us in FAULT for another member's fault.
    sync_fault: bool = False
    # The end of vrrp_startup_delay, while it lasts (Start.delayed_until).
    delayed_until: float | None = None

    def __post_init__(self) -> None:
        self.master_adver_int = self.params.adver_int
        self.effective_priority = self._compute_priority()
        self.ms_down_timer = self.master_down_interval
        if self.params.priority == PRIO_OWNER:
            self.wantstate = State.MASTER

    # ----- read-only views

    @property
    def name(self) -> str:
        return self.params.name

    @property
    def own_fault(self) -> bool:
        """A configuration fault or a weight-0 tracker in failure
        (vrrp_t.num_script_if_fault > 0, which starts at num_config_faults)."""
        return self.params.config_fault or any(t.fault for t in self.trackers.values())

    @property
    def skew(self) -> float:
        return skew(self.effective_priority, self.master_adver_int, self.params.version)

    @property
    def master_down_interval(self) -> float:
        return master_down_interval(
            self.effective_priority,
            self.master_adver_int,
            self.params.version,
            self.params.down_timer_adverts,
        )

    # ----- the only way in

    def handle(self, event: Event, now: float) -> list[Action]:
        """Process one event at time ``now``; return the side effects, in order."""
        name = _TRANSITIONS[self.state].get(type(event))
        out: list[Action] = []
        if name is None:
            self.counters[f"ignored_{type(event).__name__}_{self.state.value}"] += 1
            return out
        getattr(self, name)(event, now, out)
        return out

    # ----- helpers

    def _compute_priority(self) -> int:
        """vrrp_track.c ``vrrp_set_effective_priority``: clamp to 1..254, owner untouched."""
        base = self.params.priority
        if base == PRIO_OWNER:
            return base
        total = base + sum(t.delta for t in self.trackers.values())
        return max(1, min(PRIO_OWNER - 1, total))

    def _arm(self, kind: TimerKind, at: float, out: list[Action]) -> None:
        self.timers[kind] = at
        out.append(ScheduleTimer(kind, at))

    def _disarm(self, kind: TimerKind, out: list[Action]) -> None:
        if self.timers.pop(kind, None) is not None:
            out.append(CancelTimer(kind))

    def _disarm_all(self, out: list[Action]) -> None:
        for kind in list(self.timers):
            self._disarm(kind, out)

    def _fired(self, event: TimerFired, now: float) -> bool:
        """Is this expiry current?  Stale fires (moved/cancelled deadlines) are ignored."""
        at = self.timers.get(event.kind)
        if at is None or at > now + _EPS:
            self.counters["stale_timer"] += 1
            return False
        del self.timers[event.kind]
        return True

    def _enter(self, new: State, reason: str, out: list[Action]) -> None:
        old = self.state
        self.state = new
        out.append(EnterState(old, new, reason))

    def _send(self, priority: int, out: list[Action]) -> None:
        self.counters["advert_sent"] += 1
        if priority == PRIO_STOP:
            self.counters["pri_zero_sent"] += 1
        out.append(SendAdvert(priority))

    def _set_down_timer(self, duration: float, now: float, out: list[Action]) -> None:
        self.ms_down_timer = duration
        at = now + duration
        if self.delayed_until is not None:
            # vrrp_scheduler.c vrrp_init_instance_sands: during vrrp_startup_delay
            # a BACKUP's timer counts from the end of the delay; once past, never again.
            if now < self.delayed_until:
                at = self.delayed_until + duration
            else:
                self.delayed_until = None
        self._arm(TimerKind.MASTER_DOWN, at, out)

    # ----- INIT (vrrp_scheduler.c vrrp_init_state)

    def _start(self, e: Start, now: float, out: list[Action]) -> None:
        self.delayed_until = e.delayed_until
        if self.own_fault or self.sync_fault:
            # "Entering FAULT STATE (init)"; notified because a tracker is down.
            self.wantstate = State.FAULT
            self._enter(State.FAULT, "init", out)
            out.append(RunNotify(State.FAULT, self.effective_priority))
            return
        delayed = self.delayed_until is not None and now < self.delayed_until
        owner = self.params.priority == PRIO_OWNER
        if owner and self._gate() and not delayed:
            # vrrp_init_state: the address owner takes over at once (ms_down_timer = 1µs).
            self._goto_master(now, out, "owner")
            return
        self._enter(State.BACKUP, "init", out)
        out.append(RunNotify(State.BACKUP, self.effective_priority))
        self.master_adver_int = self.params.adver_int
        # an owner still in vrrp_startup_delay takes over as soon as it ends
        self._set_down_timer(1e-6 if owner and delayed else self.master_down_interval, now, out)

    def _gate(self) -> bool:
        return self.sync_gate is None or self.sync_gate(self)

    # ----- BACKUP (vrrp.c vrrp_state_backup; RFC 5798 §6.4.2)

    def _backup_rx(self, e: AdvertReceived, now: float, out: list[Action]) -> None:
        a = e.advert
        p = self.params
        self.counters["advert_rcvd"] += 1
        if a.addr_mismatch and not (p.skip_check_adv_addr and e.src == self.master_src):
            # vrrp_check_packet counts addr_list_err; skip_check_adv_addr only
            # skips the check for the master we already know (vrrp_state_backup).
            self.counters["addr_list_err"] += 1
            if p.drop_addr_mismatch:
                return
        if a.priority == PRIO_STOP:
            # RFC 5798 §6.4.2: priority 0 → Master_Down_Timer = Skew_Time.
            self.counters["pri_zero_rcvd"] += 1
            self._set_down_timer(self.skew, now, out)
            return
        preempt_pending = p.preempt_delay > 0 and (
            self.preempt_time is None or self.preempt_time > now
        )
        if p.nopreempt or a.priority >= self.effective_priority or preempt_pending:
            # RFC 5798 §6.4.2 "Reset the Master_Down_Timer"; v3 adopts the
            # master's interval first (vrrp_state_backup, update_master_adver_int).
            if p.version == 3:
                self.master_adver_int = a.interval_cs / 100.0
            self.master_src = e.src
            self.master_priority = a.priority
            if p.preempt_delay > 0:
                if a.priority >= self.effective_priority:
                    self.preempt_time = None  # "stop preempt delay"
                elif self.preempt_time is None:
                    self.preempt_time = now + p.preempt_delay  # "start preempt delay"
            self.wantstate = State.BACKUP
            self._set_down_timer(self.master_down_interval, now, out)
            return
        # Lower priority, preemption allowed: ignore; the running timer makes
        # us take over ("received lower priority advert - discarding").
        self.counters["lower_prio_discarded"] += 1
        self.master_src = e.src

    def repeat_advert(self, e: AdvertReceived, now: float) -> bool:
        """:meth:`handle` of a BACKUP's most common advert, without its dispatch; False: use handle.

        A backup hears its master's unchanged advert every interval, and all
        that follows is ``_backup_rx``'s reset branch (RFC 5798 §6.4.2 "Reset
        the Master_Down_Timer", vrrp.c vrrp_state_backup): a count and a new
        deadline, with no action but the timer's.  This applies exactly that
        when nothing else can follow, and changes nothing otherwise (another
        state, an address mismatch, priority 0, a lower priority that may
        preempt, preempt_delay, a v3 interval to adopt).
        """
        a = e.advert
        p = self.params
        if (
            self.state is not State.BACKUP
            or a.addr_mismatch
            or a.priority == PRIO_STOP
            or p.preempt_delay > 0
            or not (p.nopreempt or a.priority >= self.effective_priority)
            or (p.version == 3 and a.interval_cs / 100.0 != self.master_adver_int)
        ):
            return False
        self.counters["advert_rcvd"] += 1
        self.master_src = e.src
        self.master_priority = a.priority
        self.wantstate = State.BACKUP
        self.ms_down_timer = down = self.master_down_interval
        until = self.delayed_until
        self.timers[TimerKind.MASTER_DOWN] = (
            now + down if until is None or now >= until else until + down
        )
        return True

    def _backup_timer(self, e: TimerFired, now: float, out: list[Action]) -> None:
        if not self._fired(e, now):
            return
        if e.kind is TimerKind.MASTER_DOWN:
            # RFC 5798 §6.4.2 Master_Down_Timer fires → transition to Master
            # (vrrp_scheduler.c vrrp_dispatcher_read_timeout → vrrp_goto_master).
            self.wantstate = State.MASTER
            if not self._gate():
                # vrrp_sync_can_goto_master: wait for the rest of the group.
                self._set_down_timer(self.master_down_interval, now, out)
                return
            self._goto_master(now, out, "master_down")

    def _goto_master(self, now: float, out: list[Action], reason: str) -> None:
        """vrrp.c vrrp_state_goto_master → vrrp_state_master_tx → vrrp_state_become_master.

        The advert goes first so the old master drops its VIPs before our
        GARPs (comment in vrrp_state_master_tx); then VIPs, then the burst.
        """
        p = self.params
        self.wantstate = State.MASTER
        self._disarm(TimerKind.MASTER_DOWN, out)
        self.preempt_time = None
        self.master_adver_int = p.adver_int
        self._send(self.effective_priority, out)
        self._enter(State.MASTER, reason, out)
        self.counters["become_master"] += 1
        out.append(AddVips())
        self.vips_set = True
        if p.garp_master_repeat:
            out.append(SendGarpBurst(p.garp_master_repeat, "master"))
        out.append(RunNotify(State.MASTER, self.effective_priority))
        self._arm(TimerKind.ADVERT, now + p.adver_int, out)
        if p.garp_master_delay > 0:
            self._arm(TimerKind.GARP_DELAY, now + p.garp_master_delay, out)
        self.garp_refresh_at = now + p.garp_master_refresh if p.garp_master_refresh > 0 else None
        self.garp_extra_at = now + p.garp_extra_if if p.garp_extra_if > 0 else None

    # ----- MASTER (vrrp.c vrrp_state_master_rx / _tx; RFC 5798 §6.4.3)

    def _master_timer(self, e: TimerFired, now: float, out: list[Action]) -> None:
        if not self._fired(e, now):
            return
        p = self.params
        if e.kind is TimerKind.ADVERT:
            # vrrp_state_master_tx: advert, then a GARP refresh if one is due.
            self._send(self.effective_priority, out)
            if self.garp_refresh_at is not None and now > self.garp_refresh_at - _EPS:
                out.append(SendGarpBurst(p.garp_master_refresh_repeat, "refresh"))
                self.garp_refresh_at = now + p.garp_master_refresh
            if self.garp_extra_at is not None and now > self.garp_extra_at - _EPS:
                out.append(SendGarpBurst(1, "extra_if"))  # vrrp_send_vmac_update
                self.garp_extra_at = now + p.garp_extra_if
            self._arm(TimerKind.ADVERT, now + p.adver_int, out)
        elif e.kind is TimerKind.GARP_DELAY:
            out.append(SendGarpBurst(p.garp_master_repeat, "delay"))  # vrrp_gratuitous_arp_thread
        elif e.kind is TimerKind.GARP_LOWER_PRIO:
            out.append(SendGarpBurst(p.garp_lower_prio_repeat, "lower_prio"))

    def _master_rx(self, e: AdvertReceived, now: float, out: list[Action]) -> None:
        self._master_rx_advert(e, now, out)
        if self.state is State.MASTER and not self.params.lower_prio_no_advert:
            # vrrp_scheduler.c vrrp_dispatcher_read: after any advert a MASTER
            # reads, its next one is due a full interval later ("If we have sent
            # an advert, reset the timer"); with lower_prio_no_advert it sent
            # none, and keeps its cadence.
            self._arm(TimerKind.ADVERT, now + self.params.adver_int, out)

    def _master_rx_advert(self, e: AdvertReceived, now: float, out: list[Action]) -> None:
        a = e.advert
        p = self.params
        self.counters["advert_rcvd"] += 1
        if a.addr_mismatch:
            self.counters["addr_list_err"] += 1
            if p.drop_addr_mismatch:
                return
        ours = self.effective_priority
        cmp = _addr_cmp(e.src, p.own_address)
        higher = a.priority > ours or (a.priority == ours and cmp > 0)
        if a.priority == PRIO_STOP:
            # RFC 5798 §6.4.3: priority 0 → send an advert at once.
            self.counters["pri_zero_rcvd"] += 1
            self._send(ours, out)
            return
        if p.higher_prio_send_advert and higher:
            # vrrp.c vrrp_state_master_rx: tell the new master we were here
            # (it may not have heard us), then step down below.
            self._send(ours, out)
        if a.priority == ours and cmp != 0 and ours == PRIO_OWNER:
            # Two address owners: keepalived reports a configuration error
            # and drops its own priority to 254 (vrrp_state_master_rx).
            self.effective_priority = ours = PRIO_OWNER - 1
            higher = a.priority > ours
        if not higher:
            # Lower priority (or equal from a lower address): RFC 5798 §6.4.3
            # discards; keepalived "forcing new election" sends at once.
            self.counters["lower_prio_rcvd"] += 1
            if not p.lower_prio_no_advert:
                # vrrp.c vrrp_state_master_rx "forcing new election"; with
                # lower_prio_no_advert the RFC's silent discard instead.
                self._send(ours, out)
            if p.garp_lower_prio_repeat:
                out.append(SendGarpBurst(p.garp_lower_prio_repeat, "lower_prio"))
                if p.garp_lower_prio_delay > 0:
                    self._arm(TimerKind.GARP_LOWER_PRIO, now + p.garp_lower_prio_delay, out)
            out.append(NotifyMasterRxLowerPri(e.src))
            return
        # Higher priority, or equal from a higher address: step down
        # (RFC 5798 §6.4.3; v3 adopts the new master's interval).
        if p.version == 3:
            self.master_adver_int = a.interval_cs / 100.0
        self.master_src = e.src
        self.master_priority = a.priority
        self._leave_master(State.BACKUP, "higher_prio", now, out)

    def _leave_master(self, new: State, reason: str, now: float, out: list[Action]) -> None:
        """vrrp.c vrrp_state_leave_master (and leave_fault for MASTER → FAULT)."""
        self.wantstate = new
        self._disarm_all(out)
        self._enter(new, reason, out)
        if new is State.FAULT:
            # Logged "Entering FAULT STATE", then priority 0; a fault of our own
            # (down_instance: advF) has vrrp_restore_interface send, and count,
            # a second one.  A sync group's pull sends only the first.
            self.counters["advert_sent"] += 1
            out.append(SendAdvert(PRIO_STOP))
            if reason != "sync":
                self._send(PRIO_STOP, out)
        out.append(RemoveVips())
        self.vips_set = False
        self.garp_refresh_at = None
        self.garp_extra_at = None
        self.counters["release_master"] += 1
        out.append(RunNotify(new, self.effective_priority))
        if new is State.BACKUP:
            self.preempt_time = None
            self._set_down_timer(self.master_down_interval, now, out)
        else:
            self.master_adver_int = self.params.adver_int

    # ----- any state

    def _tracker(self, e: TrackerChanged, now: float, out: list[Action]) -> None:
        """vrrp_track.c: priority change, down_instance / try_up_instance."""
        was_fault = self.own_fault
        self.trackers[e.name] = TrackEffect(e.delta, e.fault)
        self._reprioritise(now, out)
        self._refault(was_fault, now, out)

    def _source(self, e: SourceAddress, now: float, out: list[Action]) -> None:
        """keepalived_netlink.c netlink_if_address_filter: the interface's last
        address gone → ``down_instance``, one back → ``try_up_instance``.

        The fault counts like a weight-0 tracker's, under the name ``"src"``
        that an instance starting without an address also uses
        (vrrp_track.c ``initialise_vrrp_tracking_priorities``).
        """
        was_fault = self.own_fault
        if e.address is None:
            self.trackers[SOURCE_TRACKER] = TrackEffect(0, True)
        else:
            if self.params.own_address != e.address:  # every start says it once
                self.params = replace(self.params, own_address=e.address)
            self.trackers.pop(SOURCE_TRACKER, None)
        self._refault(was_fault, now, out, "no_address")

    def _refault(
        self, was_fault: bool, now: float, out: list[Action], reason: str = "tracker"
    ) -> None:
        """Follow a change of ``own_fault``: into FAULT, or back out of it."""
        if self.state is State.INIT:
            return
        if self.own_fault and not was_fault:
            self._goto_fault(reason, now, out)
        elif was_fault and not self.own_fault and self.state is State.FAULT and not self.sync_fault:
            self._leave_fault(now, out)

    def _reprioritise(self, now: float, out: list[Action]) -> None:
        """vrrp_set_effective_priority: a BACKUP's deadline moves by the change in
        Master_Down_Interval at once."""
        new = self._compute_priority()
        if new == self.effective_priority:
            return
        old_down = self.ms_down_timer
        out.append(PriorityChanged(self.effective_priority, new, self.state is State.MASTER))
        self.effective_priority = new
        self.ms_down_timer = self.master_down_interval
        at = self.timers.get(TimerKind.MASTER_DOWN)
        if self.state is State.BACKUP and at is not None:
            self._arm(TimerKind.MASTER_DOWN, at + self.ms_down_timer - old_down, out)

    def _goto_fault(self, reason: str, now: float, out: list[Action]) -> None:
        """vrrp_track.c down_instance."""
        self.wantstate = State.FAULT
        if self.state is State.MASTER:
            self._leave_master(State.FAULT, reason, now, out)
            return
        if self.state is State.FAULT:
            return
        self._disarm_all(out)
        self._enter(State.FAULT, reason, out)
        out.append(RunNotify(State.FAULT, self.effective_priority))

    def _leave_fault(self, now: float, out: list[Action]) -> None:
        """vrrp_scheduler.c try_up_instance → vrrp_state_leave_fault: back to BACKUP.

        An address owner re-takes the master role after one advert interval
        plus skew rather than at once.
        """
        self.master_adver_int = self.params.adver_int
        self.preempt_time = None
        self._enter(State.BACKUP, "fault_cleared", out)
        out.append(RunNotify(State.BACKUP, self.effective_priority))
        if self.params.priority == PRIO_OWNER:
            self.wantstate = State.MASTER
            self._set_down_timer(self.master_adver_int + self.skew, now, out)
        else:
            self.wantstate = State.BACKUP
            self._set_down_timer(self.master_down_interval, now, out)

    def _stop(self, _e: AdminStop, now: float, out: list[Action]) -> None:
        """Shutdown: vrrp_restore_interface(advF=true) for a MASTER, then notify_stop."""
        if self.state is State.MASTER:
            self._send(PRIO_STOP, out)
            out.append(RemoveVips())
            self.vips_set = False
        self._disarm_all(out)
        self._enter(State.STOP, "stop", out)
        out.append(RunNotify(State.STOP, self.effective_priority))

    def _reload(self, e: Reload, now: float, out: list[Action]) -> None:
        """SIGHUP with an unchanged-identity instance: keep state and VIPs.

        Only priority and timers follow the new parameters (vrrp.c
        ``clear_diff_vrrp``/``restore_vrrp_state`` keep the old state).
        """
        old = self.params
        was_fault = self.own_fault
        self.params = e.params
        if self.state is State.MASTER and e.params.adver_int != old.adver_int:
            self.master_adver_int = e.params.adver_int
            self._arm(TimerKind.ADVERT, now + e.params.adver_int, out)
        if self.state is not State.BACKUP:
            self.master_adver_int = e.params.adver_int
        # A MASTER's next advert simply carries the new priority.
        self._reprioritise(now, out)
        if e.params.config_fault != old.config_fault:
            # unicast_fault_no_peer, or peers, added or removed by the reload
            self._refault(was_fault, now, out, "config")

    def _sync_force(self, e: SyncForce, now: float, out: list[Action]) -> None:
        """vrrp_sync.c vrrp_sync_master / vrrp_sync_backup / vrrp_sync_fault."""
        target = e.state
        if target is State.FAULT:
            self.sync_fault = True
            self._goto_fault("sync", now, out)
        elif target is State.MASTER:
            if self.state is State.BACKUP:
                self._goto_master(now, out, "sync")
        elif target is State.BACKUP:
            self.sync_fault = False
            if self.state is State.MASTER:
                self._leave_master(State.BACKUP, "sync", now, out)
            elif self.state is State.FAULT and not self.own_fault:
                self._leave_fault(now, out)


def _addr_cmp(a: IPAddress, b: IPAddress | None) -> int:
    """vrrp.c vrrp_saddr_cmp: compare the advert's source with our own (0 if unknown)."""
    if b is None or a.version != b.version:
        return 0
    ia, ib = int(a), int(b)
    return (ia > ib) - (ia < ib)


def new_machine(params: MachineParams) -> VrrpMachine:
    """A machine in INIT; feed TrackerChanged for initial tracker states, then Start."""
    return VrrpMachine(params)


__all__ = [
    "SOURCE_TRACKER",
    "Action",
    "AddVips",
    "AdminStop",
    "AdvertReceived",
    "CancelTimer",
    "EnterState",
    "Event",
    "MachineParams",
    "NotifyMasterRxLowerPri",
    "PriorityChanged",
    "Reload",
    "RemoveVips",
    "RunNotify",
    "ScheduleTimer",
    "SendAdvert",
    "SendGarpBurst",
    "SourceAddress",
    "Start",
    "State",
    "SyncForce",
    "TimerFired",
    "TimerKind",
    "TrackEffect",
    "TrackerChanged",
    "VrrpMachine",
    "master_down_interval",
    "params_from_config",
    "skew",
    "track_effect",
    "track_file_effect",
]
