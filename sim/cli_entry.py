"""What ``dmvx sim`` and ``dmvx suite --mode sim`` call (see dmvx/cli.py).

``run`` loads the scenario, applies ``--seed`` and ``--set`` overrides, expands
sweeps, runs every point (in parallel, with progress on stderr; Ctrl-C
keeps the points finished, :class:`~dmvx.exitstatus.Interrupted`), holds each to its ``expect`` (the
verdict and, for an attack, its ``effect``, by :func:`sim.attacks.check_effects`
as the suite does), draws ``--plot`` and returns a
:class:`~sim.results.SimResult`. ``suite`` does the same for every scenario
file of a directory, as :func:`dmvx.suitefiles.read_suite` read them (once).

``--set KEY=VALUE``: KEY is a path into the scenario as a ``sweep.parameter``
writes it (``policy.cb.entries``, ``topology.links[*].delay``,
``variants[1].arch``); ``links.A-B.FIELD`` is short for the link between
nodes A and B. VALUE is read as YAML (``5ms``, ``64``, ``true``, ``[a, b]``).
A list for a field that is not a list sweeps the field: ``--set
'policy.preset=[dmon, dmvx]'`` runs every point under both presets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dmvx.attacktable import Cell, render_cells
from dmvx.errors import InputError
from dmvx.exitstatus import Interrupted
from dmvx.scenario import Scenario, Trace, load_scenario
from dmvx.suitefiles import read_suite
from dmvx.trace import read_trace
from sim.attacks import check_effects, sim_cells
from sim.profile import load_profile
from sim.progress import Progress
from sim.report import PointReport
from sim.results import SimResult, SuiteEntry, SuiteResult
from sim.sweep import expand, run_points, set_value

if TYPE_CHECKING:
    from rich.console import Console

_LINK_KEY = re.compile(r"^links\.([A-Za-z][A-Za-z0-9_]*)-([A-Za-z][A-Za-z0-9_]*)\.(.+)$")


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def _parameter(key: str, scenario: Scenario) -> str:
    """Translate the ``links.A-B.FIELD`` shorthand into a scenario path."""
    match = _LINK_KEY.match(key)
    if match is None:
        return key
    a, b, rest = match.groups()
    for i, link in enumerate(scenario.topo.links):
        if {link.a, link.b} == {a, b}:
            return f"topology.links[{i}].{rest}"
    pairs = ", ".join(f"{link.a}-{link.b}" for link in scenario.topo.links)
    raise InputError(
        f"no link between {a!r} and {b!r} in topology {scenario.topo.name!r}",
        file="--set",
        field=key,
        expected=f"one of: {pairs}",
    )


_SWEEP_KEY = re.compile(r"^sweep(?:\[(\d+)\])?(?:\.(parameter|values))?$")


def _with_sweep(scenario: Scenario, key: str, value: Any) -> Scenario:
    """``--set sweep.values=...`` (one sweep) or ``sweep[N].values=...`` (the
    N-th sweep of a grid), likewise ``.parameter``: edit the sweep itself."""
    match = _SWEEP_KEY.match(key)
    data = scenario.model_dump(mode="json")
    sweeps: Any = data.get("sweep")  # JSON: a list (a grid), one sweep's dict, or None
    grid = isinstance(sweeps, list)
    if match is None or (match.group(2) is None and not (key == "sweep" and isinstance(value, (dict, list)))):
        raise InputError(
            f"cannot set {key!r}",
            file="--set",
            field=key,
            expected="sweep.parameter=PATH, sweep.values=[...] or sweep[N].values=[...] for a grid",
        )
    if key == "sweep":
        data["sweep"] = value
    else:
        index, field = match.group(1), match.group(2)
        if grid and index is None:
            raise InputError(
                f"the scenario sweeps a grid of {len(sweeps)}",
                file="--set",
                field=key,
                expected=f"sweep[N].{field} with N from 0 to {len(sweeps) - 1}",
            )
        if grid:
            if int(index) >= len(sweeps):
                raise InputError(
                    f"the grid has {len(sweeps)} sweeps",
                    file="--set",
                    field=key,
                    expected=f"N from 0 to {len(sweeps) - 1}",
                )
            sweeps[int(index)] = dict(sweeps[int(index)], **{field: value})
        elif index not in (None, "0"):
            raise InputError(
                f"the scenario has {'one sweep' if sweeps else 'no sweep'}",
                file="--set",
                field=key,
                expected=f"sweep.{field}=...",
            )
        else:
            data["sweep"] = dict(sweeps or {}, **{field: value})
    return _revalidated(data, key)


def _revalidated(data: dict[str, Any], key: str) -> Scenario:
    """``data`` as a scenario again; a problem is one ``--set`` line naming ``key``."""
    from pydantic import ValidationError

    from dmvx.yamlfile import YamlDocument

    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        err = YamlDocument("--set", data, {}).validation_error(exc)
        raise InputError(err.message, file="--set", field=key, expected=err.expected) from None


def _with_repeat(scenario: Scenario, key: str, value: Any) -> Scenario:
    """``--set repeat.seeds=5`` or ``repeat.at_calls=[...]`` (``--seeds``,
    ``--at-calls``): edit the scenario's repetitions."""
    data = scenario.model_dump(mode="json")
    if key == "repeat":
        data["repeat"] = value
    else:
        data["repeat"] = dict(data.get("repeat") or {}, **{key.removeprefix("repeat."): value})
    return _revalidated(data, key)


