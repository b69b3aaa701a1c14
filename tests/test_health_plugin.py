"""The plugin API: install a plugin, find it by entry point, run it.

``tests/plugin_example`` is laid out by hand (no build step) for the minimal
contract; ``examples/redis-check``, the documented example, is installed with
pip and run against a real ``redis-server`` (about 10 s, most of it pip).
"""

from __future__ import annotations

import functools
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

from healthcheck.api import Checker, Result, Target
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
    with pytest.raises(ValueError, match="unknown or malformed line"):
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


# --------------------------------------------------------------------------
# examples/redis-check: pip-installed, run against a real redis-server

REDIS_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "redis-check"

REDIS_CONF = """\
virtual_server 127.0.0.1 16379 {{
    delay_loop 0.3
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 127.0.0.1 {port} {{
        weight 3
        inhibit_on_failure
        REDIS_CHECK {{
            password {password}
            warmup 0
            retry 2
            delay_before_retry 0.2
            connect_timeout 2
        }}
    }}
}}
virtual_server 127.0.0.1 16380 {{
    delay_loop 0.3
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 127.0.0.1 {port} {{
        weight 3
        REDIS_CHECK {{
            password {password}
            warmup 0
            retry 2
            delay_before_retry 0.2
            connect_timeout 2
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_call(port: int, *commands: bytes) -> list[bytes]:
    """Send inline commands to the redis-server under test; return each reply's first line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        f = s.makefile("rb")
        out = []
        for cmd in commands:
            s.sendall(cmd + b"\r\n")
            out.append(f.readline().rstrip(b"\r\n"))
        return out


