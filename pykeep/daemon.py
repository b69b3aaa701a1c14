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

import contextlib
import ctypes
import functools
import gc
import json
import os
import signal
from pathlib import Path
from typing import Any

from pykeep import rundir
from pykeep.config.diagnostics import Severity
from pykeep.memory import release_parser, return_free_heap

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    import trio

# trio, structlog and pyroute2 are imported only after a crashed run's VIPs
# are gone (``remove_stale_vips``): every 100 ms of imports before that is
# 100 ms more of two hosts answering for one address.

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
    # The process's own symbols include libc's: no find_library (it runs ldconfig).
    libc = ctypes.CDLL(None, use_errno=True)
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


def remove_stale_vips(config: Any) -> list[str]:
    """Remove the configured VIPs a crashed run left behind; the log lines to write.

    keepalived does this first thing in its VRRP child (vrrp_daemon.c
    ``start_vrrp`` -> ``vrrp_restore_interfaces_startup``, logging
    "(name) removing VIPs." per instance with -D).  It runs before the heavy
    imports, over a bare netlink socket (vrrp/links.py).
    """
    from vrrp.links import leftover_candidates, remove_leftovers

    lines: list[str] = []
    for inst in config.vrrp_instances:
        if inst.virtual_ipaddress:
            lines.append(f"({inst.name}) removing VIPs.")
        if inst.virtual_ipaddress_excluded:
            lines.append(f"({inst.name}) removing E-VIPs.")
    try:
        for dev, vip in remove_leftovers(leftover_candidates(config)):
            lines.append(f"removed VIP {vip} left on {dev} by a previous run")
    except OSError as exc:
        lines.append(f"cannot remove VIPs left by a previous run: {exc.strerror or exc}")
    return lines


