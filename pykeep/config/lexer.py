"""Turn keepalived.conf text into logical lines of words, the way lib/parser.c ``read_line`` does.

What happens here, in keepalived's order: comments (``!``/``#`` outside double
quotes, ``\\!``/``\\#`` literal), ``include`` (glob + brace expansion, relative to
the including file), ``@id``/``@^id`` conditional lines, ``$NAME=value``
definitions (multi-line with a trailing ``\\``), ``$NAME``/``${NAME}``
substitution, ``~SEQ``/``~LST`` line generators, and splitting a line at the
first ``{``/``}`` outside quotes so that braces may touch words.

Physical lines are what keepalived's ``fgets`` into a 1024-byte buffer gives:
text after a NUL is dropped, a line of 1023 bytes or more is read in pieces,
trailing CR/LF are stripped and a bare CR elsewhere is a blank between
words (``_fgets_lines``).  An include reads only regular non-executable files
(parser.c check_glob_file), and all files together stay under
``MAX_CONFIG_BYTES`` and ``MAX_CONFIG_FILES``.

The lexer is pull-driven (``next_line``) because keepalived's value blocks
(``virtual_ipaddress { … }``) read raw lines themselves; the parser needs the
same interleaving to reproduce keepalived's diagnostics exactly.
"""

from __future__ import annotations

import os
import re
import stat
from collections import deque
from collections.abc import Callable
from functools import partial

from pykeep.config.diagnostics import Severity
from pykeep.config.model import Loc, maker

Report = Callable[[Loc | None, Severity, str, "str | None"], None]

