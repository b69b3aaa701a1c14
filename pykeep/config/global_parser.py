"""``global_defs`` and the top-level process keywords (keepalived/core/global_parser.c)."""

from __future__ import annotations

import ipaddress

from pykeep.config import values
from pykeep.config.diagnostics import Severity
from pykeep.config.lexer import Line
from pykeep.config.model import LvsSyncDaemon, LvsTimeouts
from pykeep.config.parser import Handler, Parser, Table, block, c_int, generic, kw

# Keywords keepalived 2.2.7 knows in global_defs that pykeep records without acting on.
_ACCEPTED = [
    "process_names",
    "process_name",
    "vrrp_process_name",
    "checker_process_name",
    "lvs_process_name",
    "bfd_process_name",
    "max_auto_priority",
    "min_auto_priority_delay",
    "default_interface",
    "disable_local_igmp",
    "vrrp_iptables",
    "vrrp_ipsets",
    "nftables_ifindex",
    "nftables_ipvs",
    "nftables_ipvs_priority",
    "nftables_ipvs_start_fwmark",
    "nftables_counters",
    "vrrp_priority",
    "vrrp_no_swap",
    "vrrp_rt_priority",
    "vrrp_cpu_affinity",
    "vrrp_rlimit_rttime",
    "vrrp_rlimit_rtime",
    "checker_priority",
    "checker_no_swap",
    "checker_rt_priority",
    "checker_cpu_affinity",
    "checker_rlimit_rttime",
    "checker_rlimit_rtime",
    "bfd_priority",
    "bfd_no_swap",
    "bfd_rt_priority",
    "bfd_cpu_affinity",
    "bfd_rlimit_rttime",
    "bfd_rlimit_rtime",
    "snmp_socket",
    "enable_traps",
    "enable_snmp_vrrp",
    "enable_snmp_keepalived",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "enable_snmp_checker",
    "enable_dbus",
    "dbus_service_name",
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_cmd_rcv_bufs_force",
    "vrrp_netlink_monitor_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs_force",
    "process_monitor_rcv_bufs",
    "process_monitor_rcv_bufs_force",
    "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs_force",
    "lvs_netlink_monitor_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs_force",
    "rs_init_notifies",
    "vrrp_rx_bufs_policy",
    "vrrp_rx_bufs_multiplier",
    "vmac_addr_prefix",
    "random_seed",
    "reload_check_config",
    "reload_time_file",
    "reload_repeat",
    "reload_file",
    "include_check",
    "config_save_dir",
    "tmp_config_directory",
    "data_use_instance",
]
# net_namespace, instance, use_pid_dir … are top-level keywords: inside
# global_defs keepalived 2.2.7 reports them as unknown (global_parser.c
# init_global_keywords installs them with install_keyword_root).

_MAX_TIMER = 4294.967295


def _set(name: str, value: object) -> object:
    return value


def _g(p: Parser) -> dict[str, object]:
    return p.state.global_defs


def _router_id(p: Parser, line: Line) -> None:
    v = p.opt_arg(line, "routerid name missing - ignoring")
    if v is not None:
        _g(p)["router_id"] = v


def _email(p: Parser, line: Line) -> None:
    emails = [w for ln in p.value_block(line) for w in ln.words]
    if not emails:
        p.report(
            p.value_end_loc(),
            Severity.GENERAL_ERROR,
            "Warning - empty notification_email block",
            "list addresses or remove the block",
        )
    _g(p)["notification_email"] = tuple(emails)


def _str_key(key: str) -> object:
    def handler(p: Parser, line: Line) -> None:
        v = p.opt_arg(line, f"{key} missing - ignoring")
        if v is not None:
            _g(p)[key] = v

    return handler


