"""What the leader ran before a verdict stopped it: the window of asynchronous
replication, told call by call.

Under asynchronous replication the leader runs a replicated call at once and
the followers compare it later (docs/policy.md, the routes). When
a verdict comes, the calls the leader ran that no follower had confirmed yet
*did* run: "every variant was stopped before the call ran" is true only of a
lockstep call. :class:`RanAhead` lists them -- the connector buffer's
unacknowledged entries and a call still running -- and says what left the
process: the bytes each write or send put on which descriptor. The mode
reports it with the verdict (``dmvx run``'s message and ``--json``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dmvx.calls import Call, Outcome
from dmvx.policy import OUTPUT_ARGS


@dataclass(frozen=True, slots=True)
class RanCall:
    """One call the leader ran unconfirmed."""

    stream: str
    seq: int
    name: str
    #: The descriptor it wrote to or sent on (writes and sends only).
    fd: int | None
    #: Its result; None when it was still running when the verdict came.
    result: int | None
    #: The call as people read it (``write(1, b'ok\\n', 3)``).
    text: str

    @classmethod
    def of(cls, stream: str, seq: int, call: Call, outcome: Outcome | None) -> RanCall:
        fd = call.args[0] if call.name in OUTPUT_ARGS and call.args and isinstance(call.args[0], int) else None
        return cls(stream, seq, call.name, fd, None if outcome is None else outcome.result, str(call))

    @property
    def written(self) -> tuple[int, int] | None:
        """``(descriptor, bytes)`` this call sent out of the process, if it
        is a write or send that did."""
        if self.fd is None or self.result is None or self.result <= 0:
            return None
        return self.fd, self.result


@dataclass(frozen=True, slots=True)
class RanAhead:
    """The calls the leader ran that no follower had confirmed at the verdict."""

    calls: tuple[RanCall, ...] = ()

    @classmethod
    def gather(cls, streams: Iterable[tuple[str, Iterable[tuple[int, Call, Outcome | None]]]]) -> RanAhead:
        """From each stream's ``(seq, call, outcome)`` unconfirmed calls
        (:meth:`dmvx.monitor.LeaderMonitor.unconfirmed`)."""
        return cls(
            tuple(
                RanCall.of(stream, seq, call, outcome) for stream, entries in streams for seq, call, outcome in entries
            )
        )

    def written(self) -> dict[int, int]:
        """Bytes that left the process, per descriptor."""
        out: dict[int, int] = {}
        for ran in self.calls:
            effect = ran.written
            if effect is not None:
                out[effect[0]] = out.get(effect[0], 0) + effect[1]
        return out

    def includes(self, seq: int, call: Call | None) -> bool:
        """Whether the leader ran ``call`` at ``seq`` (the verdict's own call)."""
        return any(ran.seq == seq and (call is None or ran.name == call.name) for ran in self.calls)

    def summary(self, verdict_seq: int, verdict_call: Call | None) -> str:
        """One line for people, said after the verdict."""
        if not self.calls:
            return "every variant was stopped before the call ran."
        names: dict[str, int] = {}
        for ran in self.calls:
            names[ran.name] = names.get(ran.name, 0) + 1
        ran_list = ", ".join(f"{name} x{count}" if count > 1 else name for name, count in names.items())
        which = (
            "the call at the verdict among them"
            if self.includes(verdict_seq, verdict_call)
            else "the call at the verdict did not run"
        )
        written = self.written()
        sizes = ", ".join(f"{size} bytes to fd {fd}" for fd, size in sorted(written.items()))
        out = "; what left the process: " + sizes if written else "; none of them wrote to a descriptor"
        count = len(self.calls)
        return (
            f"the leader ran {count} call{'s' if count != 1 else ''} the followers had not confirmed "
            f"before the verdict (asynchronous replication): {ran_list}; {which}{out}."
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and the monitors' reports."""
        return {
            "calls": [
                {"stream": r.stream, "seq": r.seq, "name": r.name, "fd": r.fd, "result": r.result, "call": r.text}
                for r in self.calls
            ],
            "written": {str(fd): size for fd, size in sorted(self.written().items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RanAhead:
        """What :meth:`to_dict` made, back (a monitor's report crossing a pipe)."""
        return cls(
            tuple(
                RanCall(c["stream"], c["seq"], c["name"], c["fd"], c["result"], c["call"])
                for c in data.get("calls", [])
            )
        )
