"""The keyword ledger: every keyword keepalived 2.2.7 knows acts as there, or warns.

The status table (pykeep/config/support.py) says, for each keyword, either
which test proves it acts as in keepalived or what pykeep does instead.
These tests fail when the table and the parser disagree: a keyword of
keepalived's list with no status, a proof that names no test, a warned
keyword that parses without its warning, a keyword recorded without effect
and without a warning, a model field no runtime code reads, a field some
runtime code reads behind a warned keyword, or a stale docs/keywords.md.
No root, no namespace; a few seconds together (one start-up script is left
to hang until its one-second timeout).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from pykeep import config
from pykeep.config import check_parser, global_parser, ledger, support, vrrp_parser
from pykeep.config.diagnostics import Severity
from pykeep.config.keywords import BLOCK, VALUES, keepalived_keywords
from pykeep.config.parser import Keyword, Table, generic

ROOT = Path(__file__).resolve().parent.parent
KEEPALIVED = "/usr/sbin/keepalived"
WARNED = "is not supported by pykeep"


def _always(_name: str) -> bool:
    return True


def _instead(key: str) -> str:
    st = support.STATUS[key]
    assert isinstance(st, support.Warned), f"{key} now acts: pick a keyword still warned"
    return st.instead


# -- a configuration that uses every keyword keepalived knows -------------------------

# Arguments that keep each block open (a name, an address) or each line sane.
_BLOCK_ARGS = {
    "vrrp_instance": "VI_ALL",
    "vrrp_sync_group": "SG_ALL",
    "vrrp_script": "chk_all",
    "track_file": "tf_all",
    "vrrp_track_file": "tf_old",
    "vrrp_track_process": "tp_all",
    "bfd_instance": "bfd_all",
    "virtual_server": "10.0.0.1 80",
    "real_server": "10.0.0.2 80",
}
_ARGS = {
    "interface": "eth0",
    "state": "BACKUP",
    "virtual_router_id": "51",
    "priority": "100",
    "advert_int": "1",
    "version": "2",
    "vrrp_version": "2",
    "auth_type": "PASS",
    "auth_pass": "secret",
    "mcast_src_ip": "10.0.0.5",
    "unicast_src_ip": "10.0.0.5",
    "mcast_dst_ip": "224.0.0.18",
    "vrrp_mcast_group4": "224.0.0.18",
    "vrrp_mcast_group6": "ff02::12",
    "smtp_server": "127.0.0.1",
    "notification_email_from": "pykeep@example.com",
    "router_id": "r1",
    "lvs_sync_daemon": "eth0 VI_ALL",
    "lvs_timeouts": "tcp 10",
    "lb_algo": "rr",
    "lvs_sched": "rr",
    "lb_kind": "NAT",
    "lvs_method": "NAT",
    "sorry_server_lvs_method": "NAT",
    "protocol": "TCP",
    "ip_family": "inet",
    "sorry_server": "10.0.0.9 80",
    "persistence_engine": "sip",
    "script": "/bin/true",
    "misc_path": "/bin/true",
    "path": "/",
    "url": "",
    "status_code": "200",
    "digest": "00112233445566778899aabbccddeeff",
    "http_protocol": "1.1",
    "type": "A",
    "name": "bfd_all",
    "payload": "00",
    "connect_ip": "10.0.0.2",
    "bindto": "10.0.0.5",
    "bind_if": "eth0",
    "process": "sshd",
    "file": "/tmp/pykeep-ledger-track",
    "track_file": "tf_all",
    "source_ip": "10.0.0.5",
    "neighbor_ip": "10.0.0.6",
    "neighbour_ip": "10.0.0.6",
    "user": "root",
    "script_user": "root",
    "startup_script": "/bin/true",
    "shutdown_script": "/bin/true",
    "notify_fifo": "/tmp/pykeep-ledger-fifo",
    "vrrp_notify_fifo": "/tmp/pykeep-ledger-vfifo",
    "lvs_notify_fifo": "/tmp/pykeep-ledger-lfifo",
    "notify_fifo_script": "/bin/true",
    "vrrp_notify_fifo_script": "/bin/true",
    "lvs_notify_fifo_script": "/bin/true",
    "vmac_xmit_base": "",
    "use_vmac": "",
    "nopreempt": "",
    "preempt": "",
    "accept": "",
    "no_accept": "",
    "weight": "1",
    "net_namespace": "pk-ledger-unused",
    "instance": "i1",
    "snmp_socket": "udp:127.0.0.1:705",
    "vrrp_cpu_affinity": "0",
    "checker_cpu_affinity": "0",
    "bfd_cpu_affinity": "0",
    "vrrp_rx_bufs_policy": "MTU",
    "umask": "022",
    "vmac_prefix": "vrrp",
    "vmac_addr_prefix": "vrrp",
    "default_interface": "eth0",
    "garp_extra_if": "5",
    "regex": "ok",
    "helo_name": "ledger",
    "virtualhost": "ledger",
}
_VALUES = {
    "virtual_ipaddress": "10.0.0.10/24",
    "virtual_ipaddress_excluded": "10.0.0.11/24",
    "static_ipaddress": "10.0.0.12/24 dev eth0",
    "virtual_routes": "10.5.0.0/16 dev eth0",
    "static_routes": "10.6.0.0/16 dev eth0",
    "virtual_rules": "from 10.0.0.0/8 table 100 preference 10",
    "static_rules": "from 10.1.0.0/16 table 101 preference 11",
    "unicast_peer": "10.0.0.3",
    "track_interface": "eth1",
    "track_script": "chk_all",
    "track_file": "tf_all",
    "track_process": "tp_all",
    "track_bfd": "bfd_all",
    "group": "VI_ALL",
    "interfaces": "eth1",
    "linkbeat_interfaces": "eth1",
    "interface_up_down_delays": "eth1 1 1",
    "notification_email": "ops@example.com",
    "virtual_server_group": "10.0.0.1 80",
}


def _tree() -> dict[str, list[tuple[str, str]]]:
    children: dict[str, list[tuple[str, str]]] = {}
    for path, kind in keepalived_keywords():
        parent = path.rpartition("/")[0]
        children.setdefault(parent, []).append((path, kind))
    return children


def _emit(
    children: dict[str, list[tuple[str, str]]],
    parent: str,
    depth: int,
    out: list[str],
    where: dict[int, str],
) -> None:
    pad = "    " * depth
    for path, kind in children.get(parent, []):
        name = path.rpartition("/")[2]
        if kind == BLOCK:
            args = _BLOCK_ARGS.get(name, "")
            where[len(out) + 1] = path
            out.append(f"{pad}{name} {args} {{".replace("  {", " {"))
            _emit(children, path, depth + 1, out, where)
            out.append(f"{pad}}}")
        elif kind == VALUES:
            head = f"{name} {_BLOCK_ARGS.get(name, '')}".rstrip()
            if name == "virtual_server_group":
                head = "virtual_server_group vsg_all"
            where[len(out) + 1] = path
            out.append(f"{pad}{head} {{")
            out.append(f"{pad}    {_VALUES.get(name, 'eth1')}")
            out.append(f"{pad}}}")
        else:
            arg = _ARGS.get(name, "1")
            where[len(out) + 1] = path
            out.append(f"{pad}{name} {arg}".rstrip())
            for key, st in support.STATUS.items():
                stem, _eq, value = key.partition("=")
                if value and stem == path and isinstance(st, support.Warned):
                    where[len(out) + 1] = key
                    out.append(f"{pad}{name} {value}")


@cache
def every_keyword_config() -> tuple[str, dict[int, str]]:
    """keepalived.conf text with every keyword of keepalived in its place, and line -> path."""
    out: list[str] = []
    where: dict[int, str] = {}
    _emit(_tree(), "", 0, out, where)
    return "\n".join(out) + "\n", where


def expected_warnings() -> dict[int, str]:
    """The lines of ``every_keyword_config`` that must warn: line -> status key."""
    _text, where = every_keyword_config()
    out: dict[int, str] = {}
    for line, key in where.items():
        path = key.partition("=")[0]
        if support.covering_block(path) is not None:
            continue
        if "=" in key:
            out[line] = key
            continue
        got = support.status_of(path)
        if got is not None and isinstance(got[1], support.Warned):
            out[line] = path
    return out


# -- the tests ----------------------------------------------------------------------


def test_every_keepalived_keyword_has_a_status() -> None:
    missing = [
        path
        for path, _kind in keepalived_keywords()
        if support.covering_block(path) is None and support.status_of(path) is None
    ]
    assert missing == []
    # The list is keepalived's: its sections and the keywords the issue names.
    paths = {p for p, _k in keepalived_keywords()}
    assert len(paths) == 501
    for p in (
        "vrrp_instance/track_process",
        "vrrp_instance/track_bfd",
        "bfd_instance/min_rx",
        "vrrp_sync_group/sync_group_tracking_weight",
        "global_defs/vrrp_min_garp",
        "virtual_server/real_server/BFD_CHECK/name",
        "linkbeat_interfaces",
    ):
        assert p in paths


def test_status_keys_name_keepalived_keywords() -> None:
    """A key that matches no keyword (a typo) would silently cover nothing."""
    paths = [p for p, _k in keepalived_keywords()]
    for key in support.STATUS:
        stem = key.partition("=")[0]
        hits = [
            p
            for p in paths
            if p == stem or ("*" in stem and re.fullmatch(stem.replace("*", ".*"), p))
        ]
        assert hits, key


def _test_functions(file: Path) -> set[str]:
    tree = ast.parse(file.read_text())
    return {
        n.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test_")
    }


def test_every_proof_names_an_existing_test() -> None:
    tests = {st.test for st in support.STATUS.values() if isinstance(st, support.Acts)}
    assert tests
    for t in sorted(tests):
        file, _sep, func = t.partition("::")
        path = ROOT / file
        assert path.is_file(), t
        assert func in _test_functions(path), t


def test_every_warned_keyword_warns_once_on_its_own_line_without_changing_the_verdict() -> None:
    text, _where = every_keyword_config()
    result = config.load_text(text, "all.conf", interface_exists=_always)
    got: dict[int, list[str]] = {}
    for d in result.diagnostics:
        if WARNED in d.message:
            assert d.loc is not None
            assert d.severity is Severity.INFO, d  # keepalived's exit code is kept
            assert "\n" not in str(d), d  # one line: no hint
            got.setdefault(d.loc.line, []).append(d.message)
    want = expected_warnings()
    assert len(want) > 100
    missing = {line: key for line, key in want.items() if line not in got}
    assert missing == {}
    extra = {line: msgs for line, msgs in got.items() if line not in want}
    assert extra == {}
    assert all(len(m) == 1 for m in got.values()), {k: v for k, v in got.items() if len(v) > 1}
    # The warning names the keyword, and says what happens instead.
    for line, key in want.items():
        path, _eq, value = key.partition("=")
        st = support.STATUS.get(key) or support.status_of(path)[1]  # type: ignore[index]
        assert isinstance(st, support.Warned)
        name = path.rpartition("/")[2] + (f" {value}" if value else "")
        assert got[line] == [support.warning_text(name, st.instead)]


def test_every_keyword_is_known_to_the_parser() -> None:
    """No keyword of keepalived's is an unknown keyword or an unexpected brace to pykeep."""
    text, _where = every_keyword_config()
    result = config.load_text(text, "all.conf", interface_exists=_always)
    structural = {
        Severity.UNKNOWN_KEYWORD,
        Severity.UNEXPECTED_BOB,
        Severity.MISSING_BOB,
        Severity.UNEXPECTED_EOB,
        Severity.MISSING_EOB,
    }
    rejected = {
        f"Unknown keyword '{p.rpartition('/')[2]}'"
        for p, st in support.STATUS.items()
        if isinstance(st, support.Rejected)
    }
    bad = [str(d) for d in result.diagnostics if d.severity in structural]
    assert [b for b in bad if not any(r in b for r in rejected)] == []
    assert not result.aborted


