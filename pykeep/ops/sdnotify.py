"""systemd's sd_notify protocol, without libsystemd.

``contrib/pykeep.service`` is ``Type=notify``: systemd considers pykeep
started only when it says READY=1, shows STATUS= in ``systemctl status``,
and knows a SIGHUP reload is in progress from RELOADING=1 until the next
READY=1.  The protocol is one datagram of ``KEY=VALUE`` lines to the
socket named by ``$NOTIFY_SOCKET`` (sd_notify(3)); keepalived does the same
from core/main.c when built with systemd support.

Outside systemd ``$NOTIFY_SOCKET`` is unset and every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


def _address(value: str) -> str | bytes | None:
    """The socket address in $NOTIFY_SOCKET: a path, or ``@name`` for the abstract namespace."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """Sends state changes to systemd; silent when not run by systemd.

    Failures to send are swallowed: a missing or full notify socket must
    never take the daemon down, and systemd times the start-up out anyway
    if READY=1 never arrives.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _address(env.get("NOTIFY_SOCKET", ""))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; True when it was delivered."""
        if self.address is None:
            return False
        payload = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(payload, self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up, or a reload, is complete."""
        lines = ["READY=1"]
        if status is not None:
            lines.append(f"STATUS={status}")
        return self.send(*lines)

    def reloading(self, status: str | None = None) -> bool:
        """A SIGHUP reload has begun; READY=1 ends it.

        MONOTONIC_USEC lets systemd ≥ 253 match the reload to this message
        (sd_notify(3), needed for Type=notify-reload, harmless otherwise).
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        lines = ["RELOADING=1", f"MONOTONIC_USEC={usec}"]
        if status is not None:
            lines.append(f"STATUS={status}")
        return self.send(*lines)

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun (VIPs are being released, IPVS torn down)."""
        lines = ["STOPPING=1"]
        if status is not None:
            lines.append(f"STATUS={status}")
        return self.send(*lines)

    def status(self, text: str) -> bool:
        """A one-line summary for ``systemctl status``, e.g. "VI_1 MASTER, 2/2 RS up"."""
        return self.send(f"STATUS={text}")
