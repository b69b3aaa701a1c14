"""The config loader: mutated configurations, and includes of what must not be read.

The seeds are the corpus and the test fixtures.  Mutations work on tokens
(drop, repeat, swap, noise), on bytes (NUL, bare CR, random bytes) and on
structure (braces, quotes, ``$`` definitions, ``~SEQ``), and insert
``include`` lines naming the hostile targets made in ``workdir``: a FIFO, a
directory, devices (``/dev/zero``, ``/dev/urandom``, ``/dev/null``), a file
that includes itself, a pair that include each other, an executable file
and a sparse file over the size ceiling.

Every input must give a ``LoadResult`` (a rejection is its exit code and the
kind of its worst diagnostic) within the watchdog's time; anything raised
or a hang is a crash.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from pykeep.config import LoadResult, Severity, load_text
from pykeep.config.lexer import MAX_CONFIG_BYTES
from tests.fuzz import Hang, Tally, watchdog

CORPUS = Path("/work/shared/corpus")
FIXTURES = Path(__file__).resolve().parent.parent / "data" / "config"

NOISE = [
    "{", "}", '"', "'", "\\", "#", "!", "$X", "${", "$X=1", "@h", "@^h", "~SEQ(i,1,3)",
    "~LST(v,a,b)", "include", "\x00", "\r", "\r\n", "\x0b", "\x1c", "é", "\xa0",
    "9999999999999999999999", "1" * 5000, "-1", "0.0000001", "nan", "::", "1.2.3.4/99",
    "\n", "\t", "}" * 50, "{" * 50, "x" * 2000,
]  # fmt: skip


def seeds() -> list[str]:
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "README.md")
    files += sorted(FIXTURES.rglob("*.conf"))
    return [p.read_text(encoding="utf-8", errors="surrogateescape") for p in files]


def hostile_targets(workdir: Path) -> list[str]:
    """Make the files an include must survive; return include patterns naming them."""
    workdir.mkdir(parents=True, exist_ok=True)
    fifo = workdir / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    (workdir / "dir.d").mkdir(exist_ok=True)
    (workdir / "dir.d" / "a.conf").write_text("global_defs {\n router_id D\n}\n")
    (workdir / "self.conf").write_text("include self.conf\n")
    (workdir / "ping.conf").write_text("include pong.conf\n")
    (workdir / "pong.conf").write_text("include ping.conf\n")
    exe = workdir / "exec.conf"
    exe.write_text("global_defs {\n}\n")
    exe.chmod(0o755)
    huge = workdir / "huge.conf"
    if not huge.exists():
        with open(huge, "wb") as f:
            f.truncate(MAX_CONFIG_BYTES + 1)  # sparse: no disk, reads as NULs
    return [
        str(fifo),
        str(workdir / "dir.d"),
        str(workdir / "dir.d") + "/",
        str(workdir / "dir.d" / "*.conf"),
        str(workdir / "*"),
        "/dev/zero",
        "/dev/urandom",
        "/dev/null",
        "/dev/stdin",
        "/proc/self/fd/0",
        str(workdir / "self.conf"),
        str(workdir / "ping.conf"),
        str(exe),
        str(workdir / "{self,ping,nothing}.conf"),
        "/nonexistent/*.conf",
    ]


def mutate(rnd: random.Random, text: str, includes: list[str]) -> str:
    tokens = text.split(" ")
    for _ in range(rnd.randint(1, 6)):
        n = len(tokens)
        i = rnd.randrange(n) if n else 0
        op = rnd.randrange(9)
        if op == 0 and n > 1:
            del tokens[i]
        elif op == 1 and n:
            tokens.insert(i, tokens[i])
        elif op == 2 and n > 1:
            j = rnd.randrange(n)
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == 3:
            tokens.insert(i, rnd.choice(NOISE))
        elif op == 4:
            tokens.insert(i, rnd.randbytes(rnd.randint(1, 8)).decode("latin-1"))
        elif op == 5:
            tokens = tokens[:i]
        elif op == 6:
            kind = rnd.choice(["include", "includer", "includea"])
            tokens.insert(i, f"\n{kind} {rnd.choice(includes)}\n")
        elif op == 7 and n:
            t = tokens[i]
            k = rnd.randint(0, len(t))
            tokens[i] = t[:k] + rnd.choice(["\x00", "\r", "\r\n", "\x00\n"]) + t[k:]
        else:
            tokens.insert(i, "\n" + rnd.choice(["}", "{", '"']) * rnd.randint(1, 3000) + "\n")
    return " ".join(tokens)


def verdict(r: LoadResult) -> str:
    """The rejection: exit code and the kind (first two words) of the worst diagnostic."""
    worst = max(r.diagnostics, key=lambda d: d.severity, default=None)
    if worst is None or worst.severity <= Severity.OK:
        return f"exit {r.exit_code}"
    return f"exit {r.exit_code}: {' '.join(worst.message.split(' ', 2)[:2])}"


def check(r: LoadResult) -> str | None:
    """What is wrong with a result, if anything (a crash in all but name)."""
    if not isinstance(r, LoadResult):
        return f"load_text returned {type(r).__name__}"
    if r.exit_code not in (0, 2, 4, 5, 6):
        return f"exit code {r.exit_code}"
    if len(r.diagnostics) > 5000:
        return f"{len(r.diagnostics)} diagnostics: the cap per kind did not hold"
    for d in r.diagnostics:
        if not d.message or "Traceback" in d.message:
            return f"bad diagnostic {d!r}"
        if "\n" in str(d).split("\n    hint: ")[0]:
            return f"diagnostic over two lines {str(d)[:100]!r}"
    return None


def run(n: int, seed: int, workdir: Path) -> Tally:
    """``n`` inputs; every 10,000 a progress line on stderr (a full run takes an hour
    on two busy cores: the rate and the count so far survive an interrupted run)."""
    rnd = random.Random(seed)
    started = time.monotonic()
    tally = Tally("config")
    texts = seeds()
    includes = hostile_targets(workdir)
    name = str(workdir / "keepalived.conf")
    for k in range(n):
        if k < len(includes):  # every hostile include at least once, alone
            text = f"include {includes[k]}\n" + rnd.choice(texts)
        else:
            text = mutate(rnd, rnd.choice(texts), includes)
        tally.inputs += 1
        if tally.inputs % 10_000 == 0:
            took = time.monotonic() - started
            print(
                f"config: {tally.inputs:,} inputs, {len(tally.crashes)} crashes, "
                f"{tally.inputs / took:.0f}/s",
                file=sys.stderr,
                flush=True,
            )
        try:
            with watchdog(30):
                r = load_text(text, name, config_id="h", interface_exists=lambda _n: True)
        except (Exception, Hang) as exc:
            tally.crash(text, exc)
            continue
        wrong = check(r)
        if wrong is not None:
            tally.crash(text, why=wrong)
        elif r.exit_code == 0:
            tally.accepted += 1
        else:
            tally.reject(verdict(r))
    return tally