_WS = " \t"
# What makes a physical line one for read_line's full treatment (see _fill);
# "include" anywhere on the line, to be simple: the slow path gives the same words.
# Whitespace other than " \t\r" is left to it too, so that the bulk path may
# use str.strip()/split(), which take all of it (and non-ASCII text, below).
_SLOW_MARKS = (
    "!",
    "#",
    '"',
    "\\",
    "$",
    "@",
    "~",
    "include",
    "\v",
    "\f",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x1f",
)
# A rare pattern stays a string: re compiles it on first use, not at start-up.
_NON_ASCII = r"[^\x00-\x7f]"
_COMMENT_MARKS = re.compile(r'[!#"\\]')
_BRACE_OR_QUOTE = re.compile(r'[{}"]')
# keepalived splits words on C's white space, " \t\f\n\r\v" (parser.c
# WHITE_SPACE_STR); str.split() also splits on _PY_ONLY_SPACE, which keepalived
# keeps inside a word.
_C_SPACE = " \t\f\n\r\v"
_C_WORD = re.compile(r"[^ \t\f\n\r\v]+")
_PY_ONLY_SPACE = re.compile("[\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_new_loc = maker(Loc)
_MAX_INCLUDE_DEPTH = 64
# Ceilings keepalived does not have: it streams its files, we hold them in
# memory, so a runaway include (a huge file, a glob over a big tree) must end
# in a clear error instead of exhausting memory.  Both are far beyond any real
# configuration (a 2.5-million-address file is about 60 MB).
MAX_CONFIG_BYTES = 256 * 1024 * 1024
MAX_CONFIG_FILES = 10_000
# parser.c read_line reads with fgets(buf, MAXBUF): at most 1023 bytes, and
# then stops at the first NUL (strlen).  A longer line is read as several.
_FGETS_BYTES = 1023
# Lines a recording lexer keeps for a replay (ReplayLexer); past this the
# replay is given up and the next pass lexes again, to bound the memory.
_RECORD_MAX = 1_000_000
# Lines lexed ahead at a time: enough to amortise the call, few enough that
# the objects are recycled rather than piling up for the whole file.
_FILL_LINES = 256


class Line:
    """One logical line: its words, the raw text (for script re-parsing) and where it is.

    The ``Loc`` is built on demand: most lines never need one, and building a
    frozen dataclass per line is a large share of the parse time.
    """

    __slots__ = ("depth", "file", "lineno", "raw", "words")

    def __init__(self, words: list[str], raw: str, file: str, lineno: int, depth: int) -> None:
        self.words = words
        self.raw = raw
        self.file = file
        self.lineno = lineno
        # The lexer's block_depth once this line is handed out: for lines
        # lexed ahead (Lexer._fill), the lexer itself has counted further.
        self.depth = depth

    @property
    def loc(self) -> Loc:
        return _new_loc(self.file, self.lineno)


# A lone '{' or '}' lexed ahead (Lexer._fill): the brace, file, line and the
# block depth after it.  Most lines are these; the parser rarely needs more.
Brace = tuple[str, str, int, int]


def brace_line(b: Brace) -> Line:
    """The Line of a lexed-ahead brace."""
    return Line([b[0]], b[0], b[1], b[2], b[3])


def decomment(text: str, literal_escapes: bool = False) -> tuple[str, bool, bool]:
    """Strip comments and surrounding blanks (parser.c ``decomment``).

    Returns the text, whether it ends in a continuation ``\\`` (kept, as
    keepalived keeps it) and whether a double quote was left open.  An escaped
    ``\\#``/``\\!`` outside quotes ends the line as keepalived 2.2.7 really
    does (see below); ``$_HASH``/``$_BANG`` or double quotes give a literal one.
    The scan jumps from one of ``!#"\\`` to the next, so that a long line
    costs one regex search per mark, not a Python step per character.
    """
    s = text.lstrip(_WS)
    if "!" not in s and "#" not in s and '"' not in s and "\\" not in s:
        return s.rstrip(_WS), False, False
    search = _COMMENT_MARKS.search
    out: list[str] = []
    quote = False
    n = len(s)
    last = 0  # start of the text not yet copied to out
    pos = 0
    comment = -1  # where a comment starts: keepalived still looks for a final '\'
    while True:
        m = search(s, pos)
        if m is None:
            break
        i = m.start()
        c = s[i]
        if c == '"':
            quote = not quote
            pos = i + 1
            continue
        if c == "\\":
            if i + 1 >= n:
                out.append(s[last:i])
                last = n
                return "".join(out).rstrip(_WS) + "\\", True, quote
            if not quote and s[i + 1] in "#!":
                # keepalived 2.2.7's parent strips the escape and writes
                # the line to its config copy; the checker and VRRP
                # processes re-read that copy (parser.c read_line,
                # write_conf_copy), where the bare '#'/'!' starts a comment.
                out.append(s[last:i])
                if literal_escapes:
                    out.append(s[i + 1])
                    last = pos = i + 2
                    continue
                comment = i
                break
            pos = i + 2
            continue
        if not quote:  # '!' or '#'
            out.append(s[last:i])
            comment = i
            break
        pos = i + 1
    if comment < 0:
        out.append(s[last:])
        return "".join(out).rstrip(_WS), False, quote
    # Inside the comment only a trailing, unescaped '\' still matters (parser.c).
    j = s.find("\\", comment)
    cont = False
    while j >= 0:
        if j + 1 >= n:
            cont = True
            break
        j = s.find("\\", j + 2)
    result = "".join(out).rstrip(_WS)
    return (result + "\\" if cont else result), cont, quote


def split_words(text: str) -> tuple[list[str], bool]:
    """Split on blanks with ``"…"`` as one word (parser.c ``alloc_strvec_r``).

    Returns the words and False when a quote was unmatched (keepalived stops there).
    """
    if '"' not in text:
        if _PY_ONLY_SPACE.search(text) is None:
            return text.split(), True
        return _C_WORD.findall(text), True
    words: list[str] = []
    i = 0
    n = len(text)
    while True:
        while i < n and text[i] in " \t\r\n\f\v":
            i += 1
        if i >= n:
            return words, True
        if text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                return words, False
            words.append(text[i + 1 : end])
            i = end + 1
            continue
        j = i
        while j < n and text[j] not in ' \t\r\n\f\v"':
            j += 1
        words.append(text[i:j])
        i = j


def split_quoted_escaped(src: str) -> list[str] | None:
    """Split a script command line with single/double quotes and C escapes.

    Mirrors parser.c ``alloc_strvec_quoted_escaped``, used only by the
    script-bearing keywords (notify*, misc_path, quorum_up/down, vrrp_script).
    Returns None for an unterminated quote or a trailing lone ``\\``.
    """
    words: list[str] = []
    i = 0
    n = len(src)
    while i < n:
        while i < n and src[i] in _C_SPACE:
            i += 1
        if i >= n:
            break
        buf: list[str] = []
        quote = ""
        while i < n:
            c = src[i]
            if c == "\\":
                i += 1
                if i >= n:
                    return None
                e = src[i]
                if e == "x" and i + 1 < n and src[i + 1] in "0123456789abcdefABCDEF":
                    i += 1
                    v = 0
                    while i < n and src[i] in "0123456789abcdefABCDEF":
                        v = ((v << 4) | int(src[i], 16)) & 0xFF
                        i += 1
                    buf.append(chr(v))
                elif e == "c" and i + 1 < n:
                    buf.append(chr(ord(src[i + 1]) & 0x1F))
                    i += 2
                elif "0" <= e <= "7":
                    v = 0
                    k = 0
                    while k < 3 and i < n and "0" <= src[i] <= "7":
                        v = (v << 3) + int(src[i])
                        i += 1
                        k += 1
                    buf.append(chr(v & 0xFF))
                else:
                    buf.append(_ESCAPES.get(e, e))
                    i += 1
                continue
            if quote:
                if c == quote:
                    quote = ""
                else:
                    buf.append(c)
                i += 1
                continue
            if c in "\"'":
                quote = c
                i += 1
                continue
            if c in _C_SPACE:
                break
            buf.append(c)
            i += 1
        if quote:
            return None
        words.append("".join(buf))
    return words


_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}


def expand_braces(pattern: str) -> list[str]:
    """GLOB_BRACE expansion: ``a{b,c}d`` → ``abd``, ``acd`` (nested allowed)."""
    depth = 0
    start = -1
    for i, c in enumerate(pattern):
        if c == "\\":
            continue
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                inner = pattern[start + 1 : i]
                parts: list[str] = []
                d = 0
                last = 0
                for j, ch in enumerate(inner):
                    if ch == "{":
                        d += 1
                    elif ch == "}":
                        d -= 1
                    elif ch == "," and d == 0:
                        parts.append(inner[last:j])
                        last = j + 1
                parts.append(inner[last:])
                if len(parts) == 1:
                    return [pattern]
                out: list[str] = []
                for p in parts:
                    out.extend(expand_braces(pattern[:start] + p + pattern[i + 1 :]))
                return out
    return [pattern]


