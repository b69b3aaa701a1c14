"""Config -> desired table.

Mirrors keepalived ipvswrapper.c ipvs_set_srule, ipvs_set_drule and ipvs_group_cmd.
"""

from __future__ import annotations

import ipaddress

import pytest

from ipvs.desired import DesiredError, desired_table
from ipvs.table import (
    FWD_DROUTE,
    FWD_MASQ,
    FWD_TUNNEL,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    SVC_F_SCHED1,
    SVC_F_SCHED2,
    DestKey,
    Proto,
    ServiceKey,
)
from pykeep.config.model import (
    Config,
    LbKind,
    Protocol,
    RealServer,
    Tunnel,
    VirtualServer,
    VirtualServerGroup,
    VsgEntry,
)

IP = ipaddress.ip_address


def R(addr: str, port: int | None = 8080, **kw: object) -> RealServer:
    return RealServer(address=IP(addr), port=port, **kw)  # type: ignore[arg-type]


def test_nat_keeps_rs_port_dr_uses_service_port() -> None:
    """ipvs_cmd: non-MASQ destinations get the service's port."""
    v = VirtualServer(
        address=IP("10.0.0.1"),
        port=80,
        lb_kind=LbKind.DR,
        real_servers=(R("10.0.1.1"), R("10.0.1.2", lb_kind=LbKind.NAT)),
    )
    e = desired_table(Config(virtual_servers=(v,)))[ServiceKey.inet(IP("10.0.0.1"), 80, Proto.TCP)]
    assert e.dests[DestKey("10.0.1.1", 80)].fwd == FWD_DROUTE
    assert e.dests[DestKey("10.0.1.2", 8080)].fwd == FWD_MASQ


def test_fwmark_dr_port_zero() -> None:
    v = VirtualServer(fwmark=7, lb_kind=LbKind.DR, real_servers=(R("10.0.1.1", None),))
    e = desired_table(Config(virtual_servers=(v,)))[ServiceKey.mark(7)]
    assert list(e.dests) == [DestKey("10.0.1.1", 0)]


def test_group_range_and_fwmark_expand() -> None:
    """ipvs_group_range_cmd: one service per address in 10.0.0.1-3, plus the fwmark entry."""
    g = VirtualServerGroup(
        "web", (VsgEntry(IP("10.0.0.1"), IP("10.0.0.3"), 80), VsgEntry(fwmark=9))
    )
    v = VirtualServer(
        group="web", protocol=Protocol.UDP, lb_algo="rr", real_servers=(R("10.0.1.1", 53),)
    )
    tab = desired_table(Config(virtual_server_groups=(g,), virtual_servers=(v,)))
    assert sorted(map(str, tab)) == [
        "FWM 9",
        "UDP 10.0.0.1:80",
        "UDP 10.0.0.2:80",
        "UDP 10.0.0.3:80",
    ]
    assert all(DestKey("10.0.1.1", 53) in e.dests for e in tab.values())


def test_group_ignores_granularity() -> None:
    """ipvs_group_range_cmd resets the netmask: granularity never reaches group services."""
    g = VirtualServerGroup(
        "web", (VsgEntry(IP("10.0.0.1"), IP("10.0.0.1"), 80), VsgEntry(fwmark=9))
    )
    v = VirtualServer(
        group="web",
        persistence_timeout=120,
        persistence_granularity=ipaddress.IPv4Address("255.255.255.0"),
    )
    tab = desired_table(Config(virtual_server_groups=(g,), virtual_servers=(v,)))
    assert {(e.service.timeout, e.service.netmask) for e in tab.values()} == {(120, 32)}


def test_undefined_group_is_a_clear_error() -> None:
    v = VirtualServer(group="nope")
    with pytest.raises(DesiredError, match="nope is not defined"):
        desired_table(Config(virtual_servers=(v,)))


@pytest.mark.parametrize(
    ("kw", "flags", "timeout", "netmask"),
    [
        ({}, 0, 0, 32),
        ({"persistence_timeout": 360}, SVC_F_PERSISTENT, 360, 32),
        (
            {"persistence_timeout": 50, "persistence_granularity": IP("255.255.255.0")},
            SVC_F_PERSISTENT,
            50,
            24,
        ),
        ({"persistence_granularity": IP("255.255.255.0")}, 0, 0, 32),  # only with persistence
        (
            {"lb_algo": "sh", "sched_flags": ("sh-port", "sh-fallback")},
            SVC_F_SCHED1 | SVC_F_SCHED2,
            0,
            32,
        ),
        ({"lb_algo": "mh", "sched_flags": ("mh-port",)}, SVC_F_SCHED2, 0, 32),
        ({"ops": True, "protocol": Protocol.UDP}, SVC_F_ONEPACKET, 0, 32),
    ],
)
def test_service_settings(kw: dict[str, object], flags: int, timeout: int, netmask: int) -> None:
    """ipvs_set_srule: persistence sets flag, timeout and (only then) netmask."""
    v = VirtualServer(address=IP("10.0.0.1"), port=80, **kw)  # type: ignore[arg-type]
    (e,) = desired_table(Config(virtual_servers=(v,))).values()
    assert (e.service.flags, e.service.timeout, e.service.netmask) == (flags, timeout, netmask)


def test_tunnel_and_thresholds() -> None:
    v = VirtualServer(
        address=IP("10.0.0.1"),
        port=80,
        lb_kind=LbKind.TUN,
        tunnel=Tunnel("gue", port=6080, csum=True),
        real_servers=(R("10.0.1.1", weight=3, uthreshold=10, lthreshold=5),),
    )
    (e,) = desired_table(Config(virtual_servers=(v,))).values()
    d = e.dests[DestKey("10.0.1.1", 80)]
    assert (d.fwd, d.tun_type, d.tun_port, d.tun_flags) == (FWD_TUNNEL, 1, 6080, 1)
    assert (d.weight, d.u_threshold, d.l_threshold) == (3, 10, 5)


def test_unknown_scheduler_rejected() -> None:
    """The kernel would silently fall back to wlc; pykeep refuses instead."""
    v = VirtualServer(address=IP("10.0.0.1"), port=80, lb_algo="bogus")
    with pytest.raises(DesiredError, match="unknown scheduler bogus"):
        desired_table(Config(virtual_servers=(v,)))
