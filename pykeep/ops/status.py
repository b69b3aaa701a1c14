"""A frozen snapshot of what the daemon is doing right now.

Every operator-facing surface — the keepalived-compatible dump files
(``/tmp/keepalived.{data,stats,json}``), the Prometheus exposition, and
``pykeep ctl status`` — renders one of these objects and nothing else. The
daemon builds a snapshot on demand (a signal, a scrape, a control request),
so the renderers stay pure, testable without a daemon, and cannot disturb
the state they describe.

The VRRP fields are the union of what keepalived 2.2.7 prints in
``vrrp_json.c`` (vrrp_json_data_dump / vrrp_json_stats_dump), ``vrrp_print.c``
(vrrp_print_stats) and ``vrrp_data.c`` (dump_vrrp), named as keepalived names
them, so a reader of keepalived's source finds each one.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import field
from enum import Enum, IntEnum
from typing import Any

from pykeep.config.model import (
    Config,
    IPAddressSpec,
    RealServer,
    RouteSpec,
    Script,
    VirtualServer,
    VrrpInstance,
    frozen_dataclass,
)


class VrrpState(IntEnum):
    """keepalived's numeric states (vrrp.h VRRP_STATE_*), as its JSON dump prints them."""

    INIT = 0
    BACKUP = 1
    MASTER = 2
    FAULT = 3


# Which keepalived counter (vrrp.h vrrp_stats) each receive-check reason of
# vrrp/packet.py feeds, as vrrp.c vrrp_check_packet increments them.  Reasons
# not listed (vrid, family, version, checksum, dst, unicast_src …) have no
# keepalived counter; they appear only in VrrpStats.rx_errors_by_reason.
KEEPALIVED_RX_FIELDS: dict[str, str] = {
    "short": "packet_len_err",
    "length": "packet_len_err",
    "ip_length": "packet_len_err",
    "ttl": "ip_ttl_err",
    "type": "invalid_type_rcvd",
    "adver_int": "advert_interval_err",
    "addr_list": "addr_list_err",
    "auth_type": "authtype_mismatch",
    "auth_pass": "auth_failure",
}


@frozen_dataclass
class VrrpStats:
    """One instance's counters: the fields of keepalived's ``vrrp_stats``, plus every
    receive error under the reason name vrrp/packet.py's ``Rejected`` carries."""

    advert_rcvd: int = 0
    advert_sent: int = 0
    become_master: int = 0
    release_master: int = 0
    packet_len_err: int = 0
    advert_interval_err: int = 0
    ip_ttl_err: int = 0
    invalid_type_rcvd: int = 0
    addr_list_err: int = 0
    invalid_authtype: int = 0
    authtype_mismatch: int = 0
    auth_failure: int = 0
    pri_zero_rcvd: int = 0
    pri_zero_sent: int = 0
    rx_errors_by_reason: tuple[tuple[str, int], ...] = ()  # (reason, count), sorted

    @classmethod
    def from_counters(cls, counters: Mapping[str, int]) -> VrrpStats:
        """Build from ``vrrp.driver.InstanceDriver.counters()``: the machine's counters
        (keepalived names already) and ``rx_drop_<reason>`` for rejected adverts."""
        names = {f.name for f in dataclasses.fields(cls)} - {"rx_errors_by_reason"}
        values = {name: int(counters.get(name, 0)) for name in names}
        by_reason: dict[str, int] = {}
        for key, count in counters.items():
            if key.startswith("rx_drop_") and count:
                reason = key.removeprefix("rx_drop_")
                by_reason[reason] = by_reason.get(reason, 0) + int(count)
                if reason in KEEPALIVED_RX_FIELDS:
                    values[KEEPALIVED_RX_FIELDS[reason]] += int(count)
        if counters.get("addr_list_err"):  # accepted adverts with the wrong VIP list
            by_reason["addr_list"] = by_reason.get("addr_list", 0) + int(counters["addr_list_err"])
        return cls(**values, rx_errors_by_reason=tuple(sorted(by_reason.items())))