@pytest.mark.skipif(shutil.which(KEEPALIVED) is None, reason="keepalived is not installed")
def test_keepalived_knows_every_keyword_of_the_list(tmp_path: Path) -> None:
    """The same file through keepalived 2.2.7 -t: no unknown keyword, so the list is its own."""
    text, _where = every_keyword_config()
    conf = tmp_path / "all.conf"
    conf.write_text(text)
    out = subprocess.run(
        [KEEPALIVED, "-t", "-f", str(conf)], capture_output=True, text=True, timeout=60
    )
    lines = (out.stdout + out.stderr).splitlines()
    unknown = [ln for ln in lines if "Unknown keyword" in ln]
    # Debian builds keepalived without libipset: the one keyword it lacks.
    assert all("vrrp_ipsets" in ln for ln in unknown), unknown
    assert not [ln for ln in lines if "Unexpected '{'" in ln or "missing '}'" in ln]


def _walk(table: Table, prefix: str = "") -> Iterator[tuple[str, Keyword]]:
    for name, k in table.items():
        yield f"{prefix}{name}", k
        if k.sub is not None:
            yield from _walk(k.sub, f"{prefix}{name}/")


def test_no_keyword_is_recorded_without_effect_and_without_a_warning() -> None:
    """A keyword whose handler only records it (or skips its block) must be warned."""
    tables: Table = {}
    for install in (global_parser.install, vrrp_parser.install, check_parser.install):
        t: Table = {}
        install(t)
        tables.update(t)
    silent = []
    for path, k in _walk(tables):
        if k.handler not in (generic, support.skip_values):
            continue
        if support.covering_block(path) is not None:
            continue
        got = support.status_of(path)
        if got is None or not isinstance(got[1], support.Warned):
            silent.append(path)
    assert silent == []


