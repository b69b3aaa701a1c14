"""Seeded generator of checker-side keepalived.conf pieces for the runtime differential.

Each generated *case* is a small set of virtual servers (one head: an
address, a fwmark or a ``virtual_server_group``) with its real servers and
checkers, drawn from pykeep's own tables (the IPVS schedulers of the check
parser) and the virtual-server keywords that shape the IPVS table:
lb_algo, lb_kind, protocol/ops, persistence (timeout, granularity), quorum
with hysteresis, inhibit_on_failure (service and server), weights,
sorry_server (+ sorry_server_inhibit), alpha, omega, virtualhost, fwmark and
virtual_server_group heads, and TCP_CHECK / HTTP_GET / MISC_CHECK checkers.

Cases are independent by construction: case ``i`` owns its addresses and
marks alone (:func:`owner` maps any of them back to ``i``), so N cases merge
into one file and the IPVS table splits back into N per-case tables.

The real servers are a fixed pool of *targets* (address, port) whose
behaviour is known: ``up``, ``down``, or flapping and ending ``up`` or
``down`` (:data:`BEHAVIOURS`).  The same ``(seed, index)`` always gives the
same case.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
from dataclasses import dataclass

from pykeep.config.check_parser import LVS_SCHEDULERS

# The guest's kernel (Debian's 6.1) has every scheduler of the check parser but
# "twos" (ip_vs_twos arrived in Linux 6.2); keepalived would fail to add it.
SCHEDULERS = tuple(s for s in LVS_SCHEDULERS if s != "twos")
KINDS = ("NAT", "DR", "TUN")

RS_NET = "10.99.0"
RS_HOSTS = tuple(range(10, 18))
RS_PORTS = (8001, 8002, 8003, 8004)
SORRY = f"{RS_NET}.30 80"
BEHAVIOURS = ("up", "down", "flap_up", "flap_down")
"""What a target does during a run: steady, or flapping and ending up/down."""

HTTP_BODY = b"ok"
HTTP_DIGEST = hashlib.md5(HTTP_BODY).hexdigest()
MISC_DIR = "/run/pk-vd"
"""Where the guest keeps one flag file per live target, for MISC_CHECK scripts."""

IP_BASE = ipaddress.IPv4Address("10.200.0.1")
GROUP_BASE = ipaddress.IPv4Address("10.201.0.1")
FWMARK_BASE = 1000
GROUP_MARK_BASE = 3000
GROUP_PER_NET = 100
MAX_CASES = 1000


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    @property
    def behaviour(self) -> str:
        """Fixed by position, so each host has every behaviour on some port."""
        h = RS_HOSTS.index(int(self.host.rsplit(".", 1)[1]))
        return BEHAVIOURS[(h + RS_PORTS.index(self.port)) % len(BEHAVIOURS)]

    @property
    def key(self) -> str:
        return f"{self.host}:{self.port}"


TARGETS = tuple(Target(f"{RS_NET}.{h}", p) for h in RS_HOSTS for p in RS_PORTS)


def initial_up(t: Target) -> bool:
    """A flapping target starts in the state opposite to its final one."""
    return t.behaviour in ("up", "flap_down")


def phase_up(t: Target, phase: int) -> bool:
    """Whether ``t`` listens in ``phase`` (0 = start; odd phases and the last are final)."""
    if t.behaviour == "up":
        return True
    if t.behaviour == "down":
        return False
    final = t.behaviour == "flap_up"
    return final if phase % 2 == 1 else not final


@dataclass(frozen=True)
class Case:
    index: int
    text: str
    head: str  # "ip", "fwmark" or "group"


def owner(spec: str) -> int | None:
    """The case owning an ``ipvsadm -Sn`` service spec ("10.200.0.3:80", "1003"), or None."""
    host = spec.rsplit(":", 1)[0].strip("[]") if ":" in spec else spec
    if host.isdigit():
        mark = int(host)
        for base in (FWMARK_BASE, GROUP_MARK_BASE):
            if base <= mark < base + MAX_CASES:
                return mark - base
        return None
    try:
        addr = ipaddress.IPv4Address(host)
    except ValueError:
        return None
    if 0 <= int(addr) - int(IP_BASE) < MAX_CASES:
        return int(addr) - int(IP_BASE)
    off = int(addr) - int(GROUP_BASE)
    if 0 <= off < 256 * (MAX_CASES // GROUP_PER_NET + 1) and off % 256 < 2 * GROUP_PER_NET:
        return (off // 256) * GROUP_PER_NET + (off % 256) // 2
    return None


def _group_first(index: int) -> ipaddress.IPv4Address:
    """The first of case ``index``'s two group addresses; a range stays inside its /24."""
    net, slot = divmod(index, GROUP_PER_NET)
    return GROUP_BASE + 256 * net + 2 * slot


