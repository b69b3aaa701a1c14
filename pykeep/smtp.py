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

from pykeep.config.model import GlobalDefs

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
