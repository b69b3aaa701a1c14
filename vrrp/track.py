"""Trackers: interfaces (netlink link and address events), vrrp_scripts and track files.

Each tracker here produces a plain status (link up, script good, file
value, the interface's source address); the driver turns it into a machine
event with ``vrrp.machine.track_effect`` / ``track_file_effect``, which hold
keepalived's weight rules (keepalived/vrrp/vrrp_track.c), or a
``SourceAddress``.  vrrp_scripts run once per script, whatever number of
instances track them, as in keepalived.

Interface state comes from RTM_NEWLINK/RTM_DELLINK multicast messages on a
netlink socket: no polling, as the issue asks.  "Up" is IFF_UP and
IFF_RUNNING, keepalived's ``IF_FLAGS_UP``.  The same socket hears
RTM_NEWADDR/RTM_DELADDR, from which :class:`InterfaceAddresses` keeps each
interface's source address as keepalived does (keepalived_netlink.c
``netlink_if_address_filter``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from pykeep import log as pklog
from pykeep import scripts
from pykeep.config.model import Config, VrrpScript, VrrpTrackFile
from vrrp.links import Rtnl, leftover_candidates

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_NEWADDR = 20
RTM_DELADDR = 21
IFLA_IFNAME = 3
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFF_UP = 0x1
IFF_RUNNING = 0x40
RT_SCOPE_LINK = 253

_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_link_messages(data: bytes) -> list[tuple[int, str, bool, bool]]:
    """(ifindex, name, up, deleted) for every link message in a netlink datagram."""
    return [m for m in parse_messages(data) if isinstance(m, tuple)]


@dataclass(frozen=True, slots=True)
class AddressChange:
    """One RTM_NEWADDR (``added``) or RTM_DELADDR for an IPv4 or IPv6 address."""

    index: int
    address: IPAddr
    scope: int
    added: bool


def parse_messages(data: bytes) -> list[tuple[int, str, bool, bool] | AddressChange]:
    """Link messages as (ifindex, name, up, deleted), address messages as
    :class:`AddressChange`, in the order the datagram holds them."""
    out: list[tuple[int, str, bool, bool] | AddressChange] = []
    off = 0
    while off + _NLMSG.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, off)
        if length < _NLMSG.size or off + length > len(data):
            break
        body = off + _NLMSG.size
        end = off + length
        if kind in (RTM_NEWLINK, RTM_DELLINK) and length >= _NLMSG.size + _IFINFO.size:
            _fam, _type, index, flags, _change = _IFINFO.unpack_from(data, body)
            attrs = _attrs(data, body + _IFINFO.size, end)
            name = attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode(errors="replace")
            up = bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)
            out.append((index, name, up and kind == RTM_NEWLINK, kind == RTM_DELLINK))
        elif kind in (RTM_NEWADDR, RTM_DELADDR) and length >= _NLMSG.size + _IFADDR.size:
            fam, _plen, _aflags, scope, index = _IFADDR.unpack_from(data, body)
            attrs = _attrs(data, body + _IFADDR.size, end)
            # The interface's own address is IFA_LOCAL (it differs from
            # IFA_ADDRESS on point-to-point links), as keepalived reads it.
            local = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS) or b""
            addr: IPAddr | None = None
            if fam == socket.AF_INET and len(local) == 4:
                addr = ipaddress.IPv4Address(local)
            elif fam == socket.AF_INET6 and len(local) == 16:
                addr = ipaddress.IPv6Address(local)
            if addr is not None:
                out.append(AddressChange(index, addr, scope, kind == RTM_NEWADDR))
        off += (length + 3) & ~3
    return out


def _attrs(data: bytes, off: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + 4 <= end:
        alen, atype = struct.unpack_from("=HH", data, off)
        if alen < 4 or off + alen > end:
            break
        out.setdefault(atype & 0x3FFF, data[off + 4 : off + alen])
        off += (alen + 3) & ~3
    return out


# ---------------------------------------------------------------- addresses


@dataclass(frozen=True, slots=True)
class Sources:
    """An interface's source addresses: what an instance without a configured
    source sends its adverts from (keepalived's ``ifp->sin_addr`` and
    ``ifp->sin6_addr``); None: the interface has none of that family."""

    ipv4: ipaddress.IPv4Address | None = None
    ipv6_ll: ipaddress.IPv6Address | None = None

    def of(self, family: int) -> IPAddr | None:
        return self.ipv4 if family == 4 else self.ipv6_ll


@dataclass
class InterfaceAddresses:
    """One interface's addresses as keepalived keeps them (keepalived_netlink.c
    ``netlink_if_address_filter``).

    Per family, the source (``sin_addr`` / ``sin6_addr``) and the other
    addresses in arrival order (``sin_addr_l``).  IPv6 counts link-local
    addresses only, and VIPs never count (``ignore_address_if_ours_or_link_local``).
    An address arriving while the interface has none becomes the source; when
    the source goes, the most recent other address takes its place, and only
    when none is left has the interface lost its address.  keepalived does not
    check that an arriving address is new when it becomes the source, nor
    consult the VIPs on deletion: neither does this.
    """

    source: dict[int, IPAddr] = field(default_factory=dict)
    others: dict[int, list[IPAddr]] = field(default_factory=dict)

    def sources(self) -> Sources:
        v4, v6 = self.source.get(4), self.source.get(6)
        return Sources(
            v4 if isinstance(v4, ipaddress.IPv4Address) else None,
            v6 if isinstance(v6, ipaddress.IPv6Address) else None,
        )

    def apply(self, change: AddressChange, ours: bool = False) -> bool:
        """Follow one address message; True when the family's source changed."""
        addr, fam = change.address, change.address.version
        if fam == 6 and change.scope != RT_SCOPE_LINK:
            return False  # "We are only interested in link local for IPv6"
        others = self.others.setdefault(fam, [])
        current = self.source.get(fam)
        if change.added:
            if ours:
                return False
            if current is None:
                self.source[fam] = addr
                return True
            if addr != current and addr not in others:
                others.append(addr)  # or promoted from secondary: already known
            return False
        if addr == current:
            if others:
                self.source[fam] = others.pop()  # list_last_entry(&ifp->sin_addr_l)
            else:
                del self.source[fam]
            return True
        if addr in others:
            others.remove(addr)
        return False


