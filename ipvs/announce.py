"""``announce_on_lo``: the virtual addresses on ``lo`` exactly while their server has quorum.

Cluster mode (the manuals' directors behind ECMP) lets a routing daemon
(FRR's ospfd or bgpd redistributing ``lo``'s addresses) announce a virtual
address from every director that holds it on ``lo``.  The manuals do this with
``quorum_up "ip addr add VIP/32 dev lo"`` / ``quorum_down "ip addr del …"``
plus ``alpha`` and ``omega``; ``announce_on_lo`` (a pykeep keyword) does it
with netlink, no shell: added when quorum is gained (at start too, when it
starts up), removed when quorum is lost and when pykeep stops, so a stopped
director stops attracting traffic.

:func:`wanted` is pure (configuration and quorum in, addresses out); the
:class:`LoAnnouncer` shell converges ``lo`` on it in one task, so a quick
up-down-up can never leave its steps out of order.  An address already on
``lo`` is adopted: after a crash the next start takes it back under control.
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Mapping

import trio

from ipvs.desired import DesiredError, service_keys
from pykeep import log as pklog
from pykeep.config.model import Config, IPAddress


def wanted(config: Config, quorum: Mapping[str, bool]) -> set[IPAddress]:
    """The addresses ``lo`` should hold: those of announce_on_lo servers that have quorum."""
    out: set[IPAddress] = set()
    for vs in config.virtual_servers:
        if not vs.announce_on_lo or not quorum.get(vs.key, False):
            continue
        try:
            keys = list(service_keys(vs, config))
        except DesiredError:
            continue
        out.update(ipaddress.ip_address(k.address) for k in keys if k.address)
    return out


def _apply(add: set[IPAddress], remove: set[IPAddress]) -> list[str]:
    """Add and delete host addresses on ``lo`` (blocking netlink); the failures, as text."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    failed: list[str] = []
    with IPRoute() as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        for cmd, addrs in (("add", add), ("del", remove)):
            for a in sorted(addrs, key=str):
                try:
                    ipr.addr(cmd, index=lo, address=str(a), prefixlen=a.max_prefixlen)
                except NetlinkError as e:
                    fine = errno.EEXIST if cmd == "add" else errno.EADDRNOTAVAIL
                    if e.code != fine:
                        failed.append(f"{cmd} {a}/{a.max_prefixlen} dev lo: {e}")
    return failed


class LoAnnouncer:
    """Converges the addresses on ``lo`` on :attr:`want`, in one task, in order."""

    def __init__(self) -> None:
        self.want: set[IPAddress] = set()
        self.owned: set[IPAddress] = set()
        self._wake = trio.Event()
        self._lock = trio.Lock()
        self.log = pklog.get("lvs")

    def set(self, want: set[IPAddress]) -> None:
        """Say what ``lo`` should hold now (sync: called from the LVS service's bookkeeping)."""
        if want != self.want:
            self.want = set(want)
            self._wake.set()

    async def run(self) -> None:
        """The task that follows :meth:`set` until cancelled."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self.sync()

    async def sync(self) -> None:
        async with self._lock:
            want = set(self.want)
            add, remove = want - self.owned, self.owned - want
            if not add and not remove:
                return
            failed = await trio.to_thread.run_sync(_apply, add, remove)
            self.owned = want
            for a in sorted(add, key=str):
                self.log.info(f"announce_on_lo: added {a}/{a.max_prefixlen} on lo", vip=str(a))
            for a in sorted(remove, key=str):
                self.log.info(f"announce_on_lo: removed {a}/{a.max_prefixlen} from lo", vip=str(a))
            for f in failed:
                self.log.error("announce_on_lo failed", reason=f)

    async def clear(self) -> None:
        """Omega: take every address we hold off ``lo``."""
        self.want = set()
        await self.sync()