# Model fields that keepalived itself only shows (in its dumps), and those
# the config's validation folds into other fields (vrrp_version: each
# instance's version; vmac_prefix: each unnamed VMAC's name, validate.py).
_SHOWN_ONLY = {"router_id", "vrrp_version", "vmac_prefix"}


def test_every_acting_keyword_reaches_the_runtime() -> None:
    """A keyword that 'acts' sets a model field some runtime code reads.

    Checked by name for the blocks whose fields are named after their
    keywords: a field read only by the parser or the operator views has no
    effect, and its keyword must be warned instead.
    """
    from pykeep.config import model

    read = [_reads(text) for text in runtime_sources().values()]
    blocks: dict[str, Any] = {
        "global_defs": model.GlobalDefs,
        "vrrp_instance": model.VrrpInstance,
        "vrrp_sync_group": model.VrrpSyncGroup,
        "vrrp_script": model.VrrpScript,
        "virtual_server": model.VirtualServer,
        "virtual_server/real_server": model.RealServer,
        "virtual_server/real_server/TCP_CHECK": model.CheckerCommon,
        "virtual_server/real_server/HTTP_GET": model.HttpCheck,
        "virtual_server/real_server/HTTP_GET/url": model.HttpUrl,
    }
    unread = []
    for block, cls in blocks.items():
        for name in cls.__dataclass_fields__:
            path = f"{block}/{name}"
            got = support.status_of(path)
            if got is None or not isinstance(got[1], support.Acts) or name in _SHOWN_ONLY:
                continue
            if not any(
                name in names or any(p.fullmatch(name) for p in pats) for names, pats in read
            ):
                unread.append(path)
    assert unread == []


