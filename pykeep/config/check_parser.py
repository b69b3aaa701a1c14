"""LVS keywords: virtual_server_group, virtual_server, real_server and every checker.

Mirrors keepalived/check/check_parser.c and the ``install_*_check_keyword``
functions of check_{tcp,http,misc,smtp,dns,udp,ping,file}.c plus
check_api.c ``install_checker_common_keywords``.  A block keyword inside a
real_server that is not a built-in checker is offered to the checker plugins
(``healthcheck.plugin.registered_checkers``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import replace

from pykeep.config import extensions, unacted, values
from pykeep.config.diagnostics import Severity
from pykeep.config.lexer import Line
from pykeep.config.model import (
    CheckerCommon,
    DnsCheck,
    FileCheck,
    HttpCheck,
    HttpUrl,
    LbKind,
    Loc,
    MiscCheck,
    PingCheck,
    PluginCheck,
    Protocol,
    RealServer,
    SmtpCheck,
    StatusRange,
    TcpCheck,
    Tunnel,
    UdpCheck,
    VirtualServer,
    VirtualServerGroup,
    VsgEntry,
    maker,
)
from pykeep.config.parser import (
    TIMER_MAX,
    UINT_TIMER_MAX,
    Keyword,
    Parser,
    Table,
    block,
    frozen,
    generic,
    kw,
    parse_ip,
)

TYPE_CHECKING = False  # typing stays unimported at run time: start-up counts (pykeep -t)
if TYPE_CHECKING:
    from typing import Any

_MAX_TIMER = TIMER_MAX
_CHECKERS = (
    "MISC_CHECK",
    "SMTP_CHECK",
    "TCP_CHECK",
    "PING_CHECK",
    "UDP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "DNS_CHECK",
    "FILE_CHECK",
    "BFD_CHECK",
)


def _port(p: Parser, s: str, line: Line) -> int | None:
    return p.to_int(s, 0, 65535, line, "port")


# -- virtual_server_group ---------------------------------------------------------


def _vsg(p: Parser, line: Line) -> None:
    name = p.arg(line)
    entries: list[VsgEntry] = []
    for ln in p.value_block(line, skip_name=True):
        e = _vsg_entry(p, ln)
        if e is not None:
            entries.append(e)
    if name is None:
        return
    v4 = any(e.address is not None and e.address.version == 4 for e in entries)
    v6 = any(e.address is not None and e.address.version == 6 for e in entries)
    if entries and v4 and v6 and any(e.fwmark is not None for e in entries):
        p.report(
            line.loc,
            Severity.GENERAL_ERROR,
            f"virtual server group {name} cannot have IPv4, IPv6 and fwmark without family"
            " - removing",
            "split the group by address family",
        )
        return
    if not entries:
        p.report(
            line.loc,
            Severity.GENERAL_ERROR,
            f"virtual server group {name} has no entries - removing",
            "list 'IP PORT', 'IP-LAST PORT' or 'fwmark N' lines in the group",
        )
        return
    p.state.virtual_server_groups.append(VirtualServerGroup(name, tuple(entries), line.loc))


def _vsg_entry(p: Parser, ln: Line) -> VsgEntry | None:
    w = ln.words
    if w[0] == "fwmark":
        p.arg(ln)
        fw = p.to_int(w[1], 1, 2**32 - 1, ln.loc, "fwmark")
        return VsgEntry(fwmark=fw, loc=ln.loc) if fw is not None else None
    text = w[0]
    last_text = None
    if "-" in text:
        text, last_text = text.split("-", 1)
    try:
        first = ipaddress.ip_address(text)
    except ValueError:
        p.report(
            ln.loc,
            Severity.GENERAL_ERROR,
            f"Invalid virtual server group IP address {w[0]} - skipping",
            "write 'IP PORT' or 'IP-LASTOCTET PORT', e.g. 10.0.0.1-10 80",
        )
        return None
    last = first
    if last_text:
        try:
            if first.version == 4:
                n = int(last_text)
                if not 0 <= n <= 255 or n < int(first) & 0xFF:
                    raise ValueError
                last = ipaddress.ip_address((int(first) & ~0xFF) | n)
            else:
                n = int(last_text, 16)
                if not 0 <= n <= 0xFFFF or n < int(first) & 0xFFFF:
                    raise ValueError
                last = ipaddress.ip_address((int(first) & ~0xFFFF) | n)
        except ValueError:
            p.report(
                ln.loc,
                Severity.GENERAL_ERROR,
                f"Invalid virtual server group IP range {w[0]} - skipping",
            )
            return None
    port = None
    if len(w) > 1:
        port = _port(p, w[1], ln)
    return VsgEntry(first, last, port, loc=ln.loc)


# -- virtual_server --------------------------------------------------------------


def _vs(p: Parser, line: Line) -> None:
    w = line.words
    d: dict[str, Any] = {"loc": line.loc, "real_servers": []}
    p.state.cur["vs"] = d
    if len(w) < 2:
        p.arg(line)
        p.skip_block()
        p.state.cur["vs"] = None
        return
    if w[1] == "group":
        if len(w) < 3:
            p.arg(line, 2)
            p.skip_block()
            p.state.cur["vs"] = None
            return
        d["group"] = w[2]
    elif w[1] == "fwmark":
        fw = p.to_int(w[2], 1, 2**32 - 1, line, "fwmark") if len(w) > 2 else None
        if fw is None:
            p.error("virtual server fwmark needs a value", "write 'virtual_server fwmark N'")
            p.skip_block()
            p.state.cur["vs"] = None
            return
        d["fwmark"] = fw
    else:
        a = p.ip(w[1], line.loc, "virtual server IP address")
        port = _port(p, w[2], line) if len(w) > 2 else 0
        if a is None or port is None:
            p.skip_block()
            p.state.cur["vs"] = None
            return
        d["address"] = a
        d["port"] = port
        d["family"] = a.version


def _d(p: Parser) -> dict[str, Any]:
    return p.state.cur.get("vs") or {}


def _rs_or_vs(p: Parser) -> dict[str, Any]:
    rs = p.state.cur.get("rs")
    return rs if rs is not None else _d(p)


def _vs_timer(key: str, lo: float = 0.000001, hi: float = _MAX_TIMER) -> Any:
    def handler(p: Parser, line: Line) -> None:
        v = p.decimal_arg(line, lo, hi)
        if v is not None:
            _rs_or_vs(p)[key] = v

    return handler


def _vs_int(key: str, lo: int, hi: int) -> Any:
    def handler(p: Parser, line: Line) -> None:
        v = p.int_arg(line, lo, hi)
        if v is not None:
            _rs_or_vs(p)[key] = v

    return handler


def _vs_retry(p: Parser, line: Line) -> None:
    """check_parser.c vs_retry_handler / rs_retry_handler: 1..UINT32_MAX."""
    v = p.int_arg(line, 1, 2**32 - 1)
    if v is None:
        p.error(f"retry value invalid - {line.words[1]}", "retry takes 1 or more")
        return
    _rs_or_vs(p)["retry"] = v


def _quorum(p: Parser, line: Line) -> None:
    """check_parser.c quorum_handler: a bad quorum is reported, then set to 1."""
    v = p.int_arg(line, 1, 2**32 - 1)
    if v is None and len(line.words) > 1:
        p.error(
            f"Quorum {line.words[1]} must be in [1, 4294967295]. Setting to 1.",
            "quorum counts real servers' weights; 1 is the smallest",
        )
        v = 1
    if v is not None:
        _rs_or_vs(p)["quorum"] = v


_TRUE_FALSE = frozenset({"true", "false", "on", "off", "yes", "no"})


def _strict_flag(p: Parser, line: Line, message: str) -> bool | None:
    """A flag whose handler fails the config test on a value other than true/false.

    keepalived's checker flags (check_api.c, check_parser.c ``*_handler`` with
    ``check_true_false``) report "Invalid … parameter" and leave the setting as
    it was; a few virtual_server flags ignore the value instead (``p.flag``).
    """
    if len(line.words) > 1 and line.words[1].lower() not in _TRUE_FALSE:
        p.error(message.format(v=line.words[1]), "use true/false (or the bare keyword)")
        return None
    return p.flag(line)


# The real_server / virtual_server flags keepalived checks, and its sentence for each.
_RS_FLAG_ERRORS = {
    "inhibit_on_failure": "Invalid inhibit_on_failure parameter {v}",
    "smtp_alert": "Invalid real_server smtp_alert parameter {v}",
    "alpha": "Invalid alpha parameter {v}",
}
_VS_FLAG_ERRORS = {"smtp_alert": "Invalid virtual_server smtp_alert parameter {v}"}


def _vs_flag(key: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        in_rs = p.state.cur.get("rs") is not None
        message = (_RS_FLAG_ERRORS if in_rs else _VS_FLAG_ERRORS).get(key)
        v = _strict_flag(p, line, message) if message else p.flag(line)
        if v is not None:
            _rs_or_vs(p)[key] = v

    return handler


# check_parser.c lvs_schedulers
LVS_SCHEDULERS = (
    "rr",
    "wrr",
    "lc",
    "wlc",
    "lblc",
    "sh",
    "mh",
    "dh",
    "fo",
    "ovf",
    "lblcr",
    "sed",
    "nq",
    "twos",
)


def _lb_algo(p: Parser, line: Line) -> None:
    v = p.arg(line)
    if v is None:
        return
    if v not in LVS_SCHEDULERS:
        p.error(
            f"Invalid lvs_scheduler '{v}' - ignoring",
            "use an IPVS scheduler: " + ", ".join(LVS_SCHEDULERS),
        )
        return
    _d(p)["lb_algo"] = v


def _lb_flag(p: Parser, line: Line) -> None:
    d = _d(p)
    flag = line.words[0]
    if flag == "ops":
        d["ops"] = True
        return
    # check_parser.c lbflags_handler: the scheduler set so far decides; keepalived's
    # sentence says "sh" for the mh flags too.
    need = None
    if flag in ("hashed", "sh-port", "sh-fallback"):
        need = "sh"
    elif flag in ("mh-port", "mh-fallback"):
        need = "mh"
    if need is not None and d.get("lb_algo") != need:
        p.error(
            f"{flag} only applies to sh scheduler - ignoring",
            f"set 'lb_algo {need}' before {flag}, or remove it",
        )
        return
    d.setdefault("sched_flags", []).append(flag)


def _forwarding(p: Parser, line: Line, who: str = "virtual") -> tuple[LbKind | None, Tunnel | None]:
    v = p.arg(line)
    if v is None:
        return None, None
    if v in ("NAT", "DR", "TUN"):
        tunnel = _tunnel_options(p, line, who)
        return LbKind(v), tunnel if v == "TUN" else None
    if v == "FNAT":
        hint = (
            "lb_kind FNAT (FULLNAT) is realised by pykeep for a whole virtual_server "
            "(with laddr_group_name), not per real_server; use lb_kind NAT, DR or TUN here"
        )
    else:
        hint = "write lb_kind NAT, DR or TUN"
    p.error(f"PARSER : unknown [{v}] routing method for virtual server.", hint)
    return None, None


def _tunnel_options(p: Parser, line: Line, who: str) -> Tunnel | None:
    """check_parser.c svr_forwarding_handler: the words after the method, for every method.

    ``type ipip|gue|gre``, ``port N`` (gue only, and required there),
    ``nocsum|csum|remcsum``; the first bad word ends the reading, reported,
    and the method stays with keepalived's default tunnel.
    """
    w = line.words
    opts: dict[str, Any] = {}
    i = 2
    while i < len(w):
        o = w[i]
        if o == "type":
            if i + 1 >= len(w):
                p.error(f"Missing tunnel type for {who} server.", "write: type ipip|gue|gre")
                return None
            if w[i + 1] not in ("ipip", "gue", "gre"):
                p.error(f"Unknown tunnel type {w[i + 1]} for {who} server.", "ipip, gue or gre")
                return None
            opts["tun_type"] = w[i + 1]
            i += 2
        elif o == "port":
            if i + 1 >= len(w):
                p.error(f"Missing port for {who} server gue tunnel.", "write: port N")
                return None
            port = p.to_int(w[i + 1], 1, 65535, line, "port")
            if port is None:
                p.error(f"Invalid gue tunnel port {w[i + 1]} for {who} server.")
                return None
            opts["port"] = port
            i += 2
        elif o in ("nocsum", "csum", "remcsum"):
            for flag in ("nocsum", "csum", "remcsum"):
                opts[flag] = flag == o
            i += 1
        else:
            p.error(
                f"Invalid tunnel option {o} for {who} server.",
                "after TUN: type ipip|gue|gre, port N, nocsum|csum|remcsum",
            )
            return None
    kind = opts.get("tun_type", "ipip")
    if (kind == "gue") != ("port" in opts):
        p.error("gue tunnels require port, otherwise cannot have port.")
        return None
    if kind == "ipip" and (opts.get("csum") or opts.get("remcsum")):
        p.error("ipip tunnels do not support checksum option.")
        return None
    if kind == "gre" and opts.get("remcsum"):
        p.error("gre tunnels do not support remote checksum option.")
        return None
    return Tunnel(**opts)


def _vs_forwarding(p: Parser, line: Line) -> None:
    kind, tunnel = _forwarding(p, line)
    if kind is not None:
        d = _d(p)
        d["lb_kind"] = kind
        if tunnel is not None:
            d["tunnel"] = tunnel


def _rs_forwarding(p: Parser, line: Line) -> None:
    kind, tunnel = _forwarding(p, line, "real")
    rs = p.state.cur.get("rs")
    if kind is not None and rs is not None:
        rs["lb_kind"] = kind
        if tunnel is not None:
            rs["tunnel"] = tunnel


def _ss_forwarding(p: Parser, line: Line) -> None:
    kind, tunnel = _forwarding(p, line, "sorry")
    if kind is not None:
        _d(p)["_ss_kind"] = (kind, tunnel)


def _pto(p: Parser, line: Line) -> None:
    if len(line.words) < 2:
        _d(p)["persistence_timeout"] = 360
        return
    v = p.int_arg(line, 1, 2678400)
    if v is not None:
        _d(p)["persistence_timeout"] = v


def _pgr(p: Parser, line: Line) -> None:
    """check_parser.c pgr_handler: a prefix length for IPv6 services, else an IPv4
    netmask as getaddrinfo reads a numeric host (inet_aton: ``65535`` is 0.0.255.255)."""
    v = p.arg(line)
    if v is None:
        return
    d = _d(p)
    family = d.get("family") or (4 if "." in v else 6)
    if family == 6:
        n = p.to_int(v, 1, 128, line, "persistence_granularity")
        if n is None:
            p.error(
                f"Invalid IPv6 persistence_granularity specified - {v}",
                "write an IPv6 prefix length (1-128)",
            )
            return
        d["persistence_granularity"] = n
    else:
        from _socket import inet_aton  # the C function: no socket module

        try:
            mask = ipaddress.IPv4Address(inet_aton(v))
        except (OSError, ValueError):
            p.error(
                f"Invalid IPv4 persistence_granularity specified - {v}",
                "write a netmask, e.g. 255.255.255.0",
            )
            return
        d["persistence_granularity"] = mask
    d.setdefault("family", family)


def _proto(p: Parser, line: Line) -> None:
    v = p.arg(line)
    if v is None:
        return
    u = v.upper()
    if u in ("TCP", "UDP", "SCTP"):
        _d(p)["protocol"] = Protocol(u)
        _d(p)["_proto_set"] = line.loc
    else:
        p.error(f"Unknown protocol {v} - ignoring", "write protocol TCP, UDP or SCTP")


def _ip_family(p: Parser, line: Line) -> None:
    v = p.arg(line)
    if v is None:
        return
    if v not in ("inet", "inet6"):
        p.error(f"unknown address family {v}", "write ip_family inet or inet6")
        return
    d = _d(p)
    af = 4 if v == "inet" else 6
    if d.get("family", af) != af:
        # check_parser.c ip_family_handler: an IP virtual server has its family.
        p.error(
            f"Virtual server specified family {v} conflicts with server family",
            "remove ip_family, or match the virtual server's address",
        )
        return
    d["family"] = af


def _virtualhost(p: Parser, line: Line) -> None:
    who = "real server" if p.state.cur.get("rs") is not None else "virtual server"
    v = p.opt_arg(line, f"{who} virtualhost missing")
    if v is not None:
        _rs_or_vs(p)["virtualhost"] = v


def _script_once(p: Parser, line: Line, key: str, block: dict[str, Any] | None, where: str) -> None:
    """``key``'s script into ``block``, or keepalived's refusal of a second one.

    check_parser.c quorum_up_handler / notify_up_handler: the duplicate is
    refused before its script is read, so it never counts as a script to run.
    """
    if block is not None and key in block:
        word = p.arg(line)  # keepalived's message reads word 1: exit 2 without it
        p.error(f"{key} script already specified - ignoring {word}", f"give {key} once per {where}")
        return
    sc = p.script(line, key)
    if sc is not None and block is not None:
        block[key] = sc


def _quorum_script(key: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        _script_once(p, line, key, _d(p), "virtual_server")

    return handler


def _ssvr(p: Parser, line: Line) -> None:
    w = line.words
    if len(w) < 2:
        p.arg(line)
        return
    a = p.ip(w[1], line.loc, "sorry server address")
    port = _port(p, w[2], line) if len(w) > 2 else None
    if a is not None:
        _d(p)["_sorry"] = RealServer(a, port, loc=line.loc)


def _ss_inhibit(p: Parser, line: Line) -> None:
    """check_parser.c ssvri_handler: the words after it are not read."""
    d = _d(p)
    if d.get("_sorry") is None:
        p.error(
            "Ignoring sorry_server inhibit used before or without sorry_server",
            "put sorry_server_inhibit after the sorry_server line",
        )
        return
    d["sorry_server_inhibit"] = True


def _alpha(p: Parser, line: Line) -> None:
    _vs_flag("alpha")(p, line)


def _omega(p: Parser, line: Line) -> None:
    _d(p)["omega"] = p.flag(line)


_VS_FIELDS = set(VirtualServer.__dataclass_fields__)


def _vs_end(p: Parser) -> None:
    d = p.state.cur.pop("vs", None)
    if d is None:
        return
    sorry = d.pop("_sorry", None)
    ss_kind = d.pop("_ss_kind", None)
    if sorry is not None:
        if ss_kind is not None:
            sorry = RealServer(
                sorry.address, sorry.port, lb_kind=ss_kind[0], tunnel=ss_kind[1], loc=sorry.loc
            )
        d["sorry_server"] = sorry
    fields = frozen(d, _VS_FIELDS)
    p.state.virtual_servers.append((VirtualServer(**fields), d))


# -- real_server -----------------------------------------------------------------


def _rs(p: Parser, line: Line) -> None:
    w = line.words
    if len(w) < 2:
        p.arg(line)
        p.skip_block()
        p.state.cur["rs"] = None
        return
    loc = _new_loc(line.file, line.lineno)  # line.loc, without the property's cost
    port = None
    if len(w) > 2:
        # check_data.c alloc_rs: a port of only '0's is no port; any other is
        # read first by inet_stosockaddr, in [1, 65535], and a bad one drops
        # the real server and its block before the address is looked at.
        port = 0 if not w[2].strip("0") else p.to_int(w[2], 1, 65535, line, "port")
        if port is None:
            p.error(
                f"Invalid real server ip address/port {w[1]}/{w[2]} - skipping",
                "a real server's port is in [1, 65535]",
            )
            p.skip_block()
            p.state.cur["rs"] = None
            return
    a = p.ip(w[1], loc, "real server IP address")
    if a is None:
        p.skip_block()
        p.state.cur["rs"] = None
        return
    p.state.cur["rs"] = {"address": a, "port": port, "loc": loc, "checkers": []}


def _vs_weight(p: Parser, line: Line) -> None:
    """check_parser.c vs_weight_handler: judged (1..INT32_MAX), then not acted on."""
    p.accept(line)
    if p.int_arg(line, 1, 2**31 - 1) is None:
        p.error(
            f"Virtual server weight {line.words[1]} is outside range 1-{2**31 - 1}",
            "weight takes an integer from 1",
        )


def _rs_weight(p: Parser, line: Line) -> None:
    v = p.int_arg(line, 0, 2**31 - 1)
    rs = p.state.cur.get("rs")
    if v is not None and rs is not None:
        rs["weight"] = v


def _rs_int(key: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        v = p.int_arg(line, 0, 2**32 - 1)
        rs = p.state.cur.get("rs")
        if v is not None and rs is not None:
            rs[key] = v

    return handler


def _rs_notify(key: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        _script_once(p, line, key, p.state.cur.get("rs"), "real_server")

    return handler


_RS_FIELDS = set(RealServer.__dataclass_fields__)
_new_rs = maker(RealServer)


def _rs_end(p: Parser) -> None:
    cur = p.state.cur
    rs = cur.pop("rs", None)
    vs = cur.get("vs")
    if rs is None or vs is None:
        return
    # What frozen() would do, cheaper for the common case: "checkers" is
    # the only list the real_server handlers store.
    rs["checkers"] = tuple(rs["checkers"])
    fields = rs if rs.keys() <= _RS_FIELDS else frozen(rs, _RS_FIELDS)
    vs["real_servers"].append(_new_rs(**fields))


# -- checkers --------------------------------------------------------------------


def _ck(p: Parser) -> dict[str, Any]:
    c = p.state.cur.get("ck")
    return c if c is not None else {}


def _common(p: Parser) -> dict[str, Any]:
    c = p.state.cur.get("ck")
    if c is None:
        return {}
    host: dict[str, Any] | None = c.get("_host")
    common: dict[str, Any] = c["_common"]
    return host if host is not None else common


def _in_smtp_top(p: Parser) -> bool:
    """In SMTP_CHECK's own options, outside a ``host`` block."""
    c = p.state.cur.get("ck")
    return c is not None and c.get("keyword") == "SMTP_CHECK" and c.get("_host") is None


