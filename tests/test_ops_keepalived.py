"""Real keepalived 2.2.7 against our renderers: same JSON keys, same stats layout,
the data fields keepalived-exporter reads — for the same keepalived.conf, which
pykeep's own parser reads to build the snapshot.

keepalived runs VRRP-only (-P) in a ``pk-ops-…`` namespace on a veth pair.
TMPDIR points its dumps at the test's own directory (lib/utils.c set_tmp_dir),
so the host's /tmp/keepalived.* files are never touched.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pykeep import config
from pykeep.ops import dumps
from pykeep.ops.status import Snapshot, Transition, VrrpState, instance_status
from tests.test_ops_dumps import parse_data, parse_stats

pytestmark = pytest.mark.netns

IFACE = "pkops0"
CONF = """\
global_defs {
    router_id pk_ops_test
    enable_script_security
    script_user root
}
vrrp_script chk_true {
    script "/bin/true"
    interval 1
    weight -20
}
vrrp_instance VI_1 {
    state MASTER
    interface IFACE
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass secret
    }
    virtual_ipaddress {
        192.168.77.100/24
    }
    track_script {
        chk_true
    }
    notify_master "/bin/true master"
}
vrrp_instance VI_2 {
    state BACKUP
    interface IFACE
    virtual_router_id 52
    priority 100
    advert_int 1
    virtual_ipaddress {
        192.168.77.101/24
        192.168.77.102/24
    }
    virtual_ipaddress_excluded {
        192.168.78.1/24
    }
}
""".replace("IFACE", IFACE)

# dump_vrrp lines about keepalived's own plumbing (timers, fds, multicast
# bookkeeping) that pykeep's snapshot has no equivalent for.
KEEPALIVED_ONLY_DATA_KEYS = {"Read timeout", "Master down timer"}


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def keepalived(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """keepalived in its own namespace; yields (parent pid, dump directory)."""
    ns = f"pk-ops-{os.getpid()}"
    conf = tmp_path / "keepalived.conf"
    conf.write_text(CONF)
    proc: subprocess.Popen[bytes] | None = None
    _run("ip", "netns", "add", ns)
    try:
        _run("ip", "-n", ns, "link", "add", IFACE, "type", "veth", "peer", "name", "pkops1")
        for dev in ("lo", IFACE, "pkops1"):
            _run("ip", "-n", ns, "link", "set", dev, "up")
        _run("ip", "-n", ns, "addr", "add", "192.168.77.1/24", "dev", IFACE)
        env = dict(os.environ, TMPDIR=str(tmp_path))
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "keepalived", "-P", "-n", "-l", "-f", str(conf),
             "-p", str(tmp_path / "ka.pid"), "-r", str(tmp_path / "vrrp.pid")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # `ip netns exec` execs keepalived, so proc.pid is keepalived's parent process.
        yield proc.pid, tmp_path
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _wait_started(tmp: Path, proc_pid: int, deadline: float = 15.0) -> None:
    """Until the VRRP child has written its pid file: before that, keepalived has not
    installed its handlers and SIGRTMIN+2's default action would kill it."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if (tmp / "vrrp.pid").exists() and (tmp / "vrrp.pid").read_text().strip():
            time.sleep(0.5)
            return
        time.sleep(0.1)
    raise AssertionError(f"keepalived (pid {proc_pid}) did not start its VRRP child")


def _signal_and_read(pid: int, sig: int, path: Path, deadline: float = 10.0) -> str:
    """Signal once and wait for keepalived to write ``path``."""
    path.unlink(missing_ok=True)
    os.kill(pid, sig)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        time.sleep(0.1)
        if path.exists() and path.stat().st_size:
            time.sleep(0.2)  # keepalived writes in place; let it finish
            return path.read_text()
    raise AssertionError(f"keepalived never wrote {path}")


def _live_from_json(theirs: list[dict[str, dict[str, object]]]) -> dict[str, dict[str, object]]:
    return {str(item["data"]["iname"]): item["data"] for item in theirs}


