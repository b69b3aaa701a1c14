"""The process tracker: counts the processes each ``vrrp_track_process`` names.

As keepalived 2.2.7 does (core/track_process.c), it listens to the kernel's
proc connector (NETLINK_CONNECTOR, CN_IDX_PROC: fork, exec, comm and exit
events), then reads /proc once, and from then on only looks at the processes
the events name.  The connector only answers sockets of the initial network
namespace: from any other one the listen request is refused (ECONNREFUSED),
and keepalived then leaves every tracked process without quorum for good.
pykeep falls back to reading the whole of /proc every ``PERIOD`` (0.2 s)
there, so a change is seen within 0.2 s rather than at once.  The delays and
quorum rules (:mod:`vrrp.process_rules`) are keepalived's either way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import trio

from pykeep.config.model import VrrpTrackProcess
from vrrp.process_rules import Cause, Quorum, cause_of, matches

PERIOD = 0.2
#: Longer command lines are cut: parameters are compared within this many bytes.
CMDLINE_MAX = 4096


@dataclass(frozen=True)
class ProcInfo:
    """What matching needs from one /proc/PID: comm (None for a zombie), parent, cmdline."""

    pid: int
    comm: str | None
    ppid: int
    cmdline: bytes | None


def _read(path: str, limit: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_proc(pid: int, want_cmdline: bool, root: str = "/proc") -> ProcInfo | None:
    """One process now, or None when it is gone."""
    stat = _read(f"{root}/{pid}/stat", 512)
    if not stat:
        return None
    # "PID (comm) S PPID …": comm may hold spaces and parentheses
    lp, rp = stat.find(b"("), stat.rfind(b")")
    if lp < 0 or rp < 0:
        return None
    rest = stat[rp + 2 :].split()
    if len(rest) < 2:
        return None
    zombie = rest[0] == b"Z"
    comm = None if zombie else stat[lp + 1 : rp].decode(errors="replace")
    cmdline = _read(f"{root}/{pid}/cmdline", CMDLINE_MAX) if want_cmdline else None
    return ProcInfo(pid, comm, int(rest[1]), cmdline)


def read_procs(want_cmdline: bool, root: str = "/proc") -> list[ProcInfo]:
    """Every process now: a process that vanishes while being read is skipped."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    infos = (read_proc(int(n), want_cmdline, root) for n in names if n.isdigit())
    return [i for i in infos if i is not None]


# -- the proc connector (linux/connector.h, linux/cn_proc.h) --------------------
NETLINK_CONNECTOR = 11
CN_IDX_PROC = CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
NLMSG_DONE = 3
PROC_EVENT_FORK, PROC_EVENT_EXEC, PROC_EVENT_COMM = 0x1, 0x2, 0x200
PROC_EVENT_EXIT = 0x80000000
_NLMSG = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")
_EV_HEAD = struct.Struct("=IIQ")  # what, cpu, timestamp
_FOUR = struct.Struct("=iiii")
_EVENTS = _NLMSG.size + _CN_MSG.size + _EV_HEAD.size


def open_connector() -> socket.socket | None:
    """A socket that hears process events, or None where the kernel refuses it."""
    try:
        sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_CONNECTOR
        )
    except OSError:
        return None
    try:
        sock.bind((0, CN_IDX_PROC))
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, 4, 0) + struct.pack(
            "=I", PROC_CN_MCAST_LISTEN
        )
        sock.send(_NLMSG.pack(_NLMSG.size + len(cn), NLMSG_DONE, 0, 0, 0) + cn)
    except OSError:  # ECONNREFUSED outside the initial network namespace
        sock.close()
        return None
    sock.setblocking(False)
    return sock


def parse_events(data: bytes) -> list[tuple[int, int, int]]:
    """(what, pid, other) for the process events of one datagram; threads are left out.

    ``other`` is the parent for a fork (the child is ``pid``), else 0.
    """
    out: list[tuple[int, int, int]] = []
    off = 0
    while off + _EVENTS + _FOUR.size <= len(data):
        length = _NLMSG.unpack_from(data, off)[0]
        if length < _EVENTS:
            break
        what = _EV_HEAD.unpack_from(data, off + _NLMSG.size + _CN_MSG.size)[0]
        a, b, c, d = _FOUR.unpack_from(data, off + _EVENTS)
        if what == PROC_EVENT_FORK and c == d:  # parent pid, tgid, child pid, tgid
            out.append((what, c, b))
        elif what in (PROC_EVENT_EXEC, PROC_EVENT_COMM, PROC_EVENT_EXIT) and a == b:
            out.append((what, a, 0))
        off += (length + 3) & ~3
    return out


