"""``promote_secondaries``: the interface setting an instance asks for.

Mirrors keepalived/vrrp/vrrp_if_config.c ``set_promote_secondaries`` /
``reset_promote_secondaries`` and vrrp.c (``vrrp_complete_instance`` sets it
as the instance starts, ``shutdown_vrrp_instances`` resets it): the
interface's ``net.ipv4.conf.IF.promote_secondaries`` is set to 1, so that
removing a VIP that happens to be the primary address of its subnet keeps
the other addresses of that subnet; it goes back to 0 when the last instance
that set it stops.  An interface that already had it on is left alone, and
is not turned off at the end.  (A VMAC gets it with its other settings:
vrrp/vmac.py.)
"""

from __future__ import annotations

import contextlib
from pathlib import Path

_PROC = Path("/proc/sys/net/ipv4/conf")

#: interface -> how many running instances hold promote_secondaries on it
_refs: dict[str, int] = {}


def _path(ifname: str) -> Path:
    return _PROC / ifname / "promote_secondaries"


def set_promote_secondaries(ifname: str) -> bool:
    """Turn it on for one more instance; False when it was on already (left alone)."""
    if _refs.get(ifname):
        _refs[ifname] += 1
        return True
    try:
        if _path(ifname).read_text().strip() == "1":
            return False
        _path(ifname).write_text("1\n")
    except OSError:
        return False
    _refs[ifname] = 1
    return True


def reset_promote_secondaries(ifname: str) -> None:
    """One instance fewer; the last one turns it off again."""
    left = _refs.get(ifname, 0) - 1
    if left > 0:
        _refs[ifname] = left
        return
    _refs.pop(ifname, None)
    with contextlib.suppress(OSError):
        _path(ifname).write_text("0\n")
