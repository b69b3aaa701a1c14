"""track_bfd end to end: a VRRP master tracking FRR's bfdd gives up the VIP when bfdd dies."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from sim.netns import Rig
from tests.bfd_rig import Bfdd
from tests.netns_vrrp import lan, router, until, vrrp_conf, workdir

Make = Callable[..., Rig]
VIP = "10.99.0.200"
A, PEER, C = "10.99.0.11", "10.99.0.12", "10.99.0.13"

# 50 ms x 5 = 250 ms detection: keepalived's 10 ms default flaps on a loaded
# 2-core test machine; bench/bench_bfd.py measures the default.
BFD = (
    "bfd_instance frr {{\n    neighbor_ip {peer}\n    source_ip {src}\n"
    "    min_rx 50\n    min_tx 50\n}}\n"
)


@pytest.mark.netns
def test_master_tracking_bfd_fails_over_when_bfdd_stops(rig: Make) -> None:
    r = rig(hint="bf_")
    lan(r, {"a": f"{A}/24", "c": f"{C}/24", "b": f"{PEER}/24"})
    bfdd = Bfdd(r, 50, 50, 5, node="b", local=PEER, peer=A).start()
    with workdir() as wd:
        conf_a = vrrp_conf(
            priority=150,
            before=BFD.format(peer=PEER, src=A),
            extra="    track_bfd {\n        frr\n    }\n",
        )
        a = router(r, "a", "pykeep", conf_a, wd).start()
        c = router(r, "c", "keepalived", vrrp_conf(priority=100), wd).start()
        try:
            # a is FAULT until the session is Up, then wins the election.
            until(lambda: a.has_vip(VIP), 15.0)
            until(lambda: not c.has_vip(VIP), 5.0)
            assert bfdd.status() == "up"
            assert "not supported" not in a.text(), a.text()
            # A reload that moves the block (not its parameters) keeps the
            # session Up, as keepalived copies its state: no FAULT, no VIP loss.
            faults = a.text().count("Entering FAULT")
            a.conf.write_text("# reloaded\n" + conf_a)
            a.signal(signal.SIGHUP)
            until(lambda: "Reloading" in a.text(), 5.0)
            time.sleep(2.0)
            assert "Reload failed" not in a.text(), a.text()
            assert a.has_vip(VIP) and a.text().count("Entering FAULT") == faults, a.text()
            killed = time.monotonic()
            bfdd.kill()
            # Detection is 250 ms; FAULT drops the VIP at once.  A protocol-
            # scale margin for a loaded machine: the precise figure is in bench.
            lost = until(lambda: not a.has_vip(VIP), 3.0)
            assert lost < 1.5, (lost, a.text())
            # a's priority-0 advert on leaving MASTER hands the VIP over quickly.
            until(lambda: c.has_vip(VIP), 3.0)
            assert time.monotonic() - killed < 4.0
            assert "FAULT" in a.text(), a.text()
            # bfdd back: the session comes Up and a preempts again.
            bfdd.start()
            until(lambda: a.has_vip(VIP), 15.0)
        finally:
            a.stop()
            c.stop()
            bfdd.close()
