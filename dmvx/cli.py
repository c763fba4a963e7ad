"""The ``dmvx`` command: parse, dispatch to a mode, print, exit.

This module decides nothing about MVX. Each command turns its options into
plain values, finds the function of the mode that does the work, calls it and
hands the result to :mod:`dmvx.output`. Modes are imported only when a
command needs them, so ``dmvx --help`` never loads SimPy, scapy or
python-ptrace, and a mode that is not built yet costs nothing but the
UNAVAILABLE status.

Mode entry contract
-------------------
Each mode exposes plain functions in one module, ``sim/cli_entry.py`` or
``realmode/cli_entry.py``. Arguments are plain values (paths are
:class:`pathlib.Path` as the user wrote them); ``console`` is a rich console
on stderr for progress and notes to people. Each returns an
:class:`dmvx.output.Result` (``exit_status``, ``to_json()``,
``render(console)``) and never prints results itself::

    sim.cli_entry.run(scenario: Path, *, seed: int | None,
                      overrides: dict[str, str], plot: Path | None,
                      console) -> Result
    sim.cli_entry.suite(directory: Path, *, console) -> Result
    realmode.cli_entry.real(*, topology: str | None, scenario: Path | None,
                            policy: str, console, **options) -> Result
        (options, each only when given: server, requests, sample, record, summary)
    realmode.cli_entry.run_program(variants: list[list[str]], *, policy: str, as_json: bool,
                                   record: Path | None, console, **options) -> Result
        (options, each only when given: stall_timeout, routes, summary)
    realmode.cli_entry.suite(directory: Path, *, console, topology: str | None = None) -> Result
    realmode.cli_entry.doctor(*, topology: str, console) -> Result
    realmode.cli_entry.calibrate(*, output: Path | None, measure: bool, repeat: int,
                                 console) -> dmvx.calibration.CalibrationResult
    realmode.cli_entry.calibration_measurements(*, directory: Path, repeat: int, server: bool,
                                                console) -> dmvx.calibration.RealMeasurements
    sim.cli_entry.calibration_predictions(profile: Path, asks: list[PredictionAsk], *,
                                          console) -> list[dmvx.calibration.Predicted]

Neither mode imports the other. A command that needs both (``suite --mode
both``, ``calibrate --check``) loads each through :mod:`dmvx.modeloader` and
combines their results here, with the core's types
(:mod:`dmvx.attacktable`, :mod:`dmvx.calibration`).

A mode reports trouble by raising: :class:`dmvx.errors.InputError` for a bad
file (status 2), :class:`dmvx.exitstatus.EnvironmentProblem` for a missing
binary or kernel feature (4), :class:`dmvx.exitstatus.Unavailable` for a part
not built yet (5). Anything else escaping a mode is a bug (70): the user gets
one line and the path of a file with the traceback, never the traceback.

``dmvx real`` and ``dmvx suite --mode real|both`` check for root here, after
the mode is found; ``dmvx run`` leaves that to the mode, since tracing one's
own children needs no root.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from click.decorators import FC

from dmvx import __version__, modeloader, output
from dmvx.attacktable import AttackSuite, BothModesResult
from dmvx.bounds import MAX_REPEAT, MAX_REQUESTS, MAX_SAMPLE, MAX_STALL_TIMEOUT, MAX_VARIANTS
from dmvx.calibration import check_rows
from dmvx.errors import InputError, NotExecutable
from dmvx.exitstatus import EnvironmentProblem, ExitStatus, Interrupted, Unavailable
from dmvx.modeloader import (
    LAB_CHECK,
    LAB_LIST,
    LAB_WATCH,
    REAL_AGENT,
    REAL_CALIBRATE,
    REAL_DOCTOR,
    REAL_MEASURE,
    REAL_PROGRAM,
    REAL_RUN,
    REAL_SUITE,
    SIM_PREDICT,
    SIM_RUN,
    SIM_SUITE,
    VALIDATE,
    ModeEntry,
)
from dmvx.rows import RowFormat

PROG = output.PROG

#: The scenario ``dmvx sim`` runs when given none; ``./run demo`` relies on it.
DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "default.yml"


def _load(ctx: click.Context, entry: ModeEntry) -> Callable[..., Any]:
    """``entry``'s function (:func:`dmvx.modeloader.load`), or
    :class:`Unavailable` naming the command the user typed."""
    return modeloader.load(entry, ctx.command_path)


def _require_root(ctx: click.Context, why: str) -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(f"{ctx.command_path} needs root ({why}); run it as root")


def _parse_overrides(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, str]:
    """``--set a.b=5ms --set c=x`` -> ``{"a.b": "5ms", "c": "x"}``; the last
    of a repeated key wins, so scripts can append to a base command line."""
    overrides: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (e.g. links.h1-s1.delay=5ms)")
        overrides[key.strip()] = value
    return overrides


def _number_list(option: str, *, count: bool) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """``--seeds 5`` (a count, when ``count``) or ``--seeds 1,7,42``: checked
    here, handed on as the YAML value of a ``repeat`` field (``5``, ``[1, 7, 42]``)."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        parts = [part.strip() for part in value.split(",")]
        if not all(part.isdigit() for part in parts):
            shape = "N or A,B,... (whole numbers)" if count else "A,B,... (whole numbers)"
            raise click.BadParameter(f"{value!r} is not {shape}", ctx, param, option)
        if count and len(parts) == 1:
            return parts[0]
        return "[" + ", ".join(parts) + "]"

    return parse


