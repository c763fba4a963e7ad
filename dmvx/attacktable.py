"""The attack table: one attack under one diversity setting in one mode, expected and found.

``dmvx suite`` prints attack x diversity x mode as one table, whichever mode
ran it: sim mode makes its cells from a sim point (:func:`sim.attacks.sim_cells`),
real mode from a run on emulated hosts (:mod:`realmode.suite`). Both use the
:class:`Cell` defined here, so neither mode imports the other; with
``--mode both`` the CLI sets the two suites side by side
(:class:`BothModesResult`), and any (attack, setting) where the modes found
different things is a failure, whatever the files expect.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dmvx.exitstatus import ExitStatus, worst
from dmvx.outcome import Ending, Expectation
from dmvx.rows import SECONDS, TEXT, Column, Rows
from dmvx.verdict import VerdictKind

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class Cell:
    """One attack under one diversity setting in one mode: expected and found."""

    file: str
    attack: str  # the scenario's name
    kind: str  # the attack class
    setting: str  # the diversity setting (or the point's labels)
    mode: str  # sim | real
    expected: dict[str, Any] | None = None  # verdict, kind, effect
    skip: str | None = None  # why this mode does not run it
    outcome: str | None = None  # ok | divergence | missed | rejected | error
    verdict: str | None = None  # the verdict kind
    effect: bool | None = None
    latency_s: float | None = None  # attack to verdict
    detail: str = ""
    error: str | None = None
    #: Mode-specific evidence (real mode: what came back to the attacker,
    #: the calls the verdict names).
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.file, self.setting

    @property
    def as_expected(self) -> bool | None:
        """None when skipped or nothing was expected."""
        if self.skip is not None or self.expected is None:
            return None
        if self.error is not None or self.outcome is None:
            return False
        want = self.expected
        expectation = Expectation(
            Ending(want["verdict"]), None if want.get("kind") is None else VerdictKind(want["kind"]), want.get("effect")
        )
        return expectation.met_by(
            Ending(self.outcome), None if self.verdict is None else VerdictKind(self.verdict), self.effect
        )

    def found(self) -> str:
        """What happened, in the words of ``expect``."""
        if self.skip is not None:
            return "not run"
        if self.error is not None:
            return f"error: {self.error}"
        return describe(self.outcome, self.verdict, self.effect)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_expected"] = self.as_expected
        return data


#: The columns of :func:`cell_rows`.
CELL_COLUMNS = (
    Column("file", TEXT, "the scenario file"),
    Column("attack", TEXT, "the scenario's name"),
    Column("kind", TEXT, "the attack class"),
    Column("setting", TEXT, "the diversity setting"),
    Column("mode", TEXT, "sim or real"),
    Column("expected", TEXT, "the ending the file expects"),
    Column("expected_kind", TEXT, "and the verdict kind"),
    Column("expected_effect", TEXT, "and whether the attack reaches its goal"),
    Column("skip", TEXT, "why this mode does not run it"),
    Column("outcome", TEXT, "ok, divergence, rejected, missed, error"),
    Column("verdict", TEXT, "the verdict's kind"),
    Column("effect", TEXT, "whether the attack reached its goal"),
    Column("latency_s", SECONDS, "from the attack to the verdict"),
    Column("error", TEXT, "why it could not run"),
    Column("as_expected", TEXT, "whether it ended as expected"),
)


def cell_rows(cells: Sequence[Cell]) -> Rows:
    """The attack table as flat rows (``dmvx suite --mode real|both --format``)."""
    records = []
    for c in cells:
        want = c.expected or {}
        records.append(
            {
                **{k: v for k, v in asdict(c).items() if k not in ("expected", "details", "detail")},
                "expected": want.get("verdict"),
                "expected_kind": want.get("kind"),
                "expected_effect": want.get("effect"),
                "as_expected": c.as_expected,
            }
        )
    return Rows.from_records(CELL_COLUMNS, records)


def describe(outcome: str | None, verdict: str | None, effect: bool | None) -> str:
    text = outcome or "-"
    if verdict:
        text += f" ({verdict})"
    if effect is not None:
        text += ", effect" if effect else ", no effect"
    return text


def setting_label(labels: dict[str, Any]) -> str:
    """How a point is named in the table: its setting, else its labels."""
    if set(labels) == {"setting"}:
        return str(labels["setting"])
    return json.dumps(labels, sort_keys=True, separators=(",", ":")) if labels else "-"


def disagreements(sim: Sequence[Cell], real: Sequence[Cell]) -> list[tuple[Cell, Cell, str]]:
    """Every (attack, setting) both modes ran whose findings differ: the
    outcome, the verdict kind or the effect."""
    by_key = {cell.key: cell for cell in sim if cell.skip is None}
    out = []
    for cell in real:
        other = by_key.get(cell.key)
        if other is None or cell.skip is not None:
            continue
        mine = (cell.outcome, cell.verdict, cell.effect)
        theirs = (other.outcome, other.verdict, other.effect)
        if cell.error is not None or mine != theirs:
            out.append((other, cell, f"sim: {other.found()}; real: {cell.found()}"))
    return out


def _expected_text(cell: Cell) -> str:
    if cell.skip is not None:
        return f"skip: {cell.skip}"
    if cell.expected is None:
        return "-"
    return describe(cell.expected["verdict"], cell.expected.get("kind"), cell.expected.get("effect"))


def _latency_text(cell: Cell) -> str:
    if cell.latency_s is None:
        return "-"
    return f"{cell.latency_s * 1e3:.2f} ms"


def render_cells(
    cells: Sequence[Cell], console: Console, title: str, disagree: Sequence[tuple[Cell, Cell, str]] = ()
) -> None:
    """The attack x diversity x mode table, then any disagreement between modes."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in ("attack", "diversity", "mode", "expected", "found", "latency", "status"):
        table.add_column(column, justify="right" if column == "latency" else "left")
    bad = {id(c) for pair in disagree for c in pair[:2]}
    previous = None
    for cell in sorted(cells, key=lambda c: (c.file, _order(c, cells), c.mode != "sim")):
        status = {None: "-", True: "as expected", False: "NOT as expected"}[cell.as_expected]
        if id(cell) in bad:
            status += "; modes disagree"
        style = "red" if cell.as_expected is False or id(cell) in bad else ("dim" if cell.skip else "")
        first = previous != cell.key
        previous = cell.key
        table.add_row(
            cell.attack if first else "",
            cell.setting if first else "",
            cell.mode,
            _expected_text(cell),
            cell.found(),
            _latency_text(cell),
            status,
            style=style,
        )
    console.print(table)
    for _, real, text in disagree:
        console.print(f"DISAGREEMENT {real.attack} / {real.setting}: {text}", style="red", markup=False)


