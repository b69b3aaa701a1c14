"""connect_timeout bounds each I/O step of a check, and a ready socket beats an expired deadline.

keepalived registers every step of a check with its own ``connect_timeout``
(check_http.c ``http_connect_thread``, ``http_request_thread``,
``http_read_thread``; check_tcp.c ``tcp_connect_thread``), and when its loop
wakes with a socket ready and that socket's timer expired, the socket wins:
lib/scheduler.c ``thread_fetch_next_queue`` moves each thread whose fd epoll
reported ready out of the timer tree before the timerfd's thread expires the
timers.  So a starved keepalived that resumes after ``connect_timeout`` with
its answer waiting passes the check.  This test starves a checker the blunt
way (SIGSTOP), lets the answer arrive, resumes it well past its timeout, and
wants the check to pass.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = """
import sys, trio
from healthcheck.api import Target
from healthcheck.http import HttpChecker
from pykeep.config.model import HttpUrl

async def main() -> None:
    res = await HttpChecker([HttpUrl("/ok")]).check_step(
        Target("127.0.0.1", int(sys.argv[1])), float(sys.argv[2]), 0
    )
    print(res.ok, res.reason, flush=True)

trio.run(main)
"""

TIMEOUT = 1.0
STOPPED = 3.5  # well past TIMEOUT: the deadline of the step in progress has expired


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_starved_http_check_passes_when_its_answer_waits() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(120)
    port = srv.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(port), str(TIMEOUT)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        conn, _ = srv.accept()
        conn.settimeout(60)
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            assert chunk, "the checker closed before sending its request"
            request += chunk
        assert request.startswith(b"GET /ok HTTP/1.0\r\n")
        # The checker has sent its request and waits (or is about to) for the answer.
        os.kill(child.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 30
        while _state(child.pid) != "T":
            assert time.monotonic() < deadline, "the checker did not stop"
            time.sleep(0.01)
        stopped_at = time.monotonic()
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.close()
        time.sleep(max(0.0, stopped_at + STOPPED - time.monotonic()))
        os.kill(child.pid, signal.SIGCONT)
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
            child.kill()
            child.wait()
        srv.close()
    # before: "False timeout" (one deadline for the whole check, expired while stopped)
    assert out.strip() == "True status 200"
