"""Reports: what a simulated run found, for people and for programs.

:func:`point_report` turns the raw :class:`~sim.runner.Experiment` of one
scenario point into plain data: slowdown against the native run, messages and
bytes per link direction, CB occupancy, the leader's lead over each follower,
the verdict, and for an attack its detection latency and whether a harmful
call ran first. :class:`SimResult` holds the points of a run or sweep and is
the :class:`dmvx.output.Result` the CLI prints.

Same scenario and seed, same JSON, byte for byte: times are integer
nanoseconds, ratios are rounded to :data:`DIGITS` significant digits, keys
are sorted by the JSON writer, and nothing measured on the host's clock
enters the document.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from dmvx.exitstatus import ExitStatus, worst
from dmvx.scenario import Microbench, Scenario, Server, Trace
from sim.diversity import setting_name
from sim.engine import RunOutcome, lead_stats
from sim.profile import CostProfile
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


def _workload(scenario: Scenario) -> dict[str, Any]:
    w = scenario.workload
    if isinstance(w, Microbench):
        return {"kind": "microbench", "call": w.call, "iterations": w.iterations}
    if isinstance(w, Server):
        return {"kind": "server", "requests": w.requests, "concurrency": w.concurrency,
                "request_size": w.request_size, "file_size": w.file_size, "client": w.client}
    assert isinstance(w, Trace)
    return {"kind": "trace", "path": w.path}


def _server_numbers(run: RunOutcome) -> dict[str, Any]:
    span = (run.last_response - run.first_request) if run.first_request is not None and run.last_response else 0
    lat = sorted(run.latencies)
    return {
        "requests_done": run.requests_done,
        "throughput_rps": sig(run.requests_done / (span / 1e9)) if span > 0 else 0.0,
        "latency_mean_ns": int(round(sum(lat) / len(lat))) if lat else 0,
        "latency_p99_ns": lat[min(len(lat) - 1, int(math.ceil(0.99 * len(lat))) - 1)] if lat else 0,
    }


def outcome_label(run: RunOutcome, attacked: bool) -> str:
    """ok | divergence | rejected | missed: the vocabulary of ``expect.verdict``."""
    if run.verdict is not None:
        return "divergence" if run.verdict.kind.is_divergence else "rejected"
    if attacked:
        return "missed"  # an attack ran and no verdict stopped it
    return "ok"


def point_report(scenario: Scenario, exp: Experiment, labels: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able report of one scenario point."""
    mvx, native = exp.mvx, exp.native
    policy = scenario.policy.to_policy()
    report: dict[str, Any] = {
        "labels": labels,
        "scenario": scenario.name,
        "seed": scenario.seed,
        "topology": scenario.topo.name,
        "workload": _workload(scenario),
        "policy": policy.to_dict(),
        "diversity": setting_name(exp.layouts),
        "calls": exp.calls,
    }
    report["native"] = {"time_ns": native.makespan}
    report["mvx"] = {"time_ns": mvx.makespan, "slowdown": sig(mvx.makespan / native.makespan) if native.makespan else 0.0}
    if isinstance(scenario.workload, Server):
        n, m = _server_numbers(native), _server_numbers(mvx)
        report["native"].update(n)
        report["mvx"].update(m)
        if m["throughput_rps"] and n["throughput_rps"]:
            slowdown = n["throughput_rps"] / m["throughput_rps"]
            report["mvx"]["slowdown"] = sig(slowdown)
            report["mvx"]["overhead_pct"] = sig((slowdown - 1.0) * 100.0)
        else:
            report["mvx"]["slowdown"] = 0.0
            report["mvx"]["overhead_pct"] = 0.0
        if n["latency_mean_ns"] and m["latency_mean_ns"]:
            report["mvx"]["latency_slowdown"] = sig(m["latency_mean_ns"] / n["latency_mean_ns"])
    report["variants"] = [
        {"index": v.index, "host": v.host, "arch": v.arch, "entered": v.entered, "executed": v.executed,
         "skipped": v.skipped, "waited_ns": v.wait_time, "io_waited_ns": v.io_wait_time,
         "busy_ns": v.busy_time, "end_ns": v.end_time, "ended_by": v.ended_by,
         "exit_status": v.exit_status, "routes": dict(sorted(v.routes.items()))}
        for v in mvx.variants
    ]
    report["links"] = {name: stats for name, stats in mvx.links.items() if stats["messages"]}
    report["connectors"] = mvx.connectors
    report["messages"] = {"total": sum(c["messages"] for c in mvx.connectors.values()),
                          "bytes": sum(c["bytes"] for c in mvx.connectors.values()),
                          "lost": mvx.lost_messages}
    report["cb"] = {"max_entries": mvx.cb.get("max_entries", 0),
                    "mean_entries": sig(mvx.cb.get("mean_entries", 0.0)),
                    "max_bytes": mvx.cb.get("max_bytes", 0)}
    report["lead"] = {}
    for v in mvx.variants[1:]:
        lead = lead_stats(mvx.leader_times, v)
        report["lead"][f"follower {v.index}"] = {
            "calls_max": lead["calls_max"], "calls_mean": sig(lead["calls_mean"]),
            "time_max_ns": lead["time_max"], "time_mean_ns": int(round(lead["time_mean"])),
        }
    verdict = mvx.verdict
    report["verdict"] = None if verdict is None else {
        **verdict.to_dict(), "summary": verdict.summary(), "time_ns": mvx.verdict_time,
        "by": "leader" if mvx.verdict_by == 0 else f"follower {mvx.verdict_by}",
    }
    attack = scenario.attack
    report["attack"] = None
    if attack is not None:
        report["attack"] = _attack_report(scenario, exp)
    report["outcome"] = outcome_label(mvx, attack is not None)
    if mvx.ended_by_starvation:
        report["note"] = "the run ended waiting for input that never came (a request given up)"
    expect = scenario.expect
    report["expected"] = None if expect is None else {
        "verdict": expect.verdict, "kind": expect.kind.value if expect.kind else None}
    report["as_expected"] = None if expect is None else _as_expected(report, expect.verdict,
                                                                    expect.kind.value if expect.kind else None)
    return report


