"""Values keepalived judges even where pykeep does not act on the keyword.

Many keywords change nothing that pykeep runs (process priorities, netlink
buffer sizes, VMAC details), yet keepalived's handlers still read their
values (core/global_parser.c and vrrp/vrrp_parser.c, one handler each) and
fail the config test on a bad one.  ``pykeep -t`` must give the same verdict
on the same lines, so each such keyword gets a *check* run before its
handler: it reports what keepalived reports and says whether the handler
should still run.  Three shapes cover the handlers: a yes/no flag, a bounded
number, a required word.  Ranges and sentences were checked against
keepalived 2.2.7 itself (tests/differential).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pykeep.config.diagnostics import Severity
from pykeep.config.lexer import Line
from pykeep.config.parser import Keyword, Parser, Table

TYPE_CHECKING = False  # typing stays unimported at run time: start-up counts (pykeep -t)
if TYPE_CHECKING:
    from typing import Any

    from pykeep.config.parser import Handler

# True: the value is fine, the keyword's own handler runs next.
Check = Callable[[Parser, Line], bool]

# lib/parser.c check_true_false.
_TRUE_FALSE = frozenset({"true", "false", "on", "off", "yes", "no"})
_UINT = 2**32 - 1
_INT = 2**31 - 1
_CPUS = os.cpu_count() or 1


def _instance(p: Parser) -> str:
    cur = p.state.cur.get("vrrp") or {}
    return str(cur.get("name", ""))


def _group(p: Parser) -> str:
    cur = p.state.cur.get("sg") or {}
    return str(cur.get("name", ""))


def flag(message: str) -> Check:
    """No word, or a true/false word; anything else is reported with ``message``.

    ``{v}`` is the word, ``{i}`` the vrrp_instance's name, ``{g}`` the sync
    group's.  The words are parser.c check_true_false's, case and all.
    """

    def check(p: Parser, line: Line) -> bool:
        if len(line.words) > 1 and line.words[1] not in _TRUE_FALSE:
            p.error(
                message.format(v=line.words[1], i=_instance(p), g=_group(p)),
                "write the keyword alone, or with true/false",
            )
            return False
        return True

    return check


def number(
    lo: int, hi: int, message: str, missing: str | None = None, alone: bool = False
) -> Check:
    """A number in [lo, hi]; ``missing`` is the sentence without one (None: exit 2, as
    keepalived stops; "": silently nothing).  ``alone``: the handler first checks
    that the number is the only word (``vector_size(strvec) == 2``), and reports
    ``message`` for any other count."""

    def check(p: Parser, line: Line) -> bool:
        if len(line.words) < 2:
            if missing is None:
                p.arg(line)  # keepalived stops here: exit 2
            elif missing:
                p.error(missing.format(i=_instance(p)), f"give {line.words[0]} a number")
            return False
        if alone and len(line.words) > 2:
            p.error(
                message.format(v=line.words[1], i=_instance(p)), f"give {line.words[0]} one number"
            )
            return False
        # '""' is read as strtoul("") reads it: 0, which the range then judges.
        if p.to_int(line.words[1], lo, hi, line, line.words[0]) is None:
            p.error(
                message.format(v=line.words[1], i=_instance(p)),
                f"{line.words[0]} takes a number in [{lo}, {hi}]",
            )
            return False
        return True

    return check


def word(missing: str | None) -> Check:
    """A required word; ``missing`` as for ``number``."""

    def check(p: Parser, line: Line) -> bool:
        if len(line.words) < 2:
            if missing is None:
                p.arg(line)
            else:
                p.error(missing.format(i=_instance(p)), f"give {line.words[0]} a value")
            return False
        return True

    return check


def decimal(lo: float, hi: float, message: str) -> Check:
    """Seconds in [lo, hi] (parser.c read_decimal_unsigned_long); a missing value stops (exit 2)."""

    def check(p: Parser, line: Line) -> bool:
        if len(line.words) > 1 and line.words[1] == "":
            return True
        if p.decimal_arg(line, lo, hi) is None:
            p.error(message.format(v=line.words[1]), f"{line.words[0]} takes [{lo}, {hi}]")
            return False
        return True

    return check


def once(message: str) -> Check:
    """keepalived keeps the first of these and reports the others (``{v}``: the rest)."""

    def check(p: Parser, line: Line) -> bool:
        key = f"_seen:{line.words[0]}"
        g = p.state.global_defs
        if g.get(key):
            p.error(message.format(v=" ".join(line.words[1:])), f"keep one {line.words[0]}")
            return False
        g[key] = True
        return True

    return check


def process_name(p: Parser, line: Line) -> bool:
    """global_parser.c set_process_name: names longer than the kernel's 15 are cut."""
    if len(line.words) < 2:
        p.arg(line)
        return False
    if len(line.words[1]) > 15:
        p.error(
            f"Process name {line.words[1]} more than 15 characters, truncating",
            "use at most 15 characters",
        )
    return True


