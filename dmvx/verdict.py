"""Verdicts: what a monitor concludes when variants stop agreeing.

A verdict is data, never an exception: the monitors return it inside a
:class:`~dmvx.actions.Halt` action and the mode decides how to stop the
variants and how to print it. It always names the kind, the sequence number
of the compared call at which it was found, and every known side's call, so
that a report reads "at call #412 the leader made write(1, b'ok') and
follower 1 made execve('/bin/sh')".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from dmvx.calls import EXIT, KILLED, Call


class VerdictKind(str, Enum):
    """Why a run was stopped. The values are stable: reports and scenario
    files name them."""

    CALL_MISMATCH = "call-mismatch"  # different system call
    ARG_MISMATCH = "arg-mismatch"  # same call, different arguments
    OUTPUT_MISMATCH = "output-mismatch"  # different bytes written or read
    CRASH = "crash"  # killed by a signal in some variants
    EXIT_STATUS = "exit-status"  # all exited, with different status
    NO_PROGRESS = "no-progress"  # a variant stopped making progress
    AUTH_FAILURE = "auth-failure"  # forged/replayed CONNECTOR traffic
    CONNECTOR_LOST = "connector-lost"  # a CONNECTOR link went away
    PROTOCOL_ERROR = "protocol-error"  # a peer broke the monitor protocol

    @property
    def is_divergence(self) -> bool:
        """True for verdicts that mean the variants behaved differently."""
        return self in _DIVERGENCES


_DIVERGENCES = frozenset(
    {
        VerdictKind.CALL_MISMATCH,
        VerdictKind.ARG_MISMATCH,
        VerdictKind.OUTPUT_MISMATCH,
        VerdictKind.CRASH,
        VerdictKind.EXIT_STATUS,
        VerdictKind.NO_PROGRESS,
    }
)


@dataclass(frozen=True)
class Verdict:
    """A reason to stop, with the evidence.

    ``calls`` maps variant index (0 is the leader) to the call that variant
    made at ``seq``; ``None`` means that variant never reached it.
    ``odd_one_out`` is set when a majority of three or more variants agreed
    and exactly one group of variants did not.
    """

    kind: VerdictKind
    seq: int
    calls: Mapping[int, Call | None] = field(default_factory=dict)
    odd_one_out: tuple[int, ...] = ()
    detail: str = ""

    def summary(self) -> str:
        """One line for people."""
        sides = "; ".join(
            f"{_variant_name(v)}: {c if c is not None else '(not reached)'}" for v, c in sorted(self.calls.items())
        )
        parts = [f"{self.kind.value} at call #{self.seq}" if self.seq else self.kind.value]
        if self.detail:
            parts.append(self.detail)
        if sides:
            parts.append(sides)
        if self.odd_one_out:
            parts.append("odd one out: " + ", ".join(_variant_name(v) for v in self.odd_one_out))
        return ". ".join(parts) + "."

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` output."""
        return {
            "kind": self.kind.value,
            "seq": self.seq,
            "calls": {_variant_name(v): (str(c) if c is not None else None) for v, c in sorted(self.calls.items())},
            "odd_one_out": [_variant_name(v) for v in self.odd_one_out],
            "detail": self.detail,
        }


def _variant_name(index: int) -> str:
    return "leader" if index == 0 else f"follower {index}"


def variant_name(index: int) -> str:
    """Human name of a variant index: ``leader`` or ``follower N``."""
    return _variant_name(index)


def majority_vote(calls: Mapping[int, Call | None]) -> tuple[int, ...]:
    """Return the variants outside a strict majority, or ``()``.

    With two variants there is no majority to speak of. With three or more,
    if one call is made by more than half the variants, every variant that
    made something else (or nothing) is odd one out. A tie names nobody: the
    verdict still stops the run, but it cannot say who was attacked.
    """
    if len(calls) < 3:
        return ()
    counts = Counter(calls.values())
    winner, votes = counts.most_common(1)[0]
    if winner is None or votes * 2 <= len(calls):
        return ()
    return tuple(sorted(v for v, c in calls.items() if c != winner))


def classify_mismatch(
    a: Call | None, b: Call | None, output_args: frozenset[int] = frozenset()
) -> tuple[VerdictKind, str]:
    """Name the kind of difference between two calls at the same point.

    ``output_args`` are indexes of arguments whose content leaves the
    process (the buffer of ``write``): a difference there is reported as
    different output bytes rather than a plain argument mismatch.
    """
    if a is None or b is None:
        return VerdictKind.NO_PROGRESS, "a variant never reached this call"
    ends = (a.is_process_end, b.is_process_end)
    if any(ends):
        if all(ends) and a.name == b.name == EXIT:
            return VerdictKind.EXIT_STATUS, f"exit status {a.args[0]} vs {b.args[0]}"
        if KILLED in (a.name, b.name):
            return VerdictKind.CRASH, "killed by a signal in some variants"
        return VerdictKind.CALL_MISMATCH, "a variant exited while another made a call"
    if a.name != b.name:
        return VerdictKind.CALL_MISMATCH, f"{a.name} vs {b.name}"
    if len(a.args) != len(b.args):
        return VerdictKind.ARG_MISMATCH, "different argument count"
    for index, (x, y) in enumerate(zip(a.args, b.args)):
        if x != y:
            if index in output_args:
                return VerdictKind.OUTPUT_MISMATCH, f"{a.name} argument {index} differs in content"
            return VerdictKind.ARG_MISMATCH, f"{a.name} argument {index} differs"
    return VerdictKind.ARG_MISMATCH, "calls differ"
