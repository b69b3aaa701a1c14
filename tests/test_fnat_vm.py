"""Seed 001's FULLNAT director on a real kernel (virtme-ng, a boot shared with others).

The manual's cluster configuration (``seed001-cluster``: a virtual server
group, ``lb_kind FNAT``, ``local_address_group``, ``syn_proxy``, quorum
scripts, alpha/omega) runs with its annotations (``//…``, ``/* … */``)
removed and one change the manual's keepalived needed no longer: its
``quorum_up "ip addr add …; ip addr add …"`` relied on a shell, and
keepalived 2.2.7 (like pykeep) runs scripts without one, so the same
commands are wrapped in ``/bin/sh -c '…'``.  The rig keeps the manual's
addresses: VIPs 1.1.1.1/1.1.1.2 on the director's ``lo``, real servers
192.168.1.1/.2 on an inner network with no route to the client's segment,
local addresses 192.168.100.1-5 on the director's inner interface.

What must hold:

- a loop of 300 client requests is spread over both real servers through
  FNAT, and the real servers see only local-group source addresses;
- the quorum_up script puts the VIPs on ``lo``; pykeep's nftables table
  and ``net.ipv4.vs.conntrack=1`` are in place, with one log line saying so;
- after SIGHUP to the same file using ``announce_on_lo`` instead of scripts,
  losing every real server takes the VIPs off ``lo``, and their return puts
  them back;
- SIGTERM removes the VIPs, the table and our IPVS services and puts the
  sysctl back;
- ``syn_proxy``: nftables' synproxy answers every client SYN with a cookie
  ahead of IPVS, and the 300 requests still all succeed.

One Python process in the guest drives it all; results come back as JSON.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import vmshare
from tests.test_fnat import strip_annotations

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parent.parent
SEED = Path("/work/shared/corpus/seed-configs/seed001-cluster")
LADDRS = {f"192.168.100.{i}" for i in range(1, 6)}
CLIENT = "10.77.0.2"
DIRECTOR_INNER = "192.168.1.254"
REQUESTS = 300


def seed_config() -> tuple[str, str]:
    """keepalived.conf and taobao.conf as the rig runs them (see the module docstring)."""
    if not SEED.is_dir():
        raise AssertionError(f"corpus missing: {SEED}")
    main = strip_annotations((SEED / "keepalived.conf").read_text())
    vs = strip_annotations((SEED / "taobao.conf").read_text())
    vs = re.sub(
        r'quorum_(up|down) " ip addr (add|del) 1.1.1.1/32 dev lo; ip addr \2 1.1.1.2/32 dev lo;"',
        r"""quorum_\1 "/bin/sh -c 'ip addr \2 1.1.1.1/32 dev lo; ip addr \2 1.1.1.2/32 dev lo'" """,
        vs,
    )
    assert "/bin/sh -c" in vs and "//" not in vs and "/*" not in vs
    return main, vs


def announce_variant(vs: str) -> str:
    """The same virtual server with pykeep's announce_on_lo instead of the quorum scripts.

    ``nb_get_retry`` becomes ``retry``, as ``-t`` advises: a reload refuses a
    file with errors and keeps the running configuration.
    """
    out = re.sub(r"\s*quorum_(up|down) .*", "", vs).replace("nb_get_retry", "retry")
    return out.replace("lb_kind FNAT", "lb_kind FNAT\n    announce_on_lo")


TOPOLOGY = """\
netns add pk-cl-c
netns add pk-cl-d
netns add pk-cl-sw
netns add pk-cl-r1
netns add pk-cl-r2
link add c0 netns pk-cl-c type veth peer name d0 netns pk-cl-d
link add d1 netns pk-cl-d type veth peer name sd netns pk-cl-sw
link add r0 netns pk-cl-r1 type veth peer name s1 netns pk-cl-sw
link add r0 netns pk-cl-r2 type veth peer name s2 netns pk-cl-sw
"""
PER_NS = {
    "pk-cl-c": ["link set lo up", "link set c0 up", "addr add 10.77.0.2/24 dev c0",
                "route add 1.1.1.0/24 via 10.77.0.1"],
    "pk-cl-d": ["link set lo up", "link set d0 up", "link set d1 up",
                "addr add 10.77.0.1/24 dev d0", "addr add 192.168.1.254/24 dev d1",
                *(f"addr add 192.168.100.{i}/24 dev d1" for i in range(1, 6))],
    "pk-cl-sw": ["link set lo up", "link add br0 type bridge", "link set br0 up",
                 *(f"link set {p} master br0" for p in ("sd", "s1", "s2")),
                 *(f"link set {p} up" for p in ("sd", "s1", "s2"))],
    "pk-cl-r1": ["link set lo up", "link set r0 up", "addr add 192.168.1.1/24 dev r0",
                 "route add 192.168.100.0/24 via 192.168.1.254"],
    "pk-cl-r2": ["link set lo up", "link set r0 up", "addr add 192.168.1.2/24 dev r0",
                 "route add 192.168.100.0/24 via 192.168.1.254"],
}  # fmt: skip

RS_SERVER = r"""
import http.server, sys
name, log = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as f:
            f.write(self.client_address[0] + "\n")
        body = name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 80), H).serve_forever()
