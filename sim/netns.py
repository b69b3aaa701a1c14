"""Network-namespace primitives for the pykeep test rig.

Why this exists: every network behaviour of pykeep (VRRP on the wire, GARP, IPVS
traffic) is tested between real kernel network stacks, one namespace per host.
A rig is a named group of namespaces ``pk-<rig>-<node>``; the L2 segments are
Linux bridges living in their own namespace ``pk-<rig>-sw`` so that no interface
ever appears in the host namespace (several rigs, and several test processes,
can therefore run side by side with identical addresses).

Cleanup is the point of this module.  Everything a rig creates is written to a
state file (``/run/pykeep-sim/<rig>.json``) *before* it is created, so that
``python -m sim down`` can delete namespaces and kill the processes we started
(by PID, checked against the process start time so a recycled PID is never
hit) even after the creating process died.  A live :class:`Rig` also tears
itself down on context-manager exit, at interpreter exit (atexit) and on
SIGTERM/SIGHUP (converted into ``SystemExit`` so ``finally`` blocks run).

Only veth pairs and bridges are used: ``ip link add type dummy`` is not
available on the host kernel this project is developed on.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

PREFIX = "pk-"
SWITCH_NODE = "sw"
STATE_DIR = Path(os.environ.get("PYKEEP_SIM_STATE", "/run/pykeep-sim"))
IFNAME_MAX = 15
SLOWDOWN = 20.0 if os.environ.get("PYKEEP_IN_VM") == "1" else 1.0
"""How much slower everything runs under the virtme-ng VM's emulation (sim.vm)."""
_RIG_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,15}$")
_NODE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")


class NetnsError(RuntimeError):
    """A namespace operation failed; the message names the command and its stderr."""


# --------------------------------------------------------------------------- commands


def _ip(args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=30 * SLOWDOWN, check=False
    )
    if check and proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def ns_argv(ns: str | None, argv: Sequence[str]) -> list[str]:
    """The argv that runs ``argv`` inside namespace ``ns`` (host namespace when None).

    ``ip netns exec`` execs the target, so the PID we get back is the program's own.
    """
    return [*(["ip", "netns", "exec", ns] if ns else []), *argv]