def sim_overrides(overrides: Mapping[str, str], seeds: str | None, at_calls: str | None) -> dict[str, str]:
    """``dmvx sim``'s ``--set`` overrides with ``--seeds`` and ``--at-calls``
    as the ``repeat`` fields they stand for."""
    out = dict(overrides)
    if seeds is not None:
        out["repeat.seeds"] = seeds
    if at_calls is not None:
        out["repeat.at_calls"] = at_calls
    return out


def _parse_routes(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, str]:
    """``--route getrandom=replicate`` -> ``{"getrandom": "replicate"}``: a
    scenario's ``policy.overrides`` for a real run. Names and routes are
    checked here, so a typo is a usage error, not a silent no-op."""
    from dmvx.policy import Route
    from dmvx.syscalls import names

    routes: dict[str, str] = {}
    known = {route.value for route in Route}
    for item in values:
        call, sep, route = (part.strip() for part in item.partition("="))
        if not sep or not call:
            raise click.BadParameter(f"{item!r} is not CALL=ROUTE (e.g. getrandom=replicate)")
        if call not in names():
            raise click.BadParameter(f"{item!r}: {call!r} is not a system call dmvx knows")
        if route not in known:
            raise click.BadParameter(f"{item!r}: route {route!r} is not one of {', '.join(sorted(known))}")
        routes[call] = route
    return routes


def _variant_commands(program: Sequence[str], count: int | None, variant_cmds: Sequence[str]) -> list[list[str]]:
    """The argv of every variant, leader first.

    ``-- PROG ARGS`` alone runs ``--variants`` copies of it (2 by default),
    diversified by the mode. Each ``--variant CMD`` adds a follower running
    CMD (a different build, say ``./prog-m32``); with no PROG the first
    ``--variant`` leads. ``--variants`` must then agree with the count.
    """
    extra: list[list[str]] = []
    for cmd in variant_cmds:
        try:
            argv = shlex.split(cmd)
        except ValueError as exc:
            raise click.BadParameter(f"{cmd!r}: {exc}", param_hint="'--variant'") from None
        if not argv:
            raise click.BadParameter("an empty command", param_hint="'--variant'")
        extra.append(argv)
    if not program and not extra:
        raise click.UsageError("no program given: dmvx run [OPTIONS] -- PROG [ARGS]...")
    if extra:
        variants = ([list(program)] if program else []) + extra
        if count is not None and count != len(variants):
            raise click.UsageError(f"--variants {count} does not match the {len(variants)} variants given")
    else:
        variants = [list(program) for _ in range(count or 2)]
    if len(variants) < 2:
        raise click.UsageError("MVX needs at least two variants: add a --variant CMD")
    if len(variants) > MAX_VARIANTS:
        raise click.UsageError(f"{len(variants)} variants given; at most {MAX_VARIANTS}")
    return variants


