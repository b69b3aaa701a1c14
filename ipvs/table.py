"""Typed records of the kernel's IPVS table.

This is the vocabulary shared by the pure core (``desired``, ``policy``,
``diff``) and the netlink shell: what one ``ipvsadm -Sn`` line says, as a
frozen value.  Nothing here talks to the kernel.

A ``Table`` maps a ``ServiceKey`` (what the kernel identifies a virtual
service by) to a ``ServiceEntry`` (the service's settings and its
destinations keyed by ``DestKey``).  Two tables are equal exactly when the
kernel would hold the same thing, so ``diff`` can compare them field by field.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum

from pykeep.config.model import IPAddress

# include/uapi/linux/ip_vs.h service flags
SVC_F_PERSISTENT = 0x0001
SVC_F_HASHED = 0x0002
SVC_F_ONEPACKET = 0x0004
SVC_F_SCHED1 = 0x0008
SVC_F_SCHED2 = 0x0010
SVC_F_SCHED3 = 0x0020

# the flags a user sets; HASHED is kernel bookkeeping and never compared
SVC_USER_FLAGS = SVC_F_PERSISTENT | SVC_F_ONEPACKET | SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3

# ip_vs.h IP_VS_CONN_F_* forwarding methods
FWD_MASQ = 0
FWD_LOCALNODE = 1
FWD_TUNNEL = 2
FWD_DROUTE = 3

# ip_vs.h IP_VS_CONN_F_TUNNEL_TYPE_*
TUN_TYPES = {"ipip": 0, "gue": 1, "gre": 2}
TUN_NAMES = {v: k for k, v in TUN_TYPES.items()}
# IP_VS_TUNNEL_ENCAP_FLAG_*
TUN_F_NOCSUM = 0
TUN_F_CSUM = 1
TUN_F_REMCSUM = 2

IPVS_WEIGHT_LIMIT = 65535  # keepalived check_data.h IPVS_WEIGHT_LIMIT
PERSISTENCE_DEFAULT = 360  # ipvsadm and keepalived: a bare "persistent" means 360 s


class Proto(Enum):
    """The transport of an address:port service; fwmark services have none."""

    # IANA protocol numbers (netinet/in.h), written out so this vocabulary of
    # the pure cores does not import socket
    TCP = 6
    UDP = 17
    SCTP = 132

    @property
    def flag(self) -> str:
        """The ipvsadm option that names this protocol."""
        return {Proto.TCP: "-t", Proto.UDP: "-u", Proto.SCTP: "--sctp-service"}[self]


@dataclass(frozen=True, slots=True, order=True)
class ServiceKey:
    """How the kernel identifies a service: (af, proto, addr, port) or (af, fwmark)."""

    family: int  # 4 or 6
    fwmark: int = 0
    proto: int = 0  # Proto value; 0 for fwmark services
    address: str = ""  # canonical text form; "" for fwmark services
    port: int = 0

    @classmethod
    def inet(cls, address: IPAddress, port: int, proto: Proto) -> ServiceKey:
        return cls(family=address.version, proto=proto.value, address=str(address), port=port)

    @classmethod
    def mark(cls, fwmark: int, family: int = 4) -> ServiceKey:
        return cls(family=family, fwmark=fwmark)

    def __str__(self) -> str:
        if self.fwmark:
            return f"FWM {self.fwmark}" + (" IPv6" if self.family == 6 else "")
        host = f"[{self.address}]" if self.family == 6 else self.address
        return f"{Proto(self.proto).name} {host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Service:
    """A service's settings: what ``ipvsadm -E`` can change without touching dests."""

    sched: str = "wlc"
    flags: int = 0  # SVC_USER_FLAGS only
    timeout: int = 0  # persistence timeout, seconds; 0 = not persistent
    netmask: int = 32  # persistence granularity as a prefix length
    pe_name: str = ""


@dataclass(frozen=True, slots=True, order=True)
class DestKey:
    """How the kernel identifies a destination within a service."""

    address: str
    port: int


@dataclass(frozen=True, slots=True)
class Dest:
    """A destination's settings: what ``ipvsadm -e`` can change."""

    fwd: int = FWD_MASQ
    weight: int = 1
    u_threshold: int = 0
    l_threshold: int = 0
    tun_type: int = 0
    tun_port: int = 0
    tun_flags: int = 0


@dataclass(slots=True)
class ServiceEntry:
    """One service and its destinations, as the kernel holds (or should hold) them."""

    service: Service
    dests: dict[DestKey, Dest] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServiceEntry):
            return NotImplemented
        return self.service == other.service and self.dests == other.dests


Table = dict[ServiceKey, ServiceEntry]


def dest_key(address: IPAddress | str, port: int) -> DestKey:
    """A DestKey with the address in canonical text form.

    An address object already prints canonically; only text is parsed (a
    parse per destination was a visible share of deciding a 10,000-server table).
    """
    if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return DestKey(str(address), port)
    return DestKey(str(ipaddress.ip_address(address)), port)


def copy_table(table: Table) -> Table:
    """A copy whose entries can be mutated without touching ``table``."""
    return {k: ServiceEntry(e.service, dict(e.dests)) for k, e in table.items()}


def prefix_from_mask(mask: str | int, family: int) -> int:
    """Turn an IPv4 dotted netmask (or an already-prefix int) into a prefix length."""
    if isinstance(mask, int):
        return mask
    return ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen if family == 4 else int(mask)


def mask_from_prefix(prefix: int) -> str:
    """The dotted IPv4 netmask ``ipvsadm -M`` prints for a prefix length."""
    return str(ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask)
