"""On this host (no IPVS in the kernel): one clear line and a non-zero exit, or VRRP with -P.

keepalived's checker process cannot start without IPVS and the daemon stops;
with ``-P`` only VRRP runs and the virtual servers are ignored.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from sim.vm import kernel_has_ipvs

REPO = Path(__file__).resolve().parent.parent
PYKEEP = str(REPO / ".venv" / "bin" / "pykeep")

CONF = """
virtual_server 10.10.10.1 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 127.0.0.1 8001 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
"""


def daemon_args(tmp: Path, *extra: str) -> list[str]:
    return [
        PYKEEP,
        *extra,
        *("-n", "-l", "-f", str(tmp / "lvs.conf")),
        *("-p", str(tmp / "k.pid"), "-r", str(tmp / "v.pid"), "-c", str(tmp / "c.pid")),
        *("--control-socket", str(tmp / "control.sock")),
    ]


def test_no_ipvs_is_one_line_and_nonzero_exit(tmp_path: Path) -> None:
    assert not kernel_has_ipvs(load=False), "this test expects a host kernel without IPVS"
    (tmp_path / "lvs.conf").write_text(CONF)
    argv = daemon_args(tmp_path)
    env = dict(os.environ, PYKEEP_STATE_DIR=str(tmp_path))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if "IPVS" in line]
    assert len(lines) == 1, text
    assert "modprobe ip_vs" in lines[0] and "1 virtual server" in lines[0]


def test_vrrp_only_runs_on_without_ipvs(tmp_path: Path) -> None:
    (tmp_path / "lvs.conf").write_text(CONF)
    env = dict(os.environ, PYKEEP_STATE_DIR=str(tmp_path))
    proc = subprocess.Popen(
        daemon_args(tmp_path, "-P"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        time.sleep(1.5)
        assert proc.poll() is None, proc.communicate()[0]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0, out
    assert "IPVS" not in out and "Traceback" not in out
