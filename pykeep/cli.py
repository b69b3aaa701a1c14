"""``pykeep``: keepalived's command line, plus pykeep's own options and subcommands.

The options are keepalived's (core/main.c ``parse_cmdline``) so that an
operator can swap the binary name; ``-t`` runs the config test here, anything
else hands the parsed options to ``pykeep.daemon.main``.  Each keepalived
option either acts as in keepalived (``-d`` logs the configuration dump at
start-up, ``-G`` drops the syslog sink, ``-I`` leaves IPVS entries on stop,
``-R`` is what a single process always does) or is refused with one line
and exit code 1 (``-X``, ``-V``, ``-a``).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Sequence

TYPE_CHECKING = False  # typing stays unimported at run time: start-up counts (pykeep -t)
if TYPE_CHECKING:
    import argparse
    from typing import Any

_SUBCOMMANDS = {
    "ctl": "pykeep.ops.ctl",
    "realserver": "pykeep.realserver",
    "ipvs": "ipvs.cli",
}


def _help_formatter(argparse: Any) -> Any:
    """argparse's help formatter, told the terminal's width.

    Left to itself, argparse asks ``shutil`` for the width each time it
    builds a formatter, and every ``add_argument`` builds one: the daemon
    would import shutil (with bz2 and lzma) only to parse its command line.
    """
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 80
    return functools.partial(argparse.HelpFormatter, width=columns - 2)


def build_parser() -> argparse.ArgumentParser:
    import argparse  # not on the plain -t path (_quick_config_test)

    from pykeep import config

    ap = argparse.ArgumentParser(
        prog="pykeep",
        description="A pure-Python drop-in replacement for keepalived.",
        epilog="Subcommands: pykeep ctl …, pykeep realserver …, pykeep ipvs …",
        formatter_class=_help_formatter(argparse),
    )
    ap.add_argument(
        "-f", "--use-file", dest="conf_file", default=config.DEFAULT_PATH, metavar="FILE"
    )
    ap.add_argument("-P", "--vrrp", action="store_true", help="only run the VRRP subsystem")
    ap.add_argument(
        "-C", "--check", action="store_true", help="only run the health-checker subsystem"
    )
    ap.add_argument("-B", "--no_bfd", action="store_true")
    ap.add_argument("-l", "--log-console", action="store_true")
    ap.add_argument("-D", "--log-detail", action="store_true")
    ap.add_argument("-S", "--log-facility", type=int, default=None, metavar="[0-7]")
    ap.add_argument("-g", "--log-file", nargs="?", const="/tmp/keepalived.log", default=None)
    ap.add_argument("-G", "--no-syslog", action="store_true", help="do not log to syslog")
    ap.add_argument("-X", "--release-vips", action="store_true", help="not supported")
    ap.add_argument("-V", "--dont-release-vrrp", action="store_true", help="not supported")
    ap.add_argument(
        "-I", "--dont-release-ipvs", action="store_true", help="leave IPVS entries on stop"
    )
    ap.add_argument(
        "-R",
        "--dont-respawn",
        action="store_true",
        help="pykeep is one process and never respawns anything",
    )
    ap.add_argument("-n", "--dont-fork", action="store_true")
    ap.add_argument(
        "-d", "--dump-conf", action="store_true", help="log the configuration at start-up"
    )
    ap.add_argument("-p", "--pid", default=None, metavar="FILE")
    ap.add_argument("-r", "--vrrp_pid", default=None, metavar="FILE")
    ap.add_argument("-c", "--checkers_pid", default=None, metavar="FILE")
    ap.add_argument("-a", "--address-monitoring", action="store_true", help="not supported")
    ap.add_argument("-s", "--namespace", default=None)
    ap.add_argument("-m", "--core-dump", action="store_true")
    ap.add_argument("-M", "--core-dump-pattern", nargs="?", const="core", default=None)
    ap.add_argument("-i", "--config-id", default=None)
    ap.add_argument(
        "-t",
        "--config-test",
        nargs="?",
        const="",
        default=None,
        metavar="FILE",
        help="check the configuration and exit (messages to FILE if given)",
    )
    ap.add_argument("-v", "--version", action="store_true")
    ap.add_argument("--signum", default=None, metavar="NAME")
    ap.add_argument("--log-json", action="store_true", help="log as JSON lines")
    ap.add_argument(
        "--metrics-listen",
        default=None,
        metavar="ADDR",
        help="serve Prometheus metrics on ADDR (host:port)",
    )
    ap.add_argument(
        "--control-socket", default=None, metavar="PATH", help="runtime control API socket"
    )
    return ap


#: keepalived options pykeep does not implement: refused with one line, never
#: accepted silently (core/main.c parse_cmdline sets the matching debug bits).
_REFUSED = {
    "release_vips": (
        "-X/--release-vips",
        "pykeep does not remove VIPs it did not set when leaving MASTER",
    ),
    "dont_release_vrrp": (
        "-V/--dont-release-vrrp",
        "pykeep always removes its VIPs and routes when it stops",
    ),
    "address_monitoring": (
        "-a/--address-monitoring",
        "pykeep does not log the address changes netlink reports",
    ),
}


def refused_option(opts: argparse.Namespace) -> str | None:
    """The one-line refusal for the first unsupported keepalived option given, else None."""
    for dest, (flag, why) in _REFUSED.items():
        if getattr(opts, dest, False):
            return f"pykeep: {flag} is not supported ({why}); remove it from the command line"
    return None


def config_test(conf_file: str, config_id: str | None, out: Any = None) -> int:
    """``-t``: print each diagnostic as keepalived does and return keepalived's exit code."""
    from pykeep import config

    stream = out if out is not None else sys.stderr
    result = config.load(conf_file, config_id)
    for d in result.diagnostics:
        print(str(d), file=stream)
    return result.exit_code


