"""Virtual addresses and routes in the kernel, through pyroute2 netlink.

What keepalived does and we mirror (keepalived/vrrp/vrrp_ipaddress.c
``netlink_ipaddress`` / ``netlink_iplist``, vrrp_iproute.c):

- a VIP is added with its prefix (a bare address is /32 or /128), ``brd``
  only when configured, ``scope`` (global by default), ``label``, on ``dev``
  or the instance's interface; IPv6 VIPs carry ``IFA_F_NODAD`` so they are
  usable at once and never stuck in dadfailed after a split brain;
- adding an address that is already there, or removing one that is gone, is
  not an error (the "set" flag in keepalived plays that role);
- at start-up every configured VIP is removed *forcibly*, because a daemon
  that crashed left them behind on a physical interface
  (vrrp.c ``vrrp_complete_instance``: "configuration on it left over from a
  previous run").

Netlink requests here are synchronous and take microseconds; the trio
driver calls them directly.
"""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pykeep.config.model import IPAddress, IPAddressSpec, RouteSpec

IFA_F_NODAD = 0x02
SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
_IGNORED_ADD = {errno.EEXIST}
_IGNORED_DEL = {errno.EADDRNOTAVAIL, errno.ENODEV, errno.ESRCH, errno.ENOENT}


@dataclass(frozen=True, slots=True)
class Interface:
    """What the VRRP shell needs to know about a link."""

    name: str
    index: int
    mac: bytes
    up: bool  # IFF_UP and IFF_RUNNING, keepalived's IF_FLAGS_UP
    ipv4: ipaddress.IPv4Address | None  # primary address: the advert source
    ipv6_ll: ipaddress.IPv6Address | None  # link-local: the v6 advert source


