"""Seed 001's cluster mode: three directors behind an ECMP router speaking OSPF.

``python -m sim cluster`` builds, in network namespaces (``pk-cl-…``)::

    client ── router ──┬── dir1 ──┐
    10.88.0.2   (FRR)  ├── dir2 ──┼── inner switch ── rs1 192.168.1.1
                       └── dir3 ──┘                 └─ rs2 192.168.1.2

- the router runs FRR zebra + ospfd and hashes flows over the directors on
  their L4 5-tuple (``fib_multipath_hash_policy=3`` with
  ``fib_multipath_hash_fields`` = addresses, protocol and ports: policy 1
  uses a packet's L4 hash when it already has one (``net/ipv4/route.c``
  ``fib_multipath_hash``), veth carries the client socket's random tx hash
  across namespaces, and TCP draws a new one after a retransmission
  timeout, so a flow could change director mid-connection);
- each director runs FRR zebra + ospfd, announcing the /32s it holds on
  ``lo`` (redistributed by a prefix list), and pykeep with the manual's
  cluster configuration (``seed001-cluster``: FNAT, ``syn_proxy``,
  ``local_address_group``, quorum scripts, alpha/omega);
- the real servers sit on an inner network the router does not know: only
  FULLNAT reaches them, and they route each director's local address group
  back to that director (``192.168.10N.0/24`` via ``192.168.1.1N``).

The manual's file runs with its ``//…`` and ``/* … */`` annotations removed
and these substitutions, each for a reason:

- each director's ``local_address_group`` is its own ``192.168.10N.1-5``:
  the real servers must route a local address back to the one director
  that owns it;
- the quorum scripts are wrapped in ``/bin/sh -c '…'`` (keepalived 2.2.7,
  like pykeep, runs them without a shell), or, with ``--announce-on-lo``,
  replaced by pykeep's ``announce_on_lo``;
- shorter checker timers (``delay_loop 2``, ``connect_timeout 2``,
  ``nb_get_retry 1``, ``delay_before_retry 1`` instead of 7, 5/3, 2, 5), so
  one checker cycle is a few seconds and the scenario stays short.

The scenario: all three directors start in parallel; a client loop (fresh
connection per request, alternating 1.1.1.1 / 1.1.1.2) runs throughout and
each real server answers with its name and the source address it saw.  It
prints requests per director (told apart by the local address the real
server saw) and per real server; the withdrawal time when every real server
of dir1 fails its checks (an nftables reject on dir1's way to the inner
network), split into checker reaction and routing reaction; the kill of dir1
(every process ``kill -9`` and its interfaces blackholed, as a dead host)
and its return (a clean restart; ``--kill-mode freeze`` stops and continues
the processes instead), with the router's next hops read from
``ip -ts monitor route``; and the source addresses the real servers saw.

IPVS needs a kernel with ``IP_VS``; this one runs in Debian's kernel under
virtme-ng when the host has none (``sim/vm.py``).  ``--routing-only`` runs
the routing half on any kernel: no pykeep, the directors answer HTTP
themselves, and the virtual addresses are added and removed by hand, as the
quorum scripts would.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim import frr

PREFIX = "pk-cl"
CLIENT_NS = f"{PREFIX}-client"
ROUTER_NS = f"{PREFIX}-router"
INNER_NS = f"{PREFIX}-inner"
DIRECTORS = ("dir1", "dir2", "dir3")
REAL_SERVERS = {"rs1": "192.168.1.1", "rs2": "192.168.1.2"}
NAMESPACES = tuple(
    f"{PREFIX}-{n}" for n in ("client", "router", "inner", *DIRECTORS, *REAL_SERVERS)
)
VIPS = ("1.1.1.1", "1.1.1.2")
CLIENT_IP = "10.88.0.2"
ROUTER_CLIENT_IP = "10.88.0.1"
IN_VM = os.environ.get("PYKEEP_IN_VM") == "1"
SLOW = 20.0 if IN_VM else 1.0
"""The guest runs under TCG emulation, about 20× slower: process start-ups scale by it."""
REACT = 4.0 if IN_VM else 1.0
"""Timers run in real time in the guest too; reactions to them are only somewhat slower."""
STARTUP_S = 900.0 if IN_VM else 60.0
"""pykeep and FRR starting: pykeep takes minutes to import under emulation."""


def ns(node: str) -> str:
    return f"{PREFIX}-{node}"


def uplink(i: int) -> tuple[str, str]:
    """(router address, director address) on director ``i``'s point-to-point uplink."""
    return f"10.88.{i}.1", f"10.88.{i}.2"


def inner_ip(i: int) -> str:
    return f"192.168.1.1{i}"


def laddrs(i: int) -> list[str]:
    return [f"192.168.10{i}.{k}" for k in range(1, 6)]


