"""Blocks pykeep does not act on, still read and judged as keepalived 2.2.7 reads them.

``garp_group``, ``track_group``, ``linkbeat_interfaces``,
``interface_up_down_delays`` and a real server's ``BFD_CHECK`` warn once
(config/support.py), but ``keepalived -t`` still checks what is inside them:
unknown interfaces, numbers out of range, a block without what it needs.  So
does ``pykeep -t``, with keepalived's messages and exit codes, so that a file
keepalived rejects is not passed here.  Nothing read here reaches the model.
"""

from __future__ import annotations

from pykeep.config.diagnostics import Severity
from pykeep.config.lexer import Line
from pykeep.config.model import Loc
from pykeep.config.parser import Parser, Table, block, kw

TYPE_CHECKING = False  # typing stays unimported at run time: start-up counts (pykeep -t)
if TYPE_CHECKING:
    from typing import Any

_MAX_INTERVAL = 2147.483647  # INT_MAX microseconds (read_decimal_unsigned_strvec)
_MAX_DEBOUNCE = 255.0  # 255 * TIMER_HZ (vrrp_parser.c alloc_if_up_down_delay)


def _lenient(p: Parser, line: Line, i: int, hi: float) -> bool:
    """parser.c read_decimal_unsigned_long_func with ``ignore_error``: a word that is
    no number is reported, then taken (as the digits it starts with); a negative
    or out-of-range one is refused."""
    before = len(p.diagnostics)
    if p.decimal_arg(line, 0, hi, i) is not None:
        return True
    said = [d.message for d in p.diagnostics[before:]]
    return not any(m.startswith("negative") or " outside " in m for m in said)


def _scratch(p: Parser) -> dict[str, Any]:
    """What this pass has seen of these blocks (groups, interfaces, names)."""
    d: dict[str, Any] | None = p.state.cur.get("_unacted")
    if d is None:
        d = p.state.cur["_unacted"] = {
            "garp_groups": [],  # aggregation numbers of the garp groups kept
            "garp_ifaces": {},  # interface -> its garp group (an id)
            "track_groups": set(),
        }
    return d


def _iface_exists(p: Parser, name: str) -> bool:
    """if_get_by_ifname(name, dynamic): with dynamic_interfaces every name is taken."""
    if p.state.global_defs.get("dynamic_interfaces"):
        return True
    exists = p.interface_exists
    return exists is None or exists(name)


# -- garp_group (vrrp_parser.c garp_group_*_handler) ------------------------------


def _garp_group(p: Parser, line: Line) -> None:
    s = _scratch(p)
    s["garp"] = {"id": object(), "interval": False, "aggregation": 0, "loc": line.loc}