class _Definition:
    """A ``$NAME=value`` definition (a plain class: cheaper to build at start-up)."""

    __slots__ = ("multiline", "value")

    def __init__(self, value: str, multiline: bool = False) -> None:
        self.value = value
        self.multiline = multiline


class _Source:
    """One open file: its physical lines and where we are in them.

    ``linenos`` is None for an ordinary file (line ``i`` is number ``i + 1``);
    a file with NUL bytes or over-long lines is cut the way keepalived's
    ``fgets`` cuts it (``_fgets_lines``), and then carries its own numbers:
    ``linenos`` as the checker and VRRP processes count, ``parent_linenos``
    as keepalived's parent does.
    """

    __slots__ = (
        "_slow",
        "_slow_i",
        "_text",
        "dir",
        "linenos",
        "lines",
        "name",
        "parent_linenos",
        "pos",
    )
    lines: list[str]
    linenos: list[int] | None
    parent_linenos: list[int] | None
    _text: str | None
    _slow: list[int]

    def __init__(self, name: str, text: str, like: _Source | None = None) -> None:
        self.name = name
        self.dir = os.path.dirname(name)
        self.pos = 0
        self._slow_i = 0
        if like is not None:  # the same text again (another pass): share its lines
            like.plain_end()  # finds its slow lines, if not done yet
            self.lines = like.lines
            self.linenos = like.linenos
            self.parent_linenos = like.parent_linenos
            self._text = None
            self._slow = like._slow
            return
        self.lines = text.split("\n")
        self.linenos = self.parent_linenos = None
        self._text = text
        self._slow = []
        if "\x00" in text or _has_long_line(self.lines, text):
            self.lines, self.linenos, self.parent_linenos = _fgets_lines(self.lines)
            self._text = None

    def plain_end(self) -> int:
        """Index of the first line from ``pos`` on that may need read_line's full treatment.

        The lines before it hold none of ``_SLOW_MARKS``: one pass over the
        whole file finds those lines (``_slow_lines``), instead of a search per line.
        """
        if self.linenos is not None:
            return self.pos  # every line of such a file goes the general way
        text = self._text
        if text is not None:
            self._text = None
            self._slow = _slow_lines(text)
        slow = self._slow
        i = self._slow_i
        pos = self.pos
        n = len(slow)
        while i < n and slow[i] < pos:
            i += 1
        self._slow_i = i
        return slow[i] if i < n else len(self.lines)


def _has_long_line(lines: list[str], text: str) -> bool:
    """Does any line hold more bytes than one ``fgets`` call of keepalived reads?"""
    longest = max(map(len, lines), default=0)
    if longest >= _FGETS_BYTES:
        return True
    if longest * 4 < _FGETS_BYTES or text.isascii():
        return False
    return any(
        len(line.encode("utf-8", "surrogateescape")) >= _FGETS_BYTES
        for line in lines
        if len(line) * 4 >= _FGETS_BYTES
    )


def _fgets_lines(lines: list[str]) -> tuple[list[str], list[int], list[int]]:
    """The lines keepalived's read_line sees, and the line numbers it gives each.

    parser.c read_line reads 1023 bytes at most per ``fgets``, keeps them up
    to the first NUL (``strlen``) and strips trailing CR/LF.  So a NUL cuts
    the rest of its line off, a long line is read as several lines, and a
    bare CR inside a line stays: a blank between words (alloc_strvec_r's
    WHITE_SPACE), part of a quoted word.

    The numbers differ between keepalived's processes.  The parent (global_defs)
    counts a line when the piece ``fgets`` gave ends in a newline, so the
    pieces of a long line but the last carry the number of the line before,
    and a NUL makes every later line one less.  The parent writes each piece,
    decommented, as a line of its config copy (``write_conf_copy``), which the
    checker and VRRP processes read instead: for them each piece is a line of
    its own, and later lines move down by one per extra piece; a piece still
    1023 bytes long once decommented fills their buffer again, and is read
    before its newline is counted.
    """
    out: list[str] = []
    nos: list[int] = []
    parent_nos: list[int] = []
    parent = child = 0
    last = len(lines) - 1
    for k, line in enumerate(lines):
        if k == last and not line:
            break  # the text ended with a newline: nothing more to read
        data = line.encode("utf-8", "surrogateescape")
        if k < last:
            data += b"\n"
        for off in range(0, len(data), _FGETS_BYTES):
            piece = data[off : off + _FGETS_BYTES]
            nul = piece.find(b"\0")
            if nul >= 0:
                piece = piece[:nul]
            if piece.endswith(b"\n"):
                parent += 1
            raw = piece.rstrip(b"\r\n")
            text = raw.decode("utf-8", "surrogateescape")
            out.append(text)
            parent_nos.append(parent)
            # decomment never lengthens a line: only a full piece can still fill
            # the buffer once decommented.
            if (
                len(raw) >= _FGETS_BYTES
                and len(decomment(text, literal_escapes=True)[0].encode("utf-8", "surrogateescape"))
                >= _FGETS_BYTES
            ):
                nos.append(child)  # then its newline, alone
                child += 1
            else:
                child += 1
                nos.append(child)
    return out, nos, parent_nos