# The manual's two files as printed (seed 001), annotations included: the rig
# derives what it runs from them, so a reader can diff the two.
MANUAL_KEEPALIVED_CONF = """\
! Configuration File for keepalived
global_defs {
#   notification_email {
#       abc@taobao.com
# }
# notification_email_from abc@taobao.com
# smtp_server 192.168.200.1
# smtp_connect_timeout 40
}

local_address_group laddr_g1 {
    192.168.100.1
    192.168.100.2
    192.168.100.3
    192.168.100.4
    192.168.100.5
}

! include virtual server configure file
include taobao.conf
"""

MANUAL_TAOBAO_CONF = """\
virtual_server_group taobao {
    1.1.1.1 80 //vip1
    1.1.1.2 80 //vip2
}

!for taobao.com
virtual_server group taobao {
    delay_loop 7
    lb_algo rr
    lb_kind FNAT
    protocol TCP
    syn_proxy
    laddr_group_name laddr_g1
    alpha //启动 alpha 模式，以便自动绑定 vip
    omega // 启动 omega 模式，以便自动解除 vip
    quorum 1
    hysteresis 0
    quorum_up " ip addr add 1.1.1.1/32 dev lo; ip addr add 1.1.1.2/32 dev lo;"
    quorum_down " ip addr del 1.1.1.1/32 dev lo; ip addr del 1.1.1.2/32 dev lo;"

    /* healthcheck for L4 */
    real_server 192.168.1.1 80 {
        weight 100
        inhibit_on_failure
        TCP_CHECK {
            connect_timeout 5
        }
    }

    /* healthcheck for L7 */
    real_server 192.168.1.2 80 {
        weight 100
        inhibit_on_failure
        HTTP_GET {
            url {
                path /index.html
                status_code 200
            }
            connect_timeout 3
            nb_get_retry 2
            delay_before_retry 5
        }
    }
}
"""

RIG_TIMERS = (
    ("delay_loop 7", "delay_loop 2"),
    ("connect_timeout 5", "connect_timeout 2"),
    ("connect_timeout 3", "connect_timeout 2"),
    ("nb_get_retry 2", "nb_get_retry 1"),
    ("delay_before_retry 5", "delay_before_retry 1"),
)
CHECK_CYCLE_S = 2 + 2 * 2 + 1
"""One checker cycle here: delay_loop, (retry + 1) connect timeouts, one retry delay."""


def strip_annotations(text: str) -> str:
    """The manual's ``//…`` and ``/* … */`` notes, which keepalived reads as words."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//.*", "", text)


def director_config(i: int, *, announce_on_lo: bool = False) -> tuple[str, str]:
    """keepalived.conf and taobao.conf for director ``i`` (substitutions: module docstring)."""
    main = strip_annotations(MANUAL_KEEPALIVED_CONF)
    for k, addr in enumerate(laddrs(i), start=1):
        main = main.replace(f"192.168.100.{k}\n", f"{addr}\n")
    vs = strip_annotations(MANUAL_TAOBAO_CONF)
    for old, new in RIG_TIMERS:
        vs = vs.replace(old, new)
    if announce_on_lo:
        vs = re.sub(r"\n\s*quorum_(up|down) .*", "", vs)
        vs = vs.replace("lb_kind FNAT", "lb_kind FNAT\n    announce_on_lo")
    else:
        vs = re.sub(
            r'quorum_(up|down) " ip addr (add|del) 1.1.1.1/32 dev lo; '
            r'ip addr \2 1.1.1.2/32 dev lo;"',
            lambda m: (
                f"quorum_{m[1]} \"/bin/sh -c 'ip addr {m[2]} 1.1.1.1/32 dev lo;"
                f" ip addr {m[2]} 1.1.1.2/32 dev lo'\""
            ),
            vs,
        )
        assert vs.count("/bin/sh -c") == 2, vs
    return main, vs


def topology_batch() -> str:
    """``ip -batch`` lines creating the namespaces and links."""
    lines = [f"netns add {n}" for n in NAMESPACES]
    lines.append(f"link add c0 netns {CLIENT_NS} type veth peer name c0 netns {ROUTER_NS}")
    for i, d in enumerate(DIRECTORS, start=1):
        lines.append(f"link add u0 netns {ns(d)} type veth peer name d{i} netns {ROUTER_NS}")
        lines.append(f"link add i0 netns {ns(d)} type veth peer name d{i} netns {INNER_NS}")
    for r in REAL_SERVERS:
        lines.append(f"link add e0 netns {ns(r)} type veth peer name {r} netns {INNER_NS}")
    return "\n".join(lines) + "\n"


def per_ns_batch() -> dict[str, list[str]]:
    """``ip -n NS -batch`` lines: addresses, links up, static routes."""
    out: dict[str, list[str]] = {
        CLIENT_NS: [
            "link set lo up",
            "link set c0 up",
            f"addr add {CLIENT_IP}/24 dev c0",
            f"route add default via {ROUTER_CLIENT_IP}",
        ],
        ROUTER_NS: ["link set lo up", "link set c0 up", f"addr add {ROUTER_CLIENT_IP}/24 dev c0"],
        INNER_NS: ["link set lo up", "link add br0 type bridge", "link set br0 up"],
    }
    for i, d in enumerate(DIRECTORS, start=1):
        r_ip, d_ip = uplink(i)
        out[ROUTER_NS] += [f"link set d{i} up", f"addr add {r_ip}/24 dev d{i}"]
        out[ns(d)] = [
            "link set lo up",
            "link set u0 up",
            "link set i0 up",
            f"addr add {d_ip}/24 dev u0",
            f"addr add {inner_ip(i)}/24 dev i0",
            *(f"addr add {a}/32 dev i0" for a in laddrs(i)),
        ]
        out[INNER_NS] += [f"link set d{i} master br0", f"link set d{i} up"]
    for r, ip in REAL_SERVERS.items():
        out[INNER_NS] += [f"link set {r} master br0", f"link set {r} up"]
        out[ns(r)] = [
            "link set lo up",
            "link set e0 up",
            f"addr add {ip}/24 dev e0",
            *(f"route add 192.168.10{i}.0/24 via {inner_ip(i)}" for i in (1, 2, 3)),
        ]
    return out


SYSCTLS = {
    ROUTER_NS: [
        "net.ipv4.ip_forward=1",
        "net.ipv4.fib_multipath_hash_policy=3",
        # source and destination address, protocol, source and destination port
        "net.ipv4.fib_multipath_hash_fields=0x003f",
    ],
    **{ns(d): ["net.ipv4.ip_forward=1"] for d in DIRECTORS},
}

HTTP_SERVER = r"""
import http.server, sys
name, log = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        src = self.client_address[0]
        if log != "-":
            with open(log, "a") as f:
                f.write(f"{src} {self.path}\n")
        body = f"{name} {src}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("0.0.0.0", 80), H).serve_forever()
