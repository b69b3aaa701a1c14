"""The drain set: operator-typed VS/RS, matching against the config, persistence."""

from __future__ import annotations

import ipaddress
import json
import stat
from pathlib import Path

import pytest

from pykeep.config.model import Config, Protocol, RealServer, VirtualServer
from pykeep.ops import drain
from pykeep.ops.drain import DrainSet, DrainSpecError, DrainStateError, RsSpec, VsSpec

IP = ipaddress.ip_address


def config(rs_ports: tuple[int, ...] = (80,)) -> Config:
    web = VirtualServer(
        address=IP("10.0.0.1"),
        port=80,
        real_servers=(
            *(RealServer(IP("192.168.1.10"), p, weight=3) for p in rs_ports),
            RealServer(IP("192.168.1.11"), 80),
        ),
    )
    dns_udp = VirtualServer(
        address=IP("10.0.0.1"),
        port=53,
        protocol=Protocol.UDP,
        real_servers=(RealServer(IP("192.168.1.20"), 53),),
    )
    dns_tcp = VirtualServer(
        address=IP("10.0.0.1"), port=53, real_servers=(RealServer(IP("192.168.1.20"), 53),)
    )
    fwm = VirtualServer(fwmark=7, real_servers=(RealServer(IP("2001:db8::5"), None),))
    return Config(virtual_servers=(web, dns_udp, dns_tcp, fwm))


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("10.0.0.1:80", "10.0.0.1:80"),
        (" 10.0.0.1:80/TCP ", "10.0.0.1:80/tcp"),
        ("[10.0.0.1]:udp:53", "10.0.0.1:53/udp"),
        ("[2001:db8::1]:443", "[2001:db8::1]:443"),
        ("fwmark 7", "fwmark 7"),
        ("FWM 7", "fwmark 7"),
        ("group web", "group web"),
    ],
)
def test_vs_forms(text: str, canonical: str) -> None:
    assert str(VsSpec.parse(text)) == canonical


@pytest.mark.parametrize(
    "bad", ["10.0.0.1", "web:80", "10.0.0.1:0", "10.0.0.1:80/icmp", "10.0.0.1:99999", ""]
)
def test_vs_errors_are_one_line(bad: str) -> None:
    with pytest.raises(DrainSpecError) as exc:
        VsSpec.parse(bad)
    assert "\n" not in str(exc.value) and "virtual server" in str(exc.value)


def test_rs_forms() -> None:
    assert str(RsSpec.parse("192.168.1.10:80")) == "192.168.1.10:80"
    assert str(RsSpec.parse("192.168.1.10")) == "192.168.1.10"
    assert str(RsSpec.parse("2001:db8::5")) == "[2001:db8::5]"
    assert str(RsSpec.parse("[2001:db8::5]:8080")) == "[2001:db8::5]:8080"
    with pytest.raises(DrainSpecError, match="real server"):
        RsSpec.parse("host.example:80")


def test_matching_and_weights() -> None:
    cfg = config()
    web, dns_udp, dns_tcp, fwm = cfg.virtual_servers
    d = DrainSet().add("10.0.0.1:80", "192.168.1.10:80").add("10.0.0.1:53/udp", "192.168.1.20")
    d = d.add("fwmark 7", "2001:db8::5")
    assert d.is_drained(web, web.real_servers[0])
    assert not d.is_drained(web, web.real_servers[1])
    assert d.effective_weight(web, web.real_servers[0], 3) == 0
    assert d.effective_weight(web, web.real_servers[1], 1) == 1
    assert d.is_drained(dns_udp, dns_udp.real_servers[0])
    assert not d.is_drained(dns_tcp, dns_tcp.real_servers[0])  # protocol given: udp only
    assert d.is_drained(fwm, fwm.real_servers[0])
    both = DrainSet().add("10.0.0.1:53", "192.168.1.20:53")  # no protocol: both services
    assert both.is_drained(dns_udp, dns_udp.real_servers[0])
    assert both.is_drained(dns_tcp, dns_tcp.real_servers[0])
    assert ("[10.0.0.1]:tcp:80", "192.168.1.10:80") not in d  # /tcp is a different spec
    assert ("10.0.0.1:80", "192.168.1.10:80") in d
    assert d.remove("10.0.0.1:80", "192.168.1.10:80").unmatched(cfg) == []
    assert len(drain.resolve(cfg, "10.0.0.1:53", "192.168.1.20")) == 2
    assert drain.resolve(cfg, "10.0.0.1:80", "192.168.1.99:80") == []


def test_kept_across_reload_with_same_servers() -> None:
    d = DrainSet().add("10.0.0.1:80", "192.168.1.10:80")
    reloaded = config(rs_ports=(80,))  # a new Config object, equal content
    web = reloaded.virtual_servers[0]
    assert d.is_drained(web, web.real_servers[0])
    # a reload that removes the server keeps the drain (shown as unmatched) …
    gone = config(rs_ports=())
    assert d.unmatched(gone) == [("10.0.0.1:80", "192.168.1.10:80")]
    # … and a later reload that brings it back finds it still drained
    back = config(rs_ports=(80, 81)).virtual_servers[0]
    assert d.is_drained(back, back.real_servers[0])
    assert not d.is_drained(back, back.real_servers[1])


def test_state_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state" / "drain.json"
    assert len(drain.load(path)) == 0
    d = DrainSet().add("10.0.0.1:80", "192.168.1.10:80").add("fwmark 7", "2001:db8::5")
    drain.save(d, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert drain.load(path) == d
    assert json.loads(path.read_text())["drained"][0] == {
        "vs": "10.0.0.1:80",
        "rs": "192.168.1.10:80",
    }
    assert [p.name for p in path.parent.iterdir()] == ["drain.json"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "drain.json:1: not valid JSON"),
        ("[]", "expected"),
        ('{"drained": [{"vs": "10.0.0.1:80"}]}', "entry 0"),
        ('{"drained": [{"vs": "nope", "rs": "1.2.3.4"}]}', "entry 0: virtual server"),
    ],
)
def test_corrupt_state_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "drain.json"
    path.write_text(text)
    with pytest.raises(DrainStateError, match=message) as exc:
        drain.load(path)
    assert "\n" not in str(exc.value)
