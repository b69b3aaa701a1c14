"""VRRP keywords: instances, sync groups, scripts, track files, static_* (vrrp/vrrp_parser.c)."""

from __future__ import annotations

import ipaddress
from _socket import AF_INET, inet_pton
from collections.abc import Iterator

from pykeep.config import bfd_parser, unacted, values
from pykeep.config.diagnostics import Severity
from pykeep.config.lexer import Line
from pykeep.config.model import (
    InitialState,
    IPAddressSpec,
    LazyIPv4Interface,
    Loc,
    Notify,
    RouteSpec,
    RuleSpec,
    TrackRef,
    UnicastPeer,
    VrrpInstance,
    VrrpScript,
    VrrpSyncGroup,
    VrrpTrackFile,
    VrrpTrackProcess,
    builder,
)
from pykeep.config.parser import Parser, Table, block, c_int, frozen, generic, kw, parse_ip

TYPE_CHECKING = False  # typing stays unimported at run time: start-up counts (pykeep -t)
if TYPE_CHECKING:
    from typing import Any

_INSTANCE_ACCEPTED = [
    "use_vmac_addr",
    "old_unicast_checksum",
    "native_ipv6",
    "vrf",
    "linkbeat_use_polling",
    "debug",
    "kernel_rx_buf_size",
]

_ROUTE_TYPES = {
    "xresolve",
    "unicast",
    "blackhole",
    "unreachable",
    "prohibit",
    "throw",
    "local",
    "broadcast",
    "multicast",
    "anycast",
    "nat",
}


# -- addresses, routes, rules ----------------------------------------------------


def parse_address(
    p: Parser, line: Line, what: str = "VRRP", *, vip: bool = False
) -> IPAddressSpec | None:
    """``IP[/len] [brd IP] [dev IF] [scope S] [label L] [no_track] …`` (vrrp_ipaddress.c).

    ``vip``: a virtual_ipaddress(_excluded) line, where keepalived also takes
    ``use_vmac`` (``parse_ipaddress``: not for static addresses).
    """
    w = line.words
    text = w[0]
    try:
        addr: Any = ipaddress.ip_interface(text)
    except ValueError:
        p.report(
            line.loc,
            Severity.GENERAL_ERROR,
            f"{what} parsed invalid IP {text}. skipping IP...",
            "write ADDRESS[/PREFIX] [dev IFACE] [label L] "
            "[scope S] [brd B], e.g. 192.168.1.10/24 dev eth0",
        )
        return None
    fields: dict[str, Any] = {}
    unapplied: list[str] = []
    i = 1
    while i < len(w):
        opt = w[i]
        val = w[i + 1] if i + 1 < len(w) else None
        if opt in ("dev", "label", "scope") and val is not None:
            fields[opt] = val
            i += 2
        elif opt in ("brd", "broadcast") and val is not None:
            try:
                fields["broadcast"] = ipaddress.IPv4Address(val) if val not in ("+", "-") else None
            except ValueError:
                p.report(line.loc, Severity.GENERAL_ERROR, f"Invalid broadcast address {val}")
            i += 2
        elif opt == "no_track":
            fields["no_track"] = True
            i += 1
        elif opt == "track":
            i += 1
        elif opt == "use_vmac" and vip:
            fields["_use_vmac"] = True  # judged with the whole instance (_vip_use_vmac)
            i += 1
        elif opt in ("home", "-nodad", "nodad", "noprefixroute", "autojoin"):
            unapplied.append(opt)
            i += 1
        elif opt in ("peer", "preferred_lft", "valid_lft", "metric") and val is not None:
            unapplied += [opt, val]
            i += 2
        else:
            p.report(
                line.loc,
                Severity.GENERAL_ERROR,
                f"Unknown configuration entry '{opt}' for ip address - ignoring",
                "valid options: dev, label, scope, brd, "
                "peer, home, -nodad, noprefixroute, no_track",
            )
            i += 1
    if unapplied:
        # Options of an address, not keywords (no ledger line): one warning a line.
        p.report(
            line.loc,
            Severity.INFO,
            f"'{' '.join(unapplied)}' is not supported by pykeep: the address is added without it",
        )
    if "dev" in fields:
        p.state.interface_refs.append((fields["dev"], line.loc, f"ip address {addr.ip}"))
    use_vmac = fields.pop("_use_vmac", False)
    spec = IPAddressSpec(addr, loc=line.loc, **fields)
    if use_vmac:
        _vi(p).setdefault("_vip_use_vmac", []).append(spec)
    return spec


_ROUTE_VALUE_KW = frozenset(
    [
        "src",
        "as",
        "via",
        "gw",
        "from",
        "tos",
        "table",
        "protocol",
        "scope",
        "metric",
        "priority",
        "preference",
        "dev",
        "oif",
        "expires",
        "mtu",
        "hoplimit",
        "advmss",
        "rtt",
        "rttvar",
        "reordering",
        "window",
        "cwnd",
        "ssthresh",
        "realms",
        "rto_min",
        "initcwnd",
        "initrwnd",
        "features",
        "quickack",
        "congctl",
        "pref",
        "fastopen_no_cookie",
        "track_group",
        "vrf",
        "to",
        "or",
    ]
)
_ROUTE_FLAG_KW = frozenset({"inet", "inet6", "onlink", "no_track", "ttl-propagate"})


def _network(text: str) -> Any:
    """ADDRESS[/PREFIX] as keepalived's parse_route reads it (inet_pton), or None."""
    addr, _, plen = text.partition("/")
    try:
        ip = parse_ip(addr)
        bits = int(plen) if plen else ip.max_prefixlen
        if plen and not plen.isdigit():
            return None
        return ipaddress.ip_network((ip, bits), strict=False)
    except ValueError:
        return None


def parse_route(p: Parser, line: Line, track: bool) -> RouteSpec | None:
    """One ``ip route``-like line, walked word by word as vrrp_iproute.c ``alloc_route`` does.

    A keyword missing its value stops keepalived (exit 2); a word that is no
    keyword is the destination, and a second one is an "unknown route keyword".
    """
    w = line.words
    i = 0
    kind = None
    dest: Any = None
    have_dest = False
    fields: dict[str, Any] = {}
    opts: list[str] = []
    while i < len(w):
        opt = w[i]
        if opt in _ROUTE_FLAG_KW:
            opts.append(opt)
            i += 1
            continue
        if opt == "nexthop" or opt == "encap":
            opts += w[i:]
            break
        if opt not in _ROUTE_VALUE_KW:
            # The destination, optionally after "to" and a route type (a name
            # or a number, rt_names.c find_rttables_rtntype).
            if opt == "to":
                i += 1
                opt = w[i] if i < len(w) else "to"
            if opt in _ROUTE_TYPES or (opt.isdigit() and int(opt) <= 255):
                kind = opt
                i += 1
            dtext = p.arg(line, i)
            assert dtext is not None
            have_dest = True
            i += 1
            if dtext == "default":
                dest = None
                continue
            dest = _network(dtext)
            if dest is None:
                p.report(
                    line.loc,
                    Severity.GENERAL_ERROR,
                    f"unknown route keyword {dtext}",
                    "write [TYPE] NETWORK/PREFIX [via GATEWAY] [dev IFACE] [src IP] [table N] …",
                )
                return None
            continue
        val = p.arg(line, i + 1)
        assert val is not None
        if opt in ("via", "gw"):
            if opt == "gw":
                p.report(
                    line.loc,
                    Severity.GENERAL_ERROR,
                    '"gw" for routes is deprecated. Please use "via"',
                    "write 'via GATEWAY'",
                )
            if val in ("inet", "inet6"):
                # "via inet ADDR" / "via inet6 ADDR" (vrrp_iproute.c alloc_route).
                i += 1
                fam, val = val, p.arg(line, i + 1) or ""
                gw = p.ip(val, line.loc, "gateway")
                if gw is not None and gw.version != (4 if fam == "inet" else 6):
                    p.report(
                        line.loc,
                        Severity.GENERAL_ERROR,
                        f"invalid route via address {val}",
                        f"an {fam} gateway must be an IPv{4 if fam == 'inet' else 6} address",
                    )
                    return None
                fields["via"] = gw
            else:
                fields["via"] = p.ip(val, line.loc, "gateway")
        elif opt == "or":
            p.report(
                line.loc,
                Severity.GENERAL_ERROR,
                '"or" for routes is deprecated. Please use "nexthop"',
                "write 'nexthop via A nexthop via B'",
            )
            opts += [opt, val]
        elif opt in ("dev", "oif"):
            fields["dev"] = val
            p.state.interface_refs.append((val, line.loc, f"route {w[0]}"))
        elif opt == "src":
            fields["src"] = p.ip(val, line.loc, "route source")
        elif opt == "scope":
            fields["scope"] = val
        elif opt == "table":
            try:
                fields["table"] = int(val)
            except ValueError:
                opts += [opt, val]
        elif opt in ("metric", "preference", "priority"):
            n = p.to_int(val, 0, 2**32 - 1, line, "route metric")
            if n is not None:
                fields["metric"] = n
        else:
            opts += [opt, val]
        i += 2
    if not have_dest:
        p.report(
            line.loc,
            Severity.GENERAL_ERROR,
            "No destination specified for route",
            "write the destination network, e.g. 10.0.0.0/24",
        )
        return None
    unapplied = [o for o in opts if o not in ("inet", "inet6", "no_track")]
    if unapplied:
        # Options of a route, not keywords (no ledger line): one warning a line.
        # What pykeep applies: the destination, type, via, src, dev, scope,
        # table and metric (vrrp/vip.py).
        p.report(
            line.loc,
            Severity.INFO,
            f"'{' '.join(unapplied)}' is not supported by pykeep: the route is added without it",
        )
    if track and "dev" not in fields and "no_track" not in opts:
        p.report(
            line.loc,
            Severity.GENERAL_ERROR,
            f"Warning - cannot track route {dest if dest is not None else '0.0.0.0/0'} "
            "with no interface specified, not tracking",
            "add 'dev IFACE' to the route, or 'no_track' to silence this",
        )
    return RouteSpec(dest, kind=kind, options=tuple(opts), loc=line.loc, **fields)