class ProcessWatcher:
    """Counts matching processes for every definition and publishes quorum changes.

    ``publish(name, up)`` is called for each definition once by :meth:`scan_now`
    (the initial state, before any instance subscribes) and then on every change.
    """

    def __init__(
        self,
        definitions: Iterable[VrrpTrackProcess],
        publish: Callable[[str, bool], None],
        *,
        period: float = PERIOD,
        reader: Callable[[bool], list[ProcInfo]] = read_procs,
        reader_one: Callable[[int, bool], ProcInfo | None] = read_proc,
    ) -> None:
        self.defs = tuple(definitions)
        self.publish = publish
        self.period = period
        self.reader = reader
        self.reader_one = reader_one
        self.want_cmdline = any(d.full_command for d in self.defs)
        self.pids: dict[str, set[int]] = {}
        self.quorums: dict[str, Quorum] = {}
        self.sock: socket.socket | None = None

    def start(self, connector: Callable[[], socket.socket | None] = open_connector) -> None:
        """Listen for process events first, then read /proc (track_process.c init order)."""
        self.sock = connector()
        self.scan_now()

    # -- events (track_process.c check_process_fork / _termination / check_process)
    def _moved(self, d: VrrpTrackProcess, cause: Cause, now: float) -> None:
        changed = self.quorums[d.name].update(len(self.pids[d.name]), cause, now)
        if changed is not None:
            self.publish(d.name, changed)

    def on_event(self, what: int, pid: int, parent: int, now: float) -> None:
        """One connector event: only the named process is looked at."""
        if what == PROC_EVENT_EXIT:
            for d in self.defs:
                if pid in self.pids[d.name]:
                    self.pids[d.name].discard(pid)
                    self._moved(d, Cause.EXIT, now)
        elif what == PROC_EVENT_FORK:
            for d in self.defs:  # a counted process's child is counted
                if parent in self.pids[d.name] and pid not in self.pids[d.name]:
                    self.pids[d.name].add(pid)
                    self._moved(d, Cause.FORK, now)
        else:  # exec or comm: the process may now match, or no longer
            info = self.reader_one(pid, self.want_cmdline)
            for d in self.defs:
                hit = info is not None and matches(d, info.comm, info.cmdline)
                if hit != (pid in self.pids[d.name]):
                    (self.pids[d.name].add if hit else self.pids[d.name].discard)(pid)
                    self._moved(d, Cause.EXEC, now)

    def fire_due(self, now: float) -> None:
        for name, q in self.quorums.items():
            fired = q.fire(now)
            if fired is not None:
                self.publish(name, fired)

    def _count(
        self, procs: list[ProcInfo] | None = None
    ) -> tuple[dict[str, set[int]], dict[int, int]]:
        if procs is None:
            procs = self.reader(self.want_cmdline)
        parents = {p.pid: p.ppid for p in procs}
        found: dict[str, set[int]] = {d.name: set() for d in self.defs}
        for p in procs:
            for d in self.defs:
                if matches(d, p.comm, p.cmdline):
                    found[d.name].add(p.pid)
        return found, parents

    def scan_now(self) -> None:
        """The first scan (track_process.c ``read_procs`` at start): sets and publishes."""
        found, _parents = self._count()
        for d in self.defs:
            self.pids[d.name] = found[d.name]
            q = self.quorums[d.name] = Quorum.for_process(d, len(found[d.name]))
            self.publish(d.name, q.up)

    def step(self, now: float, procs: list[ProcInfo] | None = None) -> None:
        """One later scan (``procs``, or read now): count again, then let due delays judge."""
        found, parents = self._count(procs)
        for d in self.defs:
            before = self.pids.get(d.name, set())
            now_pids = found[d.name]
            q = self.quorums[d.name]
            if now_pids != before:
                new = now_pids - before
                cause = cause_of(len(before - now_pids), new, parents, before)
                self.pids[d.name] = now_pids
                changed = q.update(len(now_pids), cause, now)
                if changed is not None:
                    self.publish(d.name, changed)
        self.fire_due(now)

    def _next_deadline(self) -> float:
        return min(
            (q.deadline for q in self.quorums.values() if q.deadline is not None),
            default=float("inf"),
        )

    async def run(self) -> None:
        """Follow events (or scan every ``period``), waking when a delay ends."""
        if not self.quorums:
            self.start()
        if self.sock is None:
            await self._poll()
            return
        sock = self.sock
        try:
            while True:
                with trio.move_on_at(self._next_deadline()):
                    await trio.lowlevel.wait_readable(sock)
                now = trio.current_time()
                lost = False
                while True:
                    try:
                        data = sock.recv(65536)
                    except BlockingIOError:
                        break
                    except OSError as e:
                        if e.errno != errno.ENOBUFS:
                            raise
                        lost = True  # events were dropped: read /proc again
                        continue
                    for what, pid, parent in parse_events(data):
                        self.on_event(what, pid, parent, now)
                if lost:
                    self.step(now)
                self.fire_due(now)
        finally:
            sock.close()

    async def _poll(self) -> None:
        while True:
            now = trio.current_time()
            wake = now + self.period
            for q in self.quorums.values():
                if q.deadline is not None:
                    wake = min(wake, q.deadline)
            await trio.sleep_until(wake)
            # Read in a worker thread: on a host with thousands of processes a
            # scan takes tens of milliseconds, which the adverts must not wait for.
            procs = await trio.to_thread.run_sync(self.reader, self.want_cmdline)
            self.step(trio.current_time(), procs)
