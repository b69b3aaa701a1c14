"""The pure BFD core: codec checks and the session machine, on a plain float clock."""

from __future__ import annotations

import random

from vrrp.bfd_packet import (
    ADMIN_DOWN,
    DIAG_EXPIRED,
    DOWN,
    INIT,
    UP,
    ControlPacket,
    Rejected,
    decode,
)
from vrrp.bfd_session import Action, Session, Settings, StateChanged, Transmit


def _pkt(**kw: object) -> ControlPacket:
    base: dict[str, object] = dict(
        state=DOWN, my_discr=7, your_discr=0, min_tx_us=10_000, min_rx_us=10_000, detect_mult=3
    )
    base.update(kw)
    return ControlPacket(**base)  # type: ignore[arg-type]


def test_codec_round_trip_and_wire_bytes() -> None:
    p = _pkt(state=UP, your_discr=9, poll=True, diag=3)
    raw = p.encode()
    assert len(raw) == 24
    assert raw[0] == (1 << 5) | 3  # version 1, diag 3
    assert raw[1] == (UP << 6) | 0x20  # state Up, P bit
    assert raw[3] == 24
    assert decode(raw) == p


def test_codec_rejects_what_keepalived_rejects() -> None:
    good = bytearray(_pkt().encode())
    assert decode(bytes(good[:20])) == Rejected("short", 20)
    bad = bytearray(good)
    bad[3] = 30
    assert decode(bytes(bad)) == Rejected("length", 30)
    bad = bytearray(good)
    bad[0] = 2 << 5
    assert decode(bytes(bad)) == Rejected("version", 2)
    assert decode(_pkt(detect_mult=0).encode()) == Rejected("detect_mult", 0)
    assert decode(_pkt(my_discr=0).encode()) == Rejected("my_discr", 0)
    assert decode(_pkt(state=UP, your_discr=0).encode()) == Rejected("your_discr", UP)
    assert decode(_pkt(poll=True, final=True).encode()) == Rejected("poll_final")
    assert decode(_pkt(diag=9).encode()) == Rejected("diag", 9)
    assert decode(_pkt(multipoint=True).encode()) == Rejected("multipoint")


class _Link:
    """Two sessions joined by a lossless zero-delay wire, driven by one float clock."""

    def __init__(self, a: Settings, b: Settings) -> None:
        self.a = Session(a, random.Random(1))
        self.b = Session(b, random.Random(2))
        self.now = 0.0
        self.events: list[tuple[float, str, StateChanged]] = []
        self.cut = False

    def _run(self, src: Session, dst: Session, actions: list[Action]) -> None:
        pending = [(src, dst, a) for a in actions]
        while pending:
            s, d, act = pending.pop(0)
            if isinstance(act, StateChanged):
                self.events.append((self.now, act.name, act))
            elif not self.cut:
                res = d.receive(act.packet, 255, self.now)
                assert not isinstance(res, Rejected)
                pending += [(d, s, r) for r in res]

    def start(self) -> None:
        self._run(self.a, self.b, self.a.start(self.now))
        self._run(self.b, self.a, self.b.start(self.now))

    def until(self, t: float) -> None:
        while True:
            nxt = min(self.a.deadline(), self.b.deadline())
            if nxt > t:
                self.now = t
                return
            self.now = nxt
            for s, d in ((self.a, self.b), (self.b, self.a)):
                if s.deadline() <= self.now:
                    self._run(s, d, s.expire(self.now))


def test_two_sessions_come_up_and_negotiate_fast_rate() -> None:
    link = _Link(Settings("a"), Settings("b", min_rx_us=20_000, min_tx_us=20_000))
    link.start()
    link.until(3.0)
    assert link.a.local_state == UP and link.b.local_state == UP
    ups = [e for e in link.events if e[2].up]
    assert {e[1] for e in ups} == {"a", "b"}
    # After the poll sequence both transmit at max(own min_tx, peer min_rx).
    assert link.a.local_tx_us == 20_000 and link.b.local_tx_us == 20_000
    assert not link.a.poll and not link.b.poll
    # Detection time = remote multiplier x agreed interval.
    assert link.a.detect_us == 5 * 20_000


