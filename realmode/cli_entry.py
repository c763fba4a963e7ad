"""Real mode's entry points for the ``dmvx`` command (see dmvx/cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from realmode.orchestrator import DEFAULT_STALL_TIMEOUT, Interrupted, RunResult, make_policy, run


def run_program(
    variants: list[list[str]],
    *,
    policy: str,
    record: Path | None,
    console: Any,
    as_json: bool = False,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    routes: dict[str, str] | None = None,
    in_process: bool | None = None,
    summary: bool = False,
    placement: str = "auto",
) -> RunResult:
    """``dmvx run``: the variants under ptrace monitors on this machine.

    With ``--json`` (``as_json``) the JSON document owns stdout, so the
    program's stdout goes to stderr (docs/realmode.md). ``routes`` are
    ``--route`` overrides of the preset's routing; ``summary`` (``--summary``)
    counts the calls per route; ``placement`` (``--placement``) is
    :func:`realmode.orchestrator.placement`'s. A run interrupted by
    Ctrl-C or SIGTERM is reported too (status interrupted, figures so far)."""
    chosen = make_policy(policy).with_overrides(routes) if routes else policy
    try:
        return run(
            variants,
            chosen,
            stdout_to_stderr=as_json,
            record=record,
            stall_timeout=stall_timeout,
            in_process=in_process,
            summary=summary,
            place=placement,
        )
    except Interrupted as stop:
        return stop.result


def real(*, topology: str | None, scenario: Path | None, policy: str | None, console: Any, **options: Any) -> Any:
    """``dmvx real``: variants on emulated hosts (realmode/net, docs/realmode-net.md).
    ``options``: server, requests, sample, record (:func:`realmode.net.entry.real`)."""
    from realmode.net.entry import real as real_on_hosts

    return real_on_hosts(topology=topology, scenario=scenario, policy=policy, console=console, **options)


def doctor(*, topology: str, console: Any) -> Any:
    """``dmvx doctor --topology FILE``: each machine of the topology probed
    over SSH and judged (:mod:`realmode.remote`, :mod:`dmvx.hostcheck`)."""
    from realmode.remote import doctor_file

    return doctor_file(topology)


def suite(directory: Path, *, console: Any, topology: str | None = None) -> Any:
    """``dmvx suite --mode real``: every scenario of ``directory`` on emulated
    hosts -- or on ``topology`` (``--topology``), whose variant hosts may be
    machines reached over SSH -- each attack scenario once per diversity
    setting (realmode/suite.py)."""
    from realmode.suite import suite as run_suite

    return run_suite(directory, console=console, topology=topology)


def calibrate(*, output: Path | None, measure: bool, repeat: int, console: Any) -> Any:
    """``dmvx calibrate``: measure this machine's costs into a cost profile
    (realmode/calibrate/). Without ``measure``, the profile at ``output``
    (or the default) must exist already: ``--check-only`` checks it."""
    from dmvx.calibration import CalibrationResult
    from realmode import calibrate as cal

    path = output if output is not None else cal.DEFAULT_PROFILE
    measurements = profile = None
    if measure:
        measurements = cal.measure(repeat=repeat, note=_note(console))
        profile = cal.profile_document(measurements)
        cal.write_profile(profile, path, measurements)
    elif not path.is_file():
        from dmvx.errors import InputError

        raise InputError(f"{path}: no such profile; run dmvx calibrate first, or name one with --output")
    from dmvx.calibration import profile_prices_in_process

    return CalibrationResult(path, measurements, profile, in_process=profile_prices_in_process(path))


def calibration_measurements(
    *, directory: Path, repeat: int, server: bool, console: Any, in_process: bool = False
) -> Any:
    """``dmvx calibrate --check``, real mode's half: the microbenchmarks and,
    with ``server``, lighttpd measured natively and under each policy
    (a :class:`dmvx.calibration.RealMeasurements`); the run recorded for
    sim goes into ``directory``. ``in_process``: the profile prices the
    in-process path, so dmvx's runs take it."""
    from realmode import calibrate as cal

    return cal.measure_check(directory, repeat=repeat, server=server, note=_note(console), in_process=in_process)


def _note(console: Any) -> Any:
    def note(text: str) -> None:
        console.print(f"dmvx calibrate: {text}", markup=False, highlight=False)

    return note
