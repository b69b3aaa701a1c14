"""Real-server e-mail alerts, as keepalived's checker process sends them.

keepalived mails a real server's change from the checker that caused it
(check_tcp.c ``tcp_epilog``, check_misc.c ``misc_check_child_thread`` …)
with smtp.c's ``SMTP_MSG_RS`` subject, and a real server's alerts are on by
default once ``notification_email`` and ``smtp_server`` are set
(check_data.c ``validate_check_config``).  Here real checkers probe loopback
servers the test opens and closes, the IPVS kernel is an in-memory one, and
an aiosmtpd server on loopback records what arrives.

The side-by-side comparison with keepalived needs IPVS, which this kernel
lacks (keepalived's checker process stops without it), so the expected
subjects and bodies are keepalived's format strings, cited above.  About 6 s.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
import trio

from pykeep import config as pkconfig
from pykeep import lvs
from pykeep.config.model import (
    CheckerCommon,
    Config,
    GlobalDefs,
    MiscCheck,
    RealServer,
    Script,
    TcpCheck,
    VirtualServer,
)
from pykeep.smtp import Mailer, checker_alerts_on, quorum_alerts_on
from tests.test_lvs_service import FakeKernel

IP = ipaddress.ip_address
COMMON = CheckerCommon(delay_loop=1.0, retry=0, warmup=0.0, connect_timeout=1.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    from aiosmtpd.controller import Controller

    got: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            msg = message_from_bytes(envelope.original_content)
            with lock:
                got.append({"subject": msg["Subject"], "body": str(msg.get_payload()).strip()})
            return "250 OK"

    port = _free_port()
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield port, got
    finally:
        ctl.stop()


def test_real_server_changes_are_mailed_as_keepalived(
    mailbox: tuple[int, list[dict[str, Any]]],
) -> None:
    smtp_port, got = mailbox
    web = _free_port()
    g = GlobalDefs(
        router_id="pk",
        notification_email=("ops@example.com",),
        notification_email_from="lvs@example.com",
        smtp_server=f"127.0.0.1 {smtp_port}",
        smtp_connect_timeout=5.0,
    )
    rss = (
        # TCP_CHECK, alerts on by default: down and up again are mailed
        RealServer(IP("127.0.0.1"), web, checkers=(TcpCheck(common=COMMON),)),
        # alerts off on this one: its failure is not mailed
        RealServer(IP("127.0.0.2"), web, smtp_alert=False, checkers=(TcpCheck(common=COMMON),)),
        # alpha: starts down, so its first success is a change, and is mailed once
        RealServer(
            IP("127.0.0.3"),
            80,
            alpha=True,
            checkers=(MiscCheck(common=COMMON, misc_path=Script(("/bin/true",))),),
        ),
        # MISC_CHECK mails its first result even when nothing changes (check_misc.c)
        RealServer(
            IP("127.0.0.4"),
            80,
            checkers=(MiscCheck(common=COMMON, misc_path=Script(("/bin/true",))),),
        ),
    )
    vs = VirtualServer(address=IP("10.0.0.1"), port=80, real_servers=rss)
    cfg = Config(global_defs=g, virtual_servers=(vs,))

    def subjects() -> list[tuple[str, str]]:
        return [(m["subject"], m["body"]) for m in list(got)]

    async def wait_for(n: int, timeout: float) -> None:
        with trio.fail_after(timeout):
            while len(got) < n:
                await trio.sleep(0.05)

    async def serve(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            listeners = await trio.open_tcp_listeners(web, host="127.0.0.1")
            task_status.started(scope)
            await trio.serve_listeners(lambda s: s.aclose(), listeners)

    async def main() -> None:
        async with trio.open_nursery() as n:
            server = await n.start(serve)
            await n.start(lvs.LvsService(cfg, FakeKernel()).run)
            await wait_for(2, 8.0)  # the MISC_CHECK servers' first results
            await trio.sleep(1.5)  # 127.0.0.1 stays up, 127.0.0.2 fails: no mail
            assert len(got) == 2, subjects()
            server.cancel()  # the web server goes away
            await wait_for(3, 8.0)
            await n.start(serve)  # and comes back
            await wait_for(4, 8.0)
            await trio.sleep(0.5)
            n.cancel_scope.cancel()

    trio.run(main)
    vs_name = "[10.0.0.1]:tcp:80"
    assert sorted(subjects()[:2]) == [
        (
            f"[pk] Realserver [127.0.0.{i}]:tcp:80 of virtual server {vs_name} - UP",
            "=> MISC CHECK succeeded on service <=",
        )
        for i in (3, 4)
    ]
    assert subjects()[2:] == [
        (
            f"[pk] Realserver [127.0.0.1]:tcp:{web} of virtual server {vs_name} - DOWN",
            "=> TCP CHECK failed on service <=",
        ),
        (
            f"[pk] Realserver [127.0.0.1]:tcp:{web} of virtual server {vs_name} - UP",
            "=> TCP CHECK succeed on service <=",
        ),
    ]


def test_alert_defaults_and_the_several_checkers_line() -> None:
    """check_data.c validate_check_config: a real server's smtp_alert, else
    smtp_alert_checker, else smtp_alert, else on (a virtual server's: else off,
    and its quorum mail reads as ipwrapper.c do_vs_notifies writes it).  A server with several
    mailing checkers gets one line saying what pykeep does not mail, unless
    no_checker_emails makes keepalived mail the same."""
    rs = RealServer(IP("10.0.1.1"), 80)
    assert checker_alerts_on(rs, GlobalDefs())
    assert not checker_alerts_on(rs, GlobalDefs(smtp_alert=False))
    assert checker_alerts_on(rs, GlobalDefs(smtp_alert=False, smtp_alert_checker=True))
    assert not checker_alerts_on(RealServer(IP("10.0.1.1"), 80, smtp_alert=False), GlobalDefs())
    # a virtual server's quorum alerts are off by default (ipwrapper.c do_vs_notifies)
    vs = VirtualServer(address=IP("10.0.0.1"), port=80, quorum=3, hysteresis=1)
    assert not quorum_alerts_on(vs, GlobalDefs())
    assert quorum_alerts_on(vs, GlobalDefs(smtp_alert=True))
    assert not quorum_alerts_on(vs, GlobalDefs(smtp_alert=True, smtp_alert_checker=False))
    g = GlobalDefs(router_id="r", notification_email=("a@x",), smtp_server="127.0.0.1")
    m = Mailer.from_config(g)
    assert m is not None
    # "+" in the body whichever way the threshold was crossed: keepalived's format string
    assert (
        m.quorum_alert(vs, False, 1, False).subject,
        m.quorum_alert(vs, False, 1, False).body,
    ) == (
        "[r] Virtualserver [10.0.0.1]:tcp:80 - DOWN",
        "=> Lost quorum 3+1=2 <= 1 <=",
    )
    assert m.quorum_alert(vs, True, 4, False).body == "=> Gained quorum 3+1=4 <= 4 <="
    assert m.quorum_alert(vs, True, 5, True).body == "=> Starting with quorum up 3+1=4 <= 5 <="

    def said(globals_: str) -> list[str]:
        text = (
            f"global_defs {{\n notification_email {{\n  a@x\n }}\n smtp_server 127.0.0.1\n"
            f"{globals_}}}\nvirtual_server 10.0.0.1 80 {{\n protocol TCP\n"
            " real_server 10.0.1.1 80 {\n  TCP_CHECK {\n  }\n  MISC_CHECK {\n"
            "   misc_path /bin/true\n  }\n }\n}\n"
        )
        r = pkconfig.load_text(text, "k.conf", interface_exists=lambda _n: True)
        return [d.message for d in r.diagnostics if "checkers" in d.message]

    assert said("") == [
        "real server 10.0.1.1 has 2 checkers: pykeep e-mails its changes of state (as"
        " keepalived does with no_checker_emails), not a checker's change while another"
        " keeps it down"
    ]
    assert said(" no_checker_emails\n") == []
    assert said(" smtp_alert_checker false\n") == []
