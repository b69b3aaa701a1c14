"""The typed model each keyword produces: defaults, aliases, ranges, checkers, plugins."""

from __future__ import annotations

import ipaddress
import sys
import types
from collections.abc import Iterator

import pytest

from pykeep.config import LoadResult, Severity, load_text
from pykeep.config.model import (
    DnsCheck,
    FileCheck,
    HttpCheck,
    InitialState,
    IPAddressSpec,
    LbKind,
    Loc,
    MiscCheck,
    PingCheck,
    PluginCheck,
    Protocol,
    SmtpCheck,
    StatusRange,
    TcpCheck,
    UdpCheck,
)


def _load(text: str) -> LoadResult:
    return load_text(text, "m.conf", config_id="h", interface_exists=lambda _n: True)


def _msgs(r: LoadResult) -> list[str]:
    return [d.message for d in r.diagnostics if d.severity > Severity.OK]


def _vs(checker: str, extra: str = "") -> str:
    return f"""
vrrp_track_file tf1 {{
    file /tmp/x
}}
virtual_server 10.0.0.1 80 {{
    delay_loop 10
    lb_algo rr
    lb_kind NAT
    protocol TCP
    {extra}
    real_server 10.0.0.2 80 {{
        weight 3
        {checker}
    }}
}}
"""


def _checker(text: str) -> object:
    r = _load(_vs(text))
    assert r.ok, _msgs(r)
    (c,) = r.config.virtual_servers[0].real_servers[0].checkers
    return c


def test_tcp_check_common_options() -> None:
    c = _checker(
        "TCP_CHECK {\n connect_ip 10.0.0.9\n connect_port 8080\n bindto 10.0.0.1\n"
        " connect_timeout 2.5\n retry 4\n delay_before_retry 1\n warmup 3\n delay_loop 7\n }"
    )
    assert isinstance(c, TcpCheck)
    assert c.common.connect_ip == ipaddress.ip_address("10.0.0.9")
    assert c.common.connect_port == 8080
    assert c.common.connect_timeout == 2.5
    assert (c.common.retry, c.common.delay_before_retry, c.common.warmup) == (4, 1.0, 3.0)
    assert c.common.delay_loop == 7.0


def test_http_get_urls_digest_status_ranges_and_deprecated_retry() -> None:
    text = _vs(
        "HTTP_GET {\n url {\n path /a\n digest 9B3A0C85A887A256D6939DA88AABD8CD\n"
        " status_code 200-299 301\n virtualhost v.example\n }\n url {\n path /b\n }\n"
        " nb_get_retry 2\n http_protocol 1.1\n }"
    )
    r = _load(text)
    assert "nb_get_retry is deprecated - please use 'retry'" in _msgs(r)
    (c,) = r.config.virtual_servers[0].real_servers[0].checkers
    assert isinstance(c, HttpCheck) and not c.ssl
    assert c.common.retry == 2
    assert c.http_protocol == "1.1"
    a, b = c.urls
    assert a.digest == "9b3a0c85a887a256d6939da88aabd8cd"
    assert a.status_codes == (StatusRange(200, 299), StatusRange(301, 301))
    assert 250 in a.status_codes[0]
    assert a.virtualhost == "v.example"
    assert b.path == "/b" and b.status_codes == ()


def test_ssl_get_is_http_with_ssl() -> None:
    c = _checker("SSL_GET {\n url {\n path /\n }\n }")
    assert isinstance(c, HttpCheck) and c.ssl and c.keyword == "SSL_GET"


def test_misc_check_script_split() -> None:
    c = _checker(
        "MISC_CHECK {\n misc_path \"/bin/check 'a b' c\"\n misc_timeout 5\n misc_dynamic\n }"
    )
    assert isinstance(c, MiscCheck)
    assert c.misc_path is not None and c.misc_path.argv == ("/bin/check", "a b", "c")
    assert c.misc_timeout == 5.0 and c.misc_dynamic