def vip_addresses(config: Config) -> frozenset[tuple[str, IPAddr]]:
    """(interface, address) of every VIP and eVIP: addresses that never become a source."""
    return frozenset((dev, vip.ip) for dev, vip in leftover_candidates(config))


# ---------------------------------------------------------------- links


class LinkWatcher:
    """Fans netlink link and address events out to whoever tracks an interface by name."""

    def __init__(self) -> None:
        self.listeners: dict[str, list[Callable[[bool], None]]] = {}
        self.state: dict[str, bool] = {}
        #: ``watch_addresses`` subscribers, by interface name
        self.addr_listeners: dict[str, list[Callable[[Sources], None]]] = {}
        self.addrs: dict[int, InterfaceAddresses] = {}
        self.names: dict[int, str] = {}
        #: the configured VIPs (``vip_addresses``), kept current by the service
        self.ours: frozenset[tuple[str, IPAddr]] = frozenset()
        self.log: Callable[[str], None] = lambda _m: None

    def watch(self, ifname: str, callback: Callable[[bool], None]) -> None:
        self.listeners.setdefault(ifname, []).append(callback)

    def unwatch(self, ifname: str, callback: Callable[[bool], None]) -> None:
        cbs = self.listeners.get(ifname, [])
        if callback in cbs:
            cbs.remove(callback)

    def watch_addresses(self, ifname: str, callback: Callable[[Sources], None]) -> None:
        """Call ``callback`` with the interface's :class:`Sources` now, if known, and
        whenever one of them changes."""
        self.addr_listeners.setdefault(ifname, []).append(callback)
        index = next((i for i, n in self.names.items() if n == ifname), None)
        if index is not None:
            callback(self.addrs.get(index, InterfaceAddresses()).sources())

    def unwatch_addresses(self, ifname: str, callback: Callable[[Sources], None]) -> None:
        cbs = self.addr_listeners.get(ifname, [])
        if callback in cbs:
            cbs.remove(callback)

    def _deliver(self, name: str, up: bool) -> None:
        if self.state.get(name) == up:
            return
        self.state[name] = up
        for cb in list(self.listeners.get(name, ())):
            cb(up)

    def seed(self, links: list[tuple[int, str]], changes: list[AddressChange]) -> None:
        """Start from a link and an address dump, in the kernel's order (as
        keepalived reads its start-up dumps through the same filter)."""
        for index, name in links:
            self.names[index] = name
        for ch in changes:
            self._address(ch, announce=False)

    def _address(self, ch: AddressChange, *, announce: bool = True) -> None:
        name = self.names.get(ch.index)
        if name is None:
            with contextlib.suppress(OSError):
                name = self.names[ch.index] = socket.if_indextoname(ch.index)
        if name is None:
            return
        table = self.addrs.setdefault(ch.index, InterfaceAddresses())
        if not table.apply(ch, (name, ch.address) in self.ours) or not announce:
            return
        listeners = list(self.addr_listeners.get(name, ()))
        sources = table.sources()
        if listeners and pklog.detail_enabled():
            # keepalived's words, for a first address and a last one only; a
            # promotion is silent (netlink_if_address_filter).
            if ch.added:
                self.log(f"Assigned address {ch.address} for interface {name}")
            elif sources.of(ch.address.version) is None:
                self.log(f"Deassigned address {ch.address} from interface {name}")
        for cb in listeners:
            cb(sources)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        with sock:
            await sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            # Dump after subscribing: a change racing the dump is heard again
            # below, and applying a known change twice changes nothing.
            with Rtnl() as nl:
                links = [(lk.index, lk.name) for lk in nl.links()]
                dump = [AddressChange(a.index, a.address, a.scope, True) for a in nl.addresses()]
            self.seed(links, dump)
            task_status.started()
            while True:
                data = await sock.recv(65536)
                for msg in parse_messages(data):
                    if isinstance(msg, AddressChange):
                        self._address(msg)
                        continue
                    index, name, up, deleted = msg
                    if deleted:
                        self.names.pop(index, None)
                        self.addrs.pop(index, None)
                    elif name:
                        self.names[index] = name
                    if name:
                        self._deliver(name, up)


