"""What pykeep does with each keyword keepalived 2.2.7 knows: one table, one entry a keyword.

The project's first rule is that no keyword is accepted silently: each one
either acts as it does in keepalived (``Acts``, naming the test that proves
it) or makes ``pykeep -t`` and start-up print one line saying it is not
supported and what happens instead (``Warned``).  ``Rejected`` is for the
few that the keepalived shipped here rejects too (a build option left out).  ``STATUS`` is the only
place that says which: when a feature lands, its entry flips from
``Warned(…)`` to ``Acts("tests/…::test_…")`` and nothing else changes.

Keys are keyword paths as in ``keywords.py`` (``vrrp_instance/use_vmac``).
A key may end in ``=VALUE`` to single out one value of a keyword that
otherwise acts (``…/auth_type=AH``), and may hold ``*`` to cover a family
(the connection keywords every checker shares).  An exact key wins over a
pattern; patterns are tried in order.

A ``Warned`` block (``bfd_instance``) warns once, on its own line: what is
inside it is covered by that warning and read without a word of its own.
``apply`` wires the warnings into the parser's keyword tree, once, when the
tables are built (config/__init__.py ``_tables``).
"""

from __future__ import annotations

from pykeep.config.diagnostics import Severity
from pykeep.config.keywords import BLOCK, VALUES, keepalived_keywords
from pykeep.config.lexer import Line
from pykeep.config.parser import Handler, Keyword, Parser, Table, generic

TYPE_CHECKING = False  # typing stays unimported at run time: start-up counts (pykeep -t)
if TYPE_CHECKING:
    from collections.abc import Iterator


class Acts:
    """The keyword acts as in keepalived; ``test`` is ``tests/FILE.py::test_name``."""

    __slots__ = ("test",)

    def __init__(self, test: str) -> None:
        self.test = test

    def __repr__(self) -> str:
        return f"Acts({self.test!r})"


class Warned:
    """pykeep does not act on the keyword; ``instead`` says what happens instead."""

    __slots__ = ("instead",)

    def __init__(self, instead: str) -> None:
        self.instead = instead

    def __repr__(self) -> str:
        return f"Warned({self.instead!r})"


