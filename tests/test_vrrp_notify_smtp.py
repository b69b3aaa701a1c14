"""SMTP alerts (``smtp_alert``, ``notification_email*``, ``smtp_server``) beside keepalived.

A real SMTP server (aiosmtpd) runs inside the router's namespace and records
every message with its envelope and the HELO name; the same config runs
under keepalived and under pykeep in turn, and the recorded messages must
agree: envelope, headers, subject and body, which instances and groups mail
and for which states.  ``Date`` differs by nature; ``X-Mailer`` names the
sending program.

``no_email_faults`` is on: VI_3 tracks a link the test takes down and brings
back, and mails BACKUP and MASTER again but never FAULT (vrrp_notify.c
``send_instance_notifies``: the FAULT alert is skipped and the last state
mailed stays MASTER, so the way back is mailed).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
import trio

from pykeep.config.model import GlobalDefs
from pykeep.smtp import Mailer
from sim.netns import Rig
from tests.netns_vrrp import PY, lan, router, until, workdir
from vrrp.notify import Notifier

Make = Callable[..., Rig]
PORT = 2525

SERVER = r"""
import asyncio, json, sys
from aiosmtpd.controller import Controller
out = sys.argv[1]
class H:
    async def handle_DATA(self, server, session, envelope):
        with open(out, "a") as f:
            f.write(json.dumps({"helo": session.host_name, "from": envelope.mail_from,
                                "to": envelope.rcpt_tos,
                                "data": envelope.original_content.decode()}) + "\n")
        return "250 OK"
c = Controller(H(), hostname="127.0.0.1", port=int(sys.argv[2]))
c.start()
print("ready", flush=True)
try:
    sys.stdin.read()
finally:
    c.stop()
"""


def test_message_format_is_keepalived_s() -> None:
    g = GlobalDefs(
        router_id="r1",
        notification_email=("a@x", "b@x"),
        notification_email_from="k@x",
        smtp_server="127.0.0.1 2525",
        smtp_helo_name="h.x",
    )
    m = Mailer.from_config(g)
    assert m is not None and m.port == 2525 and m.helo == "h.x"
    alert = m.vrrp_alert("INSTANCE", "VI_1", "MASTER")
    assert alert is not None
    assert alert.subject == "[r1] VRRP Instance VI_1 - Entering MASTER state"
    assert alert.body == "=> VRRP Instance is now owning VRRP VIPs <="
    data = m.message(alert, now=0).decode()
    assert data.endswith(
        "\r\nTo: a@x, b@x\r\n\r\n=> VRRP Instance is now owning VRRP VIPs <=\r\n\r\n.\r\n"
    )
    assert "\r\nFrom: k@x\r\nSubject: [r1] VRRP Instance VI_1 - Entering MASTER state\r\n" in data
    group = m.vrrp_alert("GROUP", "G", "BACKUP")
    assert group is not None and group.subject == "[r1] VRRP Group G - Entering BACKUP state"
    assert Mailer.from_config(GlobalDefs(smtp_server="127.0.0.1")) is None  # no address: no mail


def test_alert_defaults_follow_global_defs() -> None:
    """vrrp.c vrrp_complete_instance: smtp_alert_vrrp, else smtp_alert, else no mail."""

    async def main() -> tuple[bool, ...]:
        out = []
        async with trio.open_nursery() as nursery:
            base = GlobalDefs(notification_email=("a@x",), smtp_server="127.0.0.1 1")
            for g in (
                base,
                replace(base, smtp_alert=True),
                replace(base, smtp_alert=True, smtp_alert_vrrp=False),
                replace(base, smtp_alert_vrrp=True),
            ):
                out.append(Notifier(nursery, global_defs=g).smtp_default)
            nursery.cancel_scope.cancel()
        return tuple(out)

    assert trio.run(main) == (False, True, False, True)


def _conf() -> str:
    return f"""