def main(options: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT; the process exit code."""
    # Start-up builds the whole configuration, the modules and every instance
    # at once, nearly all of it for good: the collector would only walk them
    # again and again (60 ms at 255 instances).  It is back once the daemon is
    # up (_run), or when start-up fails.
    gc.disable()
    try:
        return _main(options)
    finally:
        gc.enable()


def _main(options: argparse.Namespace) -> int:
    # Namespace, configuration and stale VIPs come before the logging and
    # event-loop imports; what they have to say is logged right after.
    early_error: str | None = None
    namespace = _opt(options, "namespace")
    if namespace:
        try:
            enter_namespace(namespace)
        except OSError as exc:
            early_error = f"cannot enter network namespace {namespace}: {exc.strerror}"
    result: Any = None
    pkconfig: Any = None
    files = rundir.pid_files(net_namespace=None, instance=None, use_pid_dir=False)
    ident = "Keepalived_vrrp"
    path = _opt(options, "use_file") or _opt(options, "conf_file") or DEFAULT_CONF
    stale_lines: list[str] = []
    if early_error is None:
        from pykeep import config as pkconfig

        result = pkconfig.load(path, _opt(options, "config_id"))
        # The file's net_namespace is entered once the file is read, -s winning
        # (main.c keepalived_main: override_namespace, set_namespaces).
        gdefs = result.config.global_defs
        if namespace and gdefs.net_namespace:
            stale_lines.append(
                f"Overriding config net_namespace '{gdefs.net_namespace}' "
                f"with command line namespace '{namespace}'"
            )
        elif gdefs.net_namespace and not unusable_at_start(result):
            try:
                enter_namespace(gdefs.net_namespace)
            except OSError:
                early_error = f"Unable to set network namespace {gdefs.net_namespace} - exiting"
            else:
                # Read again inside: interface checks must see the namespace's
                # links (keepalived's children read the file after setns too).
                result = pkconfig.load(path, _opt(options, "config_id"))
        rundir.namespace_override = namespace or None
        ident = rundir.syslog_ident(
            "Keepalived_vrrp", namespace or gdefs.net_namespace, gdefs.instance
        )
        files = rundir.pid_files(
            net_namespace=namespace or gdefs.net_namespace,
            instance=gdefs.instance,
            use_pid_dir=gdefs.use_pid_dir,
            main=_opt(options, "pid"),
            vrrp=_opt(options, "vrrp_pid"),
            checkers=_opt(options, "checkers_pid"),
        )
        if (
            early_error is None
            and not unusable_at_start(result)
            and not _opt(options, "check")
            and running_pid(files.main) is None
        ):
            stale_lines += remove_stale_vips(result.config)
    unusable = result is not None and unusable_at_start(result)
    config: Any = None if result is None else result.config
    diagnostics = () if result is None else tuple(result.diagnostics)
    del result, pkconfig  # the load's result holds the parser's modules
    release_parser()
    from pykeep import log as pklog

    pklog.setup(
        console=bool(_opt(options, "log_console")),
        detail=bool(_opt(options, "log_detail")),
        facility=_opt(options, "log_facility"),
        json=bool(_opt(options, "log_json")),
        syslog=not _opt(options, "no_syslog"),
        ident=ident,  # main.c make_syslog_ident: _NS and _INSTANCE appended
    )
    logger = pklog.get("daemon")
    if early_error is not None:
        logger.error(early_error)
        return 1
    for diag in diagnostics:
        logger.warning(str(diag))
    if unusable:
        logger.error(f"Stopping: configuration {path} does not load")
        return 1
    vrrp_logger = pklog.get("vrrp")
    for line in stale_lines:
        if line.startswith("(") and not pklog.detail_enabled():
            continue  # keepalived logs the per-instance line with -D only
        vrrp_logger.info(line)
    # idna: trio.socket encodes host names with it (0.5 MiB of tables), and
    # the daemon never resolves a name through trio.
    with pklog.imported_on_first_use("ssl", "hmac", "idna", "bz2", "lzma"):
        import trio  # first here: its ssl, hmac and idna stay stand-ins (pykeep/log.py)
    lvs_service: Any = None  # pykeep/lvs.py open_lvs: none with -P or without virtual servers
    if not _opt(options, "vrrp") and config.virtual_servers:
        # Checkers, IPVS and their libraries load only for a config that has
        # virtual servers: a VRRP-only daemon starts 0.3 s sooner without them.
        from pykeep import lvs as pklvs

        try:
            lvs_service = pklvs.open_lvs(config, options)
        except pklvs.LvsUnavailable as exc:
            logger.error(str(exc))
            return 1
    pidfiles = [files.main, files.vrrp]  # pykeep/rundir.py: keepalived's names
    if not _opt(options, "vrrp"):
        pidfiles.append(files.checkers)
    other = running_pid(pidfiles[0])
    if other is not None:
        logger.error(f"daemon is already running (pid {other}, {pidfiles[0]})")
        return 1
    if not _opt(options, "dont_fork"):
        daemonize()
    made_dirs = rundir.make_dirs(files)
    for p in pidfiles:
        try:
            write_pidfile(p)
        except OSError as exc:
            logger.error(f"cannot write pid file {p}: {exc.strerror}")
    logger.info("Starting pykeep daemon")
    try:
        trio.run(_run, options, path, config, lvs_service)
    except KeyboardInterrupt:
        pass
    finally:
        for p in pidfiles:
            remove_pidfile(p)
        rundir.remove_dirs(made_dirs)
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
    import trio

    from pykeep import log as pklog
    from pykeep.ops import control, dumps, sdnotify
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
    await run_start_stop_script(config, "startup", logger)
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
            if _opt(options, "dump_conf"):
                # -d: keepalived dumps its configuration to the log once started
                # (vrrp_daemon.c start_vrrp dump_data_vrrp, check_daemon.c
                # start_check dump_data_check), in the words of its data dump.
                snap = operations.snapshot()
                text = dumps.render_data(snap) if vrrp_enabled else ""
                if lvs_service is not None:
                    text += dumps.render_check_data(snap)
                for line in text.splitlines():
                    logger.info(line)
            sock = Path(_opt(options, "control_socket") or control.DEFAULT_SOCKET)
            try:
                await nursery.start(control.serve_control, operations, sock)
            except OSError as exc:
                logger.error(f"control socket {sock} not available: {exc.strerror or exc}")
            listen = _opt(options, "metrics_listen")
            if listen:
                from pykeep.ops import metrics  # the HTTP stack only when asked for

                try:
                    await nursery.start(metrics.serve_metrics, listen, operations.snapshot)
                except (OSError, ValueError) as exc:
                    logger.error(f"metrics listener {listen} not started: {exc}")
            # Start-up is over.  What it built is frozen, out of the collector's
            # sight: re-enabled over it, the first young collection walks all of
            # it (0.3 s at 255 instances, in the event loop).  The price: a
            # start-up instance that a reload later removes is not reclaimed
            # where reference cycles hold it, at most what start-up built.
            gc.freeze()
            gc.enable()
            return_free_heap()
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
        await run_start_stop_script(operations.config, "shutdown", logger)


async def run_start_stop_script(config: Any, kind: str, logger: Any) -> None:
    """``startup_script`` / ``shutdown_script``: waited for, within their timeouts.

    keepalived (core/main.c ``run_startup_script``, ``stop_keepalived``) runs
    the start-up script before any VRRP or checker work begins, and the
    shutdown script once they have stopped; a hung script is killed at
    ``{startup,shutdown}_script_timeout`` (10 s by default).
    """
    from pykeep import log as pklog
    from pykeep import scripts

    g = config.global_defs
    script = getattr(g, f"{kind}_script", None)
    if script is None:
        return
    verdict = scripts.check_script_secure(
        script,
        enforce=g.enable_script_security,
        default_user=g.script_user,
        default_group=g.script_group,
    )
    if not verdict.runnable:
        logger.warning(f"{kind} script {script.path} {verdict.reason} - not running")
        return
    if pklog.detail_enabled():
        logger.info(f"Running {kind} script {script.path}")
    result = await scripts.run_script(
        script,
        timeout=getattr(g, f"{kind}_script_timeout", 10.0),
        default_user=g.script_user,
        default_group=g.script_group,
    )
    if result.timed_out:
        logger.info(f"{kind} script {script.path} timed out - killed")
    elif result.exit_code:
        # main.c startup_shutdown_script_completed: "%s script failed" with type "… script"
        logger.info(f"{kind} script script failed, status {result.exit_code}")
    elif result.reason:
        logger.info(f"{kind} script {script.path}: {result.reason}")


async def _legacy_usr2(
    operations: Any,
    service: Any,
    path: str,
    task_status: trio.TaskStatus[None] | None = None,
) -> None:
    """SIGUSR2 with ``$PYKEEP_STATS_FILE`` set: keepalived.stats *and* the old JSON.

    Opened after dumps.serve_dump_signals, this receiver takes SIGUSR2 over
    (the newest trio receiver of a signal gets it), so it writes both files.
    """
    import trio

    from pykeep import log as pklog
    from pykeep.ops import dumps

    if task_status is None:
        task_status = trio.TASK_STATUS_IGNORED

    with trio.open_signal_receiver(signal.SIGUSR2) as receiver:
        task_status.started()
        async for _ in receiver:
            try:
                dumps.write_stats(operations.snapshot())
                write_legacy_stats(service, path)
            except OSError as exc:
                pklog.get("daemon").warning(f"stats dump failed: {exc}")