"""

CLIENT_LOOP = r"""
import json, socket, sys, time
n, timeout = int(sys.argv[1]), float(sys.argv[2])
got = {}
for i in range(n):
    vip = ("1.1.1.1", "1.1.1.2")[i % 2]
    try:
        s = socket.create_connection((vip, 80), timeout=timeout)
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
        s.close()
        key = vip + " " + data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")
    except OSError as e:
        key = vip + " error " + type(e).__name__
    got[key] = got.get(key, 0) + 1
print(json.dumps(got))
"""

SCENARIO = r"""
import json, os, signal, subprocess, sys, time

RW = os.environ["PYKEEP_VM_RWDIR"]
J = json.load(open(os.path.join(RW, "inputs.json")))
out = {}

def save():
    with open(os.path.join(RW, "result.json"), "w") as f:
        json.dump(out, f, indent=1)

def sh(*argv, check=False, inp=None):
    r = subprocess.run(list(argv), capture_output=True, text=True, input=inp)
    if check and r.returncode:
        raise RuntimeError(f"{argv}: {r.stderr}")
    return r.stdout + r.stderr

def nsx(ns, *argv, **kw):
    return sh("ip", "netns", "exec", ns, *argv, **kw)

def lo_vips():
    got = sh("ip", "-n", "pk-cl-d", "-o", "-4", "addr", "show", "dev", "lo")
    return sorted(v for v in ("1.1.1.1", "1.1.1.2") if f" {v}/32 " in got)

def wait(pred, limit):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if pred():
            return round(time.monotonic() - t0, 1)
        time.sleep(0.5)
    return None

def rs_start(name):
    log = os.path.join(RW, f"{name}.log")
    return subprocess.Popen(["ip", "netns", "exec", f"pk-cl-{name}", "python3", "-c",
                             J["rs_server"], name, log])

def client(n, timeout):
    return json.loads(nsx("pk-cl-c", "python3", "-c", J["client"], str(n), str(timeout)) or "{}")

def sources():
    seen = {}
    for name in ("r1", "r2"):
        p = os.path.join(RW, f"{name}.log")
        for line in (open(p).read().split() if os.path.exists(p) else []):
            seen[line] = seen.get(line, 0) + 1
    return seen

for ns in ("pk-cl-c", "pk-cl-d", "pk-cl-sw", "pk-cl-r1", "pk-cl-r2"):
    sh("ip", "netns", "del", ns)
