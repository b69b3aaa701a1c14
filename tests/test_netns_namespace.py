"""``net_namespace`` / ``instance``: the daemon enters the namespace named in the file.

Both daemons are started from the root namespace with a file that names
one of the rig's namespaces; the VIP must appear there (and not in the root
namespace), the pid files must be where keepalived puts them
(/run/keepalived/NS/keepalived_INSTANCE.pid …), a reload that changes the
namespace must be refused, and a stop must remove the pid files and the
directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pykeep import rundir
from pykeep.config.model import GlobalDefs
from sim.netns import Rig
from tests.netns_vrrp import KEEPALIVED, PY, ROOT, lan, until, vrrp_conf, workdir

Make = Callable[..., Rig]
MDI = 3 + 106 / 256
START = 8.0


def test_pid_file_names_are_keepalived_s() -> None:
    """main.c keepalived_main: /run by default, /run/keepalived[/NS] with _INSTANCE."""
    plain = rundir.pid_files(net_namespace=None, instance=None, use_pid_dir=False)
    assert (plain.main, plain.vrrp, plain.checkers, plain.dirs) == (
        "/run/keepalived.pid",
        "/run/vrrp.pid",
        "/run/checkers.pid",
        (),
    )
    both = rundir.pid_files(net_namespace="blue", instance="x", use_pid_dir=True)
    assert both.main == "/run/keepalived/blue/keepalived_x.pid"
    assert both.vrrp == "/run/keepalived/blue/vrrp_x.pid"
    assert both.dirs == ("/run/keepalived", "/run/keepalived/blue")
    inst = rundir.pid_files(net_namespace=None, instance="x", use_pid_dir=True, main="/tmp/m")
    assert (inst.main, inst.checkers) == ("/tmp/m", "/run/keepalived/checkers_x.pid")
    assert rundir.pid_files(net_namespace=None, instance=None, use_pid_dir=True).vrrp == (
        "/run/keepalived/vrrp.pid"
    )
    assert rundir.syslog_ident("Keepalived_vrrp", "blue", "x") == "Keepalived_vrrp_blue_x"
    assert rundir.syslog_ident("Keepalived_vrrp", None, None) == "Keepalived_vrrp"
    g = GlobalDefs(net_namespace="blue")
    assert rundir.unsupported_change(g, GlobalDefs(net_namespace="red"))
    assert not rundir.unsupported_change(g, GlobalDefs(net_namespace="blue", instance="y"))


def _root_addresses() -> str:
    return subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout


def _run(rig: Rig, wd: Path, kind: str, ns: str) -> dict[str, object]:
    conf = wd / f"{kind}.conf"
    body = vrrp_conf(priority=150, vips=("10.99.0.200/32",))
    conf.write_text(f"net_namespace {ns}\ninstance vx\n{body}")
    log = open(wd / f"{kind}.log", "w")  # noqa: SIM115 - handed to the child
    argv = [PY, "-m", "pykeep"] if kind == "pykeep" else [KEEPALIVED]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [*argv, "-P", "-n", "-l", "-D", "-f", str(conf)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    log.close()
    piddir = Path(f"/run/keepalived/{ns}")
    try:
        until(lambda: any(a.startswith("10.99.0.200/") for a in rig.addresses("a")), MDI + START)
        until(lambda: (piddir / "vrrp_vx.pid").exists(), 3.0)
        in_root = "10.99.0.200" in _root_addresses()
        files = sorted(p.name for p in piddir.iterdir())
        main_pid = int((piddir / "keepalived_vx.pid").read_text().split()[0])
        conf.write_text(f"net_namespace {ns}x\ninstance vx\n{body}")
        os.kill(proc.pid, signal.SIGHUP)
        until(lambda: "Cannot change network namespace" in (wd / f"{kind}.log").read_text(), 5)
        time.sleep(0.5)
        kept = any(a.startswith("10.99.0.200/") for a in rig.addresses("a"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {
        "in_root": in_root,
        "files": files,
        "main_pid_ok": main_pid == proc.pid,
        "kept_after_refused_reload": kept,
        "vip_after_stop": any(a.startswith("10.99.0.200/") for a in rig.addresses("a")),
        "piddir_after_stop": piddir.exists(),
    }


@pytest.mark.netns
def test_net_namespace_puts_the_vip_there_like_keepalived(rig: Make) -> None:
    r = rig(hint="vxns")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"})
        ns = r.ns("a")
        seen = {kind: _run(r, wd, kind, ns) for kind in ("keepalived", "pykeep")}
        logs = {k: (wd / f"{k}.log").read_text() for k in seen}
    assert seen["pykeep"] == seen["keepalived"], (seen, logs["pykeep"])
    assert seen["pykeep"] == {
        "in_root": False,
        "files": ["keepalived_vx.pid", "vrrp_vx.pid"],
        "main_pid_ok": True,
        "kept_after_refused_reload": True,
        "vip_after_stop": False,
        "piddir_after_stop": False,
    }
