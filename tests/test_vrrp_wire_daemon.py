"""The daemon around the instances: namespace, pid files, leftovers, notify (issue 4).

``pykeep -s NS`` is started from the host and must work inside ``NS``; the
pid files exist while it runs and are gone after SIGTERM; a VIP left on the
interface by a crashed run is removed at start-up, before any election;
notify / notify_master / notify_fifo fire with keepalived's arguments.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from pykeep.config.model import IPAddress
from sim.netns import Rig
from tests.netns_vrrp import PY, ROOT, lan, until, vrrp_conf, wait_owner, workdir

pytestmark = pytest.mark.netns

VIP = "10.99.0.200"
Make = Callable[..., Rig]


def test_namespace_pidfiles_leftovers_notify(rig: Make) -> None:
    r = rig(hint="vdmn")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"})
        # a crashed run left the VIP behind
        r.ip("a", "addr", "add", f"{VIP}/32", "dev", "eth0")
        out = wd / "notify.out"
        script = wd / "notify.sh"
        script.write_text(f'#!/bin/sh\necho "$@" >> {out}\n')
        script.chmod(0o755)
        master = wd / "master.out"
        mscript = wd / "master.sh"
        mscript.write_text(f"#!/bin/sh\necho master-$# >> {master}\n")
        mscript.chmod(0o755)
        fifo = wd / "fifo"
        os.mkfifo(fifo)
        rd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        extra = f"    notify {script}\n    notify_master {mscript}\n"
        conf = wd / "k.conf"
        conf.write_text(vrrp_conf(priority=150, extra=extra, globals_=f"    notify_fifo {fifo}\n"))
        pid, vpid = wd / "main.pid", wd / "vrrp.pid"
        argv = [PY, "-m", "pykeep", "-P", "-n", "-l", "-f", str(conf)]
        argv += ["-p", str(pid), "-r", str(vpid), "-s", r.ns("a")]
        log = open(wd / "log", "w")  # noqa: SIM115 - handed to the child
        proc = r.popen(
            None,
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            cwd=ROOT,
        )
        log.close()
        try:
            until(lambda: pid.exists() and vpid.exists(), 5)
            assert pid.read_text().strip() == str(proc.pid) == vpid.read_text().strip()
            # the leftover is gone well before the first election could add it back
            until(lambda: VIP not in r.ip("a", "addr", "show", "dev", "eth0"), 2.5)
            wait_owner(r, "client", VIP, r.mac("a"), 3.5 + 3)
            until(lambda: out.exists() and "MASTER" in out.read_text(), 3)
            lines = out.read_text().split("\n")
            assert "INSTANCE VI_1 BACKUP 150" in lines and "INSTANCE VI_1 MASTER 150" in lines
            assert master.read_text().strip() == "master-0"
            got = os.read(rd, 4096).decode()
            assert 'INSTANCE "VI_1" MASTER 150\n' in got
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(10)
            assert proc.returncode == 0
            assert not pid.exists() and not vpid.exists()
            assert VIP not in r.ip("a", "addr", "show", "dev", "eth0")
            time.sleep(0.2)
            assert "INSTANCE VI_1 STOP" in out.read_text()
        finally:
            os.close(rd)
            if proc.poll() is None:
                r.kill(proc)


def test_garp_interval_paces_frames(rig: Make) -> None:
    """vrrp_garp_interval: consecutive GARPs on one interface are spaced, not bursted."""
    import ipaddress
    import socket

    import trio
    from scapy.layers.l2 import ARP, Ether

    from sim import netns
    from vrrp.garp import ETH_P_ARP, Announcer

    r = rig(hint="vgarp")
    lan(r, {"a": "10.99.0.11/24"})
    mac = bytes.fromhex(r.mac("a").replace(":", ""))
    with netns.entered(r.ns("client")):
        rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    with netns.entered(r.ns("a")):
        idx = int(r.ip("a", "-o", "link", "show", "eth0").split(":")[0])
        ann = Announcer("eth0", idx, mac, 0.1, 0.0)
    rx.bind(("eth0", 0))
    rx.settimeout(2)
    vips: list[IPAddress] = [ipaddress.IPv4Address(f"10.99.0.{n}") for n in (200, 201, 202)]
    try:
        t0 = time.monotonic()
        trio.run(ann.announce, vips, 2)
        elapsed = time.monotonic() - t0
    finally:
        ann.close()
    stamps = []
    for _ in range(6):
        frame = Ether(rx.recv(2048))
        assert frame[ARP].psrc == frame[ARP].pdst
        stamps.append(frame[ARP].psrc)
    rx.close()
    assert stamps == [str(v) for v in vips] * 2
    assert 0.45 <= elapsed < 1.5, elapsed  # five gaps of 100 ms
