"""The BFD rig for tests and bench: a namespace pair, FRR's bfdd, keepalived, our speaker.

The peers are real programs: FRR's ``bfdd`` (run with its own run directory
and an explicit configuration, read back with ``vtysh``) and keepalived's
BFD process.  Our side is :class:`vrrp.bfd.BfdSpeaker` run alone in its
namespace by a small script that prints one JSON line a state change, with
the system monotonic clock, which every namespace shares.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.netns import Rig

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent
BFDD = "/usr/lib/frr/bfdd"
KEEPALIVED = "/usr/sbin/keepalived"
A, B = "10.79.0.1", "10.79.0.2"

SPEAKER = textwrap.dedent(
    r"""
    import ipaddress, json, sys, time, trio
    from pykeep.config.model import BfdInstance
    from vrrp.bfd import BfdSpeaker
    spec = json.loads(sys.argv[1])
    bi = BfdInstance(name=spec.pop("name"), neighbor_ip=ipaddress.ip_address(spec.pop("neighbor")),
                     source_ip=ipaddress.ip_address(spec.pop("source")), **spec)
    def publish(name, up):
        print(json.dumps({"t": time.monotonic(), "name": name, "up": up}), flush=True)
    trio.run(BfdSpeaker([bi], publish, log=lambda m: print(time.monotonic(), m, flush=True)).run)
    """
)


def pair(r: Rig) -> None:
    """Two nodes ``a`` (us) and ``b`` (the peer) on one segment."""
    r.connect("a", "lan", addrs=[f"{A}/24"])
    r.connect("b", "lan", addrs=[f"{B}/24"])


class Events:
    """JSON lines of a child's stdout, collected by a reader thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.items: list[dict[str, Any]] = []
        self.text: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.text.append(line)
            if line.startswith("{"):
                self.items.append(json.loads(line))

    def last_up(self) -> bool | None:
        return self.items[-1]["up"] if self.items else None

    def first_after(self, t: float, up: bool) -> float | None:
        return next((e["t"] for e in self.items if e["t"] >= t and e["up"] == up), None)


def start_speaker(r: Rig, **spec: Any) -> Events:
    spec.setdefault("name", "frr")
    spec.setdefault("neighbor", B)
    spec.setdefault("source", A)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = r.popen(
        "a",
        [PY, "-c", SPEAKER, json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    return Events(p)


class Bfdd:
    """FRR's bfdd in node ``b``, alone: own run directory, explicit config, no zebra."""

    def __init__(
        self,
        r: Rig,
        rx_ms: int = 10,
        tx_ms: int = 10,
        mult: int = 5,
        *,
        node: str = "b",
        local: str = B,
        peer: str = A,
    ) -> None:
        self.r, self.node = r, node
        # bfdd drops to the frr user: its run directory must be reachable by
        # it, which pytest's private tmp_path is not.
        self.wd = wd = Path(tempfile.mkdtemp(prefix="pk-bf-frr-"))
        os.chmod(wd, 0o777)
        self.conf = wd / "bfdd.conf"
        self.conf.write_text(
            f"bfd\n peer {peer} local-address {local}\n  receive-interval {rx_ms}\n"
            f"  transmit-interval {tx_ms}\n  detect-multiplier {mult}\n !\n!\n"
        )
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Bfdd:
        argv = [BFDD, "-u", "frr", "-g", "frr", "-f", str(self.conf)]
        argv += ["-i", str(self.wd / "bfdd.pid"), "--vty_socket", str(self.wd)]
        argv += ["--bfdctl", str(self.wd / "bfdd.sock"), "-z", str(self.wd / "zserv.api")]
        self.proc = self.r.popen(
            self.node, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
        )
        return self

    def show(self) -> str:
        """``show bfd peers`` as bfdd reports it."""
        return subprocess.run(
            ["vtysh", "--vty_socket", str(self.wd), "-c", "show bfd peers"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout

    def status(self) -> str:
        for line in self.show().splitlines():
            if line.strip().startswith("Status:"):
                return line.split(":", 1)[1].strip()
        return ""

    def kill(self) -> None:
        """Stop at once, without a goodbye: the session must expire on our side."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.wd, ignore_errors=True)


def until(cond: Callable[[], object], timeout: float, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


class KeepalivedBfd:
    """keepalived's BFD process in node ``b``: a bfd_instance towards ``a``, nothing else."""

    def __init__(self, r: Rig, wd: Path, extra: str = "") -> None:
        self.r, self.wd = r, wd
        self.conf = wd / "keepalived.conf"
        self.conf.write_text(f"bfd_instance ka {{\n  neighbor_ip {A}\n  source_ip {B}\n{extra}}}\n")
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self) -> KeepalivedBfd:
        w = self.wd
        argv = [KEEPALIVED, "-n", "-l", "-D", "-f", str(self.conf), "-p", str(w / "k.pid")]
        argv += ["-b", str(w / "bfd.pid"), "-r", str(w / "vrrp.pid"), "-c", str(w / "chk.pid")]
        self.proc = self.r.popen(
            "b", argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        t = threading.Thread(target=self._read, daemon=True)
        t.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def said(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def bfd_child(self) -> int:
        return int((self.wd / "bfd.pid").read_text().split()[0])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
