"""Helpers for the VRRP-on-the-wire tests and bench: routers, configs, a client's view.

Built on :mod:`sim.netns` (the shared rig).  The client observes the VIP the
way a real host would — by ARPing/pinging it and reading its neighbour table
— never by asking pykeep.  This machine has no ``ping``/``arping`` binaries,
so the client side is a tiny Python prober run inside the client namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.netns import Rig

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent
KEEPALIVED = "/usr/sbin/keepalived"

#: A client-side prober: ICMP echo to the VIP every ``interval``; prints one
#: JSON line per reply/timeout with the replying MAC from the ARP cache.
PROBER = textwrap.dedent(
    r"""
    import json, os, socket, struct, subprocess, sys, time
    vip, interval, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    v6 = ":" in vip
    if v6:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    def csum(b):
        if len(b) % 2: b += b"\0"
        t = sum(struct.unpack("!%dH" % (len(b)//2), b))
        while t >> 16: t = (t & 0xFFFF) + (t >> 16)
        return ~t & 0xFFFF
    def mac():
        if v6:
            out = subprocess.run(["ip", "-6", "neigh", "show", vip], capture_output=True,
                                 text=True).stdout.split()
            return out[out.index("lladdr") + 1] if "lladdr" in out else None
        try:
            for line in open("/proc/net/arp").read().splitlines()[1:]:
                f = line.split()
                if f[0] == vip and f[3] != "00:00:00:00:00:00": return f[3]
        except OSError: pass
        return None
    seq = 0
    while count < 0 or seq < count:
        seq += 1
        t0 = time.monotonic()
        if v6:
            pkt = struct.pack("!BBHHH", 128, 0, 0, ident, seq & 0xFFFF) + b"pk"
        else:
            hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq & 0xFFFF)
            pkt = hdr[:2] + struct.pack("!H", csum(hdr + b"pk")) + hdr[4:] + b"pk"
        try: s.sendto(pkt, (vip, 0))
        except OSError: pass
        ok = False
        while True:
            left = interval - (time.monotonic() - t0)
            if left <= 0: break
            s.settimeout(left)
            try: data, addr = s.recvfrom(2048)
            except (socket.timeout, OSError): break
            off = 0 if v6 else (data[0] & 15) * 4
            t, _c, _k, i, q = struct.unpack_from("!BBHHH", data, off)
            want = 129 if v6 else 0
            if t == want and i == ident and addr[0] == vip:
                if q == (seq & 0xFFFF):
                    ok = True; break
                # a late reply to an earlier echo: the ping was slow, not lost
                print(json.dumps({"t": time.time(), "seq": q, "ok": True, "mac": None,
                                  "late": True}), flush=True)
        print(json.dumps({"t": time.time(), "seq": seq, "ok": ok, "mac": mac()}), flush=True)
        left = interval - (time.monotonic() - t0)
        if left > 0: time.sleep(left)
    """
)


def probe_once(rig: Rig, client: str, vip: str, timeout: float = 0.5) -> dict[str, Any]:
    """One echo to ``vip`` from ``client``: {"ok": bool, "mac": owner MAC or None}."""
    out = rig.run(client, [PY, "-c", PROBER, vip, str(timeout), "1"], check=False).stdout
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    return lines[-1] if lines else {"ok": False, "mac": None}


def wait_owner(
    rig: Rig, client: str, vip: str, mac: str | None, timeout: float, step: float = 0.2
) -> float:
    """Seconds until ``vip`` answers from ``mac`` (None: stops answering); raise on timeout."""
    t0 = time.monotonic()
    while True:
        rig.run(client, ["ip", "neigh", "flush", "to", vip], check=False)
        if ":" in vip:
            rig.run(client, ["ip", "-6", "neigh", "flush", "to", vip], check=False)
        got = probe_once(rig, client, vip, timeout=step)
        if mac is None and not got["ok"]:
            return time.monotonic() - t0
        if mac is not None and got["ok"] and got["mac"] == mac:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{vip} owner not {mac} after {timeout}s (last: {got})")


@dataclass
class Prober:
    """A continuous prober process; ``results()`` parses what it printed so far."""

    rig: Rig
    proc: subprocess.Popen[str]
    path: Path

    def results(self) -> list[dict[str, Any]]:
        """One record per echo, a late reply counting as answered."""
        text = self.path.read_text() if self.path.exists() else ""
        by_seq: dict[int, dict[str, Any]] = {}
        late: set[int] = set()
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            rec = json.loads(line)
            if rec.get("late"):
                late.add(int(rec["seq"]))
            else:
                by_seq[int(rec["seq"])] = rec
        for q in late:
            if q in by_seq:
                by_seq[q]["ok"] = True
        return [by_seq[q] for q in sorted(by_seq)]

    def stop(self) -> list[dict[str, Any]]:
        """Stop probing; the last few echoes were still in flight and are not judged."""
        time.sleep(0.3)
        self.rig.kill(self.proc)
        return self.results()[:-3]


def start_prober(rig: Rig, client: str, vip: str, interval: float, workdir: Path) -> Prober:
    path = workdir / f"probe-{time.monotonic_ns()}.jsonl"
    out = open(path, "w")  # noqa: SIM115 - handed to the child
    proc = rig.popen(client, [PY, "-c", PROBER, vip, str(interval), "-1"], stdout=out, text=True)
    out.close()
    return Prober(rig, proc, path)


# ---------------------------------------------------------------- configs


def vrrp_conf(
    *,
    name: str = "VI_1",
    vrid: int = 51,
    priority: int = 100,
    advert_int: float = 1,
    vips: tuple[str, ...] = ("10.99.0.200/32",),
    interface: str = "eth0",
    version: int | None = None,
    auth_pass: str | None = None,
    extra: str = "",
    state: str = "BACKUP",
    globals_: str = "",
    before: str = "",
) -> str:
    """A keepalived.conf with one vrrp_instance, valid for both daemons."""
    auth = (
        f"    authentication {{\n        auth_type PASS\n        auth_pass {auth_pass}\n    }}\n"
        if auth_pass
        else ""
    )
    ver = f"    version {version}\n" if version else ""
    vip_lines = "".join(f"        {v}\n" for v in vips)
    return (
        f"global_defs {{\n    router_id pk\n{globals_}}}\n{before}"
        f"vrrp_instance {name} {{\n    state {state}\n    interface {interface}\n"
        f"    virtual_router_id {vrid}\n    priority {priority}\n    advert_int {advert_int}\n"
        f"{ver}{auth}{extra}    virtual_ipaddress {{\n{vip_lines}    }}\n}}\n"
    )


# ---------------------------------------------------------------- routers


@dataclass
class Router:
    """A pykeep or keepalived process in one rig node."""

    rig: Rig
    node: str
    kind: str  # "pykeep" or "keepalived"
    conf: Path
    workdir: Path
    proc: subprocess.Popen[str] | None = None
    log: Path = field(default_factory=Path)

    def start(self) -> Router:
        pid = self.workdir / f"{self.node}-{self.kind}.pid"
        vpid = self.workdir / f"{self.node}-{self.kind}-vrrp.pid"
        self.log = self.workdir / f"{self.node}-{self.kind}.log"
        argv = [PY, "-m", "pykeep"] if self.kind == "pykeep" else [KEEPALIVED]
        argv += ["-P", "-n", "-l", "-D", "-f", str(self.conf), "-p", str(pid), "-r", str(vpid)]
        if self.kind == "keepalived":
            argv += ["-c", str(self.workdir / f"{self.node}-chk.pid")]
        out = open(self.log, "a")  # noqa: SIM115 - handed to the child
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYKEEP_STATS_FILE=str(self.stats_path))
        self.proc = self.rig.popen(
            self.node, argv, stdout=out, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
        )
        out.close()
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        """SIGTERM and wait: the graceful stop (priority-0 advert, VIPs removed)."""
        if self.proc is None:
            return
        self.rig.kill(self.proc, sig=signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.rig.kill(self.proc, sig=signal.SIGKILL)
        self.proc = None

    def crash(self, vips: tuple[str, ...] = ()) -> None:
        """SIGKILL, then remove the VIPs it held: a dead host."""
        if self.proc is not None:
            if self.kind == "keepalived":
                # keepalived's VRRP child stops gracefully when its parent dies;
                # a dead host is the child dying first.
                vpid = self.workdir / f"{self.node}-{self.kind}-vrrp.pid"
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(vpid.read_text().split()[0]), signal.SIGKILL)
            self.rig.kill(self.proc, sig=signal.SIGKILL)
            self.proc = None
        for v in vips:
            self.rig.run(self.node, ["ip", "addr", "del", v, "dev", "eth0"], check=False)

    @property
    def stats_path(self) -> Path:
        return self.workdir / f"{self.node}-{self.kind}.stats"

    def stats(self, timeout: float = 3.0) -> dict[str, Any]:
        """pykeep's SIGUSR2 statistics (keepalived's /tmp/keepalived.stats, as JSON)."""
        with contextlib.suppress(FileNotFoundError):
            self.stats_path.unlink()
        self.signal(signal.SIGUSR2)
        until(self.stats_path.exists, timeout)
        data: dict[str, Any] = json.loads(self.stats_path.read_text())
        return data

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def has_vip(self, vip: str) -> bool:
        return any(a.split("/")[0] == vip for a in self.rig.addresses(self.node))


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pkwire-") as d:
        yield Path(d)


def lan(
    rig: Rig,
    routers: dict[str, str],
    client: str = "10.99.0.100/24",
    aux: bool = False,
) -> None:
    """Plug routers (node -> CIDR(s), comma separated) and a client into one bridge.

    IPv6 DAD is off so link-local sources exist at once; ``aux`` gives every
    router a second link ``eth1`` on segment "aux" (for track_interface).
    """
    for node in (*routers, "client"):
        rig.add_node(node)
        for key in ("all", "default"):
            rig.sysctl(node, f"net.ipv6.conf.{key}.accept_dad", 0)
            rig.sysctl(node, f"net.ipv6.conf.{key}.dad_transmits", 0)
    for node, cidrs in routers.items():
        rig.connect(node, "lan", addrs=cidrs.split(","))
        if aux:
            rig.connect(node, "aux", ifname="eth1")
    rig.connect("client", "lan", addrs=client.split(","))


def router(rig: Rig, node: str, kind: str, conf: str, wd: Path) -> Router:
    path = wd / f"{node}-{kind}.conf"
    path.write_text(conf)
    return Router(rig, node, kind, path, wd)


def until(pred: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(step)
    return time.monotonic() - t0
