"""Links and addresses over a bare rtnetlink socket: dumps in one round trip each.

Why not pyroute2 here: start-up needs every interface's index, flags, MAC
and addresses, and the VIPs already present, before the first advert.  One
``RTM_GETLINK`` and one ``RTM_GETADDR`` dump answer all of it for any number
of instances (keepalived reads the same two dumps once at start-up,
vrrp_netlink.c ``netlink_interface_lookup`` / ``netlink_address_lookup``).
Adding and removing a VIP is one request with an ACK.  This module imports
nothing heavy, so the daemon can remove a crashed run's VIPs before it
loads trio, structlog or pyroute2 (keepalived removes them at start,
vrrp.c ``vrrp_complete_instance``: "left over from a previous run").

Errors are ``OSError`` with the kernel's errno.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

from pykeep.config.model import frozen_dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pykeep.config.model import Config

NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4
IFA_FLAGS = 8
IFA_F_SECONDARY = 0x01
IFF_UP = 0x1
IFF_RUNNING = 0x40

_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTA = struct.Struct("=HH")

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


@frozen_dataclass
class Link:
    index: int
    name: str
    flags: int
    mac: bytes


@frozen_dataclass
class Addr:
    index: int
    address: IPAddr
    prefixlen: int
    flags: int
    scope: int


def _attrs(data: bytes, off: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + 4 <= end:
        alen, atype = _RTA.unpack_from(data, off)
        if alen < 4 or off + alen > end:
            break
        out.setdefault(atype & 0x3FFF, data[off + 4 : off + alen])
        off += (alen + 3) & ~3
    return out


def _attr(kind: int, value: bytes) -> bytes:
    raw = _RTA.pack(4 + len(value), kind) + value
    return raw + b"\0" * (-len(raw) % 4)


class Rtnl:
    """One rtnetlink socket for requests; not the multicast listener (vrrp.track)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _request(self, kind: int, flags: int, body: bytes) -> list[tuple[int, bytes, int]]:
        """Send one request; (type, message, body offset) of every reply until DONE/ACK."""
        self.seq += 1
        seq = self.seq
        msg = _NLMSG.pack(_NLMSG.size + len(body), kind, NLM_F_REQUEST | flags, seq, 0) + body
        self.sock.send(msg)
        out: list[tuple[int, bytes, int]] = []
        while True:
            data = self.sock.recv(1 << 20)
            off = 0
            while off + _NLMSG.size <= len(data):
                length, mtype, _f, mseq, _pid = _NLMSG.unpack_from(data, off)
                if length < _NLMSG.size:
                    return out
                if mseq == seq:
                    if mtype == NLMSG_DONE:
                        return out
                    if mtype == NLMSG_ERROR:
                        code = struct.unpack_from("=i", data, off + _NLMSG.size)[0]
                        if code:
                            raise OSError(-code, os.strerror(-code))
                        return out
                    out.append((mtype, data[off : off + length], _NLMSG.size))
                off += (length + 3) & ~3

    def links(self) -> list[Link]:
        """Every link, from one RTM_GETLINK dump."""
        out: list[Link] = []
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        for _t, msg, off in self._request(RTM_GETLINK, NLM_F_DUMP, body):
            _fam, _type, index, flags, _chg = _IFINFO.unpack_from(msg, off)
            at = _attrs(msg, off + _IFINFO.size, len(msg))
            name = at.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode(errors="replace")
            out.append(Link(index, name, flags, at.get(IFLA_ADDRESS, b"\0" * 6)))
        return out

    def addresses(self) -> list[Addr]:
        """Every address of every link, in the kernel's order, from one RTM_GETADDR dump."""
        out: list[Addr] = []
        body = _IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        for _t, msg, off in self._request(RTM_GETADDR, NLM_F_DUMP, body):
            fam, plen, flags, scope, index = _IFADDR.unpack_from(msg, off)
            at = _attrs(msg, off + _IFADDR.size, len(msg))
            # IFA_LOCAL is the interface's own address on point-to-point links.
            raw = at.get(IFA_LOCAL) or at.get(IFA_ADDRESS)
            if raw is None:
                continue
            if IFA_FLAGS in at and len(at[IFA_FLAGS]) >= 4:
                flags = struct.unpack("=I", at[IFA_FLAGS][:4])[0]
            if fam == socket.AF_INET and len(raw) == 4:
                out.append(Addr(index, ipaddress.IPv4Address(raw), plen, flags, scope))
            elif fam == socket.AF_INET6 and len(raw) == 16:
                out.append(Addr(index, ipaddress.IPv6Address(raw), plen, flags, scope))
        return out

    def address(
        self,
        add: bool,
        index: int,
        address: IPAddr,
        prefixlen: int,
        *,
        scope: int = 0,
        flags: int = 0,
        broadcast: IPAddr | None = None,
        label: str | None = None,
    ) -> None:
        """RTM_NEWADDR / RTM_DELADDR with an ACK; OSError(errno) on refusal."""
        fam = socket.AF_INET if address.version == 4 else socket.AF_INET6
        body = _IFADDR.pack(fam, prefixlen, flags & 0xFF, scope, index)
        body += _attr(IFA_LOCAL, address.packed) + _attr(IFA_ADDRESS, address.packed)
        if add:
            if broadcast is not None:
                body += _attr(IFA_BROADCAST, broadcast.packed)
            if label is not None:
                body += _attr(IFA_LABEL, label.encode() + b"\0")
            if flags > 0xFF:
                body += _attr(IFA_FLAGS, struct.pack("=I", flags))
            self._request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body)
        else:
            self._request(RTM_DELADDR, NLM_F_ACK, body)


def leftover_candidates(
    config: Config,
) -> list[tuple[str, ipaddress.IPv4Interface | ipaddress.IPv6Interface]]:
    """(device, VIP) for every configured VIP and eVIP of every instance."""
    out: list[tuple[str, ipaddress.IPv4Interface | ipaddress.IPv6Interface]] = []
    for inst in config.vrrp_instances:
        for spec in (*inst.virtual_ipaddress, *inst.virtual_ipaddress_excluded):
            dev = spec.dev or inst.interface
            if dev is not None:
                out.append((dev, spec.address))
    return out


def remove_leftovers(
    wanted: list[tuple[str, ipaddress.IPv4Interface | ipaddress.IPv6Interface]],
) -> list[tuple[str, str]]:
    """Remove every (device, VIP) in ``wanted`` that is present now; (device, VIP) removed.

    Two dumps and one request per address actually found, however many
    instances the configuration has.
    """
    removed: list[tuple[str, str]] = []
    with Rtnl() as nl:
        by_name = {lk.name: lk.index for lk in nl.links()}
        present = {(a.index, a.address) for a in nl.addresses()}
        for dev, vip in wanted:
            index = by_name.get(dev)
            if index is None or (index, vip.ip) not in present:
                continue
            try:
                nl.address(False, index, vip.ip, vip.network.prefixlen)
            except OSError:
                continue
            present.discard((index, vip.ip))
            removed.append((dev, str(vip)))
    return removed
