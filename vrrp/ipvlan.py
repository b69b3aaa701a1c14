"""The RTM_NEWLINK request that makes an L2 ipvlan, as keepalived sends it.

vrrp_vmac.c ``netlink_link_add_ipvlan`` asks for ``IFLA_IPVLAN_MODE`` L2 and
``IFLA_IPVLAN_FLAGS`` (the ``use_ipvlan`` type word), with IFF_UP set in the
same request.  pyroute2's ipvlan link data knows the mode but not the flags,
so the request is packed here and sent on :class:`vrrp.links.Rtnl`.
:mod:`vrrp.vmac` owns the link's life cycle; this module only speaks.
"""

from __future__ import annotations

import socket
import struct

from vrrp.links import (
    _IFINFO,
    _NLMSG,
    IFF_UP,
    IFLA_IFNAME,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    Rtnl,
    _attr,
)

RTM_NEWLINK = 16
IFLA_LINK, IFLA_LINKINFO = 5, 18
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_IPVLAN_MODE, IFLA_IPVLAN_FLAGS = 1, 2
IPVLAN_MODE_L2 = 0
_FLAGS = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL


def _body(name: str, parent: int, flags: int) -> bytes:
    """The ifinfomsg and attributes: an up ipvlan in mode L2 on ifindex ``parent``."""
    data = _attr(IFLA_IPVLAN_MODE, struct.pack("=H", IPVLAN_MODE_L2)) + _attr(
        IFLA_IPVLAN_FLAGS, struct.pack("=H", flags)
    )
    info = _attr(IFLA_INFO_KIND, b"ipvlan") + _attr(IFLA_INFO_DATA, data)
    attrs = (
        _attr(IFLA_LINK, struct.pack("=I", parent))
        + _attr(IFLA_IFNAME, name.encode() + b"\0")
        + _attr(IFLA_LINKINFO, info)
    )
    return _IFINFO.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + attrs


def request(name: str, parent: int, flags: int, seq: int = 1) -> bytes:
    """The whole RTM_NEWLINK message for ``name``, as :func:`add` sends it."""
    body = _body(name, parent, flags)
    return _NLMSG.pack(_NLMSG.size + len(body), RTM_NEWLINK, NLM_F_REQUEST | _FLAGS, seq, 0) + body


def add(name: str, parent: int, flags: int) -> None:
    """Create the link; OSError with the kernel's errno when it refuses."""
    with Rtnl() as rtnl:
        rtnl.sock.settimeout(5.0)
        rtnl._request(RTM_NEWLINK, _FLAGS, _body(name, parent, flags))