@frozen_dataclass
class VipStatus:
    """A virtual address as the instance holds it (vrrp_ipaddress.c format_ipaddress)."""

    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    dev: str
    scope: str = "global"
    broadcast: ipaddress.IPv4Address | None = None
    label: str | None = None
    no_track: bool = False
    is_set: bool = False  # currently configured on the interface (keepalived's "set")


@frozen_dataclass
class TrackedScriptRef:
    """A track_script entry of an instance: the script name, its command and weight."""

    name: str
    command: str
    weight: int = 0
    reverse: bool = False


@frozen_dataclass
class NotifyScripts:
    """The notify commands of an instance, already joined the way keepalived's cmd_str does."""

    backup: str | None = None
    master: str | None = None
    fault: str | None = None
    stop: str | None = None
    deleted: str | None = None
    generic: str | None = None
    master_rx_lower_pri: str | None = None


@frozen_dataclass
class Transition:
    """The last state change of an instance and why it happened."""

    at: float  # wall clock, seconds since the epoch (keepalived's last_transition)
    from_state: VrrpState
    to_state: VrrpState
    reason: str  # e.g. "master_down_timer", "higher_priority_advert", "ctl_failover"


@frozen_dataclass
class VrrpInstanceStatus:
    """One vrrp_instance, as keepalived's JSON/data/stats dumps describe it."""

    name: str
    vrid: int
    interface: str | None
    state: VrrpState
    wantstate: VrrpState
    base_priority: int
    effective_priority: int
    version: int = 2
    family: int = 4
    vmac_ifname: str = ""
    sync_group: str | None = None
    master_priority: int = 0  # the priority heard from the current master, when BACKUP
    master_router: str | None = None  # its address, when BACKUP
    adver_int: float = 1.0
    master_adver_int: float = 1.0
    nopreempt: bool = False
    preempt_delay: float = 0.0
    accept: bool = True
    promote_secondaries: bool = False
    dont_track_primary: bool = False
    skip_check_adv_addr: bool = False
    strict_mode: bool = False
    smtp_alert: bool = False
    notify_deleted: bool = False
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    garp_delay: float = 5.0
    garp_rep: int = 5
    garp_refresh: float = 0.0
    garp_refresh_rep: int = 1
    garp_lower_prio_delay: float = 5.0
    garp_lower_prio_rep: int = 5
    down_timer_adverts: int = 3
    auth_type: int = 0  # 0 none, 1 PASS (simple password), 2 AH
    auth_data: str | None = None
    src_ip: str | None = None
    mcast_group: str | None = None  # None when unicast
    unicast_peers: tuple[str, ...] = ()
    vipset: bool = False
    vips: tuple[VipStatus, ...] = ()
    evips: tuple[VipStatus, ...] = ()
    vroutes: tuple[str, ...] = ()  # formatted like ``ip route``
    vrules: tuple[str, ...] = ()
    track_interfaces: tuple[str, ...] = ()
    track_scripts: tuple[TrackedScriptRef, ...] = ()
    notify: NotifyScripts = NotifyScripts()
    num_config_faults: int = 0
    num_script_if_fault: int = 0
    num_script_init: int = 0
    last_transition: Transition | None = None
    transitions: int = 0  # every state change since start (become_master counts only one kind)
    failover_active: bool = False  # a ``ctl failover`` is holding the priority down
    stats: VrrpStats = VrrpStats()

    @property
    def total_priority(self) -> int:
        return self.effective_priority