# Flags whose handler fails the test on other words (global_parser.c), with the
# words each takes after the keyword and keepalived's sentence for anything
# else.  Only checker_log_all_failures reads true/false (check_true_false,
# case-sensitive); dynamic_interfaces_handler knows only allow_if_changes and
# lvs_flush_on_stop_handler only "VS".
_FLAG_ERRORS: dict[str, tuple[frozenset[str], str]] = {
    "checker_log_all_failures": (
        frozenset({"true", "on", "yes", "false", "off", "no"}),
        "Invalid value for checker_log_all_failures specified",
    ),
    "dynamic_interfaces": (
        frozenset({"allow_if_changes"}),
        "Unknown dynamic_interfaces option '{v}'",
    ),
    "lvs_flush_on_stop": (frozenset({"VS"}), "Unknown lvs_flush_on_stop type {v}"),
}
_FALSE_WORDS = frozenset({"false", "off", "no"})


def _log_unknown_vrids(p: Parser, line: Line) -> None:
    # global_parser.c vrrp_log_unknown_vrids_handler: set, whatever follows
    _g(p)["log_unknown_vrids"] = True


def _startup_delay(p: Parser, line: Line) -> None:
    # global_parser.c vrrp_startup_delay_handler (the value is judged in values.py)
    v = p.decimal_arg(line, 0.001, _MAX_TIMER)
    if v is not None:
        _g(p)["vrrp_startup_delay"] = v


def _no_email_faults(p: Parser, line: Line) -> None:
    # global_parser.c no_email_faults_handler: set, whatever follows the keyword
    _g(p)["no_email_faults"] = True


def _fifo_states_on_reload(p: Parser, line: Line) -> None:
    # global_parser.c fifo_write_vrrp_states_on_reload: a bare flag, words after it ignored
    p.accept(line)
    _g(p)["fifo_write_vrrp_states_on_reload"] = True


def _flag_key(key: str) -> object:
    words, message = _FLAG_ERRORS.get(key, (frozenset(), ""))

    def handler(p: Parser, line: Line) -> None:
        if message and len(line.words) > 1:
            v = line.words[1]
            if v not in words:
                also = ", or " + "/".join(sorted(words)) if words else ""
                p.error(message.format(v=v), f"use the bare keyword{also}")
                return
            _g(p)[key] = v not in _FALSE_WORDS
            return
        _g(p)[key] = p.flag(line)

    return handler


_UMASK_BITS = frozenset(f"I{m}{w}" for m in "RWX" for w in ("USR", "GRP", "OTH"))


def _umask(p: Parser, line: Line) -> None:
    """Judged as global_parser.c umask_handler judges it; pykeep does not act on it.

    A word starting with a digit is a number (strtol base 0, permission bits
    only); otherwise the words are ``IRUSR|IWGRP…`` names, five letters each,
    joined by '|'.
    """
    p.accept(line)
    # strvec_slot(strvec, 1) first: without a word keepalived stops (null_strvec, exit 2).
    mask = p.arg(line)
    if mask is None:
        return
    if mask[:1].isdigit():
        if len(line.words) != 2:
            p.error("Extra parameter(s) to umask option", "write: umask 022")
            return
        n = _c_long_base0(mask)
        if n is None or n < 0 or n & ~0o777:
            p.error(f"invalid umask value {mask}", "write: umask 022")
        return
    need_or = False
    for word in line.words[1:]:
        i = 0
        while i < len(word):
            if need_or:
                if word[i] == "|":
                    need_or = False
                    i += 1
                    continue
                p.error(f"Invalid umask syntax {word}", "join the bits with '|': IWGRP|IWOTH")
                return
            if word[i : i + 5] not in _UMASK_BITS:
                p.error(f"Unknown umask bit {word[i:]}", "bits are IRUSR, IWGRP, IXOTH …")
                return
            i += 5
            need_or = True
    if not need_or:
        p.error("umask missing bit value", "write: umask 022")


def _c_long_base0(s: str) -> int | None:
    """strtol(s, &end, 0) when it must consume the whole word (0x…, 0… octal, decimal)."""
    t = s.lstrip(" \t\n\v\f\r")
    sign = -1 if t[:1] == "-" else 1
    t = t[1:] if t[:1] in "+-" else t
    try:
        if t[:2].lower() == "0x":
            return sign * int(t[2:], 16) if t[2:].isalnum() else None
        if t[:1] == "0" and len(t) > 1:
            return sign * int(t[1:], 8) if t[1:].isdigit() else None
        return sign * int(t) if t.isdigit() and t.isascii() else None
    except ValueError:
        return None


