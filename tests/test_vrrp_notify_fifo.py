"""Notify FIFOs, their scripts, and the start-up/shutdown scripts, beside keepalived 2.2.7.

The same config runs under each daemon in turn: ``notify_fifo`` and
``vrrp_notify_fifo`` name FIFOs that do not exist yet (both daemons create
them, and remove them at stop), each with a ``*_fifo_script`` that reads its
FIFO (its path is the script's last argument) and records every line;
``startup_script`` and ``shutdown_script`` record themselves too.  The
recorded event streams must be equal: same lines, same formats (a group's
priority is 0), the start-up script before any line, the shutdown script
after the last.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from pykeep.config.model import GlobalDefs, Notify, Script
from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, vrrp_conf, workdir
from vrrp.notify import Notifier, NotifyTarget

Make = Callable[..., Rig]
VIP1, VIP2 = "10.99.0.201", "10.99.0.202"

READER = """#!/bin/sh
# $1: tag, $2: the FIFO (appended by the daemon)
while IFS= read -r line; do echo "$1 $line" >> "{events}"; done < "$2"
"""
MARK = """#!/bin/sh
echo "$1" >> "{events}"
"""


def _conf(wd: Path, kind: str) -> str:
    d = wd / kind
    return f"""
global_defs {{
    router_id pk
    notify_fifo {d}/fifo
    notify_fifo_script "{wd}/reader.sh fifo"
    vrrp_notify_fifo {d}/vfifo
    vrrp_notify_fifo_script "{wd}/reader.sh vfifo"
    startup_script "{wd}/mark.sh startup"
    shutdown_script "{wd}/mark.sh shutdown"
    shutdown_script_timeout 5
}}
vrrp_sync_group G {{
    group {{
        VI_1
        VI_2
    }}
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    virtual_ipaddress {{
        {VIP1}/32
    }}
}}
vrrp_instance VI_2 {{
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority 120
    advert_int 1
    virtual_ipaddress {{
        {VIP2}/32
    }}
}}
"""


def _run(rig: Rig, wd: Path, kind: str) -> dict[str, object]:
    d = wd / kind
    d.mkdir()
    events = d / "events"
    events.write_text("")
    (wd / "reader.sh").write_text(READER.format(events=wd / "events"))
    (wd / "mark.sh").write_text(MARK.format(events=wd / "events"))
    for f in ("reader.sh", "mark.sh"):
        (wd / f).chmod(0o755)
    (wd / "events").write_text("")
    node = router(rig, "a", kind, _conf(wd, kind), wd).start()
    try:
        until(lambda: (d / "fifo").exists() and (d / "vfifo").exists(), 5.0)
        is_fifo = all(stat.S_ISFIFO(os.stat(d / f).st_mode) for f in ("fifo", "vfifo"))
        mode = stat.S_IMODE(os.stat(d / "fifo").st_mode)
        until(lambda: "MASTER" in (wd / "events").read_text(), 3 + 106 / 256 + 5)
        time.sleep(1.0)
    finally:
        node.stop()
    until(lambda: "shutdown" in (wd / "events").read_text(), 8.0)
    time.sleep(0.5)
    lines = (wd / "events").read_text().splitlines()
    return {
        "created_fifo": is_fifo,
        "mode": oct(mode),
        "removed_at_stop": not (d / "fifo").exists() and not (d / "vfifo").exists(),
        "first": lines[0] if lines else None,
        "last": lines[-1] if lines else None,
        "fifo": [x.split(" ", 1)[1] for x in lines if x.startswith("fifo ")],
        "vfifo": [x.split(" ", 1)[1] for x in lines if x.startswith("vfifo ")],
        "log": node.text(),
    }


@pytest.mark.netns
def test_fifo_lines_and_scripts_match_keepalived(rig: Make) -> None:
    r = rig(hint="wrnf")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"})
        seen = {kind: _run(r, wd, kind) for kind in ("keepalived", "pykeep")}
    logs = {k: v.pop("log") for k, v in seen.items()}
    ours, theirs = seen["pykeep"], seen["keepalived"]
    assert ours == theirs, (ours, theirs, logs["pykeep"])
    assert ours["created_fifo"] and ours["removed_at_stop"]
    assert ours["first"] == "startup" and ours["last"] == "shutdown"
    fifo = ours["fifo"]
    assert isinstance(fifo, list)
    assert 'INSTANCE "VI_1" MASTER 150' in fifo and 'GROUP "G" MASTER 0' in fifo


def test_missing_fifo_is_created_held_open_and_removed() -> None:
    """A line written before any reader opens the FIFO is still read (keepalived holds it RDWR)."""

    async def main(path: str) -> list[str]:
        got: list[str] = []
        async with trio.open_nursery() as nursery:
            g = GlobalDefs(notify_fifo=Script((path,)))
            n = Notifier(nursery, global_defs=g)
            assert stat.S_ISFIFO(os.stat(path).st_mode)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            n.notify(NotifyTarget("INSTANCE", "VI_1", Notify()), "MASTER", 150)
            n.notify(NotifyTarget("GROUP", "G", Notify()), "MASTER", None)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                got = os.read(fd, 4096).decode().splitlines()
            finally:
                os.close(fd)
            nursery.cancel_scope.cancel()
        return got

    with workdir() as wd:
        path = str(wd / "fifo")
        lines = trio.run(main, path)
        assert lines == ['INSTANCE "VI_1" MASTER 150', 'GROUP "G" MASTER 0']
        assert not os.path.exists(path)  # created by us, removed at stop


def _reload_conf(wd: Path, kind: str) -> str:
    """A master (VI_1), a FAULT (VI_2: its track file is non-zero, weight 0), a
    sync group of two masters (G), and a backup to a peer (VI_5)."""

    def inst(name: str, vrid: int, state: str, prio: int, extra: str = "") -> str:
        return (
            f"vrrp_instance {name} {{\n    state {state}\n    interface eth0\n"
            f"    virtual_router_id {vrid}\n    priority {prio}\n    advert_int 1\n{extra}"
            f"    virtual_ipaddress {{\n        10.99.0.{vrid + 150}/32\n    }}\n}}\n"
        )

    return (
        f"global_defs {{\n    router_id pk\n    notify_fifo {wd}/fifo\n"
        "    fifo_write_vrrp_states_on_reload\n}\n"
        f"vrrp_track_file tf {{\n    file {wd}/tf\n}}\n"
        "vrrp_sync_group G {\n    group {\n        VI_3\n        VI_4\n    }\n}\n"
        + inst("VI_1", 51, "MASTER", 150)
        + inst("VI_2", 52, "BACKUP", 100, "    track_file {\n        tf weight 0\n    }\n")
        + inst("VI_3", 53, "MASTER", 150)
        + inst("VI_4", 54, "MASTER", 150)
        + inst("VI_5", 55, "BACKUP", 100)
    )


def _lines_on_reload(rig: Rig, wd: Path, kind: str) -> list[str]:
    (wd / "tf").write_text("1\n")
    events = wd / f"{kind}.events"
    events.write_text("")
    # a reader that reopens the FIFO: keepalived closes and reopens it on reload
    reader = subprocess.Popen(
        ["sh", "-c", f'while :; do cat "{wd}/fifo" >> "{events}"; done'],
        start_new_session=True,
    )
    node = router(rig, "a", kind, _reload_conf(wd, kind), wd).start()
    try:
        until(lambda: 'GROUP "G" MASTER 0' in events.read_text(), 3 + 106 / 256 + 8)
        until(lambda: 'INSTANCE "VI_1" MASTER 150' in events.read_text(), 3.0)
        time.sleep(1.0)
        seen = len(events.read_text().splitlines())
        log_seen = node.text().count("Reloading")
        node.signal(signal.SIGHUP)
        until(lambda: node.text().count("Reloading") > log_seen, 8.0)
        time.sleep(2.0)  # the reload's lines, well within
        return events.read_text().splitlines()[seen:]
    finally:
        node.stop()
        os.killpg(reader.pid, signal.SIGTERM)
        reader.wait(5)


def _each_beside_a_peer(
    rig: Make, hint: str, lines: Callable[[Rig, Path, str], list[str]]
) -> dict[str, list[str]]:
    """keepalived, then pykeep, as router a of :func:`_reload_conf` beside a
    keepalived master of VI_5's VRID on b: the FIFO lines ``lines`` collects."""
    r = rig(hint=hint)
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24", "b": "10.99.0.12/24"})
        os.mkfifo(wd / "fifo")
        peer = vrrp_conf(vrid=55, priority=200, state="MASTER", vips=("10.99.0.205/32",))
        b = router(r, "b", "keepalived", peer, wd).start()
        try:
            return {kind: lines(r, wd, kind) for kind in ("keepalived", "pykeep")}
        finally:
            b.stop()


