"""Split IPVS tables and change records per generated case, and judge them.

Two views of the kernel are compared, keepalived's run against pykeep's:

- the table after settling, as ``ipvsadm -Sn`` prints it, split by
  :func:`tests.differential_vm.generator.owner` into one sorted line list per
  case;
- the sequence of changes, read by polling ``/proc/net/ip_vs`` (IPVS sends
  no netlink events): for every entry (a service, or a real server of a
  service) the ordered values it took — present/absent, then its weight —
  with repeats collapsed.  Ordering is kept per entry only: two entries that
  change within one poll cannot be ordered, and timing is not compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.differential_vm.generator import owner

ABSENT = "-"


def table_by_case(text: str) -> dict[int, list[str]]:
    """``ipvsadm -Sn`` output, as sorted lines per owning case (unowned lines under -1)."""
    out: dict[int, list[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] not in ("-A", "-a"):
            continue
        case = owner(words[2])
        out.setdefault(-1 if case is None else case, []).append(" ".join(words))
    return {k: sorted(v) for k, v in out.items()}


def entry_case(entry: str) -> int | None:
    """The case owning a :func:`proc_entries` key."""
    words = entry.split()
    spec = words[1] if len(words) > 1 else ""
    return owner(spec)


@dataclass
class Recorder:
    """Per-entry value sequences, fed successive ``/proc/net/ip_vs`` snapshots."""

    sequences: dict[str, list[str]] = field(default_factory=dict)
    last: dict[str, str] = field(default_factory=dict)

    def feed(self, snapshot: dict[str, str]) -> None:
        for key in snapshot.keys() | self.last.keys():
            value = snapshot.get(key, ABSENT)
            seq = self.sequences.setdefault(key, [ABSENT])
            if seq[-1] != value:
                seq.append(value)
        self.last = dict(snapshot)


@dataclass(frozen=True)
class Verdict:
    case: int
    table_same: bool
    changes_same: bool
    keepalived: list[str]
    pykeep: list[str]
    change_diff: dict[str, tuple[list[str], list[str]]]

    def describe(self) -> str:
        lines = [f"case {self.case}:"]
        if not self.table_same:
            only_k = sorted(set(self.keepalived) - set(self.pykeep))
            only_p = sorted(set(self.pykeep) - set(self.keepalived))
            lines += [f"  keepalived only: {x}" for x in only_k]
            lines += [f"  pykeep only:     {x}" for x in only_p]
        for key, (k, p) in sorted(self.change_diff.items()):
            lines.append(f"  changes of {key}: keepalived {' '.join(k)} | pykeep {' '.join(p)}")
        return "\n".join(lines)


def judge(
    cases: Iterable[int],
    tables: dict[str, str],
    changes: dict[str, dict[str, list[str]]],
) -> list[Verdict]:
    """One verdict per case from both daemons' final tables and change sequences."""
    kt, pt = table_by_case(tables["keepalived"]), table_by_case(tables["pykeep"])
    kc, pc = (_changes_by_case(changes[k]) for k in ("keepalived", "pykeep"))
    out = []
    for case in cases:
        ka, pk = kt.get(case, []), pt.get(case, [])
        kcs, pcs = kc.get(case, {}), pc.get(case, {})
        diff = {
            key: (kcs.get(key, [ABSENT]), pcs.get(key, [ABSENT]))
            for key in kcs.keys() | pcs.keys()
            if kcs.get(key, [ABSENT]) != pcs.get(key, [ABSENT])
        }
        out.append(Verdict(case, ka == pk, not diff, ka, pk, diff))
    return out


def _changes_by_case(seqs: dict[str, list[str]]) -> dict[int, dict[str, list[str]]]:
    out: dict[int, dict[str, list[str]]] = {}
    for key, seq in seqs.items():
        case = entry_case(key)
        out.setdefault(-1 if case is None else case, {})[key] = seq
    return out