def _pin(scenario: Scenario, parameter: str) -> Scenario:
    """``--set P=V`` on a parameter the file sweeps pins it: that sweep goes."""
    kept = [sweep for sweep in scenario.sweeps if sweep.parameter != parameter]
    if len(kept) == len(scenario.sweeps):
        return scenario
    return scenario.model_copy(update={"sweep": kept if len(kept) > 1 else (kept[0] if kept else None)})


def prepare(
    scenario_path: Path, *, seed: int | None, overrides: dict[str, str], loaded: Scenario | None = None
) -> tuple[Scenario, list[tuple[str, list[Any]]]]:
    """The scenario with overrides applied, and the extra sweep dimensions
    (``loaded``: the scenario of ``scenario_path``, when already read)."""
    scenario = loaded if loaded is not None else load_scenario(scenario_path)
    if seed is not None:
        if seed < 0:
            raise InputError(f"--seed {seed} is negative", expected="a seed of 0 or more")
        scenario = scenario.model_copy(update={"seed": seed})
    extra: list[tuple[str, list[Any]]] = []
    for key, text in overrides.items():
        value = _parse_value(text)
        if key == "sweep" or key.startswith(("sweep.", "sweep[")):
            scenario = _with_sweep(scenario, key, value)
            continue
        if key == "repeat" or key.startswith("repeat."):
            scenario = _with_repeat(scenario, key, value)
            continue
        parameter = _parameter(key, scenario)
        scenario = _pin(scenario, parameter)
        own = scenario.sweep
        try:
            scenario = set_value(scenario, parameter, value, "--set").model_copy(update={"sweep": own})
        except InputError as as_one_value:
            if not isinstance(value, list) or not value:
                raise
            # A list where the field takes one value: a sweep over it. Check
            # every value now, so a bad one fails before anything runs. If
            # not even the first fits, the list was meant as one value.
            try:
                set_value(scenario, parameter, value[0], "--set")
            except InputError:
                raise as_one_value from None
            for item in value[1:]:
                set_value(scenario, parameter, item, "--set")
            extra.append((parameter, value))
    if isinstance(scenario.workload, Trace):
        read_trace(scenario.workload.path)  # a bad trace fails here, naming its line, before any run
    return scenario, extra


