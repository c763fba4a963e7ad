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

from dmvx.calls import Call, Outcome
from dmvx.fdtable import FdTable
from dmvx.messages import Entry, EntryKind
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


def _eventfd_table() -> FdTable:
    """A shared table whose descriptor 3 is an eventfd and 4 a socket."""
    fds = FdTable()
    fds.after(Call("eventfd2", (0, 0o4000)), 3)
    fds.after(Call("socket", (1, 1, 0)), 4)
    fds.shared = True
    return fds


def test_reads_and_writes_of_an_eventfd_threads_share_are_ordered() -> None:
    """memcached's main thread writes a worker's eventfd after queueing a
    connection; the worker reads it and takes that many from its queue."""
    fds = _eventfd_table()
    proc = SimpleNamespace(monitor=SimpleNamespace(fds=fds))
    assert fdorder.ordered(proc, _held("read", 3, 0, 8))  # type: ignore[arg-type]
    assert fdorder.ordered(proc, _held("write", 3, b"x" * 8, 8))  # type: ignore[arg-type]
    assert not fdorder.ordered(proc, _held("read", 4, 0, 8))  # type: ignore[arg-type]  # a socket's: not
    fds.shared = False
    assert not fdorder.ordered(proc, _held("read", 3, 0, 8))  # type: ignore[arg-type]  # no threads: not


def _follower(fds: FdTable) -> tuple[fdorder.FdOrder, SimpleNamespace, SimpleNamespace]:
    """A follower's order with a main thread (stream 0, after its call 4) and
    a worker (stream 0.1, held at its call 3) sharing ``fds``."""
    main = SimpleNamespace(stream="0", alive=True, done=False, held=None, monitor=SimpleNamespace(fds=fds, seq=4))
    worker = SimpleNamespace(
        stream="0.1", alive=True, done=False, held=_held("read", 3, 0, 8), monitor=SimpleNamespace(fds=fds, seq=3)
    )
    worker.held.compared = 3
    tracer = SimpleNamespace(leader=False, streams={"0": main, "0.1": worker}, procs={1: main, 2: worker})
    return fdorder.FdOrder(tracer), main, worker  # type: ignore[arg-type]


def test_a_followers_worker_reads_the_eventfd_after_its_main_thread_wrote_it() -> None:
    """The leader's main thread wrote (its call 5), then its worker read
    (call 3): the follower's worker waits until its own main thread's write
    has returned here -- before, it took the leader's result at once and
    found its queue empty (realmode/targets/eventfd_queue.c)."""
    fds = _eventfd_table()
    order, main, worker = _follower(fds)
    order.heard(Entry("0", 5, Call("write", (3, b"\x01" + b"\0" * 7, 8)), EntryKind.FULL, Outcome(8)))
    order.heard(Entry("0.1", 3, Call("read", (3, 8, 8)), EntryKind.FULL, Outcome(8)))
    assert not order._turn(worker, 3)  # type: ignore[arg-type]
    main.monitor.seq = 5  # the main thread's write returned here
    assert order._turn(worker, 3)  # type: ignore[arg-type]


def test_reads_of_other_descriptors_are_no_points_of_the_order() -> None:
    fds = _eventfd_table()
    order, _main, worker = _follower(fds)
    order.heard(Entry("0", 5, Call("read", (4, 8, 8)), EntryKind.FULL, Outcome(8)))  # the socket's
    order.heard(Entry("0.1", 3, Call("read", (3, 8, 8)), EntryKind.FULL, Outcome(8)))
    assert order._turn(worker, 3)  # type: ignore[arg-type]
    assert list(order.points) == [("0.1", 3)] and not order.io.get(("0", 5))
