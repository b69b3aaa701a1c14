"""Policy-routing rules (virtual_rules / static_rules) as rtnetlink messages.

Pure: a :class:`~pykeep.config.model.RuleSpec` goes in, the body of an
``RTM_NEWRULE`` / ``RTM_DELRULE`` request comes out; the shell
(:mod:`vrrp.static`) sends it.  The words are read as keepalived reads
them (vrrp_iprule.c ``alloc_rule``) and the message carries what
keepalived's ``netlink_rule`` puts in it:

- a table below 256 goes in the header, a larger one in ``FRA_TABLE``;
- ``FRA_PROTOCOL`` is 18 (``RTPROT_KEEPALIVED``, ``ip rule`` shows "proto
  keepalived") unless the rule says ``no_track``: keepalived forces it so
  that it can recognise its own rules;
- the preference is always sent: the parser gave a rule without one the
  next number of keepalived's per-family counter.

A word this module cannot encode raises :class:`ValueError` naming it; the
shell logs it against the rule and carries on, as keepalived does with a
rule the kernel refuses.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from pykeep.config.model import RuleSpec

RTM_NEWRULE = 32
RTM_DELRULE = 33

FRA_DST = 1
FRA_SRC = 2
FRA_IIFNAME = 3
FRA_GOTO = 4
FRA_PRIORITY = 6
FRA_FWMARK = 10
FRA_FLOW = 11
FRA_SUPPRESS_IFGROUP = 13
FRA_SUPPRESS_PREFIXLEN = 14
FRA_TABLE = 15
FRA_FWMASK = 16
FRA_OIFNAME = 17
FRA_L3MDEV = 19
FRA_UID_RANGE = 20
FRA_PROTOCOL = 21
FRA_IP_PROTO = 22
FRA_SPORT_RANGE = 23
FRA_DPORT_RANGE = 24

FR_ACT_TO_TBL = 1
FR_ACT_GOTO = 2
FR_ACT_NOP = 3
FR_ACT_BLACKHOLE = 6
FR_ACT_UNREACHABLE = 7
FR_ACT_PROHIBIT = 8
FIB_RULE_INVERT = 0x2
RTPROT_KEEPALIVED = 18

_ACTIONS = {
    "nop": FR_ACT_NOP,
    "blackhole": FR_ACT_BLACKHOLE,
    "unreachable": FR_ACT_UNREACHABLE,
    "prohibit": FR_ACT_PROHIBIT,
}
# /etc/iproute2/rt_tables as shipped; other names are read from that file.
_TABLES = {"default": 253, "main": 254, "local": 255}
_IP_PROTOS = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "sctp": 132}
_FIB_RULE_HDR = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")


def _attr(kind: int, value: bytes) -> bytes:
    raw = _RTA.pack(4 + len(value), kind) + value
    return raw + b"\0" * (-len(raw) % 4)


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _number(text: str) -> int:
    """keepalived reads these with base 0 (strtoul): 0x10 and 16 are the same."""
    return int(text, 0)


def _table(text: str, rt_tables: str = "/etc/iproute2/rt_tables") -> int:
    """A table number or name (rt_names.c ``find_rttables_table``)."""
    if text in _TABLES:
        return _TABLES[text]
    try:
        return _number(text)
    except ValueError:
        pass
    try:
        with open(rt_tables, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split("#", 1)[0].split()
                if len(parts) == 2 and parts[1] == text:
                    return _number(parts[0])
    except OSError:
        pass
    raise ValueError(f"routing table {text} not found")


def _range(text: str) -> bytes:
    """``N`` or ``N-M``: struct fib_rule_port_range / fib_rule_uid_range."""
    lo, _, hi = text.partition("-")
    return struct.pack("=II", _number(lo), _number(hi or lo))


def _port_range(text: str) -> bytes:
    lo, _, hi = text.partition("-")
    return struct.pack("=HH", _number(lo), _number(hi or lo))


def rule_body(spec: RuleSpec) -> tuple[int, bytes]:
    """(address family, request body) for ``spec``; ValueError on a word we cannot encode."""
    w = spec.words
    family = socket.AF_INET6 if spec.family == 6 else socket.AF_INET
    table = 0
    action = 0
    flags = 0
    tos = 0
    src_len = dst_len = 0
    attrs: list[bytes] = []
    protocol: int | None = None
    no_track = False
    i = 0

    def arg() -> str:
        if i + 1 >= len(w):
            raise ValueError(f"'{w[i]}' needs a value")
        return w[i + 1]

    while i < len(w):
        word = w[i]
        if word in ("inet", "inet6"):
            i += 1
            continue
        if word in ("from", "to"):
            val = arg()
            if val not in ("all", "any", "default"):
                net = ipaddress.ip_network(val, strict=False)
                if word == "from":
                    src_len = net.prefixlen
                    attrs.append(_attr(FRA_SRC, net.network_address.packed))
                else:
                    dst_len = net.prefixlen
                    attrs.append(_attr(FRA_DST, net.network_address.packed))
            i += 2
            continue
        if word in ("table", "lookup"):
            table = _table(arg())
            action = FR_ACT_TO_TBL
            i += 2
            continue
        if word in ("preference", "order", "priority", "pref", "prio"):
            i += 2  # spec.preference holds it
            continue
        if word == "not":
            flags |= FIB_RULE_INVERT
        elif word in ("tos", "dsfield"):
            tos = _number(arg())
            i += 1
        elif word == "fwmark":
            mark, _, mask = arg().partition("/")
            attrs.append(_u32(FRA_FWMARK, _number(mark)))
            if mask:
                attrs.append(_u32(FRA_FWMASK, _number(mask)))
            i += 1
        elif word == "realms":
            src_realm, _, dst_realm = arg().rpartition("/")
            attrs.append(_u32(FRA_FLOW, (_number(src_realm or "0") << 16) | _number(dst_realm)))
            i += 1
        elif word in ("suppress_prefixlength", "sup_pl"):
            attrs.append(_u32(FRA_SUPPRESS_PREFIXLEN, _number(arg())))
            i += 1
        elif word in ("suppress_ifgroup", "sup_group"):
            attrs.append(_u32(FRA_SUPPRESS_IFGROUP, _number(arg())))
            i += 1
        elif word in ("dev", "iif"):
            attrs.append(_attr(FRA_IIFNAME, arg().encode() + b"\0"))
            i += 1
        elif word == "oif":
            attrs.append(_attr(FRA_OIFNAME, arg().encode() + b"\0"))
            i += 1
        elif word == "l3mdev":
            attrs.append(_attr(FRA_L3MDEV, b"\x01"))
            action = FR_ACT_TO_TBL
        elif word == "uidrange":
            attrs.append(_attr(FRA_UID_RANGE, _range(arg())))
            i += 1
        elif word == "protocol":
            protocol = _number(arg())
            i += 1
        elif word == "ipproto":
            val = arg()
            attrs.append(_attr(FRA_IP_PROTO, bytes([_IP_PROTOS.get(val) or _number(val)])))
            i += 1
        elif word in ("sport", "dport"):
            kind = FRA_SPORT_RANGE if word == "sport" else FRA_DPORT_RANGE
            attrs.append(_attr(kind, _port_range(arg())))
            i += 1
        elif word == "no_track":
            no_track = True
        elif word == "track_group":
            i += 1  # static rules: the group only decides re-adding (not done)
        elif word == "type":
            pass  # the action word follows
        elif word == "goto":
            attrs.append(_u32(FRA_GOTO, _number(arg())))
            action = FR_ACT_GOTO
            i += 1
        elif word in _ACTIONS:
            action = _ACTIONS[word]
        else:
            raise ValueError(f"unknown rule option {word}")
        i += 1
    if action == 0:
        raise ValueError("no action specified for rule")
    if spec.preference is not None:
        attrs.append(_u32(FRA_PRIORITY, spec.preference))
    if table >= 256:
        attrs.append(_u32(FRA_TABLE, table))
        table = 0
    if not no_track:
        protocol = RTPROT_KEEPALIVED
    if protocol is not None:
        attrs.append(_attr(FRA_PROTOCOL, bytes([protocol])))
    hdr = _FIB_RULE_HDR.pack(family, dst_len, src_len, tos, table, 0, 0, action, flags)
    return family, hdr + b"".join(attrs)
