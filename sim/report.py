"""What one simulated scenario point found, as typed values.

:func:`sim.results.point_report` builds a :class:`PointReport` from the raw
observations of a run; the table (:mod:`sim.table`), the plot
(:mod:`sim.plot`), the attack table (:mod:`sim.attacks`) and the exit status
read its attributes, and ``to_json()`` writes the ``--json`` document of a
point. The document is a contract (labs and scripts read it, and the same
scenario and seed give the same bytes), so each ``to_json`` writes exactly
the keys the format has always had: a key that appears only for some points
(``effect`` and ``expected.effect`` for an attack, the server numbers, ``note``)
is written only then.

Every value here is frozen: a report is made once, in the worker process
that ran the point, and later steps that add to it (the expected effect of
an attack) make a new one with :func:`dataclasses.replace`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from dmvx.outcome import Ending, Expectation
from dmvx.policy import Policy
from dmvx.verdict import Verdict

# ---------------------------------------------------------------------------
# The workload of the point
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MicrobenchLoad:
    """One call, repeated."""

    call: str
    iterations: int
    kind = "microbench"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "call": self.call, "iterations": self.iterations}


@dataclass(frozen=True)
class ServerLoad:
    """A server answering a client's requests."""

    requests: int
    concurrency: int
    request_size: int
    file_size: int
    client: str | None
    kind = "server"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "requests": self.requests,
            "concurrency": self.concurrency,
            "request_size": self.request_size,
            "file_size": self.file_size,
            "client": self.client,
        }


@dataclass(frozen=True)
class TraceLoad:
    """A recorded trace, replayed."""

    path: str
    kind = "trace"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path}


Load = MicrobenchLoad | ServerLoad | TraceLoad


# ---------------------------------------------------------------------------
# Times and throughput of the native and the monitored run
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerNumbers:
    """A server run seen from its client."""

    requests_done: int
    throughput_rps: float
    latency_mean_ns: int
    latency_p99_ns: int


@dataclass(frozen=True)
class NativeRun:
    """The program alone, on the same topology: the baseline."""

    time_ns: int
    server: ServerNumbers | None = None

    def to_json(self) -> dict[str, Any]:
        return {"time_ns": self.time_ns, **(asdict(self.server) if self.server else {})}


@dataclass(frozen=True)
class MvxRun:
    """The monitored run, and what it costs against :class:`NativeRun`.

    ``slowdown`` is makespan against makespan, or for a server throughput
    against throughput (0.0 when either is unknown); ``overhead_pct`` is set
    for a server only, ``latency_slowdown`` when both runs had latencies."""

    time_ns: int
    slowdown: float
    server: ServerNumbers | None = None
    overhead_pct: float | None = None
    latency_slowdown: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"time_ns": self.time_ns, "slowdown": self.slowdown}
        if self.server is not None:
            out.update(asdict(self.server))
            out["overhead_pct"] = self.overhead_pct
        if self.latency_slowdown is not None:
            out["latency_slowdown"] = self.latency_slowdown
        return out


# ---------------------------------------------------------------------------
# Variants, links, CONNECTORs, the CB and the leader's lead
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantReport:
    """One variant of the monitored run."""

    index: int
    host: str
    arch: str
    entered: int
    executed: int
    skipped: int
    waited_ns: int
    io_waited_ns: int
    busy_ns: int
    end_ns: int
    ended_by: str
    exit_status: int | None
    routes: Mapping[str, int]  # route -> calls, by route name

    @property
    def name(self) -> str:
        return "leader" if self.index == 0 else f"follower {self.index}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "routes": dict(self.routes)}


@dataclass(frozen=True)
class LinkStats:
    """One link direction (:meth:`sim.network.LinkDirection.stats`)."""

    messages: int
    bytes: int
    packets: int
    held_back: int
    max_queue_packets: int
    losses: int


@dataclass(frozen=True)
class ConnectorStats:
    """One host's CONNECTOR (:meth:`sim.engine.Connector.stats`)."""

    batches: int
    messages: int
    bytes: int
    received_batches: int
    received_messages: int
    received_bytes: int
    busy_ns: int


@dataclass(frozen=True)
class Traffic:
    """Monitor messages over all CONNECTORs."""

    total: int
    bytes: int
    lost: int


@dataclass(frozen=True)
class CbOccupancy:
    """The leader's connector buffer."""

    max_entries: int
    mean_entries: float
    max_bytes: int


@dataclass(frozen=True)
class Lead:
    """How far the leader ran ahead of one follower."""

    follower: int
    calls_max: int
    calls_mean: float
    time_max_ns: int
    time_mean_ns: int

    @property
    def name(self) -> str:
        return f"follower {self.follower}"

    def to_json(self) -> dict[str, Any]:
        return {
            "calls_max": self.calls_max,
            "calls_mean": self.calls_mean,
            "time_max_ns": self.time_max_ns,
            "time_mean_ns": self.time_mean_ns,
        }