@frozen_dataclass
class VrrpScriptStatus:
    """One vrrp_script, for the "VRRP Scripts" section of keepalived.data (dump_vscript)."""

    name: str
    command: str
    interval: float = 1.0
    timeout: float = 0.0
    weight: int = 0
    weight_reverse: bool = False
    rise: int = 1
    fall: int = 1
    result: int = 0
    good: bool = False
    init_state: str = "unknown"  # keepalived: "unknown", "init", "init/failed", "failed"
    running: bool = False
    uid: int = 0
    gid: int = 0
    tracking: tuple[tuple[str, int], ...] = ()  # (instance, weight)


@frozen_dataclass
class Histogram:
    """A cumulative latency histogram: ``buckets`` are (upper bound, count ≤ bound)."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    sum: float


DEFAULT_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LatencyRecorder:
    """Accumulates check latencies into fixed buckets; the checker shell owns one per checker."""

    def __init__(self, buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * len(self.bounds)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.sum += seconds
        for i, bound in enumerate(self.bounds):
            if seconds <= bound:
                self.counts[i] += 1

    def snapshot(self) -> Histogram:
        return Histogram(tuple(zip(self.bounds, self.counts, strict=True)), self.count, self.sum)


@frozen_dataclass
class CheckerStatus:
    """One checker of a real server: its verdict and how it got there."""

    kind: str  # the config keyword: TCP_CHECK, HTTP_GET, MISC_CHECK …
    target: str  # what it probes, "IP:PORT"
    up: bool
    successes: int = 0
    failures: int = 0
    last_reason: str | None = None  # why the last attempt failed
    latency: Histogram | None = None


@frozen_dataclass
class IpvsStats:
    """The kernel's counters for an IPVS service or destination (ip_vs_stats_user)."""

    conns: int = 0
    inpkts: int = 0
    outpkts: int = 0
    inbytes: int = 0
    outbytes: int = 0
    active_conns: int = 0  # destinations only
    inactive_conns: int = 0  # destinations only


