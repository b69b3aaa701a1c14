"""Must-show 2: keepalived 2.2.7 and pykeep, same configs, same kernel, same IPVS table.

One VM boot, shared with the other IPVS modules (tests/vmshare.py).  Inside
it, loopback listeners play the real servers (some ports listen, some do
not); keepalived (full mode, not -P) runs each config until its checkers
settle, ``ipvsadm -Sn`` is saved, keepalived stops; then
pykeep's reconciler runs the same config with health probed the same way
(TCP connect, MISC_CHECK exit status) and ``ipvsadm -Sn`` is saved again.
The two must be identical.  The configs cover inhibit_on_failure, alpha,
quorum with hysteresis and sorry_server (+ sorry_server_inhibit),
virtual_server_group with a range and a fwmark entry, fwmark services,
persistence (bare and with granularity), DR/NAT/TUN, ops, MISC_CHECK
dynamic weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import vmshare

UP_PORTS = (8001, 8002, 8003, 8005)


def rs(addr: str, port: int | None, weight: int = 1, check: str = "tcp") -> str:
    """A real_server block; ``check`` is tcp, tcp:PORT (connect_port), misc:STATUS or none."""
    body = f"        weight {weight}\n"
    if check.startswith("tcp"):
        cport = f"            connect_port {check[4:]}\n" if check.startswith("tcp:") else ""
        body += f"        TCP_CHECK {{\n            connect_timeout 1\n{cport}        }}\n"
    elif check.startswith("misc"):
        status = check.split(":")[1]
        body += (
            "        MISC_CHECK {\n"
            f"            misc_path \"/bin/sh -c 'exit {status}'\"\n"
            "            misc_dynamic\n"
            "        }\n"
        )
    where = addr if port is None else f"{addr} {port}"
    return f"    real_server {where} {{\n{body}    }}\n"


def vs(head: str, opts: str, servers: str) -> str:
    return (
        f"virtual_server {head} {{\n    delay_loop 1\n"
        + "".join(f"    {o}\n" for o in opts.split(";") if o.strip())
        + servers
        + "}\n"
    )


GLOBAL = "global_defs {\n    router_id diff\n    script_user root\n    enable_script_security\n}\n"

CONF_A = (
    GLOBAL
    + "virtual_server_group vsg1 {\n    10.20.0.1-3 8002\n    fwmark 21\n}\n"
    + vs(
        "10.10.0.1 80",
        "lb_algo rr; lb_kind NAT; protocol TCP; inhibit_on_failure",
        rs("127.0.0.2", 8001, 2) + rs("127.0.0.9", 8009, 3),
    )
    + vs(
        "10.10.0.2 8001",
        "lb_algo wlc; lb_kind DR; protocol TCP; alpha",
        rs("127.0.0.2", 8001, 2) + rs("127.0.0.9", 8001, 3),
    )
    + vs(
        "10.10.0.3 80",
        "lb_algo rr; lb_kind NAT; protocol TCP; quorum 5; hysteresis 1; "
        "sorry_server 127.0.0.5 8005",
        rs("127.0.0.2", 8001, 2) + rs("127.0.0.9", 8009, 3),
    )
    + vs(
        "group vsg1",
        "lb_algo wrr; lb_kind TUN; protocol TCP; persistence_timeout 120; "
        "persistence_granularity 255.255.255.0",
        rs("127.0.0.3", None, 4, "tcp:8002") + rs("127.0.0.9", None, 5, "tcp:8002"),
    )
    + vs(
        "fwmark 31",
        "lb_algo sh; lb_kind DR; persistence_timeout",
        rs("127.0.0.4", None, 4, "tcp:8003") + rs("127.0.0.9", None, 5, "tcp:8003"),
    )
    + vs(
        "10.10.0.5 53",
        "lb_algo rr; lb_kind NAT; protocol UDP; ops",
        rs("127.0.0.2", 5353, 1, check="none"),
    )
)

CONF_B = (
    GLOBAL
    + vs(
        "10.30.0.1 80",
        "lb_algo wrr; lb_kind NAT; protocol TCP; quorum 3; sorry_server 127.0.0.5 8005; "
        "sorry_server_inhibit",
        rs("127.0.0.2", 8001, 2) + rs("127.0.0.3", 8002, 2) + rs("127.0.0.9", 8009, 2),
    )
    + vs(
        "10.30.0.2 80",
        "lb_algo wrr; lb_kind NAT; protocol TCP; inhibit_on_failure",
        rs("127.0.0.2", 8001, 1, check="misc:12") + rs("127.0.0.3", 8002, 1, check="misc:1"),
    )
    + vs(
        "10.30.0.3 8001",
        "lb_algo lc; lb_kind TUN; protocol TCP; quorum 10; sorry_server 127.0.0.5 8001",
        rs("127.0.0.2", 8001, 2) + rs("127.0.0.9", 8001, 3),
    )
)

SCENARIO = r"""
import json, os, socket, subprocess, sys, time, signal
from pathlib import Path
from pykeep.config import load
from pykeep.config.model import TcpCheck, MiscCheck
from ipvs.netlink import Kernel
from ipvs.service import Reconciler
from ipvs.policy import rs_key, misc_dynamic_health

