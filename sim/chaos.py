"""``python -m sim chaos``: faults a real deployment meets, against pykeep and keepalived.

Why: failover that works on a quiet LAN says little.  Each scenario below is a
named function that does one kind of damage to the two-router rig of
:mod:`sim.chaos_rig` and returns a :class:`sim.chaos_measure.Plan` saying when
the damage happened and what the protocol excuses.  The same function runs
against pykeep and, with ``--peer keepalived``, against Debian's keepalived
2.2.7 (``-P``: this host's kernel has no IP_VS), so every number in the table
has its keepalived twin measured the same way on the same rig.

The CLI runs every fault at the issue's full length (:data:`FULL`); the test
suite runs them shorter (:data:`SHORT`, ``--short``).  The protocol bounds are
the same in both.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.chaos_measure import MARGIN, Plan, Row, judge
from sim.chaos_rig import (
    ADDRS,
    ADVERT_INT,
    PRIORITY,
    VIP,
    VRID,
    ChaosRig,
    read_adverts,
    read_garps,
)
from sim.chaos_rig import master_down_interval as mdi
from sim.netns import Rig, unique_rig_name


@dataclass(frozen=True)
class Durations:
    """How long each fault lasts; the issue's lengths in :data:`FULL`."""

    freeze: float
    flap_total: float
    flap_half: float
    loss: float
    partition: float
    reload_unchanged: int
    reload_changed: int
    reload_period: float
    rogue: float
    malformed: int
    starve: float


FULL = Durations(
    freeze=10,
    flap_total=60,
    flap_half=2,
    loss=60,
    partition=10,
    reload_unchanged=300,
    reload_changed=100,
    reload_period=0.2,
    rogue=5,
    malformed=10_000,
    starve=30,
)
SHORT = Durations(
    freeze=5,
    flap_total=12,
    flap_half=2,
    loss=12,
    partition=5,
    reload_unchanged=30,
    reload_changed=10,
    reload_period=0.2,
    rogue=3,
    malformed=10_000,
    starve=8,
)


def _settle(seconds: float = 1.0) -> None:
    time.sleep(seconds)


# --------------------------------------------------------------------------- scenarios


def master_killed(cr: ChaosRig, d: Durations) -> Plan:
    """``kill -9`` the master and remove its VIP, as a host that died; then restart it.

    Bound: the backup's Master_Down_Interval (RFC 3768 §6.1).  The restarted
    master preempts; the backup must yield on its first advert.
    """
    plan = Plan(t0=time.time())
    _settle(0.37)  # land inside an advert interval, not on one
    t_kill = time.time()
    cr.a.kill9()
    cr.rig.run("a", ["ip", "addr", "del", f"{VIP}/32", "dev", "eth0"], check=False)
    plan.t_ref = t_kill
    plan.bound = mdi(PRIORITY["b"])
    plan.none_ok.append((t_kill, t_kill + plan.bound + MARGIN))
    took = cr.wait_holders({"b"}, plan.bound + 3)
    plan.notes.append("backup took over" if took else "backup never took over")
    plan.final = frozenset({"b"})
    _settle(1.0)
    t_restart = time.time()
    cr.a.start()
    cr.a.settle()
    back = cr.wait_holders({"a"}, mdi(PRIORITY["a"]) + 5)
    plan.notes.append(
        f"restarted master took the VIP back in {time.time() - t_restart:.2f} s"
        if back
        else "restarted master never took the VIP back"
    )
    _settle(1.5)
    plan.t_end = time.time()
    return plan


