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
    bad.write_text(GOOD.replace("lb_kind NAT", "lb_kind BOGUS\n    nat_mask 255.255.255.0"))
    assert cli.main(["--config-test", "--use-file", str(bad)]) == 5
    err = capsys.readouterr().err
    assert f"({bad}: Line 6) PARSER : unknown [BOGUS] routing method for virtual server." in err
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


# keepalived core/main.c parse_cmdline: every option acts, or pykeep refuses it.


@pytest.mark.parametrize(
    ("flag", "long"),
    [("-X", "--release-vips"), ("-V", "--dont-release-vrrp"), ("-a", "--address-monitoring")],
)
def test_unsupported_keepalived_options_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, long: str
) -> None:
    good = tmp_path / "good.conf"
    good.write_text(GOOD)
    for opt in (flag, long):
        assert cli.main([opt, "-t", "-f", str(good)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and flag in err[0] and "not supported" in err[0], err


def test_acting_keepalived_options_still_run(tmp_path: Path) -> None:
    good = tmp_path / "good.conf"
    good.write_text(GOOD)
    for opt in ("-d", "-G", "-I", "-R"):
        assert cli.main([opt, "-t", "-f", str(good)]) == 0
    opts = cli.build_parser().parse_args(["-d", "-G", "-I", "-R"])
    assert opts.dump_conf and opts.no_syslog and opts.dont_release_ipvs and opts.dont_respawn
    assert cli.refused_option(opts) is None


@pytest.mark.netns
def test_dump_conf_logs_the_configuration_and_no_syslog_is_silent(tmp_path: Path) -> None:
    """-d: the VRRP configuration dump goes to the log once started (vrrp_daemon.c
    start_vrrp dump_data_vrrp); -G without -l: nothing is logged anywhere."""
    import signal
    import subprocess
    import sys
    import time

    from sim.netns import Rig, unique_rig_name
    from tests.netns_vrrp import lan, vrrp_conf

    conf = tmp_path / "k.conf"
    conf.write_text(vrrp_conf(vrid=71, vips=("10.99.0.171/32",)))
    # A rig name of its own: another test's "ck" rig may be up at the same time.
    with Rig(unique_rig_name("cli")) as rig:
        lan(rig, {"a": "10.99.0.11/24"})
        outs = {}
        for name, extra in (("dump", ["-l", "-d"]), ("quiet", ["-G", "-D"])):
            log = tmp_path / f"{name}.log"
            base = ["-m", "pykeep", "-P", "-n", "-f", str(conf)]
            pids = ["-p", str(tmp_path / f"{name}.pid"), "-r", str(tmp_path / f"{name}.vpid")]
            socket = ["--control-socket", str(tmp_path / f"{name}.sock")]
            with open(log, "w") as out:
                proc = rig.popen(
                    "a",
                    [sys.executable, *base, *pids, *socket, *extra],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            want = "VRRP Topology" if name == "dump" else None
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if want is not None and want in log.read_text():
                    break
                if want is None and (tmp_path / f"{name}.sock").exists():
                    time.sleep(0.5)  # started: a dump or a warning would be out by now
                    break
                time.sleep(0.1)
            assert proc.poll() is None, log.read_text()
            rig.kill(proc, sig=signal.SIGTERM)
            proc.wait(timeout=10)
            outs[name] = log.read_text()
    assert "------< VRRP Topology >------" in outs["dump"], outs["dump"]
    assert " VRRP Instance = VI_1" in outs["dump"] or "VI_1" in outs["dump"]
    assert outs["quiet"].strip() == "", outs["quiet"]
