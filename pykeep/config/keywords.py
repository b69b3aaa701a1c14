"""Every keyword keepalived 2.2.7 knows, where it may appear, and how it takes its values.

keepalived has no list of its keywords: they are the ``install_keyword_root`` /
``install_keyword`` / ``install_sublevel`` calls of ``core/global_parser.c``,
``vrrp/vrrp_parser.c``, ``trackers/track_file.c``, ``check/check_parser.c``,
``check/check_*.c`` (``install_*_check_keyword``, ``check_api.c``
``install_checker_common_keywords``) and ``bfd/bfd_parser.c``, walked in the
order ``main.c`` installs them, with every build option of Debian's 2.2.7 on.
The names were checked against ``strings /usr/sbin/keepalived`` (2.2.7-1):
all are there but ``vrrp_ipsets`` (Debian builds without libipset) and the
names too short for ``strings`` to print (``SSL``, ``ca``, ``key``, ``vrf``).

Each line is a path of keywords from the top level of keepalived.conf, then
how keepalived reads what follows the keyword:

- ``block``: a ``{ … }`` of keywords of its own (the paths below it);
- ``values``: a ``{ … }`` of values, read by the handler itself
  (lib/parser.c ``alloc_value_block``): a ``}`` inside closes only it;
- nothing: the keyword and its arguments, on one line.

``python -m pykeep.config.ledger`` writes the ledger (docs/keywords.md):
this list beside what pykeep does with each keyword (``support.STATUS``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing stays unimported at run time: start-up counts (pykeep -t)
if TYPE_CHECKING:
    from collections.abc import Iterator

KEEPALIVED_VERSION = "2.2.7"

_KEEPALIVED = """\
linkbeat_use_polling
net_namespace
net_namespace_ipvs
namespace_with_ipsets
use_pid_dir
instance
child_wait_time
global_defs block
global_defs/process_names
global_defs/process_name
global_defs/vrrp_process_name
global_defs/checker_process_name
global_defs/lvs_process_name
global_defs/bfd_process_name
global_defs/router_id
global_defs/notification_email_from
global_defs/smtp_server
global_defs/smtp_helo_name
global_defs/smtp_connect_timeout
global_defs/notification_email values
global_defs/smtp_alert
global_defs/startup_script
global_defs/startup_script_timeout
global_defs/shutdown_script
global_defs/shutdown_script_timeout
global_defs/max_auto_priority
global_defs/min_auto_priority_delay
global_defs/smtp_alert_vrrp
global_defs/smtp_alert_checker
global_defs/checker_log_all_failures
global_defs/dynamic_interfaces
global_defs/no_email_faults
global_defs/default_interface
global_defs/disable_local_igmp
global_defs/lvs_timeouts
global_defs/lvs_flush
global_defs/lvs_flush_on_stop
global_defs/lvs_flush_onstop
global_defs/lvs_sync_daemon
global_defs/vrrp_mcast_group4
global_defs/vrrp_mcast_group6
global_defs/vrrp_garp_master_delay
global_defs/vrrp_garp_master_repeat
global_defs/vrrp_garp_master_refresh
global_defs/vrrp_garp_master_refresh_repeat
global_defs/vrrp_garp_lower_prio_delay
global_defs/vrrp_garp_lower_prio_repeat
global_defs/vrrp_down_timer_adverts
global_defs/vrrp_garp_interval
global_defs/vrrp_gna_interval
global_defs/vrrp_min_garp
global_defs/vrrp_garp_extra_if
global_defs/vrrp_vmac_garp_intvl
global_defs/vrrp_lower_prio_no_advert
global_defs/vrrp_higher_prio_send_advert
global_defs/vrrp_version
global_defs/vrrp_iptables
global_defs/vrrp_ipsets
global_defs/nftables
global_defs/nftables_priority
global_defs/nftables_ifindex
global_defs/nftables_ipvs
global_defs/nftables_ipvs_priority
global_defs/nftables_ipvs_start_fwmark
global_defs/nftables_counters
global_defs/vrrp_check_unicast_src
global_defs/vrrp_skip_check_adv_addr
global_defs/vrrp_strict
global_defs/vrrp_priority
global_defs/vrrp_no_swap
global_defs/vrrp_rt_priority
global_defs/vrrp_cpu_affinity
global_defs/vrrp_rlimit_rttime
global_defs/vrrp_rlimit_rtime
global_defs/notify_fifo
global_defs/notify_fifo_script
global_defs/vrrp_notify_fifo
global_defs/vrrp_notify_fifo_script
global_defs/vrrp_notify_priority_changes
global_defs/fifo_write_vrrp_states_on_reload
global_defs/lvs_notify_fifo
global_defs/lvs_notify_fifo_script
global_defs/checker_priority
global_defs/checker_no_swap
global_defs/checker_rt_priority
global_defs/checker_cpu_affinity
global_defs/checker_rlimit_rttime
global_defs/checker_rlimit_rtime
global_defs/bfd_priority
global_defs/bfd_no_swap
global_defs/bfd_rt_priority
global_defs/bfd_cpu_affinity
global_defs/bfd_rlimit_rttime
global_defs/bfd_rlimit_rtime
global_defs/snmp_socket
global_defs/enable_traps
global_defs/enable_snmp_vrrp
global_defs/enable_snmp_keepalived
global_defs/enable_snmp_rfc
global_defs/enable_snmp_rfcv2
global_defs/enable_snmp_rfcv3
global_defs/enable_snmp_checker
global_defs/enable_dbus
global_defs/dbus_service_name
global_defs/script_user
global_defs/enable_script_security
global_defs/vrrp_netlink_cmd_rcv_bufs
global_defs/vrrp_netlink_cmd_rcv_bufs_force
global_defs/vrrp_netlink_monitor_rcv_bufs
global_defs/vrrp_netlink_monitor_rcv_bufs_force
global_defs/process_monitor_rcv_bufs
global_defs/process_monitor_rcv_bufs_force
global_defs/lvs_netlink_cmd_rcv_bufs
global_defs/lvs_netlink_cmd_rcv_bufs_force
global_defs/lvs_netlink_monitor_rcv_bufs
global_defs/lvs_netlink_monitor_rcv_bufs_force
global_defs/rs_init_notifies
global_defs/no_checker_emails
global_defs/vrrp_rx_bufs_policy
global_defs/vrrp_rx_bufs_multiplier
global_defs/vrrp_startup_delay
global_defs/log_unknown_vrids
global_defs/vmac_prefix
global_defs/vmac_addr_prefix
global_defs/umask
global_defs/random_seed
global_defs/reload_check_config
global_defs/reload_time_file
global_defs/reload_repeat
global_defs/reload_file
global_defs/include_check
global_defs/config_save_dir
global_defs/tmp_config_directory
global_defs/data_use_instance
track_group block
track_group/group values
static_ipaddress values
static_routes values
static_rules values
vrrp_sync_group block
vrrp_sync_group/group values
vrrp_sync_group/track_interface values
vrrp_sync_group/track_script values
vrrp_sync_group/track_file values
vrrp_sync_group/track_process values
vrrp_sync_group/track_bfd values
vrrp_sync_group/notify_backup
vrrp_sync_group/notify_master
vrrp_sync_group/notify_fault
vrrp_sync_group/notify_stop
vrrp_sync_group/notify
vrrp_sync_group/smtp_alert
vrrp_sync_group/global_tracking
vrrp_sync_group/sync_group_tracking_weight
vrrp_sync_group/notify_priority_changes
garp_group block
garp_group/garp_interval
garp_group/gna_interval
garp_group/interface
garp_group/interfaces values
linkbeat_interfaces values
vrrp_instance block
vrrp_instance/use_vmac
vrrp_instance/use_vmac_addr
vrrp_instance/vmac_xmit_base
vrrp_instance/use_ipvlan
vrrp_instance/unicast_peer values
vrrp_instance/unicast_fault_no_peer
vrrp_instance/check_unicast_src
vrrp_instance/old_unicast_checksum
vrrp_instance/native_ipv6
vrrp_instance/state
vrrp_instance/interface
vrrp_instance/vrf
vrrp_instance/dont_track_primary
vrrp_instance/track_interface values
vrrp_instance/track_script values
vrrp_instance/track_file values
vrrp_instance/track_process values
vrrp_instance/track_bfd values
vrrp_instance/mcast_src_ip
vrrp_instance/unicast_src_ip
vrrp_instance/mcast_dst_ip
vrrp_instance/track_src_ip
vrrp_instance/virtual_router_id
vrrp_instance/unicast_ttl
vrrp_instance/version
vrrp_instance/priority
vrrp_instance/advert_int
vrrp_instance/virtual_ipaddress values
vrrp_instance/virtual_ipaddress_excluded values
vrrp_instance/promote_secondaries
vrrp_instance/linkbeat_use_polling
vrrp_instance/virtual_routes values
vrrp_instance/virtual_rules values
vrrp_instance/accept
vrrp_instance/no_accept
vrrp_instance/skip_check_adv_addr
vrrp_instance/strict_mode
vrrp_instance/preempt
vrrp_instance/nopreempt
vrrp_instance/preempt_delay
vrrp_instance/debug
vrrp_instance/notify_backup
vrrp_instance/notify_master
vrrp_instance/notify_fault
vrrp_instance/notify_stop
vrrp_instance/notify_deleted
vrrp_instance/notify
vrrp_instance/notify_master_rx_lower_pri
vrrp_instance/smtp_alert
vrrp_instance/notify_priority_changes
vrrp_instance/lvs_sync_daemon_interface
vrrp_instance/garp_master_delay
vrrp_instance/garp_master_refresh
vrrp_instance/garp_master_repeat
vrrp_instance/garp_master_refresh_repeat
vrrp_instance/garp_lower_prio_delay
vrrp_instance/garp_lower_prio_repeat
vrrp_instance/down_timer_adverts
vrrp_instance/garp_extra_if
vrrp_instance/vmac_garp_intvl
vrrp_instance/lower_prio_no_advert
vrrp_instance/higher_prio_send_advert
vrrp_instance/kernel_rx_buf_size
vrrp_instance/authentication block
vrrp_instance/authentication/auth_type
vrrp_instance/authentication/auth_pass
vrrp_script block
vrrp_script/script
vrrp_script/interval
vrrp_script/timeout
vrrp_script/weight
vrrp_script/rise
vrrp_script/fall
vrrp_script/user
vrrp_script/init_fail
vrrp_track_process block
vrrp_track_process/process
vrrp_track_process/param_match
vrrp_track_process/weight
vrrp_track_process/quorum
vrrp_track_process/quorum_max
vrrp_track_process/delay
vrrp_track_process/terminate_delay
vrrp_track_process/fork_delay
vrrp_track_process/full_command
interface_up_down_delays values
track_file block
track_file/file
track_file/weight
track_file/init_file
vrrp_track_file block
vrrp_track_file/file
vrrp_track_file/weight
vrrp_track_file/init_file
SSL block
SSL/password
SSL/ca
SSL/certificate
SSL/key
virtual_server_group values
virtual_server block
virtual_server/ip_family
virtual_server/retry
virtual_server/delay_before_retry
virtual_server/warmup
virtual_server/connect_timeout
virtual_server/delay_loop
virtual_server/inhibit_on_failure
virtual_server/lb_algo
virtual_server/lvs_sched
virtual_server/hashed
virtual_server/ops
virtual_server/flag-1
virtual_server/flag-2
virtual_server/flag-3
virtual_server/sh-port
virtual_server/sh-fallback
virtual_server/mh-port
virtual_server/mh-fallback
virtual_server/lb_kind
virtual_server/lvs_method
virtual_server/persistence_engine
virtual_server/persistence_timeout
virtual_server/persistence_granularity
virtual_server/protocol
virtual_server/ha_suspend
virtual_server/smtp_alert
virtual_server/virtualhost
virtual_server/snmp_name
virtual_server/alpha
virtual_server/omega
virtual_server/quorum_up
virtual_server/quorum_down
virtual_server/quorum
virtual_server/hysteresis
virtual_server/weight
virtual_server/sorry_server
virtual_server/sorry_server_inhibit
virtual_server/sorry_server_lvs_method
virtual_server/real_server block
virtual_server/real_server/weight
virtual_server/real_server/lvs_method
virtual_server/real_server/uthreshold
virtual_server/real_server/lthreshold
virtual_server/real_server/inhibit_on_failure
virtual_server/real_server/notify_up
virtual_server/real_server/notify_down
virtual_server/real_server/alpha
virtual_server/real_server/retry
virtual_server/real_server/delay_before_retry
virtual_server/real_server/warmup
virtual_server/real_server/connect_timeout
virtual_server/real_server/delay_loop
virtual_server/real_server/smtp_alert
virtual_server/real_server/virtualhost
virtual_server/real_server/snmp_name
virtual_server/real_server/MISC_CHECK block
virtual_server/real_server/MISC_CHECK/retry
virtual_server/real_server/MISC_CHECK/delay_before_retry
virtual_server/real_server/MISC_CHECK/warmup
virtual_server/real_server/MISC_CHECK/delay_loop
virtual_server/real_server/MISC_CHECK/alpha
virtual_server/real_server/MISC_CHECK/log_all_failures
virtual_server/real_server/MISC_CHECK/misc_path
virtual_server/real_server/MISC_CHECK/misc_timeout
virtual_server/real_server/MISC_CHECK/misc_dynamic
virtual_server/real_server/MISC_CHECK/user
virtual_server/real_server/SMTP_CHECK block
virtual_server/real_server/SMTP_CHECK/helo_name
virtual_server/real_server/SMTP_CHECK/connect_ip
virtual_server/real_server/SMTP_CHECK/connect_port
virtual_server/real_server/SMTP_CHECK/bindto
virtual_server/real_server/SMTP_CHECK/bind_port
virtual_server/real_server/SMTP_CHECK/bind_if
virtual_server/real_server/SMTP_CHECK/connect_timeout
virtual_server/real_server/SMTP_CHECK/fwmark
virtual_server/real_server/SMTP_CHECK/retry
virtual_server/real_server/SMTP_CHECK/delay_before_retry
virtual_server/real_server/SMTP_CHECK/warmup
virtual_server/real_server/SMTP_CHECK/delay_loop
virtual_server/real_server/SMTP_CHECK/alpha
virtual_server/real_server/SMTP_CHECK/log_all_failures
virtual_server/real_server/SMTP_CHECK/host block
virtual_server/real_server/SMTP_CHECK/host/connect_ip
virtual_server/real_server/SMTP_CHECK/host/connect_port
virtual_server/real_server/SMTP_CHECK/host/bindto
virtual_server/real_server/SMTP_CHECK/host/bind_port
virtual_server/real_server/SMTP_CHECK/host/bind_if
virtual_server/real_server/SMTP_CHECK/host/connect_timeout
virtual_server/real_server/SMTP_CHECK/host/fwmark
virtual_server/real_server/SMTP_CHECK/host/retry
virtual_server/real_server/SMTP_CHECK/host/delay_before_retry
virtual_server/real_server/SMTP_CHECK/host/warmup
virtual_server/real_server/SMTP_CHECK/host/delay_loop
virtual_server/real_server/SMTP_CHECK/host/alpha
virtual_server/real_server/SMTP_CHECK/host/log_all_failures
virtual_server/real_server/TCP_CHECK block
virtual_server/real_server/TCP_CHECK/connect_ip
virtual_server/real_server/TCP_CHECK/connect_port
virtual_server/real_server/TCP_CHECK/bindto
virtual_server/real_server/TCP_CHECK/bind_port
virtual_server/real_server/TCP_CHECK/bind_if
virtual_server/real_server/TCP_CHECK/connect_timeout
virtual_server/real_server/TCP_CHECK/fwmark
virtual_server/real_server/TCP_CHECK/retry
virtual_server/real_server/TCP_CHECK/delay_before_retry
virtual_server/real_server/TCP_CHECK/warmup
virtual_server/real_server/TCP_CHECK/delay_loop
virtual_server/real_server/TCP_CHECK/alpha
virtual_server/real_server/TCP_CHECK/log_all_failures
virtual_server/real_server/PING_CHECK block
virtual_server/real_server/PING_CHECK/connect_ip
virtual_server/real_server/PING_CHECK/connect_port
virtual_server/real_server/PING_CHECK/bindto
virtual_server/real_server/PING_CHECK/bind_port
virtual_server/real_server/PING_CHECK/bind_if
virtual_server/real_server/PING_CHECK/connect_timeout
virtual_server/real_server/PING_CHECK/fwmark
virtual_server/real_server/PING_CHECK/retry
virtual_server/real_server/PING_CHECK/delay_before_retry
virtual_server/real_server/PING_CHECK/warmup
virtual_server/real_server/PING_CHECK/delay_loop
virtual_server/real_server/PING_CHECK/alpha
virtual_server/real_server/PING_CHECK/log_all_failures
virtual_server/real_server/UDP_CHECK block
virtual_server/real_server/UDP_CHECK/connect_ip
virtual_server/real_server/UDP_CHECK/connect_port
virtual_server/real_server/UDP_CHECK/bindto
virtual_server/real_server/UDP_CHECK/bind_port
virtual_server/real_server/UDP_CHECK/bind_if
virtual_server/real_server/UDP_CHECK/connect_timeout
virtual_server/real_server/UDP_CHECK/fwmark
virtual_server/real_server/UDP_CHECK/retry
virtual_server/real_server/UDP_CHECK/delay_before_retry
virtual_server/real_server/UDP_CHECK/warmup
virtual_server/real_server/UDP_CHECK/delay_loop
virtual_server/real_server/UDP_CHECK/alpha
virtual_server/real_server/UDP_CHECK/log_all_failures
virtual_server/real_server/UDP_CHECK/payload
virtual_server/real_server/UDP_CHECK/require_reply
virtual_server/real_server/UDP_CHECK/min_reply_length
virtual_server/real_server/UDP_CHECK/max_reply_length
virtual_server/real_server/HTTP_GET block
virtual_server/real_server/HTTP_GET/connect_ip
virtual_server/real_server/HTTP_GET/connect_port
virtual_server/real_server/HTTP_GET/bindto
virtual_server/real_server/HTTP_GET/bind_port
virtual_server/real_server/HTTP_GET/bind_if
virtual_server/real_server/HTTP_GET/connect_timeout
virtual_server/real_server/HTTP_GET/fwmark
virtual_server/real_server/HTTP_GET/retry
virtual_server/real_server/HTTP_GET/delay_before_retry
virtual_server/real_server/HTTP_GET/warmup
virtual_server/real_server/HTTP_GET/delay_loop
virtual_server/real_server/HTTP_GET/alpha
virtual_server/real_server/HTTP_GET/log_all_failures
virtual_server/real_server/HTTP_GET/nb_get_retry
virtual_server/real_server/HTTP_GET/virtualhost
virtual_server/real_server/HTTP_GET/http_protocol
virtual_server/real_server/HTTP_GET/enable_sni
virtual_server/real_server/HTTP_GET/fast_recovery
virtual_server/real_server/HTTP_GET/url block
virtual_server/real_server/HTTP_GET/url/path
virtual_server/real_server/HTTP_GET/url/digest
virtual_server/real_server/HTTP_GET/url/status_code
virtual_server/real_server/HTTP_GET/url/virtualhost
virtual_server/real_server/HTTP_GET/url/regex
virtual_server/real_server/HTTP_GET/url/regex_no_match
virtual_server/real_server/HTTP_GET/url/regex_options
virtual_server/real_server/HTTP_GET/url/regex_min_offset
virtual_server/real_server/HTTP_GET/url/regex_max_offset
virtual_server/real_server/HTTP_GET/url/regex_stack
virtual_server/real_server/SSL_GET block
virtual_server/real_server/SSL_GET/connect_ip
virtual_server/real_server/SSL_GET/connect_port
virtual_server/real_server/SSL_GET/bindto
virtual_server/real_server/SSL_GET/bind_port
virtual_server/real_server/SSL_GET/bind_if
virtual_server/real_server/SSL_GET/connect_timeout
virtual_server/real_server/SSL_GET/fwmark
virtual_server/real_server/SSL_GET/retry
virtual_server/real_server/SSL_GET/delay_before_retry
virtual_server/real_server/SSL_GET/warmup
virtual_server/real_server/SSL_GET/delay_loop
virtual_server/real_server/SSL_GET/alpha
virtual_server/real_server/SSL_GET/log_all_failures
virtual_server/real_server/SSL_GET/nb_get_retry
virtual_server/real_server/SSL_GET/virtualhost
virtual_server/real_server/SSL_GET/http_protocol
virtual_server/real_server/SSL_GET/enable_sni
virtual_server/real_server/SSL_GET/fast_recovery
virtual_server/real_server/SSL_GET/url block
virtual_server/real_server/SSL_GET/url/path
virtual_server/real_server/SSL_GET/url/digest
virtual_server/real_server/SSL_GET/url/status_code
virtual_server/real_server/SSL_GET/url/virtualhost
virtual_server/real_server/SSL_GET/url/regex
virtual_server/real_server/SSL_GET/url/regex_no_match
virtual_server/real_server/SSL_GET/url/regex_options
virtual_server/real_server/SSL_GET/url/regex_min_offset
virtual_server/real_server/SSL_GET/url/regex_max_offset
virtual_server/real_server/SSL_GET/url/regex_stack
virtual_server/real_server/DNS_CHECK block
virtual_server/real_server/DNS_CHECK/connect_ip
virtual_server/real_server/DNS_CHECK/connect_port
virtual_server/real_server/DNS_CHECK/bindto
virtual_server/real_server/DNS_CHECK/bind_port
virtual_server/real_server/DNS_CHECK/bind_if
virtual_server/real_server/DNS_CHECK/connect_timeout
virtual_server/real_server/DNS_CHECK/fwmark
virtual_server/real_server/DNS_CHECK/retry
virtual_server/real_server/DNS_CHECK/delay_before_retry
virtual_server/real_server/DNS_CHECK/warmup
virtual_server/real_server/DNS_CHECK/delay_loop
virtual_server/real_server/DNS_CHECK/alpha
virtual_server/real_server/DNS_CHECK/log_all_failures
virtual_server/real_server/DNS_CHECK/type
virtual_server/real_server/DNS_CHECK/name
virtual_server/real_server/FILE_CHECK block
virtual_server/real_server/FILE_CHECK/track_file
virtual_server/real_server/FILE_CHECK/weight
virtual_server/real_server/BFD_CHECK block
virtual_server/real_server/BFD_CHECK/name
virtual_server/real_server/BFD_CHECK/alpha
bfd_instance block
bfd_instance/source_ip
bfd_instance/neighbor_ip
bfd_instance/neighbour_ip
bfd_instance/min_rx
bfd_instance/min_tx
bfd_instance/idle_tx
bfd_instance/multiplier
bfd_instance/passive
bfd_instance/ttl
bfd_instance/hoplimit
bfd_instance/max_hops
bfd_instance/weight
bfd_instance/vrrp
bfd_instance/checker
"""

BLOCK = "block"
VALUES = "values"


def keepalived_keywords() -> Iterator[tuple[str, str]]:
    """(path, kind) for every keyword of keepalived 2.2.7, in its install order."""
    for line in _KEEPALIVED.splitlines():
        path, _sep, kind = line.partition(" ")
        yield path, kind
