"""Explicit states: an enum per state machine and one transition table each.

A monitor (and real mode's per-call stage) used to keep its state in a
string whose comment listed the values; the two drifted apart (a value the
comment named was never assigned, one assigned was never named, and a flag
on the side meant a state of its own). Here every state a machine can be in
is a member of its enum and every move it may make is one row of its table,
as in h11's ``_state.py``: a move the table does not list is a bug, and
:func:`move` raises :class:`InvalidTransition` instead of carrying on in a
state nobody designed.

The check runs on every compared call of every variant, so it is written to
be cheap: each member carries the tuple of its successors (a tuple search
compares members by identity first; an enum member's hash is a Python-level
call), filled in from the table once, at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TypeVar

S = TypeVar("S", bound=Enum)


class InvalidTransition(RuntimeError):
    """A state machine was asked to move along a row its table does not have."""

    def __init__(self, machine: str, old: Enum, new: Enum) -> None:
        super().__init__(f"{machine}: no transition from {old.value!r} to {new.value!r}")
        self.machine = machine
        self.old = old
        self.new = new


def install(table: Mapping[S, tuple[S, ...]]) -> Mapping[S, tuple[S, ...]]:
    """Attach each state's successors from ``table`` to the member itself (as
    ``successors``), checking the table names every member of the enum once."""
    members = set(type(next(iter(table))))
    if set(table) != members:
        missing = ", ".join(sorted(m.value for m in members - set(table)))
        raise ValueError(f"transition table has no row for: {missing}")
    for state, successors in table.items():
        object.__setattr__(state, "successors", tuple(successors))
    return table


def move(machine: str, old: S, new: S) -> S:
    """``new`` if ``table`` allows ``old`` -> ``new``; else raise."""
    if new not in old.successors:  # type: ignore[attr-defined]
        raise InvalidTransition(machine, old, new)
    return new


class LeaderState(Enum):
    """Where the leader's monitor is with its variant's current call."""

    RUNNING = "running"  # between calls
    EXECUTING = "executing"  # the call runs (released to the variant)
    CB_WAIT = "cb-wait"  # held: the connector buffer is full
    SYNC_WAIT = "sync-wait"  # held at a synchronous call for the followers' reports
    FINISH_WAIT = "finish-wait"  # the process ended; waiting for every follower's end
    VOTING = "voting"  # a divergence is being decided; nothing more runs
    DONE = "done"  # every variant agreed to the end


_L = LeaderState
#: Every move of the leader's monitor. A process may end (FINISH_WAIT) and a
#: divergence may be found (VOTING) whatever the leader was doing. A call
#: the broker refuses goes from SYNC_WAIT straight back to RUNNING: agreed,
#: and nobody runs it.
LEADER_TRANSITIONS = install(
    {
        _L.RUNNING: (_L.EXECUTING, _L.SYNC_WAIT, _L.CB_WAIT, _L.FINISH_WAIT, _L.VOTING),
        _L.EXECUTING: (_L.RUNNING, _L.FINISH_WAIT, _L.VOTING),
        _L.CB_WAIT: (_L.EXECUTING, _L.FINISH_WAIT, _L.VOTING),
        _L.SYNC_WAIT: (_L.EXECUTING, _L.RUNNING, _L.FINISH_WAIT, _L.VOTING),
        _L.FINISH_WAIT: (_L.DONE, _L.VOTING),
        _L.VOTING: (),
        _L.DONE: (),
    }
)


class FollowerState(Enum):
    """Where a follower's monitor is with its variant's current call."""

    RUNNING = "running"  # between calls
    EXECUTING = "executing"  # the variant runs the call itself
    ENTRY_WAIT = "entry-wait"  # held: the leader's entry has not arrived
    SYNC_WAIT = "sync-wait"  # held at a synchronous call: reported, awaiting GO or the outcome
    FINISH_WAIT = "finish-wait"  # the process ended; waiting for the leader's GO
    NOTE_WAIT = "note-wait"  # released by GO; awaiting the leader's result to steer by
    DIVERGED = "diverged"  # reported a difference; awaiting the leader's verdict
    DONE = "done"  # the leader agreed to the end


_F = FollowerState
#: Every move of a follower's monitor. A skipped call goes back to RUNNING
#: from wherever the leader's entry found it, RUNNING included (the entry
#: was already there when the call was entered); so does a call a signal
#: ended (:mod:`dmvx.signals`), from wherever the leader's word found it.
FOLLOWER_TRANSITIONS = install(
    {
        _F.RUNNING: (_F.RUNNING, _F.EXECUTING, _F.ENTRY_WAIT, _F.SYNC_WAIT, _F.FINISH_WAIT, _F.DIVERGED),
        _F.EXECUTING: (_F.RUNNING, _F.FINISH_WAIT),
        _F.ENTRY_WAIT: (_F.RUNNING, _F.EXECUTING, _F.SYNC_WAIT, _F.FINISH_WAIT, _F.DIVERGED),
        _F.SYNC_WAIT: (_F.RUNNING, _F.EXECUTING, _F.NOTE_WAIT, _F.FINISH_WAIT, _F.DIVERGED),
        _F.NOTE_WAIT: (_F.RUNNING, _F.EXECUTING, _F.FINISH_WAIT),
        _F.FINISH_WAIT: (_F.DONE,),
        _F.DIVERGED: (_F.FINISH_WAIT,),
        _F.DONE: (),
    }
)