def test_ledger_is_current() -> None:
    want = ledger.render()
    have = (ROOT / "docs" / "keywords.md").read_text()
    assert have == want, (
        "docs/keywords.md is stale: python -m pykeep.config.ledger > docs/keywords.md"
    )
    for path, _kind in keepalived_keywords():
        assert f"`{path}`" in have, path


def test_flipping_a_status_changes_the_parse() -> None:
    """The table is live: a keyword flipped to 'acts' stops warning (the lead's one-line change)."""
    key = "vrrp_instance/debug"
    text = (
        "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n debug 1\n"
        " virtual_ipaddress {\n  10.0.0.1\n }\n}\n"
    )

    def warned() -> list[str]:
        (
            config._ROOT,
            config._PARENT,
            config._CHECKER,
            config._VRRP,
            config._BFD,
            config._RS_TABLE,
        ) = config._tables()
        r = config.load_text(text, "v.conf", interface_exists=_always)
        return [d.message for d in r.diagnostics if WARNED in d.message]

    saved = support.STATUS[key]
    try:
        assert warned() == [support.warning_text("debug", _instead(key))]
        support.STATUS[key] = support.Acts(
            "tests/test_config_keywords.py::test_flipping_a_status_changes_the_parse"
        )
        assert warned() == []
    finally:
        support.STATUS[key] = saved
        warned()


# -- keywords made to act as keepalived here ------------------------------------------


