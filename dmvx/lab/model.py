"""The vocabulary of the labs: labs, tasks, answer keys, and how a task ended.

A :class:`Lab` is a list of :class:`Task`. A task names the answer keys it
reads (:class:`Key`: a name in the answers file and the kind of value it
takes) and a check function. The check function gets a
:class:`~dmvx.lab.checking.Context`, recomputes what it needs, and returns a
:class:`Check`: passed or not, with a line saying what was compared. The
task's hint is shown when it did not pass.

A check that cannot run says why by raising: :class:`NotAnswered` (a key is
missing), :class:`NeedsRoot` (the task runs real mode on emulated hosts),
or the CLI's own :class:`~dmvx.exitstatus.EnvironmentProblem` and
:class:`~dmvx.exitstatus.Unavailable` from a mode. :mod:`dmvx.lab.checking`
turns each into a :class:`Status`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from dmvx.exitstatus import ExitStatus

if TYPE_CHECKING:
    from dmvx.lab.checking import Context


class Kind(str, Enum):
    """What an answer key takes, as the student writes it."""

    NUMBER = "number"  # 4.02, 1e3
    INTEGER = "integer"  # 15
    DURATION = "duration"  # 2ms, 250us (always with a unit, as in scenario files)
    CHOICE = "choice"  # one word of a fixed list
    WORD = "word"  # one word checked against a computed truth (a call name, ...)
    BOOL = "bool"  # yes / no / true / false
    FILE = "file"  # a path, relative to the answers file
    COUNTS = "counts"  # a mapping of names to integers, e.g. {replicate: 11, local: 4}


@dataclass(frozen=True)
class Key:
    """One answer in the answers file."""

    name: str
    kind: Kind
    help: str
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """``name (kind): help`` for the task list and the lab pages."""
        what = f"one of: {', '.join(self.choices)}" if self.choices else self.kind.value
        return f"{self.name} ({what}): {self.help}"


@dataclass(frozen=True)
class Check:
    """What a check function found: passed or not, and the line to show."""

    passed: bool
    detail: str
    #: What this failure looks like it got wrong, shown before the task's own hint.
    hint: str | None = None


CheckFunction = Callable[["Context"], Check]


@dataclass(frozen=True)
class Task:
    """One numbered task of a lab."""

    number: int
    title: str
    keys: tuple[Key, ...]
    check: CheckFunction
    hint: str
    #: Runs real mode on emulated hosts (Mininet): root only.
    needs_root: bool = False


@dataclass(frozen=True)
class Lab:
    """One lab: its page, its scenario files and its tasks."""

    number: int
    slug: str
    title: str
    summary: str
    tasks: tuple[Task, ...]
    #: What the lab runs, for ``dmvx lab list``: "sim", "sim + core", "sim + real (root)", ...
    modes: str

    @property
    def doc(self) -> str:
        """The lab's page, relative to the source root."""
        return f"docs/labs/lab{self.number}.md"

    @property
    def needs_root(self) -> bool:
        return any(task.needs_root for task in self.tasks)

    def task(self, number: int) -> Task:
        for task in self.tasks:
            if task.number == number:
                return task
        raise KeyError(number)

    def keys(self) -> dict[str, Key]:
        """Every answer key of the lab, in task order."""
        return {key.name: key for task in self.tasks for key in task.keys}


class Status(str, Enum):
    """How one task ended, and the exit status it stands for."""

    PASS = "pass"
    FAIL = "fail"
    NOT_ANSWERED = "not-answered"
    NEEDS_ROOT = "needs-root"
    ENVIRONMENT = "environment"
    UNAVAILABLE = "unavailable"
    #: Left out on request: ``--sim-only`` and the task runs real mode.
    SKIPPED = "skipped"

    @property
    def exit_status(self) -> ExitStatus:
        """PASS is OK; a wrong or missing answer is an expectation not met
        (ATTACK_MISSED, as for a suite scenario that did not end as its file
        expects); a task that could not run says why (4 or 5)."""
        return _EXIT[self]

    @property
    def label(self) -> str:
        """The word at the start of the task's line."""
        return _LABEL[self]


_EXIT = {
    Status.PASS: ExitStatus.OK,
    Status.FAIL: ExitStatus.ATTACK_MISSED,
    Status.NOT_ANSWERED: ExitStatus.ATTACK_MISSED,
    Status.NEEDS_ROOT: ExitStatus.ENVIRONMENT,
    Status.ENVIRONMENT: ExitStatus.ENVIRONMENT,
    Status.UNAVAILABLE: ExitStatus.UNAVAILABLE,
    Status.SKIPPED: ExitStatus.OK,
}
_LABEL = {
    Status.PASS: "PASS",
    Status.FAIL: "FAIL",
    Status.NOT_ANSWERED: "TODO",
    Status.NEEDS_ROOT: "ROOT",
    Status.ENVIRONMENT: "SKIP",
    Status.UNAVAILABLE: "SKIP",
    Status.SKIPPED: "SKIP",
}


@dataclass(frozen=True)
class TaskOutcome:
    """One task's line in the report."""

    lab: int
    task: int
    title: str
    status: Status
    detail: str
    hint: str | None = None
    keys: tuple[str, ...] = field(default=())


class NotAnswered(Exception):
    """The answers file has no value for a key the task reads."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class NeedsRoot(Exception):
    """The task runs real mode on emulated hosts and this is not root."""
