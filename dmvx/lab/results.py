"""What ``dmvx lab list`` and ``dmvx lab check`` hand the CLI (:class:`dmvx.output.Result`).

A check prints one line per task -- ``PASS``, ``FAIL``, ``TODO`` (not
answered), ``ROOT`` (needs root) or ``SKIP`` (cannot run here, or left out
by ``--sim-only``) -- with what
was compared, and a hint under every task that did not pass. The exit status
is the worst of the tasks' (:func:`dmvx.exitstatus.worst`): 0 when every
task passed, 3 when an answer is wrong or missing, 4 when a task needs root
or something the machine lacks, 5 when a mode is not built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dmvx.exitstatus import ExitStatus, worst
from dmvx.lab.model import Lab, Status, TaskOutcome

if TYPE_CHECKING:
    from rich.console import Console

_STYLE = {
    Status.PASS: "bold green",
    Status.FAIL: "bold red",
    Status.NOT_ANSWERED: "bold yellow",
    Status.NEEDS_ROOT: "bold magenta",
    Status.ENVIRONMENT: "bold magenta",
    Status.UNAVAILABLE: "bold magenta",
    Status.SKIPPED: "dim",
}


@dataclass(frozen=True)
class LabCheck:
    """The result of ``dmvx lab check N``."""

    lab: Lab
    answers: str
    outcomes: tuple[TaskOutcome, ...]

    @property
    def exit_status(self) -> ExitStatus:
        return worst(o.status.exit_status for o in self.outcomes)

    @property
    def passed(self) -> int:
        return sum(1 for o in self.outcomes if o.status is Status.PASS)

    def to_json(self) -> dict[str, Any]:
        return {
            "lab": self.lab.number,
            "title": self.lab.title,
            "answers": self.answers,
            "tasks": [
                {
                    "task": o.task,
                    "title": o.title,
                    "status": o.status.value,
                    "detail": o.detail,
                    "hint": o.hint,
                    "keys": list(o.keys),
                }
                for o in self.outcomes
            ],
            "passed": self.passed,
            "total": len(self.outcomes),
            "skipped": sum(1 for o in self.outcomes if o.status is Status.SKIPPED),
            "exit_status": self.exit_status.label,
        }

    def render(self, console: Console) -> None:
        from rich.markup import escape

        console.print(f"[bold]lab {self.lab.number}: {escape(self.lab.title)}[/bold] — answers {escape(self.answers)}")
        for o in self.outcomes:
            label = f"[{_STYLE[o.status]}]{o.status.label}[/]"
            console.print(f"{label} task {o.task} ({escape(o.title)}): {escape(o.detail)}", soft_wrap=True)
            if o.hint and o.status is not Status.PASS:
                console.print(f"     hint: {escape(o.hint)}", soft_wrap=True)
        skipped = sum(1 for o in self.outcomes if o.status is Status.SKIPPED)
        total = len(self.outcomes) - skipped
        tail = "" if self.passed == total else f"; see {self.lab.doc}"
        left = f" ({skipped} real-mode {'task' if skipped == 1 else 'tasks'} not run: --sim-only)" if skipped else ""
        console.print(f"{self.passed}/{total} tasks passed{left}{tail}")


@dataclass(frozen=True)
class LabList:
    """The result of ``dmvx lab list``."""

    labs: tuple[Lab, ...]

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "labs": [
                {
                    "lab": lab.number,
                    "title": lab.title,
                    "summary": lab.summary,
                    "doc": lab.doc,
                    "modes": lab.modes,
                    "needs_root": lab.needs_root,
                    "tasks": [
                        {
                            "task": t.number,
                            "title": t.title,
                            "needs_root": t.needs_root,
                            "answers": [
                                {
                                    "key": k.name,
                                    "kind": k.kind.value,
                                    "help": k.help,
                                    **({"choices": list(k.choices)} if k.choices else {}),
                                }
                                for k in t.keys
                            ],
                        }
                        for t in lab.tasks
                    ],
                }
                for lab in self.labs
            ]
        }

    def render(self, console: Console) -> None:
        from rich.table import Table

        table = Table(title="dmvx teaching labs", title_justify="left")
        for column in ("lab", "title", "runs", "tasks", "page"):
            table.add_column(column)
        for lab in self.labs:
            table.add_row(str(lab.number), lab.title, lab.modes, str(len(lab.tasks)), lab.doc)
        console.print(table)
        console.print("check your answers: dmvx lab check N --answers FILE   (every key: dmvx lab list --json)")
