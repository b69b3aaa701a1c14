"""Crafted adverts are dropped, counted by reason, and change nothing (issue 4, must-show 5).

The packets come from the client namespace through an AF_PACKET socket, built
with scapy.  Each claims priority 254 against pykeep's 150, so had any been
accepted the master would have stepped down; a last, valid one proves that
the injection path works by doing exactly that.
"""

from __future__ import annotations

import random
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.layers.vrrp import VRRP, VRRPv3

from sim import netns
from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, vrrp_conf, wait_owner, workdir
from vrrp import socket as vsock

pytestmark = pytest.mark.netns

VIP = "10.99.0.200"
Make = Callable[..., Rig]


def _advert(**over: Any) -> Any:
    ip: dict[str, Any] = {"src": "10.99.0.100", "dst": "224.0.0.18", "ttl": 255, "tos": 0xC0}
    vr: dict[str, Any] = {
        "vrid": 51,
        "priority": 254,
        "ipcount": 1,
        "addrlist": [VIP],
        "authtype": 1,
        "auth1": int.from_bytes(b"rigb", "big"),
        "auth2": int.from_bytes(b"pw\0\0", "big"),
        "adv": 1,
    }
    ip.update({k[3:]: v for k, v in over.items() if k.startswith("ip_")})
    vr.update({k: v for k, v in over.items() if not k.startswith("ip_")})
    return Ether(dst="01:00:5e:00:00:12") / IP(**ip) / VRRP(**vr)


def _truncated() -> bytes:
    """Half the auth data cut off; the IP header stays consistent with what is sent."""
    frame = bytearray(bytes(_advert())[:-4])
    struct.pack_into("!H", frame, 14 + 2, len(frame) - 14)
    struct.pack_into("!H", frame, 14 + 10, 0)
    struct.pack_into("!H", frame, 14 + 10, vsock.ipv4_checksum(bytes(frame[14:34])))
    return bytes(frame)


CASES: dict[str, Callable[[], bytes]] = {
    "ttl": lambda: bytes(_advert(ip_ttl=64)),
    "checksum": lambda: bytes(_advert(chksum=0x1234)),
    "length": _truncated,
    "version": lambda: bytes(
        Ether(dst="01:00:5e:00:00:12")
        / IP(src="10.99.0.100", dst="224.0.0.18", ttl=255, tos=0xC0)
        / VRRPv3(vrid=51, priority=254, ipcount=1, addrlist=[VIP], adv=100)
    ),
    "auth_pass": lambda: bytes(_advert(auth1=int.from_bytes(b"wron", "big"))),
    "vrid": lambda: bytes(_advert(vrid=52)),
    "adver_int": lambda: bytes(_advert(adv=2)),
}


def test_crafted_adverts_dropped_and_counted(rig: Make) -> None:
    r = rig(hint="vbad")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"})
        a = router(r, "a", "pykeep", vrrp_conf(priority=150, auth_pass="rigbpw"), wd).start()
        ma = r.mac("a")
        wait_owner(r, "client", VIP, ma, 3.5 + 3)
        with netns.entered(r.ns("client")):
            tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        tx.bind(("eth0", 0))
        try:
            frames = {reason: make() for reason, make in CASES.items()}
            for _ in range(3):
                for frame in frames.values():
                    tx.send(frame)
                time.sleep(0.05)
            # a flood of 10,000 garbage VRRP packets (random payloads, random VRIDs)
            rnd = random.Random(4)
            head = bytes(_advert())[:34]
            base = Ether(head + bytes(20))
            for i in range(10_000):
                body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 48)))
                if i % 2:
                    body = bytes([0x21, 51]) + body  # our VRID: reaches the decoder
                pkt = base.copy()
                pkt[IP].remove_payload()
                pkt[IP].len = 20 + len(body)
                del pkt[IP].chksum
                tx.send(bytes(pkt) + body)
            time.sleep(0.5)
            stats = a.stats()
            drops = stats["instances"]["VI_1"]
            sock = stats["socket"]
            for reason in CASES:
                n = sock.get(reason, 0) if reason == "vrid" else drops.get(f"rx_drop_{reason}", 0)
                assert n >= 3, (reason, stats)
            total = sum(v for k, v in drops.items() if k.startswith("rx_drop_")) + sum(
                sock.values()
            )
            assert total >= 10_000 + 3 * len(CASES) - 50, stats
            assert a.proc is not None and a.proc.poll() is None, "daemon died"
            assert stats["states"]["VI_1"] == "MASTER"
            assert a.text().count("Entering MASTER STATE") == 1
            assert wait_owner(r, "client", VIP, ma, 1.0) < 1.0
            # control: the same path with a valid advert does move the master
            tx.send(bytes(_advert()))
            until(lambda: not a.has_vip(VIP), 2.0)
            assert "Entering BACKUP STATE" in a.text()
        finally:
            tx.close()
        a.signal(signal.SIGTERM)
