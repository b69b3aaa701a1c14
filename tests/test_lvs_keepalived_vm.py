"""keepalived ``-C`` and pykeep ``-C`` on one configuration, one real kernel (shared VM boot).

keepalived's checker process needs IPVS, so the comparison runs in the shared
VM boot (tests/vmshare.py).  Under emulation a pykeep start costs about four
minutes of guest time, so every checker-side comparison with keepalived lives
in one configuration and one scenario: each daemon starts once.

The configuration holds the two checker-side corrections of issue 12 that
only a kernel shows:

- a DR fwmark service whose real servers are written with ports: keepalived
  clears the ports for IPVS ("has port specified - clearing") after its
  checkers were built on the written ports (check_api.c ``queue_checker``,
  check_data.c ``validate_check_config``), so the server listening on its
  written port is put in the table and the one with nobody there is not;
- a persistent UDP service with ``persistence_engine sip``: keepalived passes
  the engine to the kernel with the persistence (ipvswrapper.c
  ``ipvs_set_srule``).

and the real-server e-mail alerts of a third service, 10.20.0.2:8090.  The
global settings are only ``notification_email`` and ``smtp_server``: a real
server's alerts are on by default (check_data.c ``validate_check_config``),
for the two services above too.  Their one mail, the fwmark server with
nobody on its written port going ``DOWN`` (named ``[127.0.0.2]:none:0`` of
``FWM 7``: its port already cleared), arrives at a moment of its own between
those of 8090, so it is compared apart, and the ordered comparison keeps to
the mails whose subject names 10.20.0.2:8090.  Each daemon runs alone against
the same loopback servers and the same SMTP server (aiosmtpd):

- a MISC_CHECK server with ``alpha`` comes up: mailed (``UP``);
- a MISC_CHECK server without it passes its first check: mailed too, though
  nothing changed (check_misc.c ``misc_check_child_thread``);
- a TCP_CHECK server starts up and stays up: nothing;
- its listener closes, then opens again: ``DOWN`` then ``UP``, each with the
  TCP checker's body (check_tcp.c ``tcp_epilog``);
- the virtual server has ``smtp_alert`` and ``quorum 3``: it gains quorum
  when the alpha server comes up, loses it with the TCP server and gains it
  again (ipwrapper.c ``do_vs_notifies``); at start it has 2 and no sorry
  server, so nothing is mailed then.

Once the fwmark and UDP services have settled and the first three 8090 mails
arrived, and after a steady pause, ``ipvsadm -Sn`` must be the same for both
daemons line for line; then the 8090 listener closes and reopens.  The mails
(subject, body, envelope) must be the same; mails of one moment (a real
server's and its virtual server's) are compared as a set.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import vmshare

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parent.parent
SMTP_PORT = 2526
MAIL_VS = "[10.20.0.2]:tcp:8090"

CONF = f"""global_defs {{
    router_id lvs_ck
    notification_email {{
        ops@example.com
    }}
    notification_email_from lvs@example.com
    smtp_server 127.0.0.1 {SMTP_PORT}
    smtp_connect_timeout 10
    enable_script_security
    script_user root
}}
virtual_server fwmark 7 {{
    delay_loop 2
    lb_algo rr
    lb_kind DR
    real_server 127.0.0.1 8080 {{
        TCP_CHECK {{
            connect_timeout 2
        }}
    }}
    real_server 127.0.0.2 8081 {{
        TCP_CHECK {{
            connect_timeout 2
        }}
    }}
}}
virtual_server 10.20.0.1 5060 {{
    protocol UDP
    lb_algo rr
    lb_kind NAT
    persistence_timeout 60
    persistence_engine sip
    real_server 127.0.0.1 5060 {{
        weight 1
    }}
}}
virtual_server 10.20.0.2 8090 {{
    delay_loop 2
    lb_algo rr
    lb_kind DR
    protocol TCP
    quorum 3
    smtp_alert
    real_server 127.0.0.1 8090 {{
        TCP_CHECK {{
            connect_timeout 2
            retry 0
        }}
    }}
    real_server 127.0.0.2 8090 {{
        MISC_CHECK {{
            misc_path /bin/true
            misc_timeout 60
            alpha
        }}
    }}
    real_server 127.0.0.3 8090 {{
        MISC_CHECK {{
            misc_path /bin/true
            misc_timeout 60
        }}
    }}
}}
"""

SCENARIO = r"""
import json, os, signal, socket, subprocess, threading, time
from email import message_from_bytes
from aiosmtpd.controller import Controller