def test_smtp_dns_udp_ping_file_checks() -> None:
    smtp = _checker("SMTP_CHECK {\n helo_name mx.example\n connect_timeout 9\n }")
    assert isinstance(smtp, SmtpCheck) and smtp.helo_name == "mx.example"
    dns = _checker("DNS_CHECK {\n type aaaa\n name www.example\n }")
    assert isinstance(dns, DnsCheck) and (dns.query_type, dns.name) == ("AAAA", "www.example")
    udp = _checker("UDP_CHECK {\n payload 0a0b\n require_reply 0c\n min_reply_length 1\n }")
    assert isinstance(udp, UdpCheck)
    assert (udp.payload, udp.require_reply, udp.reply_data) == (b"\n\x0b", True, b"\x0c")
    assert udp.reply_min_length == 1
    ping = _checker("PING_CHECK {\n }")
    assert isinstance(ping, PingCheck)
    fc = _checker("FILE_CHECK {\n track_file tf1\n weight 10 reverse\n }")
    assert isinstance(fc, FileCheck) and (fc.track_file, fc.weight, fc.weight_reverse) == (
        "tf1",
        10,
        True,
    )


def test_virtual_server_aliases_and_defaults() -> None:
    r = _load(
        _vs("TCP_CHECK {\n }", "persistence_timeout\n    sorry_server 10.0.0.9 80").replace(
            "lb_algo rr\n    lb_kind NAT", "lvs_sched wrr\n    lvs_method DR"
        )
    )
    assert r.ok, _msgs(r)
    vs = r.config.virtual_servers[0]
    assert (vs.lb_algo, vs.lb_kind, vs.protocol) == ("wrr", LbKind.DR, Protocol.TCP)
    assert vs.persistence_timeout == 360
    assert vs.sorry_server is not None and vs.sorry_server.port == 80
    assert vs.quorum == 1 and vs.hysteresis == 0 and vs.delay_loop == 10.0
    assert vs.real_servers[0].weight == 3


def test_virtual_server_needs_protocol_scheduler_and_method_like_keepalived() -> None:
    r = _load("virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n }\n}\n")
    msgs = _msgs(r)
    assert any("no protocol set" in m for m in msgs)
    assert any("no scheduler set" in m for m in msgs)
    assert any("no forwarding method set" in m for m in msgs)
    assert r.exit_code == 5


def test_fnat_without_a_local_address_group_is_an_error() -> None:
    r = _load(_vs("TCP_CHECK {\n }").replace("lb_kind NAT", "lb_kind FNAT"))
    note = next(d for d in r.diagnostics if d.message.startswith("lb_kind FNAT is realised"))
    assert note.severity is Severity.INFO
    d = next(d for d in r.diagnostics if "FNAT with no laddr_group_name" in d.message)
    assert d.severity is Severity.GENERAL_ERROR and d.hint is not None


def test_virtual_server_group_ranges_and_fwmark() -> None:
    r = _load(
        "virtual_server_group G {\n 10.0.0.1-10 80\n fwmark 5\n}\n"
        "virtual_server group G {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n"
        " real_server 10.0.1.1 80 {\n }\n}\n"
    )
    assert r.ok, _msgs(r)
    g = r.config.vsg("G")
    assert g is not None
    e, f = g.entries
    assert str(e.address) == "10.0.0.1" and str(e.last) == "10.0.0.10" and e.port == 80
    assert f.fwmark == 5
    assert r.config.virtual_servers[0].key == "group G"


def test_vrrp_instance_defaults_and_ranges() -> None:
    r = _load(
        "vrrp_instance V {\n state MASTER\n interface eth0\n virtual_router_id 300\n"
        " virtual_ipaddress {\n 10.0.0.1/24 dev eth0 label eth0:1\n }\n}\n"
    )
    assert "number '300' outside range [1, 255]" in _msgs(r)
    v = r.config.vrrp_instances[0]
    # keepalived: MASTER with no priority means address owner (vrrp.c).
    assert v.initial_state is InitialState.MASTER and v.priority == 255
    assert v.advert_int == 1.0 and v.version == 2
    assert v.virtual_ipaddress[0].label == "eth0:1"