def test_route_via_inet_and_prefixes_read_as_keepalived() -> None:
    text = (
        "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n"
        " unicast_src_ip 10.0.0.5/24\n unicast_peer {\n  10.0.0.6/24\n  10.0.0.7-9\n }\n"
        " virtual_ipaddress {\n  10.0.0.1/24\n }\n"
        " virtual_routes {\n  10.1.0.0/16 via inet 10.0.0.254 dev eth0\n"
        "  2001:db8::/32 via inet6 fe80::1 dev eth0\n"
        "  10.2.0.0/16 via inet6 10.0.0.1 dev eth0\n }\n"
        "}\n"
    )
    r = config.load_text(text, "v.conf", interface_exists=_always)
    (vi,) = r.config.vrrp_instances
    assert str(vi.unicast_src_ip) == "10.0.0.5"
    # lib/utils.c inet_stosockaddr: what follows a '/' or a '-' is dropped.
    assert [str(p.address) for p in vi.unicast_peers] == ["10.0.0.6", "10.0.0.7"]
    assert [(str(x.dest), str(x.via)) for x in vi.virtual_routes] == [
        ("10.1.0.0/16", "10.0.0.254"),
        ("2001:db8::/32", "fe80::1"),
    ]
    bad = [d.message for d in r.diagnostics if d.severity is Severity.GENERAL_ERROR]
    assert bad == ["invalid route via address 10.0.0.1"]


def test_rules_without_preference_are_numbered_as_keepalived_numbers_them() -> None:
    text = (
        "static_rules {\n from 10.0.0.0/8 table 100\n from 10.1.0.0/16 table 101\n"
        " from 2001:db8::/32 table 102\n to 10.2.0.0/16 table 5 preference 100\n}\n"
    )
    r = config.load_text(text, "r.conf", interface_exists=_always)
    assert [x.preference for x in r.config.static_rules] == [16384, 16383, 16384, 100]
    msgs = [d.message for d in r.diagnostics if d.message.startswith("Rule has no")]
    # keepalived 2.2.7 -t prints exactly these three (vrrp_iprule.c, RULE_START_PRIORITY).
    assert [m.split(" - ")[1].split(".")[0] for m in msgs] == [
        "setting to 16384",
        "setting to 16383",
        "setting to 16384",
    ]


def test_track_interface_naming_own_interface_is_ignored() -> None:
    text = (
        "vrrp_instance V {\n interface eth9\n virtual_router_id 9\n"
        " track_interface {\n  eth8\n  eth9 weight 10\n }\n"
        " virtual_ipaddress {\n  10.0.0.1/24\n }\n}\n"
    )
    r = config.load_text(text, "t.conf", interface_exists=_always)
    (vi,) = r.config.vrrp_instances
    assert [t.name for t in vi.track_interface] == ["eth8"]
    assert "(V) Ignoring track_interface eth9 since own interface" in [
        d.message for d in r.diagnostics
    ]
    assert r.exit_code == 5  # a config error for keepalived -t too


def test_sync_group_without_instances_is_removed() -> None:
    text = (
        "vrrp_instance V {\n interface eth9\n virtual_router_id 9\n"
        " virtual_ipaddress {\n  10.0.0.1/24\n }\n}\n"
        "vrrp_sync_group G {\n group {\n  NOPE\n }\n}\n"
    )
    r = config.load_text(text, "s.conf", interface_exists=_always)
    assert r.config.vrrp_sync_groups == ()
    msgs = [d.message for d in r.diagnostics]
    assert "Virtual router NOPE specified in sync group G doesn't exist - ignoring" in msgs
    assert "Sync group G, no matching virtual router found in group declaration - removing" in msgs
    assert r.exit_code == 5


def test_options_inside_values_that_pykeep_does_not_apply_warn_once_a_line() -> None:
    text = (
        "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n"
        " unicast_peer {\n  10.0.0.6 min_ttl 1 max_ttl 255\n  10.0.0.7\n }\n"
        " virtual_ipaddress {\n  10.0.0.1/24 dev eth0 label eth0:1 noprefixroute\n"
        "  10.0.0.2 peer 10.0.0.3\n  10.0.0.4\n }\n"
        " virtual_routes {\n  10.1.0.0/16 via inet 10.0.0.9 dev eth0 mtu 1400 onlink\n"
        "  10.2.0.0/16 dev eth0 table 100 metric 5\n }\n}\n"
    )
    r = config.load_text(text, "o.conf", interface_exists=_always)
    got = [(d.loc.line, d.message) for d in r.diagnostics if WARNED in d.message and d.loc]
    assert got == [
        (
            5,
            "'min_ttl/max_ttl' is not supported by pykeep: adverts from the peer are "
            "accepted whatever their TTL",
        ),
        (9, "'noprefixroute' is not supported by pykeep: the address is added without it"),
        (10, "'peer 10.0.0.3' is not supported by pykeep: the address is added without it"),
        (14, "'mtu 1400 onlink' is not supported by pykeep: the route is added without it"),
    ]
    assert all(d.severity is not Severity.INFO or WARNED in d.message for d in r.diagnostics)
    assert r.exit_code == 0


