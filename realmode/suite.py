"""``dmvx suite --mode real|both``: scenario files on emulated hosts, and the
comparison with sim mode.

Every scenario file of the directory (or the one file given) runs in real
mode once per point: per diversity setting for the attack scenarios of
``scenarios/attacks`` (docs/attacks.md), once for a plain scenario. A
setting whose real expectation is ``{skip: why}`` is listed, not run.

An attack scenario's point becomes a :class:`realmode.vuln.experiment.VulnExperiment`:
the vulnerable program of its exploit (:mod:`realmode.vuln.exploits`) built
as the setting's variants (:mod:`realmode.vuln.build`), served by the
leader's host under the scenario's policy, with the workload's requests and
then the exploit coming from the attacker host -- or, for a CONNECTOR attack,
paced requests while the attacker works on the CONNECTOR stream. A plain
scenario runs as ``dmvx real --scenario`` runs it (:mod:`realmode.net.entry`).

Each point is a :class:`dmvx.attacktable.Cell`: expected and found (outcome,
verdict kind, whether the attack reached its goal) and the detection latency
(from the exploit leaving the attacker to the first verdict a monitor
reported). With ``--mode both``, the CLI sets the cells of both modes side
by side (:class:`dmvx.attacktable.BothModesResult`): any (attack, setting)
where sim and real mode found different things is a failure, whatever the
files expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmvx.attacktable import CELL_COLUMNS, Cell, cell_rows, render_cells, setting_label
from dmvx.errors import InputError
from dmvx.exitstatus import ExitStatus, Unavailable, worst
from dmvx.policy import Policy
from dmvx.rows import Rows
from dmvx.scenario import CONNECTOR_ATTACKS, Expect, NotRun, PolicySpec, Scenario, Server
from dmvx.suitefiles import read_suite
from dmvx.topology import load_topology, resolve_topology
from realmode.net import experiment as ex
from realmode.net.entry import machine_run_refusal
from realmode.orchestrator import with_system_files_local
from realmode.vuln import forgery
from realmode.vuln.build import build_variants
from realmode.vuln.experiment import VulnExperiment
from realmode.vuln.exploits import DEFAULT_EXPLOIT, PROGRAM

#: The attacker program's name for each CONNECTOR attack.
STREAM_KIND = {"connector-forgery": "forge", "connector-replay": "replay"}
#: What a CONNECTOR attack's run serves (any target works: its bug is not triggered).
STREAM_PROGRAM = "stack_overflow"
#: Seconds between requests while the attacker works on the CONNECTOR stream.
STREAM_PACE = 0.05
#: Longest one point may run.
POINT_TIMEOUT = 30.0
#: Why a record-forgery cell does not run on machines.
FORGERY_NOT_ON_MACHINES = (
    "a forged in-process ring record is run by dmvx run --in-process on, on this machine, with the "
    "forging library preloaded (realmode/vuln/forgery.py), not through the agents of a topology"
)


def policy_of(spec: PolicySpec) -> Policy:
    """The scenario's policy with real mode's system files local."""
    return with_system_files_local(spec.to_policy())


def _labels(scenario: Scenario, values: Any) -> dict[str, Any]:
    sweeps = scenario.sweeps
    if not sweeps:
        return {}
    if len(sweeps) == 1:
        return {sweeps[0].parameter: values}
    return {sweep.parameter: value for sweep, value in zip(sweeps, values)}


def _expected(expect: Expect | None) -> dict[str, Any] | None:
    if expect is None:
        return None
    return {"verdict": expect.verdict, "kind": expect.kind.value if expect.kind else None, "effect": expect.effect}


def run_point(file: str, point: Scenario, setting: str, console: Any = None) -> Cell:
    """Run one attack scenario point (a setting) and report it as a cell."""
    attack = point.attack
    assert attack is not None and point.variants is not None
    cell = Cell(file=file, attack=point.name or Path(file).stem, kind=attack.kind, setting=setting, mode="real")
    wanted = point.expectation("real")
    if isinstance(wanted, NotRun):
        cell.skip = wanted.skip
        return cell
    cell.expected = _expected(wanted)
    workload = point.workload
    if not isinstance(workload, Server):
        cell.error = f"workload kind {workload.kind!r}: real mode serves requests (kind server)"
        return cell
    if attack.kind == "record-forgery":
        if any(v.host in point.topo.machines() for v in point.variants):
            cell.skip = FORGERY_NOT_ON_MACHINES
            return cell
        return _forgery_cell(cell, point, workload)
    stream = attack.kind in CONNECTOR_ATTACKS
    exploit = attack.exploit or DEFAULT_EXPLOIT.get(attack.kind, "")
    client = workload.client or ""
    program = STREAM_PROGRAM if stream else PROGRAM[exploit]
    source = attack.source or client
    config = ex.Config(
        point.topo,
        policy_of(point.policy),
        [v.host for v in point.variants],
        client,
        ex.Workload(
            requests=workload.requests, body_bytes=int(workload.file_size), pace=STREAM_PACE if stream else 0.0
        ),
        attack=ex.NetAttack(STREAM_KIND[attack.kind] if stream else "exploit", source, target=attack.target),
        native=False,
        measure_rtt=False,
        stall_timeout=float(point.policy.stall_timeout),
        timeout=POINT_TIMEOUT,
        seed=point.seed,
        scenario=point.name,
        program_name=program,
    )
    refusal = machine_run_refusal(config)
    if refusal is not None:
        cell.skip = refusal
        return cell
    try:
        builds = build_variants(program, point.variants)
    except Unavailable as problem:
        cell.error = str(problem)
        return cell
    result = VulnExperiment(
        config, builds, exploit or "stack-overflow", benign=max(0, workload.requests - 1), console=console
    ).run()
    return _cell_of(cell, result, stream)


def _forgery_cell(cell: Cell, point: Scenario, workload: Server) -> Cell:
    """A record-forgery point: the in-process path on this machine, with the
    forging library preloaded, not through the topology's agents
    (:mod:`realmode.vuln.forgery`)."""
    assert point.variants is not None
    try:
        builds = build_variants(forgery.PROGRAM, point.variants)
    except Unavailable as problem:
        cell.error = str(problem)
        return cell
    found = forgery.run(builds, workload.requests, point.policy.preset, timeout=POINT_TIMEOUT)
    cell.outcome = found.outcome
    cell.verdict = found.verdict
    cell.detail = found.detail
    cell.effect = found.effect
    cell.error = found.error
    cell.details = {
        "paths": list(found.paths),
        "verdict_calls": found.verdict_calls,
        "ran_ahead": list(found.ran_ahead),
    }
    return cell


def _cell_of(cell: Cell, result: ex.NetResult, stream: bool) -> Cell:
    outcome = result.outcome
    report = result.attack or {}
    cell.outcome = result.outcome_label
    verdict = result.verdict
    cell.verdict = verdict.kind.value if verdict is not None else None
    cell.detail = verdict.summary() if verdict is not None else ""
    cell.effect = None if stream else report.get("effect")
    cell.latency_s = detection_latency(result)
    cell.details = {
        "run_id": result.run_id,
        "injected": report.get("injected"),
        "answer": report.get("answer"),
        "verdict_calls": verdict.to_dict()["calls"] if verdict is not None else None,
        # Which path each variant's replicated calls took (DMVX_IN_PROCESS).
        "paths": [v.get("in_process", {}).get("path", "ptrace") for v in result.variants],
    }
    if outcome is None:
        cell.error = "the run did not start"
    elif outcome.error or outcome.unsupported:
        cell.error = outcome.error or outcome.unsupported
    elif not report.get("injected"):
        cell.error = f"the attack was never delivered: {report.get('error') or 'no word from the attacker'}"
    return cell


def detection_latency(result: ex.NetResult) -> float | None:
    """Seconds from the injection that caused the verdict (the last one
    before it: a stream attacker retries when the real sender won the race)
    to the first verdict a monitor reported (both ``time.monotonic()``)."""
    outcome, report = result.outcome, result.attack or {}
    if result.verdict is None or outcome is None or not outcome.reported_at:
        return None
    verdict_at = min(outcome.reported_at.values())
    times = report.get("injections")
    if times is None:
        times = [e["time"] for e in report.get("events", []) if e.get("event") == "injected"]
    before = [t for t in times if t <= verdict_at]
    return verdict_at - max(before) if before else None


def _plain_cell(file: str, path: Path, scenario: Scenario, console: Any) -> Cell:
    """A scenario without diversity settings, run as ``dmvx real --scenario``."""
    from realmode.net.entry import scenario_config

    attack = scenario.attack
    cell = Cell(
        file=file,
        attack=scenario.name or path.stem,
        kind=attack.kind if attack else "-",
        setting="-",
        mode="real",
        expected=_expected(scenario.expect),
    )
    try:
        config = scenario_config(path, None, None, loaded=scenario)
    except Unavailable as why:
        cell.skip = str(why)
        return cell
    refusal = machine_run_refusal(config)
    if refusal is not None:
        cell.skip = refusal
        return cell
    result = ex.NetExperiment(config, console=console).run()
    return _cell_of(cell, result, stream=attack is None or attack.kind in CONNECTOR_ATTACKS)


def suite(directory: Path, *, console: Any, topology: str | None = None) -> RealSuiteResult:
    """Run every scenario of ``directory`` (or the scenario file it names) --
    each on ``topology`` (a name or a file) instead of its own, if given. A
    topology with machines reached over SSH is checked first as ``dmvx real``
    checks it (:func:`realmode.remote.refuse_unless_ready`): a failed check
    runs nothing."""
    topo_path = None
    if topology is not None:
        topo_path = Path(topology) if Path(topology).is_file() else resolve_topology(topology)
        topo = load_topology(topo_path)
        if topo.machines():
            from realmode.remote import refuse_unless_ready

            refuse_unless_ready(topo, topology)
    cells: list[Cell] = []
    errors: list[tuple[str, str]] = []
    for found in read_suite(Path(directory), topo_path):
        file, path, scenario = str(found.path), found.path, found.scenario
        if scenario is None:
            errors.append((file, str(found.error)))
            continue
        try:
            if scenario.diversity is None:
                console.print(f"[dim]real: {file}[/dim]")
                cells.append(_plain_cell(file, path, scenario, console=None))
                continue
            for values, point in scenario.sweep_points():
                setting = setting_label(_labels(scenario, values))
                console.print(f"[dim]real: {file} {setting}[/dim]")
                cells.append(run_point(file, point, setting))
        except InputError as problem:
            errors.append((file, str(problem)))
    if not cells and not errors:
        raise InputError(
            f"no scenario files in {directory}", file=str(directory), expected="a directory with scenario .yml files"
        )
    return RealSuiteResult(str(directory), cells, errors)


@dataclass
class RealSuiteResult:
    """The :class:`dmvx.output.Result` of ``dmvx suite --mode real``."""

    directory: str
    cells: list[Cell]
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, message)

    @property
    def exit_status(self) -> ExitStatus:
        statuses = [ExitStatus.USAGE for _ in self.errors]
        statuses += [ExitStatus.ATTACK_MISSED for c in self.cells if c.as_expected is False]
        return worst(statuses)

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "mode": "real",
            "cells": [c.to_json() for c in self.cells],
            "errors": [{"file": f, "error": e} for f, e in self.errors],
            "exit_status": self.exit_status.label,
        }

    def rows(self) -> Rows:
        """``--format``: one row per cell (:func:`dmvx.attacktable.cell_rows`),
        then a row per file that could not run, with its ``error``."""
        errors = [{"file": f, "error": e} for f, e in self.errors]
        return cell_rows(self.cells) + Rows.from_records(CELL_COLUMNS, errors)

    def render(self, console: Any) -> None:
        render_cells(self.cells, console, f"attacks in {self.directory}, real mode")
        for file, message in self.errors:
            console.print(f"{file}: {message}", style="red", markup=False)

    def attack_cells(self) -> list[Cell]:
        return self.cells

    def problems(self) -> list[str]:
        return [f"{file}: {message}" for file, message in self.errors]
