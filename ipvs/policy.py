"""Which real servers a virtual server's pool holds, given their health.

This module is pure: the configuration and plain health data in, a decision
out.  It owns keepalived's pool policy (``check/ipwrapper.c`` and the
``ipvs_cmd`` rewriting in ``check/ipvswrapper.c``):

- who is in the pool, and with which weight (``inhibit_on_failure`` keeps a
  failed server at weight 0 instead of removing it);
- the initial health of a server (``alpha``: guilty until proven innocent);
- quorum with hysteresis over the sum of live weights, its up/down
  notifications, and the ``sorry_server`` that replaces the live servers
  while quorum is lost (``sorry_server_inhibit`` keeps it at weight 0 when
  idle);
- MISC_CHECK dynamic weights (the health carries the effective weight);
- ``ha_suspend`` (checkers pause while the virtual address is not ours);
- ``omega`` (notifications on the way down).

It never touches netlink, the clock or scripts: it says which scripts to run
and the shell runs them.

keepalived's code is event-driven and mutates ``rs->alive``/``rs->set``
flags; here the same outcome is computed as a function of the current health
and of the one piece of history that matters, whether quorum was up.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum

from pykeep.config.model import (
    IPAddress,
    LbKind,
    RealServer,
    Script,
    VirtualServer,
    VirtualServerGroup,
)

from .table import IPVS_WEIGHT_LIMIT


@dataclass(frozen=True, slots=True)
class RsHealth:
    """What the checkers say about one real server.

    ``weight`` is the effective weight when a MISC_CHECK with ``misc_dynamic``
    set one (exit status - 2, keepalived check_misc.c); ``None`` means the
    configured weight.
    """

    alive: bool
    weight: int | None = None


class QuorumEvent(Enum):
    """A quorum change worth a notification (keepalived ``do_vs_notifies``)."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Member:
    """One real server (or the sorry server) the pool holds, with its kernel weight."""

    rs: RealServer
    weight: int
    sorry: bool = False


@dataclass(frozen=True, slots=True)
class PoolDecision:
    """The policy's answer for one virtual server."""

    quorum_up: bool
    members: tuple[Member, ...]
    event: QuorumEvent | None = None
    scripts: tuple[Script, ...] = ()  # quorum_up / quorum_down to run now
    live_weight: int = 0


def rs_key(vs: VirtualServer, rs: RealServer) -> str:
    """The key health transitions use for a real server: ``VS-key/addr:port``.

    The same server under two virtual servers is checked twice in keepalived,
    so the key includes the virtual server.  Two real servers of one virtual
    server that keepalived's port correction made equal (DR/TUN take the
    service's port, a fwmark service's lose theirs: check_data.c
    ``validate_check_config``, after its duplicate check) stay two servers
    there, each with its own checkers and state; the second and later get
    ``#2``, ``#3``… so that their health is not merged.
    """
    host = f"[{rs.address}]" if rs.address.version == 6 else str(rs.address)
    base = f"{vs.key}/{host}:{rs.port if rs.port is not None else 0}"
    n = _layout(vs).occurrence.get(id(rs), 0)
    return base if n == 0 else f"{base}#{n + 1}"


@dataclass(frozen=True, slots=True)
class _Layout:
    """Per virtual server: which real servers share a key, or a kernel destination."""

    occurrence: dict[int, int]  # id(rs) -> how many earlier servers have its address:port
    shared: dict[int, tuple[RealServer, ...]]  # id(rs) -> every server on its destination


_LAYOUTS: dict[int, tuple[VirtualServer, _Layout]] = {}
_NO_LAYOUT = _Layout({}, {})


def dest_ident(vs: VirtualServer, rs: RealServer) -> tuple[IPAddress, int | None]:
    """The kernel destination ``rs`` becomes: NAT keeps its port, DR/TUN take the
    service's (``ipvs_cmd`` sets the drule port from the service; None stands for
    "the service's port" where a group or fwmark has no single one)."""
    kind = rs.lb_kind if rs.lb_kind is not None else vs.lb_kind
    if kind is LbKind.NAT or kind is LbKind.FNAT:
        return rs.address, rs.port or 0
    return rs.address, vs.port if vs.address is not None and vs.fwmark is None else None


