"""Failover timing, pykeep against keepalived on the same rig (issue 4, must-show 3).

Two routers (priority 150 and 100, advert_int 1) and a client on one bridge;
the client pings the VIP every 20 ms and tcpdump timestamps every advert.
Takeover is measured on the wire: from the master's last advert (its
priority-0 advert on a graceful stop) to the backup's first advert as master.
Spec bounds: crash = Master_Down_Interval = 3 + (256-100)/256 = 3.609 s;
graceful = Skew_Time = 0.609 s.  Then VRRPv3 with advert_int 0.1 (bound
0.3 + 156·0.1/256 = 0.361 s, target < 0.40 s).

Run as root: ``python -m bench.bench_failover`` (or ``make bench``).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from sim.chaos_rig import Advert, read_adverts
from sim.netns import Rig, unique_rig_name
from tests.netns_vrrp import lan, router, start_prober, vrrp_conf, wait_owner, workdir

VIP = "10.99.0.200"
RUNS = 3


@dataclass
class Run:
    crash: float
    graceful: float
    lost_crash: int
    lost_graceful: int


def _takeover(adverts: list[Advert], since: float, old: str, new: str) -> float:
    """Backup's first advert after ``since`` minus the old master's last one before it."""
    first_new = next(a.t for a in adverts if a.t > since and a.src == new and a.priority > 0)
    last_old = max(a.t for a in adverts if a.src == old and a.t < first_new)
    return first_new - last_old


def _lost(results: list[dict[str, object]], since: float) -> int:
    return sum(1 for x in results if float(str(x["t"])) >= since and not x["ok"])


def measure(kind: str, *, version: int = 2, advert_int: float = 1.0) -> Run:
    with Rig(unique_rig_name("bfail")) as rig, workdir() as wd:
        lan(rig, {"a": "10.99.0.11/24", "b": "10.99.0.12/24"})
        auth = "rigbpw" if version == 2 else None
        conf_a = vrrp_conf(priority=150, version=version, advert_int=advert_int, auth_pass=auth)
        conf_b = vrrp_conf(priority=100, version=version, advert_int=advert_int, auth_pass=auth)
        a = router(rig, "a", kind, conf_a, wd).start()
        b = router(rig, "b", kind, conf_b, wd).start()
        ma, mb = rig.mac("a"), rig.mac("b")
        dump_path = wd / "vrrp.txt"
        with open(dump_path, "w") as out:
            dump = rig.popen(
                "client",
                ["tcpdump", "--immediate-mode", "-i", "eth0", "-l", "-n", "-tt", "vrrp"],
                stdout=out,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        wait_owner(rig, "client", VIP, ma, 3 * advert_int + 5)
        prober = start_prober(rig, "client", VIP, 0.02, wd)
        time.sleep(1.0)
        t_graceful = time.time()
        a.stop()
        wait_owner(rig, "client", VIP, mb, 3)
        time.sleep(0.5)
        a.start()
        wait_owner(rig, "client", VIP, ma, 3 * advert_int + 5)
        time.sleep(1.0 + 0.37)  # land the crash somewhere inside an advert interval
        t_crash = time.time()
        a.crash((f"{VIP}/32",))
        wait_owner(rig, "client", VIP, mb, 3 * advert_int + 3)
        time.sleep(0.3)
        results = prober.stop()
        rig.kill(dump)
        b.stop()
        adverts = read_adverts(dump_path)
        return Run(
            crash=_takeover(adverts, t_crash, "10.99.0.11", "10.99.0.12"),
            graceful=_takeover(adverts, t_graceful, "10.99.0.11", "10.99.0.12"),
            lost_crash=_lost(results, t_crash),
            lost_graceful=sum(
                1
                for x in results
                if t_graceful <= float(str(x["t"])) < t_graceful + 3 and not x["ok"]
            ),
        )


def main() -> int:
    bound_crash = 3 + (256 - 100) / 256
    bound_graceful = (256 - 100) / 256
    runs: dict[str, list[Run]] = {"pykeep": [], "keepalived": []}
    for i in range(RUNS):
        for kind in ("keepalived", "pykeep"):
            run = measure(kind)
            runs[kind].append(run)
            print(
                f"run {i + 1} {kind:10s} crash {run.crash:.3f}s graceful {run.graceful:.3f}s "
                f"lost(crash) {run.lost_crash} lost(graceful) {run.lost_graceful}",
                flush=True,
            )
    print()
    print(f"spec bound: crash {bound_crash:.3f}s, graceful {bound_graceful:.3f}s")
    med: dict[str, dict[str, float]] = {}
    for kind, rs in runs.items():
        med[kind] = {
            "crash": statistics.median(r.crash for r in rs),
            "graceful": statistics.median(r.graceful for r in rs),
            "lost": statistics.median(r.lost_crash for r in rs),
        }
        worst = max(
            max(abs(r.crash - bound_crash) for r in rs),
            max(abs(r.graceful - bound_graceful) for r in rs),
        )
        print(
            f"{kind:10s} median crash {med[kind]['crash']:.3f}s graceful "
            f"{med[kind]['graceful']:.3f}s pings lost (crash) {med[kind]['lost']:.0f}; "
            f"worst distance from spec bound {worst * 1000:.1f} ms"
        )
    for what in ("crash", "graceful"):
        ratio = med["pykeep"][what] / med["keepalived"][what]
        print(f"ratio pykeep/keepalived {what}: {ratio:.3f}")
    v3 = measure("pykeep", version=3, advert_int=0.1)
    bound_v3 = 0.3 + (256 - 100) * 0.1 / 256
    print(
        f"VRRPv3 advert_int 0.1: pykeep crash takeover {v3.crash:.3f}s "
        f"(bound {bound_v3:.3f}s, target < 0.400s), graceful {v3.graceful:.3f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
