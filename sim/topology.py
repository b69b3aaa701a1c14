"""The two-director LVS rig, described as data and built on :mod:`sim.netns`.

Why declarative: the same description drives the tests, the demo and
``python -m sim up``, and an operator can read it like the seeds' address tables.
The default addresses are seed 003 §3.1.1's: LAN 192.168.65.0/24, VIP
192.168.65.127, director 192.168.65.155, real servers .156/.157 answering
``lvs-RS1-156`` / ``lvs-RS2-157``; in NAT mode the real servers sit on a second
segment 10.0.0.0/24 (directors .180/.179, real servers .181…) with their default
route through ``nat_gateway`` — an internal VIP the directors' VRRP config holds,
as in seed 003's two-NIC table.  Every director's LAN interface is ``eth0`` (and
the real-server side ``eth1``), so the seed configs run with no substitution.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sim import netns
from sim.netns import NetnsError, Rig

Role = Literal["client", "director", "realserver"]
Mode = Literal["dr", "nat"]


@dataclass(frozen=True)
class Port:
    """A node's interface on a segment, with its ``addr/prefix`` addresses."""

    segment: str
    ifname: str = "eth0"
    addrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: Role
    ports: tuple[Port, ...]
    routes: tuple[tuple[str, str], ...] = ()  # (destination, gateway)
    forwarding: bool = False
    label: str = ""  # what the real server's web page answers

    def addr(self, segment: str | None = None) -> str:
        """The first address (no prefix) on ``segment`` (first port when None)."""
        for port in self.ports:
            if (segment is None or port.segment == segment) and port.addrs:
                return port.addrs[0].split("/")[0]
        raise KeyError(f"{self.name} has no address on {segment}")


@dataclass(frozen=True)
class Topology:
    mode: Mode
    nodes: tuple[NodeSpec, ...]
    vip: str
    http_port: int = 80
    nat_gateway: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def by_role(self, role: Role) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == role]

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def segments(self) -> list[str]:
        seen: list[str] = []
        for n in self.nodes:
            for p in n.ports:
                if p.segment not in seen:
                    seen.append(p.segment)
        return seen


def standard(
    mode: Mode = "dr",
    n_real: int = 2,
    *,
    lan: str = "192.168.65.0/24",
    vip: str = "192.168.65.127",
    rs_net: str = "10.0.0.0/24",
    http_port: int = 80,
) -> Topology:
    """Client, two directors, ``n_real`` real servers; DR on one LAN, NAT on two."""
    if not 1 <= n_real <= 40:
        raise ValueError(f"n_real must be 1..40, got {n_real}")
    lan_net = ipaddress.ip_network(lan)
    rs_lan = ipaddress.ip_network(rs_net)
    lp, rp = lan_net.prefixlen, rs_lan.prefixlen

    def on_lan(host: int) -> str:
        return f"{lan_net.network_address + host}/{lp}"

    def on_rs(host: int) -> str:
        return f"{rs_lan.network_address + host}/{rp}"

    nodes = [NodeSpec("client", "client", (Port("lan", "eth0", (on_lan(100),)),))]
    for i, host in ((1, 155), (2, 154)):
        ports = [Port("lan", "eth0", (on_lan(host),))]
        if mode == "nat":
            ports.append(Port("rs", "eth1", (on_rs(181 - i),)))
        nodes.append(NodeSpec(f"dir{i}", "director", tuple(ports), forwarding=mode == "nat"))
    gateway = str(rs_lan.network_address + 254) if mode == "nat" else None
    for i in range(1, n_real + 1):
        if mode == "dr":
            host, port = 155 + i, Port("lan", "eth0", (on_lan(155 + i),))
            routes: tuple[tuple[str, str], ...] = ()
        else:
            host, port = 180 + i, Port("rs", "eth0", (on_rs(180 + i),))
            assert gateway is not None
            routes = (("default", gateway),)
        nodes.append(
            NodeSpec(f"rs{i}", "realserver", (port,), routes=routes, label=f"lvs-RS{i}-{host}")
        )
    return Topology(mode, tuple(nodes), vip, http_port, gateway)


