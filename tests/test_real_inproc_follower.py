"""The in-process path's follower side: its wake-ups, its in ring and its own records' check.

A follower's library waits in its shared area for the leader's entries (a
futex on the area's wake word), which its monitor feeds from the CONNECTOR;
the monitor checks the follower's own records with the core. These tests
hold the pieces that make that cheap to what they promise, without a run
where they can (the area, the ring), and end to end where only a run shows it.
"""

from __future__ import annotations

import ctypes
import threading
import time

from realmode.inproc import layout
from realmode.inproc.area import Area

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