@pytest.mark.netns
def test_states_written_again_on_reload(rig: Make) -> None:
    """vrrp_scheduler.c vrrp_init_state with fifo_write_vrrp_states_on_reload:
    after SIGHUP each sync group's line, then each instance that is not a
    master; no line for the masters, and none without the keyword."""
    seen = _each_beside_a_peer(rig, "ivfr", _lines_on_reload)
    assert seen["pykeep"] == seen["keepalived"], seen
    assert seen["pykeep"] == [
        'GROUP "G" MASTER 0',
        'INSTANCE "VI_2" FAULT 100',
        'INSTANCE "VI_5" BACKUP 100',
    ], seen


def _lifetime_lines(rig: Rig, wd: Path, kind: str) -> list[str]:
    """Every FIFO line from start to stop, a SIGHUP with nothing changed between."""
    (wd / "tf").write_text("1\n")
    events = wd / f"{kind}.life"
    events.write_text("")
    conf = _reload_conf(wd, kind).replace("    fifo_write_vrrp_states_on_reload\n", "")
    reader = subprocess.Popen(
        ["sh", "-c", f'while :; do cat "{wd}/fifo" >> "{events}"; done'],
        start_new_session=True,
    )
    node = router(rig, "a", kind, conf, wd).start()
    try:
        until(lambda: 'GROUP "G" MASTER 0' in events.read_text(), 3 + 106 / 256 + 8)
        until(lambda: 'INSTANCE "VI_1" MASTER 150' in events.read_text(), 3.0)
        log_seen = node.text().count("Reloading")
        node.signal(signal.SIGHUP)
        until(lambda: node.text().count("Reloading") > log_seen, 8.0)
        time.sleep(1.0)
    finally:
        node.stop()
    until(lambda: 'GROUP "G" STOP 0' in events.read_text(), 5.0)
    os.killpg(reader.pid, signal.SIGTERM)
    reader.wait(5)
    return events.read_text().splitlines()