def _child_wait_time(p: Parser, line: Line) -> None:
    """global_parser.c child_wait_handler: judged (0..UINT_MAX seconds), then not acted on."""
    p.accept(line)
    if p.int_arg(line, 0, 2**32 - 1) is None:
        p.error(f"Invalid child_wait_time {line.words[1]}", "child_wait_time takes whole seconds")


def _smtp_helo_name(p: Parser, line: Line) -> None:
    # global_parser.c smtphelo_handler: without a name, nothing is set or said.
    if len(line.words) > 1:
        _g(p)["smtp_helo_name"] = line.words[1]


def _smtp_server(p: Parser, line: Line) -> None:
    v = p.arg(line)
    if v is None:
        return
    host = v
    if len(line.words) > 2:
        port = line.words[2]
        if p.to_int(port, 1, 65535, line, "smtp_server port") is None:
            p.error(f"Invalid smtp server {v} {port}", "write: smtp_server HOST [PORT]")
            return
        host = f"{v} {port}"
    if not _resolves(v):
        # global_parser.c smtpserver_handler: keepalived reports what neither
        # parses as an address nor resolves (the port defaults to 25 in its message).
        port = line.words[2] if len(line.words) > 2 else "25"
        p.error(f"Invalid smtp server {v} {port}", "write: smtp_server ADDRESS|HOSTNAME [PORT]")
        return
    _g(p)["smtp_server"] = host


def _resolves(v: str) -> bool:
    """An address, or a name the resolver knows: what ``keepalived -t`` accepts.

    keepalived tries the word as an address (unless it holds '-' or '/'),
    then asks getaddrinfo (lib/utils.c domain_stosockaddr), so an
    unresolvable name fails its config test; pykeep asks the same resolver.
    """
    try:
        ipaddress.ip_address(v)
        return True
    except ValueError:
        pass
    if not v or len(v) > 253 or "\x00" in v:
        return False
    from _socket import getaddrinfo  # only configurations naming an SMTP host pay for it

    try:
        return bool(getaddrinfo(v, None))
    except (OSError, UnicodeError, ValueError):
        return False


def _smtp_timeout(p: Parser, line: Line) -> None:
    v = p.int_arg(line, 0, 4294)
    if v is None:
        p.error(f"smtp_connect_timeout '{line.words[1]}' must be in [0, 4294] - ignoring")
    else:
        _g(p)["smtp_connect_timeout"] = float(v)


def _script_user(p: Parser, line: Line) -> None:
    v = p.opt_arg(line, "No script username specified")
    if v is None:
        return
    group = line.words[2] if len(line.words) > 2 else None
    from pykeep.config.script_user import FAILED_SCRIPT_USER, user_known

    g = _g(p)
    if g.get(FAILED_SCRIPT_USER) or not user_known(v, group):
        # global_parser.c script_user_handler: set_default_script_user failed,
        # and stays failed (lib/notify.c default_user_fail): every script
        # without a user of its own is then dropped, as keepalived drops it.
        g[FAILED_SCRIPT_USER] = True
        g.pop("script_user", None)
        g.pop("script_group", None)
        p.error("Error setting global script uid/gid", "name an existing user (and group)")
        return
    _g(p)["script_user"] = v
    if group is not None:
        _g(p)["script_group"] = group


def _vrrp_version(p: Parser, line: Line) -> None:
    v = p.int_arg(line, 2, 3)
    if v is not None:
        _g(p)["vrrp_version"] = v


def _mcast(p: Parser, line: Line) -> None:
    v = p.arg(line)
    if v is None:
        return
    want = 4 if line.words[0].endswith("4") else 6
    try:
        addr = ipaddress.ip_address(v)
    except ValueError:
        addr = None
    if addr is None or addr.version != want or not addr.is_multicast:
        p.error(
            f"{line.words[0]} '{v}' is not a valid IPv{want} multicast address",
            f"write an IPv{want} multicast address, e.g. "
            f"{'224.0.0.18' if want == 4 else 'ff02::12'}",
        )
        return
    _g(p)[line.words[0]] = addr


