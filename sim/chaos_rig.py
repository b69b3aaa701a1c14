"""The chaos rig: two routers, a client, and the instruments that judge them.

Why its own module: the chaos scenarios (issue 13) must measure pykeep and
keepalived 2.2.7 on the same rig in the same way, from outside both daemons.
Nothing here asks a daemon how it is doing:

- VIP ownership is read from the kernel (a netlink address dump in each
  router's namespace every 10 ms): a router *holds* the VIP when the address
  is on its ``eth0`` and that link is up;
- a client pings the VIP every 20 ms from its own namespace;
- tcpdump on the client records every advert on the LAN (timer lateness,
  priority-0 adverts);
- the backup's input goes through an nftables ``netdev`` ingress chain
  (``pkchaos``): a ``faults`` chain where scenarios add loss or a partition,
  then a ``dup`` of every advert that survived to a capture port ``rx0``.  So
  the rig knows exactly which adverts the backup really received, which is
  what the protocol bound of a dual-master episode depends on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sim.netns import Rig, socket_in

KEEPALIVED = "/usr/sbin/keepalived"
ROOT = Path(__file__).resolve().parent.parent
VIP = "10.99.0.200"
VRID = 51
ADDRS = {"a": "10.99.0.11", "b": "10.99.0.12", "x": "10.99.0.13", "client": "10.99.0.100"}
PRIORITY = {"a": 150, "b": 100}
ADVERT_INT = 1.0


def master_down_interval(priority: int, advert_int: float = ADVERT_INT) -> float:
    """RFC 3768 §6.1: 3 × Advertisement_Interval + Skew_Time, (256 − priority)/256."""
    return 3 * advert_int + (256 - priority) / 256 * advert_int


def vrrp_conf(node: str, *, extra_top: str = "") -> str:
    """The one-instance keepalived.conf both daemons run (``a`` starts as MASTER).

    ``extra_top`` is put before the instance: the reload storm changes it to
    make reloads that do not touch VRRP.
    """
    state = "MASTER" if node == "a" else "BACKUP"
    return (
        "global_defs {\n    router_id pk_" + node + "\n}\n" + extra_top + "vrrp_instance VI_1 {\n"
        f"    state {state}\n    interface eth0\n    virtual_router_id {VRID}\n"
        f"    priority {PRIORITY[node]}\n    advert_int {ADVERT_INT:g}\n"
        f"    virtual_ipaddress {{\n        {VIP}/32\n    }}\n}}\n"
    )


# --------------------------------------------------------------------------- routers


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    return out


@dataclass
class Router:
    """A pykeep or keepalived (``-P``, VRRP only) process in one node of the rig."""

    rig: Rig
    node: str
    kind: str
    workdir: Path
    proc: subprocess.Popen[str] | None = None
    starts: int = 0
    vrrp_pid: int | None = None
    deaths: list[str] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.workdir / f"{self.node}.conf"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.node}-{self.kind}.log"

    def write_conf(self, extra_top: str = "") -> None:
        self.conf.write_text(vrrp_conf(self.node, extra_top=extra_top))

    def start(self) -> None:
        if not self.conf.exists():
            self.write_conf()
        pid = self.workdir / f"{self.node}.pid"
        vpid = self.workdir / f"{self.node}-vrrp.pid"
        argv = [sys.executable, "-m", "pykeep"] if self.kind == "pykeep" else [KEEPALIVED]
        argv += ["-P", "-n", "-l", "-D", "-f", str(self.conf), "-p", str(pid), "-r", str(vpid)]
        if self.kind == "keepalived":
            argv += ["-c", str(self.workdir / f"{self.node}-chk.pid")]
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            TMPDIR=str(self.workdir),
            PYKEEP_STATS_FILE=str(self.workdir / f"{self.node}.stats"),
        )
        with open(self.log, "a") as out:
            self.proc = self.rig.popen(
                self.node, argv, stdout=out, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
            )
        self.starts += 1
        self.vrrp_pid = None

    def pids(self) -> list[int]:
        """The daemon and its children (keepalived's VRRP child does the work)."""
        if self.proc is None:
            return []
        return [self.proc.pid, *_children(self.proc.pid)]

    def vrrp_process(self) -> int | None:
        """The PID that runs VRRP: pykeep itself, keepalived's child."""
        if self.proc is None:
            return None
        if self.kind == "pykeep":
            return self.proc.pid
        kids = _children(self.proc.pid)
        return kids[0] if kids else None

    def settle(self, timeout: float = 5.0) -> None:
        """Remember the VRRP process once it exists: a respawned child is a crash."""
        t_end = time.monotonic() + timeout
        while self.vrrp_pid is None and time.monotonic() < t_end:
            self.vrrp_pid = self.vrrp_process()
            if self.vrrp_pid is None:
                time.sleep(0.05)

    def signal(self, sig: int, *, all_pids: bool = False) -> None:
        for pid in self.pids() if all_pids else [self.proc.pid] if self.proc else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def crashed(self) -> str | None:
        """Why this router is not the healthy process we started, or None."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is not None:
            return f"{self.node} {self.kind} exited with {rc}"
        if self.vrrp_pid is not None and self.vrrp_process() != self.vrrp_pid:
            return f"{self.node} {self.kind} VRRP process {self.vrrp_pid} died"
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        if "Traceback (most recent call last)" in text:
            return f"{self.node} {self.kind} logged a traceback"
        return None

    def kill9(self) -> None:
        """SIGKILL, VRRP process first: a dead host (keepalived's child would
        otherwise stop gracefully when its parent dies)."""
        if self.proc is None:
            return
        vp = self.vrrp_process()
        if vp is not None and vp != self.proc.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(vp, signal.SIGKILL)
        proc, self.proc = self.proc, None
        self.rig.kill(proc, sig=signal.SIGKILL, group=True)
        # Reap it and let the children go: a restart that still finds the dead
        # daemon's PIDs alive (a zombie answers kill(pid, 0)) refuses to start
        # ("daemon is already running"), which a rebooted host never sees.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        t_end = time.monotonic() + 5
        while vp is not None and time.monotonic() < t_end and Path(f"/proc/{vp}").exists():
            time.sleep(0.02)

    def stop(self) -> int | None:
        """SIGTERM and wait: the graceful stop; returns the exit code (None if killed)."""
        if self.proc is None:
            return None
        proc = self.proc
        self.proc = None
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        self.rig.kill(proc, sig=signal.SIGTERM)
        try:
            return proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.rig.kill(proc, sig=signal.SIGKILL, group=True)
            return None


# --------------------------------------------------------------------------- netlink

_RTM_NEWLINK, _RTM_GETLINK, _RTM_NEWADDR, _RTM_GETADDR = 16, 18, 20, 22
_NLMSG_DONE, _NLMSG_ERROR = 3, 2
_DUMP = 0x1 | 0x300
_IFLA_IFNAME, _IFA_LOCAL = 3, 2
_IFF_UP, _IFF_LOWER_UP = 0x1, 0x10000


class _Netlink:
    """One NETLINK_ROUTE socket in a namespace, asking "does eth0 hold the VIP?"."""

    def __init__(self, ns: str, vip: str) -> None:
        self.sock = socket_in(ns, socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self.sock.bind((0, 0))
        self.sock.settimeout(1.0)
        self.vip = socket.inet_aton(vip)
        self.seq = 0

    def _dump(self, kind: int, body: bytes) -> list[tuple[int, bytes]]:
        self.seq += 1
        self.sock.send(struct.pack("=IHHII", 16 + len(body), kind, _DUMP, self.seq, 0) + body)
        msgs: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, mtype, _fl, seq, _pid = struct.unpack_from("=IHHII", data, off)
                if length < 16:
                    return msgs
                if seq == self.seq:
                    if mtype in (_NLMSG_DONE, _NLMSG_ERROR):
                        return msgs
                    msgs.append((mtype, data[off + 16 : off + length]))
                off += (length + 3) & ~3

    @staticmethod
    def _attrs(buf: bytes, off: int) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        while off + 4 <= len(buf):
            alen, atype = struct.unpack_from("=HH", buf, off)
            if alen < 4:
                break
            out[atype] = buf[off + 4 : off + alen]
            off += (alen + 3) & ~3
        return out

    def holds(self) -> bool:
        eth0: int | None = None
        for mtype, msg in self._dump(_RTM_GETLINK, struct.pack("=BxHiII", 0, 0, 0, 0, 0)):
            if mtype != _RTM_NEWLINK:
                continue
            _f, _t, index, flags, _c = struct.unpack_from("=BxHiII", msg)
            name = self._attrs(msg, 16).get(_IFLA_IFNAME, b"").rstrip(b"\0")
            if name == b"eth0" and flags & _IFF_UP and flags & _IFF_LOWER_UP:
                eth0 = index
        if eth0 is None:
            return False
        for mtype, msg in self._dump(
            _RTM_GETADDR, struct.pack("=BBBBI", socket.AF_INET, 0, 0, 0, 0)
        ):
            if mtype != _RTM_NEWADDR:
                continue
            index = struct.unpack_from("=I", msg, 4)[0]
            if index == eth0 and self._attrs(msg, 8).get(_IFA_LOCAL) == self.vip:
                return True
        return False

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- instruments


class Sampler(threading.Thread):
    """VIP ownership every ``period`` s: a list of (wall time, frozenset of holders)."""

    def __init__(self, rig: Rig, nodes: tuple[str, ...], period: float = 0.010) -> None:
        super().__init__(daemon=True, name="vip-sampler")
        self.links = {n: _Netlink(rig.ns(n), VIP) for n in nodes}
        self.period = period
        self.samples: list[tuple[float, frozenset[str]]] = []
        self.errors = 0
        self._halt = threading.Event()

    def run(self) -> None:
        next_t = time.monotonic()
        while not self._halt.is_set():
            held: set[str] = set()
            for node, nl in self.links.items():
                try:
                    if nl.holds():
                        held.add(node)
                except OSError:
                    # A failed read is not a change: keep the last known state.
                    self.errors += 1
                    if node in self.holders():
                        held.add(node)
            self.samples.append((time.time(), frozenset(held)))
            next_t += self.period
            delay = next_t - time.monotonic()
            if delay > 0:
                self._halt.wait(delay)
            else:
                next_t = time.monotonic()

    def holders(self) -> frozenset[str]:
        return self.samples[-1][1] if self.samples else frozenset()

    def finish(self) -> list[tuple[float, frozenset[str]]]:
        self._halt.set()
        self.join(timeout=5)
        for nl in self.links.values():
            nl.close()
        return self.samples


def _icmp_checksum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    total: int = sum(int(w) for w in struct.unpack(f"!{len(b) // 2}H", b))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Prober:
    """ICMP echo to the VIP every ``interval`` s from the client's namespace.

    A probe is lost when no reply came within ``LATE`` seconds (a late reply
    means a slow path, not an outage).
    """

    LATE = 1.0

    def __init__(self, rig: Rig, node: str, interval: float = 0.020) -> None:
        self.sock = socket_in(rig.ns(node), socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock.settimeout(0.2)
        self.interval = interval
        self.ident = os.getpid() & 0xFFFF
        self.sent: dict[int, float] = {}
        self.replied: dict[int, float] = {}
        self._halt = threading.Event()
        self._threads = [
            threading.Thread(target=self._send, daemon=True, name="prober-tx"),
            threading.Thread(target=self._recv, daemon=True, name="prober-rx"),
        ]
        for t in self._threads:
            t.start()

    def _send(self) -> None:
        seq = 0
        next_t = time.monotonic()
        while not self._halt.is_set():
            seq += 1
            hdr = struct.pack("!BBHHH", 8, 0, 0, self.ident, seq & 0xFFFF) + b"pk"
            pkt = hdr[:2] + struct.pack("!H", _icmp_checksum(hdr)) + hdr[4:]
            self.sent[seq & 0xFFFF] = time.time()
            with contextlib.suppress(OSError):
                self.sock.sendto(pkt, (VIP, 0))
            next_t += self.interval
            delay = next_t - time.monotonic()
            if delay > 0:
                self._halt.wait(delay)
            else:
                next_t = time.monotonic()

    def _recv(self) -> None:
        while not self._halt.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            off = (data[0] & 15) * 4
            if len(data) < off + 8 or addr[0] != VIP:
                continue
            typ, _c, _k, ident, seq = struct.unpack_from("!BBHHH", data, off)
            if typ == 0 and ident == self.ident:
                self.replied.setdefault(seq, time.time())

    def finish(self) -> tuple[int, int]:
        """Stop; (probes judged, probes lost).  The last second is still in flight."""
        time.sleep(self.LATE)
        self._halt.set()
        for t in self._threads:
            t.join(timeout=2)
        self.sock.close()
        cutoff = time.time() - self.LATE
        judged = [q for q, t in self.sent.items() if t < cutoff]
        lost = sum(1 for q in judged if self.replied.get(q, 1e18) - self.sent[q] > self.LATE)
        return len(judged), lost


@dataclass(frozen=True)
class Advert:
    t: float
    src: str
    priority: int


def read_garps(path: Path, vip: str = VIP) -> list[tuple[float, str]]:
    """(time, sender MAC) of every gratuitous ARP for ``vip`` tcpdump printed with ``-e -tt -n``."""
    out: list[tuple[float, str]] = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if f"who-has {vip} " not in line or f"tell {vip}," not in line or len(parts) < 2:
            continue
        try:
            out.append((float(parts[0]), parts[1]))
        except ValueError:
            continue
    return out


def read_adverts(path: Path) -> list[Advert]:
    """Adverts tcpdump printed with ``-tt -n`` (``… > 224.0.0.18: VRRPv2, …, prio 150, …``)."""
    out: list[Advert] = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if "prio" not in parts or len(parts) < 3:
            continue
        try:
            t = float(parts[0])
            prio = int(parts[parts.index("prio") + 1].rstrip(","))
        except ValueError:
            continue
        out.append(Advert(t, parts[2], prio))
    return out


# --------------------------------------------------------------------------- the rig


class ChaosRig:
    """Routers ``a`` (150) and ``b`` (100), a client, an injector ``x``, one LAN."""

    def __init__(self, rig: Rig, kind: str, workdir: Path) -> None:
        self.rig = rig
        self.kind = kind
        self.workdir = workdir
        for node in ("a", "b", "x", "client"):
            rig.add_node(node)
            rig.connect(node, "lan", addrs=[f"{ADDRS[node]}/24"])
        self._rx_capture()
        self.a = Router(rig, "a", kind, workdir)
        self.b = Router(rig, "b", kind, workdir)
        self._dumps: list[subprocess.Popen[str]] = []
        self.lan_path = workdir / "lan.txt"
        self.rx_path = workdir / "rx.txt"
        self.arp_path = workdir / "arp.txt"
        self._tcpdump("client", "eth0", self.lan_path, "vrrp")
        self._tcpdump("b", "rx0", self.rx_path, "vrrp")
        self._tcpdump("client", "eth0", self.arp_path, "-e", "arp")
        self.sampler = Sampler(rig, ("a", "b"))
        self.prober: Prober | None = None

    def _rx_capture(self) -> None:
        """The backup's ingress: ``faults`` first, then a copy of what got through."""
        sw = self.rig.switch_ns
        self.rig.ip("b", "link", "add", "rx0", "type", "veth", "peer", "name", "rx.b", "netns", sw)
        self.rig.link_set("b", "rx0", up=True)
        subprocess.run(["ip", "-n", sw, "link", "set", "rx.b", "up"], check=True)
        self.nft(
            "add table netdev pkchaos\n"
            "add chain netdev pkchaos faults\n"
            'add chain netdev pkchaos rx { type filter hook ingress device "eth0" priority 0; }\n'
            "add rule netdev pkchaos rx jump faults\n"
            'add rule netdev pkchaos rx ip protocol 112 dup to "rx0"\n'
        )

    def nft(self, script: str) -> None:
        """Apply an nftables script in the backup's namespace."""
        self.rig.run("b", ["nft", "-f", "-"], input=script, check=True)

    def fault(self, rule: str | None) -> None:
        """Replace the backup's input fault with ``rule`` (None: repair)."""
        script = "flush chain netdev pkchaos faults\n"
        if rule:
            script += f"add rule netdev pkchaos faults {rule}\n"
        self.nft(script)

    def _tcpdump(self, node: str, ifname: str, path: Path, *expr: str) -> None:
        with open(path, "w") as out:
            self._dumps.append(
                self.rig.popen(
                    node,
                    ["tcpdump", "--immediate-mode", "-i", ifname, "-l", "-n", "-tt", "-U", *expr],
                    stdout=out,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            )

    def start(self, timeout: float = 15.0) -> None:
        """Start both routers and the instruments; return once ``a`` alone holds the VIP."""
        self.sampler.start()
        self.a.start()
        self.b.start()
        t_end = time.monotonic() + timeout
        stable_since: float | None = None
        while time.monotonic() < t_end:
            if self.sampler.holders() == {"a"}:
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since > 1.0:
                    break
            else:
                stable_since = None
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{self.kind}: router a did not become the only VIP holder")
        self.a.settle()
        self.b.settle()
        self.prober = Prober(self.rig, "client")
        time.sleep(0.5)

    def wait_holders(self, want: set[str], timeout: float) -> bool:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if self.sampler.holders() == want:
                return True
            time.sleep(0.02)
        return False

    def finish(self) -> tuple[list[tuple[float, frozenset[str]]], int, int]:
        """Stop probing and sampling: (ownership samples, probes, lost)."""
        probes, lost = self.prober.finish() if self.prober else (0, 0)
        samples = self.sampler.finish()
        time.sleep(0.3)  # the captures flush their last adverts
        for d in self._dumps:
            self.rig.kill(d)
        return samples, probes, lost

    def stop_all(self) -> tuple[list[str], list[str]]:
        """Crashes seen, then graceful stops; (crashes, nodes still holding the VIP)."""
        crashes = [c for c in (self.a.crashed(), self.b.crashed()) if c]
        for r in (self.a, self.b):
            rc = r.stop()
            if rc not in (0, None):
                crashes.append(f"{r.node} {r.kind} exited {rc} on SIGTERM")
        left = [n for n in ("a", "b") if any(x.split("/")[0] == VIP for x in self.rig.addresses(n))]
        return crashes, left
