"""What the ``dmvx lab`` commands call (see dmvx/cli.py), in the shape of a mode entry.

Each function takes plain values and a rich console on stderr, returns a
:class:`dmvx.output.Result` and never prints results itself; a bad answers
file or lab number is an :class:`~dmvx.errors.InputError` (status 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dmvx import output
from dmvx.errors import InputError, did_you_mean
from dmvx.lab.answers import Answers
from dmvx.lab.checking import run_lab
from dmvx.lab.labs import LABS, get_lab
from dmvx.lab.modes import Modes
from dmvx.lab.results import LabCheck, LabList
from dmvx.lab.watch import EventFilter, WatchResult, parse_seqs, watch_file


def default_answers(number: int) -> Path:
    """Where ``dmvx lab check N`` looks without ``--answers``: ``labN-answers.yml`` here."""
    return Path(f"lab{number}-answers.yml")


def list_labs(*, console: Any) -> LabList:
    """``dmvx lab list``."""
    return LabList(LABS)


def check(number: int, *, answers: Path | None, tasks: Sequence[int], console: Any, sim_only: bool = False) -> LabCheck:
    """``dmvx lab check N [--answers FILE] [--task K]... [--sim-only]``.

    Without ``--answers`` the file is ``labN-answers.yml`` in the working
    directory; if there is none yet, every task reports the keys it needs
    (a student's first step), while a missing file named with ``--answers``
    is a usage error."""
    lab = get_lab(number)
    for task in tasks:
        try:
            lab.task(task)
        except KeyError:
            raise InputError(
                f"lab {number} has no task {task}", field="--task", expected=f"a task from 1 to {len(lab.tasks)}"
            ) from None
    if answers is None and not default_answers(number).exists():
        output.note(
            f"dmvx lab check: no {default_answers(number)} here yet; write your answers there (or give --answers FILE)"
        )
        loaded = Answers.empty(lab, str(default_answers(number)))
    else:
        loaded = Answers.load(answers or default_answers(number), lab)
    outcomes = run_lab(lab, loaded, Modes(console), tasks, sim_only)
    return LabCheck(lab, loaded.file, tuple(outcomes))


def watch(
    file: Path,
    *,
    policy: str | None,
    variants: int | None,
    console: Any,
    calls: Sequence[str] = (),
    routes: Sequence[str] = (),
    seqs: str | None = None,
    to_stdout: bool = False,
) -> WatchResult:
    """``dmvx lab watch FILE [--policy P] [--variants N] [--call C]... [--route R]... [--seq N|A-B] [--stdout]``."""
    from dmvx.syscalls import names

    unknown = [call for call in calls if call not in names()]
    if unknown:
        raise InputError(
            f"{unknown[0]!r} is not a system call dmvx knows{did_you_mean(unknown[0], names())}",
            field="--call",
            expected="a system call name such as openat",
        )
    try:
        span = parse_seqs(seqs) if seqs is not None else None
    except ValueError as exc:
        raise InputError(str(exc), field="--seq", expected="N, A-B or A- (sequence numbers, the # column)") from None
    result = watch_file(file, policy, variants)
    result.shown_filter = EventFilter(frozenset(calls), frozenset(routes), span)
    result.to_stdout = to_stdout
    return result
