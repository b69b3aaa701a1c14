"""Table-driven tests of healthcheck.policy on a plain-float clock.

Each case names the keepalived function whose behaviour it pins down.
A script is a list of attempt outcomes ("ok"/"fail"); the expected trace
lists, per attempt, (time of the attempt, transition or None).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pytest

from healthcheck.api import Result
from healthcheck.policy import (
    BOOTSTRAP_DELAY,
    CheckerPolicy,
    ServerPolicy,
    Timing,
    resolve_timing,
)
from pykeep.config.model import (
    CheckerCommon,
    DnsCheck,
    HttpCheck,
    MiscCheck,
    RealServer,
    TcpCheck,
    VirtualServer,
)

OK = Result.passed("ok")
FAIL = Result.failed("refused")


@dataclass(frozen=True)
class Case:
    mirrors: str
    timing: Timing
    script: str  # "o" ok, "x" fail
    expect: list[tuple[float, bool | None]]
    steps: int = 1


T = Timing(delay_loop=10, warmup=0, retry=2, delay_before_retry=1)
H = Timing(delay_loop=10, warmup=0, retry=1, delay_before_retry=3, flavour="http")

CASES = [
    Case(
        "check_tcp.c tcp_epilog + check_data.c retry_it preset: first failure counts",
        T, "x", [(1, False)],
    ),
    Case(
        "check_tcp.c tcp_epilog: up → down after retry+1 failures spaced by delay_before_retry",
        T, "oxxxo",
        [(1, None), (11, None), (12, None), (13, False), (23, True)],
    ),
    Case(
        "check_tcp.c tcp_epilog: a success resets the retry counter",
        T, "oxxoxxx",
        [(1, None), (11, None), (12, None), (13, None), (23, None), (24, None), (25, False)],
    ),
    Case(
        "check_tcp.c tcp_epilog: down re-probes every delay_loop, up after one success",
        T, "xxxo", [(1, False), (11, None), (21, None), (31, True)],
    ),
    Case(
        "check_data.c validate_check_config alpha: starts down, one success brings it up",
        Timing(delay_loop=10, warmup=0, retry=2, delay_before_retry=1, alpha=True),
        "xo", [(1, None), (11, True)],
    ),
    Case(
        "check_misc.c misc_check_child_thread: retry 0, a single failure takes it down",
        Timing(delay_loop=5, warmup=0, retry=0, delay_before_retry=1),
        "oxo", [(1, None), (6, False), (11, True)],
    ),
    Case(
        "check_http.c epilog: multi-URL walk, one URL per delay_loop",
        H, "ooo", [(1, None), (11, None), (21, None)], steps=2,
    ),
    Case(
        "check_http.c epilog: failing URL retried after delay_before_retry, then down; "
        "failed URL re-probed every max(dbr, delay_loop); walk restarts at URL 0",
        H, "ooxxxooo",
        [(1, None), (11, None), (21, None), (24, False), (34, None), (44, None), (54, None),
         (64, True)],
        steps=2,
    ),
    Case(
        "check_http.c epilog fast_recovery: probe at once until the first full walk",
        Timing(delay_loop=10, warmup=0, retry=1, delay_before_retry=3, alpha=True,
               fast_recovery=True, flavour="http"),
        "ooo", [(1, None), (1, True), (11, None)], steps=2,
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.mirrors.split(":")[0] for c in CASES])
def test_policy_table(case: Case) -> None:
    policy = CheckerPolicy(case.timing, case.steps)
    at = policy.first_at(0.0, 0.0)
    assert at == BOOTSTRAP_DELAY
    trace = []
    for ch in case.script:
        d = policy.record(OK if ch == "o" else FAIL, at)
        trace.append((at, d.up))
        at = d.next_at
    assert trace == case.expect, case.mirrors


def test_warmup_staggers_first_check() -> None:
    """check_api.c register_checkers_thread: BOOTSTRAP_DELAY + warmup × random."""
    p = CheckerPolicy(Timing(delay_loop=60, warmup=60))
    assert p.first_at(100.0, 0.5) == 100.0 + BOOTSTRAP_DELAY + 30.0


def test_server_up_only_while_all_checkers_pass() -> None:
    """ipwrapper.c set_checker_state / update_svr_checker_state: num_failed_checkers."""
    t = Timing(delay_loop=10, warmup=0, retry=0, delay_before_retry=1)
    srv = ServerPolicy("rs1", [CheckerPolicy(t), CheckerPolicy(t)], ["TCP_CHECK", "HTTP_GET"])
    assert srv.initial().up
    _, tr = srv.record(0, FAIL, 1)
    assert tr is not None and not tr.up and tr.reason == "TCP_CHECK: refused"
    _, tr = srv.record(1, FAIL, 1)
    assert tr is None  # already down
    _, tr = srv.record(0, OK, 11)
    assert tr is None  # HTTP_GET still failing
    _, tr = srv.record(1, OK, 11)
    assert tr is not None and tr.up


def test_misc_dynamic_weight() -> None:
    """check_misc.c: exit status − 2 becomes the weight; a failure resets it."""
    t = Timing(delay_loop=10, warmup=0, retry=0, delay_before_retry=1)
    srv = ServerPolicy("rs", [CheckerPolicy(t)])
    _, tr = srv.record(0, Result.passed("exit 7", weight=5), 1)
    assert tr is not None and tr.up and tr.reason == "weight" and tr.weight == 5
    _, tr = srv.record(0, Result.passed("exit 7", weight=5), 11)
    assert tr is None
    _, tr = srv.record(0, FAIL, 21)
    assert tr is not None and not tr.up and tr.weight is None


VS = VirtualServer(address=ipaddress.ip_address("10.0.0.1"), port=80, delay_loop=6)
RS = RealServer(address=ipaddress.ip_address("10.0.0.2"), port=80)


@pytest.mark.parametrize(
    ("mirrors", "vs", "rs", "checker", "expect"),
    [
        ("check_data.c: type defaults (TCP retry 1, dbr 1, warmup = delay_loop, timeout 5)",
         VS, RS, TcpCheck(), Timing(6, 6, 1, 1.0, False, 5.0)),
        ("check_http.c: HTTP_GET default delay_before_retry 3",
         VS, RS, HttpCheck(), Timing(6, 6, 1, 3.0, False, 5.0, flavour="http")),
        ("check_misc.c: MISC_CHECK default retry 0",
         VS, RS, MiscCheck(), Timing(6, 6, 0, 1.0, False, 5.0)),
        ("check_dns.c: DNS_CHECK retry 3, delay_before_retry = delay_loop",
         VS, RS, DnsCheck(), Timing(6, 6, 3, 6.0, False, 5.0)),
        ("check_data.c: virtual_server → real_server → checker inheritance",
         VirtualServer(delay_loop=6, retry=4, alpha=True, connect_timeout=2, warmup=1),
         RealServer(address=RS.address, port=80, retry=5, delay_before_retry=7),
         TcpCheck(CheckerCommon(delay_loop=3, connect_timeout=9)),
         Timing(3, 1, 5, 7.0, True, 9.0)),
    ],
)  # fmt: skip
def test_inheritance(
    mirrors: str, vs: VirtualServer, rs: RealServer, checker: TcpCheck, expect: Timing
) -> None:
    assert resolve_timing(vs, rs, checker) == expect, mirrors
