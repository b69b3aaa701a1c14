"""The block parser: keyword tables walked the way lib/parser.c ``process_stream`` walks them.

Each section module (``global_parser``, ``vrrp_parser``, ``check_parser``)
installs its keywords into a tree of ``Keyword`` objects, as keepalived's
``install_keyword*`` calls do.  Handlers write into plain dict builders; the
block's close handler freezes them into ``model`` objects.  Nothing here
raises for bad input: every problem becomes a ``Diagnostic``.
"""

from __future__ import annotations

import ipaddress

# _socket, not socket: socket.py's enums cost start-up time (pykeep -t) for nothing here.
from _socket import AF_INET, AF_INET6, inet_pton
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pykeep.config.diagnostics import Diagnostic, Severity
from pykeep.config.lexer import Lexer, Line, brace_line, split_quoted_escaped
from pykeep.config.model import IPAddress, Loc, Script

TYPE_CHECKING = False  # typing stays unimported at run time: start-up counts (pykeep -t)
if TYPE_CHECKING:
    from typing import Any

Handler = Callable[["Parser", Line], None]
Closer = Callable[["Parser"], None]


class Abort(Exception):
    """A required parameter is missing: keepalived exits on the spot (parser.c null_strvec)."""


class Irregular(Exception):
    """The braces are off: this one-pass parse cannot stand for keepalived's three passes."""


# Diagnostics that mean the brace structure is off: then keepalived's passes,
# which skip inactive sections by counting braces, can see different blocks.
STRUCTURE = frozenset(
    {Severity.UNEXPECTED_BOB, Severity.UNEXPECTED_EOB, Severity.MISSING_BOB, Severity.MISSING_EOB}
)


class Keyword:
    """One keyword: its handler, its sub-keywords (a ``{}`` block) and the block's close handler.

    A plain slotted class rather than a dataclass: ``pykeep -t`` builds the
    class at every start.  ``inactive``: known but not read in this pass, its
    block is skipped by counting braces (parser.c process_stream,
    keyword_vec->active == false).
    """

    __slots__ = ("close", "handler", "inactive", "sub")

    def __init__(
        self,
        handler: Handler | None = None,
        sub: dict[str, Keyword] | None = None,
        close: Closer | None = None,
        inactive: bool = False,
    ) -> None:
        self.handler = handler
        self.sub = sub
        self.close = close
        self.inactive = inactive

    def __repr__(self) -> str:
        return f"Keyword(handler={self.handler!r}, sub={self.sub!r}, inactive={self.inactive})"


SKIP = Keyword(inactive=True)

# Diagnostics kept per kind before the rest are only counted (Parser.report).
MAX_PER_KIND = 100
_UNKNOWN_KIND = (Severity.UNKNOWN_KEYWORD, "Unknown keyword")


Table = dict[str, Keyword]


def kw(table: Table, name: str, handler: Handler | None = None) -> Keyword:
    k = Keyword(handler)
    table[name] = k
    return k


def block(table: Table, name: str, handler: Handler | None, close: Closer | None = None) -> Table:
    """Install a keyword with a ``{}`` sub-level and return its sub-table."""
    sub: Table = {}
    table[name] = Keyword(handler, sub, close)
    return sub


# Hints for keywords from forks and manuals that mainline keepalived does not know.
FOREIGN_HINTS: dict[str, str] = {
    "local_address_group": (
        "local_address_group (the Alibaba FULLNAT fork's, realised by pykeep) is a "
        "top-level block: move it out of this block"
    ),
    "laddr_group_name": (
        "laddr_group_name (the Alibaba FULLNAT fork's, realised by pykeep) belongs in a "
        "virtual_server with lb_kind FNAT"
    ),
    "syn_proxy": ("syn_proxy (the Alibaba FULLNAT fork's) belongs in a virtual_server block"),
    "nat_mask": "nat_mask was removed from keepalived long ago; delete the line",
    "nb_get_retry": (
        "keepalived's current spelling is 'retry' (nb_get_retry is known, deprecated, "
        "only in HTTP_GET and SSL_GET)"
    ),
    "/*": "'/* ... */' is not comment syntax in keepalived.conf; use '#' or '!' comments",
    "*/": "'/* ... */' is not comment syntax in keepalived.conf; use '#' or '!' comments",
}