def always(message: str) -> Check:
    """keepalived reports the keyword itself, whatever follows (deprecated forms)."""

    def check(p: Parser, line: Line) -> bool:
        p.error(message.format(i=_instance(p)), f"remove {line.words[0]}")
        return True

    return check


def extra_if(lo: int, hi: int, invalid: str, missing: str) -> Check:
    """``[all] SECONDS`` in any order (vrrp_parser.c vrrp_garp_extra_if_handler,
    global_parser.c vrrp_vmac_garp_extra_if_handler): every other word is a time."""

    def check(p: Parser, line: Line) -> bool:
        seen = False
        for w in line.words[1:]:
            if w == "all":
                continue
            if p.to_int(w, lo, hi, line, line.words[0]) is None:
                p.error(invalid.format(v=w, i=_instance(p)), f"{line.words[0]} takes [all] SECONDS")
                return False
            seen = True
        if not seen:
            p.error(missing.format(i=_instance(p)), f"give {line.words[0]} a time in seconds")
        return seen

    return check


def then(*checks: Check) -> Check:
    def check(p: Parser, line: Line) -> bool:
        return all(c(p, line) for c in checks)

    return check


def _rt_priority(proc: str) -> Check:
    """global_parser.c *_rt_priority_handler: out of [1, 99] is clamped, with a message."""
    what = f"{proc} process real-time priority"

    def check(p: Parser, line: Line) -> bool:
        if len(line.words) < 2:
            p.error(f"No {what} specified", "give a real-time priority in [1, 99]")
            return False
        v = line.words[1]
        n = p.to_int(v, -_INT - 1, _INT, line, line.words[0])
        if n is None:
            p.error(f"{what} '{v}' invalid", "give a real-time priority in [1, 99]")
            return False
        if n < 1:
            p.error(f"{what} {v} less than minimum 1 - setting to minimum", "use 1..99")
        elif n > 99:
            p.error(f"{what} {v} greater than maximum 99 - setting to maximum", "use 1..99")
        return True

    return check


def _old_unicast_checksum(p: Parser, line: Line) -> bool:
    """vrrp_parser.c vrrp_unicast_chksum_handler: only "never" may follow."""
    if len(line.words) > 1 and line.words[1] != "never":
        p.error(
            f"({_instance(p)}) Unknown old_unicast_chksum mode {line.words[1]} - ignoring",
            "write 'old_unicast_checksum' alone, or 'old_unicast_checksum never'",
        )
        return False
    return True


def _ipsets(p: Parser, line: Line) -> bool:
    # Debian's keepalived 2.2.7 is built without libipset: the keyword is unknown there.
    p.report(
        line.loc,
        Severity.UNKNOWN_KEYWORD,
        "Unknown keyword 'vrrp_ipsets'",
        "ipsets are not supported (keepalived built without ipset); use 'nftables'",
    )
    return False


