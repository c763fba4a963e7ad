"""How a run ended, and whether that is what its scenario expected.

Both modes and the labs speak one vocabulary about a finished run, the one a
scenario's ``expect.verdict`` is written in: ``ok`` (no verdict), ``divergence``
(the monitors stopped the variants), ``rejected`` (a CONNECTOR refused forged or
replayed monitor traffic), ``missed`` (an attack ran and nothing stopped it),
and, for real mode only, ``error`` (the run itself failed; never expected).
:class:`Ending` is that vocabulary and :func:`ending_of` the rule from a
verdict to it; :class:`Expectation` holds a run to what its file expects
(the ending, the verdict kind, and for an attack whether it reached its goal).
They live here, in the core, so that sim mode, real mode and the lab
checkers cannot drift apart on either.

The enum is named ``Ending`` because :class:`dmvx.calls.Outcome` is already
the result of one system call; in JSON documents the field stays ``outcome``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dmvx.verdict import Verdict, VerdictKind


class Ending(Enum):
    """How a run ended (the ``outcome`` of the JSON documents)."""

    OK = "ok"
    DIVERGENCE = "divergence"
    REJECTED = "rejected"
    MISSED = "missed"
    ERROR = "error"

    @property
    def stopped(self) -> bool:
        """Whether a verdict stopped the run."""
        return self in (Ending.DIVERGENCE, Ending.REJECTED)


#: The endings a scenario may expect (``expect.verdict``): an error is
#: never what a file asks for.
EXPECTABLE: tuple[Ending, ...] = (Ending.OK, Ending.DIVERGENCE, Ending.MISSED, Ending.REJECTED)


def ending_of(verdict: Verdict | None, attacked: bool) -> Ending:
    """The ending of a run that ran to its end: a divergence verdict is a
    divergence, any other verdict (a refused frame, a protocol error) a
    rejection; no verdict is ``missed`` when an attack ran, else ``ok``."""
    if verdict is not None:
        return Ending.DIVERGENCE if verdict.kind.is_divergence else Ending.REJECTED
    return Ending.MISSED if attacked else Ending.OK


@dataclass(frozen=True)
class Expectation:
    """What a scenario expects of a run: its ending, optionally the verdict
    kind, and for an attack optionally whether it reached its goal."""

    ending: Ending
    kind: VerdictKind | None = None
    effect: bool | None = None

    def met_by(self, ending: Ending, verdict: Verdict | VerdictKind | None, effect: bool | None = None) -> bool:
        """Whether a run that ended so (with that verdict, or its kind, and
        that effect) is what was expected. The kind and the effect count
        only where the scenario names them."""
        if ending is not self.ending:
            return False
        found = verdict.kind if isinstance(verdict, Verdict) else verdict
        if self.kind is not None and found is not self.kind:
            return False
        return self.effect is None or effect == self.effect