class Lexer:
    """A pull lexer over a file and its includes (lib/parser.c ``read_line``)."""

    def __init__(
        self,
        report: Report,
        config_id: str | None,
        read_file: Callable[[str], str | _Refused | None] | None = None,
        literal_escapes: bool = False,
    ) -> None:
        self.literal_escapes = literal_escapes
        self.saw_escape = False
        # A file was cut the way fgets cuts it (NUL bytes, lines of 1023 bytes
        # or more): keepalived's processes number its lines differently.
        self.cut_lines = False
        # An includer-style include could not read what it names (parser.c
        # config_file_error): keepalived stops after the parent's read, -t exits 6.
        self.file_error = False
        self._report = report
        self.config_id = config_id
        # None for the disk (a bound method kept here would make the lexer a
        # reference cycle, which only the garbage collector frees).
        self._read_file = read_file
        # What is left of the ceilings (MAX_CONFIG_BYTES, MAX_CONFIG_FILES).
        self.bytes_left = MAX_CONFIG_BYTES
        self.files_left = MAX_CONFIG_FILES
        self._stack: list[_Source] = []
        self.top: _Source | None = None  # the top-level file (open_text)
        # Every line handed out, in order, when a later pass will replay them
        # (ReplayLexer); None when not recording.
        self.record: list[Line | Brace] | None = None
        self._pending: deque[tuple[str, Loc, tuple[tuple[str, str], ...]]] = deque()
        self._defs: dict[str, _Definition] = {
            "_HASH": _Definition("#"),
            "_BANG": _Definition("!"),
        }
        self._multiline_def: _Definition | None = None
        self.block_depth = 0
        # Plain lines lexed ahead by _fill, last first; the parser pops from
        # this very list.  _filled is the run in order, for ``loc``.
        self._buf: list[Line | Brace] = []
        self._filled: list[Line | Brace] | None = None
        self.files: list[str] = []
        self._pos: tuple[str, int] = ("<none>", 0)
        self.line_text = ""

    # -- files ---------------------------------------------------------------

    def open_text(self, name: str, text: str, like: Lexer | None = None) -> None:
        """Start reading ``text`` as file ``name`` (the top-level file).

        ``like``, a lexer that opened the same text (an earlier pass), lends
        its split lines instead of splitting them again.
        """
        self.files.append(name)
        self.bytes_left -= len(text)
        self.files_left -= 1
        self._stack.append(_Source(name, text, like.top if like is not None else None))
        self.top = self._stack[0]
        self.cut_lines = self.cut_lines or self.top.linenos is not None

    def _include(self, pattern: str, loc: Loc, kind: str = "") -> None:
        """Read the files ``pattern`` names (parser.c check_include, open_glob_file).

        ``kind`` is the letter after ``include`` (``includer``, ``includem`` …):
        with any, a file that cannot be read is a config-file error (INCLUDE_R);
        ``m``, ``w``, ``a`` also make a missing file one, ``b``/``a`` a missing
        brace alternative, ``w``/``a`` a wildcard matching nothing.  keepalived
        then stops after reading the file, ``-t`` exiting 6 (main.c,
        had_config_file_error); plain ``include`` only says so.
        """
        import glob  # only configurations with includes pay for it

        base = self._stack[-1].dir if self._stack else ""
        paths: list[str] = []
        wildcard = False
        missing = False
        alternatives = expand_braces(pattern.strip())
        for pat in alternatives:
            full = pat if os.path.isabs(pat) or not base else os.path.join(base, pat)
            if glob.has_magic(full):
                wildcard = True
                # GLOB_MARK (parser.c open_and_check_glob): directories end in '/'.
                paths.extend(sorted(_mark_dir(m) for m in glob.glob(full)))
            elif os.path.lexists(full):
                paths.append(_mark_dir(full))
            else:
                missing = True
        if kind and (
            (missing and not wildcard and kind in "mwa" and len(alternatives) == 1)
            or (missing and len(alternatives) > 1 and kind in "ba")
            or (not paths and wildcard and kind in "wa")
        ):
            self.file_error = True
            what = "No config files matched" if wildcard and not missing else "Config files missing"
            self._report(
                loc,
                Severity.FILE_NOT_FOUND,
                f"{what} '{pattern.strip()}'.",
                "fix the path, or use plain 'include' if the files are optional",
            )
        elif not paths:
            self._report(
                loc,
                Severity.INFO,
                f"Config files missing '{pattern.strip()}' - ignored, as keepalived does",
                "fix the include path if the file was meant to be read",
            )
        skipped = Severity.FILE_NOT_FOUND if kind else Severity.INFO
        # keepalived pushes each match in turn; we push in reverse so the
        # first match is read first.
        opened: list[_Source] = []
        for path in paths:
            if path.endswith("/"):
                self.file_error = self.file_error or bool(kind)
                self._report(
                    loc,
                    skipped,
                    f"Configuration file '{path}' is a directory - skipping",
                    "include the files in it, e.g. 'include conf.d/*.conf'",
                )
                continue
            real = os.path.realpath(path)
            if any(os.path.realpath(s.name) == real for s in self._stack):
                self._report(
                    loc,
                    Severity.FATAL,
                    f"include cycle: '{path}' is already being read",
                    "remove the include that leads back to a file that includes it",
                )
                continue
            if len(self._stack) + len(opened) >= _MAX_INCLUDE_DEPTH:
                self._report(loc, Severity.FATAL, f"includes nested too deeply at '{path}'", None)
                continue
            if self.files_left <= 0:
                self._report(
                    loc,
                    Severity.FATAL,
                    f"more than {MAX_CONFIG_FILES} configuration files - '{path}' not read",
                    "include fewer, larger files",
                )
                break
            read = self._read_file
            text = read(path) if read is not None else self._read_disk_file(path)
            if isinstance(text, _Refused):
                sev = Severity.FATAL if text.fatal else skipped
                self.file_error = self.file_error or (bool(kind) and not text.fatal)
                self._report(loc, sev, text.message, text.hint)
                continue
            if text is None:
                continue
            self.files_left -= 1
            self.bytes_left -= len(text)
            self.files.append(path)
            opened.append(_Source(path, text))
            self.cut_lines = self.cut_lines or opened[-1].linenos is not None
        for src in reversed(opened):
            self._stack.append(src)

    def _read_disk_file(self, path: str) -> str | _Refused:
        """An included file's text if it is a regular non-executable file (check_glob_file).

        Only a regular file is read: a FIFO, a device (``/dev/zero``), a
        socket or a directory is refused before it is opened, as keepalived
        refuses it; the open does not block (a FIFO swapped in after the
        check) and the read stops at what is left of MAX_CONFIG_BYTES.
        """
        refused = _Refused(
            f"Configuration file '{path}' is not a regular non-executable file - skipping",
            "include regular files without the execute bit, e.g. 'include conf.d/*.conf'",
        )
        try:
            st = os.stat(path)
        except OSError:
            return refused
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o111:
            return refused
        too_big = _Refused(
            f"configuration over {MAX_CONFIG_BYTES // (1024 * 1024)} MB at '{path}' - not read",
            "split out what is generated, or include fewer files",
            fatal=True,
        )
        if st.st_size > self.bytes_left:
            return too_big
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            return _Refused(
                f"Configuration file '{path}' open problem ({exc.strerror or exc}) - skipping",
                "make the file readable by the user running pykeep",
            )
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return refused
            data = f.read(max(self.bytes_left, 0) + 1)
        if len(data) > self.bytes_left:  # it grew since the stat
            return too_big
        return data.decode("utf-8", "surrogateescape")

    # -- lines ---------------------------------------------------------------

    def _physical(self) -> tuple[str, Loc] | None:
        """The next non-empty decommented physical line, across includes."""
        while self._stack:
            src = self._stack[-1]
            if src.pos >= len(src.lines):
                self._stack.pop()
                continue
            raw = src.lines[src.pos]
            src.pos += 1
            if raw.endswith("\r"):
                raw = raw.rstrip("\r\n")
            nos = src.parent_linenos if self.literal_escapes else src.linenos
            loc = Loc(src.name, src.pos if nos is None else nos[src.pos - 1])
            if not raw:
                if self._multiline_def is not None:
                    self._multiline_def = None
                continue
            text, _cont, open_quote = decomment(raw, self.literal_escapes)
            if "\\#" in raw or "\\!" in raw:
                self.saw_escape = True
                self._report(
                    loc,
                    Severity.INFO,
                    "an escaped '\\#' or '\\!' is literal only in global_defs: keepalived 2.2.7 "
                    "reads it as a comment everywhere else",
                    "write $_HASH or $_BANG, or put the text in double quotes",
                )
            if open_quote:
                self._report(loc, Severity.GENERAL_ERROR, f"Unterminated quote '{text}'", None)
            if text:
                return text, loc
        return None

    def _process(self, text: str, loc: Loc) -> str:
        """Handle definitions, @id, ~SEQ and $substitution; '' means "no line here"."""
        if self._multiline_def is not None:
            d = self._multiline_def
            if text.endswith("\\"):
                text = text[:-1].rstrip(_WS) + "\n"
            else:
                self._multiline_def = None
            if len(text) >= 2 or (text and self._multiline_def is None):
                d.value += text
            return ""
        if not text or (text[0] not in "@$~" and "$" not in text):
            return text  # most lines: nothing to define, select, generate or substitute
        for _ in range(32):
            if text.startswith("@"):
                rev = text.startswith("@^")
                ofs = 2 if rev else 1
                sp = _first_blank(text, ofs)
                if sp < 0:
                    return ""
                ident = text[ofs:sp]
                matches = self.config_id is not None and ident == self.config_id
                if matches == rev:
                    return ""
                text = text[sp:].lstrip(_WS)
            if text.startswith("$") and self._definition(text):
                return ""
            if text.startswith("~SEQ") or text.startswith("~LST"):
                ok = self._seq(text, loc) if text[1] == "S" else self._lst(text, loc)
                if not ok:
                    kind = "SEQ" if text[1] == "S" else "LST"
                    self._report(
                        loc,
                        Severity.GENERAL_ERROR,
                        f"Invalid ~{kind} specification '{text}'",
                        "write ~SEQ(var, start, step, end) TEXT or ~LST(var, v1, v2) TEXT",
                    )
                return ""
            if text.startswith("~"):
                return text
            if "$" not in text or len(self._defs) == 0:
                return text
            new = self._substitute(text, loc)
            if new is None:
                return text
            text, _c, _q = decomment(new)
            if not text or (not text.startswith("@") and "$" not in text):
                return text
        return text

    def _definition(self, text: str) -> bool:
        """``$NAME=value`` (parser.c ``check_definition``)."""
        if len(text) < 2 or not (text[1].isalpha() or text[1] == "_"):
            return False
        i = 2
        while i < len(text) and text[i] != "=":
            c = text[i]
            if not (c.isalnum() or c == "_"):
                break
            i += 1
        name = text[1:i]
        j = i
        while j < len(text) and text[j] in _WS:
            j += 1
        if j >= len(text) or text[j] != "=":
            return False
        value = text[j + 1 :].lstrip(_WS)
        multiline = value.endswith("\\")
        if multiline:
            value = value[:-1].rstrip(_WS)
            value = value + "\n" if value else ""
        d = _Definition(value, multiline)
        self._defs[name] = d
        if multiline:
            self._multiline_def = d
        return True

    def _lookup(self, text: str, pos: int) -> tuple[_Definition, int] | None:
        """Find the definition named at text[pos] ('$' at pos-1); return it and the end index."""
        braces = pos < len(text) and text[pos] == "{"
        start = pos + 1 if braces else pos
        if start >= len(text) or not (text[start].isalpha() or text[start] == "_"):
            return None
        end = start + 1
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
        name = text[start:end]
        if braces:
            if end >= len(text) or text[end] != "}":
                return None
            stop = end + 1
        else:
            if end < len(text) and text[end] not in " \t,)":
                return None
            stop = end
        d = self._defs.get(name)
        if d is None:
            if name == "_PWD":
                d = _Definition(os.path.abspath(self._stack[-1].dir if self._stack else "."))
            elif name == "_INSTANCE":
                d = _Definition(self.config_id or "")
            elif name == "_RANDOM":
                import random

                d = _Definition(str(random.randint(0, 2**31 - 1)))
            else:
                return None
        if d.multiline and stop != len(text):
            return None
        return d, stop

    def _substitute(self, text: str, loc: Loc) -> str | None:
        """Replace $NAME / ${NAME}; a multi-line value queues its other lines."""
        out: list[str] = []
        i = 0
        changed = False
        rest_lines: list[str] = []
        while True:
            k = text.find("$", i)
            if k < 0 or k + 1 >= len(text):
                out.append(text[i:])
                break
            found = self._lookup(text, k + 1)
            if found is None:
                out.append(text[i : k + 1])
                i = k + 1
                continue
            d, stop = found
            changed = True
            out.append(text[i:k])
            if d.multiline:
                parts = d.value.split("\n")
                out.append(parts[0])
                rest_lines = [p for p in parts[1:] if p]
                i = stop
                out.append(text[stop:])
                break
            out.append(d.value)
            i = stop
            if d.value.lstrip(_WS).startswith("~"):
                out.append(text[i:])
                break
        if not changed:
            return None
        for extra in reversed(rest_lines):
            self._pending.appendleft((extra, loc, ()))
        return "".join(out)

    def _seq(self, text: str, loc: Loc) -> bool:
        """``~SEQ(var, [start,] [step,] end) TEXT`` (parser.c ``add_seq``)."""
        p = text[4:]
        hexa = p.startswith("x")
        if hexa:
            p = p[1:]
        p = p.lstrip(_WS)
        if not p.startswith("("):
            return False
        close = p.find(")")
        if close < 0:
            return False
        inner = p[1:close]
        rest = p[close + 1 :].lstrip(_WS)
        args = [a.strip() for a in inner.split(",")]
        if len(args) < 2 or len(args) > 4 or not args[0]:
            return False
        var = args[0]
        nums: list[int] = []
        for a in args[1:]:
            sub = self._substitute(a, loc) if "$" in a else None
            try:
                nums.append(int(sub if sub is not None else a, 0))
            except ValueError:
                return False
        if len(nums) == 1:
            end = nums[0]
            step = -1 if end < 1 else 1
            start = -1 if end < 0 else 1
        elif len(nums) == 2:
            start, end = nums
            step = 1 if start <= end else -1
        else:
            start, step, end = nums
            if step == 0 or (start < end and step < 0) or (start > end and step > 0):
                return False
        if hexa and (start < 0 or end < 0):
            return False
        count = (end - start) // step + 1
        if count > 100_000:
            return False
        items = []
        v = start
        while (step > 0 and v <= end) or (step < 0 and v >= end):
            items.append((rest, loc, ((var, f"{v:x}" if hexa else str(v)),)))
            v += step
        for item in reversed(items):
            self._pending.appendleft(item)
        return True

    def _lst(self, text: str, loc: Loc) -> bool:
        """``~LST(var, v1, v2 …) TEXT`` or ``~LST({a,b},{1,2},{3,4}) TEXT``."""
        p = text[4:].lstrip(_WS)
        if not p.startswith("("):
            return False
        depth = 0
        close = -1
        for i, c in enumerate(p):
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            elif c == ")" and depth == 0:
                close = i
                break
        if close < 0:
            return False
        inner = p[1:close]
        rest = p[close + 1 :].lstrip(_WS)
        groups: list[list[str]] = []
        if inner.lstrip().startswith("{"):
            for chunk in inner.split("}"):
                chunk = chunk.strip().lstrip(",").strip()
                if not chunk:
                    continue
                if not chunk.startswith("{"):
                    return False
                groups.append([x.strip() for x in chunk[1:].split(",")])
            if len(groups) < 2:
                return False
            names = groups[0]
            rows = groups[1:]
        else:
            args = [a.strip() for a in inner.split(",")]
            if len(args) < 2 or not args[0]:
                return False
            names = [args[0]]
            rows = [[a] for a in args[1:]]
        items = []
        for row in rows:
            if len(row) != len(names):
                return False
            items.append((rest, loc, tuple(zip(names, row, strict=True))))
        for item in reversed(items):
            self._pending.appendleft(item)
        return True

    def next_text(self) -> tuple[str, Loc] | None:
        """The next processed line text, before brace splitting (None at end)."""
        while True:
            if self._pending:
                text, loc, assigns = self._pending.popleft()
                for name, value in assigns:
                    self._defs[name] = _Definition(value)
            else:
                got = self._physical()
                if got is None:
                    return None
                text, loc = got
            text = self._process(text, loc)
            if not text:
                continue
            if _is_include(text):
                if text[7] in _WS:
                    self._include(text[8:].strip(_WS), loc)
                else:
                    self._include(text[9:], loc, text[7])
                continue
            return text, loc

    @property
    def loc(self) -> Loc:
        """Where the last line handed out came from (for end-of-input diagnostics)."""
        filled = self._filled
        if filled is not None:
            last = filled[len(filled) - len(self._buf) - 1]
            if isinstance(last, tuple):
                return Loc(last[1], last[2])
            return Loc(last.file, last.lineno)
        return Loc(*self._pos)

    def _fill(self) -> bool:
        """Lex a run of plain lines of the current file at once into ``_buf``.

        A plain line (see ``_slow_lines``) is either words, a lone brace, or
        words ending in its only brace, ``{``; it needs no lexer state, so the
        whole run is split up front, braces counted (each line carries the
        depth after it).  The first other line, or a '}' with no block to
        close (reported when handed out), ends the run and is left to
        the general path.  A lone brace, most of the lines,
        stays a ``Brace`` tuple until someone needs its Line (``brace_line``).
        """
        src = self._stack[-1]
        lines = src.lines
        start = src.pos
        end = min(src.plain_end(), start + _FILL_LINES)
        if end <= start:
            return False
        depth = self.block_depth
        if not depth and lines[start].strip() == "}":
            return False  # an extra '}' (below): spare the slice of a run that is not there
        name = src.name
        out: list[Line | Brace] = []
        add = out.append
        n = start
        new = object.__new__
        for n, raw in enumerate(lines[start:end], start + 1):
            s = raw.strip()  # only " \t\r" to strip here (see _SLOW_MARKS)
            if not s:
                continue
            # Below, "line = new(Line) …" is Line(words, s, name, n, depth)
            # without the cost of a call: this loop is the bulk of the lexing.
            if "{" in s or "}" in s:
                if s == "}":
                    if not depth:  # "Extra '}'": for the line-by-line path
                        n -= 1
                        break
                    depth -= 1
                    add(("}", name, n, depth))
                    continue
                if s == "{":
                    depth += 1
                    add(("{", name, n, depth))
                    continue
                # "keyword args {" is two lines; any other brace, the line-by-line path's
                head = s[:-1].rstrip(" \t")
                words = head.split()
                if s[-1] != "{" or s.count("{") != 1 or "}" in s or not words:
                    n -= 1
                    break
                line = new(Line)
                line.words = words
                line.raw = head
                line.file = name
                line.lineno = n
                line.depth = depth
                add(line)
                depth += 1
                add(("{", name, n, depth))
                continue
            line = new(Line)
            # One word (a value line: an address, a name) is the stripped line
            # itself: no second copy of it for each of a million VIPs.
            plain = " " not in s and "\t" not in s and "\r" not in s
            line.words = [s] if plain else s.split()
            line.raw = s
            line.file = name
            line.lineno = n
            line.depth = depth
            add(line)
        src.pos = n
        if not out:
            return False
        self.block_depth = depth
        self._filled = out
        self._buf.extend(reversed(out))
        if self.record is not None:
            self._keep(out)
        return True

    def _keep(self, items: list[Line | Brace]) -> None:
        """Add to ``record`` what is handed out, or give up past ``_RECORD_MAX`` items."""
        record = self.record
        if record is not None:
            record.extend(items)
            if len(record) > _RECORD_MAX:
                self.record = None

    def next_line(self) -> Line | None:
        """The next logical line, split at the first brace outside quotes."""
        buf = self._buf
        if buf:
            item = buf.pop()
            return brace_line(item) if isinstance(item, tuple) else item
        filled = self._filled
        if filled is not None:  # all handed out
            last = filled[-1]
            self._pos = last[1:3] if isinstance(last, tuple) else (last.file, last.lineno)
            self._filled = None
        if not self._pending and self._multiline_def is None and self._stack and self._fill():
            return self.next_line()
        while True:
            got = self.next_text()
            if got is None:
                return None
            text, loc = got
            if "{" in text or "}" in text:
                text = self._split_brace(text, loc)
            words, ok = split_words(text)
            if not ok:
                self._report(loc, Severity.UNMATCHED_QUOTE, f"Unmatched quote: '{text}'", None)
            if text == "{":
                self.block_depth += 1
            elif text == "}":
                self.block_depth -= 1
                if self.block_depth < 0:
                    self._report(
                        loc,
                        Severity.UNEXPECTED_EOB,
                        "Extra '}' found",
                        "remove this '}' or add the '{' it should close",
                    )
                    self.block_depth = 0
            self._pos = (loc.file, loc.line)
            self.line_text = text
            if not words:
                continue
            line = Line(words, text, loc.file, loc.line, self.block_depth)
            if self.record is not None:
                self._keep([line])
            return line

    def _split_brace(self, text: str, loc: Loc) -> str:
        """Keep text up to the first '{'/'}' (or just the brace); queue the rest."""
        p = 0
        if text[0] not in "{}":
            search = _BRACE_OR_QUOTE.search
            while True:  # from one brace or quote to the next, skipping "…"
                m = search(text, p)
                if m is None:
                    return text
                p = m.start()
                if text[p] != '"':
                    break
                q = text.find('"', p + 1)
                if q < 0:
                    return text
                p = q + 1
            skip = 0
        else:
            skip = 1
            while skip < len(text) and text[skip] in _WS:
                skip += 1
        cut = p + skip
        residue = text[cut:].rstrip(_WS)
        if residue:
            self._pending.appendleft((residue, loc, ()))
        return text[:cut].rstrip(_WS)


