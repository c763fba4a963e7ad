"""dmvx from Python: run a scenario or a sweep, get typed rows back.

For notebooks and scripts, the same runs as ``dmvx sim`` and ``dmvx suite``
without a shell or a CSV file in between::

    from dmvx import api

    run = api.simulate("scenarios/sweep-delay.yml", set={"policy.preset": ["dmon", "dmvx"]})
    run.rows            # Rows: one per point, parameters and measures in SI units
    run.rows.unit("mvx_time_s")   # "s"
    df = run.to_pandas()          # with pandas installed (pip install -e '.[analysis]')
    run.plot("delay.pdf")         # the figure --plot draws

Everything is keyword-for-option with the command line (docs/cli.md):
``set`` is ``--set`` (values as Python values: ``["100us", "1ms"]`` sweeps),
``seeds`` and ``at_calls`` are ``--seeds`` and ``--at-calls``. The columns
are those of ``--format`` (docs/cli.md, "Flat rows"). A bad scenario or
value raises :class:`dmvx.errors.InputError` with the one line the command
would print; Ctrl-C raises :class:`dmvx.exitstatus.Interrupted`, whose
``partial`` holds the points finished.

Like the command line, this module reaches sim mode by name
(:mod:`dmvx.modeloader`), and imports neither pandas nor matplotlib until
asked to (the core stays free of them, tests/test_core_purity.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dmvx import modeloader
from dmvx.exitstatus import ExitStatus
from dmvx.rows import Rows

#: The scenario :func:`simulate` runs when given none (as ``dmvx sim`` does).
DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "default.yml"


def _yaml(value: Any) -> str:
    """A Python value as the YAML text ``--set`` takes (``"1ms"``, ``[1, 2]``)."""
    if isinstance(value, str):
        return value
    text: str = yaml.safe_dump(value, default_flow_style=True, width=1 << 20)
    return text.strip().removesuffix("...").strip()


def _console() -> Any:
    """Where a mode's notes to people go from Python: stderr, as from the command."""
    from dmvx.output import stderr_console

    return stderr_console()


@dataclass(frozen=True)
class Simulation:
    """What :func:`simulate` ran: its rows, its summary, its typed points.

    ``result`` is the :class:`sim.results.SimResult` the command prints;
    ``points`` its :class:`sim.report.PointReport` objects, one per run."""

    result: Any

    @property
    def rows(self) -> Rows:
        """One row per run (every seed and attack position its own row)."""
        rows: Rows = self.result.runs()
        return rows

    @property
    def summary(self) -> Rows:
        """One row per point of the sweep: each measure's ``_mean``,
        ``_min``, ``_max`` and ``_ci95`` over its runs (``n`` of them)."""
        rows: Rows = self.result.summary()
        return rows

    @property
    def points(self) -> list[Any]:
        return list(self.result.points)

    @property
    def parameters(self) -> tuple[str, ...]:
        """The swept parameters (the repetitions, ``seed`` and ``attack.at_call``, among them)."""
        return self.rows.parameters

    @property
    def exit_status(self) -> ExitStatus:
        """As ``dmvx sim`` would exit: OK, DIVERGENCE, ATTACK_MISSED."""
        return ExitStatus(self.result.exit_status)

    def to_json(self) -> Any:
        """The ``dmvx sim --json`` document."""
        return self.result.to_json()

    def to_pandas(self, summary: bool = False) -> Any:
        """:attr:`rows` (or :attr:`summary`) as a pandas DataFrame; needs pandas."""
        return (self.summary if summary else self.rows).to_pandas()

    def plot(self, path: str | Path) -> Path:
        """Draw the sweep as ``--plot`` does (.png, .svg or .pdf by suffix) and return the path."""
        from dmvx.errors import InputError

        target = Path(path)
        draw = modeloader.load(modeloader.SIM_PLOT)
        try:
            draw(target, self.result)
        except OSError as exc:
            raise InputError(f"cannot write the plot: {exc.strerror or exc}", file=str(target)) from None
        return target


def simulate(
    scenario: str | Path | None = None,
    *,
    set: Mapping[str, Any] | None = None,  # the --set of the command line
    seed: int | None = None,
    seeds: int | Sequence[int] | None = None,
    at_calls: Sequence[int] | None = None,
) -> Simulation:
    """Run ``scenario`` (a file; default: scenarios/default.yml) in sim mode,
    every point of its sweep and of ``set``'s lists, ``seeds`` and
    ``at_calls`` times over (see the module docstring)."""
    overrides = {key: _yaml(value) for key, value in (set or {}).items()}
    if seeds is not None:
        overrides["repeat.seeds"] = _yaml(seeds if isinstance(seeds, int) else list(seeds))
    if at_calls is not None:
        overrides["repeat.at_calls"] = _yaml(list(at_calls))
    run = modeloader.load(modeloader.SIM_RUN)
    path = Path(scenario) if scenario is not None else DEFAULT_SCENARIO
    result = run(path, seed=seed, overrides=overrides, plot=None, console=_console())
    return Simulation(result)


def suite(directory: str | Path) -> Rows:
    """Run every scenario file of ``directory`` in sim mode (``dmvx suite``)
    and return their rows, one under the other, each with its ``file``."""
    run = modeloader.load(modeloader.SIM_SUITE)
    result = run(Path(directory), console=_console())
    rows: Rows = result.rows()
    return rows
