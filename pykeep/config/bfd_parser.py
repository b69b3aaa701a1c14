"""``bfd_instance`` blocks, read as keepalived 2.2.7's bfd/bfd_parser.c reads them.

Every check, range and default below is bfd_parser.c's (``bfd_*_handler``
and ``bfd_end_handler``): intervals in milliseconds with up to three
decimals, kept in microseconds; a missing or mismatched neighbour disables
the instance; ttl 0 becomes 255 (IPv4) or 64 (IPv6); max_hops above ttl is
cut to ttl.  keepalived runs BFD in a process of its own and tells the VRRP
and checker processes; ``vrrp`` and ``checker`` in the block choose which
hear it, so a block naming only ``checker`` cannot be tracked by VRRP.
"""

from __future__ import annotations

import re

from pykeep.config.diagnostics import Severity
from pykeep.config.lexer import Line
from pykeep.config.model import BfdInstance
from pykeep.config.parser import Parser, Table, block, kw

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME_MAX = 31  # BFD_INAME_MAX - 1
_UINT_MS_MAX = (2**32 - 1) // 1000
_MS = re.compile(r"\+?(\d+)(?:\.(\d{1,3}))?")
_SENSIBLE_MS = 10_000


def _cur(p: Parser) -> dict[str, Any] | None:
    d: dict[str, Any] | None = p.state.cur.get("bfd")
    return d


def _bfd_cur(p: Parser) -> dict[str, Any] | None:
    """The block, for a keyword only keepalived's BFD process reads.

    bfd_parser.c init_bfd_keywords installs these with ignore_handler in the
    checker and VRRP processes; the BFD process reads the file last, so once
    it has stopped (``State.bfd_stopped``) it says nothing more.
    """
    if p.state.bfd_stopped or p.bfd_quiet:
        return None
    return _cur(p)


def _value(p: Parser, line: Line) -> str | None:
    """Word 1 of a BFD-process keyword (read_*_strvec and inet_stosockaddr take
    strvec_slot(strvec, 1)).  Without it keepalived's BFD process stops (parser.c
    null_strvec, exit 2), but only after the other processes have read all of
    the file: the stop is recorded, not raised."""
    if len(line.words) > 1:
        return line.words[1]
    p.report(
        line.loc,
        Severity.MISSING_PARAMETER,
        f"*** Configuration line starting `{line.words[0]}` is missing a parameter "
        f"after keyword `{line.words[0]}` at word position 2",
        f"give {line.words[0]} a value",
    )
    p.state.bfd_stopped = True
    return None


def _start(p: Parser, line: Line) -> None:
    name = p.arg(line)
    assert name is not None
    if len(name) > NAME_MAX:
        p.error(
            f"Configuration error: BFD instance {name} name too long (maximum length is "
            f"{NAME_MAX} characters) - ignoring",
            f"shorten the bfd_instance name to {NAME_MAX} characters",
        )
    elif any(b.name == name for b in p.state.bfd_instances) or name in p.state.bfd_vrrp:
        p.error(
            f"Configuration error: BFD instance {name} already configured - ignoring",
            "give each bfd_instance a unique name",
        )
    else:
        p.state.cur["bfd"] = {"name": name, "loc": line.loc, "_procs": set()}
        return
    p.state.cur["bfd"] = None
    p.skip_block()


def _neighbor(p: Parser, line: Line) -> None:
    d = _bfd_cur(p)
    if d is None:
        return
    word = line.words[0].replace("neighbour", "neighbor")
    spelling = "neighbour" if line.words[0] == "neighbour_ip" else "neighbor"
    d["_spelling"] = spelling
    s = _value(p, line)
    if s is None:
        return
    ip = _quiet_ip(s)
    if ip is None:
        p.error(
            f"Configuration error: BFD instance {d['name']} has malformed {spelling} "
            f"address {s}, ignoring instance",
            f"write {word} as an IPv4 or IPv6 address",
        )
        p.state.cur["bfd"] = None
        p.skip_block()
        return
    d["neighbor_ip"] = ip


