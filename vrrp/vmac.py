"""``use_vmac``: a macvlan per instance carrying the RFC's virtual router MAC.

Mirrors keepalived/vrrp/vrrp_vmac.c ``netlink_link_add_vmac`` /
``netlink_link_del_vmac`` and the sysctls of vrrp_if_config.c
(``vmac_sysctl``, ``parent_sysctl``, ``link_set_ipv6``):

- the link is a private-mode macvlan on the instance's interface, named by
  ``use_vmac NAME`` or ``<vmac_prefix>.<VRID>`` (``create_vmac_name``; the
  config settles the name, pykeep/config/validate.py), with MAC
  00:00:5e:00:01:<VRID> (IPv6 instances: 00:00:5e:00:02:<VRID>), or the
  one ``use_vmac`` gives (``netlink_link_add_vmac``: ``VRRP_VMAC_MAC_SPECIFIED``);
- on an IPv4 instance's vmac: ``arp_ignore 1``, ``accept_local 1``,
  ``rp_filter 0``, ``promote_secondaries 1``, and IPv6 disabled; the base
  interface gets ``arp_ignore 1`` and ``arp_filter 1`` (so only the vmac
  answers ARP for the VIPs), restored when the last vmac on it goes;
- IPv6 address generation is off (RFC 5798 §7.4: no link-local derived from
  the virtual MAC); an IPv6 instance's vmac gets the base interface's
  link-local address instead, unless ``vmac_xmit_base``;
- the link is brought up at start and deleted at stop;
- keepalived's nftables rules for VMACs go in with it (:mod:`vrrp.firewall`).

The instance then puts its VIPs on the vmac, sends gratuitous ARPs from it,
and sends and receives adverts on it, or on the base interface with
``vmac_xmit_base`` (vrrp_scheduler.c ``vrrp_open_sockpool``).  The advert's
source address stays the base interface's.

``use_ipvlan`` takes the same slot (vrrp_vmac.c ``netlink_link_add_ipvlan``):
an ipvlan in mode L2 (so that it receives the multicast adverts) with the
type word's IFLA_IPVLAN_FLAGS (bridge 0, private 1, vepa 2), created up,
named like a vmac (``create_vmac_name``).  It shares its parent's MAC, so
nothing is set on the base interface and no firewall rules go in; the only
sysctl is ``disable_ipv6`` (``link_set_ipv6``: off for an IPv4 instance, on
for IPv6).  ``use_ipvlan ADDR/PREFIX`` is put on it (nodad and deprecated for
IPv6, as ``netlink_ipaddress`` adds any address) and is the advert source
(vrrp_parser.c ``vrrp_ipvlan_handler``).  Adverts are sent and received on
the ipvlan; the VIPs and their GARPs stay on the configured interface
(vrrp.c ``vrrp_complete_instance`` moves VIPs to ``vrrp->ifp`` only for a
VMAC).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# pyroute2 is imported where a VMAC is made: a config without use_vmac never loads it.
from pykeep import log as pklog
from pykeep.config.model import VrrpInstance
from vrrp import ipvlan

VMAC_PREFIX = "vrrp"
_V4_SYSCTLS = (("arp_ignore", 1), ("accept_local", 1), ("rp_filter", 0), ("promote_secondaries", 1))
_BASE_SYSCTLS = (("arp_ignore", 1), ("arp_filter", 1))
_PROC = Path("/proc/sys/net")

#: base interface -> (how many vmacs rely on its ARP settings, the values to restore)
_base_refs: dict[str, tuple[int, dict[str, int]]] = {}


class VmacError(Exception):
    """A vmac could not be set up; the message is one log line."""


def ifname(inst: VrrpInstance) -> str | None:
    """The vmac link an instance uses, or None without ``use_vmac``."""
    if inst.use_vmac is None:
        return None
    return inst.use_vmac or _default_name(inst)


def link_name(inst: VrrpInstance) -> str | None:
    """The vmac or ipvlan link an instance makes, or None."""
    if inst.use_ipvlan is None or inst.use_vmac is not None:
        return ifname(inst)
    return inst.use_ipvlan or _default_name(inst)


def _default_name(inst: VrrpInstance) -> str:
    """``PREFIX.VRID`` for a model no config check named (the check applies
    keepalived's ``create_vmac_name``, pykeep/config/validate.py)."""
    return f"{VMAC_PREFIX}.{inst.virtual_router_id}"[:15]


def mac(vrid: int, family: int) -> str:
    """The RFC 3768 §7.3 / RFC 5798 §7.3 virtual router MAC."""
    return f"00:00:5e:00:{1 if family == 4 else 2:02x}:{vrid:02x}"


def _get_sysctl(family: str, dev: str, key: str) -> int | None:
    try:
        return int((_PROC / family / "conf" / dev / key).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _set_sysctl(family: str, dev: str, key: str, value: int) -> None:
    with contextlib.suppress(OSError):
        (_PROC / family / "conf" / dev / key).write_text(f"{value}\n")


@dataclass
class Vmac:
    """One instance's vmac link, created by :meth:`up` and removed by :meth:`down`."""

    name: str
    base: str
    vrid: int
    family: int
    xmit_base: bool = False
    address: str | None = None  # use_vmac's own MAC; None: the RFC's; an ipvlan's: its parent's
    index: int | None = None
    kind: str = "macvlan"  # or "ipvlan"
    ipvlan_flags: int = 0
    ipvlan_address: str | None = None
    _arp_base_held: bool = False
    _firewall: bool = False

    @classmethod
    def for_instance(cls, inst: VrrpInstance) -> Vmac | None:
        name = link_name(inst)
        if name is None or not inst.interface:
            return None
        return cls(
            name=name,
            base=inst.interface,
            vrid=inst.virtual_router_id,
            family=inst.family,
            xmit_base=inst.vmac_xmit_base and inst.use_vmac is not None,
            address=inst.vmac_mac if inst.use_vmac is not None else None,
            kind="macvlan" if inst.use_vmac is not None else "ipvlan",
            ipvlan_flags=inst.ipvlan_flags,
            ipvlan_address=inst.ipvlan_address,
        )

    @property
    def mac(self) -> str:
        return self.address or mac(self.vrid, self.family)

    def up(self) -> int:
        """Create (or recreate) the link, apply the sysctls, bring it up; its ifindex."""
        if self.kind == "ipvlan":
            return self._ipvlan_up()
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        from vrrp import firewall

        with IPRoute() as ipr:
            base = self._clear_the_way(ipr, f"cannot create VMAC {self.name}: no interface")
            try:
                ipr.link(
                    "add",
                    ifname=self.name,
                    kind="macvlan",
                    link=base,
                    macvlan_mode="private",
                    address=self.mac,
                )
            except NetlinkError as exc:
                raise VmacError(f"Unable to create VMAC interface {self.name}: {exc}") from exc
            idx = ipr.link_lookup(ifname=self.name)
            if not idx:
                raise VmacError(f"Unable to create VMAC interface {self.name}")
            self.index = int(idx[0])
            if self.family == 4:
                for key, value in _V4_SYSCTLS:
                    _set_sysctl("ipv4", self.name, key, value)
                self._hold_base_arp()
                _set_sysctl("ipv6", self.name, "disable_ipv6", 1)
            else:
                _set_sysctl("ipv6", self.name, "disable_ipv6", 0)
            _set_sysctl("ipv6", self.name, "addr_gen_mode", 1)  # IN6_ADDR_GEN_MODE_NONE
            ipr.link("set", index=self.index, state="up")
            if self.family == 6 and not self.xmit_base:
                self._copy_link_local(ipr, base)
        try:
            firewall.add_vmac(self.family, self.name, self.base)
            self._firewall = True
        except firewall.FirewallError as exc:
            # keepalived logs and runs on without the rules
            pklog.get("vrrp").info(f"VMAC {self.name}: firewall rules not set: {exc}")
        return self.index

    def _ipvlan_up(self) -> int:
        """vrrp_vmac.c ``netlink_link_add_ipvlan``, in its order: link (up), sysctl, address."""
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        with IPRoute() as ipr:
            base = self._clear_the_way(ipr, f"Unable to create ipvlan interface {self.name}: no")
            try:
                ipvlan.add(self.name, base, self.ipvlan_flags)
            except OSError as exc:
                raise VmacError(f"Unable to create ipvlan interface {self.name}: {exc}") from exc
            idx = ipr.link_lookup(ifname=self.name)
            if not idx:
                raise VmacError(f"Unable to create ipvlan interface {self.name}")
            self.index = int(idx[0])
            link = ipr.get_links(self.index)[0]
            self.address = str(link.get_attr("IFLA_ADDRESS"))
            _set_sysctl("ipv6", self.name, "disable_ipv6", 1 if self.family == 4 else 0)
            if self.ipvlan_address:
                addr = ipaddress.ip_interface(self.ipvlan_address)
                extra: dict[str, Any] = {}
                if addr.version == 6:
                    extra = {"flags": 0x02, "preferred_lft": 0}  # nodad, deprecated
                try:
                    ipr.addr(
                        "add",
                        index=self.index,
                        address=str(addr.ip),
                        prefixlen=addr.network.prefixlen,
                        **extra,
                    )
                except NetlinkError as exc:
                    pklog.get("vrrp").info(f"Failed to add interface address to {self.name}: {exc}")
        return self.index

    def _clear_the_way(self, ipr: Any, no_base: str) -> int:
        """The base link's index (``no_base`` + its name when it is missing),
        after deleting a link of our kind and name left by a previous run:
        keepalived reuses or updates such a link, the result is the same link.
        A link of another kind under our name is a conflict."""
        base = ipr.link_lookup(ifname=self.base)
        if not base:
            raise VmacError(f"{no_base} {self.base}")
        existing = ipr.link_lookup(ifname=self.name)
        if existing:
            info = ipr.get_links(existing[0])[0].get_attr("IFLA_LINKINFO")
            if info is None or info.get_attr("IFLA_INFO_KIND") != self.kind:
                label = "VMAC" if self.kind == "macvlan" else "IPVLAN"
                raise VmacError(f"{label} {self.name} conflicts with existing interface")
            ipr.link("del", index=existing[0])
        return int(base[0])

    def _copy_link_local(self, ipr: Any, base_index: int) -> None:
        """keepalived ``set_link_local_address``: adverts leave from a non-VIP address."""
        from pyroute2.netlink.exceptions import NetlinkError

        for msg in ipr.get_addr(index=base_index, family=10):
            addr = ipaddress.IPv6Address(msg.get_attr("IFA_ADDRESS"))
            if addr.is_link_local:
                with contextlib.suppress(NetlinkError):
                    # nodad, and deprecated (preferred_lft 0) as keepalived adds it
                    ipr.addr(
                        "add",
                        index=self.index,
                        address=str(addr),
                        prefixlen=64,
                        flags=0x02,
                        preferred_lft=0,
                    )
                return

    def _hold_base_arp(self) -> None:
        if self._arp_base_held:
            return
        self._arp_base_held = True
        refs, saved = _base_refs.get(self.base, (0, {}))
        if refs == 0:
            saved = {}
            for key, value in _BASE_SYSCTLS:
                old = _get_sysctl("ipv4", self.base, key)
                if old is not None:
                    saved[key] = old
                    if old != value:
                        _set_sysctl("ipv4", self.base, key, value)
        _base_refs[self.base] = (refs + 1, saved)

    def down(self) -> None:
        """Restore the base interface's ARP settings and delete the link."""
        if self._firewall:
            from vrrp import firewall

            self._firewall = False
            try:
                firewall.remove_vmac(self.family, self.name, self.base)
            except firewall.FirewallError as exc:
                pklog.get("vrrp").info(f"VMAC {self.name}: firewall rules not removed: {exc}")
        if self._arp_base_held:
            self._arp_base_held = False
            refs, saved = _base_refs.get(self.base, (1, {}))
            if refs <= 1:
                _base_refs.pop(self.base, None)
                for key, value in saved.items():
                    _set_sysctl("ipv4", self.base, key, value)
            else:
                _base_refs[self.base] = (refs - 1, saved)
        if self.index is None:
            return
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        with IPRoute() as ipr:
            try:
                ipr.link("del", index=self.index)
            except NetlinkError as exc:
                if exc.code not in (errno.ENODEV, errno.ENOENT):
                    raise VmacError(f"Error removing VMAC interface {self.name}: {exc}") from exc
        self.index = None