_GLOBAL: dict[str, Check] = {
    name: flag(f"Invalid value '{{v}}' for global {name} specified")
    for name in (
        "smtp_alert",
        "smtp_alert_vrrp",
        "smtp_alert_checker",
        "vrrp_notify_priority_changes",
        "vrrp_netlink_cmd_rcv_bufs_force",
        "vrrp_netlink_monitor_rcv_bufs_force",
        "process_monitor_rcv_bufs_force",
        "lvs_netlink_cmd_rcv_bufs_force",
        "lvs_netlink_monitor_rcv_bufs_force",
        "rs_init_notifies",
        "no_checker_emails",
    )
}
_GLOBAL.update(
    {
        name: flag(f"Invalid value for {name} specified")
        for name in ("vrrp_min_garp", "vrrp_lower_prio_no_advert", "vrrp_higher_prio_send_advert")
    }
)
_GLOBAL.update(
    {
        # keepalived's own spelling in this message (data_use_instance_handler).
        "data_use_instance": flag("Invalid value '{v}' for global date_use_instance specified"),
        "startup_script_timeout": number(
            1,
            1000,
            "startup_script_timeout '{v}' must be in [1, 1000] - ignoring",
            "startup_script_timeout requires value",
        ),
        "shutdown_script_timeout": number(
            1,
            1000,
            "shutdown_script_timeout '{v}' must be in [1, 1000] - ignoring",
            "shutdown_script_timeout requires value",
        ),
        "max_auto_priority": number(
            -1, 99, "max_auto_priority '{v}' must be in [0, 99] (or -1 to disable) - ignoring", ""
        ),
        "min_auto_priority_delay": number(
            1,
            10000000,
            "min_auto_priority_delay '{v}' must be in [1, 10000000] - ignoring",
            "min_auto_priority_delay requires delay time",
        ),
        "vrrp_down_timer_adverts": number(1, 100, "Invalid vrrp_down_timer_adverts [1:100] '{v}'"),
        "vrrp_garp_extra_if": extra_if(
            1,
            86400,
            "vrrp_garp_extra_if '{v}' invalid - ignoring",
            "vrrp_garp_extra_if specified without time - ignoring",
        ),
        "vrrp_vmac_garp_intvl": then(
            always(
                'Keyword "vrrp_vmac_garp_intvl" is deprecated - please use "vrrp_garp_extra_if"'
            ),
            extra_if(
                1,
                86400,
                "vrrp_vmac_garp_intvl '{v}' invalid - ignoring",
                "vrrp_vmac_garp_intvl specified without time - ignoring",
            ),
        ),
        "nftables_priority": number(-_INT - 1, _INT, "invalid nftables chain priority '{v}'"),
        "nftables_ipvs_priority": number(
            -_INT - 1, _INT, "invalid ipvs nftables chain priority '{v}'"
        ),
        "nftables_ipvs_start_fwmark": number(
            1, _UINT, "invalid ipvs nftables start_fwmark priority '{v}'"
        ),
        "random_seed": number(0, _UINT, "random_seed {v} invalid"),
        "vrrp_rx_bufs_multiplier": number(
            1, _UINT, "Invalid vrrp_rx_bufs_multiplier {v}", "Invalid vrrp_rx_bufs_multiplier"
        ),
        "vrrp_iptables": always(
            "iptables not supported, using nftables instead. Please replace 'vrrp_iptables and "
            "'vrrp_ipsets' with 'nftables' config option"
        ),
        "vrrp_ipsets": _ipsets,
    }
)
for _proc in ("vrrp", "checker", "bfd"):
    _GLOBAL[f"{_proc}_priority"] = number(
        -20,
        19,
        f"Invalid {_proc} process priority specified",
        f"No {_proc} process priority specified",
    )
    _GLOBAL[f"{_proc}_rt_priority"] = _rt_priority(_proc)
    _GLOBAL[f"{_proc}_cpu_affinity"] = number(
        0,
        _CPUS - 1,
        f"Invalid cpu_id:{{v}} specified for {_proc} process",
        f"No {_proc} cpu_id set specified",
    )
    for _rt in ("rlimit_rttime", "rlimit_rtime"):
        _GLOBAL[f"{_proc}_{_rt}"] = number(1, _UINT, f"Invalid {_proc} real-time limit - {{v}}")
for _buf in (
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs",
    "process_monitor_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs",
):
    _GLOBAL[_buf] = number(0, _UINT, f"{_buf} size ({{v}}) invalid", f"{_buf} size missing")
for _name, _missing in {
    "vmac_prefix": None,
    "vmac_addr_prefix": None,
    "default_interface": "default_interface requires interface name",
    "dbus_service_name": "dbus_service_name missing - ignoring",
}.items():
    _GLOBAL[_name] = word(_missing)


def _config_directory(p: Parser, line: Line) -> bool:
    """global_parser.c config_copy_directory_handler: the first directory named stands."""
    key = f"_seen:{line.words[0]}"
    g = p.state.global_defs
    if g.get(key):
        p.error(f"{line.words[0]} already specified - ignoring", f"keep one {line.words[0]}")
        return False
    if len(line.words) < 2:
        p.error(f"{line.words[0]} missing directory name", f"write: {line.words[0]} DIR")
        return False
    g[key] = True
    return True


