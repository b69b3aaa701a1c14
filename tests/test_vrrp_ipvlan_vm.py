"""``use_ipvlan`` beside Debian's keepalived 2.2.7, on a kernel that has ipvlan.

The host kernel has no ipvlan, so this is a part of the shared VM boot
(tests/vmshare.py).  In the guest, keepalived and then pykeep run the same
config on node a of the same namespaces (``use_ipvlan 10.99.0.21/24
private``, priority 150); what must agree:

- ``ip -d link`` of the ipvlan (mode l2, the ``private`` flag, the parent's
  MAC, up) and ``ip -d addr`` on it (only the ipvlan's own address), its
  ``disable_ipv6``, the base interface's addresses (the VIP is there:
  vrrp.c ``vrrp_complete_instance`` moves VIPs only onto a VMAC) and ARP
  sysctls (untouched);
- the adverts a client captures: sent from the ipvlan's address, with the
  parent's MAC (vrrp_vmac.c ``netlink_link_add_ipvlan``, vrrp_parser.c
  ``vrrp_ipvlan_handler``), and the gratuitous ARPs for the VIP;
- the ipvlan is gone after a stop.

While pykeep runs, keepalived on node b (priority 100, its own ipvlan) is
its peer: exactly one master, and keepalived takes over at once when pykeep
stops (its priority-0 advert went out on the ipvlan).  The guest saves JSON
and the captures; the checks run here.  Guest time is about 100 s on a
loaded host, most of it pykeep's start-up under emulation.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests import vmshare

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parent.parent
VIP = "10.99.0.200"
OWN = "10.99.0.21"

GUEST = """
import json, os, re, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, REPO)
from sim import netns
from tests.netns_vrrp import lan, router, until, vrrp_conf

W = Path(os.environ["W"])
t0 = time.monotonic()
subprocess.run(["modprobe", "ipvlan"], check=False)
VIP = "10.99.0.200"
DEV = "vrrp.51"


def conf(own, prio, state="BACKUP"):
    extra = f"    use_ipvlan {own}/24 private\\n"
    return vrrp_conf(priority=prio, state=state, extra=extra)


def view(rig, node):
    link = rig.run(node, ["ip", "-d", "link", "show", DEV], check=False).stdout
    link = re.sub(r"^\\d+:\\s*", "", link.strip())
    link = " ".join(re.sub(r"link-netnsid\\s+\\S+", "", link).split())
    addr = rig.run(node, ["ip", "-d", "addr", "show", "dev", DEV], check=False).stdout
    addr = [" ".join(ln.split()) for ln in addr.splitlines()[1:]]
    cat = lambda p: rig.run(node, ["cat", p], check=False).stdout.strip()
    return {
        "link": link,
        "addr": addr,
        "disable_ipv6": cat(f"/proc/sys/net/ipv6/conf/{DEV}/disable_ipv6"),
        "base_addrs": sorted(a for a in rig.addresses(node, "eth0") if "." in a),
        "base": [cat(f"/proc/sys/net/ipv4/conf/eth0/{k}") for k in ("arp_ignore", "arp_filter")],
    }


