"""Sweeps: one scenario, many points, all cores.

The points of a run are the product of its *dimensions*: the scenario's own
``sweep`` (one, or a list of them: a grid), each ``--set KEY=[v1, v2, ...]`` whose list is not a valid
value for KEY itself (a list for a scalar field is a sweep over it), and
last the repetitions of its ``repeat`` (``seed``, ``attack.at_call``). The
file's sweep varies slowest, so rows group by it.

Each point is a complete scenario, validated by :mod:`dmvx.scenario` (a value
that does not fit its field is one line naming the point), and runs in a
worker process of its own; results come back in point order, so the output
does not depend on which worker finished first. Ctrl-C stops the workers at
once and keeps the points already finished (:func:`run_points`); so does
SIGTERM, what ``kill``, ``timeout`` and a batch scheduler send.
"""

from __future__ import annotations

import ctypes
import itertools
import multiprocessing
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from dmvx.errors import InputError
from dmvx.exitstatus import Interrupted
from dmvx.scenario import Scenario
from dmvx.yamlfile import YamlDocument
from sim.profile import CostProfile
from sim.progress import Poller, Progress
from sim.report import PointReport, Timeline
from sim.results import point_report
from sim.runner import Watch, simulate

#: prctl option: the signal a process gets when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1

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
        raise InputError(
            message,
            field=f"{field}={_show(value)}" if field == parameter else f"{parameter}={_show(value)}: {field}",
            file=where,
            expected=err.expected,
        ) from None
    except LookupError as exc:
        raise InputError(str(exc), field=parameter, file=where) from None
    return point.resolved()


def _show(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def expand(
    scenario: Scenario, extra: Sequence[tuple[str, list[Any]]]
) -> tuple[list[tuple[str, list[Any]]], list[Point]]:
    """The dimensions and the points of a run (see the module docstring)."""
    own = scenario.sweeps
    dims: list[tuple[str, list[Any]]] = [(sweep.parameter, list(sweep.values)) for sweep in own]
    dims.extend((p, list(v)) for p, v in extra)
    swept = len(dims)
    if scenario.repeat is not None:  # repetitions vary fastest: a point's runs are neighbours
        dims.extend(scenario.repeat.dimensions(scenario.seed))
    base = scenario.model_copy(update={"sweep": None, "repeat": None})
    if not dims:
        return dims, [Point({}, base)]
    points = []
    for combo in itertools.product(*(values for _, values in dims)):
        current = base
        labels: dict[str, Any] = {}
        for (parameter, _), value in zip(dims, combo):
            where = "sweep" if len(labels) < len(own) else "--set" if len(labels) < swept else "repeat"
            current = set_value(current, parameter, value, where)
            labels[parameter] = value
        points.append(Point(labels, current))
    return dims, points


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


def _timeline(exp: Any) -> Timeline:
    """Downsampled progress of every variant: (time ns, compared calls)."""
    mvx = exp.mvx
    lines = {}
    times = mvx.leader_times
    step = max(1, len(times) // TIMELINE_POINTS)
    lines["leader"] = [(times[i], i + 1) for i in range(0, len(times), step)]
    for v in mvx.variants[1:]:
        step = max(1, len(v.samples_t) // TIMELINE_POINTS)
        lines[f"follower {v.index}"] = [(v.samples_t[i], v.samples_seq[i]) for i in range(0, len(v.samples_t), step)]
    return Timeline(lines, mvx.attack_time, mvx.verdict_time)


def run_point(
    args: tuple[dict[str, Any], dict[str, Any], CostProfile, bool], watch: Watch | None = None
) -> tuple[PointReport, Timeline | None]:
    """Run one point (in a worker): its report and, if asked, its timeline."""
    scenario_data, labels, profile, timeline = args
    scenario = Scenario.model_validate(scenario_data)
    exp = simulate(scenario, profile, watch)
    return point_report(scenario, exp, labels), (_timeline(exp) if timeline else None)


def _indexed(job: tuple[int, tuple[dict[str, Any], dict[str, Any], CostProfile, bool]]) -> tuple[int, Any]:
    index, args = job
    return index, run_point(args)


def _worker_start(parent: int) -> None:
    """Workers leave Ctrl-C to the parent: it stops them at once (terminate),
    where a worker interrupted by itself would print a traceback. The
    parent's SIGTERM handler (:func:`_terminate_as_interrupt`) is undone: a
    worker is forked with it, and terminate ends workers with SIGTERM.

    A parent that cannot stop them (``kill -9``, the OOM killer) must not
    leave them computing for minutes with nobody to read the result: on
    Linux the kernel kills a worker when its parent dies (``PR_SET_PDEATHSIG``),
    and a worker whose parent died before that was set ends at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While points run, SIGTERM stops them as Ctrl-C does: the points
    finished are kept and the status is 130. Without this, SIGTERM's default
    action ends the process at once, its finished points lost (and a sweep's
    workers orphaned until they finish). A handler someone else installed,
    or SIGTERM ignored, is left alone; so is any thread but the main one
    (only it may set handlers)."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_points(
    points: Sequence[Point],
    profile: CostProfile,
    *,
    timeline: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> list[tuple[PointReport, Timeline | None]]:
    """Run every point, in parallel when there are several; results in point order.

    Ctrl-C (or SIGTERM) stops every worker at once and raises
    :class:`~dmvx.exitstatus.Interrupted` whose ``partial`` is the results of
    the points finished so far (in point order), instead of waiting for the
    points under way to finish."""
    with _terminate_as_interrupt():
        return _run_points(points, profile, timeline=timeline, workers=workers, progress=progress)


def _run_points(
    points: Sequence[Point],
    profile: CostProfile,
    *,
    timeline: bool,
    workers: int | None,
    progress: Progress | None,
) -> list[tuple[PointReport, Timeline | None]]:
    jobs = [(p.scenario.model_dump(mode="json"), p.labels, profile, timeline) for p in points]
    if len(jobs) == 1:
        if progress is None:
            return [run_point(jobs[0])]
        try:
            with Poller(progress) as poller:
                return [run_point(jobs[0], poller.watch)]
        except KeyboardInterrupt:
            raise Interrupted([], "0 of 1 point") from None
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    done: dict[int, tuple[PointReport, Timeline | None]] = {}
    pool = multiprocessing.Pool(workers, initializer=_worker_start, initargs=(os.getpid(),))
    try:
        finished = pool.imap_unordered(_indexed, enumerate(jobs))
        while len(done) < len(jobs):
            try:
                index, result = finished.next(timeout=Poller.seconds)
            except multiprocessing.TimeoutError:
                pass
            else:
                done[index] = result
            if progress is not None:
                progress.update(len(done), len(jobs))
    except KeyboardInterrupt:
        pool.terminate()
        raise Interrupted([done[i] for i in sorted(done)], f"{len(done)} of {len(jobs)} points") from None
    except BaseException:
        pool.terminate()
        raise
    pool.close()
    pool.join()
    return [done[i] for i in range(len(jobs))]