def _checker(keyword: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        loc = _new_loc(line.file, line.lineno)  # line.loc, without the property's cost
        p.state.cur["ck"] = {"keyword": keyword, "_common": {"loc": loc}, "_loc": loc}

    return handler


def _co_ip(key: str) -> Any:
    """check_api.c co_ip_handler / co_srcip_handler: connect_ip and bindto.

    The address is read as utils.c inet_stosockaddr reads it (the text before
    a '-' or '/', its family chosen by a ':'), and must be of the other's family
    (for bindto, connect_ip's or else the real server's).
    A refused address unsets the one given before (its family is AF_UNSPEC).
    """
    other = "bindto" if key == "connect_ip" else "connect_ip"

    def handler(p: Parser, line: Line) -> None:
        v = p.arg(line)
        if v is None:
            return
        c = _common(p)
        text = v.split("-", 1)[0] if "-" in v else v.split("/", 1)[0]
        try:
            a: Any = parse_ip(text)
        except ValueError:
            a = None
        if a is None or (a.version == 6) != (":" in v):
            p.error(f"Invalid {key} address {v} - ignoring", "write an IPv4 or IPv6 address")
            c.pop(key, None)
            return
        o = c.get(other)
        if o is None and key == "bindto" and not _in_smtp_top(p):
            # The checker's destination starts as its real server's address
            # (SMTP_CHECK's own options start unset: check_smtp.c smtp_check_handler).
            o = (p.state.cur.get("rs") or {}).get("address")
        if o is not None and o.version != a.version:
            p.error(
                f"{key} address {v} does not match address family of {other} - skipping",
                f"give {key} and {other} addresses of one family",
            )
            c.pop(key, None)
            return
        c[key] = a

    return handler


def _co_bind_if(p: Parser, line: Line) -> None:
    """check_api.c co_srcif_handler: an interface name fits IFNAMSIZ."""
    v = p.arg(line)
    if v is None:
        return
    if len(v.encode("utf-8", "surrogateescape")) > 15:
        p.error(f"Interface name {v} is too long - ignoring", "interface names have 15 bytes")
        return
    _common(p)["bind_if"] = v


def _co_port(key: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        v = p.arg(line)
        if v is not None:
            # check_api.c co_port_handler / bind_port_handler: 1..65535.
            n = p.to_int(v, 1, 65535, line, key)
            if n is None:
                p.error(f"Invalid checker {key} '{v}'", f"{key} takes 1..65535")
                return
            _common(p)[key] = n

    return handler


def _co_timer(key: str, lo: float = 0.000001, hi: float = _MAX_TIMER) -> Any:
    def handler(p: Parser, line: Line) -> None:
        v = p.decimal_arg(line, lo, hi)
        if v is not None:
            _common(p)[key] = v

    return handler


def _co_int(key: str, lo: int, hi: int) -> Any:
    def handler(p: Parser, line: Line) -> None:
        v = p.int_arg(line, lo, hi)
        if v is not None:
            _common(p)[key] = v

    return handler


def _co_flag(key: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        v = _strict_flag(p, line, f"Invalid {key} parameter {{v}}")
        if v is not None:
            _common(p)[key] = v

    return handler


def _nb_get_retry(p: Parser, line: Line) -> None:
    p.deprecated(
        line, "nb_get_retry is deprecated - please use 'retry'", "rename nb_get_retry to retry"
    )
    v = p.int_arg(line, 0, 2**32 - 1)
    if v is not None:
        _common(p)["retry"] = v


def install_common(t: Table, connection: bool) -> None:
    """check_api.c install_checker_common_keywords."""
    if connection:
        kw(t, "connect_ip", _co_ip("connect_ip"))
        kw(t, "connect_port", _co_port("connect_port"))
        kw(t, "bindto", _co_ip("bindto"))
        kw(t, "bind_port", _co_port("bind_port"))
        kw(t, "bind_if", _co_bind_if)
        kw(t, "connect_timeout", _co_timer("connect_timeout", 0.000001, UINT_TIMER_MAX))
        kw(t, "fwmark", _co_int("fwmark", 0, 2**32 - 1))
    kw(t, "retry", _co_int("retry", 0, 2**32 - 1))
    kw(t, "delay_before_retry", _co_timer("delay_before_retry", 0))
    kw(t, "warmup", _co_timer("warmup", 0))
    kw(t, "delay_loop", _co_timer("delay_loop"))
    kw(t, "alpha", _co_flag("alpha"))
    kw(t, "log_all_failures", _co_flag("log_all_failures"))


_MISSING = {
    "helo_name": "SMTP_CHECK helo name missing",
    "virtualhost": "HTTP_GET virtualhost name missing",
}


def _ck_set(key: str, conv: str = "str") -> Any:
    def handler(p: Parser, line: Line) -> None:
        c = _ck(p)
        if conv == "flag":
            flag = _strict_flag(p, line, f"Invalid {key} parameter {{v}}")
            if flag is not None:
                c[key] = flag
            return
        v = p.opt_arg(line, _MISSING[key]) if key in _MISSING else p.arg(line)
        if v is not None:
            c[key] = v

    return handler


def _http_protocol(p: Parser, line: Line) -> None:
    v = p.opt_arg(line, "Missing http_protocol version")
    if v is None:
        return
    if v in ("1.0", "1.1", "1.0C", "1.0c"):
        _ck(p)["http_protocol"] = v.upper() if v.endswith("c") else v
    else:
        p.error(f"Invalid http_protocol {v}", "write http_protocol 1.0, 1.0C or 1.1")


def _url(p: Parser, line: Line) -> None:
    _ck(p)["_url"] = {"loc": _new_loc(line.file, line.lineno)}  # line.loc, cheaper


def _url_d(p: Parser) -> dict[str, Any]:
    u = _ck(p).get("_url")
    return u if u is not None else {}


def _path(p: Parser, line: Line) -> None:
    v = p.arg(line)
    if v is not None:
        _url_d(p)["path"] = v


def _digest(p: Parser, line: Line) -> None:
    """check_http.c digest_handler: a second digest in one url is refused before
    the new one is judged (the first stays)."""
    v = p.arg(line)
    if v is None:
        return
    url = _url_d(p)
    if "digest" in url:
        p.error(f"Digest '{v}' is a duplicate", "give each url one digest")
        return
    if len(v) != 32:
        p.error(
            f"digest '{v}' character length should be 32 rather than {len(v)}",
            "write 32 hex digits, as genhash prints them",
        )
        return
    if any(c not in "0123456789abcdefABCDEF" for c in v):
        p.error(
            f"digest '{v}' is not a valid MD5 digest", "write 32 hex digits, as genhash prints them"
        )
        return
    url["digest"] = v.lower()


def _status_code(p: Parser, line: Line) -> None:
    ranges = _url_d(p).setdefault("status_codes", [])
    for w in line.words[1:]:
        lo_s, _, hi_s = w.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if hi_s else lo
            if not (100 <= lo <= 599 and 100 <= hi <= 599 and lo <= hi):
                raise ValueError
        except ValueError:
            p.error(
                f"Invalid HTTP_GET status code range '{w}' - skipping",
                "write codes or ranges between 100 and 599, e.g. status_code 200-299 301",
            )
            continue
        ranges.append(StatusRange(lo, hi))


def _url_vhost(p: Parser, line: Line) -> None:
    v = p.arg(line)
    if v is not None:
        _url_d(p)["virtualhost"] = v


def _regex(p: Parser, line: Line) -> None:
    """check_http.c regex_handler: the line re-read with quotes and escapes; exactly
    one pattern, else only a log line (the url keeps no regex)."""
    from pykeep.config.lexer import split_quoted_escaped

    words = split_quoted_escaped(line.raw)
    if words is None or len(words) != 2:
        p.error("regex missing or too many fields", 'write: regex "PATTERN"', Severity.INFO)
        return
    _url_d(p)["regex"] = words[1]


def _regex_no_match(p: Parser, line: Line) -> None:
    _url_d(p)["regex_no_match"] = True


def _regex_options(p: Parser, line: Line) -> None:
    _url_d(p)["regex_options"] = tuple(line.words[1:])


def _url_end(p: Parser) -> None:
    c = _ck(p)
    u = c.pop("_url", None)
    if u is None:
        return
    if "path" not in u:
        p.report(
            p.close_loc() or u["loc"],  # at the url's '}' (check_http.c url_check)
            Severity.GENERAL_ERROR,
            "HTTP/SSL_GET checker url has no path - ignoring",
            "add 'path /…' to the url block",
        )
        return
    c.setdefault("urls", []).append(_new_url(**frozen(u)))


def _misc_path(p: Parser, line: Line) -> None:
    sc = p.script(
        line, "misc_path", "No script path has been specified for MISC_CHECKER - skipping"
    )
    if sc is not None:
        _ck(p)["misc_path"] = sc


def _misc_timeout(p: Parser, line: Line) -> None:
    """check_misc.c misc_timeout_handler: whole seconds, read_unsigned in
    [0, UINT_MAX / TIMER_HZ]; 0 leaves the delay_loop default."""
    v = p.int_arg(line, 0, (2**32 - 1) // 1_000_000)
    if v is None:
        p.error(f"Invalid misc_timeout value '{line.words[1]}'", "give whole seconds")
        return
    _ck(p)["misc_timeout"] = float(v) if v else None


def _misc_dynamic(p: Parser, line: Line) -> None:
    """check_misc.c misc_dynamic_handler: a bare flag, whatever follows it."""
    _ck(p)["misc_dynamic"] = True


def _misc_user(p: Parser, line: Line) -> None:
    """check_misc.c misc_user_handler: an unknown user removes the checker there and then."""
    c = _ck(p)
    if c.get("_dropped"):
        return
    v = p.opt_arg(line, "No user specified for misc checker script")
    if v is None:
        return
    from pykeep.config.script_user import user_known

    group = line.words[2] if len(line.words) > 2 else None
    if not user_known(v, group):
        sc = c.get("misc_path")
        p.error(
            f"Failed to set uid/gid for misc checker script "
            f"'{sc.path if sc is not None else ''}' - removing",
            "name an existing user (and group) after 'user'",
        )
        c["_dropped"] = True
        return
    c["user"] = v
    c["_user_loc"] = line.loc
    c.pop("group", None)
    if group is not None:
        c["group"] = group


def _smtp_host(p: Parser, line: Line) -> None:
    _ck(p)["_host"] = {"loc": line.loc}


def _smtp_host_end(p: Parser) -> None:
    c = _ck(p)
    host = c.pop("_host", None)
    if host is None:
        return
    # check_smtp.c smtp_host_end_handler: check_conn_opts on the host's own
    # options, whose destination starts as the real server's address.
    dst = host.get("connect_ip") or (p.state.cur.get("rs") or {}).get("address")
    if dst is not None and dst.version == 6 and dst.is_link_local and not host.get("bind_if"):
        p.report(
            p.close_loc() or host.get("loc"),
            Severity.GENERAL_ERROR,
            f"Checker link local address {dst} requires a bind_if",
            "add 'bind_if IFACE' to the host block",
        )
        return
    c.setdefault("_hosts", []).append(host)


def _udp_payload(p: Parser, line: Line) -> None:
    if p.opt_arg(line, "UDP_CHECK payload requires a payload") is None:
        return
    got = read_hex(" ".join(line.words[1:]), wildcard=False)
    if got is None:
        p.error(
            "Invalid hex string for UDP_CHECK payload",
            "write the bytes as hex digits, e.g. payload 0a0b0c",
        )
        return
    _ck(p)["payload"] = got[0]


def _hex_nibble(c: str, wildcard: bool) -> int | None:
    """lib/parser.c hex_val: a hex digit, -1 for a wildcard 'x'/'X' where allowed."""
    if "0" <= c <= "9":
        return ord(c) - 48
    u = c.upper() if c >= "a" else c
    if "A" <= u <= "F":
        return ord(u) - 55
    if wildcard and u == "X":
        return -1
    return None


def read_hex(s: str, wildcard: bool) -> tuple[bytes, bytes] | None:
    """The bytes and the wildcard mask of a hex string, as lib/parser.c read_hex_str reads it.

    Spaces and tabs separate bytes, a lone digit before a space is one byte,
    ``x`` is a wildcard nibble where allowed.  keepalived checks the last
    value it read for 0xff as its failure mark, so a string ending in the
    byte ``ff`` is refused too, as ``keepalived -t`` refuses it.
    """
    data = bytearray()
    mask = bytearray()
    i, n, last = 0, len(s), 0
    while True:
        while i < n and s[i] in " \t":
            i += 1
        if i >= n:
            break
        v = _hex_nibble(s[i], wildcard)
        i += 1
        if v is None:
            return None
        m = 0x0F if v < 0 else 0
        v = max(v, 0)
        if i < n and s[i] != " ":
            w = _hex_nibble(s[i], wildcard)
            i += 1
            if w is None:
                return None
            v, m = v << 4 | max(w, 0), m << 4 | (0x0F if w < 0 else 0)
        data.append(v)
        mask.append(m)
        last = v
    if not data or last == 0xFF:
        return None
    return bytes(data), bytes(mask)


def _udp_len(key: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        v = p.int_arg(line, 0, 65535)
        if v is not None:
            _ck(p)[key] = v

    return handler


def _require_reply(p: Parser, line: Line) -> None:
    c = _ck(p)
    c["require_reply"] = True
    if len(line.words) == 1:
        return
    got = read_hex(" ".join(line.words[1:]), wildcard=True)
    if got is None:
        p.error(
            "Invalid hex string for UDP_CHECK reply",
            "write the bytes as hex digits (x for any nibble), e.g. require_reply 0a0bxx",
        )
        return
    data, mask = got
    if any(mask):
        # check_udp.c compares under the mask; the checker here matches whole bytes.
        p.report(
            line.loc,
            Severity.INFO,
            "require_reply wildcard nibbles ('x') are not supported by pykeep: "
            "the reply is matched on the bytes before the first wildcard",
            "spell the expected bytes out in full",
        )
        data = data[: next(k for k, m in enumerate(mask) if m)]
    c["reply_data"] = data


def _dns_name(p: Parser, line: Line) -> None:
    """check_dns.c dns_name_handler: the first name stands; one with an empty label is refused.

    keepalived's label scan starts by looking at the name's second
    character, so a one-letter first label ("a.example") counts as empty
    too: refused as ``keepalived -t`` refuses it.
    """
    c = _ck(p)
    if "name" in c:
        p.error("DNS_CHECK name already specified - ignoring", "give name once per DNS_CHECK")
        return
    name = p.arg(line)
    if name is None:
        return
    if name[:1] == "." and len(name) > 1:
        bad = True
    else:
        bad = name[1:2] == "." or any(
            name[i + 1 : i + 2] == "." for i in range(len(name)) if name[i] == "."
        )
    if bad:
        p.error(
            f"DNS_CHECK name '{name}' has empty label - ignoring",
            "write a domain name without '..'",
        )
        return
    c["name"] = name


def _dns_type(p: Parser, line: Line) -> None:
    v = p.arg(line)
    if v is None:
        return
    if v.upper() not in ("A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"):
        p.error(f"DNS_CHECK: unknown type '{v}'", "type is one of A NS CNAME SOA MX TXT AAAA")
        return
    _ck(p)["query_type"] = v.upper()


def _file_weight(p: Parser, line: Line) -> None:
    if p.opt_arg(line, "track file weight missing") is None:
        return
    v = p.int_arg(line, -254, 254)
    if v is not None:
        c = _ck(p)
        c["weight"] = v
        if len(line.words) > 2 and line.words[2] == "reverse":
            c["weight_reverse"] = True


def _fc_track_file(p: Parser, line: Line) -> None:
    """FILE_CHECK's track_file must already be defined above it (check_file.c)."""
    v = p.arg(line)
    if v is None:
        return
    if not any(t.name == v for t in p.state.vrrp_track_files):
        p.error(
            f"track_file {v} not found",
            f"define 'vrrp_track_file {v} {{ file PATH }}' before the virtual_server using it",
        )
        return
    _ck(p)["track_file"] = v


_CLASSES: dict[str, Any] = {
    "TCP_CHECK": TcpCheck,
    "HTTP_GET": HttpCheck,
    "SSL_GET": HttpCheck,
    "MISC_CHECK": MiscCheck,
    "SMTP_CHECK": SmtpCheck,
    "DNS_CHECK": DnsCheck,
    "UDP_CHECK": UdpCheck,
    "PING_CHECK": PingCheck,
    "FILE_CHECK": FileCheck,
}
# The model objects built once per real server or checker: made by maker()'s
# functions, which cost half of calling the class (same objects).
_MAKERS: dict[str, Any] = {}  # filled as the checkers are met
_new_common = maker(CheckerCommon)
_new_loc = maker(Loc)
_new_url = maker(HttpUrl)


def _checker_end(p: Parser) -> None:
    cur = p.state.cur
    c = cur.pop("ck", None)
    rs = cur.get("rs")
    if c is None:
        return
    keyword = c.pop("keyword")
    raw_common = c.pop("_common")
    common = _new_common(**raw_common)
    loc = c.pop("_loc")
    if c.pop("_dropped", False):
        return  # removed where it went wrong (check_misc.c misc_user_handler)
    if keyword in ("HTTP_GET", "SSL_GET") and not c.get("urls"):
        p.report(
            p.close_loc() or loc,  # check_http.c http_get_check_end, at the '}'
            Severity.GENERAL_ERROR,
            "HTTP/SSL_GET checker has no urls specified - ignoring",
            "add a 'url { path / }' block",
        )
        return
    hosts = c.get("_hosts") if keyword == "SMTP_CHECK" else None
    if c:  # sub-block builders left over: not fields
        c.pop("_hosts", None)
        c.pop("_url", None)
        c.pop("_host", None)
    if keyword == "MISC_CHECK" and "misc_path" not in c:
        p.report(
            p.close_loc() or loc,  # at the '}' (check_misc.c misc_end_handler)
            Severity.GENERAL_ERROR,
            "No script path has been specified for MISC_CHECKER - skipping",
            "add 'misc_path \"/path/to/check\"'",
        )
        return
    if keyword == "MISC_CHECK":
        from pykeep.config.script_user import misc_user_kept

        sc = c["misc_path"]
        if "user" in c:
            sc = type(sc)(sc.argv, c["user"], c.get("group"), sc.loc)
        if not misc_user_kept(p, sc, "user" in c, c.pop("_user_loc", None)):
            return
    if keyword == "FILE_CHECK" and "track_file" not in c:
        p.report(
            p.close_loc() or loc,  # at the '}' (check_file.c file_end_handler)
            Severity.GENERAL_ERROR,
            "FILE_CHECK has no track_file specified - ignoring",
            "add 'track_file NAME'",
        )
        return
    if keyword in _CONNECTING:
        # check_api.c check_conn_opts, from each of these checkers' end handler.
        dst = raw_common.get("connect_ip") or (rs or {}).get("address")
        if (
            dst is not None
            and dst.version == 6
            and dst.is_link_local
            and not raw_common.get("bind_if")
        ):
            p.report(
                p.close_loc() or loc,
                Severity.GENERAL_ERROR,
                f"Checker link local address {dst} requires a bind_if",
                "add 'bind_if IFACE' to the checker",
            )
            return
    if keyword == "UDP_CHECK":
        # check_udp.c udp_check_end_handler: max_reply_length defaults to 255.
        lo, hi = c.get("reply_min_length") or 0, c.get("reply_max_length", 255)
        if lo > hi:
            p.report(
                p.close_loc() or loc,
                Severity.GENERAL_ERROR,
                f"UDP_CHECK min_reply length {lo} > max_reply_length {hi} - will always fail",
                "make min_reply_length at most max_reply_length (255 unless set)",
            )
    if keyword == "PLUGIN":
        obj: Any = PluginCheck(c["plugin"], c.get("options"), common)
    else:
        cls = _MAKERS.get(keyword)
        if cls is None:
            cls = _MAKERS[keyword] = maker(_CLASSES[keyword])
        fields = frozen(c) if c else {}
        if keyword in ("HTTP_GET", "SSL_GET"):
            fields["ssl"] = keyword == "SSL_GET"
            fields["keyword"] = keyword
        obj = cls(common=common, **fields)
    if rs is not None:
        if hosts:
            rs["checkers"].extend(_smtp_host_checkers(obj, raw_common, hosts))
        else:
            rs["checkers"].append(obj)


_CONNECTING = frozenset(
    {"TCP_CHECK", "UDP_CHECK", "HTTP_GET", "SSL_GET", "DNS_CHECK", "PING_CHECK", "SMTP_CHECK"}
)
_CONNECTION = frozenset(
    {"connect_ip", "connect_port", "bindto", "bind_port", "bind_if", "connect_timeout", "fwmark"}
)


def _smtp_host_checkers(
    obj: Any, raw_common: dict[str, Any], hosts: list[dict[str, Any]]
) -> list[Any]:
    """SMTP_CHECK ``host { … }`` blocks become checkers of their own.

    check_smtp.c ``smtp_check_end_handler`` (WITH_HOST_ENTRIES, still built
    in 2.2.7): each host is one more SMTP checker with the host's connection
    options (the real server's address by default) and the checker's other
    settings.  The checker's own connection options count only if some were
    given; otherwise the first host takes the checker's place.  Options other
    than connection ones written inside a host set the checker's, as there.
    """
    shared = {k: v for k, v in raw_common.items() if k not in _CONNECTION}
    for h in hosts:
        shared.update({k: v for k, v in h.items() if k not in _CONNECTION and k != "loc"})
    made = [
        replace(
            obj,
            common=_new_common(
                **{**shared, **{k: v for k, v in h.items() if k in _CONNECTION}, "loc": h["loc"]}
            ),
        )
        for h in hosts
    ]
    own = {k: v for k, v in raw_common.items() if k in _CONNECTION}
    if own:
        made.insert(0, replace(obj, common=_new_common(**{**shared, **own})))
    return made


# -- plugin checkers --------------------------------------------------------------


def registered_plugins() -> Mapping[str, Any]:
    """The third-party checkers, if healthcheck.plugin is importable."""
    try:
        from healthcheck import plugin  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return {}
    try:
        reg = plugin.registered_checkers()
    except Exception:  # a broken plugin must not break the config test
        return {}
    return reg if isinstance(reg, Mapping) else {}


def plugin_keyword(p: Parser, word: str, common_table: Table) -> Keyword | None:
    """A Keyword for block ``word`` inside a real_server if a plugin serves it."""
    if p.state.cur.get("rs") is None:
        return None
    plugins = registered_plugins()
    plug = plugins.get(word)
    if plug is None:
        return None

    def start(p: Parser, line: Line) -> None:
        p.state.cur["ck"] = {
            "keyword": "PLUGIN",
            "plugin": word,
            "_common": {"loc": line.loc},
            "_loc": line.loc,
            "_lines": [],
        }

    def rest(p: Parser, line: Line) -> None:
        _ck(p).setdefault("_lines", []).append(tuple(line.words))

    def end(p: Parser) -> None:
        c = _ck(p)
        lines = c.pop("_lines", [])
        try:
            c["options"] = plug.parse(lines)
        except ValueError as exc:
            p.report(
                c.get("_loc"),
                Severity.GENERAL_ERROR,
                f"{word}: {exc}",
                f"see the documentation of the {word} checker plugin",
            )
            p.state.cur.pop("ck", None)
            return
        except Exception as exc:  # a plugin bug must not crash the config test
            p.report(
                c.get("_loc"), Severity.GENERAL_ERROR, f"{word}: plugin failed to parse: {exc!r}"
            )
            p.state.cur.pop("ck", None)
            return
        _checker_end(p)

    sub: Table = dict(common_table)
    sub["*"] = Keyword(rest)
    return Keyword(start, sub, end)


#: IP_VS_PENAME_MAXLEN: the engine name's buffer, with its terminating NUL.
_PENAME_MAX = 16


def _pengine(p: Parser, line: Line) -> None:
    """check_parser.c ``pengine_handler``: a name too long is reported and truncated."""
    v = p.arg(line)
    if v is None:
        return
    if len(v) > _PENAME_MAX - 1:
        p.error(
            f"persistence_name too long, truncating - {v}",
            f"IPVS persistence engine names have at most {_PENAME_MAX - 1} characters",
        )
        v = v[: _PENAME_MAX - 1]
    _d(p)["persistence_engine"] = v


def _ssl_block(p: Parser, line: Line) -> None:
    """``SSL { … }`` itself holds nothing: its four keywords set the client context."""


def _ssl_file(key: str) -> Any:
    """check_parser.c ``sslpass_handler`` / ``sslca_handler`` / ``sslcert_handler`` /
    ``sslkey_handler``: a later line replaces an earlier one."""

    # keepalived names the ca keyword "cafile" in its messages.
    name = "cafile" if key == "ca" else key

    def handler(p: Parser, line: Line) -> None:
        v = p.opt_arg(line, f"SSL {name} missing", f"give {key} a value")
        if v is None:
            return
        if f"ssl_{key}" in p.state.global_defs:
            p.error(f"SSL {name} already specified - replacing", f"keep one {key} line")
        p.state.global_defs[f"ssl_{key}"] = v

    return handler


def install(root: Table) -> None:
    """check_parser.c init_check_keywords and the checkers' install functions."""
    ssl = block(root, "SSL", _ssl_block)
    for n in ("password", "ca", "certificate", "key"):
        kw(ssl, n, _ssl_file(n))
    kw(root, "virtual_server_group", _vsg)
    vs = block(root, "virtual_server", _vs, _vs_end)
    kw(vs, "ip_family", _ip_family)
    kw(vs, "retry", _vs_retry)
    kw(vs, "delay_before_retry", _vs_timer("delay_before_retry", 0))
    kw(vs, "warmup", _vs_timer("warmup", 0))
    kw(vs, "connect_timeout", _vs_timer("connect_timeout", 0.000001, UINT_TIMER_MAX))
    kw(vs, "delay_loop", _vs_timer("delay_loop"))
    kw(vs, "inhibit_on_failure", _vs_flag("inhibit_on_failure"))
    kw(vs, "lb_algo", _lb_algo)
    kw(vs, "lvs_sched", _lb_algo)
    for n in (
        "hashed",
        "ops",
        "flag-1",
        "flag-2",
        "flag-3",
        "sh-port",
        "sh-fallback",
        "mh-port",
        "mh-fallback",
    ):
        kw(vs, n, _lb_flag)
    kw(vs, "lb_kind", _vs_forwarding)
    kw(vs, "lvs_method", _vs_forwarding)
    kw(vs, "persistence_engine", _pengine)
    kw(vs, "persistence_timeout", _pto)
    kw(vs, "persistence_granularity", _pgr)
    kw(vs, "protocol", _proto)
    kw(vs, "ha_suspend", _vs_flag("ha_suspend"))
    kw(vs, "smtp_alert", _vs_flag("smtp_alert"))
    kw(vs, "virtualhost", _virtualhost)
    kw(vs, "snmp_name", generic)
    kw(vs, "alpha", _alpha)
    kw(vs, "omega", _omega)
    kw(vs, "quorum_up", _quorum_script("quorum_up"))
    kw(vs, "quorum_down", _quorum_script("quorum_down"))
    kw(vs, "quorum", _quorum)
    kw(vs, "hysteresis", _vs_int("hysteresis", 0, 2**32 - 1))
    kw(vs, "weight", _vs_weight)
    kw(vs, "sorry_server", _ssvr)
    kw(vs, "sorry_server_inhibit", _ss_inhibit)
    kw(vs, "sorry_server_lvs_method", _ss_forwarding)

    rs = block(vs, "real_server", _rs, _rs_end)
    kw(rs, "weight", _rs_weight)
    kw(rs, "lvs_method", _rs_forwarding)
    kw(rs, "uthreshold", _rs_int("uthreshold"))
    kw(rs, "lthreshold", _rs_int("lthreshold"))
    kw(rs, "inhibit_on_failure", _vs_flag("inhibit_on_failure"))
    kw(rs, "notify_up", _rs_notify("notify_up"))
    kw(rs, "notify_down", _rs_notify("notify_down"))
    kw(rs, "alpha", _alpha)
    kw(rs, "retry", _vs_retry)
    kw(rs, "delay_before_retry", _vs_timer("delay_before_retry", 0))
    kw(rs, "warmup", _vs_timer("warmup", 0))
    kw(rs, "connect_timeout", _vs_timer("connect_timeout", 0.000001, UINT_TIMER_MAX))
    kw(rs, "delay_loop", _vs_timer("delay_loop"))
    kw(rs, "smtp_alert", _vs_flag("smtp_alert"))
    kw(rs, "virtualhost", _virtualhost)
    kw(rs, "snmp_name", generic)
    # Values keepalived judges, whether or not pykeep acts on the keyword.
    values.guard("virtual_server", vs)
    values.guard("real_server", rs)

    misc = block(rs, "MISC_CHECK", _checker("MISC_CHECK"), _checker_end)
    install_common(misc, connection=False)
    kw(misc, "misc_path", _misc_path)
    kw(misc, "misc_timeout", _misc_timeout)
    kw(misc, "misc_dynamic", _misc_dynamic)
    kw(misc, "user", _misc_user)

    smtp = block(rs, "SMTP_CHECK", _checker("SMTP_CHECK"), _checker_end)
    kw(smtp, "helo_name", _ck_set("helo_name"))
    install_common(smtp, connection=True)
    host = block(smtp, "host", _smtp_host, _smtp_host_end)
    install_common(host, connection=True)

    for name in ("TCP_CHECK", "PING_CHECK"):
        t = block(rs, name, _checker(name), _checker_end)
        install_common(t, connection=True)

    udp = block(rs, "UDP_CHECK", _checker("UDP_CHECK"), _checker_end)
    install_common(udp, connection=True)
    kw(udp, "payload", _udp_payload)
    kw(udp, "require_reply", _require_reply)
    kw(udp, "min_reply_length", _udp_len("reply_min_length"))
    kw(udp, "max_reply_length", _udp_len("reply_max_length"))

    for name in ("HTTP_GET", "SSL_GET"):
        h = block(rs, name, _checker(name), _checker_end)
        install_common(h, connection=True)
        kw(h, "nb_get_retry", _nb_get_retry)
        kw(h, "virtualhost", _ck_set("virtualhost"))
        kw(h, "http_protocol", _http_protocol)
        kw(h, "enable_sni", _ck_set("enable_sni", "flag"))
        kw(h, "fast_recovery", _ck_set("fast_recovery", "flag"))
        u = block(h, "url", _url, _url_end)
        kw(u, "path", _path)
        kw(u, "digest", _digest)
        kw(u, "status_code", _status_code)
        kw(u, "virtualhost", _url_vhost)
        kw(u, "regex", _regex)
        kw(u, "regex_no_match", _regex_no_match)
        kw(u, "regex_options", _regex_options)
        for n in ("regex_min_offset", "regex_max_offset", "regex_stack"):
            kw(u, n, generic)

    dns = block(rs, "DNS_CHECK", _checker("DNS_CHECK"), _checker_end)
    install_common(dns, connection=True)
    kw(dns, "type", _dns_type)
    kw(dns, "name", _dns_name)

    fc = block(rs, "FILE_CHECK", _checker("FILE_CHECK"), _checker_end)
    kw(fc, "track_file", _fc_track_file)
    kw(fc, "weight", _file_weight)

    unacted.install_bfd_check(rs)
    # pykeep's FULLNAT, SYN proxy and cluster-mode keywords (config/extensions.py).
    extensions.install(root, vs)
