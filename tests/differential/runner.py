"""Put generated configurations through ``keepalived -t`` and pykeep's config test, and compare.

keepalived is the oracle.  Both judge each file in one ``pk-df-…`` namespace
holding the interfaces the generator names (a veth pair ``dfa0``/``dfb0``;
``nope0`` is left out on purpose).  keepalived must be exec'd, one process per
file, a few at a time; pykeep's test runs in this process, through the same
``load`` that ``pykeep -t`` calls, with the namespace's interface list.

Three things are compared per file:
- the exit code;
- the set of (file, line) that the messages point at;
- for each such line, the class of its messages: error, warning, "removing"
  or "resetting" (keepalived says which in its wording).

pykeep's own advice (``Severity.INFO``) and its ``hint:`` lines are not
keepalived messages and are left out of the comparison.  Files on which
keepalived crashes (killed by a signal) or hangs are set aside; on those
pykeep must still give a clean diagnostic.  Files that use pykeep's own
keywords (config/extensions.py: FULLNAT, SYN proxy, cluster mode), which
keepalived 2.2.7 reports as unknown, are an intended difference, documented
in docs/keywords.md: they are counted apart, not compared.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from pykeep.config import load
from pykeep.config.diagnostics import Severity
from pykeep.config.extensions import EXTENSIONS
from tests.differential.generator import CONFIG_ID, INTERFACES, Case, Generator

KEEPALIVED = shutil.which("keepalived") or "/usr/sbin/keepalived"
HANG_SECONDS = 10.0

_LOCATED = re.compile(r"^\((?:(?P<file>.*?): )?Line (?P<line>\d+)\) (?P<msg>.*)$")

LineKey = tuple[str, int]


def _extension_lines() -> re.Pattern[str]:
    """A line that uses one of pykeep's own keywords (``lb_kind FNAT`` included)."""
    alts = []
    for key in EXTENSIONS:
        kw, _sp, value = key.rpartition("/")[2].partition(" ")
        if kw == "lb_kind":
            kw = "(?:lb_kind|lvs_method)"
        alts.append(rf"{kw}\s+{value}\b" if value else rf"{kw}\b")
    # Also behind an @id conditional, as the generator writes some lines.
    return re.compile(r"^[ \t]*(?:@\^?\S+[ \t]+)?(?:" + "|".join(alts) + ")", re.M)


EXTENSION_LINE = _extension_lines()


def message_class(text: str) -> str:
    """keepalived's message class, read from its wording."""
    low = text.lower()
    if "remov" in low:
        return "removing"
    if "reset" in low:
        return "resetting"
    if "warning" in low:
        return "warning"
    return "error"


@dataclass(frozen=True)
class Outcome:
    """What one implementation said about one file."""

    code: int
    lines: frozenset[LineKey]
    classes: frozenset[tuple[str, int, str]]
    text: str = ""
    # Messages keepalived prints without a line (whole-file checks).
    unlocated: frozenset[str] = frozenset()
    located: tuple[tuple[str, int, str], ...] = ()

    def without(
        self, messages: frozenset[str], located: tuple[tuple[str, int, str], ...] = ()
    ) -> Outcome:
        """This outcome, leaving out located messages keepalived prints without a line.

        pykeep names the line of some whole-file findings (a sync group with
        one member) that keepalived reports unlocated: the same message, not a
        disagreement on where.  One keepalived also printed with that line
        (``located``) stays: the same text can be both, as for the pieces of a
        long line that keepalived's parent reads before counting any line.
        """
        there = set(located)
        keep = [x for x in self.located if x[2] not in messages or x in there]
        if len(keep) == len(self.located):
            return self
        return _outcome(self.code, keep, self.text, self.unlocated)


def _outcome(
    code: int,
    located: list[tuple[str, int, str]],
    text: str,
    unlocated: frozenset[str] = frozenset(),
) -> Outcome:
    lines = frozenset((f, n) for f, n, _m in located)
    classes = frozenset((f, n, message_class(m)) for f, n, m in located)
    return Outcome(code, lines, classes, text, unlocated, tuple(located))


def parse_keepalived(code: int, stderr: str, main_file: str) -> Outcome:
    """keepalived's ``-t`` output: ``(FILE: Line N) msg`` or ``(Line N) msg`` (main file)."""
    located = []
    unlocated = []
    for raw in stderr.splitlines():
        m = _LOCATED.match(raw.strip())
        if m:
            f = os.path.basename(m.group("file") or main_file)
            located.append((f, int(m.group("line")), m.group("msg")))
        elif raw.strip():
            unlocated.append(raw.strip())
    return _outcome(code, located, stderr, frozenset(unlocated))