def master_frozen(cr: ChaosRig, d: Durations) -> Plan:
    """SIGSTOP the master's VRRP process for ``freeze`` s, then SIGCONT.

    The backup takes over after its Master_Down_Interval; both hold the VIP
    while the master sleeps (its kernel still answers ARP).  After SIGCONT the
    master's next advert must make the backup yield: bound one advert interval.
    """
    plan = Plan(t0=time.time())
    _settle(0.37)
    t_stop = time.time()
    cr.a.signal(signal.SIGSTOP, all_pids=True)
    plan.none_ok.append((t_stop, t_stop + mdi(PRIORITY["b"]) + MARGIN))
    time.sleep(d.freeze)
    t_cont = time.time()
    cr.a.signal(signal.SIGCONT, all_pids=True)
    plan.dual_ok.append((t_stop, t_cont))
    plan.t_ref = t_cont
    plan.bound = ADVERT_INT
    cr.wait_holders({"a"}, 5)
    _settle(2.0)
    plan.t_end = time.time()
    time.sleep(0.3)  # the ARP capture flushes
    mac = cr.rig.mac("a")
    garps = [t for t, m in read_garps(cr.arp_path) if m == mac and t_cont <= t < t_cont + 1]
    plan.notes.append(f"{len(garps)} GARPs from the master in the second after SIGCONT")
    return plan


def link_flap(cr: ChaosRig, d: Durations) -> Plan:
    """The master's link down ``flap_half`` s, up ``flap_half`` s, for ``flap_total`` s.

    While its link is down the master holds nothing that matters; each down
    may cost the backup's Master_Down_Interval of no master.  After the last
    up the master preempts: bound its own Master_Down_Interval + one advert.
    """
    plan = Plan(t0=time.time())
    t_end = time.time() + d.flap_total
    while time.time() < t_end:
        t_down = time.time()
        cr.rig.link_set("a", "eth0", up=False)
        plan.none_ok.append((t_down, t_down + mdi(PRIORITY["b"]) + MARGIN))
        time.sleep(d.flap_half)
        cr.rig.link_set("a", "eth0", up=True)
        time.sleep(d.flap_half)
    plan.t_ref = time.time() - d.flap_half  # the last up
    plan.bound = mdi(PRIORITY["a"]) + ADVERT_INT
    cr.wait_holders({"a"}, plan.bound + 5)
    _settle(2.0)
    plan.t_end = time.time()
    return plan


def _loss(percent: int) -> Callable[[ChaosRig, Durations], Plan]:
    def loss(cr: ChaosRig, d: Durations) -> Plan:
        plan = Plan(t0=time.time())
        cr.fault(f"ip protocol 112 numgen random mod 100 < {percent} counter drop")
        time.sleep(d.loss)
        cr.fault(None)
        plan.t_ref = time.time()
        plan.bound = ADVERT_INT
        cr.wait_holders({"a"}, 5)
        _settle(2.0)
        plan.t_end = time.time()
        return plan

    loss.__name__ = loss.__qualname__ = f"loss_{percent}"
    loss.__doc__ = (
        f"{percent} % of protocol 112 dropped on the backup's input (nftables "
        "``numgen random``).  Three adverts lost in a row is a takeover the protocol "
        "allows; the backup must yield to the next advert it receives."
    )
    return loss


loss_30 = _loss(30)
loss_60 = _loss(60)


def one_way_partition(cr: ChaosRig, d: Durations) -> Plan:
    """The backup cannot hear the master for ``partition`` s: a split brain by design.

    Measured, not excused away: the row shows its length.  After the repair the
    backup must yield within one advert interval.
    """
    plan = Plan(t0=time.time(), expect_split=True)
    t_cut = time.time()
    cr.fault(f"ip saddr {ADDRS['a']} ip protocol 112 drop")
    time.sleep(d.partition)
    cr.fault(None)
    t_fix = time.time()  # the repair is in force once nft returns
    plan.dual_ok.append((t_cut, t_fix))
    plan.t_ref = t_fix
    plan.bound = ADVERT_INT
    cr.wait_holders({"a"}, 5)
    _settle(2.0)
    plan.t_end = time.time()
    return plan


def _rs_block(i: int) -> str:
    return (
        f"virtual_server 10.99.0.250 80 {{\n    lb_algo wrr\n    lb_kind DR\n"
        f"    protocol TCP\n    real_server 10.99.0.{20 + i % 50} 80 {{\n"
        f"        weight {1 + i % 7}\n    }}\n}}\n"
    )