def test_pykeep_t_prints_one_line_naming_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an operator sees: ``pykeep -t`` prints the warning after FILE: Line N, exit 0."""
    import io

    from pykeep import cli

    conf = tmp_path / "k.conf"
    conf.write_text(
        "vrrp_instance V {\n    interface lo0\n    virtual_router_id 9\n    debug 1\n"
        "    kernel_rx_buf_size 65536\n"
        "    virtual_ipaddress {\n        10.0.0.1\n    }\n}\n"
    )
    out = io.StringIO()
    monkeypatch.setattr(config, "sys_interface_exists", _always)
    rc = cli.config_test(str(conf), None, out)
    lines = out.getvalue().splitlines()
    debug = support.warning_text("debug", _instead("vrrp_instance/debug"))
    bfd = support.warning_text("kernel_rx_buf_size", _instead("vrrp_instance/kernel_rx_buf_size"))
    assert f"({conf}: Line 4) {debug}" in lines
    assert f"({conf}: Line 5) {bfd}" in lines
    assert rc == 0, lines


# -- the guard: a warned keyword whose value some runtime code reads --------------------

# The operator views render the configuration as keepalived's dumps do: reading
# a field there is showing it, not acting on it.
_DISPLAY = frozenset({"pykeep/ops/dumps.py", "pykeep/ops/status.py"})
_SERVICES = ("vrrp", "healthcheck", "ipvs", "pykeep")
# The packages that can reach each model class: an LVS field of the same name as
# a VRRP one (smtp_alert) is not read by the VRRP service.
_REACH = {
    "GlobalDefs": _SERVICES,
    "VrrpInstance": ("vrrp", "pykeep"),
    "VrrpSyncGroup": ("vrrp", "pykeep"),
    "VirtualServer": ("healthcheck", "ipvs", "pykeep"),
    "RealServer": ("healthcheck", "ipvs", "pykeep"),
    "CheckerCommon": ("healthcheck", "ipvs", "pykeep"),
}


@cache
def runtime_sources() -> dict[str, str]:
    """Every runtime module's text by its path: the services, the daemon, not the parser."""
    out: dict[str, str] = {}
    for top in _SERVICES:
        for f in sorted((ROOT / top).rglob("*.py")):
            rel = f.relative_to(ROOT).as_posix()
            if rel.startswith("pykeep/config/") or rel in _DISPLAY:
                continue
            out[rel] = f.read_text()
    return out


@cache
def _reads(text: str) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    """The names a module reads: attributes that are not called, string constants,
    and the f-strings given to getattr (``getattr(g, f"{kind}_script")``) as patterns."""
    tree = ast.parse(text)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    names: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute) and id(n) not in called:
            names.add(n.attr)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            names.add(n.value)
        elif (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name)
            and n.func.id in ("getattr", "hasattr")
            and len(n.args) > 1
            and isinstance(n.args[1], ast.JoinedStr)
        ):
            parts = [
                re.escape(str(v.value)) if isinstance(v, ast.Constant) else r"\w+"
                for v in n.args[1].values
            ]
            patterns.append(re.compile("".join(parts)))
    return frozenset(names), tuple(patterns)


def warned_fields_read(sources: dict[str, str]) -> list[str]:
    """Each read of a field that a warned keyword sets (support.WARNED_FIELDS)."""
    out = []
    for key, fields in support.WARNED_FIELDS.items():
        st = support.STATUS.get(key)
        if not isinstance(st, support.Warned):
            out.append(f"{key}: no longer warned, so not a WARNED_FIELDS entry")
            continue
        allowed = support.PARTLY.get(key, ())
        for ref in fields:
            cls, _dot, name = ref.partition(".")
            for path, text in sources.items():
                if path.startswith(allowed) or not path.startswith(
                    tuple(f"{t}/" for t in _REACH[cls])
                ):
                    continue
                names, patterns = _reads(text)
                if name in names or any(p.fullmatch(name) for p in patterns):
                    out.append(f"{key}: {path} reads {ref}")
    return out


