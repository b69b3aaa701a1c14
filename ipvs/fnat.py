"""FULLNAT and SYN proxy on mainline IPVS: masquerade plus nftables snat and synproxy.

The Alibaba FULLNAT fork rewrites both addresses in the kernel, so the real
servers answer the director whatever their network.  Mainline IPVS only
rewrites the destination (NAT, masquerade); with ``net.ipv4.vs.conntrack=1``
the connection keeps its conntrack entry, so nftables' ``snat`` in
postrouting can rewrite the source too, onto the virtual server's
``local_address_group``, and its reverse is undone before IPVS sees the
answer.  This is what kube-proxy's IPVS mode does with masquerade.

:func:`ruleset` is pure: the configuration in, the ``nft -f -`` text out.
The table is pykeep's own (``inet pykeep_fnat``): every apply deletes and
re-adds it in one transaction, so a reload swaps the rules atomically and
never touches anyone else's tables; :func:`removal` takes it away on stop.
``syn_proxy`` adds nftables' ``synproxy`` in front of the virtual addresses
in the same table (:func:`synproxy_rules`).  The thin shell (:class:`Fnat`)
runs ``nft`` and sets the sysctls, and puts them back on stop.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable
from pathlib import Path

from ipvs.desired import DesiredError, service_keys
from ipvs.table import Proto
from pykeep.config.model import Config, IPAddress, LbKind, VirtualServer

TABLE = "pykeep_fnat"
CONNTRACK_SYSCTL = Path("/proc/sys/net/ipv4/vs/conntrack")
HOW = (
    "FNAT realised as IPVS NAT + net.ipv4.vs.conntrack=1 + nftables snat onto the "
    f"local address group (table inet {TABLE})"
)
SYNPROXY_HOW = (
    "syn_proxy realised as nftables synproxy in front of the virtual addresses, ahead of "
    f"IPVS, with net.netfilter.nf_conntrack_tcp_loose=0 (table inet {TABLE})"
)
_L4 = {Proto.TCP.value: "tcp", Proto.UDP.value: "udp", Proto.SCTP.value: "sctp"}


def how(config: Config) -> list[str]:
    """The start-up lines saying how FULLNAT and SYN proxy are realised, for what is configured."""
    out = [HOW] if rules(config) else []
    if synproxy_targets(config):
        out.append(SYNPROXY_HOW)
    return out


def fnat_servers(config: Config) -> list[VirtualServer]:
    """The virtual servers FULLNAT applies to: FNAT with a local address group that exists."""
    groups = {g.name for g in config.global_defs.local_address_groups}
    return [
        vs
        for vs in config.virtual_servers
        if vs.lb_kind is LbKind.FNAT and vs.laddr_group_name in groups
    ]


def _runs(addresses: Iterable[IPAddress]) -> list[tuple[IPAddress, IPAddress]]:
    """Contiguous runs of addresses, in order: each becomes one ``snat to A-B`` range."""
    out: list[tuple[IPAddress, IPAddress]] = []
    for a in sorted(set(addresses), key=lambda x: (x.version, int(x))):
        if out and out[-1][1].version == a.version and int(a) == int(out[-1][1]) + 1:
            out[-1] = (out[-1][0], a)
        else:
            out.append((a, a))
    return out


def _target(addresses: tuple[IPAddress, ...], family: int) -> str | None:
    """The ``snat`` target: one range, or a round robin over several (per new connection)."""
    runs = [r for r in _runs(addresses) if r[0].version == family]
    if not runs:
        return None
    nfam = "ip" if family == 4 else "ip6"

    def text(r: tuple[IPAddress, IPAddress]) -> str:
        return str(r[0]) if r[0] == r[1] else f"{r[0]}-{r[1]}"

    if len(runs) == 1:
        return f"snat {nfam} to {text(runs[0])}"
    # nft's map values cannot be ranges: spread over the addresses themselves.
    flat = [ipaddress.ip_address(n) for a, b in runs for n in range(int(a), int(b) + 1)]
    pairs = ", ".join(f"{i} : {a}" for i, a in enumerate(flat))
    return f"snat {nfam} to numgen inc mod {len(flat)} map {{ {pairs} }}"


def rules(config: Config) -> list[str]:
    """One postrouting rule per kernel service of every FNAT virtual server.

    A packet is matched by the connection's *original* destination (the
    virtual address and port, ``ct original``), which IPVS leaves alone when
    it alters the reply tuple (ip_vs_nf_conntrack.c ``ip_vs_update_conntrack``);
    fwmark services by the packet's mark, which survives IPVS's forwarding.
    """
    groups = {g.name: g for g in config.global_defs.local_address_groups}
    out: list[str] = []
    for vs in fnat_servers(config):
        group = groups[vs.laddr_group_name or ""]
        try:
            keys = list(service_keys(vs, config))
        except DesiredError:
            continue
        for k in keys:
            target = _target(group.addresses, k.family)
            if target is None:
                continue
            nfam = "ip" if k.family == 4 else "ip6"
            if k.fwmark:
                match = f"meta nfproto ipv{k.family} meta mark {k.fwmark}"
            else:
                match = f"meta l4proto {_L4[k.proto]} ct original {nfam} daddr {k.address}"
                if k.port:
                    match += f" ct original proto-dst {k.port}"
            out.append(f'{match} {target} comment "{vs.key}"')
    return out


# The options synproxy offers clients on the real servers' behalf: Linux's own
# defaults on Ethernet (MSS for MTU 1500, window scale 7, timestamps, SACK).
SYNPROXY_OPTIONS = "mss 1460 wscale 7 timestamp sack-perm"
TCP_LOOSE_SYSCTL = Path("/proc/sys/net/netfilter/nf_conntrack_tcp_loose")


def synproxy_targets(config: Config) -> list[tuple[int, str, int]]:
    """(family, address, port) of every TCP service whose virtual server asks for syn_proxy.

    Only masquerading services (NAT, FNAT): the client's ACKs and the
    server's answers must both pass this director, whose conntrack shifts the
    sequence numbers between synproxy's cookie and the real server's own.
    """
    out: list[tuple[int, str, int]] = []
    for vs in config.virtual_servers:
        if not vs.syn_proxy or vs.lb_kind not in (LbKind.NAT, LbKind.FNAT):
            continue
        try:
            keys = list(service_keys(vs, config))
        except DesiredError:
            continue
        out += [
            (k.family, k.address, k.port)
            for k in keys
            if k.address and k.proto == Proto.TCP.value and k.port
        ]
    return out


def synproxy_rules(config: Config) -> tuple[list[str], list[str]]:
    """nftables' SYN proxy in front of the virtual addresses, before IPVS sees a packet.

    The SYN is left untracked (raw prerouting); in the input hook, ahead of
    IPVS (which sits at NF_IP_PRI_NAT_SRC - 2), synproxy answers it with a
    cookie, and on a valid ACK opens the connection to the virtual address
    itself, which IPVS then schedules like any other (measured on the 6.1
    kernel: tests/test_fnat_vm.py).  Invalid packets to the address are dropped.
    """
    pre: list[str] = []
    inp: list[str] = []
    for family, address, port in synproxy_targets(config):
        m = f"{'ip' if family == 4 else 'ip6'} daddr {address} tcp dport {port}"
        pre.append(f"{m} tcp flags syn notrack")
        inp.append(f"{m} ct state invalid,untracked synproxy {SYNPROXY_OPTIONS}")
        inp.append(f"{m} ct state invalid drop")
    return pre, inp


def removal() -> str:
    """Delete our table whether it exists or not (the empty ``add`` makes it exist)."""
    return f"add table inet {TABLE}\ndelete table inet {TABLE}\n"


def ruleset(config: Config) -> str | None:
    """The ``nft -f -`` text that replaces our table in one transaction; None: nothing to do."""
    body = rules(config)
    pre, inp = synproxy_rules(config)
    if not body and not pre:
        return None
    lines = [removal().rstrip("\n"), f"table inet {TABLE} {{"]
    for name, hook, rs in (
        ("postrouting", "type nat hook postrouting priority srcnat", body),
        ("syn_untracked", "type filter hook prerouting priority raw", pre),
        ("syn_cookies", "type filter hook input priority filter", inp),
    ):
        if rs:
            lines += [
                f"    chain {name} {{",
                f"        {hook}; policy accept;",
                *(f"        {r}" for r in rs),
                "    }",
            ]
    lines.append("}")
    return "\n".join(lines) + "\n"


class Fnat:
    """Applies :func:`ruleset`: the sysctl once, the table on start and reload, removal on stop."""

    def __init__(self, nft: str = "nft") -> None:
        self.nft = nft
        self.active = False
        # sysctls as we found them, put back on stop: path -> value
        self._was: dict[Path, str] = {}

    async def _nft(self, text: str) -> str | None:
        """Run ``nft -f -``; the error text, or None when it worked."""
        import trio

        try:
            done = await trio.run_process(
                [self.nft, "-f", "-"],
                stdin=text.encode(),
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        except OSError as e:
            return f"{self.nft}: {e.strerror or e}"
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip().splitlines()
            return err[0] if err else f"nft exited {done.returncode}"
        return None

    def _sysctl(self, path: Path, value: str) -> str | None:
        try:
            was = path.read_text().strip()
            if was != value:
                path.write_text(value + "\n")
                self._was.setdefault(path, was)
        except OSError as e:
            return f"{path}: {e.strerror or e}"
        return None

    def _restore(self, keep: set[Path]) -> None:
        for path in [p for p in self._was if p not in keep]:
            with contextlib.suppress(OSError):
                path.write_text(self._was.pop(path) + "\n")

    async def apply(self, config: Config) -> str | None:
        """Replace (or remove) our table for ``config``; the reason when it failed."""
        text = ruleset(config)
        if text is None:
            return await self.remove() if self.active else None
        # IPVS keeps the conntrack entry, so nftables' snat can act on it.
        err = self._sysctl(CONNTRACK_SYSCTL, "1") if rules(config) else None
        if err is not None:
            return err
        err = await self._nft(text)
        if err is not None:
            return err
        self.active = True
        keep = {CONNTRACK_SYSCTL} if rules(config) else set()
        if synproxy_targets(config):
            # synproxy needs the client's ACK to stay invalid: no loose pick-up
            # of mid-stream connections (nft(8), SYNPROXY STATEMENT).
            keep.add(TCP_LOOSE_SYSCTL)
            err = self._sysctl(TCP_LOOSE_SYSCTL, "0")
        self._restore(keep)
        return err

    async def remove(self) -> str | None:
        """Take our table away and put the sysctl back as we found it."""
        if not self.active:
            return None
        err = await self._nft(removal())
        self.active = False
        self._restore(set())
        return err
