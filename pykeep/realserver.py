"""``pykeep realserver start|stop|status --vip VIP…``: prepare an LVS-DR real server.

Why: in DR mode the director forwards frames whose destination IP is still the VIP,
so every real server must hold the VIP itself (on ``lo``, as a /32 so it claims no
subnet) and must never answer ARP for it, or clients would bypass the director.
The seeds do this with hand-written scripts that "are often forgotten" (seed 000
§1.3-§1.4 ``ipvs_client``, seed 002 ``rs.sh``, seed 003 §3.3.1-§3.4.2):

    ifconfig lo:127 192.168.65.127 netmask 255.255.255.255 up
    echo 1 > /proc/sys/net/ipv4/conf/{lo,all}/arp_ignore
    echo 2 > /proc/sys/net/ipv4/conf/{lo,all}/arp_announce

This command is the tested replacement: the same end state, reached idempotently
(running ``start`` twice changes nothing the second time), printing each change,
and ``status`` exits non-zero when a VIP has gone missing from ``lo`` — seed 000
§1.5's "the VIP on lo is sometimes lost after a network restart".

``arp_ignore=1``: answer ARP only for addresses on the receiving interface, so the
VIP on ``lo`` is never announced.  ``arp_announce=2``: pick the best local source
for ARP requests, never the VIP.  ``stop`` sets both back to 0 as the seeds' stop
branches do.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ARP_SETTINGS = (("arp_ignore", "1"), ("arp_announce", "2"))
SYSCTL_ROOT = Path("/proc/sys/net/ipv4/conf")


class RealServerError(Exception):
    """A one-line reason shown to the operator instead of a traceback."""


@dataclass(frozen=True)
class Change:
    """One checked item: ``subject`` was ``old`` and must be ``new``."""

    subject: str
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def render(self, action: str) -> str:
        if not self.changed:
            return f"ok      {self.subject} = {self.new}"
        if action == "status":
            return f"WRONG   {self.subject} = {self.old} (want {self.new})"
        return f"changed {self.subject}: {self.old} -> {self.new}"


def _vip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        addr = ipaddress.ip_address(text.split("/")[0])
    except ValueError:
        raise RealServerError(f"invalid VIP {text!r}: not an IP address") from None
    if "/" in text and text.split("/")[1] not in ("32", "128"):
        raise RealServerError(f"VIP {text!r}: a real server holds the VIP as a host address")
    return addr


def _sysctl_targets(dev: str) -> list[str]:
    return ["all", dev] if dev != "all" else ["all"]


def _set_sysctl(dev: str, key: str, value: str, apply: bool) -> Change:
    path = SYSCTL_ROOT / dev / key
    try:
        old = path.read_text().strip()
    except OSError as exc:
        raise RealServerError(f"cannot read {path}: {exc.strerror}") from None
    name = f"net.ipv4.conf.{dev}.{key}"
    if apply and old != value:
        try:
            path.write_text(value)
        except OSError as exc:
            raise RealServerError(f"cannot write {path}: {exc.strerror}") from None
    return Change(name, old, value)


class _Addrs:
    """The VIPs on ``dev``, through pyroute2 (the daemon's netlink library)."""

    def __init__(self, dev: str) -> None:
        from pyroute2 import IPRoute

        self.dev = dev
        self.ipr = IPRoute()
        found = self.ipr.link_lookup(ifname=dev)
        if not found:
            self.ipr.close()
            raise RealServerError(f"no interface {dev!r}")
        self.index = int(found[0])

    def present(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for msg in self.ipr.get_addr(index=self.index):
            out[str(msg.get_attr("IFA_ADDRESS"))] = int(msg["prefixlen"])
        return out

    def label(self, vip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        # `lo:127` as seed 000's ipvs_client names it (last octet), so `ifconfig`
        # users recognise it; IPv6 has no labels.
        if vip.version != 4:
            return None
        label = f"{self.dev}:{str(vip).rsplit('.', 1)[1]}"
        return label if len(label) <= 15 else None

    def add(self, vip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        kw: dict[str, object] = {"index": self.index, "address": str(vip)}
        kw["prefixlen"] = 32 if vip.version == 4 else 128
        label = self.label(vip)
        if label:
            kw["label"] = label
        self.ipr.addr("add", **kw)

    def remove(self, vip: ipaddress.IPv4Address | ipaddress.IPv6Address, prefixlen: int) -> None:
        self.ipr.addr("del", index=self.index, address=str(vip), prefixlen=prefixlen)

    def close(self) -> None:
        self.ipr.close()


def plan(action: str, vips: Sequence[str], dev: str = "lo", *, apply: bool = True) -> list[Change]:
    """Bring the host to the ``start`` or ``stop`` state; return every item checked."""
    parsed = [_vip(v) for v in vips]
    host_len = {4: 32, 6: 128}
    changes: list[Change] = []
    addrs = _Addrs(dev)
    try:
        present = addrs.present()
        for vip in parsed:
            have = present.get(str(vip))
            want = host_len[vip.version]
            subject = f"{vip} on {dev}"
            old = "absent" if have is None else f"/{have}"
            if action == "stop":
                changes.append(Change(subject, old, "absent"))
                if apply and have is not None:
                    addrs.remove(vip, have)
                continue
            changes.append(Change(subject, old, f"/{want}"))
            if apply and have != want:
                if have is not None:
                    # A VIP with a subnet prefix on lo would swallow the whole subnet.
                    addrs.remove(vip, have)
                addrs.add(vip)
    except RealServerError:
        raise
    except Exception as exc:  # pyroute2's NetlinkError and friends: one line
        raise RealServerError(f"netlink on {dev}: {exc}") from None
    finally:
        addrs.close()
    if any(v.version == 4 for v in parsed):
        for target in _sysctl_targets(dev):
            for key, on in ARP_SETTINGS:
                value = "0" if action == "stop" else on
                changes.append(_set_sysctl(target, key, value, apply))
    return changes


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="pykeep realserver", description="prepare an LVS-DR real server (VIP on lo, no ARP)"
    )
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--vip", nargs="+", required=True, action="extend", metavar="VIP")
    p.add_argument("--dev", default="lo", help="interface that holds the VIPs (default lo)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only changes")
    args = p.parse_args(list(argv))
    try:
        changes = plan(args.action, args.vip, args.dev, apply=args.action != "status")
    except RealServerError as exc:
        print(f"pykeep realserver: {exc}", file=sys.stderr)
        return 1
    for c in changes:
        if c.changed or not args.quiet:
            print(c.render(args.action))
    if args.action == "status":
        return 1 if any(c.changed for c in changes) else 0
    if not any(c.changed for c in changes):
        print("nothing to change")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