for _name in ("tmp_config_directory", "config_save_dir"):
    _GLOBAL[_name] = _config_directory
for _name in ("process_name", "vrrp_process_name", "checker_process_name"):
    _GLOBAL[_name] = process_name
for _name in ("lvs_process_name", "bfd_process_name"):
    _GLOBAL[_name] = process_name
# A second FIFO script is refused by its handler (global_parser.py _fifo_script)
# only while the first one stands: global_parser.c notify_fifo_script tests
# fifo->script, which stays NULL when notify_script_init dropped the first.
for _fifo in ("notify_fifo_script", "vrrp_notify_fifo_script", "lvs_notify_fifo_script"):
    _GLOBAL[_fifo] = word(f"No {_fifo} specified")
_GLOBAL["nftables_ipvs"] = once("ipvs nftables already specified - ignoring")
_GLOBAL["vmac_addr_prefix"] = then(
    word(None), once("vmac_addr prefix has already been specified - ignoring {v}")
)
_GLOBAL["vmac_prefix"] = then(
    word(None), once("vmac prefix has already been specified - ignoring {v}")
)
_GLOBAL["vrrp_startup_delay"] = decimal(0.001, 4294.967295, "vrrp_startup_delay '{v}' is invalid")


def _snmp_socket(p: Parser, line: Line) -> bool:
    if len(line.words) < 2:
        p.error("SNMP error : snmp socket name missing", "give the agent's socket")
        return False
    if len(line.words) > 2:
        p.error("Too many parameters specified for snmp_socket - ignoring", "give one socket")
        return False
    return True


def _rx_bufs_policy(p: Parser, line: Line) -> bool:
    """global_parser.c vrrp_rx_bufs_policy_handler, word by word.

    MTU and ADVERT in any case; any other word makes keepalived read a size
    from the *first* word (its handler indexes slot 1, not the word it is
    on), so only a bad first word is reported, once per other word.  A size
    with a policy, or both policies, is reported after the words.
    """
    if len(line.words) < 2:
        p.error("vrrp_rx_bufs_policy missing", "give MTU, ADVERT or a size")
        return False
    mtu = advert = size = False
    for w in line.words[1:]:
        if w.upper() == "MTU":
            mtu = True
        elif w.upper() == "ADVERT":
            advert = True
        elif p.to_int(line.words[1], 0, _UINT, line, line.words[0]) is None:
            p.error(f"Invalid vrrp_rx_bufs_policy {w}", "give MTU, ADVERT or a size")
        else:
            size = True
    if size and (mtu or advert):
        p.error("Cannot set vrrp_rx_bufs_policy size and policy, ignoring policy")
    elif mtu and advert:
        p.error("Cannot set both vrrp_rx_bufs_policy MTU and ADVERT, ignoring ADVERT")
    return True


def _positive(name: str) -> Check:
    """global_parser.c: a repeat count of 0 is reported and made 1."""

    def check(p: Parser, line: Line) -> bool:
        if len(line.words) > 1 and line.words[1] == "0":
            p.error(f"{name} must be greater than 0, setting to 1", f"{name} counts from 1")
        return True

    return check


for _name in ("vrrp_garp_master_refresh_repeat", "vrrp_garp_master_repeat"):
    _GLOBAL[_name] = _positive(_name)
_GLOBAL["snmp_socket"] = _snmp_socket
_GLOBAL["vrrp_rx_bufs_policy"] = _rx_bufs_policy


def _vrf(p: Parser, line: Line) -> bool:
    """vrrp_parser.c vrrp_vrf_handler: judged in its order; the rest is not acted on."""
    name = p.arg(line)
    cur = p.state.cur.get("vrrp")
    if name is None or cur is None:
        return False
    i = cur.get("name", "")
    if len(name.encode("utf-8", "surrogateescape")) >= 16:
        p.error(f"({i}) VRF interface name '{name}' too long - ignoring")
    elif cur.get("interface") is not None:
        p.error(f"({i}) Cannot specify VRF interface and interface - ignoring")
    elif cur.get("_vrf") is not None:
        p.error(f"({i}) VRF interface already specified as '{cur['_vrf']}' - ignoring")
    else:
        cur["_vrf"] = name
        exists = p.interface_exists
        dynamic = p.state.global_defs.get("dynamic_interfaces")
        if exists is not None and not dynamic and not exists(name):
            p.error(f"({i}) WARNING - VRF interface {name} doesn't exist")
        return True
    return False