def capture(rig, kind):
    pcap = W / f"{kind}.pcap"
    dump = rig.popen(
        "client",
        ["tcpdump", "-i", "eth0", "-U", "-n", "-w", str(pcap), "ip proto 112 or arp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    until(pcap.exists, 20, 0.2)
    time.sleep(0.5)
    return dump


out = {"alone": {}}
with netns.Rig(netns.unique_rig_name("ivvm")) as rig:
    lan(rig, {"a": "10.99.0.11/24", "b": "10.99.0.12/24"})
    out["mac_a"], out["mac_b"] = rig.mac("a"), rig.mac("b")
    out["setup_s"] = round(time.monotonic() - t0, 1)
    # keepalived on a alone; then pykeep on a, with keepalived on b as its
    # lower-priority peer (each on its own ipvlan): the mixed pair
    runs = (("keepalived", None), ("pykeep", "keepalived"))
    for kind, peer_kind in runs:
        dump = capture(rig, kind)
        t = time.monotonic()
        peer = None
        if peer_kind:
            peer = router(rig, "b", peer_kind, conf("10.99.0.22", 100), W).start()
        node = router(rig, "a", kind, conf("10.99.0.21", 150), W).start()
        try:
            # pykeep starts slowly under emulation; each look runs ip: look seldom
            until(lambda: node.has_vip(VIP), 150, 0.5)
            up = time.monotonic() - t
            time.sleep(1.5)  # the adverts after the one sent on becoming master
            seen = view(rig, "a")
            if peer is not None:
                out["pair"] = {"a": node.has_vip(VIP), "b": peer.has_vip(VIP)}
            node.stop()
            if peer is not None:
                t = time.monotonic()
                until(lambda: peer.has_vip(VIP), 15, 0.2)
                out["pair"]["takeover_s"] = round(time.monotonic() - t, 1)
        except AssertionError as exc:
            out["error"] = f"{kind}: {exc}"
            break
        finally:
            node.stop()
            if peer is not None:
                out["pair_log"] = peer.text()[-3000:]
                peer.stop()
            time.sleep(0.5)
            rig.kill(dump)
            out["alone"].setdefault(kind, {})["log"] = node.text()[-3000:]
        gone = rig.run("a", ["ip", "link", "show", DEV], check=False).returncode != 0
        out["alone"][kind].update(seen, gone=gone, up_s=round(up, 1))
        out[f"{kind}_s"] = round(time.monotonic() - t0, 1)
out["guest_s"] = round(time.monotonic() - t0, 1)
(W / "result.json").write_text(json.dumps(out))
"""


def _prepare(rw: Path) -> str:
    (rw / "guest.py").write_text(f"REPO = {str(REPO)!r}\n" + GUEST)
    return f"cd {REPO} && {sys.executable} {rw / 'guest.py'}"


vmshare.register("ipvlan", _prepare, timeout=240)


@pytest.fixture(scope="module")
def shared(shared_vm: vmshare.SharedRun) -> tuple[dict[str, Any], Path]:
    return shared_vm.json("ipvlan"), shared_vm.part("ipvlan")


def _frames(pcap: Path, mac: str) -> dict[str, list[tuple[str, str]]]:
    """(source MAC, source address) of the adverts, and (source MAC, sender MAC)
    of the ARPs for the VIP, that node a (``mac``) sent."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils import rdpcap

    adverts, arps = set(), set()
    for p in rdpcap(str(pcap)):
        if p[Ether].src != mac:
            continue
        if p.haslayer(IP) and p[IP].proto == 112:
            adverts.add((p[Ether].src, p[IP].src))
        elif p.haslayer(ARP) and p[ARP].psrc == VIP:
            arps.add((p[Ether].src, p[ARP].hwsrc))
    return {"adverts": sorted(adverts), "garps": sorted(arps)}


def test_ipvlan_matches_keepalived(shared: tuple[dict[str, Any], Path]) -> None:
    r, d = shared
    assert "error" not in r, (r["error"], {k: v.get("log") for k, v in r["alone"].items()})
    alone = r["alone"]
    ours, theirs = alone["pykeep"], alone["keepalived"]
    logs = ours.pop("log") + theirs.pop("log")
    ours.pop("up_s"), theirs.pop("up_s")
    assert ours == theirs, logs
    mac_a = r["mac_a"]
    assert "ipvlan mode l2 private" in ours["link"], ours["link"]
    assert f"link/ether {mac_a}" in ours["link"] and ",UP," in ours["link"]
    # the ipvlan holds its own address; the VIP goes on the configured interface
    addrs = [ln.split()[1] for ln in ours["addr"] if ln.startswith("inet")]
    assert addrs == [f"{OWN}/24"], ours["addr"]
    assert ours["base_addrs"] == ["10.99.0.11/24", f"{VIP}/32"]
    assert ours["disable_ipv6"] == "1" and ours["base"] == ["0", "0"]
    assert ours["gone"]
    wire = {kind: _frames(d / f"{kind}.pcap", mac_a) for kind in ("keepalived", "pykeep")}
    assert wire["pykeep"] == wire["keepalived"], wire
    assert wire["pykeep"]["adverts"] == [(mac_a, OWN)]
    assert wire["pykeep"]["garps"] == [(mac_a, mac_a)]


def test_mixed_pair_on_ipvlans_elects_one_master(shared: tuple[dict[str, Any], Path]) -> None:
    """pykeep (150) and keepalived (100), each on its own ipvlan: one master,
    and keepalived takes over when pykeep stops (its priority-0 advert)."""
    r, _d = shared
    assert "error" not in r, (r["error"], r.get("pair_log"))
    assert r["pair"]["a"] and not r["pair"]["b"], r.get("pair_log")
    assert r["pair"]["takeover_s"] < 3 + 156 / 256, r.get("pair_log")