def _garp_interval(what: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        g = _scratch(p).get("garp")
        word = p.arg(line)
        if g is None or word is None:
            return
        if not _lenient(p, line, 1, _MAX_INTERVAL):
            p.error(f"garp_group {what} '{word}' invalid", f"{what} takes seconds, up to 2147")
            return
        g["interval"] = True

    return handler


def _garp_take(p: Parser, g: dict[str, Any], name: str, shown: str, loc: Loc | None) -> None:
    ifaces = _scratch(p)["garp_ifaces"]
    if not _iface_exists(p, name):
        p.report(
            loc,
            Severity.GENERAL_ERROR,
            f"WARNING - interface {name} specified for garp_group doesn't exist",
        )
        # The VRRP process then stops before its other checks, as for any
        # interface missing from the configuration (validate.py).
        p.state.interface_missing = True
    elif name in ifaces:
        p.report(
            loc, Severity.GENERAL_ERROR, f"garp_group already specified for {shown} - ignoring"
        )
    else:
        ifaces[name] = g["id"]


def _garp_interface(p: Parser, line: Line) -> None:
    g = _scratch(p).get("garp")
    name = p.arg(line)
    if g is not None and name is not None:
        _garp_take(p, g, name, name, line.loc)


def _garp_interfaces(p: Parser, line: Line) -> None:
    s = _scratch(p)
    g = s.get("garp")
    names = [w for ln in p.value_block(line) for w in ln.words]
    if g is None:
        return
    if not names:
        p.report(
            p.value_end_loc(),
            Severity.GENERAL_ERROR,
            "Warning - empty garp_group interfaces block",
            "list interfaces in the block",
        )
        return
    # The next aggregation group number: one more than the groups that have one.
    g["aggregation"] = 1 + sum(1 for n in s["garp_groups"] if n)
    for name in names:
        # keepalived names the block's second interface in this message, and
        # reports at the block's end, having read it.
        _garp_take(p, g, name, names[1] if len(names) > 1 else "(null)", p.value_end_loc())


def _garp_group_end(p: Parser) -> None:
    s = _scratch(p)
    g = s.pop("garp", None)
    if g is None:
        return
    if not g["interval"]:
        p.report(
            p.close_loc() or g["loc"],
            Severity.GENERAL_ERROR,
            f"garp group {g['aggregation']} does not have any delay set - removing",
            "give the group a garp_interval or gna_interval",
        )
        s["garp_ifaces"] = {k: v for k, v in s["garp_ifaces"].items() if v is not g["id"]}
        return
    s["garp_groups"].append(g["aggregation"])


# -- track_group (vrrp_parser.c static_track_group_*_handler) ---------------------


def _track_group(p: Parser, line: Line) -> None:
    s = _scratch(p)
    s["track"] = None
    if len(line.words) != 2:
        p.error("track_group must have a name - skipping", "write: track_group NAME {")
        p.skip_block()
        return
    name = line.words[1]
    if name in s["track_groups"]:
        p.error(f"track_group {name} already defined", "give each track_group its own name")
        p.skip_block()
        return
    s["track_groups"].add(name)
    s["track"] = {"name": name, "group": False}


def _track_group_group(p: Parser, line: Line) -> None:
    t = _scratch(p).get("track")
    if t is None:
        p.value_block(line)
        return
    if t["group"]:
        p.error(f"Group list already specified for sync group {t['name']}")
        p.skip_block()
        return
    # vrrp_parser.c static_track_group_group_handler: tgroup->iname is what
    # read_value_block returned, NULL for an empty block, so only a list with
    # names makes a later 'group' a duplicate.
    t["group"] = any(ln.words for ln in p.value_block(line))
    if not t["group"]:
        p.report(
            p.value_end_loc(),
            Severity.GENERAL_ERROR,
            f"Warning - track group {t['name']} has empty group block",
        )


# -- linkbeat_interfaces, interface_up_down_delays -------------------------------


def _linkbeat_interfaces(p: Parser, line: Line) -> None:
    """vrrp_parser.c alloc_linkbeat_interface, for each line of the block."""
    for ln in p.value_block(line):
        w = ln.words
        if not _iface_exists(p, w[0]):
            p.report(
                ln.loc, Severity.FATAL, f"unknown interface {w[0]} specified for linkbeat interface"
            )
            continue
        if len(w) > 1 and (w[1] not in ("MII", "ETHTOOL", "IOCTL") or len(w) > 2):
            p.report(
                ln.loc, Severity.GENERAL_ERROR, f"extra characters {w[1]} in linkbeat interface"
            )


def _up_down_delays(p: Parser, line: Line) -> None:
    """vrrp_parser.c alloc_if_up_down_delay: an unknown interface is fatal; a bad delay
    is only logged, after the number's own message."""
    for ln in p.value_block(line):
        w = ln.words
        if not _iface_exists(p, w[0]):
            p.report(
                ln.loc, Severity.FATAL, f"unknown interface {w[0]} specified for up/down delay"
            )
            continue
        for i in (1, 2)[: len(w) - 1]:
            if not _lenient(p, ln, i, _MAX_DEBOUNCE):
                break


# -- BFD_CHECK (check_bfd.c bfd_*_handler) ----------------------------------------


def _rs_name(p: Parser) -> str:
    """FMT_RS: ``[address]:proto:port`` of the real server being read."""
    rs = p.state.cur.get("rs") or {}
    vs = p.state.cur.get("vs") or {}
    proto = vs.get("protocol")
    name = proto.value.lower() if proto is not None else "tcp"
    return f"[{rs.get('address')}]:{name}:{rs.get('port') or 0}"


def _rs_bfds(p: Parser) -> set[str]:
    """The BFD instances the real server being read already monitors."""
    rs = p.state.cur.get("rs")
    if rs is None:
        return set()
    got: set[str] = rs.setdefault("_bfds", set())
    return got


def _bfd_check(p: Parser, line: Line) -> None:
    p.state.cur["_bfd_check"] = {"name": None, "loc": line.loc}


def _bfd_name(p: Parser, line: Line) -> None:
    c = p.state.cur.get("_bfd_check")
    if c is None:
        return
    w = line.words
    name = w[1] if len(w) > 1 else ""
    if len(w) != 2:
        p.error(f"({_rs_name(p)}) BFD_CHECK - No or too many names specified - skipping checker")
    elif name not in p.state.bfd_checker:
        p.error(f"({_rs_name(p)}) BFD_CHECK - BFD {name} not configured")
    elif c["name"] is not None:
        p.error(f"({_rs_name(p)}) BFD_CHECK - BFD {name} already specified as {c['name']}")
    elif name in _rs_bfds(p):
        p.error(f"({_rs_name(p)}) BFD_CHECK - RS already monitoring {name}")
    else:
        c["name"] = name
        return
    # A bad name drops the checker: the rest of its block is read for nothing.
    p.state.cur["_bfd_check"] = None


def _bfd_alpha(p: Parser, line: Line) -> None:
    if p.state.cur.get("_bfd_check") is None:
        return
    w = line.words
    if len(w) > 1 and w[1] not in ("true", "on", "yes", "false", "off", "no"):
        p.error(f"Invalid alpha parameter {w[1]}", "alpha takes no value, or on/off")


def _bfd_check_end(p: Parser) -> None:
    c = p.state.cur.pop("_bfd_check", None)
    if c is None:
        return
    if c["name"] is None:
        p.report(
            p.close_loc() or c["loc"],
            Severity.GENERAL_ERROR,
            f"({_rs_name(p)}) No name has been specified for BFD_CHECKER - skipping",
            "add 'name BFD_INSTANCE'",
        )
        return
    _rs_bfds(p).add(c["name"])


def install_vrrp(root: Table) -> None:
    """The VRRP process's blocks (vrrp_parser.c init_vrrp_keywords)."""
    tg = block(root, "track_group", _track_group)
    kw(tg, "group", _track_group_group)
    gg = block(root, "garp_group", _garp_group, _garp_group_end)
    kw(gg, "garp_interval", _garp_interval("garp_interval"))
    kw(gg, "gna_interval", _garp_interval("gna_interval"))
    kw(gg, "interface", _garp_interface)
    kw(gg, "interfaces", _garp_interfaces)
    kw(root, "linkbeat_interfaces", _linkbeat_interfaces)
    kw(root, "interface_up_down_delays", _up_down_delays)


def install_bfd_check(rs: Table) -> None:
    """A real server's BFD_CHECK (check_bfd.c install_bfd_check_keyword)."""
    bfd = block(rs, "BFD_CHECK", _bfd_check, _bfd_check_end)
    kw(bfd, "name", _bfd_name)
    kw(bfd, "alpha", _bfd_alpha)