def _native_ipv6(p: Parser, line: Line) -> bool:
    """vrrp_parser.c vrrp_native_ipv6_handler: not once the instance is IPv4 (its
    first virtual address or unicast peer so far)."""
    cur = p.state.cur.get("vrrp") or {}
    first = [*cur.get("virtual_ipaddress", ()), *cur.get("unicast_peers", ())][:1]
    if first:
        a = first[0]
        version = a.address.version
        if version == 4:
            p.error(f"({cur.get('name', '')}) Cannot specify native_ipv6 with IPv4 addresses")
            return False
    return True


_INCLUDE_CHECKS = frozenset({"read", "match", "wildcard_match", "brace_match"})


def _include_check(p: Parser, line: Line) -> bool:
    """parser.c include_check_set: a set of checks, then +/- changes to it."""
    for i, w in enumerate(line.words[1:], 1):
        if w.startswith(("+", "-")):
            name = w[1:]
        elif i == 1:
            name = w
        else:
            p.error(
                f"Duplicate include_check '{w}' specified - ignoring", "prefix changes with + or -"
            )
            continue
        if name not in _INCLUDE_CHECKS:
            p.error(
                f"Unknown include_check type '{name}' - ignoring",
                "use read, match, wildcard_match or brace_match",
            )
    return True


_INSTANCE: dict[str, Check] = {
    "vrf": _vrf,
    "native_ipv6": _native_ipv6,
    "notify_priority_changes": flag(
        "({i}) Invalid value '{v}' for notify_priority_changes specified"
    ),
    "lower_prio_no_advert": flag("({i}) invalid lower_prio_no_advert {v} specified"),
    "higher_prio_send_advert": flag("({i}) invalid higher_prio_send_advert {v} specified"),
    "skip_check_adv_addr": flag("({i}) invalid skip_check_adv_addr {v} specified"),
    "strict_mode": flag("({i}) invalid strict_mode {v} specified"),
    "smtp_alert": flag("Invalid vrrp_instance smtp_alert parameter {v}"),
    "debug": number(0, 4, "({i}) Debug value '{v}' not valid; must be between 0-4"),
    "down_timer_adverts": number(1, 100, "({i}): Invalid down_timer_adverts [1:100] '{v}'"),
    "garp_extra_if": extra_if(
        0,
        86400,
        "({i}): garp_extra_if '{v}' invalid - ignoring",
        "({i}): garp_extra_if specified without time - ignoring",
    ),
    "vmac_garp_intvl": then(
        always('Keyword "vmac_garp_intvl" is deprecated - please use "garp_extra_if"'),
        extra_if(
            0,
            86400,
            "({i}): vmac_garp_intvl '{v}' invalid - ignoring",
            "({i}): vmac_garp_intvl specified without time - ignoring",
        ),
    ),
    # vrrp_parser.c kernel_rx_buf_size_handler: one word, read_unsigned in [0, UINT_MAX].
    "kernel_rx_buf_size": number(
        0,
        _UINT,
        "({i}) invalid kernel_rx_buf_size specified",
        "({i}) invalid kernel_rx_buf_size specified",
        alone=True,
    ),
    "old_unicast_checksum": _old_unicast_checksum,
    "linkbeat_use_polling": always(
        "({i}) 'linkbeat_use_polling' in vrrp instance deprecated - use linkbeat_interfaces block"
    ),
}

_SYNC_GROUP: dict[str, Check] = {
    "smtp_alert": flag("Invalid vrrp_group smtp_alert parameter {v}"),
    "notify_priority_changes": flag(
        "({g}) Invalid value '{v}' for sync group notify_priority_changes specified"
    ),
}


def words(n: int, message: str) -> Check:
    """Exactly ``n`` words, keyword included (check_parser.c *_snmp_name_handler)."""

    def check(p: Parser, line: Line) -> bool:
        if len(line.words) != n:
            p.error(message, f"write: {line.words[0]} NAME")
            return False
        return True

    return check


# global_parser.c reload_time_file_handler: exactly one file name.
_GLOBAL["reload_time_file"] = words(2, "reload_time_file invalid")


