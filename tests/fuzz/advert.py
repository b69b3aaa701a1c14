"""The advert decoder (``vrrp.packet.decode``): mutated valid adverts and random bytes.

Every input must come back as an ``Advert`` or a ``Rejected`` with a reason;
anything raised is a crash.
"""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

from tests.fuzz import Tally
from vrrp.packet import (
    AUTH_AH,
    AUTH_NONE,
    AUTH_PASS,
    MCAST_GROUP4,
    MCAST_GROUP6,
    Advert,
    ReceiveParams,
    Rejected,
    decode,
    encode,
)

SRC4 = ipaddress.IPv4Address("10.0.0.1")
SRC6 = ipaddress.IPv6Address("fe80::1")
VIPS4 = tuple(ipaddress.IPv4Address(f"10.0.0.{i}") for i in range(100, 110))
VIPS6 = tuple(ipaddress.IPv6Address(f"2001:db8::{i}") for i in range(1, 6))


def _params(rnd: random.Random) -> list[ReceiveParams]:
    """Receivers of each kind keepalived has: v2 with each auth type, v3, IPv6, unicast."""
    return [
        ReceiveParams(version=2, vrid=51, addresses=VIPS4[:3]),
        ReceiveParams(
            version=2, vrid=51, auth_type=AUTH_PASS, auth_pass=b"secret", addresses=VIPS4[:1]
        ),
        ReceiveParams(version=2, vrid=51, auth_type=AUTH_AH, addresses=VIPS4[:2]),
        ReceiveParams(version=3, vrid=51, addresses=VIPS4[:3]),
        ReceiveParams(version=3, family=6, vrid=51, addresses=VIPS6[:2]),
        ReceiveParams(
            version=3, vrid=None, unicast=True, unicast_peers=(SRC4,), check_unicast_src=True
        ),
        ReceiveParams(
            version=3, vrid=51, unicast=True, v3_checksum_as_v2=True, addresses=VIPS4[:1]
        ),
    ]


def _valid(rnd: random.Random, p: ReceiveParams) -> bytes:
    six = p.family == 6
    addrs = VIPS6[: rnd.randint(0, 5)] if six else VIPS4[: rnd.randint(0, 10)]
    auth = b"secret" if p.auth_type == AUTH_PASS else b""
    adv = Advert(
        version=p.version,
        vrid=rnd.choice([51, 51, 51, rnd.randint(0, 255)]),
        priority=rnd.randint(0, 255),
        addresses=addrs,
        interval_cs=rnd.choice([100, 100, rnd.randint(0, 4095)]),
        auth_type=p.auth_type if p.version == 2 else AUTH_NONE,
        auth_data=auth,
    )
    dst = MCAST_GROUP6 if six else MCAST_GROUP4
    return encode(adv, src=SRC6 if six else SRC4, dst=dst)


def _mutate(rnd: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(5)
        if op == 0 and b:
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        elif op == 1:
            del b[rnd.randrange(len(b) + 1) :]
        elif op == 2:
            b += rnd.randbytes(rnd.randint(1, 64))
        elif op == 3 and b:
            i = rnd.randrange(len(b))
            b[i] ^= 1 << rnd.randrange(8)
        else:
            b[rnd.randrange(len(b) + 1) : 0] = rnd.randbytes(rnd.randint(1, 8))
    return bytes(b)


def run(n: int, seed: int, workdir: Path | None = None) -> Tally:
    rnd = random.Random(seed)
    tally = Tally("advert")
    params = _params(rnd)
    for _ in range(n):
        p = rnd.choice(params)
        kind = rnd.random()
        if kind < 0.1:
            data = rnd.randbytes(rnd.randint(0, 80))
        elif kind < 0.3:
            data = _valid(rnd, p)
        else:
            data = _mutate(rnd, _valid(rnd, p))
        six = p.family == 6
        src = SRC6 if six else SRC4
        dst = MCAST_GROUP6 if six else MCAST_GROUP4
        ttl = rnd.choice([255, 255, 255, None, rnd.randint(0, 255)])
        ip_total = rnd.choice([None, None, len(data) + 20, rnd.randint(0, 70000)])
        tally.inputs += 1
        try:
            got = decode(data, src=src, dst=dst, ttl=ttl, expected=p, ip_total_length=ip_total)
        except Exception as exc:
            tally.crash(data, exc)
            continue
        if isinstance(got, Rejected):
            tally.reject(got.reason)
        elif isinstance(got, Advert):
            tally.accepted += 1
        else:
            tally.crash(data, why=f"decode returned {type(got).__name__}")
    return tally