def _timer_key(key: str, lo: float, hi: float = _MAX_TIMER) -> object:
    def handler(p: Parser, line: Line) -> None:
        v = p.decimal_arg(line, lo, hi)
        if v is None:
            p.error(f"{line.words[0]} '{line.words[1] if len(line.words) > 1 else ''}' is invalid")
            return
        _g(p)[key] = v

    return handler


def _seconds_key(key: str, hi: int, message: str) -> object:
    """Whole seconds, 0..hi (global_parser.c vrrp_garp_delay_handler and friends:
    read_unsigned_strvec, so '0.5' is refused as keepalived refuses it)."""

    def handler(p: Parser, line: Line) -> None:
        v = p.int_arg(line, 0, hi)
        if v is None:
            p.error(message.format(v=line.words[1]), f"{key} takes whole seconds, 0 to {hi}")
            return
        _g(p)[key] = float(v)

    return handler


def _int_key(key: str, lo: int, hi: int) -> object:
    def handler(p: Parser, line: Line) -> None:
        v = p.int_arg(line, lo, hi)
        if v is not None:
            _g(p)[key] = v

    return handler


def _down_timer_adverts(p: Parser, line: Line) -> None:
    # The range was judged in front (values.py); '""' sets nothing, as in keepalived.
    if len(line.words) > 1 and line.words[1] != "":
        v = p.int_arg(line, 1, 100)
        if v is not None:
            _g(p)["vrrp_down_timer_adverts"] = v


def _garp_extra_if(p: Parser, line: Line) -> None:
    # ``[all] SECONDS``, judged in front (values.py extra_if).
    g = _g(p)
    for w in line.words[1:]:
        if w == "all":
            g["vrrp_garp_extra_if_all"] = True
        else:
            g["vrrp_garp_extra_if"] = float(c_int(w) or 0)


#: what vrrp_min_garp lowers, from keepalived's default to its minimum (vrrp.h VRRP_GARP_*)
_MIN_GARP = {
    "vrrp_garp_master_repeat": (5, 1),
    "vrrp_garp_master_refresh_repeat": (1, 0),
    "vrrp_garp_master_delay": (5.0, 0.0),
}


def _min_garp(p: Parser, line: Line) -> None:
    """global_parser.c vrrp_min_garp_handler: one GARP/NA, no repeat, no delay.

    Only settings still at keepalived's default move, so a value given
    before it stands, and one given after it wins.
    """
    if not p.flag(line):
        return
    g = _g(p)
    for key, (default, least) in _MIN_GARP.items():
        if g.get(key, default) == default:
            g[key] = least


def _fifo(key: str) -> object:
    kind = key[:-11]

    def handler(p: Parser, line: Line) -> None:
        # notify_fifo FIFO_NAME [username [groupname]]; the FIFO is a path,
        # kept as a Script so its user/group stay attached.
        if p.opt_arg(line, f"No {kind}notify_fifo name specified") is None:
            return
        if key in _g(p):
            # global_parser.c notify_fifo: the first FIFO stands.
            p.error(f"{kind}notify_fifo already specified - ignoring {line.words[1]}")
            return
        from pykeep.config.script_user import fifo_kept

        user = line.words[2] if len(line.words) > 2 else None
        group = line.words[3] if len(line.words) > 3 else None
        if not fifo_kept(p, user, group):
            p.error(
                f"Invalid user/group for {kind}notify_fifo {line.words[1]} - ignoring",
                "the words after the FIFO are USER [GROUP]",
                Severity.INFO,
            )
            return
        sc = p.script(line, key)
        if sc is not None:
            _g(p)[key] = sc

    return handler


def _nftables(p: Parser, line: Line) -> None:
    # global_parser.c vrrp_nftables_handler: the name defaults to "keepalived"
    g = _g(p)
    if "nftables" in g:
        p.error("nftables already specified - ignoring")
        return
    name = line.words[1] if len(line.words) > 1 else "keepalived"
    if len(name) >= 256:
        p.error("nftables table name too long - ignoring")
        return
    g["nftables"] = name


