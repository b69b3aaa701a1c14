"""``pykeep``: keepalived's command line, plus pykeep's own options and subcommands.

The options are keepalived's (core/main.c ``parse_cmdline``) so that an
operator can swap the binary name; ``-t`` runs the config test here, anything
else hands the parsed options to ``pykeep.daemon.main``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pykeep import config

TYPE_CHECKING = False  # typing stays unimported at run time: start-up counts (pykeep -t)
if TYPE_CHECKING:
    from typing import Any

_SUBCOMMANDS = {
    "ctl": "pykeep.ops.ctl",
    "realserver": "pykeep.realserver",
    "ipvs": "ipvs.cli",
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="pykeep",
        description="A pure-Python drop-in replacement for keepalived.",
        epilog="Subcommands: pykeep ctl …, pykeep realserver …, pykeep ipvs …",
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
    ap.add_argument("-G", "--no-syslog", action="store_true")
    ap.add_argument("-X", "--release-vips", action="store_true")
    ap.add_argument("-V", "--dont-release-vrrp", action="store_true")
    ap.add_argument("-I", "--dont-release-ipvs", action="store_true")
    ap.add_argument("-R", "--dont-respawn", action="store_true")
    ap.add_argument("-n", "--dont-fork", action="store_true")
    ap.add_argument("-d", "--dump-conf", action="store_true")
    ap.add_argument("-p", "--pid", default=None, metavar="FILE")
    ap.add_argument("-r", "--vrrp_pid", default=None, metavar="FILE")
    ap.add_argument("-c", "--checkers_pid", default=None, metavar="FILE")
    ap.add_argument("-a", "--address-monitoring", action="store_true")
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


def config_test(conf_file: str, config_id: str | None, out: Any = None) -> int:
    """``-t``: print each diagnostic as keepalived does and return keepalived's exit code."""
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


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
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
    if opts.config_id is None:
        opts.config_id = config.default_config_id()
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
