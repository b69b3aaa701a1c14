"""E-mail alerts, as keepalived's core/smtp.c sends them.

Shared by VRRP and the checkers, as in keepalived (``smtp_alert`` is one
entry point for both).  An alert is sent only when ``notification_email``
and ``smtp_server`` are both set; keepalived speaks plain SMTP, one
connection per alert, ``HELO`` (never ``EHLO``), then ``MAIL FROM``, one
``RCPT TO`` per address, ``DATA`` and ``QUIT``.

The message is keepalived's (smtp.h ``SMTP_HEADERS_CMD``/``SMTP_BODY_CMD``)::

    Date: <RFC 822 local time>
    From: <notification_email_from>
    Subject: [<router_id>] VRRP Instance <name> - Entering MASTER state
    X-Mailer: pykeep
    To: a@example.com, b@example.com

    => VRRP Instance is now owning VRRP VIPs <=

(keepalived writes ``X-Mailer: Keepalived``; that header names the sender.)
Defaults follow global_data.c: the router id, the HELO name and the sender
domain are the host name, the sender is ``user@hostname``.

Real-server alerts (keepalived's checker process, ``SMTP_MSG_RS``) read::

    Subject: [<router_id>] Realserver [10.0.1.1]:tcp:80 of virtual server [10.0.0.1]:tcp:80 - DOWN

    => TCP CHECK failed on service <=

with the body of the checker whose verdict changed the real server
(:data:`CHECKER_TEXT`).

Subjects and bodies are built by pure functions; :func:`send` is the only
I/O, bounded by ``smtp_connect_timeout`` for the connection and the same
again for each reply, and it never raises: it returns a reason.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from pykeep.config.model import GlobalDefs, RealServer, VirtualServer

SMTP_PORT = 25
MAX_SUBJECT = 255  # MAX_HEADERS_LENGTH - 1
MAX_BODY = 511  # MAX_BODY_LENGTH - 1

#: vrrp_notify.c ``vrrp_smtp_notifier``: (subject, body) by instance state
VRRP_INSTANCE_TEXT = {
    "MASTER": ("Entering MASTER state", "=> VRRP Instance is now owning VRRP VIPs <="),
    "BACKUP": ("Entering BACKUP state", "=> VRRP Instance is no longer owning VRRP VIPs <="),
    "FAULT": ("Entering FAULT state", "=> VRRP Instance is no longer owning VRRP VIPs <="),
    "STOP": ("Stopping", "=> VRRP Instance stopping <="),
    "DELETED": ("Deleted", "=> VRRP Deleted at reload <="),
}
#: vrrp_notify.c ``vrrp_sync_smtp_notifier``
VRRP_GROUP_TEXT = {
    "MASTER": ("Entering MASTER state", "=> All VRRP group instances are now in MASTER state <="),
    "BACKUP": ("Entering BACKUP state", "=> All VRRP group instances are now in BACKUP state <="),
    "FAULT": ("Entering FAULT state", "=> All VRRP group instances are now in FAULT state <="),
    "STOP": ("Stopping", "=> All VRRP group instances are now stopping <="),
}


#: (succeeded, failed) bodies each checker's epilog mails: check_tcp.c
#: ``tcp_epilog``, check_udp.c ``udp_epilog``, check_http.c
#: ``http_handle_response`` / ``timeout_epilog``, check_smtp.c ``smtp_final``,
#: check_dns.c ``dns_final``, check_ping.c ``ping_it_epilog``, check_misc.c
#: ``misc_check_child_thread``.  FILE_CHECK mails nothing (check_file.c).
CHECKER_TEXT = {
    "TCP_CHECK": ("=> TCP CHECK succeed on service <=", "=> TCP CHECK failed on service <="),
    "UDP_CHECK": ("=> UDP CHECK succeed on service <=", "=> UDP CHECK failed on service <="),
    "HTTP_GET": (
        "=> CHECK succeed on service <=",
        "=> CHECK failed on service : HTTP request failed <=",
    ),
    "SSL_GET": (
        "=> CHECK succeed on service <=",
        "=> CHECK failed on service : HTTP request failed <=",
    ),
    # keepalived adds the failing step's sentence ("... : Could not connect to
    # server ... <="); pykeep's checker words its reasons differently.
    "SMTP_CHECK": ("=> CHECK succeed on service <=", "=> CHECK failed on service <="),
    "DNS_CHECK": ("=> DNS_CHECK: succeed on service <=", "=> DNS_CHECK: failed on service <="),
    "PING_CHECK": ("=> ICMP CHECK succeed on service <=", "=> ICMP CHECK failed on service <="),
    "MISC_CHECK": ("=> MISC CHECK succeeded on service <=", "=> MISC CHECK failed on service <="),
}
MISC_TIMED_OUT = "=> MISC CHECK timed out on service <="


def checker_alerts_on(rs: RealServer, g: GlobalDefs) -> bool:
    """check_data.c ``validate_check_config``: the real server's ``smtp_alert``,
    else global ``smtp_alert_checker``, else global ``smtp_alert``, else **on**
    (keepalived keeps this default, unlike every other ``smtp_alert``'s)."""
    for v in (rs.smtp_alert, g.smtp_alert_checker, g.smtp_alert):
        if v is not None:
            return v
    return True


def checker_mail_wanted(rs: RealServer, g: GlobalDefs, rs_changed: bool) -> bool:
    """check_tcp.c ``tcp_epilog`` and its twins: mail a checker's change when the
    real server's state changed with it, or for every checker change unless
    ``no_checker_emails``.  pykeep's scheduler reports the real server's
    changes only, so a checker changing while another keeps the server down
    goes unmailed (config validation says so for such servers)."""
    return checker_alerts_on(rs, g) and (rs_changed or not g.no_checker_emails)


def quorum_alerts_on(vs: VirtualServer, g: GlobalDefs) -> bool:
    """check_data.c ``validate_check_config``: the virtual server's ``smtp_alert``,
    else global ``smtp_alert_checker``, else global ``smtp_alert``, else off."""
    for v in (vs.smtp_alert, g.smtp_alert_checker, g.smtp_alert):
        if v is not None:
            return v
    return False


def fmt_vs(vs: VirtualServer) -> str:
    """check_data.c ``format_vs``: a group is ``[NAME]:PORT`` (no address of its own: 0)."""
    if vs.group is not None:
        return f"[{vs.group}]:{vs.port or 0}"
    return vs.key


@dataclass(frozen=True, slots=True)
class Alert:
    """One message: what keepalived's ``smtp_t`` holds once formatted."""

    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class Mailer:
    """Where and as whom alerts go, resolved once from global_defs."""

    host: str
    port: int
    recipients: tuple[str, ...]
    sender: str
    helo: str
    router_id: str
    timeout: float

    @classmethod
    def from_config(cls, g: GlobalDefs) -> Mailer | None:
        """None when keepalived would send nothing (no address or no server)."""
        if not g.notification_email or not g.smtp_server:
            return None
        words = g.smtp_server.split()
        host = words[0]
        port = int(words[1]) if len(words) > 1 else SMTP_PORT
        local = socket.gethostname() or "unknown"
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "root"
        return cls(
            host=host,
            port=port,
            recipients=tuple(g.notification_email),
            sender=g.notification_email_from or f"{user}@{local}",
            helo=g.smtp_helo_name or local,
            router_id=g.router_id or local,
            timeout=g.smtp_connect_timeout or 30.0,
        )

    def vrrp_alert(self, kind: str, name: str, state: str) -> Alert | None:
        """The alert for an instance ("INSTANCE") or sync group ("GROUP") entering ``state``."""
        table = VRRP_GROUP_TEXT if kind == "GROUP" else VRRP_INSTANCE_TEXT
        text = table.get(state)
        if text is None:
            return None
        what = "VRRP Group" if kind == "GROUP" else "VRRP Instance"
        subject = f"[{self.router_id}] {what} {name} - {text[0]}"
        return Alert(subject[:MAX_SUBJECT], text[1][:MAX_BODY])

    def checker_alert(
        self,
        rs_name: str,
        vs_name: str,
        alive: bool,
        keyword: str,
        reason: str = "",
        passed: bool | None = None,
    ) -> Alert | None:
        """A real server's alert (smtp.c ``smtp_alert`` ``SMTP_MSG_RS``), None for a
        checker keepalived mails nothing for; ``alive`` is the server's state
        after, ``passed`` the checker's verdict when it differs from it."""
        text = CHECKER_TEXT.get(keyword)
        if text is None:
            return None
        ok = alive if passed is None else passed
        body = text[0] if ok else text[1]
        if keyword == "MISC_CHECK" and not ok and reason == "script timeout":
            body = MISC_TIMED_OUT
        state = "UP" if alive else "DOWN"
        subject = f"[{self.router_id}] Realserver {rs_name} of virtual server {vs_name} - {state}"
        return Alert(subject[:MAX_SUBJECT], body[:MAX_BODY])

    def quorum_alert(self, vs: VirtualServer, up: bool, weight: int, init: bool) -> Alert:
        """A virtual server's quorum alert (ipwrapper.c ``do_vs_notifies``, smtp.c
        ``SMTP_MSG_VS``).  The threshold is the one just crossed
        (``update_quorum_state``: quorum + hysteresis going up, quorum - hysteresis
        going down, and keepalived starts with quorum down); the body writes it
        with "+" either way, as keepalived's format string does."""
        q, h = vs.quorum, vs.hysteresis
        threshold = q - h if not up and not init else q + h
        if up:
            what = "Starting with quorum up" if init else "Gained quorum"
        else:
            what = "Starting with quorum down" if init else "Lost quorum"
        state = "UP" if up else "DOWN"
        subject = f"[{self.router_id}] Virtualserver {fmt_vs(vs)} - {state}"
        body = f"=> {what} {q}+{h}={threshold} <= {weight} <="
        return Alert(subject[:MAX_SUBJECT], body[:MAX_BODY])

    def message(self, alert: Alert, now: float | None = None) -> bytes:
        """The DATA part, terminator included (smtp.c ``body_cmd``)."""
        date = time.strftime("%a, %d %b %Y %H:%M:%S %z", time.localtime(now))
        text = (
            f"Date: {date}\r\nFrom: {self.sender}\r\nSubject: {alert.subject}\r\n"
            f"X-Mailer: pykeep\r\nTo: {', '.join(self.recipients)}\r\n\r\n"
            f"{alert.body}\r\n\r\n.\r\n"
        )
        return text.encode()

    def commands(self) -> Sequence[tuple[bytes, int]]:
        """The SMTP dialogue before the message: (command, expected reply code)."""
        cmds = [(f"HELO {self.helo}\r\n".encode(), 250)]
        cmds.append((f"MAIL FROM:<{self.sender}>\r\n".encode(), 250))
        cmds += [(f"RCPT TO:<{r}>\r\n".encode(), 250) for r in self.recipients]
        cmds.append((b"DATA\r\n", 354))
        return cmds


async def _reply(stream: trio.SocketStream, buf: bytearray, timeout: float) -> int:
    """The code of the next complete reply (multi-line replies: the last line's)."""
    with trio.fail_after(timeout):
        while True:
            while b"\r\n" in buf:
                line, _, rest = bytes(buf).partition(b"\r\n")
                buf[:] = rest
                if len(line) >= 4 and line[3:4] == b"-":
                    continue
                try:
                    return int(line[:3])
                except ValueError:
                    return 0
            if len(buf) > 4096:
                return 0
            data = await stream.receive_some(1024)
            if not data:
                return 0
            buf += data


async def send(mailer: Mailer, alert: Alert) -> str:
    """Deliver one alert; "" on success, else the reason (keepalived only logs it)."""
    where = f"[{mailer.host}]:{mailer.port}"
    try:
        with trio.fail_after(mailer.timeout):
            stream = await trio.open_tcp_stream(mailer.host, mailer.port)
    except (OSError, trio.TooSlowError) as exc:
        return f"SMTP connection ERROR to {where}: {exc or 'timeout'}"
    buf = bytearray()
    try:
        async with stream:
            if await _reply(stream, buf, mailer.timeout) != 220:
                return f"Error connecting SMTP server {where}"
            for cmd, want in mailer.commands():
                await stream.send_all(cmd)
                code = await _reply(stream, buf, mailer.timeout)
                if code != want:
                    verb = cmd.split(b" ")[0].strip().decode()
                    return (
                        f"Error processing {verb} cmd on SMTP server {where}."
                        f" SMTP status code = {code}"
                    )
            await stream.send_all(mailer.message(alert))
            if await _reply(stream, buf, mailer.timeout) != 250:
                return f"Error processing DATA on SMTP server {where}"
            await stream.send_all(b"QUIT\r\n")
            await _reply(stream, buf, mailer.timeout)
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        return f"SMTP error with {where}: {exc or 'timeout'}"
    return ""