def pykeep_outcome(path: str, interface_exists: Callable[[str], bool] | None) -> Outcome:
    """pykeep's verdict, as ``pykeep -t -i pk -f PATH`` would print it."""
    result = load(path, CONFIG_ID, interface_exists)
    located = []
    text = []
    for d in result.diagnostics:
        text.append(str(d))
        if d.severity == Severity.INFO:
            continue
        if d.loc is not None and (d.loc.line > 0 or d.named):
            located.append((os.path.basename(d.loc.file), d.loc.line, d.message))
    return _outcome(result.exit_code, located, "\n".join(text))


def keepalived_outcome(path: str, ns: str | None) -> Outcome | str:
    """keepalived's verdict, or "hang" / "crash" when it gives none."""
    cmd = [KEEPALIVED, "-t", "-i", CONFIG_ID, "-f", path]
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    try:
        r = subprocess.run(
            cmd, capture_output=True, timeout=HANG_SECONDS, text=True, errors="replace"
        )
    except subprocess.TimeoutExpired:
        return "hang"
    if r.returncode < 0 or r.returncode >= 128:
        return "crash"
    return parse_keepalived(r.returncode, r.stderr + r.stdout, path)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def namespace(name: str | None = None) -> Iterator[str]:
    """A namespace holding the generator's interfaces, always deleted afterwards.

    The interfaces are a veth pair made on the host and moved in (this
    kernel has no dummy links).
    """
    ns = name or f"pk-df-{os.getpid()}"
    _ip("netns", "add", ns)
    try:
        tag = os.getpid() % 100000
        a, b = f"pkdfa{tag}", f"pkdfb{tag}"
        _ip("link", "add", a, "type", "veth", "peer", "name", b)
        _ip("link", "set", a, "netns", ns)
        _ip("link", "set", b, "netns", ns)
        _ip("-n", ns, "link", "set", a, "name", INTERFACES[0])
        _ip("-n", ns, "link", "set", b, "name", INTERFACES[1])
        _ip("-n", ns, "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def namespace_interfaces(ns: str) -> frozenset[str]:
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    return frozenset(str(x["ifname"]) for x in json.loads(out))


@dataclass
class Verdict:
    """The comparison of one case."""

    case: Case
    path: str
    ours: Outcome
    theirs: Outcome | str

    @property
    def excluded(self) -> bool:
        return isinstance(self.theirs, str)

    @property
    def intended(self) -> bool:
        """The file uses pykeep's own keywords: keepalived rejects them, by design."""
        texts = (self.case.text, *self.case.sidecars.values())
        return any(EXTENSION_LINE.search(t) for t in texts)

    @property
    def exit_agrees(self) -> bool:
        return isinstance(self.theirs, Outcome) and self.theirs.code == self.ours.code

    @property
    def lines_agree(self) -> bool:
        return isinstance(self.theirs, Outcome) and self.theirs.lines == self.ours.lines

    @property
    def classes_agree(self) -> bool:
        return isinstance(self.theirs, Outcome) and self.theirs.classes == self.ours.classes

    @property
    def clean(self) -> bool:
        """pykeep's diagnostic is clean: no traceback, and a verdict."""
        return "Traceback" not in self.ours.text


@dataclass
class Tally:
    n: int = 0
    exit: int = 0
    lines: int = 0
    classes: int = 0

    def add(self, v: Verdict) -> None:
        self.n += 1
        self.exit += v.exit_agrees
        self.lines += v.lines_agree
        self.classes += v.classes_agree


@dataclass
class Report:
    verdicts: list[Verdict] = field(default_factory=list)
    seconds: float = 0.0
    # CPU seconds of pykeep's config tests (this process) and of the keepalived
    # processes (their children's rusage): the cost of each side, less noisy
    # than wall time on a shared machine.
    pykeep_cpu: float = 0.0
    keepalived_cpu: float = 0.0

    @property
    def compared(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.excluded and not v.intended]

    @property
    def intended(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.excluded and v.intended]

    @property
    def excluded(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.excluded]

    def by_block(self) -> dict[str, Tally]:
        out: dict[str, Tally] = {}
        for v in self.compared:
            out.setdefault(v.case.block, Tally()).add(v)
        return out

    def total(self) -> Tally:
        t = Tally()
        for v in self.compared:
            t.add(v)
        return t

    def render(self, show: int = 10) -> str:
        rows = [f"{'block':<42} {'n':>6} {'exit%':>7} {'lines%':>7} {'class%':>7}"]

        def row(name: str, t: Tally) -> str:
            pct = (lambda k: 100.0 * k / t.n) if t.n else (lambda k: 100.0)
            return (
                f"{name:<42} {t.n:>6} {pct(t.exit):>7.2f} {pct(t.lines):>7.2f} "
                f"{pct(t.classes):>7.2f}"
            )

        for name, t in sorted(self.by_block().items()):
            rows.append(row(name, t))
        rows.append(row("TOTAL", self.total()))
        ex = self.excluded
        rows.append(
            f"keepalived crashed or hung on {len(ex)} file(s); "
            f"pykeep clean on {sum(v.clean for v in ex)} of them"
        )
        for v in ex[:show]:
            rows.append(f"  {v.theirs}: {v.case.name} ({v.case.block} {v.case.keyword})")
        rows.append(
            f"{len(self.intended)} file(s) use pykeep's own keywords (docs/keywords.md, "
            '"pykeep\'s own keywords"), unknown to keepalived 2.2.7: an intended '
            "difference, not compared"
        )
        n = max(1, len(self.verdicts))
        ours, theirs = 1000 * self.pykeep_cpu / n, 1000 * self.keepalived_cpu / n
        rows.append(
            f"{len(self.verdicts)} files in {self.seconds:.1f} s; CPU per file: "
            f"pykeep {ours:.2f} ms, keepalived {theirs:.2f} ms"
        )
        bad = [v for v in self.compared if not (v.exit_agrees and v.lines_agree)]
        for v in bad[:show]:
            rows.append(describe(v))
        return "\n".join(rows)


def describe(v: Verdict) -> str:
    assert isinstance(v.theirs, Outcome)
    return (
        f"--- {v.case.name} [{v.case.block} {v.case.keyword}] exit keepalived "
        f"{v.theirs.code} pykeep {v.ours.code}\n"
        f"  only keepalived: {sorted(v.theirs.classes - v.ours.classes)}\n"
        f"  only pykeep:     {sorted(v.ours.classes - v.theirs.classes)}\n"
        f"  keepalived said:\n    " + v.theirs.text.strip().replace("\n", "\n    ") + "\n"
        "  pykeep said:\n    " + v.ours.text.strip().replace("\n", "\n    ")
    )


def write_case(case: Case, root: str) -> str:
    d = os.path.join(root, case.name)
    os.makedirs(d, exist_ok=True)
    for name, text in case.sidecars.items():
        with open(os.path.join(d, name), "w", encoding="utf-8") as f:
            f.write(text)
    path = os.path.join(d, "keepalived.conf")
    with open(path, "w", encoding="utf-8") as f:
        f.write(case.text)
    return path


def run(
    cases: list[Case],
    ns: str,
    jobs: int = 2,
    workdir: str | None = None,
    keep: bool = False,
) -> Report:
    """Judge every case with both; keepalived ``jobs`` at a time, pykeep in this process."""
    start = time.monotonic()
    root = workdir or tempfile.mkdtemp(prefix="pk-df-")
    ifaces = namespace_interfaces(ns)
    report = Report()
    try:
        paths = [write_case(c, root) for c in cases]
        children = os.times()
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            theirs = pool.map(lambda p: keepalived_outcome(p, ns), paths)
            cpu = time.thread_time()
            ours = [pykeep_outcome(p, ifaces.__contains__) for p in paths]
            report.pykeep_cpu = time.thread_time() - cpu
            for c, p, o, t in zip(cases, paths, ours, theirs, strict=True):
                if isinstance(t, Outcome):
                    o = o.without(t.unlocated, t.located)
                report.verdicts.append(Verdict(c, p, o, t))
        done = os.times()
        # Includes "ip netns exec", which execs keepalived in the same process.
        report.keepalived_cpu = (done.children_user - children.children_user) + (
            done.children_system - children.children_system
        )
    finally:
        if not keep and workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    report.seconds = time.monotonic() - start
    return report


def generate(count: int, seed: int, start: int = 0) -> list[Case]:
    g = Generator(seed)
    return [g.case(i) for i in range(start, start + count)]
