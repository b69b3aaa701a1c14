"""Inside the VM: real servers in a namespace, then keepalived -C and pykeep -C in turn.

``python -m tests.differential_vm.guest RWDIR`` reads ``RWDIR/plan.json``
(written by :mod:`tests.differential_vm.__main__`) and writes
``RWDIR/result.json``.  One process does all of it, because every process
start costs about half a second under emulation and a Python with the
project's imports most of a minute.

The real servers are listening sockets opened inside the namespace
``pk-vd-rs`` (behind a veth pair from the guest's own namespace, where the
daemons run), served by one thread: a connection that sends nothing is
closed (TCP_CHECK), an HTTP request gets 200 with body ``ok`` on ``/ok`` and
404 elsewhere (HTTP_GET).  A target is down when its socket is closed (the
connect is refused) and its MISC_CHECK flag file is absent.

For each daemon kind and each batch of cases: the targets are put in their
initial state, the daemon is started with the batch's file (or, with
``reload`` in the plan, the first batch is started and the others are
loaded by SIGHUP), and once the batch's first service is in the kernel and
the daemon's checkers run, the flapping targets change state three times,
``phase`` seconds apart, and end in their final state; ``phase`` seconds later the table is saved.
``/proc/net/ip_vs`` is polled all along for the sequence of changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sim import netns
from sim.proc_ipvs import proc_entries
from tests.differential_vm import compare
from tests.differential_vm.generator import (
    MISC_DIR,
    RS_NET,
    SCHEDULERS,
    SORRY,
    TARGETS,
    Target,
    phase_up,
)

NS = "pk-vd-rs"
PHASES = 4
POLL = 0.3
SCHEDULER_MODULES = [f"ip_vs_{s}" for s in SCHEDULERS]


class Servers:
    """The pool's listeners, opened and closed on demand, served by one thread."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.listening: dict[Target, socket.socket] = {}
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def set(self, target: Target, up: bool) -> None:
        flag = Path(MISC_DIR) / target.key.replace(":", "_")
        with self.lock:
            if up and target not in self.listening:
                s = netns.socket_in(NS, socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((target.host, target.port))
                s.listen(128)
                s.setblocking(False)
                self.listening[target] = s
                self.sel.register(s, selectors.EVENT_READ, None)
                flag.touch()
            elif not up and target in self.listening:
                s = self.listening.pop(target)
                self.sel.unregister(s)
                s.close()
                flag.unlink(missing_ok=True)

    def _serve(self) -> None:
        buffers: dict[socket.socket, bytes] = {}
        while not self.stopped:
            with self.lock:
                events = self.sel.select(timeout=0.05)
                for key, _ in events:
                    sock: socket.socket = key.fileobj  # type: ignore[assignment]
                    if key.data is None:
                        with contextlib.suppress(OSError):
                            conn, _ = sock.accept()
                            conn.setblocking(False)
                            buffers[conn] = b""
                            self.sel.register(conn, selectors.EVENT_READ, "conn")
                        continue
                    try:
                        chunk = sock.recv(4096)
                    except OSError:
                        chunk = b""
                    buf = buffers.get(sock, b"") + chunk
                    if chunk and b"\r\n\r\n" not in buf and len(buf) < 8192:
                        buffers[sock] = buf
                        continue
                    if chunk:
                        path = buf.split(b" ", 2)[1] if buf.count(b" ") >= 2 else b""
                        status = b"200 OK" if path == b"/ok" else b"404 Not Found"
                        body = b"ok" if path == b"/ok" else b"missing"
                        head = b"HTTP/1.0 " + status + b"\r\nContent-Type: text/plain\r\n"
                        head += b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                        with contextlib.suppress(OSError):
                            sock.setblocking(True)
                            sock.settimeout(1)
                            sock.sendall(head + body)
                    self.sel.unregister(sock)
                    buffers.pop(sock, None)
                    sock.close()
            if not events:
                time.sleep(0.01)

    def close(self) -> None:
        self.stopped = True
        self.thread.join(timeout=5)
        for t in list(self.listening):
            self.set(t, False)


def setup_network() -> None:
    netns.create_namespace(NS)
    hosts = sorted({t.host for t in TARGETS} | {SORRY.split()[0]})
    lines = [
        f"link add vd0 type veth peer name eth0 netns {NS}",
        f"addr add {RS_NET}.1/24 dev vd0",
        "link set vd0 up",
    ]
    subprocess.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True)
    inner = [f"addr add {h}/24 dev eth0" for h in hosts] + ["link set eth0 up"]
    subprocess.run(
        ["ip", "-n", NS, "-batch", "-"], input="\n".join(inner) + "\n", text=True, check=True
    )


