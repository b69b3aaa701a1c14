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
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from pykeep.config.model import GlobalDefs, Notify, Script
from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, workdir
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
