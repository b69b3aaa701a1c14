"""Real servers that keepalived's port correction maps onto one kernel destination.

keepalived removes duplicate real servers before it corrects ports
(check_data.c ``validate_check_config``): ``real_server 10.0.1.1 8001`` and
``8002`` under a DR service on port 80 stay two servers, each with its own
checkers and state, though both become the destination 10.0.1.1:80.  Each one's
command reaches the kernel on its own (ipwrapper.c ``perform_svr_state``), and
``ipvs_talk`` (ipvswrapper.c) ignores the EEXIST of an add and the ENOENT of
a delete, so the last accepted command wins: one server going down removes the
destination that the other still needs, and an add on an existing one changes
nothing.  These tests drive the reconciler through that, on the parsed file.
"""

from __future__ import annotations

from ipvs.policy import rs_key, shared_after
from ipvs.service import Reconciler
from pykeep.config import load_text
from pykeep.config.model import Config
from tests.test_ipvs_service import FakeKernel


def parsed(head: str, kind: str, extra: str = "") -> Config:
    text = f"""
virtual_server {head} {{
    lb_kind {kind}
    protocol TCP
{extra}
    real_server 10.0.1.1 8001 {{
        weight 3
        TCP_CHECK {{
            connect_timeout 3
        }}
    }}
    real_server 10.0.1.1 8002 {{
        weight 1
        TCP_CHECK {{
            connect_timeout 3
        }}
    }}
}}
"""
    result = load_text(text)
    assert result.config is not None
    return result.config


def weights(k: FakeKernel) -> list[int | None]:
    """The weight of the one destination of the one service, None when absent."""
    (entry,) = k.table.values()
    assert len(entry.dests) <= 1
    return [d.weight for d in entry.dests.values()] or [None]


def test_corrected_ports_keep_two_servers_with_their_own_health() -> None:
    cfg = parsed("10.0.0.1 80", "DR")
    vs = cfg.virtual_servers[0]
    a, b = vs.real_servers
    assert (a.port, b.port) == (80, 80)  # "ports don't match - resetting"
    # each keeps the port it was written with for its checker
    assert [r.checkers[0].common.connect_port for r in (a, b)] == [8001, 8002]
    assert rs_key(vs, a) != rs_key(vs, b)


def test_last_command_wins_on_a_shared_destination() -> None:
    for head, kind in (("10.0.0.1 80", "DR"), ("fwmark 7", "TUN")):
        cfg = parsed(head, kind)
        vs = cfg.virtual_servers[0]
        a, b = (rs_key(vs, r) for r in vs.real_servers)
        k = FakeKernel()
        r = Reconciler(cfg, k)
        r.start()
        assert weights(k) == [3]  # the first server adds it; the second's add: EEXIST
        r.transition(b, False)
        assert weights(k) == [None]  # b's delete removes it though a is up
        r.transition(b, True)
        assert weights(k) == [1]  # b adds it again, with its own weight
        r.transition(a, False)
        assert weights(k) == [None]
        r.transition(a, True)
        assert weights(k) == [3]
        r.transition(b, False)
        r.transition(b, True)
        assert weights(k) == [1]
        r.transition(a, True, 5)  # a's dynamic weight: EDIT_DEST
        assert weights(k) == [5]
        r.transition(a, True, 5)  # no change, no command
        r.transition(b, True)
        assert weights(k) == [5]
        # quorum counts both servers, as weigh_live_realservers does
        assert r._decisions()[vs.key].live_weight == 5 + 1


def test_inhibiting_server_edits_instead_of_adding() -> None:
    cfg = parsed("10.0.0.1 80", "DR", "    inhibit_on_failure")
    vs = cfg.virtual_servers[0]
    a, b = (rs_key(vs, r) for r in vs.real_servers)
    k = FakeKernel()
    r = Reconciler(cfg, k)
    r.start()
    assert weights(k) == [3]
    r.transition(a, False)
    assert weights(k) == [0]  # DEL_DEST with inhibit: EDIT_DEST weight 0
    r.transition(b, False)
    assert weights(k) == [0]
    r.transition(b, True)
    assert weights(k) == [1]  # inhibit and set: ADD_DEST becomes EDIT_DEST


def test_shared_after_policy() -> None:
    assert shared_after(None, True, 2, False) == 2
    assert shared_after(3, True, 2, False) == 3  # EEXIST
    assert shared_after(3, True, 2, True) == 2  # EDIT
    assert shared_after(3, False, 2, False) is None
    assert shared_after(3, False, 2, True) == 0
    assert shared_after(3, None, 7, False) == 7


def test_quorum_regained_re_adds_the_live_server_on_a_shared_destination() -> None:
    """Seen in the VM (case 165): a fwmark DR service with inhibit_on_failure, a sorry
    server and quorum 1; one server (8004) always failing, the other (8002) flapping.
    When quorum returns, perform_quorum_state adds each live server again: for an
    inhibiting one that is an EDIT to its weight, so the shared destination takes the
    live server's weight again (keepalived "Enabling service … Adding alive servers to
    the pool").  pykeep left it at the failing server's 0."""
    cfg = parsed(
        "fwmark 7",
        "DR",
        "    inhibit_on_failure\n    sorry_server 10.0.1.30 80\n    quorum 1\n",
    )
    vs = cfg.virtual_servers[0]
    a, b = (rs_key(vs, r) for r in vs.real_servers)
    k = FakeKernel()
    r = Reconciler(cfg, k)
    r.start()

    def shared() -> int | None:
        (entry,) = k.table.values()
        return next((d.weight for dk, d in entry.dests.items() if "10.0.1.1" in str(dk)), None)

    assert shared() == 3
    r.transition(a, False)  # inhibit: EDIT 0
    assert shared() == 0
    r.transition(b, False)  # EDIT 0; quorum lost, the sorry server serves
    assert shared() == 0 and not r.quorum[vs.key]
    r.transition(b, True)  # quorum back: b's add is an EDIT to its weight
    assert r.quorum[vs.key] and shared() == 1
    r.transition(b, False)
    assert shared() == 0 and not r.quorum[vs.key]
    r.transition(a, True)  # a alone (3) brings quorum back: its add is an EDIT to 3
    assert r.quorum[vs.key] and shared() == 3
