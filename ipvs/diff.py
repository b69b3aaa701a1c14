"""The minimal list of IPVS operations that turns one table into another.

Pure: two ``Table`` values in, a list of ``Op`` out.  The netlink shell
applies the list in order and nothing else, so the counts here are the
counts the kernel sees: an unchanged reload is zero operations, a changed
weight is one EDIT_DEST (never DEL+ADD, which would drop the destination's
connections - keepalived ipwrapper.c ``update_svr_wgt`` edits in place),
a changed scheduler or persistence is one EDIT_SERVICE.

Order: new and edited services first, then destination deletions, edits and
additions, then services to remove (deleting a service drops its
destinations with it, so they are not deleted one by one).

``owned`` limits deletion of whole services to those pykeep put there: a
service in the kernel that neither the old nor the new configuration names
belongs to someone else and stays, unless the caller passes ``None``
(everything is ours: ``lvs_flush``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from enum import Enum

from .table import FWD_LOCALNODE, Dest, DestKey, Service, ServiceEntry, ServiceKey, Table


class OpKind(Enum):
    ADD_SERVICE = "add-service"
    EDIT_SERVICE = "edit-service"
    DEL_SERVICE = "del-service"
    ADD_DEST = "add-dest"
    EDIT_DEST = "edit-dest"
    DEL_DEST = "del-dest"


@dataclass(frozen=True, slots=True)
class Op:
    """One netlink command: ``service`` is always set, ``dest`` for *_DEST kinds.

    ``was`` is what an EDIT_DEST replaces, for the log line that tells a
    disabled server from a changed weight (ipwrapper.c ``update_svr_wgt``):
    the table it came from may since have been changed in place.  It is not
    part of the command, so it does not take part in comparisons.
    """

    kind: OpKind
    skey: ServiceKey
    service: Service | None = None
    dkey: DestKey | None = None
    dest: Dest | None = None
    was: Dest | None = field(default=None, compare=False)

    def __str__(self) -> str:
        s = f"{self.kind.value} {self.skey}"
        if self.dkey is not None:
            s += f" -> {self.dkey.address}:{self.dkey.port}"
        if self.dest is not None:
            s += f" w={self.dest.weight}"
        return s


def diff(current: Table, desired: Table, owned: Collection[ServiceKey] | None = None) -> list[Op]:
    """Operations that make ``current`` equal ``desired`` (for the services we own)."""
    svc_ops: list[Op] = []
    del_ops: list[Op] = []
    edit_ops: list[Op] = []
    add_ops: list[Op] = []
    for skey in sorted(desired):
        want = desired[skey]
        have = current.get(skey)
        if have is None:
            svc_ops.append(Op(OpKind.ADD_SERVICE, skey, want.service))
            for dkey in sorted(want.dests):
                add_ops.append(Op(OpKind.ADD_DEST, skey, want.service, dkey, want.dests[dkey]))
            continue
        if have.service != want.service:
            svc_ops.append(Op(OpKind.EDIT_SERVICE, skey, want.service))
        for dkey in sorted(have.dests):
            if dkey not in want.dests:
                del_ops.append(Op(OpKind.DEL_DEST, skey, want.service, dkey, have.dests[dkey]))
        for dkey in sorted(want.dests):
            d = want.dests[dkey]
            old = have.dests.get(dkey)
            if old is None:
                add_ops.append(Op(OpKind.ADD_DEST, skey, want.service, dkey, d))
            elif not same_dest(old, d):
                edit_ops.append(Op(OpKind.EDIT_DEST, skey, want.service, dkey, d, old))
    gone = [
        Op(OpKind.DEL_SERVICE, skey, current[skey].service)
        for skey in sorted(current)
        if skey not in desired and (owned is None or skey in owned)
    ]
    return svc_ops + del_ops + edit_ops + add_ops + gone


def same_dest(have: Dest, want: Dest) -> bool:
    """Whether the kernel's dest already is what we want.

    The kernel turns any destination whose address is local into LOCALNODE
    forwarding (ip_vs_ctl.c ``__ip_vs_update_dest``), whatever was asked;
    asking again would change nothing, so that is not a difference.
    """
    if have.fwd == FWD_LOCALNODE and want.fwd != FWD_LOCALNODE:
        return replace(have, fwd=want.fwd) == want
    return have == want


def apply_ops(table: Table, ops: list[Op]) -> None:
    """Apply ``ops`` to an in-memory table, as the kernel would (for tests and dry runs)."""
    for op in ops:
        if op.kind is OpKind.ADD_SERVICE:
            if op.skey in table:
                raise KeyError(f"service exists: {op.skey}")
            assert op.service is not None
            table[op.skey] = ServiceEntry(op.service)
        elif op.kind is OpKind.EDIT_SERVICE:
            assert op.service is not None
            table[op.skey].service = op.service
        elif op.kind is OpKind.DEL_SERVICE:
            del table[op.skey]
        else:
            assert op.dkey is not None
            dests = table[op.skey].dests
            if op.kind is OpKind.ADD_DEST:
                if op.dkey in dests:
                    raise KeyError(f"dest exists: {op.dkey}")
                assert op.dest is not None
                dests[op.dkey] = op.dest
            elif op.kind is OpKind.EDIT_DEST:
                assert op.dest is not None
                if op.dkey not in dests:
                    raise KeyError(f"no such dest: {op.dkey}")
                dests[op.dkey] = op.dest
            else:
                del dests[op.dkey]
