"""An instance whose interface loses its address goes to FAULT, beside keepalived.

keepalived 2.2.7 follows the addresses of an instance's interface when the
instance has no ``mcast_src_ip`` / ``unicast_src_ip``
(keepalived_netlink.c ``netlink_if_address_filter``): the interface's last
IPv4 address leaving puts the instance in FAULT (``down_instance``: a
priority-0 advert, VIPs removed), and an address arriving brings it back to
BACKUP (``try_up_instance``), its adverts now from that address.

Router ``a`` (priority 150, pykeep or keepalived in turn) holds the VIP
against ``b`` (keepalived, priority 100).  Then ``a``'s only address is
deleted: ``a`` must resign (priority 0 from the old address), drop the VIP
and log FAULT, and ``b`` must take over; a *different* address is then added:
``a`` must log BACKUP, pre-empt ``b`` again, and advertise from the new
address.  Both daemons must show the same thing.  About 30 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sim.capture import Capture
from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, vrrp_conf, wait_owner, workdir

pytestmark = pytest.mark.netns

Make = Callable[..., Rig]
A_IP, A_NEW, B_IP = "10.99.0.11", "10.99.0.13", "10.99.0.12"
VIP = "10.99.0.200"
MDI = 3 + 106 / 256  # priority 150, advert_int 1
START = 8.0  # daemon start-up on a loaded machine


def _lines(text: str, mark: int) -> list[str]:
    """The state lines logged after character ``mark`` of a log."""
    return [ln.split("(VI_1) ", 1)[1] for ln in text[mark:].splitlines() if "(VI_1) Entering" in ln]


def _run(r: Rig, wd: Path, kind: str) -> dict[str, Any]:
    mac_a, mac_b = r.mac("a"), r.mac("b")
    peer = router(r, "b", "keepalived", vrrp_conf(priority=100), wd).start()
    node = router(r, "a", kind, vrrp_conf(priority=150), wd).start()
    cap = Capture(r).start()
    try:
        wait_owner(r, "client", VIP, mac_a, START + MDI + 2)
        mark = len(node.text())
        t_del = time.time()
        r.run("a", ["ip", "addr", "del", f"{A_IP}/24", "dev", "eth0"])
        # b hears the priority-0 advert and takes over after its skew time
        wait_owner(r, "client", VIP, mac_b, 3.0)
        until(lambda: not node.has_vip(VIP), 2.0)
        time.sleep(1.5)  # a stays down while it has no address
        fault = {"a_vip": node.has_vip(VIP), "log": _lines(node.text(), mark)}
        mark = len(node.text())
        t_add = time.time()
        r.run("a", ["ip", "addr", "add", f"{A_NEW}/24", "dev", "eth0"])
        # BACKUP at once, then a pre-empts b after its Master_Down_Interval
        wait_owner(r, "client", VIP, mac_a, MDI + 3.0)
        time.sleep(1.2)  # one more advert from a
        back = {"a_vip": node.has_vip(VIP), "log": _lines(node.text(), mark)}
    finally:
        node.stop()
        peer.stop()
        events = cap.stop()
        # A_NEW first: deleting a primary address takes its secondaries with it
        r.run("a", ["ip", "addr", "del", f"{A_NEW}/24", "dev", "eth0"], check=False)
        r.run("a", ["ip", "addr", "replace", f"{A_IP}/24", "dev", "eth0"], check=False)
    ads = [e for e in events if e.kind == "advert" and e.src_mac == mac_a]
    before = [e for e in ads if e.abs_time < t_del]
    down = [e for e in ads if t_del <= e.abs_time < t_add]
    after = [e for e in ads if e.abs_time >= t_add and e.priority]
    return {
        "source_before": sorted({e.src_ip for e in before if e.priority}),
        # the resignation, from the address just deleted, then silence
        "while_down": [(e.src_ip, e.priority) for e in down],
        "source_after": sorted({e.src_ip for e in after}),
        "fault": fault,
        "back": back,
    }


def test_address_loss_faults_and_new_address_recovers_like_keepalived(rig: Make) -> None:
    r = rig(hint="va")
    with workdir() as wd:
        lan(r, {"a": f"{A_IP}/24", "b": f"{B_IP}/24"})
        seen = {kind: _run(r, wd, kind) for kind in ("keepalived", "pykeep")}  # in turn
    want = {
        "source_before": [A_IP],
        # leave_master's and vrrp_restore_interface's (down_instance: advF)
        "while_down": [(A_IP, 0), (A_IP, 0)],
        "source_after": [A_NEW],
        "fault": {"a_vip": False, "log": ["Entering FAULT STATE"]},
        "back": {"a_vip": True, "log": ["Entering BACKUP STATE", "Entering MASTER STATE"]},
    }
    assert seen["keepalived"] == want, seen
    assert seen["pykeep"] == want, seen
