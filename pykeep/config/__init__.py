"""keepalived.conf → typed model, with keepalived's verdict and clear diagnostics.

``load(path)`` and ``load_text(text, name)`` never raise for bad input: the
result carries the model (whatever could be parsed), every diagnostic, and the
exit code ``keepalived -t`` would give.
"""

from __future__ import annotations

import gc
import os
import stat
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from pykeep.config import check_parser, global_parser, support, vrrp_parser
from pykeep.config.diagnostics import (
    EXIT_MISSING_PARAMETER,
    EXIT_NO_CONFIG,
    Diagnostic,
    Severity,
    exit_code_for,
)
from pykeep.config.lexer import MAX_CONFIG_BYTES, Lexer, ReplayLexer
from pykeep.config.model import NOWHERE, Config, GlobalDefs, Loc, VrrpSyncGroup
from pykeep.config.parser import SKIP, STRUCTURE, Abort, Irregular, Keyword, Parser, State, Table
from pykeep.config.validate import (
    InterfaceExists,
    sys_interface_exists,
    validate,
    validate_check,
    validate_global,
    validate_vrrp,
)

__all__ = ["Diagnostic", "LoadResult", "Severity", "default_config_id", "load", "load_text"]

DEFAULT_PATH = "/etc/keepalived/keepalived.conf"


@dataclass(frozen=True, slots=True)
class LoadResult:
    """The outcome of reading a configuration, as ``keepalived -t`` would judge it."""

    config: Config
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # keepalived stopped reading (a required parameter was missing): exit 2.
    aborted: bool = False
    # An includer/includem/… could not read what it names: keepalived stops
    # after the parent's read, exit 6 (main.c had_config_file_error).
    file_error: bool = False

    @property
    def worst(self) -> Severity:
        return max((d.severity for d in self.diagnostics), default=Severity.OK)

    @property
    def exit_code(self) -> int:
        if self.file_error:
            return EXIT_NO_CONFIG
        if self.aborted:
            return EXIT_MISSING_PARAMETER
        return exit_code_for(self.worst)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def default_config_id() -> str:
    """keepalived's default ``-i``: the host name up to the first dot (main.c)."""
    # os.uname().nodename is gethostname(2) on Linux, without importing socket.py.
    return os.uname().nodename.split(".", 1)[0]


def _skipped(table: Table) -> Table:
    return {name: SKIP for name in table}


def _tables() -> tuple[Table, Table, Table, Table, Table, Table]:
    """The keyword tables: all sections at once, and keepalived's three passes.

    keepalived -t reads the file three times (core/main.c): the parent with
    only global_defs active, then the checker and the VRRP processes, each
    with its own sections active and the others skipped (check_parser.c
    check_init_keywords, vrrp_parser.c vrrp_init_keywords).
    """
    glob: Table = {}
    vrrp: Table = {}
    check: Table = {}
    global_parser.install(glob)
    vrrp_parser.install(vrrp)
    check_parser.install(check)
    track = {k: vrrp.pop(k) for k in ("track_file", "vrrp_track_file")}
    combined = {**glob, **vrrp, **track, **check}
    # Warnings for the keywords pykeep does not act on, and a place for every
    # keyword keepalived knows (config/support.py); shared by all the passes.
    support.apply(combined)
    parent = {**glob, **_skipped(vrrp), **_skipped(track), **_skipped(check)}
    checker = {**_skipped(glob), **_skipped(vrrp), **track, **check}
    # The checker process reads bfd_instance too, for BFD_CHECK's names
    # (bfd_parser.c init_bfd_keywords: bfd_checker_handler).
    checker["bfd_instance"] = vrrp["bfd_instance"]
    vrrp_pass = {**_skipped(glob), **vrrp, **track, **_skipped(check)}
    # The BFD process reads bfd_instance alone (bfd_parser.c bfd_init_keywords).
    bfd_pass = {**_skipped(glob), **_skipped(vrrp), **_skipped(track), **_skipped(check)}
    bfd_pass["bfd_instance"] = vrrp["bfd_instance"]
    vs = check["virtual_server"].sub
    assert vs is not None
    rs = vs["real_server"].sub
    assert rs is not None
    return combined, parent, checker, vrrp_pass, bfd_pass, rs


_ROOT, _PARENT, _CHECKER, _VRRP, _BFD, _RS_TABLE = _tables()
_COMMON: Table = {}
check_parser.install_common(_COMMON, connection=True)
_COMMON["nb_get_retry"] = _RS_TABLE["HTTP_GET"].sub["nb_get_retry"]  # type: ignore[index]


def _irregular(parser: Parser) -> bool:
    """Could keepalived's three passes disagree with our single one on this file?"""
    return (
        parser.brace_mismatch
        or parser.lex.saw_escape
        or parser.lex.cut_lines
        or any(d.severity in STRUCTURE for d in parser.diagnostics)
    )