W = Path(os.environ["W"])
SETTLE = float(os.environ.get("SETTLE", "12"))
def sh(*a):
    return subprocess.run(list(a), capture_output=True, text=True).stdout

listeners = []
for port in json.loads(os.environ["UP_PORTS"]):
    for last in (2, 3, 4, 5):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((f"127.0.0.{last}", port))
        s.listen(64)
        listeners.append(s)

def probe(vs, rs):
    alive, weight = True, None
    for c in rs.checkers:
        if isinstance(c, TcpCheck):
            cm = c.common
            target = (str(cm.connect_ip or rs.address), cm.connect_port or rs.port)
            try:
                socket.create_connection(target, timeout=1).close()
            except OSError:
                alive = False
        elif isinstance(c, MiscCheck):
            st = subprocess.run(list(c.misc_path.argv)).returncode
            h = misc_dynamic_health(st) if c.misc_dynamic else None
            if h is None:
                alive = alive and st == 0
            else:
                alive = alive and h.alive
                weight = h.weight if h.weight is not None else weight
    return alive, weight

res = {}
k = Kernel.open()
for name in ("A", "B"):
    conf = str(W / f"{name}.conf")
    k.flush()
    pids = ["-p", str(W / "k.pid"), "-c", str(W / "kc.pid"), "-r", str(W / "kv.pid")]
    kp = subprocess.Popen(["keepalived", "-n", "-l", "-D", "-f", conf, *pids],
                          stdout=open(W / f"keepalived-{name}.log", "w"), stderr=subprocess.STDOUT)
    time.sleep(SETTLE)
    res[name + "_keepalived"] = sh("ipvsadm", "-Sn")
    kp.send_signal(signal.SIGTERM)
    kp.wait(timeout=60)
    res[name + "_keepalived_after_stop"] = sh("ipvsadm", "-Sn")
    k.flush()
    cfg = load(conf).config
    r = Reconciler(cfg, k)
    r.start()
    for v in cfg.virtual_servers:
        for s in v.real_servers:
            if s.checkers:
                up, w = probe(v, s)
                r.transition(rs_key(v, s), up, w)
    res[name + "_pykeep"] = sh("ipvsadm", "-Sn")
    res[name + "_scripts"] = [list(s.argv) for s in r.pending_scripts]
    r.stop()
    res[name + "_pykeep_after_stop"] = sh("ipvsadm", "-Sn")
(W / "results.json").write_text(json.dumps(res))
"""


def _prepare(w: Path) -> str:
    (w / "A.conf").write_text(CONF_A)
    (w / "B.conf").write_text(CONF_B)
    env = f"export UP_PORTS='{json.dumps(list(UP_PORTS))}' SETTLE=12\n"
    return env + vmshare.python(SCENARIO)


vmshare.register("ipvs-keepalived", _prepare, timeout=600)


@pytest.fixture(scope="module")
def results(shared_vm: vmshare.SharedRun) -> dict[str, object]:
    w = shared_vm.part("ipvs-keepalived")
    out = w / "results.json"
    if not out.exists():
        pytest.fail(f"VM scenario produced no results:\n{shared_vm.log('ipvs-keepalived')[-4000:]}")
    data: dict[str, object] = json.loads(out.read_text())
    data["_dir"] = str(w)
    return data


def _lines(text: object) -> list[str]:
    return sorted(line for line in str(text).splitlines() if line)


@pytest.mark.vm
@pytest.mark.parametrize("name", ["A", "B"])
def test_same_table_as_keepalived(results: dict[str, object], name: str) -> None:
    ka, pk = _lines(results[f"{name}_keepalived"]), _lines(results[f"{name}_pykeep"])
    log = Path(str(results["_dir"])) / f"keepalived-{name}.log"
    assert ka, f"keepalived set nothing up; see {log}"
    assert pk == ka


@pytest.mark.vm
@pytest.mark.parametrize("name", ["A", "B"])
def test_both_clean_up_on_stop(results: dict[str, object], name: str) -> None:
    assert results[f"{name}_keepalived_after_stop"] == ""
    assert results[f"{name}_pykeep_after_stop"] == ""