def _layout(vs: VirtualServer) -> _Layout:
    """Cached per virtual server object: rs_key runs for every server at every event."""
    hit = _LAYOUTS.get(id(vs))
    if hit is not None and hit[0] is vs:
        return hit[1]
    seen: dict[tuple[object, int | None], int] = {}
    occurrence: dict[int, int] = {}
    dests: dict[tuple[IPAddress, int | None], list[RealServer]] = {}
    for rs in vs.real_servers:
        k = (rs.address, rs.port)
        n = seen.get(k, 0)
        seen[k] = n + 1
        if n:
            occurrence[id(rs)] = n
        dests.setdefault(dest_ident(vs, rs), []).append(rs)
    shared = {id(r): tuple(rs) for rs in dests.values() if len(rs) > 1 for r in rs}
    layout = _Layout(occurrence, shared) if occurrence or shared else _NO_LAYOUT
    if len(_LAYOUTS) > 4096:  # a bound, whatever the callers do
        _LAYOUTS.clear()
    _LAYOUTS[id(vs)] = (vs, layout)
    return layout


def forget_layouts() -> None:
    """Drop every cached layout: a reload replaced the virtual servers they describe.

    The cache holds its virtual servers (an id is only safe while its object
    lives), so without this each reload would keep the previous configuration's
    virtual servers and real servers alive.
    """
    _LAYOUTS.clear()


def shared_dests(vs: VirtualServer) -> list[tuple[RealServer, ...]]:
    """Groups of real servers of ``vs`` that one kernel destination holds."""
    groups = {id(g[0]): g for g in _layout(vs).shared.values()}
    return list(groups.values())


def shared_group(vs: VirtualServer, rs: RealServer) -> tuple[RealServer, ...] | None:
    return _layout(vs).shared.get(id(rs))


def shared_after(
    value: int | None, alive_change: bool | None, weight: int, inhibits: bool
) -> int | None:
    """A shared destination's weight (None: absent) after one server's command.

    keepalived sends each server's command on its own (ipwrapper.c
    ``perform_svr_state``, ``update_svr_wgt``) and ``ipvs_talk`` ignores the
    EEXIST of an add and the ENOENT of a delete (ipvswrapper.c), so the last
    command that the kernel accepted wins:

    - the server comes up: ADD_DEST, a no-op if the destination exists, unless
      the server inhibits (already ``set``): then EDIT_DEST to its weight;
    - it goes down: DEL_DEST removes the destination whoever added it, or
      EDIT_DEST to weight 0 when it inhibits;
    - ``alive_change`` None: its weight changed while up: EDIT_DEST.
    """
    if alive_change is None:
        return weight
    if alive_change:
        return weight if inhibits or value is None else value
    return 0 if inhibits else None


def real_weight(weight: int) -> int:
    """Clamp an effective weight to what IPVS accepts (check_data.h ``real_weight``)."""
    return max(0, min(weight, IPVS_WEIGHT_LIMIT))


def inhibit(vs: VirtualServer, rs: RealServer) -> bool:
    """``inhibit_on_failure`` of a real server, inherited from its virtual server."""
    return vs.inhibit_on_failure if rs.inhibit_on_failure is None else rs.inhibit_on_failure


def initial_health(vs: VirtualServer, rs: RealServer) -> RsHealth:
    """A server's health before any checker has spoken.

    A server without checkers is alive for good.  With checkers it starts
    alive, unless one of its checkers is in alpha mode (the checker's own
    ``alpha``, else the real server's, else the virtual server's): then it
    starts failed (check_data.c ``check_check_config``/``validate_check_config``).
    """
    rs_alpha = vs.alpha if rs.alpha is None else rs.alpha
    for checker in rs.checkers:
        c_alpha = checker.common.alpha
        if (rs_alpha if c_alpha is None else c_alpha) is True:
            return RsHealth(alive=False)
    return RsHealth(alive=True)


def effective_weight(rs: RealServer, health: RsHealth) -> int:
    return rs.weight if health.weight is None else health.weight


def live_share(rs: RealServer, health: RsHealth) -> int:
    """What one server adds to the live weight quorum is judged on.

    ipwrapper.c ``weigh_live_realservers`` sums this over the pool, and
    ``update_svr_checker_state`` adds or takes away one server's share as
    it changes: the reconciler keeps the sum the same way.
    """
    return real_weight(effective_weight(rs, health)) if health.alive else 0


def live_weight(vs: VirtualServer, health: Mapping[str, RsHealth]) -> int:
    """Sum of the weights of alive servers (ipwrapper.c ``weigh_live_realservers``)."""
    return sum(live_share(rs, rs_health(vs, rs, health)) for rs in vs.real_servers)