def _nftables_priority(p: Parser, line: Line) -> None:
    word = line.words[1] if len(line.words) > 1 else ""
    try:
        value = int(word)
    except ValueError:
        value = None
    if value is None or not -(2**31) <= value < 2**31:
        p.error(f"invalid nftables chain priority '{word}'")
        return
    _g(p)["nftables_priority"] = value


def _fifo_script(key: str) -> object:
    def handler(p: Parser, line: Line) -> None:
        # global_parser.c notify_fifo_script: the FIFO's name is appended at
        # start-up; the first script stands.
        if key in _g(p) and len(line.words) > 1:
            p.error(f"{key[:-18]}notify_fifo_script already specified - ignoring {line.words[1]}")
            return
        sc = p.script(line, key, f"No {key[:-18]}notify_fifo_script specified")
        if sc is not None:
            _g(p)[key] = sc

    return handler


def _script_timeout(kind: str) -> object:
    def handler(p: Parser, line: Line) -> None:
        # global_parser.c startup_shutdown_script_timeout_handler: whole seconds, 1..1000
        v = p.int_arg(line, 1, 1000)
        if v is None:
            word = line.words[1] if len(line.words) > 1 else ""
            p.error(f"{kind}_script_timeout '{word}' must be in [1, 1000] - ignoring")
            return
        _g(p)[f"{kind}_script_timeout"] = float(v)

    return handler


def _start_stop(key: str) -> object:
    """global_parser.c startup_shutdown_script: one of each; an unknown user after
    the command makes it invalid (notify_script_init)."""
    kind = key.partition("_")[0]

    def handler(p: Parser, line: Line) -> None:
        if key in _g(p):
            p.error(f"{kind} script already specified", f"keep one {key} line")
            return
        sc = p.script(line, key, f"{key} script missing")
        if sc is None:
            if len(line.raw.split(None, 1)) > 1:  # a command notify_script_init refused
                p.error(f"Invalid {kind} script", "check the command and the user after it")
            return
        _g(p)[key] = sc

    return handler


def _lvs_timeouts(p: Parser, line: Line) -> None:
    vals: dict[str, int] = {}
    w = line.words
    i = 1
    while i + 1 < len(w):
        name = w[i]
        if name not in ("tcp", "tcpfin", "udp"):
            p.error(
                f"Unknown option {name} specified for lvs_timeouts", "use tcp N, tcpfin N, udp N"
            )
            i += 1
            continue
        v = p.to_int(w[i + 1], 0, 86400 * 31, line, f"lvs_timeouts {name}")
        if v is not None:
            vals[name] = v
        i += 2
    if i < len(w):
        p.error(f"No value specified for lvs_timeout {w[i]} - ignoring")
    _g(p)["lvs_timeouts"] = LvsTimeouts(**vals)


