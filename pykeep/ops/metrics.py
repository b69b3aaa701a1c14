"""Prometheus metrics: the text exposition of a status snapshot, and its HTTP listener.

keepalived has no metrics of its own (keepalived issue #1731); people run
mehdy/keepalived-exporter, which signals keepalived and parses its dumps.
pykeep serves the same series under the exporter's names and labels
(``keepalived_vrrp_state{iname,intf,vrid,ip_address}``,
``keepalived_advertisements_received_total{iname,intf,vrid}`` …), so
existing dashboards and alerts keep working, and adds what the exporter
cannot see under ``pykeep_``: receive errors by reason, transitions,
checker results and latency, real-server weight and drain, IPVS counters.

The exposition is written by hand (text format 0.0.4), not with
prometheus-client: it is a test-only dependency, not a runtime one, and
pykeep's metrics are a pure function of a snapshot taken at scrape time,
which a registry of long-lived mutable metric objects does not model well.
The tests parse the output with prometheus-client's own parser.
"""

from __future__ import annotations

import contextlib
import inspect
import ipaddress
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

import h11
import structlog
import trio

# LatencyRecorder lives with the snapshot types, so the checker shell that owns
# one (pykeep.lvs) does not import this top-layer module; re-exported here.
from pykeep.ops.status import DEFAULT_LATENCY_BUCKETS as DEFAULT_LATENCY_BUCKETS
from pykeep.ops.status import Histogram, Snapshot, VrrpInstanceStatus
from pykeep.ops.status import LatencyRecorder as LatencyRecorder

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

log = structlog.get_logger("pykeep.ops.metrics")

Labels = Sequence[tuple[str, str]]


# --------------------------------------------------------------------------
# exposition


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass
class _Family:
    name: str
    kind: str  # gauge, counter, histogram
    help: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)

    def add(self, labels: Labels, value: float, suffix: str = "") -> None:
        self.samples.append((suffix, labels, value))

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for suffix, labels, value in self.samples:
            name = self.name + suffix
            if self.kind == "counter" and not suffix:
                name += "_total"
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            out.append(f"{name}{{{text}}} {_num(value)}" if text else f"{name} {_num(value)}")
        return out


class _Exposition:
    def __init__(self) -> None:
        self.families: dict[str, _Family] = {}

    def family(self, name: str, kind: str, help_text: str) -> _Family:
        """``name`` is the family name: a counter's samples get ``_total`` appended."""
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = _Family(name, kind, help_text)
        return fam

    def render(self) -> str:
        lines: list[str] = []
        for fam in self.families.values():
            lines += fam.render()
        return "".join(line + "\n" for line in lines)


# keepalived-exporter's counters: (family name without _total, stats field, help)
_EXPORTER_COUNTERS = (
    ("keepalived_advertisements_received", "advert_rcvd", "Advertisements received"),
    ("keepalived_advertisements_sent", "advert_sent", "Advertisements sent"),
    ("keepalived_become_master", "become_master", "Became master"),
    ("keepalived_release_master", "release_master", "Released master"),
    ("keepalived_packet_length_errors", "packet_len_err", "Packet length errors"),
    (
        "keepalived_advertisements_interval_errors",
        "advert_interval_err",
        "Advertisement interval errors",
    ),
    ("keepalived_ip_ttl_errors", "ip_ttl_err", "TTL errors"),
    ("keepalived_invalid_type_received", "invalid_type_rcvd", "Invalid type errors"),
    ("keepalived_address_list_errors", "addr_list_err", "Address list errors"),
    ("keepalived_authentication_invalid", "invalid_authtype", "Authentication invalid"),
    ("keepalived_authentication_mismatch", "authtype_mismatch", "Authentication mismatch"),
    ("keepalived_authentication_failure", "auth_failure", "Authentication failure"),
    ("keepalived_priority_zero_received", "pri_zero_rcvd", "Priority zero received"),
    ("keepalived_priority_zero_sent", "pri_zero_sent", "Priority zero sent"),
)


