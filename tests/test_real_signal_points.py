"""Signals with handlers are delivered at the same point of the call sequence
in every variant (docs/realmode.md, "Signals"; dmvx/signals.py).

Each run is compared with its native run (status, stdout, stderr, and no
line from dmvx). Every one of these diverged before signal points: a timer
ran in the leader only (``timeout``, the C target's ``setitimer``, Python's
``alarm``), or a handler that makes calls ran at another point in each
variant (bash reaping children, a handler's ``write``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from realmode.corpus.commands import SIGNALS, Entry
from realmode.corpus.run import available, compare
from test_real_support import POLICIES, REAL_RUNS, no_strays  # noqa: F401

pytestmark = REAL_RUNS


@pytest.mark.parametrize(
    "mode",
    [
        "restart",  # a timer interrupts a blocking read; SA_RESTART: the read goes on
        "eintr",  # the same without SA_RESTART: EINTR, and the program reads again
        "nested",  # a child's SIGUSR1 comes inside SIGALRM's handler, blocked in pause()
        "late",  # SIGCHLD held from between calls for a sigsuspend with every signal blocked (dash's wait)
    ],
)
def test_handlers_that_make_calls_agree_with_native(build, mode: str, tmp_path: Path) -> None:
    entry = Entry(f"signals-{mode}", (build("signals"), mode))
    for result in compare(entry, tmp_path / "work", POLICIES):
        assert result.agrees, f"[{result.policy}] {mode}: {'; '.join(result.problems)}"


@pytest.mark.parametrize(
    "name",
    [
        "signals-timeout",  # timer_settime in the leader only, SIGALRM ends rt_sigsuspend
        "signals-bash-trap-term-kill",  # TERM from another process, trapped while `wait` blocks
        "signals-bash-subshell-loop",  # bash reaps each $(...) child in its SIGCHLD handler
        "signals-python-alarm",  # alarm + pause
        "signals-pyenv-shim",  # bash in front of python3
    ],
)
def test_signal_corpus_entries_agree_with_native(name: str, tmp_path: Path) -> None:
    entry = next(e for e in SIGNALS if e.name == name)
    if not available(entry):
        pytest.skip(f"{name} needs {entry.needs}")
    for result in compare(entry, tmp_path / "work", POLICIES):
        assert result.agrees, f"[{result.policy}] {name}: {'; '.join(result.problems)}"


def test_a_timer_whose_signal_has_no_handler_ends_every_variant(tmp_path: Path) -> None:
    """The timer runs in the leader only, and its SIGALRM, with no handler,
    ends the leader's process: the follower's is sent the same signal where
    it waits, and ends as natively (status 142), not in no-progress."""
    script = "import signal, time; print('armed', flush=True); signal.alarm(1); time.sleep(5); print('not reached')"
    entry = Entry("alarm-no-handler", ("/usr/bin/python3", "-c", script))
    for result in compare(entry, tmp_path / "work", POLICIES):
        assert result.native.status == 142
        assert result.agrees, f"[{result.policy}]: {'; '.join(result.problems)}"
