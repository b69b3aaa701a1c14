"""Prometheus exposition of a snapshot, parsed with prometheus-client's own parser,
and the trio listener serving it over loopback."""

from __future__ import annotations

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from pykeep.ops import metrics
from pykeep.ops.status import Snapshot
from tests.test_ops_sample import T0, sample_snapshot

Sample = tuple[str, dict[str, str], float]


def _samples(text: str) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.name, dict(s.labels), s.value))
    return out


def _value(samples: dict[str, list[Sample]], metric: str, /, **labels: str) -> float:
    hits = [v for _, lab, v in samples.get(metric, []) if labels.items() <= lab.items()]
    assert len(hits) == 1, (metric, labels, samples.get(metric))
    return hits[0]


def test_exposition_values() -> None:
    text = metrics.render(sample_snapshot())
    fams = {f.name: f.type for f in text_string_to_metric_families(text)}
    s = _samples(text)
    vi1 = {"iname": "VI_1", "intf": "eth0", "vrid": "51"}
    vi2 = {"iname": "VI_2", "intf": "eth0", "vrid": "52"}

    # keepalived-exporter's names and labels
    assert _value(s, "keepalived_up") == 1
    assert _value(s, "keepalived_vrrp_state", ip_address="192.168.77.100", **vi1) == 2
    assert _value(s, "keepalived_vrrp_state", ip_address="192.168.77.102", **vi2) == 1
    assert _value(s, "keepalived_vrrp_excluded_state", ip_address="2001:db8::1", **vi2) == 1
    assert _value(s, "keepalived_advertisements_sent_total", **vi1) == 42
    assert _value(s, "keepalived_advertisements_received_total", **vi2) == 100
    assert _value(s, "keepalived_become_master_total", **vi1) == 1
    assert _value(s, "keepalived_ip_ttl_errors_total", **vi1) == 3
    assert _value(s, "keepalived_authentication_failure_total", **vi1) == 2
    assert _value(s, "keepalived_priority_zero_received_total", **vi2) == 1
    assert _value(s, "keepalived_script_status", name="chk_true") == 1
    assert fams["keepalived_advertisements_sent"] == "counter"
    assert fams["keepalived_vrrp_state"] == "gauge"

    # pykeep's own
    assert _value(s, "pykeep_vrrp_instance_state", **vi1) == 2
    assert _value(s, "pykeep_vrrp_effective_priority", **vi1) == 130
    assert _value(s, "pykeep_vrrp_priority", **vi1) == 150
    assert _value(s, "pykeep_vrrp_transitions_total", **vi1) == 2
    assert _value(s, "pykeep_vrrp_last_transition_timestamp_seconds", **vi1) == T0
    assert _value(s, "pykeep_vrrp_rx_errors_total", reason="ttl", **vi1) == 3
    assert _value(s, "pykeep_vrrp_rx_errors_total", reason="vrid", **vi1) == 5
    assert _value(s, "pykeep_vrrp_rx_errors_total", reason="auth_pass", **vi1) == 2

    vs = {"vs": "[10.0.0.1]:tcp:80"}
    ok = {**vs, "rs": "192.168.1.10:80"}
    bad = {**vs, "rs": "192.168.1.11:80"}
    assert _value(s, "pykeep_virtual_server_quorum_up", **vs) == 1
    assert _value(s, "pykeep_real_server_up", **ok) == 1
    assert _value(s, "pykeep_real_server_up", **bad) == 0
    assert _value(s, "pykeep_real_server_weight", **ok) == 0
    assert _value(s, "pykeep_real_server_configured_weight", **ok) == 3
    assert _value(s, "pykeep_real_server_drained", **ok) == 1
    assert _value(s, "pykeep_checker_up", checker="TCP_CHECK", **bad) == 0
    assert (
        _value(s, "pykeep_checker_results_total", checker="TCP_CHECK", result="failure", **bad) == 4
    )
    http = {**ok, "checker": "HTTP_GET"}
    assert fams["pykeep_checker_latency_seconds"] == "histogram"
    assert _value(s, "pykeep_checker_latency_seconds_bucket", le="0.1", **http) == 9
    assert _value(s, "pykeep_checker_latency_seconds_bucket", le="+Inf", **http) == 10
    assert _value(s, "pykeep_checker_latency_seconds_count", **http) == 10
    assert _value(s, "pykeep_checker_latency_seconds_sum", **http) == pytest.approx(0.42)
    assert _value(s, "pykeep_ipvs_service_connections_total", **vs) == 11
    assert _value(s, "pykeep_ipvs_service_bytes_total", direction="out", **vs) == 70000
    assert _value(s, "pykeep_ipvs_dest_packets_total", direction="in", **ok) == 100
    assert _value(s, "pykeep_ipvs_dest_active_connections", **ok) == 2


def test_label_values_are_escaped() -> None:
    snap = sample_snapshot()
    odd = snap.vrrp_scripts[0].__class__(name='we"ird\\name\n', command="x")
    text = metrics.render(Snapshot(taken_at=0, vrrp_scripts=(odd,)))
    s = _samples(text)
    assert _value(s, "keepalived_script_status", name='we"ird\\name\n') == 0


def test_latency_recorder() -> None:
    rec = metrics.LatencyRecorder((0.1, 1.0))
    for v in (0.05, 0.5, 3.0):
        rec.observe(v)
    hist = rec.snapshot()
    assert hist.buckets == ((0.1, 1), (1.0, 2))
    assert hist.count == 3
    assert hist.sum == pytest.approx(3.55)


def test_parse_listen() -> None:
    assert metrics.parse_listen("127.0.0.1:9650") == ("127.0.0.1", 9650)
    assert metrics.parse_listen("[::1]:9650") == ("::1", 9650)
    assert metrics.parse_listen(":9650") == ("", 9650)
    for bad in ("9650", "127.0.0.1:", "localhost:9650", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match="--metrics-listen"):
            metrics.parse_listen(bad)


async def _http(port: int, request: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        chunks = []
        while chunk := await stream.receive_some(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_listener_serves_metrics_over_loopback() -> None:
    trio.run(_listener_serves_metrics_over_loopback)


async def _listener_serves_metrics_over_loopback() -> None:
    scrapes = 0

    async def source() -> Snapshot:
        nonlocal scrapes
        scrapes += 1
        return sample_snapshot()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(metrics.serve_metrics, "127.0.0.1:0", source)
            [(host, port)] = metrics.addresses(listeners)
            assert host == "127.0.0.1"
            raw = await _http(
                port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            head, _, body = raw.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert b"content-type: text/plain; version=0.0.4" in head.lower()
            s = _samples(body.decode())
            vi1 = {"iname": "VI_1", "intf": "eth0", "vrid": "51"}
            assert _value(s, "keepalived_advertisements_sent_total", **vi1) == 42
            assert scrapes == 1
            # two requests on one keep-alive connection, then a 404 and a 405
            raw = await _http(
                port,
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n",
            )
            assert raw.count(b"HTTP/1.1 200") == 1
            assert b"HTTP/1.1 404" in raw and b"HTTP/1.1 405" in raw
            assert scrapes == 2
            # garbage does not stop the listener
            assert (await _http(port, b"\x00\x01garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")
            raw = await _http(port, b"GET /metrics HTTP/1.0\r\n\r\n")
            assert raw.startswith(b"HTTP/1.1 200")
            nursery.cancel_scope.cancel()
