"""Capture VRRP and ARP on a rig segment and print it as a readable timeline.

Why: a failover is judged on the wire — when the last advert of the old master
left, when the new master's first advert and gratuitous ARPs appeared, how long
the gap was.  tcpdump (libpcap, packet-buffered) records on the segment's
bridge inside the switch namespace, where it sees every port's frames without
being one of the hosts; scapy then dissects the pcap.  scapy stays in ``sim/``
and ``tests/``: the daemon never imports it.

    cap = Capture(lab).start()
    ... kill the master ...
    events = cap.stop()
    print(timeline(events, names=node_names(lab)))
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sim.netns import SWITCH_NODE, NetnsError, Rig

DEFAULT_FILTER = "proto 112 or arp or (icmp6 and (ip6[40] == 136 or ip6[40] == 135))"


@dataclass(frozen=True)
class Event:
    """One dissected frame: a VRRP advert, an ARP (gratuitous or not) or an NDP NA."""

    t: float  # seconds since the first frame of the capture
    kind: str  # "advert", "garp", "arp-request", "arp-reply", "na", "ns"
    src_mac: str
    src_ip: str
    vrid: int | None = None
    priority: int | None = None
    version: int | None = None
    advert_int: float | None = None  # seconds
    addrs: tuple[str, ...] = ()
    ttl: int | None = None
    target: str = ""  # ARP/NA target address
    abs_time: float = 0.0


def dissect(pcap: str | Path) -> list[Event]:
    """Read a pcap (tcpdump -w) into events, oldest first."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, IPv6
    from scapy.layers.l2 import ARP, Ether
    from scapy.layers.vrrp import VRRP, VRRPv3
    from scapy.utils import rdpcap

    try:
        packets = rdpcap(str(pcap))
    except (OSError, EOFError) as exc:
        raise NetnsError(f"cannot read capture {pcap}: {exc}") from None
    events: list[Event] = []
    t0: float | None = None
    for pkt in packets:
        ts = float(pkt.time)
        t0 = ts if t0 is None else t0
        mac = str(pkt[Ether].src) if pkt.haslayer(Ether) else ""
        rel = ts - t0
        if pkt.haslayer(VRRP) or pkt.haslayer(VRRPv3):
            v = pkt[VRRP] if pkt.haslayer(VRRP) else pkt[VRRPv3]
            ip = pkt[IP] if pkt.haslayer(IP) else pkt[IPv6]
            v3 = v.version == 3
            raw_addrs = v.addrlist if isinstance(v.addrlist, list) else []
            events.append(
                Event(
                    rel,
                    "advert",
                    mac,
                    str(ip.src),
                    vrid=int(v.vrid),
                    priority=int(v.priority),
                    version=int(v.version),
                    advert_int=int(v.adv) / 100.0 if v3 else float(v.adv),
                    addrs=tuple(str(a) for a in raw_addrs),
                    ttl=int(ip.ttl if pkt.haslayer(IP) else ip.hlim),
                    abs_time=ts,
                )
            )
        elif pkt.haslayer(ARP):
            arp = pkt[ARP]
            gratuitous = arp.psrc == arp.pdst
            kind = "garp" if gratuitous else ("arp-request" if arp.op == 1 else "arp-reply")
            events.append(
                Event(rel, kind, str(arp.hwsrc), str(arp.psrc), target=str(arp.pdst), abs_time=ts)
            )
        elif pkt.haslayer(ICMPv6ND_NA):
            na = pkt[ICMPv6ND_NA]
            src = str(pkt[IPv6].src)
            events.append(Event(rel, "na", mac, src, target=str(na.tgt), abs_time=ts))
        elif pkt.haslayer(ICMPv6ND_NS):
            ns = pkt[ICMPv6ND_NS]
            src = str(pkt[IPv6].src)
            events.append(Event(rel, "ns", mac, src, target=str(ns.tgt), abs_time=ts))
    return events


@dataclass(frozen=True)
class MasterChange:
    t: float
    vrid: int
    src_ip: str
    src_mac: str


def masters(events: Sequence[Event]) -> list[MasterChange]:
    """Each time a VRID's adverts start coming from a different router.

    Only the master advertises (RFC 3768 §6.4.3 / RFC 5798 §6.4.3); a priority-0
    advert is a resignation, not a claim, so it is not counted.
    """
    current: dict[int, str] = {}
    out: list[MasterChange] = []
    for e in events:
        if e.kind != "advert" or e.vrid is None or not e.priority:
            continue
        if current.get(e.vrid) != e.src_mac:
            current[e.vrid] = e.src_mac
            out.append(MasterChange(e.t, e.vrid, e.src_ip, e.src_mac))
    return out


@dataclass(frozen=True)
class Gap:
    vrid: int
    start: float  # time of the last advert before the gap
    length: float
    interval: float


