"""Running the tasks of a lab against an answers file.

Every task is run, in order, whatever became of the ones before: a student
sees every line at once. How a task ends (:class:`~dmvx.lab.model.Status`):

* its check function returned a :class:`~dmvx.lab.model.Check`: PASS or FAIL;
* a key it reads is missing: NOT ANSWERED (a failure, with the key named);
* a value or a scenario file the student wrote is malformed
  (:class:`~dmvx.errors.InputError`): FAIL, with the one-line error;
* it needs real mode and this is not root: NEEDS ROOT;
* a mode is missing a package or kernel feature: ENVIRONMENT; a mode is not
  built: UNAVAILABLE;
* it runs real mode and the check was asked for ``--sim-only``: SKIPPED.

Anything else escaping a check is a bug and propagates to the CLI (70).
The helpers on :class:`Context` are what check functions are written with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmvx.errors import InputError
from dmvx.exitstatus import EnvironmentProblem, Unavailable
from dmvx.lab.answers import Answers
from dmvx.lab.model import Check, Kind, Lab, NeedsRoot, NotAnswered, Status, Task, TaskOutcome
from dmvx.lab.modes import Modes
from dmvx.yamlfile import builtin_dirs


def lab_dir() -> Path:
    """``scenarios/labs/``: the scenario files the labs hand out."""
    for directory in builtin_dirs("scenarios"):
        if (directory / "labs").is_dir():
            return directory / "labs"
    raise EnvironmentProblem(
        "the lab scenario files (scenarios/labs/) are not installed; run dmvx from its source tree"
    )


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


def numeric(
    ctx: Context, name: str, truth: float, *, relative: float, absolute: float = 0.0, what: str, unit: str = ""
) -> Check:
    """Compare a numeric answer (number, integer or duration in seconds) with ``truth``.

    An answer copied from a table (``1.91k``) counts as anything it could
    stand for. The line names what was compared and the tolerance, never the
    truth: a failed answer should send the student back to the run, not to a
    number. The hint says what kind of mistake it looks like
    (:func:`mistake`)."""
    try:
        answer = ctx.value(name)
    except InputError as exc:
        return Check(False, str(exc), exc.expected and f"{name}: write {exc.expected}")
    tolerance = f"±{relative:.0%}" if relative else f"±{absolute:g}{unit}"
    key = ctx.lab.keys()[name]
    slack = max(absolute, ctx.answers.resolution(key))
    if close_to(answer, truth, relative, slack):
        return Check(True, f"{what}: {ctx.written(name)}")
    return Check(
        False,
        f"{name}: {what}: {ctx.written(name)} is not it (tolerance {tolerance})",
        f"{name}: {mistake(answer, truth, key.kind is Kind.DURATION)}",
    )


def mistake(answer: float, truth: float, duration: bool = False) -> str:
    """What a wrong number looks like it got wrong, without giving the truth
    away: a unit, a factor of two (one way for a round trip), a decimal
    point, a sign -- or, failing those, only whether it is too high or low."""
    if truth == 0 or answer == 0:
        return "too high" if answer > truth else "too low"
    ratio = answer / truth
    if ratio < 0:
        return "the sign is wrong"
    for factor, what in ((1e9, "a factor of 10^9"), (1e6, "a factor of a million"), (1e3, "a factor of 1000")):
        if math.isclose(ratio, factor, rel_tol=0.15) or math.isclose(ratio, 1 / factor, rel_tol=0.15):
            return (
                f"off by {what}: check the unit (s, ms, us, ns)"
                if duration
                else f"off by {what}: a k in a table is 1000 (1.91k is 1910), an M a million"
            )
    if math.isclose(ratio, 2, rel_tol=0.1):
        return "about twice the value: a round trip where one way was asked, or counted twice?"
    if math.isclose(ratio, 0.5, rel_tol=0.1):
        return "about half the value: one way where a round trip was asked, or half of the calls?"
    for power in (10, 100):
        if math.isclose(ratio, power, rel_tol=0.05) or math.isclose(ratio, 1 / power, rel_tol=0.05):
            return "off by a power of ten: check the decimal point"
    direction = "too high" if ratio > 1 else "too low"
    return f"{direction}, and by more than the tolerance: read it again off the run the task names"


def same(ctx: Context, name: str, truth: Any, *, what: str, also: Iterable[Any] = ()) -> Check:
    """Compare an answer that must be exactly ``truth`` (or one of ``also``:
    the same thing as a table shows it). A number copied from a table
    (``1.91k``) counts as anything it could stand for."""
    try:
        answer = ctx.value(name)
    except InputError as exc:
        return Check(False, str(exc), exc.expected and f"{name}: write {exc.expected}")
    key = ctx.lab.keys()[name]
    accepted = [truth, *also]
    if isinstance(answer, str):
        # Enum members with str mixed in compare by value (str() would add the class name).
        hit = any(isinstance(a, str) and answer.lower() == a.lower() for a in accepted)
    elif isinstance(answer, (int, float)) and not isinstance(answer, bool) and isinstance(truth, (int, float)):
        hit = abs(answer - truth) <= ctx.answers.resolution(key)
    else:
        hit = answer in accepted
    if hit:
        return Check(True, f"{what}: {ctx.written(name)}")
    hint = None
    if (
        isinstance(answer, (int, float))
        and not isinstance(answer, bool)
        and isinstance(truth, (int, float))
        and not isinstance(truth, bool)
    ):
        hint = f"{name}: {mistake(answer, truth)}"
    return Check(False, f"{name}: {what}: {ctx.written(name)} is not it", hint)


def shown_harm(harmful: list[dict[str, Any]]) -> tuple[str, ...]:
    """The first harmful call as the attack table shows it ("yes: open of
    /etc/shadow"), with and without the "yes: ", so a student may answer with
    what the table says as well as with the call's name (openat)."""
    if not harmful:
        return ()
    what = str(harmful[0]["what"])
    return what, f"yes: {what}"


def outcome_and_first_harm(ctx: Context, point: dict[str, Any], outcome: str, harm: str, *, variants: str) -> Check:
    """The answers ``outcome`` and ``harm`` against a sim point of an attack: its outcome and its
    first harmful call (by name, or as the attack table shows it). ``variants`` says which variants
    the point ran ("identical", "disjoint"), for the line that reports the answer."""
    harmful = point["attack"]["harmful_calls"]
    return all_of(
        [
            same(ctx, outcome, point["outcome"], what=f"outcome with {variants} variants"),
            same(
                ctx, harm, harmful[0]["call"] if harmful else None, what="first harmful call", also=shown_harm(harmful)
            ),
        ]
    )


def all_of(checks: Iterable[Check]) -> Check:
    """Several comparisons as one task: it passes when all do. A failure
    lists every wrong answer, each with its own hint; a success lists
    every answer."""
    checks = list(checks)
    failed = [c for c in checks if not c.passed]
    if failed:
        hints = list(dict.fromkeys(c.hint for c in failed if c.hint))
        return Check(False, "; ".join(c.detail for c in failed), "; ".join(hints) or None)
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
        malformed = _malformed(task, ctx)
        if malformed:  # a value written wrong is news too, not only the missing ones
            return outcome(Status.FAIL, "; ".join([*malformed, _missing(still, ctx)]), task.hint)
        return outcome(Status.NOT_ANSWERED, _missing(still, ctx), task.hint)
    except InputError as exc:
        in_answers = exc.file == ctx.answers.file
        return outcome(
            Status.FAIL,
            str(exc),
            task.hint if in_answers else f"'dmvx validate {exc.file}' shows the same error; {task.hint}",
        )
    except NeedsRoot as exc:
        return outcome(Status.NEEDS_ROOT, f"needs root: {exc}")
    except EnvironmentProblem as exc:
        return outcome(Status.ENVIRONMENT, f"cannot run here: {exc}")
    except Unavailable as exc:
        return outcome(Status.UNAVAILABLE, f"cannot run yet: {exc}")
    if check.passed:
        return outcome(Status.PASS, check.detail)
    # What this mistake looks like first, then how the task is done.
    return outcome(Status.FAIL, check.detail, f"{check.hint}; {task.hint}" if check.hint else task.hint)


def _malformed(task: Task, ctx: Context) -> list[str]:
    """The errors of the task's answers that are there but written wrong."""
    found = []
    for key in task.keys:
        if ctx.answers.has(key):
            try:
                ctx.answers.get(key)
            except InputError as exc:
                found.append(str(exc))
    return found


def _missing(keys: list[str], ctx: Context) -> str:
    names = ", ".join(keys)
    return f"not answered: add {names} to {ctx.answers.file}"


def run_lab(
    lab: Lab, answers: Answers, modes: Modes, only: Iterable[int] = (), sim_only: bool = False
) -> list[TaskOutcome]:
    """Run the tasks of ``lab`` (all, or the numbers in ``only``), in order;
    with ``sim_only``, the tasks that run real mode are left out (SKIP), so a
    student can check the rest as root without starting emulated hosts."""
    wanted = set(only)
    ctx = Context(lab, answers, modes)
    return [
        _skipped(task, lab) if sim_only and task.needs_root else run_task(task, ctx)
        for task in lab.tasks
        if not wanted or task.number in wanted
    ]


def _skipped(task: Task, lab: Lab) -> TaskOutcome:
    return TaskOutcome(
        lab.number,
        task.number,
        task.title,
        Status.SKIPPED,
        "not run (--sim-only): it runs real mode on emulated hosts",
        None,
        tuple(key.name for key in task.keys),
    )