@dataclass
class State:
    """Mutable builders the handlers fill in; frozen into the model at the end."""

    global_defs: dict[str, Any] = field(default_factory=dict)
    accepted: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    static_ipaddress: list[Any] = field(default_factory=list)
    static_routes: list[Any] = field(default_factory=list)
    static_rules: list[Any] = field(default_factory=list)
    vrrp_scripts: list[Any] = field(default_factory=list)
    vrrp_track_files: list[Any] = field(default_factory=list)
    vrrp_track_processes: list[Any] = field(default_factory=list)
    bfd_instances: list[Any] = field(default_factory=list)
    bfd_vrrp: dict[str, tuple[int, bool]] = field(default_factory=dict)  # track_bfd's view
    bfd_checker: set[str] = field(default_factory=set)  # BFD_CHECK's view
    # A bfd_instance keyword lacked its value: keepalived's BFD process, which
    # reads the file last (main.c validate_config), stops there with exit 2
    # after the checker and VRRP processes have said all they had to say.
    bfd_stopped: bool = False
    interface_missing: bool = False  # a block keepalived does not act on named one
    vrrp_sync_groups: list[Any] = field(default_factory=list)
    vrrp_instances: list[Any] = field(default_factory=list)
    virtual_server_groups: list[Any] = field(default_factory=list)
    virtual_servers: list[Any] = field(default_factory=list)
    # The blocks being filled in right now.
    cur: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # Where sub-objects refer to interfaces, for the existence check.
    interface_refs: list[tuple[str, Loc, str]] = field(default_factory=list)
    scripts: list[tuple[str, Script]] = field(default_factory=list)
    vrrp_meta: dict[str, dict[str, bool]] = field(default_factory=dict)
    # The next preference for a rule without one, IPv4 then IPv6 (vrrp_iprule.c).
    rule_pref: list[int] = field(default_factory=lambda: [16384, 16384])


