"""The nftables rules keepalived installs (VMACs, no_accept), through ``nft -f -``.

keepalived 2.2.7 (keepalived/vrrp/vrrp_nftables.c ``nft_add_vmac``,
``setup_rule_move_igmp``/``setup_rule_drop_rs``; vrrp_firewall.c
``firewall_add_vmac``) turns a firewall on for every instance with a VMAC,
defaulting to the nftables table ``keepalived`` when none is configured
(vrrp.c ``vrrp_complete_instance``).  The rules make the host's own
multicast signalling leave with the real MAC, not the virtual one:

- IPv4 (``table ip keepalived``): IGMP reports sent out of a macvlan are
  duplicated to its base interface (map ``vmac_map``: vmac -> base) and the
  original dropped;
- IPv6 (``table ip6 keepalived``): the same for MLDv2 reports, and router
  solicitations out of a VMAC (set ``vmac_set``) are dropped.

The chain is keepalived's ``out``: a filter hook on output at priority
``filter - 1``, policy accept.  The table is created on first use, each
VMAC adds its elements, and the table is deleted when the last VMAC goes
(keepalived deletes it when it exits, ``nft_end``).  The same table holds
the no_accept drop set (:class:`NoAccept`).  ``nft`` is a real part:
its text syntax is stable across versions, where its netlink batches are not.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from dataclasses import dataclass, field

from pykeep.config.model import GlobalDefs, VrrpInstance

TABLE = "keepalived"  # DEFAULT_NFTABLES_TABLE
PRIORITY = -1  # filter - 1
NFT = "nft"


class FirewallError(Exception):
    """``nft`` refused a script; the message is one log line."""


def _nft(script: str) -> None:
    try:
        done = subprocess.run(
            [NFT, "-f", "-"], input=script, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FirewallError(f"nft not usable: {exc}") from exc
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["failed"])[0]
        raise FirewallError(f"nft: {first}")


def table_script(family: int, table: str = TABLE, priority: int = PRIORITY) -> str:
    """The table, map/set and rules of ``nft_setup_ipv4``/``nft_setup_ipv6`` for VMACs."""
    fam = "ip" if family == 4 else "ip6"
    lines = [
        f"add table {fam} {table}",
        f"add map {fam} {table} vmac_map {{ type iface_index : iface_index; }}",
    ]
    if family == 6:
        lines.append(f"add set {fam} {table} vmac_set {{ type iface_index; }}")
    lines.append(
        f"add chain {fam} {table} out "
        f"{{ type filter hook output priority {priority}; policy accept; }}"
    )
    if family == 4:
        lines.append(
            f'add rule ip {table} out ip protocol igmp meta oifkind "macvlan" '
            "dup to ip daddr device oif map @vmac_map drop"
        )
    else:
        lines.append(
            f"add rule ip6 {table} out icmpv6 type mld2-listener-report "
            'meta oifkind "macvlan" dup to ip6 daddr device oif map @vmac_map drop'
        )
        lines.append(
            f'add rule ip6 {table} out icmpv6 type nd-router-solicit meta oifkind "macvlan" '
            "oif @vmac_set drop"
        )
    return "\n".join(lines) + "\n"


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def vmac_elements(family: int, vmac: str, base: str, *, add: bool, table: str = TABLE) -> str:
    """Add (or delete) one VMAC's map entry, and its set entry for IPv6."""
    fam = "ip" if family == 4 else "ip6"
    verb = "add" if add else "delete"
    lines = [f"{verb} element {fam} {table} vmac_map {{ {_quote(vmac)} : {_quote(base)} }}"]
    if family == 6:
        lines.append(f"{verb} element {fam} {table} vmac_set {{ {_quote(vmac)} }}")
    return "\n".join(lines) + "\n"


def vips_script(family: int, table: str = TABLE, priority: int = PRIORITY) -> str:
    """The no_accept drop rules (``nft_setup_ipv4_vips``/``nft_setup_ipv6_vips``).

    A VIP in the set ``vips`` is neither received nor sent by this host: an
    RFC 5798 non-owner master in no_accept mode must not answer for it.
    IPv6 keeps neighbour discovery flowing, and sends link-local traffic to
    the (here always empty) ``*_link_local`` chains first.
    """
    hook = f"{{ type filter hook %s priority {priority}; policy accept; }}"
    if family == 4:
        return (
            f"add table ip {table}\n"
            f"add chain ip {table} out {hook % 'output'}\n"
            f"add chain ip {table} in {hook % 'input'}\n"
            f"add set ip {table} vips {{ type ipv4_addr; }}\n"
            f"add rule ip {table} in ip daddr @vips drop\n"
            f"add rule ip {table} out ip saddr @vips drop\n"
        )
    t = f"ip6 {table}"
    return (
        f"add table {t}\n"
        f"add chain {t} out {hook % 'output'}\n"
        f"add chain {t} in {hook % 'input'}\n"
        f"add chain {t} in_link_local\n"
        f"add chain {t} out_link_local\n"
        f"add set {t} vips {{ type ipv6_addr; }}\n"
        f"add set {t} neighbor-discovery {{ type icmpv6_type; flags constant; "
        "elements = { nd-neighbor-solicit, nd-neighbor-advert }; }\n"
        f"add rule {t} in icmpv6 type @neighbor-discovery accept\n"
        f"add rule {t} in ip6 daddr fe80::/10 goto in_link_local\n"
        f"add rule {t} in ip6 daddr @vips drop\n"
        f"add rule {t} out icmpv6 type @neighbor-discovery accept\n"
        f"add rule {t} out ip6 saddr fe80::/10 goto out_link_local\n"
        f"add rule {t} out ip6 saddr @vips drop\n"
    )