def reload_storm(cr: ChaosRig, d: Durations) -> Plan:
    """SIGHUP the master ``reload_unchanged`` times every ``reload_period`` s, then
    ``reload_changed`` more with a config change that does not touch VRRP.

    Bound: nothing: no VIP gap, no priority-0 advert, no takeover.
    """
    plan = Plan(t0=time.time())
    for _ in range(d.reload_unchanged):
        cr.a.signal(signal.SIGHUP)
        time.sleep(d.reload_period)
    for i in range(d.reload_changed):
        cr.a.write_conf(_rs_block(i))
        cr.a.signal(signal.SIGHUP)
        time.sleep(d.reload_period)
    plan.t_ref = time.time()
    plan.bound = 0.0
    plan.notes.append(f"{d.reload_unchanged}+{d.reload_changed} SIGHUPs")
    _settle(3.0)
    plan.t_end = time.time()
    return plan


def bad_adverts(cr: ChaosRig, d: Durations) -> Plan:
    """``malformed`` random protocol-112 frames, then a rogue priority-255 router.

    The flood must change nothing.  The rogue (RFC 3768 §5.3.4: 255 is the
    address owner) sends both routers to BACKUP while it speaks; when it falls
    silent the master takes over after its own Master_Down_Interval.
    """
    from sim import inject

    plan = Plan(t0=time.time())
    mac = cr.rig.mac("x")
    frames = inject.garbage(d.malformed, src_mac=mac, src_ip=ADDRS["x"], seed=13)
    rng = random.Random(13)
    good = inject.advert(mac, ADDRS["x"], VRID, 120, [VIP])
    # Valid-looking adverts with one defect each: bad checksum, truncated, TTL 64.
    for _ in range(200):
        frames[rng.randrange(len(frames))] = rng.choice(
            [
                inject.with_bad_checksum(good),
                inject.truncated(good, rng.randint(14, len(good) - 1)),
                inject.advert(mac, ADDRS["x"], VRID, 200, [VIP], ttl=64),
            ]
        )
    with inject.Injector(cr.rig, "x") as inj:
        for i in range(0, len(frames), 500):
            inj.send(frames[i : i + 500])
            time.sleep(0.02)  # a flood, not a burst that only tests socket buffers
        plan.notes.append(f"{inj.sent} malformed")
        time.sleep(2.0)
        rogue = inject.advert(mac, ADDRS["x"], VRID, 255, [VIP])
        t_rogue = time.time()
        t_stop = t_rogue + d.rogue
        t_last = t_rogue
        while time.time() < t_stop:
            inj.send(rogue)
            t_last = time.time()
            time.sleep(ADVERT_INT)
    plan.none_ok.append((t_rogue, t_last + mdi(PRIORITY["a"]) + MARGIN))
    plan.t_ref = t_last
    plan.bound = mdi(PRIORITY["a"])
    cr.wait_holders({"a"}, plan.bound + 5)
    _settle(2.0)
    plan.t_end = time.time()
    return plan


def _rt_throttled() -> bool:
    """True when the kernel keeps a slice of every CPU for normal tasks (RT throttling)."""
    try:
        runtime = int(Path("/proc/sys/kernel/sched_rt_runtime_us").read_text())
        period = int(Path("/proc/sys/kernel/sched_rt_period_us").read_text())
    except (OSError, ValueError):
        return False
    return 0 < runtime < period


