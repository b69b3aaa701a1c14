"""vrrp.machine transitions, table-driven, on a fake clock (plain floats).

Each case names the RFC section or keepalived (v2.2.7) function it mirrors.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from pykeep.config.model import (
    GlobalDefs,
    IPAddressSpec,
    TrackRef,
    VrrpInstance,
)
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
    Reload,
    RemoveVips,
    RunNotify,
    ScheduleTimer,
    SendAdvert,
    SendGarpBurst,
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
            SendAdvert(0),
            EnterState(State.MASTER, State.FAULT, "tracker"),
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
