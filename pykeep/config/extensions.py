"""pykeep's own keywords: FULLNAT and SYN proxy on mainline IPVS, and cluster mode.

keepalived 2.2.7 does not know these.  ``lb_kind FNAT``, ``local_address_group``,
``laddr_group_name`` and ``syn_proxy`` come from the Alibaba FULLNAT IPVS fork
(the manuals' ``keepalived.conf`` for a cluster of directors behind ECMP);
``announce_on_lo`` is pykeep's alone.  Instead of rejecting them, pykeep
realises each on a mainline kernel and says how, in one line (an ``INFO``
note that keeps the exit code of ``-t``).  ``EXTENSIONS`` is the one table
of them: the ledger (docs/keywords.md) renders it beside keepalived's
keywords.
"""

from __future__ import annotations

import ipaddress

from pykeep.config.diagnostics import Severity
from pykeep.config.lexer import Line
from pykeep.config.model import IPAddress, LbKind, LocalAddressGroup
from pykeep.config.parser import Handler, Parser, Table, kw

TYPE_CHECKING = False  # typing stays unimported at run time: start-up counts (pykeep -t)
if TYPE_CHECKING:
    from typing import Any

FNAT_NOTE = (
    "lb_kind FNAT is realised on mainline IPVS as NAT (masquerade) with "
    "net.ipv4.vs.conntrack=1 and nftables source NAT onto the local address group "
    "(table inet pykeep_fnat)"
)
LADDR_GROUP_NOTE = (
    "local_address_group is realised as the source addresses nftables SNAT gives "
    "director-to-real-server traffic of FNAT services; put them on the inner interface"
)
LADDR_NAME_NOTE = (
    "laddr_group_name names the local_address_group FNAT traffic to the real servers "
    "is source-NATed onto"
)
# Measured on Linux 6.1 (tests/test_fnat_vm.py, README "Cluster mode").
SYN_PROXY_NOTE = (
    "syn_proxy is realised as nftables synproxy (mss 1460 wscale 7 timestamp sack-perm) "
    "in front of the virtual address, ahead of IPVS, with "
    "net.netfilter.nf_conntrack_tcp_loose=0 (table inet pykeep_fnat); NAT and FNAT only"
)


class Extension:
    """One keyword pykeep adds: where it goes, how it is realised, and its proof."""

    __slots__ = ("how", "test")

    def __init__(self, how: str, test: str) -> None:
        self.how = how
        self.test = test


_T_PARSE = "tests/test_fnat.py::test_seed_cluster_config_is_accepted_with_notes"
_T_RULES = "tests/test_fnat.py::test_ruleset_snats_only_fnat_services_onto_their_group"
_T_ANNOUNCE = "tests/test_fnat.py::test_announce_on_lo_follows_quorum_alpha_and_omega"
_T_SYN = "tests/test_fnat.py::test_syn_proxy_becomes_nftables_synproxy"

EXTENSIONS: dict[str, Extension] = {
    "virtual_server/lb_kind FNAT": Extension(FNAT_NOTE, _T_RULES),
    "local_address_group": Extension(LADDR_GROUP_NOTE, _T_PARSE),
    "virtual_server/laddr_group_name": Extension(LADDR_NAME_NOTE, _T_RULES),
    "virtual_server/syn_proxy": Extension(SYN_PROXY_NOTE, _T_SYN),
    "virtual_server/announce_on_lo": Extension(
        "pykeep only (keepalived: unknown keyword): the virtual server's addresses are "
        "added as /32 (/128) on lo while it has quorum, and at start (alpha) and removed "
        "when quorum is lost and at stop (omega), with no shell",
        _T_ANNOUNCE,
    ),
}


def _note(p: Parser, line: Line, text: str) -> None:
    p.report(line.loc, Severity.INFO, text)


def _vs(p: Parser) -> dict[str, Any]:
    return p.state.cur.get("vs") or {}


