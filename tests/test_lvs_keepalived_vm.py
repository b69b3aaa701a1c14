"""keepalived ``-C`` and pykeep ``-C`` on one configuration, one real kernel (shared VM boot).

The configuration holds the two checker-side corrections of issue 12 that
only a kernel shows:

- a DR fwmark service whose real servers are written with ports: keepalived
  clears the ports for IPVS ("has port specified - clearing") after its
  checkers were built on the written ports (check_api.c ``queue_checker``,
  check_data.c ``validate_check_config``), so the server listening on its
  written port is put in the table and the one with nobody there is not;
- a persistent UDP service with ``persistence_engine sip``: keepalived passes
  the engine to the kernel with the persistence (ipvswrapper.c
  ``ipvs_set_srule``).

Each daemon runs alone against the same listeners; after the checkers
settle, ``ipvsadm -Sn`` must be the same line for line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests import vmshare

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parent.parent

CONF = """global_defs {
    router_id lvs_ck
}
virtual_server fwmark 7 {
    delay_loop 2
    lb_algo rr
    lb_kind DR
    real_server 127.0.0.1 8080 {
        TCP_CHECK {
            connect_timeout 2
        }
    }
    real_server 127.0.0.2 8081 {
        TCP_CHECK {
            connect_timeout 2
        }
    }
}
virtual_server 10.20.0.1 5060 {
    protocol UDP
    lb_algo rr
    lb_kind NAT
    persistence_timeout 60
    persistence_engine sip
    real_server 127.0.0.1 5060 {
        weight 1
    }
}
"""

SCENARIO = r"""
import json, os, signal, socket, subprocess, threading, time

RW = os.environ["PYKEEP_VM_RWDIR"]
CMDS = json.load(open(os.path.join(RW, "cmds.json")))
out = {}

def save():
    json.dump(out, open(os.path.join(RW, "result.json"), "w"), indent=1)

def table():
    text = subprocess.run(["ipvsadm", "-Sn"], capture_output=True, text=True).stdout
    return sorted(line.strip() for line in text.splitlines() if line.strip())

def wait(pred, limit):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        t = table()
        if pred(t):
            return round(time.monotonic() - t0, 2)
        time.sleep(0.3)
    return None

def settled(t):
    fw = [l for l in t if l.startswith("-a -f 7 ")]
    return any("-r 127.0.0.1" in l for l in fw) and any(l.startswith("-A -u ") for l in t)

sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 8080))
sock.listen(64)

def accept():
    while True:
        try:
            c, _ = sock.accept()
            c.close()
        except OSError:
            return

threading.Thread(target=accept, daemon=True).start()
for mod in ("ip_vs", "ip_vs_rr", "ip_vs_pe_sip"):
    subprocess.run(["modprobe", mod])
for kind, cmd in CMDS.items():
    logf = open(os.path.join(RW, kind + ".log"), "w")
    env = dict(os.environ, PYKEEP_STATE_DIR=RW)
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
    try:
        # pykeep's interpreter start is slow under emulation: minutes, not seconds
        out[kind + "_settle_s"] = wait(settled, 400)
        time.sleep(6)  # three more delay_loops: a late change would show
        out[kind] = table()
        save()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        logf.close()
        out[kind + "_log"] = open(os.path.join(RW, kind + ".log")).read()[-6000:]
    subprocess.run(["ipvsadm", "-C"])
    wait(lambda t: not [l for l in t if l.startswith("-A")], 30)
save()
"""


def commands(rw: Path) -> dict[str, list[str]]:
    conf = str(rw / "ck.conf")

    def pids(kind: str) -> list[str]:
        return [
            *("-p", str(rw / f"{kind}.pid")),
            *("-r", str(rw / f"{kind}-v.pid")),
            *("-c", str(rw / f"{kind}-c.pid")),
        ]

    return {
        "keepalived": ["/usr/sbin/keepalived", "-C", "-n", "-l", "-f", conf, *pids("k")],
        "pykeep": [
            str(REPO / ".venv" / "bin" / "pykeep"),
            *("-C", "-n", "-l", "-f", conf, *pids("p")),
            *("--control-socket", "/tmp/pykeep-lvs-ck.sock"),
        ],
    }


def _prepare(rw: Path) -> str:
    (rw / "ck.conf").write_text(CONF)
    (rw / "scenario.py").write_text(SCENARIO)
    (rw / "cmds.json").write_text(json.dumps(commands(rw)))
    return f"python {rw / 'scenario.py'}"


vmshare.register("lvs_ck", _prepare, timeout=900)


@pytest.fixture(scope="module")
def result(shared_vm: vmshare.SharedRun) -> dict[str, Any]:
    return shared_vm.json("lvs_ck")


def _logs(r: dict[str, Any]) -> str:
    return f"--- keepalived\n{r.get('keepalived_log', '')}\n--- pykeep\n{r.get('pykeep_log', '')}"


def test_fwmark_dr_servers_checked_on_written_ports_as_keepalived(result: dict[str, Any]) -> None:
    for kind in ("keepalived", "pykeep"):
        assert result.get(f"{kind}_settle_s") is not None, _logs(result)
        fw = [line for line in result[kind] if line.startswith("-a -f 7 ")]
        assert len(fw) == 1 and "-r 127.0.0.1:0 " in fw[0] + " ", (kind, fw, _logs(result))


def test_persistence_engine_reaches_the_kernel_as_keepalived(result: dict[str, Any]) -> None:
    for kind in ("keepalived", "pykeep"):
        udp = [line for line in result.get(kind, []) if line.startswith("-A -u ")]
        assert len(udp) == 1 and "--pe sip" in udp[0], (kind, udp, _logs(result))


def test_tables_identical_to_keepalived(result: dict[str, Any]) -> None:
    assert result.get("pykeep") == result.get("keepalived"), _logs(result)
