"""FILE_CHECK (keepalived check_file.c): a tracked file's number steers the server.

The checker watches the file of the ``track_file`` it names (never the name
itself).  The file holds an integer.  With weight 0, nonzero means down.
Otherwise value × weight (negated with ``reverse``) is the weight offset, and
an offset of -254 or below takes the server down (check_file.c
``set_track_file_checkers_down`` / ``set_track_file_weights``).  A missing or
unreadable file reads as the track_file's ``init_file`` value, else 0, as
vrrp_track_file does (track_file.c).
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from healthcheck.api import Result, Target


@dataclass(frozen=True)
class FileChecker:
    path: str
    weight: int = 0
    reverse: bool = False
    missing: int | None = None

    async def check(self, target: Target, timeout: float) -> Result:
        try:
            text = await trio.Path(self.path).read_text()
        except OSError:
            value = self.missing or 0
        else:
            try:
                value = int(text.split()[0]) if text.split() else 0
            except ValueError:
                value = 0
        if not self.weight:
            return Result.failed(f"file value {value}") if value else Result.passed("file 0")
        delta = value * self.weight * (-1 if self.reverse else 1)
        if delta <= -254:
            return Result.failed(f"file weight {delta}")
        return Result.passed(f"file weight {delta}", weight=delta if delta else None)