def control_plane_starved(cr: ChaosRig, d: Durations) -> Plan:
    """Both daemons pinned to CPU 0 beside a busy loop of higher priority, for ``starve`` s.

    keepalived issue 2649 ("thread timer expired"): a late timer on a busy host
    looks like a dead master.  The busy loop is SCHED_FIFO when the kernel's RT
    throttling still leaves normal tasks their 5 % of the CPU (so the daemons
    run in short slices, as on a host whose CPU is taken by something more
    important), else nice -20.  The row reports how late the master's adverts
    were on the wire and any false takeover by the backup.
    """
    plan = Plan(t0=time.time())
    pids = cr.a.pids() + cr.b.pids()
    how = ["chrt", "-f", "1"] if _rt_throttled() else ["nice", "-n", "-20"]
    plan.notes.append("busy loop " + ("SCHED_FIFO 1" if how[0] == "chrt" else "nice -20"))
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", "0", str(pid)], capture_output=True)
    busy = cr.rig.popen(
        None,
        [*how, "taskset", "-c", "0", sys.executable, "-c", "while True: pass"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(d.starve)
    finally:
        cr.rig.kill(busy, sig=signal.SIGKILL)
        for pid in pids:
            subprocess.run(["taskset", "-a", "-p", "-c", "0-1023", str(pid)], capture_output=True)
    plan.t_ref = time.time()
    plan.bound = 0.0
    _settle(2.0)
    plan.t_end = time.time()
    return plan


VM_SCENARIOS = ("rs_chaos", "scale")
"""The rows that need IPVS: run in one VM boot by :mod:`sim.chaos_vm`, not on a netns rig."""

Scenario = Callable[[ChaosRig, Durations], Plan]
SCENARIOS: dict[str, Scenario] = {
    f.__name__: f
    for f in (
        master_killed,
        master_frozen,
        link_flap,
        loss_30,
        loss_60,
        one_way_partition,
        reload_storm,
        bad_adverts,
        control_plane_starved,
    )
}


# --------------------------------------------------------------------------- running


def run(name: str, kind: str, durations: Durations = FULL, keep: Path | None = None) -> Row:
    """One scenario on a fresh rig against ``kind`` ("pykeep" or "keepalived").

    ``keep``: copy the daemons' logs, the captures and the ownership samples to
    ``keep/<scenario>-<kind>/`` for a post-mortem.
    """
    scenario = SCENARIOS[name]
    with Rig(unique_rig_name("ch")) as rig, tempfile.TemporaryDirectory(prefix="pkchaos-") as tmp:
        wd = Path(tmp)
        cr = ChaosRig(rig, kind, wd)
        crashes: list[str] = []
        left: list[str] = []
        plan = Plan(t0=time.time())
        try:
            cr.start()
            plan = scenario(cr, durations)
        finally:
            samples, probes, lost = cr.finish()
            crashes, left = cr.stop_all()
        row = judge(
            name,
            kind,
            plan,
            samples,
            read_adverts(cr.lan_path),
            read_adverts(cr.rx_path),
            probes,
            lost,
            crashes,
            left,
        )
        if crashes:
            for r in (cr.a, cr.b):
                if r.log.exists():
                    tail = r.log.read_text(errors="replace").splitlines()[-15:]
                    row.notes.append(f"{r.node} log tail: " + " | ".join(tail))
        if cr.sampler.errors:
            row.notes.append(f"{cr.sampler.errors} ownership reads failed")
        if keep is not None:
            dest = keep / f"{name}-{kind}"
            shutil.copytree(wd, dest, dirs_exist_ok=True)
            (dest / "samples.json").write_text(
                json.dumps([[t, sorted(h)] for t, h in samples]) + "\n"
            )
            (dest / "plan.json").write_text(
                json.dumps(dataclasses.asdict(plan), default=sorted) + "\n"
            )
        return row


_COLUMNS = (
    ("scenario", "scenario"),
    ("daemon", "daemon"),
    ("s", "seconds"),
    ("dual-master s", "dual_s"),
    ("beyond bound s", "dual_beyond_s"),
    ("no-master s", "none_s"),
    ("lost probes", "lost"),
    ("recovery s", "recovery_s"),
    ("bound s", "bound_s"),
    ("takeovers (early)", "takeovers"),
    ("advert late max ms", "advert_late_max_ms"),
    ("crashes", "crashes"),
    ("VIPs left", "left_behind"),
    ("notes", "notes"),
)


def _cell(row: Row, key: str) -> str:
    v = getattr(row, key)
    if key == "takeovers":
        return f"{row.takeovers} ({row.early_takeovers})"
    if key == "lost":
        return f"{row.lost}/{row.probes}"
    if key == "notes":
        extra = [f"{row.prio0_adverts} priority-0 adverts"] if row.prio0_adverts else []
        return "; ".join([*v, *extra, *(f"FAIL: {f}" for f in row.failures)])
    if isinstance(v, list):
        return str(len(v))
    if v is None:
        return "—" if key != "recovery_s" else "never"
    if key == "none_s" and row.none_beyond_s:
        return f"{v} ({row.none_beyond_s} beyond)"
    return str(v)


def markdown(rows: Sequence[Row]) -> str:
    head = "| " + " | ".join(c for c, _k in _COLUMNS) + " |"
    sep = "| " + " | ".join("---" for _ in _COLUMNS) + " |"
    lines = [head, sep]
    for r in rows:
        cells = [_cell(r, k).replace("|", "\\|") for _c, k in _COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def add_arguments(p: Any) -> None:
    """The ``chaos`` subcommand's options (shared with ``python -m sim``)."""
    p.add_argument(
        "scenarios", nargs="*", help=f"default: all ({', '.join([*SCENARIOS, *VM_SCENARIOS])})"
    )
    p.add_argument(
        "--peer", choices=("keepalived",), help="also run keepalived 2.2.7, side by side"
    )
    p.add_argument("--short", action="store_true", help="the test suite's short durations")
    p.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep logs, captures and samples under DIR"
    )
    p.add_argument(
        "--report", type=Path, metavar="FILE", help="write FILE (Markdown) and FILE.json"
    )


def main_args(a: Any) -> int:
    """Run what the parsed ``chaos`` options ask for; exit 1 when a row is not ok."""
    known = [*SCENARIOS, *VM_SCENARIOS]
    unknown = [s for s in a.scenarios if s not in known]
    if unknown:
        raise SystemExit(
            f"pykeep-sim chaos: unknown scenario {unknown[0]!r}; one of {', '.join(known)}"
        )
    names = list(a.scenarios) or known
    kinds = ["pykeep"] + ([a.peer] if a.peer else [])
    return execute(names, kinds, SHORT if a.short else FULL, a.report, a.keep)


def execute(
    names: Sequence[str],
    kinds: Sequence[str],
    durations: Durations,
    report: Path | None,
    keep: Path | None = None,
) -> int:
    rows: list[Row] = []
    print(markdown([]), end="", flush=True)
    for name in names:
        if name in VM_SCENARIOS:
            continue
        for kind in kinds:
            row = run(name, kind, durations, keep)
            rows.append(row)
            print(markdown([row]).splitlines()[-1], flush=True)
    vm_names = [n for n in names if n in VM_SCENARIOS]
    if vm_names:
        # One boot for every VM row: a boot is minutes of emulated CPU.
        from sim import chaos_vm

        size = chaos_vm.SMALL if durations == SHORT else chaos_vm.FULL
        for r in chaos_vm.run_in_vm(vm_names, kinds, size, keep):
            row = chaos_vm.to_row(r)
            rows.append(row)
            print(markdown([row]).splitlines()[-1], flush=True)
    if report is not None:
        cmd = "python -m sim " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["chaos"] else ""
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        report.write_text(
            f"Command: `{cmd or 'python -m sim chaos'}`, {when}, host `{socket.gethostname()}`.\n\n"
            + markdown(rows)
        )
        json_path = report.with_name(report.name + ".json")
        json_path.write_text(json.dumps([r.to_json() for r in rows], indent=1) + "\n")
        print(f"wrote {report} and {json_path}")
    return 0 if all(r.ok() for r in rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="pykeep-sim chaos", description=__doc__.split("\n")[0])
    add_arguments(p)
    return main_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