def _instance_labels(inst: VrrpInstanceStatus) -> list[tuple[str, str]]:
    return [("iname", inst.name), ("intf", inst.interface or ""), ("vrid", str(inst.vrid))]


def _vrrp(exp: _Exposition, snapshot: Snapshot) -> None:
    vip_state = exp.family("keepalived_vrrp_state", "gauge", "State of vrrp")
    evip_state = exp.family(
        "keepalived_vrrp_excluded_state", "gauge", "State of vrrp with excluded VIP"
    )
    counters = [(exp.family(n, "counter", h), attr) for n, attr, h in _EXPORTER_COUNTERS]
    garp = exp.family("keepalived_gratuitous_arp_delay", "counter", "Gratuitous ARP delay")
    state = exp.family(
        "pykeep_vrrp_instance_state",
        "gauge",
        "VRRP state per instance: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT",
    )
    prio = exp.family("pykeep_vrrp_priority", "gauge", "Configured (base) priority")
    eprio = exp.family("pykeep_vrrp_effective_priority", "gauge", "Priority after tracking weights")
    trans = exp.family("pykeep_vrrp_transitions", "counter", "VRRP state changes")
    last = exp.family(
        "pykeep_vrrp_last_transition_timestamp_seconds",
        "gauge",
        "Wall-clock time of the last state change",
    )
    rx_err = exp.family("pykeep_vrrp_rx_errors", "counter", "Received adverts rejected, by reason")
    for inst in snapshot.vrrp_instances:
        labels = _instance_labels(inst)
        for vips, fam in ((inst.vips, vip_state), (inst.evips, evip_state)):
            for vip in vips:
                # keepalived-exporter's ip_address label is the VIP without its prefix length.
                addr = str(vip.address.ip)
                fam.add([*labels, ("ip_address", addr)], int(inst.state))
        for fam, attr in counters:
            fam.add(labels, getattr(inst.stats, attr))
        garp.add(labels, inst.garp_delay)
        state.add(labels, int(inst.state))
        prio.add(labels, inst.base_priority)
        eprio.add(labels, inst.effective_priority)
        trans.add(labels, inst.transitions)
        if inst.last_transition is not None:
            last.add(labels, inst.last_transition.at)
        for reason, count in inst.stats.rx_errors_by_reason:
            rx_err.add([*labels, ("reason", reason)], count)
    status = exp.family("keepalived_script_status", "gauge", "Tracker Script Status")
    sstate = exp.family("keepalived_script_state", "gauge", "Tracker Script State")
    for script in snapshot.vrrp_scripts:
        status.add([("name", script.name)], 1 if script.good else 0)
        sstate.add([("name", script.name)], 1 if script.running else 0)


def _histogram(fam: _Family, labels: Labels, hist: Histogram) -> None:
    for bound, count in hist.buckets:
        fam.add([*list(labels), ("le", _num(bound))], count, "_bucket")
    fam.add([*list(labels), ("le", "+Inf")], hist.count, "_bucket")
    fam.add(labels, hist.count, "_count")
    fam.add(labels, hist.sum, "_sum")


