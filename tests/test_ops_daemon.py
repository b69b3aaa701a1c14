"""The operations layer wired into the running daemon (issue 8), end to end in namespaces.

Two pykeep directors share a LAN with a client.  Against the live pair the
test drives every dump signal (parsing each file and checking it against
what the client sees), every ``pykeep ctl`` command, a ``/metrics`` scrape
parsed with prometheus-client, and the sd_notify datagrams, received on a
socket the test listens on as systemd would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pykeep.ops import dumps
from sim.netns import Rig
from tests.netns_vrrp import PY, ROOT, lan, until, vrrp_conf, wait_owner, workdir

pytestmark = pytest.mark.netns

VIP = "10.99.0.200"
VIP2 = "10.99.0.201"
METRICS = "127.0.0.1:9650"
Make = Callable[..., Rig]


class Director:
    """One pykeep with its own control socket, dump dir, state dir and notify socket."""

    def __init__(self, rig: Rig, node: str, addr: str, priority: int, wd: Path) -> None:
        self.rig, self.node, self.addr, self.priority = rig, node, addr, priority
        self.dir = wd / node
        self.dir.mkdir()
        self.tmp = self.dir / "tmp"
        self.tmp.mkdir()
        self.conf = self.dir / "keepalived.conf"
        self.sock = self.dir / "control.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.dir / "notify"))
        self.notify.settimeout(10)
        self.write_conf((VIP,))
        self.proc: subprocess.Popen[str] | None = None

    def write_conf(self, vips: tuple[str, ...], extra: str = "") -> None:
        self.conf.write_text(
            vrrp_conf(
                priority=self.priority,
                version=3,
                advert_int=0.5,
                vips=tuple(f"{v}/32" for v in vips),
                extra=extra,
            )
        )

    def start(self) -> None:
        argv = [PY, "-m", "pykeep", "-P", "-n", "-l", "-f", str(self.conf)]
        argv += ["-p", str(self.dir / "pid"), "-r", str(self.dir / "vpid")]
        argv += ["--control-socket", str(self.sock), "--metrics-listen", METRICS]
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            TMPDIR=str(self.tmp),
            PYKEEP_STATE_DIR=str(self.dir / "state"),
            NOTIFY_SOCKET=str(self.dir / "notify"),
        )
        env.pop("PYKEEP_STATS_FILE", None)
        log = open(self.dir / "log", "w")  # noqa: SIM115 - handed to the child
        self.proc = self.rig.popen(
            self.node, argv, stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
        )
        log.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.rig.kill(self.proc)
        self.notify.close()

    # ---- sd_notify
    def notified(self) -> dict[str, str]:
        data = self.notify.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines())

    # ---- ctl
    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [PY, "-m", "pykeep", "ctl", "--socket", str(self.sock), *args]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=15)

    def status(self) -> dict[str, Any]:
        got = self.ctl("status", "--json")
        assert got.returncode == 0, got.stderr
        inst: dict[str, Any] = json.loads(got.stdout)["vrrp_instances"][0]
        return inst

    # ---- dumps
    def dump(self, name: str, filename: str) -> str:
        path = self.tmp / filename
        path.unlink(missing_ok=True)
        assert self.proc is not None
        os.kill(self.proc.pid, dumps.signum(name))
        until(path.exists, 5)
        return path.read_text()

    def json_dump(self) -> dict[str, Any]:
        items: list[dict[str, Any]] = json.loads(self.dump("JSON", "keepalived.json"))
        assert len(items) == 1
        return items[0]

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        code = f"import urllib.request;print(urllib.request.urlopen('http://{METRICS}/metrics').read().decode())"
        text = self.rig.run(self.node, [PY, "-c", code]).stdout
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
        }


def _stats(text: str) -> dict[str, int]:
    """keepalived.stats → {"Received": n, "Sent": n, ...} for the first Advertisements block."""
    m = re.search(r"Advertisements:\n\s+Received: (\d+)\n\s+Sent: (\d+)", text)
    assert m, text
    b = re.search(r"Became master: (\d+)", text)
    assert b, text
    return {"Received": int(m[1]), "Sent": int(m[2]), "Became master": int(b[1])}


def test_ops_on_live_pair(rig: Make) -> None:
    r = rig(hint="ops")
    lan(r, {"a": "10.99.0.11/24", "b": "10.99.0.12/24"})
    with workdir() as wd:
        a = Director(r, "a", "10.99.0.11", 150, wd)
        b = Director(r, "b", "10.99.0.12", 100, wd)
        try:
            for d in (a, b):
                d.start()
            for d in (a, b):
                ready = d.notified()
                assert ready["READY"] == "1" and "VI_1" in ready["STATUS"]
            wait_owner(r, "client", VIP, r.mac("a"), 6)
            until(lambda: b.status()["state"] == "BACKUP" and b.status()["master_priority"], 3)

            # ---- ctl status, both forms
            sa, sb = a.status(), b.status()
            assert (sa["state"], sa["effective_priority"], sa["vips"]) == (
                "MASTER",
                150,
                [f"{VIP}/32 dev eth0 scope global set"],
            )
            assert sa["last_transition"]["to_state"] == "MASTER"
            assert sa["transitions"] >= 2  # INIT -> BACKUP -> MASTER
            assert (sb["state"], sb["master_router"], sb["master_priority"]) == (
                "BACKUP",
                "10.99.0.11",
                150,
            )
            text = a.ctl("status").stdout
            assert "VI_1: MASTER vrid 51 on eth0, priority 150" in text, text

            # ---- SIGUSR1: keepalived.data
            data = a.dump("DATA", "keepalived.data")
            assert " VRRP Instance = VI_1" in data and "   State = MASTER" in data, data
            assert f"{VIP}/32" in data
            bdata = b.dump("DATA", "keepalived.data")
            assert "   State = BACKUP" in bdata and "   Master router = 10.99.0.11" in bdata

            # ---- JSON signal: keepalived.json, counters moving
            j1 = a.json_dump()
            assert j1["data"]["iname"] == "VI_1" and j1["data"]["state"] == 2
            assert j1["data"]["effective_priority"] == 150
            assert f"{VIP}/32" in " ".join(j1["data"]["vips"])
            assert j1["stats"]["become_master"] == 1
            jb = b.json_dump()
            assert jb["data"]["state"] == 1 and jb["stats"]["advert_rcvd"] > 0
            time.sleep(1.1)
            j2 = a.json_dump()
            assert j2["stats"]["advert_sent"] >= j1["stats"]["advert_sent"] + 2

            # ---- SIGUSR2: keepalived.stats; STATS_CLEAR writes then zeroes
            st = _stats(a.dump("STATS", "keepalived.stats"))
            assert st["Sent"] >= j2["stats"]["advert_sent"] and st["Became master"] == 1
            cleared = _stats(a.dump("STATS_CLEAR", "keepalived.stats"))
            assert cleared["Sent"] >= st["Sent"]
            j3 = a.json_dump()
            assert j3["stats"]["advert_sent"] < cleared["Sent"]
            assert j3["stats"]["become_master"] == 0

            # ---- /metrics, parsed by prometheus-client
            lab = frozenset({("iname", "VI_1"), ("intf", "eth0"), ("vrid", "51")})
            vip_lab = lab | {("ip_address", VIP)}
            ma, mb = a.metrics(), b.metrics()
            assert ma[("keepalived_vrrp_state", vip_lab)] == 2
            assert mb[("keepalived_vrrp_state", vip_lab)] == 1
            assert ma[("pykeep_vrrp_effective_priority", lab)] == 150
            assert mb[("pykeep_vrrp_priority", lab)] == 100
            assert mb[("keepalived_advertisements_received_total", lab)] > 0
            assert ma[("keepalived_advertisements_sent_total", lab)] >= j3["stats"]["advert_sent"]

            # ---- drain/undrain: a clear refusal without virtual servers
            for cmd in ("drain", "undrain"):
                got = a.ctl(cmd, f"{VIP}:80", "10.99.0.21:80")
                assert got.returncode == 1
                assert "no virtual servers" in got.stderr, got.stderr

            # ---- failover: the client sees b take the VIP, then a take it back
            got = a.ctl("failover", "VI_1")
            assert got.returncode == 0 and "held at 1" in got.stdout, got.stderr
            wait_owner(r, "client", VIP, r.mac("b"), 6)
            until(lambda: a.status()["state"] == "BACKUP", 3)
            sa = a.status()
            assert sa["failover_active"] and sa["effective_priority"] == 1
            assert sa["master_router"] == "10.99.0.12"
            assert "[failover]" in a.ctl("status").stdout
            assert b.status()["state"] == "MASTER"
            assert a.metrics()[("keepalived_vrrp_state", vip_lab)] == 1
            got = a.ctl("failover", "VI_1")
            assert got.returncode == 0 and "restored to 150" in got.stdout
            wait_owner(r, "client", VIP, r.mac("a"), 6)
            assert not a.status()["failover_active"]
            bad = a.ctl("failover", "VI_9")
            assert bad.returncode == 1 and "no VRRP instance VI_9" in bad.stderr

            # ---- reload by ctl: a second VIP appears; RELOADING then READY
            a.write_conf((VIP, VIP2))
            got = a.ctl("reload")
            assert got.returncode == 0 and "reloaded" in got.stdout, got.stderr
            assert a.notified()["RELOADING"] == "1"
            assert a.notified()["READY"] == "1"
            wait_owner(r, "client", VIP2, r.mac("a"), 3)
            # a broken config is refused and the running one kept
            a.conf.write_text(a.conf.read_text() + "vrrp_instance {\n")
            got = a.ctl("reload")
            assert got.returncode == 1 and "reload" in got.stderr, got.stderr
            assert a.notified()["RELOADING"] == "1" and a.notified()["READY"] == "1"
            assert a.status()["state"] == "MASTER"

            # ---- SIGHUP: the same path
            a.write_conf((VIP,))
            assert a.proc is not None
            os.kill(a.proc.pid, signal.SIGHUP)
            assert a.notified()["RELOADING"] == "1" and a.notified()["READY"] == "1"
            until(lambda: VIP2 not in r.ip("a", "addr", "show", "dev", "eth0"), 3)
            assert len(a.json_dump()["data"]["vips"]) == 1

            # ---- SIGTERM: STOPPING, clean exit, socket gone, b takes over
            os.kill(a.proc.pid, signal.SIGTERM)
            assert a.notified()["STOPPING"] == "1"
            assert a.proc.wait(10) == 0
            assert not a.sock.exists()
            wait_owner(r, "client", VIP, r.mac("b"), 4)
            for d in (a, b):
                log = (d.dir / "log").read_text()
                assert "Traceback" not in log, log
        finally:
            a.close()
            b.close()