def run(
    scenario: Path,
    *,
    seed: int | None,
    overrides: dict[str, str],
    plot: Path | None,
    console: Console,
    loaded: Scenario | None = None,
    per_run: bool = False,
    timeline: bool = False,
) -> SimResult:
    """``per_run``: with repetitions, rows are one per run rather than the
    summary; ``timeline``: the plot gets a panel of one run's progress."""
    if plot is not None:
        from sim.plot import check_path

        check_path(plot)  # a file it cannot draw fails before anything runs
    prepared, extra = prepare(scenario, seed=seed, overrides=overrides, loaded=loaded)
    profile = load_profile(prepared.cost_profile, relative_to=Path(scenario).parent)
    dimensions, points = expand(prepared, extra)
    repeats = [p for p, _ in prepared.repeat.dimensions(prepared.seed)] if prepared.repeat is not None else []

    def result_of(reports: list[PointReport]) -> SimResult:
        name = prepared.name or Path(scenario).stem
        return SimResult(name, str(scenario), profile, dimensions, reports, repeats=repeats, per_run=per_run)

    try:
        with Progress("simulating", len(points), "points") as progress:
            results = run_points(points, profile, timeline=plot is not None and timeline, progress=progress)
    except Interrupted as stopped:
        done = stopped.partial if isinstance(stopped.partial, list) else []  # run_points' finished points
        finished = check_effects([r for r, _ in done], prepared)
        raise Interrupted(result_of(finished) if finished else None, stopped.done) from None
    reports = check_effects([r for r, _ in results], prepared)
    result = result_of(reports)
    if plot is not None:
        from sim.plot import draw

        try:
            draw(plot, result, [t for _, t in results] if timeline else None)
        except OSError as exc:
            raise InputError(f"cannot write the plot: {exc.strerror or exc}", file=str(plot)) from None
        result.plot = str(plot)
    return result


@dataclass
class AttackSuiteResult(SuiteResult):
    """A sim suite that also draws its attacks as the attack x diversity
    table (:func:`dmvx.attacktable.render_cells`) and holds every attack point to
    the effect its scenario expects."""

    scenarios: dict[str, Scenario] = field(default_factory=dict)

    def attack_cells(self) -> list[Cell]:
        out: list[Cell] = []
        for entry in self.results:
            if entry.result is not None:
                out += sim_cells(entry.file, entry.result.points, self.scenarios.get(entry.file))
        return out

    def render(self, console: Console) -> None:
        super().render(console)
        cells = self.attack_cells()
        if cells:
            render_cells(cells, console, f"attacks in {self.directory}, sim mode")

    def problems(self) -> list[str]:
        return [entry.error for entry in self.results if entry.error is not None]


def suite(directory: Path, *, console: Console) -> SuiteResult:
    """Run every scenario file in ``directory`` (sorted by name), or the one
    scenario file ``directory`` names."""
    results: list[SuiteEntry] = []
    scenarios: dict[str, Scenario] = {}
    files = read_suite(directory)
    for found in files:
        file = str(found.path)
        console.print(f"[dim]sim: {file}[/dim]")
        if found.scenario is None:
            results.append(SuiteEntry(file, None, str(found.error)))
            continue
        try:
            result = run(found.path, seed=None, overrides={}, plot=None, console=console, loaded=found.scenario)
        except InputError as exc:
            results.append(SuiteEntry(file, None, str(exc)))
            continue
        except Interrupted as stopped:
            # What is finished is reported: the files before, and this one's points.
            complete = len(results)
            if isinstance(stopped.partial, SimResult):
                scenarios[file] = found.scenario
                results.append(SuiteEntry(file, stopped.partial, None))
            partial = AttackSuiteResult(str(directory), results, scenarios) if results else None
            raise Interrupted(partial, f"{complete} of {len(files)} scenario files ({file}: {stopped.done})") from None
        scenarios[file] = found.scenario
        results.append(SuiteEntry(file, result, None))
    if not results:
        raise InputError(
            f"no scenario files in {directory}", file=str(directory), expected="a directory with scenario .yml files"
        )
    return AttackSuiteResult(str(directory), results, scenarios)


def calibration_predictions(profile: Path, asks: list[Any], *, console: Console) -> list[Any]:
    """``dmvx calibrate --check``, sim's half: a
    :class:`dmvx.calibration.Predicted` for each
    :class:`~dmvx.calibration.PredictionAsk`, run with the cost profile at
    ``profile`` (:mod:`sim.calibration`)."""
    from sim.calibration import predictions

    return predictions(profile, asks)