class Lab(Rig):
    """A :class:`Rig` built from a :class:`Topology`, with real-server web pages."""

    def __init__(self, topology: Topology, name: str | None = None, *, detached: bool = False):
        super().__init__(name, detached=detached)
        self.topology = topology
        self.httpd: dict[str, subprocess.Popen[bytes]] = {}
        self.info.update({"mode": topology.mode, "vip": topology.vip})

    # -- build
    def build(self) -> Lab:
        for spec in self.topology.nodes:
            self.add_node(spec.name)
            for port in spec.ports:
                self.connect(spec.name, port.segment, ifname=port.ifname, addrs=port.addrs)
            for dest, via in spec.routes:
                self.add_route(spec.name, dest, via)
            if spec.forwarding:
                self.sysctl(spec.name, "net.ipv4.ip_forward", 1)
        self._save()
        return self

    # -- names
    @property
    def client(self) -> str:
        return self.topology.by_role("client")[0].name

    @property
    def directors(self) -> list[str]:
        return [n.name for n in self.topology.by_role("director")]

    @property
    def real_servers(self) -> list[str]:
        return [n.name for n in self.topology.by_role("realserver")]

    @property
    def vip(self) -> str:
        return self.topology.vip

    def addr(self, node: str, segment: str | None = None) -> str:
        return self.topology.node(node).addr(segment)

    def holders(self, address: str, nodes: Iterable[str]) -> list[str]:
        """Which of ``nodes`` have ``address`` configured.

        Callers pass the live directors: a crashed one (cables cut, SIGKILL)
        keeps its addresses in a namespace nobody can reach.
        """
        return [n for n in nodes if any(a.startswith(address + "/") for a in self.addresses(n))]

    # -- real servers' web pages
    def start_httpd(
        self, rs: str, *, timeout: float = 5.0, impl: str | None = None
    ) -> subprocess.Popen[bytes]:
        """Start (or restart) ``rs``'s web server and wait until it accepts connections.

        ``impl`` "python" is :mod:`sim.httpd` (any path answers, ``--status`` knobs);
        "busybox" is ``busybox httpd`` serving only ``/`` — it starts instantly, which
        matters in the VM where a fresh interpreter takes ~10 s.  Default: busybox
        inside the VM (when installed), python elsewhere.
        """
        self.spawn_httpd(rs, impl=impl)
        self.wait_httpd(rs, timeout=timeout)
        return self.httpd[rs]

    def spawn_httpd(self, rs: str, *, impl: str | None = None) -> subprocess.Popen[bytes]:
        self.stop_httpd(rs)
        spec = self.topology.node(rs)
        name = spec.label or spec.name
        if impl is None:
            impl = "busybox" if netns.SLOWDOWN > 1 and shutil.which("busybox") else "python"
        if impl == "busybox":
            www = self.log_path(f"{rs}-www").with_suffix("")
            www.mkdir(parents=True, exist_ok=True)
            (www / "index.html").write_text(name + "\n")
            argv = ["busybox", "httpd", "-f", "-p", str(self.topology.http_port), "-h", str(www)]
        else:
            argv = [sys.executable, "-m", "sim.httpd", "--name", name]
            argv += ["--port", str(self.topology.http_port)]
        with open(self.log_path(f"{rs}-httpd"), "ab") as log:
            proc = self.popen(rs, argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.httpd[rs] = proc
        return proc

    def wait_httpd(self, rs: str, *, timeout: float = 5.0) -> None:
        timeout *= netns.SLOWDOWN
        proc = self.httpd[rs]
        addr = self.topology.node(rs).addr()
        deadline = time.monotonic() + timeout
        while not self._listening(rs, addr):
            if proc.poll() is not None:
                tail = self.log_path(f"{rs}-httpd").read_text().strip()[-300:]
                raise NetnsError(f"httpd on {rs} exited with {proc.returncode}: {tail}")
            if time.monotonic() > deadline:
                raise NetnsError(f"httpd on {rs} not listening after {timeout}s")
            time.sleep(0.05)

    def _listening(self, node: str, addr: str) -> bool:
        with netns.socket_in(self.ns(node), socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            return s.connect_ex((addr, self.topology.http_port)) == 0

    def stop_httpd(self, rs: str) -> None:
        proc = self.httpd.pop(rs, None)
        if proc is not None and proc.poll() is None:
            self.kill(proc)

    def start_httpds(self, *, impl: str | None = None) -> None:
        """Start every real server's page, in parallel (the VM is slow to spawn)."""
        for rs in self.real_servers:
            self.spawn_httpd(rs, impl=impl)
        for rs in self.real_servers:
            self.wait_httpd(rs)

    def http_get(self, node: str, url: str, *, timeout: float = 2.0) -> str | None:
        """Body of ``url`` fetched from ``node`` with curl, or None on any failure."""
        try:
            proc = self.run(
                node,
                ["curl", "-s", "-f", "--max-time", str(timeout), url],
                check=False,
                timeout=timeout + 5 * netns.SLOWDOWN,
            )
        except NetnsError:  # curl itself did not come back (an overloaded VM)
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    # -- director configs
    def variables(self, director: str) -> dict[str, str]:
        """What ``{{name}}`` placeholders in a director's keepalived.conf expand to."""
        me = self.topology.node(director)
        peers = [d for d in self.directors if d != director]
        out: dict[str, str] = {
            "director": director,
            "interface": me.ports[0].ifname,
            "lan_if": me.ports[0].ifname,
            "self_ip": me.addr("lan"),
            "peer_ip": self.addr(peers[0], "lan") if peers else "",
            "vip": self.vip,
            "client_ip": self.addr(self.client),
            # The first director is the preferred master, as in seed 003 §5.6.1.
            "state": "MASTER" if director == self.directors[0] else "BACKUP",
            "priority": "150" if director == self.directors[0] else "100",
        }
        if len(me.ports) > 1:
            out["rs_if"] = me.ports[1].ifname
            out["rs_self_ip"] = me.addr("rs")
        if self.topology.nat_gateway:
            out["nat_gateway"] = self.topology.nat_gateway
        for i, rs in enumerate(self.real_servers, 1):
            out[f"rs{i}_ip"] = self.addr(rs)
        out.update(self.topology.extra)
        return out

    def render(self, template: str, director: str) -> str:
        """Substitute ``{{name}}`` placeholders; an unknown one is an error, not blank."""
        values = self.variables(director)

        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            if key not in values:
                raise NetnsError(f"unknown placeholder {{{{{key}}}}}; known: {sorted(values)}")
            return values[key]

        return re.sub(r"\{\{\s*([a-z0-9_]+)\s*\}\}", sub, template)

    def describe(self) -> str:
        lines = [f"rig {self.name} ({self.topology.mode.upper()}), VIP {self.vip}"]
        for spec in self.topology.nodes:
            ports = ", ".join(f"{p.ifname}@{p.segment} {' '.join(p.addrs)}" for p in spec.ports)
            extra = f"  page {spec.label!r}" if spec.label else ""
            lines.append(
                f"  {spec.role:<10} {spec.name:<7} {self.ns(spec.name):<18} {ports}{extra}"
            )
        return "\n".join(lines)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.httpd.clear()
        super().close()


def summary(lab: Lab) -> dict[str, Any]:
    """A JSON-able view of the lab, for logs and the demo."""
    return {
        "rig": lab.name,
        "mode": lab.topology.mode,
        "vip": lab.vip,
        "nodes": {n.name: {"ns": lab.ns(n.name), "addr": n.addr()} for n in lab.topology.nodes},
    }