def run(
    ns: str | None,
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float | None = None,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a short command inside ``ns`` and return its captured output."""
    timeout = timeout if timeout is not None else 30.0 * SLOWDOWN
    try:
        proc = subprocess.run(
            ns_argv(ns, argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NetnsError(f"[{ns}] {' '.join(argv)}: timed out after {timeout}s") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise NetnsError(f"[{ns}] {' '.join(argv)}: exit {proc.returncode}: {detail}")
    return proc


def popen(ns: str | None, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Start a long-running process inside ``ns``; untracked (prefer :meth:`Rig.popen`)."""
    kwargs.setdefault("start_new_session", True)
    return subprocess.Popen(ns_argv(ns, argv), **kwargs)


def ping(ns: str | None, addr: str, *, count: int = 1, wait: float = 1.0) -> bool:
    """True if ``addr`` answers ICMP echo from ``ns``.

    iputils' ping is not always installed; busybox (a Makefile dependency) is.
    """
    tool = ["ping"] if shutil.which("ping") else ["busybox", "ping"]
    argv = [*tool, "-c", str(count), "-W", str(max(1, round(wait))), addr]
    return run(ns, argv, check=False, timeout=count * wait + 5).returncode == 0


def list_namespaces(prefix: str = PREFIX) -> list[str]:
    """Names of the existing named namespaces that start with ``prefix``."""
    proc = _ip(["netns", "list"], check=False)
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    return sorted(n for n in names if n.startswith(prefix))


def create_namespace(name: str) -> None:
    _ip(["netns", "add", name])
    # Loopback up: daemons and checkers bind 127.0.0.1; v6 DAD off so addresses are
    # usable at once (otherwise tests race a 1-2 s tentative period).
    _ip(["-n", name, "link", "set", "lo", "up"])
    for key in ("net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"):
        with contextlib.suppress(NetnsError):
            sysctl(name, key, "0")


def delete_namespace(name: str) -> None:
    """Delete a namespace, tolerating one that is already gone."""
    proc = _ip(["netns", "del", name], check=False)
    if proc.returncode != 0 and name in list_namespaces(name):
        raise NetnsError(f"ip netns del {name}: {proc.stderr.strip()}")


def namespace_pids(name: str) -> list[int]:
    proc = _ip(["netns", "pids", name], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def _batch(ns: str, lines: Sequence[str]) -> None:
    """Several ``ip`` commands in one process (each spawn costs ~0.5 s in the VM)."""
    if not lines:
        return
    proc = subprocess.run(
        ["ip", "-n", ns, "-batch", "-"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=30 * SLOWDOWN,
        check=False,
    )
    if proc.returncode != 0:
        raise NetnsError(f"ip -n {ns} -batch: {proc.stderr.strip()} in {list(lines)}")


def _sysctl_file(ns: str | None, key: str) -> contextlib.AbstractContextManager[None]:
    return entered(ns) if ns else contextlib.nullcontext()


def sysctl(ns: str | None, key: str, value: str | int) -> str:
    """Write ``key`` (dotted form) inside ``ns`` and return the previous value.

    ``/proc/sys/net`` shows the namespace of the thread that opens it, so this
    switches the calling thread in (no subprocess, no dependency on sysctl(8)).
    """
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with _sysctl_file(ns, key):
            with open(path) as f:
                old = f.read().strip()
            with open(path, "w") as f:
                f.write(str(value))
    except OSError as exc:
        raise NetnsError(f"[{ns}] sysctl {key}={value}: {exc.strerror}") from None
    return old


def read_sysctl(ns: str | None, key: str) -> str:
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with _sysctl_file(ns, key), open(path) as f:
            return f.read().strip()
    except OSError as exc:
        raise NetnsError(f"[{ns}] sysctl {key}: {exc.strerror}") from None


def link_set(ns: str, ifname: str, *, up: bool) -> None:
    _ip(["-n", ns, "link", "set", ifname, "up" if up else "down"])


def addresses(ns: str, ifname: str | None = None) -> list[str]:
    """The ``addr/prefix`` strings configured in ``ns`` (on ``ifname`` if given)."""
    args = ["-n", ns, "-j", "addr", "show"] + (["dev", ifname] if ifname else [])
    data = json.loads(_ip(args).stdout or "[]")
    return [f"{a['local']}/{a['prefixlen']}" for link in data for a in link.get("addr_info", [])]


def link_mac(ns: str, ifname: str) -> str:
    data = json.loads(_ip(["-n", ns, "-j", "link", "show", "dev", ifname]).stdout)
    return str(data[0]["address"])


# --------------------------------------------------------------------------- in-process setns

_CLONE_NEWNET = 0x40000000
_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def entered(ns: str) -> Iterator[None]:
    """Switch *the calling thread* into ``ns`` for the block, then back.

    Sockets keep the namespace they were created in, so this is how a test opens a
    raw socket on a node's interface without a subprocess.  Do not ``await`` (or
    otherwise yield to other code on this thread) inside the block.
    """
    try:
        target = open(f"/run/netns/{ns}", "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise NetnsError(f"namespace {ns}: {exc.strerror}") from None
    with open("/proc/thread-self/ns/net", "rb") as home, target:
        _setns(target.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())


def socket_in(ns: str, family: int, type: int, proto: int = 0) -> socket.socket:
    """A socket created inside ``ns`` (it stays bound to that namespace)."""
    with entered(ns):
        return socket.socket(family, type, proto)


# --------------------------------------------------------------------------- process identity


def _start_time(pid: int) -> int | None:
    """Kernel start time of ``pid`` (clock ticks since boot), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(pid: int, start: int | None) -> bool:
    """Running (not a zombie) and the same process as when we recorded it."""
    now = _start_time(pid)
    return now is not None and (start is None or now == start) and not _zombie(pid)


def kill_pid(pid: int, start: int | None, *, grace: float = 2.0) -> bool:
    """SIGTERM then SIGKILL the process (and its session group) we started.

    The start time guards against a recycled PID.  Our processes are started with
    ``start_new_session``, so their process group holds only their descendants.
    Returns True if something was signalled.
    """
    if not _alive(pid, start):
        if _start_time(pid) is not None and not _zombie(pid):
            return False  # the PID now belongs to someone else
        # The leader is gone but its group may live on (children of a SIGKILLed
        # daemon); a PID is never reused while it still names a process group.
        if _group_exists(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            return True
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not _alive(pid, start):
                return True
            time.sleep(0.02)
    return True


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# --------------------------------------------------------------------------- state file


def _state_path(rig: str) -> Path:
    return STATE_DIR / f"{rig}.json"


def _write_state(rig: str, state: Mapping[str, Any]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    path = _state_path(rig)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)


def _read_states() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not STATE_DIR.is_dir():
        return out
    for path in STATE_DIR.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            out[path.stem] = json.loads(path.read_text())
    return out


@dataclass
class Tracked:
    """A process started by a rig, identified by PID and kernel start time."""

    pid: int
    start: int | None
    ns: str | None
    argv: list[str]
    proc: subprocess.Popen[Any] | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start, "ns": self.ns, "argv": self.argv}


# --------------------------------------------------------------------------- the rig

_LIVE: set[Rig] = set()
_LIVE_LOCK = threading.Lock()
_SEQ = itertools.count()


def unique_rig_name(hint: str = "t") -> str:
    """A short rig name unique across processes (pid) and within one (counter)."""
    return f"{hint[:6]}{os.getpid() % 100000:x}{next(_SEQ):x}"


@dataclass(frozen=True)
class Attachment:
    """One veth pair: ``ifname`` in the node, ``port`` on ``bridge`` in the switch ns."""

    node: str
    ifname: str
    segment: str
    port: str


class Rig:
    """A group of namespaces ``pk-<name>-<node>`` plus a switch namespace.

    Typical use::

        with Rig("demo") as rig:
            rig.add_node("client")
            rig.connect("client", "lan", addrs=["192.168.65.100/24"])
            rig.run("client", ["ping", "-c1", "192.168.65.155"])
    """

    def __init__(self, name: str | None = None, *, detached: bool = False) -> None:
        name = name or unique_rig_name()
        if not _RIG_NAME_RE.match(name):
            raise NetnsError(f"rig name {name!r}: use 1-16 of [a-z0-9_]")
        self.name = name
        self.detached = detached
        self.nodes: list[str] = []
        self.segments: list[str] = []
        self.attachments: list[Attachment] = []
        self.procs: list[Tracked] = []
        self.info: dict[str, Any] = {}
        self._closed = False
        if _state_path(name).exists() or any(
            n.startswith(f"{PREFIX}{name}-") for n in list_namespaces()
        ):
            raise NetnsError(f"rig {name!r} already exists (python -m sim down --rig {name})")
        self._save()
        with _LIVE_LOCK:
            _LIVE.add(self)
        _install_handlers()

    # -- naming
    def ns(self, node: str) -> str:
        """The namespace name of ``node``."""
        return f"{PREFIX}{self.name}-{node}"

    @property
    def switch_ns(self) -> str:
        return self.ns(SWITCH_NODE)

    def _save(self) -> None:
        _write_state(
            self.name,
            {
                "rig": self.name,
                "owner_pid": os.getpid(),
                "owner_start": _start_time(os.getpid()),
                "detached": self.detached,
                "namespaces": [self.ns(n) for n in self.nodes]
                + ([self.switch_ns] if self.segments else []),
                "nodes": self.nodes,
                "segments": self.segments,
                "procs": [p.to_json() for p in self.procs],
                "info": self.info,
            },
        )

    # -- topology building
    def add_node(self, node: str) -> str:
        if not _NODE_NAME_RE.match(node) or node == SWITCH_NODE:
            raise NetnsError(f"node name {node!r}: use [a-z0-9_], not {SWITCH_NODE!r}")
        if node in self.nodes:
            raise NetnsError(f"node {node!r} already in rig {self.name}")
        self.nodes.append(node)
        self._save()  # recorded before creation: a crash in between is still cleaned up
        create_namespace(self.ns(node))
        return self.ns(node)

    def add_segment(self, segment: str) -> str:
        """An L2 segment: bridge ``br-<segment>`` in the switch namespace."""
        if segment in self.segments:
            return f"br-{segment}"
        bridge = f"br-{segment}"
        if len(bridge) > IFNAME_MAX or not _NODE_NAME_RE.match(segment):
            raise NetnsError(f"segment name {segment!r} too long or invalid")
        first = not self.segments
        self.segments.append(segment)
        self._save()
        if first:
            create_namespace(self.switch_ns)
            # The switch is not a host: no v6 link-local chatter in captures.
            sysctl(self.switch_ns, "net.ipv6.conf.all.disable_ipv6", 1)
            sysctl(self.switch_ns, "net.ipv6.conf.default.disable_ipv6", 1)
        # No snooping and no STP: a plain hub-like switch forwards VRRP multicast and
        # GARPs to every port at once, as the seeds' flat LANs do.
        _ip(
            [
                *("-n", self.switch_ns, "link", "add", bridge, "type", "bridge"),
                *("stp_state", "0", "mcast_snooping", "0", "forward_delay", "0"),
            ]
        )
        link_set(self.switch_ns, bridge, up=True)
        return bridge

    def connect(
        self,
        node: str,
        segment: str,
        *,
        ifname: str = "eth0",
        addrs: Sequence[str] = (),
        mac: str | None = None,
        up: bool = True,
    ) -> Attachment:
        """Plug ``node`` into ``segment`` with a veth pair; ``addrs`` are CIDR strings."""
        if node not in self.nodes:
            self.add_node(node)
        bridge = self.add_segment(segment)
        port = self._port_name(node, segment)
        _batch(
            self.switch_ns,
            [
                f"link add {port} type veth peer name {ifname} netns {self.ns(node)}",
                f"link set {port} master {bridge} up",
            ],
        )
        lines = [f"link set {ifname} address {mac}"] if mac else []
        lines += [f"addr add {addr} dev {ifname}" for addr in addrs]
        lines += [f"link set {ifname} up"] if up else []
        _batch(self.ns(node), lines)
        att = Attachment(node, ifname, segment, port)
        self.attachments.append(att)
        return att

    def _port_name(self, node: str, segment: str) -> str:
        base = f"{node}.{segment}"
        if len(base) > IFNAME_MAX:
            base = f"p{len(self.attachments)}.{segment}"[:IFNAME_MAX]
        return base

    def attachment(self, node: str, segment: str | None = None) -> Attachment:
        for att in self.attachments:
            if att.node == node and (segment is None or att.segment == segment):
                return att
        raise NetnsError(f"{node} is not attached to {segment or 'any segment'}")

    def add_route(self, node: str, dest: str, via: str) -> None:
        _ip(["-n", self.ns(node), "route", "replace", dest, "via", via])

    # -- operations
    def run(self, node: str, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return run(self.ns(node), argv, **kw)

    def ip(self, node: str, *args: str) -> str:
        return _ip(["-n", self.ns(node), *args]).stdout

    def sysctl(self, node: str, key: str, value: str | int) -> str:
        return sysctl(self.ns(node), key, value)

    def ping(self, node: str, addr: str, *, count: int = 1, wait: float = 1.0) -> bool:
        return ping(self.ns(node), addr, count=count, wait=wait)

    def link_set(self, node: str, ifname: str = "eth0", *, up: bool) -> None:
        """Node-side link state: the director sees its own interface go down."""
        link_set(self.ns(node), ifname, up=up)

    def cable(self, node: str, segment: str, *, up: bool) -> None:
        """Switch-side port state: the node is cut off but its own link stays UP."""
        link_set(self.switch_ns, self.attachment(node, segment).port, up=up)

    def addresses(self, node: str, ifname: str | None = None) -> list[str]:
        return addresses(self.ns(node), ifname)

    def mac(self, node: str, ifname: str = "eth0") -> str:
        return link_mac(self.ns(node), ifname)

    def popen(self, node: str | None, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process in ``node`` (host when None), tracked for cleanup by PID.

        Runs in its own session so its whole process group can be signalled.
        """
        ns = self.ns(node) if node else None
        proc = popen(ns, argv, **kwargs)
        tracked = Tracked(proc.pid, _start_time(proc.pid), ns, list(argv), proc)
        self.procs.append(tracked)
        self._save()
        return proc

    def log_path(self, label: str) -> Path:
        """A log file for a process of this rig; deleted with the rig."""
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        return STATE_DIR / f"{self.name}.{label}.log"

    def kill(
        self, proc: subprocess.Popen[Any], *, sig: int | None = None, group: bool = False
    ) -> None:
        """Stop a process this rig started: SIGTERM then SIGKILL, or just ``sig``.

        ``group``: signal its whole process group (a crashed *host*: keepalived's
        children die with their parent instead of shutting down gracefully).
        After a SIGKILL the entry stays tracked while its group still has members,
        so teardown also reaps children the signal did not reach.
        """
        for tracked in list(self.procs):
            if tracked.pid != proc.pid:
                continue
            if sig is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if group and os.getpgid(proc.pid) == proc.pid:
                        os.killpg(proc.pid, sig)
                    else:
                        os.kill(proc.pid, sig)
                if sig != signal.SIGKILL:
                    return
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
                if _group_exists(proc.pid):
                    return
            else:
                kill_pid(tracked.pid, tracked.start)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
            self.procs.remove(tracked)
            self._save()
            return
        raise NetnsError(f"pid {proc.pid} was not started by rig {self.name}")

    # -- teardown
    def close(self) -> None:
        """Kill our processes, delete our namespaces, drop the state file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        errors = _teardown(self.name, [p.to_json() for p in self.procs], self._namespaces())
        for tracked in self.procs:
            if tracked.proc is not None:
                with contextlib.suppress(Exception):
                    tracked.proc.wait(timeout=1)
                for stream in (tracked.proc.stdout, tracked.proc.stderr, tracked.proc.stdin):
                    if stream is not None:
                        with contextlib.suppress(Exception):
                            stream.close()
        self.procs.clear()
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if errors:
            raise NetnsError("; ".join(errors))

    def _namespaces(self) -> list[str]:
        own = [self.ns(n) for n in self.nodes] + ([self.switch_ns] if self.segments else [])
        stray = [n for n in list_namespaces(f"{PREFIX}{self.name}-") if n not in own]
        return own + stray

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __hash__(self) -> int:
        return hash(self.name)


def _teardown(rig: str, procs: Sequence[Mapping[str, Any]], namespaces: Sequence[str]) -> list[str]:
    errors: list[str] = []
    for p in reversed(procs):
        kill_pid(int(p["pid"]), p.get("start"))
    for ns in namespaces:
        try:
            delete_namespace(ns)
        except NetnsError as exc:
            errors.append(str(exc))
    if not errors:
        for leftover in STATE_DIR.glob(f"{rig}.*"):  # logs, run dirs, captures
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover.suffix != ".json":
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        with contextlib.suppress(FileNotFoundError):
            _state_path(rig).unlink()
    return errors


# --------------------------------------------------------------------------- global cleanup


@dataclass(frozen=True)
class RigStatus:
    name: str
    owner_pid: int
    owner_alive: bool
    detached: bool
    namespaces: list[str]
    procs: list[dict[str, Any]]
    info: dict[str, Any]


def status() -> tuple[list[RigStatus], list[str]]:
    """Known rigs (from state files) and ``pk-`` namespaces no state file accounts for."""
    rigs: list[RigStatus] = []
    known: set[str] = set()
    existing = set(list_namespaces())
    for name, st in sorted(_read_states().items()):
        owner = int(st.get("owner_pid", 0))
        nss = [n for n in existing if n.startswith(f"{PREFIX}{name}-")]
        known.update(nss)
        rigs.append(
            RigStatus(
                name=name,
                owner_pid=owner,
                owner_alive=_alive(owner, st.get("owner_start")),
                detached=bool(st.get("detached")),
                namespaces=sorted(nss),
                procs=[p for p in st.get("procs", []) if _alive(p["pid"], p.get("start"))],
                info=dict(st.get("info", {})),
            )
        )
    return rigs, sorted(existing - known)


def down(*, rig: str | None = None, stale_only: bool = False, strays: bool = True) -> list[str]:
    """Delete rigs and kill the processes they started; returns what was removed.

    ``rig``: only that rig.  ``stale_only``: only rigs whose (non-detached) owner is
    dead, which is safe while other test runs are live.  ``strays``: also delete
    ``pk-`` namespaces that no state file claims (a crash before the first save).
    """
    removed: list[str] = []
    errors: list[str] = []
    rigs, orphans = status()
    for st in rigs:
        if rig is not None and st.name != rig:
            continue
        if stale_only and (st.detached or st.owner_alive):
            continue
        live = next((r for r in list(_LIVE) if r.name == st.name), None)
        if live is not None:
            live.close()
            removed.append(f"rig {st.name}")
            continue
        errors += _teardown(st.name, st.procs, st.namespaces)
        removed.append(f"rig {st.name}: {len(st.namespaces)} namespaces, {len(st.procs)} procs")
    if strays and not stale_only:
        for ns in orphans:
            if rig is not None and not ns.startswith(f"{PREFIX}{rig}-"):
                continue
            delete_namespace(ns)
            removed.append(f"namespace {ns}")
    if errors:
        raise NetnsError("; ".join(errors))
    return removed


def _close_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for rig in live:
        if rig.detached:
            continue  # `python -m sim up`: outlives us until `python -m sim down`
        with contextlib.suppress(Exception):
            rig.close()


_handlers_installed = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _install_handlers() -> None:
    """atexit always; SIGTERM/SIGHUP only where nobody else installed a handler.

    SIGINT already raises KeyboardInterrupt, which unwinds ``with Rig()`` blocks.
    """
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_close_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _on_signal)


def check_usable() -> str | None:
    """None if namespaces work here, else a one-line reason (used by the test suite)."""
    if os.geteuid() != 0:
        return f"network-namespace tests need root (euid is {os.geteuid()})"
    probe = f"{PREFIX}probe{os.getpid()}"
    try:
        create_namespace(probe)
        _ip(["-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1"])
        _ip(["-n", probe, "link", "add", "b0", "type", "bridge"])
    except (NetnsError, OSError) as exc:
        return f"ip netns unusable: {exc}"
    finally:
        with contextlib.suppress(NetnsError):
            delete_namespace(probe)
    return None
