"""One single-hop BFD session (RFC 5880/5881) as keepalived 2.2.7 runs it: the pure core.

Owns: the session state (Down/Init/Up/AdminDown), the discriminators, the
negotiated intervals, the poll/final sequence and three timers (transmit,
detection expiry, and keepalived's reset-after-down).  Never touches sockets
or clocks: the shell passes ``now`` (seconds, any monotonic origin) into
``start``, ``receive`` and ``expire`` and gets ``Action`` values back;
``deadline()`` says when ``expire`` is next due.

Mirrors keepalived/bfd/bfd_scheduler.c (``bfd_handle_packet``, the
``bfd_state_*`` functions, the sender/expire/reset threads) and bfd.c
(``bfd_update_local_tx_intv`` and friends, ``bfd_build_packet``).  Where
keepalived departs from the letter of RFC 5880 the keepalived behaviour is
kept and marked below.

Intervals are microseconds, as on the wire and in keepalived's bfd_t.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from vrrp.bfd_packet import (
    ADMIN_DOWN,
    DIAG_ADMIN_DOWN,
    DIAG_EXPIRED,
    DIAG_NEIGHBOR_DOWN,
    DIAG_NONE,
    DOWN,
    INIT,
    UP,
    ControlPacket,
    Rejected,
)

# keepalived's defaults (bfd.h BFD_*_DEFAULT, applied in bfd_data.c alloc_bfd).
DEFAULT_MIN_RX_US = 10_000
DEFAULT_MIN_TX_US = 10_000
DEFAULT_IDLE_TX_US = 1_000_000
DEFAULT_MULTIPLIER = 5
TTL_V4 = 255  # BFD_CONTROL_TTL
HOPLIMIT_V6 = 64  # BFD_CONTROL_HOPLIMIT: keepalived's IPv6 default, not RFC 5881's 255


@dataclass(frozen=True, slots=True)
class Settings:
    """A bfd_instance's parameters after bfd_parser.c's checks and defaults."""

    name: str
    min_rx_us: int = DEFAULT_MIN_RX_US
    min_tx_us: int = DEFAULT_MIN_TX_US
    idle_tx_us: int = DEFAULT_IDLE_TX_US
    multiplier: int = DEFAULT_MULTIPLIER
    passive: bool = False
    ttl: int = TTL_V4
    max_hops: int = 0


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send this packet to the neighbour now."""

    packet: ControlPacket


@dataclass(frozen=True, slots=True)
class StateChanged:
    """Tell trackers the session's state (keepalived bfd_event.c ``bfd_event_send``)."""

    name: str
    state: int
    diag: int
    remote_diag: int = DIAG_NONE

    @property
    def up(self) -> bool:
        return self.state == UP


Action = Transmit | StateChanged

_NEVER = float("inf")