def advert_gaps(events: Sequence[Event], factor: float = 1.5) -> list[Gap]:
    """Silences longer than ``factor`` x the advertised interval, per VRID."""
    last: dict[int, Event] = {}
    gaps: list[Gap] = []
    for e in events:
        if e.kind != "advert" or e.vrid is None:
            continue
        prev = last.get(e.vrid)
        if prev is not None and prev.advert_int:
            dt = e.t - prev.t
            if dt > factor * prev.advert_int:
                gaps.append(Gap(e.vrid, prev.t, dt, prev.advert_int))
        last[e.vrid] = e
    return gaps


def node_names(rig: Rig) -> dict[str, str]:
    """MAC address -> node name for every interface the rig plugged into a segment."""
    names: dict[str, str] = {}
    for att in rig.attachments:
        with contextlib.suppress(Exception):
            names[rig.mac(att.node, att.ifname)] = att.node
    return names


def timeline(
    events: Sequence[Event],
    names: Mapping[str, str] | None = None,
    *,
    collapse: bool = True,
    gap_factor: float = 1.5,
) -> str:
    """The capture as lines a person reads during a failover post-mortem.

    With ``collapse`` a run of identical adverts from one master prints once with a
    count, so a 10 s capture stays a screenful; gaps, master changes and GARPs
    always print.
    """
    names = names or {}

    def who(e: Event) -> str:
        return names.get(e.src_mac, e.src_mac)

    gaps = {(g.vrid, round(g.start, 6)): g for g in advert_gaps(events, gap_factor)}
    current: dict[int, str] = {}
    lines: list[str] = []
    run_key: tuple[object, ...] | None = None
    run_count = 0

    def flush() -> None:
        nonlocal run_count
        if run_count > 1:
            lines.append(f"{'':>9}  … {run_count - 1} more identical adverts")
        run_count = 0

    for e in events:
        if e.kind == "advert" and e.vrid is not None:
            key = ("advert", e.src_mac, e.vrid, e.priority, e.addrs)
            head = ""
            if e.priority and current.get(e.vrid) != e.src_mac:
                current[e.vrid] = e.src_mac
                head = f"   <== MASTER of VRID {e.vrid}: {who(e)}"
            if collapse and key == run_key and not head:
                run_count += 1
            else:
                flush()
                run_key, run_count = key, 1
                resign = "  (priority 0: resigning)" if e.priority == 0 else ""
                lines.append(
                    f"{e.t:9.3f}  {who(e):<8} {e.src_ip:<16} VRRPv{e.version} vrid {e.vrid} "
                    f"prio {e.priority} int {e.advert_int:g}s ttl {e.ttl} "
                    f"[{' '.join(e.addrs)}]{resign}{head}"
                )
            gap = gaps.get((e.vrid, round(e.t, 6)))
            if gap is not None:
                flush()
                run_key = None
                lines.append(
                    f"{'':>9}  -- gap: no VRID {gap.vrid} advert for {gap.length:.3f}s "
                    f"({gap.length / gap.interval:.1f} intervals)"
                )
            continue
        flush()
        run_key = None
        if e.kind == "garp":
            lines.append(f"{e.t:9.3f}  {who(e):<8} GARP {e.src_ip} is-at {e.src_mac}")
        elif e.kind == "na":
            lines.append(f"{e.t:9.3f}  {who(e):<8} NA {e.target} from {e.src_ip}")
        elif e.kind == "arp-request":
            lines.append(f"{e.t:9.3f}  {who(e):<8} ARP who-has {e.target} tell {e.src_ip}")
        elif e.kind == "arp-reply":
            lines.append(f"{e.t:9.3f}  {who(e):<8} ARP {e.src_ip} is-at {e.src_mac}")
    flush()
    return "\n".join(lines)


class Capture:
    """tcpdump on a segment's bridge (switch namespace), tracked by the rig."""

    def __init__(
        self,
        rig: Rig,
        segment: str = "lan",
        *,
        bpf: str = DEFAULT_FILTER,
        pcap: str | Path | None = None,
    ) -> None:
        self.rig = rig
        self.segment = segment
        self.bpf = bpf
        self.pcap = Path(pcap) if pcap else rig.log_path(f"cap-{segment}").with_suffix(".pcap")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> Capture:
        if self.segment not in self.rig.segments:
            raise NetnsError(f"rig {self.rig.name} has no segment {self.segment!r}")
        self.pcap.unlink(missing_ok=True)
        argv = ["tcpdump", "--immediate-mode", "-i", f"br-{self.segment}", "-U", "-n", "-s", "256"]
        argv += ["-w", str(self.pcap), self.bpf]
        self.proc = self.rig.popen(SWITCH_NODE, argv, stderr=subprocess.PIPE)
        # tcpdump prints "listening on …" once the socket is live; before that,
        # frames are missed, so wait for it.
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        line = b""
        while b"listening on" not in line:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise NetnsError(f"tcpdump on br-{self.segment} did not start: {line!r}")
            line = self.proc.stderr.readline()
        return self

    def stop(self) -> list[Event]:
        """Stop tcpdump (it flushes on SIGTERM) and dissect what it saw."""
        if self.proc is not None:
            self.rig.kill(self.proc)
            self.proc = None
        return dissect(self.pcap) if self.pcap.exists() else []

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.rig.kill(self.proc)
            self.proc = None