@contextlib.contextmanager
def _partial_on_interrupt(as_json: bool, row_format: RowFormat | None = None) -> Iterator[None]:
    """Ctrl-C in a run that finished part of its work: print that part (as
    the run would have, marked interrupted), then stop with status 130."""
    try:
        yield
    except Interrupted as stopped:
        # Interrupted's contract: what reaches the CLI is a mode's result.
        if isinstance(stopped.partial, output.Result):
            output.emit(output.Partial(stopped.partial, stopped.done), as_json=as_json, fmt=row_format)
        raise


def _write_traceback(exc: BaseException) -> str:
    """Save the traceback of a bug where the user can attach it to a report."""
    with tempfile.NamedTemporaryFile(
        "w", prefix="dmvx-crash-", suffix=".txt", delete=False, encoding="utf-8"
    ) as handle:
        handle.write(f"dmvx {__version__}, Python {sys.version.split()[0]}\n\n")
        traceback.print_exception(exc, file=handle)
    return handle.name


def _report_bug(exc: BaseException) -> None:
    summary = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    try:
        where = f"full traceback in {_write_traceback(exc)}"
    except OSError as write_error:
        where = f"and the traceback could not be saved: {write_error}"
    output.error(f"internal error (a bug in dmvx): {summary}; {where}")


def _usage_message(exc: click.ClickException) -> str:
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return exc.format_message()
    return f"{exc.format_message()} (see '{ctx.command_path} --help')"


def _guarded(call: Callable[[], Any]) -> int:
    """Run the command line and turn every way it can end into a status.

    This is the only place an exception becomes a message: one line on
    stderr, never a traceback."""
    try:
        # click returns a command's value, or the code of an early exit such
        # as --help (0); a group run without a command returns None. Only
        # ``dmvx run`` returns a plain int: the program's own exit status.
        code = call() or 0
        return code if isinstance(code, int) and not isinstance(code, bool) else ExitStatus(code)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return ExitStatus.USAGE
    except click.ClickException as exc:
        # click uses 1 for some of its errors (e.g. FileError); 1 means
        # DIVERGENCE here, so every complaint about the command line is 2.
        output.error(_usage_message(exc))
        return ExitStatus.USAGE
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        # click turns Ctrl-C into Abort, the interrupt its cause.
        stopped = exc.__cause__ if isinstance(exc, click.exceptions.Abort) else exc
        done = f" after {stopped.done}" if isinstance(stopped, Interrupted) else ""
        output.note(f"{PROG}: interrupted{done}")
        return ExitStatus.INTERRUPTED
    except NotExecutable as exc:
        output.error(str(exc))
        return ExitStatus(exc.exit_status)
    except InputError as exc:
        output.error(str(exc))
        return ExitStatus.USAGE
    except EnvironmentProblem as exc:
        output.error(str(exc))
        return ExitStatus.ENVIRONMENT
    except Unavailable as exc:
        output.note(str(exc))
        return ExitStatus.UNAVAILABLE
    except OSError as exc:
        if exc.filename is None:
            _report_bug(exc)
            return ExitStatus.INTERNAL
        # A file the command could not read or write (a full disk, a
        # read-only filesystem met late): the user's to fix, not a bug.
        output.error(f"{exc.filename}: {exc.strerror or exc}")
        return ExitStatus.USAGE
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        _report_bug(exc)
        return ExitStatus.INTERNAL


class _DmvxGroup(click.Group):
    """A click group whose ``main`` maps every outcome to an :class:`ExitStatus`.

    Overriding ``main`` (rather than wrapping it in a function) puts the
    mapping in the path of click's test runner too."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        status = _guarded(
            lambda: super(_DmvxGroup, self).main(
                args,
                prog_name or PROG,
                complete_var,
                standalone_mode=False,
                **extra,
            )
        )
        if standalone_mode:
            sys.exit(int(status))
        return status


class _FiniteRange(click.FloatRange):
    """A float range that also refuses ``nan`` (which no comparison with a
    bound catches: ``--stall-timeout nan`` would turn stall detection off)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number", param, ctx)
        return number


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result as JSON on stdout; people's output stays on stderr.",
)
format_option = click.option(
    "--format",
    "row_format",
    type=click.Choice([f.value for f in RowFormat]),
    callback=lambda ctx, param, value: None if value is None else RowFormat(value),
    help="Print flat rows on stdout instead (csv, tsv, or json: an array of flat objects), "
    "numbers in SI base units (seconds, bytes); the columns are in docs/cli.md.",
)