class Parser:
    """Drives a ``Lexer`` through a keyword tree, collecting diagnostics and state."""

    def __init__(self, lexer: Lexer, root: Table) -> None:
        self.lex = lexer
        self.root = root
        self.diagnostics: list[Diagnostic] = []
        self._kinds: dict[tuple[Severity, str], int] = {}
        # Stop at the first brace-structure diagnostic (raise Irregular): the
        # caller then runs keepalived's three passes and drops this one.
        self.bail_on_structure = False
        # The keywords only keepalived's BFD process reads say nothing in this
        # pass (the checker's: bfd_parser.c init_bfd_keywords, ignore_handler).
        self.bfd_quiet = False
        self.state = State()
        self._skip = 0
        self._level = 0
        self.line: Line | None = None
        # The '}' that closed the last block (a Line, or a lexed-ahead Brace):
        # keepalived's end handlers report there (see ``close_loc``).
        self.closed_at: Line | tuple[str, str, int, int] | None = None
        # Block keywords inside this table that are not built in are offered
        # to checker plugins through plugin_hook (check_parser.plugin_keyword).
        self.brace_mismatch = False
        self.plugin_table: Table | None = None
        self.plugin_hook: Callable[[Parser, str], Keyword | None] | None = None
        # The last line a value block read (its '}'): keepalived's line for
        # what a handler reports after reading the block (``value_end_loc``).
        self.value_end: Line | None = None
        # Whether an interface exists, for the checks keepalived makes while
        # it reads (garp_group, linkbeat_interfaces …); None takes every name.
        self.interface_exists: Callable[[str], bool] | None = None

    # -- reporting -----------------------------------------------------------

    def report(
        self,
        loc: Loc | None,
        severity: Severity,
        message: str,
        hint: str | None = None,
    ) -> None:
        # A cap per kind (severity and first two words): a hostile file of a
        # million bad lines costs a count, not a million messages.
        if self.bail_on_structure and severity in STRUCTURE:
            raise Irregular
        kind = (severity, " ".join(message.split(" ", 2)[:2]))
        seen = self._kinds.get(kind, 0)
        self._kinds[kind] = seen + 1
        if seen < MAX_PER_KIND:
            self.diagnostics.append(Diagnostic(loc, severity, message, hint))

    def summarize(self) -> None:
        """Add one line per capped kind saying how many more there were (once, at the end)."""
        for (severity, words), count in self._kinds.items():
            if count > MAX_PER_KIND:
                more = count - MAX_PER_KIND
                self.diagnostics.append(
                    Diagnostic(
                        None,
                        severity,
                        f"... and {more} more '{words} …' messages like the above",
                        "fix the ones shown first: the others are likely the same mistake",
                    )
                )
        self._kinds.clear()

    def error(
        self, message: str, hint: str | None = None, sev: Severity = Severity.GENERAL_ERROR
    ) -> None:
        """Report at the line being handled."""
        self.report(self.line.loc if self.line else None, sev, message, hint)

    # -- the keepalived block walk (parser.c process_stream) -------------------

    def run(self) -> None:
        self._stream(self.root, need_bob=False)
        if self.lex.block_depth > 0:
            # parser.c init_data: reported once, after the whole file.
            self.report(
                self.lex.loc,
                Severity.MISSING_EOB,
                f"There are {self.lex.block_depth} missing '}}'s or extra '{{'s",
                "close every block with '}'",
            )

    def skip_block(self) -> None:
        """A handler rejects its block: skip it up to the matching '}' (parser.c skip_block)."""
        self._skip = -1

    def _stream(self, table: Table, need_bob: bool) -> bool:
        # The hot loop of the parse: attribute look-ups are hoisted into locals
        # (self._level does not change while this frame runs).
        # The lexer's run of plain lines lexed ahead is popped here directly
        # (what next_line would do first), the hottest path of a big file.
        buf = self.lex._buf
        next_line = self.lex.next_line
        get = table.get
        level = self._level
        while True:
            if buf:
                item = buf.pop()
                if isinstance(item, tuple):  # a lone brace (lexer.Brace)
                    if item[0] == "}" and level and not need_bob and not self._skip:
                        self.closed_at = item
                        return False  # the common case, as below
                    line = brace_line(item)
                else:
                    line = item
            else:
                got = next_line()
                if got is None:
                    return False
                line = got
            words = line.words
            first = words[0]
            skip = self._skip
            if skip:
                if skip == -1:
                    if first == "{":
                        self._skip = 1
                        need_bob = False
                        continue
                    self._skip = 0
                else:
                    for w in words:
                        if w == "{":
                            skip += 1
                        elif w == "}":
                            skip -= 1
                            if skip == 0:
                                break
                    self._skip = skip
                    if first == "}" and skip == 0 and level > 0:
                        return True
                    continue
            if need_bob:
                need_bob = False
                if first == "{" and level > 0:
                    continue
                self.report(
                    line.loc,
                    Severity.MISSING_BOB,
                    "Missing '{' at beginning of configuration block",
                    "put '{' after the block keyword",
                )
            elif first == "{":
                self.report(
                    line.loc,
                    Severity.UNEXPECTED_BOB,
                    "Unexpected '{' - ignoring",
                    "keepalived ignores this '{', so the next '}' closes the enclosing block",
                )
                continue
            if level:
                if first == "}":
                    self.closed_at = line
                    return False
            elif line.depth != 0:
                # The braces seen so far do not balance the blocks parsed
                # (a '{' inside a value block …): keepalived's passes that
                # skip sections by counting braces would see other blocks.
                self.brace_mismatch = True
            k = get(first)
            if k is None:
                if table is self.plugin_table and self.plugin_hook is not None:
                    k = self.plugin_hook(self, first)
                if k is None:
                    k = get("*")
                if k is None:
                    self._unknown(line)
                    continue
            if k.inactive:
                self._skip = -1
                continue
            self.line = line
            raw = line.raw
            if "/" in raw and ("//" in raw or "/*" in raw):
                self._foreign_comment(line)
            handler = k.handler
            if handler is not None:
                try:
                    handler(self, line)
                except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
                    self.error(f"invalid '{first}' line: {exc}")
            sub = k.sub
            if sub is not None:
                self._level = level + 1
                nxt = buf[-1] if buf else None
                if isinstance(nxt, tuple) and nxt[0] == "{" and not self._skip:
                    # The '{' the block needs is next: take it here, as the
                    # nested stream would (one loop turn less per block).
                    buf.pop()
                    skipped = self._stream(sub, need_bob=False)
                else:
                    skipped = self._stream(sub, need_bob=True)
                self._level = level
                close = k.close
                if not skipped and close is not None:
                    self.line = line
                    try:
                        close(self)
                    except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
                        self.report(
                            line.loc, Severity.GENERAL_ERROR, f"invalid '{first}' block: {exc}"
                        )
                self.closed_at = None  # only end handlers may ask for close_loc()

    def _foreign_comment(self, line: Line, first: int = 1) -> None:
        for w in line.words[first:]:
            if w.startswith("//") or w.startswith("/*"):
                self.report(
                    line.loc,
                    Severity.INFO,
                    f"'{w}' is not a comment: keepalived reads it as part of '{line.raw}'",
                    f"'{w[:2]}' is not comment syntax in keepalived.conf; use '#' or '!' instead",
                )
                return

    def _unknown(self, line: Line) -> None:
        kinds = self._kinds
        seen = kinds.get(_UNKNOWN_KIND, 0)
        if seen >= MAX_PER_KIND:  # past the cap only the count is kept (report)
            kinds[_UNKNOWN_KIND] = seen + 1
            return
        word = line.words[0]
        hint = FOREIGN_HINTS.get(word)
        if hint is None and (word.startswith("//") or word.startswith("/*")):
            hint = (
                f"'{word[:2]}' is not comment syntax in keepalived.conf; "
                "start the comment with '#' or '!'"
            )
        if hint is None and word == "}":
            hint = "this '}' has no block to close (an unknown keyword's '{' is ignored)"
        if hint is None:
            hint = "check the spelling, or remove the line; see keepalived.conf(5)"
        self.report(line.loc, Severity.UNKNOWN_KEYWORD, f"Unknown keyword '{word}'", hint)

    def value_block(self, line: Line, skip_name: bool = False) -> list[Line]:
        """Read the lines of ``KEYWORD { value lines }`` (parser.c ``alloc_value_block``).

        For virtual_server_group (``skip_name``) keepalived hands this function
        a vector without its first word, so an extra word or a missing '{'
        makes it stop with exit 2 (check_parser.c vsg_handler).
        """
        return list(self.value_lines(line, skip_name))

    def value_lines(self, line: Line, skip_name: bool = False) -> Iterator[Line]:
        """``value_block``'s lines one at a time, read as they are asked for.

        A block of millions of addresses need not be held as lines: each is
        made into its model object and dropped.  A handler that reports
        anything must read the whole block first (``value_block``), so that
        its diagnostics follow the lexer's, as they always have.
        """
        extra = line.words[2:] if skip_name else line.words[1:]
        if extra and skip_name:
            self.report(
                line.loc,
                Severity.MISSING_PARAMETER,
                f"*** Configuration line starting `{line.words[0]}` has extra parameters "
                f"'{extra[0]}' …: keepalived 2.2.7 stops here",
                f"write '{line.words[0]} NAME {{' with nothing else on the line",
            )
            raise Abort
        if extra:
            self.error(
                f"Block {line.words[0]} has extra parameters {extra[0]} ...",
                "only the block keyword (and its name) may precede '{'",
            )
        need_bob = True
        lex = self.lex
        while True:
            # A Line lexed ahead is taken as next_line would hand it out,
            # without the call: a block can be millions of lines.
            buf = lex._buf
            last = buf[-1] if buf else None
            if isinstance(last, Line):
                buf.pop()
                nxt = last
            else:
                got = lex.next_line()
                if got is None:
                    break
                nxt = got
            self.value_end = nxt
            words = nxt.words
            if "//" in nxt.raw or "/*" in nxt.raw:
                self._foreign_comment(nxt, first=0)
            if need_bob:
                need_bob = False
                if words[0] == "{":
                    if len(words) == 1:
                        continue
                    words = words[1:]
                elif skip_name:
                    self.report(
                        nxt.loc,
                        Severity.MISSING_PARAMETER,
                        f"'{{' missing from beginning of block {line.words[0]}: "
                        "keepalived 2.2.7 stops here",
                        f"put '{{' after '{line.words[0]} NAME'",
                    )
                    raise Abort
                else:
                    # parser.c alloc_value_block only logs this and reads on.
                    # But a pass where this keyword is inactive reads the next
                    # line as a keyword (process_stream, skip_sublevel -1):
                    # the passes see different blocks, so they are run apart.
                    self.brace_mismatch = True
                    if self.bail_on_structure:
                        raise Irregular
            if words[-1] == "}":
                if len(words) == 1:
                    break
                yield Line(words[:-1], nxt.raw, nxt.file, nxt.lineno, nxt.depth)
                break
            if words is not nxt.words:
                nxt = Line(words, nxt.raw, nxt.file, nxt.lineno, nxt.depth)
            yield nxt

    # -- values ----------------------------------------------------------------

    def arg(self, line: Line, i: int = 1) -> str | None:
        """Word ``i`` or a missing-parameter diagnostic."""
        if i < len(line.words):
            return line.words[i]
        self.report(
            line.loc,
            Severity.MISSING_PARAMETER,
            f"*** Configuration line starting `{line.words[0]}` is missing a parameter "
            f"after keyword `{line.words[i - 1]}` at word position {i + 1}",
            f"give {line.words[0]} a value",
        )
        # keepalived stops reading here and exits 2 (parser.c null_strvec).
        raise Abort

    def opt_arg(self, line: Line, message: str, hint: str | None = None) -> str | None:
        """Word 1 where keepalived checks for it and only complains (no exit)."""
        if len(line.words) > 1:
            return line.words[1]
        self.report(
            line.loc, Severity.GENERAL_ERROR, message, hint or f"give {line.words[0]} a value"
        )
        return None

    def int_arg(
        self, line: Line, lo: int, hi: int, i: int = 1, what: str | None = None
    ) -> int | None:
        """An integer in [lo, hi] (parser.c ``read_int_func``/``read_unsigned_func``)."""
        s = self.arg(line, i)
        if s is None:
            return None
        return self.to_int(s, lo, hi, line, what or line.words[0])

    def to_int(self, s: str, lo: int, hi: int, where: Loc | Line, what: str) -> int | None:
        """strtol/strtoul on the whole word, then the range (parser.c read_int/read_unsigned).

        ``where`` may be the Line: its Loc is only built for a diagnostic.
        """
        if s.isdigit() and s.isascii():  # the common case, without the hint or a Loc
            n = int(s)
            if lo <= n <= hi:
                return n
        loc = where.loc if isinstance(where, Line) else where
        v = c_int(s)
        hint = f"{what} takes an integer in [{lo}, {hi}]"
        if v is None:
            if lo >= 0 and s.lstrip(_C_SPACE).startswith("-"):
                self.report(loc, Severity.INVALID_NUMBER, f"negative number '{s}'", hint)
            else:
                self.report(loc, Severity.INVALID_NUMBER, f"invalid number '{s}'", hint)
            return None
        if lo >= 0 and v < 0:
            self.report(loc, Severity.INVALID_NUMBER, f"negative number '{s}'", hint)
            return None
        if not lo <= v <= hi:
            self.report(
                loc, Severity.INVALID_NUMBER, f"number '{s}' outside range [{lo}, {hi}]", hint
            )
            return None
        return v

    def decimal_arg(
        self, line: Line, lo: float, hi: float, i: int = 1, what: str | None = None
    ) -> float | None:
        """Seconds with ≤6 decimals (parser.c ``read_decimal_unsigned_long_func``)."""
        words = line.words
        if i < len(words):
            w = words[i]
            # Whole seconds, exactly what the long way gives (and no overflow).
            if len(w) < 16 and w.isdigit() and w.isascii():
                f = float(int(w))
                if lo <= f <= hi:
                    return f
        s = self.arg(line, i)
        if s is None:
            return None
        name = what or line.words[0]
        rng = f"[{_fmt_dec(lo)}, {_fmt_dec(hi)}]"
        hint = f"{name} takes a number of seconds in {rng}"
        t = s.lstrip(_C_SPACE)
        if t.startswith("-"):
            self.report(line.loc, Severity.INVALID_NUMBER, f"negative number '{s}'", hint)
            return None
        if t.startswith("+"):
            t = t[1:]
        ipart, _dot, fpart = t.partition(".")
        if len(fpart) > 6:
            self.report(
                line.loc, Severity.INVALID_NUMBER, f"number '{s}' has too many decimal places", hint
            )
        digits = ipart + fpart[:6]
        if digits and not (digits.isascii() and digits.isdigit()):
            self.report(line.loc, Severity.INVALID_NUMBER, f"invalid number '{s}'", hint)
            return None
        micro = int(digits.ljust(len(ipart) + 6, "0") or "0")
        if len(fpart) > 6 and fpart[6] >= "5":
            micro += 1
        v = micro / 1_000_000
        if not lo <= v <= hi:
            self.report(
                line.loc, Severity.INVALID_NUMBER, f"number '{s}' outside range {rng}", hint
            )
            return None
        if len(fpart) > 6:
            return None
        return v

    def ip(self, s: str, loc: Loc | None = None, what: str = "address") -> IPAddress | None:
        try:
            return parse_ip(s)
        except ValueError:
            self.report(
                loc or (self.line.loc if self.line else None),
                Severity.GENERAL_ERROR,
                f"Invalid {what} '{s}'",
                "write an IPv4 or IPv6 address, e.g. 192.168.1.10",
            )
            return None

    def script(self, line: Line, kind: str, missing: str | None = "abort") -> Script | None:
        """A script-bearing keyword's command (notify.c ``notify_script_init``).

        ``missing`` says what keepalived does without a command: "abort" (the
        notify handlers read word 1 unconditionally: exit 2), a message to
        report, or None to say nothing.
        """
        if len(line.raw.split(None, 1)) < 2:
            if missing == "abort":
                self.arg(line)
            if missing is not None:
                self.error(missing, f'write: {line.words[0]} "/path/to/script arg…"')
            return None
        # keepalived only logs these (notify.c notify_script_init): no verdict change.
        words = split_quoted_escaped(line.raw)
        if not words or len(words) < 2:
            self.error(
                f"Unable to parse {kind} script",
                f'write: {line.words[0]} "/path/to/script arg…" [user [group]]',
                Severity.INFO,
            )
            return None
        argv = split_quoted_escaped(words[1])
        if not argv:
            self.error(f"Unable to parse script '{words[1]}' - ignoring", None, Severity.INFO)
            return None
        user = words[2] if len(words) > 2 else None
        group = words[3] if len(words) > 3 else None
        sc = Script(tuple(argv), user, group, line.loc)
        from pykeep.config.script_user import notify_script_kept

        if not notify_script_kept(self, sc, kind):
            return None
        self.state.scripts.append((kind, sc))
        return sc

    def accept(self, line: Line) -> None:
        self.state.accepted.append((line.words[0], tuple(line.words[1:])))

    def flag(self, line: Line) -> bool:
        """A boolean keyword: bare means true; keepalived's check_true_false for a value."""
        if len(line.words) < 2:
            return True
        v = line.words[1].lower()
        if v in ("true", "on", "yes"):
            return True
        if v in ("false", "off", "no"):
            return False
        # keepalived ignores what follows most flag keywords; say so without failing.
        self.report(
            line.loc,
            Severity.INFO,
            f"{line.words[0]}: ignoring '{line.words[1]}'",
            "use true/false, on/off or yes/no (or the bare keyword)",
        )
        return True

    def value_end_loc(self) -> Loc | None:
        """Where the last value block ended: keepalived's line once it has read one."""
        at = self.value_end
        return at.loc if at is not None else (self.line.loc if self.line else None)

    def close_loc(self) -> Loc | None:
        """Where the block being closed ended: its '}' (for end-of-block messages)."""
        at = self.closed_at
        if at is None:
            return self.line.loc if self.line is not None else None
        return at.loc if isinstance(at, Line) else brace_line(at).loc

    def deprecated(self, line: Line, message: str, hint: str) -> None:
        self.report(line.loc, Severity.GENERAL_ERROR, message, hint)