# check_parser.c vs_snmp_name_handler / rs_snmp_name_handler
_VIRTUAL_SERVER: dict[str, Check] = {
    "snmp_name": words(2, "virtual server snmp_name missing or extra parameters"),
}
_REAL_SERVER: dict[str, Check] = {
    "snmp_name": words(2, "real server snmp_name missing or extra parameters"),
}

_GLOBAL["include_check"] = _include_check

_TABLES = {
    "global_defs": _GLOBAL,
    "vrrp_instance": _INSTANCE,
    "vrrp_sync_group": _SYNC_GROUP,
    "virtual_server": _VIRTUAL_SERVER,
    "real_server": _REAL_SERVER,
}


def _guarded(check: Check, handler: Handler) -> Handler:
    def guarded(p: Parser, line: Line) -> None:
        if check(p, line):
            handler(p, line)

    return guarded


def guard(block: str, table: Table) -> None:
    """Put keepalived's value check in front of each keyword of ``block`` that has one."""
    checks = _TABLES.get(block, {})
    for name, k in table.items():
        check = checks.get(name)
        if check is not None and k.handler is not None:
            k.handler = _guarded(check, k.handler)


# -- vrrp_track_process (vrrp/vrrp_parser.c vrrp_tp_*_handler) ------------------
# keepalived's checks run in front of the block's handlers (vrrp_parser.py).

_TP = "_track_process"


def _tp(p: Parser) -> dict[str, Any]:
    d = p.state.cur.get(_TP)
    if d is None:
        d = p.state.cur[_TP] = {}
    return d


def _tp_name(p: Parser) -> str:
    return str(_tp(p).get("name", ""))


def _tp_range(what: str, lo: float, hi: float, text: str, decimal_: bool = False) -> Check:
    def check(p: Parser, line: Line) -> bool:
        if decimal_:
            v: float | None = p.decimal_arg(line, lo, hi)
        else:
            v = p.int_arg(line, int(lo), int(hi))
        if v is None:
            p.error(
                f"{what} ({line.words[1]}) for vrrp_track_process {_tp_name(p)} must be "
                f"between [{text}] inclusive. Ignoring...",
                f"{line.words[0]} takes [{text}]",
            )
            return False
        return True

    return check


def _tp_process(p: Parser, line: Line) -> bool:
    _tp(p)["process"] = True
    return True


def _tp_param_match(p: Parser, line: Line) -> bool:
    if len(line.words) > 1 and line.words[1] not in ("initial", "partial"):
        p.error(f"Invalid param_match type {line.words[1]} - ignoring", "use initial or partial")
        return False
    return True


_TRACK_PROCESS: dict[str, Check] = {
    "process": _tp_process,
    "param_match": _tp_param_match,
    "weight": _tp_range("Weight", -254, 254, "-254..254"),
    "quorum": _tp_range("Quorum", 1, 65535, "1..65535"),
    "delay": _tp_range("delay", 0.000001, 3600, "0.000001..3600", True),
    "terminate_delay": _tp_range("terminate_delay", 0.000001, 3600, "0.000001..3600", True),
    "fork_delay": _tp_range("fork_delay", 0.000001, 3600, "0.000001..3600", True),
}


def track_process(k: Keyword) -> None:
    """Judge ``vrrp_track_process NAME { … }`` as keepalived does, before it is kept."""
    assert k.sub is not None
    opened = k.handler

    def open_(p: Parser, line: Line) -> None:
        name = line.words[1] if len(line.words) > 1 else ""
        p.state.cur[_TP] = {"name": name}
        if opened is not None:
            opened(p, line)

    def close(p: Parser) -> None:
        d = p.state.cur.pop(_TP, None) or {}
        if not d.get("process"):
            # vrrp_parser.c vrrp_tp_end_handler, at the block's '}'.
            p.report(
                p.close_loc(),
                Severity.GENERAL_ERROR,
                f"track process '{d.get('name', '')}' process name not specified",
                "add 'process NAME'",
            )

    ended = k.close

    def close_both(p: Parser) -> None:
        close(p)
        if ended is not None:
            ended(p)

    k.handler = open_
    k.close = close_both
    for name, kw_ in k.sub.items():
        check = _TRACK_PROCESS.get(name)
        if check is not None and kw_.handler is not None:
            kw_.handler = _guarded(check, kw_.handler)
