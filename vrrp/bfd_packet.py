"""The BFD control packet (RFC 5880 section 4.1): encode, decode, and the receive checks.

Pure: bytes in, a ``ControlPacket`` or a ``Rejected`` reason out.  The
checks are RFC 5880 section 6.8.6's, in the order keepalived applies them
(keepalived/bfd/bfd.c ``bfd_check_packet``), plus its two extra sanity
checks (poll and final together, an unknown diagnostic).  Authentication is
not supported, as in keepalived: a packet with the A bit is rejected by the
session (bfd_scheduler.c ``bfd_handle_packet``), not here, because the
lookup comes first there.

Wire layout, 24 bytes with no authentication section::

    vers(3) diag(5) | sta(2) P F C A D M | detect mult | length
    my discriminator | your discriminator
    desired min tx | required min rx | required min echo rx   (microseconds)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

VERSION = 1
HEADER_LEN = 24

ADMIN_DOWN = 0
DOWN = 1
INIT = 2
UP = 3
STATE_NAMES = ("AdminDown", "Down", "Init", "Up")

# RFC 5880 section 4.1 diagnostics; keepalived knows 0..8 (bfd.h BFD_VALID_DIAG).
DIAG_NONE = 0
DIAG_EXPIRED = 1
DIAG_ECHO_FAILED = 2
DIAG_NEIGHBOR_DOWN = 3
DIAG_FWD_RESET = 4
DIAG_PATH_DOWN = 5
DIAG_CONCAT_DOWN = 6
DIAG_ADMIN_DOWN = 7
DIAG_REV_CONCAT_DOWN = 8
DIAG_MAX = 8
DIAG_NAMES = (
    "No Diagnostic",
    "Control Detection Time Expired",
    "Echo Function Failed",
    "Neighbor Signaled Session Down",
    "Forwarding Plane Reset",
    "Path Down",
    "Concatenated Path Down",
    "Administratively Down",
    "Reverse Concatenated Path Down",
)

_FLAG_POLL = 0x20
_FLAG_FINAL = 0x10
_FLAG_CPI = 0x08
_FLAG_AUTH = 0x04
_FLAG_DEMAND = 0x02
_FLAG_MULTIPOINT = 0x01

_HEADER = struct.Struct("!BBBBIIIII")


@dataclass(frozen=True, slots=True)
class ControlPacket:
    """One BFD control packet; intervals are in microseconds, as on the wire."""

    state: int
    my_discr: int
    your_discr: int
    min_tx_us: int
    min_rx_us: int
    detect_mult: int
    diag: int = DIAG_NONE
    poll: bool = False
    final: bool = False
    demand: bool = False
    auth: bool = False
    cpi: bool = False
    multipoint: bool = False
    min_echo_rx_us: int = 0
    version: int = VERSION

    def encode(self) -> bytes:
        flags = (
            (self.state & 3) << 6
            | (_FLAG_POLL if self.poll else 0)
            | (_FLAG_FINAL if self.final else 0)
            | (_FLAG_CPI if self.cpi else 0)
            | (_FLAG_AUTH if self.auth else 0)
            | (_FLAG_DEMAND if self.demand else 0)
            | (_FLAG_MULTIPOINT if self.multipoint else 0)
        )
        return _HEADER.pack(
            (self.version & 7) << 5 | (self.diag & 0x1F),
            flags,
            self.detect_mult & 0xFF,
            HEADER_LEN,
            self.my_discr & 0xFFFFFFFF,
            self.your_discr & 0xFFFFFFFF,
            self.min_tx_us & 0xFFFFFFFF,
            self.min_rx_us & 0xFFFFFFFF,
            self.min_echo_rx_us & 0xFFFFFFFF,
        )


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a datagram is not a usable control packet; ``reason`` names the counter."""

    reason: str
    got: int = 0


def decode(data: bytes) -> ControlPacket | Rejected:
    """Parse and check one datagram (keepalived bfd.c ``bfd_check_packet``)."""
    if len(data) < HEADER_LEN:
        return Rejected("short", len(data))
    vd, flags, mult, length, my, your, tx, rx, echo = _HEADER.unpack_from(data)
    # keepalived wants the length field to equal the datagram size exactly
    # (no authentication section is ever accepted, so 24 is the only size).
    if length != len(data):
        return Rejected("length", length)
    version = vd >> 5
    if version != VERSION:
        return Rejected("version", version)
    if mult == 0:
        return Rejected("detect_mult", 0)
    if flags & _FLAG_MULTIPOINT:
        return Rejected("multipoint")
    if my == 0:
        return Rejected("my_discr", 0)
    state = flags >> 6
    if your == 0 and state not in (DOWN, ADMIN_DOWN):
        return Rejected("your_discr", state)
    if flags & _FLAG_POLL and flags & _FLAG_FINAL:
        return Rejected("poll_final")
    diag = vd & 0x1F
    if diag > DIAG_MAX:
        return Rejected("diag", diag)
    return ControlPacket(
        state=state,
        my_discr=my,
        your_discr=your,
        min_tx_us=tx,
        min_rx_us=rx,
        detect_mult=mult,
        diag=diag,
        poll=bool(flags & _FLAG_POLL),
        final=bool(flags & _FLAG_FINAL),
        demand=bool(flags & _FLAG_DEMAND),
        auth=bool(flags & _FLAG_AUTH),
        cpi=bool(flags & _FLAG_CPI),
        multipoint=False,
        min_echo_rx_us=echo,
        version=version,
    )
