"""The plugin API: install tests/plugin_example, find it by entry point, run it."""

from __future__ import annotations

import functools
import ipaddress
import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from healthcheck.api import Checker
from healthcheck.plugin import CheckerPlugin, registered_checkers
from healthcheck.policy import Transition
from healthcheck.scheduler import Scheduler
from pykeep.config.model import CheckerCommon, PluginCheck, RealServer, VirtualServer

EXAMPLE = Path(__file__).parent / "plugin_example"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Install the example the way pip lays it out: the package plus a .dist-info.

    (The venv has no ``wheel``, and tests stay offline, so we write the two
    files pip would write: METADATA and entry_points.txt.)
    """
    target = tmp_path_factory.mktemp("plugins")
    shutil.copytree(EXAMPLE / "pk_echo_check", target / "pk_echo_check")
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    info = target / f"pk_echo_check-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    eps = meta["entry-points"]["pykeep.checkers"]
    lines = "".join(f"{k} = {v}\n" for k, v in eps.items())
    (info / "entry_points.txt").write_text(f"[pykeep.checkers]\n{lines}")
    sys.path.insert(0, str(target))
    registered_checkers.cache_clear()
    try:
        yield
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("pk_echo_check", None)
        registered_checkers.cache_clear()


def test_plugin_discovered_parsed_and_scheduled(installed: None) -> None:
    plugins = registered_checkers()
    assert "ECHO_CHECK" in plugins
    plugin = plugins["ECHO_CHECK"]
    assert isinstance(plugin, CheckerPlugin)
    with pytest.raises(ValueError, match="ECHO_CHECK: unknown"):
        plugin.parse([("bogus", "1")])
    options = plugin.parse([("send", "HELLO"), ("expect", "HELLO")])
    assert isinstance(plugin.make(options), Checker)

    async def echo(stream: trio.abc.Stream) -> None:
        data = await stream.receive_some(100)
        await stream.send_all(data)
        await stream.aclose()

    got: list[Transition] = []

    async def main() -> None:
        async with trio.open_nursery() as n:
            ls = await n.start(functools.partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
            port = ls[0].socket.getsockname()[1]
            rs = RealServer(
                address=ipaddress.ip_address("127.0.0.1"),
                port=port,
                alpha=True,
                checkers=(
                    PluginCheck("ECHO_CHECK", options, CheckerCommon(delay_loop=1, warmup=0)),
                ),
            )
            sched = Scheduler(got.extend, batch_window=0)
            sched.add("echo-rs", rs, VirtualServer(delay_loop=1))
            await n.start(sched.run)
            await trio.sleep(1.5)
            n.cancel_scope.cancel()

    trio.run(main)
    assert [(t.up, t.reason) for t in got] == [
        (False, "initial (alpha)"),
        (True, "ECHO_CHECK: echo ok"),
    ]
