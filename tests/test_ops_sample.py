"""A sample status snapshot shared by the operations tests, and tests of the snapshot itself."""

from __future__ import annotations

import ipaddress
import json

from pykeep.ops.status import (
    CheckerStatus,
    Histogram,
    IpvsStats,
    NotifyScripts,
    RealServerStatus,
    Snapshot,
    TrackedScriptRef,
    Transition,
    VipStatus,
    VirtualServerStatus,
    VrrpInstanceStatus,
    VrrpScriptStatus,
    VrrpState,
    VrrpStats,
    format_vip,
    to_dict,
)

T0 = 1795433559.912140


def vip(text: str, dev: str = "eth0") -> VipStatus:
    return VipStatus(ipaddress.ip_interface(text), dev=dev, is_set=True)


def sample_snapshot() -> Snapshot:
    """Two instances (one MASTER with auth, a track script and a notify script, one BACKUP),
    a vrrp_script, and one virtual server with a drained and a failed real server."""
    vi1 = VrrpInstanceStatus(
        name="VI_1",
        vrid=51,
        interface="eth0",
        state=VrrpState.MASTER,
        wantstate=VrrpState.MASTER,
        base_priority=150,
        effective_priority=130,
        auth_type=1,
        auth_data="secret",
        src_ip="192.168.77.1",
        mcast_group="224.0.0.18",
        vipset=True,
        vips=(vip("192.168.77.100/24"),),
        track_scripts=(TrackedScriptRef("chk_true", "'/usr/bin/true'", -20),),
        notify=NotifyScripts(master="/etc/keepalived/master.sh"),
        last_transition=Transition(T0, VrrpState.BACKUP, VrrpState.MASTER, "master_down_timer"),
        transitions=2,
        stats=VrrpStats(
            advert_rcvd=7,
            advert_sent=42,
            become_master=1,
            ip_ttl_err=3,
            auth_failure=2,
            rx_errors_by_reason=(("auth_pass", 2), ("ttl", 3), ("vrid", 5)),
        ),
    )
    vi2 = VrrpInstanceStatus(
        name="VI_2",
        vrid=52,
        interface="eth0",
        state=VrrpState.BACKUP,
        wantstate=VrrpState.BACKUP,
        base_priority=100,
        effective_priority=100,
        master_priority=200,
        master_router="192.168.77.2",
        src_ip="192.168.77.1",
        mcast_group="224.0.0.18",
        vips=(vip("192.168.77.101/24"), vip("192.168.77.102/24")),
        evips=(vip("2001:db8::1/64"),),
        stats=VrrpStats(advert_rcvd=100, pri_zero_rcvd=1),
    )
    script = VrrpScriptStatus(
        name="chk_true",
        command="'/usr/bin/true'",
        weight=-20,
        result=1,
        good=True,
        tracking=(("VI_1", -20),),
    )
    hist = Histogram(buckets=((0.01, 3), (0.1, 9), (1.0, 10)), count=10, sum=0.42)
    rs_ok = RealServerStatus(
        address="192.168.1.10",
        port=80,
        weight=3,
        effective_weight=0,
        alive=True,
        drained=True,
        checkers=(
            CheckerStatus("HTTP_GET", "192.168.1.10:80", True, 10, 0, latency=hist),
            CheckerStatus("TCP_CHECK", "192.168.1.10:80", True, 5, 0),
        ),
        stats=IpvsStats(
            conns=11,
            inpkts=100,
            outpkts=90,
            inbytes=5000,
            outbytes=70000,
            active_conns=2,
            inactive_conns=1,
        ),
    )
    rs_bad = RealServerStatus(
        address="192.168.1.11",
        port=80,
        weight=1,
        effective_weight=0,
        alive=False,
        checkers=(CheckerStatus("TCP_CHECK", "192.168.1.11:80", False, 1, 4, "refused"),),
    )
    vs = VirtualServerStatus(
        key="[10.0.0.1]:tcp:80",
        address="10.0.0.1",
        port=80,
        lb_algo="rr",
        lb_kind="DR",
        real_servers=(rs_ok, rs_bad),
        stats=IpvsStats(conns=11, inpkts=100, outpkts=90, inbytes=5000, outbytes=70000),
    )
    return Snapshot(
        taken_at=T0 + 10,
        pid=4242,
        router_id="lb1",
        config_files=("/etc/keepalived/keepalived.conf",),
        vrrp_instances=(vi1, vi2),
        vrrp_scripts=(script,),
        virtual_servers=(vs,),
    )


