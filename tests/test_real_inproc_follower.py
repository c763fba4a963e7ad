"""The in-process path's follower side: its wake-ups, its in ring and its own records' check.

A follower's library waits in its shared area for the leader's entries (a
futex on the area's wake word), which its monitor feeds from the CONNECTOR;
the monitor checks the follower's own records with the core. These tests
hold the pieces that make that cheap to what they promise, without a run
where they can (the area, the ring), and end to end where only a run shows it.
"""

from __future__ import annotations

import ctypes
import json
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import realmode.tracer.process  # noqa: F401  (before realmode.inproc.path: they import each other)
from realmode.inproc import layout
from realmode.inproc.area import Area
from test_real_support import REAL_RUNS, no_strays  # noqa: F401


def real(test):
    """The marks of a real run (root, no process left behind, x86-64 Linux)."""
    for mark in REAL_RUNS:
        test = mark(test)
    return test


_SYS_FUTEX, _FUTEX_WAIT = 202, 0
_syscall = ctypes.CDLL(None, use_errno=True).syscall
_syscall.argtypes = [ctypes.c_long] * 7
_syscall.restype = ctypes.c_long


def _sleep_on(area: Area, seconds: float, done: list[int]) -> None:
    """A variant's futex wait on the area's wake word, as dipmon.c's ``futex_wait``."""

    class Timespec(ctypes.Structure):
        _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]

    word = ctypes.c_uint32.from_buffer(area.map, layout.H_WAKE)
    value = word.value
    timeout = Timespec(int(seconds), 0)
    area.set32(layout.H_WAITING, 1)
    _syscall(_SYS_FUTEX, ctypes.addressof(word), _FUTEX_WAIT, value, ctypes.addressof(timeout), 0, 0)
    done.append(1)
    del word


def test_a_wake_reaches_a_variant_asleep_on_the_area() -> None:
    """Area.wake wakes the library's futex wait (it failed with EFAULT before:
    ctypes passed the word's address as a C int, and a follower waiting for an
    entry -- or a leader waiting for room in its ring -- slept out its timeout)."""
    area = Area(role=1, ring_bytes=1 << 16)
    done: list[int] = []
    sleeper = threading.Thread(target=_sleep_on, args=(area, 20, done), daemon=True)
    sleeper.start()
    try:
        woken = 0
        deadline = time.monotonic() + 10
        while not woken and time.monotonic() < deadline:
            time.sleep(0.01)
            woken = area.wake()
        sleeper.join(10)
        assert woken == 1 and done == [1]
    finally:
        area.set32(layout.H_WAITING, 0)
        if sleeper.is_alive():
            area.wake()
            sleeper.join(30)
        area.close()


def test_a_wake_with_nobody_asleep_wakes_nobody() -> None:
    area = Area(role=1, ring_bytes=1 << 16)
    try:
        assert area.wake() == 0
        area.set32(layout.H_WAITING, 1)
        assert area.wake() == 0  # flagged, but nobody sleeps on the word
    finally:
        area.close()


# -- the follower's monitor, without a run -----------------------------------------