def _source(p: Parser, line: Line) -> None:
    d = _bfd_cur(p)
    if d is None:
        return
    s = _value(p, line)
    if s is None:
        return
    ip = _quiet_ip(s)
    if ip is None:
        p.error(
            f"Configuration error: BFD instance {d['name']} has malformed source address "
            f"{s}, ignoring",
            "write source_ip as an IPv4 or IPv6 address",
        )
        return
    d["source_ip"] = ip


def _quiet_ip(s: str) -> Any:
    """lib/utils.c inet_stosockaddr: what follows a '-' or a '/' is cut off first."""
    import ipaddress

    cut = min((i for i in (s.find("-"), s.find("/")) if i >= 0), default=len(s))
    try:
        return ipaddress.ip_address(s[:cut])
    except ValueError:
        return None


def _interval(key: str, lo_ms: int) -> Any:
    def handler(p: Parser, line: Line) -> None:
        d = _bfd_cur(p)
        if d is None:
            return
        s = _value(p, line)
        if s is None:
            return
        m = _MS.fullmatch(s)
        us = None
        if m is not None:
            us = int(m.group(1)) * 1000 + int((m.group(2) or "").ljust(3, "0") or "0")
            if not lo_ms * 1000 <= us <= _UINT_MS_MAX * 1000:
                us = None
        if us is None:
            p.error(
                f"Configuration error: BFD instance {d['name']} {key} value {s} is not valid "
                f"(must be in range [{lo_ms}-{_UINT_MS_MAX}]), ignoring",
                f"give {key} in milliseconds (up to 3 decimals)",
            )
            return
        d[f"{key}_us"] = us
        if us > _SENSIBLE_MS * 1000:
            p.report(
                line.loc,
                Severity.INFO,
                f"Configuration warning: BFD instance {d['name']} {key} value {s} is larger "
                f"than max sensible ({_SENSIBLE_MS})",
                "",
            )

    return handler


def _byte(key: str, label: str, lo: int) -> Any:
    """multiplier, ttl/hoplimit, max_hops: a small integer in [lo, 255] (bfd_parser.c)."""

    def handler(p: Parser, line: Line) -> None:
        d = _bfd_cur(p)
        if d is None or _value(p, line) is None:
            return
        v = _quiet_int(line, lo, 255)
        if v is None:
            given = line.words[1]
            p.error(
                f"Configuration error: BFD instance {d['name']} {label} value "
                f"{given} not valid (must be in range [{lo}-255]), ignoring",
                f"give {key} in [{lo}, 255]",
            )
            return
        # keepalived stores these in a uint8_t: max_hops -1 is 255, which turns
        # the TTL check off.
        d[key] = v & 0xFF

    return handler


def _passive(p: Parser, line: Line) -> None:
    d = _bfd_cur(p)
    if d is not None:
        d["passive"] = True


def _weight(p: Parser, line: Line) -> None:
    d = _cur(p)
    if d is None:
        return
    v = _quiet_int(line, -253, 253)
    if v is None:
        p.error(
            f"Configuration error: BFD instance {d['name']} weight value "
            f"{line.words[1] if len(line.words) > 1 else ''} not valid (must be in range "
            "[-253-253]), ignoring",
            "give weight in [-253, 253]",
        )
    else:
        d["weight"] = v
    if len(line.words) >= 3:
        if line.words[2] == "reverse":
            d["weight_reverse"] = True
        else:
            p.error(
                f"Configuration error: BFD instance {d['name']} weight {line.words[1]} "
                f"unknown option {line.words[2]}",
                "the only option after the weight is 'reverse'",
            )


def _process(which: str) -> Any:
    def handler(p: Parser, line: Line) -> None:
        d = _cur(p)
        if d is not None:
            d["_procs"].add(which)

    return handler


