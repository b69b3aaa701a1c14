"""``pykeep ctl``: the operator's command line over the control socket.

    pykeep ctl status [--json]
    pykeep ctl drain VS RS        # e.g. drain 10.0.0.1:80 192.168.1.10:80
    pykeep ctl undrain VS RS
    pykeep ctl failover INSTANCE
    pykeep ctl reload

Every command takes ``--socket PATH`` (default /run/pykeep/control.sock).
Exit status: 0 done, 1 refused by the daemon (the message says why),
2 usage error or daemon unreachable.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from pykeep.ops.control import DEFAULT_SOCKET, ControlUnavailable, call


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, like argparse but no usage dump
        self.exit(2, f"pykeep ctl: {message}\n")


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--socket",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"control socket (default {DEFAULT_SOCKET})",
    )
    p = _Parser(prog="pykeep ctl", description="Talk to a running pykeep.", parents=[common])
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    st = sub.add_parser("status", parents=[common], help="instances, VIPs, real servers")
    st.add_argument("--json", action="store_true", help="the raw status object")
    for name, verb in (("drain", "set weight 0 until undrained"), ("undrain", "restore weight")):
        d = sub.add_parser(name, parents=[common], help=verb)
        d.add_argument("vs", metavar="VS", help="IP:PORT[/proto], fwmark N or group NAME")
        d.add_argument("rs", metavar="RS", help="IP[:PORT]")
    f = sub.add_parser("failover", parents=[common], help="hand an instance to its peer")
    f.add_argument("instance", metavar="INSTANCE")
    sub.add_parser("reload", parents=[common], help="re-read the configuration (SIGHUP)")
    return p


def _when(at: float | None) -> str:
    if not at:
        return "-"
    return datetime.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def render_status(status: Mapping[str, Any], out: TextIO) -> None:
    """The human form of ``status``: one block per instance, one line per real server."""
    for inst in status.get("vrrp_instances", []):
        prio = f"priority {inst['base_priority']}"
        if inst["effective_priority"] != inst["base_priority"]:
            prio += f" (effective {inst['effective_priority']})"
        if inst.get("failover_active"):
            prio += " [failover]"
        iface = inst.get("interface") or "-"
        out.write(f"{inst['name']}: {inst['state']} vrid {inst['vrid']} on {iface}, {prio}\n")
        for vip in inst.get("vips", []):
            out.write(f"    vip {vip}\n")
        last = inst.get("last_transition")
        if last:
            out.write(
                f"    last transition {_when(last['at'])}: {last['from_state']} -> "
                f"{last['to_state']} ({last['reason']})\n"
            )
    for vs in status.get("virtual_servers", []):
        quorum = "up" if vs.get("quorum_up", True) else "DOWN"
        out.write(f"{vs['key']} {vs['lb_algo']}/{vs['lb_kind']} quorum {quorum}\n")
        for rs in vs.get("real_servers", []):
            host = f"[{rs['address']}]" if ":" in rs["address"] else rs["address"]
            name = host if rs.get("port") is None else f"{host}:{rs['port']}"
            health = "up" if rs["alive"] else "DOWN"
            flags = " DRAINED" if rs.get("drained") else ""
            out.write(
                f"    {name:<24} {health:<4} weight {rs['effective_weight']}/{rs['weight']}"
                f"{flags}\n"
            )
    for vs, rs in status.get("drained_unknown", []):
        out.write(f"drained but not configured: {vs} {rs}\n")


def main(argv: list[str]) -> int:
    """Entry point for ``pykeep ctl …`` (``argv`` excludes ``pykeep ctl`` itself)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    request: dict[str, Any] = {"cmd": args.cmd}
    if args.cmd in ("drain", "undrain"):
        request.update(vs=args.vs, rs=args.rs)
    elif args.cmd == "failover":
        request["instance"] = args.instance
    path = getattr(args, "socket", DEFAULT_SOCKET)
    try:
        response = call(request, path)
    except ControlUnavailable as exc:
        print(f"pykeep ctl: {exc}", file=sys.stderr)
        return 2
    if not isinstance(response, dict) or "ok" not in response:
        print("pykeep ctl: malformed answer from the daemon", file=sys.stderr)
        return 2
    if not response["ok"]:
        err = response.get("error") or {}
        print(f"pykeep ctl: {args.cmd}: {err.get('message', 'refused')}", file=sys.stderr)
        return 1
    result = response.get("result") or {}
    if args.cmd == "status":
        if args.json:
            json.dump(result, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            render_status(result, sys.stdout)
    else:
        message = result.get("message") if isinstance(result, dict) else None
        print(message or f"{args.cmd}: ok")
    return 0
