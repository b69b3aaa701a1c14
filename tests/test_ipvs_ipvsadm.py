"""ipvsadm text formats, against output captured from ipvsadm 1.31 on Debian's 6.1 kernel."""

from __future__ import annotations

import ipaddress

from ipvs.ipvsadm import format_list, format_save
from ipvs.table import (
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    SVC_F_SCHED1,
    SVC_F_SCHED2,
    Dest,
    DestKey,
    Proto,
    Service,
    ServiceEntry,
    ServiceKey,
    Table,
)

IP = ipaddress.ip_address

# ipvsadm -A -t 10.0.0.1:80 -s sh -p 300 -M 255.255.255.0 -b sh-port,sh-fallback ... (see probe)
SAVE = """\
-A -t 10.0.0.1:80 -s sh -p 300 -M 255.255.255.0 -b sh-fallback,sh-port
-a -t 10.0.0.1:80 -r 10.0.1.1:80 -i -w 4 --tun-type gue --tun-port 6080 --tun-csum
-a -t 10.0.0.1:80 -r 10.0.1.2:80 -i -w 1 --tun-type ipip
-a -t 10.0.0.1:80 -r 10.0.1.3:80 -i -w 1 --tun-type gre --tun-nocsum
-A -u 10.0.0.2:53 -s mh -o -b mh-port
-a -u 10.0.0.2:53 -r 10.0.1.1:5353 -m -w 0
-A --sctp-service 10.0.0.3:80 -s fo
-A -t [fd00::1]:80 -s wrr -p 60 -M 64
-a -t [fd00::1]:80 -r [fd00::2]:80 -g -w 1
-A -f 7 -s rr -p 360
-a -f 7 -r 10.0.1.1:0 -g -w 1
-A -f 8 -6 -s rr
"""

LIST = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:80 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0
  -> 10.0.1.1:80                  Tunnel  4      0          0         <
  -> 10.0.1.2:80                  Tunnel  1      0          0         <
  -> 10.0.1.3:80                  Tunnel  1      0          0         <
UDP  10.0.0.2:53 mh (mh-port) ops
  -> 10.0.1.1:5353                Masq    0      0          0         <
SCTP 10.0.0.3:80 fo
TCP  [fd00::1]:80 wrr persistent 60 mask 64
  -> [fd00::2]:80                 Route   1      0          0         <
FWM  7 rr persistent 360
  -> 10.0.1.1:0                   Route   1      0          0         <
FWM  8 IPv6 rr
""".replace("<\n", "\n")  # "<" marks ipvsadm's trailing blanks

STATS = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.0.0.1:80                         0        0        0        0        0
  -> 10.0.1.1:80                         0        0        0        0        0
"""


def probe_table() -> Table:
    s1 = ServiceKey.inet(IP("10.0.0.1"), 80, Proto.TCP)
    t: Table = {
        s1: ServiceEntry(
            Service("sh", SVC_F_PERSISTENT | SVC_F_SCHED1 | SVC_F_SCHED2, 300, 24),
            {
                DestKey("10.0.1.1", 80): Dest(2, 4, 10, 5, 1, 6080, 1),
                DestKey("10.0.1.2", 80): Dest(2, 1),
                DestKey("10.0.1.3", 80): Dest(2, 1, tun_type=2),
            },
        ),
        ServiceKey.inet(IP("10.0.0.2"), 53, Proto.UDP): ServiceEntry(
            Service("mh", SVC_F_ONEPACKET | SVC_F_SCHED2), {DestKey("10.0.1.1", 5353): Dest(0, 0)}
        ),
        ServiceKey.inet(IP("10.0.0.3"), 80, Proto.SCTP): ServiceEntry(Service("fo")),
        ServiceKey.inet(IP("fd00::1"), 80, Proto.TCP): ServiceEntry(
            Service("wrr", SVC_F_PERSISTENT, 60, 64), {DestKey("fd00::2", 80): Dest(3, 1)}
        ),
        ServiceKey.mark(7): ServiceEntry(
            Service("rr", SVC_F_PERSISTENT, 360), {DestKey("10.0.1.1", 0): Dest(3, 1)}
        ),
        ServiceKey.mark(8, 6): ServiceEntry(Service("rr", netmask=128)),
    }
    return t


def test_save_matches_ipvsadm() -> None:
    assert format_save(probe_table()) == SAVE


def test_list_matches_ipvsadm() -> None:
    assert format_list(probe_table()) == LIST


def test_stats_layout() -> None:
    t = probe_table()
    s1 = next(iter(t))
    one = {
        s1: ServiceEntry(
            t[s1].service, {DestKey("10.0.1.1", 80): t[s1].dests[DestKey("10.0.1.1", 80)]}
        )
    }
    assert format_list(one, stats={}, mode="stats") == STATS
