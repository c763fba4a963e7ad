"""Running the modes for a checker: by module name, only when asked, once per question.

A checker recomputes the truth by running what the student ran: sim mode on a
scenario (with ``--set``-style overrides), real mode on emulated hosts, or
``dmvx run`` on a program. It reaches each through the same entry functions
``dmvx/cli.py`` calls (docs/cli.md, "Mode entry contract"), found by the
same loader (:mod:`dmvx.modeloader`) when first needed, and reads their
results through ``to_json()`` -- the document ``--json`` prints, so a
checker sees exactly what the student sees.

Several tasks of a lab often read the same run; :class:`Modes` keeps each
result for the length of one ``dmvx lab check``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dmvx import modeloader
from dmvx.lab.model import NeedsRoot

SIM = modeloader.SIM_RUN
REAL = modeloader.REAL_RUN
PROGRAM = modeloader.REAL_PROGRAM


def _yaml_text(value: Any) -> str:
    """A value as ``--set`` takes it (YAML text). JSON is YAML, and quotes
    every string, so ``"2ms"`` stays a string and a mapping stays one."""
    return json.dumps(value)


class Modes:
    """The modes, as one ``dmvx lab check`` uses them (results cached)."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self._cache: dict[tuple[Any, ...], dict[str, Any]] = {}

    def sim(
        self, scenario: Path, overrides: Mapping[str, Any] | None = None, seed: int | None = None
    ) -> dict[str, Any]:
        """``dmvx sim SCENARIO --set K=V... --json``: the whole document.

        ``overrides`` maps a ``--set`` key to a value as it would be written
        in a scenario file (``{"policy.cb.entries": 16}``); a list where the
        field takes one value sweeps it, as on the command line."""
        settings = {key: _yaml_text(value) for key, value in (overrides or {}).items()}
        cache_key = ("sim", str(Path(scenario).resolve()), json.dumps(settings, sort_keys=True), seed)
        if cache_key not in self._cache:
            run = modeloader.load(SIM)
            result = run(Path(scenario), seed=seed, overrides=settings, plot=None, console=self.console)
            self._cache[cache_key] = result.to_json()
        return self._cache[cache_key]

    def sim_point(self, scenario: Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The report of a run that has exactly one point."""
        points: list[dict[str, Any]] = self.sim(scenario, overrides)["points"]
        if len(points) != 1:
            raise ValueError(f"{scenario} with {dict(overrides or {})} ran {len(points)} points, not one")
        return points[0]

    def real(self, scenario: Path) -> dict[str, Any]:
        """``dmvx real --scenario SCENARIO --json`` (root only)."""
        cache_key = ("real", str(Path(scenario).resolve()))
        if cache_key not in self._cache:
            run = modeloader.load(REAL)
            if os.geteuid() != 0:
                raise NeedsRoot("real mode builds hosts in network namespaces; run the check as root")
            result = run(topology=None, scenario=Path(scenario), policy=None, console=self.console)
            self._cache[cache_key] = result.to_json()
        return self._cache[cache_key]

    def program(self, argv: Sequence[str], *, policy: str = "dmvx", variants: int = 2) -> dict[str, Any]:
        """``dmvx run --in-process off --policy P --json -- ARGV`` with
        ``variants`` copies: the labs count stops and skipped calls, which
        are the ptrace path's (a call on the in-process path does not stop),
        so the check runs there whatever ``DMVX_IN_PROCESS`` says."""
        cache_key = ("run", tuple(argv), policy, variants)
        if cache_key not in self._cache:
            run = modeloader.load(PROGRAM)
            result = run(
                [list(argv) for _ in range(variants)],
                policy=policy,
                record=None,
                console=self.console,
                in_process=False,
            )
            self._cache[cache_key] = result.to_json()
        return self._cache[cache_key]