class Session:
    """The state variables of RFC 5880 section 6.8.1, plus keepalived's three timers."""

    def __init__(self, settings: Settings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng or random.Random()
        self.local_state = DOWN
        self.remote_state = DOWN
        self.local_discr = self._new_discr()
        self.remote_discr = 0
        self.local_diag = DIAG_NONE
        self.remote_diag = DIAG_NONE
        self.remote_min_tx_us = 0
        self.remote_min_rx_us = 0
        self.remote_demand = False
        self.remote_mult = 0
        self.poll = False
        self.final = False
        self.local_tx_us = settings.idle_tx_us  # bfd.c bfd_init_state
        self.remote_tx_us = 0
        self.detect_us = 0
        self.send_at = _NEVER
        self.expire_at = _NEVER
        self.reset_at = _NEVER
        self.last_seen = _NEVER

    # ---- inputs -------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Begin in Down; an active session sends at once (bfd_register_workers)."""
        out: list[Action] = [StateChanged(self.settings.name, self.local_state, self.local_diag)]
        if not self.settings.passive:
            self._schedule_send(now)
            out.append(self._transmit())
        return out

    def admin_down(self) -> list[Action]:
        """Stop, as keepalived does when its socket cannot open (bfd_state_admindown)."""
        self.local_state = ADMIN_DOWN
        self.local_diag = DIAG_ADMIN_DOWN
        self.send_at = _NEVER
        self._fall(False)
        return []

    def receive(self, pkt: ControlPacket, ttl: int, now: float) -> list[Action] | Rejected:
        """One decoded packet already matched to this session (bfd_handle_packet)."""
        s = self.settings
        # RFC 5881 GTSM, widened by max_hops (bfd.c bfd_check_packet_ttl);
        # a ttl of 0 means the kernel gave none, which keepalived lets through.
        if s.max_hops != 255 and ttl and s.max_hops + ttl < s.ttl:
            return Rejected("ttl", ttl)
        if pkt.auth:
            return Rejected("auth")
        out: list[Action] = []
        if self.local_state == ADMIN_DOWN:
            self._enter_init(now)
        old_tx = self.local_tx_us
        self.remote_discr = pkt.my_discr
        self.remote_state = pkt.state
        self.remote_diag = pkt.diag
        self.remote_min_rx_us = pkt.min_rx_us
        self.remote_min_tx_us = pkt.min_tx_us
        self.remote_demand = pkt.demand
        self.remote_mult = pkt.detect_mult
        if pkt.final:
            self.poll = False
        # Intervals are renegotiated only outside Up or on a poll/final
        # exchange (RFC 5880 6.8.3): a peer cannot slow us down silently.
        if self.local_state != UP or pkt.poll or pkt.final:
            if self.remote_state == UP and self.local_state in (INIT, UP):
                self.local_tx_us = max(s.min_tx_us, self.remote_min_rx_us)
            else:
                self._idle_tx()
            self.remote_tx_us = max(s.min_rx_us, self.remote_min_tx_us)
        self.detect_us = self.remote_mult * self.remote_tx_us
        if self.local_tx_us < old_tx and self.send_at != _NEVER:
            self._schedule_send(now)

        if self.remote_state == ADMIN_DOWN and self.local_state != DOWN:
            out += self._enter_down(DIAG_NEIGHBOR_DOWN, now)
        elif self.local_state == DOWN:
            if self.remote_state == DOWN:
                self._enter_init(now)
            elif self.remote_state == INIT:
                out += self._enter_up(now)
        elif self.local_state == INIT:
            if self.remote_state in (INIT, UP):
                out += self._enter_up(now)
        elif self.local_state == UP and self.remote_state == DOWN:
            out += self._enter_down(DIAG_NEIGHBOR_DOWN, now)

        both_up = self.local_state == UP and self.remote_state == UP
        if self.remote_demand and both_up:
            self.send_at = _NEVER
        elif self.send_at == _NEVER:
            self._schedule_send(now)
        if pkt.poll:
            # The answer goes out at once and does not move the periodic timer.
            self.final = True
            out.append(self._transmit())
        self.last_seen = now
        if self.local_state == UP and self.expire_at != _NEVER:
            self.expire_at = now + self.detect_us / 1e6
        return out

    def deadline(self) -> float:
        """When ``expire`` next has work; ``inf`` when nothing is scheduled."""
        return min(self.send_at, self.expire_at, self.reset_at)

    def expire(self, now: float) -> list[Action]:
        """Run whichever timers are due at ``now``."""
        out: list[Action] = []
        if self.expire_at <= now:
            self.expire_at = _NEVER
            # RFC 5880 6.8.1: a silent Detection Time clears bfd.RemoteDiscr.
            self.remote_discr = 0
            out += self._enter_down(DIAG_EXPIRED, now)
        if self.reset_at <= now:
            self.reset_at = _NEVER
            self._reset()
        if self.send_at <= now:
            out.append(self._transmit())
            self._schedule_send(now)
        return out

    # ---- transitions (bfd_scheduler.c bfd_state_*) --------------------------

    def _enter_down(self, diag: int, now: float) -> list[Action]:
        was_up = self.local_state == UP
        if was_up:
            self.local_discr = self._new_discr()
        self.local_state = DOWN
        self.local_diag = diag
        self.reset_at = now + self.detect_us / 1e6
        if self.settings.passive:
            self.send_at = _NEVER
        return self._fall(was_up)

    def _fall(self, notify: bool) -> list[Action]:
        # RFC 5880 6.8.3: out of Up, transmit no faster than once a second.
        self._idle_tx()
        self.expire_at = _NEVER
        # A neighbour that went AdminDown is not a failure (RFC 5882 3.2):
        # keepalived sends no event then (bfd_state_fall).
        if notify and self.remote_state != ADMIN_DOWN:
            return [
                StateChanged(
                    self.settings.name, self.local_state, self.local_diag, self.remote_diag
                )
            ]
        return []

    def _rise(self, now: float) -> None:
        self.local_diag = DIAG_NONE
        self.reset_at = _NEVER
        if self.expire_at == _NEVER:
            self.expire_at = now + self.detect_us / 1e6

    def _enter_up(self, now: float) -> list[Action]:
        self.local_state = UP
        self._rise(now)
        # The fast rate is announced by a poll sequence (RFC 5880 6.8.3).
        if self.settings.idle_tx_us != self.settings.min_tx_us and not self.final:
            self.poll = True
        return [StateChanged(self.settings.name, UP, DIAG_NONE)]

    def _enter_init(self, now: float) -> None:
        self.local_state = INIT
        self._rise(now)
        if self.settings.passive and self.send_at == _NEVER:
            self._schedule_send(now)

    def _reset(self) -> None:
        # bfd.c bfd_reset_state: the remote's intervals survive a reset.
        self.local_state = DOWN
        self.remote_state = DOWN
        self.remote_discr = 0
        self.remote_diag = DIAG_NONE
        self.remote_demand = False
        self.poll = False
        self.final = False
        self._idle_tx()

    # ---- transmit -----------------------------------------------------------

    def _idle_tx(self) -> None:
        self.local_tx_us = max(self.settings.idle_tx_us, self.remote_min_rx_us)

    def _schedule_send(self, now: float) -> None:
        # RFC 5880 6.8.7 jitter: 75–90% of the interval.  keepalived tests
        # the multiplier for nonzero, so it always keeps the 10% floor
        # (bfd_scheduler.c get_jitter).
        tx = self.local_tx_us
        jitter = self._rng.randint(tx // 10, tx // 4)
        self.send_at = now + (tx - jitter) / 1e6

    def _transmit(self) -> Transmit:
        s = self.settings
        if self.poll and self.final:
            self.poll = False
        pkt = ControlPacket(
            state=self.local_state,
            my_discr=self.local_discr,
            your_discr=self.remote_discr,
            min_tx_us=s.min_tx_us if self.local_state == UP else s.idle_tx_us,
            min_rx_us=s.min_rx_us,
            detect_mult=s.multiplier,
            diag=self.local_diag,
            poll=self.poll,
            final=self.final,
        )
        self.final = False
        return Transmit(pkt)

    def _new_discr(self) -> int:
        return self._rng.randint(1, 0xFFFFFFFF)
