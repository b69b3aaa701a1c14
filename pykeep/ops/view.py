"""The operations view of a running daemon: snapshots, control requests, reload.

pykeep/daemon.py builds one :class:`Ops` over the VRRP service (and, when the
checker/IPVS part runs, an :class:`LvsProvider`); everything an operator can
see or do goes through it, so the control socket, the dump signals and the
metrics listener all show the same state:

- :meth:`Ops.snapshot` is the one place run-time values are read (the dump
  files, ``/metrics`` and ``ctl status`` are renderings of it);
- :meth:`Ops.reload` is the SIGHUP path *and* ``ctl reload``, serialised by a
  lock so two reloads never interleave;
- drain state lives here (persisted before it is applied, as the reference
  ``FakeDaemon`` in tests/test_ops_control.py does) and is handed to the LVS
  provider, which turns it into IPVS weights.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from pykeep import log as pklog
from pykeep.config.diagnostics import Severity
from pykeep.config.model import Config
from pykeep.ops import drain
from pykeep.ops.control import ControlError

# The status module loads with the first snapshot (see pykeep/ops/dumps.py).
if TYPE_CHECKING:
    from pykeep.ops import status
    from pykeep.ops.sdnotify import Notifier
    from vrrp.driver import InstanceDriver
    from vrrp.service import VrrpService

#: where the drain set is kept; ``$PYKEEP_STATE_DIR/drain.json`` when that is set
STATE_DIR_ENV = "PYKEEP_STATE_DIR"


def drain_state_file(environ: Mapping[str, str] | None = None) -> Path:
    """The drain state file: ``$PYKEEP_STATE_DIR/drain.json``, else drain.DEFAULT_STATE_FILE."""
    env = os.environ if environ is None else environ
    base = env.get(STATE_DIR_ENV, "")
    return Path(base) / drain.DEFAULT_STATE_FILE.name if base else drain.DEFAULT_STATE_FILE


class LvsProvider(Protocol):
    """What the checker+IPVS service (pykeep/lvs.py) offers the operations layer.

    ``virtual_servers`` is read for every snapshot (keep it cheap: cached
    health and the last IPVS stats, no netlink round trip).  ``set_drained``
    is awaited after the drain set changed and was saved; it applies weight 0
    to drained real servers (``DrainSet.effective_weight``).  ``reload`` is
    awaited with the new config on SIGHUP / ``ctl reload``, after VRRP's.
    """

    def virtual_servers(self) -> list[status.VirtualServerStatus]: ...

    async def set_drained(self, drained: drain.DrainSet) -> None: ...

    async def reload(self, config: Config) -> None: ...


#: ``load() -> (config or None, [error lines])``: re-reads the configuration files
Loader = Callable[[], tuple[Config | None, list[str]]]


def unusable_for_reload(result: Any) -> bool:
    """On reload a config with any parse error is refused: the running one is kept.

    Warnings, deprecations and script-security advice do not count
    (keepalived runs with them too).
    """
    if getattr(result, "aborted", False):
        return True
    return any(Severity.OK < d.severity <= Severity.GENERAL_ERROR for d in result.diagnostics)


def config_loader(path: str, config_id: str | None) -> Loader:
    """The loader the daemon uses: pykeep.config.load, refusing configs with errors."""

    def load() -> tuple[Config | None, list[str]]:
        from pykeep import config as pkconfig

        result = pkconfig.load(path, config_id)
        if unusable_for_reload(result):
            errors = [
                str(d)
                for d in result.diagnostics
                if Severity.OK < d.severity <= Severity.GENERAL_ERROR
            ]
            return None, errors or [f"{path}: configuration does not load"]
        return result.config, []

    return load


def _vrrp_state(value: str) -> status.VrrpState:
    from pykeep.ops import status

    # STOP only exists on the way out; keepalived shows a stopped instance as INIT.
    return status.VrrpState.__members__.get(value, status.VrrpState.INIT)


class Ops:
    """Implements control.ControlHandler and the snapshot source for dumps and metrics."""

    def __init__(
        self,
        config: Config,
        *,
        vrrp: VrrpService | None,
        loader: Loader,
        drain_file: Path,
        lvs: LvsProvider | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.vrrp = vrrp
        self.lvs = lvs
        self.loader = loader
        self.drain_file = drain_file
        self.notifier = notifier
        self.log = pklog.get("daemon")
        self.started_at = time.time()
        self.last_reload: float | None = None
        self.reloads = 0
        self.reload_failures = 0
        self.last_reload_ok = True
        self._reload_lock = trio.Lock()
        try:
            self.drained = drain.load(drain_file)
        except drain.DrainStateError as exc:
            # Keep running and keep the file: an operator fixes it, we never overwrite it blind.
            self.log.error(f"drain state not loaded: {exc}")
            self.drained = drain.DrainSet()

    # ------------------------------------------------------------ snapshot
    def _instance(self, inst: Any, driver: InstanceDriver | None) -> status.VrrpInstanceStatus:
        from pykeep.ops import status

        cfg = self.config
        if driver is None:
            return status.instance_status(inst, cfg, state=status.VrrpState.INIT)
        last = driver.last_transition
        transition = (
            status.Transition(
                last.at, _vrrp_state(last.old.value), _vrrp_state(last.new.value), last.reason
            )
            if last is not None
            else None
        )
        state = _vrrp_state(driver.state.value)
        return status.instance_status(
            inst,
            cfg,
            state=state,
            wantstate=_vrrp_state(driver.machine.wantstate.value),
            effective_priority=driver.effective_priority,
            master_priority=driver.master_priority,
            master_router=driver.master_router,
            src_ip=str(driver.src) if driver.src is not None else None,
            vipset=driver.machine.vips_set,
            last_transition=transition,
            transitions=driver.transitions,
            failover_active=driver.failover_active,
            counters=driver.counters(),
        )

    def _scripts(self) -> tuple[status.VrrpScriptStatus, ...]:
        from pykeep.ops import status

        out = []
        for vs in self.config.vrrp_scripts:
            fan = self.vrrp.fanouts.get(("script", vs.name)) if self.vrrp else None
            value = fan.value if fan is not None else None
            tracking = tuple(
                (i.name, ref.weight if ref.weight is not None else vs.weight)
                for i in self.config.vrrp_instances
                for ref in i.track_script
                if ref.name == vs.name
            )
            out.append(
                status.VrrpScriptStatus(
                    name=vs.name,
                    command=status.cmd_str(vs.script.argv),
                    interval=vs.interval,
                    timeout=vs.timeout if vs.timeout is not None else vs.interval,
                    weight=vs.weight,
                    weight_reverse=vs.weight_reverse,
                    rise=vs.rise,
                    fall=vs.fall,
                    good=bool(value) if value is not None else not vs.init_fail,
                    init_state="init" if value is None else ("good" if value else "failed"),
                    tracking=tracking,
                )
            )
        return tuple(out)

    def snapshot(self) -> status.Snapshot:
        """Everything an operator can see, read at one instant (no awaits in between)."""
        from pykeep.ops import status

        cfg = self.config
        insts = tuple(
            self._instance(inst, self.vrrp.driver(inst.name) if self.vrrp else None)
            for inst in cfg.vrrp_instances
        )
        vss = tuple(self.lvs.virtual_servers()) if self.lvs is not None else ()
        return status.Snapshot(
            taken_at=time.time(),
            pid=os.getpid(),
            router_id=cfg.global_defs.router_id,
            config_files=cfg.files,
            started_at=self.started_at,
            last_reload=self.last_reload,
            reloads=self.reloads,
            reload_failures=self.reload_failures,
            last_reload_ok=self.last_reload_ok,
            vrrp_instances=insts,
            vrrp_scripts=self._scripts(),
            virtual_servers=vss,
            drained_unknown=tuple(self.drained.unmatched(cfg)),
        )

    def clear_counters(self) -> None:
        """STATS_CLEAR, after the stats file is written."""
        if self.vrrp is not None:
            self.vrrp.clear_counters()

    # ------------------------------------------------------------ reload
    async def apply_reload(self) -> list[str]:
        """The SIGHUP path: re-read, refuse a broken config, apply; the errors (empty: done).

        systemd hears RELOADING=1 before and READY=1 after, success or not
        (the old configuration keeps running, so the service is ready again).
        """
        async with self._reload_lock:
            if self.notifier is not None:
                self.notifier.reloading("reloading configuration")
            self.log.info("Reloading")
            try:
                try:
                    # Parsing is off the event loop (255 instances: 40-100 ms of
                    # adverts and timers held up otherwise).  The parser is pure and
                    # keeps no state between files but fill-once tables.
                    new, errors = await trio.to_thread.run_sync(self.loader)
                except Exception as exc:  # whatever the reason, the running config stays
                    new, errors = None, [f"configuration not loaded ({type(exc).__name__}: {exc})"]
                if new is None:
                    # The diagnostics as warnings, then the one error line that says
                    # what happened and why.
                    for line in errors[1:]:
                        self.log.warning(line)
                    first = errors[0].split("\n", 1)[0] if errors else "configuration not loaded"
                    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
                    self.log.error(
                        f"Reload failed - keeping the running configuration: {first}{more}"
                    )
                    self.reload_failures += 1
                    self.last_reload_ok = False
                    return errors
                from pykeep.rundir import unsupported_change

                refused = unsupported_change(self.config.global_defs, new.global_defs)
                if refused:  # main.c reload_config: the running configuration stays
                    for line in refused:
                        self.log.error(line)
                    self.reload_failures += 1
                    self.last_reload_ok = False
                    return refused
                old = self.config
                self.config = new
                try:
                    if self.vrrp is not None:
                        await self.vrrp.reload(new)
                    if self.lvs is not None:
                        await self.lvs.reload(new)
                except Exception as exc:  # a bug applying it must not end the daemon
                    self.config = old
                    await self._restore(old)
                    reason = f"applying it failed ({type(exc).__name__}: {exc})"
                    self.log.error(f"Reload failed - keeping the running configuration: {reason}")
                    self.reload_failures += 1
                    self.last_reload_ok = False
                    return [reason]
                self.reloads += 1
                self.last_reload_ok = True
                self.last_reload = time.time()
                return []
            finally:
                if self.notifier is not None:
                    self.notifier.ready(self.summary())

    async def _restore(self, old: Config) -> None:
        """Put the running configuration back after a failed apply (best effort, each part)."""
        for part in (self.vrrp, self.lvs):
            if part is None:
                continue
            try:
                await part.reload(old)
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
                self.log.warning(f"restoring the running configuration: {why}")

    def summary(self) -> str:
        """One line for systemd's STATUS=: every instance and its state."""
        if self.vrrp is None:
            return "pykeep running (no VRRP)"
        states = self.vrrp.states()
        return ", ".join(f"{n} {s}" for n, s in sorted(states.items())) or "no VRRP instances"

    # ------------------------------------------------------------ ControlHandler
    async def status(self) -> status.Snapshot:
        return self.snapshot()

    def _drain_target(self, vs: str, rs: str) -> None:
        if not self.config.virtual_servers:
            raise ControlError(
                "no_virtual_servers",
                "no virtual servers in the configuration (VRRP-only): nothing to drain",
            )
        if self.lvs is None:
            raise ControlError(
                "lvs_not_running", "the checker/IPVS part is not running (-P): cannot drain"
            )
        if not drain.resolve(self.config, vs, rs):
            raise ControlError("unknown_rs", f"no real server {rs} in virtual server {vs}")

    async def drain(self, vs: str, rs: str) -> Mapping[str, Any]:
        self._drain_target(vs, rs)
        new = self.drained.add(vs, rs)
        drain.save(new, self.drain_file)  # persist first: a failed save changes nothing
        self.drained = new
        assert self.lvs is not None
        await self.lvs.set_drained(new)
        return {"message": f"drained {rs} in {vs}"}

    async def undrain(self, vs: str, rs: str) -> Mapping[str, Any]:
        new = self.drained.remove(vs, rs)
        if new == self.drained:
            if not self.config.virtual_servers:
                self._drain_target(vs, rs)  # the clearer refusal for a VRRP-only config
            raise ControlError("not_drained", f"{rs} in {vs} is not drained")
        drain.save(new, self.drain_file)
        self.drained = new
        if self.lvs is not None:
            await self.lvs.set_drained(new)
        return {"message": f"undrained {rs} in {vs}"}

    async def failover(self, instance: str) -> Mapping[str, Any]:
        if self.vrrp is None:
            raise ControlError("no_vrrp", "VRRP is not running (-C)")
        driver = self.vrrp.driver(instance)
        if driver is None:
            raise ControlError("unknown_instance", f"no VRRP instance {instance}")
        try:
            held = self.vrrp.failover(instance)
        except ValueError as exc:
            raise ControlError("not_possible", str(exc)) from None
        if held:
            msg = (
                f"{instance}: priority held at 1 so a peer takes over; "
                f"run 'pykeep ctl failover {instance}' again to restore it"
            )
        else:
            msg = f"{instance}: priority restored to {driver.params.priority}"
        return {"message": msg, "held": held}

    async def reload(self) -> Mapping[str, Any]:
        errors = await self.apply_reload()
        if errors:
            raise ControlError("reload_failed", errors[0])
        return {"message": "configuration reloaded"}
