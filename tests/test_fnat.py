"""Seed 001's FULLNAT keywords: parsed with notes, realised as nftables rules, VIPs on lo.

The pure tests read the manual's own configuration (annotations removed) and
check the model, the notes of ``pykeep -t`` and the nftables text FULLNAT
becomes.  The ``netns`` tests load that text into a real kernel's nftables
(inside a namespace of their own) and put addresses on a namespace's ``lo``
through ``announce_on_lo``'s netlink code.  About two seconds together.
"""

from __future__ import annotations

import ast
import ipaddress
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ipvs import announce, fnat
from ipvs.policy import decide, initial_health, rs_key
from pykeep.config import LoadResult, Severity, extensions, load, load_text
from pykeep.config.model import LbKind

ROOT = Path(__file__).resolve().parent.parent
SEED = Path("/work/shared/corpus/seed-configs/seed001-cluster")


def strip_annotations(text: str) -> str:
    """The manual's ``//…`` and ``/* … */`` annotations, which keepalived does not read."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//.*", "", text)


def _always(_name: str) -> bool:
    return True


def seed_files(tmp: Path) -> Path:
    if not SEED.is_dir():
        raise AssertionError(f"corpus missing: {SEED}")
    for name in ("keepalived.conf", "taobao.conf"):
        (tmp / name).write_text(strip_annotations((SEED / name).read_text()))
    return tmp / "keepalived.conf"


def _load(text: str) -> LoadResult:
    return load_text(text, "f.conf", interface_exists=_always)


def test_seed_cluster_config_is_accepted_with_notes(tmp_path: Path) -> None:
    r = load(str(seed_files(tmp_path)), config_id="x", interface_exists=_always)
    notes = [d for d in r.diagnostics if d.severity is Severity.INFO]
    for text in (
        extensions.FNAT_NOTE,
        extensions.LADDR_GROUP_NOTE,
        extensions.LADDR_NAME_NOTE,
        extensions.SYN_PROXY_NOTE,
    ):
        assert [d.message for d in notes].count(text) == 1, text
        assert "\n" not in text
    # Nothing else but what keepalived 2.2.7 itself says of the rest of the file:
    # the deprecated nb_get_retry and the root quorum scripts without script security.
    others = [d for d in r.diagnostics if d.severity is not Severity.INFO]
    assert [d.message.split(" - ")[0] for d in others] == [
        "nb_get_retry is deprecated",
        "SECURITY VIOLATION",
    ]
    g = r.config.global_defs.local_address_groups
    assert [x.name for x in g] == ["laddr_g1"]
    assert g[0].addresses == tuple(ipaddress.ip_address(f"192.168.100.{i}") for i in range(1, 6))
    (vs,) = r.config.virtual_servers
    assert (vs.lb_kind, vs.laddr_group_name, vs.syn_proxy) == (LbKind.FNAT, "laddr_g1", True)
    assert vs.alpha and vs.omega and not vs.announce_on_lo


def test_local_address_group_ranges_and_bad_entries() -> None:
    r = _load("local_address_group g {\n 10.0.0.1-3\n 10.0.1.9\n bogus\n}\n")
    (g,) = r.config.global_defs.local_address_groups
    assert [str(a) for a in g.addresses] == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.9"]
    bad = [d for d in r.diagnostics if "Invalid local address bogus" in d.message]
    assert len(bad) == 1 and bad[0].loc is not None and bad[0].loc.line == 4


VS = """\
local_address_group inner {{
    192.168.100.1-2
    192.168.100.9
    fd00::1
}}
virtual_server {addr} 80 {{
    lb_algo rr
    lb_kind {kind}
    protocol TCP
    laddr_group_name {group}
    real_server 192.168.1.1 8080 {{
    }}
}}
"""


def test_ruleset_snats_only_fnat_services_onto_their_group() -> None:
    text = VS.format(addr="1.1.1.1", kind="FNAT", group="inner") + VS.format(
        addr="1.1.1.3", kind="NAT", group="inner"
    ).replace("local_address_group inner", "local_address_group other")
    r = _load(text)
    assert [d.message for d in r.diagnostics if "ignored (lb_kind is not FNAT)" in d.message]
    rules = fnat.rules(r.config)
    # three addresses in two runs: a round robin over them, per new connection
    assert rules == [
        "meta l4proto tcp ct original ip daddr 1.1.1.1 ct original proto-dst 80 "
        "snat ip to numgen inc mod 3 map { 0 : 192.168.100.1, 1 : 192.168.100.2, "
        '2 : 192.168.100.9 } comment "[1.1.1.1]:tcp:80"'
    ]
    rendered = fnat.ruleset(r.config)
    assert rendered is not None
    # one transaction: make sure the table exists, delete it, add the new one
    assert rendered.startswith("add table inet pykeep_fnat\ndelete table inet pykeep_fnat\n")
    # the NAT service keeps its own port for the real server, as FNAT does
    (vs,) = [v for v in r.config.virtual_servers if v.lb_kind is LbKind.FNAT]
    assert vs.real_servers[0].port == 8080


def test_ruleset_range_ipv6_and_missing_group() -> None:
    r = _load(
        "local_address_group g {\n 10.0.0.5-9\n fd00::5-6\n}\n"
        "virtual_server_group G {\n 1.1.1.1 80\n fd00:1::1 443\n}\n"
        "virtual_server group G {\n lb_algo rr\n lb_kind FNAT\n protocol TCP\n"
        " laddr_group_name g\n real_server 10.1.0.1 80 {\n }\n}\n"
        "virtual_server 1.1.1.7 80 {\n lb_algo rr\n lb_kind FNAT\n protocol TCP\n"
        " laddr_group_name nope\n real_server 10.1.0.1 80 {\n }\n}\n"
    )
    rules = fnat.rules(r.config)
    assert rules == [
        "meta l4proto tcp ct original ip daddr 1.1.1.1 ct original proto-dst 80 "
        'snat ip to 10.0.0.5-10.0.0.9 comment "group G"',
        "meta l4proto tcp ct original ip6 daddr fd00:1::1 ct original proto-dst 443 "
        'snat ip6 to fd00::5-fd00::6 comment "group G"',
    ]
    bad = [d for d in r.diagnostics if "unknown local_address_group nope" in d.message]
    assert bad and bad[0].severity is Severity.GENERAL_ERROR
    assert fnat.ruleset(_load(VS.format(addr="1.1.1.1", kind="NAT", group="inner")).config) is None


def _netns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)


def _nft(ns: str, text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, capture_output=True, text=True
    )


@pytest.mark.netns
def test_ruleset_loads_into_nftables_and_replaces_atomically() -> None:
    ns = "pk-cl-nft"
    _netns(ns)
    try:
        one = _load(VS.format(addr="1.1.1.1", kind="FNAT", group="inner")).config
        two = _load(
            VS.format(addr="1.1.1.2", kind="FNAT", group="inner").replace(
                "    protocol", "    syn_proxy\n    protocol"
            )
        ).config
        foreign = "table ip theirs {\n chain c {\n type nat hook postrouting priority 0;\n }\n}\n"
        assert _nft(ns, foreign).returncode == 0
        for config in (one, one, two):  # first load, same again, a reload
            text = fnat.ruleset(config)
            assert text is not None
            done = _nft(ns, text)
            assert done.returncode == 0, done.stderr
        listed = subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True, text=True
        ).stdout
        assert "1.1.1.2" in listed and "1.1.1.1 " not in listed and "table ip theirs" in listed
        assert listed.count("table inet pykeep_fnat") == 1
        assert "synproxy mss 1460 wscale 7 timestamp sack-perm" in listed
        assert _nft(ns, fnat.removal()).returncode == 0
        assert _nft(ns, fnat.removal()).returncode == 0  # removing twice is fine
        listed = subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True, text=True
        ).stdout
        assert "pykeep_fnat" not in listed and "table ip theirs" in listed
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


ANNOUNCE = """\
virtual_server_group G {{
    1.1.1.1-2 80
}}
virtual_server group G {{
    lb_algo rr
    lb_kind NAT
    protocol TCP
    announce_on_lo
    {alpha}
    real_server 10.1.0.1 80 {{
        TCP_CHECK {{
        }}
    }}
}}
virtual_server 1.1.1.9 80 {{
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.1.0.1 80 {{
    }}
}}
"""


def test_announce_on_lo_follows_quorum_alpha_and_omega() -> None:
    vips = {ipaddress.ip_address("1.1.1.1"), ipaddress.ip_address("1.1.1.2")}
    for alpha, at_start in (("", vips), ("alpha", set())):
        config = _load(ANNOUNCE.format(alpha=alpha)).config
        group, plain = config.virtual_servers
        assert group.announce_on_lo and not plain.announce_on_lo
        health = {rs_key(group, rs): initial_health(group, rs) for rs in group.real_servers}
        # at start: up without alpha, down until a check passes with it
        quorum = {v.key: decide(v, health).quorum_up for v in config.virtual_servers}
        assert announce.wanted(config, quorum) == at_start
        # quorum gained, then lost; the VS without the keyword never is on lo
        assert announce.wanted(config, {group.key: True, plain.key: True}) == vips
        assert announce.wanted(config, {group.key: False, plain.key: True}) == set()


APPLY = """
import ipaddress, sys
from ipvs.announce import _apply
a = {ipaddress.ip_address(x) for x in sys.argv[1].split(",") if x}
r = {ipaddress.ip_address(x) for x in sys.argv[2].split(",") if x}
print(_apply(a, r))
"""


@pytest.mark.netns
def test_announce_on_lo_netlink_adds_adopts_and_removes() -> None:
    ns = "pk-cl-lo"
    _netns(ns)

    def run(add: str, remove: str) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", APPLY, add, remove],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def on_lo() -> str:
        return subprocess.run(
            ["ip", "-n", ns, "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True
        ).stdout

    try:
        assert run("1.1.1.1,fd00::1", "") == "[]"
        assert " 1.1.1.1/32 " in on_lo() and " fd00::1/128 " in on_lo()
        assert run("1.1.1.1", "") == "[]"  # already there: adopted, not an error
        assert run("", "1.1.1.1,fd00::1,1.1.1.5") == "[]"  # absent ones too
        assert "1.1.1.1" not in on_lo() and "fd00::1" not in on_lo()
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_syn_proxy_becomes_nftables_synproxy() -> None:
    """synproxy answers the SYN ahead of IPVS; only masquerading services get it."""
    text = VS.format(addr="1.1.1.1", kind="FNAT", group="inner").replace(
        "    protocol", "    syn_proxy\n    protocol"
    ) + VS.format(addr="1.1.1.5", kind="DR", group="inner").replace(
        "local_address_group inner", "local_address_group other"
    ).replace("    protocol", "    syn_proxy\n    protocol")
    r = _load(text)
    assert [d for d in r.diagnostics if "syn_proxy ignored for lb_kind DR" in d.message]
    assert fnat.synproxy_targets(r.config) == [(4, "1.1.1.1", 80)]
    rendered = fnat.ruleset(r.config)
    assert rendered is not None
    m = "ip daddr 1.1.1.1 tcp dport 80"
    assert f"{m} tcp flags syn notrack" in rendered
    assert f"{m} ct state invalid,untracked synproxy {fnat.SYNPROXY_OPTIONS}" in rendered
    assert "type filter hook input priority filter" in rendered
    assert "1.1.1.5" not in rendered
    assert fnat.how(r.config) == [fnat.HOW, fnat.SYNPROXY_HOW]
    # the README says the same as the note
    readme = (ROOT / "README.md").read_text()
    assert "## Cluster mode" in readme and fnat.SYNPROXY_OPTIONS in readme


def test_every_extension_proof_names_an_existing_test() -> None:
    for key, ext in extensions.EXTENSIONS.items():
        file, _sep, func = ext.test.partition("::")
        tree = ast.parse((ROOT / file).read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert func in names, key
