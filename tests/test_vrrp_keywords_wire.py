"""The election keywords on the wire, pykeep and keepalived 2.2.7 in turn (issue 11).

One daemon, four instances, one scripted peer.  The peer (node ``x``) injects
crafted adverts and a packet socket beside it records every advert on the LAN
with the kernel's receive time, so each window below is judged on the wire's
clock, not on a busy test process's:

- VRID 51 ``lower_prio_no_advert`` + ``higher_prio_send_advert`` and VRID 52
  with neither: a burst of lower-priority adverts is answered one for one by
  52 and not at all by 51; one higher-priority advert makes 51 answer once and
  52 yield silently (vrrp.c ``vrrp_state_master_rx``);
- VRID 53 ``down_timer_adverts 5`` hears a master until the peer stops: it
  takes over after 5 intervals plus skew, not 3 (``VRRP_MS_DOWN_TIMER``);
- VRID 54 ``unicast_fault_no_peer`` with no peer stays in FAULT: it never
  sends an advert (vrrp.c ``vrrp_complete_instance``);
- VRID 55 ``track_src_ip`` keeps its VIP when its configured source address
  leaves the interface: keepalived 2.2.7 never matches the address there;
- VRID 61 holds two VIPs on ``a``'s second link: under ``vrrp_min_garp`` each
  gets one GARP there on becoming master, then ``garp_extra_if all 2`` sends
  one for the first of them every 2-3 s (vrrp.c ``vrrp_send_vmac_update``,
  checked as each advert leaves);
- VRID 52 also sets its own ``garp_master_repeat 3``: each lower-priority
  advert still brings one GARP, the global lower-priority repeat that
  ``vrrp_min_garp`` leaves at 1, not the instance's master repeat (vrrp.c
  ``vrrp_complete_init``, ``vrrp_state_master_rx``).

Both daemons must show the same thing.  About 35 s in all.

``test_startup_delay_and_unknown_vrids_match_keepalived`` runs each daemon
once more, alone, for ``vrrp_startup_delay`` and ``log_unknown_vrids``
(about 20 s).
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from sim.capture import Capture
from sim.inject import Injector, advert
from sim.netns import Rig, socket_in
from tests.netns_vrrp import Router, lan, router, until, workdir

pytestmark = pytest.mark.netns

A_IP, X_IP = "10.99.0.11", "10.99.0.12"
VIPS = {
    51: "10.99.0.201",
    52: "10.99.0.202",
    53: "10.99.0.203",
    54: "10.99.0.204",
    55: "10.99.0.205",
}
EXTRA = ("10.99.1.210", "10.99.1.211")  # VRID 61's VIPs on eth1
SO_TIMESTAMPNS = 35
ETH_P_ALL = 0x0003
MDI_53 = 5 + (256 - 100) / 256  # down_timer_adverts 5, priority 100, advert_int 1
Make = Callable[..., Rig]


def _conf() -> str:
    def inst(vrid: int, prio: int, extra: str) -> str:
        return (
            f"vrrp_instance VI_{vrid} {{\n    state BACKUP\n    interface eth0\n"
            f"    virtual_router_id {vrid}\n    priority {prio}\n    advert_int 1\n{extra}"
            f"    virtual_ipaddress {{\n        {VIPS[vrid]}/32\n    }}\n}}\n"
        )

    extra = "".join(f"        {v}/32 dev eth1\n" for v in EXTRA)
    return (
        "global_defs {\n    router_id pk\n    vrrp_min_garp\n}\n"
        + inst(51, 150, "    lower_prio_no_advert\n    higher_prio_send_advert\n")
        + inst(52, 150, "    garp_master_repeat 3\n")
        + inst(53, 100, "    down_timer_adverts 5\n")
        + inst(54, 150, "    unicast_fault_no_peer\n")
        + inst(55, 150, f"    mcast_src_ip {A_IP}\n    track_src_ip\n")
        + "vrrp_instance VI_61 {\n    interface eth0\n    virtual_router_id 61\n"
        "    priority 150\n    advert_int 1\n    garp_extra_if all 2\n"
        f"    virtual_ipaddress {{\n        10.99.0.210/32\n{extra}    }}\n}}\n"
    )


@dataclass(frozen=True)
class Seen:
    t: float  # kernel receive time (CLOCK_REALTIME)
    src: str
    vrid: int
    priority: int


@dataclass
class Sniffer:
    """Every IPv4 VRRP frame and gratuitous ARP on ``x``'s eth0, ours included,
    with kernel timestamps."""

    rig: Rig
    frames: list[Seen] = field(default_factory=list)
    garps: list[tuple[float, str]] = field(default_factory=list)  # (time, address)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        s = socket_in(self.rig.ns("x"), socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind(("eth0", 0))
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.settimeout(0.1)
        self.sock = s
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, anc, _f, _a = self.sock.recvmsg(2048, 64)
            except (TimeoutError, OSError):
                continue
            if len(data) < 42:
                continue
            arp = data[12:14] == b"\x08\x06"
            if not arp and (data[12:14] != b"\x08\x00" or data[23] != 112):
                continue
            ts = next(
                (sec + ns / 1e9 for lvl, typ, raw in anc if typ == SO_TIMESTAMPNS
                 for sec, ns in [struct.unpack("qq", raw[:16])]),
                time.time(),
            )  # fmt: skip
            if arp:
                if data[28:32] == data[38:42]:  # sender == target: gratuitous
                    self.garps.append((ts, socket.inet_ntoa(data[38:42])))
                continue
            ihl = (data[14] & 15) * 4
            src = socket.inet_ntoa(data[26:30])
            self.frames.append(Seen(ts, src, data[14 + ihl + 1], data[14 + ihl + 2]))

    def from_a(self, vrid: int, after: float, before: float = float("inf")) -> list[Seen]:
        return [f for f in list(self.frames) if f.src == A_IP and f.vrid == vrid
                and after < f.t < before]  # fmt: skip

    def next_from_a(self, vrid: int, timeout: float) -> Seen:
        """The first advert of ``vrid`` from ``a`` seen after now."""
        t0 = time.time()
        until(lambda: bool(self.from_a(vrid, t0)), timeout, step=0.005)
        return self.from_a(vrid, t0)[0]

    def ours(self, vrid: int, after: float) -> list[Seen]:
        return [f for f in list(self.frames) if f.src == X_IP and f.vrid == vrid and f.t > after]

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


def _peer_advert(mac: str, vrid: int, prio: int) -> bytes:
    return advert(mac, X_IP, vrid, prio, [VIPS[vrid]])


def _run(r: Rig, kind: str, wd: Path) -> dict[str, object]:
    """Start ``kind`` on ``a``, play the script, return what the wire showed."""
    mac_x, mac_a1 = r.mac("x"), r.mac("a", "eth1")
    sniff = Sniffer(r)
    inj = Injector(r, "x")
    beat_on = threading.Event()
    beat_on.set()
    quit_beat = threading.Event()

    def beat() -> None:
        # VRID 53's master, once a second, until told to stop.
        while not quit_beat.is_set():
            if beat_on.is_set():
                inj.send(_peer_advert(mac_x, 53, 200))
            quit_beat.wait(1.0)

    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    aux = Capture(r, "aux", bpf="arp", pcap=wd / f"aux-{kind}.pcap").start()
    node = router(r, "a", kind, _conf(), wd)
    stopped = False
    try:
        t_start = time.time()
        node.start()
        for vrid in (51, 52):
            sniff.next_from_a(vrid, 15)
        # -- lower priority: right after 51's own advert, five lower adverts to each.
        t_a = sniff.next_from_a(51, 3).t
        for _ in range(5):
            inj.send([_peer_advert(mac_x, 51, 50), _peer_advert(mac_x, 52, 50)])
            time.sleep(0.1)
        time.sleep(0.3)
        first_low = sniff.ours(51, t_a)[0].t
        lower_51 = len(sniff.from_a(51, first_low, t_a + 0.95))
        low_52 = sniff.ours(52, t_a)
        lower_52 = len(sniff.from_a(52, low_52[0].t, low_52[-1].t + 0.3))
        garp_52 = [t for t, v in list(sniff.garps) if v == VIPS[52]]
        lower_garps_52 = len([t for t in garp_52 if low_52[0].t <= t < low_52[-1].t + 0.3])
        # -- higher priority: right after 51's own advert, one higher advert to each.
        t_b = sniff.next_from_a(51, 3).t
        inj.send([_peer_advert(mac_x, 51, 200), _peer_advert(mac_x, 52, 200)])
        time.sleep(1.5)
        t_hi = sniff.ours(51, t_b)[0].t
        answer_51 = [f.priority for f in sniff.from_a(51, t_hi, t_hi + 0.5)]
        after_51 = len(sniff.from_a(51, t_hi + 0.5, t_hi + 1.5))
        # a regular advert already on its way when the peer's arrived is not an answer
        t_hi52 = sniff.ours(52, t_b)[0].t
        answer_52 = len(sniff.from_a(52, t_hi52 + 0.1, t_hi52 + 1.5))
        # -- down_timer_adverts: VRID 53's master goes quiet.
        assert not sniff.from_a(53, t_start), f"{kind}: VRID 53 spoke while its master did"
        beat_on.clear()
        time.sleep(0.2)
        t_last = sniff.ours(53, t_start)[-1].t
        took = sniff.next_from_a(53, MDI_53 + 4).t - t_last
        # -- track_src_ip: the configured source address leaves the interface.
        src_55_before = node.has_vip(VIPS[55])
        r.run("a", ["ip", "addr", "del", f"{A_IP}/24", "dev", "eth0"])
        time.sleep(1.5)
        src_55_after = node.has_vip(VIPS[55])
        node.stop()
        stopped = True
        garps = [(e.t, e.target) for e in aux.stop() if e.kind == "garp" and e.src_mac == mac_a1]
        first = garps[0][0]
        later = [(t, v) for t, v in garps if t > first + 0.5]
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(later)]
        return {
            "lower_51": lower_51,
            "lower_52_answers": lower_52 >= 5,
            "lower_52_garps": lower_garps_52,
            "higher_51": answer_51,
            "higher_51_after": after_51,
            "higher_52": answer_52,
            "down_53": 4.0 < took < MDI_53 + 1.5 and took,
            "fault_54_silent": not sniff.from_a(54, t_start),
            "fault_54_vip": node.has_vip(VIPS[54]),
            "fault_54_log": "Cannot use unicast without any peers" in node.text(),
            "track_src_55": (src_55_before, src_55_after),
            "extra_first": sorted(v for t, v in garps if t <= first + 0.5),
            "extra_later": sorted({v for _t, v in later}),
            "extra_gaps": len(later) >= 3 and all(1.5 < g < 3.5 for g in gaps) and gaps,
        }
    finally:
        quit_beat.set()
        beater.join(2)
        if not stopped:
            node.stop()
        r.run("a", ["ip", "addr", "replace", f"{A_IP}/24", "dev", "eth0"], check=False)
        aux.stop()
        inj.close()
        sniff.close()


def test_election_keywords_match_keepalived(rig: Make) -> None:
    r = rig(hint="vkkw")
    with workdir() as wd:
        lan(r, {"a": f"{A_IP}/24", "x": f"{X_IP}/24"}, aux=True)
        seen = {kind: _run(r, kind, wd) for kind in ("keepalived", "pykeep")}
    for kind, s in seen.items():
        assert s["lower_51"] == 0, (kind, s)
        assert s["lower_52_answers"], (kind, s)
        assert s["lower_52_garps"] == 5, (kind, s)  # one per lower advert, not 3
        assert s["higher_51"] == [150] and s["higher_51_after"] == 0, (kind, s)
        assert s["higher_52"] == 0, (kind, s)
        assert s["down_53"], (kind, s)  # 5 intervals + skew, not 3
        assert s["fault_54_silent"] and not s["fault_54_vip"] and s["fault_54_log"], (kind, s)
        assert s["extra_first"] == list(EXTRA) and s["extra_later"] == [EXTRA[0]], (kind, s)
        assert s["extra_gaps"], (kind, s)  # every 2 s, seen at the next advert
        # keepalived 2.2.7 compares the address with the whole sockaddr
        # (keepalived_netlink.c netlink_if_address_filter), never equal: no FAULT
        assert s["track_src_55"] == (True, True), (kind, s)
    timing = ("down_53", "extra_gaps")
    same = {k: v for k, v in seen["pykeep"].items() if k not in timing}
    assert same == {k: v for k, v in seen["keepalived"].items() if k not in timing}


def _logged(node: Router, line: str) -> bool:
    return line in node.text()


STARTUP_DELAY = 3.0
MDI_150 = 3 + (256 - 150) / 256


def test_startup_delay_and_unknown_vrids_match_keepalived(rig: Make) -> None:
    """vrrp_startup_delay: no instance takes over before the delay has passed
    (vrrp_daemon.c start_vrrp, vrrp_scheduler.c vrrp_init_instance_sands): a
    lone backup becomes master after the delay plus its Master_Down_Interval,
    not after the interval alone, and says "Delaying startup for 3 seconds".
    log_unknown_vrids: an advert for VRID 99, which nobody runs, is logged
    (vrrp_scheduler.c vrrp_dispatcher_read).  About 25 s."""
    r = rig(hint="vksd")
    unknown = "Unknown VRID(99) received on interface(eth0). ignoring..."
    conf = (
        f"global_defs {{\n    router_id pk\n    vrrp_startup_delay {STARTUP_DELAY:g}\n"
        "    log_unknown_vrids\n}\n"
        "vrrp_instance VI_1 {\n    state BACKUP\n    interface eth0\n"
        "    virtual_router_id 51\n    priority 150\n    advert_int 1\n"
        f"    virtual_ipaddress {{\n        {VIPS[51]}/32\n    }}\n}}\n"
    )
    took: dict[str, float] = {}
    with workdir() as wd:
        lan(r, {"a": f"{A_IP}/24", "x": f"{X_IP}/24"})
        inj = Injector(r, "x")
        try:
            for kind in ("keepalived", "pykeep"):
                node = router(r, "a", kind, conf, wd)
                t0 = time.monotonic()
                node.start()
                try:
                    until(partial(node.has_vip, VIPS[51]), STARTUP_DELAY + MDI_150 + 8, step=0.05)
                    took[kind] = time.monotonic() - t0
                    inj.send(advert(r.mac("x"), X_IP, 99, 100, [VIPS[52]]))
                    until(partial(_logged, node, unknown), 3.0)
                    said = "Delaying startup for 3 seconds" in node.text()
                finally:
                    node.stop()
                assert said, (kind, node.text())
        finally:
            inj.close()
    for kind, t in took.items():
        # the daemon's own start (before its pid file) can only add to this
        assert STARTUP_DELAY + MDI_150 - 0.3 < t < STARTUP_DELAY + MDI_150 + 5, (kind, took)
