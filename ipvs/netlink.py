"""The kernel side: read the IPVS table back, apply ``diff`` operations, timeouts, sync daemon.

This is the only module of ``ipvs/`` that talks to the kernel.  It uses
pyroute2's generic-netlink IPVS socket to find the IPVS family and to dump
the table (read-back), and writes with its own batched requests:

- pyroute2's command map has traps (``"update"`` sends DEL_*, an unknown
  keyword such as ``sched=`` is dropped so the kernel falls back to wlc,
  ``TUN_PORT`` is sent in host order where the kernel reads big-endian,
  the IPv6 persistence netmask is typed as an IPv4 address); encoding the
  few attributes here makes every field explicit;
- one round trip per operation costs more than the kernel work, so
  operations go out many per ``send`` with an ACK each, and every ACK is
  matched to its operation (errors name the operation).

Blocking calls: the trio service runs these in ``trio.to_thread``.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import socket
import struct
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pykeep.config.model import LvsSyncDaemon, LvsTimeouts

from .diff import Op, OpKind
from .table import (
    SVC_USER_FLAGS,
    Dest,
    DestKey,
    Service,
    ServiceEntry,
    ServiceKey,
    Table,
    prefix_from_mask,
)

NETLINK_GENERIC = 16
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 2

# include/uapi/linux/ip_vs.h
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE = 1, 2, 3
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST = 5, 6, 7
CMD_NEW_DAEMON, CMD_DEL_DAEMON = 9, 10
CMD_SET_CONFIG, CMD_GET_INFO, CMD_FLUSH = 12, 15, 17
INFO_VERSION, INFO_CONN_TAB_SIZE = 1, 2
A_SERVICE, A_DEST, A_DAEMON, A_TIMEOUT_TCP, A_TIMEOUT_TCP_FIN, A_TIMEOUT_UDP = 1, 2, 3, 4, 5, 6
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK = 1, 2, 3, 4, 5
SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK, SVC_PE_NAME = 6, 7, 8, 9, 11
DST_ADDR, DST_PORT, DST_FWD, DST_WEIGHT, DST_U_THRESH, DST_L_THRESH = 1, 2, 3, 4, 5, 6
DST_ADDR_FAMILY, DST_TUN_TYPE, DST_TUN_PORT, DST_TUN_FLAGS = 11, 13, 14, 15
DMN_STATE, DMN_MCAST_IFN, DMN_SYNC_ID, DMN_SYNC_MAXLEN = 1, 2, 3, 4
DMN_MCAST_GROUP, DMN_MCAST_GROUP6, DMN_MCAST_PORT, DMN_MCAST_TTL = 5, 6, 7, 8
SYNC_MASTER, SYNC_BACKUP = 1, 2

_AF = {4: socket.AF_INET, 6: socket.AF_INET6}
_CMD = {
    OpKind.ADD_SERVICE: CMD_NEW_SERVICE,
    OpKind.EDIT_SERVICE: CMD_SET_SERVICE,
    OpKind.DEL_SERVICE: CMD_DEL_SERVICE,
    OpKind.ADD_DEST: CMD_NEW_DEST,
    OpKind.EDIT_DEST: CMD_SET_DEST,
    OpKind.DEL_DEST: CMD_DEL_DEST,
}

StatsMap = dict[tuple[ServiceKey, DestKey | None], dict[str, int]]

NO_IPVS = (
    "the kernel has no IPVS (generic netlink family 'IPVS' not found; "
    "load it with 'modprobe ip_vs' or use a kernel built with CONFIG_IP_VS)"
)


class IpvsUnavailable(RuntimeError):
    """The running kernel has no IPVS; the message is the one line to print."""


class IpvsError(RuntimeError):
    """The kernel refused some requests; ``errors`` says which and why, one per line."""

    def __init__(self, errors: list[str]) -> None:
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"IPVS refused {len(errors)} request(s): " + "; ".join(errors[:5]) + more)
        self.errors = errors


# --------------------------------------------------------------------------
# attribute encoding (struct nlattr: u16 len, u16 type, payload padded to 4)


def _nla(kind: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * (-n & 3)


def _u16(kind: int, v: int) -> bytes:
    return _nla(kind, struct.pack("=H", v))


def _be16(kind: int, v: int) -> bytes:
    return _nla(kind, struct.pack("!H", v))


def _u32(kind: int, v: int) -> bytes:
    return _nla(kind, struct.pack("=I", v))


def _str(kind: int, v: str) -> bytes:
    return _nla(kind, v.encode() + b"\0")


def _addr(family: int, address: str) -> bytes:
    return socket.inet_pton(_AF[family], address)


@functools.lru_cache(maxsize=4096)
def _service_key_attrs(skey: ServiceKey) -> bytes:
    # every dest operation repeats its service's key: encode it once
    return service_attrs(skey, None)


def service_attrs(skey: ServiceKey, svc: Service | None) -> bytes:
    """The service nest: the key, plus every setting when ``svc`` is given."""
    af = _AF[skey.family]
    out = _u16(SVC_AF, af)
    if skey.fwmark:
        out += _u32(SVC_FWMARK, skey.fwmark)
    else:
        out += _u16(SVC_PROTOCOL, skey.proto)
        out += _nla(SVC_ADDR, _addr(skey.family, skey.address))
        out += _be16(SVC_PORT, skey.port)
    if svc is not None:
        out += _str(SVC_SCHED_NAME, svc.sched)
        out += _nla(SVC_FLAGS, struct.pack("=II", svc.flags, 0xFFFFFFFF))
        out += _u32(SVC_TIMEOUT, svc.timeout)
        if skey.family == 4:
            mask = int(ipaddress.IPv4Network(f"0.0.0.0/{svc.netmask}").netmask)
            out += _nla(SVC_NETMASK, struct.pack("!I", mask))
        else:
            out += _u32(SVC_NETMASK, svc.netmask)  # IPv6: the prefix length itself
        if svc.pe_name:
            out += _str(SVC_PE_NAME, svc.pe_name)
    return _nla(A_SERVICE, out)


# The common dest nest (IPv4, no tunnel settings) in one pack: it is the
# bulk of a large sync, and packing attribute by attribute costs 5x more.
_DEST4 = struct.Struct("=HH HH4s HHH2x HHI HHI HHI HHI HHH2x")
_DEST4_LEN = _DEST4.size


def dest_attrs(dkey: DestKey, dest: Dest | None) -> bytes:
    """The dest nest: address and port, plus every setting when ``dest`` is given."""
    v6 = ":" in dkey.address
    if not v6 and dest is not None and not (dest.tun_type or dest.tun_port or dest.tun_flags):
        return _DEST4.pack(
            _DEST4_LEN, A_DEST,
            8, DST_ADDR, socket.inet_aton(dkey.address),
            6, DST_PORT, socket.htons(dkey.port),
            8, DST_FWD, dest.fwd,
            8, DST_WEIGHT, dest.weight,
            8, DST_U_THRESH, dest.u_threshold,
            8, DST_L_THRESH, dest.l_threshold,
            6, DST_ADDR_FAMILY, socket.AF_INET,
        )  # fmt: skip
    dfam = 6 if v6 else 4
    out = _nla(DST_ADDR, _addr(dfam, dkey.address)) + _be16(DST_PORT, dkey.port)
    if dest is not None:
        out += _u32(DST_FWD, dest.fwd)
        out += _u32(DST_WEIGHT, dest.weight)
        out += _u32(DST_U_THRESH, dest.u_threshold)
        out += _u32(DST_L_THRESH, dest.l_threshold)
        out += _u16(DST_ADDR_FAMILY, _AF[dfam])
        if dest.tun_type or dest.tun_port or dest.tun_flags:
            out += _nla(DST_TUN_TYPE, struct.pack("=B", dest.tun_type))
            out += _be16(DST_TUN_PORT, dest.tun_port)
            out += _u16(DST_TUN_FLAGS, dest.tun_flags)
    return _nla(A_DEST, out)


def op_payload(op: Op) -> tuple[int, bytes]:
    """(command, attributes) of one operation."""
    cmd = _CMD[op.kind]
    if op.kind is OpKind.DEL_SERVICE:
        return cmd, service_attrs(op.skey, None)
    if op.kind in (OpKind.ADD_SERVICE, OpKind.EDIT_SERVICE):
        return cmd, service_attrs(op.skey, op.service)
    assert op.dkey is not None
    body = _service_key_attrs(op.skey)
    body += dest_attrs(op.dkey, None if op.kind is OpKind.DEL_DEST else op.dest)
    return cmd, body


# --------------------------------------------------------------------------
# the socket


@dataclass
class Counters:
    """Operations sent, by kind; the reload tests assert on these."""

    sent: dict[str, int]

    def total(self) -> int:
        return sum(self.sent.values())


class Kernel:
    """A connection to the kernel's IPVS.

    ``open()`` raises :class:`IpvsUnavailable` with one clear line when
    the kernel has no IPVS (pyroute2 itself only says
    ``NetlinkError(2, 'No such file or directory')``).
    """

    def __init__(self, family_id: int, ipvs: Any) -> None:
        self._family = family_id
        self._ipvs = ipvs  # pyroute2.IPVS, for dumps
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._sock.bind((0, 0))
        self._seq = 0
        self.counters = Counters({k.value: 0 for k in OpKind})

    @classmethod
    def open(cls, modprobe: bool = True) -> Kernel:
        from pyroute2 import IPVS
        from pyroute2.netlink.exceptions import NetlinkError

        for attempt in (0, 1):
            try:
                ipvs = IPVS()
            except NetlinkError as e:
                if e.code != errno.ENOENT:
                    raise IpvsUnavailable(f"IPVS netlink: {e}") from None
                if attempt == 0 and modprobe:
                    # keepalived does the same (check/ipvswrapper.c ipvs_start)
                    subprocess.run(["modprobe", "ip_vs"], capture_output=True, check=False)
                    continue
                raise IpvsUnavailable(NO_IPVS) from None
            except OSError as e:
                raise IpvsUnavailable(f"IPVS netlink: {e.strerror}") from None
            return cls(ipvs.prid, ipvs)
        raise IpvsUnavailable(NO_IPVS)  # pragma: no cover

    def close(self) -> None:
        self._sock.close()
        self._ipvs.close()

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writes

    def _request(self, items: Sequence[tuple[int, bytes, object]], batch: int = 256) -> list[str]:
        """Send (cmd, attrs, what) requests, ``batch`` per send; return the errors.

        ``what`` names the request in an error (``str(what)``, only formatted
        when the kernel refuses it).
        """
        errors: list[str] = []
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            buf = bytearray()
            labels: dict[int, object] = {}
            for cmd, attrs, label in chunk:
                self._seq += 1
                n = 20 + len(attrs)
                buf += struct.pack(
                    "=IHHII", n, self._family, NLM_F_REQUEST | NLM_F_ACK, self._seq, 0
                )
                buf += struct.pack("=BBH", cmd, 1, 0) + attrs
                labels[self._seq] = label
            self._sock.send(bytes(buf))
            while labels:
                data = self._sock.recv(1 << 20)
                off = 0
                while off + 16 <= len(data):
                    n, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
                    if kind == NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", data, off + 16)
                        label = labels.pop(seq, None)
                        if code and label is not None:
                            errors.append(f"{label}: {os.strerror(-code)}")
                    off += (n + 3) & ~3
        return errors

    def apply(self, ops: Iterable[Op]) -> None:
        """Apply ``ops`` in order; :class:`IpvsError` lists what the kernel refused."""
        items = []
        for op in ops:
            cmd, attrs = op_payload(op)
            items.append((cmd, attrs, op))
            self.counters.sent[op.kind.value] += 1
        self._check(self._request(items))

    def flush(self) -> None:
        """Remove every service (``ipvsadm -C``; keepalived ``lvs_flush``)."""
        self._check(self._request([(CMD_FLUSH, b"", "flush")]))

    def set_timeouts(self, t: LvsTimeouts) -> None:
        """``ipvsadm --set tcp tcpfin udp``; 0 leaves a value unchanged, as in the kernel."""
        attrs = (
            _u32(A_TIMEOUT_TCP, t.tcp or 0)
            + _u32(A_TIMEOUT_TCP_FIN, t.tcpfin or 0)
            + _u32(A_TIMEOUT_UDP, t.udp or 0)
        )
        self._check(self._request([(CMD_SET_CONFIG, attrs, "set timeouts")]))

    def start_sync_daemon(self, d: LvsSyncDaemon, master: bool) -> None:
        """``ipvsadm --start-daemon master|backup`` for ``lvs_sync_daemon``."""
        body = _u32(DMN_STATE, SYNC_MASTER if master else SYNC_BACKUP)
        body += _str(DMN_MCAST_IFN, d.interface)
        body += _u32(DMN_SYNC_ID, d.sync_id or 0)
        if d.maxlen:
            body += _u16(DMN_SYNC_MAXLEN, d.maxlen)
        if d.port:
            body += _u16(DMN_MCAST_PORT, d.port)
        if d.ttl:
            body += _nla(DMN_MCAST_TTL, struct.pack("=B", d.ttl))
        if d.group is not None:
            kind = DMN_MCAST_GROUP if d.group.version == 4 else DMN_MCAST_GROUP6
            body += _nla(kind, d.group.packed)
        self._check(self._request([(CMD_NEW_DAEMON, _nla(A_DAEMON, body), "start sync daemon")]))

    def stop_sync_daemon(self, master: bool) -> None:
        body = _u32(DMN_STATE, SYNC_MASTER if master else SYNC_BACKUP)
        errs = self._request([(CMD_DEL_DAEMON, _nla(A_DAEMON, body), "stop sync daemon")])
        # stopping a daemon that is not running is not an error for us
        self._check([e for e in errs if "No such process" not in e])

    def info(self) -> tuple[str, int]:
        """(version, connection table size), the first line of ``ipvsadm -L``."""
        self._seq += 1
        self._sock.send(
            struct.pack("=IHHII", 20, self._family, NLM_F_REQUEST, self._seq, 0)
            + struct.pack("=BBH", CMD_GET_INFO, 1, 0)
        )
        data = self._sock.recv(1 << 16)
        version, size = 0, 0
        off = 20
        n = struct.unpack_from("=I", data)[0]
        while off + 4 <= n:
            alen, akind = struct.unpack_from("=HH", data, off)
            if akind == INFO_VERSION:
                version = struct.unpack_from("=I", data, off + 4)[0]
            elif akind == INFO_CONN_TAB_SIZE:
                size = struct.unpack_from("=I", data, off + 4)[0]
            off += (alen + 3) & ~3
        return f"{version >> 16}.{(version >> 8) & 0xFF}.{version & 0xFF}", size

    @staticmethod
    def _check(errors: list[str]) -> None:
        if errors:
            raise IpvsError(errors)

    # ---- read-back

    def read(self, with_stats: bool = False) -> Table:
        """The table the kernel holds now (services in the kernel's order)."""
        table, _ = self.read_with_stats() if with_stats else (self._read(None), None)
        return table

    def read_with_stats(
        self,
    ) -> tuple[Table, dict[tuple[ServiceKey, DestKey | None], dict[str, int]]]:
        stats: dict[tuple[ServiceKey, DestKey | None], dict[str, int]] = {}
        return self._read(stats), stats

    def _read(self, stats: dict[tuple[ServiceKey, DestKey | None], dict[str, int]] | None) -> Table:
        from pyroute2 import IPVSService

        table: Table = {}
        for msg in self._ipvs.service("dump"):
            nest = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
            skey, svc = _parse_service(nest)
            entry = ServiceEntry(svc)
            table[skey] = entry
            if stats is not None:
                stats[(skey, None)] = _stats(nest)
            for dmsg in self._ipvs.dest("dump", service=IPVSService.from_message(msg)):
                dnest = dmsg.get_attr("IPVS_CMD_ATTR_DEST")
                dkey, dest = _parse_dest(dnest)
                entry.dests[dkey] = dest
                if stats is not None:
                    st = _stats(dnest)
                    st["active"] = dnest.get_attr("IPVS_DEST_ATTR_ACTIVE_CONNS") or 0
                    st["inactive"] = dnest.get_attr("IPVS_DEST_ATTR_INACT_CONNS") or 0
                    stats[(skey, dkey)] = st
        return table


_STAT_NAMES = {
    "IPVS_STATS_ATTR_CONNS": "conns",
    "IPVS_STATS_ATTR_INPKTS": "inpkts",
    "IPVS_STATS_ATTR_OUTPKTS": "outpkts",
    "IPVS_STATS_ATTR_INBYTES": "inbytes",
    "IPVS_STATS_ATTR_OUTBYTES": "outbytes",
    "IPVS_STATS_ATTR_CPS": "cps",
    "IPVS_STATS_ATTR_INPPS": "inpps",
    "IPVS_STATS_ATTR_OUTPPS": "outpps",
    "IPVS_STATS_ATTR_INBPS": "inbps",
    "IPVS_STATS_ATTR_OUTBPS": "outbps",
}


def _stats(nest: Any) -> dict[str, int]:
    s = nest.get_attr("IPVS_SVC_ATTR_STATS64") or nest.get_attr("IPVS_DEST_ATTR_STATS64")
    if s is None:
        s = nest.get_attr("IPVS_SVC_ATTR_STATS") or nest.get_attr("IPVS_DEST_ATTR_STATS")
    out = dict.fromkeys(_STAT_NAMES.values(), 0)
    if s is not None:
        for name, value in s["attrs"]:
            if name in _STAT_NAMES:
                out[_STAT_NAMES[name]] = int(value)
    return out


def _parse_service(nest: Any) -> tuple[ServiceKey, Service]:
    af = nest.get_attr("IPVS_SVC_ATTR_AF")
    family = 6 if af == socket.AF_INET6 else 4
    fwmark = nest.get_attr("IPVS_SVC_ATTR_FWMARK") or 0
    if fwmark:
        skey = ServiceKey(family=family, fwmark=fwmark)
    else:
        skey = ServiceKey(
            family=family,
            proto=nest.get_attr("IPVS_SVC_ATTR_PROTOCOL"),
            address=str(ipaddress.ip_address(nest.get_attr("IPVS_SVC_ATTR_ADDR"))),
            port=nest.get_attr("IPVS_SVC_ATTR_PORT"),
        )
    mask = nest.get_attr("IPVS_SVC_ATTR_NETMASK") or "255.255.255.255"
    if family == 6:
        # pyroute2 decodes the u32 prefix length as an IPv4 address
        netmask = struct.unpack("=I", socket.inet_aton(mask))[0]
    else:
        netmask = prefix_from_mask(mask, 4)
    flags = nest.get_attr("IPVS_SVC_ATTR_FLAGS") or {"flags": 0}
    return skey, Service(
        sched=nest.get_attr("IPVS_SVC_ATTR_SCHED_NAME") or "",
        flags=flags["flags"] & SVC_USER_FLAGS,
        timeout=nest.get_attr("IPVS_SVC_ATTR_TIMEOUT") or 0,
        netmask=netmask,
        pe_name=nest.get_attr("IPVS_SVC_ATTR_PE_NAME") or "",
    )


def _parse_dest(nest: Any) -> tuple[DestKey, Dest]:
    dkey = DestKey(
        str(ipaddress.ip_address(nest.get_attr("IPVS_DEST_ATTR_ADDR"))),
        nest.get_attr("IPVS_DEST_ATTR_PORT"),
    )
    tun_port = nest.get_attr("IPVS_DEST_ATTR_TUN_PORT") or 0
    return dkey, Dest(
        fwd=(nest.get_attr("IPVS_DEST_ATTR_FWD_METHOD") or 0) & 0x7,
        weight=nest.get_attr("IPVS_DEST_ATTR_WEIGHT") or 0,
        u_threshold=nest.get_attr("IPVS_DEST_ATTR_U_THRESH") or 0,
        l_threshold=nest.get_attr("IPVS_DEST_ATTR_L_THRESH") or 0,
        tun_type=nest.get_attr("IPVS_DEST_ATTR_TUN_TYPE") or 0,
        # pyroute2 decodes the big-endian port in host order
        tun_port=socket.ntohs(tun_port),
        tun_flags=nest.get_attr("IPVS_DEST_ATTR_TUN_FLAGS") or 0,
    )
