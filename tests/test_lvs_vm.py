"""The checker/IPVS service end to end on a real kernel (virtme-ng, a boot shared with others).

Inside the VM the service runs as the daemon runs it, against real servers
that are loopback listeners the scenario starts (TCP and HTTP, some up, some
never up).  After the checkers settle, ``ipvsadm -Sn`` must show exactly the
up servers, the inhibited one at weight 0 and the sorry server of the
virtual server that lost quorum.  Then: a listener stops (its server leaves
the table within delay_loop × (retry + 1) + connect_timeout, VM margin
added), comes back, SIGHUP with the same file changes nothing, SIGTERM
removes our entries and leaves a foreign service alone.

The process under test is ``pykeep -C``; ``pykeep ctl drain`` sets a
server's weight to 0 in the kernel, the drain survives SIGHUP, and undrain
restores it (issue 8).  The scenario is one Python process in the
guest (each spawn costs seconds there); results come back as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests import vmshare

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parent.parent

CHECK = "connect_timeout 1\n            retry 1\n            delay_before_retry 1"
CONF = f"""
global_defs {{
    router_id lvs_vm
}}
virtual_server 10.10.10.1 80 {{
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 127.0.0.1 8001 {{
        weight 1
        TCP_CHECK {{
            {CHECK}
        }}
    }}
    real_server 127.0.0.1 8002 {{
        weight 2
        TCP_CHECK {{
            {CHECK}
        }}
    }}
    real_server 127.0.0.1 8003 {{
        weight 3
        TCP_CHECK {{
            {CHECK}
        }}
    }}
    real_server 127.0.0.1 8004 {{
        weight 4
        HTTP_GET {{
            url {{
                path /
                status_code 200
            }}
            {CHECK}
        }}
    }}
}}
virtual_server 10.10.10.2 80 {{
    delay_loop 1
    lb_algo wlc
    lb_kind NAT
    protocol TCP
    inhibit_on_failure
    real_server 127.0.0.1 8001 {{
        weight 5
        TCP_CHECK {{
            {CHECK}
        }}
    }}
    real_server 127.0.0.1 8003 {{
        weight 6
        TCP_CHECK {{
            {CHECK}
        }}
    }}
}}
virtual_server 10.10.10.3 80 {{
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    quorum 3
    sorry_server 127.0.0.1 9000
    real_server 127.0.0.1 8001 {{
        weight 1
        TCP_CHECK {{
            {CHECK}
        }}
    }}
    real_server 127.0.0.1 8003 {{
        weight 2
        TCP_CHECK {{
            {CHECK}
        }}
    }}
}}
"""

#: delay_loop × (retry + 1) + connect_timeout, from CONF
DOWN_BOUND = 1 * (1 + 1) + 1
#: the guest runs about 20× slower than the host
VM_SLOWDOWN = 20

SETTLED = {
    "10.10.10.1:80": {"127.0.0.1:8001": 1, "127.0.0.1:8002": 2, "127.0.0.1:8004": 4},
    "10.10.10.2:80": {"127.0.0.1:8001": 5, "127.0.0.1:8003": 0},
    "10.10.10.3:80": {"127.0.0.1:9000": 1},
    "10.9.9.9:80": {},
}

SCENARIO = r"""
import http.server, json, os, re, signal, socket, subprocess, sys, threading, time

RW = os.environ["PYKEEP_VM_RWDIR"]
CMD = json.load(open(os.path.join(RW, "cmd.json")))
SETTLED = json.load(open(os.path.join(RW, "settled.json")))
out = {"cmd": CMD}

def save():
    return json.dump(out, open(os.path.join(RW, "result.json"), "w"), indent=1)

def table():
    text = subprocess.run(["ipvsadm", "-Sn"], capture_output=True, text=True).stdout
    t = {}
    for line in text.splitlines():
        m = re.match(r"-A -t (\S+)", line)
        if m:
            t.setdefault(m.group(1), {})
        m = re.match(r"-a -t (\S+) -r (\S+) .*-w (\d+)", line)
        if m:
            t.setdefault(m.group(1), {})[m.group(2)] = int(m.group(3))
    return t

def wait(pred, limit):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if pred(table()):
            return round(time.monotonic() - t0, 2)
        time.sleep(0.3)
    return None

