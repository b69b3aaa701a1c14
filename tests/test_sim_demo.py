"""The demo: its generated configs are valid keepalived, and the whole run works."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from sim import demo, topology
from sim.topology import Lab


def test_generated_director_configs_pass_keepalived_config_test(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    lab = Lab.__new__(Lab)  # no namespaces: only the config text is needed
    lab.topology = topology.standard("dr", 2)
    lab.name = "cfgtest"
    for director in lab.directors:
        conf = tmp_path / f"{director}.conf"
        conf.write_text(demo.director_config(lab, director))
        res = subprocess.run(
            ["keepalived", "-t", "-f", str(conf)], capture_output=True, text=True, timeout=30
        )
        assert res.returncode == 0, res.stdout + res.stderr
    text = demo.director_config(lab, "dir1")
    assert "state MASTER" in text and "real_server 192.168.65.157 80" in text


@pytest.mark.vm
def test_default_demo_with_pykeep_directors_in_the_vm() -> None:
    """`python -m sim demo` (what `make demo` runs) end to end in the VM, pykeep directors.

    The checks are the issue's: the client's answers alternate over both real
    servers, a failover line with its measured time, the stopped server drained
    and back.  ``--keepalived`` runs the same script with keepalived directors
    for comparison; it is not repeated here to keep VM time down.
    """
    res = subprocess.run(
        [sys.executable, "-m", "sim", "demo", "--timeout", "900"],
        capture_output=True,
        text=True,
        timeout=960,
    )
    out = res.stdout
    assert res.returncode == 0, out[-3000:] + res.stderr[-3000:]
    assert "booting VM" in res.stderr  # the progress line while the VM boots
    balanced = re.search(r"3\. curl http://192\.168\.65\.127/ x6: (.*)", out)
    assert balanced and set(balanced.group(1).split()) == {"lvs-RS1-156", "lvs-RS2-157"}
    failover = re.search(r"5\. failover: dir2 owns the VIP after ([\d.]+)s", out)
    assert failover and float(failover.group(1)) < 10
    assert re.search(r"drained after [\d.]+s: (lvs-RS1-156 ?){4}$", out, re.M)
    assert "7. rs2 restarted, back after" in out and "summary:" in out