def _quiet_int(line: Line, lo: int, hi: int) -> int | None:
    if len(line.words) < 2:
        return None
    try:
        v = int(line.words[1], 10)
    except ValueError:
        return None
    return v if lo <= v <= hi else None


def _end(p: Parser) -> None:
    d = p.state.cur.pop("bfd", None)
    if d is None:
        return
    spelling = d.pop("_spelling", "neighbor")
    procs = d.pop("_procs")
    # keepalived's VRRP process reads the block on its own and keeps the
    # name for track_bfd whatever the BFD process thinks of the rest
    # (bfd_parser.c bfd_vrrp_handler / bfd_vrrp_end_handler): a block the BFD
    # side disables is still trackable, and simply never comes Up.
    if not procs or "vrrp" in procs:
        p.state.bfd_vrrp[d["name"]] = (d.get("weight", 0), d.get("weight_reverse", False))
    if not procs or "checker" in procs:
        # The checker process's view, for BFD_CHECK (bfd_parser.c bfd_checker_handler).
        p.state.bfd_checker.add(d["name"])
    if p.state.bfd_stopped or p.bfd_quiet:
        return  # the BFD process's own checks: it stopped before this '}', or is not this pass
    where = p.close_loc() or d["loc"]
    nbr = d.get("neighbor_ip")
    if nbr is None:
        p.report(
            where,
            Severity.GENERAL_ERROR,
            f"Configuration error: BFD instance {d['name']} has no {spelling} address set, "
            "disabling instance",
            f"add '{spelling}_ip ADDRESS' to bfd_instance {d['name']}",
        )
        return
    src = d.get("source_ip")
    if src is not None and src.version != nbr.version:
        p.report(
            where,
            Severity.GENERAL_ERROR,
            f"Configuration error: BFD instance {d['name']} source address {src} and "
            f"{spelling} address {nbr} are not of the same family, disabling instance",
            "use one address family for both",
        )
        return
    for other in p.state.bfd_instances:
        if other.neighbor_ip == nbr and other.source_ip == src:
            what = f"source/{spelling} address {src}/{nbr}" if src else f"{spelling} address {nbr}"
            p.report(
                where,
                Severity.GENERAL_ERROR,
                f"Configuration error: BFD instance {d['name']} has duplicate {what}, "
                "ignoring instance",
                "one bfd_instance a neighbour and source address",
            )
            return
    ttl = d.get("ttl") or (255 if nbr.version == 4 else 64)
    d["ttl"] = ttl
    if d.get("max_hops", 0) > ttl:
        p.report(
            where,
            Severity.GENERAL_ERROR,
            f"BFD instance {d['name']}: max_hops exceeds ttl/hoplimit - setting to ttl/hoplimit",
            "make max_hops at most ttl",
        )
        d["max_hops"] = ttl
    p.state.bfd_instances.append(BfdInstance(**d))


def install(root: Table) -> None:
    """Register ``bfd_instance`` and its keywords (bfd_parser.c init_bfd_keywords)."""
    bfd = block(root, "bfd_instance", _start, _end)
    kw(bfd, "source_ip", _source)
    kw(bfd, "neighbor_ip", _neighbor)
    kw(bfd, "neighbour_ip", _neighbor)
    kw(bfd, "min_rx", _interval("min_rx", 1))
    kw(bfd, "min_tx", _interval("min_tx", 1))
    kw(bfd, "idle_tx", _interval("idle_tx", 1000))
    kw(bfd, "multiplier", _byte("multiplier", "multiplier", 1))
    kw(bfd, "passive", _passive)
    kw(bfd, "ttl", _byte("ttl", "ttl/hoplimit", 1))
    kw(bfd, "hoplimit", _byte("ttl", "ttl/hoplimit", 1))
    kw(bfd, "max_hops", _byte("max_hops", "max_hops", -1))
    kw(bfd, "weight", _weight)
    kw(bfd, "vrrp", _process("vrrp"))
    kw(bfd, "checker", _process("checker"))
