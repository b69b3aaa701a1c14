"""Third-party checkers: a keyword such as ``REDIS_CHECK { … }`` served by a plugin.

A plugin is a package exposing an object under the entry-point group
``pykeep.checkers``; the entry point's name does not matter, the object's
``keyword`` does.  The config parser hands an unknown checker block to the
plugin registered for its keyword before calling it unknown: the common
checker keywords (``connect_ip``, ``connect_port``, ``retry``, ``delay_loop``…)
are parsed by pykeep into ``PluginCheck.common``; every other line of the
block goes to ``parse`` as a tuple of words.  ``make`` turns what ``parse``
returned into a checker, and the scheduler drives it with keepalived's
retry semantics like any built-in one.

A complete plugin (``pyproject.toml``:
``[project.entry-points."pykeep.checkers"] redis = "pk_redis:plugin"``)::

    import trio
    from healthcheck.api import Result, Target
    from healthcheck.tcp import open_tcp

    class RedisChecker:
        def __init__(self, password: str | None) -> None:
            self.password = password

        async def check(self, target: Target, timeout: float) -> Result:
            with trio.move_on_after(timeout):
                async with await open_tcp(target) as s:
                    if self.password:
                        await s.send_all(f"AUTH {self.password}\\r\\n".encode())
                        await s.receive_some(512)
                    await s.send_all(b"PING\\r\\n")
                    reply = await s.receive_some(512)
                    return Result(reply.startswith(b"+PONG"), reply[:20].decode(errors="replace"))
            return Result.failed("timeout")

    class Plugin:
        keyword = "REDIS_CHECK"

        def parse(self, lines: list[tuple[str, ...]]) -> object:
            opts = dict((w[0], w[1]) for w in lines if len(w) == 2)
            for word in set(opts) - {"password"}:
                raise ValueError(f"unknown option {word}")
            return opts.get("password")

        def make(self, options: object) -> RedisChecker:
            return RedisChecker(options if isinstance(options, str) else None)

    plugin = Plugin()

``parse`` raises ValueError with a one-line message for bad input; the
parser reports it with the file and line, after the block's keyword.
``examples/redis-check`` is this plugin as an installable package.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from healthcheck.api import Checker

GROUP = "pykeep.checkers"


@runtime_checkable
class CheckerPlugin(Protocol):
    """What an entry point of group ``pykeep.checkers`` must provide."""

    keyword: str

    def parse(self, lines: list[tuple[str, ...]]) -> object: ...

    def make(self, options: object) -> Checker: ...


@functools.cache
def registered_checkers() -> Mapping[str, CheckerPlugin]:
    """keyword → plugin for every installed entry point (loaded once, cached).

    An entry point that fails to load or does not look like a plugin is
    skipped, so one broken package cannot stop the daemon.  Call
    ``registered_checkers.cache_clear()`` after installing a plugin at run time.
    """
    # Imported here: importlib.metadata (and the email package under it) is a
    # tenth of the daemon's start-up, and only a config naming an unknown
    # checker block, or the scheduler building one, needs it.
    from importlib.metadata import entry_points

    found: dict[str, CheckerPlugin] = {}
    for ep in entry_points(group=GROUP):
        try:
            obj = ep.load()
        except Exception:
            continue
        if isinstance(obj, type):
            obj = obj()
        if isinstance(obj, CheckerPlugin) and isinstance(obj.keyword, str):
            found.setdefault(obj.keyword, obj)
    return found