def _one_document(ctx: click.Context, as_json: bool, row_format: RowFormat | None) -> None:
    """``--json`` and ``--format`` both own stdout: refuse the pair."""
    if as_json and row_format is not None:
        raise click.UsageError("--json and --format both write to stdout; give one", ctx)


policy_option = click.option(
    "--policy",
    type=click.Choice(["dmvx", "dmon"]),
    default="dmvx",
    show_default=True,
    help="dmvx: hybrid, asynchronous and selective replication; dmon: every call in lockstep.",
)


def variants_option(help: str) -> Callable[[FC], FC]:
    """``--variants N`` (into ``count``): 2 to MAX_VARIANTS; ``help`` says of what."""
    return click.option("--variants", "count", type=click.IntRange(min=2, max=MAX_VARIANTS), metavar="N", help=help)


summary_option = click.option(
    "-c",
    "--summary",
    is_flag=True,
    help="End with a table of the calls, as strace -c does: per variant, call and route, how many, "
    "how many failed, time stopped and time in the monitors (with --json: a summary list; with --format: "
    "these rows).",
)
record_option = click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Record the variants' calls into FILE (a trace workload for dmvx sim).",
)


@click.group(name=PROG, cls=_DmvxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name=PROG, message="%(prog)s %(version)s")
def cli() -> None:
    """dmvx: a testbed for distributed multi-variant execution.

    Exit status: 0 ok, 1 divergence detected, 2 usage or input error,
    3 attack missed, 4 environment missing (e.g. not root), 5 mode not built
    yet, 70 internal error, 126/127 program cannot be executed / not found,
    130 interrupted.
    """


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option
@click.pass_context
def validate(ctx: click.Context, files: tuple[Path, ...], as_json: bool) -> ExitStatus:
    """Check scenario and topology FILES; report each (every error of a bad one), exit 2 if any is bad."""
    validate_file = _load(ctx, VALIDATE)
    checks = []
    for path in files:
        try:
            checks.append(output.FileCheck(str(path), summary=validate_file(path)))
        except InputError as exc:
            checks.append(output.FileCheck(str(path), errors=tuple(str(e) for e in exc.every())))
    return output.emit(output.Validation(tuple(checks)), as_json=as_json)