def _run_module(module: str, rest: list[str]) -> int:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        print(f"pykeep: {module} is not available ({exc})", file=sys.stderr)
        return 1
    rc = mod.main(rest)
    return int(rc) if isinstance(rc, int) else 0


# The options a plain config test may carry, and whether each takes a value.
_QUICK_TEST_OPTIONS = {
    "-f": True,
    "--use-file": True,
    "-i": True,
    "--config-id": True,
    "-l": False,
    "--log-console": False,
    "-D": False,
    "--log-detail": False,
    "-n": False,
    "--dont-fork": False,
}


def _quick_config_test(args: list[str]) -> tuple[str, str | None] | None:
    """``(conf_file, config_id)`` for a plain ``-t [-f FILE] [-i ID]``, else None.

    Building the argparse parser (argparse, gettext's catalogue search, the
    terminal size through shutil) costs a good share of a small file's
    ``pykeep -t``; this form, the one scripts and unit files use, is read here
    with argparse's meaning.  Anything else (``-t FILE``, bundled or
    abbreviated options, any other option) goes to argparse.
    """
    from pykeep import config

    conf_file = config.DEFAULT_PATH
    config_id: str | None = None
    test = False
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in ("-t", "--config-test"):
            if i < len(args) and not args[i].startswith("-"):
                return None  # -t FILE: messages to FILE
            test = True
            continue
        if arg.startswith("--use-file="):
            conf_file = arg.split("=", 1)[1]
            continue
        takes = _QUICK_TEST_OPTIONS.get(arg)
        if takes is None:
            return None
        if takes:
            if i >= len(args) or args[i].startswith("-"):
                return None
            if arg in ("-f", "--use-file"):
                conf_file = args[i]
            else:
                config_id = args[i]
            i += 1
    return (conf_file, config_id) if test else None


def _default_config_id() -> str:
    from pykeep import config

    return config.default_config_id()


def main(argv: Sequence[str] | None = None) -> int:
    # The configuration package is imported where it is used and never held
    # here: the daemon lets its parser go once started (pykeep/daemon.py).
    args = list(sys.argv[1:] if argv is None else argv)
    quick = _quick_config_test(args)
    if quick is not None:
        conf_file, config_id = quick
        return config_test(conf_file, config_id or _default_config_id())
    if args and args[0] in _SUBCOMMANDS:
        return _run_module(_SUBCOMMANDS[args[0]], args[1:])
    if "--genhash" in args:
        i = args.index("--genhash")
        return _run_module("healthcheck.genhash", args[i + 1 :])
    ap = build_parser()
    try:
        opts = ap.parse_args(args)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    if opts.version:
        from importlib.metadata import PackageNotFoundError, version

        from pykeep.ops import dumps

        try:
            ver = version("pykeep")
        except PackageNotFoundError:
            ver = "unknown"
        # keepalived prints its version to stderr; keepalived-exporter reads it there.
        print(dumps.version_text(ver), end="", file=sys.stderr)
        return 0
    if opts.signum is not None:
        from pykeep.ops import dumps

        try:
            print(dumps.signum(opts.signum))
        except dumps.UnknownSignal as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    refusal = refused_option(opts)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 1
    if opts.config_id is None:
        opts.config_id = _default_config_id()
    if opts.config_test is not None:
        if opts.config_test:
            try:
                with open(opts.config_test, "w", encoding="utf-8") as f:
                    return config_test(opts.conf_file, opts.config_id, f)
            except OSError as exc:
                print(f"pykeep: cannot write {opts.config_test}: {exc.strerror}", file=sys.stderr)
                return 1
        return config_test(opts.conf_file, opts.config_id)
    return _run_module_opts("pykeep.daemon", opts)


def _run_module_opts(module: str, opts: argparse.Namespace) -> int:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        print(f"pykeep: the daemon is not available ({exc})", file=sys.stderr)
        return 1
    rc = mod.main(opts)
    return int(rc) if isinstance(rc, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
