"""Scripts at run time, pykeep beside Debian's keepalived 2.2.7 in one namespace rig.

Two routers on one LAN, one keepalived and one pykeep (``-P``), each alone on
its own VRID, run the same configuration:

- a ``vrrp_script`` of ``/bin/true`` with ``init_fail`` and weight 0: the
  instance stays in FAULT until the script has really run and succeeded;
- ``notify_master "/bin/touch MARK"``: the notify script must run;
- with ``enable_script_security``, also a world-writable tracked script that
  would fail: keepalived drops it from tracking (vrrp.c
  check_vrrp_script_security), so the instance still becomes MASTER.

``/bin`` is a symbolic link on merged-/usr systems, which is what keepalived's
check_script_secure (lib/notify.c) resolves before judging the path.  Both
daemons must own their VIP and have run their notify script.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sim.netns import Rig
from tests.netns_vrrp import KEEPALIVED, lan, router, until, vrrp_conf, workdir

pytestmark = pytest.mark.netns

#: keepalived's master-down time for priority 100 is 3.6 s; start-up adds ~1 s.
SETTLE = 12.0


def _conf(wd: Path, kind: str, vrid: int, vip: str, security: bool) -> str:
    mark = wd / f"{kind}.master"
    scripts = 'vrrp_script ok {\n    script "/bin/true"\n    interval 1\n    init_fail\n}\n'
    tracked = "        ok\n"
    if security:
        bad = wd / "bad.sh"
        bad.write_text("#!/bin/sh\nexit 1\n")
        bad.chmod(0o777)
        scripts += f'vrrp_script bad {{\n    script "{bad}"\n    interval 1\n}}\n'
        tracked += "        bad\n"
    return vrrp_conf(
        vrid=vrid,
        vips=(f"{vip}/32",),
        globals_="    enable_script_security\n    script_user root\n" if security else "",
        before=scripts,
        extra=(f'    track_script {{\n{tracked}    }}\n    notify_master "/bin/touch {mark}"\n'),
    )


@pytest.mark.skipif(not os.path.islink("/bin"), reason="needs a merged-/usr /bin")
@pytest.mark.skipif(not os.path.exists(KEEPALIVED), reason="keepalived is the peer")
@pytest.mark.parametrize("security", [True, False], ids=["script_security", "no_security"])
def test_bin_scripts_run_and_insecure_script_dropped_as_keepalived(security: bool) -> None:
    with Rig("ck") as rig, workdir() as wd:
        wd.chmod(0o755)
        lan(rig, {"k": "10.99.0.11/24", "p": "10.99.0.12/24"})
        vips = {"keepalived": "10.99.0.201", "pykeep": "10.99.0.202"}
        routers = {}
        for node, kind, vrid in (("k", "keepalived", 61), ("p", "pykeep", 62)):
            conf = _conf(wd, kind, vrid, vips[kind], security)
            routers[kind] = router(rig, node, kind, conf, wd).start()
        try:
            until(
                lambda: all(routers[k].has_vip(v) for k, v in vips.items()),
                SETTLE,
                step=0.2,
            )
            until(lambda: all((wd / f"{k}.master").exists() for k in vips), 5.0, step=0.1)
        except AssertionError:
            raise AssertionError(
                "\n".join(f"--- {k}\n{r.text()[-3000:]}" for k, r in routers.items())
            ) from None
        finally:
            for r in routers.values():
                r.stop()


@pytest.mark.skipif(not os.path.exists(KEEPALIVED), reason="keepalived is the oracle")
def test_config_test_verdicts_match_keepalived(tmp_path: Path) -> None:
    """``-t`` exit codes equal keepalived's for the issue's script cases, in one namespace
    that holds the named interface."""
    tmp_path.chmod(0o755)
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nexit 0\n")
    bad.chmod(0o777)
    inst = (
        "vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 51\n priority 150\n"
        " virtual_ipaddress {{\n  192.0.2.10\n }}\n{extra}}}\n"
    )
    cases = {
        "insecure": "global_defs {\n enable_script_security\n script_user root\n}\n"
        f'vrrp_script chk {{\n script "{bad}"\n interval 1\n}}\n'
        + inst.format(extra=" track_script {\n  chk\n }\n"),
        "insecure_no_security": f'vrrp_script chk {{\n script "{bad}"\n interval 1\n}}\n'
        + inst.format(extra=" track_script {\n  chk\n }\n"),
        "no_default_user": "global_defs {\n enable_script_security\n}\n"
        'vrrp_script chk {\n script "/bin/true"\n interval 1\n}\n'
        + inst.format(extra=' track_script {\n  chk\n }\n notify_master "/bin/true"\n'),
        "notify_user_word": inst.format(extra=' notify_master "/bin/true" no-such-user-pk\n'),
        "bin_scripts_secure": "global_defs {\n enable_script_security\n script_user root\n}\n"
        'vrrp_script chk {\n script "/bin/true"\n interval 1\n}\n'
        + inst.format(extra=' track_script {\n  chk\n }\n notify_master "/bin/sh -c true"\n'),
    }
    with Rig("ck") as rig:
        lan(rig, {"k": "10.99.0.11/24"})
        got = {}
        for name, text in cases.items():
            path = tmp_path / f"{name}.conf"
            path.write_text(text)
            codes = []
            for argv in (
                [KEEPALIVED, "-t", "-f", str(path)],
                [sys.executable, "-m", "pykeep", "-t", "-f", str(path)],
            ):
                codes.append(rig.run("k", argv, check=False, timeout=30).returncode)
            got[name] = tuple(codes)
        want = {
            "insecure": (5, 5),
            "insecure_no_security": (6, 6),
            "no_default_user": (5, 5),
            "notify_user_word": (0, 0),
            "bin_scripts_secure": (0, 0),
        }
        assert got == want