@frozen_dataclass
class RealServerStatus:
    address: str
    port: int | None
    weight: int  # configured (keepalived's iweight)
    effective_weight: int  # what IPVS has now: 0 when drained or inhibited
    alive: bool
    drained: bool = False
    in_ipvs: bool = True  # keepalived's "RS set"
    forwarding: str = "NAT"
    inhibit_on_failure: bool = False
    checkers: tuple[CheckerStatus, ...] = ()
    stats: IpvsStats | None = None

    @property
    def key(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return host if self.port is None else f"{host}:{self.port}"


@frozen_dataclass
class VirtualServerStatus:
    key: str  # the config model's VirtualServer.key: "[IP]:tcp:PORT", "FWM N", "group G"
    address: str | None = None
    port: int | None = None
    fwmark: int | None = None
    group: str | None = None
    family: int = 4
    protocol: str = "TCP"
    lb_algo: str = "wlc"
    lb_kind: str = "NAT"
    persistence_timeout: int | None = None
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: bool = True
    alive: bool = True
    sorry_server: str | None = None
    sorry_server_active: bool = False
    real_servers: tuple[RealServerStatus, ...] = ()
    stats: IpvsStats | None = None


@frozen_dataclass
class Snapshot:
    """Everything the operations layer can show, taken at one instant."""

    taken_at: float  # wall clock, seconds since the epoch
    pid: int = 0
    router_id: str | None = None
    config_files: tuple[str, ...] = ()
    started_at: float | None = None
    last_reload: float | None = None
    # reloads applied / refused, and whether the latest attempt was applied
    # (the alert "config reload failed" watches these)
    reloads: int = 0
    reload_failures: int = 0
    last_reload_ok: bool = True
    vrrp_instances: tuple[VrrpInstanceStatus, ...] = ()
    vrrp_scripts: tuple[VrrpScriptStatus, ...] = ()
    virtual_servers: tuple[VirtualServerStatus, ...] = ()
    # (vs, rs) as the operator typed them, drained but not (or no longer) in the config
    drained_unknown: tuple[tuple[str, str], ...] = field(default=())

    def instance(self, name: str) -> VrrpInstanceStatus | None:
        return next((i for i in self.vrrp_instances if i.name == name), None)


def _plain(value: Any) -> Any:
    """JSON-ready form of a snapshot field: enums by name, addresses as text."""
    if isinstance(value, VrrpState):
        return value.name
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return value.with_prefixlen
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def to_dict(snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot as plain JSON data: what ``pykeep ctl status --json`` prints."""
    out: dict[str, Any] = _plain(snapshot)
    for inst, data in zip(snapshot.vrrp_instances, out["vrrp_instances"], strict=True):
        data["total_priority"] = inst.total_priority
        data["vips"] = [format_vip(v) for v in inst.vips]
        data["evips"] = [format_vip(v) for v in inst.evips]
    return out


def format_vip(vip: VipStatus) -> str:
    """A VIP the way keepalived prints it (vrrp_ipaddress.c format_ipaddress).

    keepalived-exporter splits this on spaces and takes words 0 and 2 as the
    address and the interface, so the order "ADDR/LEN dev DEV …" matters; an
    IPv4 ``brd`` sits between them exactly where keepalived puts it.
    """
    words = [vip.address.with_prefixlen]
    if vip.broadcast is not None and vip.address.version == 4:
        words += ["brd", str(vip.broadcast)]
    words += ["dev", vip.dev, "scope", vip.scope]
    if vip.label:
        words += ["label", vip.label]
    if vip.no_track:
        words.append("no_track")
    if vip.address.version == 6:
        words += ["preferred_lft", "forever"]
    if vip.is_set:
        words.append("set")
    return " ".join(words)


def cmd_str(argv: tuple[str, ...] | list[str]) -> str:
    """A command as keepalived shows it in dumps: every word single-quoted (lib/notify.c
    cmd_str_r), except a leading shell redirection such as ``</path`` used as a file test."""
    words = []
    for i, word in enumerate(argv):
        bare = i == 0 and word[:1] in ("<", ">")
        words.append(word if bare else f"'{word}'")
    return " ".join(words)


# --------------------------------------------------------------------------
# building a snapshot from the config model plus run-time values
#
# The daemon knows the run-time half (state, priorities, counters, health);
# everything else a dump shows comes from the configuration, resolved the way
# keepalived resolves it (global_defs defaults, vrrp_script weights …).


def _script_cmd(script: Script | None) -> str | None:
    """keepalived shows a script by its real path (notify.c check_script_secure stores
    the realpath), each word quoted (cmd_str_r)."""
    if script is None or not script.argv:
        return None
    first = script.argv[0]
    if first.startswith("/"):
        first = os.path.realpath(first)
    return cmd_str([first, *script.argv[1:]])


def _format_route(route: RouteSpec) -> str:
    words = [route.kind] if route.kind else []
    words.append(str(route.dest) if route.dest is not None else "default")
    for key, value in (
        ("via", route.via),
        ("src", route.src),
        ("dev", route.dev),
        ("scope", route.scope),
        ("table", route.table),
        ("metric", route.metric),
    ):
        if value is not None:
            words += [key, str(value)]
    return " ".join([*words, *route.options])


def _vip(spec: IPAddressSpec, interface: str | None, is_set: bool) -> VipStatus:
    return VipStatus(
        address=spec.address,
        dev=spec.dev or interface or "",
        scope=spec.scope or "global",
        broadcast=spec.broadcast,
        label=spec.label,
        no_track=spec.no_track,
        is_set=is_set,
    )


def instance_status(
    inst: VrrpInstance,
    config: Config,
    *,
    state: VrrpState,
    wantstate: VrrpState | None = None,
    effective_priority: int | None = None,
    master_priority: int = 0,
    master_router: str | None = None,
    src_ip: str | None = None,
    vipset: bool | None = None,
    last_transition: Transition | None = None,
    transitions: int = 0,
    failover_active: bool = False,
    counters: Mapping[str, int] | None = None,
) -> VrrpInstanceStatus:
    """One instance's status: the config-derived fields filled in, the run-time ones passed.

    ``counters`` is ``vrrp.driver.InstanceDriver.counters()``; ``vipset``
    defaults to "the instance is MASTER".
    """
    g = config.global_defs
    strict = inst.strict_mode if inst.strict_mode is not None else g.vrrp_strict
    garp_delay = (
        inst.garp_master_delay if inst.garp_master_delay is not None else g.vrrp_garp_master_delay
    )
    garp_rep = (
        inst.garp_master_repeat
        if inst.garp_master_repeat is not None
        else g.vrrp_garp_master_repeat
    )
    # vrrp.c vrrp_complete_instance: garp_lower_prio_{delay,repeat} default to the
    # global lower-priority ones, then to the *global* master ones
    # (vrrp_complete_init); strict mode makes them 0.
    lower_delay = next(
        v
        for v in (
            inst.garp_lower_prio_delay,
            g.vrrp_garp_lower_prio_delay,
            g.vrrp_garp_master_delay,
        )
        if v is not None
    )
    lower_rep = next(
        v
        for v in (
            inst.garp_lower_prio_repeat,
            g.vrrp_garp_lower_prio_repeat,
            g.vrrp_garp_master_repeat,
        )
        if v is not None
    )
    if strict:
        lower_delay, lower_rep = 0.0, 0
    scripts = {s.name: s for s in config.vrrp_scripts}
    tracked = []
    for ref in inst.track_script:
        vscript = scripts.get(ref.name)
        weight = ref.weight if ref.weight is not None else (vscript.weight if vscript else 0)
        command = _script_cmd(vscript.script) if vscript else None
        tracked.append(TrackedScriptRef(ref.name, command or "", weight, ref.reverse))
    is_set = (state is VrrpState.MASTER) if vipset is None else vipset
    n = inst.notify
    group = next((sg.name for sg in config.vrrp_sync_groups if inst.name in sg.group), None)
    mcast = g.vrrp_mcast_group4 if inst.family == 4 else g.vrrp_mcast_group6
    return VrrpInstanceStatus(
        name=inst.name,
        vrid=inst.virtual_router_id,
        interface=inst.interface,
        state=state,
        wantstate=wantstate if wantstate is not None else state,
        base_priority=inst.priority,
        effective_priority=effective_priority if effective_priority is not None else inst.priority,
        version=inst.version,
        family=inst.family,
        sync_group=group,
        master_priority=master_priority,
        master_router=master_router,
        adver_int=inst.advert_int,
        master_adver_int=inst.advert_int,
        nopreempt=inst.nopreempt,
        preempt_delay=inst.preempt_delay,
        accept=inst.accept if inst.accept is not None else not strict,
        dont_track_primary=inst.dont_track_primary,
        skip_check_adv_addr=bool(
            inst.skip_check_adv_addr
            if inst.skip_check_adv_addr is not None
            else g.vrrp_skip_check_adv_addr
        ),
        strict_mode=strict,
        smtp_alert=bool(inst.smtp_alert),
        garp_delay=garp_delay,
        garp_rep=garp_rep,
        garp_refresh=(
            inst.garp_master_refresh
            if inst.garp_master_refresh is not None
            else g.vrrp_garp_master_refresh
        ),
        garp_refresh_rep=(
            inst.garp_master_refresh_repeat
            if inst.garp_master_refresh_repeat is not None
            else g.vrrp_garp_master_refresh_repeat
        ),
        garp_lower_prio_delay=lower_delay,
        garp_lower_prio_rep=lower_rep,
        # as vrrp.machine.params_from_config resolves them (strict mode forces them)
        lower_prio_no_advert=strict
        or bool(
            g.vrrp_lower_prio_no_advert
            if inst.lower_prio_no_advert is None
            else inst.lower_prio_no_advert
        ),
        higher_prio_send_advert=not strict
        and bool(
            g.vrrp_higher_prio_send_advert
            if inst.higher_prio_send_advert is None
            else inst.higher_prio_send_advert
        ),
        down_timer_adverts=3
        if strict
        else (
            g.vrrp_down_timer_adverts
            if inst.down_timer_adverts is None
            else inst.down_timer_adverts
        ),
        auth_type={None: 0, "PASS": 1, "AH": 2}.get(inst.auth_type, 0),
        auth_data=inst.auth_pass,
        src_ip=src_ip,
        mcast_group=None if inst.is_unicast else str(mcast),
        unicast_peers=tuple(str(p.address) for p in inst.unicast_peers),
        vipset=is_set,
        vips=tuple(_vip(v, inst.interface, is_set) for v in inst.virtual_ipaddress),
        evips=tuple(_vip(v, inst.interface, is_set) for v in inst.virtual_ipaddress_excluded),
        vroutes=tuple(_format_route(r) for r in inst.virtual_routes),
        vrules=tuple(" ".join(r.words) for r in inst.virtual_rules),
        track_interfaces=tuple(t.name for t in inst.track_interface),
        track_scripts=tuple(tracked),
        notify=NotifyScripts(
            backup=_script_cmd(n.backup),
            master=_script_cmd(n.master),
            fault=_script_cmd(n.fault),
            stop=_script_cmd(n.stop),
            deleted=_script_cmd(n.deleted),
            generic=_script_cmd(n.generic),
            master_rx_lower_pri=_script_cmd(n.master_rx_lower_pri),
        ),
        last_transition=last_transition,
        transitions=transitions,
        failover_active=failover_active,
        stats=VrrpStats.from_counters(counters or {}),
    )


def real_server_status(
    vs: VirtualServer,
    rs: RealServer,
    *,
    alive: bool,
    effective_weight: int,
    drained: bool = False,
    in_ipvs: bool = True,
    checkers: tuple[CheckerStatus, ...] = (),
    stats: IpvsStats | None = None,
) -> RealServerStatus:
    """One real server: address, weight and forwarding from the config, health passed in."""
    kind = rs.lb_kind or vs.lb_kind
    inhibit = rs.inhibit_on_failure if rs.inhibit_on_failure is not None else vs.inhibit_on_failure
    return RealServerStatus(
        address=str(rs.address),
        port=rs.port,
        weight=rs.weight,
        effective_weight=effective_weight,
        alive=alive,
        drained=drained,
        in_ipvs=in_ipvs,
        forwarding=kind.value,
        inhibit_on_failure=inhibit,
        checkers=checkers,
        stats=stats,
    )


def virtual_server_status(
    vs: VirtualServer,
    real_servers: tuple[RealServerStatus, ...],
    *,
    quorum_up: bool = True,
    sorry_server_active: bool = False,
    stats: IpvsStats | None = None,
) -> VirtualServerStatus:
    """One virtual server: identity and scheduling from the config, the rest passed in."""
    sorry = vs.sorry_server
    sorry_text = None
    if sorry is not None:
        host = f"[{sorry.address}]" if sorry.address.version == 6 else str(sorry.address)
        sorry_text = host if sorry.port is None else f"{host}:{sorry.port}"
    return VirtualServerStatus(
        key=vs.key,
        address=str(vs.address) if vs.address is not None else None,
        port=vs.port,
        fwmark=vs.fwmark,
        group=vs.group,
        family=vs.family,
        protocol=vs.protocol.value,
        lb_algo=vs.lb_algo,
        lb_kind=vs.lb_kind.value,
        persistence_timeout=vs.persistence_timeout,
        quorum=vs.quorum,
        hysteresis=vs.hysteresis,
        quorum_up=quorum_up,
        alive=quorum_up,
        sorry_server=sorry_text,
        sorry_server_active=sorry_server_active,
        real_servers=real_servers,
        stats=stats,
    )
