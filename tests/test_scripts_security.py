"""Script security as keepalived judges it (lib/notify.c check_script_secure, vrrp.c
check_vrrp_script_security, notify_script_init), without namespaces.

keepalived resolves a script's path before judging each component, so a
script reached through a symbolic link to a directory (``/bin`` → ``usr/bin``
on merged-/usr systems) is judged where it really lives.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
import trio

from pykeep import config
from pykeep.config.diagnostics import EXIT_CONFIG_TEST, EXIT_OK
from pykeep.config.model import Notify, Script, VrrpScript
from pykeep.scripts import check_script_secure
from vrrp.notify import Notifier, NotifyTarget
from vrrp.track import ScriptStatus, run_vrrp_script

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="judging root-owned paths needs root")

NO_DEFAULT_USER = not any(p.pw_name == "keepalived_script" for p in pwd.getpwall())


def _linked_tree(tmp_path: Path) -> tuple[Path, Path]:
    """Root-owned ``real/`` with ``tool.sh`` and ``alias`` → tool.sh, reached via ``link``."""
    base = tmp_path / "tree"
    (base / "real").mkdir(parents=True)
    base.chmod(0o755)
    (base / "real").chmod(0o755)
    tool = base / "real" / "tool.sh"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    (base / "real" / "alias").symlink_to("tool.sh")
    (base / "link").symlink_to("real")
    return base, tool


@pytest.mark.parametrize("enforce", [False, True])
def test_script_through_symlinked_directory_is_judged_resolved(
    tmp_path: Path, enforce: bool
) -> None:
    base, tool = _linked_tree(tmp_path)
    v = check_script_secure(
        Script((str(base / "link" / "tool.sh"),)), enforce=enforce, default_user="root"
    )
    assert v.runnable and not v.insecure, v
    assert v.path == str(tool)


@pytest.mark.parametrize("enforce", [False, True])
def test_symlinked_file_keeps_its_written_name(tmp_path: Path, enforce: bool) -> None:
    # /bin/sh → dash: keepalived runs /usr/bin/sh (same file, name kept) and judges
    # both it and the real file; a link's own 0777 mode is not a weakness.
    base, _tool = _linked_tree(tmp_path)
    v = check_script_secure(
        Script((str(base / "link" / "alias"),)), enforce=enforce, default_user="root"
    )
    assert v.runnable and not v.insecure, v
    assert v.path == str(base / "real" / "alias")


@pytest.mark.skipif(not os.path.islink("/bin"), reason="needs a merged-/usr /bin")
@pytest.mark.parametrize("enforce", [False, True])
@pytest.mark.parametrize("cmd", ["/bin/true", "/bin/sh", "/sbin/ip", "true"])
def test_merged_usr_commands_are_runnable(cmd: str, enforce: bool) -> None:
    v = check_script_secure(Script((cmd,)), enforce=enforce, default_user="root")
    assert v.runnable and not v.insecure, v
    assert not v.path.startswith(("/bin/", "/sbin/")), v


def test_insecure_path_still_refused_after_resolving(tmp_path: Path) -> None:
    base, _tool = _linked_tree(tmp_path)
    (base / "real").chmod(0o777)
    v = check_script_secure(
        Script((str(base / "link" / "tool.sh"),)), enforce=True, default_user="root"
    )
    assert not v.runnable and v.insecure and v.inhibited
    assert str(base / "real") in v.reason


def _on_change_values(vs: VrrpScript, enforce: bool, seconds: float = 3.0) -> list[bool]:
    """The first up/down change ``run_vrrp_script`` reports, within ``seconds``."""
    seen: list[bool] = []

    async def main() -> None:
        with trio.move_on_after(seconds) as scope:

            def changed(up: bool) -> None:
                seen.append(up)
                scope.cancel()

            await run_vrrp_script(
                vs,
                ScriptStatus.for_script(vs),
                changed,
                enforce_security=enforce,
                script_user="root",
            )

    trio.run(main)
    return seen


@pytest.mark.parametrize("enforce", [False, True])
def test_vrrp_script_under_bin_runs(enforce: bool) -> None:
    # init_fail: the script starts failed, so only a real successful run of
    # /bin/true brings it up (keepalived vrrp_script_child_thread).
    vs = VrrpScript("chk", Script(("/bin/true",)), interval=0.2, init_fail=True)
    assert _on_change_values(vs, enforce) == [True]


@pytest.mark.parametrize("enforce", [False, True])
def test_notify_script_under_bin_runs(tmp_path: Path, enforce: bool) -> None:
    mark = tmp_path / "ran"
    target = NotifyTarget(
        "INSTANCE",
        "VI_1",
        Notify(master=Script(("/bin/touch", str(mark)))),
    )

    async def main() -> None:
        async with trio.open_nursery() as n:
            notifier = Notifier(n, enforce_security=enforce, script_user="root")
            notifier.notify(target, "MASTER", 100)
            await notifier.drain(10)

    trio.run(main)
    assert mark.exists()


# ------------------------------------------------------------ the config test

VRRP = (
    "vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 51\n priority 150\n"
    " virtual_ipaddress {{\n  192.0.2.10\n }}\n{extra}}}\n"
)


def _load(text: str) -> config.LoadResult:
    return config.load_text(text, "k.conf", interface_exists=lambda _n: True)


def test_insecure_track_script_disabled_and_dropped_from_tracking(tmp_path: Path) -> None:
    """keepalived -t: exit 5, "Disabling track script chk due to insecure"; the instance
    no longer tracks it (vrrp.c check_track_script_secure / free_track_script)."""
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nexit 1\n")
    bad.chmod(0o777)
    text = (
        "global_defs {\n enable_script_security\n script_user root\n}\n"
        f'vrrp_script chk {{\n script "{bad}"\n interval 1\n}}\n'
        'vrrp_script ok {\n script "/bin/true"\n interval 1\n}\n'
        + VRRP.format(extra=" track_script {\n  chk\n  ok\n }\n")
    )
    r = _load(text)
    msgs = [d.message for d in r.diagnostics]
    assert "Disabling track script chk due to insecure" in msgs, msgs
    assert r.exit_code == EXIT_CONFIG_TEST
    inst = r.config.vrrp_instances[0]
    assert [t.name for t in inst.track_script] == ["ok"]
    assert r.config.script("chk") is None and r.config.script("ok") is not None


@pytest.mark.skipif(not NO_DEFAULT_USER, reason="a keepalived_script user exists here")
def test_script_security_without_script_user_or_default_user() -> None:
    """notify.c get_default_script_user: keepalived reports once and drops the scripts."""
    text = (
        "global_defs {\n enable_script_security\n}\n"
        'vrrp_script chk {\n script "/bin/true"\n interval 1\n}\n'
        + VRRP.format(extra=' track_script {\n  chk\n }\n notify_master "/bin/true"\n')
    )
    r = _load(text)
    msgs = [d.message for d in r.diagnostics]
    assert msgs.count("Unable to set default user keepalived_script for script") == 1, msgs
    assert "Unable to set default user for vrrp script chk - removing" in msgs
    assert r.exit_code == EXIT_CONFIG_TEST
    inst = r.config.vrrp_instances[0]
    assert inst.track_script == () and inst.notify.master is None


def test_notify_words_after_script_are_user_and_group() -> None:
    """notify.c notify_script_init: an unknown user drops the script (logged only), so
    nothing is left to demand script security: keepalived -t exits 0."""
    r = _load(VRRP.format(extra=' notify_master "/bin/true" no-such-user-pk\n'))
    assert r.config.vrrp_instances[0].notify.master is None
    assert r.exit_code == EXIT_OK, [str(d) for d in r.diagnostics]
    r2 = _load(VRRP.format(extra=' notify_master "/bin/true" root root\n'))
    master = r2.config.vrrp_instances[0].notify.master
    assert master is not None and (master.user, master.group) == ("root", "root")


def test_a_notify_fifo_is_not_a_script(tmp_path: Path) -> None:
    """vrrp.c check_vrrp_script_security judges ``notify_fifo``'s *script*, never the
    FIFO itself: an existing FIFO does not call for script security (keepalived -t: 0)."""
    fifo = tmp_path / "state.fifo"
    os.mkfifo(fifo)
    r = _load(f"global_defs {{\n notify_fifo {fifo}\n}}\n" + VRRP.format(extra=""))
    assert r.exit_code == EXIT_OK, [str(d) for d in r.diagnostics]
    r2 = _load(
        f"global_defs {{\n notify_fifo {fifo}\n notify_fifo_script /bin/true\n}}\n"
        + VRRP.format(extra="")
    )
    assert any("SECURITY VIOLATION" in d.message for d in r2.diagnostics)


def test_check_side_violation_names_insecure_scripts(tmp_path: Path) -> None:
    """check_data.c check_check_script_security: the sentence keepalived adds for SC_INSECURE."""
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nexit 0\n")
    bad.chmod(0o777)
    r = _load(
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n"
        f" real_server 10.0.0.2 80 {{\n  MISC_CHECK {{\n   misc_path {bad}\n  }}\n }}\n}}\n"
    )
    assert r.exit_code == 6
    assert (
        "SECURITY VIOLATION - check scripts are being executed but script_security not "
        "enabled. There are insecure scripts." in [d.message for d in r.diagnostics]
    )
