"""The chaos suite's two VM rows: real-server chaos and scale, on a real IPVS kernel.

Why a VM: this host's kernel has no IP_VS, and both rows are about the IPVS
table.  One guest driver (``python -m sim.chaos_vm guest SPEC OUT``) runs each
scenario for each daemon in turn on one rig, with the standard library only
(a guest Python importing pyroute2 costs minutes under emulation):

- the director is the guest's own namespace; a veth ``cvc0`` leads to the
  client namespace ``pk-cv-c`` (the VIP's segment, where the VRRP instances
  live), a veth ``cvr0`` to the real servers' namespace ``pk-cv-r`` (NAT);
- real servers are one stdlib process in ``pk-cv-r`` (:data:`RS_CODE`) told
  on stdin which addresses listen; a crash closes that listener, so the
  kernel answers RST as for a dead server process;
- for scale, ``10.62.128.0/18`` is made local in ``pk-cv-r``
  (``ip route add local … dev lo``) and one socket on ``0.0.0.0:80`` answers
  every real server: 10,000 servers without 10,000 processes;
- the IPVS table is read from ``/proc/net/ip_vs`` (no process spawn per
  sample), VIPs from ``ip -o addr``.

**Real-server chaos.** A client (:data:`CLIENT_CODE`) requests the VIP
every 50 ms.  Two NAT services: port 80, its servers ``inhibit_on_failure``
with weights 1-3; port 81, ``quorum 3`` of four weight-1 servers with a sorry
server and ``quorum_up``/``quorum_down`` scripts.  Seeded random crashes and
restarts of port-80 servers, then two port-81 servers crash (quorum lost:
sorry server in, ``quorum_down`` run) and one returns (quorum back: sorry
server out, ``quorum_up`` run).  The checker bound, from keepalived's
TCP_CHECK (check_tcp.c ``tcp_connect_thread`` / ``tcp_epilog``): the check
after a crash comes at most ``delay_loop`` later; it and each of the
``retry`` further attempts, ``delay_before_retry`` apart, each take at most
``connect_timeout``; the server is taken out after ``retry + 1`` failures in
a row.  So a crashed server leaves rotation within ``delay_loop +
retry × delay_before_retry + (retry + 1) × connect_timeout``
(:func:`checker_bound`); a lost request later than that after a crash (plus
a margin for emulation) is a defect.  At the end the table must equal what
health says (:func:`expected_table`).

**Scale.** ``instances`` VRRP instances with a VIP each and ``servers`` real
servers in ten virtual servers, TCP_CHECK with a large ``delay_loop``: time
from exec until every IPVS entry and VIP is present; ``kill -9`` of every
daemon process, restart, until the table is identical again; SIGHUP, with
the table sampled throughout: identical after, and no entry ever missing;
RSS and CPU time of the daemon's processes.

Both rows: after SIGTERM, the guest kernel must hold no VIP and no IPVS
entry (keepalived and pykeep remove what they added on a clean stop).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.chaos_measure import Row
from sim.proc_ipvs import proc_entries

PROJECT = Path(__file__).resolve().parent.parent
NS_C, NS_R = "pk-cv-c", "pk-cv-r"
VIP = "10.61.0.100"
DIRECTOR_C, CLIENT = "10.61.0.1", "10.61.0.2"
DIRECTOR_R = "10.62.0.1"
SORRY = "10.62.9.9"
SCALE_NET = "10.62.128.0/18"
VS_PORT, QUORUM_PORT = 80, 81
SCALE_VS = 10  # virtual servers sharing the scale row's real servers
MARGIN = 10.0
"""Seconds of slack on top of the checker bound, for an emulated guest on a shared host:
measured, a crashed server left rotation after 3.4 s (both daemons, host load ~5) and
after 9.3 s (pykeep, load ~10 on 2 cores with three guests running); the checker's
timers and the daemon run late together when the guest is starved."""


@dataclass(frozen=True)
class Size:
    """How big each row is; the issue's sizes in :data:`FULL`."""

    crashes: int
    instances: int
    servers: int
    scale_delay_loop: int
    advert_int: int


