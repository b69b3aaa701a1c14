"""100 SIGHUPs with an unchanged config under 20 ms pings (issue 4, must-show 4).

The client must lose no ping and see no MAC change; ``ip monitor address`` in
the master's namespace must never report the VIP deleted; the master must
never leave MASTER.  Every other reload moves the instance down a line (a
comment on top): keepalived re-applies nothing then (vrrp.c clear_diff_vrrp,
restore_vrrp_state sends GARPs only for addresses it added), and neither may
pykeep — no gratuitous ARP on the wire, no address event (issue 14).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from sim.capture import Capture
from sim.netns import Rig
from tests.netns_vrrp import lan, router, start_prober, until, vrrp_conf, wait_owner, workdir

pytestmark = pytest.mark.netns

VIP = "10.99.0.200"
Make = Callable[..., Rig]


def test_hundred_sighups_no_loss_no_flap(rig: Make) -> None:
    r = rig(hint="rlvrel")
    # The master's second GARP burst comes 1 s after it takes over, before the reloads.
    conf_a = vrrp_conf(priority=150, auth_pass="rigbpw", globals_="    vrrp_garp_master_delay 1\n")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24", "b": "10.99.0.12/24"})
        a = router(r, "a", "pykeep", conf_a, wd).start()
        b = router(r, "b", "pykeep", vrrp_conf(priority=100, auth_pass="rigbpw"), wd).start()
        ma = r.mac("a")
        wait_owner(r, "client", VIP, ma, 3.5 + 3)
        mon_path = wd / "monitor.txt"
        with open(mon_path, "w") as out:
            monitor = r.popen("a", ["ip", "monitor", "address"], stdout=out, text=True)
        prober = start_prober(r, "client", VIP, 0.02, wd)
        time.sleep(2.5)
        # who won the start-up race does not matter; from here on nothing may move
        seen_a, seen_b = len(a.text()), len(b.text())
        capture = Capture(r, bpf="arp").start()
        for k in range(100):
            if k % 10 == 0:  # the instance moves a line down, or back up
                a.conf.write_text("# moved\n" * (k // 10 % 2) + conf_a)
            a.signal(signal.SIGHUP)
            time.sleep(0.03)
        time.sleep(1.5)
        arps = capture.stop()
        results = prober.stop()
        r.kill(monitor)
        stats = a.stats()
        garps = [e for e in arps if e.kind == "garp"]
        assert not garps, garps[:3]
        assert len(results) > 150, len(results)
        lost = [x for x in results if not x["ok"]]
        assert not lost, f"{len(lost)} of {len(results)} pings lost"
        assert {x["mac"] for x in results} == {ma}
        deleted = [ln for ln in mon_path.read_text().splitlines() if VIP in ln]
        assert not deleted, deleted
        assert stats["states"]["VI_1"] == "MASTER"
        assert "Entering" not in a.text()[seen_a:]
        assert "Entering" not in b.text()[seen_b:]
        # trio coalesces signals that arrive while one is pending, as the kernel does
        assert a.text().count("Reloading") >= 50
        assert stats["reloads"] >= 50


def test_bad_config_on_reload_keeps_running(rig: Make) -> None:
    r = rig(hint="vrelbad")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"})
        a = router(r, "a", "pykeep", vrrp_conf(priority=150), wd).start()
        ma = r.mac("a")
        wait_owner(r, "client", VIP, ma, 3.5 + 3)
        a.conf.write_text("vrrp_instance VI_1 {\n    virtual_router_id 300\n    priority\n")
        a.signal(signal.SIGHUP)
        time.sleep(1.0)
        assert "keeping the running configuration" in a.text()
        assert a.has_vip(VIP)  # never removed: the running configuration stays
        wait_owner(r, "client", VIP, ma, 3.0)
        assert a.proc is not None and a.proc.poll() is None
        a.stop()
        assert not a.has_vip(VIP)


def test_reload_matches_by_identity_not_name(rig: Make) -> None:
    """vrrp_exist: VRID+family+interface match; a rename keeps state, a removal says goodbye."""
    r = rig(hint="vrelid")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"})
        one = vrrp_conf(priority=150)
        two = vrrp_conf(name="VI_2", vrid=52, priority=150, vips=("10.99.0.201/32",))
        a = router(r, "a", "pykeep", one + two[two.index("vrrp_instance") :], wd).start()
        ma = r.mac("a")
        wait_owner(r, "client", VIP, ma, 3.5 + 3)
        wait_owner(r, "client", "10.99.0.201", ma, 1.0)
        mon_path = wd / "monitor.txt"
        with open(mon_path, "w") as out:
            monitor = r.popen("a", ["ip", "monitor", "address"], stdout=out, text=True)
        time.sleep(0.3)
        seen = len(a.text())
        renamed = vrrp_conf(name="VI_ONE", priority=150, vips=(f"{VIP}/32", "10.99.0.202/32"))
        a.conf.write_text(renamed)
        a.signal(signal.SIGHUP)
        until(lambda: not a.has_vip("10.99.0.201"), 2.0)
        until(lambda: a.has_vip("10.99.0.202"), 2.0)
        time.sleep(0.3)
        r.kill(monitor)
        later = a.text()[seen:]
        assert "(VI_2) sent 0 priority" in later
        assert "Entering" not in later
        assert a.has_vip(VIP)  # never removed: the running configuration stays
        wait_owner(r, "client", VIP, ma, 3.0)
        flaps = [ln for ln in mon_path.read_text().splitlines() if f"{VIP}/" in ln]
        assert not flaps, flaps
        a.stop()
        assert not a.has_vip(VIP) and not a.has_vip("10.99.0.202")