def _attack_report(scenario: Scenario, exp: Experiment) -> dict[str, Any]:
    attack = scenario.attack
    assert attack is not None
    mvx = exp.mvx
    out: dict[str, Any] = {"kind": attack.kind, "at_call": attack.at_call, "target": attack.target,
                           "time_ns": mvx.attack_time}
    if attack.source is not None:
        out["source"] = attack.source
    out["reactions"] = [
        {"variant": i, "reaction": r.reaction.value, "reason": r.reason} for i, r in enumerate(exp.reactions or [])
    ]
    detected = mvx.verdict is not None and mvx.attack_time is not None and (mvx.verdict_time or 0) >= mvx.attack_time
    out["detected"] = detected
    if detected:
        leader = mvx.variants[0]
        at = leader.entered_at_attack if leader.entered_at_attack is not None else attack.at_call
        out["detection"] = {
            "time_ns": (mvx.verdict_time or 0) - (mvx.attack_time or 0),
            "leader_calls": max(0, (leader.entered_at_verdict or 0) - at),
        }
    else:
        out["detection"] = None
    cutoff = mvx.verdict_time if mvx.verdict_time is not None else None
    out["harmful_calls"] = [
        {"variant": h.variant, "call": h.call, "what": h.what, "time_ns": h.time,
         "before_verdict": cutoff is None or h.time < cutoff}
        for h in sorted(mvx.harmful, key=lambda h: (h.time, h.variant, h.call))
    ]
    out["harmful_before_verdict"] = any(h["before_verdict"] for h in out["harmful_calls"])
    return out


def _as_expected(report: dict[str, Any], verdict: str, kind: str | None) -> bool:
    if report["outcome"] != verdict:
        return False
    if kind is not None:
        return report["verdict"] is not None and report["verdict"]["kind"] == kind
    return True


def point_status(report: dict[str, Any]) -> ExitStatus:
    """Exit status of one point. With ``expect``: OK if the run ended as the
    file says, else ATTACK_MISSED. Without: what happened."""
    if report["as_expected"] is not None:
        return ExitStatus.OK if report["as_expected"] else ExitStatus.ATTACK_MISSED
    return {"ok": ExitStatus.OK, "divergence": ExitStatus.DIVERGENCE, "rejected": ExitStatus.DIVERGENCE,
            "missed": ExitStatus.ATTACK_MISSED}[report["outcome"]]


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
    points: list[dict[str, Any]]
    plot: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> ExitStatus:
        return worst(point_status(p) for p in self.points)

    def to_json(self) -> dict[str, Any]:
        return sorted_keys({
            "scenario": self.scenario,
            "file": self.file,
            "cost_profile": self.profile.name,
            "profile_values": self.profile.to_dict(),
            "sweep": [{"parameter": p, "values": v} for p, v in self.dimensions],
            "points": self.points,
            "exit_status": self.exit_status.label,
        })

    def render(self, console: "Console") -> None:
        from sim.table import render_result

        render_result(self, console)


@dataclass
class SuiteResult:
    """The :class:`dmvx.output.Result` of ``dmvx suite``: a result per file."""

    directory: str
    results: list[tuple[str, SimResult | None, str | None]]  # (file, result, error)

    @property
    def exit_status(self) -> ExitStatus:
        statuses = []
        for _, result, error in self.results:
            if error is not None:
                statuses.append(ExitStatus.USAGE)
            else:
                assert result is not None
                statuses.append(ExitStatus.OK if all(
                    p["as_expected"] is not False for p in result.points) else ExitStatus.ATTACK_MISSED)
        return worst(statuses)

    def to_json(self) -> dict[str, Any]:
        return sorted_keys({
            "directory": self.directory,
            "scenarios": [
                {"file": f, "error": e} if e is not None else {"file": f, **(r.to_json() if r else {})}
                for f, r, e in self.results
            ],
            "exit_status": self.exit_status.label,
        })

    def render(self, console: "Console") -> None:
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


def ordered_labels(points: Sequence[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for p in points:
        for k in p["labels"]:
            if k not in keys:
                keys.append(k)
    return keys
