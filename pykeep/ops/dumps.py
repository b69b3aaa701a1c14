"""keepalived's signal dumps, rendered from a status snapshot.

Operators script against these files and tools such as mehdy/keepalived-exporter
parse them, so the layout, the JSON field names and even the JSON number
formatting follow keepalived 2.2.7:

- ``keepalived.data`` (SIGUSR1): vrrp_print.c vrrp_print_data → vrrp_data.c
  dump_data_vrrp / dump_vrrp / dump_vscript;
- ``keepalived_check.data`` (SIGUSR1, checker side): check_data.c dump_vs / dump_rs;
- ``keepalived.stats`` (SIGUSR2, and STATS_CLEAR): vrrp_print.c vrrp_print_stats;
- ``keepalived.json`` (SIGRTMIN+2): vrrp_json.c vrrp_json_dump.

The directory is ``$TMPDIR`` when that is an absolute path, else ``/tmp``
(lib/utils.c set_tmp_dir), so tests and operators can redirect all of it.
"""

from __future__ import annotations

import inspect
import math
import os
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path

import structlog
import trio

# The snapshot's module loads with the first dump: an idle daemon, asked
# for nothing, does not hold it (about 0.8 MiB).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pykeep.ops.status import (
        RealServerStatus,
        Snapshot,
        VirtualServerStatus,
        VrrpInstanceStatus,
        VrrpScriptStatus,
    )

    SnapshotSource = Callable[[], Snapshot | Awaitable[Snapshot]]

log = structlog.get_logger("pykeep.ops.dumps")

# The keepalived release whose dumps, signals and --version output pykeep mirrors.
KEEPALIVED_VERSION = "2.2.7"

DATA_FILE = "keepalived.data"
CHECK_DATA_FILE = "keepalived_check.data"
STATS_FILE = "keepalived.stats"
JSON_FILE = "keepalived.json"


class UnknownSignal(ValueError):
    """``--signum=NAME`` with a name keepalived does not know."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown sigfunc {name}")
        self.name = name


def signum(name: str) -> int:
    """The signal keepalived's ``--signum=NAME`` prints (lib/signals.c get_signum).

    Debian's 2.2.7 is built without THREAD_DUMP, so ``TDUMP`` is unknown
    there, as it is here.
    """
    table = {
        "STOP": signal.SIGTERM,
        "RELOAD": signal.SIGHUP,
        "DATA": signal.SIGUSR1,
        "STATS": signal.SIGUSR2,
        "STATS_CLEAR": signal.SIGRTMAX - 1,  # lib/signals.h SIGSTATS_CLEAR
        "JSON": signal.SIGRTMIN + 2,  # lib/signals.h SIGJSON
    }
    try:
        return int(table[name])
    except KeyError:
        raise UnknownSignal(name) from None


def tmp_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where keepalived writes its dumps: $TMPDIR if absolute, else /tmp (utils.c set_tmp_dir)."""
    env = os.environ if environ is None else environ
    value = env.get("TMPDIR", "")
    return Path(value) if value.startswith("/") else Path("/tmp")


def write_dump(name: str, text: str, directory: Path | None = None) -> Path:
    """Write one dump file, mode 0600 like keepalived's fopen_safe, replacing it atomically.

    keepalived truncates and rewrites in place; a reader polling right after
    the signal could then see half a file.  Renaming a finished temporary
    file over the old one gives the same result without that window.
    """
    target = (directory or tmp_dir()) / name
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fp:
            fp.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------
# keepalived.json


def _json_string(value: str) -> str:
    """A string as lib/json_writer.c jsonw_puts writes it, slashes escaped as ``\\/``.

    jsonw_puts turns a backslash into ``\\n`` (a keepalived bug); we write a
    correct ``\\\\`` instead, and escape the control characters it lets
    through raw, so the output is always valid JSON.
    """
    out = ['"']
    for ch in value:
        if ch == "/":
            out.append("\\/")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\b":
            out.append("\\b")
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _g(value: float) -> str:
    """C's ``%g`` (json_writer.c jsonw_float), never a non-JSON inf/nan."""
    if not math.isfinite(value):
        return "0"
    return f"{value:g}"