def _lvs(exp: _Exposition, snapshot: Snapshot) -> None:
    quorum = exp.family(
        "pykeep_virtual_server_quorum_up", "gauge", "1 while the virtual server has quorum"
    )
    rs_up = exp.family("pykeep_real_server_up", "gauge", "1 while health checks pass")
    rs_weight = exp.family(
        "pykeep_real_server_weight", "gauge", "Weight in IPVS now (0 when drained or down)"
    )
    rs_cweight = exp.family(
        "pykeep_real_server_configured_weight", "gauge", "Weight from the configuration"
    )
    rs_drained = exp.family(
        "pykeep_real_server_drained", "gauge", "1 while drained with pykeep ctl drain"
    )
    chk_up = exp.family("pykeep_checker_up", "gauge", "1 when the checker's last verdict is up")
    chk_res = exp.family("pykeep_checker_results", "counter", "Check attempts by result")
    chk_lat = exp.family("pykeep_checker_latency_seconds", "histogram", "Check attempt latency")
    svc_conns = exp.family("pykeep_ipvs_service_connections", "counter", "IPVS service connections")
    svc_pkts = exp.family("pykeep_ipvs_service_packets", "counter", "IPVS service packets")
    svc_bytes = exp.family("pykeep_ipvs_service_bytes", "counter", "IPVS service bytes")
    dst_conns = exp.family(
        "pykeep_ipvs_dest_connections", "counter", "IPVS destination connections"
    )
    dst_pkts = exp.family("pykeep_ipvs_dest_packets", "counter", "IPVS destination packets")
    dst_bytes = exp.family("pykeep_ipvs_dest_bytes", "counter", "IPVS destination bytes")
    dst_active = exp.family(
        "pykeep_ipvs_dest_active_connections", "gauge", "IPVS destination active connections"
    )
    dst_inactive = exp.family(
        "pykeep_ipvs_dest_inactive_connections", "gauge", "IPVS destination inactive connections"
    )
    for vs in snapshot.virtual_servers:
        vl = [("vs", vs.key)]
        quorum.add(vl, int(vs.quorum_up))
        if vs.stats is not None:
            svc_conns.add(vl, vs.stats.conns)
            for direction, pkts, nbytes in (
                ("in", vs.stats.inpkts, vs.stats.inbytes),
                ("out", vs.stats.outpkts, vs.stats.outbytes),
            ):
                svc_pkts.add([*vl, ("direction", direction)], pkts)
                svc_bytes.add([*vl, ("direction", direction)], nbytes)
        for rs in vs.real_servers:
            rl = [*vl, ("rs", rs.key)]
            rs_up.add(rl, int(rs.alive))
            rs_weight.add(rl, rs.effective_weight)
            rs_cweight.add(rl, rs.weight)
            rs_drained.add(rl, int(rs.drained))
            seen: dict[str, int] = {}
            for chk in rs.checkers:
                seen[chk.kind] = seen.get(chk.kind, 0) + 1
                name = chk.kind if seen[chk.kind] == 1 else f"{chk.kind}#{seen[chk.kind]}"
                cl = [*rl, ("checker", name), ("target", chk.target)]
                chk_up.add(cl, int(chk.up))
                chk_res.add([*cl, ("result", "success")], chk.successes)
                chk_res.add([*cl, ("result", "failure")], chk.failures)
                if chk.latency is not None:
                    _histogram(chk_lat, cl, chk.latency)
            if rs.stats is not None:
                dst_conns.add(rl, rs.stats.conns)
                dst_active.add(rl, rs.stats.active_conns)
                dst_inactive.add(rl, rs.stats.inactive_conns)
                for direction, pkts, nbytes in (
                    ("in", rs.stats.inpkts, rs.stats.inbytes),
                    ("out", rs.stats.outpkts, rs.stats.outbytes),
                ):
                    dst_pkts.add([*rl, ("direction", direction)], pkts)
                    dst_bytes.add([*rl, ("direction", direction)], nbytes)


def render(snapshot: Snapshot) -> str:
    """The whole exposition for one scrape; families with no samples are still described."""
    exp = _Exposition()
    exp.family("keepalived_up", "gauge", "Status").add([], 1)
    exp.family("pykeep_config_reloads", "counter", "Configuration reloads applied").add(
        [], snapshot.reloads
    )
    exp.family(
        "pykeep_config_reload_failures", "counter", "Reloads refused: the running config kept"
    ).add([], snapshot.reload_failures)
    exp.family(
        "pykeep_config_last_reload_successful", "gauge", "1 unless the latest reload was refused"
    ).add([], int(snapshot.last_reload_ok))
    _vrrp(exp, snapshot)
    _lvs(exp, snapshot)
    return exp.render()


