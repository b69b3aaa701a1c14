"""Netlink encoding, byte-level: the fields pyroute2 gets wrong must be right here.

(pyroute2: "update" sends DEL, an unknown key such as ``sched=`` is dropped so
the kernel falls back to wlc, TUN_PORT goes out in host order.)
"""

from __future__ import annotations

import ipaddress
import struct

from ipvs.diff import Op, OpKind
from ipvs.netlink import (
    CMD_DEL_DEST,
    CMD_NEW_SERVICE,
    CMD_SET_DEST,
    DST_TUN_PORT,
    DST_WEIGHT,
    SVC_NETMASK,
    SVC_SCHED_NAME,
    op_payload,
)
from ipvs.table import Dest, DestKey, Proto, Service, ServiceKey

SK = ServiceKey.inet(ipaddress.ip_address("10.0.0.1"), 80, Proto.TCP)


def attrs(buf: bytes) -> dict[int, bytes]:
    """Flatten nested attributes: type -> payload (last wins)."""
    out: dict[int, bytes] = {}
    off = 0
    while off + 4 <= len(buf):
        n, kind = struct.unpack_from("=HH", buf, off)
        payload = buf[off + 4 : off + n]
        out[kind] = payload
        if kind in (1, 2) and n > 8:  # SERVICE / DEST nests
            for k, v in attrs(payload).items():
                out[100 * kind + k] = v
        off += (n + 3) & ~3
    return out


def test_new_service_carries_scheduler_and_netmask() -> None:
    cmd, body = op_payload(Op(OpKind.ADD_SERVICE, SK, Service("rr", netmask=24)))
    a = attrs(body)
    assert cmd == CMD_NEW_SERVICE
    assert a[100 + SVC_SCHED_NAME] == b"rr\0"
    assert a[100 + SVC_NETMASK] == bytes([255, 255, 255, 0])


def test_edit_dest_is_set_not_delete() -> None:
    d = Dest(fwd=2, weight=7, tun_type=1, tun_port=6080)
    cmd, body = op_payload(Op(OpKind.EDIT_DEST, SK, None, DestKey("10.0.1.1", 80), d))
    a = attrs(body)
    assert cmd == CMD_SET_DEST != CMD_DEL_DEST
    assert struct.unpack("=I", a[200 + DST_WEIGHT]) == (7,)
    assert a[200 + DST_TUN_PORT] == struct.pack("!H", 6080)  # big-endian, as the kernel reads it


def test_ipv6_fwmark_netmask_is_a_prefix_length() -> None:
    op = Op(OpKind.ADD_SERVICE, ServiceKey.mark(5, 6), Service("wlc", netmask=64))
    _cmd, body = op_payload(op)
    assert struct.unpack("=I", attrs(body)[100 + SVC_NETMASK]) == (64,)


def test_fast_ipv4_dest_nest_equals_attribute_by_attribute() -> None:
    from ipvs.netlink import A_DEST, _addr, _be16, _nla, _u16, _u32, dest_attrs

    d, k = Dest(fwd=3, weight=7, u_threshold=2, l_threshold=1), DestKey("10.1.2.3", 8080)
    slow = _nla(
        A_DEST,
        _nla(1, _addr(4, k.address))
        + _be16(2, k.port)
        + _u32(3, 3)
        + _u32(4, 7)
        + _u32(5, 2)
        + _u32(6, 1)
        + _u16(11, 2),
    )
    assert dest_attrs(k, d) == slow