def _lvs_sync_daemon(p: Parser, line: Line) -> None:
    """global_parser.c lvs_syncd_handler, word for word.

    ``IFACE [VRRP_INSTANCE] [inst NAME] [id N] [maxlen N] [port N] [ttl N]
    [group IP]``; the old form's third word is the sync id.  What is wrong
    is reported and left out; without an instance the daemon never starts
    (it follows no VRRP instance), as in keepalived.
    """
    w = line.words
    g = _g(p)
    old = g.get("lvs_sync_daemon")
    if isinstance(old, LvsSyncDaemon):
        p.error(
            f"lvs_sync_daemon has already been specified as {old.interface} "
            f"{old.vrrp_instance} - ignoring"
        )
        return
    if len(w) < 2:
        p.error("lvs_sync_daemon requires interface", "write: lvs_sync_daemon IFACE VRRP_INSTANCE")
        return
    if len(w[1].encode()) >= 16:
        p.error(f"lvs_sync_daemon interface name '{w[1]}' too long - ignoring")
        return
    inst: str | None = None
    opts: dict[str, object] = {}
    limits = {"id": (0, 255), "maxlen": (1, 65535 - 20 - 8), "port": (1, 65535), "ttl": (1, 255)}
    names = {"id": "sync_id", "maxlen": "maxlen", "port": "port", "ttl": "ttl"}
    i = 2
    while i < len(w):
        opt = w[i]
        last = i == len(w) - 1
        if opt == "inst":
            if inst is not None:
                p.error(
                    f"lvs_sync_daemon vrrp instance has already been specified as {inst} - ignoring"
                )
            elif not last:
                inst = w[i + 1]
            i += 2
            continue
        if opt in limits:
            if last:
                tail = "defaulting to vrid" if opt == "id" else "ignoring"
                p.error(f"No value specified for lvs_sync_daemon {opt}, {tail}")
                i += 1
                continue
            lo, hi = limits[opt]
            v = p.to_int(w[i + 1], lo, hi, line, f"lvs_sync_daemon {opt}")
            if v is None:
                if opt == "id":
                    p.error(f"Invalid syncid ({w[i + 1]}) - defaulting to vrid")
                else:
                    p.error(f"Invalid lvs_sync_daemon {opt} ({w[i + 1]}) - ignoring")
            else:
                opts[names[opt]] = v
            i += 2
            continue
        if opt == "group":
            if last:
                p.error("No value specified for lvs_sync_daemon group - ignoring")
                i += 1
                continue
            try:
                addr = ipaddress.ip_address(w[i + 1])
            except ValueError:
                p.error(f"Invalid lvs_sync_daemon group ({w[i + 1]}) - ignoring")
            else:
                if addr.is_multicast:
                    opts["group"] = addr
                else:
                    p.error(f"lvs_sync_daemon group address {w[i + 1]} is not multicast - ignoring")
            i += 2
            continue
        if i == 2:
            inst = opt  # the old form: IFACE VRRP_INSTANCE [SYNC_ID]
        elif i == 3:
            v = p.to_int(opt, 0, 255, line, "lvs_sync_daemon id")
            if v is None:
                p.error(f"Invalid syncid ({opt}) - defaulting to vrid")
            else:
                p.error('Please use keyword "id" before lvs_sync_daemon SYNCID')
                opts["sync_id"] = v
        else:
            p.error(f"Unknown option {opt} specified for lvs_sync_daemon")
        i += 1
    g["lvs_sync_daemon"] = LvsSyncDaemon(w[1], inst or "", **opts)  # type: ignore[arg-type]
    p.state.interface_refs.append((w[1], line.loc, "lvs_sync_daemon"))


def _once(key: str, what: str) -> Handler:
    """net_namespace / instance: the first one counts (global_parser.c
    ``net_namespace_handler`` / ``instance_handler``); both imply use_pid_dir."""

    def handler(p: Parser, line: Line) -> None:
        name = p.opt_arg(line, f"{what} name missing - ignoring")
        if name is None:
            return
        if _g(p).get(key) is not None:
            p.error(f"Duplicate {what} definition {name} - ignoring", f"remove one '{what}' line")
            return
        _g(p)[key] = name
        _g(p)["use_pid_dir"] = True

    return handler


def _use_pid_dir(p: Parser, line: Line) -> None:
    _g(p)["use_pid_dir"] = True