def _laddr_group(p: Parser, line: Line) -> None:
    """``local_address_group NAME { IP | IP-LAST … }`` (the fork's syntax: no ports)."""
    name = p.arg(line)
    addresses: list[IPAddress] = []
    for ln in p.value_block(line, skip_name=True):
        for word in ln.words:
            got = _addresses(word)
            if got is None:
                p.report(
                    ln.loc,
                    Severity.GENERAL_ERROR,
                    f"Invalid local address {word} - skipping",
                    "write one IP or IP-LASTOCTET (10.0.0.1-5) a line",
                )
                continue
            addresses += got
    if name is None:
        return
    _note(p, line, LADDR_GROUP_NOTE)
    if not addresses:
        p.report(
            line.loc,
            Severity.GENERAL_ERROR,
            f"local_address_group {name} has no addresses - removing",
            "list the director's inner addresses FNAT traffic leaves from",
        )
        return
    groups = p.state.global_defs.setdefault("local_address_groups", ())
    p.state.global_defs["local_address_groups"] = (
        *groups,
        LocalAddressGroup(name, tuple(addresses), line.loc),
    )


def _addresses(word: str) -> list[IPAddress] | None:
    """``10.0.0.1`` or ``10.0.0.1-5`` (the last octet, as virtual_server_group ranges)."""
    text, _dash, last = word.partition("-")
    try:
        first = ipaddress.ip_address(text)
        if not last:
            return [first]
        n = int(last) if first.version == 4 else int(last, 16)
        mask = 0xFF if first.version == 4 else 0xFFFF
        if not int(first) & mask <= n <= mask:
            return None
        base = int(first) & ~mask
        return [ipaddress.ip_address(base | i) for i in range(int(first) & mask, n + 1)]
    except ValueError:
        return None


def _laddr_name(p: Parser, line: Line) -> None:
    name = p.arg(line)
    if name is not None:
        _note(p, line, LADDR_NAME_NOTE)
        _vs(p)["laddr_group_name"] = name


def _syn_proxy(p: Parser, line: Line) -> None:
    _note(p, line, SYN_PROXY_NOTE)
    _vs(p)["syn_proxy"] = p.flag(line)


def _announce_on_lo(p: Parser, line: Line) -> None:
    _vs(p)["announce_on_lo"] = p.flag(line)


def fnat_or(inner: Handler) -> Handler:
    """``lb_kind FNAT`` at the virtual_server level; every other method goes to ``inner``."""

    def handler(p: Parser, line: Line) -> None:
        if len(line.words) > 1 and line.words[1] == "FNAT":
            _note(p, line, FNAT_NOTE)
            _vs(p)["lb_kind"] = LbKind.FNAT
            return
        inner(p, line)

    return handler


def install(root: Table, vs: Table) -> None:
    """Add the extension keywords to the checker tables (check_parser.install calls this)."""
    kw(root, "local_address_group", _laddr_group)
    kw(vs, "laddr_group_name", _laddr_name)
    kw(vs, "syn_proxy", _syn_proxy)
    kw(vs, "announce_on_lo", _announce_on_lo)
    for name in ("lb_kind", "lvs_method"):
        k = vs[name]
        assert k.handler is not None
        k.handler = fnat_or(k.handler)


def validate(p: Parser) -> None:
    """An FNAT service needs a local address group; a group name elsewhere does nothing."""
    groups = {g.name for g in p.state.global_defs.get("local_address_groups", ())}
    for vs, _built in p.state.virtual_servers:
        name = vs.laddr_group_name
        if vs.lb_kind is LbKind.FNAT and (name is None or name not in groups):
            what = "no laddr_group_name" if name is None else f"unknown local_address_group {name}"
            p.report(
                vs.loc,
                Severity.GENERAL_ERROR,
                f"Virtual server {vs.key}: lb_kind FNAT with {what}; "
                "it runs as NAT without source NAT",
                "define 'local_address_group NAME { IP … }' and name it with laddr_group_name",
            )
        if vs.syn_proxy and vs.lb_kind not in (LbKind.NAT, LbKind.FNAT):
            p.report(
                vs.loc,
                Severity.INFO,
                f"Virtual server {vs.key}: syn_proxy ignored for lb_kind {vs.lb_kind.value}: "
                "the real servers' answers bypass this director",
            )
        if vs.lb_kind is not LbKind.FNAT and name is not None:
            p.report(
                vs.loc,
                Severity.INFO,
                f"Virtual server {vs.key}: laddr_group_name {name} ignored (lb_kind is not FNAT)",
            )