@cli.command(name="sim")
@click.argument("scenario", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seed", type=int, help="Seed of the random streams (default: the scenario's).")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_overrides,
    help="Override a scenario field, e.g. --set links.h1-s1.delay=5ms. Repeatable.",
)
@click.option(
    "--seeds",
    metavar="N|A,B,...",
    callback=_number_list("--seeds", count=True),
    help="Repeat every point over N seeds (the scenario's seed and the next N-1) or over these seeds; "
    "tables, rows and plots give the mean, min, max and 95% interval.",
)
@click.option(
    "--at-calls",
    metavar="A,B,...",
    callback=_number_list("--at-calls", count=False),
    help="Repeat every point with the attack at each of these calls (an attack scenario).",
)
@click.option(
    "--per-run",
    is_flag=True,
    help="With --seeds or --at-calls and --format: one row per run instead of one per point.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also draw the sweep into FILE: .png, .svg or .pdf by its suffix.",
)
@click.option(
    "--timeline/--no-timeline",
    default=False,
    help="With --plot: add a panel of how far each variant got over virtual time (one point's run).",
)
@json_option
@format_option
@click.pass_context
def sim_command(
    ctx: click.Context,
    scenario: Path | None,
    seed: int | None,
    overrides: dict[str, str],
    seeds: str | None,
    at_calls: str | None,
    per_run: bool,
    plot: Path | None,
    timeline: bool,
    as_json: bool,
    row_format: RowFormat | None,
) -> ExitStatus:
    """Simulate SCENARIO in virtual time (default: the built-in scenarios/default.yml)."""
    _one_document(ctx, as_json, row_format)
    if timeline and plot is None:
        raise click.UsageError("--timeline is a panel of the plot: give --plot FILE too", ctx)
    overrides = sim_overrides(overrides, seeds, at_calls)
    run = _load(ctx, SIM_RUN)
    if scenario is None:
        if not DEFAULT_SCENARIO.is_file():
            raise click.UsageError(f"the built-in scenario {DEFAULT_SCENARIO} is missing; name a scenario file", ctx)
        scenario = DEFAULT_SCENARIO
    with _partial_on_interrupt(as_json, row_format):
        result = run(
            scenario,
            seed=seed,
            overrides=overrides,
            plot=plot,
            console=output.stderr_console(),
            **({"per_run": True} if per_run else {}),
            **({"timeline": True} if timeline else {}),
        )
    return output.emit(result, as_json=as_json, fmt=row_format)


@cli.command(name="real")
@click.option("--topology", metavar="NAME", help="A topology of topologies/, or a topology file.")
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The scenario to run on it.",
)
@click.option(
    "--policy",
    type=click.Choice(["dmvx", "dmon"]),
    default=None,
    help="dmvx: hybrid, asynchronous and selective replication; dmon: every call in lockstep. "
    "Default: the scenario's preset, or dmvx for the built-in demo.",
)
@click.option(
    "--server",
    type=click.Choice(["lighttpd"]),
    help="Serve Debian's lighttpd (a static tree, checked by digest, then ab) instead of the built-in server.",
)
@click.option(
    "--requests",
    type=click.IntRange(min=1, max=MAX_REQUESTS),
    metavar="N",
    help="Requests from the client host (default: 20 for the built-in server, the scenario's, 1000 for lighttpd).",
)
@click.option(
    "--sample",
    type=click.IntRange(min=0, max=MAX_SAMPLE),
    metavar="N",
    help="With --server: bodies checked against their SHA-256 before the requests (default 100).",
)
@record_option
@summary_option
@json_option
@format_option
@click.pass_context
def real_command(
    ctx: click.Context,
    topology: str | None,
    scenario: Path | None,
    policy: str | None,
    server: str | None,
    requests: int | None,
    sample: int | None,
    record: Path | None,
    summary: bool,
    as_json: bool,
    row_format: RowFormat | None,
) -> ExitStatus:
    """Run a scenario on emulated hosts (Mininet) with real programs. Needs root."""
    _one_document(ctx, as_json, row_format)
    real = _load(ctx, REAL_RUN)
    _require_root(ctx, "it builds hosts in network namespaces and traces their processes")
    options = {"server": server, "requests": requests, "sample": sample, "record": record, "summary": summary or None}
    result = real(
        topology=topology,
        scenario=scenario,
        policy=policy,
        console=output.stderr_console(),
        **{name: value for name, value in options.items() if value is not None},
    )
    return output.emit(result, as_json=as_json, fmt=row_format)


