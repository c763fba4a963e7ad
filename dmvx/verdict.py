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
    ``odd_one_out`` names the variants the verdict blames: those outside a
    majority of three or more variants, or, with any number of variants,
    the one whose part failed -- killed by a signal while the others went
    on, silent, or whose monitor or CONNECTOR went away (:func:`lost`,
    :func:`crashed`, :class:`Blame`). Empty when nobody can be named (two
    variants that differ: either may be the attacked one).
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


def killed_ones(calls: Mapping[int, Call | None]) -> tuple[int, ...]:
    """The variants whose process was killed by a signal, if not all were:
    with no majority to speak of, a variant killed while the others went on
    is the one whose part failed."""
    killed = tuple(sorted(v for v, c in calls.items() if c is not None and c.name == KILLED))
    return killed if len(killed) < len(calls) else ()


def crashed(seq: int, calls: Mapping[int, Call | None], detail: str) -> Verdict:
    """A process killed by a signal in some variants and not (yet) in the
    others: ``crash``, naming the majority's odd ones out, else the killed."""
    return Verdict(
        VerdictKind.CRASH, seq, dict(sorted(calls.items())), majority_vote(calls) or killed_ones(calls), detail
    )


def lost(variant: int, detail: str, kind: VerdictKind = VerdictKind.CONNECTOR_LOST) -> Verdict:
    """A part of ``variant`` is gone (its monitor, its CONNECTOR, its link)
    or silent: the run ends naming it. The mode detects, the core names: a
    CONNECTOR that hangs up or a monitor that dies is its own variant's
    loss; silence is ``kind`` ``no-progress`` (see :class:`Blame` for who a
    lost link is blamed on)."""
    return Verdict(kind, 0, odd_one_out=(variant,), detail=detail)


#: Verdicts that explain a lost link: when one of these arrives soon after a
#: ``connector-lost``, it is the verdict of the run (the link was lost
#: *because* a CONNECTOR refused what came over it).
CAUSES = frozenset({VerdictKind.AUTH_FAILURE, VerdictKind.PROTOCOL_ERROR})


class Blame:
    """Which verdict a run ends with when several monitors report one.

    The first verdict stops the run; the others, reported within the mode's
    grace period, may only correct it:

    * an ``auth-failure`` or ``protocol-error`` replaces a ``connector-lost``:
      it is why the link was lost;
    * **silence** (``no-progress`` naming others, each monitor's own claim) is
      weighed: a link between two variants that is cut, or loses every
      frame, leaves *both* ends hearing nothing, and each names the other.
      The run then names the variant most monitors lost; a tie (two
      variants, or a follower's link in a star around the leader) goes the
      leader's way: the leader coordinates and reaches every follower, so a
      follower it lost is the one cut off. A host that stops makes no claim
      of its own, so the others' word stands.

    A monitor repeating a peer's verdict (the ``Stop`` it was sent) makes
    no claim: only distinct verdicts count.
    """

    def __init__(self) -> None:
        self.verdict: Verdict | None = None
        self._claims: list[tuple[int | None, Verdict]] = []

    @property
    def weighing(self) -> bool:
        """Whether the verdict so far is a claim of silence, which the other
        end's claim may yet correct (a mode waits a little longer for it)."""
        return self.verdict is not None and _is_silence(None, self.verdict)

    def add(self, reporter: int | None, verdict: Verdict) -> bool:
        """Take ``reporter``'s verdict; True if it is the first (the run ends now)."""
        first = self.verdict is None
        if first:
            self.verdict = verdict
        elif self.verdict is not None and self.verdict.kind is VerdictKind.CONNECTOR_LOST and verdict.kind in CAUSES:
            self.verdict = verdict
            return False
        if _is_silence(reporter, verdict) and all(verdict != seen for _, seen in self._claims):
            self._claims.append((reporter, verdict))
            if self.verdict is not None and _is_silence(None, self.verdict):
                self.verdict = self._weigh()
        return first

    def _weigh(self) -> Verdict:
        """The claim naming the variant most claims name; a tie goes the leader's way."""
        votes = Counter(v for _, claim in self._claims for v in claim.odd_one_out)
        top = max(votes.values())
        tied = {v for v, count in votes.items() if count == top}
        leaders = [claim for reporter, claim in self._claims if reporter == 0 and set(claim.odd_one_out) & tied]
        if leaders:
            return leaders[0]
        return next(claim for _, claim in self._claims if set(claim.odd_one_out) & tied)


def _is_silence(reporter: int | None, verdict: Verdict) -> bool:
    """Whether ``verdict`` is a monitor's claim that others went silent
    (not its own variant's failure, nor a peer's verdict it repeats)."""
    return (
        verdict.kind is VerdictKind.NO_PROGRESS
        and bool(verdict.odd_one_out)
        and (reporter is None or reporter not in verdict.odd_one_out)
    )


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