def _plugin_hook(p: Parser, word: str) -> Keyword | None:
    return check_parser.plugin_keyword(p, word, _COMMON)


def _parser(
    make_lexer: Callable[[bool], Lexer], table: Table, replay: Lexer | None = None
) -> Parser:
    lexer = make_lexer(table is _PARENT) if replay is None else ReplayLexer(replay)
    parser = Parser(lexer, table)
    # The lexer reports into the parser's list, through a weak reference: a
    # lexer holding its parser would make the two a reference cycle, and the
    # whole parse (every model object of a big file) would wait for the
    # garbage collector, at exit if not before, instead of being freed at once.
    ref = weakref.ref(parser)

    def report(loc: Loc | None, severity: Severity, message: str, hint: str | None = None) -> None:
        p = ref()
        if p is not None:
            p.report(loc, severity, message, hint)

    lexer._report = report
    parser.plugin_table = _RS_TABLE
    parser.plugin_hook = _plugin_hook
    return parser


def _run(make_lexer: Callable[[bool], Lexer], interface_exists: InterfaceExists) -> LoadResult:
    """Parse with the cyclic garbage collector paused.

    A large file allocates hundreds of thousands of small objects that all
    stay alive until the model is built; the collector would traverse them
    again and again for nothing (nothing here makes reference cycles worth
    collecting early).  It is resumed, as it was, before returning.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run_all(make_lexer, interface_exists)
    finally:
        if was_enabled:
            gc.enable()


def _run_all(make_lexer: Callable[[bool], Lexer], interface_exists: InterfaceExists) -> LoadResult:
    """One pass over all sections; keepalived's three passes when the braces are off."""
    parser = _parser(make_lexer, _ROOT)
    parser.interface_exists = interface_exists
    parser.bail_on_structure = True  # a hostile file costs three passes, not four
    try:
        parser.run()
    except Irregular:
        return _run_passes(make_lexer, interface_exists)
    except Abort:
        # keepalived stops in one process (exit 2), which may read the file
        # before others that this single pass heard from already (the checker
        # reads before the VRRP and BFD processes: main.c validate_config).
        # Only the passes say who spoke before the stop.
        return _run_passes(make_lexer, interface_exists)
    except RecursionError:
        parser.report(parser.lex.loc, Severity.FATAL, "configuration nested too deeply")
        parser.summarize()
        return LoadResult(
            Config(files=tuple(parser.lex.files)),
            parser.diagnostics,
            file_error=parser.lex.file_error,
        )
    parser.bail_on_structure = False
    if _irregular(parser):
        return _run_passes(make_lexer, interface_exists)
    validate(parser, interface_exists)
    parser.summarize()
    return LoadResult(
        _freeze(parser.state, parser.lex.files),
        parser.diagnostics,
        aborted=parser.state.bfd_stopped,
        file_error=parser.lex.file_error,
    )


def _run_passes(
    make_lexer: Callable[[bool], Lexer], interface_exists: InterfaceExists
) -> LoadResult:
    """keepalived's parent, checker, VRRP and BFD passes, in its order (main.c validate_config).

    The keywords only the BFD process reads say nothing in the checker and
    VRRP passes (bfd_parser.c init_bfd_keywords gives them ignore_handler);
    the BFD pass, last, reads bfd_instance blocks where its brace counting
    finds them, and its stop for a missing value (exit 2) comes after all
    the others have said.
    """
    diagnostics: list[Diagnostic] = []
    seen: set[tuple[object, str]] = set()
    states: list[State] = []
    files: list[str] = []
    aborted = False
    file_error = False
    lexed: Lexer | None = None  # the checker pass's lexer, when its lines can be replayed
    for table in (_PARENT, _CHECKER, _VRRP, _BFD):
        parser = _parser(make_lexer, table, lexed if table is _VRRP else None)
        parser.interface_exists = interface_exists
        parser.bfd_quiet = table is _CHECKER or table is _VRRP
        if table is _CHECKER:
            parser.lex.record = []
        if states:
            # The children inherit global_defs from the parent (main.c).
            parser.state.global_defs = states[0].global_defs
        try:
            parser.run()
            if table is _CHECKER and parser.lex.record is not None:
                lexed = parser.lex  # read to the end: the VRRP pass sees the same lines
            if table is _PARENT:
                validate_global(parser)
            elif table is _CHECKER:
                validate_check(parser)
            elif table is _VRRP:
                validate_vrrp(parser, interface_exists)
        except Abort:
            aborted = True
        except RecursionError:
            parser.report(parser.lex.loc, Severity.FATAL, "configuration nested too deeply")
        parser.summarize()
        for d in parser.diagnostics:
            key = (d.loc, d.message)
            if key not in seen:
                seen.add(key)
                diagnostics.append(d)
        states.append(parser.state)
        files = parser.lex.files
        file_error = file_error or parser.lex.file_error
        if aborted:
            return LoadResult(Config(files=tuple(files)), diagnostics, True, file_error)
    parent, checker, vrrp, bfd = states
    merged = vrrp
    merged.bfd_instances = bfd.bfd_instances
    merged.global_defs = parent.global_defs
    merged.accepted = parent.accepted
    merged.virtual_server_groups = checker.virtual_server_groups
    merged.virtual_servers = checker.virtual_servers
    return LoadResult(
        _freeze(merged, files), diagnostics, aborted=bfd.bfd_stopped, file_error=file_error
    )


