"""keepalived-compatible dump files, rendered from a snapshot and read back the way
keepalived-exporter reads them (internal/collector/parser.go)."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
from pathlib import Path

import pytest
import trio

from pykeep.ops import dumps
from tests.test_ops_sample import T0, sample_snapshot

# vrrp_json.c vrrp_json_data_dump's order for the fields every instance has.
JSON_DATA_ORDER = [
    "iname", "dont_track_primary", "skip_check_adv_addr", "strict_mode", "vmac_ifname",
    "ifp_ifname", "master_priority", "last_transition", "garp_delay", "garp_refresh",
    "garp_rep", "garp_refresh_rep", "garp_lower_prio_delay", "garp_lower_prio_rep",
    "lower_prio_no_advert", "higher_prio_send_advert", "vrid", "base_priority",
    "effective_priority", "vipset", "promote_secondaries", "adver_int", "master_adver_int",
    "accept", "nopreempt", "preempt_delay", "state", "wantstate", "version", "smtp_alert",
    "notify_deleted",
]  # fmt: skip


def parse_stats(text: str) -> dict[str, dict[str, int]]:
    """keepalived-exporter's ParseStats, in Python: section-qualified keys."""
    out: dict[str, dict[str, int]] = {}
    inst = section = ""
    for line in text.splitlines():
        if line.startswith("VRRP Instance:"):
            inst = line.split(":", 1)[1].strip()
            out[inst] = {}
        elif line.startswith("    "):
            key, val = (s.strip() for s in line.split(":"))
            out[inst][f"{section}/{key}"] = int(val)
        elif line.startswith("  ") and line.endswith(":"):
            section = line.strip()[:-1]
        elif line.startswith("  "):
            key, val = (s.strip() for s in line.split(":"))
            section = ""
            out[inst][key] = int(val)
    return out


def parse_data(text: str) -> dict[str, dict[str, object]]:
    """keepalived-exporter's ParseVRRPData, in Python: 3-space scalars, 5-space list items."""
    out: dict[str, dict[str, object]] = {}
    inst = ""
    key = ""
    for line in text.splitlines():
        if line.startswith(" VRRP Instance") and "=" in line:
            inst = line.split("=", 1)[1].strip()
            out[inst] = {"vips": []}
        elif line.startswith("   ") and inst:
            if line.startswith("     "):
                if key.startswith("Virtual IP ("):
                    vips = out[inst]["vips"]
                    assert isinstance(vips, list)
                    vips.append(line.strip())
                continue
            sep = "=" if "=" in line else ":"
            if sep not in line:
                continue
            key, _, val = (s.strip() for s in line.partition(sep))
            out[inst][key] = val
        else:
            inst = ""
    return out


def test_json_matches_keepalived_layout() -> None:
    text = dumps.render_json(sample_snapshot())
    assert text.endswith("]\n") and "\n" not in text[:-1]
    assert "\\/" in text  # json_writer.c escapes every slash
    data = json.loads(text)
    assert [d["data"]["iname"] for d in data] == ["VI_1", "VI_2"]
    vi1 = data[0]["data"]
    assert [k for k in vi1 if k in JSON_DATA_ORDER] == JSON_DATA_ORDER
    assert vi1["state"] == 2 and vi1["wantstate"] == 2
    assert vi1["effective_priority"] == 130 and vi1["base_priority"] == 150
    assert vi1["vips"] == ["192.168.77.100/24 dev eth0 scope global set"]
    assert vi1["track_script"] == ["'/usr/bin/true'"]
    assert vi1["script_master"] == "/etc/keepalived/master.sh"
    assert (vi1["auth_type"], vi1["auth_data"]) == (1, "secret")
    assert re.search(r'"last_transition":1795433559\.912140,', text)
    assert re.search(r'"garp_delay":5,', text)  # %g, not 5.0
    vi2 = data[1]["data"]
    assert vi2["state"] == 1 and vi2["master_priority"] == 200
    assert "auth_data" not in vi2 and "script_master" not in vi2 and "track_script" not in vi2
    assert vi2["evips"] == ["2001:db8::1/64 dev eth0 scope global preferred_lft forever set"]
    stats = data[0]["stats"]
    assert list(stats) == [
        "advert_rcvd", "advert_sent", "become_master", "release_master", "packet_len_err",
        "advert_interval_err", "ip_ttl_err", "invalid_type_rcvd", "addr_list_err",
        "invalid_authtype", "authtype_mismatch", "auth_failure", "pri_zero_rcvd",
        "pri_zero_sent",
    ]  # fmt: skip
    assert (stats["advert_sent"], stats["ip_ttl_err"], stats["auth_failure"]) == (42, 3, 2)


def test_json_strings_are_escaped_like_keepalived_but_valid() -> None:
    assert dumps._json_string('a/b"c\\d\n\x01') == '"a\\/b\\"c\\\\d\\n\\u0001"'
    assert json.loads(dumps._json_string('a/b"c\\d\n\x01')) == 'a/b"c\\d\n\x01'


def test_stats_parse_back_like_keepalived_exporter() -> None:
    stats = parse_stats(dumps.render_stats(sample_snapshot()))
    assert stats["VI_1"]["Advertisements/Received"] == 7
    assert stats["VI_1"]["Advertisements/Sent"] == 42
    assert stats["VI_1"]["Became master"] == 1
    assert stats["VI_1"]["Packet Errors/TTL"] == 3
    assert stats["VI_1"]["Authentication Errors/Failure"] == 2
    assert stats["VI_2"]["Priority Zero/Received"] == 1
    assert len(stats["VI_1"]) == 14


