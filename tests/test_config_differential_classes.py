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
            ours = pykeep_outcome(str(path), ifaces.__contains__).without(theirs.unlocated)
            if (theirs.code, theirs.lines) != (ours.code, ours.lines):
                for who, o in (("keepalived", theirs), ("pykeep", ours)):
                    bad.append(f"{name}: {who} {o.code} {sorted(o.lines)}\n{o.text}")
    assert not bad, "\n".join(bad)
    # load() on a path is what pykeep -t runs: the same verdict as load_text.
    assert load(str(paths["smtp-server-invalid"]), "pk").exit_code == 5
