"""``mcast_dst_ip`` on the wire: pykeep against Debian's keepalived 2.2.7.

keepalived sends an instance's adverts to its ``mcast_dst_ip``, joins that
group, and keys its socket pool on the group (vrrp_scheduler.c
``already_exist_sock``), so two instances with the same VRID on different
groups never hear each other (vrrp.c ``check_vrid_conflicts``: "If multicast
addresses are different, then no conflict").

One rig checks both at once.  Each router runs two instances with VRID 51 on
eth0, VI_A on group 224.0.0.66 and VI_B on 224.0.0.77; pykeep has the higher
priority on VI_A, keepalived on VI_B.  Kept apart, each group elects its own
master: VI_A's VIP ends on pykeep and VI_B's on keepalived.  Mixed up, one
router would hear the other's higher priority for "VRID 51" and give up both.
A raw socket in the client namespace shows that pykeep's adverts go to the
configured groups and none to 224.0.0.18.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

import pytest

from bench.bench_vrrp_scale import socket_in
from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, wait_owner, workdir

pytestmark = pytest.mark.netns

GROUP_A, GROUP_B = "224.0.0.66", "224.0.0.77"
VIP_A, VIP_B = "10.99.0.200", "10.99.0.201"
MARGIN = 1.0
START = 5.0  # interpreter start-up of a fresh daemon on a loaded machine


def _conf(prio_a: int, prio_b: int) -> str:
    def inst(name: str, group: str, prio: int, vip: str) -> str:
        return (
            f"vrrp_instance {name} {{\n    state BACKUP\n    interface eth0\n"
            f"    virtual_router_id 51\n    priority {prio}\n    advert_int 1\n"
            f"    mcast_dst_ip {group}\n    virtual_ipaddress {{\n        {vip}/32\n    }}\n}}\n"
        )

    return (
        "global_defs {\n    router_id pk\n}\n"
        + inst("VI_A", GROUP_A, prio_a, VIP_A)
        + inst("VI_B", GROUP_B, prio_b, VIP_B)
    )


def test_each_group_elects_its_own_master_with_keepalived(rig: Callable[..., Rig]) -> None:
    r = rig(hint="pfmcast")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24", "b": "10.99.0.12/24"})
        sock = socket_in(r.ns("client"), socket.AF_INET, socket.SOCK_RAW, 112)
        for group in (GROUP_A, GROUP_B, "224.0.0.18"):
            mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("10.99.0.100"))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        sock.settimeout(0.2)
        seen: list[tuple[str, str, int, int]] = []  # (src, dst, vrid, priority)
        stop = threading.Event()

        def capture() -> None:
            while not stop.is_set():
                try:
                    data = sock.recv(2048)
                except (TimeoutError, OSError):
                    continue
                hl = (data[0] & 15) * 4
                src, dst = socket.inet_ntoa(data[12:16]), socket.inet_ntoa(data[16:20])
                seen.append((src, dst, data[hl + 1], data[hl + 2]))

        reader = threading.Thread(target=capture, daemon=True)
        reader.start()
        try:
            a = router(r, "a", "pykeep", _conf(150, 100), wd)
            b = router(r, "b", "keepalived", _conf(100, 150), wd)
            # pykeep first: when keepalived starts, VI_A's master is already
            # advertising on 224.0.0.66, and keepalived must hear it there.
            a.start()
            until(lambda: a.text().count("Entering BACKUP STATE (init)") == 2, START + 10)
            b.start()
            ma, mb = r.mac("a"), r.mac("b")
            bound = 3 + (256 - 100) / 256 + START + MARGIN
            wait_owner(r, "client", VIP_A, ma, bound)
            wait_owner(r, "client", VIP_B, mb, bound)
            masters_a, masters_b = a.text().count("MASTER STATE"), b.text().count("MASTER STATE")
            time.sleep(3.5)  # a whole Master_Down_Interval: each backup heard its master
            assert a.has_vip(VIP_A) and not a.has_vip(VIP_B), a.text()
            assert b.has_vip(VIP_B) and not b.has_vip(VIP_A), b.text()
            assert "(VI_A) Entering MASTER STATE" not in b.text(), b.text()
            # Converged and stable: nobody changed state during the window.
            assert a.text().count("MASTER STATE") == masters_a
            assert b.text().count("MASTER STATE") == masters_b
        finally:
            stop.set()
            reader.join(1)
            sock.close()
        ours = {(dst, prio) for src, dst, vrid, prio in seen if src == "10.99.0.11" and vrid == 51}
        assert (GROUP_A, 150) in ours, seen[-10:]
        assert all(dst in (GROUP_A, GROUP_B) for dst, _p in ours), ours
        theirs = {
            (dst, prio) for src, dst, vrid, prio in seen if src == "10.99.0.12" and vrid == 51
        }
        assert (GROUP_B, 150) in theirs, seen[-10:]
