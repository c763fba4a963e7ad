"""Sweeps: one scenario, many points, all cores.

The points of a run are the product of its *dimensions*: the scenario's own
``sweep`` (one, or a list of them: a grid) and each ``--set KEY=[v1, v2, ...]`` whose list is not a valid
value for KEY itself (a list for a scalar field is a sweep over it). The
file's sweep varies slowest, so rows group by it.

Each point is a complete scenario, validated by :mod:`dmvx.scenario` (a value
that does not fit its field is one line naming the point), and runs in a
worker process of its own; results come back in point order, so the output
does not depend on which worker finished first.
"""

from __future__ import annotations

import itertools
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import yaml
from pydantic import ValidationError

from dmvx.errors import InputError
from dmvx.scenario import Scenario
from dmvx.yamlfile import YamlDocument
from sim.profile import CostProfile
from sim.results import point_report
from sim.runner import simulate

#: Plot data kept per point: progress samples, at most this many per variant.
TIMELINE_POINTS = 2000


@dataclass
class Point:
    labels: dict[str, Any]
    scenario: Scenario


def set_value(scenario: Scenario, parameter: str, value: Any, where: str) -> Scenario:
    """``scenario`` with ``value`` at ``parameter`` (a sweep path), revalidated.

    Goes through the scenario's own sweep machinery, so the paths and the
    checks are exactly those a ``sweep:`` in the file gets."""
    data = scenario.model_dump(mode="json", exclude={"sweep"})
    data["sweep"] = {"parameter": parameter, "values": [value]}
    try:
        probe = Scenario.model_validate(data)
        point = probe.sweep_points()[0][1]
    except ValidationError as exc:
        err = YamlDocument(where, data, {}).validation_error(exc)
        # The sweep check words it "V does not fit P: at FIELD: WHAT"; keep WHAT.
        inner = re.match(r"^.* does not fit \S+: at (\S+): (.*)$", err.message)
        message, field = (inner.group(2), inner.group(1)) if inner else (err.message, parameter)
        raise InputError(message, field=f"{field}={_show(value)}" if field == parameter else
                         f"{parameter}={_show(value)}: {field}", file=where, expected=err.expected) from None
    except LookupError as exc:
        raise InputError(str(exc), field=parameter, file=where) from None
    return point.resolved()


def _show(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def expand(scenario: Scenario, extra: Sequence[tuple[str, list[Any]]]) -> tuple[list[tuple[str, list[Any]]], list[Point]]:
    """The dimensions and the points of a run (see the module docstring)."""
    own = scenario.sweeps
    dims: list[tuple[str, list[Any]]] = [(sweep.parameter, list(sweep.values)) for sweep in own]
    dims.extend((p, list(v)) for p, v in extra)
    base = scenario.model_copy(update={"sweep": None})
    if not dims:
        return dims, [Point({}, base)]
    points = []
    for combo in itertools.product(*(values for _, values in dims)):
        current = base
        labels: dict[str, Any] = {}
        for (parameter, _), value in zip(dims, combo):
            where = "sweep" if len(labels) < len(own) else "--set"
            current = set_value(current, parameter, value, where)
            labels[parameter] = value
        points.append(Point(labels, current))
    return dims, points


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


def _timeline(exp: Any) -> dict[str, Any]:
    """Downsampled progress of every variant: (time ns, compared calls)."""
    mvx = exp.mvx
    lines = {}
    times = mvx.leader_times
    step = max(1, len(times) // TIMELINE_POINTS)
    lines["leader"] = [(times[i], i + 1) for i in range(0, len(times), step)]
    for v in mvx.variants[1:]:
        step = max(1, len(v.samples_t) // TIMELINE_POINTS)
        lines[f"follower {v.index}"] = [(v.samples_t[i], v.samples_seq[i]) for i in range(0, len(v.samples_t), step)]
    return {"lines": lines, "attack_ns": mvx.attack_time, "verdict_ns": mvx.verdict_time}


def run_point(args: tuple[dict[str, Any], dict[str, Any], CostProfile, bool]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Run one point (in a worker): its report and, if asked, its timeline."""
    scenario_data, labels, profile, timeline = args
    scenario = Scenario.model_validate(scenario_data)
    exp = simulate(scenario, profile)
    return point_report(scenario, exp, labels), (_timeline(exp) if timeline else None)


def run_points(points: Sequence[Point], profile: CostProfile, *, timeline: bool = False, workers: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Run every point, in parallel when there are several; results in point order."""
    jobs = [(p.scenario.model_dump(mode="json"), p.labels, profile, timeline) for p in points]
    if len(jobs) == 1:
        out = [run_point(jobs[0])]
        if progress:
            progress(1, 1)
        return out
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    results: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for done, result in enumerate(pool.map(run_point, jobs), start=1):
            results.append(result)
            if progress:
                progress(done, len(jobs))
    return results