def _order(cell: Cell, cells: Sequence[Cell]) -> int:
    """Rows of a file in the order its settings were first seen."""
    seen: list[str] = []
    for other in cells:
        if other.file == cell.file and other.setting not in seen:
            seen.append(other.setting)
    return seen.index(cell.setting)


@runtime_checkable
class AttackSuite(Protocol):
    """What ``dmvx suite --mode both`` needs of each mode's suite result."""

    @property
    def exit_status(self) -> ExitStatus: ...

    def to_json(self) -> dict[str, Any]: ...

    def attack_cells(self) -> list[Cell]:
        """Every attack point this suite ran (or skipped), as a cell."""
        ...

    def problems(self) -> list[str]:
        """One line per scenario file that could not be run."""
        ...


@dataclass
class BothModesResult:
    """``dmvx suite --mode both``: each mode against its files, and the two
    modes against each other. Made by the CLI, above both modes."""

    directory: str
    sim: AttackSuite
    real: AttackSuite

    @property
    def sim_cells(self) -> list[Cell]:
        return self.sim.attack_cells()

    @property
    def real_cells(self) -> list[Cell]:
        return self.real.attack_cells()

    @property
    def disagreements(self) -> list[tuple[Cell, Cell, str]]:
        return disagreements(self.sim_cells, self.real_cells)

    def compared(self) -> int:
        """How many (attack, setting) pairs both modes ran."""
        return len(
            {c.key for c in self.sim_cells if c.skip is None} & {c.key for c in self.real_cells if c.skip is None}
        )

    @property
    def exit_status(self) -> ExitStatus:
        agree = ExitStatus.ATTACK_MISSED if self.disagreements else ExitStatus.OK
        return worst([ExitStatus(self.sim.exit_status), ExitStatus(self.real.exit_status), agree])

    def to_json(self) -> dict[str, Any]:
        return {
            "sim": self.sim.to_json(),
            "real": self.real.to_json(),
            "agreement": {
                "compared": self.compared(),
                "disagreements": [
                    {"file": real.file, "attack": real.attack, "setting": real.setting, "what": what}
                    for _, real, what in self.disagreements
                ],
            },
        }

    def rows(self) -> Rows:
        """Both modes' cells, one row each (the ``mode`` column tells them apart)."""
        return cell_rows([*self.sim_cells, *self.real_cells])

    def render(self, console: Console) -> None:
        disagree = self.disagreements
        render_cells(
            [*self.sim_cells, *self.real_cells], console, f"attacks in {self.directory}, sim and real mode", disagree
        )
        for mode, part in (("sim", self.sim), ("real", self.real)):
            for problem in part.problems():
                console.print(f"{mode}: {problem}", style="red", markup=False)
        compared = self.compared()
        console.print(
            f"{compared} (attack, setting) pairs run in both modes; "
            + (f"{len(disagree)} disagree" if disagree else "sim and real mode agree on every one"),
            style="red" if disagree else "green",
        )
