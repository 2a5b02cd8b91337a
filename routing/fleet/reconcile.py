"""From a pool's target counts to lifecycle actions: which replicas to start, wake, park or retire.

The one rule set the gateway's lifecycle and the fleet simulation both enact:

* too few heading for ``active``: wake a warm standby first (about a second),
  else start a new replica;
* too many heading for ``active``: cancel a start that has not finished yet,
  else move the least loaded replica to standby when standby is short, else
  retire it (drain, then stop);
* too few standby: start one heading for standby; too many: cancel a start,
  else retire the last one.

A starting replica counts on the side it is heading for; draining ones count on
no side (they are leaving). Pure: members in, actions out.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from routing.replica import ReplicaState

ActionKind = Literal["start", "wake", "park", "cancel", "retire"]


@dataclass(frozen=True, slots=True)
class Member:
    """One replica of the pool: its state, where a starting one is heading, its load."""

    id: str
    state: ReplicaState
    heading: ReplicaState = ReplicaState.ACTIVE
    load: int = 0


@dataclass(frozen=True, slots=True)
class Action:
    """``start``: a new replica heading for ``heading``; ``wake``: a standby to active;
    ``park``: an active replica to standby; ``cancel``: stop a start at once;
    ``retire``: drain, then stop. ``replica`` is None for ``start``."""

    kind: ActionKind
    replica: str | None
    heading: ReplicaState = ReplicaState.ACTIVE


def reconcile(members: Sequence[Member], active: int, standby: int) -> list[Action]:
    """The actions that bring ``members`` to ``active`` + ``standby`` replicas."""
    pool = {m.id: m for m in members}
    fresh = (f"+{i}" for i in itertools.count())  # placeholder ids of replicas to be started
    actions: list[Action] = []

    def side(state: ReplicaState) -> list[Member]:
        return [m for m in pool.values()
                if m.state is state or (m.state is ReplicaState.STARTING and m.heading is state)]

    def act(action: Action, member: Member | None = None) -> None:
        actions.append(action)
        if action.kind == "start":
            new = Member(next(fresh), ReplicaState.STARTING, action.heading)
            pool[new.id] = new
        elif action.kind in ("cancel", "retire"):
            assert member is not None
            del pool[member.id]
        elif member is not None:
            pool[member.id] = replace(member, state=ReplicaState.STARTING if action.kind == "wake" else ReplicaState.STANDBY,
                                      heading=ReplicaState.ACTIVE if action.kind == "wake" else ReplicaState.STANDBY)

    while len(side(ReplicaState.ACTIVE)) < active:
        woken = [m for m in pool.values() if m.state is ReplicaState.STANDBY]
        if woken:  # a warm standby first: awake in about a second
            act(Action("wake", woken[0].id), woken[0])
        else:
            act(Action("start", None, ReplicaState.ACTIVE))
    while len(surplus := side(ReplicaState.ACTIVE)) > active:
        starting = [m for m in surplus if m.state is ReplicaState.STARTING]
        if starting:
            act(Action("cancel", starting[-1].id), starting[-1])
            continue
        least = min(surplus, key=lambda m: (m.load, m.id))
        if len(side(ReplicaState.STANDBY)) < standby:
            act(Action("park", least.id, ReplicaState.STANDBY), least)
        else:
            act(Action("retire", least.id), least)
    while len(side(ReplicaState.STANDBY)) < standby:
        act(Action("start", None, ReplicaState.STANDBY))
    while len(spare := side(ReplicaState.STANDBY)) > standby:
        leaving = next((m for m in spare if m.state is ReplicaState.STARTING), spare[-1])
        act(Action("cancel" if leaving.state is ReplicaState.STARTING else "retire", leaving.id), leaving)
    # a replica this call starts is never cancelled or retired by it (starts happen only when short)
    return actions
