"""FILE_CHECK (keepalived check_file.c): a tracked file's number steers the server.

The file holds an integer.  Without ``weight``: nonzero means down.  With
a weight, value × weight (negated with ``reverse``) is the weight offset,
and an offset of -254 or below takes the server down, as keepalived's
track_file does.  (Partial: the offset is reported as the new weight.)"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from healthcheck.api import Result, Target


@dataclass(frozen=True)
class FileChecker:
    path: str
    weight: int = 0
    reverse: bool = False

    async def check(self, target: Target, timeout: float) -> Result:
        try:
            text = await trio.Path(self.path).read_text()
            value = int(text.split()[0]) if text.split() else 0
        except (OSError, ValueError):
            value = 0
        if not self.weight:
            return Result.failed(f"file value {value}") if value else Result.passed("file 0")
        delta = value * self.weight * (-1 if self.reverse else 1)
        if delta <= -254:
            return Result.failed(f"file weight {delta}")
        return Result.passed(f"file weight {delta}", weight=delta if delta else None)