def _follower(stream: str = "0"):
    """A follower's tracer, process and in-process path as far as routing and
    the check of its own records go: the core's real FollowerMonitor, a real
    descriptor order, a real shared area; the rest stands in."""
    from types import SimpleNamespace

    from dmvx.monitor import FollowerMonitor
    from realmode.abi import Reader
    from realmode.inproc.path import InProcess
    from realmode.orchestrator import make_policy
    from realmode.tracer.fdorder import FdOrder
    from realmode.tracer.procs import Stats
    from realmode.tracer.routing import Router

    sent: list[object] = []
    errors: list[str] = []
    monitor = FollowerMonitor(make_policy("dmvx"), 1, 2, stream)
    proc = SimpleNamespace(
        stream=stream,
        monitor=monitor,
        reader=Reader(0),
        hands=SimpleNamespace(send=sent.append, **dict.fromkeys(_HANDS, errors.append)),
        fast=None,
        alive=True,
        done=False,
        held=None,
        heard=0.0,
        phase="compare",
    )
    tracer = SimpleNamespace(
        leader=False,
        streams={stream: proc},
        clocks=SimpleNamespace(heard=lambda message: False),
        tally=None,
        recorder=None,
        finished=False,
        root=proc,
        stats=Stats(),
        launch=SimpleNamespace(preload_arch=syscalls.Arch.X86_64),
    )
    tracer.fd_order = FdOrder(tracer)  # type: ignore[arg-type]
    fast = InProcess(tracer, proc, Area(role=1, ring_bytes=1 << 16))  # type: ignore[arg-type]
    fast._protocol_error = errors.append  # type: ignore[method-assign,assignment]
    proc.fast = fast
    return Router(tracer), tracer, proc, fast, sent, errors  # type: ignore[arg-type]


#: What a process's hands do besides sending (each one here is a failure).
_HANDS = ("wait", "halt", "done", "leader_pid", "leader_killed", "follower_killed")

from dmvx import syscalls  # noqa: E402
from dmvx.calls import Call, Outcome  # noqa: E402
from dmvx.messages import Entry, EntryBatch, EntryKind  # noqa: E402


def _entry(seq: int, call: Call, result: int, outputs: tuple[tuple[int, bytes], ...] = ()) -> Entry:
    return Entry("0", seq, call, EntryKind.FULL, Outcome(result, outputs))


def test_a_batch_with_descriptor_changes_is_kept_in_one_step_and_the_order_hears_them() -> None:
    """A server's request carries two entries of calls that change the
    descriptor table (accept4, close): the whole batch goes to the core and
    the in ring in one step, and the descriptor order hears those two, in
    order, as it heard each routed entry. (The batch was taken up to its
    first such entry before, and the rest routed one message at a time.)"""
    router, tracer, proc, fast, _, _ = _follower()
    try:
        calls = [
            Call("epoll_pwait", (5, 4, 4, 1000, None, None)),
            Call("accept4", (3, 0, 0x80800)),
            Call("read", (6, 1024)),
            Call("close", (6,)),
            Call("clock_gettime", (1,)),
        ]
        entries = tuple(_entry(seq + 1, call, 0) for seq, call in enumerate(calls))
        assert router.keep_entries(EntryBatch("0", entries)) == len(entries)
        assert sorted(proc.monitor._inbox) == [1, 2, 3, 4, 5]
        assert list(tracer.fd_order.points) == [("0", 2), ("0", 4)]
        assert len(fast.backlog) == len(entries)
    finally:
        fast.area.close()


def _epoll_record(seq: int, data: int) -> layout.Record:
    events = struct.pack("<IQ", 1, data)
    nr = syscalls.all_numbers("epoll_wait", syscalls.Arch.X86_64)[0]
    return layout.Record(seq, nr, 1, (5, 0x1000, 4, 1000, 0, 0), ((0x1000, events),))


def test_a_run_of_a_followers_waits_is_checked_against_its_registrations() -> None:
    """Equal epoll_wait records in a row go to the core as one run; each
    one's events are still checked against the follower's registrations
    (the run path skipped that check: a library that wrote the leader's
    pointer into two waits in a row was taken)."""
    _, _, proc, fast, _, errors = _follower()
    try:
        proc.reader.epoll.apply(5, 1, 8, 0xAAAA)  # epoll_ctl(5, ADD, 8, {.data = 0xAAAA})
        call = Call("epoll_pwait", (5, 4, 4, 1000, None, None))
        events = ((1, struct.pack("<IQ", 1, 8)),)  # EPOLLIN on descriptor 8
        proc.monitor.entries_kept([_entry(1, call, 1, events), _entry(2, call, 1, events)])
        fast._follow_run(_epoll_record(1, 0xBBBB), 2)  # not its own data for descriptor 8
        assert errors and "other epoll data than its registrations say" in errors[0]
    finally:
        fast.area.close()


