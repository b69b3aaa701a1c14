"""The running daemon holds the configuration's model, not the parser that built it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONF = """\
global_defs {
    router_id LVS_1
}
vrrp_instance VI_1 {
    state MASTER
    interface lo
    virtual_router_id 55
    priority 150
    virtual_ipaddress {
        192.168.65.127
    }
}
"""


def test_parser_is_let_go_and_comes_back_for_a_reload(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(CONF)
    # A child process: letting modules go in the test process would unsettle other tests.
    code = textwrap.dedent(
        f"""
        import gc, sys, weakref
        from pykeep import config as pkconfig
        from pykeep.memory import release_parser
        first = pkconfig.load({str(conf)!r}, None)
        model = sys.modules["pykeep.config.model"]
        parser = weakref.ref(sys.modules["pykeep.config.vrrp_parser"])
        kept, diagnostics = first.config, list(first.diagnostics)
        del first, pkconfig
        release_parser()
        loaded = sorted(n for n in sys.modules if n.startswith("pykeep.config"))
        print("loaded", loaded)
        print("parser collected", parser() is None)
        from pykeep import config as again  # what a reload does (pykeep/ops/view.py)
        second = again.load({str(conf)!r}, None)
        print("same model module", sys.modules["pykeep.config.model"] is model)
        print("same config", second.config == kept)
        print("same class", type(second.config) is type(kept))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "loaded ['pykeep.config.diagnostics', 'pykeep.config.model']" in lines
    assert "parser collected True" in lines
    assert "same model module True" in lines
    assert "same config True" in lines
    assert "same class True" in lines