def rs_health(vs: VirtualServer, rs: RealServer, health: Mapping[str, RsHealth]) -> RsHealth:
    """A real server's health as the pool sees it (initial, or what its checkers said)."""
    return seen_health(vs, rs, health.get(rs_key(vs, rs)))


def seen_health(vs: VirtualServer, rs: RealServer, said: RsHealth | None) -> RsHealth:
    """:func:`rs_health` for what the checkers said of ``rs`` (None: nothing yet)."""
    if said is None:
        return initial_health(vs, rs)
    if not rs.checkers:
        # No checker can fail it: a server without checkers stays alive.
        return RsHealth(alive=True, weight=said.weight)
    return said


def member_weight(
    vs: VirtualServer, rs: RealServer, health: RsHealth, sorry_active: bool
) -> int | None:
    """The kernel weight of a real server in its pool, or None when it is out.

    An alive server is in at its effective weight, unless the sorry server
    holds the pool; a failed one (or one the sorry server displaced) stays at
    0 when it inhibits (ipvswrapper.c ``ipvs_cmd`` turns DEL_DEST into
    EDIT_DEST weight 0).
    """
    if health.alive and not sorry_active:
        return real_weight(effective_weight(rs, health))
    return 0 if inhibit(vs, rs) else None


def effective_quorum(vs: VirtualServer) -> int:
    """``quorum``, reduced to the total configured weight when it exceeds it.

    keepalived (check_data.c ``validate_check_config``) warns and lowers it,
    "otherwise we will never be able to come up"; the model keeps what the
    file says, so the reduction happens here.
    """
    return min(vs.quorum, sum(rs.weight for rs in vs.real_servers))


_UINT = 2**32


def effective_hysteresis(vs: VirtualServer) -> int:
    """``hysteresis``, lowered below the effective quorum as keepalived does.

    check_data.c ``validate_check_config``: a hysteresis not below quorum is
    set to ``quorum - 1``, which for a quorum reduced to 0 (every real server
    at weight 0) is the unsigned ``4294967295``.  Without it a pool of
    weight 0 gained and lost quorum at every evaluation.
    """
    quorum = effective_quorum(vs)
    return vs.hysteresis if vs.hysteresis < quorum else (quorum - 1) % _UINT


def next_quorum(vs: VirtualServer, total: int, quorum_up: bool | None) -> bool:
    """Quorum after a change (ipwrapper.c ``update_quorum_state``).

    At start (``quorum_up`` None) quorum is up when the live weight reaches
    ``quorum + hysteresis`` (``set_quorum_states`` sees no server alive yet,
    so the first ``update_quorum_state`` applies the gaining threshold).
    Once up it is lost when the live weight falls below
    ``quorum - hysteresis``, or when it reaches zero even if quorum is 0.
    """
    return quorum_after(effective_quorum(vs), effective_hysteresis(vs), total, quorum_up)


def quorum_after(quorum: int, hysteresis: int, total: int, quorum_up: bool | None) -> bool:
    """:func:`next_quorum` for an effective quorum and hysteresis already worked out.

    Both take the whole pool to compute; a caller that judges one server's
    change at a time (ipwrapper.c ``update_quorum_state``) keeps them.
    """
    # keepalived's quorum and hysteresis are unsigned ints: the thresholds wrap
    # (quorum 0 with hysteresis UINT_MAX never gains, and would be lost below 1).
    if quorum_up is None or not quorum_up:
        return total >= (quorum + hysteresis) % _UINT
    threshold = (quorum - hysteresis) % _UINT
    return not (total == 0 or total < threshold)


