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
    "smtp_alert_checker",
    "no_email_faults",
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
    "vrrp_notify_priority_changes",
    "fifo_write_vrrp_states_on_reload",
    "lvs_notify_fifo_script",
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
    "no_checker_emails",
    "vrrp_rx_bufs_policy",
    "vrrp_rx_bufs_multiplier",
    "vrrp_startup_delay",
    "log_unknown_vrids",
    "vmac_prefix",
    "vmac_addr_prefix",
    "umask",
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
# words each also takes and keepalived's sentence for anything else.
_FLAG_ERRORS: dict[str, tuple[frozenset[str], str]] = {
    "checker_log_all_failures": (
        frozenset(),
        "Invalid value for checker_log_all_failures specified",
    ),
    "dynamic_interfaces": (
        frozenset({"allow_if_changes"}),
        "Unknown dynamic_interfaces option '{v}'",
    ),
    "lvs_flush_on_stop": (frozenset({"vs", "VS"}), "Unknown lvs_flush_on_stop type {v}"),
}
_TRUE_FALSE = frozenset({"true", "false", "on", "off", "yes", "no"})


def _flag_key(key: str) -> object:
    words, message = _FLAG_ERRORS.get(key, (frozenset(), ""))

    def handler(p: Parser, line: Line) -> None:
        if message and len(line.words) > 1:
            v = line.words[1]
            if v.lower() not in _TRUE_FALSE and v not in words:
                p.error(message.format(v=v), "use the bare keyword, or true/false")
                return
            if v in words:
                _g(p)[key] = True
                return
        _g(p)[key] = p.flag(line)

    return handler


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
    if not _host_like(v):
        # global_parser.c smtp_server_handler: keepalived resolves the name and
        # reports what it could not (the port defaults to 25 in its message).
        port = line.words[2] if len(line.words) > 2 else "25"
        p.error(f"Invalid smtp server {v} {port}", "write: smtp_server ADDRESS|HOSTNAME [PORT]")
        return
    _g(p)["smtp_server"] = host


def _host_like(v: str) -> bool:
    """An address, or a name that could resolve (the parser does no lookups)."""
    try:
        ipaddress.ip_address(v)
        return True
    except ValueError:
        pass
    labels = v.rstrip(".").split(".")
    return len(v) <= 253 and all(
        0 < len(x) <= 63 and x.replace("-", "").replace("_", "").isalnum() and x.isascii()
        for x in labels
    )


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
    from pykeep.config.script_user import user_known

    if not user_known(v, group):
        # global_parser.c script_user_handler: set_default_script_user failed.
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
    def handler(p: Parser, line: Line) -> None:
        # notify_fifo FIFO_NAME [username [groupname]]; the FIFO is a path,
        # kept as a Script so its user/group stay attached.
        if p.opt_arg(line, f"No {key[:-11]}notify_fifo name specified") is None:
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
        # global_parser.c notify_fifo_script: the FIFO's name is appended at start-up
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
    w = line.words
    if len(w) < 3:
        p.error(
            "lvs_sync_daemon requires interface, VRRP instance",
            "write: lvs_sync_daemon IFACE VRRP_INSTANCE "
            "[id N] [maxlen N] [port N] [ttl N] [group IP]",
        )
        return
    opts: dict[str, object] = {}
    i = 3
    while i < len(w):
        opt = w[i]
        if i + 1 >= len(w):
            p.error(f"lvs_sync_daemon: option '{opt}' needs a value")
            break
        val = w[i + 1]
        if opt == "id":
            opts["sync_id"] = p.to_int(val, 0, 255, line, "lvs_sync_daemon id")
        elif opt == "maxlen":
            opts["maxlen"] = p.to_int(val, 1, 65535 - 20 - 8, line, "lvs_sync_daemon maxlen")
        elif opt == "port":
            opts["port"] = p.to_int(val, 1, 65535, line, "lvs_sync_daemon port")
        elif opt == "ttl":
            opts["ttl"] = p.to_int(val, 1, 255, line, "lvs_sync_daemon ttl")
        elif opt == "group":
            opts["group"] = p.ip(val, line.loc, "lvs_sync_daemon group")
        else:
            p.error(f"Unknown option {opt} specified for lvs_sync_daemon")
        i += 2
    _g(p)["lvs_sync_daemon"] = LvsSyncDaemon(w[1], w[2], **opts)  # type: ignore[arg-type]
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
        "child_wait_time",
    ):
        kw(root, name, generic)
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
        "smtp_connect_timeout": _smtp_timeout,
        "enable_script_security": _flag_key("enable_script_security"),
        "script_user": _script_user,
        "vrrp_version": _vrrp_version,
        "vrrp_mcast_group4": _mcast,
        "vrrp_mcast_group6": _mcast,
        "vrrp_garp_interval": _timer_key("vrrp_garp_interval", 0.000001),
        "vrrp_gna_interval": _timer_key("vrrp_gna_interval", 0.000001),
        "vrrp_garp_master_delay": _timer_key("vrrp_garp_master_delay", 0, 2**31),
        "vrrp_garp_master_repeat": _int_key("vrrp_garp_master_repeat", 0, 2**31 - 1),
        "vrrp_garp_master_refresh": _timer_key("vrrp_garp_master_refresh", 0, 2**31),
        "vrrp_garp_master_refresh_repeat": _int_key(
            "vrrp_garp_master_refresh_repeat", 0, 2**31 - 1
        ),
        "vrrp_garp_lower_prio_delay": _timer_key("vrrp_garp_lower_prio_delay", 0, 2**31),
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
        "startup_script_timeout": _script_timeout("startup"),
        "shutdown_script_timeout": _script_timeout("shutdown"),
        "smtp_alert": _flag_key("smtp_alert"),
        "smtp_alert_vrrp": _flag_key("smtp_alert_vrrp"),
        "smtp_helo_name": _str_key("smtp_helo_name"),
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