RW = os.environ["PYKEEP_VM_RWDIR"]
CMDS = json.load(open(os.path.join(RW, "cmds.json")))
PORT = int(open(os.path.join(RW, "smtp_port")).read())
MAIL_VS = open(os.path.join(RW, "mail_vs")).read()
out = {}
mails = []

class H:
    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.original_content)
        mails.append({"subject": msg["Subject"], "body": str(msg.get_payload()).strip(),
                      "from": envelope.mail_from, "to": envelope.rcpt_tos,
                      "helo": session.host_name})
        return "250 OK"

ctl = Controller(H(), hostname="127.0.0.1", port=PORT)
ctl.start()

def save():
    json.dump(out, open(os.path.join(RW, "result.json"), "w"), indent=1)

def vs_mails():
    return [m for m in list(mails) if MAIL_VS in (m["subject"] or "")]

def table():
    text = subprocess.run(["ipvsadm", "-Sn"], capture_output=True, text=True).stdout
    return sorted(line.strip() for line in text.splitlines() if line.strip())

def wait(pred, limit):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if pred():
            return round(time.monotonic() - t0, 2)
        time.sleep(0.3)
    return None

def settled():
    t = table()
    fw = [l for l in t if l.startswith("-a -f 7 ")]
    return (any("-r 127.0.0.1" in l for l in fw) and any(l.startswith("-A -u ") for l in t)
            and any("-r 127.0.0.1:8090" in l for l in t) and len(vs_mails()) >= 3)

def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    threading.Thread(target=accept, args=(s,), daemon=True).start()
    return s

def accept(s):
    while True:
        try:
            c, _ = s.accept()
            c.close()
        except OSError:
            return

def close(s):
    s.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
    s.close()

fwmark_listener = listen(8080)
for mod in ("ip_vs", "ip_vs_rr", "ip_vs_pe_sip"):
    subprocess.run(["modprobe", mod])