"""

CLIENT_LOOP = r"""
import os, socket, sys, time
log, stop, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
vips = ("1.1.1.1", "1.1.1.2")
i = 0
with open(log, "a", buffering=1) as out:
    while not os.path.exists(stop):
        vip = vips[i % 2]
        i += 1
        t0 = time.time()
        try:
            s = socket.create_connection((vip, 80), timeout=timeout)
            s.sendall(b"GET /c HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                data += b
            s.close()
            head, _, body = data.partition(b"\r\n\r\n")
            what = body.decode(errors="replace").strip() if b" 200 " in head[:20] else "error http"
        except OSError as e:
            what = "error " + type(e).__name__
            time.sleep(0.05)
        out.write(f"{t0:.3f} {time.time():.3f} {vip} {what}\n")
"""


def _run(argv: list[str], inp: str | None = None, check: bool = False) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, input=inp, check=False)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r.stdout + r.stderr


def nsx(netns: str, *argv: str, check: bool = False, inp: str | None = None) -> str:
    return _run(["ip", "netns", "exec", netns, *argv], inp=inp, check=check)


def _stamp(text: str) -> float:
    """``ip -ts`` prints local time with microseconds: ``[2026-11-30T08:30:01.123456]``."""
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f").timestamp()


@dataclass
class RouteEvent:
    t: float
    deleted: bool
    dst: str
    nexthops: frozenset[str]


def parse_route_monitor(text: str) -> list[RouteEvent]:
    """Route events for the VIPs from ``ip -ts monitor route`` (multipath lines folded)."""
    events: list[RouteEvent] = []
    cur: RouteEvent | None = None
    for line in text.splitlines():
        m = re.match(r"\[([0-9T:.\-]+)\]\s*(Deleted )?(\S+)(.*)", line)
        if m:
            cur = None
            dst = m.group(3)
            if dst in VIPS:
                hops = set(re.findall(r"via (\S+)", m.group(4)))
                cur = RouteEvent(_stamp(m.group(1)), bool(m.group(2)), dst, frozenset(hops))
                events.append(cur)
        elif cur is not None and "nexthop via" in line:
            hop = re.search(r"via (\S+)", line)
            if hop:
                cur.nexthops = cur.nexthops | {hop.group(1)}
    return events


def parse_addr_monitor(text: str) -> list[tuple[float, str, bool]]:
    """(time, address, added) for the VIPs in ``ip -ts monitor address`` output."""
    out: list[tuple[float, str, bool]] = []
    for line in text.splitlines():
        m = re.match(r"\[([0-9T:.\-]+)\]\s*(Deleted )?\d+: \S+\s+inet (\S+)/", line)
        if m and m.group(3) in VIPS:
            out.append((_stamp(m.group(1)), m.group(3), not m.group(2)))
    return out


def first_addr(
    addr: list[tuple[float, str, bool]], vip: str, after: float, added: bool
) -> float | None:
    return next((t for t, a, add in addr if a == vip and add == added and t >= after), None)


def first_route(
    events: list[RouteEvent], vip: str, after: float, pred: Callable[[frozenset[str]], bool]
) -> float | None:
    """When ``vip``'s next-hop set first satisfies ``pred`` after ``after``."""
    return next(
        (e.t for e in events if e.dst == vip and e.t >= after and pred(hops_at(events, vip, e.t))),
        None,
    )


def reaction(
    events: list[RouteEvent],
    addr: list[tuple[float, str, bool]],
    t0: float,
    pred: Callable[[frozenset[str]], bool],
    added: bool,
) -> dict[str, float]:
    """Seconds from ``t0`` until every VIP left (or joined) dir1's ``lo`` and the router's route.

    ``routing_s`` is the slowest per-VIP time from the address change on
    ``lo`` to the router's route change: the routing reaction alone.
    """
    out: dict[str, float] = {}
    lo = [first_addr(addr, v, t0, added) for v in VIPS]
    rt = [first_route(events, v, t0, pred) for v in VIPS]
    if all(t is not None for t in rt):
        out["route_s"] = round(max(t for t in rt if t is not None) - t0, 3)
    if all(t is not None for t in lo):
        out["lo_s"] = round(max(t for t in lo if t is not None) - t0, 3)
        if "route_s" in out:
            out["routing_s"] = round(max(b - a for a, b in zip(lo, rt, strict=True) if a and b), 3)
    return out


def hops_at(events: list[RouteEvent], dst: str, t: float) -> frozenset[str]:
    """The router's next hops for ``dst`` just after time ``t``."""
    hops: frozenset[str] = frozenset()
    for e in events:
        if e.dst == dst and e.t <= t:
            hops = frozenset() if e.deleted else e.nexthops
    return hops


def first_change(
    events: list[RouteEvent], after: float, pred: Callable[[frozenset[str]], bool]
) -> float | None:
    """When both VIPs' next-hop sets first satisfy ``pred`` after ``after``."""
    for e in events:
        if e.t < after:
            continue
        if all(pred(hops_at(events, v, e.t)) for v in VIPS):
            return e.t
    return None


@dataclass
class Cluster:
    """The running rig: namespaces, daemons and the measurements taken from them."""

    work: Path
    routing_only: bool = False
    announce_on_lo: bool = False
    kill_mode: str = "restart"
    say: Callable[[str], None] = print
    json_path: Path | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> None:
        """Print a finding and save the results so far (a guest that times out keeps them)."""
        self.say(text)
        if self.json_path is not None:
            self.json_path.write_text(json.dumps(self.result, indent=1, sort_keys=True))

    # --- processes -------------------------------------------------------
    def spawn(self, key: str, netns: str, argv: list[str], log: Path | None = None) -> None:
        out = open(log or os.devnull, "ab")  # noqa: SIM115 - handed to the child
        self.procs[key] = subprocess.Popen(
            ["ip", "netns", "exec", netns, *argv], stdout=out, stderr=subprocess.STDOUT
        )
        out.close()

    def kill(self, key: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs.pop(key, None)
        if p is not None and p.poll() is None:
            p.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10 * SLOW)
            if p.poll() is None:
                p.kill()
                p.wait()

    # --- building ----------------------------------------------------------
    def clean(self) -> None:
        for n in NAMESPACES:
            _run(["ip", "netns", "del", n])

    def build(self) -> None:
        self.clean()
        _run(["ip", "-batch", "-"], inp=topology_batch(), check=True)
        for netns, cmds in per_ns_batch().items():
            _run(["ip", "-n", netns, "-batch", "-"], inp="\n".join(cmds) + "\n", check=True)
        for netns, values in SYSCTLS.items():
            nsx(netns, "sysctl", "-qw", *values, check=True)

    def frr_start(self, node: str) -> None:
        """zebra and ospfd of one node (``router`` or a director), in its own pathspace."""
        netns = ns(node)
        if node == "router":
            links = [frr.Link(f"d{i}", f"10.88.{i}.0/24") for i in (1, 2, 3)]
            ospfd = frr.router_ospfd("10.88.255.254", links, [frr.Link("c0", "10.88.0.0/24")])
        else:
            i = DIRECTORS.index(node) + 1
            link = frr.Link("u0", f"10.88.{i}.0/24")
            ospfd = frr.director_ospfd(node, f"10.88.255.{i}", link, "1.1.1.0/24")
        run = frr.prepare(netns, {"zebra": frr.zebra_conf(node), "ospfd": ospfd})
        self.spawn(f"{node}.zebra", netns, frr.argv("zebra", netns, run))
        frr.wait_socket(run, timeout=30 * SLOW)
        self.spawn(f"{node}.ospfd", netns, frr.argv("ospfd", netns, run))

    def director_start(self, node: str) -> None:
        i = DIRECTORS.index(node) + 1
        if self.routing_only:
            self.spawn(f"{node}.http", ns(node), ["python3", "-c", HTTP_SERVER, node, "-"])
            self.vips(node, add=True)
            return
        d = self.work / node
        d.mkdir(parents=True, exist_ok=True)
        main, vs = director_config(i, announce_on_lo=self.announce_on_lo)
        (d / "keepalived.conf").write_text(main)
        (d / "taobao.conf").write_text(vs)
        pykeep = shutil.which("pykeep") or str(Path(sys.executable).parent / "pykeep")
        argv = [
            pykeep,
            *("-C", "-n", "-l", "-f", str(d / "keepalived.conf")),
            *("-p", str(d / "k.pid"), "-r", str(d / "v.pid"), "-c", str(d / "c.pid")),
            *("--control-socket", f"/tmp/pykeep-cl-{node}.sock"),
        ]
        self.spawn(f"{node}.pykeep", ns(node), argv, d / "pykeep.log")

    def director_stop(self, node: str, sig: int) -> None:
        if self.routing_only:
            self.kill(f"{node}.http", sig)
            if sig == signal.SIGTERM:
                self.vips(node, add=False)
        else:
            self.kill(f"{node}.pykeep", sig)

    def vips(self, node: str, *, add: bool) -> None:
        verb = "add" if add else "del"
        batch = "".join(f"addr {verb} {v}/32 dev lo\n" for v in VIPS)
        _run(["ip", "-n", ns(node), "-batch", "-"], inp=batch)

    # --- reading -------------------------------------------------------------
    def hops(self) -> dict[str, frozenset[str]]:
        """The router's next hops per VIP (one ``ip route`` call: spawns are dear in the VM)."""
        text = _run(["ip", "-n", ROUTER_NS, "route", "show"])
        blocks: dict[str, frozenset[str]] = {v: frozenset() for v in VIPS}
        for block in re.split(r"\n(?=\S)", text):
            dst = block.split(" ", 1)[0]
            if dst in VIPS:
                blocks[dst] = frozenset(re.findall(r"via (\S+)", block))
        return blocks

    def return_routes(self, nodes: tuple[str, ...]) -> bool:
        """Each of ``nodes`` has its OSPF route back to the client's network."""
        return all(
            "via" in _run(["ip", "-n", ns(d), "route", "show", "10.88.0.0/24"]) for d in nodes
        )

    def wait_hops(self, n: int, limit: float, ready: tuple[str, ...] = ()) -> float | None:
        """Seconds until the router has ``n`` next hops per VIP (and ``ready`` can answer)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            if all(len(h) == n for h in self.hops().values()) and self.return_routes(ready):
                return round(time.monotonic() - t0, 2)
            time.sleep(0.2 * min(SLOW, 5))
        return None

    def requests(self) -> list[tuple[float, float, str, str]]:
        path = self.work / "client.log"
        out = []
        for line in path.read_text().splitlines() if path.exists() else []:
            t0, t1, vip, what = line.split(" ", 3)
            out.append((float(t0), float(t1), vip, what))
        return out

    def wait_requests(self, n: int, after: float, limit: float) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            if sum(1 for r in self.requests() if r[0] >= after) >= n:
                return
            time.sleep(0.5)

    # --- the scenario ----------------------------------------------------------
    def fault(self, node: str, on: bool, table: str, rules: str) -> None:
        if on:
            nsx(ns(node), "nft", "-f", "-", inp=f"table inet {table} {{\n{rules}\n}}\n", check=True)
        else:
            nsx(ns(node), "nft", "delete", "table", "inet", table)

    def run(self) -> dict[str, Any]:
        r = self.result
        r["routing_only"] = self.routing_only
        r["announce_on_lo"] = self.announce_on_lo
        start = time.time()
        self.build()
        r["rs_reach_client"] = nsx(ns("rs1"), "ip", "route", "get", CLIENT_IP).strip()
        self.spawn(
            "mon.route", ROUTER_NS, ["ip", "-ts", "monitor", "route"], self.work / "route.mon"
        )
        self.spawn(
            "mon.addr",
            ns("dir1"),
            ["ip", "-ts", "monitor", "address", "route"],
            self.work / "addr.mon",
        )
        for node in ("router", *DIRECTORS):
            self.frr_start(node)
        if not self.routing_only:
            for name in REAL_SERVERS:
                log = str(self.work / f"{name}.log")
                self.spawn(f"{name}.http", ns(name), ["python3", "-c", HTTP_SERVER, name, log])
        what = "HTTP servers" if self.routing_only else "pykeep (minutes under emulation)"
        self.say(f"namespaces, FRR and real servers up; starting {what} on {', '.join(DIRECTORS)}")
        for node in DIRECTORS:
            self.director_start(node)
        r["ecmp_up_s"] = self.wait_hops(3, STARTUP_S, DIRECTORS)
        r["hops_at_start"] = {v: sorted(h) for v, h in self.hops().items()}
        self.note(f"router: 3 next hops per VIP {r['ecmp_up_s']} s after the directors started")
        if r["ecmp_up_s"] is None:
            raise RuntimeError(f"the router never had 3 paths: {r['hops_at_start']}")
        self.spawn(
            "client",
            CLIENT_NS,
            [
                "python3",
                "-c",
                CLIENT_LOOP,
                str(self.work / "client.log"),
                str(self.work / "stop"),
                str(5 * REACT),
            ],
        )
        t_spread = time.time()
        self.wait_requests(300, t_spread, 150 * REACT)
        r["spread"] = self.spread(t_spread, time.time())
        self.note(f"spread: {r['spread']}")

        self.withdrawal()
        self.kill_and_return()
        (self.work / "stop").touch()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.procs["client"].wait(timeout=60 * REACT)
        r["sources"] = self.sources()
        r["total_s"] = round(time.time() - start, 1)
        return r

    def spread(self, t0: float, t1: float) -> dict[str, Any]:
        reqs = [q for q in self.requests() if t0 <= q[0] <= t1]
        per_dir: dict[str, int] = {}
        per_rs: dict[str, int] = {}
        per_pair: dict[str, int] = {}
        errors = 0
        for _a, _b, _vip, what in reqs:
            if what.startswith("error"):
                errors += 1
                continue
            served, _, src = what.partition(" ")
            if self.routing_only:
                director, rs = served, "-"
            else:
                director = self.director_of(src)
                rs = served
            per_dir[director] = per_dir.get(director, 0) + 1
            per_rs[rs] = per_rs.get(rs, 0) + 1
            per_pair[f"{director} {rs}"] = per_pair.get(f"{director} {rs}", 0) + 1
        return {"requests": len(reqs), "errors": errors, "per_director": per_dir,
                "per_real_server": per_rs, "per_director_real_server": per_pair}  # fmt: skip

    @staticmethod
    def director_of(src: str) -> str:
        for i, d in enumerate(DIRECTORS, start=1):
            if src in laddrs(i):
                return d
        return f"?{src}"

    def sources(self) -> dict[str, int]:
        seen: dict[str, int] = {}
        for name in REAL_SERVERS:
            p = self.work / f"{name}.log"
            for line in p.read_text().splitlines() if p.exists() else []:
                src, path = line.split(" ", 1)
                key = src if path == "/c" else f"{src} (checker {path})"
                seen[key] = seen.get(key, 0) + 1
        return seen

    def monitors(self) -> tuple[list[RouteEvent], list[tuple[float, str, bool]]]:
        route = (self.work / "route.mon").read_text(errors="replace")
        addr = (self.work / "addr.mon").read_text(errors="replace")
        return parse_route_monitor(route), parse_addr_monitor(addr)

    def withdrawal(self) -> None:
        """Every real server of dir1 fails its checks; then they come back."""
        r = self.result
        dir1_hop = uplink(1)[1]
        rules = (
            "chain out { type filter hook output priority 0; policy accept;\n"
            "  ip daddr 192.168.1.0/24 tcp dport 80 reject with tcp reset\n}"
        )
        time.sleep(1)
        self.say(
            "dir1: addresses off lo, as quorum_down does"
            if self.routing_only
            else "dir1: every real server fails its checks (nftables reject on dir1)"
        )
        t_inject = time.time()
        if self.routing_only:
            self.vips("dir1", add=False)  # what quorum_down does
        else:
            self.fault("dir1", True, "pkcl_fault", rules)
        # from when the fault is in place (a spawn takes a second or two in the VM);
        # without pykeep, removing the addresses is the whole event
        t0 = t_inject if self.routing_only else time.time()
        gone = self.wait_hops(2, (CHECK_CYCLE_S * 4 + 30) * REACT)
        self.wait_requests(30, time.time(), 30 * REACT)  # traffic after the withdrawal
        t_heal_start = time.time()
        if self.routing_only:
            self.vips("dir1", add=True)
        else:
            self.fault("dir1", False, "pkcl_fault", rules)
        t_heal = t_heal_start if self.routing_only else time.time()
        back = self.wait_hops(3, (CHECK_CYCLE_S * 4 + 30) * REACT)
        self.wait_requests(30, time.time(), 30 * REACT)
        events, addr = self.monitors()
        w: dict[str, Any] = {"polled_gone_s": gone, "polled_back_s": back}
        w["inject_s"] = round(t0 - t_inject, 3)
        gone_r = reaction(events, addr, t0, lambda h: dir1_hop not in h and len(h) == 2, False)
        back_r = reaction(events, addr, t_heal, lambda h: len(h) == 3, True)
        w["withdrawn_s"] = gone_r.get("route_s")
        w["vip_removed_s"] = gone_r.get("lo_s")
        w["routing_s"] = gone_r.get("routing_s")
        w["returned_s"] = back_r.get("route_s")
        w["routing_back_s"] = back_r.get("routing_s")
        t_route = t0 + w["withdrawn_s"] if w["withdrawn_s"] is not None else None
        w["others_kept"] = self.others_kept(events, t0, time.time())
        w["check_cycle_s"] = CHECK_CYCLE_S
        reqs = self.requests()
        end_fail = t_route if t_route is not None else t_heal
        w["errors_until_withdrawn"] = sum(
            1 for q in reqs if t0 <= q[0] < end_fail and q[3].startswith("error")
        )
        w["errors_after_withdrawn"] = sum(
            1 for q in reqs if end_fail <= q[0] < t_heal and q[3].startswith("error")
        )
        w["requests_after_withdrawn"] = sum(1 for q in reqs if end_fail <= q[0] < t_heal)
        t_end = time.time()
        w["errors_during_return"] = sum(
            1 for q in reqs if t_heal <= q[0] < t_end and q[3].startswith("error")
        )
        w["served_while_withdrawn"] = self.spread(end_fail, t_heal)["per_director"]
        r["withdrawal"] = w
        self.note(f"withdrawal: {w}")

    def others_kept(self, events: list[RouteEvent], t0: float, t1: float) -> bool:
        """dir2 and dir3 stayed next hops of both VIPs at every route event in [t0, t1]."""
        others = {uplink(2)[1], uplink(3)[1]}
        return all(
            others <= hops_at(events, v, e.t) for e in events if t0 <= e.t <= t1 for v in VIPS
        )

    def kill_and_return(self) -> None:
        """dir1 dies as a host does, then comes back; dir2 and dir3 must not notice.

        ``restart`` (the default): every process of dir1 is killed (``kill -9``),
        its links blackholed, and after the withdrawal it reboots: no VIPs, no
        IPVS table, no nftables, then FRR and pykeep start again.  ``freeze``:
        the same processes are stopped (SIGSTOP) instead and continued after
        the withdrawal, a hung host that recovers; the routing is the same and
        it costs no pykeep start-up, which takes minutes under emulation.
        """
        r = self.result
        dir1_hop = uplink(1)[1]
        blackhole = (
            "chain in { type filter hook prerouting priority -500; policy drop; }\n"
            "chain out { type filter hook output priority -500; policy drop; }"
        )
        keys = ["dir1.ospfd", "dir1.zebra", "dir1.http" if self.routing_only else "dir1.pykeep"]
        time.sleep(1)
        self.say(f"dir1: {'frozen' if self.kill_mode == 'freeze' else 'killed'}, links blackholed")
        t0 = time.time()
        if self.kill_mode == "freeze":
            for key in keys:
                self.procs[key].send_signal(signal.SIGSTOP)
        else:
            for key in keys:
                self.kill(key, signal.SIGKILL)
        self.fault("dir1", True, "pkcl_dead", blackhole)
        gone = self.wait_hops(2, (frr.DEAD_S + 30) * REACT)
        self.wait_requests(30, time.time(), 30 * REACT)
        t_boot = time.time()
        self.fault("dir1", False, "pkcl_dead", "")
        if self.kill_mode == "freeze":
            for key in keys:
                self.procs[key].send_signal(signal.SIGCONT)
        else:
            # a reboot: nothing of the old run is left, then everything starts again
            self.say("dir1: restarting as after a reboot")
            self.vips("dir1", add=False)
            if not self.routing_only:
                nsx(ns("dir1"), "ipvsadm", "-C")
                nsx(ns("dir1"), "nft", "delete", "table", "inet", "pykeep_fnat")
            self.frr_start("dir1")
            self.director_start("dir1")
        back = self.wait_hops(3, STARTUP_S, ("dir1",))
        self.wait_requests(30, time.time(), 30 * REACT)
        events, _addr = self.monitors()
        t_route = first_change(events, t0, lambda h: dir1_hop not in h and len(h) == 2)
        t_back = first_change(events, t_boot, lambda h: len(h) == 3)
        reqs = self.requests()
        k: dict[str, Any] = {"mode": self.kill_mode, "polled_gone_s": gone, "polled_back_s": back}
        if t_route is not None:
            k["withdrawn_s"] = round(t_route - t0, 3)
        if t_back is not None:
            k["returned_after_restart_s"] = round(t_back - t_boot, 3)
        end_fail = t_route if t_route is not None else t_boot
        k["errors_until_withdrawn"] = sum(
            1 for q in reqs if t0 <= q[0] < end_fail and q[3].startswith("error")
        )
        k["errors_while_dead"] = sum(
            1 for q in reqs if end_fail <= q[0] < t_boot and q[3].startswith("error")
        )
        k["errors_during_return"] = sum(
            1 for q in reqs if q[0] >= t_boot and q[3].startswith("error")
        )
        k["requests_during_return"] = sum(1 for q in reqs if q[0] >= t_boot)
        k["others_kept"] = self.others_kept(events, t0, time.time())
        k["served_after_return"] = self.spread(t_back or time.time(), time.time())["per_director"]
        r["kill"] = k
        self.note(f"kill and return: {k}")

    def close(self) -> None:
        (self.work / "stop").touch()
        for key in [k for k in self.procs if k.endswith(".pykeep") or k.endswith(".http")]:
            self.kill(key, signal.SIGTERM)
        for key in list(self.procs):
            self.kill(key, signal.SIGTERM)
        logs: dict[str, str] = {}
        for node in ("router", *DIRECTORS):
            for daemon in ("zebra", "ospfd"):
                p = frr.RUN_ROOT / ns(node) / f"{daemon}.log"
                if p.exists():
                    logs[f"{node}.{daemon}"] = p.read_text(errors="replace")[-3000:]
            p = self.work / node / "pykeep.log"
            if p.exists():
                logs[f"{node}.pykeep"] = p.read_text(errors="replace")[-6000:]
        self.result["logs"] = logs
        self.clean()
        for node in ("router", *DIRECTORS):
            shutil.rmtree(frr.RUN_ROOT / ns(node), ignore_errors=True)


@contextlib.contextmanager
def _workdir(path: str | None) -> Iterator[Path]:
    if path:
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        yield p
        return
    p = Path(tempfile.mkdtemp(prefix="pykeep-cluster-"))
    try:
        yield p
    finally:
        shutil.rmtree(p, ignore_errors=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--routing-only",
        action="store_true",
        help="no IPVS: the directors answer HTTP themselves (runs on any kernel)",
    )
    p.add_argument(
        "--announce-on-lo",
        action="store_true",
        help="pykeep's announce_on_lo instead of the manual's quorum scripts",
    )
    p.add_argument(
        "--kill-mode",
        choices=("restart", "freeze"),
        default="restart",
        help="how dir1 dies and returns: kill -9 and a clean restart (default), or SIGSTOP/SIGCONT",
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        help="write the measurements as JSON (its directory is shared with the VM)",
    )
    p.add_argument("--workdir", help="keep configs and logs here (default: a temporary directory)")
    p.add_argument("--timeout", type=float, default=2400.0, help="VM run timeout (s)")


def main_args(args: argparse.Namespace, argv: list[str]) -> int:
    if not args.routing_only:
        from sim import vm

        if not vm.kernel_has_ipvs():  # loads ip_vs where the kernel has it
            if vm.inside_vm():
                print("pykeep-sim cluster: no IP_VS in this kernel", file=sys.stderr)
                return 1
            if not args.json:
                return vm.reexec_in_vm(["cluster", *argv], timeout=args.timeout)
            # the guest writes the JSON into a directory shared with the host
            out = Path(args.json).resolve()
            res = vm.in_vm_python(
                "sim",
                ["cluster", *argv],
                args.timeout,
                rwdir=out.parent,
                progress=vm.stderr_progress(),
                on_stdout=lambda line: print(line, flush=True),
            )
            sys.stderr.write(res.stderr)
            return res.returncode
    for tool in ("ip", "nft") if args.routing_only else ("ip", "nft", "ipvsadm"):
        if not shutil.which(tool):
            print(f"pykeep-sim: {tool} missing (make setup installs it)", file=sys.stderr)
            return 1
    with _workdir(args.workdir) as work:
        work.chmod(0o755)
        c = Cluster(work, routing_only=args.routing_only, announce_on_lo=args.announce_on_lo)
        c.json_path = Path(args.json) if args.json else None
        c.kill_mode = args.kill_mode
        rc = 0
        try:
            c.run()
        except (RuntimeError, OSError) as exc:
            print(f"pykeep-sim cluster: {exc}", file=sys.stderr)
            rc = 1
        finally:
            c.close()
            if args.json:
                Path(args.json).write_text(json.dumps(c.result, indent=1, sort_keys=True))
        if rc == 0:
            print(report(c.result))
        return rc


def report(r: dict[str, Any]) -> str:
    """The scenario's numbers, as the README quotes them."""
    s, w, k = r["spread"], r["withdrawal"], r["kill"]
    lines = [
        f"spread over {s['requests']} requests ({s['errors']} errors):",
        "  per director:    " + ", ".join(f"{d} {n}" for d, n in sorted(s["per_director"].items())),
        "  per real server: "
        + ", ".join(f"{d} {n}" for d, n in sorted(s["per_real_server"].items())),
        f"withdrawal of dir1 (its real servers fail): {w.get('withdrawn_s')} s"
        f" (addresses off lo after {w.get('vip_removed_s')} s, then OSPF"
        f" {w.get('routing_s')} s at most per address);"
        f" {w.get('errors_until_withdrawn')} client errors before, "
        f"{w.get('errors_after_withdrawn')} of {w.get('requests_after_withdrawn')} after;"
        f" back {w.get('returned_s')} s after they heal",
        f"dir1 {'frozen' if k.get('mode') == 'freeze' else 'killed'}:"
        f" withdrawn after {k.get('withdrawn_s')} s"
        f" (OSPF dead interval {frr.DEAD_S} s);"
        f" {'continued' if k.get('mode') == 'freeze' else 'restarted'}:"
        f" back after {k.get('returned_after_restart_s')} s,"
        f" others kept: {k.get('others_kept')}, {k.get('errors_during_return')} errors"
        f" in {k.get('requests_during_return')} requests during the return",
    ]
    if not r["routing_only"]:
        lines.append(
            "real servers saw: " + ", ".join(f"{a} ×{n}" for a, n in sorted(r["sources"].items()))
        )
    return "\n".join(lines)