# --------------------------------------------------------------------------
# the listener


def parse_listen(text: str) -> tuple[str, int]:
    """``--metrics-listen``: ``ADDR:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (every address).

    Port 0 picks a free port (tests); ``serve_metrics`` reports the real one.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"--metrics-listen {text!r}: expected ADDR:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"--metrics-listen {text!r}: {host!r} is not an IP address") from None
    return host, int(port)


SnapshotSource = Callable[[], Snapshot | Awaitable[Snapshot]]


async def _snapshot(source: SnapshotSource) -> Snapshot:
    result = source()
    if inspect.isawaitable(result):
        return await result
    return result


async def _respond(
    stream: trio.SocketStream, conn: h11.Connection, status: int, body: bytes, ctype: str
) -> None:
    headers = [("content-type", ctype), ("content-length", str(len(body)))]
    await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
    await stream.send_all(conn.send(h11.Data(data=body)) or b"")
    await stream.send_all(conn.send(h11.EndOfMessage()) or b"")


async def _serve_http(source: SnapshotSource, stream: trio.SocketStream) -> None:
    """One client connection; whatever goes wrong ends it, never the listener."""
    try:
        await _converse(source, stream)
    except Exception:
        log.exception("metrics.connection_failed")


async def _converse(source: SnapshotSource, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    async with stream:
        try:
            while True:
                event: object = h11.NEED_DATA
                with trio.move_on_after(30):  # idle keep-alive and slow clients
                    event = conn.next_event()
                    while event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        conn.receive_data(data)
                        event = conn.next_event()
                if not isinstance(event, h11.Request):
                    return
                path = event.target.split(b"?", 1)[0]
                if event.method not in (b"GET", b"HEAD"):
                    await _respond(stream, conn, 405, b"method not allowed\n", "text/plain")
                elif path == b"/metrics":
                    text = render(await _snapshot(source)).encode()
                    body = b"" if event.method == b"HEAD" else text
                    await _respond(stream, conn, 200, body, CONTENT_TYPE)
                elif path == b"/":
                    page = b'<html><body><a href="/metrics">/metrics</a></body></html>\n'
                    await _respond(stream, conn, 200, page, "text/html")
                else:
                    await _respond(stream, conn, 404, b"not found\n", "text/plain")
                while conn.next_event() not in (h11.NEED_DATA, h11.PAUSED):
                    pass  # drain an (unexpected) request body
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(h11.LocalProtocolError, trio.BrokenResourceError):
                    await _respond(stream, conn, 400, b"bad request\n", "text/plain")
            return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        except Exception:  # a rendering bug answers 500 and must not stop the listener
            log.exception("metrics.failed")
            if conn.our_state is h11.SEND_RESPONSE:
                await _respond(stream, conn, 500, b"internal error\n", "text/plain")


async def serve_metrics(
    listen: str,
    source: SnapshotSource,
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/metrics`` on ``listen`` until cancelled; ``source`` builds a snapshot per scrape.

    ``task_status`` reports the bound listeners, so a test can bind port 0
    and learn the real port.
    """
    host, port = parse_listen(listen)
    listeners = await trio.open_tcp_listeners(port, host=host or None)
    log.info("metrics.listening", listen=listen)
    async with trio.open_nursery() as nursery:
        task_status.started(listeners)
        await trio.serve_listeners(
            lambda stream: _serve_http(source, cast(trio.SocketStream, stream)),
            listeners,
            handler_nursery=nursery,
        )


def addresses(listeners: Iterable[trio.SocketListener]) -> list[tuple[str, int]]:
    """The (host, port) each listener is bound to."""
    out = []
    for listener in listeners:
        name = listener.socket.getsockname()
        out.append((str(name[0]), int(name[1])))
    return out
