"""Pure tests of the VRRP I/O pieces: frames, headers, netlink parsing, trackers, notify."""

from __future__ import annotations

import ipaddress
import os
import struct
import tempfile

import pytest
import trio
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from pykeep.config.model import Notify, Script
from vrrp import garp, notify, track
from vrrp import socket as vsock

MAC = bytes.fromhex("2edfabc29fd9")


def test_garp_frame_is_keepalived_request_for_own_address() -> None:
    # vrrp_arp.c send_gratuitous_arp_immediate: request, spa == tpa == VIP, tha broadcast
    vip = ipaddress.IPv4Address("10.99.0.200")
    f = Ether(garp.arp_frame(MAC, vip))
    assert f.dst == "ff:ff:ff:ff:ff:ff" and f.src == "2e:df:ab:c2:9f:d9" and f.type == 0x0806
    a = f[ARP]
    assert (a.hwtype, a.ptype, a.hwlen, a.plen, a.op) == (1, 0x0800, 6, 4, 1)
    assert a.psrc == a.pdst == "10.99.0.200"
    assert a.hwsrc == "2e:df:ab:c2:9f:d9" and a.hwdst == "ff:ff:ff:ff:ff:ff"
    assert len(garp.arp_frame(MAC, vip)) == 42


@pytest.mark.parametrize("router", [False, True])
def test_unsolicited_na_matches_keepalived(router: bool) -> None:
    # vrrp_ndisc.c ndisc_send_unsolicited_na_immediate
    vip = ipaddress.IPv6Address("fd00::200")
    raw = garp.na_frame(MAC, vip, router=router)
    f = Ether(raw)
    assert f.dst == "33:33:00:00:00:01"
    ip6 = f[IPv6]
    assert (ip6.src, ip6.dst, ip6.hlim, ip6.tc, ip6.fl) == ("fd00::200", "ff02::1", 255, 0, 0)
    na = f[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.tgt) == (int(router), 0, 1, "fd00::200")
    assert f[ICMPv6NDOptDstLLAddr].lladdr == "2e:df:ab:c2:9f:d9"
    sent = na.cksum
    del na.cksum
    assert Ether(bytes(f))[ICMPv6ND_NA].cksum == sent


def test_ipv4_header_as_keepalived_builds_it() -> None:
    # vrrp.c vrrp_build_ip4: TOS 0xc0, DF clear, TTL, proto 112, id from the caller
    data = vsock.build_ipv4(
        b"\x21\x33\x96\x01\x01\x01\xf2\x5b" + bytes(12),
        src=ipaddress.IPv4Address("10.99.0.11"),
        dst=ipaddress.IPv4Address("224.0.0.18"),
        ttl=255,
        ip_id=14,
    )
    ip = IP(data)
    assert (ip.tos, ip.ttl, ip.proto, ip.id, int(ip.flags), ip.frag) == (0xC0, 255, 112, 14, 0, 0)
    sent = ip.chksum
    del ip.chksum
    assert IP(bytes(ip)).chksum == sent
    got = vsock.parse_ipv4(data)
    assert isinstance(got, vsock.Received) and got.ttl == 255 and got.payload[1] == 0x33


def test_parse_ipv4_reasons() -> None:
    assert vsock.parse_ipv4(b"\x45" * 10) == "short"
    other = bytearray(
        vsock.build_ipv4(
            b"x" * 8,
            src=ipaddress.IPv4Address("1.1.1.1"),
            dst=ipaddress.IPv4Address("224.0.0.18"),
            ttl=255,
            ip_id=1,
        )
    )
    other[9] = 6
    assert vsock.parse_ipv4(bytes(other)) == "not_vrrp"


def _link_msg(index: int, name: str, flags: int, kind: int = track.RTM_NEWLINK) -> bytes:
    attr_name = name.encode() + b"\0"
    attr = struct.pack("=HH", 4 + len(attr_name), track.IFLA_IFNAME) + attr_name
    attr += b"\0" * ((4 - len(attr) % 4) % 4)
    body = struct.pack("=BxHiII", 0, 1, index, flags, 0) + attr
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_link_messages_give_keepalived_up_meaning() -> None:
    data = _link_msg(2, "eth0", track.IFF_UP | track.IFF_RUNNING) + _link_msg(
        3, "eth1", track.IFF_UP
    )
    data += _link_msg(4, "eth2", track.IFF_UP | track.IFF_RUNNING, track.RTM_DELLINK)
    assert track.parse_link_messages(data) == [
        (2, "eth0", True, False),
        (3, "eth1", False, False),  # no carrier: keepalived's IF_FLAGS_UP is false
        (4, "eth2", False, True),
    ]


def test_script_rise_fall_as_vrrp_script_child_thread() -> None:
    st = track.ScriptStatus(rise=2, fall=3, result=1)
    assert st.up  # initial: good until told otherwise
    assert st.record(False) and not st.up  # first result decides at once
    assert not st.record(True) and not st.up  # rise 2: one success is not enough
    assert st.record(True) and st.up
    assert not st.record(False) and not st.record(False) and st.up  # fall 3
    assert st.record(False) and not st.up
    init_fail = track.ScriptStatus(rise=1, fall=1, result=0, initial=False)
    assert not init_fail.up and init_fail.record(True) and init_fail.up


def test_fifo_line_and_nonblocking_fifo_write() -> None:
    assert notify.fifo_line("INSTANCE", "VI_1", "MASTER", 150) == 'INSTANCE "VI_1" MASTER 150\n'
    # a group carries priority 0 (vrrp_notify.c notify_group_fifo)
    assert notify.fifo_line("GROUP", "G", "BACKUP", None) == 'GROUP "G" BACKUP 0\n'
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fifo")
        os.mkfifo(path)
        assert not notify.write_fifo(path, "x\n")  # no reader: skipped, never blocks
        rd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            assert notify.write_fifo(path, 'INSTANCE "VI_1" MASTER 150\n')
            assert os.read(rd, 100) == b'INSTANCE "VI_1" MASTER 150\n'
        finally:
            os.close(rd)


def test_notify_runs_keepalived_arguments_without_blocking() -> None:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out")
        script = os.path.join(d, "n.sh")
        with open(script, "w") as f:
            f.write(f'#!/bin/sh\necho "$@" >> {out}\n')
        os.chmod(script, 0o755)
        hung = Script(argv=("/bin/sleep", "30"))
        target = notify.NotifyTarget(
            "INSTANCE", "VI_1", Notify(master=hung, generic=Script(argv=(script,)))
        )

        async def main() -> None:
            async with trio.open_nursery() as n:
                notifier = notify.Notifier(n, timeout=0.3)
                t0 = trio.current_time()
                notifier.notify(target, "MASTER", 150)
                assert trio.current_time() - t0 < 0.05  # never waits for scripts
            # the hung notify_master was killed at its timeout, then `notify` ran

        trio.run(main)
        with open(out) as f:
            assert f.read().split() == ["INSTANCE", "VI_1", "MASTER", "150"]


def test_state_change_log_line_is_keepalived_wording(capsys: pytest.CaptureFixture[str]) -> None:
    from pykeep import log

    log.setup(console=True)
    log.get("vrrp").info("(VI_1) Entering MASTER STATE")
    err = capsys.readouterr().err.strip()
    assert err.endswith(": (VI_1) Entering MASTER STATE")
    log.setup(console=True, json=True)
    log.get("vrrp").info("(VI_1) Entering MASTER STATE")
    err = capsys.readouterr().err.strip()
    assert '"event": "(VI_1) Entering MASTER STATE"' in err