@dataclass(frozen=True)
class VerdictReport:
    """The verdict that stopped the run: when, and whose monitor gave it."""

    verdict: Verdict
    time_ns: int | None
    by: int | None  # the variant whose monitor gave it

    @property
    def by_name(self) -> str:
        return "leader" if self.by == 0 else f"follower {self.by}"

    def to_json(self) -> dict[str, Any]:
        return {
            **self.verdict.to_dict(),
            "summary": self.verdict.summary(),
            "time_ns": self.time_ns,
            "by": self.by_name,
        }


# ---------------------------------------------------------------------------
# The attack
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReactionReport:
    """How one variant reacts to the attack, and why."""

    variant: int
    reaction: str
    reason: str


@dataclass(frozen=True)
class Detection:
    """From the attack to the verdict."""

    time_ns: int
    leader_calls: int


@dataclass(frozen=True)
class HarmfulReport:
    """A harmful call a variant made, and whether the verdict came too late for it."""

    variant: int
    call: str
    what: str
    time_ns: int
    before_verdict: bool


@dataclass(frozen=True)
class AttackReport:
    """The attack of the point and what it met."""

    kind: str
    at_call: int
    target: int
    time_ns: int | None
    source: str | None
    reactions: tuple[ReactionReport, ...]
    detected: bool
    detection: Detection | None
    harmful_calls: tuple[HarmfulReport, ...]

    @property
    def harmful_before_verdict(self) -> bool:
        return any(h.before_verdict for h in self.harmful_calls)

    @property
    def first_harm(self) -> HarmfulReport | None:
        """The first harmful call that ran before the verdict."""
        return next((h for h in self.harmful_calls if h.before_verdict), None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "at_call": self.at_call,
            "target": self.target,
            "time_ns": self.time_ns,
        }
        if self.source is not None:
            out["source"] = self.source
        out.update(
            reactions=[asdict(r) for r in self.reactions],
            detected=self.detected,
            detection=None if self.detection is None else asdict(self.detection),
            harmful_calls=[asdict(h) for h in self.harmful_calls],
            harmful_before_verdict=self.harmful_before_verdict,
        )
        return out


# ---------------------------------------------------------------------------
# The point
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PointReport:
    """Everything one scenario point found (see the module docstring)."""

    labels: Mapping[str, Any]  # the swept parameters' values at this point
    scenario: str | None
    seed: int
    topology: str | None
    workload: Load
    policy: Policy
    diversity: str
    calls: int
    native: NativeRun
    mvx: MvxRun
    variants: tuple[VariantReport, ...]
    links: Mapping[str, LinkStats]  # busy link directions only, by name
    connectors: Mapping[str, ConnectorStats]  # by host
    messages: Traffic
    cb: CbOccupancy
    lead: tuple[Lead, ...]
    verdict: VerdictReport | None
    attack: AttackReport | None
    outcome: Ending
    note: str | None
    expected: Expectation | None
    as_expected: bool | None
    #: Whether an attack reached its goal (None: no attack, or one whose
    #: goal is the verdict itself); set by :func:`sim.attacks.check_effects`.
    effect: bool | None = None

    @property
    def server(self) -> bool:
        return isinstance(self.workload, ServerLoad)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "labels": dict(self.labels),
            "scenario": self.scenario,
            "seed": self.seed,
            "topology": self.topology,
            "workload": self.workload.to_json(),
            "policy": self.policy.to_dict(),
            "diversity": self.diversity,
            "calls": self.calls,
            "native": self.native.to_json(),
            "mvx": self.mvx.to_json(),
            "variants": [v.to_json() for v in self.variants],
            "links": {name: asdict(stats) for name, stats in self.links.items()},
            "connectors": {host: asdict(stats) for host, stats in self.connectors.items()},
            "messages": asdict(self.messages),
            "cb": asdict(self.cb),
            "lead": {lead.name: lead.to_json() for lead in self.lead},
            "verdict": None if self.verdict is None else self.verdict.to_json(),
            "attack": None if self.attack is None else self.attack.to_json(),
            "outcome": self.outcome.value,
            "expected": None if self.expected is None else self._expected_json(self.expected),
            "as_expected": self.as_expected,
        }
        if self.note is not None:
            out["note"] = self.note
        if self.attack is not None:
            out["effect"] = self.effect
        return out

    def _expected_json(self, expected: Expectation) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verdict": expected.ending.value,
            "kind": None if expected.kind is None else expected.kind.value,
        }
        if self.attack is not None:  # the effect is held to attacks only
            out["effect"] = expected.effect
        return out


@dataclass(frozen=True)
class Timeline:
    """How far each variant had got over virtual time, for ``--plot`` (never
    in the JSON): per variant name, (time ns, compared calls entered) samples."""

    lines: Mapping[str, Sequence[tuple[int, int]]]
    attack_ns: int | None
    verdict_ns: int | None
