"""One test per lexical feature of keepalived.conf (lib/parser.c read_line and friends)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pykeep.config import LoadResult, Severity, load, load_text
from pykeep.config.lexer import (
    MAX_CONFIG_BYTES,
    decomment,
    expand_braces,
    split_quoted_escaped,
    split_words,
)
from pykeep.config.parser import MAX_PER_KIND


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
    # pykeep realises the fork's keywords on mainline IPVS and says how (config/extensions.py).
    for needle in ("lb_kind FNAT", "syn_proxy", "local_address_group", "laddr_group_name"):
        assert any(
            d.message.startswith(needle) and d.severity is Severity.INFO for d in r.diagnostics
        ), needle
    assert "Unknown keyword 'local_address_group'" not in text
    assert "'/*' is not comment syntax" in text or "'/* ... */' is not comment syntax" in text
    assert "'//vip1' is not a comment" in text


def test_ipaddress_defaults_to_host_prefix() -> None:
    r = _load(VI)
    a = r.config.vrrp_instances[0].virtual_ipaddress[0]
    assert a.address == ipaddress.ip_interface("10.0.0.1/32")


# -- what an include must not read (issue 13, failure 1) ------------------------


def _pykeep_t(conf: Path, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """``pykeep -t`` in a child with 1 GB of address space: an unbounded read fails fast."""
    return subprocess.run(
        ["prlimit", "--as=1000000000", sys.executable, "-m", "pykeep", "-t", "-f", str(conf)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_include_of_devices_fifo_and_directory_is_skipped_quickly(tmp_path: Path) -> None:
    """keepalived reads only regular non-executable files (parser.c check_glob_file)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "dir.d").mkdir()
    exe = tmp_path / "exec.conf"
    exe.write_text("global_defs {\n router_id X\n}\n")
    exe.chmod(0o755)
    targets = ["/dev/zero", "/dev/urandom", "/dev/null", str(fifo), str(exe)]
    main = tmp_path / "keepalived.conf"
    main.write_text("".join(f"include {t}\n" for t in targets) + f"include {tmp_path}/dir.d\n" + VI)
    started = time.monotonic()
    proc = _pykeep_t(main)
    assert time.monotonic() - started < 15, "the includes were read"
    assert proc.returncode == 0, proc.stderr  # plain include: skipped at CONFIG_OK, as keepalived
    assert "Traceback" not in proc.stderr
    for t in targets:
        assert (
            f"Configuration file '{t}' is not a regular non-executable file - skipping"
            in proc.stderr
        )
    assert f"Configuration file '{tmp_path}/dir.d/' is a directory - skipping" in proc.stderr
    # includer (INCLUDE_R) makes the same thing an error, as in keepalived
    main.write_text(f"includer /dev/zero\n{VI}")
    strict = load(str(main), config_id="x", interface_exists=lambda _n: True)
    assert strict.exit_code == 6  # KEEPALIVED_EXIT_NO_CONFIG, as keepalived -t gives
    assert [d.severity for d in strict.diagnostics if "regular" in d.message] == [
        Severity.FILE_NOT_FOUND
    ]


def test_include_glob_over_devices_and_fifos_reads_only_regular_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "b.conf")
    (tmp_path / "a.conf").write_text("global_defs {\n router_id A\n}\n")
    (tmp_path / "c.conf").symlink_to("/dev/zero")
    main = tmp_path / "keepalived.conf"
    main.write_text(f"include {tmp_path}/*.conf\n")
    r = load(str(main), config_id="x")
    assert r.config.global_defs.router_id == "A"
    assert r.config.files == (str(main), str(tmp_path / "a.conf"))
    skipped = sorted(d.message for d in r.diagnostics if "regular" in d.message)
    assert [m.split("'")[1] for m in skipped] == [str(tmp_path / n) for n in ("b.conf", "c.conf")]