def decide(
    vs: VirtualServer,
    health: Mapping[str, RsHealth],
    quorum_up: bool | None = None,
) -> PoolDecision:
    """The pool of ``vs`` for this health, and any quorum change since ``quorum_up``.

    ``health`` is keyed by :func:`rs_key`; a missing key means no checker
    has reported yet (:func:`initial_health`).  ``quorum_up`` is the
    previous decision's, or None at start.

    Pool rules, from ipwrapper.c and ipvswrapper.c ``ipvs_cmd``:
    - an alive server is in the pool at its effective weight;
    - a failed server is removed, unless it inhibits: then it stays at 0
      (``ipvs_cmd`` turns DEL_DEST into EDIT_DEST weight 0 and
      ``init_service_rs`` adds inhibited servers at weight 0 at start);
    - while quorum is lost and there is a sorry server, the live servers
      leave the pool (inhibited ones stay at weight 0) and the sorry server
      takes it (``update_quorum_state``/``perform_quorum_state``);
    - an idle sorry server is absent, or present at weight 0 with
      ``sorry_server_inhibit`` (``init_service_vs``).
    """
    total = live_weight(vs, health)
    up = next_quorum(vs, total, quorum_up)

    event: QuorumEvent | None = None
    scripts: tuple[Script, ...] = ()
    if quorum_up is None:
        # At start keepalived only notifies a quorum that is up, or a down one
        # that brings in the sorry server (update_quorum_state with init set).
        if up:
            event = QuorumEvent.UP
        elif vs.sorry_server is not None:
            event = QuorumEvent.DOWN
    elif up != quorum_up:
        event = QuorumEvent.UP if up else QuorumEvent.DOWN
    if event is QuorumEvent.UP and vs.quorum_up is not None:
        scripts = (vs.quorum_up,)
    elif event is QuorumEvent.DOWN and vs.quorum_down is not None:
        scripts = (vs.quorum_down,)

    sorry_active = vs.sorry_server is not None and not up
    members: list[Member] = []
    for rs in vs.real_servers:
        weight = member_weight(vs, rs, rs_health(vs, rs, health), sorry_active)
        if weight is not None:
            members.append(Member(rs, weight))
    if vs.sorry_server is not None:
        s = vs.sorry_server
        if sorry_active:
            members = [m for m in members if not _same_dest(m.rs, s)]
            members.append(Member(s, real_weight(s.weight), sorry=True))
        elif vs.sorry_server_inhibit and not any(_same_dest(m.rs, s) for m in members):
            members.append(Member(s, 0, sorry=True))
    return PoolDecision(
        quorum_up=up, members=tuple(members), event=event, scripts=scripts, live_weight=total
    )


def _same_dest(a: RealServer, b: RealServer) -> bool:
    # keepalived's s_svr_duplicates_rs: a sorry server that is also a real server
    return a.address == b.address and a.port == b.port


def stop_scripts(
    vs: VirtualServer, health: Mapping[str, RsHealth], quorum_up: bool
) -> tuple[Script, ...]:
    """Scripts to run on shutdown: only in ``omega`` mode (ipwrapper.c ``do_vs_notifies``).

    Every alive server gets its ``notify_down`` and, if quorum was up, the
    virtual server its ``quorum_down`` (``clear_service_rs``, ``update_vs_notifies``).
    """
    if not vs.omega:
        return ()
    out: list[Script] = []
    for rs in vs.real_servers:
        if rs_health(vs, rs, health).alive and rs.notify_down is not None:
            out.append(rs.notify_down)
    if quorum_up and vs.quorum_down is not None:
        out.append(vs.quorum_down)
    return tuple(out)


def checkers_active(
    vs: VirtualServer,
    local_addresses: Collection[IPAddress],
    group: VirtualServerGroup | None = None,
) -> bool:
    """Whether the checkers of ``vs`` run (check_api.c ``update_checker_activity``).

    With ``ha_suspend`` they run only while one of the virtual server's
    addresses is configured on this host, i.e. while the VRRP instance that
    owns the VIP is MASTER.  Without an address (fwmark) nothing can match,
    so the checkers stay suspended, as in keepalived.
    """
    if not vs.ha_suspend:
        return True
    if vs.address is not None:
        return vs.address in local_addresses
    if group is not None:
        for e in group.entries:
            if e.address is None:
                continue
            last = e.last if e.last is not None else e.address
            for a in local_addresses:
                if a.version == e.address.version and e.address <= a <= last:  # type: ignore[operator]
                    return True
    return False


def misc_dynamic_health(status: int) -> RsHealth:
    """Turn a MISC_CHECK ``misc_dynamic`` exit status into health (check_misc.c).

    0 is up at the configured weight, 1 is down, 2..255 is up at weight
    ``status - 2``; anything else is down.
    """
    if status == 0:
        return RsHealth(alive=True, weight=None)
    if 2 <= status <= 255:
        return RsHealth(alive=True, weight=status - 2)
    return RsHealth(alive=False)


__all__ = [
    "Member",
    "PoolDecision",
    "QuorumEvent",
    "RsHealth",
    "checkers_active",
    "decide",
    "effective_quorum",
    "initial_health",
    "live_share",
    "live_weight",
    "member_weight",
    "misc_dynamic_health",
    "next_quorum",
    "quorum_after",
    "real_weight",
    "rs_health",
    "rs_key",
    "seen_health",
    "shared_after",
    "shared_dests",
    "shared_group",
    "stop_scripts",
]