def test_to_dict_is_json_and_carries_everything_ctl_status_shows() -> None:
    data = json.loads(json.dumps(to_dict(sample_snapshot())))
    vi1 = data["vrrp_instances"][0]
    assert vi1["state"] == "MASTER"
    assert vi1["effective_priority"] == 130
    assert vi1["total_priority"] == 130
    assert vi1["vips"] == ["192.168.77.100/24 dev eth0 scope global set"]
    assert vi1["last_transition"]["reason"] == "master_down_timer"
    assert vi1["stats"]["rx_errors_by_reason"] == [["auth_pass", 2], ["ttl", 3], ["vrid", 5]]
    rs = data["virtual_servers"][0]["real_servers"][0]
    assert (rs["drained"], rs["effective_weight"], rs["weight"]) == (True, 0, 3)


def test_stats_from_driver_counters() -> None:
    """vrrp.driver.InstanceDriver.counters(): machine counters + rx_drop_<reason>."""
    stats = VrrpStats.from_counters(
        {
            "advert_rcvd": 10,
            "advert_sent": 4,
            "become_master": 1,
            "addr_list_err": 1,
            "rx_drop_ttl": 2,
            "rx_drop_length": 1,
            "rx_drop_ip_length": 1,
            "rx_drop_auth_pass": 3,
            "rx_drop_vrid": 7,
            "stale_timer": 9,
        }
    )
    assert (stats.advert_rcvd, stats.advert_sent, stats.become_master) == (10, 4, 1)
    assert (stats.ip_ttl_err, stats.packet_len_err, stats.auth_failure) == (2, 2, 3)
    assert stats.addr_list_err == 1
    assert dict(stats.rx_errors_by_reason) == {
        "addr_list": 1,
        "auth_pass": 3,
        "ip_length": 1,
        "length": 1,
        "ttl": 2,
        "vrid": 7,
    }


def test_status_from_config_model() -> None:
    from pykeep.config.model import (
        Config,
        GlobalDefs,
        IPAddressSpec,
        LbKind,
        Notify,
        RealServer,
        Script,
        TrackRef,
        VirtualServer,
        VrrpInstance,
        VrrpScript,
        VrrpSyncGroup,
    )
    from pykeep.ops.status import instance_status, real_server_status, virtual_server_status

    inst = VrrpInstance(
        name="VI_1",
        virtual_router_id=9,
        interface="eth1",
        priority=120,
        auth_type="PASS",
        auth_pass="pw",
        garp_master_delay=2.0,
        virtual_ipaddress=(IPAddressSpec(ipaddress.ip_interface("10.1.1.1/24"), label="eth1:1"),),
        track_script=(TrackRef("chk"),),
        notify=Notify(master=Script(("/no/such/notify.sh", "x y"))),
    )
    cfg = Config(
        global_defs=GlobalDefs(vrrp_strict=True, vrrp_garp_master_repeat=3),
        vrrp_scripts=(VrrpScript("chk", Script(("/no/such/chk",)), weight=-30),),
        vrrp_instances=(inst,),
        vrrp_sync_groups=(VrrpSyncGroup("G", ("VI_1",)),),
    )
    st = instance_status(
        inst, cfg, state=VrrpState.MASTER, effective_priority=90, counters={"rx_drop_ttl": 4}
    )
    assert (st.base_priority, st.effective_priority, st.wantstate) == (120, 90, VrrpState.MASTER)
    # strict mode: no lower-priority GARPs (vrrp.c vrrp_complete_instance)
    assert (st.garp_delay, st.garp_rep, st.garp_lower_prio_delay, st.garp_lower_prio_rep) == (
        2.0,
        3,
        0.0,
        0,
    )
    assert st.strict_mode and not st.accept  # strict mode turns accept off by default
    assert (st.auth_type, st.auth_data, st.sync_group) == (1, "pw", "G")
    assert st.vipset and format_vip(st.vips[0]) == (
        "10.1.1.1/24 dev eth1 scope global label eth1:1 set"
    )
    assert st.track_scripts == (TrackedScriptRef("chk", "'/no/such/chk'", -30),)
    assert st.notify.master == "'/no/such/notify.sh' 'x y'"
    assert st.mcast_group == "224.0.0.18"
    assert st.stats.ip_ttl_err == 4

    vs = VirtualServer(address=ipaddress.ip_address("10.0.0.1"), port=443, lb_kind=LbKind.DR)
    rs = RealServer(ipaddress.ip_address("192.168.1.5"), 443, weight=2)
    rst = real_server_status(vs, rs, alive=True, effective_weight=2)
    vst = virtual_server_status(vs, (rst,), quorum_up=True)
    assert (vst.key, vst.lb_kind, vst.protocol) == ("[10.0.0.1]:tcp:443", "DR", "TCP")
    assert (rst.key, rst.forwarding, rst.weight) == ("192.168.1.5:443", "DR", 2)
