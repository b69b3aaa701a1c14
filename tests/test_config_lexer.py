"""One test per lexical feature of keepalived.conf (lib/parser.c read_line and friends)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pykeep.config import LoadResult, Severity, load, load_text
from pykeep.config.lexer import decomment, expand_braces, split_quoted_escaped, split_words


def _load(text: str, config_id: str = "host1", name: str = "t.conf") -> LoadResult:
    return load_text(text, name, config_id=config_id, interface_exists=lambda _n: True)


def _errors(r: LoadResult) -> list[str]:
    return [d.message for d in r.diagnostics if d.severity > Severity.OK]


VI = """vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        10.0.0.1
    }
}
"""


def test_comments_bang_and_hash_outside_quotes() -> None:
    assert decomment("router_id x # comment")[0] == "router_id x"
    assert decomment("router_id x ! comment")[0] == "router_id x"
    assert decomment('router_id "a # b ! c" # real')[0] == 'router_id "a # b ! c"'
    r = _load('global_defs {\n  router_id "r #1"  ! trailing\n}\n' + VI)
    assert r.config.global_defs.router_id == "r #1"
    assert r.ok, _errors(r)


def test_escaped_hash_behaves_like_keepalived_227() -> None:
    # The parent reads global_defs with "\#" literal; the VRRP and checker
    # processes re-read a decommented copy, where it starts a comment.
    assert decomment("router_id a\\#b", literal_escapes=True)[0] == "router_id a#b"
    assert decomment("router_id a\\#b")[0] == "router_id a"
    r = _load("global_defs {\n  router_id a\\#b\n}\n" + VI.replace("VI_1", "VI\\#1"))
    assert r.config.global_defs.router_id == "a#b"
    assert r.config.vrrp_instances[0].name == "VI"
    assert any(d.severity is Severity.INFO and "escaped" in d.message for d in r.diagnostics)


def test_braces_may_touch_words() -> None:
    r = _load(
        "vrrp_instance VI_1{\n interface eth0\n virtual_router_id 9\n"
        " virtual_ipaddress {10.0.0.1\n 10.0.0.2}\n}\n"
    )
    assert r.ok, _errors(r)
    vi = r.config.vrrp_instances[0]
    assert [str(a.address.ip) for a in vi.virtual_ipaddress] == ["10.0.0.1", "10.0.0.2"]


def test_double_quotes_make_one_word() -> None:
    assert split_words('a "b c" d') == (["a", "b c", "d"], True)
    assert split_words('a "b c') == (["a"], False)


def test_unmatched_quote_is_reported() -> None:
    r = _load('global_defs {\n router_id "abc\n}\n')
    assert any("quote" in m for m in _errors(r))


def test_script_quoting_and_escapes_only_for_scripts() -> None:
    # The whole line is split first (escapes apply inside double quotes too),
    # then the command word is split again (notify.c notify_script_init).
    assert split_quoted_escaped("notify \"/bin/echo 'a b' c\\x41\" root") == [
        "notify",
        "/bin/echo 'a b' cA",
        "root",
    ]
    assert split_quoted_escaped("/bin/echo 'a b' c\\tq") == ["/bin/echo", "a b", "c\tq"]
    r = _load(
        VI.replace("interface eth0", "interface eth0\n notify_master \"/bin/echo 'x y'\" nobody")
    )
    sc = r.config.vrrp_instances[0].notify.master
    assert sc is not None
    assert sc.argv == ("/bin/echo", "x y")
    assert sc.user == "nobody"


def test_include_glob_brace_relative_and_missing(tmp_path: Path) -> None:
    sub = tmp_path / "conf.d"
    sub.mkdir()
    (sub / "a.conf").write_text("global_defs {\n router_id A\n}\n")
    (sub / "b.conf").write_text("include ../inner/*.conf\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "vi.conf").write_text(VI)
    main = tmp_path / "keepalived.conf"
    main.write_text("include conf.d/{a,b}.conf\ninclude nothing-here.conf\n")
    r = load(str(main), config_id="x", interface_exists=lambda _n: True)
    assert r.ok, _errors(r)
    assert r.config.global_defs.router_id == "A"
    assert r.config.vrrp_instances[0].name == "VI_1"
    assert len(r.config.files) == 4


def test_include_cycle_is_an_error(tmp_path: Path) -> None:
    a = tmp_path / "a.conf"
    b = tmp_path / "b.conf"
    a.write_text("include b.conf\n")
    b.write_text("include a.conf\n")
    r = load(str(a), config_id="x")
    assert not r.ok
    assert any("cycle" in d.message for d in r.diagnostics)


def test_brace_expansion() -> None:
    assert expand_braces("a{b,c}d") == ["abd", "acd"]
    assert expand_braces("x{1,{2,3}}") == ["x1", "x2", "x3"]
    assert expand_braces("plain") == ["plain"]


def test_definitions_and_substitution() -> None:
    r = _load(
        "$IF=eth0\n$ID=42\n"
        "vrrp_instance VI_1 {\n interface $IF\n virtual_router_id ${ID}\n"
        " virtual_ipaddress {\n 10.0.0.1\n }\n}\n"
    )
    assert r.ok, _errors(r)
    vi = r.config.vrrp_instances[0]
    assert (vi.interface, vi.virtual_router_id) == ("eth0", 42)


def test_multiline_definition() -> None:
    r = _load(
        "$VIPS=10.0.0.1 \\\n   10.0.0.2\n"
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress {\n $VIPS\n }\n}\n"
    )
    assert r.ok, _errors(r)
    got = [str(a.address.ip) for a in r.config.vrrp_instances[0].virtual_ipaddress]
    assert got == ["10.0.0.1", "10.0.0.2"]


def test_conditional_lines_against_config_id() -> None:
    text = "@host1 global_defs {\n@host1  router_id ONE\n@host1 }\n@^host1 bogus_keyword\n"
    r = _load(text, config_id="host1")
    assert r.config.global_defs.router_id == "ONE"
    assert r.ok
    r2 = _load(text, config_id="other")
    assert r2.config.global_defs.router_id is None
    assert "Unknown keyword 'bogus_keyword'" in _errors(r2)


def test_seq_and_lst() -> None:
    r = _load(
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n"
        "~SEQ(n, 1, 2, 5) 10.0.0.$n\n~LST(h, 7, 9) 10.0.1.$h\n }\n}\n"
    )
    assert r.ok, _errors(r)
    got = [str(a.address.ip) for a in r.config.vrrp_instances[0].virtual_ipaddress]
    assert got == ["10.0.0.1", "10.0.0.3", "10.0.0.5", "10.0.1.7", "10.0.1.9"]


def test_unknown_keyword_brace_quirk() -> None:
    # The unknown keyword's '{' is ignored: its '}' closes vrrp_instance, so
    # advert_int lands at the top level and the last '}' is unknown there.
    r = _load(
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n no_such {\n"
        "  priority 100\n }\n advert_int 1\n}\n"
    )
    msgs = _errors(r)
    assert msgs[:4] == [
        "Unknown keyword 'no_such'",
        "Unexpected '{' - ignoring",
        "Unknown keyword 'advert_int'",
        "Unknown keyword '}'",
    ]
    assert r.config.vrrp_instances[0].priority == 100
    assert r.exit_code == 5


def test_extra_closing_brace() -> None:
    r = _load(VI + "}\n")
    assert "Extra '}' found" in _errors(r)


def test_every_diagnostic_has_file_line_and_hint() -> None:
    r = _load("bogus 1\n" + VI.replace("virtual_router_id 51", "virtual_router_id 999"))
    located = [d for d in r.diagnostics if d.severity > Severity.OK and d.loc is not None]
    assert located
    for d in located:
        assert str(d).startswith("(t.conf: Line ")
        assert d.hint


def test_seed001_fork_features_are_named(tmp_path: Path) -> None:
    base = Path("/work/shared/corpus/seed-configs/seed001-cluster/keepalived.conf")
    if not base.exists():  # the corpus lives beside the repo on CI machines too
        raise AssertionError("corpus missing")
    r = load(str(base), config_id="x", interface_exists=lambda _n: True)
    text = "\n".join(str(d) for d in r.diagnostics)
    for needle in ("FNAT", "syn_proxy", "local_address_group", "laddr_group_name"):
        assert needle in text and "Alibaba" in text
    assert "'/*' is not comment syntax" in text or "'/* ... */' is not comment syntax" in text
    assert "'//vip1' is not a comment" in text


def test_ipaddress_defaults_to_host_prefix() -> None:
    r = _load(VI)
    a = r.config.vrrp_instances[0].virtual_ipaddress[0]
    assert a.address == ipaddress.ip_interface("10.0.0.1/32")
