"""vrrp_sync_group coordination, sans I/O.

Why separate from :mod:`vrrp.machine`: a sync group couples several
instances, and each :class:`~vrrp.machine.VrrpMachine` must stay ignorant
of its siblings.  :class:`SyncGroup` wraps the members, routes each event
to one of them, and then applies keepalived's group rules
(keepalived/vrrp/vrrp_sync.c):

- ``vrrp_sync_can_goto_master``: a member whose Master_Down timer fires
  waits (and re-arms) unless every other member also wants MASTER, or the
  group is MASTER already — "prefer backup state to avoid thrashing";
- ``vrrp_sync_master``: one member becoming MASTER takes the others along;
- ``vrrp_sync_backup``: one member dropping to BACKUP takes the others along;
- ``vrrp_sync_fault``: one member's FAULT pulls the whole group to FAULT,
  and the group only leaves FAULT when no member has a fault of its own
  (``try_up_instance``'s ``num_member_fault``).

Like the machine, it only returns actions; each is tagged with the member
it belongs to.  Group-level notifies are :class:`GroupNotify` values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pykeep.config.model import Config, TrackRef, VrrpInstance, VrrpSyncGroup
from vrrp.machine import (
    Action,
    EnterState,
    Event,
    Start,
    State,
    SyncForce,
    VrrpMachine,
)


@dataclass(frozen=True, slots=True)
class GroupNotify:
    """Run the group's notify_<state> and ``notify GROUP name STATE priority``."""

    group: str
    state: State


Tagged = tuple[str, Action | GroupNotify]


class SyncGroup:
    """The members of one vrrp_sync_group, driven as one unit."""

    def __init__(self, name: str, members: dict[str, VrrpMachine]) -> None:
        self.name = name
        self.members = members
        # vrrp_sync_set_group: MASTER only if every member is an address owner.
        owners = all(m.params.priority == 255 for m in members.values())
        self.state = State.MASTER if owners else State.BACKUP
        for m in members.values():
            m.sync_gate = self._can_goto_master
        self._announced = False  # the start-up group notify has been issued

    def _can_goto_master(self, member: VrrpMachine) -> bool:
        """vrrp_sync.c vrrp_sync_can_goto_master."""
        if self.state is State.MASTER:
            return True
        return all(m.wantstate is State.MASTER for m in self.members.values() if m is not member)

    def start(self, now: float) -> list[Tagged]:
        """Start every member; any member's fault starts the whole group in FAULT."""
        if any(m.own_fault for m in self.members.values()):
            self.state = State.FAULT
            for m in self.members.values():
                m.sync_fault = True
        out: list[Tagged] = []
        for name in self.members:
            out.extend(self.handle(name, Start(), now))
        return out

    def handle(self, member: str, event: Event, now: float) -> list[Tagged]:
        """Deliver ``event`` to ``member``, then propagate its transitions to the group."""
        out: list[Tagged] = []
        if isinstance(event, Start) and not self._announced:
            # vrrp_scheduler.c vrrp_init_state: a group starting in BACKUP or
            # FAULT notifies first, before any member's own notify.
            self._announced = True
            if self.state is not State.MASTER:
                out.append((self.name, GroupNotify(self.name, self.state)))
        # The group's own notify follows its members' (vrrp_sync.c
        # vrrp_sync_master: members moved first, then send_group_notifies).
        group_notes: list[Tagged] = []
        pending: list[tuple[str, Event]] = [(member, event)]
        while pending:
            name, ev = pending.pop(0)
            actions = self.members[name].handle(ev, now)
            out.extend((name, a) for a in actions)
            for a in actions:
                if isinstance(a, EnterState) and a.reason != "sync":
                    pending.extend(self._propagate(name, a.new, group_notes))
        out.extend(group_notes)
        pending2 = self._maybe_leave_fault(out)
        for name, ev in pending2:
            out.extend((name, a) for a in self.members[name].handle(ev, now))
        return out

    def _propagate(self, origin: str, new: State, out: list[Tagged]) -> list[tuple[str, Event]]:
        if new is State.STOP or new is State.INIT:
            return []
        if new is self.state and new is not State.FAULT:
            return []
        if new is State.FAULT:
            # vrrp_sync_fault; the originator too is now held by the group.
            for m in self.members.values():
                m.sync_fault = True
            if self.state is State.FAULT:
                return []
        elif self.state is State.FAULT and new is State.BACKUP:
            # A member came up while the group is held in FAULT (init
            # ordering): the group rule wins, it goes back to FAULT.
            return [(origin, SyncForce(State.FAULT))]
        self.state = new
        out.append((self.name, GroupNotify(self.name, new)))
        return [(n, SyncForce(new)) for n in self.members if n != origin]

    def _maybe_leave_fault(self, out: list[Tagged]) -> list[tuple[str, Event]]:
        """try_up_instance: once no member has its own fault, the group goes BACKUP."""
        if self.state is not State.FAULT:
            return []
        if any(m.own_fault for m in self.members.values()):
            return []
        if not any(m.state is State.FAULT for m in self.members.values()):
            return []
        self.state = State.BACKUP
        out.append((self.name, GroupNotify(self.name, State.BACKUP)))
        return [
            (n, SyncForce(State.BACKUP))
            for n, m in self.members.items()
            if m.state is not State.STOP
        ]


