"""Checks across the whole file, done after parsing, as keepalived does before starting.

keepalived does these in vrrp.c ``vrrp_complete_init`` / ``check_vrrp_script_security``
and check_data.c ``validate_check_config`` / ``check_check_script_security``;
the messages follow theirs so the verdict of ``-t`` is the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from pykeep.config import extensions
from pykeep.config.diagnostics import Severity
from pykeep.config.model import (
    InitialState,
    LbKind,
    Loc,
    MiscCheck,
    Protocol,
    RealServer,
    Script,
    VirtualServer,
    VrrpInstance,
    VrrpSyncGroup,
)
from pykeep.config.parser import Parser

TYPE_CHECKING = False  # typing is not imported at run time: start-up counts (``pykeep -t``)
if TYPE_CHECKING:
    from typing import Any

InterfaceExists = Callable[[str], bool]


def sys_interface_exists(name: str) -> bool:
    """Does the interface exist in this network namespace (what keepalived's netlink dump sees)."""
    if not name or "/" in name or name in (".", ".."):
        return False
    return os.path.exists(f"/sys/class/net/{name}")


def script_status(script: Script) -> str:
    """What keepalived's ``check_script_secure`` finds: "system", "found" or "missing".

    A command starting ``</`` only tests that a path opens (SC_SYSTEM); a bare
    name is searched in PATH; anything else must exist (lib/notify.c).
    """
    if not script.argv:
        return "missing"
    cmd = script.argv[0]
    if cmd.startswith("<") and cmd[1:].lstrip(" \t").startswith("/"):
        return "system"
    if "/" not in cmd:
        import shutil  # only configurations with scripts pay for it

        return "found" if shutil.which(cmd, mode=os.F_OK) else "missing"
    return "found" if os.path.exists(cmd) else "missing"


_VRRP_SCRIPT_KINDS = frozenset(
    {
        "notify_master",
        "notify_backup",
        "notify_fault",
        "notify_stop",
        "notify",
        "notify_deleted",
        "notify_master_rx_lower_pri",
        "vrrp_script",
        # the FIFOs' scripts, not the FIFOs: a FIFO is a file to write to
        # (vrrp.c check_vrrp_script_security: notify_fifo.script).
        "notify_fifo_script",
        "vrrp_notify_fifo_script",
    }
)
_CHECK_SCRIPT_KINDS = frozenset(
    {
        "misc_path",
        "quorum_up",
        "quorum_down",
        "notify_up",
        "notify_down",
        "notify_fifo_script",
        "lvs_notify_fifo_script",
    }
)
_NO_DEFAULT_USER = "unknown script user 'keepalived_script'"
_SECURITY_HINT = "add 'enable_script_security' (and 'script_user') to global_defs"
_VRRP_VIOLATION = "SECURITY VIOLATION - scripts are being executed but script_security not enabled."
_CHECK_VIOLATION = (
    "SECURITY VIOLATION - check scripts are being executed but script_security not enabled."
)
_IF_HINT = "create interface {}, fix the name, or set 'dynamic_interfaces' in global_defs"


def validate(p: Parser, interface_exists: InterfaceExists) -> None:
    """Cross-reference and environment checks; diagnostics go to ``p``.

    keepalived -t runs the checker and the VRRP process's checks one after
    the other; each stops at its first fatal problem, as here.
    """
    validate_global(p)
    validate_check(p)
    validate_vrrp(p, interface_exists)


def _secure(script: Script, g: dict[str, Any]) -> Any:
    """keepalived's ``check_script_secure`` verdict for a script that exists."""
    from pykeep.script_security import check_script_secure

    return check_script_secure(
        script,
        enforce=bool(g.get("enable_script_security")),
        default_user=g.get("script_user"),
        default_group=g.get("script_group"),
    )


def _untrack(obj: Any, disabled: set[str]) -> Any:
    """vrrp.c check_vrrp_script_security: drop tracking of disabled scripts (free_track_script)."""
    refs = getattr(obj, "track_script", ())
    kept = tuple(r for r in refs if r.name not in disabled)
    return obj if len(kept) == len(refs) else replace(obj, track_script=kept)


def validate_global(p: Parser) -> None:
    """main.c: start/shutdown scripts need script security too."""
    st = p.state
    if not st.global_defs.get("enable_script_security") and any(
        k in ("startup_script", "shutdown_script") and script_status(s) == "found"
        for k, s in st.scripts
    ):
        p.report(
            None,
            Severity.SECURITY_ERROR,
            "SECURITY VIOLATION - start/shutdown scripts are being executed but "
            "script_security not enabled.",
            _SECURITY_HINT,
        )


def validate_vrrp(p: Parser, interface_exists: InterfaceExists) -> None:
    """The VRRP process's checks.  Instances the checks did not reach still get
    their derived defaults, silently, so the model is complete whatever the verdict."""
    _validate_vrrp(p, interface_exists)
    st = p.state
    done = {id(v) for v in st.vrrp_instances if st.vrrp_meta.get(v.name, {}).get("resolved")}
    quiet = Parser(p.lex, p.root)
    st.vrrp_instances = [
        v
        if id(v) in done
        else _complete_instance(quiet, v, st.vrrp_meta.get(v.name, {}), st.global_defs)[0]
        for v in st.vrrp_instances
    ]


def _validate_vrrp(p: Parser, interface_exists: InterfaceExists) -> None:
    """vrrp_daemon.c start_vrrp and vrrp.c vrrp_complete_init, in their order."""
    st = p.state
    g = st.global_defs
    instances: list[VrrpInstance] = st.vrrp_instances

    # A missing interface stops the VRRP process before any other check.
    if not g.get("dynamic_interfaces"):
        bad = st.interface_missing
        # One look per name: 255 instances on eth0 are one interface (a sysfs
        # look-up in a namespace was half a 255-instance reload's parse).
        known: dict[str, bool] = {}
        for name, loc, what in st.interface_refs:
            if what == "lvs_sync_daemon":
                continue
            if name not in known:
                known[name] = interface_exists(name)
            if known[name]:
                continue
            bad = True
            if what == "track_interface":
                msg = f"({_owner_at(instances, loc)}) tracked interface {name} doesn't exist"
            else:
                msg = f"WARNING - interface {name} for {what} doesn't exist"
            p.report(
                loc,
                Severity.GENERAL_ERROR,
                msg,
                _IF_HINT.format(name),
            )
        if bad:
            p.report(None, Severity.BAD_IF, "Non-existent interface specified in configuration")
            return
    if not instances:
        return

    # check_vrrp_script_security (vrrp.c check_track_script_secure): a vrrp_script
    # that cannot be found, or that script security refuses, is disabled and
    # removed from every instance and sync group tracking it.
    found_script = False
    disabled: set[str] = set()
    for vs in st.vrrp_scripts:
        status = script_status(vs.script)
        if status == "missing":
            disabled.add(vs.name)
            p.report(
                vs.loc,
                Severity.GENERAL_ERROR,
                f"Disabling track script {vs.name} since not found/accessible",
                f"install {vs.script.path} or fix the path in vrrp_script {vs.name}",
            )
        elif status == "found":
            verdict = _secure(vs.script, g)
            if not verdict.runnable:
                disabled.add(vs.name)
            if verdict.reason == _NO_DEFAULT_USER and not vs.script.user:
                # global_defs came after the vrrp_script: keepalived's parent pass
                # had already set script security (vrrp_parser.c vrrp_vscript_end_handler).
                from pykeep.config.script_user import default_missing

                default_missing(p, vs.loc)
                p.report(
                    vs.loc,
                    Severity.GENERAL_ERROR,
                    f"Unable to set default user for vrrp script {vs.name} - removing",
                    f"add 'script_user USER' to global_defs, or 'user USER' to vrrp_script "
                    f"{vs.name}",
                )
                for v in instances:
                    for ref in v.track_script if isinstance(v, VrrpInstance) else ():
                        if ref.name == vs.name:
                            p.report(
                                ref.loc,
                                Severity.GENERAL_ERROR,
                                f"({v.name}) track script {vs.name} not found, ignoring...",
                                f"define 'vrrp_script {vs.name} {{ … }}' above the block "
                                "that uses it",
                            )
            elif verdict.inhibited:
                p.report(
                    vs.loc,
                    Severity.GENERAL_ERROR,
                    f"Disabling track script {vs.name} due to insecure",
                    f"{verdict.reason}: make every directory of {verdict.path} and the "
                    "script owned by root and writable only by root",
                )
        found_script |= status == "found"
    if disabled:
        st.vrrp_scripts = [vs for vs in st.vrrp_scripts if vs.name not in disabled]
        instances = st.vrrp_instances = [
            _untrack(v, disabled) if isinstance(v, VrrpInstance) else v for v in instances
        ]
        st.vrrp_sync_groups = [(_untrack(sg, disabled), m) for sg, m in st.vrrp_sync_groups]
    if not g.get("enable_script_security") and (
        found_script
        or any(
            k in _VRRP_SCRIPT_KINDS and k != "vrrp_script" and script_status(s) == "found"
            for k, s in st.scripts
        )
    ):
        # vrrp.c check_vrrp_script_security adds SC_INSECURE's sentence.
        insecure = any(
            _secure(s, g).insecure
            for k, s in st.scripts
            if k in _VRRP_SCRIPT_KINDS and script_status(s) == "found"
        )
        message = _VRRP_VIOLATION + (" There are insecure scripts." if insecure else "")
        p.report(None, Severity.SECURITY_ERROR, message, _SECURITY_HINT)

    # chk_min_cfg: every instance needs a VRID and an interface (or unicast peers).
    for v in instances:
        hint = None
        if v.virtual_router_id == 0:
            msg, hint = "the virtual router id must be set", "add 'virtual_router_id N' (1-255)"
        elif v.interface == "lo" and not v.unicast_peers:
            p.report(
                v.loc,
                Severity.GENERAL_ERROR,
                f"({v.name}) cannot use a loopback interface (lo) for vrrp - ignoring",
                "name a real interface",
            )
            msg, hint = "Unknown interface!", "add 'interface IFACE' (or unicast_peer addresses)"
        elif v.interface is None and not v.unicast_peers:
            msg, hint = "Unknown interface!", "add 'interface IFACE' (or unicast_peer addresses)"
        if hint is not None:
            p.report(v.loc, Severity.GENERAL_ERROR, f"({v.name}) {msg}", hint)
            return

    names = {v.name for v in instances}
    groups: list[VrrpSyncGroup] = []
    for sg, members in st.vrrp_sync_groups:
        if not members:
            p.report(
                sg.loc,
                Severity.GENERAL_ERROR,
                f"Sync group {sg.name} has no virtual router(s). removing",
                f"add 'group {{ INSTANCE … }}' to vrrp_sync_group {sg.name}",
            )
            continue
        ok: list[str] = []
        for m, loc in members:
            if m not in names:
                p.report(
                    loc,
                    Severity.GENERAL_ERROR,
                    f"Virtual router {m} specified in sync "
                    f"group {sg.name} doesn't exist - ignoring",
                    "name an existing vrrp_instance",
                )
            else:
                ok.append(m)
        if not ok:
            # vrrp.c vrrp_complete_init: a group none of whose members exist is dropped.
            p.report(
                sg.loc,
                Severity.GENERAL_ERROR,
                f"Sync group {sg.name}, no matching virtual router found in group "
                "declaration - removing",
                f"name existing vrrp_instances in vrrp_sync_group {sg.name}, or remove it",
            )
            continue
        if len(ok) == 1:
            p.report(
                sg.loc,
                Severity.GENERAL_ERROR,
                f"Sync group {sg.name} has only 1 virtual router(s) - "
                "this probably isn't what you want",
                "a sync group needs at least two vrrp_instances",
            )
        groups.append(sg)
    st.vrrp_sync_groups = [(g2, ()) for g2 in groups]

    resolved: list[VrrpInstance] = []
    for v in instances:
        meta = st.vrrp_meta.setdefault(v.name, {})
        done, fine = _complete_instance(p, v, meta, g)
        meta["resolved"] = True
        resolved.append(done)
        if not fine:
            st.vrrp_instances = resolved + instances[len(resolved) :]
            return
    st.vrrp_instances = resolved

    seen: dict[tuple[str | None, int, int, object], VrrpInstance] = {}
    for v in resolved:
        # Different multicast groups never conflict (vrrp.c check_vrid_conflicts).
        key = (v.interface, v.virtual_router_id, v.family, v.mcast_dst_ip)
        other = seen.get(key)
        if other is not None:
            p.report(
                v.loc,
                Severity.GENERAL_ERROR,
                f"({v.name}) duplicate VRID conflict with {other.name} VRID {v.virtual_router_id}",
                "give each instance on one interface its own virtual_router_id",
            )
            return
        seen[key] = v


def validate_check(p: Parser) -> None:
    """check_data.c validate_check_config and check_check_script_security."""
    st = p.state
    vsgs = {x.name: x for x in st.virtual_server_groups}
    kept = []
    for vs, built in st.virtual_servers:
        if vs.group is not None and vs.group not in vsgs:
            # ipwrapper.c only logs this.
            p.report(
                vs.loc,
                Severity.INFO,
                f"Virtual server group {vs.group} specified but not configured - ignoring",
                f"define 'virtual_server_group {vs.group} {{ … }}' or fix the name",
            )
            continue
        checked = _check_vs(p, vs, built, vsgs.get(vs.group or ""))
        if checked is not None:
            kept.append(checked)
    _say_unmailed_checker_changes(p, kept)
    st.virtual_servers = [(vs, None) for vs in kept]
    extensions.validate(p)  # FNAT's local address groups (pykeep's own keywords)
    # A MISC_CHECK dropped for its user no longer runs its script, so it does not
    # count against script security (check_data.c check_check_script_security).
    live_misc = {
        c.misc_path.loc
        for vs in kept
        for rs in vs.real_servers
        for c in rs.checkers
        if isinstance(c, MiscCheck) and c.misc_path is not None
    }
    if (
        kept
        and not st.global_defs.get("enable_script_security")
        and any(
            k in _CHECK_SCRIPT_KINDS
            and (k != "misc_path" or s.loc in live_misc)
            and script_status(s) == "found"
            for k, s in st.scripts
        )
    ):
        # check_data.c check_check_script_security adds SC_INSECURE's sentence.
        insecure = any(
            _secure(s, st.global_defs).insecure
            for k, s in st.scripts
            if k in _CHECK_SCRIPT_KINDS
            and (k != "misc_path" or s.loc in live_misc)
            and script_status(s) == "found"
        )
        message = _CHECK_VIOLATION + (" There are insecure scripts." if insecure else "")
        p.report(None, Severity.SECURITY_ERROR, message, _SECURITY_HINT)


def _complete_instance(
    p: Parser, v: VrrpInstance, meta: dict[str, bool], g: dict[str, Any]
) -> tuple[VrrpInstance, bool]:
    """Defaults that depend on other settings, and the consistency checks of
    vrrp.c ``vrrp_complete_instance``; returns the instance as keepalived would run it."""
    name = v.name
    err = Severity.GENERAL_ERROR

    def report(msg: str, hint: str) -> None:
        p.report(v.loc, err, f"({name}) {msg}", hint)

    version = (
        v.version if meta.get("version_set") else (3 if v.family == 6 else g.get("vrrp_version", 2))
    )
    strict = v.strict_mode if v.strict_mode is not None else bool(g.get("vrrp_strict"))
    master = v.initial_state is InitialState.MASTER
    prio = v.priority if meta.get("priority_set") else (255 if master else 100)
    if not v.virtual_ipaddress:
        if version == 3 or strict:
            report("No VIP specified; at least one is required", "add a virtual_ipaddress block")
            return v, False
        else:
            report("No VIP specified; at least one is sensible", "add a virtual_ipaddress block")
    if strict and master != (prio == 255):
        report(
            "State MASTER must match being address owner",
            "with vrrp_strict, use state MASTER only with priority 255",
        )
    auth = v.auth_type
    if auth is not None:
        if strict:
            report(
                "Strict mode does not support authentication. Ignoring.",
                "remove the authentication block (vrrp_strict forbids it)",
            )
            auth = None
        elif version == 3:
            report(
                "VRRP version 3 does not support authentication. Ignoring.",
                "remove the authentication block for VRRPv3",
            )
            auth = None
        elif not meta.get("has_auth_pass"):
            report(
                "Authentication specified but no password given. Ignoring",
                "add 'auth_pass SECRET' to the authentication block",
            )
            auth = None
        elif v.family == 6 and auth == "AH":
            report("Cannot use AH authentication with IPv6. ignoring", "use auth_type PASS or none")
            auth = None
        elif auth == "AH" and master and prio != 255:
            report(
                "Initial state master is incompatible with AH authentication - clearing",
                "use 'state BACKUP' with AH (or auth_type PASS)",
            )
            master = False
    if strict and v.unicast_peers:
        report(
            "Unicast peers are not supported in strict mode", "remove vrrp_strict or unicast_peer"
        )
    if v.unicast_peers and v.interface is None and v.unicast_src_ip is None:
        p.report(
            v.loc,
            err,
            f"({name}): Unicast instances must have unicast_src_ip or interface",
            "add 'interface IFACE' or 'unicast_src_ip IP'",
        )
    if meta.get("unicast_configured") and not v.unicast_peers and not v.unicast_fault_no_peer:
        # vrrp.c vrrp_complete_instance: multicast after all, deprecated since 2.2.4.
        p.report(
            v.loc,
            Severity.DEPRECATED,
            f"({name}) A unicast keyword has been specified without any unicast peers. "
            "Defaulting to multicast. This usage is deprecated - please update your "
            "configuration.",
            "add unicast_peer addresses, or remove the unicast keywords",
        )
    nopreempt = v.nopreempt
    delay = v.preempt_delay
    if prio == 255 and nopreempt:
        report(
            "nopreempt is incompatible with priority 255. resetting nopreempt",
            "remove nopreempt, or lower the priority",
        )
        nopreempt = False
    if master:
        if nopreempt:
            report(
                "Warning - nopreempt will not work with initial state MASTER - clearing",
                "use 'state BACKUP' with nopreempt",
            )
            nopreempt = False
        if delay:
            report(
                "Warning - preempt delay will not work with initial state MASTER - clearing",
                "use 'state BACKUP' with preempt_delay",
            )
            delay = 0.0
    if delay:
        if strict:
            report(
                "preempt_delay is incompatible with strict mode - resetting", "remove preempt_delay"
            )
            delay = 0.0
        if nopreempt:
            report(
                "preempt_delay is incompatible with nopreempt mode - resetting",
                "use either nopreempt or preempt_delay",
            )
            delay = 0.0
    downs = v.down_timer_adverts
    if downs is None:
        downs = int(g.get("vrrp_down_timer_adverts", 3))
    if strict and downs != 3:
        report(
            "down_timer_adverts is incompatible with strict mode - resetting",
            "remove down_timer_adverts (strict mode counts 3 adverts)",
        )
    accept = v.accept
    if accept is None:
        accept = True if prio == 255 else not strict
    if accept and prio != 255 and strict and version == 2:
        report(
            "warning - accept mode for VRRP version 2 does not comply with RFC3768 - resetting",
            "remove 'accept' or use VRRPv3",
        )
        accept = False
    if strict and v.garp_lower_prio_repeat:
        report(
            "Strict mode requires no repeat garps. resetting",
            "remove garp_lower_prio_repeat (strict mode sends no lower-priority GARPs)",
        )
    if strict and v.garp_lower_prio_delay:
        report(
            "Strict mode requires no repeat garp delay. resetting",
            "remove garp_lower_prio_delay (strict mode sends no lower-priority GARPs)",
        )
    if strict and v.lower_prio_no_advert is False:
        report(
            "Strict mode requires no lower priority advert. resetting",
            "remove 'lower_prio_no_advert false' (strict mode never answers lower priorities)",
        )
    if strict and v.higher_prio_send_advert:
        report(
            "strict mode requires higher_prio_send_advert to be clear. resetting",
            "remove higher_prio_send_advert (strict mode never sends it)",
        )
    adv = v.advert_int
    if version == 2:
        if adv >= 256:
            report(
                f"VRRPv2 advertisement interval {adv:.2f}s "
                "is out of range. Must be less than 256s.",
                "advert_int takes 1..255 seconds with VRRPv2",
            )
            adv = 255.0
        elif adv != int(adv):
            report(
                f"VRRPv2 advertisement interval {adv:f}s must be an integer. rounding",
                "VRRPv2 advert_int is whole seconds; use version 3 for sub-second",
            )
            adv = float(max(1, round(adv)))
    else:
        if adv >= 40.96:
            report(
                f"VRRPv3 advertisement interval {adv:.2f}s "
                "is out of range. Must be less than 40.96s.",
                "advert_int takes up to 40.95 seconds with VRRPv3",
            )
            adv = 40.95
        elif round(adv * 100) != adv * 100:
            report(
                f"VRRPv3 advertisement interval {adv:f}s must be in units of 10ms - rounding",
                "use a multiple of 0.01 s",
            )
            adv = round(adv * 100) / 100
    if v.vmac_xmit_base and v.use_vmac is None:
        # vrrp.c vrrp_complete_instance.
        report("vmac_xmit_base is only valid with a vmac", "add use_vmac, or remove vmac_xmit_base")
    vmac, vmac_mac, xmit_base = _complete_vmac(p, v, strict, g)
    ipvlan = v.use_ipvlan
    if ipvlan is not None:
        ipvlan = _vmac_name(p, v, ipvlan, g)
    if meta.get("ipvlan"):
        # vrrp.c vrrp_complete_instance: an ipvlan needs its own address, of the
        # instance's family (printed without a line, as keepalived does).
        fam = 4 if meta.get("ipvlan_v4") else 6 if meta.get("ipvlan_v6") else None
        if v.family == 4 and fam is None:
            report(
                "IPv4 ipvlan requires a source ip address to be configured. "
                "setting instance to fault state",
                "give use_ipvlan an address: use_ipvlan 192.0.2.5/24",
            )
        elif fam is not None and fam != v.family:
            report(
                "IPv4 ipvlan address family does not match instance. "
                "setting instance to fault state",
                "give use_ipvlan an address of the instance's family",
            )
    if meta.get("own_tracked"):
        report(
            f"Ignoring track_interface {v.interface} since own interface",
            f"remove {v.interface} from track_interface (dont_track_primary stops tracking it)",
        )
    promote = v.promote_secondaries
    if promote and (vmac is not None or meta.get("ipvlan")):
        report(
            "promote_secondaries is automatically set for vmacs - ignoring",
            "remove promote_secondaries (the VMAC has it on)",
        )
        promote = False
    done = replace(
        v,
        promote_secondaries=promote,
        use_vmac=vmac,
        use_ipvlan=ipvlan,
        vmac_mac=vmac_mac,
        vmac_xmit_base=xmit_base,
        version=int(version),
        priority=prio,
        initial_state=InitialState.MASTER if master else InitialState.BACKUP,
        auth_type=auth,
        nopreempt=nopreempt,
        preempt_delay=delay,
        accept=accept,
        advert_int=adv,
    )
    return done, True


# The checkers whose changes keepalived e-mails (check_tcp.c tcp_epilog and its
# twins; pykeep/smtp.py CHECKER_TEXT); FILE_CHECK mails nothing.
_MAILING_CHECKERS = frozenset(
    {"TCP_CHECK", "UDP_CHECK", "HTTP_GET", "SSL_GET", "SMTP_CHECK", "DNS_CHECK", "PING_CHECK",
     "MISC_CHECK"}
)  # fmt: skip


def _say_unmailed_checker_changes(p: Parser, kept: list[VirtualServer]) -> None:
    """pykeep e-mails a real server's changes of state, which is all keepalived
    mails with ``no_checker_emails``; without it keepalived also mails a checker
    changing while another keeps the server down.  Said once for each real
    server with several mailing checkers, where alerts are on."""
    g = p.state.global_defs
    if not g.get("notification_email") or not g.get("smtp_server") or g.get("no_checker_emails"):
        return
    for vs in kept:
        for rs in vs.real_servers:
            # check_data.c validate_check_config: a real server's alerts default to on
            on = next(
                (v for v in (rs.smtp_alert, g.get("smtp_alert_checker"), g.get("smtp_alert"))
                 if v is not None),
                True,
            )  # fmt: skip
            n = sum(1 for c in rs.checkers if c.keyword in _MAILING_CHECKERS)
            if on and n > 1:
                p.report(
                    rs.loc,
                    Severity.INFO,
                    f"real server {rs.address} has {n} checkers: pykeep e-mails its changes"
                    " of state (as keepalived does with no_checker_emails), not a checker's"
                    " change while another keeps it down",
                )


def _complete_vmac(
    p: Parser, v: VrrpInstance, strict: bool, g: dict[str, Any]
) -> tuple[str | None, str | None, bool]:
    """The VMAC's name, MAC and xmit_base as vrrp.c ``vrrp_complete_instance`` settles them.

    Strict mode drops a configured MAC and ``vmac_xmit_base``; a five-octet
    MAC gets the VRID as its last octet; an unnamed VMAC is called
    ``PREFIX.VRID`` (``create_vmac_name``, PREFIX from ``vmac_prefix``,
    else "vrrp"), the prefix cut so that the name fits IFNAMSIZ.
    """
    if v.use_vmac is None:
        return None, None, v.vmac_xmit_base
    mac = v.vmac_mac
    if strict and mac is not None:
        p.report(
            v.loc,
            Severity.GENERAL_ERROR,
            f"({v.name}): cannot specify MAC address with strict mode - clearing",
            "remove the MAC address from use_vmac (strict mode uses the RFC's)",
        )
        mac = None
    if mac is not None and mac.count(":") == 4:
        mac += f":{v.virtual_router_id:02x}"
    xmit_base = v.vmac_xmit_base
    if strict and xmit_base:
        p.report(
            v.loc,
            Severity.GENERAL_ERROR,
            f"({v.name}) xmit_base is incompatible with strict mode - resetting",
            "remove vmac_xmit_base (strict mode sends adverts from the VMAC)",
        )
        xmit_base = False
    return _vmac_name(p, v, v.use_vmac, g), mac, xmit_base


def _vmac_name(p: Parser, v: VrrpInstance, name: str, g: dict[str, Any]) -> str:
    """vrrp.c ``create_vmac_name``: an unnamed VMAC or ipvlan is ``PREFIX.VRID``,
    or, when another instance has that name (configured, or settled before
    this one in config order), ``PREFIXn.VRID``: n = 1, 2, … for IPv4, n = 6
    first then 1, 2, … (skipping 6) for IPv6 -- so an IPv6 instance sharing a
    VRID with an IPv4 one gets ``vrrp6.VRID``.  The prefix is cut to fit
    IFNAMSIZ.  (keepalived also steps past a name an existing interface has;
    pykeep takes such a link over, as it does a VMAC left by a previous run.)"""
    if name:
        return name
    prefix = str(g.get("vmac_prefix") or "vrrp")
    links = [o for o in p.state.vrrp_instances if (o.use_vmac, o.use_ipvlan) != (None, None)]
    taken = {o.use_vmac or o.use_ipvlan for o in links} - {""}
    for o in links:
        if o.use_vmac or o.use_ipvlan:
            continue
        got = _default_vmac_name(prefix, o.virtual_router_id, o.family, taken)
        if o.name == v.name:
            return got
        taken.add(got)
    return _default_vmac_name(prefix, v.virtual_router_id, v.family, taken)


def _default_vmac_name(prefix: str, vrid: int, family: int, taken: set[str | None]) -> str:
    num = 0
    while True:
        tail = f"{num or ''}.{vrid}"
        name = prefix[: 15 - len(tail)] + tail
        if name not in taken or num > 255:
            return name
        if family == 6:
            num = 6 if num == 0 else 1 if num == 6 else num + 1 + (num + 1 == 6)
        else:
            num += 1


def _check_vs(
    p: Parser, vs: VirtualServer, built: dict[str, Any], vsg: Any
) -> VirtualServer | None:
    """check_data.c ``validate_check_config`` for one virtual server.

    Returns the server as keepalived goes on to use it (the corrections its
    messages announce applied), or None when it is dropped.
    """
    err = Severity.GENERAL_ERROR
    name = vs.key

    def report(msg: str, hint: str) -> None:
        p.report(vs.loc, err, msg, hint)

    if not vs.real_servers:
        # Checked before the protocol defaults: FMT_VS names an unset one "none".
        named = name if "protocol" in built else _with_proto(name, "none")
        report(f"Virtual server {named} has no real servers - ignoring", "add a real_server block")
        return None
    entries = vsg.entries if vsg is not None else ()
    vsg_fw = any(e.fwmark is not None for e in entries)
    vsg_addr = [e for e in entries if e.fwmark is None]
    if vs.ha_suspend and (vs.fwmark is not None or vsg_fw):
        report(
            f"Virtual server {name}: cannot use ha_suspend with fwmarks - clearing ha_suspend",
            "remove ha_suspend from fwmark services",
        )
    by_address = bool(vsg_addr) if vsg is not None else vs.fwmark is None
    proto_set = "protocol" in built
    if by_address:
        if not proto_set:
            # keepalived names the protocol as it stands: none, then UDP from here on.
            report(
                f"Virtual server {_with_proto(name, 'none')}: no protocol set - defaulting to UDP",
                "add 'protocol TCP' (or UDP/SCTP); without it the service is UDP, as in keepalived",
            )
            name = _with_proto(name, "udp")
        elif vs.ops and vs.protocol.value != "UDP":
            report(
                f"Virtual server {name}: one packet scheduling requires UDP - resetting",
                "remove 'ops' or use protocol UDP",
            )
        if not vs.persistence_timeout and vsg is None and vs.fwmark is None and not vs.port:
            report(
                f"Virtual server {name}: zero port only valid for persistent services - setting",
                "give the virtual server a port, or set persistence_timeout",
            )
    if not vs.persistence_timeout and vsg is not None and any(not e.port for e in vsg_addr):
        report(
            f"Virtual server {name}: zero port only valid for persistent services - setting",
            "give every group entry a port, or set persistence_timeout",
        )
    if proto_set and ((vsg is not None and not vsg_addr and vsg_fw) or (vsg is None and vs.fwmark)):
        report(
            f"Warning: Virtual server {name}: protocol specified for fwmark - "
            "protocol will be ignored",
            "remove 'protocol' from fwmark virtual servers",
        )
    if "lb_algo" not in built:
        report(
            f"Virtual server {name}: no scheduler set, setting default 'wlc'",
            "add 'lb_algo wlc' (or rr, wrr, lc, sh …)",
        )
    vs_kind = vs.lb_kind if "lb_kind" in built else None
    seen: set[tuple[Any, Any]] = set()
    weight_sum = 0
    told_fwd = False
    for rs in vs.real_servers:
        key = (rs.address, rs.port or 0)
        if key in seen:
            report(
                f"VS {name}: real server [{rs.address}]:{rs.port or 0} "
                "is duplicated - removing second rs",
                "list each real server once",
            )
            continue
        seen.add(key)
        if rs.lb_kind is None and vs_kind is None and not told_fwd:
            report(
                f"Virtual server {name}: no forwarding method set, setting default NAT",
                "add 'lb_kind NAT' (or DR/TUN)",
            )
            told_fwd = True
        weight_sum += rs.weight
    ss = vs.sorry_server
    if ss is not None and ss.lb_kind is None and vs_kind is None and not told_fwd:
        report(
            f"Virtual server {name}: no forwarding method set, setting default NAT",
            "add 'lb_kind NAT' (or DR/TUN)",
        )
    if vs.quorum > weight_sum:
        report(
            f"Warning - quorum {vs.quorum} for {name} exceeds total weight of real servers "
            f"{weight_sum}, reducing quorum to {weight_sum}",
            "lower quorum or raise weights",
        )
    quorum = min(vs.quorum, weight_sum)
    if vs.hysteresis >= quorum:
        report(
            f"Virtual server {name}: hysteresis {vs.hysteresis} >= quorum {quorum}; "
            f"setting hysteresis to {quorum - 1}",
            "hysteresis must be below quorum",
        )
    nat = LbKind.NAT

    def kind(r: RealServer) -> LbKind:
        return r.lb_kind or vs_kind or nat

    if vsg is not None:
        if vsg_fw:
            for rs in vs.real_servers:
                if kind(rs) is not nat and rs.port:
                    report(
                        f"WARNING - fwmark virtual server {name}, real server "
                        f"[{rs.address}]:{rs.port} has port specified - port will be ignored",
                        "drop the port of real servers of fwmark services",
                    )
            if ss is not None and kind(ss) is not nat and ss.port:
                report(
                    f"WARNING - fwmark virtual server {name}, sorry server has port specified "
                    "- port will be ignored",
                    "drop the sorry server's port",
                )
        for e in vsg_addr:
            for rs in vs.real_servers:
                if kind(rs) is not nat and rs.port and rs.port != (e.port or 0):
                    report(
                        f"virtual server {name}:[{e.address}] and real server "
                        f"[{rs.address}]:{rs.port} ports don't match",
                        "with DR/TUN the real server port must equal the virtual port",
                    )
            if ss is not None and kind(ss) is not nat and ss.port and ss.port != (e.port or 0):
                report(
                    f"WARNING - virtual server {name}, sorry server has port specified - "
                    "port will be ignored",
                    "drop the sorry server's port",
                )
    else:
        for r in (*vs.real_servers, *((ss,) if ss is not None else ())):
            if kind(r) is nat:
                continue
            what = "sorry server" if r is ss else f"real server [{r.address}]:{r.port}"
            if vs.fwmark is not None:
                if r.port:
                    report(
                        f"WARNING - fwmark virtual server {name}, "
                        f"{what} has port specified - clearing",
                        "drop the port of real servers of fwmark services",
                    )
            elif r.port and r.port != vs.port:
                report(
                    f"WARNING - virtual server {name} and {what} ports don't match - resetting",
                    "with DR/TUN the real server port must equal the virtual port",
                )
    return _corrected(vs, proto_set or not by_address, kind, vsg is None)


def _with_proto(key: str, proto: str) -> str:
    """A virtual server's ``[ADDR]:PROTO:PORT`` name with another protocol."""
    head, sep, rest = key.partition("]:")
    if not sep or ":" not in rest:
        return key
    return f"{head}]:{proto}:{rest.split(':', 1)[1]}"


def _corrected(
    vs: VirtualServer, proto_set: bool, kind: Callable[[RealServer], LbKind], single: bool
) -> VirtualServer:
    """Apply what check_data.c ``validate_check_config`` corrects, not just reports.

    The kernel takes protocol 0 as UDP, so keepalived sets UDP explicitly. A
    NAT real server without a port takes the virtual port; a DR/TUN one must
    use the virtual port (reset), or none at all under a fwmark (cleared).
    Health checkers connect to these ports, so they must be the corrected ones.
    """
    changes: dict[str, Any] = {}
    if not proto_set:
        changes["protocol"] = Protocol.UDP
    if single:

        def port_of(r: RealServer) -> int | None:
            if kind(r) in (LbKind.NAT, LbKind.FNAT):
                return r.port if (vs.fwmark is not None or r.port) else vs.port
            return None if vs.fwmark is not None else vs.port

        servers: list[RealServer] = []
        changed = False
        for r in vs.real_servers:
            port = port_of(r)
            if port != r.port:
                r = replace(r, port=port, checkers=_pinned(r.checkers, r.port))
                changed = True
            servers.append(r)
        if changed:
            changes["real_servers"] = tuple(servers)
        ss = vs.sorry_server
        if ss is not None and kind(ss) is not LbKind.NAT and port_of(ss) != ss.port:
            changes["sorry_server"] = replace(ss, port=port_of(ss))
    return replace(vs, **changes) if changes else vs


def _pinned(checkers: tuple[Any, ...], written: int | None) -> tuple[Any, ...]:
    """Checkers keep the real server's port as written.

    keepalived copies the real server's address into each checker when it
    parses the checker (check_api.c ``queue_checker``: ``co->dst = rs->addr``);
    the port corrections of check_data.c ``validate_check_config`` come later
    and change only the real server.  So a DR/TUN server of a fwmark service
    is checked on its configured port, and one written without a port on
    port 0, as keepalived checks them.
    """
    out = []
    for c in checkers:
        common = getattr(c, "common", None)
        if common is not None and common.connect_port is None:
            c = replace(c, common=replace(common, connect_port=written or 0))
        out.append(c)
    return tuple(out)


def _owner_at(instances: list[VrrpInstance], loc: Loc) -> str:
    best: Any = None
    for v in instances:
        if (
            v.loc.file == loc.file
            and v.loc.line <= loc.line
            and (best is None or v.loc.line > best.loc.line)
        ):
            best = v
    return best.name if best is not None else "?"
