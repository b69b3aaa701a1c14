"""What a real server's state change costs the reconciler, at the scale row's size.

10 virtual servers x 1,000 real servers (TCP_CHECK, weight 1, quorum 1): all
10,000 go down one by one, round-robin over the virtual servers as a mass
failure arrives, then all come back.  An in-memory kernel takes the
operations, so this is the reconciler's own CPU time, the part keepalived
does in O(1) per change (check/ipwrapper.c ``update_svr_checker_state``).

Two rows: one server's change as it runs (``Reconciler._change_one``), and
the full path that re-decides the server's whole pool (``incremental=False``,
what every change cost before), estimated from samples along each phase
because it takes minutes.  CPU time of this process (``time.process_time``),
best of three for the first row; the machine may be shared, so read the
ratio, not the absolute times.
"""

from __future__ import annotations

import ipaddress
import statistics
import time
from collections.abc import Callable, Collection

from ipvs.diff import Op, apply_ops
from ipvs.policy import RsHealth, rs_key
from ipvs.service import Reconciler
from ipvs.table import Table, copy_table
from pykeep.config.model import Config, LvsSyncDaemon, RealServer, TcpCheck, VirtualServer

VIRTUAL, REAL = 10, 1_000
SAMPLE = 50  # changes timed at each offset on the full path
OFFSETS = (0, 2_500, 5_000, 7_500, 9_950)  # the last 50 hold each virtual server's quorum loss


class MemoryKernel:
    """The kernel's table in memory: applies operations as IPVS would."""

    def __init__(self) -> None:
        self.table: Table = {}
        self.ops = 0

    def read(self, with_stats: bool = False) -> Table:
        return copy_table(self.table)

    def apply(self, ops: Collection[Op]) -> None:
        apply_ops(self.table, list(ops))
        self.ops += len(ops)

    def flush(self) -> None:
        self.table.clear()

    def start_sync_daemon(self, d: LvsSyncDaemon, master: bool) -> None:
        pass

    def stop_sync_daemon(self, master: bool) -> None:
        pass


def scale_config(virtual: int = VIRTUAL, real: int = REAL) -> Config:
    ip = ipaddress.ip_address
    return Config(
        virtual_servers=tuple(
            VirtualServer(
                address=ip(f"10.0.0.{v + 1}"),
                port=80,
                real_servers=tuple(
                    RealServer(
                        ip(f"10.{v + 1}.{i // 250}.{i % 250 + 1}"), 80, checkers=(TcpCheck(),)
                    )
                    for i in range(real)
                ),
            )
            for v in range(virtual)
        )
    )


def _keys(cfg: Config) -> list[str]:
    """Round-robin: each virtual server loses (or regains) a server in turn."""
    return [rs_key(vs, vs.real_servers[i]) for i in range(REAL) for vs in cfg.virtual_servers]


def mass_failure(make: Callable[[Config, MemoryKernel], Reconciler]) -> tuple[float, float, int]:
    """CPU seconds for all servers going down one by one, then up; operations sent."""
    cfg = scale_config()
    kernel = MemoryKernel()
    r = make(cfg, kernel)
    r.start()
    phases: list[float] = []
    for up in (False, True):
        start = time.process_time()
        for key in _keys(cfg):
            r.transition(key, up)
        phases.append(time.process_time() - start)
    return phases[0], phases[1], kernel.ops


def sampled(make: Callable[[Config, MemoryKernel], Reconciler], up: bool) -> float:
    """Estimated CPU seconds of one phase: ``SAMPLE`` changes timed at each of ``OFFSETS``.

    Each sample starts from a reconciler started with the servers before
    the offset already changed; a change's cost varies with how many are up.
    """
    cfg = scale_config()
    keys = _keys(cfg)
    per_change: list[float] = []
    for offset in OFFSETS:
        done = set(keys[:offset])
        r = make(cfg, MemoryKernel())
        if up:
            r.health = {k: RsHealth(alive=k in done) for k in keys}
        else:
            r.health = {k: RsHealth(alive=False) for k in done}
        r.start()
        start = time.process_time()
        for key in keys[offset : offset + SAMPLE]:
            r.transition(key, up)
        per_change.append((time.process_time() - start) / SAMPLE)
    return statistics.mean(per_change) * len(keys)


def main() -> None:
    changes = VIRTUAL * REAL
    print(f"{VIRTUAL} virtual servers x {REAL} real servers: {changes} down, then {changes} up")
    runs = [mass_failure(lambda c, k: Reconciler(c, k)) for _ in range(3)]
    down = min(r[0] for r in runs)
    up = min(r[1] for r in runs)
    spread = max(r[0] + r[1] for r in runs) / (down + up)
    print(
        f"  one server's change: down {down:.3f} s ({changes / down:,.0f}/s), "
        f"up {up:.3f} s ({changes / up:,.0f}/s) CPU, {runs[0][2]} ops; "
        f"the worst of 3 runs took {spread:.2f}x the best"
    )

    def full(c: Config, k: MemoryKernel) -> Reconciler:
        return Reconciler(c, k, incremental=False)

    full_down, full_up = sampled(full, False), sampled(full, True)
    print(
        f"  the pool re-decided per change (estimated from {SAMPLE} changes at each of "
        f"{len(OFFSETS)} points): down ~{full_down:,.0f} s, up ~{full_up:,.0f} s CPU; "
        f"{full_down / down:,.0f}x / {full_up / up:,.0f}x the cost"
    )


if __name__ == "__main__":
    main()