# --------------------------------------------------------------------------
# what a member tracks (vrrp.c vrrp_complete_instance, sync_group_tracking_init)


def member_tracking(
    inst: VrrpInstance, group: VrrpSyncGroup | None, config: Config
) -> tuple[VrrpInstance, list[str]]:
    """The instance as it tracks inside its sync group, and keepalived's messages.

    - Unless the group has ``sync_group_tracking_weight`` (or the deprecated
      ``global_tracking``, vrrp_parser.c), a member's own
      weighted tracking goes (vrrp.c ``vrrp_complete_instance``): a weighted
      track_interface loses its weight (its failure means FAULT), a weighted
      track_script or track_bfd is dropped, a track_file whose weight is the
      default 1 gets weight 0 and one with another weight is dropped.
    - Every object the group tracks is tracked by every member, with the
      group's weight (vrrp.c ``sync_group_tracking_init``): a group
      track_interface going down puts every member, so the group, in FAULT.
      An object the member already tracks itself is not added twice.
    """
    if group is None:
        return inst, []
    msgs: list[str] = []
    ifs = list(inst.track_interface)
    scripts = list(inst.track_script)
    files = list(inst.track_file)
    bfds = list(inst.track_bfd)
    if not (group.sync_group_tracking_weight or group.global_tracking):
        why = "SYNC group"
        for i, ref in enumerate(ifs):
            if ref.weight:
                msgs.append(
                    f"({inst.name}) ignoring {ref.name} tracked interface weight due to {why}"
                )
                ifs[i] = replace(ref, weight=0)
        by_script = {s.name: s for s in config.vrrp_scripts}
        kept: list[TrackRef] = []
        for ref in scripts:
            vs = by_script.get(ref.name)
            weight = ref.weight if ref.weight is not None else (vs.weight if vs else 0)
            if weight:
                msgs.append(
                    f"({inst.name}) ignoring tracked script {ref.name} with weights due to {why}"
                )
            else:
                kept.append(ref)
        scripts = kept
        by_file = {f.name: f for f in config.vrrp_track_files}
        kept = []
        for ref in files:
            tf = by_file.get(ref.name)
            weight = ref.weight if ref.weight is not None else (tf.weight if tf else 1)
            if weight == 1:
                msgs.append(
                    f"({inst.name}) ignoring weight from tracked file {ref.name} due to {why}."
                    " specify weight 0"
                )
                kept.append(replace(ref, weight=0))
            elif weight:
                msgs.append(
                    f"({inst.name}) ignoring tracked file {ref.name} with weight {weight}"
                    f" due to {why}"
                )
            else:
                kept.append(ref)
        files = kept
        kept = []
        for ref in bfds:
            if ref.weight:
                msgs.append(
                    f"({inst.name}) ignoring tracked bfd {ref.name} with weight {ref.weight}"
                    f" due to {why}"
                )
            else:
                kept.append(ref)
        bfds = kept

    def merged(own: list[TrackRef], extra: tuple[TrackRef, ...]) -> tuple[TrackRef, ...]:
        names = {r.name for r in own}
        return (*own, *(r for r in extra if r.name not in names))

    out = replace(
        inst,
        track_interface=merged(ifs, group.track_interface),
        track_script=merged(scripts, group.track_script),
        track_file=merged(files, group.track_file),
        track_bfd=merged(bfds, group.track_bfd),
        track_process=merged(list(inst.track_process), group.track_process),
    )
    return out, msgs


def group_of(name: str, config: Config) -> VrrpSyncGroup | None:
    return next((g for g in config.vrrp_sync_groups if name in g.group), None)
