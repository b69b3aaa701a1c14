"""static_ipaddress / static_routes / static_rules, and every rule in the kernel.

What keepalived's VRRP process does with the static entries
(keepalived/vrrp/vrrp_daemon.c ``start_vrrp`` and ``vrrp_terminate_phase2``):

- at start-up it first removes them *forcibly*, as leftovers of a previous
  run, then adds them all (addresses, then routes, then rules), before any
  instance runs;
- on reload it removes only the entries the new configuration no longer
  has (``clear_diff_static_rules/routes/addresses``) and adds the new
  list again; an entry already there is not an error, so unchanged ones
  stay put, never flapping;
- at stop it removes rules, then routes, then addresses.

They belong to no instance: they stay whatever the VRRP state.  A static
address without ``dev`` goes on the default interface, ``eth0``
(vrrp_ipaddress.c ``alloc_ipaddress``, ``get_default_if``; pykeep warns
that ``default_interface`` is not read).  Re-adding an entry someone
deleted behind our back (vrrp_static_track.c, ``track_group``) is not done.

Rules are encoded by :mod:`vrrp.rules`; :func:`add_rule` / :func:`del_rule`
serve ``virtual_rules`` too.
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Callable, Iterable

from pykeep.config.model import NOWHERE, Config, IPAddressSpec, RouteSpec, RuleSpec
from vrrp.links import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, Rtnl
from vrrp.rules import RTM_DELRULE, RTM_NEWRULE, rule_body
from vrrp.vip import Netlink

#: keepalived's DFLT_INT, used when global_defs has no default_interface
DEFAULT_INTERFACE = "eth0"

_IGNORED_ADD = {errno.EEXIST}
_IGNORED_DEL = {errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL, errno.ENODEV}


def _rule(rtnl: Rtnl, add: bool, spec: RuleSpec) -> bool:
    """One RTM_NEWRULE / RTM_DELRULE; False when it was already so (exists / gone)."""
    _family, body = rule_body(spec)
    try:
        if add:
            rtnl._request(RTM_NEWRULE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body)
        else:
            rtnl._request(RTM_DELRULE, NLM_F_ACK, body)
    except OSError as exc:
        if exc.errno in (_IGNORED_ADD if add else _IGNORED_DEL):
            return False
        raise
    return True


def add_rule(netlink: Netlink, spec: RuleSpec) -> bool:
    return _rule(netlink.rtnl, True, spec)


def del_rule(netlink: Netlink, spec: RuleSpec) -> bool:
    return _rule(netlink.rtnl, False, spec)


def rule_text(spec: RuleSpec) -> str:
    return " ".join(spec.words)


def _key(spec: IPAddressSpec | RouteSpec | RuleSpec) -> object:
    """Two entries are the same when they differ only in where they were written."""
    return dataclasses.replace(spec, loc=NOWHERE)


def rules_gone(old: Iterable[RuleSpec], new: Iterable[RuleSpec]) -> list[RuleSpec]:
    """Rules of ``old`` that ``new`` lacks (vrrp_iprule.c ``clear_diff_rules``)."""
    keep = {_key(r) for r in new}
    return [r for r in old if _key(r) not in keep]


class StaticEntries:
    """The static addresses, routes and rules of the running configuration."""

    def __init__(self, netlink: Netlink, log: Callable[[str], None]) -> None:
        self.netlink = netlink
        self.log = log
        self.addresses: tuple[IPAddressSpec, ...] = ()
        self.routes: tuple[RouteSpec, ...] = ()
        self.rules: tuple[RuleSpec, ...] = ()

    # ------------------------------------------------------------ life cycle
    def start(self, config: Config) -> None:
        """Remove what a previous run may have left, then add everything."""
        self._remove(config.static_rules, config.static_routes, config.static_ipaddress, quiet=True)
        self._take(config)
        self._add()

    def reload(self, config: Config) -> None:
        """Drop what the new configuration lacks, then (re-)add its whole list."""
        gone_rules = rules_gone(self.rules, config.static_rules)
        keep_routes = {_key(r) for r in config.static_routes}
        keep_addrs = {_key(a) for a in config.static_ipaddress}
        self._remove(
            gone_rules,
            [r for r in self.routes if _key(r) not in keep_routes],
            [a for a in self.addresses if _key(a) not in keep_addrs],
            quiet=False,
        )
        self._take(config)
        self._add()

    def stop(self) -> None:
        self._remove(self.rules, self.routes, self.addresses, quiet=False)
        self.addresses, self.routes, self.rules = (), (), ()

    # ------------------------------------------------------------ helpers
    def _take(self, config: Config) -> None:
        self.addresses = config.static_ipaddress
        self.routes = config.static_routes
        self.rules = config.static_rules

    def _add(self) -> None:
        for a in self.addresses:
            try:
                self.netlink.add_address(a, DEFAULT_INTERFACE)
            except (OSError, ValueError) as exc:
                self.log(f"cannot add static address {a.address}: {exc}")
        for r in self.routes:
            try:
                self.netlink.add_route(r, None)
            except (OSError, ValueError) as exc:
                self.log(f"cannot add static route {r.dest or 'default'}: {exc}")
        for rule in self.rules:
            try:
                add_rule(self.netlink, rule)
            except (OSError, ValueError) as exc:
                self.log(f"cannot add static rule '{rule_text(rule)}': {exc}")

    def _remove(
        self,
        rules: Iterable[RuleSpec],
        routes: Iterable[RouteSpec],
        addresses: Iterable[IPAddressSpec],
        *,
        quiet: bool,
    ) -> None:
        """Rules, then routes, then addresses; ``quiet`` for the start-up sweep."""
        for rule in rules:
            try:
                del_rule(self.netlink, rule)
            except (OSError, ValueError) as exc:
                if not quiet:
                    self.log(f"cannot remove static rule '{rule_text(rule)}': {exc}")
        for r in routes:
            try:
                self.netlink.del_route(r, None)
            except (OSError, ValueError) as exc:
                if not quiet:
                    self.log(f"cannot remove static route {r.dest or 'default'}: {exc}")
        for a in addresses:
            try:
                self.netlink.del_address(a, DEFAULT_INTERFACE)
            except (OSError, ValueError) as exc:
                if not quiet:
                    self.log(f"cannot remove static address {a.address}: {exc}")
