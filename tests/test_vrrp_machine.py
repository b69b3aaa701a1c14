"""vrrp.machine transitions, table-driven, on a fake clock (plain floats).

Each case names the RFC section or keepalived (v2.2.7) function it mirrors.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from pykeep.config.model import (
    GlobalDefs,
    IPAddressSpec,
    TrackRef,
    UnicastPeer,
    VrrpInstance,
)
from vrrp import track
from vrrp.machine import (
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
    TimerKind,
    TrackerChanged,
    VrrpMachine,
    master_down_interval,
    params_from_config,
    skew,
    track_effect,
    track_file_effect,
)
from vrrp.packet import Advert
from vrrp.syncgroup import GroupNotify, SyncGroup
from vrrp.track import RT_SCOPE_LINK, AddressChange, InterfaceAddresses, Sources

A = ipaddress.IPv4Address
ME = A("10.0.0.5")
LOW_IP = A("10.0.0.1")
HIGH_IP = A("10.0.0.9")
MDI_100 = 3 + (156 * 1_000_000 // 256) / 1e6  # v2, prio 100: 3.609375
P = MachineParams(name="VI_1", vrid=51, priority=100, own_address=ME, garp_master_delay=5.0)


def adv(prio: int, interval_cs: int = 100, version: int = 2) -> Advert:
    return Advert(version, 51, prio, interval_cs)


def backup(p: MachineParams = P, t: float = 0.0) -> VrrpMachine:
    m = VrrpMachine(p)
    m.handle(Start(), t)
    assert m.state is State.BACKUP
    return m


def master(p: MachineParams = P, t: float = 0.0) -> VrrpMachine:
    m = backup(p, t)
    m.handle(TimerFired(TimerKind.MASTER_DOWN), m.timers[TimerKind.MASTER_DOWN])
    assert m.state is State.MASTER
    return m


def kinds(actions: list[Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


@dataclass(frozen=True)
class Case:
    id: str
    cites: str
    make: Callable[[], VrrpMachine]
    event: Event
    now: float
    state: State
    expect: list[Action]  # a subsequence that must appear in order
    down_at: float | None = None  # expected MASTER_DOWN deadline afterwards


CASES = [
    Case(
        "init→backup",
        "vrrp_scheduler.c vrrp_init_state; RFC 5798 §6.4.1",
        lambda: VrrpMachine(P),
        Start(),
        0.0,
        State.BACKUP,
        [EnterState(State.INIT, State.BACKUP, "init"), RunNotify(State.BACKUP, 100)],
        down_at=MDI_100,
    ),
    Case(
        "init→master for owner",
        "vrrp_init_state (priority 255); RFC 5798 §6.4.1",
        lambda: VrrpMachine(replace(P, priority=255)),
        Start(),
        0.0,
        State.MASTER,
        [
            SendAdvert(255),
            EnterState(State.INIT, State.MASTER, "owner"),
            AddVips(),
            SendGarpBurst(5, "master"),
            ScheduleTimer(TimerKind.ADVERT, 1.0),
        ],
    ),
    Case(
        "init→fault with tracked interface down",
        "vrrp_track.c initialise_track_script_state",
        lambda: _with_tracker(VrrpMachine(P), "if:eth0", 0, True),
        Start(),
        0.0,
        State.FAULT,
        [EnterState(State.INIT, State.FAULT, "init"), RunNotify(State.FAULT, 100)],
    ),
    Case(
        "backup: higher prio advert resets timer",
        "vrrp.c vrrp_state_backup; RFC 5798 §6.4.2",
        backup,
        AdvertReceived(adv(200), LOW_IP),
        2.0,
        State.BACKUP,
        [],
        down_at=2.0 + MDI_100,
    ),
    Case(
        "backup: equal prio advert resets timer",
        "vrrp_state_backup (>=)",
        backup,
        AdvertReceived(adv(100), LOW_IP),
        2.0,
        State.BACKUP,
        [],
        down_at=2.0 + MDI_100,
    ),
    Case(
        "backup: lower prio advert ignored",
        "vrrp_state_backup 'discarding'",
        backup,
        AdvertReceived(adv(50), LOW_IP),
        2.0,
        State.BACKUP,
        [],
        down_at=MDI_100,
    ),
    Case(
        "backup: lower prio with nopreempt resets",
        "vrrp_state_backup VRRP_FLAG_NOPREEMPT",
        lambda: backup(replace(P, nopreempt=True)),
        AdvertReceived(adv(50), LOW_IP),
        2.0,
        State.BACKUP,
        [],
        down_at=2.0 + MDI_100,
    ),
    Case(
        "backup: lower prio with preempt_delay pending resets",
        "vrrp_state_backup preempt_time",
        lambda: backup(replace(P, preempt_delay=10.0)),
        AdvertReceived(adv(50), LOW_IP),
        2.0,
        State.BACKUP,
        [],
        down_at=2.0 + MDI_100,
    ),
    Case(
        "backup: priority 0 → skew",
        "vrrp_state_backup; RFC 5798 §6.4.2 Skew_Time",
        backup,
        AdvertReceived(adv(0), LOW_IP),
        2.0,
        State.BACKUP,
        [],
        down_at=2.0 + 0.609375,
    ),
    Case(
        "backup: down timer → master",
        "vrrp_goto_master; RFC 5798 §6.4.2",
        backup,
        TimerFired(TimerKind.MASTER_DOWN),
        MDI_100,
        State.MASTER,
        [
            SendAdvert(100),
            EnterState(State.BACKUP, State.MASTER, "master_down"),
            AddVips(),
            SendGarpBurst(5, "master"),
            RunNotify(State.MASTER, 100),
            ScheduleTimer(TimerKind.ADVERT, MDI_100 + 1.0),
            ScheduleTimer(TimerKind.GARP_DELAY, MDI_100 + 5.0),
        ],
    ),
    Case(
        "backup: stale timer ignored",
        "vrrp_init_instance_sands (deadline moved)",
        backup,
        TimerFired(TimerKind.MASTER_DOWN),
        1.0,
        State.BACKUP,
        [],
    ),
    Case(
        "master: advert timer sends",
        "vrrp_state_master_tx; RFC 5798 §6.4.3",
        master,
        TimerFired(TimerKind.ADVERT),
        MDI_100 + 1.0,
        State.MASTER,
        [SendAdvert(100), ScheduleTimer(TimerKind.ADVERT, MDI_100 + 2.0)],
    ),
    Case(
        "master: second GARP burst",
        "vrrp_gratuitous_arp_thread (garp_master_delay)",
        master,
        TimerFired(TimerKind.GARP_DELAY),
        MDI_100 + 5.0,
        State.MASTER,
        [SendGarpBurst(5, "delay")],
    ),
    Case(
        "master: higher prio → backup",
        "vrrp_state_master_rx; RFC 5798 §6.4.3",
        master,
        AdvertReceived(adv(200), LOW_IP),
        10.0,
        State.BACKUP,
        [
            EnterState(State.MASTER, State.BACKUP, "higher_prio"),
            RemoveVips(),
            RunNotify(State.BACKUP, 100),
        ],
        down_at=10.0 + MDI_100,
    ),
    Case(
        "master: equal prio from higher IP → backup",
        "vrrp_state_master_rx vrrp_saddr_cmp",
        master,
        AdvertReceived(adv(100), HIGH_IP),
        10.0,
        State.BACKUP,
        [RemoveVips()],
    ),
    Case(
        "master: equal prio from lower IP → advert",
        "vrrp_state_master_rx vrrp_saddr_cmp",
        master,
        AdvertReceived(adv(100), LOW_IP),
        10.0,
        State.MASTER,
        [SendAdvert(100)],
    ),
    Case(
        "master: lower prio → advert at once",
        "vrrp_state_master_rx 'forcing new election'",
        master,
        AdvertReceived(adv(50), LOW_IP),
        10.0,
        State.MASTER,
        [SendAdvert(100), NotifyMasterRxLowerPri(LOW_IP)],
    ),
    Case(
        "master: priority 0 → advert at once",
        "vrrp_state_master_rx; RFC 5798 §6.4.3",
        master,
        AdvertReceived(adv(0), LOW_IP),
        10.0,
        State.MASTER,
        [SendAdvert(100)],
    ),
    Case(
        "master: stop → prio 0 and VIPs removed",
        "vrrp.c vrrp_restore_interface(advF)",
        master,
        AdminStop(),
        10.0,
        State.STOP,
        [
            SendAdvert(0),
            RemoveVips(),
            EnterState(State.MASTER, State.STOP, "stop"),
            RunNotify(State.STOP, 100),
        ],
    ),
    Case(
        "backup: stop → notify stop only",
        "keepalived shutdown notify_stop",
        backup,
        AdminStop(),
        1.0,
        State.STOP,
        [CancelTimer(TimerKind.MASTER_DOWN), RunNotify(State.STOP, 100)],
    ),
    Case(
        "master: weight-0 tracker fails → fault",
        "vrrp_track.c down_instance; leave_master",
        master,
        TrackerChanged("script:chk", 0, True),
        10.0,
        State.FAULT,
        [
            EnterState(State.MASTER, State.FAULT, "tracker"),
            SendAdvert(0),
            SendAdvert(0),  # vrrp_restore_interface(advF) sends another
            RemoveVips(),
            RunNotify(State.FAULT, 100),
        ],
    ),
    Case(
        "backup: weight-0 tracker fails → fault",
        "vrrp_track.c down_instance",
        backup,
        TrackerChanged("if:eth0", 0, True),
        1.0,
        State.FAULT,
        [CancelTimer(TimerKind.MASTER_DOWN), EnterState(State.BACKUP, State.FAULT, "tracker")],
    ),
    Case(
        "fault: tracker recovers → backup",
        "vrrp_scheduler.c try_up_instance",
        lambda: _faulted(),
        TrackerChanged("if:eth0", 0, False),
        5.0,
        State.BACKUP,
        [EnterState(State.FAULT, State.BACKUP, "fault_cleared"), RunNotify(State.BACKUP, 100)],
        down_at=5.0 + MDI_100,
    ),
    Case(
        "fault: adverts ignored",
        "vrrp_dispatcher_read (FAULT drops)",
        lambda: _faulted(),
        AdvertReceived(adv(0), LOW_IP),
        5.0,
        State.FAULT,
        [],
    ),
    Case(
        "backup: priority change moves the deadline",
        "vrrp_track.c vrrp_set_effective_priority",
        backup,
        TrackerChanged("script:chk", 56, False),
        1.0,
        State.BACKUP,
        [ScheduleTimer(TimerKind.MASTER_DOWN, 3.390625)],
        down_at=3.390625,
    ),
]


def _with_tracker(m: VrrpMachine, name: str, delta: int, fault: bool) -> VrrpMachine:
    m.handle(TrackerChanged(name, delta, fault), 0.0)
    return m


def _faulted() -> VrrpMachine:
    m = backup()
    m.handle(TrackerChanged("if:eth0", 0, True), 1.0)
    assert m.state is State.FAULT
    return m


def _is_subsequence(want: list[Action], got: list[Action]) -> bool:
    it = iter(got)
    return all(any(w == g for g in it) for w in want)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_transition(case: Case) -> None:
    m = case.make()
    out = m.handle(case.event, case.now)
    assert m.state is case.state, (case.cites, out)
    assert _is_subsequence(case.expect, out), (case.cites, out)
    if case.down_at is not None:
        assert m.timers[TimerKind.MASTER_DOWN] == pytest.approx(case.down_at), case.cites


def test_becoming_master_order() -> None:
    """vrrp_state_master_tx: advert first, then VIPs, then the GARP burst."""
    out = backup().handle(TimerFired(TimerKind.MASTER_DOWN), MDI_100)
    k = kinds(out)
    assert k.index("SendAdvert") < k.index("AddVips") < k.index("SendGarpBurst")


def test_garp_refresh() -> None:
    """vrrp_state_master_tx: garp_master_refresh rides on the advert timer."""
    m = master(replace(P, garp_master_refresh=2.0, garp_master_refresh_repeat=3))
    t0 = MDI_100
    assert SendGarpBurst(3, "refresh") not in m.handle(TimerFired(TimerKind.ADVERT), t0 + 1)
    assert SendGarpBurst(3, "refresh") in m.handle(TimerFired(TimerKind.ADVERT), t0 + 2)


def test_preempt_delay_expires_then_takeover() -> None:
    """vrrp_state_backup: after preempt_time passes, lower adverts are discarded."""
    m = backup(replace(P, preempt_delay=5.0))
    m.handle(AdvertReceived(adv(50), LOW_IP), 1.0)  # starts the delay, resets timer
    m.handle(AdvertReceived(adv(50), LOW_IP), 2.0)  # still pending: resets
    assert m.timers[TimerKind.MASTER_DOWN] == pytest.approx(2.0 + MDI_100)
    m.handle(AdvertReceived(adv(50), LOW_IP), 6.5)  # past preempt_time: discarded
    assert m.timers[TimerKind.MASTER_DOWN] == pytest.approx(2.0 + MDI_100)


def test_v3_backup_adopts_master_interval() -> None:
    """RFC 5798 §6.4.2: Master_Adver_Interval := the advert's interval."""
    p = replace(P, version=3, adver_int=1.0)
    m = backup(p)
    m.handle(AdvertReceived(adv(200, 50, 3), LOW_IP), 1.0)
    assert m.master_adver_int == 0.5
    assert m.timers[TimerKind.MASTER_DOWN] == pytest.approx(1.0 + 1.5 + 156 * 50 * 625 // 16 / 1e6)


def test_skew_formulas() -> None:
    """RFC 3768 §6.1 vs RFC 5798 §6.1 (keepalived VRRP_TIMER_SKEW)."""
    assert skew(100, 1.0, 2) == 0.609375
    assert skew(100, 0.1, 3) == 0.060937  # integer µs, truncated like keepalived
    assert master_down_interval(150, 1.0, 2) == 3.414062


def test_owner_priority_never_changes() -> None:
    """vrrp_set_effective_priority: the address owner is left alone."""
    m = VrrpMachine(replace(P, priority=255))
    m.handle(TrackerChanged("script:x", -50, False), 0.0)
    assert m.effective_priority == 255


def test_priority_clamped() -> None:
    """vrrp_set_effective_priority clamps to 1..254."""
    m = backup()
    m.handle(TrackerChanged("a", 500, False), 1.0)
    assert m.effective_priority == 254
    m.handle(TrackerChanged("a", -500, False), 1.0)
    assert m.effective_priority == 1


@pytest.mark.parametrize(
    ("weight", "reverse", "ok", "delta", "fault"),
    [
        (None, False, True, 0, False),
        (None, False, False, 0, True),
        (0, True, True, 0, True),
        (10, False, True, 10, False),
        (10, False, False, 0, False),
        (10, True, True, -10, False),
        (-10, False, False, -10, False),
        (-10, False, True, 0, False),
        (-10, True, False, 10, False),
    ],
)
def test_track_effect(weight: int | None, reverse: bool, ok: bool, delta: int, fault: bool) -> None:
    """vrrp_track.c process_script_update_priority / initialise_track_script_state."""
    e = track_effect(weight, reverse, ok)
    assert (e.delta, e.fault) == (delta, fault)


def test_track_file_effect() -> None:
    """vrrp_track.c track_file: value × weight; weight 0 and non-zero → FAULT."""
    assert track_file_effect(3, 10, False).delta == 30
    assert track_file_effect(3, 0, False).fault
    assert not track_file_effect(0, 0, False).fault


def test_reload_keeps_master_and_vips() -> None:
    """vrrp.c restore_vrrp_state: unchanged instance keeps state, no VIP churn."""
    m = master()
    out = m.handle(Reload(replace(P, priority=120)), 20.0)
    assert m.state is State.MASTER
    assert not any(isinstance(a, RemoveVips | AddVips) for a in out)
    assert m.effective_priority == 120


def test_params_from_config() -> None:
    inst = VrrpInstance(
        name="VI_1", virtual_router_id=51, priority=150, auth_type="PASS", auth_pass="rigbpw",
        virtual_ipaddress=(IPAddressSpec(ipaddress.IPv4Interface("10.99.0.200/32")),),
        track_interface=(TrackRef("eth0"),), garp_master_repeat=3,
    )  # fmt: skip
    p = params_from_config(inst, GlobalDefs(vrrp_garp_master_delay=7.0))
    assert p.addresses == (A("10.99.0.200"),)
    assert p.garp_master_repeat == 3 and p.garp_master_delay == 7.0
    assert p.auth_type == 1 and p.auth_pass == b"rigbpw"
    assert p.receive_params().vrid == 51


# ----- sync groups (vrrp_sync.c)


def _group() -> SyncGroup:
    a = VrrpMachine(replace(P, name="A", vrid=1))
    b = VrrpMachine(replace(P, name="B", vrid=2))
    return SyncGroup("G", {"A": a, "B": b})


def test_sync_group_waits_then_goes_master_together() -> None:
    """vrrp_sync_can_goto_master then vrrp_sync_master."""
    g = _group()
    g.start(0.0)
    a, b = g.members["A"], g.members["B"]
    out = g.handle("A", TimerFired(TimerKind.MASTER_DOWN), a.timers[TimerKind.MASTER_DOWN])
    assert a.state is State.BACKUP  # B does not want MASTER yet
    # A re-armed; B's timer fires now → both go MASTER.
    out = g.handle("B", TimerFired(TimerKind.MASTER_DOWN), b.timers[TimerKind.MASTER_DOWN])
    assert a.state is b.state is State.MASTER
    assert ("G", GroupNotify("G", State.MASTER)) in out


def test_sync_group_fault_pulls_all_then_recovers() -> None:
    """vrrp_sync_fault; try_up_instance with num_member_fault."""
    g = _group()
    g.start(0.0)
    a, b = g.members["A"], g.members["B"]
    g.handle("A", TimerFired(TimerKind.MASTER_DOWN), a.timers[TimerKind.MASTER_DOWN])
    g.handle("B", TimerFired(TimerKind.MASTER_DOWN), b.timers[TimerKind.MASTER_DOWN])
    g.handle("A", TrackerChanged("if:eth0", 0, True), 10.0)
    assert a.state is b.state is State.FAULT
    assert g.state is State.FAULT
    g.handle("A", TrackerChanged("if:eth0", 0, False), 11.0)
    assert (a.state, b.state) == (State.BACKUP, State.BACKUP)


def test_sync_group_backup_pulls_all() -> None:
    """vrrp_sync_backup: one member stepping down takes the group along."""
    g = _group()
    g.start(0.0)
    a, b = g.members["A"], g.members["B"]
    g.handle("A", TimerFired(TimerKind.MASTER_DOWN), a.timers[TimerKind.MASTER_DOWN])
    g.handle("B", TimerFired(TimerKind.MASTER_DOWN), b.timers[TimerKind.MASTER_DOWN])
    g.handle("A", AdvertReceived(Advert(2, 1, 200, 100), LOW_IP), 10.0)
    assert a.state is b.state is State.BACKUP


# ----- keywords that shape the election (vrrp.c vrrp_state_master_rx, VRRP_MS_DOWN_TIMER)


def _sends(out: list[Action]) -> list[int]:
    return [a.priority for a in out if isinstance(a, SendAdvert)]


def test_lower_prio_no_advert() -> None:
    """vrrp_state_master_rx: by default a MASTER answers a lower priority at once
    ("forcing new election") and its next advert is due a full interval later
    (vrrp_dispatcher_read resets the timer); with lower_prio_no_advert it stays
    silent, runs notify_master_rx_lower_pri and keeps its cadence."""
    m = master()
    due = m.timers[TimerKind.ADVERT]
    out = m.handle(AdvertReceived(adv(50), LOW_IP), due - 0.5)
    assert _sends(out) == [100] and m.timers[TimerKind.ADVERT] == pytest.approx(due + 0.5)
    quiet = master(replace(P, lower_prio_no_advert=True))
    due = quiet.timers[TimerKind.ADVERT]
    out = quiet.handle(AdvertReceived(adv(50), LOW_IP), due - 0.5)
    assert _sends(out) == [] and quiet.timers[TimerKind.ADVERT] == due
    assert NotifyMasterRxLowerPri(LOW_IP) in out and quiet.state is State.MASTER
    # A priority-0 advert is still answered (RFC 5798 §6.4.3), cadence kept.
    out = quiet.handle(AdvertReceived(adv(0), LOW_IP), due - 0.2)
    assert _sends(out) == [100] and quiet.timers[TimerKind.ADVERT] == due


def test_higher_prio_send_advert() -> None:
    """vrrp_state_master_rx: with higher_prio_send_advert a MASTER sends one advert
    with its own priority before stepping down; without, it yields silently."""
    for flag, sent in ((False, []), (True, [100])):
        m = master(replace(P, higher_prio_send_advert=flag))
        out = m.handle(AdvertReceived(adv(200), HIGH_IP), 5.0)
        assert m.state is State.BACKUP and _sends(out) == sent, flag
        if flag:
            assert kinds(out).index("SendAdvert") < kinds(out).index("RemoveVips")
    # An equal priority from a higher address counts as higher (vrrp_saddr_cmp).
    m = master(replace(P, higher_prio_send_advert=True))
    assert _sends(m.handle(AdvertReceived(adv(100), HIGH_IP), 5.0)) == [100]
    assert m.state is State.BACKUP


def test_down_timer_adverts() -> None:
    """VRRP_MS_DOWN_TIMER: down_timer_adverts × Master_Adver_Interval + Skew_Time,
    wherever the Master_Down timer is (re)armed: start, each advert heard."""
    p = replace(P, down_timer_adverts=10)
    m = backup(p)
    assert m.timers[TimerKind.MASTER_DOWN] == pytest.approx(10 + 0.609375)
    m.handle(AdvertReceived(adv(200), HIGH_IP), 4.0)
    assert m.timers[TimerKind.MASTER_DOWN] == pytest.approx(4.0 + 10 + 0.609375)
    m.handle(TimerFired(TimerKind.MASTER_DOWN), 4.0 + 3 + 0.609375)  # the default's expiry
    assert TimerKind.ADVERT not in m.timers
    out = m.handle(TimerFired(TimerKind.MASTER_DOWN), 4.0 + 10 + 0.609375)
    assert EnterState(State.BACKUP, State.MASTER, "master_down") in out
    # v3 counts the master's interval, as adopted from its adverts.
    m3 = backup(replace(p, version=3))
    m3.handle(AdvertReceived(adv(200, 50, 3), HIGH_IP), 1.0)
    assert m3.timers[TimerKind.MASTER_DOWN] == pytest.approx(1.0 + 5.0 + 156 * 50 * 625 // 16 / 1e6)


def test_unicast_fault_no_peer() -> None:
    """vrrp.c vrrp_complete_instance: unicast_fault_no_peer without any unicast_peer
    is a configuration fault (num_config_faults): FAULT from start-up, whatever
    the trackers say, until a reload brings peers."""
    vip = (IPAddressSpec(ipaddress.IPv4Interface("10.99.0.200/32")),)
    inst = VrrpInstance(
        name="VI_1", virtual_router_id=51, virtual_ipaddress=vip, unicast_fault_no_peer=True
    )
    p = params_from_config(inst, GlobalDefs(), own_address=ME)
    assert p.config_fault and not p.unicast
    m = VrrpMachine(p)
    out = m.handle(Start(), 0.0)
    assert m.state is State.FAULT and RunNotify(State.FAULT, 100) in out
    m.handle(TrackerChanged("if:eth0", 0, False), 1.0)
    assert m.state is State.FAULT and not m.timers
    peers = (UnicastPeer(LOW_IP),)
    fixed = params_from_config(replace(inst, unicast_peers=peers), GlobalDefs(), own_address=ME)
    assert not fixed.config_fault and fixed.unicast
    out = m.handle(Reload(fixed), 2.0)
    assert EnterState(State.FAULT, State.BACKUP, "fault_cleared") in out
    assert TimerKind.MASTER_DOWN in m.timers
    # Without the keyword, no peers means multicast, as before keepalived 2.2.5.
    assert not params_from_config(
        replace(inst, unicast_fault_no_peer=False), GlobalDefs()
    ).config_fault


def test_election_keywords_from_config() -> None:
    """vrrp_complete_instance: the instance's value, else global_defs'; strict mode
    forces lower_prio_no_advert on, higher_prio_send_advert off, 3 down adverts."""
    vip = (IPAddressSpec(ipaddress.IPv4Interface("10.99.0.200/32")),)
    inst = VrrpInstance(name="VI_1", virtual_router_id=51, virtual_ipaddress=vip)
    g = GlobalDefs(
        vrrp_lower_prio_no_advert=True, vrrp_higher_prio_send_advert=True, vrrp_down_timer_adverts=7
    )
    p = params_from_config(inst, g)
    assert (p.lower_prio_no_advert, p.higher_prio_send_advert, p.down_timer_adverts) == (
        True, True, 7
    )  # fmt: skip
    local = replace(
        inst, lower_prio_no_advert=False, higher_prio_send_advert=False, down_timer_adverts=2
    )
    p = params_from_config(local, g)
    assert (p.lower_prio_no_advert, p.higher_prio_send_advert, p.down_timer_adverts) == (
        False, False, 2
    )  # fmt: skip
    p = params_from_config(replace(local, higher_prio_send_advert=True, strict_mode=True), g)
    assert (p.lower_prio_no_advert, p.higher_prio_send_advert, p.down_timer_adverts) == (
        True, False, 3
    )  # fmt: skip
    assert params_from_config(inst, GlobalDefs()).down_timer_adverts == 3


def _parsed(globals_: str, instance: str = "") -> MachineParams:
    from pykeep import config

    text = (
        f"global_defs {{\n{globals_}}}\nvrrp_instance VI_1 {{\n interface eth0\n"
        f" virtual_router_id 51\n{instance} virtual_ipaddress {{\n  10.99.0.200\n }}\n}}\n"
    )
    r = config.load_text(text, "k.conf", interface_exists=lambda _n: True)
    return params_from_config(r.config.vrrp_instances[0], r.config.global_defs)


def test_vrrp_min_garp() -> None:
    """global_parser.c vrrp_min_garp_handler: one GARP/NA on becoming master, no
    second burst, no refresh repeats; only settings still at their default move,
    so a value given before it stands and one given after it wins."""
    p = _parsed(" vrrp_min_garp\n")
    assert (p.garp_master_repeat, p.garp_master_delay, p.garp_master_refresh_repeat) == (1, 0, 0)
    # the lower-priority GARPs follow the global repeat/delay (vrrp.c vrrp_complete_init)
    assert (p.garp_lower_prio_repeat, p.garp_lower_prio_delay) == (1, 0)
    m = backup(p)
    out = m.handle(TimerFired(TimerKind.MASTER_DOWN), m.timers[TimerKind.MASTER_DOWN])
    assert [a for a in out if isinstance(a, SendGarpBurst)] == [SendGarpBurst(1, "master")]
    assert TimerKind.GARP_DELAY not in m.timers
    p = _parsed(" vrrp_garp_master_repeat 3\n vrrp_min_garp\n vrrp_garp_master_delay 2\n")
    assert (p.garp_master_repeat, p.garp_master_delay) == (3, 2)
    assert _parsed(" vrrp_min_garp false\n").garp_master_repeat == 5
    # an instance's own garp settings still win over the global minimum
    assert _parsed(" vrrp_min_garp\n", " garp_master_repeat 4\n").garp_master_repeat == 4


def test_garp_lower_prio_defaults_follow_global_defs() -> None:
    """vrrp.c vrrp_complete_init / vrrp_complete_instance: an instance's
    lower-priority GARPs default to the global lower-priority values, which
    default to the *global* master ones (never the instance's own master ones);
    strict mode turns them off, saying so when the instance set them."""
    from pykeep import config

    # the instance's garp_master_* do not reach the lower-priority GARPs
    p = _parsed(" vrrp_garp_master_repeat 2\n", " garp_master_repeat 4\n garp_master_delay 9\n")
    assert (p.garp_lower_prio_repeat, p.garp_lower_prio_delay) == (2, 5.0)
    p = _parsed(" vrrp_garp_lower_prio_repeat 3\n vrrp_garp_lower_prio_delay 7\n")
    assert (p.garp_lower_prio_repeat, p.garp_lower_prio_delay) == (3, 7.0)
    p = _parsed(" vrrp_garp_lower_prio_repeat 3\n", " garp_lower_prio_repeat 6\n")
    assert p.garp_lower_prio_repeat == 6
    # strict mode: 0 whether unset (silently) or set (with keepalived's two lines)
    p = _parsed(" vrrp_strict\n vrrp_garp_lower_prio_repeat 3\n", " state BACKUP\n")
    assert (p.garp_lower_prio_repeat, p.garp_lower_prio_delay) == (0, 0.0)
    text = (
        "global_defs {\n vrrp_strict\n}\nvrrp_instance VI_1 {\n state BACKUP\n interface eth0\n"
        " virtual_router_id 51\n garp_lower_prio_repeat 2\n garp_lower_prio_delay 3\n"
        " virtual_ipaddress {\n  10.99.0.200\n }\n}\n"
    )
    r = config.load_text(text, "k.conf", interface_exists=lambda _n: True)
    said = [d.message for d in r.diagnostics]
    assert "(VI_1) Strict mode requires no repeat garps. resetting" in said
    assert "(VI_1) Strict mode requires no repeat garp delay. resetting" in said
    p = params_from_config(r.config.vrrp_instances[0], r.config.global_defs)
    assert (p.garp_lower_prio_repeat, p.garp_lower_prio_delay) == (0, 0.0)
    m = master(p)  # a lower-priority advert brings no GARP burst
    out = m.handle(AdvertReceived(adv(50), HIGH_IP), m.timers[TimerKind.ADVERT] - 0.5)
    assert not any(isinstance(a, SendGarpBurst) for a in out)


def test_startup_delay_holds_the_master_down_timer() -> None:
    """vrrp_scheduler.c vrrp_init_instance_sands: while vrrp_startup_delay lasts a
    BACKUP's timer counts from its end, adverts heard or not; once past, from now.
    An address owner waits for it too."""
    m = VrrpMachine(P)
    m.handle(Start(10.0), 0.0)
    assert m.state is State.BACKUP and m.timers[TimerKind.MASTER_DOWN] == 10.0 + MDI_100
    m.handle(AdvertReceived(adv(200), HIGH_IP), 5.0)  # a master speaks during the delay
    assert m.timers[TimerKind.MASTER_DOWN] == 10.0 + m.ms_down_timer
    m.handle(AdvertReceived(adv(200), HIGH_IP), 12.0)
    assert m.timers[TimerKind.MASTER_DOWN] == 12.0 + m.ms_down_timer
    owner = VrrpMachine(replace(P, priority=255))
    owner.handle(Start(10.0), 0.0)
    assert owner.state is State.BACKUP
    at = owner.timers[TimerKind.MASTER_DOWN]
    assert 10.0 < at < 10.001
    out = owner.handle(TimerFired(TimerKind.MASTER_DOWN), at)
    assert any(isinstance(a, EnterState) and a.new is State.MASTER for a in out)
    at_once = VrrpMachine(replace(P, priority=255))
    out = at_once.handle(Start(), 0.0)  # no delay: the owner takes over at once
    assert any(isinstance(a, EnterState) and a.new is State.MASTER for a in out)


def test_priority_change_is_an_action() -> None:
    """vrrp_track.c vrrp_set_effective_priority: logged, and a FIFO line when asked."""
    m = master()
    out = m.handle(TrackerChanged("script:chk", -20, False), 10.0)
    assert PriorityChanged(100, 80, True) in out
    assert not any(
        isinstance(a, PriorityChanged)
        for a in m.handle(TrackerChanged("script:chk", -20, False), 11.0)
    )


def test_election_keywords_parsed() -> None:
    """The keywords reach the machine from keepalived.conf, instance over global."""
    p = _parsed(
        " vrrp_lower_prio_no_advert\n vrrp_higher_prio_send_advert\n vrrp_down_timer_adverts 7\n",
        " lower_prio_no_advert false\n down_timer_adverts 4\n unicast_fault_no_peer\n",
    )
    assert (p.lower_prio_no_advert, p.higher_prio_send_advert, p.down_timer_adverts) == (
        False, True, 4
    )  # fmt: skip
    assert p.config_fault


def test_strict_mode_resets_election_keywords() -> None:
    """vrrp.c vrrp_complete_instance: strict mode says so, and the machine gets
    lower_prio_no_advert on, higher_prio_send_advert off and 3 down adverts."""
    from pykeep import config

    text = (
        "global_defs {\n vrrp_strict\n vrrp_down_timer_adverts 4\n}\n"
        "vrrp_instance VI_1 {\n state BACKUP\n interface eth0\n virtual_router_id 51\n"
        " lower_prio_no_advert false\n higher_prio_send_advert\n"
        " virtual_ipaddress {\n  10.99.0.200\n }\n}\n"
    )
    r = config.load_text(text, "k.conf", interface_exists=lambda _n: True)
    said = [d.message for d in r.diagnostics]
    assert "(VI_1) down_timer_adverts is incompatible with strict mode - resetting" in said
    assert "(VI_1) Strict mode requires no lower priority advert. resetting" in said
    assert "(VI_1) strict mode requires higher_prio_send_advert to be clear. resetting" in said
    p = params_from_config(r.config.vrrp_instances[0], r.config.global_defs)
    assert (p.lower_prio_no_advert, p.higher_prio_send_advert, p.down_timer_adverts) == (
        True, False, 3
    )  # fmt: skip


def test_garp_extra_if() -> None:
    """vrrp.c vrrp_state_master_tx → vrrp_send_vmac_update: one GARP for the VIPs
    on other interfaces every garp_extra_if seconds, checked as adverts leave;
    vrrp_complete_instance turns it off without ``all`` or without such a VIP."""
    m = master(replace(P, garp_extra_if=2.0))
    t0 = m.timers[TimerKind.ADVERT] - 1.0
    extra = SendGarpBurst(1, "extra_if")
    got = [extra in m.handle(TimerFired(TimerKind.ADVERT), t0 + k) for k in (1, 2, 3, 4)]
    assert got == [False, True, False, True]
    m.handle(AdvertReceived(adv(200), HIGH_IP), t0 + 4.5)  # BACKUP: no more
    assert m.garp_extra_at is None

    def vip(text: str, dev: str | None = None) -> IPAddressSpec:
        return IPAddressSpec(ipaddress.IPv4Interface(text), dev=dev)

    inst = VrrpInstance(
        name="VI_1",
        virtual_router_id=51,
        interface="eth0",
        virtual_ipaddress=(vip("10.99.0.200/32"), vip("10.99.1.200/32", "eth1")),
        garp_extra_if=10.0,
        garp_extra_if_all=True,
    )
    assert params_from_config(inst, GlobalDefs()).garp_extra_if == 10.0
    assert (
        params_from_config(replace(inst, garp_extra_if_all=False), GlobalDefs()).garp_extra_if == 0
    )
    alone = replace(inst, virtual_ipaddress=inst.virtual_ipaddress[:1])
    assert params_from_config(alone, GlobalDefs()).garp_extra_if == 0
    g = GlobalDefs(vrrp_garp_extra_if=7.0, vrrp_garp_extra_if_all=True)
    unset = replace(inst, garp_extra_if=None, garp_extra_if_all=False)
    assert params_from_config(unset, g).garp_extra_if == 7.0
    # the instance's own value replaces the global one, "all" included
    assert params_from_config(replace(inst, garp_extra_if_all=False), g).garp_extra_if == 0
    # the global keyword takes "all" and the time in either order
    from pykeep import config

    r = config.load_text("global_defs {\n vrrp_garp_extra_if 7 all\n}\n", "k.conf")
    gd = r.config.global_defs
    assert (gd.vrrp_garp_extra_if, gd.vrrp_garp_extra_if_all, r.diagnostics) == (7.0, True, [])


# ----- the interface's address (keepalived_netlink.c netlink_if_address_filter)


def test_address_loss_faults_and_an_address_brings_back() -> None:
    """down_instance when the interface's last address goes; try_up_instance when one comes."""
    m = master()
    out = m.handle(SourceAddress(None), 10.0)
    assert m.state is State.FAULT
    # "Entering FAULT STATE", priority 0 from leave_master and from
    # vrrp_restore_interface (advF), then the VIPs go
    said = [a for a in out if not isinstance(a, CancelTimer)]
    assert said == [
        EnterState(State.MASTER, State.FAULT, "no_address"),
        SendAdvert(0),
        SendAdvert(0),
        RemoveVips(),
        RunNotify(State.FAULT, 100),
    ]
    assert m.timers == {}
    assert m.handle(AdvertReceived(adv(50), LOW_IP), 10.5) == []  # FAULT hears nothing
    # a tracker recovering does not clear the missing address
    m.handle(TrackerChanged("if:eth0", 0, True), 11.0)
    m.handle(TrackerChanged("if:eth0", 0, False), 11.5)
    assert m.state is State.FAULT
    new = A("10.0.0.7")
    out = m.handle(SourceAddress(new), 12.0)
    assert (m.state, m.params.own_address) == (State.BACKUP, new)
    assert out[:2] == [
        EnterState(State.FAULT, State.BACKUP, "fault_cleared"),
        RunNotify(State.BACKUP, 100),
    ]
    assert m.timers[TimerKind.MASTER_DOWN] == 12.0 + MDI_100


def test_address_change_moves_the_source_only() -> None:
    """Another address taking over as the source: no transition, but ties now
    compare against it (vrrp.c vrrp_saddr_cmp)."""
    m = master()
    assert m.handle(SourceAddress(A("10.0.0.2")), 5.0) == []
    assert m.state is State.MASTER and m.params.own_address == A("10.0.0.2")
    # an equal priority from 10.0.0.5 now wins the tie: we step down
    m.handle(AdvertReceived(adv(100), ME), 5.5)
    assert (m.state, m.master_src) == (State.BACKUP, ME)
    b = backup()
    assert b.handle(SourceAddress(HIGH_IP), 1.0) == [] and b.state is State.BACKUP


def test_address_missing_at_start_then_assigned() -> None:
    """vrrp_track.c initialise_vrrp_tracking_priorities: no address, FAULT (init)."""
    m = VrrpMachine(replace(P, own_address=None))
    assert m.handle(SourceAddress(None), 0.0) == []  # INIT: remembered, no transition
    out = m.handle(Start(), 0.0)
    assert m.state is State.FAULT and EnterState(State.INIT, State.FAULT, "init") in out
    m.handle(SourceAddress(ME), 2.0)
    assert (m.state, m.params.own_address) == (State.BACKUP, ME)


def test_sync_group_follows_a_member_losing_its_address() -> None:
    """down_instance → vrrp_sync_fault: the member's sibling is pulled to FAULT too
    (one priority-0 advert: vrrp_state_leave_master(advF=false))."""
    g = _group()
    g.start(0.0)
    a, b = g.members["A"], g.members["B"]
    g.handle("A", TimerFired(TimerKind.MASTER_DOWN), a.timers[TimerKind.MASTER_DOWN])
    g.handle("B", TimerFired(TimerKind.MASTER_DOWN), b.timers[TimerKind.MASTER_DOWN])
    out = g.handle("A", SourceAddress(None), 10.0)
    assert a.state is b.state is g.state is State.FAULT
    assert [x for n, x in out if n == "B" and isinstance(x, SendAdvert)] == [SendAdvert(0)]
    assert [x for n, x in out if n == "A" and isinstance(x, SendAdvert)] == [SendAdvert(0)] * 2
    g.handle("A", SourceAddress(LOW_IP), 11.0)
    assert (a.state, b.state) == (State.BACKUP, State.BACKUP)


def _change(addr: str, added: bool = True, scope: int = 0) -> AddressChange:
    return AddressChange(2, ipaddress.ip_address(addr), scope, added)


def test_interface_addresses_follow_keepalived_lists() -> None:
    """ifp->sin_addr and sin_addr_l: the first address is the source, the last
    other one replaces it, VIPs and global IPv6 addresses never count."""
    t = InterfaceAddresses()
    assert t.apply(_change("10.0.0.5"))
    assert not t.apply(_change("10.0.0.6")) and not t.apply(_change("10.0.0.7"))
    assert not t.apply(_change("10.0.0.5"))  # heard again (a dump racing an event)
    assert not t.apply(_change("10.0.0.200"), ours=True)  # a VIP
    assert t.sources() == Sources(A("10.0.0.5"), None)
    assert not t.apply(_change("10.0.0.6", added=False))  # not the source: forgotten
    assert t.apply(_change("10.0.0.5", added=False))  # the most recent other takes over
    assert t.sources().ipv4 == A("10.0.0.7")
    assert t.apply(_change("10.0.0.7", added=False))
    assert t.sources() == Sources(None, None)  # the last one: the interface has none
    assert not t.apply(_change("2001:db8::1"))  # only link-local counts for IPv6
    assert t.apply(_change("fe80::1", scope=RT_SCOPE_LINK))
    assert t.sources().of(6) == ipaddress.IPv6Address("fe80::1")
    assert t.sources().of(4) is None


def _addr_msg(index: int, addr: str, kind: int, scope: int = 0) -> bytes:
    ip = ipaddress.ip_address(addr)
    fam = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    body = struct.pack("=BBBBI", fam, 24, 0, scope, index)
    for attr in (track.IFA_ADDRESS, track.IFA_LOCAL):
        body += struct.pack("=HH", 4 + len(ip.packed), attr) + ip.packed
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_address_messages_reach_watchers_of_the_interface() -> None:
    """RTM_NEWADDR/RTM_DELADDR parsed, applied, and told to the interface's watchers."""
    data = _addr_msg(2, "10.0.0.5", track.RTM_DELADDR)
    data += _addr_msg(2, "fe80::1", track.RTM_NEWADDR, RT_SCOPE_LINK)
    assert track.parse_messages(data) == [
        _change("10.0.0.5", added=False),
        _change("fe80::1", scope=RT_SCOPE_LINK),
    ]
    w = track.LinkWatcher()
    w.ours = frozenset({("eth0", A("10.0.0.200"))})
    w.seed([(2, "eth0")], [_change("10.0.0.5"), _change("10.0.0.200")])
    heard: list[Sources] = []
    w.watch_addresses("eth0", heard.append)
    assert heard == [Sources(A("10.0.0.5"), None)]  # the present value, at once
    for msg in track.parse_messages(data):
        assert isinstance(msg, AddressChange)
        w._address(msg)
    w._address(_change("10.0.0.200", added=False))  # a VIP going: no news
    assert heard[1:] == [
        Sources(None, None),
        Sources(None, ipaddress.IPv6Address("fe80::1")),
    ]


def test_vip_use_vmac_is_read_as_keepalived_reads_it() -> None:
    """vrrp_ipaddress.c parse_ipaddress takes ``use_vmac`` on a VIP (not on a
    static address); vrrp.c vrrp_complete_instance judges it with the instance."""
    from pykeep import config
    from pykeep.config.diagnostics import Severity

    def load(instance_extra: str, vips: str, static: str = "") -> list[tuple[Severity, str]]:
        text = (
            f"{static}vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 51\n"
            f"{instance_extra} virtual_ipaddress {{\n{vips} }}\n}}\n"
        )
        r = config.load_text(text, "k.conf")
        return [(d.severity, d.message) for d in r.diagnostics if "use_vmac" in d.message]

    # a VMAC of its own, which pykeep does not make: one note, no error
    assert load("", "  10.0.0.1/24 dev eth1 use_vmac\n  10.0.0.2 use_vmac\n") == [
        (
            Severity.INFO,
            "'use_vmac' for ip address 10.0.0.1/24 is not supported by pykeep:"
            " the address goes on eth1 without a VMAC of its own",
        ),
        (
            Severity.INFO,
            "'use_vmac' for ip address 10.0.0.2 is not supported by pykeep:"
            " the address goes on eth0 without a VMAC of its own",
        ),
    ]
    # the instance's VMAC holds it already: keepalived's error, and no note
    assert load(" use_vmac\n", "  10.0.0.2/24 use_vmac\n") == [
        (
            Severity.GENERAL_ERROR,
            "(VI_1) use_vmac specified for VIP/eVIP 10.0.0.2/24 and vrrp instance",
        )
    ]
    static = "static_ipaddress {\n 192.168.5.1/24 dev eth0 use_vmac\n}\n"
    assert load("", "  10.0.0.2\n", static) == [
        (Severity.GENERAL_ERROR, "Unknown configuration entry 'use_vmac' for ip address - ignoring")
    ]