def test_data_parse_back_like_keepalived_exporter() -> None:
    text = dumps.render_data(sample_snapshot())
    data = parse_data(text)
    assert data["VI_1"]["State"] == "MASTER"
    assert data["VI_1"]["Wantstate"] == "MASTER"
    assert data["VI_1"]["Interface"] == "eth0"
    assert data["VI_1"]["Virtual Router ID"] == "51"
    assert data["VI_1"]["Gratuitous ARP delay"] == "5"
    assert data["VI_1"]["Effective priority"] == "130"
    assert data["VI_1"]["Last transition reason"] == "master_down_timer"
    assert str(data["VI_1"]["Last transition"]).startswith(f"{T0:.6f} (")
    assert data["VI_2"]["vips"] == [
        "192.168.77.101/24 dev eth0 scope global set",
        "192.168.77.102/24 dev eth0 scope global set",
    ]
    assert data["VI_2"]["Master router"] == "192.168.77.2"
    # the script section keepalived-exporter reads Status and State from
    script = text.split("------< VRRP Scripts >------\n", 1)[1]
    assert " VRRP Script = chk_true\n" in script
    assert "   Status = GOOD\n" in script and "   State = idle\n" in script


def test_check_data_lists_virtual_and_real_servers() -> None:
    text = dumps.render_check_data(sample_snapshot())
    assert " VS VIP = 10.0.0.1, VPORT = 80\n" in text
    assert "   lvs_sched = rr\n" in text
    assert "   RIP = 192.168.1.10, RPORT = 80, WEIGHT = 0 EFF WEIGHT = 0\n" in text
    assert "   initial weight = 3\n" in text
    assert "   drained = 1\n" in text
    assert "   alive = 0\n" in text


def test_files_written_where_keepalived_writes_them(tmp_path: Path) -> None:
    assert dumps.tmp_dir({"TMPDIR": str(tmp_path)}) == tmp_path
    assert dumps.tmp_dir({"TMPDIR": "relative"}) == Path("/tmp")
    assert dumps.tmp_dir({}) == Path("/tmp")
    snap = sample_snapshot()
    written = dumps.write_data(snap, tmp_path)
    written += [dumps.write_stats(snap, tmp_path)]
    path = dumps.write_json(snap, tmp_path)
    assert path is not None
    written.append(path)
    names = sorted(p.name for p in written)
    assert names == sorted(
        ["keepalived.data", "keepalived_check.data", "keepalived.stats", "keepalived.json"]
    )
    for p in written:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == names  # no temporary files left behind
    assert dumps.write_json(type(snap)(taken_at=T0), tmp_path / "none") is None


def test_signum_matches_keepalived_binary() -> None:
    for name in ("STOP", "RELOAD", "DATA", "STATS", "STATS_CLEAR", "JSON"):
        out = subprocess.run(
            ["keepalived", f"--signum={name}"], capture_output=True, text=True, check=True
        )
        assert dumps.signum(name) == int(out.stdout), name
    for name in ("TDUMP", "TDATA", "json"):
        proc = subprocess.run(["keepalived", f"--signum={name}"], capture_output=True, text=True)
        assert proc.returncode == 1
        with pytest.raises(dumps.UnknownSignal) as exc:
            dumps.signum(name)
        assert str(exc.value) == proc.stderr.strip()


def test_signals_write_dumps(tmp_path: Path) -> None:
    """The daemon's dump-signal task, driven by real signals to this process."""
    snap = sample_snapshot()
    cleared: list[bool] = []

    async def main() -> None:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    lambda task_status: dumps.serve_dump_signals(
                        lambda: snap,
                        clear_stats=lambda: cleared.append(True),
                        directory=tmp_path,
                        task_status=task_status,
                    )
                )
                for name, file in (
                    ("DATA", "keepalived.data"),
                    ("STATS", "keepalived.stats"),
                    ("JSON", "keepalived.json"),
                ):
                    os.kill(os.getpid(), dumps.signum(name))
                    while not (tmp_path / file).exists():
                        await trio.sleep(0.01)
                assert (tmp_path / "keepalived_check.data").exists()
                assert cleared == []
                (tmp_path / "keepalived.stats").unlink()
                os.kill(os.getpid(), dumps.signum("STATS_CLEAR"))
                while not (tmp_path / "keepalived.stats").exists():
                    await trio.sleep(0.01)
                await trio.sleep(0.05)
                assert cleared == [True]
                nursery.cancel_scope.cancel()

    trio.run(main)
    assert json.loads((tmp_path / "keepalived.json").read_text())[0]["data"]["iname"] == "VI_1"
    assert parse_stats((tmp_path / "keepalived.stats").read_text())["VI_1"]["Became master"] == 1
    # the handlers are gone again: the default dispositions are restored
    assert signal.getsignal(dumps.signum("JSON")) == signal.SIG_DFL


def test_version_text_parses_like_keepalived_exporter() -> None:
    text = dumps.version_text("0.1.0")
    first = text.split("\n", 2)[0]
    assert first.split(" ")[1][1:] == "2.2.7"
    assert "--enable-json" in text