FULL = Size(crashes=8, instances=200, servers=10_000, scale_delay_loop=600, advert_int=5)
SMALL = Size(crashes=3, instances=20, servers=300, scale_delay_loop=600, advert_int=5)

# The real-server chaos row's checker (set explicitly: no defaults to argue over).
DELAY_LOOP, CONNECT_TIMEOUT, RETRY, DELAY_BEFORE_RETRY = 2, 1, 1, 1
INHIBIT_WEIGHTS = (1, 2, 3, 2)
QUORUM = 3
QUORUM_SCRIPTS = ["down", "up", "up"]
"""keepalived runs ``quorum_up`` once at start when quorum holds (ipwrapper.c
``do_vs_notifies`` with ``init``), then one script per change.  Compared sorted:
the scripts run detached, so two changes a fraction of a second apart may
finish writing in either order (seen with keepalived: up, up, down)."""


def checker_bound() -> float:
    """Seconds from a crash until keepalived's TCP_CHECK takes the server out (module doc)."""
    return DELAY_LOOP + RETRY * DELAY_BEFORE_RETRY + (RETRY + 1) * CONNECT_TIMEOUT


def inhibit_servers() -> list[str]:
    return [f"10.62.1.{i + 1}" for i in range(len(INHIBIT_WEIGHTS))]


def quorum_servers() -> list[str]:
    return [f"10.62.2.{i + 1}" for i in range(4)]