proc = None
servers = {}
try:
    sh("ip", "-batch", "-", inp=J["topology"], check=True)
    for ns, cmds in J["per_ns"].items():
        sh("ip", "-n", ns, "-batch", "-", inp="\n".join(cmds) + "\n", check=True)
    nsx("pk-cl-d", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    out["conntrack_before"] = nsx("pk-cl-d", "cat", "/proc/sys/net/ipv4/vs/conntrack").strip()
    out["rs_reach_client"] = nsx("pk-cl-r1", "ip", "route", "get", J["client_ip"]).strip()
    for name in ("r1", "r2"):
        servers[name] = rs_start(name)
    logf = open(os.path.join(RW, "pykeep.log"), "w")
    proc = subprocess.Popen(["ip", "netns", "exec", "pk-cl-d", *J["cmd"]],
                            stdout=logf, stderr=subprocess.STDOUT)
    out["vips_up_s"] = wait(lambda: lo_vips() == ["1.1.1.1", "1.1.1.2"], 300)
    out["vips_after_start"] = lo_vips()
    out["nft"] = nsx("pk-cl-d", "nft", "list", "table", "inet", "pykeep_fnat")
    out["conntrack_running"] = nsx("pk-cl-d", "cat", "/proc/sys/net/ipv4/vs/conntrack").strip()
    out["ipvs"] = nsx("pk-cl-d", "ipvsadm", "-Ln")
    save()
    for name in ("r1", "r2"):
        open(os.path.join(RW, f"{name}.log"), "w").close()  # only the client's requests count
    t0 = time.monotonic()
    out["client"] = client(J["requests"], 5)
    out["client_s"] = round(time.monotonic() - t0, 1)
    out["sources"] = sources()
    out["ipvs_stats"] = nsx("pk-cl-d", "ipvsadm", "-Ln", "--stats")
    save()

    # syn_proxy: pykeep's nftables synproxy answered every SYN above with a cookie
    out["synproxy_stat"] = nsx("pk-cl-d", "cat", "/proc/net/stat/synproxy")
    out["tcp_loose_running"] = nsx(
        "pk-cl-d", "cat", "/proc/sys/net/netfilter/nf_conntrack_tcp_loose").strip()
    save()

    # the manual's quorum scripts: every real server fails, then returns
    for name in ("r1", "r2"):
        servers.pop(name).kill()
    out["script_withdraw_s"] = wait(lambda: lo_vips() == [], 300)
    for name in ("r1", "r2"):
        servers[name] = rs_start(name)
    out["script_return_s"] = wait(lambda: lo_vips() == ["1.1.1.1", "1.1.1.2"], 300)
    save()

    # announce_on_lo instead of the scripts: SIGHUP, then every real server fails
    os.replace(os.path.join(RW, "taobao-announce.conf"), os.path.join(RW, "taobao.conf"))
    plog = os.path.join(RW, "pykeep.log")
    mark = os.path.getsize(plog)
    proc.send_signal(signal.SIGHUP)
    out["reload_s"] = wait(lambda: "reloaded" in open(plog).read()[mark:], 300)
    out["reload_log"] = open(plog).read()[mark:]
    out["vips_after_reload"] = lo_vips()
    t0 = time.monotonic()
    for name in ("r1", "r2"):
        servers.pop(name).kill()
    out["withdraw_s"] = wait(lambda: lo_vips() == [], 300)
    out["vips_after_loss"] = lo_vips()
    save()
    for name in ("r1", "r2"):
        servers[name] = rs_start(name)
    out["return_s"] = wait(lambda: lo_vips() == ["1.1.1.1", "1.1.1.2"], 300)
    out["return_client"] = client(20, 5)
    save()

    proc.send_signal(signal.SIGTERM)
    out["rc"] = proc.wait(timeout=120)
    out["reload_log"] = open(plog).read()[mark:]
    out["vips_after_term"] = lo_vips()
    out["nft_after_term"] = nsx("pk-cl-d", "nft", "list", "tables")
    out["conntrack_after_term"] = nsx("pk-cl-d", "cat", "/proc/sys/net/ipv4/vs/conntrack").strip()
    out["tcp_loose_after_term"] = nsx(
        "pk-cl-d", "cat", "/proc/sys/net/netfilter/nf_conntrack_tcp_loose").strip()
    out["ipvs_after_term"] = nsx("pk-cl-d", "ipvsadm", "-Ln")
finally:
    if proc is not None and proc.poll() is None:
        proc.kill()
    for p in servers.values():
        p.kill()
    for ns in ("pk-cl-c", "pk-cl-d", "pk-cl-sw", "pk-cl-r1", "pk-cl-r2"):
        sh("ip", "netns", "del", ns)
    out["log"] = open(os.path.join(RW, "pykeep.log")).read()[-20000:]
    save()
"""


def command(rw: Path) -> list[str]:
    return [
        str(REPO / ".venv" / "bin" / "pykeep"),
        *("-C", "-n", "-l", "-f", str(rw / "keepalived.conf")),
        *("-p", str(rw / "k.pid"), "-r", str(rw / "v.pid"), "-c", str(rw / "c.pid")),
        *("--control-socket", "/tmp/pykeep-cl-vm.sock"),
    ]


def _prepare(rw: Path) -> str:
    main, vs = seed_config()
    (rw / "keepalived.conf").write_text(main)
    (rw / "taobao.conf").write_text(vs)
    (rw / "taobao-announce.conf").write_text(announce_variant(vs))
    inputs = {
        "cmd": command(rw),
        "topology": TOPOLOGY,
        "per_ns": PER_NS,
        "rs_server": RS_SERVER,
        "client": CLIENT_LOOP,
        "requests": REQUESTS,
        "client_ip": CLIENT,
    }
    (rw / "inputs.json").write_text(json.dumps(inputs))
    (rw / "scenario.py").write_text(SCENARIO)
    return f"{sys.executable} {rw / 'scenario.py'}"


vmshare.register("fnat", _prepare, timeout=1200)


@pytest.fixture(scope="module")
def result(shared_vm: vmshare.SharedRun) -> dict[str, Any]:
    return shared_vm.json("fnat")


def _tail(r: dict[str, Any]) -> str:
    return str(r.get("log", ""))[-4000:]


def test_seed_config_spreads_through_fnat_and_servers_see_local_addresses(
    result: dict[str, Any],
) -> None:
    r = result
    # the real servers have no route to the client: only FULLNAT lets them answer
    assert "unreachable" in r["rs_reach_client"], r["rs_reach_client"]
    assert r["vips_after_start"] == ["1.1.1.1", "1.1.1.2"], _tail(r)  # the quorum_up script
    assert "snat ip to 192.168.100.1-192.168.100.5" in r["nft"], r["nft"]
    assert r["conntrack_running"] == "1"
    assert "FNAT realised as IPVS NAT" in r["log"]
    client = r["client"]
    assert sum(client.values()) == REQUESTS, client
    assert not [k for k in client if " error " in k], client
    for vip in ("1.1.1.1", "1.1.1.2"):
        for rs in ("r1", "r2"):
            assert client.get(f"{vip} {rs}", 0) >= REQUESTS // 8, client
    # every client request came from the local address group; the only other
    # source is the director's own HTTP_GET checker on its inner address
    seen = r["sources"]
    assert sum(n for a, n in seen.items() if a in LADDRS) == REQUESTS, seen
    assert set(seen) - LADDRS <= {DIRECTOR_INNER}, seen


def test_quorum_scripts_withdraw_and_return_the_vips(result: dict[str, Any]) -> None:
    """The manual's way: quorum_down / quorum_up (through /bin/sh -c) follow quorum."""
    r = result
    assert r["script_withdraw_s"] is not None, _tail(r)
    assert r["script_return_s"] is not None, _tail(r)


def test_announce_on_lo_withdraws_and_returns_with_quorum(result: dict[str, Any]) -> None:
    r = result
    assert r["reload_s"] is not None and "Reload failed" not in r["reload_log"], r["reload_log"]
    assert r["vips_after_reload"] == ["1.1.1.1", "1.1.1.2"], _tail(r)
    assert r["withdraw_s"] is not None and r["vips_after_loss"] == [], _tail(r)
    assert r["return_s"] is not None, _tail(r)
    ok = {k: v for k, v in r["return_client"].items() if " error " not in k}
    assert sum(ok.values()) == 20, r["return_client"]
    # done by pykeep itself, not by a script: the running file has none now
    log = r["reload_log"]
    for vip in ("1.1.1.1", "1.1.1.2"):
        assert f"announce_on_lo: removed {vip}/32 from lo" in log, _tail(r)
        assert f"announce_on_lo: added {vip}/32 on lo" in log, _tail(r)


def test_sigterm_removes_vips_table_and_services(result: dict[str, Any]) -> None:
    r = result
    assert r["rc"] == 0, _tail(r)
    assert r["vips_after_term"] == []
    assert "pykeep_fnat" not in r["nft_after_term"]
    assert r["conntrack_after_term"] == r["conntrack_before"]
    assert "1.1.1.1:80" not in r["ipvs_after_term"]


def test_syn_proxy_answers_every_syn_with_a_cookie(result: dict[str, Any]) -> None:
    """The seed's syn_proxy: nftables synproxy ahead of IPVS, on the 6.1 kernel."""
    r = result
    assert "synproxy mss 1460 wscale 7 timestamp sack-perm" in r["nft"], r["nft"]
    assert "syn_proxy realised as nftables synproxy" in r["log"]
    # /proc/net/stat/synproxy: one row a CPU, hex; columns as in its header
    rows = r["synproxy_stat"].split("\n")
    head = rows[0].split()
    total = {
        h: sum(int(x.split()[i], 16) for x in rows[1:] if x.strip()) for i, h in enumerate(head)
    }
    assert total["cookie_valid"] >= REQUESTS, r["synproxy_stat"]
    assert total["syn_received"] >= REQUESTS, r["synproxy_stat"]
    assert r["tcp_loose_running"] == "0"
    assert r["tcp_loose_after_term"] == "1"