class Listener:
    def __init__(self, port):
        self.port = port
        self.start()
    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        threading.Thread(target=self.loop, args=(self.sock,), daemon=True).start()
    def loop(self, sock):
        while True:
            try:
                c, _ = sock.accept()
                c.close()
            except OSError:
                return
    def stop(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

l1, l2 = Listener(8001), Listener(8002)
httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 8004), Ok)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
subprocess.run(["modprobe", "ip_vs"])
subprocess.run(["ipvsadm", "-A", "-t", "10.9.9.9:80", "-s", "rr"])
logf = open(os.path.join(RW, "lvs.log"), "w")
env = dict(os.environ, PYKEEP_STATE_DIR=RW)
t0 = time.monotonic()
proc = subprocess.Popen(CMD, stdout=logf, stderr=subprocess.STDOUT, env=env)
try:
    out["settle_s"] = wait(lambda t: t == SETTLED, 400)
    out["settled"] = table()
    save()
    l2.stop()
    gone = lambda t: "127.0.0.1:8002" not in t.get("10.10.10.1:80", {"127.0.0.1:8002": 0})
    out["down_s"] = wait(gone, 200)
    out["after_down"] = table()
    l2.start()
    out["up_s"] = wait(lambda t: t == SETTLED, 200)
    save()
    before = table()
    logf.flush()
    mark = os.path.getsize(os.path.join(RW, "lvs.log"))
    proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    for _ in range(120):
        if "reloaded" in open(os.path.join(RW, "lvs.log")).read()[mark:]:
            break
        time.sleep(0.5)
    time.sleep(5)  # a re-announced checker would act within this
    out["reload_same"] = table() == before
    out["after_reload"] = table()
    out["reload_log"] = open(os.path.join(RW, "lvs.log")).read()[mark:]
    save()
    # issue 8: a drain is weight 0 in the kernel, survives SIGHUP, and undrains
    ctl = [CMD[0], "ctl", "--socket", "/tmp/pykeep-lvs-vm.sock"]
    pair = ["10.10.10.1:80", "127.0.0.1:8001"]
    r = subprocess.run(ctl + ["drain", *pair], capture_output=True, text=True)
    out["drain_out"] = r.stdout + r.stderr
    out["drain_s"] = wait(lambda t: t.get("10.10.10.1:80", {}).get("127.0.0.1:8001") == 0, 100)
    proc.send_signal(signal.SIGHUP)
    time.sleep(8)
    out["drain_after_hup"] = table().get("10.10.10.1:80")
    r = subprocess.run(ctl + ["undrain", *pair], capture_output=True, text=True)
    out["undrain_s"] = wait(lambda t: t.get("10.10.10.1:80", {}).get("127.0.0.1:8001") == 1, 100)
    save()
    proc.send_signal(signal.SIGTERM)
    out["rc"] = proc.wait(timeout=200)
    out["after_term"] = table()
finally:
    if proc.poll() is None:
        proc.kill()
    out["log"] = open(os.path.join(RW, "lvs.log")).read()[-20000:]
    save()
"""


def command(rw: Path) -> list[str]:
    conf = str(rw / "lvs.conf")
    return [
        str(REPO / ".venv" / "bin" / "pykeep"),
        *("-C", "-n", "-l", "-f", conf),
        *("-p", str(rw / "k.pid"), "-r", str(rw / "v.pid"), "-c", str(rw / "c.pid")),
        # not in the rwdir: its 9p share refuses Unix sockets
        *("--control-socket", "/tmp/pykeep-lvs-vm.sock"),
    ]


def _prepare(rw: Path) -> str:
    (rw / "lvs.conf").write_text(CONF)
    (rw / "scenario.py").write_text(SCENARIO)
    (rw / "settled.json").write_text(json.dumps(SETTLED))
    (rw / "cmd.json").write_text(json.dumps(command(rw)))
    return f"python {rw / 'scenario.py'}"


vmshare.register("lvs", _prepare, timeout=900)


@pytest.fixture(scope="module")
def result(shared_vm: vmshare.SharedRun) -> dict[str, Any]:
    return shared_vm.json("lvs")


def _log_tail(r: dict[str, Any]) -> str:
    return str(r.get("log", ""))[-4000:]


def test_settles_to_the_up_servers_inhibited_and_sorry(result: dict[str, Any]) -> None:
    assert result["settle_s"] is not None, (result.get("settled"), _log_tail(result))
    assert result["settled"] == SETTLED
    log = result["log"]
    assert "TCP connection to [127.0.0.1]:tcp:8003 failed." in log
    assert "Adding sorry server" in log or "127.0.0.1:9000" in log


def test_stopped_listener_leaves_then_returns(result: dict[str, Any]) -> None:
    assert result["down_s"] is not None, (result.get("after_down"), _log_tail(result))
    assert result["down_s"] < DOWN_BOUND * VM_SLOWDOWN
    assert "127.0.0.1:8002" not in result["after_down"]["10.10.10.1:80"]
    assert result["up_s"] is not None, _log_tail(result)
    assert "Removing service [127.0.0.1]:tcp:8002 from VS [10.10.10.1]:tcp:80" in result["log"]


def test_sighup_with_same_config_changes_nothing(result: dict[str, Any]) -> None:
    assert result["reload_same"], (result["after_reload"], result["reload_log"])
    log = result["reload_log"]
    assert "restarted=0" in log, log
    for word in ("Adding service", "Removing service", "Disabling", "Enabling", "Changing"):
        assert word not in log, log


def test_sigterm_removes_ours_and_keeps_foreign(result: dict[str, Any]) -> None:
    assert result["rc"] == 0, _log_tail(result)
    assert result["after_term"] == {"10.9.9.9:80": {}}


def test_drain_is_weight_zero_survives_sighup_and_undrains(result: dict[str, Any]) -> None:
    assert result["drain_s"] is not None, (result.get("drain_out"), _log_tail(result))
    assert result["drain_after_hup"]["127.0.0.1:8001"] == 0, result["drain_after_hup"]
    assert result["undrain_s"] is not None, _log_tail(result)