class ReplayLexer(Lexer):
    """The lines a finished pass's lexer handed out, handed out again.

    keepalived's checker and VRRP processes read the same file the same way
    (core/main.c): the second of our passes replays the first's lines instead
    of lexing them again.  The lexer's own diagnostics are not repeated: the
    passes' diagnostics are merged without duplicates anyway.
    """

    def __init__(self, done: Lexer) -> None:
        super().__init__(done._report, done.config_id, literal_escapes=done.literal_escapes)
        record = done.record if done.record is not None else []
        self._buf = list(reversed(record))
        self.block_depth = done.block_depth
        self.files = done.files
        self.saw_escape = done.saw_escape
        self.cut_lines = done.cut_lines
        self.file_error = done.file_error
        self._end = done.loc

    def next_line(self) -> Line | None:
        buf = self._buf
        if not buf:
            return None
        item = buf.pop()
        return brace_line(item) if isinstance(item, tuple) else item

    @property
    def loc(self) -> Loc:
        return self._end


def _slow_lines(text: str) -> list[int]:
    """The (0-based) indexes of the lines of ``text`` holding any of ``_SLOW_MARKS``, sorted.

    One ``str.find`` per occurrence is much cheaper than a regex over the
    whole text or a search per line.  Non-ASCII characters count too (the
    regex only runs on text that has some).
    """
    found: set[int] = set()
    for mark in _SLOW_MARKS:
        _mark_lines(text, partial(text.find, mark), found)
    if not text.isascii():
        search = re.compile(_NON_ASCII).search

        def non_ascii(pos: int) -> int:
            m = search(text, pos)
            return -1 if m is None else m.start()

        _mark_lines(text, non_ascii, found)
    return sorted(found)