_C_SPACE = " \t\n\r\f\v"
TIMER_MAX = float(2**64 - 2) / 1_000_000  # TIMER_MAXIMUM, in seconds
UINT_TIMER_MAX = 4294.967295  # UINT_MAX microseconds


def c_int(s: str) -> int | None:
    """What strtol(s, &end, 10) accepts when it must consume the whole word, or None."""
    if not s:
        return 0  # strtol("") converts nothing and ends at the NUL: 0, valid
    t = s.lstrip(_C_SPACE)
    body = t[1:] if t[:1] in ("+", "-") else t
    if not body or not body.isascii() or not body.isdigit():
        return None
    return int(t)


def parse_ip(s: str) -> IPAddress:
    """An IPv4/IPv6 address as keepalived reads it (inet_pton), quickly; ValueError if not."""
    try:
        if ":" in s:
            return ipaddress.IPv6Address(inet_pton(AF_INET6, s))
        return ipaddress.IPv4Address(inet_pton(AF_INET, s))
    except OSError:
        raise ValueError(f"{s!r} is not an IP address") from None


def _fmt_dec(v: float) -> str:
    if v == int(v):
        return str(int(v))
    return f"{v:.6f}"


def generic(p: Parser, line: Line) -> None:
    """A keyword keepalived accepts and pykeep records but does not act on."""
    p.accept(line)


def frozen(d: dict[str, Any], allowed: set[str] | frozenset[str] | None = None) -> dict[str, Any]:
    """Builder dict → dataclass kwargs: lists become tuples, private keys dropped."""
    return {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in d.items()
        if k[:1] != "_" and (allowed is None or k in allowed)
    }
