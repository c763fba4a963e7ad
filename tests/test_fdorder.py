"""The leader's order of descriptor-table changes among threads (realmode.tracer.fdorder), without a run.

Which of a running call's neighbours may go beside it decides whether the
follower's threads see the leader's order: an open takes its number when it
starts, so a close let run beside an open that sleeps returns first, its
point comes first, and the follower's placeholder lands on the number the
close freed (tests/test_real_threads.py met it in about 1 run of 10 under
load). These tests put a thread asleep in a call and ask whether another
thread's parked call may go.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from dmvx.calls import Call
from dmvx.fdtable import FdTable
from dmvx.syscalls import Arch
from realmode.abi import RawCall
from realmode.tracer import fdorder
from realmode.tracer.procs import Held, Stage


def _held(name: str, *args: object, clone_flags: int = 0) -> Held:
    raw = RawCall(name, name, Arch.X86_64, 0, tuple(a if isinstance(a, int) else 0 for a in args), Call(name, args))
    return Held(raw, clone_flags=clone_flags)


def _may_go(running: Held, waited: float, monkeypatch) -> bool:
    """Whether a thread's parked close may go while another thread (asleep
    in the kernel) runs ``running``, after ``waited`` seconds parked."""
    monkeypatch.setattr(fdorder, "_asleep", lambda tid: True)
    fds = FdTable()
    fds.shared = True
    if running.stage is Stage.ENTRY:
        running.to(Stage.RUNNING)  # released: it runs
    other = SimpleNamespace(stream="0.1", pid=os.getpid(), held=running, monitor=SimpleNamespace(fds=fds))
    parked = SimpleNamespace(stream="0.2", pid=os.getpid(), held=_held("close", 3), monitor=SimpleNamespace(fds=fds))
    tracer = SimpleNamespace(leader=True, procs={1: other, 2: parked})
    order = fdorder.FdOrder(tracer)  # type: ignore[arg-type]
    order.since[parked.stream] = time.monotonic() - waited
    return order._may_go(parked, "close", 7)  # type: ignore[arg-type]


def test_a_call_never_goes_beside_an_open_of_a_regular_file_however_long_it_sleeps(tmp_path: Path, monkeypatch) -> None:
    """(Before, it went after 0.1 s: the follower's false protocol-error.)"""
    regular = tmp_path / "data"
    regular.write_bytes(b"x" * 100)
    opening = _held("openat", -100, str(regular), 0o1101, 0o600)
    assert not _may_go(opening, 10.0, monkeypatch)
    assert not _may_go(_held("openat", -100, str(tmp_path / "new"), 0o101, 0o600), 10.0, monkeypatch)
    assert not _may_go(_held("close", 4), 10.0, monkeypatch)


def test_a_call_goes_beside_one_that_may_wait_for_another_thread(tmp_path: Path, monkeypatch) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    opening = _held("openat", -100, str(fifo), 0, 0)
    assert not _may_go(opening, 0.0, monkeypatch)  # not yet: it may only be slow
    assert _may_go(opening, fdorder.LEADER_PATIENCE + 0.05, monkeypatch)
    assert _may_go(_held("fcntl", 3, 7, 0), 1.0, monkeypatch)  # F_SETLKW waits for a lock
    assert not _may_go(_held("fcntl", 3, 0, 10), 1.0, monkeypatch)  # F_DUPFD does not
    assert _may_go(_held("vfork"), 1.0, monkeypatch)  # its child runs first
    assert _may_go(_held("clone", 0x4111, clone_flags=0x4111), 1.0, monkeypatch)  # CLONE_VFORK


@pytest.mark.parametrize("name", ["dup", "pipe2", "socket", "fork"])
def test_calls_that_finish_by_themselves_are_waited_for(name: str, monkeypatch) -> None:
    assert not _may_go(_held(name, 3), 5.0, monkeypatch)
