"""Pool policy, table-driven; each case names the keepalived function it mirrors."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest

from ipvs.policy import (
    QuorumEvent,
    RsHealth,
    checkers_active,
    decide,
    effective_quorum,
    initial_health,
    misc_dynamic_health,
    next_quorum,
    real_weight,
    rs_key,
    stop_scripts,
)
from pykeep.config.model import (
    CheckerCommon,
    RealServer,
    Script,
    TcpCheck,
    VirtualServer,
    VirtualServerGroup,
    VsgEntry,
)

IP = ipaddress.ip_address
CHECK = (TcpCheck(),)
UP = Script(("/bin/up",))
DOWN = Script(("/bin/down",))


def rs(n: int, weight: int = 1, **kw: object) -> RealServer:
    kw.setdefault("checkers", CHECK)
    return RealServer(address=IP(f"10.0.1.{n}"), port=80, weight=weight, **kw)  # type: ignore[arg-type]


def vs(*servers: RealServer, **kw: object) -> VirtualServer:
    return VirtualServer(address=IP("10.0.0.1"), port=80, real_servers=servers, **kw)  # type: ignore[arg-type]


def H(v: VirtualServer, *alive: bool, weights: dict[int, int] | None = None) -> dict[str, RsHealth]:
    w = weights or {}
    return {
        rs_key(v, r): RsHealth(a, w.get(i))
        for i, (r, a) in enumerate(zip(v.real_servers, alive, strict=True))
    }


def pool(d: object) -> dict[str, int]:
    return {f"{m.rs.address}{'*' if m.sorry else ''}": m.weight for m in d.members}  # type: ignore[attr-defined]


@dataclass
class Case:
    name: str  # the keepalived behaviour mirrored
    vs: VirtualServer
    alive: tuple[bool, ...]
    prev: bool | None
    pool: dict[str, int]
    quorum_up: bool
    event: QuorumEvent | None = None
    weights: dict[int, int] = field(default_factory=dict)


SORRY = RealServer(address=IP("10.9.9.9"), port=80, weight=5)
CASES = [
    Case(
        "perform_svr_state: alive in, dead out",
        vs(rs(1, 2), rs(2, 3)),
        (True, False),
        True,
        {"10.0.1.1": 2},
        True,
    ),
    Case(
        "ipvs_cmd: inhibit_on_failure DEL->EDIT weight 0",
        vs(rs(1, 2), rs(2, 3), inhibit_on_failure=True),
        (True, False),
        True,
        {"10.0.1.1": 2, "10.0.1.2": 0},
        True,
    ),
    Case(
        "ipvs_cmd: per-rs inhibit overrides vs",
        vs(rs(1, 2, inhibit_on_failure=True), rs(2, 3)),
        (False, False),
        True,
        {"10.0.1.1": 0},
        False,
        QuorumEvent.DOWN,
    ),
    Case(
        "update_quorum_state: start with quorum up",
        vs(rs(1, 2), rs(2, 3), quorum=4),
        (True, True),
        None,
        {"10.0.1.1": 2, "10.0.1.2": 3},
        True,
        QuorumEvent.UP,
    ),
    Case(
        "update_quorum_state: start below quorum, no sorry -> no notify",
        vs(rs(1, 2), rs(2, 3), quorum=5),
        (True, False),
        None,
        {"10.0.1.1": 2},
        False,
        None,
    ),
    Case(
        "update_quorum_state: start below quorum with sorry -> sorry in, notify down",
        vs(rs(1, 2), rs(2, 3), quorum=5, sorry_server=SORRY),
        (True, False),
        None,
        {"10.9.9.9*": 5},
        False,
        QuorumEvent.DOWN,
    ),
    Case(
        "update_quorum_state: lost quorum -> live servers out, sorry in",
        vs(rs(1, 2), rs(2, 3), quorum=4, sorry_server=SORRY),
        (True, False),
        True,
        {"10.9.9.9*": 5},
        False,
        QuorumEvent.DOWN,
    ),
    Case(
        "perform_quorum_state: inhibited live servers stay at 0 under sorry",
        vs(rs(1, 2), rs(2, 3), quorum=4, sorry_server=SORRY, inhibit_on_failure=True),
        (True, False),
        True,
        {"10.0.1.1": 0, "10.0.1.2": 0, "10.9.9.9*": 5},
        False,
        QuorumEvent.DOWN,
    ),
    Case(
        "update_quorum_state: regained quorum -> sorry out, live back",
        vs(rs(1, 2), rs(2, 3), quorum=4, sorry_server=SORRY),
        (True, True),
        False,
        {"10.0.1.1": 2, "10.0.1.2": 3},
        True,
        QuorumEvent.UP,
    ),
    Case(
        "init_service_vs: sorry_server_inhibit keeps idle sorry at 0",
        vs(rs(1, 2), quorum=1, sorry_server=SORRY, sorry_server_inhibit=True),
        (True,),
        True,
        {"10.0.1.1": 2, "10.9.9.9*": 0},
        True,
    ),
    Case(
        "update_quorum_state: hysteresis holds quorum while above quorum-hysteresis",
        vs(rs(1, 2), rs(2, 3), quorum=4, hysteresis=2, sorry_server=SORRY),
        (False, True),
        True,
        {"10.0.1.2": 3},
        True,
    ),
    Case(
        "update_quorum_state: hysteresis needs quorum+hysteresis to gain",
        vs(rs(1, 2), rs(2, 3), quorum=4, hysteresis=2, sorry_server=SORRY),
        (True, True),
        False,
        {"10.9.9.9*": 5},
        False,
    ),
    Case(
        "update_quorum_state: zero live weight loses quorum even with quorum 0",
        vs(rs(1, 0), quorum=0, sorry_server=SORRY),
        (True,),
        True,
        {"10.9.9.9*": 5},
        False,
        QuorumEvent.DOWN,
    ),
    Case(
        "check_misc.c: misc_dynamic weight replaces configured weight",
        vs(rs(1, 2), rs(2, 3)),
        (True, True),
        True,
        {"10.0.1.1": 7, "10.0.1.2": 3},
        True,
        weights={0: 7},
    ),
    Case(
        "weigh_live_realservers: dynamic weight counts toward quorum",
        vs(rs(1, 2), quorum=5, sorry_server=SORRY),
        (True,),
        False,
        {"10.0.1.1": 9},
        True,
        QuorumEvent.UP,
        weights={0: 9},
    ),
    Case(
        "real_weight: negative effective weight clamps to 0",
        vs(rs(1, 2)),
        (True,),
        True,
        {"10.0.1.1": 0},
        False,
        QuorumEvent.DOWN,
        weights={0: -4},
    ),
]


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_decide(c: Case) -> None:
    d = decide(c.vs, H(c.vs, *c.alive, weights=c.weights), c.prev)
    assert pool(d) == c.pool
    assert d.quorum_up is c.quorum_up
    assert d.event is c.event


def test_quorum_scripts_follow_events() -> None:
    v = vs(rs(1, 2), quorum=2, quorum_up=UP, quorum_down=DOWN)
    assert decide(v, H(v, True), None).scripts == (UP,)
    assert decide(v, H(v, False), True).scripts == (DOWN,)
    assert decide(v, H(v, False), False).scripts == ()


@pytest.mark.parametrize(
    ("name", "server", "v_alpha", "alive"),
    [
        ("check_data.c: no alpha, starts alive", rs(1), False, True),
        ("check_data.c: vs alpha, starts failed", rs(1), True, False),
        ("check_data.c: rs alpha overrides vs", rs(1, alpha=False), True, True),
        (
            "check_data.c: checker alpha overrides rs",
            rs(1, checkers=(TcpCheck(CheckerCommon(alpha=True)),)),
            False,
            False,
        ),
        ("init_service_rs: no checkers, alive even in alpha", rs(1, checkers=()), True, True),
    ],
)
def test_initial_health_alpha(name: str, server: RealServer, v_alpha: bool, alive: bool) -> None:
    v = vs(server, alpha=v_alpha)
    assert initial_health(v, server).alive is alive
    # no reports yet: decide uses the initial health
    assert bool(decide(v, {}, None).members) is alive


def test_no_checkers_ignore_reports() -> None:
    v = vs(rs(1, checkers=()))
    assert pool(decide(v, H(v, False), True)) == {"10.0.1.1": 1}


@pytest.mark.parametrize(
    ("total", "prev", "up"),
    [
        (4, None, True),
        (3, None, False),
        (2, True, True),
        (1, True, False),
        (5, False, True),
        (3, False, False),
    ],
)
def test_next_quorum_hysteresis(total: int, prev: bool | None, up: bool) -> None:
    """ipwrapper.c update_quorum_state: quorum 3 hysteresis 1."""
    assert next_quorum(vs(rs(1, 9), quorum=3, hysteresis=1), total, prev) is up


def test_quorum_above_total_weight_is_reduced() -> None:
    """check_data.c validate_check_config: quorum 10 over weights 2+3 becomes 5."""
    v = vs(rs(1, 2), rs(2, 3), quorum=10, sorry_server=SORRY)
    assert effective_quorum(v) == 5
    assert pool(decide(v, H(v, True, True), None)) == {"10.0.1.1": 2, "10.0.1.2": 3}


def test_real_weight_limits() -> None:
    assert (real_weight(-1), real_weight(5), real_weight(70000)) == (0, 5, 65535)


@pytest.mark.parametrize(
    ("status", "alive", "weight"),
    [
        (0, True, None),
        (1, False, None),
        (2, True, 0),
        (12, True, 10),
        (255, True, 253),
        (256, False, None),
    ],
)
def test_misc_dynamic(status: int, alive: bool, weight: int | None) -> None:
    """check_misc.c misc_check_child_thread: 2..255 means weight status-2."""
    assert misc_dynamic_health(status) == RsHealth(alive, weight)


def test_omega_stop_scripts() -> None:
    """ipwrapper.c clear_service_rs / update_vs_notifies: notifies on stop only with omega."""
    down = Script(("/bin/rsdown",))
    v = vs(rs(1, notify_down=down), rs(2, notify_down=down), quorum_down=DOWN)
    assert stop_scripts(v, H(v, True, False), True) == ()
    vo = vs(rs(1, notify_down=down), rs(2, notify_down=down), quorum_down=DOWN, omega=True)
    assert stop_scripts(vo, H(vo, True, False), True) == (down, DOWN)
    assert stop_scripts(vo, H(vo, True, False), False) == (down,)


def test_ha_suspend() -> None:
    """check_api.c update_checker_activity: checkers run only while the VIP is local."""
    v = vs(rs(1), ha_suspend=True)
    assert not checkers_active(v, [])
    assert checkers_active(v, [IP("10.0.0.1")])
    assert checkers_active(vs(rs(1)), [])
    g = VirtualServerGroup("g", (VsgEntry(IP("10.0.0.1"), IP("10.0.0.10"), 80),))
    gv = VirtualServer(group="g", ha_suspend=True)
    assert checkers_active(gv, [IP("10.0.0.5")], g)
    assert not checkers_active(gv, [IP("10.0.0.11")], g)


def test_rs_key_names_vs_and_server() -> None:
    v = vs(rs(1))
    assert rs_key(v, v.real_servers[0]) == "[10.0.0.1]:tcp:80/10.0.1.1:80"
