"""Ctrl-C while a run forks is held back, never lost (realmode.deferral):
Python's at-fork hooks used to swallow it ("Exception ignored in:
_releaseLock") and the run went on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from realmode.deferral import signals_deferred
from test_real_support import no_strays  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parent.parent

#: A hook run in the parent after the next fork that sends this process
#: SIGINT: a Ctrl-C that lands while Python runs its at-fork hooks.
_ARMED = """
import os, signal
armed = [False]
def _hook():
    if armed[0]:
        armed[0] = False
        os.kill(os.getpid(), signal.SIGINT)
os.register_at_fork(after_in_parent=_hook)
"""


def _script(body: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(_ARMED) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_a_signal_in_the_body_is_raised_once_the_body_is_done() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), signals_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("the body went on")
    assert done == ["the body went on"]


def test_the_handler_in_place_before_handles_it() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
    try:
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            assert seen == []
        assert seen == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_the_main_thread_nothing_is_held() -> None:
    handlers = []

    def body() -> None:
        with signals_deferred():
            handlers.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert handlers == [signal.default_int_handler]


def _fork_with_ctrl_c_in_the_hooks(around: str) -> subprocess.CompletedProcess:
    """A script that forks inside ``with {around}:`` while a Ctrl-C lands in
    its at-fork hooks, and says whether it went on or was interrupted."""
    return _script(
        f"""
        from contextlib import nullcontext
        from realmode.deferral import signals_deferred
        armed[0] = True
        pid = None
        try:
            with {around}:
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
            os.waitpid(pid, 0)
            print("went on")
        except KeyboardInterrupt:
            if pid is not None:
                os.waitpid(pid, 0)
            print("interrupted")
        """
    )


def test_a_ctrl_c_in_the_at_fork_hooks_was_lost_and_is_not_now() -> None:
    lost = _fork_with_ctrl_c_in_the_hooks("nullcontext()")
    assert lost.stdout == "went on\n" and "Exception ignored" in lost.stderr, lost  # what happened before
    kept = _fork_with_ctrl_c_in_the_hooks("signals_deferred()")
    assert kept.stdout == "interrupted\n" and "Exception ignored" not in kept.stderr, kept


@pytest.mark.root
@pytest.mark.usefixtures("no_strays")
def test_dmvx_run_interrupted_while_it_forks_its_monitors_ends_interrupted() -> None:
    ended = _script(
        """
        from realmode.orchestrator import Interrupted, run
        armed[0] = True
        try:
            result = run([["true"], ["true"]], "dmvx")
            print("went on", result.verdict, result.program_status)
        except Interrupted as stop:
            print("interrupted", stop.result.interrupted)
        """
    )
    assert ended.stdout == "interrupted SIGINT\n" and "Exception ignored" not in ended.stderr, ended