@pytest.fixture(scope="module")
def redis_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pip install examples/redis-check into a fresh target dir, and put it on sys.path."""
    target = tmp_path_factory.mktemp("redis-plugin")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(REDIS_EXAMPLE)],
        check=True,
        timeout=300,
    )  # fmt: skip
    sys.path.insert(0, str(target))
    registered_checkers.cache_clear()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("pk_redis_check", None)
        registered_checkers.cache_clear()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[int]:
    """A real redis-server on loopback with ``requirepass secret``, killed by PID afterwards."""
    exe = shutil.which("redis-server")
    assert exe, "redis-server is missing: `make setup` installs it (Debian package redis-server)"
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--requirepass", "secret", "--dir", str(tmp_path), "--daemonize", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis_call(port, b"AUTH secret", b"PING") == [b"+OK", b"+PONG"]:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
            time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_redis_plugin_config_test(redis_plugin: Path, tmp_path: Path) -> None:
    """``pykeep -t`` knows REDIS_CHECK once the package is installed, and names bad lines."""
    env = {**os.environ, "PYTHONPATH": str(redis_plugin)}
    conf = tmp_path / "keepalived.conf"
    conf.write_text(REDIS_CONF.format(port=6379, password="secret"))
    ok = subprocess.run(
        [sys.executable, "-m", "pykeep", "-t", "-f", str(conf)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    conf.write_text(REDIS_CONF.format(port=6379, password="secret").replace("password", "pasword"))
    bad = subprocess.run(
        [sys.executable, "-m", "pykeep", "-t", "-f", str(conf)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0
    # one line naming the file, the block's line and the plugin's own reason
    assert (
        f"({conf}: Line 9) REDIS_CHECK: unknown or malformed line 'pasword secret'" in bad.stderr
    ), bad.stderr
    assert "Traceback" not in bad.stderr


def test_redis_plugin_retry_and_inhibit(redis_plugin: Path, redis_server: int) -> None:
    """keepalived's retry rule and inhibit_on_failure, driven by a real Redis.

    With ``retry 2`` a server goes down on the third failed attempt in a row
    (check_tcp.c tcp_epilog) and comes back on the first success.  The pool
    policy then keeps an ``inhibit_on_failure`` server at weight 0 and removes
    the other one (ipvswrapper.c ipvs_cmd).
    """
    from healthcheck.scheduler import build_checker
    from ipvs.policy import RsHealth, decide, rs_key
    from pykeep.config import load_text

    loaded = load_text(REDIS_CONF.format(port=redis_server, password="secret"), "redis.conf")
    assert loaded.ok, loaded.diagnostics
    inhibiting, removing = loaded.config.virtual_servers
    assert isinstance(inhibiting.real_servers[0].checkers[0], PluginCheck)

    log: list[tuple[str, object, bool, str]] = []  # ("result"|"transition", key, ok/up, reason)

    class Recording:
        """Wraps the plugin's checker: the test sees every attempt, in order."""

        def __init__(self, inner: Checker, key: object) -> None:
            self.inner, self.key = inner, key

        async def check(self, target: Target, timeout: float) -> Result:
            result = await self.inner.check(target, timeout)
            log.append(("result", self.key, result.ok, result.reason))
            return result

    def deliver(batch: list[Transition]) -> None:
        log.extend(("transition", t.key, t.up, t.reason) for t in batch)

    def last_transition(key: object) -> bool | None:
        return next((e[2] for e in reversed(log) if e[0] == "transition" and e[1] == key), None)

    async def wait_for(cond: Callable[[], bool], what: str) -> None:
        with trio.move_on_after(15):
            while not cond():
                await trio.sleep(0.05)
            return
        raise AssertionError(f"timed out waiting for {what}: {log}")

    keys = [rs_key(vs, vs.real_servers[0]) for vs in (inhibiting, removing)]
    health: dict[str, RsHealth] = {}

    def pools() -> list[tuple[tuple[str, int], ...]]:
        return [
            tuple((str(m.rs.address), m.weight) for m in decide(vs, health).members)
            for vs in (inhibiting, removing)
        ]

    async def main() -> None:
        sched = Scheduler(deliver, batch_window=0)
        for key, vs in zip(keys, (inhibiting, removing), strict=True):
            rs = vs.real_servers[0]
            checker, target, timing = build_checker(rs.checkers[0], rs, vs)
            sched.add_checkers(key, [(Recording(checker, key), target, timing)], ["REDIS_CHECK"])
        async with trio.open_nursery() as n:
            await n.start(sched.run)
            await wait_for(lambda: sum(e[0] == "result" and e[2] for e in log) >= 4, "passes")
            assert all(last_transition(k) is True for k in keys)
            health.update({k: RsHealth(True) for k in keys})
            assert pools() == [(("127.0.0.1", 3),), (("127.0.0.1", 3),)]

            # The password changes under the checker: every attempt now fails.
            await trio.to_thread.run_sync(
                redis_call, redis_server, b"AUTH secret", b"CONFIG SET requirepass other"
            )
            await wait_for(lambda: all(last_transition(k) is False for k in keys), "down")
            health.update({k: RsHealth(False) for k in keys})
            assert pools() == [(("127.0.0.1", 0),), ()]

            # Back to the right password: up again on the first success.
            await trio.to_thread.run_sync(
                redis_call, redis_server, b"AUTH other", b"CONFIG SET requirepass secret"
            )
            await wait_for(lambda: all(last_transition(k) is True for k in keys), "up")
            health.update({k: RsHealth(True) for k in keys})
            assert pools() == [(("127.0.0.1", 3),), (("127.0.0.1", 3),)]
            n.cancel_scope.cancel()

    trio.run(main)
    for key in keys:
        mine = [e for e in log if e[1] == key]
        down = next(i for i, e in enumerate(mine) if e[0] == "transition" and e[2] is False)
        up = next(i for i, e in enumerate(mine) if i > down and e[0] == "transition")
        passed_before = max(i for i, e in enumerate(mine[:down]) if e[0] == "result" and e[2])
        failures = [e for e in mine[passed_before + 1 : down] if e[0] == "result"]
        assert len(failures) == 3, mine  # retry 2: the first try and two retries
        assert all(e[3].startswith("auth: -WRONGPASS") for e in failures), failures
        assert mine[down][3] == f"REDIS_CHECK: {failures[-1][3]}"
        # still failing until the password is back; the first success brings it up
        between = [e[2] for e in mine[down + 1 : up] if e[0] == "result"]
        assert between and between[-1] is True and not any(between[:-1]), mine
        assert mine[up][3] == "REDIS_CHECK: pong"