@cli.command(name="run", context_settings={"allow_interspersed_args": False})
@policy_option
@variants_option("How many variants of PROG to run (default 2).")
@click.option(
    "--variant",
    "variant_cmds",
    multiple=True,
    metavar="CMD",
    help="A follower running CMD instead of PROG (e.g. a -m32 build). Repeatable.",
)
@click.option(
    "--stall-timeout",
    type=_FiniteRange(min=0.1, max=MAX_STALL_TIMEOUT),
    metavar="SECONDS",
    help="How long a variant may go without a system call while another waits for it before the run "
    "ends with no-progress (default 2; raise it for programs that compute longer between calls).",
)
@click.option(
    "--route",
    "routes",
    multiple=True,
    metavar="CALL=ROUTE",
    callback=_parse_routes,
    help="Route CALL as ROUTE (lockstep, replicate, local, local-file, predict) whatever the preset says, "
    "as a scenario's policy.overrides do; e.g. getrandom=replicate. Repeatable.",
)
@click.option(
    "--in-process",
    "in_process",
    type=click.Choice(["on", "off"]),
    default=None,
    help="on: replicated calls of dynamically linked x86-64 and i386 variants run through the in-process monitor "
    "(no ptrace stop; dmvx preset only); off: every replicated call stops in the tracer. "
    "Default: off, or DMVX_IN_PROCESS from the environment.",
)
@click.option(
    "--placement",
    type=click.Choice(["auto", "split", "spread", "same", "lockstep", "none"]),
    default=None,
    help="Which CPU each variant's program, monitor and CONNECTOR run on (docs/realmode.md, 'Speed'). "
    "Default auto: split for dmvx (spread on the in-process path), lockstep for dmon; "
    "spread: each variant's side on its own CPU; split on the in-process path: the leader's monitor "
    "beside the CONNECTORs.",
)
@record_option
@summary_option
@json_option
@format_option
@click.argument("program", nargs=-1, type=click.UNPROCESSED, metavar="[--] PROG [ARGS]...")
@click.pass_context
def run_command(
    ctx: click.Context,
    policy: str,
    count: int | None,
    variant_cmds: tuple[str, ...],
    stall_timeout: float | None,
    routes: dict[str, str],
    in_process: str | None,
    placement: str | None,
    record: Path | None,
    summary: bool,
    as_json: bool,
    row_format: RowFormat | None,
    program: tuple[str, ...],
) -> int:
    """Run PROG [ARGS] as several variants under the monitors, on this machine.

    Exits with the program's own status when the variants agree, and with 1
    (divergence) when a verdict stopped them; --json tells the two apart."""
    _one_document(ctx, as_json, row_format)
    run_program = _load(ctx, REAL_PROGRAM)
    variants = _variant_commands(program, count, variant_cmds)
    options: dict[str, Any] = {"stall_timeout": stall_timeout} if stall_timeout is not None else {}
    if routes:
        options["routes"] = routes
    if in_process is not None:
        options["in_process"] = in_process == "on"
    if placement is not None:
        options["placement"] = placement
    if summary:
        options["summary"] = True
    try:
        # Rows own stdout as a JSON document does: the program's output goes to stderr.
        result = run_program(
            variants,
            policy=policy,
            record=record,
            console=output.stderr_console(),
            as_json=as_json or row_format is not None,
            **options,
        )
    except NotExecutable as exc:
        # As a shell says it, with its status; --json still gets a document.
        if as_json:
            output.json_document(
                {"status": ExitStatus(exc.exit_status).label, "program_status": None, "error": str(exc)}
            )
        raise
    status = output.emit(result, as_json=as_json, fmt=row_format)
    if status is ExitStatus.OK:
        # Transparency: when the variants agree, dmvx run ends as the
        # program would have ended natively (as strace and time do).
        return int(getattr(result, "process_exit_code", 0))
    return status


@cli.command(name="suite")
@click.argument("directory", metavar="PATH", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--mode",
    type=click.Choice(["sim", "real", "both"]),
    default="sim",
    show_default=True,
    help="Run the scenarios in simulation, on real programs, or both.",
)
@click.option(
    "--topology",
    metavar="NAME|FILE",
    help="Real mode: run every scenario on this topology instead of its own (say one whose variant "
    "hosts are machines reached over SSH). Its hosts must have the scenarios' host names.",
)
@json_option
@format_option
@click.pass_context
def suite_command(
    ctx: click.Context,
    directory: Path,
    mode: str,
    topology: str | None,
    as_json: bool,
    row_format: RowFormat | None,
) -> ExitStatus:
    """Run every scenario in PATH (a directory, or one scenario file) and check
    each against its expected verdict. With --mode both, also check that the
    two modes found the same for every attack and diversity setting."""
    _one_document(ctx, as_json, row_format)
    if topology is not None and mode == "sim":
        raise click.UsageError("--topology gives real mode's hosts; it needs --mode real or both", ctx)
    # Find every part before running any, so that "both" does not spend
    # minutes in sim only to learn that real mode is missing.
    entries: dict[str, Callable[..., Any]] = {}
    if mode in ("sim", "both"):
        entries["sim"] = _load(ctx, SIM_SUITE)
    if mode in ("real", "both"):
        entries["real"] = _load(ctx, REAL_SUITE)
        _require_root(ctx, "real-mode scenarios run on hosts in network namespaces")
    with _partial_on_interrupt(as_json, row_format):
        parts: Mapping[str, output.Result] = {
            name: suite(
                directory, console=output.stderr_console(), **({"topology": topology} if name == "real" else {})
            )
            for name, suite in entries.items()
        }
    # Both modes side by side: the comparison lives here, above the modes,
    # which never import each other (dmvx/attacktable.py).
    if mode == "both":
        sim_part, real_part = parts["sim"], parts["real"]
        assert isinstance(sim_part, AttackSuite) and isinstance(real_part, AttackSuite)  # what the suites return
        result: output.Result = BothModesResult(str(directory), sim_part, real_part)
    else:
        result = parts[mode]
    return output.emit(result, as_json=as_json, fmt=row_format)


