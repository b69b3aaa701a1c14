"""``notify_priority_changes`` and ``promote_secondaries`` beside keepalived 2.2.7.

One config, each daemon in turn in the same namespace:

- VI_1 asks for priority lines itself; its track script follows a flag file
  the test removes and puts back, so its priority goes 150 → 130 → 150 while
  it is MASTER: ``INSTANCE "VI_1" MASTER_PRIORITY 130`` then ``… 150`` on
  the notify FIFO (vrrp_track.c ``vrrp_set_effective_priority``,
  vrrp_notify.c ``send_instance_priority_notifies``);
- VI_2 takes the setting from its sync group and tracks a script that fails
  from the start; VI_3 in the same group tracks nothing (no line);
- VI_1 also sets ``promote_secondaries``: eth0 has it on while the daemon
  runs and off again after (vrrp_if_config.c ``set_promote_secondaries``).

Each instance's FIFO lines, in order, and the sysctl must be the same for
both daemons.  About 25 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, workdir

Make = Callable[..., Rig]
VIP1 = "10.99.0.201"

READER = """#!/bin/sh
# $1: the FIFO (appended by the daemon)
while IFS= read -r line; do echo "$line" >> "{events}"; done < "$1"
"""


def _conf(wd: Path, kind: str) -> str:
    d = wd / kind
    return f"""
global_defs {{
    router_id pk
    vrrp_notify_fifo {d}/vfifo
    vrrp_notify_fifo_script {wd}/reader.sh
}}
vrrp_script chk {{
    script "/usr/bin/test -e {d}/flag"
    interval 1
    weight -20
}}
vrrp_script bad {{
    script "/bin/false"
    interval 1
    weight -10
}}
vrrp_sync_group G {{
    group {{
        VI_2
        VI_3
    }}
    notify_priority_changes
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    notify_priority_changes
    promote_secondaries
    track_script {{
        chk
    }}
    virtual_ipaddress {{
        {VIP1}/24
    }}
}}
vrrp_instance VI_2 {{
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority 120
    advert_int 1
    track_script {{
        bad
    }}
    virtual_ipaddress {{
        10.99.0.202/32
    }}
}}
vrrp_instance VI_3 {{
    state BACKUP
    interface eth0
    virtual_router_id 53
    priority 110
    advert_int 1
    virtual_ipaddress {{
        10.99.0.203/32
    }}
}}
"""


def _promote(rig: Rig) -> str:
    return rig.run("a", ["cat", "/proc/sys/net/ipv4/conf/eth0/promote_secondaries"]).stdout.strip()


def _run(rig: Rig, wd: Path, kind: str) -> dict[str, object]:
    d = wd / kind
    d.mkdir()
    (d / "flag").write_text("")
    (wd / "reader.sh").write_text(READER.format(events=wd / "events"))
    (wd / "reader.sh").chmod(0o755)
    (wd / "events").write_text("")
    rig.sysctl("a", "net.ipv4.conf.eth0.promote_secondaries", 0)
    node = router(rig, "a", kind, _conf(wd, kind), wd).start()
    try:
        until(lambda: node.has_vip(VIP1), 3 + 106 / 256 + 8)
        running = _promote(rig)
        time.sleep(1.5)
        (d / "flag").unlink()
        until(lambda: 'VI_1" MASTER_PRIORITY 130' in (wd / "events").read_text(), 6.0)
        (d / "flag").write_text("")
        until(lambda: 'VI_1" MASTER_PRIORITY 150' in (wd / "events").read_text(), 6.0)
        time.sleep(1.0)
    finally:
        node.stop()
    time.sleep(0.5)
    lines = (wd / "events").read_text().splitlines()
    return {
        "promote_running": running,
        "promote_after": _promote(rig),
        **{f"VI_{i}": [x for x in lines if f'"VI_{i}"' in x] for i in (1, 2, 3)},
        "log_says": "Changing effective priority from 150 to 130" in node.text(),
    }


@pytest.mark.netns
def test_priority_lines_and_promote_secondaries_match_keepalived(rig: Make) -> None:
    r = rig(hint="vkpr")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"})
        seen = {kind: _run(r, wd, kind) for kind in ("keepalived", "pykeep")}
    ours, theirs = seen["pykeep"], seen["keepalived"]
    assert ours == theirs, (ours, theirs)
    vi1, vi3 = ours["VI_1"], ours["VI_3"]
    assert isinstance(vi1, list) and isinstance(vi3, list)
    assert 'INSTANCE "VI_1" MASTER_PRIORITY 130' in vi1, vi1
    assert vi1.index('INSTANCE "VI_1" MASTER_PRIORITY 150') > vi1.index(
        'INSTANCE "VI_1" MASTER_PRIORITY 130'
    )
    assert not any("PRIORITY" in x for x in vi3)
    assert (ours["promote_running"], ours["promote_after"]) == ("1", "0")
    assert ours["log_says"]