def test_vrrp_script_track_and_missing_reference() -> None:
    r = _load(
        'vrrp_script chk {\n script "/bin/true"\n interval 2\n weight -10\n fall 3\n}\n'
        "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress {\n 10.0.0.1\n }\n track_script {\n chk weight 5\n nope\n }\n}\n"
        "global_defs {\n enable_script_security\n script_user root\n}\n"
    )
    s = r.config.script("chk")
    assert s is not None and (s.interval, s.weight, s.fall) == (2.0, -10, 3)
    refs = r.config.vrrp_instances[0].track_script
    assert [(t.name, t.weight) for t in refs] == [("chk", 5)]
    assert "(V) track script nope not found, ignoring..." in _msgs(r)


def test_sync_group_members_checked() -> None:
    r = _load(
        "vrrp_sync_group G {\n group {\n V\n W\n }\n}\n"
        "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress {\n 10.0.0.1\n }\n}\n"
    )
    assert any("Virtual router W specified in sync group G" in m for m in _msgs(r))
    assert r.config.vrrp_sync_groups[0].group == ("V", "W")


class _Plugin:
    def parse(self, lines: list[tuple[str, ...]]) -> dict[str, str]:
        opts = {ln[0]: ln[1] for ln in lines if len(ln) > 1}
        if "bad" in opts:
            raise ValueError("bad option")
        return opts


@pytest.fixture
def plugin_registry() -> Iterator[None]:
    mod = types.ModuleType("healthcheck.plugin")
    mod.registered_checkers = lambda: {"REDIS_CHECK": _Plugin()}  # type: ignore[attr-defined]
    saved = sys.modules.get("healthcheck.plugin")
    sys.modules["healthcheck.plugin"] = mod
    import healthcheck

    had = getattr(healthcheck, "plugin", None)
    healthcheck.plugin = mod  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if saved is not None:
            sys.modules["healthcheck.plugin"] = saved
        else:
            del sys.modules["healthcheck.plugin"]
        if had is not None:
            healthcheck.plugin = had  # type: ignore[attr-defined]
        else:
            del healthcheck.plugin  # type: ignore[attr-defined]


def test_plugin_checker(plugin_registry: None) -> None:
    c = _checker("REDIS_CHECK {\n connect_port 6379\n retry 2\n password s3cret\n db 1\n }")
    assert isinstance(c, PluginCheck)
    assert c.keyword == "REDIS_CHECK"
    assert c.options == {"password": "s3cret", "db": "1"}
    assert (c.common.connect_port, c.common.retry) == (6379, 2)
    r = _load(_vs("REDIS_CHECK {\n bad 1\n }"))
    d = next(d for d in r.diagnostics if "bad option" in d.message)
    assert d.loc is not None and d.loc.line > 0
    assert not r.config.virtual_servers[0].real_servers[0].checkers


# -- virtual addresses: the plain-IPv4 fast path ---------------------------------


def _vip_conf(*lines: str) -> str:
    body = "\n".join(f"        {ln}" for ln in lines)
    return (
        "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n"
        f"    priority 100\n    virtual_ipaddress {{\n{body}\n    }}\n}}\n"
    )


@pytest.mark.parametrize(
    "text", ["10.1.2.3", "10.1.2.3/24", "0.0.0.0/0", "255.255.255.255/32", "192.0.2.7/31"]
)
def test_lazy_ipv4_interface_is_the_plain_interface(text: str) -> None:
    """A VIP from the fast path is the same value as ipaddress's, both ways round."""
    import copy
    import pickle

    plain = ipaddress.IPv4Interface(text)
    (spec,) = _load(_vip_conf(text)).config.vrrp_instances[0].virtual_ipaddress
    lazy = spec.address
    assert type(lazy) is not ipaddress.IPv4Interface  # really the fast path's
    assert isinstance(lazy, ipaddress.IPv4Interface)
    assert lazy == plain and plain == lazy and hash(lazy) == hash(plain)
    assert not lazy < plain and not plain < lazy
    assert {plain: 1}[lazy] == 1
    assert (repr(lazy), str(lazy)) == (repr(plain), str(plain))
    for name in ("ip", "network", "netmask", "hostmask", "with_prefixlen", "with_netmask"):
        assert getattr(lazy, name) == getattr(plain, name), name
    assert lazy.network.prefixlen == plain.network.prefixlen
    assert pickle.loads(pickle.dumps(lazy)) == plain
    assert copy.deepcopy(lazy) == plain
    assert spec.loc.line == 6
    assert spec == IPAddressSpec(plain, loc=Loc("m.conf", 6))  # every field as the class has it
    assert repr(spec) == repr(IPAddressSpec(plain, loc=Loc("m.conf", 6)))


