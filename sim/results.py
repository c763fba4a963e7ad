"""Reports: what a simulated run found, for people and for programs.

:func:`point_report` turns the raw :class:`~sim.runner.Experiment` of one
scenario point into a :class:`~sim.report.PointReport`: slowdown against the
native run, messages and bytes per link direction, CB occupancy, the leader's
lead over each follower, the verdict, how the run ended (the core's
:class:`~dmvx.outcome.Ending`, held to the scenario's expectation), and for an
attack its detection latency and whether a harmful call ran first.
:class:`SimResult` holds the points of a run or sweep and is the
:class:`dmvx.output.Result` the CLI prints.

Same scenario and seed, same JSON, byte for byte: times are integer
nanoseconds, ratios are rounded to :data:`DIGITS` significant digits, keys
are sorted by the JSON writer, and nothing measured on the host's clock
enters the document.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from dmvx.exitstatus import ExitStatus, worst
from dmvx.outcome import Ending, Expectation, ending_of
from dmvx.rows import TEXT, Column, Rows
from dmvx.scenario import Expect, Microbench, Scenario, Server, Trace
from sim.diversity import setting_name
from sim.engine import RunOutcome, VariantStats
from sim.profile import CostProfile
from sim.report import (
    AttackReport,
    CbOccupancy,
    ConnectorStats,
    Detection,
    HarmfulReport,
    Lead,
    LinkStats,
    Load,
    MicrobenchLoad,
    MvxRun,
    NativeRun,
    PointReport,
    ReactionReport,
    ServerLoad,
    ServerNumbers,
    TraceLoad,
    Traffic,
    VariantReport,
    VerdictReport,
)
from sim.runner import Experiment

if TYPE_CHECKING:
    from rich.console import Console

#: Significant digits of every ratio and mean in the JSON.
DIGITS = 6


def sig(value: float, digits: int = DIGITS) -> float:
    """``value`` rounded to ``digits`` significant digits (0 stays 0)."""
    if value == 0 or not math.isfinite(value):
        return 0.0 if not math.isfinite(value) else float(value)
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def _workload(scenario: Scenario) -> Load:
    w = scenario.workload
    if isinstance(w, Microbench):
        return MicrobenchLoad(w.call, w.iterations)
    if isinstance(w, Server):
        return ServerLoad(w.requests, w.concurrency, w.request_size, w.file_size, w.client)
    assert isinstance(w, Trace)
    return TraceLoad(w.path)


def _server_numbers(run: RunOutcome) -> ServerNumbers:
    span = (run.last_response - run.first_request) if run.first_request is not None and run.last_response else 0
    lat = sorted(run.latencies)
    return ServerNumbers(
        requests_done=run.requests_done,
        throughput_rps=sig(run.requests_done / (span / 1e9)) if span > 0 else 0.0,
        latency_mean_ns=round(sum(lat) / len(lat)) if lat else 0,
        latency_p99_ns=lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)] if lat else 0,
    )


def _runs(scenario: Scenario, native: RunOutcome, mvx: RunOutcome) -> tuple[NativeRun, MvxRun]:
    """Both runs' times; a server's throughput, latency and the overhead."""
    slowdown = sig(mvx.makespan / native.makespan) if native.makespan else 0.0
    if not isinstance(scenario.workload, Server):
        return NativeRun(native.makespan), MvxRun(mvx.makespan, slowdown)
    n, m = _server_numbers(native), _server_numbers(mvx)
    slowdown, overhead = 0.0, 0.0
    if m.throughput_rps and n.throughput_rps:
        ratio = n.throughput_rps / m.throughput_rps
        slowdown, overhead = sig(ratio), sig((ratio - 1.0) * 100.0)
    latency = sig(m.latency_mean_ns / n.latency_mean_ns) if n.latency_mean_ns and m.latency_mean_ns else None
    return NativeRun(native.makespan, n), MvxRun(mvx.makespan, slowdown, m, overhead, latency)


def _variant(v: VariantStats) -> VariantReport:
    return VariantReport(
        index=v.index,
        host=v.host,
        arch=v.arch,
        entered=v.entered,
        executed=v.executed,
        skipped=v.skipped,
        waited_ns=v.wait_time,
        io_waited_ns=v.io_wait_time,
        busy_ns=v.busy_time,
        end_ns=v.end_time,
        ended_by=v.ended_by,
        exit_status=v.exit_status,
        routes=dict(sorted(v.routes.items())),
    )


def _lead(leader_times: array, follower: VariantStats) -> Lead:
    """How far the leader was ahead of one follower: in calls (entered by
    the leader but not yet by the follower) and in time (how long after the
    leader the follower reached the same call), max and mean over samples."""
    calls_max = time_max = calls_sum = time_sum = n = 0
    limit = len(leader_times)
    for t, seq in zip(follower.samples_t, follower.samples_seq):
        if seq > limit:
            continue
        behind = max(t - leader_times[seq - 1], 0)
        ahead = max(bisect_right(leader_times, t) - seq, 0)
        calls_max = max(calls_max, ahead)
        time_max = max(time_max, behind)
        calls_sum += ahead
        time_sum += behind
        n += 1
    if not n:
        return Lead(follower.index, calls_max=0, calls_mean=0.0, time_max_ns=0, time_mean_ns=0)
    return Lead(
        follower.index,
        calls_max=calls_max,
        calls_mean=sig(calls_sum / n),
        time_max_ns=time_max,
        time_mean_ns=round(time_sum / n),
    )


def expectation_of(expect: Expect | None) -> Expectation | None:
    """A scenario's ``expect`` as the core's :class:`Expectation` (the
    effect is added for attack points by :func:`sim.attacks.check_effects`)."""
    if expect is None:
        return None
    return Expectation(Ending(expect.verdict), expect.kind)


def point_report(scenario: Scenario, exp: Experiment, labels: dict[str, Any]) -> PointReport:
    """The report of one scenario point."""
    mvx, native = exp.mvx, exp.native
    native_run, mvx_run = _runs(scenario, native, mvx)
    verdict = None if mvx.verdict is None else VerdictReport(mvx.verdict, mvx.verdict_time, mvx.verdict_by)
    ending = ending_of(mvx.verdict, scenario.attack is not None)
    expected = expectation_of(scenario.expect)
    # The engine's counters, field for field (LinkDirection.stats, Connector.stats).
    links = {name: LinkStats(**stats) for name, stats in mvx.links.items()}
    connectors = {host: ConnectorStats(**stats) for host, stats in mvx.connectors.items()}
    return PointReport(
        labels=labels,
        scenario=scenario.name,
        seed=scenario.seed,
        topology=scenario.topo.name,
        workload=_workload(scenario),
        policy=scenario.policy.to_policy(),
        diversity=setting_name(exp.layouts),
        calls=exp.calls,
        native=native_run,
        mvx=mvx_run,
        variants=tuple(_variant(v) for v in mvx.variants),
        links={name: link for name, link in links.items() if link.messages},
        connectors=connectors,
        messages=Traffic(
            total=sum(c.messages for c in connectors.values()),
            bytes=sum(c.bytes for c in connectors.values()),
            lost=mvx.lost_messages,
        ),
        cb=CbOccupancy(
            max_entries=int(mvx.cb.get("max_entries", 0)),
            mean_entries=sig(mvx.cb.get("mean_entries", 0.0)),
            max_bytes=int(mvx.cb.get("max_bytes", 0)),
        ),
        lead=tuple(_lead(mvx.leader_times, v) for v in mvx.variants[1:]),
        verdict=verdict,
        attack=None if scenario.attack is None else _attack_report(scenario, exp),
        outcome=ending,
        note="the run ended waiting for input that never came (a request given up)"
        if mvx.ended_by_starvation
        else None,
        expected=expected,
        as_expected=None if expected is None else expected.met_by(ending, mvx.verdict),
    )


def _attack_report(scenario: Scenario, exp: Experiment) -> AttackReport:
    attack = scenario.attack
    assert attack is not None
    mvx = exp.mvx
    detected = mvx.verdict is not None and mvx.attack_time is not None and (mvx.verdict_time or 0) >= mvx.attack_time
    detection = None
    if detected:
        leader = mvx.variants[0]
        at = leader.entered_at_attack if leader.entered_at_attack is not None else attack.at_call
        detection = Detection(
            time_ns=(mvx.verdict_time or 0) - (mvx.attack_time or 0),
            leader_calls=max(0, (leader.entered_at_verdict or 0) - at),
        )
    cutoff = mvx.verdict_time
    return AttackReport(
        kind=attack.kind,
        at_call=attack.at_call,
        target=attack.target,
        time_ns=mvx.attack_time,
        source=attack.source,
        reactions=tuple(ReactionReport(i, r.reaction.value, r.reason) for i, r in enumerate(exp.reactions or [])),
        detected=detected,
        detection=detection,
        harmful_calls=tuple(
            HarmfulReport(h.variant, h.call, h.what, h.time, cutoff is None or h.time < cutoff)
            for h in sorted(mvx.harmful, key=lambda h: (h.time, h.variant, h.call))
        ),
    )


#: Exit status of a point held to no expectation, by how it ended.
_STATUS_OF = {
    Ending.OK: ExitStatus.OK,
    Ending.DIVERGENCE: ExitStatus.DIVERGENCE,
    Ending.REJECTED: ExitStatus.DIVERGENCE,
    Ending.MISSED: ExitStatus.ATTACK_MISSED,
}


def point_status(report: PointReport) -> ExitStatus:
    """Exit status of one point. With ``expect``: OK if the run ended as the
    file says, else ATTACK_MISSED. Without: what happened."""
    if report.as_expected is not None:
        return ExitStatus.OK if report.as_expected else ExitStatus.ATTACK_MISSED
    return _STATUS_OF[report.outcome]


# ---------------------------------------------------------------------------
# The result of a whole run or sweep
# ---------------------------------------------------------------------------


@dataclass
class SimResult:
    """The :class:`dmvx.output.Result` of ``dmvx sim``: one or more points."""

    scenario: str
    file: str
    profile: CostProfile
    dimensions: list[tuple[str, list[Any]]]
    points: list[PointReport]
    plot: str | None = None
    notes: list[str] = field(default_factory=list)
    #: The dimensions that are repetitions (``seed``, ``attack.at_call``): the
    #: rows, tables and plots sum their runs up per point (:mod:`dmvx.stats`).
    repeats: list[str] = field(default_factory=list)
    #: With repetitions, ``rows()`` gives every run rather than the summary.
    per_run: bool = False

    @property
    def exit_status(self) -> ExitStatus:
        return worst(point_status(p) for p in self.points)

    def to_json(self) -> dict[str, Any]:
        document = {
            "scenario": self.scenario,
            "file": self.file,
            "cost_profile": self.profile.name,
            "profile_values": self.profile.to_dict(),
            "sweep": [{"parameter": p, "values": v} for p, v in self.dimensions],
            "points": [p.to_json() for p in self.points],
            "exit_status": self.exit_status.label,
        }
        if self.repeats:  # only then: a run without repetitions writes the document it always has
            document["repeat"] = list(self.repeats)
            document["summary"] = self.summary().records()
        return sorted_keys(document)

    def runs(self) -> Rows:
        """One flat row per point run (:mod:`sim.rows`), repetitions included."""
        from sim.rows import point_rows

        return point_rows(self.points, self.file)

    def summary(self) -> Rows:
        """One row per point of the sweep, its repetitions summed up
        (:func:`dmvx.stats.summarize`); without repetitions, n is 1."""
        from dmvx.stats import summarize
        from sim.rows import SUMMARIZED

        return summarize(self.runs(), self.repeats, SUMMARIZED, first=("file",))

    def rows(self) -> Rows:
        """``--format``, :mod:`dmvx.api`: the summary when the points repeat
        (unless ``per_run``), else one row per point."""
        return self.summary() if self.repeats and not self.per_run else self.runs()

    def render(self, console: Console) -> None:
        from sim.table import render_result

        render_result(self, console)


class SuiteEntry(NamedTuple):
    """One scenario file of a suite: its result, or why it could not run."""

    file: str
    result: SimResult | None
    error: str | None


@dataclass
class SuiteResult:
    """The :class:`dmvx.output.Result` of ``dmvx suite``: a result per file."""

    directory: str
    results: list[SuiteEntry]

    @property
    def exit_status(self) -> ExitStatus:
        statuses = []
        for _, result, error in self.results:
            if error is not None:
                statuses.append(ExitStatus.USAGE)
            else:
                assert result is not None
                statuses.append(
                    ExitStatus.OK
                    if all(p.as_expected is not False for p in result.points)
                    else ExitStatus.ATTACK_MISSED
                )
        return worst(statuses)

    def to_json(self) -> dict[str, Any]:
        return sorted_keys(
            {
                "directory": self.directory,
                "scenarios": [
                    {"file": f, "error": e} if e is not None else {"file": f, **(r.to_json() if r else {})}
                    for f, r, e in self.results
                ],
                "exit_status": self.exit_status.label,
            }
        )

    def rows(self) -> Rows:
        """Every file's rows (:meth:`SimResult.rows`), a file that could not
        run as a row with its ``error``."""
        out = Rows((Column("file", TEXT, "the scenario file"),), ())
        for file, result, error in self.results:
            if result is not None:
                out = out + result.rows()
            else:
                out = out + Rows.from_records(
                    [Column("file", TEXT), Column("error", TEXT, "why the file could not run")],
                    [{"file": file, "error": error}],
                )
        return out

    def render(self, console: Console) -> None:
        from sim.table import render_suite

        render_suite(self, console)


def sorted_keys(value: Any) -> Any:
    """``value`` with every mapping's keys in sorted order (lists keep theirs),
    so the JSON writer, which keeps insertion order, writes a canonical document."""
    if isinstance(value, dict):
        return {str(k): sorted_keys(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [sorted_keys(v) for v in value]
    return value


def ordered_labels(points: Sequence[PointReport]) -> list[str]:
    """The swept parameters of ``points``, in the order they were first seen."""
    keys: list[str] = []
    for p in points:
        for k in p.labels:
            if k not in keys:
                keys.append(k)
    return keys