def _live_from_data(data: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """The run-time values as keepalived.data shows them (it may be a transition later)."""
    return {
        name: {
            "state": int(VrrpState[str(d["State"])]),
            "wantstate": int(VrrpState[str(d["Wantstate"])]),
            "vipset": all(str(v).endswith(" set") for v in d["vips"]),  # type: ignore[attr-defined]
        }
        for name, d in data.items()
    }


def _equivalent_snapshot(conf: Path, live: dict[str, dict[str, object]]) -> Snapshot:
    """What pykeep reports for the same file: parsed by pykeep's own config parser,
    with the run-time values (state, VIPs set) keepalived reported."""
    result = config.load(str(conf), interface_exists=lambda name: True)
    assert result.ok, result.diagnostics
    instances = []
    for inst in result.config.vrrp_instances:
        state = live[inst.name]["state"]
        wantstate = live[inst.name]["wantstate"]
        assert isinstance(state, int) and isinstance(wantstate, int)
        instances.append(
            instance_status(
                inst,
                result.config,
                state=VrrpState(state),
                wantstate=VrrpState(wantstate),
                vipset=bool(live[inst.name]["vipset"]),
                src_ip="192.168.77.1",
                last_transition=Transition(1.0, VrrpState.BACKUP, VrrpState(state), "test"),
            )
        )
    return Snapshot(taken_at=time.time(), router_id="pk_ops_test", vrrp_instances=tuple(instances))


def _compare(pid: int, tmp: Path) -> list[dict[str, dict[str, object]]]:
    """Signal keepalived for each dump, render the equivalent snapshot, compare.

    Returns keepalived's JSON, so the caller can tell which states it saw.
    """
    their_json_text = _signal_and_read(pid, dumps.signum("JSON"), tmp / "keepalived.json")
    theirs: list[dict[str, dict[str, object]]] = json.loads(their_json_text)
    snap = _equivalent_snapshot(tmp / "keepalived.conf", _live_from_json(theirs))
    ours = json.loads(dumps.render_json(snap))

    # 1. JSON: exactly the same keys, per instance, in the same order.
    assert len(ours) == len(theirs) == 2
    for o, t in zip(ours, theirs, strict=True):
        assert list(o) == list(t) == ["data", "stats"]
        assert list(o["data"]) == list(t["data"]), t["data"]["iname"]
        assert list(o["stats"]) == list(t["stats"])
        for key in ("iname", "vrid", "base_priority", "effective_priority", "ifp_ifname",
                    "vips", "evips", "auth_type", "auth_data", "garp_delay", "garp_rep",
                    "adver_int", "version", "accept", "state", "wantstate", "vmac_ifname",
                    "track_script", "script_master", "nopreempt", "preempt_delay"):  # fmt: skip
            assert o["data"].get(key) == t["data"].get(key), key
    # Same number formatting too: integers stay integers, floats use %g / %f.
    shape = re.compile(r'"last_transition":\d+\.\d{6},"garp_delay":5,')
    assert shape.search(their_json_text)
    assert shape.search(dumps.render_json(snap))

    # 2. Stats: line for line, numbers aside.
    their_stats = _signal_and_read(pid, dumps.signum("STATS"), tmp / "keepalived.stats")
    assert re.sub(r"\d+", "N", dumps.render_stats(snap)) == re.sub(r"\d+", "N", their_stats)
    assert parse_stats(dumps.render_stats(snap)).keys() == parse_stats(their_stats).keys()

    # 3. Data: what keepalived-exporter reads is there with the same values, and
    #    every other per-instance key keepalived prints is there too.
    their_data = parse_data(_signal_and_read(pid, dumps.signum("DATA"), tmp / "keepalived.data"))
    # Build from the data file's own states: an instance may have changed state since the JSON.
    snap = _equivalent_snapshot(tmp / "keepalived.conf", _live_from_data(their_data))
    our_data = parse_data(dumps.render_data(snap))
    for name in ("VI_1", "VI_2"):
        td, od = their_data[name], our_data[name]
        for key in ("State", "Wantstate", "Interface", "Gratuitous ARP delay",
                    "Virtual Router ID", "vips", "Priority", "Effective priority",
                    "Advert interval", "Authentication type", "Preempt", "Accept"):  # fmt: skip
            assert od[key] == td[key], (name, key)
        missing = set(td) - set(od) - KEEPALIVED_ONLY_DATA_KEYS
        assert not missing, (name, missing)
    return theirs


def test_dumps_match_keepalived_2_2_7(keepalived: tuple[int, Path]) -> None:
    pid, tmp = keepalived
    _wait_started(tmp, pid)
    seen = {tuple(i["data"]["state"] for i in _compare(pid, tmp))}
    # Again once both instances are MASTER (no peer: master down timer, ~3.6 s),
    # where dump_vrrp prints a different set of lines and the VIPs are "set".
    end = time.monotonic() + 15
    while time.monotonic() < end:
        states = tuple(i["data"]["state"] for i in _compare(pid, tmp))
        seen.add(states)
        if states == (2, 2):
            break
        time.sleep(0.5)
    assert (1, 1) in seen and (2, 2) in seen, seen