# ---------------------------------------------------------------- scripts


@dataclass
class ScriptStatus:
    """keepalived's ``vscript->result`` counter (vrrp_scheduler.c ``vrrp_script_child_thread``).

    ``result`` counts from 0 (failed) to rise+fall-1 (fully up); the script
    is *up* while ``result >= rise``.  Without ``init_fail`` it starts at
    rise-1 so that one success or one failure decides at once.
    """

    rise: int
    fall: int
    result: int
    initial: bool = True

    @classmethod
    def for_script(cls, vs: VrrpScript) -> ScriptStatus:
        rise, fall = max(vs.rise, 1), max(vs.fall, 1)
        # init_fail starts the script failed, not "initial" (vrrp_parser.c
        # vrrp_vscript_init_fail_handler: SCRIPT_INIT_STATE_FAILED).
        if vs.init_fail:
            return cls(rise, fall, 0, initial=False)
        return cls(rise, fall, rise - 1)

    @property
    def up(self) -> bool:
        # While still in its initial state a script without init_fail counts
        # as good (keepalived only applies its weight once it has reported).
        if self.initial and self.result == self.rise - 1:
            return True
        return self.result >= self.rise

    def record(self, success: bool) -> bool:
        """Feed one run's outcome; True when ``up`` changed."""
        before = self.up
        if success:
            if self.result < self.rise - 1:
                self.result += 1
            else:
                self.result = self.rise + self.fall - 1
        elif self.result > self.rise:
            self.result -= 1
        else:
            self.result = 0
        self.initial = False
        return self.up != before


async def run_vrrp_script(
    vs: VrrpScript,
    status: ScriptStatus,
    on_change: Callable[[bool], None],
    *,
    enforce_security: bool = False,
    script_user: str | None = None,
    script_group: str | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> None:
    """Run ``vs`` every ``interval`` forever, reporting up/down changes.

    A script keepalived would disable (insecure, missing, not executable) is
    never run and never reported: keepalived drops it from tracking
    (vrrp.c ``check_vrrp_script_security``), so it must not count as failing.
    The config load already removed such scripts from the instances; this
    guard covers a script that turned bad between load and start.
    """
    verdict = scripts.check_script_secure(
        vs.script, enforce=enforce_security, default_user=script_user, default_group=script_group
    )
    if not verdict.runnable:
        log(f"VRRP_Script({vs.name}) {verdict.reason} - disabling")
        return
    timeout = vs.timeout if vs.timeout is not None else vs.interval
    while True:
        started = trio.current_time()
        result = await scripts.run_script(
            vs.script, timeout=timeout, default_user=script_user, default_group=script_group
        )
        if status.record(result.ok):
            word = "succeeded" if status.up else ("timed_out" if result.timed_out else "failed")
            log(f"VRRP_Script({vs.name}) {word}")
            on_change(status.up)
        await trio.sleep_until(started + vs.interval)


async def watch_track_file(
    tf: VrrpTrackFile,
    on_value: Callable[[int], None],
    *,
    period: float = 0.5,
    last: int | None = None,
) -> None:
    """Report the integer in ``tf.file`` whenever it changes from ``last``.

    keepalived uses inotify; we re-read twice a second, which is well inside
    any advert interval and needs no extra dependency.
    """
    while True:
        value = read_track_file(tf)
        if value != last:
            last = value
            on_value(value)
        await trio.sleep(period)


def read_track_file(tf: VrrpTrackFile) -> int:
    """The file's integer; a missing/garbled file reads as 0 (keepalived)."""
    try:
        with open(tf.file) as f:
            text = f.read().strip()
    except OSError:
        return 0 if tf.init_file is None else tf.init_file
    with contextlib.suppress(ValueError):
        return int(text.split()[0]) if text else 0
    return 0