@dataclass
class _Family:
    """One family's table: which parts pykeep installed, and how many users hold it."""

    table: str = TABLE
    priority: int = PRIORITY
    parts: set[str] = field(default_factory=set)
    users: int = 0


_families: dict[int, _Family] = {}
_lock = threading.Lock()


def _acquire(family: int, part: str, table: str, priority: int) -> _Family:
    """Hold ``family``'s table with ``part`` in it, creating what is missing."""
    st = _families.get(family)
    if st is None:
        fam = "ip" if family == 4 else "ip6"
        # a table left by a crashed run is replaced (check_and_delete_tables)
        with contextlib.suppress(FirewallError):
            _nft(f"delete table {fam} {table}\n")
        st = _families[family] = _Family(table=table, priority=priority)
    if part not in st.parts:
        builder = table_script if part == "vmac" else vips_script
        _nft(builder(family, st.table, st.priority))
        st.parts.add(part)
    st.users += 1
    return st


def _release(family: int) -> bool:
    """Drop one hold; the last one deletes the table (keepalived ``nft_end``). True if gone."""
    st = _families.get(family)
    if st is None:
        return True
    st.users -= 1
    if st.users > 0:
        return False
    del _families[family]
    fam = "ip" if family == 4 else "ip6"
    _nft(f"delete table {fam} {st.table}\n")
    return True


def add_vmac(family: int, vmac: str, base: str, table: str = TABLE) -> None:
    """Install the VMAC rules if this is the first VMAC, then the VMAC's elements."""
    with _lock:
        st = _acquire(family, "vmac", table, PRIORITY)
        try:
            _nft(vmac_elements(family, vmac, base, add=True, table=st.table))
        except FirewallError:
            _release(family)
            raise


def remove_vmac(family: int, vmac: str, base: str) -> None:
    """Remove the VMAC's elements; the last user takes the table with it."""
    with _lock:
        st = _families.get(family)
        table = st.table if st is not None else TABLE
        if not _release(family):
            # a link already gone took its element with it
            with contextlib.suppress(FirewallError):
                _nft(vmac_elements(family, vmac, base, add=False, table=table))


def _vips_elements(family: int, table: str, addrs: list[str], *, add: bool) -> str:
    fam = "ip" if family == 4 else "ip6"
    verb = "add" if add else "delete"
    return f"{verb} element {fam} {table} vips {{ {', '.join(addrs)} }}\n"


class NoAccept:
    """An instance in no_accept mode: its VIPs are dropped while it is master.

    vrrp.c ``vrrp_complete_instance``: a non-owner (priority below 255)
    without ``accept`` gets a firewall, which is nftables table
    ``keepalived`` unless ``nftables NAME`` says otherwise; vrrp.c
    ``vrrp_state_become_master`` adds the VIPs and eVIPs to the drop set
    before it sets them ("setting firewall drop rule"), and leaving MASTER
    removes them ("removing firewall drop rule").
    """

    def __init__(self, addrs: dict[int, list[str]], table: str, priority: int) -> None:
        self.addrs = {f: a for f, a in addrs.items() if a}
        self.table = table
        self.priority = priority
        self.held: list[int] = []
        self.dropping = False

    @classmethod
    def for_instance(cls, inst: VrrpInstance, g: GlobalDefs) -> NoAccept | None:
        if inst.priority >= 255 or inst.accept is not False:
            return None
        addrs: dict[int, list[str]] = {4: [], 6: []}
        for spec in (*inst.virtual_ipaddress, *inst.virtual_ipaddress_excluded):
            ip = spec.address.ip
            if not (ip.version == 6 and ip.is_link_local):  # vips_link_local: not kept
                addrs[ip.version].append(str(ip))
        return cls(addrs, g.nftables or TABLE, g.nftables_priority)

    def start(self) -> None:
        with _lock:
            for family in self.addrs:
                _acquire(family, "vips", self.table, self.priority)
                self.held.append(family)

    def drop(self, on: bool) -> None:
        """Add (on) or remove the VIPs from the drop set; removing absent ones is fine."""
        with _lock:
            for family in self.held:
                st = _families.get(family)
                if st is None:
                    continue
                script = _vips_elements(family, st.table, self.addrs[family], add=on)
                if on:
                    _nft(script)
                else:
                    with contextlib.suppress(FirewallError):
                        _nft(script)
            self.dropping = on

    def stop(self) -> None:
        with _lock:
            for family in self.held:
                with contextlib.suppress(FirewallError):
                    _release(family)
            self.held.clear()
