"""Each class of ``-t`` disagreement issue 12 lists, in a small file, judged as keepalived does.

The pure tests pin pykeep's verdict and wording; the ``netns`` test puts
the same files through Debian's ``keepalived -t`` (2.2.7) and requires the
same exit code and the same set of reported lines.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pykeep.config import LoadResult, Severity, load, load_text
from pykeep.config.model import MiscCheck
from tests.differential.runner import (
    keepalived_outcome,
    namespace,
    namespace_interfaces,
    pykeep_outcome,
)

INSTANCE = """vrrp_instance VI_1 {{
  interface dfa0
  virtual_router_id 51
{extra}
  virtual_ipaddress {{
    192.0.2.10/24
  }}
}}
"""

CASES: dict[str, str] = {
    "sync-group-no-member": "vrrp_sync_group G1 {\n  group {\n    VI_missing\n  }\n}\n"
    + INSTANCE.format(extra=""),
    "track-own-interface": INSTANCE.format(extra="  track_interface {\n    dfa0\n  }"),
    "notify-user-words": INSTANCE.format(extra='  notify_master "/bin/true" nosuchuser'),
    "script-security-no-user": "global_defs {\n  enable_script_security\n}\n"
    'vrrp_script chk {\n  script "/bin/true"\n}\n' + INSTANCE.format(extra=""),
    "smtp-server-invalid": "global_defs {\n  smtp_server **\n}\n" + INSTANCE.format(extra=""),
    "unicast-with-prefix": INSTANCE.format(
        extra="  unicast_src_ip 192.0.2.1/24\n  unicast_peer {\n    192.0.2.2/24\n  }"
    ),
    "quorum-zero": "virtual_server 192.0.2.100 80 {\n  protocol TCP\n  quorum 0\n"
    "  real_server 192.0.2.11 80 {\n    TCP_CHECK {\n      nb_get_retry 3\n    }\n  }\n}\n",
    # A line of 2,500 bytes: fgets reads it in three pieces, which keepalived's
    # parent (global_defs) and its VRRP and checker processes number apart.
    "long-lines": "global_defs {\n  router_id "
    + "g" * 2500
    + "\n  bogus_g 1\n}\n"
    + INSTANCE.format(extra="  priority " + "1" * 2500 + "\n  bogus_v 1")
    + "virtual_server 192.0.2.100 80 {\n  protocol TCP\n  lb_algo "
    + "r" * 2500
    + "\n  bogus_c 1\n}\n",
    # Blocks pykeep warns about, still judged as keepalived judges them.
    "warned-blocks": "garp_group {\n  interface nope0\n  interfaces {\n  }\n}\n"
    "track_group tg {\n  group {\n  }\n}\n"
    "linkbeat_interfaces {\n  nope0\n  dfa0 BOGUS\n}\n"
    "interface_up_down_delays {\n  dfa0 x 300\n}\n"
    + INSTANCE.format(extra="")
    + "virtual_server 192.0.2.100 80 {\n  protocol TCP\n"
    "  real_server 192.0.2.11 80 {\n    BFD_CHECK {\n      alpha maybe\n      weight 1\n"
    "    }\n    TCP_CHECK {\n      bindto 2001:db8::1\n      bind_if "
    + "i" * 16
    + "\n    }\n  }\n}\n",
    "unicast-without-peers": INSTANCE.format(
        extra="  unicast_src_ip 192.0.2.1\n  unicast_ttl 0\n  notify_fifo /tmp/f"
    ),
    "vrrp-script-seconds": 'vrrp_script chk {\n  script "/bin/true"\n  interval 0.5\n'
    "  timeout 0\n  fall 0\n}\n" + INSTANCE.format(extra=""),
    # Found by the generated differential (tests/differential), one class each.
    "smtp-server-unresolvable": "global_defs {\n  smtp_server no-such-host.invalid\n}\n"
    + INSTANCE.format(extra=""),
    "global-words-exact": "global_defs {\n  lvs_flush_on_stop true\n"
    '  checker_log_all_failures TRUE\n  dynamic_interfaces yes\n  umask "a b"\n'
    "  umask IRUSR IWGRP\n  umask 0999\n}\nchild_wait_time -3\n" + INSTANCE.format(extra=""),
    "script-user-failed": "global_defs {\n  script_user nosuchuser\n}\n"
    'vrrp_script chk {\n  script "/bin/true"\n}\n' + INSTANCE.format(extra=""),
    "fifo-script-user": 'global_defs {\n  notify_fifo_script "/bin/true" nosuchuser\n'
    '  lvs_notify_fifo_script "/bin/true" root\n}\n'
    + INSTANCE.format(extra="")
    + "virtual_server 192.0.2.100 80 {\n  protocol TCP\n"
    "  real_server 192.0.2.11 80 {\n    TCP_CHECK {\n    }\n  }\n}\n",
    "vrrp-duplicates": 'vrrp_script chk {\n  script "/bin/true"\n  user 1\n}\n'
    + INSTANCE.format(
        extra="  notify_fault /nonexistent/a\n  notify_fault /bin/true\n  notify_deleted\n"
        '  notify_deleted "/bin/true arg"\n  garp_master_repeat 0\n  down_timer_adverts ""\n'
        "  use_ipvlan bridge 0 1"
    ),
    "src-ip-family": "vrrp_instance VI_1 {\n  interface dfa0\n  virtual_router_id 51\n"
    "  virtual_ipaddress {\n    192.0.2.10/24\n  }\n  mcast_src_ip 2001:db8::1\n}\n",
    "check-duplicates": "virtual_server 192.0.2.100 80 {\n  protocol TCP\n  weight 0\n"
    "  ip_family inet6\n  quorum_up /nonexistent/q\n  quorum_up /bin/true\n"
    "  real_server 192.0.2.11 80 {\n    retry 0\n    DNS_CHECK {\n      name a.example\n"
    "      name example.com\n    }\n    UDP_CHECK {\n      payload 0x10\n"
    '      require_reply "a b"\n      min_reply_length 300\n    }\n    UDP_CHECK {\n'
    "      require_reply xxff\n    }\n    SMTP_CHECK {\n      bindto 2001:db8::1\n"
    "      host {\n        connect_ip fe80::1\n      }\n    }\n  }\n}\n",
    "lvs-sync-daemon-forms": "global_defs {\n  lvs_sync_daemon dfa0\n"
    "  lvs_sync_daemon dfa0 VI_1 id 300\n}\n" + INSTANCE.format(extra=""),
    # The last exit-code classes of the generated differential (seed 1).
    "umask-missing": "global_defs {\n  umask 4294967295\n  umask\n}\n" + INSTANCE.format(extra=""),
    "digest-duplicate": "virtual_server 192.0.2.100 80 {\n  protocol TCP\n"
    "  real_server 192.0.2.11 80 {\n    SSL_GET {\n      url {\n        path /\n"
    "        digest d41d8cd98f00b204e9800998ecf8427e\n"
    "        digest d41d8cd98f00b204e9800998ecf8427e\n      }\n    }\n  }\n}\n",
    "kernel-rx-buf-extra": INSTANCE.format(extra="  kernel_rx_buf_size 1 1"),
    "misc-timeout-seconds": "virtual_server 192.0.2.100 80 {\n  protocol TCP\n"
    "  real_server 192.0.2.11 80 {\n    MISC_CHECK {\n      misc_path /bin/true\n"
    "      misc_timeout 0.5\n    }\n  }\n}\n",
    "fifo-script-first-dropped": "global_defs {\n  lvs_notify_fifo_script true 1\n"
    "  lvs_notify_fifo_script yes\n}\n"
    "virtual_server 192.0.2.100 80 {\n  protocol TCP\n"
    "  real_server 192.0.2.11 80 {\n    TCP_CHECK {\n    }\n  }\n}\n",
    "real-server-port-range": "virtual_server 192.0.2.100 80 {\n  protocol TCP\n"
    "  real_server 192.0.2.12 99999 {\n    MISC_CHECK {\n      misc_path /bin/true\n"
    "    }\n  }\n  real_server 192.0.2.11 80 {\n  }\n}\n",
    "value-block-without-brace": "interface_up_down_delays off\nvirtual_server_group 1\n"
    "global_defs {\n  router_id x\n}\n" + INSTANCE.format(extra=""),
    "track-group-empty-list": 'vrrp_script chk {\n  script "/bin/true"\n}\n'
    "track_group tg {\n  group {\n  }\n  group VSG1\n}\n"
    + INSTANCE.format(extra="  track_script {\n    chk\n  }"),
    "bfd-stops-last": "track_group x1 {\n  group VSG1 extra\n}\nbfd_instance x1 {\n"
    "  vrrp 1\n  hoplimit\n  max_hops on\n}\n" + INSTANCE.format(extra=""),
    "bfd-neighbor-prefix": "bfd_instance b1 {\n  neighbor_ip 192.0.2.1/24\n"
    "  source_ip 192.0.2.2-9\n}\n" + INSTANCE.format(extra="  track_bfd {\n    b1\n  }"),
    "checker-stops-first": "bfd_instance x1 {\n}\nvirtual_server_group 0\n"
    "global_defs {\n  router_id x\n}\n" + INSTANCE.format(extra=""),
}


def _judge(name: str) -> LoadResult:
    return load_text(CASES[name], f"{name}.conf", "pk", {"dfa0", "dfb0"}.__contains__)


def _messages(r: LoadResult) -> list[str]:
    return [d.message for d in r.diagnostics]


def test_sync_group_naming_no_instance_is_removed() -> None:
    r = _judge("sync-group-no-member")
    assert r.exit_code == 5
    assert "Sync group G1, no matching virtual router found in group declaration - removing" in (
        _messages(r)
    )
    assert r.config.vrrp_sync_groups == ()


def test_track_interface_on_own_interface_is_ignored_with_a_message() -> None:
    r = _judge("track-own-interface")
    # keepalived 2.2.7 -t prints it and exits 5 (checked by the netns test below).
    assert r.exit_code == 5
    assert "(VI_1) Ignoring track_interface dfa0 since own interface" in _messages(r)
    assert r.config.vrrp_instances[0].track_interface == ()


def test_words_after_a_notify_script_are_its_user() -> None:
    r = _judge("notify-user-words")
    # keepalived drops the script (notify.c notify_script_init) and only logs it:
    # nothing is left to run, so there is no script-security verdict either.
    assert r.exit_code == 0
    assert any(m.startswith("Invalid user/group for notify_master script") for m in _messages(r))
    assert not any("SECURITY VIOLATION" in m for m in _messages(r))


def test_script_security_without_a_default_user_fails() -> None:
    if shutil.which("id") and Path("/etc/passwd").read_text().count("\nkeepalived_script:"):
        pytest.fail("this test needs a machine without a keepalived_script user")
    r = _judge("script-security-no-user")
    assert r.exit_code == 5
    assert "Unable to set default user keepalived_script for script" in _messages(r)
    assert "Unable to set default user for vrrp script chk - removing" in _messages(r)


def test_invalid_smtp_server_is_an_error() -> None:
    r = _judge("smtp-server-invalid")
    assert r.exit_code == 5
    assert "Invalid smtp server ** 25" in _messages(r)


def test_unicast_addresses_lose_their_prefix() -> None:
    r = _judge("unicast-with-prefix")
    assert r.exit_code == 0, _messages(r)
    v = r.config.vrrp_instances[0]
    assert str(v.unicast_src_ip) == "192.0.2.1"
    assert [str(p.address) for p in v.unicast_peers] == ["192.0.2.2"]


def test_both_lines_of_a_correction_and_the_current_spelling() -> None:
    r = _judge("quorum-zero")
    msgs = _messages(r)
    assert "number '0' outside range [1, 4294967295]" in msgs
    assert "Quorum 0 must be in [1, 4294967295]. Setting to 1." in msgs
    assert r.config.virtual_servers[0].quorum == 1
    unknown = [d for d in r.diagnostics if d.message == "Unknown keyword 'nb_get_retry'"]
    assert unknown and unknown[0].severity == Severity.UNKNOWN_KEYWORD
    assert "'retry'" in (unknown[0].hint or "")


def test_long_lines_are_numbered_as_each_keepalived_process_numbers_them() -> None:
    """parser.c read_line: the parent counts a line when fgets ends it; the children
    read the parent's decommented copy, a line a piece, and a piece that still
    fills 1023 bytes there is read before its newline counts (lexer.py _fgets_lines)."""
    r = _judge("long-lines")
    at = [(d.loc.line, d.message.split(" '")[0]) for d in r.diagnostics if d.loc]
    unknown = sorted(n for n, m in at if m == "Unknown keyword")
    # global_defs (parent): line 2's pieces at 1, 1 and 2, 'bogus_g' at 3.
    # vrrp_instance (VRRP process): two extra lines before; line 8 is pieces
    # at 10, 10 (1023 bytes once decommented) and 12, 'bogus_v' at 13.
    # virtual_server (checker): four extra lines; 'bogus_c' (line 19) at 23.
    assert unknown == [1, 2, 3, 10, 12, 13, 20, 22, 23], at
    assert (10, "(VI_1) Priority not valid! must be between 1 & 255. Using default 100") in at


def test_warned_blocks_are_still_judged() -> None:
    r = _judge("warned-blocks")
    msgs = _messages(r)
    for m in (
        "WARNING - interface nope0 specified for garp_group doesn't exist",
        "Warning - empty garp_group interfaces block",
        "garp group 0 does not have any delay set - removing",
        "Warning - track group tg has empty group block",
        "unknown interface nope0 specified for linkbeat interface",
        "extra characters BOGUS in linkbeat interface",
        "invalid number 'x'",
        "Invalid alpha parameter maybe",
        "Unknown keyword 'weight'",
        "([192.0.2.11]:tcp:80) No name has been specified for BFD_CHECKER - skipping",
        "bindto address 2001:db8::1 does not match address family of connect_ip - skipping",
        f"Interface name {'i' * 16} is too long - ignoring",
    ):
        assert m in msgs, (m, msgs)
    assert r.exit_code == 5  # as keepalived -t (the netns test below)


def test_unicast_keywords_without_peers_and_pykeep_only_instance_keywords() -> None:
    r = _judge("unicast-without-peers")
    msgs = _messages(r)
    assert "(VI_1): Cannot use unicast_ttl without unicast peers - resetting" in msgs
    assert "Unknown keyword 'notify_fifo'" in msgs  # global_defs' only, as for keepalived
    assert any(m.startswith("(VI_1) A unicast keyword has been specified") for m in msgs)
    assert r.exit_code == 5


def test_vrrp_script_times_are_whole_seconds() -> None:
    r = _judge("vrrp-script-seconds")
    msgs = _messages(r)
    assert "(chk): vrrp script interval '0.5' must be between 1 and 4294 - ignoring" in msgs
    assert "(chk): vrrp script timeout must be greater than 0, setting to 1" in msgs
    assert "(chk): vrrp script fall value '0' invalid, defaulting to 1" in msgs
    s = r.config.vrrp_scripts[0]
    assert (s.interval, s.timeout, s.fall) == (1.0, 1.0, 1)


def test_generated_classes_give_keepalived_verdicts() -> None:
    """The classes the generated differential found, each pinned to keepalived 2.2.7's verdict.

    The netns test below checks the same files against keepalived itself.
    """
    verdicts = {name: _judge(name) for name in CASES}
    # lib/utils.c domain_stosockaddr: a name the resolver does not know.
    assert verdicts["smtp-server-unresolvable"].exit_code == 5
    # check_true_false and friends are case-sensitive; umask_handler's words.
    said = _messages(verdicts["global-words-exact"])
    for text in (
        "Unknown lvs_flush_on_stop type true",
        "Invalid value for checker_log_all_failures specified",
        "Unknown dynamic_interfaces option 'yes'",
        "Unknown umask bit a b",
        "Invalid umask syntax IWGRP",
        "invalid umask value 0999",
        "Invalid child_wait_time -3",
    ):
        assert text in said, text
    # notify.c default_user_fail: a failed script_user drops scripts without a user.
    r = verdicts["script-user-failed"]
    assert r.exit_code == 5 and r.config.vrrp_scripts == ()
    # A FIFO script whose user is unknown is dropped (a log line); the LVS FIFO's
    # script still counts towards the checker's script-security verdict.
    r = verdicts["fifo-script-user"]
    assert r.exit_code == 6 and r.config.global_defs.notify_fifo_script is None
    said = _messages(verdicts["vrrp-duplicates"])
    for text in (
        "Unable to set uid/gid for script '/bin/true'",
        "(VI_1) notify_fault script already specified - ignoring /bin/true",
        "(VI_1) notify_deleted already specified - ignoring /bin/true arg",
        "(VI_1): garp_master_repeat must be greater than 0, setting to 1",
        "(VI_1): Invalid down_timer_adverts [1:100] ''",
        "(VI_1) IPVLAN interface already specified - ignoring '1'",
        "(VI_1) IPv4 ipvlan requires a source ip address to be configured. "
        "setting instance to fault state",
    ):
        assert text in said, text
    assert (
        "Configuration error: VRRP instance[VI_1] and src address[2001:db8::1] MUST be of "
        "the same family !!! Skipping..." in _messages(verdicts["src-ip-family"])
    )
    r = verdicts["check-duplicates"]
    said = _messages(r)
    for text in (
        "Virtual server weight 0 is outside range 1-2147483647",
        "Virtual server specified family inet6 conflicts with server family",
        "quorum_up script already specified - ignoring /bin/true",
        "retry value invalid - 0",
        "DNS_CHECK name 'a.example' has empty label - ignoring",
        "Invalid hex string for UDP_CHECK payload",
        "UDP_CHECK min_reply length 300 > max_reply_length 255 - will always fail",
        "Invalid hex string for UDP_CHECK reply",
        "Checker link local address fe80::1 requires a bind_if",
    ):
        assert text in said, text
    assert not any("does not match address family" in m for m in said)
    # The duplicate quorum_up is refused before its script is read: nothing to run.
    assert r.exit_code == 5
    r = verdicts["lvs-sync-daemon-forms"]
    assert "lvs_sync_daemon has already been specified as dfa0  - ignoring" in _messages(r)
    assert r.config.global_defs.lvs_sync_daemon is not None
    assert r.config.global_defs.lvs_sync_daemon.vrrp_instance == ""


def test_last_exit_code_classes_give_keepalived_verdicts() -> None:
    """The exit-code classes the 20,000-file differential still found, each as keepalived 2.2.7.

    The netns test below runs the same files through keepalived itself.
    """
    v = {name: _judge(name) for name in CASES}
    # global_parser.c umask_handler takes strvec_slot(strvec, 1) first:
    # without a word, parser.c null_strvec exits 2.
    assert v["umask-missing"].exit_code == 2
    assert "invalid umask value 4294967295" in _messages(v["umask-missing"])
    # check_http.c digest_handler: a url's second digest is refused.
    r = v["digest-duplicate"]
    assert r.exit_code == 5
    assert "Digest 'd41d8cd98f00b204e9800998ecf8427e' is a duplicate" in _messages(r)
    # vrrp_parser.c kernel_rx_buf_size_handler wants exactly one word.
    r = v["kernel-rx-buf-extra"]
    assert r.exit_code == 5
    assert "(VI_1) invalid kernel_rx_buf_size specified" in _messages(r)
    # check_misc.c misc_timeout_handler: whole seconds (read_unsigned).
    r = v["misc-timeout-seconds"]
    assert "Invalid misc_timeout value '0.5'" in _messages(r)
    misc = r.config.virtual_servers[0].real_servers[0].checkers[0]
    assert isinstance(misc, MiscCheck) and misc.misc_timeout is None
    # global_parser.c notify_fifo_script tests fifo->script: the first script,
    # dropped for its unknown user, does not make the second a duplicate; the
    # second is a check script run without script security.
    r = v["fifo-script-first-dropped"]
    assert r.exit_code == 6
    assert not any("already specified" in m for m in _messages(r))
    # check_data.c alloc_rs: inet_stosockaddr reads the port in [1, 65535]
    # first; a bad one drops the real server and skips its block (its
    # MISC_CHECK never counts towards script security).
    r = v["real-server-port-range"]
    assert r.exit_code == 5
    msgs = _messages(r)
    assert "number '99999' outside range [1, 65535]" in msgs
    assert "Invalid real server ip address/port 192.0.2.12/99999 - skipping" in msgs
    assert [str(rs.address) for rs in r.config.virtual_servers[0].real_servers] == ["192.0.2.11"]
    # parser.c alloc_value_block only logs a missing '{'; the checker pass,
    # for which interface_up_down_delays is inactive (skip_sublevel -1),
    # reads virtual_server_group next, and vsg_handler stops there (exit 2).
    r = v["value-block-without-brace"]
    assert r.exit_code == 2
    assert not any("up/down delay" in m for m in _messages(r))
    # vrrp_parser.c static_track_group_group_handler: an empty list leaves
    # tgroup->iname NULL, so the next 'group' is read (its extra word makes
    # alloc_value_block's '}' the track_group's), and the instance after it
    # is swallowed: no instance, so chk is not run and no security verdict.
    r = v["track-group-empty-list"]
    assert r.exit_code == 5
    msgs = _messages(r)
    assert "Block group has extra parameters VSG1 ..." in msgs
    assert "Unknown keyword 'vrrp_instance'" in msgs
    assert not any("Group list already specified" in m for m in msgs)
    # bfd_parser.c: only the BFD process reads hoplimit, and it reads the
    # file last (main.c validate_config): the VRRP process has said
    # everything (max_hops unknown inside track_group) before the stop.
    r = v["bfd-stops-last"]
    assert r.exit_code == 2
    at = {(d.loc.line, d.message) for d in r.diagnostics if d.loc}
    assert (7, "Unknown keyword 'max_hops'") in at
    assert any(n == 6 and "missing a parameter" in m for n, m in at)
    # lib/utils.c inet_stosockaddr cuts what follows '/' or '-'.
    r = v["bfd-neighbor-prefix"]
    assert r.exit_code == 0, _messages(r)
    assert [str(b.neighbor_ip) for b in r.config.bfd_instances] == ["192.0.2.1"]
    # The checker process stops (exit 2) before the BFD process reads.
    r = v["checker-stops-first"]
    assert r.exit_code == 2
    assert not any("no neighbor address" in m for m in _messages(r))


@pytest.mark.netns
def test_same_exit_code_and_lines_as_keepalived(tmp_path: Path) -> None:
    if shutil.which("keepalived") is None:
        pytest.fail("keepalived is not installed: run 'make setup'")
    paths = {}
    for name, text in CASES.items():
        paths[name] = tmp_path / f"{name}.conf"
        paths[name].write_text(text)
    bad = []
    with namespace() as ns:
        ifaces = namespace_interfaces(ns)
        for name, path in paths.items():
            theirs = keepalived_outcome(str(path), ns)
            assert not isinstance(theirs, str), f"keepalived {theirs} on {name}"
            ours = pykeep_outcome(str(path), ifaces.__contains__).without(
                theirs.unlocated, theirs.located
            )
            if (theirs.code, theirs.lines) != (ours.code, ours.lines):
                for who, o in (("keepalived", theirs), ("pykeep", ours)):
                    bad.append(f"{name}: {who} {o.code} {sorted(o.lines)}\n{o.text}")
    assert not bad, "\n".join(bad)
    # load() on a path is what pykeep -t runs: the same verdict as load_text.
    assert load(str(paths["smtp-server-invalid"]), "pk").exit_code == 5


def test_pykeep_own_keywords_are_an_intended_difference_counted_apart() -> None:
    """keepalived 2.2.7 rejects FULLNAT's and cluster mode's keywords (exit 5): the
    differential sets such files apart, and says how many, instead of counting them."""
    from tests.differential.generator import Case
    from tests.differential.runner import Outcome, Report, Verdict

    plain = INSTANCE.format(extra="")
    texts = {
        "fnat": "virtual_server 192.0.2.100 80 {\n  lb_kind FNAT\n}\n",
        "alias": "virtual_server 192.0.2.100 80 {\n  @pk lvs_method FNAT\n}\n",
        "syn": "virtual_server 192.0.2.100 80 {\n  syn_proxy\n}\n",
        "laddr": "local_address_group g {\n  192.0.2.5\n}\n",
        "plain": plain,
        "nat": "virtual_server 192.0.2.100 80 {\n  lb_kind NAT\n}\n",
    }
    same = Outcome(0, frozenset(), frozenset())
    report = Report(
        [
            Verdict(Case(n, "b", "k", t), n, same, Outcome(5, frozenset(), frozenset()))
            for n, t in texts.items()
        ]
    )
    assert {v.case.name for v in report.intended} == {"fnat", "alias", "syn", "laddr"}
    assert {v.case.name for v in report.compared} == {"plain", "nat"}
    assert "4 file(s) use pykeep's own keywords" in report.render(0)