def _json_object(fields: Iterable[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{_json_string(k)}:{v}" for k, v in fields) + "}"


def _json_fields(inst: VrrpInstanceStatus) -> list[tuple[str, str]]:
    """The ``data`` object of one instance, in vrrp_json_data_dump's order.

    Values are pre-rendered JSON text, so integers stay integers and floats
    use keepalived's ``%g`` (``last_transition`` uses ``%f``).
    """
    from pykeep.ops.status import format_vip

    def u(v: int | bool) -> str:
        return str(int(v))

    def b(v: bool) -> str:
        return "true" if v else "false"

    def arr(values: Iterable[str]) -> str:
        return "[" + ",".join(_json_string(v) for v in values) + "]"

    last = inst.last_transition.at if inst.last_transition else 0.0
    f: list[tuple[str, str]] = [
        ("iname", _json_string(inst.name)),
        ("dont_track_primary", u(inst.dont_track_primary)),
        ("skip_check_adv_addr", u(inst.skip_check_adv_addr)),
        ("strict_mode", u(inst.strict_mode)),
        ("vmac_ifname", _json_string(inst.vmac_ifname)),
    ]
    if inst.interface is not None:
        f.append(("ifp_ifname", _json_string(inst.interface)))
    f += [
        ("master_priority", u(inst.master_priority)),
        ("last_transition", f"{last:f}"),
        ("garp_delay", _g(inst.garp_delay)),
        ("garp_refresh", u(int(inst.garp_refresh))),
        ("garp_rep", u(inst.garp_rep)),
        ("garp_refresh_rep", u(inst.garp_refresh_rep)),
        ("garp_lower_prio_delay", u(int(inst.garp_lower_prio_delay))),
        ("garp_lower_prio_rep", u(inst.garp_lower_prio_rep)),
        ("lower_prio_no_advert", u(inst.lower_prio_no_advert)),
        ("higher_prio_send_advert", u(inst.higher_prio_send_advert)),
        ("vrid", u(inst.vrid)),
        ("base_priority", u(inst.base_priority)),
        ("effective_priority", u(inst.effective_priority)),
        ("vipset", b(inst.vipset)),
        ("promote_secondaries", b(inst.promote_secondaries)),
        ("adver_int", _g(inst.adver_int)),
        ("master_adver_int", _g(inst.master_adver_int)),
        ("accept", u(inst.accept)),
        ("nopreempt", b(inst.nopreempt)),
        ("preempt_delay", u(int(inst.preempt_delay))),
        ("state", u(inst.state)),
        ("wantstate", u(inst.wantstate)),
        ("version", u(inst.version)),
        ("smtp_alert", b(inst.smtp_alert)),
        ("notify_deleted", b(inst.notify_deleted)),
    ]
    n = inst.notify
    for key, cmd in (
        ("script_backup", n.backup),
        ("script_master", n.master),
        ("script_fault", n.fault),
        ("script_stop", n.stop),
        ("script_deleted", n.deleted),
        ("script", n.generic),
        ("script_master_rx_lower_pri", n.master_rx_lower_pri),
    ):
        if cmd is not None:
            f.append((key, _json_string(cmd)))
    # vrrp_json_array_dump leaves an empty list out altogether.
    for key, values in (
        ("vips", [format_vip(v) for v in inst.vips]),
        ("evips", [format_vip(v) for v in inst.evips]),
        ("vroutes", list(inst.vroutes)),
        ("vrules", list(inst.vrules)),
        ("track_ifp", list(inst.track_interfaces)),
        ("track_script", [t.command for t in inst.track_scripts]),
    ):
        if values:
            f.append((key, arr(values)))
    f.append(("auth_type", u(inst.auth_type)))
    if inst.auth_type:
        f.append(("auth_data", _json_string((inst.auth_data or "")[:8])))
    return f


_STATS_JSON_FIELDS = (
    "advert_rcvd",
    "advert_sent",
    "become_master",
    "release_master",
    "packet_len_err",
    "advert_interval_err",
    "ip_ttl_err",
    "invalid_type_rcvd",
    "addr_list_err",
    "invalid_authtype",
    "authtype_mismatch",
    "auth_failure",
    "pri_zero_rcvd",
    "pri_zero_sent",
)


def render_json(snapshot: Snapshot) -> str:
    """``/tmp/keepalived.json``: a compact array of {"data": …, "stats": …} per instance."""
    items = []
    for inst in snapshot.vrrp_instances:
        stats = _json_object((k, str(int(getattr(inst.stats, k)))) for k in _STATS_JSON_FIELDS)
        data = _json_object(_json_fields(inst))
        items.append(_json_object([("data", data), ("stats", stats)]))
    return "[" + ",".join(items) + "]\n"


# --------------------------------------------------------------------------
# keepalived.stats


def render_stats(snapshot: Snapshot) -> str:
    """``/tmp/keepalived.stats``, line for line as vrrp_print.c vrrp_print_stats writes it."""
    lines: list[str] = []
    for inst in snapshot.vrrp_instances:
        s = inst.stats
        lines += [
            f"VRRP Instance: {inst.name}",
            "  Advertisements:",
            f"    Received: {s.advert_rcvd}",
            f"    Sent: {s.advert_sent}",
            f"  Became master: {s.become_master}",
            f"  Released master: {s.release_master}",
            "  Packet Errors:",
            f"    Length: {s.packet_len_err}",
            f"    TTL: {s.ip_ttl_err}",
            f"    Invalid Type: {s.invalid_type_rcvd}",
            f"    Advertisement Interval: {s.advert_interval_err}",
            f"    Address List: {s.addr_list_err}",
            "  Authentication Errors:",
            f"    Invalid Type: {s.invalid_authtype}",
            f"    Type Mismatch: {s.authtype_mismatch}",
            f"    Failure: {s.auth_failure}",
            "  Priority Zero:",
            f"    Received: {s.pri_zero_rcvd}",
            f"    Sent: {s.pri_zero_sent}",
        ]
    return "".join(line + "\n" for line in lines)


# --------------------------------------------------------------------------
# keepalived.data


def _ctime_us(at: float) -> str:
    """keepalived's ctime_us_r: ``Mon Nov 23 11:32:39.912140 2026`` (local time)."""
    sec = int(at)
    usec = round((at - sec) * 1e6)
    if usec >= 1_000_000:
        sec, usec = sec + 1, usec - 1_000_000
    t = time.localtime(sec)
    return time.strftime("%a %b %d %H:%M:%S", t) + f".{usec:06d} " + time.strftime("%Y", t)


def _timestamp(at: float) -> str:
    sec = int(at)
    usec = round((at - sec) * 1e6)
    if usec >= 1_000_000:
        sec, usec = sec + 1, usec - 1_000_000
    return f"{sec}.{usec:06d} ({_ctime_us(sec + usec / 1e6)})"


def _dump_vrrp(inst: VrrpInstanceStatus) -> list[str]:
    """One instance, in vrrp_data.c dump_vrrp's order and wording.

    keepalived-exporter reads this section by indentation: three spaces
    and ``key = value`` for scalars, five spaces for list entries.
    """
    from pykeep.ops.status import VrrpState, format_vip

    out = [f" VRRP Instance = {inst.name}", f"   VRRP Version = {inst.version}"]
    if inst.sync_group:
        out.append(f"   Sync group = {inst.sync_group}")
    if inst.family == 6:
        out.append("   Using Native IPv6")
    out.append(f"   State = {inst.state.name}")
    if inst.state is VrrpState.BACKUP:
        out.append(f"   Master router = {inst.master_router or '(none)'}")
        out.append(f"   Master priority = {inst.master_priority}")
        if inst.version == 3:
            out.append(f"   Master advert int = {inst.master_adver_int:.2f} sec")
    if inst.unicast_peers:
        out += ["   Flags:", "     Using unicast"]
    else:
        out.append("   Flags: none")
    out += [
        f"   Wantstate = {inst.wantstate.name}",
        f"   Number of config faults = {inst.num_config_faults}",
        f"   Number of interface and track script faults = {inst.num_script_if_fault}",
        f"   Number of track scripts init = {inst.num_script_init}",
    ]
    if inst.last_transition is not None:
        out.append(f"   Last transition = {_timestamp(inst.last_transition.at)}")
        out.append(f"   Last transition reason = {inst.last_transition.reason}")
    else:
        out.append(f"   Last transition = {_timestamp(0.0)}")
    out.append(f"   Interface = {inst.interface or 'not configured'}")
    if inst.dont_track_primary:
        out.append("   VRRP interface tracking disabled")
    if inst.skip_check_adv_addr:
        out.append("   Skip checking advert IP addresses")
    if inst.strict_mode:
        out.append("   Enforcing strict VRRP compliance")
    out.append(f"   Using src_ip = {inst.src_ip or '(none)'}")
    if not inst.unicast_peers and inst.mcast_group:
        out.append(f"   Multicast address {inst.mcast_group}")
    out += [
        f"   Gratuitous ARP delay = {int(inst.garp_delay)}",
        f"   Gratuitous ARP repeat = {inst.garp_rep}",
        f"   Gratuitous ARP refresh = {int(inst.garp_refresh)}",
        f"   Gratuitous ARP refresh repeat = {inst.garp_refresh_rep}",
        f"   Gratuitous ARP lower priority delay = {int(inst.garp_lower_prio_delay)}",
        f"   Gratuitous ARP lower priority repeat = {inst.garp_lower_prio_rep}",
        f"   Down timer adverts = {inst.down_timer_adverts}",
        "   Send advert after receive lower priority advert = "
        + ("false" if inst.lower_prio_no_advert else "true"),
        "   Send advert after receive higher priority advert = "
        + ("true" if inst.higher_prio_send_advert else "false"),
        f"   Virtual Router ID = {inst.vrid}",
        f"   Priority = {inst.base_priority}",
        f"   Effective priority = {inst.effective_priority}",
        f"   Total priority = {inst.total_priority}",
    ]
    if inst.version == 2:
        out.append(f"   Advert interval = {int(inst.adver_int)} sec")
    else:
        out.append(f"   Advert interval = {round(inst.adver_int * 1000)} milli-sec")
    if inst.state is VrrpState.BACKUP and inst.version == 3:
        out.append(f"   Master advert interval = {round(inst.master_adver_int * 1000)} milli-sec")
    out.append(f"   Accept = {'enabled' if inst.accept else 'disabled'}")
    out.append(f"   Preempt = {'disabled' if inst.nopreempt else 'enabled'}")
    if inst.preempt_delay:
        out.append(f"   Preempt delay = {inst.preempt_delay:g} secs")
    out.append(f"   Promote_secondaries = {'enabled' if inst.promote_secondaries else 'disabled'}")
    if inst.auth_type:
        kind = "IPSEC_AH" if inst.auth_type == 2 else "SIMPLE_PASSWORD"
        out.append(f"   Authentication type = {kind}")
        if inst.auth_type != 2:
            out.append(f"   Password = {(inst.auth_data or '')[:8]}")
    elif inst.version == 2:
        out.append("   Authentication type = none")
    if inst.vips:
        out.append(f"   Virtual IP ({len(inst.vips)}):")
        out += [f"     {format_vip(v)}" for v in inst.vips]
    if inst.evips:
        out.append("   Virtual IP Excluded :")
        out += [f"     {format_vip(v)}" for v in inst.evips]
    if inst.unicast_peers:
        out.append("   Unicast Peer :")
        out += [f"     {p}" for p in inst.unicast_peers]
    if inst.vroutes:
        out.append("   Virtual Routes :")
        out += [f"     {r}" for r in inst.vroutes]
    if inst.vrules:
        out.append("   Virtual Rules :")
        out += [f"     {r}" for r in inst.vrules]
    if inst.track_interfaces:
        out.append("   Tracked interfaces :")
        out += [f"     {i}" for i in inst.track_interfaces]
    if inst.track_scripts:
        out.append("   Tracked scripts :")
        out += [
            f"     {t.name} weight {t.weight}{' reverse' if t.reverse else ''}"
            for t in inst.track_scripts
        ]
    out.append(f"   Using smtp notification = {'yes' if inst.smtp_alert else 'no'}")
    out.append(f"   Notify deleted = {'Deleted' if inst.notify_deleted else 'Fault'}")
    n = inst.notify
    for kind, cmd in (
        ("Backup", n.backup),
        ("Master", n.master),
        ("Fault", n.fault),
        ("Stop", n.stop),
        ("Deleted", n.deleted),
        ("Generic", n.generic),
        ("Master rx lower pri", n.master_rx_lower_pri),
    ):
        if cmd is not None:
            out.append(f"   {kind} state transition script = {cmd}, uid:gid 0:0")
    out.append("   Notify priority changes = false")
    return out


def _dump_vscript(script: VrrpScriptStatus) -> list[str]:
    """One vrrp_script (vrrp_data.c dump_vscript); keepalived-exporter reads Status and State."""
    out = [
        f" VRRP Script = {script.name}",
        f"   Command = {script.command}",
        f"   Interval = {int(script.interval)} sec",
        f"   Timeout = {int(script.timeout)} sec",
        f"   Weight = {script.weight}{' reverse' if script.weight_reverse else ''}",
        f"   Rise = {script.rise}",
        f"   Fall = {script.fall}",
        f"   Result = {script.result}",
        "   Insecure = no",
        f"   Init state = {script.init_state}",
        f"   Status = {'GOOD' if script.good else 'BAD'}",
        f"   Script uid:gid = {script.uid}:{script.gid}",
        "   VRRP instances :",
        "   Tracking instances :",
    ]
    out += [f"     {name}, weight {weight}" for name, weight in script.tracking]
    out.append(f"   State = {'running' if script.running else 'idle'}")
    return out


def render_data(snapshot: Snapshot) -> str:
    """``/tmp/keepalived.data`` (vrrp_data.c dump_data_vrrp), the VRRP side of SIGUSR1.

    The global section carries what pykeep knows of itself; the Sockpool and
    Interfaces sections of keepalived, which describe its file descriptors
    and netlink cache, have no pykeep equivalent and are left out.
    """
    lines = [
        "------< Global definitions >------",
        " Network namespace = (default)",
        f" Router ID = {snapshot.router_id or '(none)'}",
        f" PID = {snapshot.pid}",
    ]
    if snapshot.config_files:
        lines.append(f" Configuration file = {snapshot.config_files[0]}")
    if snapshot.vrrp_instances:
        lines.append("------< VRRP Topology >------")
        for inst in snapshot.vrrp_instances:
            lines += _dump_vrrp(inst)
    if snapshot.vrrp_scripts:
        lines.append("------< VRRP Scripts >------")
        for script in snapshot.vrrp_scripts:
            lines += _dump_vscript(script)
    return "".join(line + "\n" for line in lines)


def _dump_rs(rs: RealServerStatus) -> list[str]:
    """One real server (check_data.c dump_rs)."""
    out = [
        "   ------< Real server >------",
        f"   RIP = {rs.address}, RPORT = {rs.port or 0}, WEIGHT = {rs.effective_weight}"
        f" EFF WEIGHT = {rs.effective_weight}",
        f"   forwarding method = {rs.forwarding}",
        f"   Inhibit on failure is {'ON' if rs.inhibit_on_failure else 'OFF'}",
        f"   initial weight = {rs.weight}",
        f"   effective weight = {rs.effective_weight}",
        f"   alive = {int(rs.alive)}",
        f"   num failed checkers = {sum(1 for c in rs.checkers if not c.up)}",
        f"   RS set = {int(rs.in_ipvs)}",
        f"   drained = {int(rs.drained)}",
    ]
    for c in rs.checkers:
        verdict = "up" if c.up else f"down ({c.last_reason or 'failed'})"
        out.append(f"     {c.kind} {c.target} {verdict}")
    return out


def _dump_vs(vs: VirtualServerStatus) -> list[str]:
    """One virtual server (check_data.c dump_vs)."""
    out = [" ------< Virtual server >------"]
    if vs.group is not None:
        out.append(f" VS GROUP = {vs.group}")
    elif vs.fwmark is not None:
        out.append(f" VS FWMARK = {vs.fwmark}")
    else:
        out.append(f" VS VIP = {vs.address}, VPORT = {vs.port}")
    out += [
        f"   Address family = inet{'' if vs.family == 4 else '6'}",
        f"   lvs_sched = {vs.lb_algo}",
    ]
    if vs.persistence_timeout:
        out.append(f"   persistence timeout = {vs.persistence_timeout}")
    out += [
        f"   protocol = {vs.protocol}",
        f"   quorum = {vs.quorum}, hysteresis = {vs.hysteresis}",
        f"   default forwarding method = {vs.lb_kind}",
    ]
    if vs.sorry_server:
        out.append(f"   sorry server = {vs.sorry_server}")
    out += [
        f"   alive = {int(vs.alive)}",
        f"   quorum_state_up = {int(vs.quorum_up)}",
    ]
    for rs in vs.real_servers:
        out += _dump_rs(rs)
    return out


def render_check_data(snapshot: Snapshot) -> str:
    """``/tmp/keepalived_check.data`` (check_data.c dump_data_check): SIGUSR1, checker side."""
    lines = [
        "------< Global definitions >------",
        f" Router ID = {snapshot.router_id or '(none)'}",
    ]
    if snapshot.virtual_servers:
        lines.append("------< LVS Topology >------")
        for vs in snapshot.virtual_servers:
            lines += _dump_vs(vs)
    return "".join(line + "\n" for line in lines)


def write_data(snapshot: Snapshot, directory: Path | None = None) -> list[Path]:
    """SIGUSR1: keepalived.data, plus keepalived_check.data when there are virtual servers."""
    paths = [write_dump(DATA_FILE, render_data(snapshot), directory)]
    if snapshot.virtual_servers:
        paths.append(write_dump(CHECK_DATA_FILE, render_check_data(snapshot), directory))
    return paths


def write_stats(snapshot: Snapshot, directory: Path | None = None) -> Path:
    """SIGUSR2 / STATS_CLEAR (the daemon clears its counters after this returns)."""
    return write_dump(STATS_FILE, render_stats(snapshot), directory)


def write_json(snapshot: Snapshot, directory: Path | None = None) -> Path | None:
    """SIGRTMIN+2; like vrrp_print_json, nothing is written without VRRP instances."""
    if not snapshot.vrrp_instances:
        return None
    return write_dump(JSON_FILE, render_json(snapshot), directory)


# --------------------------------------------------------------------------
# signals and --version


def version_text(pykeep_version: str) -> str:
    """What ``pykeep -v`` / ``--version`` should print to stderr, as keepalived does.

    keepalived-exporter runs ``keepalived -v`` and takes the second word of
    the first line, minus its "v", as the version (it needs ≥ 1.3.8 to use
    ``--signum``), and runs ``keepalived --version`` looking for
    ``--enable-json`` before it uses the JSON dump.  An operator who points
    it at pykeep (a ``keepalived`` symlink) gets both.
    """
    return (
        f"Keepalived v{KEEPALIVED_VERSION} (pykeep {pykeep_version})\n"
        "\n"
        "configure options: --enable-json --enable-vrrp-auth --with-init=systemd\n"
        "\n"
        "Config options:  LVS VRRP VRRP_AUTH JSON INIT=systemd SYSTEMD_NOTIFY\n"
    )


DUMP_SIGNALS = ("DATA", "STATS", "STATS_CLEAR", "JSON")


async def serve_dump_signals(
    source: SnapshotSource,
    *,
    clear_stats: Callable[[], None] | None = None,
    directory: Path | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer DATA, STATS, STATS_CLEAR and JSON signals with dump files, until cancelled.

    Start it first thing in the daemon's nursery (``await nursery.start(…)``):
    until the receiver is installed, SIGRTMIN+2 and SIGRTMAX-1 keep their
    default action, which kills the process.  ``clear_stats`` runs right
    after the stats file is written on STATS_CLEAR (vrrp_print.c
    vrrp_print_stats zeroes the counters the same way).  SIGHUP and SIGTERM
    are the daemon's (reload, stop), not handled here.
    """
    numbers = {signum(name): name for name in DUMP_SIGNALS}
    with trio.open_signal_receiver(*numbers) as receiver:
        task_status.started()
        async for number in receiver:
            name = numbers.get(number)
            if name is None:
                continue
            snap = source()
            if inspect.isawaitable(snap):
                snap = await snap
            try:
                if name == "DATA":
                    written = write_data(snap, directory)
                elif name == "JSON":
                    path = write_json(snap, directory)
                    written = [path] if path else []
                else:
                    written = [write_stats(snap, directory)]
                    if name == "STATS_CLEAR" and clear_stats is not None:
                        clear_stats()
            except OSError as exc:
                log.warning("dump.failed", signal=name, error=str(exc))
                continue
            log.info("dump.written", signal=name, files=[str(p) for p in written])
