"""MISC_CHECK (keepalived check_misc.c): run a script, its exit status is the verdict.

Exit 0 passes.  With ``misc_dynamic``, 1 fails and 2–255 pass with the real
server's weight set to status − 2 (check_misc.c ``misc_check_child_thread``).
A script that outlives ``misc_timeout`` fails and its process group is killed
(:func:`pykeep.scripts.run_script`).
"""

from __future__ import annotations

from dataclasses import dataclass

from healthcheck.api import Result, Target
from pykeep.config.model import Script
from pykeep.scripts import run_script


@dataclass(frozen=True)
class MiscChecker:
    script: Script
    dynamic: bool = False
    misc_timeout: float | None = None  # None: the scheduler's timeout (delay_loop)
    # global_defs script_user/script_group: who a script without ``user`` runs as.
    default_user: str | None = None
    default_group: str | None = None

    async def check(self, target: Target, timeout: float) -> Result:
        res = await run_script(
            self.script,
            timeout=self.misc_timeout or timeout,
            default_user=self.default_user,
            default_group=self.default_group,
        )
        if res.timed_out:
            return Result.failed("script timeout")
        if res.exit_code is None:
            return Result.failed(res.reason or f"killed by signal {res.signal}")
        code = res.exit_code
        if code == 0:
            return Result.passed("exit 0")
        if self.dynamic and code >= 2:
            return Result.passed(f"exit {code}", weight=code - 2)
        return Result.failed(f"exit {code}")