def _checker(rng: random.Random, t: Target, vhost: bool) -> str:
    common = (
        "            connect_timeout 3\n            retry 1\n            delay_before_retry 1\n"
    )
    kind = rng.choices(("tcp", "http", "misc"), (60, 33, 7))[0]
    if kind == "tcp":
        port = ""
        if rng.random() < 0.1:
            port = f"            connect_port {rng.choice(RS_PORTS)}\n"
        return f"        TCP_CHECK {{\n{common}{port}        }}\n"
    if kind == "http":
        urls = ""
        for _ in range(rng.choice((1, 1, 2))):
            path, extra = rng.choice(
                (
                    ("/ok", ""),
                    ("/ok", "                status_code 200\n"),
                    ("/ok", f"                digest {HTTP_DIGEST}\n"),
                    ("/ok", "                digest 00000000000000000000000000000000\n"),
                    ("/missing", "                status_code 404\n"),
                    ("/missing", ""),
                )
            )
            urls += f"            url {{\n                path {path}\n{extra}            }}\n"
        host = "            virtualhost chk.example\n" if vhost and rng.random() < 0.5 else ""
        return f"        HTTP_GET {{\n{common}{host}{urls}        }}\n"
    flag = f"{MISC_DIR}/{t.key.replace(':', '_')}"
    if rng.random() < 0.5:
        script, dyn = f"test -e {flag}", ""
    else:
        script = f"test -e {flag} && exit {rng.randint(2, 6)} || exit 1"
        dyn = "            misc_dynamic\n"
    return (
        "        MISC_CHECK {\n"
        f"            misc_path \"/bin/sh -c '{script}'\"\n"
        f"            misc_timeout 5\n{dyn}"
        "        }\n"
    )


def case(seed: int, index: int) -> Case:
    """Case ``index`` of run ``seed``: one virtual server (or group) and its servers."""
    if not 0 <= index < MAX_CASES:
        raise ValueError(f"case index {index} outside 0..{MAX_CASES - 1}")
    rng = random.Random(f"vmdiff:{seed}:{index}")
    head = rng.choices(("ip", "fwmark", "group"), (60, 20, 20))[0]
    proto = "UDP" if head == "ip" and rng.random() < 0.1 else "TCP"
    # DR/TUN real servers take the service's port (keepalived "resetting"),
    # while their checkers keep the written one: half the services share a
    # port with the pool so that both paths are taken.
    port = rng.choice((80, 443, 8080, *RS_PORTS))
    kind = rng.choice(KINDS)
    group = ""
    if head == "ip":
        vs_head = f"{IP_BASE + index} {port}"
    elif head == "fwmark":
        vs_head = f"fwmark {FWMARK_BASE + index}"
    else:
        first = _group_first(index)
        last = int(str(first).rsplit(".", 1)[1]) + 1
        mark = f"    fwmark {GROUP_MARK_BASE + index}\n" if rng.random() < 0.4 else ""
        group = f"virtual_server_group vsg{index} {{\n    {first}-{last} {port}\n{mark}}}\n"
        vs_head = f"group vsg{index}"
    opts = [f"delay_loop {rng.choice((4, 6))}", f"lb_algo {rng.choice(SCHEDULERS)}"]
    opts += [f"lb_kind {kind}", f"protocol {proto}"]
    if proto == "UDP" and rng.random() < 0.5:
        opts.append("ops")
    if rng.random() < 0.3:
        opts.append(f"persistence_timeout {rng.choice((1, 50, 300, 600))}")
        if rng.random() < 0.3:
            opts.append("persistence_granularity 255.255.255.0")
    if rng.random() < 0.2:
        opts.append("inhibit_on_failure")
    if rng.random() < 0.3:
        opts.append("alpha")
    if rng.random() < 0.2:
        opts.append("omega")
    vhost = rng.random() < 0.2
    if vhost:
        opts.append("virtualhost www.example")
    if rng.random() < 0.25:
        opts.append(f"sorry_server {SORRY}")
        if rng.random() < 0.3:
            opts.append("sorry_server_inhibit")
    servers = rng.sample(TARGETS, rng.randint(1, 4))
    weights = [rng.choice((0, 1, 1, 2, 3, 5)) for _ in servers]
    if rng.random() < 0.25:
        opts.append(f"quorum {rng.randint(1, sum(weights) + 2)}")
        if rng.random() < 0.6:
            opts.append(f"hysteresis {rng.randint(0, 2)}")
    body = "".join(f"    {o}\n" for o in opts)
    for t, w in zip(servers, weights, strict=True):
        rs = f"        weight {w}\n"
        if rng.random() < 0.1:
            rs += "        inhibit_on_failure\n"
        n = rng.choices((0, 1, 2), (10, 85, 5))[0]
        rs += "".join(_checker(rng, t, vhost) for _ in range(n))
        body += f"    real_server {t.host} {t.port} {{\n{rs}    }}\n"
    text = f"# case {index} ({head})\n{group}virtual_server {vs_head} {{\n{body}}}\n"
    return Case(index, text, head)


GLOBAL = "global_defs {\n    router_id pk_vd\n    script_user root\n    enable_script_security\n}\n"


def merged(cases: list[Case]) -> str:
    """One configuration file holding ``cases`` (independent by their addresses)."""
    return GLOBAL + "".join(c.text for c in cases)