def _inner(h: Any) -> Any:
    """The handler behind the wrappers that only judge or mark a line first
    (values.py ``_guarded``, vrrp_parser.py ``_unicast_marked``)."""
    while getattr(h, "__name__", "") in ("guarded", "marked") and h.__closure__:
        cells = dict(
            zip(h.__code__.co_freevars, (c.cell_contents for c in h.__closure__), strict=True)
        )
        h = cells["handler"]
    return h


def warned_stores_unlisted() -> list[str]:
    """Warned keywords whose handler stores a value, without a WARNED_FIELDS entry."""
    tables: Table = {}
    for install in (global_parser.install, vrrp_parser.install, check_parser.install):
        t: Table = {}
        install(t)
        tables.update(t)
    out = []
    for path, k in _walk(tables):
        if support.covering_block(path) is not None or k.sub is not None:
            continue
        got = support.status_of(path)
        if got is None or not isinstance(got[1], support.Warned):
            continue
        if _inner(k.handler) in (generic, support.skip_values):
            continue
        if got[0] not in support.WARNED_FIELDS:
            out.append(path)
    return out


def test_warned_keywords_that_store_a_value_name_its_field() -> None:
    """A warned keyword with a handler of its own declares where its value lands."""
    from pykeep.config import model

    assert warned_stores_unlisted() == []
    for key, fields in support.WARNED_FIELDS.items():
        assert support.status_of(key.replace("*", "TCP_CHECK")) is not None, key
        for ref in fields:
            cls, _dot, name = ref.partition(".")
            assert name in getattr(model, cls).__dataclass_fields__, ref
            assert cls in _REACH, ref


def test_no_runtime_code_reads_what_a_warned_keyword_sets() -> None:
    """Implementing a feature without flipping its keyword to 'acts' fails here."""
    assert warned_fields_read(runtime_sources()) == []


