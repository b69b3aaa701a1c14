"""bench/checks: TCP_CHECK throughput and memory of the health-check scheduler.

Measures, against a loopback listener running in a separate process:
- TCP_CHECKs per second and per CPU-second of this process (one core, one
  trio thread), driven through :func:`healthcheck.scheduler.attempt` so the
  guard and result handling are included;
- RSS with 10,000 configured real servers, each with a TCP_CHECK, the
  scheduler running (staggered by warmup, as keepalived staggers them).

Target (issue 5): 5,000 checks/s on one core.  Run: ``python -m bench.bench_checks``.

``--generated N`` measures instead the CPU per check of the checker side
(``LvsService``, a fake kernel) on the runtime differential's generated file of
N cases (tests/differential_vm), against its 32 real servers in a namespace:
the cost the VM differential pays, on the host.  keepalived -C cannot run here
(the host has no IPVS); the differential's guest reports both daemons' CPU.
"""

from __future__ import annotations

import argparse
import ipaddress
import resource
import subprocess
import sys
import time

import trio

from healthcheck.api import Target
from healthcheck.policy import Transition
from healthcheck.scheduler import Scheduler, attempt
from healthcheck.tcp import TcpChecker
from pykeep.config.model import CheckerCommon, RealServer, TcpCheck, VirtualServer

LISTENER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(4096)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); c.close()
"""


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def throughput(port: int, seconds: float, concurrency: int) -> tuple[int, float, float]:
    target = Target("127.0.0.1", port)
    checker = TcpChecker()
    done = 0
    failed = 0

    async def worker() -> None:
        nonlocal done, failed
        while True:
            res = await attempt(checker, target, 2.0)
            done += 1
            failed += not res.ok

    cpu0, t0 = cpu_seconds(), time.monotonic()
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as n:
            for _ in range(concurrency):
                n.start_soon(worker)
    if failed:
        print(f"  warning: {failed} failed checks", file=sys.stderr)
    return done, time.monotonic() - t0, cpu_seconds() - cpu0


async def memory(port: int, servers: int) -> tuple[float, float, int]:
    before = rss_mib()
    got: list[Transition] = []
    sched = Scheduler(got.extend, batch_window=0.1)
    vs = VirtualServer(address=ipaddress.ip_address("127.0.0.1"), port=port, delay_loop=60)
    common = CheckerCommon(connect_port=port, warmup=5)
    base = int(ipaddress.ip_address("127.1.0.0"))
    for i in range(servers):
        rs = RealServer(
            address=ipaddress.ip_address(base + i), port=port, checkers=(TcpCheck(common),)
        )
        sched.add(("rs", i), rs, vs)
    async with trio.open_nursery() as n:
        await n.start(sched.run)
        await trio.sleep(3)
        after = rss_mib()
        n.cancel_scope.cancel()
    return before, after, sched.checks_done


BENCH_NS = "pk-ck-bench"
SERVERS = f"""
import sys
from tests.differential_vm import guest
from tests.differential_vm.generator import MISC_DIR, TARGETS, phase_up
from pathlib import Path
guest.NS = "{BENCH_NS}-rs"
Path(MISC_DIR).mkdir(parents=True, exist_ok=True)
guest.setup_network()
s = guest.Servers()
try:
    for t in TARGETS:
        s.set(t, phase_up(t, 0))
    print("ready", flush=True)
    sys.stdin.read()
finally:
    s.close()
    guest.teardown_network()
    try:
        Path(MISC_DIR).rmdir()
    except OSError:
        pass
"""


async def generated_inner(count: int, seconds: float, warm: float) -> None:
    """In the bench namespace: the checker side on the generated file; one result line."""
    from pykeep.config import load_text
    from pykeep.lvs import LvsService
    from tests.differential_vm import generator
    from tests.test_ipvs_service import FakeKernel

    text = generator.merged([generator.case(1, i) for i in range(count)])
    config = load_text(text, "generated.conf").config
    svc = LvsService(config, FakeKernel())

    def checks() -> int:
        return sum(c.successes + c.failures for e in svc._checked.values() for c in e.checkers)

    async with trio.open_nursery() as n:
        await n.start(svc.run)
        await trio.sleep(warm)
        c0, k0 = cpu_seconds(), checks()
        await trio.sleep(seconds)
        c1, k1 = cpu_seconds(), checks()
        n.cancel_scope.cancel()
    done = k1 - k0
    print(f"{done} checks in {seconds:.0f} s, {c1 - c0:.2f} s CPU, "
          f"{1000 * (c1 - c0) / max(done, 1):.3f} ms CPU per check")  # fmt: skip


def generated(count: int, seconds: float, runs: int) -> None:
    from sim import netns

    netns.create_namespace(BENCH_NS)
    servers = subprocess.Popen(
        netns.ns_argv(BENCH_NS, [sys.executable, "-c", SERVERS]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert servers.stdout is not None
        if servers.stdout.readline().strip() != "ready":
            raise SystemExit("the real servers did not start")
        inner = [sys.executable, "-m", "bench.bench_checks", "--generated-inner", str(count)]
        inner += ["--seconds", str(seconds)]
        for i in range(runs):
            out = subprocess.run(
                netns.ns_argv(BENCH_NS, inner), capture_output=True, text=True, check=False
            )
            line = out.stdout.strip().splitlines()[-1:] or [out.stderr.strip()[-300:]]
            print(f"run {i + 1}: {line[0]}", flush=True)
    finally:
        if servers.stdin is not None:
            servers.stdin.close()
        servers.wait(timeout=30)
        netns.delete_namespace(f"{BENCH_NS}-rs")
        netns.delete_namespace(BENCH_NS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--servers", type=int, default=10_000)
    ap.add_argument("--generated", type=int, help="cases of the runtime differential's file")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--generated-inner", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv if argv is not None else [])
    if args.generated_inner:
        trio.run(generated_inner, args.generated_inner, args.seconds, 8.0)
        return 0
    if args.generated:
        generated(args.generated, args.seconds, args.runs)
        return 0
    proc = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        done, wall, cpu = trio.run(throughput, port, args.seconds, args.concurrency)
        print(f"TCP_CHECK: {done} checks in {wall:.2f} s wall, {cpu:.2f} s CPU")
        print(f"  {done / wall:,.0f} checks/s; {done / max(cpu, 1e-9):,.0f} checks per CPU-second")
        target_met = done / max(cpu, 1e-9) >= 5000
        print(f"  target 5,000 checks/s on one core: {'met' if target_met else 'NOT met'}")
        before, after, ran = trio.run(memory, port, args.servers)
        print(
            f"RSS with {args.servers:,} real servers (scheduler running, {ran} checks so far): "
            f"{after:.1f} MiB (was {before:.1f} MiB before configuring them)"
        )
    finally:
        proc.kill()
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
