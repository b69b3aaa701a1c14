"""The RTM_NEWLINK request that makes an L2 ipvlan, as keepalived sends it.

vrrp_vmac.c ``netlink_link_add_ipvlan`` asks for ``IFLA_IPVLAN_MODE`` L2 and
``IFLA_IPVLAN_FLAGS`` (the ``use_ipvlan`` type word), with IFF_UP set in the
same request.  pyroute2's ipvlan link data knows the mode but not the flags,
so the request is packed here and sent on a plain NETLINK_ROUTE socket.
:mod:`vrrp.vmac` owns the link's life cycle; this module only speaks.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

RTM_NEWLINK = 16
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFF_UP = 0x1
IFLA_IFNAME, IFLA_LINK, IFLA_LINKINFO = 3, 5, 18
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_IPVLAN_MODE, IFLA_IPVLAN_FLAGS = 1, 2
IPVLAN_MODE_L2 = 0


def _attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    head = struct.pack("=HH", 4 + len(payload), kind)
    return head + payload + b"\0" * (-len(payload) % 4)


def request(name: str, parent: int, flags: int, seq: int = 1) -> bytes:
    """RTM_NEWLINK for ``name``: an up ipvlan in mode L2 on ifindex ``parent``."""
    data = _attr(IFLA_IPVLAN_MODE, struct.pack("=H", IPVLAN_MODE_L2)) + _attr(
        IFLA_IPVLAN_FLAGS, struct.pack("=H", flags)
    )
    info = _attr(IFLA_INFO_KIND, b"ipvlan") + _attr(IFLA_INFO_DATA, data)
    attrs = (
        _attr(IFLA_LINK, struct.pack("=I", parent))
        + _attr(IFLA_IFNAME, name.encode() + b"\0")
        + _attr(IFLA_LINKINFO, info)
    )
    ifi = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP)
    body = ifi + attrs
    flags_nl = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    return struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK, flags_nl, seq, 0) + body


def add(name: str, parent: int, flags: int) -> None:
    """Create the link; OSError with the kernel's errno when it refuses."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        sock.settimeout(5.0)
        sock.send(request(name, parent, flags))
        while True:
            reply = sock.recv(65536)
            off = 0
            while off + 16 <= len(reply):
                length, kind, _f, seq, _pid = struct.unpack_from("=IHHII", reply, off)
                if kind == NLMSG_ERROR and seq == 1:
                    (code,) = struct.unpack_from("=i", reply, off + 16)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return
                if length < 16:
                    raise OSError(errno.EPROTO, "short netlink message")
                off += (length + 3) & ~3