@pytest.mark.parametrize(
    "word",
    [
        "10.0.0.01",  # a leading zero: ipaddress refuses it
        "10.0.0.256",
        "10.0.0",
        "10.0.0.1.2",
        "10.0.0.1/",
        "10.0.0.1/33",
        "10.0.0.1/024",  # a prefix in another spelling: the general path
        "10.0.0.1/255.255.255.0",
        "10.0.0.1/0.0.0.255",
        "1\u0662.0.0.1",  # a non-ASCII digit
        "10.0.0.-1",
        "fe80::1/64",
    ],
)
def test_vip_lines_off_the_fast_path_parse_as_ipaddress_does(word: str) -> None:
    try:
        want: ipaddress.IPv4Interface | ipaddress.IPv6Interface | None
        want = ipaddress.ip_interface(word)
    except ValueError:
        want = None
    r = _load(_vip_conf(word))
    got = r.config.vrrp_instances[0].virtual_ipaddress
    if want is None:
        assert got == ()
        assert f"VRRP parsed invalid IP {word}. skipping IP..." in _msgs(r)
    else:
        assert [v.address for v in got] == [want]
        assert str(got[0].address) == str(want)


def test_vip_family_and_diagnostic_order_are_kept() -> None:
    """The first VIP sets the family; a block's lexer notes come before its handler's."""
    r = _load(_vip_conf("fe80::1/64", "10.0.0.1", "fe80::2/64"))
    vi = r.config.vrrp_instances[0]
    assert [str(v.address) for v in vi.virtual_ipaddress] == ["fe80::1/64", "fe80::2/64"]
    assert any("address family must match VRRP instance [10.0.0.1]" in m for m in _msgs(r))
    r = _load(_vip_conf("10.0.0.1", "fe80::1/64", "10.0.0.2/24"))
    vi = r.config.vrrp_instances[0]
    assert [str(v.address) for v in vi.virtual_ipaddress] == ["10.0.0.1/32", "10.0.0.2/24"]
    assert vi.family == 4
    r = _load(_vip_conf("10.0.0.1", "10.0.0.300", "10.0.0.2 // note", "10.0.0.3 dev eth0"))
    vi = r.config.vrrp_instances[0]
    assert [str(v.address) for v in vi.virtual_ipaddress] == [
        "10.0.0.1/32",
        "10.0.0.2/32",
        "10.0.0.3/32",
    ]
    assert vi.virtual_ipaddress[2].dev == "eth0"
    lines = [(d.loc.line if d.loc else 0, d.message) for d in r.diagnostics]
    invalid = next(i for i, (_n, m) in enumerate(lines) if "invalid IP 10.0.0.300" in m)
    comment = next(i for i, (n, m) in enumerate(lines) if n == 8 and "//" in m)
    assert comment < invalid  # as when the whole block was read first


def test_excluded_vips_take_the_fast_path_without_a_family() -> None:
    text = _vip_conf("fe80::1/64").replace(
        "    }\n}", "    }\n    virtual_ipaddress_excluded {\n        10.9.9.9/16\n    }\n}"
    )
    vi = _load(text).config.vrrp_instances[0]
    assert [str(v.address) for v in vi.virtual_ipaddress_excluded] == ["10.9.9.9/16"]
    assert vi.family == 6


def test_a_parse_is_freed_without_the_garbage_collector() -> None:
    """No reference cycle keeps a parse alive: a big file's objects go when the result goes."""
    import gc

    gc.collect()
    gc.disable()
    try:
        r = _load(_vip_conf(*[f"10.0.{i // 256}.{i % 256}" for i in range(2000)]))
        assert len(r.config.vrrp_instances[0].virtual_ipaddress) == 2000
        del r
        assert gc.collect() < 100  # with a cycle, the whole parse: about 16,000 objects
    finally:
        gc.enable()
