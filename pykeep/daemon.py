"""The daemon process: what keepalived's core/main.c does around its children.

keepalived forks a parent, a VRRP child and a checker child; pykeep runs the
same services as tasks of one trio nursery in one process (STYLE.md: every
long-lived thing belongs to a nursery), and keeps keepalived's outside view:

- pid files: ``-p`` for the main process, ``-r`` for the VRRP part (``-c``
  for the checkers), all holding our pid since there is one process;
- ``-n`` stays in the foreground, otherwise we daemonise (double fork);
- ``-s/--namespace NAME`` enters ``/run/netns/NAME`` before anything opens a
  socket (keepalived's ``net_namespace``);
- SIGTERM/SIGINT stop cleanly: priority-0 adverts, VIPs removed, scripts
  killed; SIGHUP reloads the configuration, keeping the old one when the new
  one does not load.

The operations layer (issue 8) hangs off one :class:`pykeep.ops.view.Ops`:
SIGUSR1/SIGUSR2/JSON/STATS_CLEAR dumps into ``$TMPDIR`` (else /tmp), the
control socket (``--control-socket``, default /run/pykeep/control.sock;
``ctl reload`` is the SIGHUP path), ``/metrics`` when ``--metrics-listen``
is given, sd_notify READY/RELOADING/STOPPING, and the drain set read from
``$PYKEEP_STATE_DIR/drain.json`` (default /var/lib/pykeep/drain.json).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import functools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import trio

from pykeep import log as pklog
from pykeep.config.diagnostics import Severity

DEFAULT_CONF = "/etc/keepalived/keepalived.conf"
DEFAULT_PID = "/run/keepalived.pid"
DEFAULT_VRRP_PID = "/run/vrrp.pid"
DEFAULT_CHECKERS_PID = "/run/checkers.pid"
CLONE_NEWNET = 0x40000000  # os.setns arrives in Python 3.12; we support 3.11


def _opt(options: argparse.Namespace, name: str, default: Any = None) -> Any:
    return getattr(options, name, default)


def enter_namespace(name: str) -> None:
    """setns(2) into a named network namespace, as ``ip netns exec`` would."""
    path = name if "/" in name else f"/run/netns/{name}"
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


def write_pidfile(path: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def remove_pidfile(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        with open(path) as f:
            if f.read().strip() != str(os.getpid()):
                return  # someone else's now
        os.unlink(path)


def running_pid(path: str) -> int | None:
    """The pid in ``path`` if that process is alive (keepalived refuses to start twice)."""
    try:
        with open(path) as f:
            pid = int(f.read().strip() or "0")
    except (OSError, ValueError):
        return None
    if pid <= 0 or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def daemonize() -> None:
    """Classic double fork; the parent returns 0 to the shell at once."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def unusable_at_start(result: Any) -> bool:
    """keepalived runs with whatever it parsed; only a missing file or a fatal error stop it."""
    if getattr(result, "aborted", False):
        return True
    return any(d.severity in (Severity.FILE_NOT_FOUND, Severity.FATAL) for d in result.diagnostics)


def unusable_for_reload(result: Any) -> bool:
    """On SIGHUP a config with any parse error is refused (kept here for callers; see ops)."""
    from pykeep.ops.view import unusable_for_reload as check

    return check(result)


def legacy_stats_path() -> str | None:
    """``$PYKEEP_STATS_FILE``: where SIGUSR2 also writes the old JSON counters, if set.

    Before the keepalived-compatible dumps existed, SIGUSR2 wrote a JSON
    summary there; tests/netns_vrrp.py ``Router.stats()`` still reads it.
    Unset (the normal case), SIGUSR2 only writes keepalived.stats.
    """
    return os.environ.get("PYKEEP_STATS_FILE") or None


