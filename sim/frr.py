"""FRR configuration for the cluster rig: an upstream router and directors speaking OSPF.

Why: in seed 001's cluster mode a routing daemon announces the virtual
addresses a director holds on ``lo``; pykeep only makes those addresses
follow health.  This module holds the FRR side of the rig as text, so the
scenario (``sim/cluster.py``) only starts processes.

What FRR 8.4 needs in namespaces, measured on this host:

- one run directory per namespace, owned by the ``frr`` user (``-N NAME``
  puts the daemons' sockets and pid files under ``/var/run/frr/NAME``);
- an explicit router-id for each ``ospfd`` (the namespaces' addresses would
  otherwise all look alike to the automatic choice, made before they exist);
- ``timers lsa min-arrival 0``, ``timers throttle lsa all 0`` and
  ``ip ospf retransmit-interval 1`` everywhere: a receiver drops an LSA
  instance that arrives within 1 s of the previous one and waits for the
  5 s retransmission, so a virtual address that left and returned, or a
  director that restarted, was otherwise held back 5-10 s (a restarted
  director got its route back to the clients that long after the router
  had started sending it traffic).

Every link is an OSPF point-to-point network (no designated-router
election), hello 1 s, dead 3 s: a silent director is withdrawn 3-4 s after
it stops (the dead interval from its last hello, then the router's SPF).
The directors redistribute only the /32s of the virtual addresses, by a
prefix list, as external routes with one metric, so the router has equal
paths to each and spreads them by ECMP.
"""

from __future__ import annotations

import os
import pwd
import time
from dataclasses import dataclass
from pathlib import Path

FRR_BIN = Path("/usr/lib/frr")
RUN_ROOT = Path("/var/run/frr")
HELLO_S = 1
DEAD_S = 3


@dataclass(frozen=True)
class Link:
    """One OSPF point-to-point interface and the prefix it sits in."""

    ifname: str
    prefix: str


def _interfaces(links: list[Link]) -> list[str]:
    out: list[str] = []
    for link in links:
        out += [
            f"interface {link.ifname}",
            " ip ospf network point-to-point",
            f" ip ospf hello-interval {HELLO_S}",
            f" ip ospf dead-interval {DEAD_S}",
            " ip ospf retransmit-interval 1",
            "!",
        ]
    return out


def _ospf_head(router_id: str) -> list[str]:
    """``router ospf`` with the router-id and the throttles every ospfd here needs (module doc)."""
    return [
        "router ospf",
        f" ospf router-id {router_id}",
        " log-adjacency-changes detail",
        " timers lsa min-arrival 0",
        " timers throttle lsa all 0",
        " timers throttle spf 0 50 500",
    ]


def router_ospfd(router_id: str, links: list[Link], stubs: list[Link]) -> str:
    """The upstream router: OSPF towards every director, its client side as a stub network."""
    lines = ["frr defaults traditional", "hostname router", "log timestamp precision 3", "!"]
    lines += _interfaces(links)
    lines += [
        *_ospf_head(router_id),
        *(f" network {link.prefix} area 0" for link in links),
        *(f" network {s.prefix} area 0" for s in stubs),
        *(f" passive-interface {s.ifname}" for s in stubs),
        "!",
    ]
    return "\n".join(lines) + "\n"


def director_ospfd(name: str, router_id: str, uplink: Link, vip_prefix: str) -> str:
    """A director: its uplink, and the /32s on ``lo`` inside ``vip_prefix`` redistributed."""
    lines = [
        "frr defaults traditional",
        f"hostname {name}",
        "log timestamp precision 3",
        "!",
        *_interfaces([uplink]),
        f"ip prefix-list VIPS seq 5 permit {vip_prefix} ge 32",
        "!",
        "route-map VIPS permit 10",
        " match ip address prefix-list VIPS",
        "!",
        *_ospf_head(router_id),
        f" network {uplink.prefix} area 0",
        " redistribute connected metric 10 metric-type 2 route-map VIPS",
        "!",
    ]
    return "\n".join(lines) + "\n"


def zebra_conf(name: str) -> str:
    return f"frr defaults traditional\nhostname {name}\n!\n"


def prepare(pathspace: str, configs: dict[str, str]) -> Path:
    """Make the ``frr``-owned run directory of a namespace and write ``configs`` into it.

    Configs and logs live there too: the daemons drop to the ``frr`` user
    before they open them, and a test's temporary directory is root's alone.
    """
    try:
        ent = pwd.getpwnam("frr")
    except KeyError as exc:
        raise RuntimeError("no frr user: apt-get install frr (make setup installs it)") from exc
    run = RUN_ROOT / pathspace
    run.mkdir(parents=True, exist_ok=True)
    os.chown(RUN_ROOT, ent.pw_uid, ent.pw_gid)
    os.chown(run, ent.pw_uid, ent.pw_gid)
    for stale in run.iterdir():
        stale.unlink(missing_ok=True)
    for daemon, text in configs.items():
        path = run / f"{daemon}.conf"
        path.write_text(text)
        path.chmod(0o644)
    return run


def wait_socket(run: Path, timeout: float) -> None:
    """Until zebra listens for its clients (ospfd started earlier retries, but slowly)."""
    deadline = time.monotonic() + timeout
    while not (run / "zserv.api").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"zebra did not open {run / 'zserv.api'} in {timeout:.0f} s")
        time.sleep(0.1)


def argv(daemon: str, pathspace: str, run: Path) -> list[str]:
    """The foreground command line of one daemon (``zebra`` or ``ospfd``) in its pathspace."""
    return [
        str(FRR_BIN / daemon),
        *("-N", pathspace),
        *("-f", str(run / f"{daemon}.conf")),
        *("-i", str(run / f"{daemon}.pid")),
        *("-P", "0"),  # no vty TCP port; vtysh -N still works through the socket
        *("--log", f"file:{run / f'{daemon}.log'}", "--log-level", "info"),
    ]