@cli.group(name="lab")
def lab_group() -> None:
    """Teaching labs (docs/labs/): list them, watch a trace, check your answers."""


@lab_group.command(name="list")
@json_option
@click.pass_context
def lab_list_command(ctx: click.Context, as_json: bool) -> ExitStatus:
    """List the labs, what each runs and where its page is (--json: every answer key)."""
    list_labs = _load(ctx, LAB_LIST)
    return output.emit(list_labs(console=output.stderr_console()), as_json=as_json)


@lab_group.command(name="check")
@click.argument("number", type=int, metavar="N")
@click.option(
    "--answers",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Your answers file (YAML). Default: labN-answers.yml in this directory.",
)
@click.option(
    "--task",
    "tasks",
    type=click.IntRange(min=1),
    multiple=True,
    metavar="K",
    help="Check only task K. Repeatable.",
)
@click.option(
    "--sim-only",
    is_flag=True,
    help="Leave out the tasks that run real mode on emulated hosts (they need root and take minutes).",
)
@json_option
@click.pass_context
def lab_check_command(
    ctx: click.Context, number: int, answers: Path | None, tasks: tuple[int, ...], sim_only: bool, as_json: bool
) -> ExitStatus:
    """Check your answers to lab N: a PASS or FAIL line per task, a hint for each failure.

    Exit status: 0 every task passed, 2 the answers file cannot be used, 3 an
    answer is wrong or missing, 4 a task needs root (real mode) or something
    this machine lacks, 5 a mode it needs is not built."""
    check = _load(ctx, LAB_CHECK)
    options = {"sim_only": True} if sim_only else {}
    result = check(number, answers=answers, tasks=tasks, console=output.stderr_console(), **options)
    return output.emit(result, as_json=as_json)


@lab_group.command(name="watch")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--policy",
    type=click.Choice(["dmvx", "dmon"]),
    default=None,
    help="The preset (default: the scenario's, or dmvx for a trace).",
)
@variants_option("How many variants (default 2).")
@click.option(
    "--call",
    "calls",
    multiple=True,
    metavar="NAME",
    help="Show only the events of this system call (its entry, return and messages). Repeatable.",
)
@click.option(
    "--route",
    "routes",
    multiple=True,
    type=click.Choice(["lockstep", "replicate", "local", "local-file", "predict"]),
    help="Show only the calls the broker put on this route. Repeatable.",
)
@click.option("--seq", "seqs", metavar="N|A-B", help="Show only the calls with these sequence numbers (the # column).")
@click.option(
    "--stdout",
    "to_stdout",
    is_flag=True,
    help="Write the events to stdout as plain lines (for grep or less); the summary stays on stderr.",
)
@json_option
@click.pass_context
def lab_watch_command(
    ctx: click.Context,
    file: Path,
    policy: str | None,
    count: int | None,
    calls: tuple[str, ...],
    routes: tuple[str, ...],
    seqs: str | None,
    to_stdout: bool,
    as_json: bool,
) -> ExitStatus:
    """Replay a trace (or a scenario with a trace workload) through the monitors, one line per event.

    Calls are shown as strace shows them (flag names, full paths); --call,
    --route and --seq keep the events of the calls asked for."""
    if to_stdout and as_json:
        raise click.UsageError("--stdout and --json both write to stdout; give one", ctx)
    watch = _load(ctx, LAB_WATCH)
    options: dict[str, Any] = {"calls": calls, "routes": routes, "seqs": seqs, "to_stdout": to_stdout}
    result = watch(
        file,
        policy=policy,
        variants=count,
        console=output.stderr_console(),
        **{name: value for name, value in options.items() if value},
    )
    return output.emit(result, as_json=as_json)