def scale_servers(n: int) -> list[str]:
    """``n`` addresses of :data:`SCALE_NET`, hosts .1-.250 of each /24 (no .0/.255)."""
    base = int(ipaddress.ip_network(SCALE_NET).network_address)
    return [str(ipaddress.ip_address(base + (i // 250) * 256 + i % 250 + 1)) for i in range(n)]


# --------------------------------------------------------------------------- configs


def _checker(delay_loop: int, connect_timeout: int) -> str:
    return (
        f"        TCP_CHECK {{\n            connect_timeout {connect_timeout}\n"
        f"            retry {RETRY}\n            delay_before_retry {DELAY_BEFORE_RETRY}\n"
        f"        }}\n"
    )


def rs_chaos_conf(workdir: Path) -> str:
    """One VRRP instance holding the VIP; the inhibit and quorum services behind it."""
    log = workdir / "quorum.log"
    vs80 = "".join(
        f"    real_server {ip} {VS_PORT} {{\n        weight {w}\n        inhibit_on_failure\n"
        + _checker(DELAY_LOOP, CONNECT_TIMEOUT)
        + "    }\n"
        for ip, w in zip(inhibit_servers(), INHIBIT_WEIGHTS, strict=True)
    )
    vs81 = "".join(
        f"    real_server {ip} {QUORUM_PORT} {{\n        weight 1\n"
        + _checker(DELAY_LOOP, CONNECT_TIMEOUT)
        + "    }\n"
        for ip in quorum_servers()
    )
    return f"""global_defs {{
    router_id cv
    script_user root
    enable_script_security
}}
vrrp_instance VI_1 {{
    state MASTER
    interface cvc0
    virtual_router_id 61
    priority 150
    advert_int 1
    virtual_ipaddress {{
        {VIP}/24
    }}
}}
virtual_server {VIP} {VS_PORT} {{
    delay_loop {DELAY_LOOP}
    lb_algo wrr
    lb_kind NAT
    protocol TCP
{vs80}}}
virtual_server {VIP} {QUORUM_PORT} {{
    delay_loop {DELAY_LOOP}
    lb_algo rr
    lb_kind NAT
    protocol TCP
    quorum {QUORUM}
    hysteresis 0
    quorum_up "/bin/sh -c 'echo up >> {log}'"
    quorum_down "/bin/sh -c 'echo down >> {log}'"
    sorry_server {SORRY} {QUORUM_PORT}
{vs81}}}
"""


def scale_conf(size: Size) -> str:
    """``instances`` VRRP instances and ``servers`` real servers over ten services."""
    parts = ["global_defs {\n    router_id cvscale\n}\n"]
    for i in range(size.instances):
        vip = f"10.63.{i // 250}.{i % 250 + 1}"
        parts.append(
            f"vrrp_instance S{i} {{\n    state MASTER\n    interface cvc0\n"
            f"    virtual_router_id {i % 255 + 1}\n    priority 100\n"
            f"    advert_int {size.advert_int}\n"
            f"    virtual_ipaddress {{\n        {vip}/32\n    }}\n}}\n"
        )
    servers = scale_servers(size.servers)
    per = -(-len(servers) // SCALE_VS)
    for v in range(SCALE_VS):
        chunk = servers[v * per : (v + 1) * per]
        parts.append(
            f"virtual_server {VIP} {1000 + v} {{\n    delay_loop {size.scale_delay_loop}\n"
            "    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n"
        )
        parts += [
            f"    real_server {ip} 80 {{\n        weight {1 + j % 5}\n"
            "        TCP_CHECK {\n            connect_timeout 10\n        }\n    }\n"
            for j, ip in enumerate(chunk)
        ]
        parts.append("}\n")
    return "".join(parts)


# --------------------------------------------------------------------------- the table


Entry = tuple[str, str, int]
"""(service "ADDR:PORT", real server "ADDR:PORT" or "" for the service line, weight)."""


def parse_ip_vs(text: str) -> list[Entry]:
    """``/proc/net/ip_vs`` as sorted entries (a service's line has no server, weight 0)."""
    out: list[Entry] = []
    for key, value in proc_entries(text).items():
        service, _, server = key.partition(" -> ")
        proto, spec = service.split(" ", 1)
        name = f"fwm{spec}" if proto == "FWM" else spec
        out.append((name, server, int(value) if server else 0))
    return sorted(out)


def read_table() -> list[Entry]:
    try:
        return parse_ip_vs(Path("/proc/net/ip_vs").read_text())
    except OSError:
        return []


def expected_table(alive: dict[str, bool]) -> list[Entry]:
    """The real-server chaos row's table when health is ``alive`` (address → up).

    Port 80: every server, its weight when up and 0 when down (``inhibit_on_failure``).
    Port 81: the live servers while at least :data:`QUORUM` are up; below that the
    sorry server alone (keepalived ipwrapper.c ``update_quorum_state``: on quorum
    loss the sorry server is added and the remaining real servers removed).
    """
    s80, s81 = f"{VIP}:{VS_PORT}", f"{VIP}:{QUORUM_PORT}"
    out: list[Entry] = [(s80, "", 0), (s81, "", 0)]
    for ip, w in zip(inhibit_servers(), INHIBIT_WEIGHTS, strict=True):
        out.append((s80, f"{ip}:{VS_PORT}", w if alive[ip] else 0))
    up = [ip for ip in quorum_servers() if alive[ip]]
    if len(up) >= QUORUM:
        out += [(s81, f"{ip}:{QUORUM_PORT}", 1) for ip in up]
    else:
        out.append((s81, f"{SORRY}:{QUORUM_PORT}", 1))
    return sorted(out)


# --------------------------------------------------------------------------- guest helpers

RS_CODE = r"""
import socket, sys, threading
PORTS = [int(p) for p in sys.argv[1].split(",")]
socks = {}

def serve(c, name):
    try:
        c.settimeout(2)
        c.recv(1024)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s\n" % (len(name) + 1, name))
    except OSError:
        pass
    finally:
        c.close()

def loop(s, name):
    while True:
        try:
            c, _ = s.accept()
        except OSError:
            return
        threading.Thread(target=serve, args=(c, name), daemon=True).start()

def listen(ip, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(4096)
    socks[(ip, port)] = s
    threading.Thread(target=loop, args=(s, ip.encode()), daemon=True).start()

for line in sys.stdin:
    cmd, ip = line.split()
    for port in PORTS:
        if cmd == "up" and (ip, port) not in socks:
            listen(ip, port)
        elif cmd == "down" and (ip, port) in socks:
            s = socks.pop((ip, port))
            s.shutdown(socket.SHUT_RDWR)
            s.close()
    print("ok", flush=True)
"""

CLIENT_CODE = r"""
import socket, sys, time
vip, port, period = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
while True:
    t = time.time()
    ok = ""
    try:
        # A crashed server answers RST at once; the timeout only has to outlast
        # a starved guest, or a slow answer would count as a lost request.
        s = socket.create_connection((vip, port), timeout=5.0)
        s.settimeout(5.0)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
        s.close()
        if data.startswith(b"HTTP/1.0 200"):
            ok = data.rsplit(b"\n", 2)[-2].decode()
    except OSError:
        pass
    print(f"{t:.3f} {ok or '-'}", flush=True)
    time.sleep(max(0.0, period - (time.time() - t)))
"""


def sh(*argv: str, check: bool = True) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r.stdout


class RealServers:
    """The stdlib real-server process in ``pk-cv-r``, told which addresses listen."""

    def __init__(self, ports: Sequence[int]) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", NS_R, sys.executable, "-c", RS_CODE, ",".join(map(str, ports))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def set(self, ip: str, up: bool) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{'up' if up else 'down'} {ip}\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Client:
    """The request loop through the VIP, from ``pk-cv-c``: (time, server or "") per request."""

    def __init__(self, port: int, period: float = 0.05) -> None:
        self.results: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(
            [
                *("ip", "netns", "exec", NS_C, sys.executable, "-c", CLIENT_CODE),
                *(VIP, str(port), str(period)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            t, who = line.split()
            self.results.append((float(t), "" if who == "-" else who))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._t.join(timeout=5)


def setup_net(scale: bool) -> None:
    """The director's two veths, the client and real-server namespaces."""
    teardown_net()
    for ns in (NS_C, NS_R):
        sh("ip", "netns", "add", ns)
    batches: dict[str, list[str]] = {
        "": [
            f"link add cvc0 type veth peer name eth0 netns {NS_C}",
            f"link add cvr0 type veth peer name eth0 netns {NS_R}",
            f"addr add {DIRECTOR_C}/24 dev cvc0",
            f"addr add {DIRECTOR_R}/16 dev cvr0",
            "link set cvc0 up",
            "link set cvr0 up",
        ],
        NS_C: [f"addr add {CLIENT}/24 dev eth0", "link set eth0 up", "link set lo up"],
        NS_R: [
            "link set eth0 up",
            "link set lo up",
            "addr add 10.62.0.2/16 dev eth0",
            f"route add default via {DIRECTOR_R}",
            *(
                f"addr add {ip}/32 dev eth0"
                for ip in [*inhibit_servers(), *quorum_servers(), SORRY]
            ),
            *([f"route add local {SCALE_NET} dev lo"] if scale else []),
        ],
    }
    for ns, batch in batches.items():
        argv = ["ip", *(["-n", ns] if ns else []), "-batch", "-"]
        subprocess.run(argv, input="\n".join(batch) + "\n", text=True, check=True)
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
    # A SYN from the client reaches a real server of the scale net by the director.
    sh("ip", "route", "replace", SCALE_NET, "via", "10.62.0.2", "dev", "cvr0")


def teardown_net() -> None:
    for ns in (NS_C, NS_R):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "link", "del", "cvc0"], capture_output=True)
    subprocess.run(["ip", "link", "del", "cvr0"], capture_output=True)


def vips_on_director() -> list[str]:
    """Addresses on cvc0 other than the director's own: VIPs (left behind, if any)."""
    out = sh("ip", "-o", "-4", "addr", "show", "dev", "cvc0", check=False)
    addrs = [f.split()[3] for f in out.splitlines() if len(f.split()) > 3]
    return [a for a in addrs if a.split("/")[0] != DIRECTOR_C]


# --------------------------------------------------------------------------- daemons


def command(kind: str, conf: Path, wd: Path) -> list[str]:
    """keepalived or pykeep, foreground, logging to the console, pid files in ``wd``."""
    pids = ["-p", str(wd / f"{kind}.pid"), "-r", str(wd / f"{kind}-v.pid")]
    pids += ["-c", str(wd / f"{kind}-c.pid")]
    if kind == "keepalived":
        return ["/usr/sbin/keepalived", "-n", "-l", "-f", str(conf), *pids]
    exe = PROJECT / ".venv" / "bin" / "pykeep"
    return [str(exe), "-n", "-l", "-f", str(conf), *pids, "--control-socket", "/run/pykeep-cv.sock"]


def _raise_nofile() -> None:
    # A service manager gives a director far more than 1024 descriptors; the
    # scale row's first round opens one socket per real server at once.
    resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))


def _children(root: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int(Path(f"/proc/{e}/stat").read_text().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(e))
    out: list[int] = []
    todo = [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def usage(pids: Sequence[int]) -> tuple[float, float]:
    """(RSS MiB, CPU seconds) summed over ``pids``."""
    rss = cpu = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) / 1024
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(f[11]) + int(f[12])) / tick
    return round(rss, 1), round(cpu, 2)


class Daemon:
    def __init__(self, kind: str, conf: Path, wd: Path, tag: str) -> None:
        self.kind, self.conf, self.wd, self.tag = kind, conf, wd, tag
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.crashes: list[str] = []

    @property
    def log(self) -> Path:
        return self.wd / f"{self.tag}-{self.kind}-{self.starts}.log"

    def start(self) -> float:
        self.starts += 1
        with self.log.open("wb") as logf:
            self.proc = subprocess.Popen(
                command(self.kind, self.conf, self.wd),
                stdout=logf,
                stderr=subprocess.STDOUT,
                preexec_fn=_raise_nofile,
            )
        return time.time()

    def masters(self) -> int:
        """ "Entering MASTER STATE" lines in this start's log: the instances it now holds."""
        try:
            return self.log.read_text(errors="replace").count("Entering MASTER STATE")
        except OSError:
            return 0

    def started(self) -> bool:
        """The start-up's last log line is out (:data:`STARTED`)."""
        try:
            return STARTED[self.kind] in self.log.read_text(errors="replace")
        except OSError:
            return False

    def pids(self) -> list[int]:
        return _children(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.crashes.append(f"{self.kind} exited {self.proc.returncode}")
                self.proc = None
            return False
        return True

    def kill9(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait()
        self.proc = None

    def hup(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """SIGTERM and wait; a non-zero exit or a traceback in a log is a crash."""
        if self.proc is not None:
            if self.proc.poll() is not None:
                self.crashes.append(f"{self.kind} exited {self.proc.returncode} before SIGTERM")
            else:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(timeout=300)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    rc = self.proc.wait()
                    self.crashes.append(f"{self.kind} did not stop on SIGTERM")
                if rc not in (0, -signal.SIGTERM):
                    self.crashes.append(f"{self.kind} exited {rc} on SIGTERM")
            self.proc = None
        for log in self.wd.glob(f"{self.tag}-{self.kind}-*.log"):
            if "Traceback" in log.read_text(errors="replace"):
                self.crashes.append(f"traceback in {log.name}")


def wait(pred: Any, limit: float, step: float = 0.2) -> float | None:
    t0 = time.time()
    while time.time() - t0 < limit:
        if pred():
            return round(time.time() - t0, 2)
        time.sleep(step)
    return None


def leftovers() -> list[str]:
    """VIPs and IPVS entries still in the guest kernel after the daemon stopped."""
    left = [f"VIP {a}" for a in vips_on_director()]
    table = read_table()
    if table:
        left.append(f"{len(table)} IPVS entries")
    if table or left:
        subprocess.run(["ipvsadm", "-C"], capture_output=True)
        for a in vips_on_director():
            subprocess.run(["ip", "addr", "del", a, "dev", "cvc0"], capture_output=True)
    return left


# --------------------------------------------------------------------------- scenarios

STARTED = {"pykeep": "control.listening", "keepalived": "Entering MASTER STATE"}
"""The log line after which each daemon has finished starting (pykeep opens its control
socket last; keepalived's start-up is over long before its instances become master)."""
RELOADED = {"pykeep": "lvs reloaded", "keepalived": "Reload complete"}
"""The log line each daemon writes when a SIGHUP's new configuration is in force."""
SETTLE = 10.0
START_LIMIT = 900.0
"""A pykeep start under emulation takes minutes (module doc of sim.vm)."""


def rs_chaos(kind: str, size: Size, wd: Path, seed: int = 13) -> dict[str, Any]:
    conf = wd / f"rs-{kind}.conf"
    conf.write_text(rs_chaos_conf(wd))
    (wd / "quorum.log").unlink(missing_ok=True)
    rng = random.Random(seed)
    res: dict[str, Any] = {"scenario": "rs_chaos", "daemon": kind, "bound_s": checker_bound()}
    alive = dict.fromkeys([*inhibit_servers(), *quorum_servers()], True)
    rs = RealServers([VS_PORT, QUORUM_PORT])
    for ip in [*alive, SORRY]:
        rs.set(ip, True)
    d = Daemon(kind, conf, wd, "rs")
    client: Client | None = None
    crashes_at: list[float] = []
    out_of_rotation: list[float] = []
    failures: list[str] = []
    t0 = d.start()
    try:

        def healthy() -> bool:
            return read_table() == expected_table(alive) and f"{VIP}/24" in vips_on_director()

        up = wait(healthy, START_LIMIT, 0.5)
        res["start_s"] = up
        if up is None:
            failures.append(f"never reached the healthy table: {read_table()}")
            return res
        client = Client(VS_PORT)
        time.sleep(3)
        t_start = time.time()
        for _ in range(size.crashes):
            live = [ip for ip in inhibit_servers() if alive[ip]]
            ip = rng.choice(live)
            rs.set(ip, False)
            alive[ip] = False
            t = time.time()
            crashes_at.append(t)
            s = wait(lambda: read_table() == expected_table(alive), checker_bound() + 30, 0.1)
            out_of_rotation.append(s if s is not None else float("inf"))
            time.sleep(rng.uniform(0.5, 2.0))
            if rng.random() < 0.8 or len(live) <= 2:
                rs.set(ip, True)
                alive[ip] = True
                if wait(lambda: read_table() == expected_table(alive), 60, 0.2) is None:
                    failures.append(f"{ip} back up but not restored: {read_table()}")
        # Quorum: two of four down loses it (3 needed), one back regains it.
        q = quorum_servers()
        for ip in q[:2]:
            rs.set(ip, False)
            alive[ip] = False
        res["quorum_down_s"] = wait(lambda: read_table() == expected_table(alive), 60, 0.2)
        res["quorum_down_table"] = read_table() == expected_table(alive)
        rs.set(q[0], True)
        alive[q[0]] = True
        res["quorum_up_s"] = wait(lambda: read_table() == expected_table(alive), 60, 0.2)
        time.sleep(DELAY_LOOP * 2 + 1)  # a late change would show
        final = read_table()
        res["table_equals_health"] = final == expected_table(alive)
        if not res["table_equals_health"]:
            failures.append(f"final table {final} != health {expected_table(alive)}")
        res["seconds"] = round(time.time() - t_start, 1)
        d.alive()
        res["rss_mib"], res["cpu_s"] = usage(d.pids())
    finally:
        if client is not None:
            client.close()
        d.stop()
        res["left_behind"] = leftovers()
        rs.close()
        res["crashes"] = d.crashes
        log = wd / "quorum.log"
        res["quorum_scripts"] = log.read_text().split() if log.exists() else []
        res["run_s"] = round(time.time() - t0, 1)
    reqs = client.results if client is not None else []
    lost = [t for t, who in reqs if not who]
    limit = checker_bound() + MARGIN
    beyond = [t for t in lost if not any(c <= t <= c + limit for c in crashes_at)]
    res.update(
        requests=len(reqs),
        lost=len(lost),
        lost_beyond_bound=len(beyond),
        out_of_rotation_max_s=max(out_of_rotation, default=None),
        crash_count=len(crashes_at),
    )
    if sorted(res["quorum_scripts"]) != QUORUM_SCRIPTS:
        failures.append(f"quorum scripts ran {res['quorum_scripts']}, want {QUORUM_SCRIPTS}")
    if not res.get("quorum_down_table"):
        failures.append("quorum loss did not leave the sorry server alone")
    if any(s > limit for s in out_of_rotation):
        failures.append(f"a crashed server stayed in rotation: {out_of_rotation}")
    if beyond:
        failures.append(f"{len(beyond)} requests lost outside the checker bound")
    res["failures"] = failures
    return res


def scale(kind: str, size: Size, wd: Path) -> dict[str, Any]:
    conf = wd / f"scale-{kind}.conf"
    conf.write_text(scale_conf(size))
    want_entries = SCALE_VS + size.servers
    res: dict[str, Any] = {"scenario": "scale", "daemon": kind, "instances": size.instances,
                           "servers": size.servers}  # fmt: skip
    rs = RealServers([80])
    rs.set("0.0.0.0", True)
    d = Daemon(kind, conf, wd, "scale")
    failures: list[str] = []

    def full() -> bool:
        return len(read_table()) == want_entries and len(vips_on_director()) == size.instances

    def ready() -> bool:
        # After kill -9 the old table and VIPs are still in the kernel: the new
        # daemon counts only once each of its instances has become master again
        # and it has finished starting (a signal earlier than that tests start-up,
        # not the scenario).
        return d.masters() >= size.instances and full() and d.started()

    t0 = d.start()
    try:
        res["entries_s"] = wait(full, START_LIMIT, 1.0)
        res["start_s"] = wait(ready, START_LIMIT, 1.0) and round(time.time() - t0, 2)
        if res["start_s"] is None:
            failures.append(
                f"start: {len(read_table())}/{want_entries} entries, "
                f"{len(vips_on_director())}/{size.instances} VIPs"
            )
            return res
        time.sleep(5)
        before = read_table()
        res["rss_mib"], res["cpu_start_s"] = usage(d.pids())
        d.kill9()
        res["after_kill_entries"] = len(read_table())
        d.start()
        res["restart_s"] = wait(lambda: ready() and read_table() == before, START_LIMIT, 1.0)
        if res["restart_s"] is None:
            failures.append(f"after kill -9 and restart: {len(read_table())} entries differ")
            return res
        time.sleep(5)
        cpu_pre_hup = usage(d.pids())[1]
        # SIGHUP with the table sampled until the daemon says the reload is done,
        # then for SETTLE more seconds: no entry may go missing at any sample.
        missing = 0
        marker = RELOADED[d.kind]
        d.hup()
        t_hup = time.time()
        done: float | None = None
        while time.time() - t_hup < START_LIMIT:
            now = read_table()
            missing = max(missing, len(set(before) - set(now)))
            if done is None and marker in d.log.read_text(errors="replace"):
                done = time.time()
                res["reload_s"] = round(done - t_hup, 2)
            if done is not None and time.time() - done > SETTLE:
                break
            time.sleep(0.2)
        if done is None:
            failures.append(f"no {marker!r} in the log after SIGHUP")
        res["reload_missing_max"] = missing
        res["reload_identical"] = read_table() == before
        if missing:
            failures.append(f"reload removed up to {missing} entries")
        if not res["reload_identical"]:
            failures.append("table differs after the reload")
        res["rss_end_mib"], res["cpu_end_s"] = usage(d.pids())
        res["cpu_reload_s"] = round(res["cpu_end_s"] - cpu_pre_hup, 2)
        d.alive()
    finally:
        d.stop()
        res["left_behind"] = leftovers()
        rs.close()
        res["crashes"] = d.crashes
        res["run_s"] = round(time.time() - t0, 1)
    res["failures"] = failures
    return res


GUEST_SCENARIOS = {"rs_chaos": rs_chaos, "scale": scale}


def guest(spec_path: Path, out_path: Path) -> int:
    """Run the spec's scenarios for the spec's daemons; results saved after each one."""
    spec = json.loads(spec_path.read_text())
    size = Size(**spec["size"])
    wd = out_path.parent
    results: list[dict[str, Any]] = []
    t_guest = time.time()
    for mod in ("ip_vs", "ip_vs_rr", "ip_vs_wrr"):
        subprocess.run(["modprobe", mod], capture_output=True)
    for name in spec["scenarios"]:
        setup_net(scale=name == "scale")
        try:
            for kind in spec["kinds"]:
                try:
                    r = GUEST_SCENARIOS[name](kind, size, wd)
                except Exception as e:  # a rig failure is a row, not a lost run
                    r = {"scenario": name, "daemon": kind, "failures": [f"rig: {e!r}"]}
                results.append(r)
                out_path.write_text(json.dumps(results, indent=1) + "\n")
                print(json.dumps(r), flush=True)
        finally:
            teardown_net()
    out_path.write_text(json.dumps(results, indent=1) + "\n")
    out_path.with_name("elapsed").write_text(f"{time.time() - t_guest:.1f}\n")
    return 0


# --------------------------------------------------------------------------- host side


def guest_script(wd: Path, scenarios: Sequence[str], kinds: Sequence[str], size: Size) -> str:
    """Write the spec into ``wd``; the bash that runs the guest driver there."""
    spec = {"scenarios": list(scenarios), "kinds": list(kinds), "size": size.__dict__}
    (wd / "spec.json").write_text(json.dumps(spec))
    return f"{sys.executable} -m sim.chaos_vm guest {wd / 'spec.json'} {wd / 'results.json'}"


def run_in_vm(
    scenarios: Sequence[str], kinds: Sequence[str], size: Size, keep: Path | None = None
) -> list[dict[str, Any]]:
    """Boot once, run the scenarios, return the guest's result dicts."""
    import shutil
    import tempfile

    from sim import vm

    wd = Path(tempfile.mkdtemp(prefix="pykeep-vm-chaos-"))
    try:
        script = guest_script(wd, scenarios, kinds, size)
        result = vm.in_vm(
            script,
            timeout=3600,
            rwdir=wd,
            progress=vm.stderr_progress(),
            on_stdout=lambda line: print(line, file=sys.stderr, flush=True),
            memory="2G",
        )
        path = wd / "results.json"
        rows: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
        if not result.ok or len(rows) < len(scenarios) * len(kinds):
            rows.append(
                {"scenario": "vm", "daemon": "-", "failures": [
                    f"VM run rc {result.returncode} timed out {result.timed_out}: "
                    + result.stderr[-500:]]}
            )  # fmt: skip
        if keep is not None:
            shutil.copytree(wd, keep / "vm", dirs_exist_ok=True)
        return rows
    finally:
        shutil.rmtree(wd, ignore_errors=True)


def notes(r: dict[str, Any]) -> list[str]:
    """The row's own numbers, for the table's notes cell."""
    keys = (
        "entries_s", "start_s", "crash_count", "out_of_rotation_max_s", "lost_beyond_bound",
        "quorum_scripts", "table_equals_health", "instances", "servers",
        "after_kill_entries", "restart_s", "reload_s", "reload_missing_max", "reload_identical",
        "rss_mib", "rss_end_mib", "cpu_start_s", "cpu_reload_s", "cpu_s",
    )  # fmt: skip
    return [f"{k}={r[k]}" for k in keys if k in r]


def to_row(r: dict[str, Any]) -> Row:
    """A guest result as a row of the chaos table (no VRRP peer: the VRRP columns are 0).

    Probes and lost are the request loop's; recovery is the slowest crash to leave
    rotation (real-server chaos) or the restart after ``kill -9`` until the table was
    identical (scale), against the checker bound (scale: none, so 0).
    """
    recovery = r.get("out_of_rotation_max_s", r.get("restart_s"))
    return Row(
        scenario=r.get("scenario", "?"),
        daemon=r.get("daemon", "?"),
        seconds=float(r.get("run_s", 0.0)),
        dual_s=0.0,
        dual_beyond_s=0.0,
        none_s=0.0,
        none_beyond_s=0.0,
        probes=int(r.get("requests", 0)),
        lost=int(r.get("lost", 0)),
        recovery_s=None if recovery is None or recovery == float("inf") else float(recovery),
        bound_s=float(r.get("bound_s", 0.0)),
        takeovers=0,
        early_takeovers=0,
        prio0_adverts=0,
        advert_late_max_ms=None,
        advert_late_p50_ms=None,
        crashes=list(r.get("crashes", [])),
        left_behind=list(r.get("left_behind", [])),
        notes=notes(r),
        failures=list(r.get("failures", [])),
        extra=r,
    )


def main(argv: Sequence[str]) -> int:
    if len(argv) == 3 and argv[0] == "guest":
        return guest(Path(argv[1]), Path(argv[2]))
    print("usage: python -m sim.chaos_vm guest SPEC.json OUT.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