def teardown_network() -> None:
    with contextlib.suppress(Exception):
        netns.delete_namespace(NS)


def read_proc() -> dict[str, str]:
    try:
        return proc_entries(Path("/proc/net/ip_vs").read_text())
    except OSError:
        return {}


def ipvsadm_save() -> str:
    return subprocess.run(["ipvsadm", "-Sn"], capture_output=True, text=True).stdout


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its children, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def run_kind(
    kind: str, plan: dict[str, Any], rw: Path, servers: Servers, out: dict[str, Any]
) -> None:
    conf = rw / f"{kind}.conf"
    cmd = plan["commands"][kind]
    phase = float(plan["phase"])
    # The phases start when the daemon's checkers run: keepalived's do as soon
    # as its table is written, pykeep's minutes later under emulation (its
    # control socket, opened once the checkers are started, tells when).
    ready = plan.get("ready", {}).get(kind)
    proc: subprocess.Popen[bytes] | None = None
    tables: dict[str, str] = {}
    changes: dict[str, list[str]] = {}
    timings: list[dict[str, Any]] = []
    log = open(rw / f"{kind}.log", "wb")  # noqa: SIM115 - closed in finally
    try:
        for b, (cases, text) in enumerate(zip(plan["batches"], plan["confs"], strict=True)):
            owned = set(cases)
            if proc is not None and not plan["reload"]:
                out.setdefault(kind, {}).setdefault("left_between", []).append(stop(proc))
                proc = None
            for t in TARGETS:
                servers.set(t, phase_up(t, 0))
            conf.write_text(text)
            rec = compare.Recorder()
            rec.feed({k: v for k, v in read_proc().items() if compare.entry_case(k) in owned})
            started = time.monotonic()
            if proc is None:
                env = dict(os.environ, PYKEEP_STATE_DIR=str(rw))
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            else:
                proc.send_signal(signal.SIGHUP)
            t0 = None
            limit = started + float(plan["start_limit"])
            next_phase = 1
            while True:
                now = time.monotonic()
                snap = {k: v for k, v in read_proc().items() if compare.entry_case(k) in owned}
                rec.feed(snap)
                if t0 is None and snap and (ready is None or Path(ready).exists()):
                    t0 = now
                if t0 is None and (now > limit or proc.poll() is not None):
                    break
                if t0 is not None and next_phase < PHASES and now >= t0 + next_phase * phase:
                    for t in TARGETS:
                        servers.set(t, phase_up(t, next_phase))
                    next_phase += 1
                if t0 is not None and now >= t0 + PHASES * phase:
                    break
                time.sleep(POLL)
            tables[str(b)] = ipvsadm_save()
            time.sleep(2 * POLL)
            rec.feed({k: v for k, v in read_proc().items() if compare.entry_case(k) in owned})
            for key, seq in rec.sequences.items():
                changes[key] = seq
            timings.append(
                {
                    "batch": b,
                    "appeared_s": None if t0 is None else round(t0 - started, 1),
                    "cpu_s": round(tree_cpu(proc.pid), 1),
                    "stable": tables[str(b)] == ipvsadm_save(),
                }
            )
            out[kind] = {"tables": tables, "changes": changes, "timings": timings}
            save(rw, out)
            if t0 is None:
                break
    finally:
        left = stop(proc) if proc is not None else ""
        log.close()
        tail = (rw / f"{kind}.log").read_text(errors="replace")[-8000:]
        out.setdefault(kind, {}).update({"left_after_stop": left, "log_tail": tail})
        save(rw, out)


def stop(proc: subprocess.Popen[bytes]) -> str:
    """Stop a daemon; what it left in the table (nothing, for both), then an empty table."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    left = ipvsadm_save()
    subprocess.run(["ipvsadm", "-C"], check=False)
    return left


def save(rw: Path, out: dict[str, Any]) -> None:
    tmp = rw / "result.json.tmp"
    tmp.write_text(json.dumps(out))
    tmp.replace(rw / "result.json")


def main(argv: list[str]) -> int:
    rw = Path(argv[0])
    plan = json.loads((rw / "plan.json").read_text())
    subprocess.run(["modprobe", "-a", "ip_vs", *SCHEDULER_MODULES], check=False)
    subprocess.run(["ipvsadm", "-C"], check=False)
    Path(MISC_DIR).mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    setup_network()
    servers = Servers()
    try:
        for kind in plan["kinds"]:
            run_kind(kind, plan, rw, servers, out)
    finally:
        servers.close()
        teardown_network()
        save(rw, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