def _freeze(st: State, files: list[str]) -> Config:
    g = dict(st.global_defs)
    g["accepted"] = tuple(st.accepted)
    gd = GlobalDefs(**{k: v for k, v in g.items() if k in GlobalDefs.__dataclass_fields__})
    groups: list[VrrpSyncGroup] = [sg for sg, _m in st.vrrp_sync_groups]
    return Config(
        global_defs=gd,
        static_ipaddress=tuple(st.static_ipaddress),
        static_routes=tuple(st.static_routes),
        static_rules=tuple(st.static_rules),
        vrrp_scripts=tuple(st.vrrp_scripts),
        vrrp_track_files=tuple(st.vrrp_track_files),
        vrrp_track_processes=tuple(st.vrrp_track_processes),
        bfd_instances=tuple(st.bfd_instances),
        vrrp_sync_groups=tuple(groups),
        vrrp_instances=tuple(st.vrrp_instances),
        virtual_server_groups=tuple(st.virtual_server_groups),
        virtual_servers=tuple(vs for vs, _d in st.virtual_servers),
        files=tuple(files),
    )


def load_text(
    text: str,
    name: str = "<string>",
    config_id: str | None = None,
    interface_exists: InterfaceExists | None = None,
) -> LoadResult:
    """Parse ``text`` as if it were file ``name`` (includes are resolved on disk)."""
    cid = config_id if config_id is not None else default_config_id()

    first: list[Lexer] = []  # the first pass's lexer lends its lines to the others

    def make_lexer(literal_escapes: bool = False) -> Lexer:
        lexer = Lexer(lambda *_a: None, cid, literal_escapes=literal_escapes)
        lexer.open_text(name, text, first[0] if first else None)
        if not first:
            first.append(lexer)
        return lexer

    result = _run(make_lexer, interface_exists or sys_interface_exists)
    diags = result.diagnostics
    for i, d in enumerate(diags):
        if d.loc is not None and d.loc.line == 0 and d.loc.file not in (name, NOWHERE.file):
            diags[i] = Diagnostic(d.loc, d.severity, d.message, d.hint, named=True)
    return result


def load(
    path: str,
    config_id: str | None = None,
    interface_exists: InterfaceExists | None = None,
) -> LoadResult:
    """Read the configuration file ``path`` the way ``keepalived -f PATH`` does.

    keepalived 2.2.7 exits 0 from ``-t`` when the file is missing, or is not a
    regular non-executable file (parser.c check_conf_file reports those at
    level CONFIG_OK); we give the same verdict but say plainly that nothing
    was checked.  ``LoadResult.config.files`` is then empty.
    """
    nothing = "nothing was checked: keepalived 2.2.7 also exits 0 here"
    try:
        st = os.stat(path)
    except OSError:
        diag = Diagnostic(
            Loc(path, 0),
            Severity.INFO,
            f"Config files missing '{path}'. {nothing}",
            "give the path of an existing keepalived.conf with -f",
        )
        return LoadResult(Config(), [diag])
    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o111:
        diag = Diagnostic(
            Loc(path, 0),
            Severity.INFO,
            f"Configuration file '{path}' is not a regular non-executable file - skipping. "
            + nothing,
            f"chmod a-x {path}" if stat.S_ISREG(st.st_mode) else "give a regular file with -f",
        )
        return LoadResult(Config(), [diag])
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1) if st.st_size <= MAX_CONFIG_BYTES else b""
    except OSError as exc:
        diag = Diagnostic(
            Loc(path, 0),
            Severity.FILE_NOT_FOUND,
            f"Unable to read configuration file {path} ({exc.strerror or exc})",
            "make the file readable by the user running pykeep",
        )
        return LoadResult(Config(), [diag])
    if len(data) > MAX_CONFIG_BYTES or st.st_size > MAX_CONFIG_BYTES:
        diag = Diagnostic(
            Loc(path, 0),
            Severity.FATAL,
            f"configuration file {path} is over {MAX_CONFIG_BYTES // (1024 * 1024)} MB - not read",
            "split out what is generated, or check that -f names the right file",
        )
        return LoadResult(Config(), [diag])
    text = data.decode("utf-8", "surrogateescape")
    del data  # as large as the text: not kept through the parse
    return load_text(text, path, config_id, interface_exists)
