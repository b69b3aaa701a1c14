"""``pykeep`` command line: keepalived's options, -t output and exit codes, --signum."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pykeep import cli

GOOD = """global_defs {
    router_id R1
}
virtual_server 10.0.0.1 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.0.2 80 {
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
"""


def test_config_test_ok_and_error_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.conf"
    good.write_text(GOOD)
    assert cli.main(["-t", "-f", str(good)]) == 0
    bad = tmp_path / "bad.conf"
    bad.write_text(GOOD.replace("lb_kind NAT", "lb_kind FNAT\n    nat_mask 255.255.255.0"))
    assert cli.main(["--config-test", "--use-file", str(bad)]) == 5
    err = capsys.readouterr().err
    assert f"({bad}: Line 6) PARSER : unknown [FNAT] routing method for virtual server." in err
    assert f"({bad}: Line 7) Unknown keyword 'nat_mask'" in err
    assert "Traceback" not in err


def test_missing_parameter_exits_2_and_missing_file_like_keepalived(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "k.conf"
    f.write_text(GOOD.replace("connect_timeout 3", "connect_timeout"))
    assert cli.main(["-t", "-f", str(f)]) == 2
    # keepalived 2.2.7 -t exits 0 for a missing file; we agree, but say so.
    capsys.readouterr()
    assert cli.main(["-t", "-f", str(tmp_path / "nope.conf")]) == 0
    assert "nothing was checked" in capsys.readouterr().err


def test_config_test_to_file(tmp_path: Path) -> None:
    f = tmp_path / "k.conf"
    f.write_text(GOOD + "bogus\n")
    out = tmp_path / "report.txt"
    assert cli.main(["-f", str(f), f"--config-test={out}"]) == 5
    assert "Unknown keyword 'bogus'" in out.read_text()


def test_signum_like_keepalived(capsys: pytest.CaptureFixture[str]) -> None:
    for name, num in (("STOP", 15), ("RELOAD", 1), ("DATA", 10), ("STATS", 12), ("JSON", 36)):
        assert cli.main([f"--signum={name}"]) == 0
        assert capsys.readouterr().out.strip() == str(num)
    assert cli.main(["--signum=NOPE"]) == 1


def test_options_parse_like_keepalived() -> None:
    opts = cli.build_parser().parse_args(
        [
            "-P",
            "-l",
            "-D",
            "-n",
            "-S",
            "3",
            "-p",
            "/run/k.pid",
            "-i",
            "lb1",
            "--log-json",
            "--metrics-listen",
            "127.0.0.1:9650",
            "--control-socket",
            "/run/pykeep.sock",
        ]
    )
    assert opts.vrrp and opts.log_console and opts.log_detail and opts.dont_fork
    assert (opts.log_facility, opts.pid, opts.config_id) == (3, "/run/k.pid", "lb1")
    assert opts.conf_file == "/etc/keepalived/keepalived.conf"
    assert opts.metrics_listen == "127.0.0.1:9650" and opts.control_socket == "/run/pykeep.sock"


def test_version_and_bad_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-v"]) == 0
    # keepalived prints its version to stderr; keepalived-exporter parses
    # "Keepalived v2.2.7" from there and looks for --enable-json.
    err = capsys.readouterr().err
    assert err.startswith("Keepalived v2.2.7 (pykeep ") and "--enable-json" in err
    assert cli.main(["--no-such-option"]) == 2


def test_config_test_writes_to_given_stream(tmp_path: Path) -> None:
    f = tmp_path / "k.conf"
    f.write_text("bogus\n")
    buf = io.StringIO()
    assert cli.config_test(str(f), "x", buf) == 5
    assert "Unknown keyword 'bogus'" in buf.getvalue()