for kind, cmd in CMDS.items():
    mails.clear()
    web = listen(8090)
    logf = open(os.path.join(RW, kind + ".log"), "w")
    env = dict(os.environ, PYKEEP_STATE_DIR=RW)
    t_start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
    try:
        # pykeep's interpreter start is slow under emulation: minutes, not seconds
        out[kind + "_up_s"] = wait(settled, 400)
        # three more delay_loops: a late table change would show, the steady server mails nothing
        time.sleep(6)
        out[kind] = table()
        out[kind + "_steady"] = len(vs_mails())
        save()
        close(web)
        out[kind + "_down_s"] = wait(lambda: len(vs_mails()) >= 5, 60)
        time.sleep(1)
        out[kind + "_down_n"] = len(vs_mails())
        web = listen(8090)
        out[kind + "_back_s"] = wait(lambda: len(vs_mails()) >= 7, 60)
        time.sleep(5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        logf.close()
        time.sleep(2)
        close(web)
        out[kind + "_mails"] = vs_mails()
        out[kind + "_other_mails"] = [m for m in list(mails) if m not in out[kind + "_mails"]]
        out[kind + "_run_s"] = round(time.monotonic() - t_start, 1)
        out[kind + "_log"] = open(os.path.join(RW, kind + ".log")).read()[-6000:]
        save()
    subprocess.run(["ipvsadm", "-C"])
    wait(lambda: not [l for l in table() if l.startswith("-A")], 30)
ctl.stop()
save()
"""


def commands(rw: Path) -> dict[str, list[str]]:
    conf = str(rw / "ck.conf")

    def pids(kind: str) -> list[str]:
        return [
            *("-p", str(rw / f"{kind}.pid")),
            *("-r", str(rw / f"{kind}-v.pid")),
            *("-c", str(rw / f"{kind}-c.pid")),
        ]

    return {
        "keepalived": ["/usr/sbin/keepalived", "-C", "-n", "-l", "-f", conf, *pids("k")],
        "pykeep": [
            str(REPO / ".venv" / "bin" / "pykeep"),
            *("-C", "-n", "-l", "-f", conf, *pids("p")),
            *("--control-socket", "/tmp/pykeep-lvs-ck.sock"),
        ],
    }


def _prepare(rw: Path) -> str:
    (rw / "ck.conf").write_text(CONF)
    (rw / "scenario.py").write_text(SCENARIO)
    (rw / "smtp_port").write_text(str(SMTP_PORT))
    (rw / "mail_vs").write_text(MAIL_VS)
    (rw / "cmds.json").write_text(json.dumps(commands(rw)))
    return f"{sys.executable} {rw / 'scenario.py'}"


# Each daemon's start is most of the part: about 30 s for keepalived, about 4
# minutes for pykeep under emulation; the waits above bound the rest.
vmshare.register("lvs_ck", _prepare, timeout=1200)


@pytest.fixture(scope="module")
def result(shared_vm: vmshare.SharedRun) -> dict[str, Any]:
    return shared_vm.json("lvs_ck")


def _logs(r: dict[str, Any]) -> str:
    return f"--- keepalived\n{r.get('keepalived_log', '')}\n--- pykeep\n{r.get('pykeep_log', '')}"


def test_fwmark_dr_servers_checked_on_written_ports_as_keepalived(result: dict[str, Any]) -> None:
    for kind in ("keepalived", "pykeep"):
        assert result.get(f"{kind}_up_s") is not None, _logs(result)
        fw = [line for line in result[kind] if line.startswith("-a -f 7 ")]
        assert len(fw) == 1 and "-r 127.0.0.1:0 " in fw[0] + " ", (kind, fw, _logs(result))


def test_persistence_engine_reaches_the_kernel_as_keepalived(result: dict[str, Any]) -> None:
    for kind in ("keepalived", "pykeep"):
        udp = [line for line in result.get(kind, []) if line.startswith("-A -u ")]
        assert len(udp) == 1 and "--pe sip" in udp[0], (kind, udp, _logs(result))


def test_tables_identical_to_keepalived(result: dict[str, Any]) -> None:
    assert result.get("keepalived"), _logs(result)
    assert result.get("pykeep") == result.get("keepalived"), _logs(result)


def test_real_server_and_quorum_mails_match_keepalived(result: dict[str, Any]) -> None:
    def rs(i: int, state: str, body: str) -> tuple[str, str]:
        return (
            f"[lvs_ck] Realserver [127.0.0.{i}]:tcp:8090 of virtual server {MAIL_VS} - {state}",
            body,
        )

    def quorum(state: str, body: str) -> tuple[str, str]:
        return (f"[lvs_ck] Virtualserver {MAIL_VS} - {state}", body)

    start = sorted(
        [
            rs(2, "UP", "=> MISC CHECK succeeded on service <="),
            rs(3, "UP", "=> MISC CHECK succeeded on service <="),
            quorum("UP", "=> Gained quorum 3+0=3 <= 3 <="),
        ]
    )
    down = sorted(
        [
            rs(1, "DOWN", "=> TCP CHECK failed on service <="),
            quorum("DOWN", "=> Lost quorum 3+0=3 <= 2 <="),
        ]
    )
    back = sorted(
        [
            rs(1, "UP", "=> TCP CHECK succeed on service <="),
            quorum("UP", "=> Gained quorum 3+0=3 <= 3 <="),
        ]
    )
    for kind in ("keepalived", "pykeep"):
        assert result.get(f"{kind}_up_s") is not None, _logs(result)
        mails = result.get(f"{kind}_mails", [])
        assert result.get(f"{kind}_steady") == 3, (kind, mails, _logs(result))
        assert result.get(f"{kind}_down_n") == 5, (kind, mails, _logs(result))
        got = [(m["subject"], m["body"]) for m in mails]
        assert (sorted(got[:3]), sorted(got[3:5]), sorted(got[5:])) == (start, down, back), (
            kind,
            got,
            _logs(result),
        )
    envelope = {
        (m["from"], tuple(m["to"])) for k in ("keepalived", "pykeep") for m in result[f"{k}_mails"]
    }
    assert envelope == {("lvs@example.com", ("ops@example.com",))}


def test_fwmark_server_down_mail_matches_keepalived(result: dict[str, Any]) -> None:
    want = [
        (
            "[lvs_ck] Realserver [127.0.0.2]:none:0 of virtual server FWM 7 - DOWN",
            "=> TCP CHECK failed on service <=",
        )
    ]
    for kind in ("keepalived", "pykeep"):
        got = sorted((m["subject"], m["body"]) for m in result.get(f"{kind}_other_mails", []))
        assert got == want, (kind, got, _logs(result))