def test_include_cycles_end_with_one_error_each(tmp_path: Path) -> None:
    (tmp_path / "self.conf").write_text("include self.conf\n")
    (tmp_path / "a.conf").write_text("include b.conf\n")
    (tmp_path / "b.conf").write_text("include c.conf\n")
    (tmp_path / "c.conf").write_text("include a.conf\n")
    for start in ("self.conf", "a.conf"):
        r = load(str(tmp_path / start), config_id="x")
        assert r.exit_code == 4
        assert [d.message for d in r.diagnostics if "cycle" in d.message] == [
            f"include cycle: '{tmp_path / start}' is already being read"
        ]


def test_huge_include_and_huge_file_are_refused_without_reading_them(tmp_path: Path) -> None:
    """A ceiling on the total size (MAX_CONFIG_BYTES): sparse files, so nothing is written."""
    huge = tmp_path / "huge.conf"
    with open(huge, "wb") as f:
        f.truncate(MAX_CONFIG_BYTES + 1)
    main = tmp_path / "keepalived.conf"
    main.write_text(f"include {huge}\n{VI}")
    started = time.monotonic()
    proc = _pykeep_t(main)
    assert proc.returncode == 4, proc.stderr
    assert f"MB at '{huge}' - not read" in proc.stderr
    proc = _pykeep_t(huge)
    assert proc.returncode == 4, proc.stderr
    assert f"configuration file {huge} is over 256 MB - not read" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 20


def test_include_count_has_a_ceiling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pykeep.config import lexer

    monkeypatch.setattr(lexer, "MAX_CONFIG_FILES", 5)
    for i in range(8):
        (tmp_path / f"{i}.conf").write_text(f"! file {i}\n")
    main = tmp_path / "keepalived.conf"
    main.write_text(f"include {tmp_path}/?.conf\n")
    r = load(str(main), config_id="x")
    assert r.exit_code == 4
    assert len(r.config.files) == 5
    assert [d.message for d in r.diagnostics if "more than" in d.message] == [
        f"more than 5 configuration files - '{tmp_path}/4.conf' not read"
    ]


# -- NUL and CR (issue 13, failure 7): parser.c read_line's fgets/strlen -----------


def test_nul_ends_the_line_there() -> None:
    r = _load("global_defs {\n router_id A\x00B C\n notification_email_from x\x00@y\n}\n")
    assert r.ok, _errors(r)
    assert r.config.global_defs.router_id == "A"
    # a NUL before any word leaves an empty line: no keyword at all
    r = _load("\x00vrrp_instance VI_1 {\n" + VI)
    assert r.ok, _errors(r)


def test_cr_is_stripped_only_at_the_end_and_is_a_blank_inside() -> None:
    crlf = VI.replace("\n", "\r\n")
    r = _load(crlf)
    assert r.ok, _errors(r)
    assert r.config.vrrp_instances[0].virtual_router_id == 51
    r = _load(VI.replace("virtual_router_id 51", "virtual_router_id\r51"))
    assert r.ok, _errors(r)
    assert r.config.vrrp_instances[0].virtual_router_id == 51
    # not a blank for str.split alone: \x1c..\x1f stay inside a word, as in C
    r = _load(VI.replace("virtual_router_id 51", "virtual_router_id\x1c51"))
    assert "Unknown keyword 'virtual_router_id\x1c51'" in _errors(r)