@cli.command(name="calibrate")
@click.option(
    "--output",
    "profile_out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="YML",
    help="Where to write the profile (default: sim/profiles/measured.yml, cost_profile: measured).",
)
@click.option(
    "--check/--no-check",
    default=False,
    help="Also run the microbenchmarks and lighttpd in sim (with the profile) and in real mode, "
    "and print predicted vs measured slowdowns with the error.",
)
@click.option(
    "--check-only",
    is_flag=True,
    help="Check an existing profile (--output or the default) without measuring again.",
)
@click.option(
    "--server/--no-server",
    default=True,
    show_default=True,
    help="With the check: also lighttpd under ab (needs lighttpd and ab).",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1, max=MAX_REPEAT),
    default=5,
    show_default=True,
    help="Runs per measurement (median).",
)
@json_option
@click.pass_context
def calibrate_command(
    ctx: click.Context,
    profile_out: Path | None,
    check: bool,
    check_only: bool,
    server: bool,
    repeat: int,
    as_json: bool,
) -> ExitStatus:
    """Measure this machine's MVX costs (real mode's monitors and CONNECTORs,
    the seccomp filter, wake-ups) and write them as a sim cost profile."""
    calibrate = _load(ctx, REAL_CALIBRATE)
    checking = check or check_only
    if checking:  # both halves of the check found before anything runs
        measure_real, predict = _load(ctx, REAL_MEASURE), _load(ctx, SIM_PREDICT)
    console = output.stderr_console()
    result = calibrate(output=profile_out, measure=not check_only, repeat=repeat, console=console)
    if checking:
        # Real mode measures, sim predicts the same runs; the comparison is
        # made here, above both modes (dmvx/calibration.py).
        with tempfile.TemporaryDirectory(prefix="dmvx-calibrate-") as tmp:
            real = measure_real(
                directory=Path(tmp),
                repeat=repeat,
                server=server,
                console=console,
                in_process=result.in_process,
            )
            result.rows = check_rows(real, lambda asks: predict(result.profile_path, asks, console=console))
    return output.emit(result, as_json=as_json)


@cli.command(name="doctor")
@click.option(
    "--topology",
    required=True,
    metavar="NAME",
    help="A topology of topologies/, or a topology file, whose hosts with ssh: are checked.",
)
@json_option
@click.pass_context
def doctor_command(ctx: click.Context, topology: str, as_json: bool) -> ExitStatus:
    """Check each real machine of a topology over SSH before a run: reachable, the same dmvx
    version, permission to trace, seccomp, architecture and clock offset. One table, then
    one line per problem naming the host and the fix; exit status 4 if there is one.
    dmvx real runs the same check and refuses to start on a failed one."""
    doctor = _load(ctx, REAL_DOCTOR)
    return output.emit(doctor(topology=topology, console=output.stderr_console()), as_json=as_json)


@cli.command(name="agent", hidden=True)
@click.pass_context
def agent_command(ctx: click.Context) -> ExitStatus:
    """One variant's monitor and CONNECTOR on this machine, started over SSH by dmvx real on a
    topology with ssh: hosts (docs/realmode-net.md). It reads its configuration and the run key
    from stdin, reports on stdout, and ends everything it started when stdin closes."""
    agent = _load(ctx, REAL_AGENT)
    return ExitStatus(agent())


def main() -> None:
    """The console script ``dmvx``: run the command line and exit with its status.

    After Ctrl-C the process ends at once, once its output is flushed: the
    interpreter's own teardown (freeing pydantic's schemas and the rest) can
    take a second on a busy machine, and a user who pressed Ctrl-C is owed
    the prompt back. Every ``finally`` has run by then; dmvx registers no
    atexit work."""
    try:
        cli.main(prog_name=PROG)
    except SystemExit as exc:
        if exc.code == ExitStatus.INTERRUPTED:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(ExitStatus.INTERRUPTED)
        raise
