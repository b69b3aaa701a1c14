"""Trackers: interfaces (netlink link events), vrrp_scripts and track files.

Each tracker here produces a plain status (link up, script good, file
value); the driver turns it into a ``TrackerChanged`` event with
``vrrp.machine.track_effect`` / ``track_file_effect``, which hold keepalived's
weight rules (keepalived/vrrp/vrrp_track.c).  vrrp_scripts run once per
script, whatever number of instances track them, as in keepalived.

Interface state comes from RTM_NEWLINK/RTM_DELLINK multicast messages on a
netlink socket: no polling, as the issue asks.  "Up" is IFF_UP and
IFF_RUNNING, keepalived's ``IF_FLAGS_UP``.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

import trio

from pykeep import scripts
from pykeep.config.model import VrrpScript, VrrpTrackFile

RTMGRP_LINK = 0x1
RTM_NEWLINK = 16
RTM_DELLINK = 17
IFLA_IFNAME = 3
IFF_UP = 0x1
IFF_RUNNING = 0x40

_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")


def parse_link_messages(data: bytes) -> list[tuple[int, str, bool, bool]]:
    """(ifindex, name, up, deleted) for every link message in a netlink datagram."""
    out: list[tuple[int, str, bool, bool]] = []
    off = 0
    while off + _NLMSG.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, off)
        if length < _NLMSG.size or off + length > len(data):
            break
        if kind in (RTM_NEWLINK, RTM_DELLINK) and length >= _NLMSG.size + _IFINFO.size:
            _fam, _type, index, flags, _change = _IFINFO.unpack_from(data, off + _NLMSG.size)
            name = ""
            aoff = off + _NLMSG.size + _IFINFO.size
            end = off + length
            while aoff + 4 <= end:
                alen, atype = struct.unpack_from("=HH", data, aoff)
                if alen < 4:
                    break
                if atype == IFLA_IFNAME:
                    name = data[aoff + 4 : aoff + alen].split(b"\0", 1)[0].decode(errors="replace")
                aoff += (alen + 3) & ~3
            up = bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)
            out.append((index, name, up and kind == RTM_NEWLINK, kind == RTM_DELLINK))
        off += (length + 3) & ~3
    return out


class LinkWatcher:
    """Fans netlink link events out to whoever tracks an interface by name."""

    def __init__(self) -> None:
        self.listeners: dict[str, list[Callable[[bool], None]]] = {}
        self.state: dict[str, bool] = {}

    def watch(self, ifname: str, callback: Callable[[bool], None]) -> None:
        self.listeners.setdefault(ifname, []).append(callback)

    def unwatch(self, ifname: str, callback: Callable[[bool], None]) -> None:
        cbs = self.listeners.get(ifname, [])
        if callback in cbs:
            cbs.remove(callback)

    def _deliver(self, name: str, up: bool) -> None:
        if self.state.get(name) == up:
            return
        self.state[name] = up
        for cb in list(self.listeners.get(name, ())):
            cb(up)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        with sock:
            await sock.bind((0, RTMGRP_LINK))
            task_status.started()
            while True:
                data = await sock.recv(65536)
                for _index, name, up, _deleted in parse_link_messages(data):
                    if name:
                        self._deliver(name, up)


# ---------------------------------------------------------------- scripts


@dataclass
class ScriptStatus:
    """keepalived's ``vscript->result`` counter (vrrp_scheduler.c ``vrrp_script_child_thread``).

    ``result`` counts from 0 (failed) to rise+fall-1 (fully up); the script
    is *up* while ``result >= rise``.  Without ``init_fail`` it starts at
    rise-1 so that one success or one failure decides at once.
    """

    rise: int
    fall: int
    result: int
    initial: bool = True

    @classmethod
    def for_script(cls, vs: VrrpScript) -> ScriptStatus:
        rise, fall = max(vs.rise, 1), max(vs.fall, 1)
        # init_fail starts the script failed, not "initial" (vrrp_parser.c
        # vrrp_vscript_init_fail_handler: SCRIPT_INIT_STATE_FAILED).
        if vs.init_fail:
            return cls(rise, fall, 0, initial=False)
        return cls(rise, fall, rise - 1)

    @property
    def up(self) -> bool:
        # While still in its initial state a script without init_fail counts
        # as good (keepalived only applies its weight once it has reported).
        if self.initial and self.result == self.rise - 1:
            return True
        return self.result >= self.rise

    def record(self, success: bool) -> bool:
        """Feed one run's outcome; True when ``up`` changed."""
        before = self.up
        if success:
            if self.result < self.rise - 1:
                self.result += 1
            else:
                self.result = self.rise + self.fall - 1
        elif self.result > self.rise:
            self.result -= 1
        else:
            self.result = 0
        self.initial = False
        return self.up != before


async def run_vrrp_script(
    vs: VrrpScript,
    status: ScriptStatus,
    on_change: Callable[[bool], None],
    *,
    enforce_security: bool = False,
    script_user: str | None = None,
    script_group: str | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> None:
    """Run ``vs`` every ``interval`` forever, reporting up/down changes.

    A script keepalived would disable (insecure, missing, not executable) is
    never run and never reported: keepalived drops it from tracking
    (vrrp.c ``check_vrrp_script_security``), so it must not count as failing.
    The config load already removed such scripts from the instances; this
    guard covers a script that turned bad between load and start.
    """
    verdict = scripts.check_script_secure(
        vs.script, enforce=enforce_security, default_user=script_user, default_group=script_group
    )
    if not verdict.runnable:
        log(f"VRRP_Script({vs.name}) {verdict.reason} - disabling")
        return
    timeout = vs.timeout if vs.timeout is not None else vs.interval
    while True:
        started = trio.current_time()
        result = await scripts.run_script(
            vs.script, timeout=timeout, default_user=script_user, default_group=script_group
        )
        if status.record(result.ok):
            word = "succeeded" if status.up else ("timed_out" if result.timed_out else "failed")
            log(f"VRRP_Script({vs.name}) {word}")
            on_change(status.up)
        await trio.sleep_until(started + vs.interval)


async def watch_track_file(
    tf: VrrpTrackFile, on_value: Callable[[int], None], *, period: float = 0.5
) -> None:
    """Report the integer in ``tf.file`` whenever it changes.

    keepalived uses inotify; we re-read twice a second, which is well inside
    any advert interval and needs no extra dependency.
    """
    last: int | None = None
    while True:
        value = read_track_file(tf)
        if value != last:
            last = value
            on_value(value)
        await trio.sleep(period)


def read_track_file(tf: VrrpTrackFile) -> int:
    """The file's integer; a missing/garbled file reads as 0 (keepalived)."""
    try:
        with open(tf.file) as f:
            text = f.read().strip()
    except OSError:
        return 0 if tf.init_file is None else tf.init_file
    with contextlib.suppress(ValueError):
        return int(text.split()[0]) if text else 0
    return 0
