"""Crafted frames go out on the segment, and the capture turns them into a timeline."""

from __future__ import annotations

import time

import pytest

from sim import capture, inject
from tests.conftest import RigFactory

MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"


def test_crafted_advert_fields() -> None:
    from scapy.layers.l2 import Ether
    from scapy.layers.vrrp import VRRP

    frame = inject.advert(MAC_A, "192.168.65.155", 55, 150, ["192.168.65.127"], auth_pass="1111")
    v = Ether(frame)[VRRP]
    assert (v.vrid, v.priority, v.adv, v.authtype, v.addrlist) == (
        55,
        150,
        1,
        1,
        ["192.168.65.127"],
    )
    bad = Ether(inject.with_bad_checksum(frame))[VRRP]
    assert bad.chksum != v.chksum
    junk = inject.garbage(5, src_mac=MAC_A, src_ip="10.0.0.1")
    assert len(junk) == 5
    for frame in junk:  # a valid IPv4 header sums to zero, so the kernel delivers it
        assert frame[12:14] == b"\x08\x00" and frame[23] == 112
        assert inject._ipv4_checksum(frame[14:34]) == 0


@pytest.mark.netns
def test_injected_failover_reads_as_a_timeline(rig: RigFactory) -> None:
    r = rig()
    r.connect("a", "lan", addrs=["192.168.65.155/24"], mac=MAC_A)
    r.connect("b", "lan", addrs=["192.168.65.154/24"], mac=MAC_B)
    vip = ["192.168.65.127"]
    with capture.Capture(r) as cap:
        with inject.Injector(r, "a") as a:
            a.send(
                [inject.advert(MAC_A, "192.168.65.155", 55, 150, vip, version=3, advert_int=0.1)]
                * 3,
                interval=0.1,
            )
        time.sleep(0.45)  # the master dies: > 3 intervals of silence
        with inject.Injector(r, "b") as b:
            b.send(inject.garp(MAC_B, vip[0]))
            b.send(
                [inject.advert(MAC_B, "192.168.65.154", 55, 100, vip, version=3, advert_int=0.1)]
                * 2,
                interval=0.1,
            )
        time.sleep(0.2)
        events = cap.stop()
    kinds = [e.kind for e in events]
    assert kinds.count("advert") == 5 and kinds.count("garp") == 1
    changes = capture.masters(events)
    assert [(c.vrid, c.src_ip) for c in changes] == [(55, "192.168.65.155"), (55, "192.168.65.154")]
    gaps = capture.advert_gaps(events)
    assert len(gaps) == 1 and 0.4 < gaps[0].length < 1.5
    text = capture.timeline(events, capture.node_names(r))
    print(text)
    assert "MASTER of VRID 55: a" in text and "MASTER of VRID 55: b" in text
    assert "GARP 192.168.65.127 is-at 02:00:00:00:00:0b" in text
    assert "-- gap: no VRID 55 advert for" in text
    assert "2 more identical adverts" in text


@pytest.mark.netns
def test_flood_is_fast(rig: RigFactory) -> None:
    r = rig()
    r.connect("a", "lan", addrs=["192.168.65.155/24"], mac=MAC_A)
    frames = inject.garbage(10_000, src_mac=MAC_A, src_ip="192.168.65.155")
    t0 = time.monotonic()
    assert inject.inject(r, "a", frames) == 10_000
    assert time.monotonic() - t0 < 5