def write_legacy_stats(service: Any, path: str) -> None:
    """Per-instance counters (drops by reason, adverts…) and states as JSON."""
    counters = service.counters()
    data = {
        "states": service.states(),
        "socket": dict(counters.pop("<socket>", {})),
        "instances": {name: dict(c) for name, c in counters.items()},
        "reloads": service.reloads,
    }
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def main(options: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT; the process exit code."""
    pklog.setup(
        console=bool(_opt(options, "log_console")),
        detail=bool(_opt(options, "log_detail")),
        facility=_opt(options, "log_facility"),
        json=bool(_opt(options, "log_json")),
    )
    logger = pklog.get("daemon")
    namespace = _opt(options, "namespace")
    if namespace:
        try:
            enter_namespace(namespace)
        except OSError as exc:
            logger.error(f"cannot enter network namespace {namespace}: {exc.strerror}")
            return 1
    from pykeep import config as pkconfig

    path = _opt(options, "use_file") or _opt(options, "conf_file") or DEFAULT_CONF
    result = pkconfig.load(path, _opt(options, "config_id"))
    for diag in result.diagnostics:
        logger.warning(str(diag))
    if unusable_at_start(result):
        logger.error(f"Stopping: configuration {path} does not load")
        return 1
    from pykeep import lvs as pklvs

    try:
        lvs_service = pklvs.open_lvs(result.config, options)  # None with -P / no virtual servers
    except pklvs.LvsUnavailable as exc:
        logger.error(str(exc))
        return 1
    pidfiles = [
        _opt(options, "pid") or DEFAULT_PID,
        _opt(options, "vrrp_pid") or DEFAULT_VRRP_PID,
    ]
    if not _opt(options, "vrrp"):
        pidfiles.append(_opt(options, "checkers_pid") or DEFAULT_CHECKERS_PID)
    other = running_pid(pidfiles[0])
    if other is not None:
        logger.error(f"daemon is already running (pid {other}, {pidfiles[0]})")
        return 1
    if not _opt(options, "dont_fork"):
        daemonize()
    for p in pidfiles:
        try:
            write_pidfile(p)
        except OSError as exc:
            logger.error(f"cannot write pid file {p}: {exc.strerror}")
    logger.info("Starting pykeep daemon")
    try:
        trio.run(_run, options, path, result.config, lvs_service)
    except KeyboardInterrupt:
        pass
    finally:
        for p in pidfiles:
            remove_pidfile(p)
    logger.info("Stopped")
    return 0


async def _run(
    options: argparse.Namespace, path: str, config: Any, lvs_service: Any = None
) -> None:
    """The daemon's nursery: dump signals, VRRP, control socket, metrics; then signals.

    Order matters: the dump-signal receiver goes in first because until it
    is installed SIGRTMIN+2 (JSON) and SIGRTMAX-1 (STATS_CLEAR) keep their
    default action and would kill us; READY=1 goes out only once the
    control socket and metrics listener accept connections.
    """
    from pykeep.ops import control, dumps, metrics, sdnotify
    from pykeep.ops import view as ops
    from vrrp.service import VrrpService

    logger = pklog.get("daemon")
    vrrp_enabled = not _opt(options, "check")
    service = VrrpService(config)
    notifier = sdnotify.Notifier()
    drain_file = Path(_opt(options, "drain_state") or ops.drain_state_file())
    operations = ops.Ops(
        config,
        vrrp=service if vrrp_enabled else None,
        loader=ops.config_loader(path, _opt(options, "config_id")),
        drain_file=drain_file,
        lvs=None,
        notifier=notifier,
    )
    legacy = legacy_stats_path()
    sigs = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
    with trio.open_signal_receiver(*sigs) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(
                    dumps.serve_dump_signals,
                    operations.snapshot,
                    clear_stats=operations.clear_counters,
                )
            )
            if legacy is not None:
                await nursery.start(_legacy_usr2, operations, service, legacy)
            if vrrp_enabled:
                await nursery.start(service.run)
            if lvs_service is not None:
                # Checkers + IPVS (keepalived's checker child); Ops.apply_reload
                # reloads it after VRRP, and VRRP state drives ha_suspend and
                # the sync daemon through follow_vrrp.
                from pykeep.lvs import follow_vrrp

                await lvs_service.set_drained(operations.drained)
                await nursery.start(lvs_service.run)
                operations.lvs = lvs_service
                if vrrp_enabled:
                    await nursery.start(
                        follow_vrrp, lvs_service, service, lambda: operations.config
                    )
            sock = Path(_opt(options, "control_socket") or control.DEFAULT_SOCKET)
            try:
                await nursery.start(control.serve_control, operations, sock)
            except OSError as exc:
                logger.error(f"control socket {sock} not available: {exc.strerror or exc}")
            listen = _opt(options, "metrics_listen")
            if listen:
                try:
                    await nursery.start(metrics.serve_metrics, listen, operations.snapshot)
                except (OSError, ValueError) as exc:
                    logger.error(f"metrics listener {listen} not started: {exc}")
            notifier.ready(operations.summary())
            async for signum in signals:
                if signum == signal.SIGHUP:
                    await operations.apply_reload()
                    continue
                logger.info(f"Received {signal.Signals(signum).name} - stopping")
                break
            notifier.stopping("stopping")
            with trio.CancelScope(shield=True):
                if lvs_service is not None:
                    await lvs_service.shutdown()
                if vrrp_enabled:
                    await service.shutdown()
            nursery.cancel_scope.cancel()


async def _legacy_usr2(
    operations: Any,
    service: Any,
    path: str,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """SIGUSR2 with ``$PYKEEP_STATS_FILE`` set: keepalived.stats *and* the old JSON.

    Opened after dumps.serve_dump_signals, this receiver takes SIGUSR2 over
    (the newest trio receiver of a signal gets it), so it writes both files.
    """
    from pykeep.ops import dumps

    with trio.open_signal_receiver(signal.SIGUSR2) as receiver:
        task_status.started()
        async for _ in receiver:
            try:
                dumps.write_stats(operations.snapshot())
                write_legacy_stats(service, path)
            except OSError as exc:
                pklog.get("daemon").warning(f"stats dump failed: {exc}")


if __name__ == "__main__":  # pragma: no cover - a stand-in until pykeep/cli.py exists
    ap = argparse.ArgumentParser()
    ap.add_argument("-f", "--use-file", dest="use_file")
    ap.add_argument("-P", "--vrrp", action="store_true")
    ap.add_argument("-C", "--check", action="store_true")
    ap.add_argument("-l", "--log-console", dest="log_console", action="store_true")
    ap.add_argument("-D", "--log-detail", dest="log_detail", action="store_true")
    ap.add_argument("-S", "--log-facility", dest="log_facility")
    ap.add_argument("-n", "--dont-fork", dest="dont_fork", action="store_true")
    ap.add_argument("-p", "--pid")
    ap.add_argument("-r", "--vrrp_pid", dest="vrrp_pid")
    ap.add_argument("-c", "--checkers_pid", dest="checkers_pid")
    ap.add_argument("-i", "--config-id", dest="config_id")
    ap.add_argument("-s", "--namespace")
    ap.add_argument("--log-json", dest="log_json", action="store_true")
    ap.add_argument("--metrics-listen", dest="metrics_listen")
    ap.add_argument("--control-socket", dest="control_socket")
    sys.exit(main(ap.parse_args()))