def test_silence_brings_the_session_down_within_detection_time() -> None:
    link = _Link(Settings("a", multiplier=3), Settings("b", multiplier=3))
    link.start()
    link.until(3.0)
    assert link.a.local_state == UP
    link.cut = True
    cut_at = link.now
    link.until(cut_at + 1.0)
    downs = [e for e in link.events if e[1] == "a" and not e[2].up and e[0] > cut_at]
    assert downs and downs[0][2].diag == DIAG_EXPIRED
    # b's multiplier 3 x 10 ms = 30 ms after a's last packet, which was before the cut.
    assert downs[0][0] - cut_at <= 0.030 + 1e-9
    assert link.a.remote_discr == 0


def test_peer_admin_down_is_not_reported_as_failure() -> None:
    s = Session(Settings("x"), random.Random(3))
    s.start(0.0)
    s.receive(_pkt(state=DOWN), 255, 0.1)
    assert s.local_state == INIT
    res = s.receive(_pkt(state=UP, your_discr=s.local_discr), 255, 0.2)
    assert isinstance(res, list) and any(isinstance(a, StateChanged) and a.up for a in res)
    res = s.receive(_pkt(state=ADMIN_DOWN, your_discr=s.local_discr), 255, 0.3)
    assert s.local_state == DOWN
    assert isinstance(res, list) and not any(isinstance(a, StateChanged) for a in res)


def test_peer_down_is_reported_and_discriminator_changes() -> None:
    s = Session(Settings("x"), random.Random(4))
    s.start(0.0)
    s.receive(_pkt(state=INIT, your_discr=s.local_discr), 255, 0.1)
    assert s.local_state == UP
    old = s.local_discr
    res = s.receive(_pkt(state=DOWN), 255, 0.2)
    assert isinstance(res, list)
    changes = [a for a in res if isinstance(a, StateChanged)]
    assert changes and changes[0].state == DOWN
    assert s.local_discr != old
    # keepalived's reset timer clears the remote state one detection time later.
    s.expire(s.reset_at)
    assert s.remote_discr == 0 and s.local_state == DOWN


def test_ttl_check_and_auth_and_poll_answered_with_final() -> None:
    s = Session(Settings("x"), random.Random(5))
    s.start(0.0)
    assert s.receive(_pkt(), 254, 0.1) == Rejected("ttl", 254)
    assert s.receive(_pkt(auth=True), 255, 0.1) == Rejected("auth")
    wide = Session(Settings("y", max_hops=1), random.Random(6))
    assert isinstance(wide.receive(_pkt(), 254, 0.1), list)
    res = s.receive(_pkt(poll=True), 255, 0.2)
    assert isinstance(res, list)
    sent = [a.packet for a in res if isinstance(a, Transmit)]
    assert sent and sent[0].final and not sent[0].poll


def test_passive_waits_and_idle_rate_is_announced_outside_up() -> None:
    s = Session(Settings("p", passive=True), random.Random(7))
    acts = s.start(0.0)
    assert not any(isinstance(a, Transmit) for a in acts)
    assert s.deadline() == float("inf")
    res = s.receive(_pkt(), 255, 1.0)
    assert s.local_state == INIT
    assert isinstance(res, list) and not any(isinstance(a, Transmit) for a in res)
    # Init is held for one detection time (3 x 10 ms), then falls back
    # silently: it never was Up (bfd_scheduler.c bfd_state_rise/bfd_expire_thread).
    assert abs(s.deadline() - 1.030) < 1e-9
    assert s.expire(s.deadline()) == []
    assert s.local_state == DOWN and s.local_diag == DIAG_EXPIRED
    assert s.send_at == float("inf")
    active = Session(Settings("a"), random.Random(8))
    first = next(a.packet for a in active.start(0.0) if isinstance(a, Transmit))
    assert first.state == DOWN and first.min_tx_us == 1_000_000 and first.detect_mult == 5
    assert first.min_rx_us == 10_000
    # The next periodic packet is 75-90% of the idle interval later.
    assert 0.75 <= active.send_at <= 0.9
