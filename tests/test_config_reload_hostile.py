"""A running daemon given a hostile include on SIGHUP keeps its VIPs and its config (issue 13).

Before, ``include /dev/zero`` made the reload read without end until the
kernel killed the daemon, releasing its VIPs.  Now each of these reloads
either skips the file (plain ``include``, as keepalived does) or refuses the
new configuration with one error line (``includer``, an over-size file):
either way the master keeps its VIP and answers on the wire.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from pykeep.config.lexer import MAX_CONFIG_BYTES
from sim.netns import Rig
from tests.netns_vrrp import lan, router, until, vrrp_conf, wait_owner, workdir

pytestmark = pytest.mark.netns

VIP = "10.99.0.200"
Make = Callable[..., Rig]


def test_hostile_includes_on_sighup_keep_the_vips_and_the_config(rig: Make) -> None:
    r = rig(hint="rbincl")
    with workdir() as wd:
        lan(r, {"a": "10.99.0.11/24"})
        fifo = wd / "fifo"
        os.mkfifo(fifo)
        huge = wd / "huge.conf"
        with open(huge, "wb") as f:
            f.truncate(MAX_CONFIG_BYTES + 1)  # sparse
        good = vrrp_conf(priority=150)
        a = router(r, "a", "pykeep", good, wd).start()
        ma = r.mac("a")
        wait_owner(r, "client", VIP, ma, 3.5 + 3)
        # (include line, is the reload refused?)
        cases = [
            ("include /dev/zero", False),
            (f"include {fifo}", False),
            (f"include {wd}", False),
            ("includer /dev/urandom", True),
            (f"include {huge}", True),
        ]
        reloads = a.stats()["reloads"]
        for line, refused in cases:
            seen = len(a.text())
            a.conf.write_text(f"{line}\n{good}")
            started = time.monotonic()
            a.signal(signal.SIGHUP)

            def done(s: int = seen, n: int = reloads) -> bool:
                return "Reload failed" in a.text()[s:] or a.stats()["reloads"] > n

            until(done, 10.0)
            assert time.monotonic() - started < 10, line
            later = a.text()[seen:]
            assert a.proc is not None and a.proc.poll() is None, f"{line}: the daemon died"
            assert "Traceback" not in later, later
            failed = [ln for ln in later.splitlines() if "Reload failed" in ln]
            if refused:
                assert len(failed) == 1, later
                assert "keeping the running configuration" in failed[0]
            else:  # skipped, as keepalived skips it: the rest of the file is the config
                assert not failed, later
                reloads += 1
            assert a.stats()["reloads"] == reloads
            assert a.has_vip(VIP), f"{line}: the VIP is gone"
            assert a.stats()["states"]["VI_1"] == "MASTER"
        wait_owner(r, "client", VIP, ma, 3.0)  # the client still reaches it (raises if not)
        a.stop()
        assert not a.has_vip(VIP)
