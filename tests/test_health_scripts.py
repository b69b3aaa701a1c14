"""pykeep.scripts: the shared script runner and keepalived's check_script_secure."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest
import trio

from pykeep.config.model import Script
from pykeep.scripts import check_script_secure, run_script


def _script(tmp: Path, name: str, body: str, mode: int = 0o755) -> Path:
    p = tmp / name
    p.write_text(body)
    p.chmod(mode)
    return p


def _gone(pid: int) -> bool:
    """Dead, or a zombie waiting for init to reap it (it was orphaned by the kill)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True


def test_exit_code_and_args(tmp_path: Path) -> None:
    out = tmp_path / "out"
    s = _script(tmp_path, "s.sh", f'#!/bin/sh\necho "$@" > {out}\nexit 3\n')
    res = trio.run(run_script, Script((str(s), "a")), ("b", "c"))
    assert res.exit_code == 3 and not res.timed_out
    assert out.read_text() == "a b c\n"


def test_no_shebang_runs_through_sh(tmp_path: Path) -> None:
    s = _script(tmp_path, "plain", "exit 0\n")
    assert trio.run(run_script, Script((str(s),))).ok


def test_missing_script_is_a_value_not_an_exception(tmp_path: Path) -> None:
    res = trio.run(run_script, Script((str(tmp_path / "nope"),)))
    assert res.exit_code is None and "cannot run" in res.reason


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    s = _script(tmp_path, "hang.sh", f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nwait\n")

    async def main() -> None:
        t0 = time.monotonic()
        res = await run_script(Script((str(s),)), timeout=0.3, kill_grace=0.5)
        assert res.timed_out and res.exit_code is None and res.reason == "timeout"
        assert time.monotonic() - t0 < 5
        child = int(pidfile.read_text())
        await trio.sleep(0.1)
        assert _gone(child)

    trio.run(main)


def test_run_as_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("tests run as root (CI is root)")
    d = Path(tempfile.mkdtemp(prefix="pk-script-", dir="/tmp"))
    try:
        d.chmod(0o777)
        out = d / "id"
        s = _script(d, "id.sh", f"#!/bin/sh\nid -u > {out}\n")
        res = trio.run(run_script, Script((str(s),), user="nobody"))
        assert res.ok, res
        assert out.read_text().strip() == str(pwd.getpwnam("nobody").pw_uid)
    finally:
        shutil.rmtree(d)


def test_unknown_user_is_a_reason() -> None:
    res = trio.run(run_script, Script(("/bin/true",), user="no-such-user-pk"))
    assert res.exit_code is None and "unknown script user" in res.reason


# keepalived core/notify.c check_script_secure / check_security
def test_secure_root_owned_script(tmp_path: Path) -> None:
    d = tmp_path / "safe"
    d.mkdir(mode=0o755)
    s = _script(d, "ok.sh", "#!/bin/sh\n")
    v = check_script_secure(Script((str(s),)), enforce=True, default_user="root")
    # pytest's tmp_path lives under /tmp (sticky, root-owned): safe
    assert v.runnable and not v.insecure, v


def test_world_writable_script_refused_under_script_security(tmp_path: Path) -> None:
    s = _script(tmp_path, "bad.sh", "#!/bin/sh\n", mode=0o777)
    s.chmod(0o777)
    v = check_script_secure(Script((str(s),)), enforce=True, default_user="root")
    assert not v.runnable and v.insecure and "unsafe permissions" in v.reason
    v2 = check_script_secure(Script((str(s),)), enforce=False)
    assert v2.runnable and v2.insecure


def test_non_root_owner_is_insecure(tmp_path: Path) -> None:
    s = _script(tmp_path, "own.sh", "#!/bin/sh\n")
    os.chown(s, 65534, 65534)
    assert not check_script_secure(Script((str(s),)), enforce=True, default_user="root").runnable


def test_group_writable_dir_in_path(tmp_path: Path) -> None:
    d = tmp_path / "gw"
    d.mkdir()
    os.chown(d, 0, 65534)
    d.chmod(0o775)
    s = _script(d, "x.sh", "#!/bin/sh\n")
    v = check_script_secure(Script((str(s),)), enforce=True, default_user="root")
    assert not v.runnable and str(d) in v.reason


def test_unprivileged_script_is_not_walked(tmp_path: Path) -> None:
    s = _script(tmp_path, "u.sh", "#!/bin/sh\n", mode=0o777)
    s.chmod(0o777)
    v = check_script_secure(Script((str(s),), user="nobody"), enforce=True)
    assert v.runnable and not v.insecure


def test_not_executable_and_not_found(tmp_path: Path) -> None:
    s = _script(tmp_path, "nx.sh", "#!/bin/sh\n", mode=0o644)
    assert check_script_secure(Script((str(s),)), enforce=False).reason == "not executable"
    assert check_script_secure(Script(("no-such-cmd-pk",)), enforce=False).reason == "not found"
    assert check_script_secure(Script(("true",)), enforce=True, default_user="root").runnable
    assert stat.S_ISREG(os.stat(s).st_mode)
