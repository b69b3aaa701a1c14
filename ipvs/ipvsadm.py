"""ipvsadm's text formats for a ``Table``: ``-Sn`` (save) and ``-Ln`` (list).

Operators and scripts read these formats, and the VM tests compare
``ipvsadm -Sn`` with what pykeep expects, so the output follows ipvsadm
1.31 (Debian) byte for byte, including its quirks: ``-Sn`` omits
thresholds, ``-b`` names sh/mh flags after the scheduler, ``-Ln`` pads
columns with ``%-28s``-style widths and trails spaces.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping

from .table import (
    FWD_DROUTE,
    FWD_LOCALNODE,
    FWD_MASQ,
    FWD_TUNNEL,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    SVC_F_SCHED1,
    SVC_F_SCHED2,
    SVC_F_SCHED3,
    TUN_NAMES,
    Dest,
    DestKey,
    Proto,
    Service,
    ServiceKey,
    Table,
    mask_from_prefix,
)

Stats = Mapping[tuple[ServiceKey, DestKey | None], Mapping[str, int]]

_AF_NUM = {4: socket.AF_INET.value, 6: socket.AF_INET6.value}
_FWD_FLAG = {FWD_MASQ: "-m", FWD_LOCALNODE: "-m", FWD_TUNNEL: "-i", FWD_DROUTE: "-g"}
_FWD_NAME = {FWD_MASQ: "Masq", FWD_LOCALNODE: "Local", FWD_TUNNEL: "Tunnel", FWD_DROUTE: "Route"}
_TUN_CSUM = {0: "--tun-nocsum", 1: "--tun-csum", 2: "--tun-remcsum"}


def _sched_flags(svc: Service) -> str:
    """ipvsadm print_sched_flags: sh/mh name their flags, others say flag-N."""
    names: list[str] = []
    if svc.sched in ("sh", "mh"):
        if svc.flags & SVC_F_SCHED1:
            names.append(f"{svc.sched}-fallback")
        if svc.flags & SVC_F_SCHED2:
            names.append(f"{svc.sched}-port")
        if svc.flags & SVC_F_SCHED3:
            names.append("flag-3")
    else:
        for bit, name in (
            (SVC_F_SCHED1, "flag-1"),
            (SVC_F_SCHED2, "flag-2"),
            (SVC_F_SCHED3, "flag-3"),
        ):
            if svc.flags & bit:
                names.append(name)
    return ",".join(names)


def _host(family: int, address: str) -> str:
    return f"[{address}]" if family == 6 else address


def _service_arg(skey: ServiceKey) -> str:
    if skey.fwmark:
        return f"-f {skey.fwmark}" + (" -6" if skey.family == 6 else "")
    return f"{Proto(skey.proto).flag} {_host(skey.family, skey.address)}:{skey.port}"


def _dest_host(dkey: DestKey) -> str:
    return _host(6 if ":" in dkey.address else 4, dkey.address)


def _svc_order(skey: ServiceKey) -> tuple[int, int, int, int, int]:
    """ipvsadm (libipvs) ipvs_cmp_services: fwmark, family, protocol, address, port."""
    addr = int(ipaddress.ip_address(skey.address)) if skey.address else 0
    return (skey.fwmark, _AF_NUM[skey.family], skey.proto, addr, skey.port)


def _dest_order(dkey: DestKey) -> tuple[int, int, int]:
    """libipvs ipvs_cmp_dests: family, address, port."""
    a = ipaddress.ip_address(dkey.address)
    return (_AF_NUM[a.version], int(a), dkey.port)


def _sorted(table: Table) -> list[tuple[ServiceKey, list[tuple[DestKey, Dest]]]]:
    """ipvsadm sorts what it lists, services and their destinations."""
    return [
        (skey, sorted(table[skey].dests.items(), key=lambda kv: _dest_order(kv[0])))
        for skey in sorted(table, key=_svc_order)
    ]


def format_save(table: Table) -> str:
    """The table as ``ipvsadm -Sn`` prints it (sorted as ipvsadm sorts)."""
    lines: list[str] = []
    for skey, dests in _sorted(table):
        entry = table[skey]
        svc = entry.service
        line = f"-A {_service_arg(skey)} -s {svc.sched}"
        if svc.flags & SVC_F_PERSISTENT:
            line += f" -p {svc.timeout}"
            full = 32 if skey.family == 4 else 128
            if svc.netmask != full:
                line += f" -M {mask_from_prefix(svc.netmask) if skey.family == 4 else svc.netmask}"
            if svc.pe_name:
                line += f" --pe {svc.pe_name}"
        if svc.flags & SVC_F_ONEPACKET:
            line += " -o"
        flags = _sched_flags(svc)
        if flags:
            line += f" -b {flags}"
        lines.append(line)
        for dkey, d in dests:
            line = (
                f"-a {_service_arg(skey)} -r {_dest_host(dkey)}:{dkey.port} "
                f"{_FWD_FLAG[d.fwd]} -w {d.weight}"
            )
            if d.fwd == FWD_TUNNEL:
                name = TUN_NAMES.get(d.tun_type, str(d.tun_type))
                line += f" --tun-type {name}"
                if d.tun_port:
                    line += f" --tun-port {d.tun_port}"
                if name != "ipip":
                    line += f" {_TUN_CSUM.get(d.tun_flags, '')}"
            lines.append(line)
    return "".join(line + "\n" for line in lines)


def _port(port: int, proto: int, numeric: bool) -> str:
    if numeric or not port:
        return str(port)
    try:
        return socket.getservbyport(port, "udp" if proto == Proto.UDP.value else "tcp")
    except OSError:
        return str(port)


def _svc_name(skey: ServiceKey, numeric: bool) -> str:
    if skey.fwmark:
        return f"FWM  {skey.fwmark}" + (" IPv6" if skey.family == 6 else "")
    proto = Proto(skey.proto).name
    host = _host(skey.family, skey.address)
    return f"{proto:<4} {host}:{_port(skey.port, skey.proto, numeric)}"


def _largenum(n: int) -> str:
    """ipvsadm print_largenum: 8 columns, K/M/G/T beyond."""
    if n < 100_000_000:
        return f"{n:8d}"
    if n < 1_000_000_000:
        return f"{n // 1000:7d}K"
    if n < 100_000_000_000:
        return f"{n // 1_000_000:7d}M"
    if n < 100_000_000_000_000:
        return f"{n // 1_000_000_000:7d}G"
    return f"{n // 1_000_000_000_000:7d}T"


def format_list(
    table: Table,
    numeric: bool = True,
    stats: Stats | None = None,
    mode: str = "",
    version: str = "1.2.1",
    size: int = 4096,
) -> str:
    """The table as ``ipvsadm -L[n] [--stats|--rate]`` prints it.

    ``mode`` is "", "stats" or "rate"; the counters come from ``stats``
    (``Kernel.read_with_stats``).
    """
    out = [f"IP Virtual Server version {version} (size={size})"]
    if mode == "stats":
        out.append("Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes")
        out.append("  -> RemoteAddress:Port")
        cols: tuple[str, ...] = ("conns", "inpkts", "outpkts", "inbytes", "outbytes")
    elif mode == "rate":
        out.append("Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS")
        out.append("  -> RemoteAddress:Port")
        cols = ("cps", "inpps", "outpps", "inbps", "outbps")
    else:
        out.append("Prot LocalAddress:Port Scheduler Flags")
        out.append("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn")
        cols = ()
    st = stats or {}
    for skey, dests in _sorted(table):
        entry = table[skey]
        name = _svc_name(skey, numeric)
        svc = entry.service
        if cols:
            s = st.get((skey, None), {})
            out.append(f"{name:<33}" + "".join(" " + _largenum(s.get(c, 0)) for c in cols))
        else:
            line = f"{name} {svc.sched}"
            flags = _sched_flags(svc)
            if flags:
                line += f" ({flags})"
            if svc.flags & SVC_F_PERSISTENT:
                line += f" persistent {svc.timeout}"
                full = 32 if skey.family == 4 else 128
                if svc.netmask != full:
                    mask = mask_from_prefix(svc.netmask) if skey.family == 4 else svc.netmask
                    line += f" mask {mask}"
            if svc.flags & SVC_F_ONEPACKET:
                line += " ops"
            out.append(line)
        for dkey, d in dests:
            port = _port(dkey.port, skey.proto or Proto.TCP.value, numeric)
            dname = f"{_dest_host(dkey)}:{port}"
            s = st.get((skey, dkey), {})
            if cols:
                out.append(
                    f"  -> {dname:<28}" + "".join(" " + _largenum(s.get(c, 0)) for c in cols)
                )
            else:
                active, inactive = s.get("active", 0), s.get("inactive", 0)
                out.append(
                    f"  -> {dname:<28} {_FWD_NAME[d.fwd]:<7} {d.weight:<6d} "
                    f"{active:<10d} {inactive:<10d}"
                )
    return "".join(line + "\n" for line in out)