def parse_rule(p: Parser, line: Line, counter: list[int]) -> RuleSpec | None:
    """One ``ip rule``-like line (vrrp_iprule.c ``alloc_rule``): addresses and preference.

    A rule without a preference gets the next of its family's counter
    (``counter``: IPv4, IPv6), as keepalived numbers them, and its message.
    """
    w = line.words
    pref: int | None = None
    family = 6 if "inet6" in w or "-6" in w else 4
    i = 0
    while i < len(w):
        opt = w[i]
        if opt in ("from", "to", "table", "preference", "priority", "fwmark", "iif", "oif") and (
            i + 1 >= len(w)
        ):
            p.arg(line, i + 1)
        if opt in ("from", "to") and i + 1 < len(w):
            val = w[i + 1]
            if val != "all":
                try:
                    net = ipaddress.ip_network(val, strict=False)
                except ValueError:
                    p.report(
                        line.loc,
                        Severity.GENERAL_ERROR,
                        f"VRRP parsed invalid IP {val}. skipping IP...",
                    )
                    p.report(
                        line.loc,
                        Severity.GENERAL_ERROR,
                        f"Invalid rule {opt} address {val}",
                        "write a network such as 192.168.100.0/24",
                    )
                    return None
                family = net.version
            i += 2
            continue
        if opt in ("preference", "priority", "order", "pref", "prio") and i + 1 < len(w):
            pref = p.to_int(w[i + 1], 0, 2**32 - 1, line, "rule preference")
            i += 2
            continue
        i += 1
    if pref is None:
        k = 0 if family == 4 else 1
        pref = counter[k]
        counter[k] -= 1
        p.report(
            line.loc,
            Severity.GENERAL_ERROR,
            f"Rule has no preference specified - setting to {pref}. "
            "This is probably not what you want.",
            "add 'preference N' to the rule",
        )
    return RuleSpec(tuple(w), line.loc, pref, family)


def _static_addresses(p: Parser, line: Line) -> None:
    for ln in p.value_block(line):
        a = parse_address(p, ln)
        if a is not None:
            p.state.static_ipaddress.append(a)


def _static_routes(p: Parser, line: Line) -> None:
    for ln in p.value_block(line):
        r = parse_route(p, ln, track=False)
        if r is not None:
            p.state.static_routes.append(r)


def _static_rules(p: Parser, line: Line) -> None:
    for ln in p.value_block(line):
        r = parse_rule(p, ln, p.state.rule_pref)
        if r is not None:
            p.state.static_rules.append(r)


# -- vrrp_instance -------------------------------------------------------------


def _vi(p: Parser) -> dict[str, Any]:
    cur = p.state.cur.get("vrrp")
    if cur is None:
        cur = {}
    return cur


def _instance(p: Parser, line: Line) -> None:
    # vrrp_parser.c vrrp_handler: exactly one name, not used before, else skip the block.
    name = line.words[1] if len(line.words) == 2 else None
    if name is None:
        p.error("vrrp_instance must have a name", "write 'vrrp_instance NAME {'")
    elif any(v.name == name for v in p.state.vrrp_instances):
        p.error(f"vrrp instance {name} already defined", "give each vrrp_instance a unique name")
        name = None
    if name is None:
        p.skip_block()
        p.state.cur["vrrp"] = None
        return
    p.state.cur["vrrp"] = {"name": name, "loc": line.loc, "_notify": {}, "_auth_loc": None}


def _set(key: str, conv: str = "str") -> Any:
    def handler(p: Parser, line: Line) -> None:
        d = _vi(p)
        if conv == "flag":
            d[key] = p.flag(line)
            return
        v = p.arg(line)
        if v is not None:
            d[key] = v

    return handler


def _vmac_xmit_base(p: Parser, line: Line) -> None:
    """vrrp_parser.c vrrp_vmac_xmit_base_handler: set, whatever words follow (even "off")."""
    if len(line.words) > 1:
        p.report(
            line.loc,
            Severity.INFO,
            f"vmac_xmit_base: ignoring '{' '.join(line.words[1:])}' (keepalived sets it anyway)",
            "write the bare keyword, or remove the line",
        )
    _vi(p)["vmac_xmit_base"] = True


def _state(p: Parser, line: Line) -> None:
    v = p.arg(line)
    if v is None:
        return
    if v == "MASTER":
        _vi(p)["initial_state"] = InitialState.MASTER
    elif v == "BACKUP":
        _vi(p)["initial_state"] = InitialState.BACKUP
    else:
        p.error(
            f"({_vi(p).get('name')}) unknown state '{v}', defaulting to BACKUP",
            "write 'state MASTER' or 'state BACKUP'",
        )


def _interface(p: Parser, line: Line) -> None:
    v = p.arg(line)
    if v is None:
        return
    if len(v.encode("utf-8", "surrogateescape")) >= 16:
        # vrrp_parser.c vrrp_int_handler: longer than IFNAMSIZ allows, not looked up.
        p.error(f"Interface name '{v}' too long - ignoring", "interface names have 15 bytes")
        return
    d = _vi(p)
    d["interface"] = v
    p.state.interface_refs.append((v, line.loc, f"vrrp_instance {d.get('name')}"))


def _vrid(p: Parser, line: Line) -> None:
    v = p.int_arg(line, 1, 255)
    if v is None:
        p.error(
            f"({_vi(p).get('name')}): VRID '{line.words[1] if len(line.words) > 1 else ''}' "
            "not valid - must be between 1 & 255",
            "virtual_router_id takes 1..255, the same on every router of the group",
        )
        return
    _vi(p)["virtual_router_id"] = v


def _priority(p: Parser, line: Line) -> None:
    v = p.int_arg(line, 1, 255)
    if v is None:
        p.error(
            f"({_vi(p).get('name')}) Priority not valid! "
            "must be between 1 & 255. Using default 100",
            "priority takes 1..255 (255 means address owner)",
        )
        return
    _vi(p)["priority"] = v


def _advert(p: Parser, line: Line) -> None:
    v = p.decimal_arg(line, 0.01, 255)
    if v is None:
        p.error(
            f"({_vi(p).get('name')}) Advert interval (in sec) "
            "not valid! must be between 0.01 and 255 - ignoring"
        )
        return
    _vi(p)["advert_int"] = v


def _version(p: Parser, line: Line) -> None:
    v = p.int_arg(line, 2, 3)
    if v is None:
        p.error(f"({_vi(p).get('name')}) Version must be either 2 or 3")
        return
    _vi(p)["version"] = v


def _unicast_ttl(p: Parser, line: Line) -> None:
    # vrrp_parser.c vrrp_ttl_handler: 0 to 255; the block's end checks for peers.
    d = _vi(p)
    v = p.int_arg(line, 0, 255)
    if v is None:
        word = line.words[1] if len(line.words) > 1 else ""
        p.error(f"({d.get('name')}): TTL '{word}' not valid - must be between 0 & 255")
        return
    d["unicast_ttl"] = v


def _sockaddr_text(v: str) -> str:
    """The address part of ``v`` as lib/utils.c ``inet_stosockaddr`` reads it."""
    return v.split("-", 1)[0] if "-" in v else v.split("/", 1)[0]