global_defs {{
    router_id pk
    notification_email {{
        ops@example.com
        dev@example.com
    }}
    notification_email_from vrrp@example.com
    smtp_server 127.0.0.1 {PORT}
    smtp_helo_name helo.example.com
    smtp_connect_timeout 5
    no_email_faults
}}
vrrp_sync_group G {{
    group {{
        VI_1
        VI_2
    }}
    smtp_alert
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    smtp_alert
    virtual_ipaddress {{
        10.99.0.201/32
    }}
}}
vrrp_instance VI_2 {{
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority 120
    advert_int 1
    virtual_ipaddress {{
        10.99.0.202/32
    }}
}}
vrrp_instance VI_3 {{
    state BACKUP
    interface eth0
    virtual_router_id 53
    priority 100
    advert_int 1
    smtp_alert
    track_interface {{
        t0
    }}
    virtual_ipaddress {{
        10.99.0.203/32
    }}
}}
"""


def _messages(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        rec = json.loads(line)
        msg = message_from_bytes(rec["data"].encode())
        body = msg.get_payload()
        assert isinstance(body, str)
        out.append(
            {
                "helo": rec["helo"],
                "envelope": (rec["from"], rec["to"]),
                "headers": [k for k in msg if k not in ("X-Peer", "X-MailFrom", "X-RcptTo")],
                "from": msg["From"],
                "to": msg["To"],
                "subject": msg["Subject"],
                "body": body,
                "has_date": bool(msg["Date"]),
            }
        )
    return out


def _run(rig: Rig, wd: Path, kind: str) -> list[dict[str, Any]]:
    got = wd / f"{kind}.mail"
    server = rig.popen(
        "a",
        [PY, "-c", SERVER, str(got), str(PORT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        node = router(rig, "a", kind, _conf(), wd).start()
        try:
            try:
                until(lambda: rig_has(rig, "10.99.0.201"), 3 + 106 / 256 + 10)
                until(lambda: len(_messages(got)) >= 6, 10.0)
                # VI_3: FAULT and back (no_email_faults)
                rig.run("a", ["ip", "link", "set", "t0", "down"])
                until(lambda: not rig_has(rig, "10.99.0.203"), 5.0)
                time.sleep(1.0)
                rig.run("a", ["ip", "link", "set", "t0", "up"])
                until(lambda: len(_vi3(_messages(got))) >= 4, 3 + 156 / 256 + 10)
            except AssertionError as exc:
                raise AssertionError(f"{kind}: {exc}\n{node.text()}") from None
            time.sleep(1.0)
        finally:
            node.stop()
        time.sleep(1.5)  # the STOP alerts
    finally:
        rig.kill(server)
    return _messages(got)


def _vi3(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["subject"].rsplit(" - ", 1)[1] for m in msgs if " VI_3 " in m["subject"]]


def rig_has(rig: Rig, vip: str) -> bool:
    return any(a.split("/")[0] == vip for a in rig.addresses("a"))


@pytest.mark.netns
def test_smtp_alerts_match_keepalived(rig: Make) -> None:
    r = rig(hint="wrsm")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"})
        r.run("a", ["ip", "link", "set", "lo", "up"])
        r.run("a", ["ip", "link", "add", "t0", "type", "veth", "peer", "name", "t1"])
        r.run("a", ["ip", "link", "set", "t0", "up"])
        r.run("a", ["ip", "link", "set", "t1", "up"])
        seen = {kind: _run(r, wd, kind) for kind in ("keepalived", "pykeep")}
    ours, theirs = seen["pykeep"], seen["keepalived"]
    assert theirs, "keepalived sent no mail"

    def comparable(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in m.items() if k != "headers"} for m in msgs]

    assert sorted(comparable(ours), key=str) == sorted(comparable(theirs), key=str), (
        [m["subject"] for m in ours],
        [m["subject"] for m in theirs],
    )
    # header order and names: keepalived's, X-Mailer's value aside
    assert ours[0]["headers"] == theirs[0]["headers"]
    subjects = {m["subject"] for m in ours}
    assert "[pk] VRRP Instance VI_1 - Entering MASTER state" in subjects
    assert "[pk] VRRP Group G - Entering MASTER state" in subjects
    assert not any("VI_2" in s for s in subjects)  # no smtp_alert on VI_2
    for kind, msgs in seen.items():  # no_email_faults: the FAULT alert is skipped
        assert _vi3(msgs) == [
            "Entering BACKUP state",
            "Entering MASTER state",
            "Entering BACKUP state",
            "Entering MASTER state",
        ], kind
