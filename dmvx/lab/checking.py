"""Running the tasks of a lab against an answers file.

Every task is run, in order, whatever became of the ones before: a student
sees every line at once. How a task ends (:class:`~dmvx.lab.model.Status`):

* its check function returned a :class:`~dmvx.lab.model.Check`: PASS or FAIL;
* a key it reads is missing: NOT ANSWERED (a failure, with the key named);
* a value or a scenario file the student wrote is malformed
  (:class:`~dmvx.errors.InputError`): FAIL, with the one-line error;
* it needs real mode and this is not root: NEEDS ROOT;
* a mode is missing a package or kernel feature: ENVIRONMENT; a mode is not
  built: UNAVAILABLE.

Anything else escaping a check is a bug and propagates to the CLI (70).
The helpers on :class:`Context` are what check functions are written with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from dmvx.errors import InputError
from dmvx.exitstatus import EnvironmentProblem, Unavailable
from dmvx.lab.answers import Answers
from dmvx.lab.model import Check, Lab, NeedsRoot, NotAnswered, Status, Task, TaskOutcome
from dmvx.lab.modes import Modes
from dmvx.yamlfile import builtin_dirs


def lab_dir() -> Path:
    """``scenarios/labs/``: the scenario files the labs hand out."""
    for directory in builtin_dirs("scenarios"):
        if (directory / "labs").is_dir():
            return directory / "labs"
    raise EnvironmentProblem("the lab scenario files (scenarios/labs/) are not installed; run dmvx from its source tree")


@dataclass
class Context:
    """What a check function works with: the answers, the modes, the lab's files."""

    lab: Lab
    answers: Answers
    modes: Modes

    def value(self, name: str) -> Any:
        """The answer ``name``, converted to its key's kind."""
        return self.answers.get(self.lab.keys()[name])

    def written(self, name: str) -> str:
        """The answer ``name`` as the student wrote it."""
        return self.answers.text(self.lab.keys()[name])

    def scenario(self, name: str) -> Path:
        """A scenario file of ``scenarios/labs/``."""
        return lab_dir() / name

    def student_scenario(self, name: str) -> tuple[Path, Any]:
        """The scenario file the answer ``name`` points to, loaded and
        cross-checked (an :class:`InputError` if it is malformed)."""
        from dmvx.scenario import load_scenario

        path: Path = self.value(name)
        return path, load_scenario(path)


def close_to(answer: float, truth: float, relative: float, absolute: float = 0.0) -> bool:
    """``answer`` within ``relative`` (a fraction) or ``absolute`` of ``truth``."""
    return math.isclose(answer, truth, rel_tol=relative, abs_tol=absolute)


def numeric(ctx: Context, name: str, truth: float, *, relative: float, absolute: float = 0.0,
            what: str, unit: str = "") -> Check:
    """Compare a numeric answer (number, integer or duration in seconds) with ``truth``.

    The line names what was compared and the tolerance, never the truth: a
    failed answer should send the student back to the run, not to a number."""
    answer = ctx.value(name)
    tolerance = f"±{relative:.0%}" if relative else f"±{absolute:g}{unit}"
    if close_to(answer, truth, relative, absolute):
        return Check(True, f"{what}: {ctx.written(name)}")
    return Check(False, f"{what}: {ctx.written(name)} is not it (tolerance {tolerance})")


def same(ctx: Context, name: str, truth: Any, *, what: str) -> Check:
    """Compare an answer that must be exactly ``truth``."""
    answer = ctx.value(name)
    if answer == truth:
        return Check(True, f"{what}: {ctx.written(name)}")
    return Check(False, f"{what}: {ctx.written(name)} is not it")


def all_of(checks: Iterable[Check]) -> Check:
    """Several comparisons as one task: it passes when all do; the line
    shows the first failure, or every success."""
    checks = list(checks)
    failed = [c for c in checks if not c.passed]
    if failed:
        return Check(False, failed[0].detail, failed[0].hint)
    return Check(True, "; ".join(c.detail for c in checks))


def run_task(task: Task, ctx: Context) -> TaskOutcome:
    """Run one task; see the module docstring for how it can end."""
    keys = tuple(key.name for key in task.keys)

    def outcome(status: Status, detail: str, hint: str | None = None) -> TaskOutcome:
        return TaskOutcome(ctx.lab.number, task.number, task.title, status, detail, hint, keys)

    if task.needs_root:
        # Ask for every answer first: a student without root still learns
        # what is missing before being told the check needs root.
        missing = [key.name for key in task.keys if not ctx.answers.has(key)]
        if missing:
            return outcome(Status.NOT_ANSWERED, _missing(missing, ctx), task.hint)
    try:
        check = task.check(ctx)
    except NotAnswered as exc:
        still = [key.name for key in task.keys if not ctx.answers.has(key)] or [exc.key]
        return outcome(Status.NOT_ANSWERED, _missing(still, ctx), task.hint)
    except InputError as exc:
        in_answers = exc.file == ctx.answers.file
        return outcome(Status.FAIL, str(exc), task.hint if in_answers else f"'dmvx validate {exc.file}' shows the "
                       f"same error; {task.hint}")
    except NeedsRoot as exc:
        return outcome(Status.NEEDS_ROOT, f"needs root: {exc}")
    except EnvironmentProblem as exc:
        return outcome(Status.ENVIRONMENT, f"cannot run here: {exc}")
    except Unavailable as exc:
        return outcome(Status.UNAVAILABLE, f"cannot run yet: {exc}")
    if check.passed:
        return outcome(Status.PASS, check.detail)
    return outcome(Status.FAIL, check.detail, check.hint or task.hint)


def _missing(keys: list[str], ctx: Context) -> str:
    names = ", ".join(keys)
    return f"not answered: add {names} to {ctx.answers.file}"


def run_lab(lab: Lab, answers: Answers, modes: Modes, only: Iterable[int] = ()) -> list[TaskOutcome]:
    """Run the tasks of ``lab`` (all, or the numbers in ``only``), in order."""
    wanted = set(only)
    ctx = Context(lab, answers, modes)
    return [run_task(task, ctx) for task in lab.tasks if not wanted or task.number in wanted]