def install(root: Table) -> None:
    """global_defs and the root-level process keywords (global_parser.c init_global_keywords)."""
    for name in (
        "linkbeat_use_polling",
        "net_namespace_ipvs",
        "namespace_with_ipsets",
    ):
        kw(root, name, generic)
    kw(root, "child_wait_time", _child_wait_time)
    kw(root, "net_namespace", _once("net_namespace", "net_namespace"))
    kw(root, "instance", _once("instance", "instance"))
    kw(root, "use_pid_dir", _use_pid_dir)
    g = block(root, "global_defs", None)
    for name in _ACCEPTED:
        kw(g, name, generic)
    handlers: dict[str, object] = {
        "router_id": _router_id,
        "notification_email": _email,
        "notification_email_from": _str_key("notification_email_from"),
        "smtp_server": _smtp_server,
        "umask": _umask,
        "smtp_connect_timeout": _smtp_timeout,
        "enable_script_security": _flag_key("enable_script_security"),
        "script_user": _script_user,
        "vrrp_version": _vrrp_version,
        "vrrp_mcast_group4": _mcast,
        "vrrp_mcast_group6": _mcast,
        "vrrp_garp_interval": _timer_key("vrrp_garp_interval", 0.000001),
        "vrrp_gna_interval": _timer_key("vrrp_gna_interval", 0.000001),
        "vrrp_garp_master_delay": _seconds_key(
            "vrrp_garp_master_delay", 4294, "vrrp_garp_master_delay '{v}' invalid - ignoring"
        ),
        "vrrp_garp_master_repeat": _int_key("vrrp_garp_master_repeat", 0, 2**31 - 1),
        "vrrp_garp_master_refresh": _seconds_key(
            "vrrp_garp_master_refresh",
            2**32 - 1,
            "Invalid vrrp_garp_master_refresh '{v}' - ignoring",
        ),
        "vrrp_garp_master_refresh_repeat": _int_key(
            "vrrp_garp_master_refresh_repeat", 0, 2**31 - 1
        ),
        "vrrp_garp_lower_prio_delay": _seconds_key(
            "vrrp_garp_lower_prio_delay",
            4294,
            "vrrp_garp_lower_prio_delay '{v}' invalid - ignoring",
        ),
        "vrrp_garp_lower_prio_repeat": _int_key("vrrp_garp_lower_prio_repeat", 0, 2**31 - 1),
        "vrrp_skip_check_adv_addr": _flag_key("vrrp_skip_check_adv_addr"),
        "vrrp_down_timer_adverts": _down_timer_adverts,
        "vrrp_min_garp": _min_garp,
        "vrrp_garp_extra_if": _garp_extra_if,
        "vrrp_vmac_garp_intvl": _garp_extra_if,
        "vrrp_lower_prio_no_advert": _flag_key("vrrp_lower_prio_no_advert"),
        "vrrp_higher_prio_send_advert": _flag_key("vrrp_higher_prio_send_advert"),
        "vrrp_strict": _flag_key("vrrp_strict"),
        "vrrp_check_unicast_src": _flag_key("vrrp_check_unicast_src"),
        "notify_fifo": _fifo("notify_fifo"),
        "notify_fifo_script": _fifo_script("notify_fifo_script"),
        "vrrp_notify_fifo_script": _fifo_script("vrrp_notify_fifo_script"),
        "lvs_notify_fifo_script": _fifo_script("lvs_notify_fifo_script"),
        "startup_script_timeout": _script_timeout("startup"),
        "shutdown_script_timeout": _script_timeout("shutdown"),
        "smtp_alert": _flag_key("smtp_alert"),
        "smtp_alert_vrrp": _flag_key("smtp_alert_vrrp"),
        "no_email_faults": _no_email_faults,
        "smtp_alert_checker": _flag_key("smtp_alert_checker"),
        "no_checker_emails": _flag_key("no_checker_emails"),
        "vrrp_notify_priority_changes": _flag_key("vrrp_notify_priority_changes"),
        "fifo_write_vrrp_states_on_reload": _fifo_states_on_reload,
        "vrrp_startup_delay": _startup_delay,
        "log_unknown_vrids": _log_unknown_vrids,
        "vmac_prefix": _str_key("vmac_prefix"),
        "smtp_helo_name": _smtp_helo_name,
        "nftables": _nftables,
        "nftables_priority": _nftables_priority,
        "vrrp_notify_fifo": _fifo("vrrp_notify_fifo"),
        "lvs_notify_fifo": _fifo("lvs_notify_fifo"),
        "lvs_timeouts": _lvs_timeouts,
        "startup_script": _start_stop("startup_script"),
        "shutdown_script": _start_stop("shutdown_script"),
        "lvs_sync_daemon": _lvs_sync_daemon,
        "lvs_flush": _flag_key("lvs_flush"),
        "lvs_flush_on_stop": _flag_key("lvs_flush_on_stop"),
        "lvs_flush_onstop": _flag_key("lvs_flush_on_stop"),
        "checker_log_all_failures": _flag_key("checker_log_all_failures"),
        "dynamic_interfaces": _flag_key("dynamic_interfaces"),
    }
    for name, h in handlers.items():
        kw(g, name, h)  # type: ignore[arg-type]
    # Values keepalived judges, whether or not pykeep acts on the keyword.
    values.guard("global_defs", g)
