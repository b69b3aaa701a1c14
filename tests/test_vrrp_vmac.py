"""``use_vmac`` / ``vmac_xmit_base`` beside Debian's keepalived 2.2.7.

Each daemon runs the same config in turn in the same namespace; the kernel's
view (``ip -d link`` of the vmac, its sysctls and the base interface's, the
addresses on it) and the wire (source MAC of adverts and of the VIP's ARP
replies) must agree, and the vmac must be gone after a stop.  A mixed pair
with vmacs elects exactly one master.

One case names the link by ``vmac_prefix`` and gives ``use_vmac`` a
five-octet MAC of its own, which the VRID completes (vrrp.c
``create_vmac_name``, vrrp_parser.c ``vrrp_vmac_handler``).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pykeep.config.model import VrrpInstance
from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, vrrp_conf, wait_owner, workdir
from vrrp import vmac

VIP = "10.99.0.200"
VIP6 = "fd00::200"
VMAC = "00:00:5e:00:01:33"  # VRID 51
VMAC6 = "00:00:5e:00:02:33"
OWN_MAC = "02:11:22:33:44"  # use_vmac's own MAC: the VRID (51) is its sixth octet
Make = Callable[..., Rig]
#: Master_Down_Interval of the priority-150 router, and room for a daemon's
#: start-up on a loaded machine (a protocol-scale margin, not a timing claim)
MDI = 3 + 106 / 256
START = 8.0
SYSCTLS = ("arp_ignore", "arp_filter", "accept_local", "rp_filter", "promote_secondaries")


def test_names_and_macs() -> None:
    inst = VrrpInstance(name="VI_1", interface="eth0", virtual_router_id=51, use_vmac="")
    assert vmac.ifname(inst) == "vrrp.51"
    named = VrrpInstance(name="VI_1", interface="eth0", virtual_router_id=7, use_vmac="vr7")
    assert vmac.ifname(named) == "vr7"
    assert vmac.ifname(VrrpInstance(name="x", virtual_router_id=1)) is None
    assert vmac.mac(51, 4) == VMAC and vmac.mac(255, 6) == "00:00:5e:00:02:ff"


def test_prefix_and_own_mac_settled_by_the_config() -> None:
    """vrrp.c create_vmac_name: PREFIX.VRID, the prefix cut to fit IFNAMSIZ;
    vrrp_vmac_handler: five octets take the VRID; strict mode clears the MAC."""
    from pykeep import config

    def inst(globals_: str, vmac_line: str) -> VrrpInstance:
        r = config.load_text(
            vrrp_conf(vrid=51, extra=vmac_line, globals_=globals_),
            "k.conf",
            interface_exists=lambda _n: True,
        )
        return r.config.vrrp_instances[0]

    got = inst("    vmac_prefix vk\n", f"    use_vmac {OWN_MAC}\n")
    link = vmac.Vmac.for_instance(got)
    assert link is not None and (link.name, link.mac) == ("vk.51", OWN_MAC + ":33")
    assert vmac.ifname(inst("    vmac_prefix averyveryverylongprefix\n", "    use_vmac\n")) == (
        "averyveryver.51"
    )
    named = inst("    vmac_prefix vk\n", "    use_vmac 02:aa:bb:cc:dd:ee mine\n")
    assert (named.use_vmac, named.vmac_mac) == ("mine", "02:aa:bb:cc:dd:ee")
    strict = inst("    vrrp_strict\n", f"    use_vmac {OWN_MAC}\n")
    assert (vmac.ifname(strict), strict.vmac_mac) == ("vrrp.51", None)


def test_ipvlan_settled_by_the_config_and_its_request() -> None:
    """vrrp_parser.c vrrp_ipvlan_handler: type word, address (also the advert
    source), name slot; vrrp_vmac.c netlink_link_add_ipvlan: an up L2 ipvlan
    with IFLA_IPVLAN_FLAGS.  (The kernel's answer is checked in the VM:
    tests/test_vrrp_ipvlan_vm.py.)"""
    import struct

    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    from pykeep import config
    from vrrp import ipvlan

    r = config.load_text(
        vrrp_conf(vrid=51, extra="    use_ipvlan vepa 10.99.0.21/24\n"),
        "k.conf",
        interface_exists=lambda _n: True,
    )
    inst = r.config.vrrp_instances[0]
    link = vmac.Vmac.for_instance(inst)
    assert link is not None and vmac.ifname(inst) is None  # the VIPs stay on eth0
    assert (link.name, link.kind, link.ipvlan_flags, link.ipvlan_address) == (
        "vrrp.51", "ipvlan", 2, "10.99.0.21/24"
    )  # fmt: skip
    assert str(inst.mcast_src_ip) == "10.99.0.21" and not link.xmit_base
    msg = ifinfmsg(ipvlan.request("vrrp.51", 7, 2))
    msg.decode()
    assert (msg["header"]["type"], msg["flags"], msg["change"]) == (16, 1, 1)  # RTM_NEWLINK, up
    assert (msg.get_attr("IFLA_IFNAME"), msg.get_attr("IFLA_LINK")) == ("vrrp.51", 7)
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "ipvlan"
    data = ipvlan.request("vrrp.51", 7, 2)[-16:]  # IFLA_INFO_DATA's two u16 attributes
    assert struct.unpack("=HHHxxHHHxx", data) == (6, 1, 0, 6, 2, 2)


def _link_view(rig: Rig, dev: str) -> dict[str, Any]:
    out = rig.run("a", ["ip", "-d", "link", "show", dev], check=False).stdout
    text = re.sub(r"^\d+:\s*", "", out.strip())
    text = re.sub(r"link-netns\s+\S+", "", text)
    view: dict[str, Any] = {"link": " ".join(text.split())}
    for key in SYSCTLS:
        for d in (dev, "eth0"):
            path = f"/proc/sys/net/ipv4/conf/{d}/{key}"
            view[f"{d}/{key}"] = rig.run("a", ["cat", path], check=False).stdout.strip()
    view["disable_ipv6"] = rig.run(
        "a", ["cat", f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"], check=False
    ).stdout.strip()
    addrs = rig.run("a", ["ip", "-o", "addr", "show", "dev", dev], check=False).stdout
    view["addrs"] = sorted(line.split()[3] for line in addrs.splitlines())
    view["ll_flags"] = sorted(
        " ".join(w for w in line.split()[4:] if w in ("nodad", "deprecated"))
        for line in addrs.splitlines()
        if " fe80:" in line
    )
    return view


def _base_sysctls(rig: Rig) -> dict[str, str]:
    return {
        k: rig.run("a", ["cat", f"/proc/sys/net/ipv4/conf/eth0/{k}"]).stdout.strip()
        for k in ("arp_ignore", "arp_filter")
    }


def _run_alone(
    rig: Rig,
    wd: Path,
    kind: str,
    extra: str,
    family: int,
    dev: str = "vrrp.51",
    mac: str | None = None,
    globals_: str = "",
) -> dict[str, Any]:
    for k in ("arp_ignore", "arp_filter"):
        rig.sysctl("a", f"net.ipv4.conf.eth0.{k}", 0)
    pcap = wd / f"{kind}.pcap"
    dump = rig.popen(
        "client",
        [
            "tcpdump",
            "--immediate-mode",
            "-i",
            "eth0",
            "-U",
            "-n",
            "-w",
            str(pcap),
            "arp or ip proto 112 or ip6 proto 112",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    vip, vmac_ = (VIP, VMAC) if family == 4 else (VIP6, VMAC6)
    vmac_ = mac or vmac_
    conf = vrrp_conf(
        priority=150,
        extra=extra,
        vips=(f"{vip}/{32 if family == 4 else 64}",),
        version=2 if family == 4 else 3,
        globals_=globals_,
    )
    node = router(rig, "a", kind, conf, wd).start()
    try:
        # the client reaches the VIP at the virtual MAC: ARP/ND answered by the vmac
        wait_owner(rig, "client", vip, vmac_, MDI + START)
        running = _link_view(rig, dev)
        # keepalived's VMAC firewall rules (IGMP/MLD reports leave with the real MAC)
        running["nft"] = rig.run("a", ["nft", "list", "ruleset"]).stdout
    finally:
        node.stop()
    time.sleep(0.3)
    rig.kill(dump)
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

    advert_srcs = sorted(
        {
            p[Ether].src
            for p in rdpcap(str(pcap))
            if (p.haslayer(IP) and p[IP].proto == 112) or (p.haslayer(IPv6) and p[IPv6].nh == 112)
        }
    )
    gone = rig.run("a", ["ip", "link", "show", dev], check=False).returncode != 0
    return {
        "running": running,
        "advert_srcs": advert_srcs,
        "vmac_removed": gone,
        "base_after": _base_sysctls(rig),
        "nft_after": rig.run("a", ["nft", "list", "ruleset"]).stdout.strip(),
        "log": node.text(),
    }


@pytest.mark.netns
@pytest.mark.parametrize(
    ("family", "xmit_base", "own"), [(4, False, False), (4, True, False), (6, False, False),
                                     (4, False, True)]
)  # fmt: skip
def test_vmac_matches_keepalived(rig: Make, family: int, xmit_base: bool, own: bool) -> None:
    r = rig(hint="wrvm")
    extra = f"    use_vmac{' ' + OWN_MAC if own else ''}\n" + (
        "    vmac_xmit_base\n" if xmit_base else ""
    )
    dev, mac = ("vk.51", f"{OWN_MAC}:33") if own else ("vrrp.51", None)
    globals_ = "    vmac_prefix vk\n" if own else ""
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"}, client="10.99.0.100/24,fd00::100/64")
        mac_a = r.mac("a")
        seen = {
            kind: _run_alone(r, wd, kind, extra, family, dev, mac, globals_)
            for kind in ("keepalived", "pykeep")
        }
    logs = {k: v.pop("log") for k, v in seen.items()}
    ours, theirs = seen["pykeep"], seen["keepalived"]
    assert ours["running"] == theirs["running"], logs["pykeep"]
    vmac_ = mac or (VMAC if family == 4 else VMAC6)
    assert "macvlan mode private" in ours["running"]["link"]
    assert f"link/ether {vmac_}" in ours["running"]["link"]
    if family == 4:
        assert ours["running"]["addrs"] == [f"{VIP}/32"]
    else:  # the VIP, and the base interface's link-local as advert source
        assert len(ours["running"]["addrs"]) == 2 and f"{VIP6}/64" in ours["running"]["addrs"]
    assert ours["advert_srcs"] == theirs["advert_srcs"] == [mac_a if xmit_base else vmac_]
    assert ours["vmac_removed"] and theirs["vmac_removed"]
    assert "vmac_map" in ours["running"]["nft"] and f'"{dev}" : "eth0"' in ours["running"]["nft"]
    assert ours["nft_after"] == theirs["nft_after"] == ""
    # pykeep restores the base interface's ARP settings when the vmac goes
    assert ours["base_after"] == {"arp_ignore": "0", "arp_filter": "0"}


@pytest.mark.netns
@pytest.mark.parametrize("master_kind", ["keepalived", "pykeep"])
def test_mixed_pair_with_vmac_elects_one_master(rig: Make, master_kind: str) -> None:
    backup_kind = "pykeep" if master_kind == "keepalived" else "keepalived"
    r = rig(hint="wrvp")
    extra = "    use_vmac\n"
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24", "b": "10.99.0.12/24"})
        a = router(r, "a", master_kind, vrrp_conf(priority=150, extra=extra), wd).start()
        b = router(r, "b", backup_kind, vrrp_conf(priority=100, extra=extra), wd).start()
        try:
            # both routers answer from the same virtual MAC: watch the kernels
            until(lambda: a.has_vip(VIP), MDI + START)
            until(lambda: not b.has_vip(VIP), 3.0)  # a started late: b yields to it
            time.sleep(2.5)  # the backup hears the master through its own vmac
            wait_owner(r, "client", VIP, VMAC, 2.0)
            assert a.has_vip(VIP) and not b.has_vip(VIP), a.text() + b.text()
            a.stop()
            until(lambda: b.has_vip(VIP), 3.0)
            wait_owner(r, "client", VIP, VMAC, 2.0)
            assert r.run("a", ["ip", "link", "show", "vrrp.51"], check=False).returncode != 0
        finally:
            a.stop()
            b.stop()


def _two_family_conf(v6_first: bool) -> str:
    """An IPv4 and an IPv6 instance sharing VRID 51 on eth0, both with an unnamed vmac."""
    v4 = vrrp_conf(name="VI_4", priority=150, extra="    use_vmac\n")
    v6 = vrrp_conf(
        name="VI_6", priority=150, extra="    use_vmac\n", vips=(f"{VIP6}/64",), version=3
    )
    head, _sep, body4 = v4.partition("}\n")
    body6 = v6.partition("}\n")[2]
    return head + _sep + (body6 + body4 if v6_first else body4 + body6)


def _vmac_links(rig: Rig) -> dict[str, str]:
    out = rig.run("a", ["ip", "-o", "link", "show", "type", "macvlan"], check=False).stdout
    links: dict[str, str] = {}
    for line in out.splitlines():
        words = line.split()
        name = words[1].rstrip(":").split("@")[0]
        links[name] = words[words.index("link/ether") + 1]
    return links


@pytest.mark.netns
def test_ipv6_vmac_fallback_name_matches_keepalived(rig: Make) -> None:
    """vrrp.c create_vmac_name: the second instance of a VRID is vrrp6.VRID when
    it is IPv6, vrrp1.VRID when it is IPv4 (config order decides who is second)."""
    r = rig(hint="ivv6")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24,fd00::11/64"})
        seen: dict[str, dict[str, str]] = {}
        for v6_first in (False, True):
            for kind in ("keepalived", "pykeep"):
                node = router(r, "a", kind, _two_family_conf(v6_first), wd).start()
                try:
                    until(lambda: len(_vmac_links(r)) == 2, START)
                    seen[f"{kind}/{v6_first}"] = _vmac_links(r)
                finally:
                    node.stop()
                until(lambda: not _vmac_links(r), 5.0)
    for v6_first in (False, True):
        assert seen[f"pykeep/{v6_first}"] == seen[f"keepalived/{v6_first}"], seen
    assert seen["pykeep/False"] == {"vrrp.51": VMAC, "vrrp6.51": VMAC6}
    assert seen["pykeep/True"] == {"vrrp.51": VMAC6, "vrrp1.51": VMAC}


def _promote(rig: Rig) -> str:
    path = "/proc/sys/net/ipv4/conf/eth0/promote_secondaries"
    return rig.run("a", ["cat", path]).stdout.strip()


def _promote_across_reload(rig: Rig, wd: Path, kind: str, before: bool) -> tuple[str, ...]:
    def conf(on: bool) -> str:
        return vrrp_conf(state="MASTER", priority=150, extra="    promote_secondaries\n" * on)

    rig.sysctl("a", "net.ipv4.conf.eth0.promote_secondaries", 0)
    node = router(rig, "a", kind, conf(before), wd).start()
    try:
        until(lambda: node.has_vip(VIP), START)
        at_start = _promote(rig)
        node.conf.write_text(conf(not before))
        seen = node.text().count("Reloading")
        node.signal(signal.SIGHUP)
        until(lambda: node.text().count("Reloading") > seen, START)
        time.sleep(1.5)  # the reload's instance pass, well within
        after_reload = _promote(rig)
    finally:
        node.stop()
    return at_start, after_reload, _promote(rig)


@pytest.mark.netns
def test_promote_secondaries_changed_by_reload_matches_keepalived(rig: Make) -> None:
    """vrrp_daemon.c reload_vrrp_thread runs vrrp.c vrrp_complete_instance again:
    promote_secondaries added by SIGHUP is set at once; removed, it stays on
    until the stop (vrrp_if_config.c reset_promote_secondaries)."""
    r = rig(hint="ivps")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"})
        seen = {
            (kind, before): _promote_across_reload(r, wd, kind, before)
            for before in (False, True)
            for kind in ("keepalived", "pykeep")
        }
    for before in (False, True):
        assert seen[("pykeep", before)] == seen[("keepalived", before)], seen
    assert seen[("pykeep", False)] == ("0", "1", "0")
    assert seen[("pykeep", True)] == ("1", "1", "0")