def _src_ip(key: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        v = p.arg(line)
        if v is None:
            return
        # keepalived ignores a "/prefix" or "-range" here (lib/utils.c
        # inet_stosockaddr cuts at the first '-', else at '/').
        a = p.ip(_sockaddr_text(v), line.loc, key)
        if a is None:
            return
        d = _vi(p)
        fam = d.setdefault("_family", a.version)
        if fam != a.version:
            # vrrp_parser.c vrrp_srcip_handler: the instance's family is set.
            p.error(
                f"Configuration error: VRRP instance[{d.get('name')}] and src address[{v}] "
                "MUST be of the same family !!! Skipping...",
                "use a source address of the instance's family",
            )
            return
        d[key] = a

    return handler


def _mcast_dst(p: Parser, line: Line) -> None:
    """vrrp_parser.c ``vrrp_mcast_dstip_handler``: a multicast group (v6: link-local scope)."""
    v = p.arg(line)
    if v is None:
        return
    a = p.ip(v, line.loc, "mcast_dst_ip")
    if a is None:
        return
    d = _vi(p)
    fam = d.get("_family")
    if fam is not None and fam != a.version:
        p.report(
            line.loc,
            Severity.GENERAL_ERROR,
            f"({d.get('name')}) mcast dest address {v} MUST match VRRP instance family. "
            "Skipping...",
        )
        return
    if not a.is_multicast or (a.version == 6 and (a.packed[1] & 0x0F) != 2):
        scope = " link-local" if a.version == 6 else ""
        p.report(
            line.loc,
            Severity.GENERAL_ERROR,
            f"({d.get('name')}) mcast_dst_ip {v} not{scope} multicast. Skipping...",
        )
        return
    d["mcast_dst_ip"] = a


# The fast path of a VIP line that is just ``A.B.C.D[/N]`` (most lines of a
# big file).  inet_pton takes the same dotted quads as ipaddress (four
# decimal octets up to 255, no leading zero), and the prefix length is taken
# in its canonical spelling only; anything else (a dotted netmask, options,
# IPv6) goes through parse_address, with the same outcome as before.
_PREFIXES = {str(i): i for i in range(33)}
_SPEC_TWIN = builder(IPAddressSpec)
_LOC_TWIN = builder(Loc)


def _vips(key: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        d = _vi(p)
        lst = d.setdefault(key, [])
        checked = key == "virtual_ipaddress"
        # Lines read one at a time while each is a plain IPv4 address, which
        # reports nothing; from the first other line on, the rest of the block
        # is read first and then handled, so that diagnostics keep their order.
        lines = p.value_lines(line)
        rest = _plain_vips(lines, lst, d, checked)
        if rest is None:
            return
        rest += lines
        v4 = not checked or d.get("_family", 4) == 4
        for ln in rest:
            if v4 and _plain_vips(iter((ln,)), lst, d, checked) is None:
                continue
            a = parse_address(p, ln, vip=True)
            if a is None:
                continue
            if checked:
                # vrrp_parser.c: the first VIP sets the instance's family.
                fam = d.setdefault("_family", a.address.version)
                v4 = fam == 4
                if fam != a.address.version:
                    p.report(
                        ln.loc,
                        Severity.GENERAL_ERROR,
                        f"({d.get('name')}): address family must match VRRP instance "
                        f"[{a.address.ip}] - ignoring",
                        "use one address family per vrrp_instance (a second instance for IPv6)",
                    )
                    continue
            lst.append(a)

    return handler


def _plain_vips(
    lines: Iterator[Line], out: list[IPAddressSpec], d: dict[str, Any], checked: bool
) -> list[Line] | None:
    """Append to ``out`` the plain ``A.B.C.D[/N]`` lines of ``lines``, up to the first other.

    Returns that line (in a list, for the caller to read the rest after it),
    or None when ``lines`` ran out; all of ``lines`` when the instance is
    already IPv6.  Each is ``IPAddressSpec(ip_interface(word))`` with the
    line's location, without ipaddress's parsing; a plain IPv4 address as an
    instance's first VIP makes it an IPv4 instance (``_vips``).
    """
    add = out.append
    new = object.__new__
    lazy = LazyIPv4Interface
    spec_twin = _SPEC_TWIN
    loc_twin = _LOC_TWIN
    pton = inet_pton
    from_bytes = int.from_bytes
    prefixes = _PREFIXES
    if checked and d.get("_family", 4) != 4:
        return list(lines)
    for ln in lines:
        words = ln.words
        if len(words) == 1:
            text, slash, plen = words[0].partition("/")
            try:
                ip = from_bytes(pton(AF_INET, text))
                bits = prefixes[plen] if slash else 32
            except (OSError, ValueError, KeyError):
                return [ln]
            if checked:
                d["_family"] = 4
                checked = False
            # IPAddressSpec(IPv4Interface(ip/bits), loc=Loc(ln.file, ln.lineno))
            # made without a call (LazyIPv4Interface, model.builder): this is a
            # big file's bulk.
            addr: Any = new(lazy)
            addr._ip = ip
            addr._prefixlen = bits
            where: Any = new(loc_twin)
            where.file = ln.file
            where.line = ln.lineno
            where.__class__ = Loc
            one: Any = new(spec_twin)
            one.address = addr
            one.dev = one.label = one.scope = one.broadcast = None
            one.no_track = False
            one.loc = where
            one.__class__ = IPAddressSpec
            add(one)
            continue
        return [ln]
    return None


def _vroutes(p: Parser, line: Line) -> None:
    lst = _vi(p).setdefault("virtual_routes", [])
    for ln in p.value_block(line):
        r = parse_route(p, ln, track=True)
        if r is not None:
            lst.append(r)


def _vrules(p: Parser, line: Line) -> None:
    lst = _vi(p).setdefault("virtual_rules", [])
    for ln in p.value_block(line):
        r = parse_rule(p, ln, p.state.rule_pref)
        if r is not None:
            lst.append(r)


def _unicast_peers(p: Parser, line: Line) -> None:
    d = _vi(p)
    lst = d.setdefault("unicast_peers", [])
    for ln in p.value_block(line):
        # A "/prefix" is dropped, as in keepalived (lib/utils.c inet_stosockaddr).
        a = p.ip(_sockaddr_text(ln.words[0]), ln.loc, "unicast peer")
        if a is None:
            continue
        if d.setdefault("_family", a.version) != a.version:
            # vrrp_data.c alloc_unicast_peer: the instance's family is set.
            p.report(
                ln.loc,
                Severity.GENERAL_ERROR,
                f"Configuration error: VRRP instance[{d.get('name')}] and unicast peer "
                f"address[{ln.words[0]}] MUST be of the same family !!! Skipping...",
                "use unicast peers of the instance's family",
            )
            continue
        fields: dict[str, Any] = {}
        w = ln.words
        i = 1
        while i + 1 < len(w):
            if w[i] in ("min_ttl", "max_ttl"):
                fields[w[i]] = p.to_int(w[i + 1], 0, 255, ln.loc, w[i])
            i += 2
        if fields:
            # Options of a peer, not keywords (no ledger line): one warning a peer.
            p.report(
                ln.loc,
                Severity.INFO,
                f"'{'/'.join(fields)}' is not supported by pykeep: adverts from the peer "
                "are accepted whatever their TTL",
            )
        lst.append(UnicastPeer(a, loc=ln.loc, **fields))


def track_refs(p: Parser, line: Line, kind: str) -> list[TrackRef]:
    """track_interface / track_script / track_file entries: ``NAME [weight N [reverse]]``."""
    out: list[TrackRef] = []
    for ln in p.value_block(line):
        w = ln.words
        weight = None
        reverse = False
        if len(w) >= 3 and w[1] == "weight":
            weight = p.to_int(w[2], -254, 254, ln.loc, f"{kind} weight")
            if len(w) >= 4 and w[3] == "reverse":
                reverse = True
        elif len(w) >= 2:
            p.report(
                ln.loc,
                Severity.GENERAL_ERROR,
                f"{kind} {w[0]} option '{w[1]}' not valid",
                "write NAME [weight N [reverse]]",
            )
        out.append(TrackRef(w[0], weight, reverse, ln.loc))
        if kind == "track_interface":
            p.state.interface_refs.append((w[0], ln.loc, "track_interface"))
    return out


def _track(key: str, target: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        d = p.state.cur.get(target) or {}
        if key == "track_process":
            d.setdefault(key, []).extend(_process_refs(p, d, line))
            return
        refs = track_refs(p, line, key)
        if key != "track_interface":
            # Looked up while parsing, so the script or file must be defined
            # above (vrrp_track.c / track_file.c): otherwise it is ignored.
            if key == "track_script":
                known = {s.name for s in p.state.vrrp_scripts}
                what, kind = "track script", "vrrp_script"
            elif key == "track_bfd":
                known = set(p.state.bfd_vrrp)
                what, kind = "track bfd", "bfd_instance"
            else:
                known = {f.name for f in p.state.vrrp_track_files}
                what, kind = "track file", "vrrp_track_file"
            kept = []
            for r in refs:
                if r.name in known:
                    kept.append(r)
                    continue
                p.report(
                    r.loc,
                    Severity.GENERAL_ERROR,
                    f"({d.get('name')}) {what} {r.name} not found, ignoring...",
                    f"define '{kind} {r.name} {{ … }}' above the block that uses it",
                )
            refs = kept
        if key == "track_bfd":
            # vrrp_track.c alloc_track_bfd: a second reference is an error.
            seen = {t.name for t in d.get(key, ())}
            uniq = []
            for r in refs:
                if r.name in seen:
                    p.report(
                        r.loc,
                        Severity.GENERAL_ERROR,
                        f"({d.get('name')}) duplicate track_bfd {r.name} - ignoring",
                        f"name {r.name} once",
                    )
                    continue
                seen.add(r.name)
                uniq.append(_bfd_ref(p, r))
            refs = uniq
        d.setdefault(key, []).extend(refs)

    return handler


def _process_refs(p: Parser, d: dict[str, Any], line: Line) -> list[TrackRef]:
    """``NAME [weight N [reverse|noreverse]]`` lines, read as vrrp_track.c alloc_track_process.

    The process must be defined above; a second reference is an error; the
    weight and reverse are the vrrp_track_process's unless the line gives them.
    """
    defs = {t.name: t for t in p.state.vrrp_track_processes}
    seen = {t.name for t in d.get("track_process", ())}
    who = d.get("name")
    out: list[TrackRef] = []
    for ln in p.value_block(line):
        w = ln.words
        tp = defs.get(w[0])
        if tp is None:
            p.report(
                ln.loc,
                Severity.GENERAL_ERROR,
                f"({who}) track process {w[0]} not found, ignoring...",
                f"define 'vrrp_track_process {w[0]} {{ … }}' above the block that uses it",
            )
            continue
        if w[0] in seen:
            p.report(
                ln.loc,
                Severity.GENERAL_ERROR,
                f"({who}) duplicate track_process {w[0]} - ignoring",
                f"name {w[0]} once",
            )
            continue
        weight, reverse = tp.weight, tp.weight_reverse
        if len(w) >= 2:
            if w[1] != "weight":
                p.report(
                    ln.loc,
                    Severity.GENERAL_ERROR,
                    f"({who}) unknown track process option {w[1]} - ignoring",
                    "write NAME [weight N [reverse]]",
                )
                continue
            if len(w) == 2:
                p.report(
                    ln.loc,
                    Severity.GENERAL_ERROR,
                    f"({who}) weight without value specified for track process {w[0]} - ignoring",
                    "write NAME weight N",
                )
                continue
            v = p.to_int(w[2], -254, 254, ln.loc, "track_process weight")
            if v is None:
                p.report(
                    ln.loc,
                    Severity.GENERAL_ERROR,
                    f"({who}) weight for track process {w[0]} must be in [-254..254] "
                    "inclusive. Ignoring...",
                    "give a weight in [-254, 254]",
                )
            else:
                weight = v
            if len(w) >= 4:
                if w[3] in ("reverse", "noreverse"):
                    reverse = w[3] == "reverse"
                else:
                    p.report(
                        ln.loc,
                        Severity.GENERAL_ERROR,
                        f"({who}) unknown track_process {w[0]} weight option {w[3]} - ignoring",
                        "write reverse or noreverse",
                    )
        seen.add(w[0])
        out.append(TrackRef(w[0], weight, reverse, ln.loc))
    return out


def _bfd_ref(p: Parser, r: TrackRef) -> TrackRef:
    """The bfd_instance's weight unless the reference gives one (vrrp_track.c alloc_track_bfd)."""
    weight, reverse = p.state.bfd_vrrp[r.name]
    if r.weight is not None and abs(r.weight) > 253:
        # track_bfd's range is narrower than track_script's
        d = p.state.cur.get("vrrp") or p.state.cur.get("sg") or {}
        p.report(
            r.loc,
            Severity.GENERAL_ERROR,
            f"({d.get('name')}) weight for track bfd {r.name} must be in [-253..253] "
            "inclusive. Ignoring...",
            "give a weight in [-253, 253]",
        )
    elif r.weight is not None:
        weight = r.weight
    return TrackRef(r.name, weight, reverse or r.reverse, r.loc)


def _notify(key: str, target: str) -> Any:
    """vrrp_parser.c vrrp_notify_*_handler / vrrp_gnotify_*_handler.

    A second script of a kind is refused, naming the owner; a first one that
    was dropped (an unknown user) leaves the slot free.  ``notify_deleted``
    also stands bare (then only the notify script and FIFO hear of the
    deletion), and its second line is refused even when the first was bare.
    """
    word = "notify" if key == "generic" else f"notify_{key}"

    def handler(p: Parser, line: Line) -> None:
        d = p.state.cur.get(target)
        if d is None:
            return
        seen = d.setdefault("_notify_seen", set())
        if key in d["_notify"] or (key == "deleted" and key in seen):
            # The message names word 1: without one keepalived stops (exit 2),
            # except for notify_deleted, whose handler checks first.
            arg = (p.arg(line) or "") if key != "deleted" else " ".join(line.words[1:2])
            if target == "sg":
                p.error(f"vrrp group {d['name']}: {word} script already specified - ignoring {arg}")
            elif key == "deleted":
                p.error(f"({d['name']}) notify_deleted already specified - ignoring {arg}")
            else:
                p.error(f"({d['name']}) {word} script already specified - ignoring {arg}")
            return
        seen.add(key)
        if key == "deleted" and len(line.words) == 1:
            return
        sc = p.script(line, line.words[0])
        if sc is not None:
            d["_notify"][key] = sc

    return handler


_GARP_DELAY = "({i}): garp_master_delay '{v}' invalid - ignoring"
_GARP_REFRESH = "({i}): Invalid garp_master_refresh '{v}' - ignoring"
_GARP_LOWER = "({i}): garp_lower_prio_delay '{v}' invalid - ignoring"


def _seconds(key: str, hi: int, message: str) -> Any:
    """Whole seconds, 0..hi (vrrp_parser.c vrrp_garp_delay_handler and friends)."""

    def handler(p: Parser, line: Line) -> None:
        d = _vi(p)
        v = p.int_arg(line, 0, hi)
        if v is None:
            p.error(message.format(i=d.get("name"), v=line.words[1]), f"{key} takes whole seconds")
            return
        d[key] = float(v)

    return handler


def _smtp(target: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        d = p.state.cur.get(target)
        if d is not None:
            d["smtp_alert"] = p.flag(line)

    return handler


def _promote_secondaries(p: Parser, line: Line) -> None:
    # vrrp_parser.c vrrp_promote_secondaries_handler: a bare flag, words after it ignored
    _vi(p)["promote_secondaries"] = True


def _sg_bool(key: str) -> Any:
    """A sync-group keyword read with check_true_false (bare: true)."""

    def handler(p: Parser, line: Line) -> None:
        d = p.state.cur.get("sg")
        if d is not None:
            d[key] = p.flag(line)

    return handler


def _timer(key: str, lo: float = 0, hi: float = 2**31) -> Any:
    def handler(p: Parser, line: Line) -> None:
        v = p.decimal_arg(line, lo, hi)
        if v is not None:
            _vi(p)[key] = v

    return handler


def _count(key: str, lo: int = 0, hi: int = 2**31 - 1) -> Any:
    def handler(p: Parser, line: Line) -> None:
        v = p.int_arg(line, lo, hi)
        if v is not None:
            _vi(p)[key] = v

    return handler


def _garp_repeat(key: str) -> Any:
    """vrrp_parser.c vrrp_garp_rep_handler / vrrp_garp_refresh_rep_handler.

    0..UINT_MAX is read; 0 (allowed before 2.0.7) is reported and made 1.
    """

    def handler(p: Parser, line: Line) -> None:
        d = _vi(p)
        v = p.int_arg(line, 0, 2**32 - 1)
        if v is None:
            p.error(f"({d.get('name')}): {key} '{line.words[1]}' invalid - ignoring")
            return
        if v == 0:
            p.error(
                f"({d.get('name')}): {key} must be greater than 0, setting to 1",
                f"{key} takes 1 or more",
            )
            v = 1
        d[key] = v

    return handler


def _down_timer_adverts(p: Parser, line: Line) -> None:
    # The range was judged in front (values.py): '""' (0) was refused there.
    if len(line.words) > 1 and line.words[1] != "":
        v = p.int_arg(line, 1, 100)
        if v is not None:
            _vi(p)["down_timer_adverts"] = v


def _garp_extra_if(p: Parser, line: Line) -> None:
    # ``[all] SECONDS``, judged in front (values.py extra_if).
    d = _vi(p)
    for w in line.words[1:]:
        if w == "all":
            d["garp_extra_if_all"] = True
        else:
            d["garp_extra_if"] = float(c_int(w) or 0)


def _track_src_ip(p: Parser, line: Line) -> None:
    """Accepted and, as in keepalived 2.2.7, without effect.

    keepalived sets VRRP_FLAG_TRACK_SADDR, but keepalived_netlink.c
    netlink_if_address_filter compares the deleted or added address with the
    whole sockaddr_storage of the source, never equal: an instance keeps its
    state when its configured source address leaves the interface
    (tests/test_vrrp_keywords_wire.py shows keepalived and pykeep side by side).
    """


def _unicast_fault_no_peer(p: Parser, line: Line) -> None:
    # vrrp_parser.c vrrp_unicast_fault_no_peer: any words after it are ignored.
    _vi(p)["unicast_fault_no_peer"] = True


def _preempt_delay(p: Parser, line: Line) -> None:
    v = p.decimal_arg(line, 0, 1000)
    if v is None:
        p.error(f"({_vi(p).get('name')}) Preempt_delay not valid! must be between 0-1000")
        return
    _vi(p)["preempt_delay"] = v


def _vmac_mac(word: str) -> tuple[list[int] | None, str]:
    """``use_vmac``'s MAC word as vrrp_parser.c ``vrrp_vmac_handler`` reads it.

    Six octets of one or two hex digits, ':' between them; five octets (a
    trailing ':' allowed) leave the last one to the VRID (the handler's
    ``VRRP_VMAC_MAC_USE_VRID``); a ':' and anything after a sixth octet is
    ignored.  Returns the octets, or None and keepalived's message.
    """
    if word.strip("0123456789ABCDEFabcdef:"):
        return None, f"VMAC invalid MAC address {word}"
    bad = f"VMAC invalid MAC address {word} - ignored"
    parts = word.split(":")
    octets: list[int] = []
    for j, part in enumerate(parts[:6]):
        if not 1 <= len(part) <= 2:
            return None, bad
        octets.append(int(part, 16))
        ended = parts[j + 1 :] in ([], [""])
        if j == 4 and ended:
            break  # five octets: the VRID completes the address
        if j < 4 and ended:
            return None, bad  # too few octets
    if octets[0] & 1:
        return None, f"VMAC MAC address is multicast {word} - ignoring"
    if octets[:4] == [0, 0, 0x5E, 0] and octets[4] in (1, 2):
        return None, f"VMAC MAC address not allowed to be RFC5798 address ({word}) - ignoring"
    return octets, ""


def _vmac_name_valid(name: str) -> bool:
    """vrrp_parser.c ``dev_name_valid``: fits IFNAMSIZ, no '/', ':' or space, not '.'/'..'."""
    return (
        0 < len(name.encode()) < 16
        and name not in (".", "..")
        and not any(c in "/:" or c.isspace() for c in name)
    )


def _use_vmac(p: Parser, line: Line) -> None:
    """vrrp_parser.c ``vrrp_vmac_handler``: up to two words, in any order; one
    holding ':' is the VMAC's MAC address (an interface name cannot hold one),
    the other the link's name.  What is wrong is reported and left out."""
    d = _vi(p)
    d.setdefault("use_vmac", "")
    for word in line.words[1:3]:
        if ":" in word:
            if d.get("vmac_mac"):
                p.error("VMAC interface address already specified")
                continue
            octets, why = _vmac_mac(word)
            if octets is None:
                p.error(why, "write six octets, e.g. 02:00:5e:10:01:2a (or five: the VRID ends it)")
                continue
            d["vmac_mac"] = ":".join(f"{o:02x}" for o in octets)
            continue
        if d["use_vmac"]:
            p.error("VMAC interface name already specified")
            continue
        if not _vmac_name_valid(word):
            p.error(f"VMAC interface name '{word}' too long or invalid characters - ignoring")
            continue
        other = next((v for v in p.state.vrrp_instances if v.use_vmac == word), None)
        if other is not None:
            p.error(f"({d.get('name')}) VRRP instance {other.name} is already using {word}"
                    " - ignoring name")  # fmt: skip
            continue
        d["use_vmac"] = word


def _use_ipvlan(p: Parser, line: Line) -> None:
    """vrrp_parser.c ``vrrp_ipvlan_handler``: an L2 ipvlan for the instance (vrrp/vmac.py).

    Words in any order: a type (bridge, private, vepa: IFLA_IPVLAN_FLAGS),
    an address (the ipvlan's own, also the advert source unless one is
    configured already), the link's name (the VMAC's name slot, shared with
    use_vmac).  What the handler refuses is reported here; a missing IPv4
    address is reported with the instance's other checks (validate.py).
    """
    p.accept(line)
    d = _vi(p)
    name = d.get("name")
    if d.get("_ipvlan") is not None:
        p.error(f"({name}) use_ipvlan already specified", "give use_ipvlan once")
        return
    ipv: dict[str, Any] = {"addr": None}
    d["_ipvlan"] = ipv
    d.setdefault("use_ipvlan", "")
    had_type = False
    for word in line.words[1:]:
        if word in _IPVLAN_FLAGS:
            if had_type:
                p.error(f"({name}) ipvlan type already specified - ignoring '{word}'")
            else:
                d["ipvlan_flags"] = _IPVLAN_FLAGS[word]
            had_type = True
            continue
        addr = _ipvlan_address(word)
        if addr is not None:
            if ipv["addr"] is not None:
                p.error(f"({name}) ipvlan address already specified - ignoring '{word}'")
                continue
            fam = d.setdefault("_family", addr)
            if fam != addr:
                p.error(
                    f"({name}) ipvlan address[{word}] MUST match vrrp instance family !!!"
                    " Skipping..."
                )
                continue
            ipv["addr"] = addr
            host, _sep, plen = word.partition("/")
            a = parse_ip(host)
            d["ipvlan_address"] = f"{a}/{plen or a.max_prefixlen}"
            # the ipvlan's address is the advert source unless one is set already
            if "mcast_src_ip" not in d and "unicast_src_ip" not in d:
                d["mcast_src_ip"] = a
            continue
        if d.get("use_vmac") or ipv.get("ifname"):
            p.error(f"({name}) IPVLAN interface already specified - ignoring '{word}'")
            continue
        if len(word.encode()) >= 16:
            p.error(f"({name}) IPVLAN interface name '{word}' too long - ignoring")
            continue
        ipv["ifname"] = word
        d["use_ipvlan"] = word


#: vrrp_parser.c vrrp_ipvlan_handler: the type word as IFLA_IPVLAN_FLAGS
_IPVLAN_FLAGS = {"bridge": 0, "private": 1, "vepa": 2}


def _ipvlan_address(word: str) -> int | None:
    """The family (4 or 6) of an address, perhaps with a prefix (check_valid_ipaddress)."""
    host, _sep, prefix = word.partition("/")
    try:
        addr = parse_ip(host)
    except ValueError:
        return None
    if prefix and not (prefix.isdigit() and int(prefix) <= addr.max_prefixlen):
        return None
    return addr.version


def _lvs_syncd_if(p: Parser, line: Line) -> None:
    d = _vi(p)
    v = p.arg(line)
    if v is None:
        return
    p.deprecated(
        line,
        f"({d.get('name')}) Specifying lvs_sync_daemon_interface against a vrrp is deprecated.",
        "use 'lvs_sync_daemon IFACE INSTANCE' in global_defs",
    )
    p.report(line.loc, Severity.GENERAL_ERROR, "        Please use global lvs_sync_daemon")
    d["lvs_sync_daemon_interface"] = v


def _auth_type(p: Parser, line: Line) -> None:
    v = p.arg(line)
    if v is None:
        return
    d = _vi(p)
    if v in ("PASS", "AH"):
        d["auth_type"] = v
        d["_auth_loc"] = line.loc
    else:
        p.error(
            f"({d.get('name')}) unknown authentication type '{v}'", "write 'auth_type PASS' (or AH)"
        )


def _auth_pass(p: Parser, line: Line) -> None:
    v = p.arg(line)
    if v is None:
        return
    d = _vi(p)
    if len(v) > 8:
        p.error("Truncating auth_pass to 8 characters", "VRRPv2 passwords are at most 8 characters")
        v = v[:8]
    d["auth_pass"] = v


def _nopreempt(p: Parser, line: Line) -> None:
    _vi(p)["nopreempt"] = True


def _preempt(p: Parser, line: Line) -> None:
    _vi(p)["nopreempt"] = False


def _accept(value: bool) -> Any:
    def handler(p: Parser, line: Line) -> None:
        _vi(p)["accept"] = value

    return handler


def _dont_track(p: Parser, line: Line) -> None:
    _vi(p)["dont_track_primary"] = True


_VI_FIELDS = set(VrrpInstance.__dataclass_fields__)


def _vip_use_vmac(p: Parser, d: dict[str, Any], spec: IPAddressSpec) -> None:
    """``use_vmac`` on a VIP (vrrp.c vrrp_complete_instance).

    On the instance's own interface and family, with the instance using a
    VMAC, keepalived reports the option as an error and the address goes on
    the instance's VMAC, as pykeep puts it.  Otherwise keepalived makes the
    address a VMAC of its own, which pykeep does not: one note says so.
    """
    a = spec.address
    shown = str(a.ip) if a.network.prefixlen == a.max_prefixlen else str(a)
    vips = d.get("virtual_ipaddress") or ()
    peers = d.get("unicast_peers") or ()
    family = vips[0].address.version if vips else peers[0].address.version if peers else 4
    own_link = spec.dev is None or spec.dev == d.get("interface")
    if own_link and "use_vmac" in d and a.version == family:
        p.report(
            spec.loc,
            Severity.GENERAL_ERROR,
            f"({d['name']}) use_vmac specified for VIP/eVIP {shown} and vrrp instance",
            "the instance's use_vmac already puts the address on its VMAC: remove it here",
        )
        return
    p.report(
        spec.loc,
        Severity.INFO,
        f"'use_vmac' for ip address {shown} is not supported by pykeep: the address"
        f" goes on {spec.dev or d.get('interface') or 'its interface'} without a VMAC of its own",
    )


def _instance_end(p: Parser) -> None:
    d = p.state.cur.pop("vrrp", None)
    if d is None:
        return
    notify = Notify(**d.pop("_notify"))
    d.pop("_notify_seen", None)
    d.pop("_auth_loc", None)
    for spec in d.pop("_vip_use_vmac", ()):
        _vip_use_vmac(p, d, spec)
    own = d.get("interface")
    own_tracked = own is not None and any(r.name == own for r in d.get("track_interface", ()))
    if own_tracked:
        # vrrp.c vrrp_complete_instance: the instance's own interface is always
        # tracked (unless dont_track_primary), so naming it again is dropped;
        # said with the instance's other checks (validate.py), as keepalived does.
        d["track_interface"] = [r for r in d["track_interface"] if r.name != own]
    if "unicast_ttl" in d and not d.get("unicast_peers"):
        # vrrp_parser.c vrrp_end_handler, at the block's '}'.
        p.report(
            p.close_loc() or d["loc"],
            Severity.GENERAL_ERROR,
            f"({d['name']}): Cannot use unicast_ttl without unicast peers - resetting",
            "remove unicast_ttl, or add unicast_peer addresses",
        )
        del d["unicast_ttl"]
    fields = frozen(d, _VI_FIELDS)
    fields["notify"] = notify
    fields.setdefault("virtual_router_id", 0)
    vips = fields.get("virtual_ipaddress", ())
    peers = fields.get("unicast_peers", ())
    if vips:
        fields["family"] = vips[0].address.version
    elif peers:
        fields["family"] = peers[0].address.version
    elif d.get("ipvlan_address"):  # vrrp_ipvlan_handler: the address sets the family
        fields["family"] = 6 if ":" in d["ipvlan_address"] else 4
    ipvlan = d.get("_ipvlan")
    # What the file set explicitly: defaults that depend on other settings
    # (priority from state, version from family) are resolved in validate.
    p.state.vrrp_meta[d["name"]] = {
        "priority_set": "priority" in d,
        "version_set": "version" in d,
        "has_auth_pass": "auth_pass" in d,
        "unicast_configured": bool(d.get("_unicast")),
        "ipvlan": ipvlan is not None,
        "own_tracked": own_tracked,
        "ipvlan_v4": ipvlan is not None and ipvlan["addr"] == 4,
        "ipvlan_v6": ipvlan is not None and ipvlan["addr"] == 6,
    }
    p.state.vrrp_instances.append(VrrpInstance(**fields))


# -- vrrp_sync_group -------------------------------------------------------------


def _sync_group(p: Parser, line: Line) -> None:
    name = line.words[1] if len(line.words) == 2 else None
    if name is None:
        p.error("vrrp_sync_group must have a name - skipping", "write 'vrrp_sync_group NAME {'")
    elif any(sg.name == name for sg, _m in p.state.vrrp_sync_groups):
        p.error(f"vrrp sync group {name} already defined", "give each sync group a unique name")
        name = None
    if name is None:
        p.skip_block()
        p.state.cur["sg"] = None
        return
    p.state.cur["sg"] = {
        "name": name,
        "loc": line.loc,
        "group": [],
        "_notify": {},
        "_has_group": False,
    }


def _sg_group(p: Parser, line: Line) -> None:
    d = p.state.cur.get("sg")
    if d is None:
        return
    # vrrp_parser.c vrrp_group_handler: a second non-empty list is refused.
    if d["_has_group"]:
        p.error(f"Group list already specified for sync group {d['name']}")
        p.skip_block()
        return
    for ln in p.value_block(line):
        for w in ln.words:
            d["group"].append((w, ln.loc))
            d["_has_group"] = True
    if not d["_has_group"]:
        p.report(
            p.value_end_loc(),
            Severity.GENERAL_ERROR,
            f"Warning - sync group {d['name']} has empty group block",
            "list the sync group's vrrp_instances in the block",
        )


def _sg_global_tracking(p: Parser, line: Line) -> None:
    """vrrp_parser.c vrrp_gglobal_tracking_handler: sync_group_tracking_weight, deprecated."""
    d = p.state.cur.get("sg")
    if d is not None:
        d["global_tracking"] = True
        p.error(
            f"({d.get('name')}) global_tracking is deprecated. "
            "Use track_interface/script/file on the sync group",
            "replace global_tracking with sync_group_tracking_weight",
        )


def _sg_flag(key: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        d = p.state.cur.get("sg")
        if d is not None:
            d[key] = True

    return handler


def _sg_end(p: Parser) -> None:
    d = p.state.cur.pop("sg", None)
    if d is None:
        return
    d["notify"] = Notify(**d.pop("_notify"))
    d.pop("_notify_seen", None)
    members = d.pop("group")
    d.pop("_has_group")
    fields = frozen(d)
    fields["group"] = tuple(m for m, _ in members)
    p.state.vrrp_sync_groups.append((VrrpSyncGroup(**fields), members))


# -- vrrp_script ---------------------------------------------------------------


def _vscript(p: Parser, line: Line) -> None:
    name = p.arg(line)
    if name is None:
        p.skip_block()
        p.state.cur["vs"] = None
        return
    p.state.cur["vscript"] = {"name": name, "loc": line.loc}


def _vs_script(p: Parser, line: Line) -> None:
    d = p.state.cur.get("vscript")
    if d is None:
        return
    sc = p.script(line, "vrrp_script", None)
    if sc is not None:
        # vrrp_script's "script" takes no user/group after it (those are "user").
        d["script"] = type(sc)(sc.argv, None, None, sc.loc)


def _vs_seconds(key: str) -> Any:
    """vrrp_parser.c vrrp_vscript_interval_handler / _timeout_handler: whole seconds,
    0 taken as 1 (pre-2.0.7 files), with keepalived's sentences."""

    def handler(p: Parser, line: Line) -> None:
        d = p.state.cur.get("vscript")
        if d is None:
            return
        v = p.int_arg(line, 0, _VS_MAX_SECONDS)
        if v is None:
            word = line.words[1] if len(line.words) > 1 else ""
            what = "invalid" if key == "timeout" else f"must be between 1 and {_VS_MAX_SECONDS}"
            p.error(
                f"({d['name']}): vrrp script {key} '{word}' {what} - ignoring",
                f"{key} takes whole seconds",
            )
            return
        if v == 0:
            p.error(f"({d['name']}): vrrp script {key} must be greater than 0, setting to 1")
            v = 1
        d[key] = float(v)

    return handler


_VS_MAX_SECONDS = (2**32 - 1) // 1_000_000  # UINT_MAX / TIMER_HZ


def _vs_count(key: str) -> Any:
    """vrrp_parser.c vrrp_vscript_rise_handler / _fall_handler: a bad count is 1."""

    def handler(p: Parser, line: Line) -> None:
        d = p.state.cur.get("vscript")
        if d is None:
            return
        v = p.int_arg(line, 1, 2**31 - 1)
        if v is None:
            word = line.words[1] if len(line.words) > 1 else ""
            p.error(
                f"({d['name']}): vrrp script {key} value '{word}' invalid, defaulting to 1",
                f"{key} takes a count from 1",
            )
            v = 1
        d[key] = v

    return handler


def _vs_weight(p: Parser, line: Line) -> None:
    d = p.state.cur.get("vscript")
    if d is None:
        return
    v = p.int_arg(line, -253, 253)
    if v is None:
        word = line.words[1] if len(line.words) > 1 else ""
        p.error(f"vrrp_script {d['name']} weight {word} must be in [-253, 253]")
    else:
        d["weight"] = v
    if len(line.words) > 2:
        if line.words[2] == "reverse":
            d["weight_reverse"] = True
        else:
            p.error(f"vrrp_script {d['name']} unknown weight option {line.words[2]}")


def _vs_user(p: Parser, line: Line) -> None:
    d = p.state.cur.get("vscript")
    if d is None:
        return
    v = p.arg(line)
    if v is None:
        return
    # vrrp_parser.c vrrp_vscript_user_handler: each line is judged where it
    # stands; the last one decides whether the script stays.
    from pykeep.config.script_user import user_known

    group = line.words[2] if len(line.words) > 2 else None
    if not user_known(v, group):
        sc = d.get("script")
        p.error(
            f"Unable to set uid/gid for script '{sc.path if sc is not None else ''}'",
            "name an existing user (and group) after 'user'",
        )
        d["_user_failed"] = True
        return
    d["_user_failed"] = False
    d["user"] = v
    d["_user_loc"] = line.loc
    d.pop("group", None)
    if group is not None:
        d["group"] = group


def _vs_init_fail(p: Parser, line: Line) -> None:
    d = p.state.cur.get("vscript")
    if d is not None:
        d["init_fail"] = True


def _vscript_end(p: Parser) -> None:
    d = p.state.cur.pop("vscript", None)
    if d is None:
        return
    if "script" not in d:
        p.report(
            p.close_loc() or d["loc"],  # vrrp_vscript_end_handler, at the '}'
            Severity.GENERAL_ERROR,
            f"No script set for vrrp_script {d['name']} - removing",
            f"add 'script \"/path/to/check\"' to vrrp_script {d['name']}",
        )
        return
    if d.pop("_user_failed", False):
        return  # said at its user line; keepalived removes the script silently here
    sc = d["script"]
    if "user" in d:
        d["script"] = type(sc)(sc.argv, d["user"], d.get("group"), sc.loc)
    from pykeep.config.script_user import vscript_user_kept

    if not vscript_user_kept(p, d["script"], d["name"], "user" in d, d.pop("_user_loc", None)):
        return
    p.state.vrrp_scripts.append(VrrpScript(**d))


# -- vrrp_track_file -------------------------------------------------------------


def _tfile(p: Parser, line: Line) -> None:
    name = p.arg(line)
    if name is None:
        p.skip_block()
        p.state.cur["tf"] = None
        return
    p.state.cur["tf"] = {"name": name, "loc": line.loc}


def _tf_file(p: Parser, line: Line) -> None:
    d = p.state.cur.get("tf")
    v = p.opt_arg(line, "track file file name missing")
    if d is None or v is None:
        return
    if "file" in d:
        # track_file.c track_file_file_handler: the first path stands.
        p.error(f"File already set for track file {d['name']} - ignoring {v}", "give file once")
        return
    d["file"] = v


def _tf_weight(p: Parser, line: Line) -> None:
    """track_file.c track_file_weight_handler, in its order.

    A bad weight is reported and taken as 1, and the word after it is still
    judged ("reverse", or an unknown option); a second weight line is refused
    once one other than 1 was set.
    """
    d = p.state.cur.get("tf")
    if len(line.words) < 2:
        name = d["name"] if d is not None else ""
        p.error(f"No weight specified for track file {name} - ignoring", "write: weight N")
        return
    if d is None:
        return
    if d.get("weight", 1) != 1:
        p.error(f"Weight already set for track file {d['name']} - ignoring {line.words[1]}")
        return
    v = p.to_int(line.words[1], -254, 254, line, "weight")
    if v is None:
        p.error(
            f"Weight ({line.words[1]}) for track_file {d['name']} must be between "
            "[-254..254] inclusive. Ignoring...",
            "give a weight in [-254, 254]",
        )
        v = 1
    d["weight"] = v
    if len(line.words) > 2:
        if line.words[2] == "reverse":
            d["weight_reverse"] = True
        else:
            p.error(f"track_file {d['name']} unknown weight option {line.words[2]}")


def _tf_init(p: Parser, line: Line) -> None:
    """track_file.c track_file_init_handler: every word is a value, "overwrite", or reported."""
    d = p.state.cur.get("tf")
    if d is None:
        return
    d["init_file"] = 0
    for raw in line.words[1:]:
        word = raw.lstrip(" \t\n\v\f\r")
        if word[:1].isdigit() or word[:1] == "-":
            v = p.to_int(raw, -(2**31), 2**31 - 1, line, "init_file")
            if v is None:
                p.error(
                    f"Track file {d['name']} init value {word} is invalid",
                    "give init_file a value in [-254, 254]",
                )
                v = 0
            elif not -254 <= v <= 254:
                p.error(
                    f"Track file {d['name']} init value {v} is outside sensible range [-254, 254]",
                    "give init_file a value in [-254, 254]",
                )
            d["init_file"] = v
        elif word != "overwrite":
            p.error(
                f"Unknown track file init option {word}", "write: init_file [VALUE] [overwrite]"
            )


def _tfile_end(p: Parser) -> None:
    d = p.state.cur.pop("tf", None)
    if d is None:
        return
    if "file" not in d:
        p.report(
            p.close_loc() or d["loc"],  # at the '}', as keepalived
            Severity.GENERAL_ERROR,
            f"No file set for track_file {d['name']} - ignoring",
            f"add 'file /path' to track_file {d['name']}",
        )
        return
    p.state.vrrp_track_files.append(VrrpTrackFile(**d))


# -- vrrp_track_process ----------------------------------------------------------
# Value ranges and their messages are judged in front of these handlers
# (values.track_process); these only keep what passed.


def _tprocess(p: Parser, line: Line) -> None:
    name = p.arg(line)
    p.state.cur["tp"] = {"name": name, "loc": line.loc}


def _tp_cur(p: Parser) -> dict[str, Any]:
    d: dict[str, Any] = p.state.cur.get("tp") or {}
    return d


def _tp_process(p: Parser, line: Line) -> None:
    """vrrp_parser.c vrrp_tprocess_process_handler: PATH, then exact parameters."""
    d = _tp_cur(p)
    if len(line.words) < 2:
        p.arg(line)
        return
    if "process" in d:
        p.error(
            f"Process already set for track process {d['name']} - ignoring {line.words[1]}",
            "give one 'process' line",
        )
        return
    d["process"] = line.words[1]
    if len(line.words) > 2:
        d["params"] = tuple(line.words[2:])
        d.setdefault("param_match", "exact")
        d["full_command"] = True


def _tp_param_match(p: Parser, line: Line) -> None:
    d = _tp_cur(p)
    d["param_match"] = line.words[1] if len(line.words) > 1 else "exact"
    d["full_command"] = True


def _tp_weight(p: Parser, line: Line) -> None:
    d = _tp_cur(p)
    if d.get("weight"):
        p.error(
            f"Weight already set for track process {d['name']} - ignoring {line.words[1]}",
            "give one 'weight' line",
        )
        return
    v = p.int_arg(line, -254, 254)
    if v is None:
        return
    if len(line.words) > 2:
        if line.words[2] == "reverse":
            d["weight_reverse"] = True
        else:
            p.error(
                f"vrrp_track_process {d['name']} unknown weight option {line.words[2]}",
                "write weight N [reverse]",
            )
    d["weight"] = v


def _tp_quorum(p: Parser, line: Line) -> None:
    d = _tp_cur(p)
    v = p.int_arg(line, 1, 65535)
    if v is None:
        return
    if v > d.get("quorum_max", 2**32 - 1):
        p.error("Quorum is greater than quorum_max - ignoring", "raise quorum_max first")
        return
    d["quorum"] = v


def _tp_quorum_max(p: Parser, line: Line) -> None:
    d = _tp_cur(p)
    if len(line.words) < 2:
        p.arg(line)
        return
    v = p.to_int(line.words[1], 0, 65535, line, "quorum_max")
    if v is None:
        p.error(
            f"quorum_max ({line.words[1]}) for vrrp_track_process {d['name']} must be "
            "between [0..65535] inclusive. Ignoring...",
            "quorum_max takes [0..65535]",
        )
        return
    quorum = d.get("quorum", 1)
    # quorum_max 0 is allowed when quorum was not raised (vrrp_tprocess_quorum_max_handler)
    if (v or quorum > 1) and v < quorum:
        p.error("quorum_max is less than quorum - ignoring", "give quorum_max >= quorum")
        return
    d["quorum_max"] = v
    if v == 0:
        d["quorum"] = 0
    elif not quorum:
        d["quorum"] = 1


def _tp_delay(*fields_: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        d = _tp_cur(p)
        v = p.decimal_arg(line, 0.000001, 3600)
        if v is not None:
            for f in fields_:
                d[f] = v

    return handler


def _tp_full_command(p: Parser, line: Line) -> None:
    _tp_cur(p)["full_command"] = True


def _tprocess_end(p: Parser) -> None:
    d = p.state.cur.pop("tp", None)
    if not d or "process" not in d or not d.get("name"):
        return  # "process name not specified" is reported by values.track_process
    p.state.vrrp_track_processes.append(VrrpTrackProcess(**d))


def install(root: Table) -> None:
    """The VRRP root keywords (vrrp_parser.c init_vrrp_keywords)."""
    # What keepalived reads as a '{ values }' block is read as one here too
    # (skip_values), even where pykeep does not act on it: read as keywords,
    # its '}' would close the block around it (a vrrp_instance and its VIPs).
    # track_group, garp_group, linkbeat_interfaces, interface_up_down_delays:
    # warned, but judged as keepalived judges them (config/unacted.py).
    unacted.install_vrrp(root)
    kw(root, "static_ipaddress", _static_addresses)
    kw(root, "static_routes", _static_routes)
    kw(root, "static_rules", _static_rules)

    sg = block(root, "vrrp_sync_group", _sync_group, _sg_end)
    kw(sg, "group", _sg_group)
    kw(sg, "track_interface", _track("track_interface", "sg"))
    kw(sg, "track_script", _track("track_script", "sg"))
    kw(sg, "track_file", _track("track_file", "sg"))
    kw(sg, "track_process", _track("track_process", "sg"))
    kw(sg, "track_bfd", _track("track_bfd", "sg"))
    for n in ("notify_backup", "notify_master", "notify_fault", "notify_stop"):
        kw(sg, n, _notify(n[7:], "sg"))
    kw(sg, "notify", _notify("generic", "sg"))
    kw(sg, "smtp_alert", _smtp("sg"))
    kw(sg, "global_tracking", _sg_global_tracking)
    kw(sg, "sync_group_tracking_weight", _sg_flag("sync_group_tracking_weight"))
    kw(sg, "notify_priority_changes", _sg_bool("notify_priority_changes"))

    vi = block(root, "vrrp_instance", _instance, _instance_end)
    for n in _INSTANCE_ACCEPTED:
        kw(vi, n, generic)
    kw(vi, "use_vmac", _use_vmac)
    kw(vi, "use_ipvlan", _use_ipvlan)
    kw(vi, "vmac_xmit_base", _vmac_xmit_base)
    kw(vi, "notify_priority_changes", _set("notify_priority_changes", "flag"))
    kw(vi, "promote_secondaries", _promote_secondaries)
    kw(vi, "track_process", _track("track_process", "vrrp"))
    kw(vi, "track_bfd", _track("track_bfd", "vrrp"))
    kw(vi, "unicast_peer", _unicast_peers)
    kw(vi, "check_unicast_src", _set("check_unicast_src", "flag"))
    kw(vi, "unicast_fault_no_peer", _unicast_fault_no_peer)
    kw(vi, "track_src_ip", _track_src_ip)
    kw(vi, "garp_extra_if", _garp_extra_if)
    kw(vi, "vmac_garp_intvl", _garp_extra_if)
    kw(vi, "down_timer_adverts", _down_timer_adverts)
    kw(vi, "lower_prio_no_advert", _set("lower_prio_no_advert", "flag"))
    kw(vi, "higher_prio_send_advert", _set("higher_prio_send_advert", "flag"))
    kw(vi, "state", _state)
    kw(vi, "interface", _interface)
    kw(vi, "dont_track_primary", _dont_track)
    kw(vi, "track_interface", _track("track_interface", "vrrp"))
    kw(vi, "track_script", _track("track_script", "vrrp"))
    kw(vi, "track_file", _track("track_file", "vrrp"))
    kw(vi, "mcast_src_ip", _src_ip("mcast_src_ip"))
    kw(vi, "mcast_dst_ip", _mcast_dst)
    kw(vi, "unicast_src_ip", _src_ip("unicast_src_ip"))
    kw(vi, "virtual_router_id", _vrid)
    kw(vi, "unicast_ttl", _unicast_ttl)
    kw(vi, "version", _version)
    kw(vi, "priority", _priority)
    kw(vi, "advert_int", _advert)
    kw(vi, "virtual_ipaddress", _vips("virtual_ipaddress"))
    kw(vi, "virtual_ipaddress_excluded", _vips("virtual_ipaddress_excluded"))
    kw(vi, "virtual_routes", _vroutes)
    kw(vi, "virtual_rules", _vrules)
    kw(vi, "accept", _accept(True))
    kw(vi, "no_accept", _accept(False))
    kw(vi, "skip_check_adv_addr", _set("skip_check_adv_addr", "flag"))
    kw(vi, "strict_mode", _set("strict_mode", "flag"))
    kw(vi, "preempt", _preempt)
    kw(vi, "nopreempt", _nopreempt)
    kw(vi, "preempt_delay", _preempt_delay)
    for n in ("notify_backup", "notify_master", "notify_fault", "notify_stop", "notify_deleted"):
        kw(vi, n, _notify(n[7:], "vrrp"))
    kw(vi, "notify", _notify("generic", "vrrp"))
    kw(vi, "notify_master_rx_lower_pri", _notify("master_rx_lower_pri", "vrrp"))
    # garp_interval, gna_interval (garp_group's, and global_defs' vrrp_*) and
    # notify_fifo (global_defs') are unknown keywords in a vrrp_instance, as
    # for keepalived 2.2.7 (vrrp_parser.c init_vrrp_keywords).
    kw(vi, "smtp_alert", _smtp("vrrp"))
    kw(vi, "lvs_sync_daemon_interface", _lvs_syncd_if)
    kw(vi, "garp_master_delay", _seconds("garp_master_delay", 4294, _GARP_DELAY))
    kw(vi, "garp_master_refresh", _seconds("garp_master_refresh", 2**32 - 1, _GARP_REFRESH))
    kw(vi, "garp_master_repeat", _garp_repeat("garp_master_repeat"))
    kw(vi, "garp_master_refresh_repeat", _garp_repeat("garp_master_refresh_repeat"))
    kw(vi, "garp_lower_prio_delay", _seconds("garp_lower_prio_delay", 4294, _GARP_LOWER))
    kw(vi, "garp_lower_prio_repeat", _count("garp_lower_prio_repeat"))
    auth = block(vi, "authentication", None)
    kw(auth, "auth_type", _auth_type)
    kw(auth, "auth_pass", _auth_pass)

    vs = block(root, "vrrp_script", _vscript, _vscript_end)
    kw(vs, "script", _vs_script)
    kw(vs, "interval", _vs_seconds("interval"))
    kw(vs, "timeout", _vs_seconds("timeout"))
    kw(vs, "weight", _vs_weight)
    kw(vs, "rise", _vs_count("rise"))
    kw(vs, "fall", _vs_count("fall"))
    kw(vs, "user", _vs_user)
    kw(vs, "init_fail", _vs_init_fail)

    tp = block(root, "vrrp_track_process", _tprocess, _tprocess_end)
    kw(tp, "process", _tp_process)
    kw(tp, "param_match", _tp_param_match)
    kw(tp, "weight", _tp_weight)
    kw(tp, "quorum", _tp_quorum)
    kw(tp, "quorum_max", _tp_quorum_max)
    kw(tp, "delay", _tp_delay("terminate_delay", "fork_delay"))
    kw(tp, "terminate_delay", _tp_delay("terminate_delay"))
    kw(tp, "fork_delay", _tp_delay("fork_delay"))
    kw(tp, "full_command", _tp_full_command)
    values.track_process(root["vrrp_track_process"])

    # bfd_instance belongs to keepalived's BFD process; the VRRP process
    # reads it too, for track_bfd (bfd/bfd_parser.c init_bfd_keywords).
    bfd_parser.install(root)

    for root_name in ("track_file", "vrrp_track_file"):
        tf = block(root, root_name, _tfile, _tfile_end)
        kw(tf, "file", _tf_file)
        kw(tf, "weight", _tf_weight)
        kw(tf, "init_file", _tf_init)

    # Values keepalived judges, whether or not pykeep acts on the keyword.
    values.guard("vrrp_instance", vi)
    values.guard("vrrp_sync_group", sg)
    for name in _UNICAST_KEYWORDS:
        vi[name].handler = _unicast_marked(vi[name].handler)


# The keywords that make an instance "unicast configured", whatever their value
# (vrrp_parser.c: VRRP_FLAG_UNICAST_CONFIGURED, set before the value is read).
_UNICAST_KEYWORDS = (
    "unicast_peer",
    "unicast_src_ip",
    "check_unicast_src",
    "unicast_fault_no_peer",
    "old_unicast_checksum",
)


def _unicast_marked(handler: Any) -> Any:
    def marked(p: Parser, line: Line) -> None:
        _vi(p)["_unicast"] = True
        handler(p, line)

    return marked


def loc_of(items: list[tuple[str, Loc]], name: str) -> Loc | None:
    return next((lo for n, lo in items if n == name), None)