class Netlink:
    """A thin, error-tolerant wrapper around one pyroute2 ``IPRoute``."""

    def __init__(self) -> None:
        self.ipr = IPRoute()

    def close(self) -> None:
        self.ipr.close()

    # ------------------------------------------------------------ links
    def index(self, name: str) -> int | None:
        found = self.ipr.link_lookup(ifname=name)
        return int(found[0]) if found else None

    def interface(self, name: str) -> Interface | None:
        idx = self.index(name)
        if idx is None:
            return None
        link = self.ipr.get_links(idx)[0]
        flags = int(link["flags"])
        mac_text = link.get_attr("IFLA_ADDRESS") or "00:00:00:00:00:00"
        mac = bytes(int(b, 16) for b in mac_text.split(":"))
        v4: ipaddress.IPv4Address | None = None
        v6: ipaddress.IPv6Address | None = None
        for msg in self.ipr.get_addr(index=idx):
            addr = msg.get_attr("IFA_ADDRESS")
            if addr is None:
                continue
            ip = ipaddress.ip_address(addr)
            if isinstance(ip, ipaddress.IPv4Address):
                # The first address the kernel lists is the primary one.
                if v4 is None and not (int(msg["flags"]) & 0x01):  # IFA_F_SECONDARY
                    v4 = ip
            elif ip.is_link_local and v6 is None:
                v6 = ip
        return Interface(
            name=name,
            index=idx,
            mac=mac,
            up=bool(flags & 0x1) and bool(flags & 0x40),
            ipv4=v4,
            ipv6_ll=v6,
        )

    def addresses(self, index: int) -> set[IPAddress]:
        out: set[IPAddress] = set()
        for msg in self.ipr.get_addr(index=index):
            addr = msg.get_attr("IFA_ADDRESS")
            if addr is not None:
                out.add(ipaddress.ip_address(addr))
        return out

    # ------------------------------------------------------------ addresses
    def _addr(self, cmd: str, spec: IPAddressSpec, default_dev: str | None) -> bool:
        dev = spec.dev or default_dev
        if dev is None:
            return False
        idx = self.index(dev)
        if idx is None:
            return False
        kwargs: dict[str, Any] = {
            "index": idx,
            "address": str(spec.address.ip),
            "prefixlen": spec.address.network.prefixlen,
        }
        if cmd == "add":
            if spec.broadcast is not None:
                kwargs["broadcast"] = str(spec.broadcast)
            if spec.label is not None:
                kwargs["label"] = spec.label
            kwargs["scope"] = SCOPES.get(spec.scope or "global", 0)
            if spec.address.version == 6:
                kwargs["flags"] = IFA_F_NODAD
        try:
            self.ipr.addr(cmd, **kwargs)
        except NetlinkError as exc:
            if exc.code in (_IGNORED_ADD if cmd == "add" else _IGNORED_DEL):
                return False
            raise
        return True

    def add_address(self, spec: IPAddressSpec, default_dev: str | None) -> bool:
        return self._addr("add", spec, default_dev)

    def del_address(self, spec: IPAddressSpec, default_dev: str | None) -> bool:
        return self._addr("del", spec, default_dev)

    # ------------------------------------------------------------ routes
    def _route(self, cmd: str, spec: RouteSpec, default_dev: str | None) -> bool:
        kwargs: dict[str, Any] = {}
        if spec.dest is None:
            kwargs["dst"] = "default"
        else:
            kwargs["dst"] = str(spec.dest)
        if spec.via is not None:
            kwargs["gateway"] = str(spec.via)
        if spec.src is not None:
            kwargs["prefsrc"] = str(spec.src)
        dev = spec.dev or (default_dev if spec.via is None and spec.kind is None else spec.dev)
        if dev is not None:
            idx = self.index(dev)
            if idx is not None:
                kwargs["oif"] = idx
        if spec.table is not None:
            kwargs["table"] = spec.table
        if spec.metric is not None:
            kwargs["priority"] = spec.metric
        if spec.scope is not None:
            kwargs["scope"] = SCOPES.get(spec.scope, 0)
        if spec.kind is not None:
            kwargs["type"] = spec.kind
        try:
            self.ipr.route(cmd, **kwargs)
        except NetlinkError as exc:
            if exc.code in (_IGNORED_ADD if cmd == "add" else _IGNORED_DEL):
                return False
            raise
        return True

    def add_route(self, spec: RouteSpec, default_dev: str | None) -> bool:
        return self._route("add", spec, default_dev)

    def del_route(self, spec: RouteSpec, default_dev: str | None) -> bool:
        return self._route("del", spec, default_dev)


class VipSet:
    """The kernel-side state one instance owns while MASTER.

    ``up()`` and ``down()`` are idempotent; errors are reported per item and
    never stop the rest of the list (keepalived logs and carries on).
    """

    def __init__(
        self,
        netlink: Netlink,
        ifname: str | None,
        vips: tuple[IPAddressSpec, ...],
        excluded: tuple[IPAddressSpec, ...] = (),
        routes: tuple[RouteSpec, ...] = (),
    ) -> None:
        self.netlink = netlink
        self.ifname = ifname
        self.addresses = vips + excluded
        self.routes = routes
        self.is_up = False

    def up(self) -> list[str]:
        errors: list[str] = []
        for spec in self.addresses:
            try:
                self.netlink.add_address(spec, self.ifname)
            except (NetlinkError, OSError) as exc:
                errors.append(f"cannot add {spec.address}: {exc}")
        for route in self.routes:
            try:
                self.netlink.add_route(route, self.ifname)
            except (NetlinkError, OSError) as exc:
                errors.append(f"cannot add route {route.dest or 'default'}: {exc}")
        self.is_up = True
        return errors

    def down(self, *, force: bool = False) -> list[str]:
        if not self.is_up and not force:
            return []
        errors: list[str] = []
        for route in self.routes:
            try:
                self.netlink.del_route(route, self.ifname)
            except (NetlinkError, OSError) as exc:
                errors.append(f"cannot remove route {route.dest or 'default'}: {exc}")
        for spec in self.addresses:
            try:
                self.netlink.del_address(spec, self.ifname)
            except (NetlinkError, OSError) as exc:
                errors.append(f"cannot remove {spec.address}: {exc}")
        self.is_up = False
        return errors