def test_the_guard_catches_features_landed_without_their_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The drift this guard exists for, planted again: seven keywords that act, warned.

    With their old ``Warned`` entries back, each handler stores a value
    without a WARNED_FIELDS entry; with the entries, the runtime reads the
    fields (an attribute, a getattr f-string in the daemon).  A planted module
    reading a warned field is caught too, and a VRRP read of ``smtp_alert``
    does not count against the virtual server's.
    """
    planted = {
        "global_defs/smtp_server": "GlobalDefs.smtp_server",
        "global_defs/notification_email": "GlobalDefs.notification_email",
        "global_defs/startup_script": "GlobalDefs.startup_script",
        "global_defs/nftables": "GlobalDefs.nftables",
        "vrrp_instance/use_vmac": "VrrpInstance.use_vmac",
        "vrrp_instance/smtp_alert": "VrrpInstance.smtp_alert",
        "vrrp_instance/no_accept": "VrrpInstance.accept",
    }
    before = set(warned_stores_unlisted())
    read_before = set(warned_fields_read(runtime_sources()))
    for key in planted:
        monkeypatch.setitem(support.STATUS, key, support.Warned("no such feature"))
    assert set(warned_stores_unlisted()) - before == set(planted)
    for key, ref in planted.items():
        monkeypatch.setitem(support.WARNED_FIELDS, key, (ref,))
    assert set(warned_stores_unlisted()) == before
    found = warned_fields_read(runtime_sources())
    for key, ref in planted.items():
        assert any(f.startswith(f"{key}: ") and f.endswith(ref) for f in found), (key, found)
    assert "global_defs/startup_script: pykeep/daemon.py reads GlobalDefs.startup_script" in found
    assert not any(f.startswith("virtual_server/smtp_alert") for f in found)
    sources = dict(runtime_sources())
    sources["healthcheck/planted.py"] = "def f(c):\n    return c.common.log_all_failures\n"
    sources["pykeep/planted.py"] = "def g(d, k):\n    return getattr(d, f'{k}_interfaces')\n"
    found = warned_fields_read(sources)
    assert (
        "virtual_server/real_server/*/log_all_failures: healthcheck/planted.py reads "
        "CheckerCommon.log_all_failures" in found
    )
    assert (
        "global_defs/dynamic_interfaces: pykeep/planted.py reads GlobalDefs.dynamic_interfaces"
        in (found)
    )
    # A call of a method of the same name is not a read of the field.
    monkeypatch.undo()
    sources = dict(runtime_sources())
    sources["healthcheck/planted.py"] = "def f(c):\n    return c.smtp_alert()\n"
    assert set(warned_fields_read(sources)) == read_before


# -- proofs for keywords that act ---------------------------------------------------


def test_strict_mode_and_accept_choose_the_drop_set() -> None:
    """vrrp.c vrrp_complete_instance: strict mode means no_accept unless the owner; accept
    in strict VRRPv2 is reset; a non-owner without accept gets the nftables drop set."""
    from vrrp.firewall import NoAccept

    def drop_set(body: str, top: str = "") -> list[str] | None:
        text = (
            f"{top}vrrp_instance V {{\n interface eth0\n virtual_router_id 9\n{body}"
            " virtual_ipaddress {\n  10.0.0.1\n }\n}\n"
        )
        r = config.load_text(text, "v.conf", interface_exists=_always)
        assert not any(WARNED in d.message for d in r.diagnostics), r.diagnostics
        inst = r.config.vrrp_instances[0]
        na = NoAccept.for_instance(inst, r.config.global_defs)
        return None if na is None else na.addrs[4]

    assert drop_set("") is None  # accept mode by default
    assert drop_set(" strict_mode\n") == ["10.0.0.1"]
    assert drop_set("", "global_defs {\n vrrp_strict\n}\n") == ["10.0.0.1"]
    assert drop_set(" strict_mode\n priority 255\n state MASTER\n") is None  # the owner
    assert drop_set(" strict_mode\n accept\n") == ["10.0.0.1"]  # reset: RFC 3768
    assert drop_set(" strict_mode\n version 3\n accept\n") is None
    assert drop_set(" no_accept\n") == ["10.0.0.1"]
    assert drop_set(" no_accept\n accept\n") is None  # the last one wins


def test_vrrp_iptables_falls_back_to_nftables_as_debian_s() -> None:
    """keepalived 2.2.7 built without iptables (Debian's) says so and uses nftables."""
    from vrrp.firewall import NoAccept

    text = (
        "global_defs {\n vrrp_iptables\n vrrp_strict\n}\n"
        "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n"
        " virtual_ipaddress {\n  10.0.0.1\n }\n}\n"
    )
    r = config.load_text(text, "v.conf", interface_exists=_always)
    msgs = [(d.loc.line if d.loc else 0, d.message) for d in r.diagnostics]
    assert (
        2,
        "iptables not supported, using nftables instead. Please replace "
        "'vrrp_iptables and 'vrrp_ipsets' with 'nftables' config option",
    ) in msgs
    assert not any(WARNED in m for _line, m in msgs)
    na = NoAccept.for_instance(r.config.vrrp_instances[0], r.config.global_defs)
    assert na is not None and na.table == "keepalived"


def test_startup_script_timeout_kills_a_hung_script_as_keepalived() -> None:
    """core/main.c run_startup_script: a start-up script still running at its timeout is
    killed, and start-up goes on.  About a second."""
    import time

    import trio

    from pykeep.daemon import run_start_stop_script

    text = 'global_defs {\n startup_script "/bin/sleep 30"\n startup_script_timeout 1\n}\n'
    r = config.load_text(text, "s.conf", interface_exists=_always)
    assert r.config.global_defs.startup_script_timeout == 1.0
    logged: list[str] = []

    class Log:
        def info(self, msg: str) -> None:
            logged.append(msg)

        warning = error = info

    t0 = time.monotonic()
    trio.run(run_start_stop_script, r.config, "startup", Log())
    assert time.monotonic() - t0 < 15  # killed at 1 s, not after the script's 30
    assert logged == ["startup script /bin/sleep timed out - killed"], logged


def test_use_vmac_mac_address_and_name_are_both_kept() -> None:
    """vrrp_parser.c vrrp_vmac_handler: the word with ':' is the MAC, in either place."""
    for words in ("vm1 02:00:00:00:00:09", "02:00:00:00:00:09 vm1"):
        text = (
            f"vrrp_instance V {{\n interface eth0\n virtual_router_id 9\n use_vmac {words}\n"
            " virtual_ipaddress {\n  10.0.0.1\n }\n}\n"
        )
        r = config.load_text(text, "v.conf", interface_exists=_always)
        inst = r.config.vrrp_instances[0]
        assert (inst.use_vmac, inst.vmac_mac) == ("vm1", "02:00:00:00:00:09")
        assert not r.diagnostics
