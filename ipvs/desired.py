"""The IPVS table the kernel should hold, from the configuration and the pools.

Pure: ``Config`` plus the policy's pool per virtual server in, a ``Table``
out.  This mirrors how keepalived fills its rules before talking to the
kernel (check/ipvswrapper.c ``ipvs_set_srule``, ``ipvs_set_drule``,
``ipvs_cmd``, ``ipvs_group_cmd``):

- a ``virtual_server IP PORT`` is one service, ``fwmark N`` one fwmark
  service, ``group NAME`` one service per address of each range entry (same
  port, the virtual server's protocol) plus one per fwmark entry;
- the scheduler is ``lb_algo``; sh/mh/flag-N become the SCHED1..3 flags;
- ``persistence_timeout`` sets the PERSISTENT flag and the timeout, and
  ``persistence_granularity`` the netmask (only when persistent);
- ``ops`` sets ONEPACKET;
- a destination's port is the real server's own for NAT, but the service's
  for DR/TUN (0 for fwmark services): the kernel would not rewrite it anyway.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping

from pykeep.config.model import (
    Config,
    IPAddress,
    LbKind,
    Protocol,
    RealServer,
    Tunnel,
    VirtualServer,
)

from .policy import Member, PoolDecision, RsHealth, decide
from .table import (
    FWD_DROUTE,
    FWD_MASQ,
    FWD_TUNNEL,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    SVC_F_SCHED1,
    SVC_F_SCHED2,
    SVC_F_SCHED3,
    TUN_TYPES,
    Dest,
    Proto,
    Service,
    ServiceEntry,
    ServiceKey,
    Table,
    dest_key,
)

SCHEDULERS = frozenset(
    {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"}
)

# keepalived check_parser.c lvs_flags_handler: sh-*/mh-* are aliases of flag-N
_SCHED_FLAGS = {
    "flag-1": SVC_F_SCHED1,
    "flag-2": SVC_F_SCHED2,
    "flag-3": SVC_F_SCHED3,
    "sh-fallback": SVC_F_SCHED1,
    "sh-port": SVC_F_SCHED2,
    "mh-fallback": SVC_F_SCHED1,
    "mh-port": SVC_F_SCHED2,
}

_PROTO = {Protocol.TCP: Proto.TCP, Protocol.UDP: Proto.UDP, Protocol.SCTP: Proto.SCTP}
# FNAT is masquerade in the kernel; its source NAT is nftables' (ipvs/fnat.py).
_FWD = {
    LbKind.NAT: FWD_MASQ,
    LbKind.FNAT: FWD_MASQ,
    LbKind.DR: FWD_DROUTE,
    LbKind.TUN: FWD_TUNNEL,
}


class DesiredError(ValueError):
    """The configuration names something the kernel table cannot express."""


def service_keys(vs: VirtualServer, config: Config) -> Iterator[ServiceKey]:
    """Every kernel service ``vs`` stands for (ipvswrapper.c ``ipvs_group_cmd``)."""
    proto = _PROTO[vs.protocol]
    if vs.group is not None:
        group = config.vsg(vs.group)
        if group is None:
            raise DesiredError(f"{vs.loc}: virtual_server_group {vs.group} is not defined")
        for e in group.entries:
            if e.fwmark is not None:
                yield ServiceKey.mark(e.fwmark, vs.family)
            elif e.address is not None:
                for addr in _range(e.address, e.last):
                    yield ServiceKey.inet(addr, e.port or 0, proto)
    elif vs.fwmark is not None:
        yield ServiceKey.mark(vs.fwmark, vs.family)
    elif vs.address is not None:
        yield ServiceKey.inet(vs.address, vs.port or 0, proto)


def _range(first: IPAddress, last: IPAddress | None) -> Iterator[IPAddress]:
    if last is None or last == first:
        yield first
        return
    start, end = int(first), int(last)
    if end < start:
        raise DesiredError(f"address range {first}-{last} runs backwards")
    for n in range(start, end + 1):
        yield ipaddress.ip_address(n) if first.version == 4 else ipaddress.IPv6Address(n)


def service_of(vs: VirtualServer, family: int) -> Service:
    """The service settings of ``vs`` (ipvswrapper.c ``ipvs_set_srule``).

    A virtual_server_group's services never get the granularity: keepalived
    resets the netmask to a host mask for each group entry
    (ipvswrapper.c ``ipvs_group_range_cmd`` and ``ipvs_group_cmd``).
    """
    flags = 0
    for f in vs.sched_flags:
        try:
            flags |= _SCHED_FLAGS[f]
        except KeyError:
            raise DesiredError(f"{vs.loc}: unknown scheduler flag {f}") from None
    if vs.ops:
        flags |= SVC_F_ONEPACKET
    full = 32 if family == 4 else 128
    timeout, netmask, pe_name = 0, full, ""
    if vs.persistence_timeout:
        timeout = vs.persistence_timeout
        flags |= SVC_F_PERSISTENT
        # ipvswrapper.c ipvs_set_srule: the engine goes with persistence only.
        pe_name = vs.persistence_engine or ""
        g = vs.persistence_granularity if vs.group is None else None
        if isinstance(g, ipaddress.IPv4Address):
            netmask = ipaddress.IPv4Network(f"0.0.0.0/{g}").prefixlen
        elif isinstance(g, int):
            netmask = g
    if vs.lb_algo not in SCHEDULERS:
        raise DesiredError(f"{vs.loc}: unknown scheduler {vs.lb_algo}")
    return Service(sched=vs.lb_algo, flags=flags, timeout=timeout, netmask=netmask, pe_name=pe_name)


def dest_of(vs: VirtualServer, rs: RealServer, weight: int, skey: ServiceKey) -> Dest:
    """The destination settings of ``rs`` under one service (``ipvs_set_drule``)."""
    kind = rs.lb_kind if rs.lb_kind is not None else vs.lb_kind
    tun = rs.tunnel if rs.tunnel is not None else vs.tunnel
    tun_type = tun_port = tun_flags = 0
    if kind is LbKind.TUN and tun is not None:
        tun_type, tun_port, tun_flags = _tunnel(tun)
    return Dest(
        fwd=_FWD[kind],
        weight=weight,
        u_threshold=rs.uthreshold,
        l_threshold=rs.lthreshold,
        tun_type=tun_type,
        tun_port=tun_port,
        tun_flags=tun_flags,
    )


def _tunnel(t: Tunnel) -> tuple[int, int, int]:
    try:
        kind = TUN_TYPES[t.tun_type]
    except KeyError:
        raise DesiredError(f"unknown tunnel type {t.tun_type}") from None
    flags = 0
    if t.csum:
        flags = 1
    elif t.remcsum:
        flags = 2
    return kind, t.port or 0, flags


def dest_port(vs: VirtualServer, rs: RealServer, skey: ServiceKey) -> int:
    """NAT keeps the server's port; DR/TUN use the service's (0 for fwmark)."""
    kind = rs.lb_kind if rs.lb_kind is not None else vs.lb_kind
    if kind is LbKind.NAT or kind is LbKind.FNAT:
        return rs.port or 0
    return skey.port


def vs_entries(
    vs: VirtualServer, config: Config, members: tuple[Member, ...]
) -> Iterator[tuple[ServiceKey, ServiceEntry]]:
    """The services of one virtual server, each holding ``members``."""
    for skey in service_keys(vs, config):
        entry = ServiceEntry(service_of(vs, skey.family))
        for m in members:
            if m.rs.address.version != skey.family and not skey.fwmark:
                continue
            entry.dests[dest_key(m.rs.address, dest_port(vs, m.rs, skey))] = dest_of(
                vs, m.rs, m.weight, skey
            )
        yield skey, entry


def desired_table(
    config: Config,
    decisions: Mapping[str, PoolDecision] | None = None,
    health: Mapping[str, RsHealth] | None = None,
) -> Table:
    """The whole table for ``config``.

    ``decisions`` maps ``VirtualServer.key`` to the policy's pool; a
    virtual server without one gets ``decide`` on ``health`` (or on initial
    health), which is what a fresh start would hold.  Two virtual servers
    naming the same kernel service merge, the later one's settings winning,
    as successive ``ipvsadm`` commands would.
    """
    table: Table = {}
    for vs in config.virtual_servers:
        d = (decisions or {}).get(vs.key)
        if d is None:
            d = decide(vs, health or {}, None)
        for skey, entry in vs_entries(vs, config, d.members):
            old = table.get(skey)
            if old is not None:
                old.dests.update(entry.dests)
                entry = ServiceEntry(entry.service, old.dests)
            table[skey] = entry
    return table
