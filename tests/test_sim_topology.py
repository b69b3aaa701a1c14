"""The declarative two-director rig: built, reachable, and removed by the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sim import netns, topology
from sim.topology import Lab
from tests.conftest import RigFactory


def test_standard_dr_addresses_follow_seed_003() -> None:
    topo = topology.standard("dr", 2)
    assert topo.vip == "192.168.65.127"
    assert [n.label for n in topo.by_role("realserver")] == ["lvs-RS1-156", "lvs-RS2-157"]
    assert topo.node("dir1").addr() == "192.168.65.155"
    assert topo.segments == ["lan"]


def test_standard_nat_has_two_segments_and_gateway() -> None:
    topo = topology.standard("nat", 3)
    assert topo.segments == ["lan", "rs"]
    rs3 = topo.node("rs3")
    assert rs3.addr() == "10.0.0.183" and rs3.routes == (("default", "10.0.0.254"),)
    assert topo.node("dir2").addr("rs") == "10.0.0.179"


@pytest.mark.netns
def test_client_reaches_each_real_server_page_through_the_bridge(rig: RigFactory) -> None:
    lab = rig(topology.standard("dr", 2))
    assert isinstance(lab, Lab)
    lab.start_httpds()
    answers = {lab.http_get("client", f"http://{lab.addr(rs)}/") for rs in lab.real_servers}
    assert answers == {"lvs-RS1-156", "lvs-RS2-157"}
    # killable and restartable
    lab.stop_httpd("rs1")
    assert lab.http_get("client", "http://192.168.65.156/", timeout=1) is None
    lab.start_httpd("rs1")
    assert lab.http_get("client", "http://192.168.65.156/any/path") == "lvs-RS1-156"
    lab.start_httpd("rs2", impl="busybox")  # what the VM uses: instant start-up
    assert lab.http_get("client", "http://192.168.65.157/") == "lvs-RS2-157"


@pytest.mark.netns
def test_nat_directors_reach_real_servers_on_their_own_segment(rig: RigFactory) -> None:
    lab = rig(topology.standard("nat", 2))
    assert isinstance(lab, Lab)
    lab.start_httpds()
    assert lab.http_get("dir2", "http://10.0.0.182/") == "lvs-RS2-182"
    assert lab.ping("client", "192.168.65.154")
    assert not lab.ping("client", "10.0.0.181", wait=1)  # only through a director (NAT)
    assert netns.read_sysctl(lab.ns("dir1"), "net.ipv4.ip_forward") == "1"


@pytest.mark.netns
def test_render_substitutes_placeholders_and_rejects_unknown() -> None:
    lab = Lab(topology.standard("dr", 2), name=netns.unique_rig_name("r"))
    try:
        out = lab.render("interface {{interface}}\nunicast_peer { {{peer_ip}} }", "dir1")
        assert out == "interface eth0\nunicast_peer { 192.168.65.154 }"
        with pytest.raises(netns.NetnsError, match="unknown placeholder"):
            lab.render("{{nope}}", "dir1")
    finally:
        lab.close()


@pytest.mark.netns
def test_cli_up_status_down_leaves_nothing() -> None:
    name = netns.unique_rig_name("cli")

    def sim(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "sim", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    try:
        out = sim("up", "--rig", name)
        assert f"pk-{name}-dir1" in out
        status = sim("status")
        assert f"rig {name}: detached" in status and "sim.httpd" in status
        pids = [p for st in netns.status()[0] if st.name == name for p in st.procs]
        assert len(pids) == 2
        sim("down", "--rig", name)
        assert netns.list_namespaces(f"pk-{name}-") == []
        assert all(not netns._alive(p["pid"], p["start"]) for p in pids)
    finally:
        netns.down(rig=name)