@pytest.mark.netns
def test_start_and_stop_lines_in_keepalived_order(rig: Make) -> None:
    """The start-up and stop passes (vrrp.c vrrp_complete_init, vrrp_scheduler.c
    vrrp_init_state, vrrp_notify.c notify_shutdown): an instance its track
    file faults says FAULT first and never BACKUP, then the sync group, then
    the other instances' BACKUP in config order; at stop every instance's STOP
    in config order, then the group's.  The MASTER lines between depend on
    timers, so they are compared as a set."""
    seen = _each_beside_a_peer(rig, "ivfo", _lifetime_lines)
    start = [
        'INSTANCE "VI_2" FAULT 100',
        'GROUP "G" BACKUP 0',
        'INSTANCE "VI_1" BACKUP 150',
        'INSTANCE "VI_3" BACKUP 150',
        'INSTANCE "VI_4" BACKUP 150',
        'INSTANCE "VI_5" BACKUP 100',
    ]
    stop = [f'INSTANCE "VI_{n}" STOP {p}' for n, p in enumerate((150, 100, 150, 150, 100), 1)]
    stop.append('GROUP "G" STOP 0')
    masters = {'INSTANCE "VI_1" MASTER 150', 'INSTANCE "VI_3" MASTER 150'}
    masters |= {'INSTANCE "VI_4" MASTER 150', 'GROUP "G" MASTER 0'}
    for kind, lines in seen.items():
        assert lines[:6] == start, (kind, lines)
        assert lines[-6:] == stop, (kind, lines)
        assert sorted(lines[6:-6]) == sorted(masters), (kind, lines)