class Rejected:
    """keepalived as shipped (Debian's 2.2.7 build) rejects the keyword: so does pykeep."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        return f"Rejected({self.why!r})"


Status = Acts | Warned | Rejected

# -- the tests that prove a family of keywords ------------------------------------
_T_CLI = "tests/test_config_cli.py::test_config_test_ok_and_error_codes"
_T_DUMP = "tests/test_ops_dumps.py::test_json_matches_keepalived_layout"
_T_VPARAMS = "tests/test_vrrp_machine.py::test_params_from_config"
_T_GARP = "tests/test_vrrp_wire_daemon.py::test_garp_interval_paces_frames"
_T_REFRESH = "tests/test_vrrp_machine.py::test_garp_refresh"
_T_FIFO = "tests/test_vrrp_wire_units.py::test_fifo_line_and_nonblocking_fifo_write"
_T_NOTIFY = "tests/test_vrrp_wire_units.py::test_notify_runs_keepalived_arguments_without_blocking"
_T_SECURITY = (
    "tests/test_health_scripts.py::test_world_writable_script_refused_under_script_security"
)
_T_RUNAS = "tests/test_health_scripts.py::test_run_as_user"
_T_PAIR = "tests/test_vrrp_wire_pair.py::test_election_graceful_preempt_crash"
_T_INTEROP = "tests/test_vrrp_wire_interop.py::test_capture_matches_keepalived_field_for_field"
_T_MODEL_VRRP = "tests/test_config_model.py::test_vrrp_instance_defaults_and_ranges"
_T_SYNC = "tests/test_vrrp_wire_pair.py::test_sync_group_moves_together"
_T_TRACKIF = "tests/test_vrrp_wire_pair.py::test_track_interface_down_is_fault"
_T_SCRIPT = "tests/test_vrrp_wire_pair.py::test_track_script_weight_flip"
_T_RISEFALL = "tests/test_vrrp_wire_units.py::test_script_rise_fall_as_vrrp_script_child_thread"
_T_TFILE = "tests/test_vrrp_machine.py::test_track_file_effect"
_T_UNICAST = "tests/test_vrrp_wire_pair.py::test_unicast_mode"
_T_V3 = "tests/test_vrrp_wire_pair.py::test_vrrpv3_ipv6"
_T_PREEMPT_DELAY = "tests/test_vrrp_wire_pair.py::test_preempt_delay_holds_then_takes_over"
_T_NOPREEMPT = "tests/test_vrrp_wire_pair.py::test_nopreempt_keeps_lower_master"
_T_ROUTES = (
    "tests/test_config_blocks.py::test_running_instance_with_every_block_holds_its_vip_and_route"
)
_T_NETNS = "tests/test_netns_namespace.py::test_net_namespace_puts_the_vip_there_like_keepalived"
_T_ELECT_WIRE = "tests/test_vrrp_keywords_wire.py::test_election_keywords_match_keepalived"
_T_ELECT = "tests/test_vrrp_machine.py::test_election_keywords_parsed"
_T_EXTRA_IF = "tests/test_vrrp_machine.py::test_garp_extra_if"
_T_SGTRACK = (
    "tests/test_vrrp_syncgroup_tracking.py::"
    "test_group_track_interface_added_by_reload_faults_both_like_keepalived"
)
_T_SGMEMBER = "tests/test_vrrp_syncgroup_tracking.py::test_members_take_group_tracking"
_T_STATIC = "tests/test_vrrp_static.py::test_static_and_virtual_entries_match_keepalived"
_T_VS = "tests/test_config_model.py::test_virtual_server_aliases_and_defaults"
_T_VSNEED = (
    "tests/test_config_model.py::"
    "test_virtual_server_needs_protocol_scheduler_and_method_like_keepalived"
)
_T_VSG = "tests/test_ipvs_desired.py::test_group_range_and_fwmark_expand"
_T_IPVS = "tests/test_ipvs_desired.py::test_service_settings"
_T_TUN = "tests/test_ipvs_desired.py::test_tunnel_and_thresholds"
_T_INHERIT = "tests/test_health_policy.py::test_inheritance"
_T_WARMUP = "tests/test_health_policy.py::test_warmup_staggers_first_check"
_T_QUORUM = "tests/test_ipvs_service.py::test_quorum_scripts_are_queued"
_T_HASUSPEND = "tests/test_ipvs_service.py::test_ha_suspend_ignores_checkers_without_vip"
_T_INHIBIT = "tests/test_lvs_service.py::test_inhibit_on_failure_edits_weight_zero"
_T_LVSNOTIFY = "tests/test_lvs_service.py::test_notify_and_quorum_scripts_run_without_blocking"
_T_TCP = "tests/test_config_model.py::test_tcp_check_common_options"
_T_HTTP = "tests/test_health_checkers.py::test_http_get_request_digest_regex_status"
_T_SSL = "tests/test_health_checkers.py::test_ssl_get_with_trustme_and_sni"
_T_MISC = "tests/test_health_checkers.py::test_misc_check_exit_codes"
_T_MISCDYN = "tests/test_health_policy.py::test_misc_dynamic_weight"
_T_SMTPDNS = "tests/test_health_checkers.py::test_smtp_and_dns"
_T_UDP = "tests/test_health_checkers.py::test_udp_echo_and_no_reply"
_T_PING = "tests/test_health_ping.py::test_ping_check_follows_the_peer"
_T_SSL_CLIENT = "tests/test_health_build.py::test_ssl_block_gives_ssl_get_its_client_certificate"
_T_FILECK = "tests/test_config_model.py::test_smtp_dns_udp_ping_file_checks"
_T_FLUSH = "tests/test_ipvs_service.py::test_lvs_flush_removes_everything_first"
_T_FLUSHSTOP = "tests/test_ipvs_service.py::test_stop_removes_ours_or_flushes"
_T_SYNCD = "tests/test_ipvs_service.py::test_sync_daemon_follows_vrrp_and_stops"
_T_TIMEOUTS = "tests/test_ipvs_vm.py::test_timeouts_sync_daemon_and_stop"

# -- the texts of families of unsupported keywords ----------------------------------
_ONE_PROCESS = (
    "pykeep runs as one process with the scheduler's default priority, memory and CPU settings"
)
_NO_SNMP = "pykeep has no SNMP agent; use its /metrics endpoint (--metrics-listen)"
_NO_DBUS = "pykeep offers no DBus service; use its control socket (pykeep ctl)"
_NETLINK_BUFS = "pykeep keeps the kernel's default netlink socket buffer sizes"
_T_MAIL_VM = "tests/test_lvs_keepalived_vm.py::test_real_server_and_quorum_mails_match_keepalived"
_T_RS_MAIL = "tests/test_lvs_smtp.py::test_real_server_changes_are_mailed_as_keepalived"
_T_RS_MAIL_DEFAULT = "tests/test_lvs_smtp.py::test_alert_defaults_and_the_several_checkers_line"
_T_PROC = "tests/test_vrrp_track_process.py::test_master_tracking_process_like_keepalived"
_T_PROC_RULES = "tests/test_vrrp_track_process.py::test_config_and_quorum_rules"
_T_PROC_SG = "tests/test_vrrp_track_process.py::test_sync_group_members_take_group_process"
_T_BFD = "tests/test_bfd_vrrp.py::test_master_tracking_bfd_fails_over_when_bfdd_stops"
_T_BFD_SESSION = "tests/test_bfd_interop.py::test_session_with_keepalived_bfd_both_ways"
_T_SMTP = "tests/test_vrrp_notify_smtp.py::test_smtp_alerts_match_keepalived"
_T_SMTP_DEFAULT = "tests/test_vrrp_notify_smtp.py::test_alert_defaults_follow_global_defs"
_T_FIFO_SCRIPTS = "tests/test_vrrp_notify_fifo.py::test_fifo_lines_and_scripts_match_keepalived"
_T_SCRIPT_TIMEOUT = (
    "tests/test_config_keywords.py::test_startup_script_timeout_kills_a_hung_script_as_keepalived"
)
_T_FIREWALL = "tests/test_vrrp_firewall.py::test_ruleset_matches_keepalived"
_T_ACCEPT = "tests/test_config_keywords.py::test_strict_mode_and_accept_choose_the_drop_set"
_T_IPTABLES = "tests/test_config_keywords.py::test_vrrp_iptables_falls_back_to_nftables_as_debian_s"
_T_VMAC = "tests/test_vrrp_vmac.py::test_vmac_matches_keepalived"
_T_FIFO_RELOAD = "tests/test_vrrp_notify_fifo.py::test_states_written_again_on_reload"
_T_IPVLAN = "tests/test_vrrp_ipvlan_vm.py::test_ipvlan_matches_keepalived"
_T_PRIO = (
    "tests/test_vrrp_notify_priority.py::"
    "test_priority_lines_and_promote_secondaries_match_keepalived"
)
_T_DELAY = "tests/test_vrrp_keywords_wire.py::test_startup_delay_and_unknown_vrids_match_keepalived"
_T_GARP_LOWER = "tests/test_vrrp_machine.py::test_garp_lower_prio_defaults_follow_global_defs"
_NO_RELOAD_OPT = "pykeep reloads on SIGHUP without checking or copying the file first"

STATUS: dict[str, Status] = {
    # ---- the top level, before and outside global_defs (global_parser.c) ----
    "linkbeat_use_polling": Warned("interface state comes from netlink events, never polling"),
    "net_namespace": Acts(_T_NETNS),
    "net_namespace_ipvs": Warned("IPVS is driven in pykeep's own network namespace"),
    "namespace_with_ipsets": Warned("pykeep makes no ipsets"),
    "use_pid_dir": Acts("tests/test_netns_namespace.py::test_pid_file_names_are_keepalived_s"),
    "instance": Acts(_T_NETNS),
    "child_wait_time": Warned("pykeep has no child processes to wait for"),
    "global_defs": Acts(_T_CLI),
    "global_defs/process_names": Warned("the process keeps its own name"),
    "global_defs/process_name": Warned("the process keeps its own name"),
    "global_defs/vrrp_process_name": Warned("pykeep runs one process; it keeps its own name"),
    "global_defs/checker_process_name": Warned("pykeep runs one process; it keeps its own name"),
    "global_defs/lvs_process_name": Warned("pykeep runs one process; it keeps its own name"),
    "global_defs/bfd_process_name": Warned("pykeep runs one process; it keeps its own name"),
    "global_defs/router_id": Acts(_T_DUMP),
    "global_defs/notification_email_from": Acts(_T_SMTP),
    "global_defs/smtp_server": Acts(_T_SMTP),
    "global_defs/smtp_helo_name": Acts(_T_SMTP),
    "global_defs/smtp_connect_timeout": Acts(_T_SMTP),
    "global_defs/notification_email": Acts(_T_SMTP),
    "global_defs/smtp_alert": Acts(_T_MAIL_VM),
    "global_defs/smtp_alert_vrrp": Acts(_T_SMTP_DEFAULT),
    "global_defs/smtp_alert_checker": Acts(_T_RS_MAIL_DEFAULT),
    "global_defs/no_email_faults": Acts(_T_SMTP),
    "global_defs/startup_script": Acts(_T_FIFO_SCRIPTS),
    "global_defs/startup_script_timeout": Acts(_T_SCRIPT_TIMEOUT),
    "global_defs/shutdown_script": Acts(_T_FIFO_SCRIPTS),
    "global_defs/shutdown_script_timeout": Acts(_T_FIFO_SCRIPTS),
    "global_defs/max_auto_priority": Warned(_ONE_PROCESS),
    "global_defs/min_auto_priority_delay": Warned(_ONE_PROCESS),
    "global_defs/checker_log_all_failures": Warned(
        "checker failures are logged on each state change only"
    ),
    "global_defs/dynamic_interfaces": Warned(
        "an interface missing at start-up is an error, not awaited"
    ),
    "global_defs/default_interface": Warned("a vrrp_instance without 'interface' is not given one"),
    "global_defs/disable_local_igmp": Warned("IGMP reports are left to the kernel's settings"),
    "global_defs/lvs_timeouts": Acts(_T_TIMEOUTS),
    "global_defs/lvs_flush": Acts(_T_FLUSH),
    "global_defs/lvs_flush_on_stop": Acts(_T_FLUSHSTOP),
    "global_defs/lvs_flush_onstop": Acts(_T_FLUSHSTOP),
    "global_defs/lvs_sync_daemon": Acts(_T_SYNCD),
    "global_defs/vrrp_mcast_group4": Acts(_T_VPARAMS),
    "global_defs/vrrp_mcast_group6": Acts(_T_VPARAMS),
    "global_defs/vrrp_garp_master_delay": Acts(_T_VPARAMS),
    "global_defs/vrrp_garp_master_repeat": Acts(_T_VPARAMS),
    "global_defs/vrrp_garp_master_refresh": Acts(_T_REFRESH),
    "global_defs/vrrp_garp_master_refresh_repeat": Acts(_T_REFRESH),
    "global_defs/vrrp_garp_lower_prio_delay": Acts(_T_GARP_LOWER),
    "global_defs/vrrp_garp_lower_prio_repeat": Acts(_T_GARP_LOWER),
    "global_defs/vrrp_down_timer_adverts": Acts(_T_ELECT),
    "global_defs/vrrp_garp_interval": Acts(_T_GARP),
    "global_defs/vrrp_gna_interval": Acts(_T_GARP),
    "global_defs/vrrp_min_garp": Acts("tests/test_vrrp_machine.py::test_vrrp_min_garp"),
    "global_defs/vrrp_garp_extra_if": Acts(_T_EXTRA_IF),
    "global_defs/vrrp_vmac_garp_intvl": Acts(_T_EXTRA_IF),
    "global_defs/vrrp_lower_prio_no_advert": Acts(_T_ELECT),
    "global_defs/vrrp_higher_prio_send_advert": Acts(_T_ELECT),
    "global_defs/vrrp_version": Acts(_T_MODEL_VRRP),
    "global_defs/vrrp_iptables": Acts(_T_IPTABLES),
    "global_defs/vrrp_ipsets": Rejected(
        "an unknown keyword, as for Debian's keepalived 2.2.7 (built without libipset)"
    ),
    "global_defs/nftables": Acts(_T_FIREWALL),
    "global_defs/nftables_priority": Acts(_T_FIREWALL),
    "global_defs/nftables_ifindex": Warned("the rules name interfaces, as by default"),
    "global_defs/nftables_ipvs": Warned("no nftables rules are made for IPVS"),
    "global_defs/nftables_ipvs_priority": Warned("no nftables rules are made for IPVS"),
    "global_defs/nftables_ipvs_start_fwmark": Warned("no nftables rules are made for IPVS"),
    "global_defs/nftables_counters": Warned("the nftables rules keep no counters"),
    "global_defs/vrrp_check_unicast_src": Acts(_T_UNICAST),
    "global_defs/vrrp_skip_check_adv_addr": Acts(_T_VPARAMS),
    "global_defs/vrrp_strict": Acts(_T_FIREWALL),
    "global_defs/vrrp_priority": Warned(_ONE_PROCESS),
    "global_defs/vrrp_no_swap": Warned(_ONE_PROCESS),
    "global_defs/vrrp_rt_priority": Warned(_ONE_PROCESS),
    "global_defs/vrrp_cpu_affinity": Warned(_ONE_PROCESS),
    "global_defs/vrrp_rlimit_rttime": Warned(_ONE_PROCESS),
    "global_defs/vrrp_rlimit_rtime": Warned(_ONE_PROCESS),
    "global_defs/notify_fifo": Acts(_T_FIFO),
    "global_defs/notify_fifo_script": Acts(_T_FIFO_SCRIPTS),
    "global_defs/vrrp_notify_fifo": Acts(_T_FIFO),
    "global_defs/vrrp_notify_fifo_script": Acts(_T_FIFO_SCRIPTS),
    "global_defs/vrrp_notify_priority_changes": Acts(_T_PRIO),
    "global_defs/fifo_write_vrrp_states_on_reload": Acts(_T_FIFO_RELOAD),
    "global_defs/lvs_notify_fifo": Acts(
        "tests/test_lvs_service.py::test_lvs_notify_fifo_gets_keepalived_lines"
    ),
    "global_defs/lvs_notify_fifo_script": Warned(
        "the LVS FIFO gets its lines but no script is started to read it"
    ),
    "global_defs/checker_priority": Warned(_ONE_PROCESS),
    "global_defs/checker_no_swap": Warned(_ONE_PROCESS),
    "global_defs/checker_rt_priority": Warned(_ONE_PROCESS),
    "global_defs/checker_cpu_affinity": Warned(_ONE_PROCESS),
    "global_defs/checker_rlimit_rttime": Warned(_ONE_PROCESS),
    "global_defs/checker_rlimit_rtime": Warned(_ONE_PROCESS),
    "global_defs/bfd_priority": Warned(_ONE_PROCESS),
    "global_defs/bfd_no_swap": Warned(_ONE_PROCESS),
    "global_defs/bfd_rt_priority": Warned(_ONE_PROCESS),
    "global_defs/bfd_cpu_affinity": Warned(_ONE_PROCESS),
    "global_defs/bfd_rlimit_rttime": Warned(_ONE_PROCESS),
    "global_defs/bfd_rlimit_rtime": Warned(_ONE_PROCESS),
    "global_defs/snmp_socket": Warned(_NO_SNMP),
    "global_defs/enable_traps": Warned(_NO_SNMP),
    "global_defs/enable_snmp_*": Warned(_NO_SNMP),
    "global_defs/enable_dbus": Warned(_NO_DBUS),
    "global_defs/dbus_service_name": Warned(_NO_DBUS),
    "global_defs/script_user": Acts(_T_RUNAS),
    "global_defs/enable_script_security": Acts(_T_SECURITY),
    "global_defs/*_rcv_bufs": Warned(_NETLINK_BUFS),
    "global_defs/*_rcv_bufs_force": Warned(_NETLINK_BUFS),
    "global_defs/rs_init_notifies": Warned(
        "real servers' notify scripts run on state changes only, not at start-up"
    ),
    "global_defs/no_checker_emails": Acts(_T_RS_MAIL_DEFAULT),
    "global_defs/vrrp_rx_bufs_policy": Warned("VRRP sockets keep the kernel's buffer sizes"),
    "global_defs/vrrp_rx_bufs_multiplier": Warned("VRRP sockets keep the kernel's buffer sizes"),
    "global_defs/vrrp_startup_delay": Acts(_T_DELAY),
    "global_defs/log_unknown_vrids": Acts(_T_DELAY),
    "global_defs/vmac_prefix": Acts(_T_VMAC),
    # keepalived names only the VMACs it makes for addresses with it
    # (vrrp.c vrrp_complete_instance: use_vmac_addr, per-address use_vmac)
    "global_defs/vmac_addr_prefix": Warned(
        "pykeep makes no VMAC for single addresses (use_vmac_addr), so no name uses it"
    ),
    "global_defs/umask": Warned("files are created with the umask pykeep was started with"),
    "global_defs/random_seed": Warned("random numbers are seeded by the system"),
    "global_defs/reload_check_config": Warned(_NO_RELOAD_OPT),
    "global_defs/reload_time_file": Warned(_NO_RELOAD_OPT),
    "global_defs/reload_repeat": Warned(_NO_RELOAD_OPT),
    "global_defs/reload_file": Warned(_NO_RELOAD_OPT),
    "global_defs/include_check": Warned("included files are read without the extra checks"),
    "global_defs/config_save_dir": Warned(_NO_RELOAD_OPT),
    "global_defs/tmp_config_directory": Warned(_NO_RELOAD_OPT),
    "global_defs/data_use_instance": Warned("dump file names do not include an instance name"),
    # ---- VRRP: the top-level blocks (vrrp_parser.c init_vrrp_keywords) ----
    "track_group": Warned("the block is skipped: its interfaces are not tracked"),
    "static_ipaddress": Acts(_T_STATIC),
    "static_routes": Acts(_T_STATIC),
    "static_rules": Acts(_T_STATIC),
    "vrrp_sync_group": Acts(_T_SYNC),
    "vrrp_sync_group/group": Acts(_T_SYNC),
    "vrrp_sync_group/track_interface": Acts(_T_SGTRACK),
    "vrrp_sync_group/track_script": Acts(_T_SGMEMBER),
    "vrrp_sync_group/track_file": Acts(_T_SGMEMBER),
    "vrrp_sync_group/track_process": Acts(_T_PROC_SG),
    "vrrp_sync_group/track_bfd": Acts(_T_SGMEMBER),
    "vrrp_sync_group/notify_*": Acts(_T_NOTIFY),
    "vrrp_sync_group/notify": Acts(_T_NOTIFY),
    "vrrp_sync_group/smtp_alert": Acts(_T_SMTP),
    "vrrp_sync_group/global_tracking": Acts(_T_SGMEMBER),
    "vrrp_sync_group/sync_group_tracking_weight": Acts(_T_SGMEMBER),
    "vrrp_sync_group/notify_priority_changes": Acts(_T_PRIO),
    "garp_group": Warned("the block is skipped: interfaces keep the instances' ARP settings"),
    "linkbeat_interfaces": Warned("interface state comes from netlink events, never polling"),
    "interface_up_down_delays": Warned("interface state changes take effect at once"),
    # ---- vrrp_instance ----
    "vrrp_instance": Acts(_T_PAIR),
    "vrrp_instance/use_vmac": Acts(_T_VMAC),
    "vrrp_instance/use_vmac_addr": Warned(
        "no VMAC is made for addresses on other interfaces: they go on their own 'dev'"
    ),
    "vrrp_instance/vmac_xmit_base": Acts(_T_VMAC),
    "vrrp_instance/use_ipvlan": Acts(_T_IPVLAN),
    "vrrp_instance/unicast_peer": Acts(_T_UNICAST),
    "vrrp_instance/unicast_fault_no_peer": Acts(_T_ELECT_WIRE),
    "vrrp_instance/check_unicast_src": Acts(_T_UNICAST),
    "vrrp_instance/old_unicast_checksum": Warned("the checksum is computed as RFC 5798 says"),
    "vrrp_instance/native_ipv6": Warned("an IPv6 instance is used as configured"),
    "vrrp_instance/state": Acts(_T_MODEL_VRRP),
    "vrrp_instance/interface": Acts(_T_PAIR),
    "vrrp_instance/vrf": Warned("the instance is not bound to the VRF"),
    "vrrp_instance/dont_track_primary": Acts(_T_TRACKIF),
    "vrrp_instance/track_interface": Acts(_T_TRACKIF),
    "vrrp_instance/track_script": Acts(_T_SCRIPT),
    "vrrp_instance/track_file": Acts(_T_TFILE),
    "vrrp_instance/track_process": Acts(_T_PROC),
    "vrrp_instance/track_bfd": Acts(_T_BFD),
    "vrrp_instance/mcast_src_ip": Acts(_T_INTEROP),
    "vrrp_instance/unicast_src_ip": Acts(_T_UNICAST),
    "vrrp_instance/mcast_dst_ip": Acts(
        "tests/test_vrrp_wire_mcast.py::test_each_group_elects_its_own_master_with_keepalived"
    ),
    # keepalived 2.2.7 never acts on it either: netlink_if_address_filter compares
    # the address with the whole sockaddr, so the instance keeps its state.
    "vrrp_instance/track_src_ip": Acts(_T_ELECT_WIRE),
    "vrrp_instance/virtual_router_id": Acts(_T_PAIR),
    "vrrp_instance/unicast_ttl": Acts(_T_UNICAST),
    "vrrp_instance/version": Acts(_T_V3),
    "vrrp_instance/priority": Acts(_T_PAIR),
    "vrrp_instance/advert_int": Acts(_T_INTEROP),
    "vrrp_instance/virtual_ipaddress": Acts(_T_PAIR),
    "vrrp_instance/virtual_ipaddress_excluded": Acts(_T_VPARAMS),
    "vrrp_instance/promote_secondaries": Acts(_T_PRIO),
    "vrrp_instance/linkbeat_use_polling": Warned(
        "interface state comes from netlink events, never polling"
    ),
    "vrrp_instance/virtual_routes": Acts(_T_ROUTES),
    "vrrp_instance/virtual_rules": Acts(_T_STATIC),
    "vrrp_instance/accept": Acts(_T_ACCEPT),
    "vrrp_instance/no_accept": Acts(_T_FIREWALL),
    "vrrp_instance/skip_check_adv_addr": Acts(_T_VPARAMS),
    "vrrp_instance/strict_mode": Acts(_T_ACCEPT),
    "vrrp_instance/preempt": Acts(_T_PAIR),
    "vrrp_instance/nopreempt": Acts(_T_NOPREEMPT),
    "vrrp_instance/preempt_delay": Acts(_T_PREEMPT_DELAY),
    "vrrp_instance/debug": Warned("the log level is pykeep's own"),
    "vrrp_instance/notify_*": Acts(_T_NOTIFY),
    "vrrp_instance/notify": Acts(_T_NOTIFY),
    "vrrp_instance/smtp_alert": Acts(_T_SMTP),
    "vrrp_instance/notify_priority_changes": Acts(_T_PRIO),
    "vrrp_instance/lvs_sync_daemon_interface": Warned(
        "no IPVS sync daemon follows this instance; use global_defs lvs_sync_daemon"
    ),
    "vrrp_instance/garp_master_delay": Acts(_T_VPARAMS),
    "vrrp_instance/garp_master_refresh": Acts(_T_REFRESH),
    "vrrp_instance/garp_master_repeat": Acts(_T_VPARAMS),
    "vrrp_instance/garp_master_refresh_repeat": Acts(_T_REFRESH),
    "vrrp_instance/garp_lower_prio_delay": Acts(_T_GARP_LOWER),
    "vrrp_instance/garp_lower_prio_repeat": Acts(_T_GARP_LOWER),
    "vrrp_instance/down_timer_adverts": Acts(_T_ELECT_WIRE),
    "vrrp_instance/garp_extra_if": Acts(_T_ELECT_WIRE),
    "vrrp_instance/vmac_garp_intvl": Acts(_T_ELECT_WIRE),
    "vrrp_instance/lower_prio_no_advert": Acts(_T_ELECT_WIRE),
    "vrrp_instance/higher_prio_send_advert": Acts(_T_ELECT_WIRE),
    "vrrp_instance/kernel_rx_buf_size": Warned("VRRP sockets keep the kernel's buffer sizes"),
    "vrrp_instance/authentication": Acts(_T_INTEROP),
    "vrrp_instance/authentication/auth_type": Acts(_T_INTEROP),
    "vrrp_instance/authentication/auth_pass": Acts(_T_INTEROP),
    # ---- vrrp_script, track files, tracked processes ----
    "vrrp_script": Acts(_T_SCRIPT),
    "vrrp_script/*": Acts(_T_RISEFALL),
    "vrrp_script/user": Acts(_T_RUNAS),
    "vrrp_track_process": Acts(_T_PROC),
    "vrrp_track_process/*": Acts(_T_PROC_RULES),
    "track_file": Acts(_T_TFILE),
    "track_file/*": Acts(_T_TFILE),
    "vrrp_track_file": Acts(_T_TFILE),
    "vrrp_track_file/*": Acts(_T_TFILE),
    # ---- LVS (check_parser.c, check_*.c) ----
    "SSL": Acts(_T_SSL_CLIENT),
    "SSL/*": Acts(_T_SSL_CLIENT),
    "virtual_server_group": Acts(_T_VSG),
    "virtual_server": Acts(_T_VS),
    "virtual_server/ip_family": Acts(_T_VS),
    "virtual_server/retry": Acts(_T_INHERIT),
    "virtual_server/delay_before_retry": Acts(_T_INHERIT),
    "virtual_server/warmup": Acts(_T_WARMUP),
    "virtual_server/connect_timeout": Acts(_T_INHERIT),
    "virtual_server/delay_loop": Acts(_T_INHERIT),
    "virtual_server/inhibit_on_failure": Acts(_T_INHIBIT),
    "virtual_server/lb_algo": Acts(_T_VSNEED),
    "virtual_server/lvs_sched": Acts(_T_VS),
    "virtual_server/hashed": Acts(_T_IPVS),
    "virtual_server/ops": Acts(_T_IPVS),
    "virtual_server/flag-*": Acts(_T_IPVS),
    "virtual_server/sh-*": Acts(_T_IPVS),
    "virtual_server/mh-*": Acts(_T_IPVS),
    "virtual_server/lb_kind": Acts(_T_VSNEED),
    "virtual_server/lvs_method": Acts(_T_VS),
    "virtual_server/persistence_engine": Acts(
        "tests/test_lvs_keepalived_vm.py::test_persistence_engine_reaches_the_kernel_as_keepalived"
    ),
    "virtual_server/persistence_timeout": Acts(_T_IPVS),
    "virtual_server/persistence_granularity": Acts(_T_IPVS),
    "virtual_server/protocol": Acts(_T_VSNEED),
    "virtual_server/ha_suspend": Acts(_T_HASUSPEND),
    "virtual_server/smtp_alert": Acts(_T_MAIL_VM),
    "virtual_server/virtualhost": Acts(_T_HTTP),
    "virtual_server/snmp_name": Warned(_NO_SNMP),
    "virtual_server/alpha": Acts(_T_INHERIT),
    "virtual_server/omega": Acts(_T_QUORUM),
    "virtual_server/quorum_up": Acts(_T_QUORUM),
    "virtual_server/quorum_down": Acts(_T_QUORUM),
    "virtual_server/quorum": Acts(_T_QUORUM),
    "virtual_server/hysteresis": Acts(_T_QUORUM),
    "virtual_server/weight": Warned(
        "the virtual server's weight in a virtual_server_group is not used"
    ),
    "virtual_server/sorry_server": Acts(_T_IPVS),
    "virtual_server/sorry_server_inhibit": Acts(_T_IPVS),
    "virtual_server/sorry_server_lvs_method": Acts(_T_TUN),
    "virtual_server/real_server": Acts(_T_VS),
    "virtual_server/real_server/weight": Acts(_T_IPVS),
    "virtual_server/real_server/lvs_method": Acts(_T_TUN),
    "virtual_server/real_server/uthreshold": Acts(_T_TUN),
    "virtual_server/real_server/lthreshold": Acts(_T_TUN),
    "virtual_server/real_server/inhibit_on_failure": Acts(_T_INHIBIT),
    "virtual_server/real_server/notify_up": Acts(_T_LVSNOTIFY),
    "virtual_server/real_server/notify_down": Acts(_T_LVSNOTIFY),
    "virtual_server/real_server/smtp_alert": Acts(_T_RS_MAIL),
    "virtual_server/real_server/virtualhost": Acts(_T_HTTP),
    "virtual_server/real_server/snmp_name": Warned(_NO_SNMP),
    "virtual_server/real_server/warmup": Acts(_T_WARMUP),
    "virtual_server/real_server/BFD_CHECK": Warned(
        "the block is skipped: no BFD session runs and the real server's state ignores it"
    ),
    "virtual_server/real_server/SMTP_CHECK/host": Acts(
        "tests/test_health_build.py::test_smtp_check_host_blocks_are_checkers_of_their_own"
    ),
    "virtual_server/real_server/*/url/regex_min_offset": Warned(
        "the regex is searched from the start of the body"
    ),
    "virtual_server/real_server/*/url/regex_max_offset": Warned(
        "the regex is searched over the whole body"
    ),
    "virtual_server/real_server/*/url/regex_stack": Warned("the regex engine sizes its own stack"),
    "virtual_server/real_server/*/log_all_failures": Warned(
        "checker failures are logged on each state change only"
    ),
    "virtual_server/real_server/MISC_CHECK*": Acts(_T_MISC),
    "virtual_server/real_server/MISC_CHECK/misc_dynamic": Acts(_T_MISCDYN),
    "virtual_server/real_server/SSL_GET*": Acts(_T_SSL),
    "virtual_server/real_server/HTTP_GET*": Acts(_T_HTTP),
    "virtual_server/real_server/SMTP_CHECK*": Acts(_T_SMTPDNS),
    "virtual_server/real_server/DNS_CHECK*": Acts(_T_SMTPDNS),
    "virtual_server/real_server/UDP_CHECK*": Acts(_T_UDP),
    "virtual_server/real_server/PING_CHECK*": Acts(_T_PING),
    "virtual_server/real_server/TCP_CHECK*": Acts(_T_TCP),
    "virtual_server/real_server/FILE_CHECK*": Acts(_T_FILECK),
    "virtual_server/real_server/*": Acts(_T_INHERIT),
    # ---- BFD (bfd_parser.c) ----
    "bfd_instance": Acts(_T_BFD),
    "bfd_instance/*": Acts(_T_BFD_SESSION),
}

# Where a keyword that is still warned puts its value in the model, when it
# puts it anywhere (the others are recorded by ``generic`` or skipped):
# status key -> "Class.field".  No runtime code may read these fields, or the
# keyword acts and its warning is false; tests/test_config_keywords.py scans
# the runtime packages for reads, and fails for a warned keyword whose handler
# stores a value without an entry here.  When a feature lands, its keyword
# moves from here to ``Acts``.
WARNED_FIELDS: dict[str, tuple[str, ...]] = {
    "global_defs/checker_log_all_failures": ("GlobalDefs.checker_log_all_failures",),
    "global_defs/dynamic_interfaces": ("GlobalDefs.dynamic_interfaces",),
    "vrrp_instance/lvs_sync_daemon_interface": ("VrrpInstance.lvs_sync_daemon_interface",),
    "virtual_server/real_server/*/log_all_failures": ("CheckerCommon.log_all_failures",),
    # Judged as keepalived judges them (config/unacted.py), kept nowhere.
    "linkbeat_interfaces": (),
    "interface_up_down_delays": (),
    # Judged as keepalived's handlers judge them (global_parser.py,
    # vrrp_parser.py, check_parser.py), kept nowhere.
    "child_wait_time": (),
    "global_defs/umask": (),
    "global_defs/lvs_notify_fifo_script": (),
    "virtual_server/weight": (),
}

# A warned keyword that acts in part (its warning says which part does not):
# the runtime modules, or packages ("vrrp/"), that read its fields for the
# part that acts.
PARTLY: dict[str, tuple[str, ...]] = {}


def matches(path: str, pattern: str) -> bool:
    """``pattern`` with ``*`` for any run of characters (fnmatch's, without importing re)."""
    head, *rest = pattern.split("*")
    if not path.startswith(head) or (rest and not path.endswith(rest[-1])):
        return False
    pos = len(head)
    for i, part in enumerate(rest):
        if i == len(rest) - 1:
            return len(path) - pos >= len(part) and path.endswith(part)
        found = path.find(part, pos)
        if found < 0:
            return False
        pos = found + len(part)
    return pos == len(path)


def _patterns() -> list[tuple[str, Status]]:
    return [(k, st) for k, st in STATUS.items() if "*" in k and "=" not in k]


def status_of(
    path: str, value: str | None = None, patterns: list[tuple[str, Status]] | None = None
) -> tuple[str, Status] | None:
    """The entry for ``path`` (and the keyword's first argument): its key and status."""
    if value is not None:
        key = f"{path}={value}"
        got = STATUS.get(key)
        if got is not None:
            return key, got
    got = STATUS.get(path)
    if got is not None:
        return path, got
    for key, st in _patterns() if patterns is None else patterns:
        if matches(path, key):
            return key, st
    return None


def covering_block(path: str) -> str | None:
    """The warned block ``path`` sits inside, if any: its one warning covers it."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        head = "/".join(parts[:i])
        got = STATUS.get(head)
        if isinstance(got, Warned):
            return head
    return None


def warning_text(keyword: str, instead: str) -> str:
    """The one line a warned keyword gets, after its file and line."""
    return f"'{keyword}' is not supported by pykeep: {instead}"


def _warn(keyword: str, instead: str, inner: Handler | None) -> Handler:
    text = warning_text(keyword, instead)

    def handler(p: Parser, line: Line) -> None:
        p.report(line.loc, Severity.INFO, text)
        if inner is not None:
            inner(p, line)

    return handler


def _warn_value(value: str, keyword: str, instead: str, inner: Handler | None) -> Handler:
    text = warning_text(f"{keyword} {value}", instead)

    def handler(p: Parser, line: Line) -> None:
        if len(line.words) > 1 and line.words[1] == value:
            p.report(line.loc, Severity.INFO, text)
        if inner is not None:
            inner(p, line)

    return handler


def skip_values(p: Parser, line: Line) -> None:
    """A ``{ values }`` block pykeep does not read: consumed whole, as keepalived reads it."""
    p.value_block(line)


def _walk(table: Table, prefix: str = "") -> Iterator[tuple[str, Keyword]]:
    for name, k in table.items():
        path = f"{prefix}{name}"
        yield path, k
        if k.sub is not None:
            yield from _walk(k.sub, path + "/")


def _lookup(table: Table, path: str) -> Keyword | None:
    k: Keyword | None = None
    cur: Table | None = table
    for part in path.split("/"):
        if cur is None:
            return None
        k = cur.get(part)
        if k is None:
            return None
        cur = k.sub
    return k


def apply(root: Table) -> None:
    """Give every keyword of keepalived a place in ``root``, and the warned ones their warning.

    A keyword keepalived knows and pykeep's tables lack is added here (as a
    block, a value block or a plain keyword, as keepalived reads it), so that
    its braces can never close the block around it.  Then each warned keyword's
    handler is wrapped to report its one line first.  Keywords shared between
    tables are one object, so wrapping twice is guarded.
    """
    index = dict(_walk(root))
    for path, kind in keepalived_keywords():
        have = index.get(path)
        if have is not None:
            if kind == VALUES and have.handler is generic:
                # Read as one line, its '}' would close the enclosing block.
                have.handler = skip_values
            continue
        parent, _sep, name = path.rpartition("/")
        # A top-level keyword belongs to one of keepalived's passes: the
        # section parsers install those themselves.
        ptable = getattr(index.get(parent), "sub", None) if parent else None
        if ptable is None:
            continue
        if kind == BLOCK:
            k = ptable[name] = Keyword(generic, {})
        elif kind == VALUES:
            k = ptable[name] = Keyword(skip_values)
        else:
            k = ptable[name] = Keyword(generic)
        index[path] = k
    # Only the warned entries are visited (start-up counts).
    patterns = _patterns()
    done: set[tuple[int, str]] = set()
    for key, st in STATUS.items():
        if not isinstance(st, Warned):
            continue
        stem, eq, value = key.partition("=")
        if "*" in stem:
            head, tail = stem.split("*", 1)[0], stem.rsplit("*", 1)[1]
            paths = [
                p for p in index if p.startswith(head) and p.endswith(tail) and matches(p, stem)
            ]
        else:
            paths = [stem]
        for path in paths:
            kw_ = index.get(path)
            if kw_ is None or kw_.inactive or (id(kw_), key) in done:
                continue
            k = kw_
            if covering_block(path) is not None:
                continue
            name = path.rpartition("/")[2]
            if eq:
                k.handler = _warn_value(value, name, st.instead, k.handler)
            else:
                got = status_of(path, None, patterns)
                if got is None or got[1] is not st:
                    continue  # an exact entry overrides the pattern
                k.handler = _warn(name, st.instead, k.handler)
            done.add((id(k), key))
