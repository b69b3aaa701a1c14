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
driver calls them directly.  Addresses go over a bare rtnetlink socket
(:mod:`vrrp.links`); pyroute2 is imported only for ``virtual_routes``.
"""

from __future__ import annotations

import errno
import ipaddress
from typing import Any

from pykeep.config.model import IPAddress, IPAddressSpec, RouteSpec, RuleSpec, frozen_dataclass
from vrrp.links import IFA_F_SECONDARY, IFF_RUNNING, IFF_UP, Rtnl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyroute2 import IPRoute

IFA_F_NODAD = 0x02
SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
_IGNORED_ADD = {errno.EEXIST}
_IGNORED_DEL = {errno.EADDRNOTAVAIL, errno.ENODEV, errno.ESRCH, errno.ENOENT}


@frozen_dataclass
class Interface:
    """What the VRRP shell needs to know about a link."""

    name: str
    index: int
    mac: bytes
    up: bool  # IFF_UP and IFF_RUNNING, keepalived's IF_FLAGS_UP
    ipv4: ipaddress.IPv4Address | None  # primary address: the advert source
    ipv6_ll: ipaddress.IPv6Address | None  # link-local: the v6 advert source


class Netlink:
    """Links, addresses and routes for the VRRP shell.

    Interfaces come from a snapshot of one link dump and one address dump
    (:meth:`refresh`), taken at start-up and on reload, so that N instances
    cost two netlink round trips, not 3N.  Addresses are added and removed
    over a bare rtnetlink socket; pyroute2 is loaded only when a
    ``virtual_routes`` entry needs it.
    """

    def __init__(self) -> None:
        self.rtnl = Rtnl()
        self._ipr: IPRoute | None = None
        self._links: dict[str, Interface] = {}

    def close(self) -> None:
        self.rtnl.close()
        if self._ipr is not None:
            self._ipr.close()

    @property
    def ipr(self) -> IPRoute:
        if self._ipr is None:
            from pyroute2 import IPRoute

            self._ipr = IPRoute()
        return self._ipr

    # ------------------------------------------------------------ links
    def refresh(self) -> None:
        """Re-read every link and address: two round trips for any number of instances."""
        addrs: dict[int, list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]] = {}
        for a in self.rtnl.addresses():
            addrs.setdefault(a.index, []).append((a.address, a.flags))
        links: dict[str, Interface] = {}
        for lk in self.rtnl.links():
            v4: ipaddress.IPv4Address | None = None
            v6: ipaddress.IPv6Address | None = None
            for ip, flags in addrs.get(lk.index, ()):
                if isinstance(ip, ipaddress.IPv4Address):
                    # The first address the kernel lists is the primary one.
                    if v4 is None and not flags & IFA_F_SECONDARY:
                        v4 = ip
                elif ip.is_link_local and v6 is None:
                    v6 = ip
            links[lk.name] = Interface(
                name=lk.name,
                index=lk.index,
                mac=lk.mac,
                up=bool(lk.flags & IFF_UP) and bool(lk.flags & IFF_RUNNING),
                ipv4=v4,
                ipv6_ll=v6,
            )
        self._links = links

    def stale(self) -> None:
        """A link was created or re-created: the next lookup re-reads the table."""
        self._links.clear()

    def index(self, name: str) -> int | None:
        iface = self.interface(name)
        return iface.index if iface is not None else None

    def interface(self, name: str) -> Interface | None:
        """From the snapshot; a name it lacks (a link created since) costs one re-read."""
        found = self._links.get(name)
        if found is None:
            self.refresh()
            found = self._links.get(name)
        return found

    def addresses(self, index: int) -> set[IPAddress]:
        return {a.address for a in self.rtnl.addresses() if a.index == index}

    # ------------------------------------------------------------ addresses
    def _addr(self, cmd: str, spec: IPAddressSpec, default_dev: str | None) -> bool:
        dev = spec.dev or default_dev
        if dev is None:
            return False
        for attempt in (0, 1):
            idx = self.index(dev)
            if idx is None:
                return False
            try:
                self._addr_at(cmd, idx, spec)
            except OSError as exc:
                if exc.errno == errno.ENODEV and attempt == 0:
                    # The link was re-created under the same name since the snapshot.
                    self._links.pop(dev, None)
                    continue
                if exc.errno in (_IGNORED_ADD if cmd == "add" else _IGNORED_DEL):
                    return False
                raise
            return True
        return False

    def _addr_at(self, cmd: str, idx: int, spec: IPAddressSpec) -> None:
        ip = spec.address.ip
        if cmd != "add":
            self.rtnl.address(False, idx, ip, spec.address.network.prefixlen)
            return
        self.rtnl.address(
            True,
            idx,
            ip,
            spec.address.network.prefixlen,
            scope=SCOPES.get(spec.scope or "global", 0),
            flags=IFA_F_NODAD if ip.version == 6 else 0,
            broadcast=spec.broadcast,
            label=spec.label,
        )

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
        # keepalived's own protocol number, as `ip route` shows it ("proto
        # keepalived"): vrrp_iproute.c netlink_route, RTPROT_KEEPALIVED.
        kwargs["proto"] = 18
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            self.ipr.route(cmd, **kwargs)
        except NetlinkError as exc:
            if exc.code in (_IGNORED_ADD if cmd == "add" else _IGNORED_DEL):
                return False
            raise OSError(exc.code, str(exc)) from exc
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
        rules: tuple[RuleSpec, ...] = (),
    ) -> None:
        self.netlink = netlink
        self.ifname = ifname
        self.addresses = vips + excluded
        self.routes = routes
        #: virtual_rules: added after the routes, removed before them
        #: (vrrp.c ``vrrp_state_become_master`` / ``vrrp_restore_interface``)
        self.rules = rules
        self.is_up = False

    def up(self) -> list[str]:
        errors: list[str] = []
        for spec in self.addresses:
            try:
                self.netlink.add_address(spec, self.ifname)
            except (OSError, ValueError) as exc:
                errors.append(f"cannot add {spec.address}: {exc}")
        for route in self.routes:
            try:
                self.netlink.add_route(route, self.ifname)
            except (OSError, ValueError) as exc:
                errors.append(f"cannot add route {route.dest or 'default'}: {exc}")
        if self.rules:
            from vrrp.static import add_rule, rule_text

            for rule in self.rules:
                try:
                    add_rule(self.netlink, rule)
                except (OSError, ValueError) as exc:
                    errors.append(f"cannot add rule '{rule_text(rule)}': {exc}")
        self.is_up = True
        return errors

    def down(self, *, force: bool = False) -> list[str]:
        if not self.is_up and not force:
            return []
        errors: list[str] = []
        if self.rules:
            from vrrp.static import del_rule, rule_text

            for rule in self.rules:
                try:
                    del_rule(self.netlink, rule)
                except (OSError, ValueError) as exc:
                    errors.append(f"cannot remove rule '{rule_text(rule)}': {exc}")
        for route in self.routes:
            try:
                self.netlink.del_route(route, self.ifname)
            except (OSError, ValueError) as exc:
                errors.append(f"cannot remove route {route.dest or 'default'}: {exc}")
        for spec in self.addresses:
            try:
                self.netlink.del_address(spec, self.ifname)
            except (OSError, ValueError) as exc:
                errors.append(f"cannot remove {spec.address}: {exc}")
        self.is_up = False
        return errors