def test_a_followers_single_record_is_skipped_by_the_core_in_one_step() -> None:
    """A record of a call only the leader runs goes to the core's one-step
    check (FollowerMonitor.calls_skipped), with the same outcome and the
    acknowledgement when one is due, and a result other than the leader's
    is still a protocol-error."""
    _, tracer, proc, fast, _, errors = _follower()
    try:
        proc.reader.epoll.apply(5, 1, 8, 0xAAAA)
        call = Call("epoll_pwait", (5, 4, 4, 1000, None, None))
        events = ((1, struct.pack("<IQ", 1, 8)),)
        proc.monitor.entries_kept([_entry(1, call, 1, events), _entry(2, call, 1, events)])
        fast._follow(_epoll_record(1, 0xAAAA))
        assert errors == [] and proc.monitor.seq == 1 and tracer.stats.skipped == 1
        wrong = _epoll_record(2, 0xAAAA)._replace(result=2)
        fast._follow(wrong)
        assert errors and "returned 2" in errors[0] and "the leader's entry says 1" in errors[0]
    finally:
        fast.area.close()


def test_link_records_cut_anywhere_come_out_whole_and_in_order() -> None:
    """The monitor's socket reader (now reading into one buffer it keeps)
    gives each record whole once its last byte has come, however the bytes
    were cut between reads."""
    import socket

    from realmode import monitor_socket

    records = [monitor_socket.encode_record(1, bytes([n]) * n * 37) for n in range(1, 30)] + [
        monitor_socket.encode_record(0, b"")
    ]
    stream = b"".join(records)
    for cut in (1, 3, 7, 64, 1000, len(stream)):
        left, right = socket.socketpair()
        reader = monitor_socket.RecordReader()
        got: list[tuple[int, bytes]] = []
        try:
            for at in range(0, len(stream), cut):
                left.sendall(stream[at : at + cut])
                got += monitor_socket.receive(right, reader)
        finally:
            left.close()
            right.close()
        assert got == [(1, bytes([n]) * n * 37) for n in range(1, 30)] + [(0, b"")], cut


# -- real runs ---------------------------------------------------------------------

GAPS = 20
#: The variant: says it runs (a file), then copies its stdin to stderr read by read.
_COPY = (
    "import os, sys\n"
    "open(sys.argv[1], 'w').close()\n"
    "while True:\n"
    "    data = os.read(0, 100)\n"
    "    if not data:\n"
    "        break\n"
    "    os.write(2, data)\n"
)


@real
def test_a_follower_waits_out_a_slow_leader_without_a_stop(tmp_path: Path) -> None:
    """The leader's program gets a line every 100 ms once it runs (its fast
    read blocks in the kernel meanwhile, and its monitor says nothing for
    longer than 20 ms); the follower's library waits for each entry in its
    area instead of handing every read to its tracer after 20 ms (one
    fallback a line on the old library), and the output is the program's."""
    started = tmp_path / "started"
    feed = f"while [ ! -e {started} ]; do sleep 0.05; done; for i in $(seq {GAPS}); do sleep 0.1; echo $i; done"
    done = subprocess.run(
        [
            "sh",
            "-c",
            f'({feed}) | {sys.executable} -m dmvx run --in-process on --json -- {sys.executable} -c "$0" {started}',
            _COPY,
        ],
        capture_output=True,
        timeout=200,
        start_new_session=True,
    )
    document = json.loads(done.stdout)
    assert document["status"] == "ok", document["verdict"]
    assert done.stderr.decode().split()[-GAPS:] == [str(i) for i in range(1, GAPS + 1)]
    follower = document["variants"][1]["in_process"]
    assert follower["fast_calls"] >= GAPS, follower
    assert follower["fallbacks"] <= 2, follower