def test_a_line_longer_than_1023_bytes_is_read_as_two() -> None:
    """fgets(buf, 1024): keepalived 2.2.7 reads the rest of a long line as a line of its own.

    Checked against ``keepalived -t``: "(Line 2) Unknown keyword 'cd'".
    """
    pad = " " * (1023 - len("router_id ab"))
    r = _load(f"global_defs {{\n{pad}router_id abcd\n}}\n")
    assert r.config.global_defs.router_id == "ab"
    assert [(d.loc.line if d.loc else 0, d.message) for d in r.diagnostics] == [
        (2, "Unknown keyword 'cd'")
    ]
    # bytes, not characters: each é is two, so 600 of them are cut too
    r = _load(f"global_defs {{\n router_id {'é' * 600}\n}}\n")
    assert r.config.global_defs.router_id == "é" * ((1023 - len(" router_id ")) // 2)
    assert any(d.message.startswith("Unknown keyword") for d in r.diagnostics)


def test_script_words_split_on_cr_as_keepalived_does() -> None:
    """alloc_strvec_quoted_escaped splits on WHITE_SPACE, which has \\r.

    keepalived 2.2.7 then finds ``/bin/tr`` and exits 6 (script security) on
    ``script "/bin/tr\\rue"``, where ``/bin/tr\\rue`` would not be found.
    """
    assert split_quoted_escaped("/bin/tr\rue arg") == ["/bin/tr", "ue", "arg"]
    r = _load('vrrp_script chk {\n script "/bin/tr\rue arg"\n interval 2\n}\n')
    s = r.config.script("chk")
    assert s is not None and s.script.argv == ("/bin/tr", "ue", "arg")


def test_one_bad_line_kind_costs_a_capped_count() -> None:
    r = _load("}\n" * 5000 + "nonsense\n" * 5000)
    extra = [d for d in r.diagnostics if d.message == "Extra '}' found"]
    unknown = [d for d in r.diagnostics if d.message.startswith("Unknown keyword")]
    assert 0 < len(extra) <= MAX_PER_KIND and 0 < len(unknown) <= MAX_PER_KIND
    summaries = [d.message for d in r.diagnostics if d.loc is None and "more" in d.message]
    assert any(m.startswith("... and 4900 more 'Extra '}' …'") for m in summaries), summaries
    assert r.exit_code == 5


# -- the plain ``pykeep -t`` path skips argparse; it must read argv as argparse does --


@pytest.mark.parametrize(
    "argv",
    [
        ["-t"],
        ["-t", "-f", "/x.conf"],
        ["--config-test", "--use-file", "/x.conf", "-i", "h1"],
        ["-f", "/x.conf", "-t", "-l", "-D"],
        ["-t", "--use-file=/y.conf", "-n", "--config-id", "h2"],
        ["-f", "/a.conf", "-f", "/b.conf", "-t"],
    ],
)
def test_quick_config_test_reads_argv_as_argparse_does(argv: list[str]) -> None:
    from pykeep import cli

    quick = cli._quick_config_test(argv)
    opts = cli.build_parser().parse_args(argv)
    assert quick == (opts.conf_file, opts.config_id)
    assert opts.config_test == ""


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["-f", "/x.conf"],
        ["-t", "out.txt"],
        ["-t", "-f"],
        ["-tf", "/x.conf"],
        ["-t", "--use", "/x.conf"],
        ["-t", "-P"],
        ["-t", "-d"],
    ],
)
def test_quick_config_test_leaves_everything_else_to_argparse(argv: list[str]) -> None:
    from pykeep import cli

    assert cli._quick_config_test(argv) is None


# Verdicts of Debian's keepalived -t 2.2.7 on each line, followed by a valid global_defs.
INCLUDE_KINDS = [
    ("includem {d}/nonexist.conf", 6),
    ("includer {d}/nonexist.conf", 0),
    ("includew {d}/nothing*.conf", 6),
    ("includem {d}/nothing*.conf", 0),
    ("includeb {d}/{{exists,nonexist}}.conf", 6),
    ("includem {d}/{{exists,nonexist}}.conf", 0),
    ("includea {d}/nothing*.conf", 6),
    ("include {d}/nonexist.conf", 0),
    ("includer {d}/exists.conf", 0),
    ("includew {d}/nonexist.conf", 6),
    ("includer /dev/zero", 6),
    ("include /dev/zero", 0),
    ("includer {d}/sub", 6),
]


@pytest.mark.parametrize(("line", "code"), INCLUDE_KINDS)
def test_include_kinds_give_keepalived_exit_codes(tmp_path: Path, line: str, code: int) -> None:
    """INCLUDE_R/M/W/B (parser.c check_include): a config-file error stops keepalived, exit 6."""
    (tmp_path / "exists.conf").write_text("")
    (tmp_path / "sub").mkdir()
    main = tmp_path / "keepalived.conf"
    main.write_text(line.format(d=tmp_path) + "\nglobal_defs {\n router_id X\n}\n")
    r = load(str(main), config_id="x")
    assert r.exit_code == code, [str(d) for d in r.diagnostics]