def _mark_lines(text: str, find: Callable[[int], int], found: set[int]) -> None:
    """Add to ``found`` the index of each line where ``find(pos)`` has a hit."""
    i = find(0)
    line = 0
    last = 0
    while i >= 0:
        line += text.count("\n", last, i)
        found.add(line)
        nl = text.find("\n", i)
        if nl < 0:
            break
        line += 1
        last = nl + 1
        i = find(last)


def _first_blank(text: str, start: int) -> int:
    for i in range(start, len(text)):
        if text[i] in _WS:
            return i
    return -1


def _is_include(text: str) -> bool:
    """parser.c ``is_include``: ``include`` then a blank, or includer/m/w/b/a then a blank."""
    if not text.startswith("include") or len(text) < 9:
        return False
    if text[7] in _WS:
        return True
    return text[7] in "rmwba" and text[8] in _WS


class _Refused:
    """Why a file named by an include was not read (parser.c file_config_error)."""

    __slots__ = ("fatal", "hint", "message")

    def __init__(self, message: str, hint: str, fatal: bool = False) -> None:
        self.message = message
        self.hint = hint
        self.fatal = fatal


def _mark_dir(path: str) -> str:
    """``path`` with a trailing '/' if it is a directory, as glob's GLOB_MARK gives it."""
    return path + "/" if not path.endswith("/") and os.path.isdir(path) else path
