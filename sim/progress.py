"""Progress of a long sim run or sweep, for people, on stderr.

A 1,000,000-call run takes seconds and a sweep minutes: neither may be
silent. :class:`Progress` shows how far a run has got -- a bar on a
terminal, a line every few seconds elsewhere -- and :class:`Poller` feeds
it from a single run as it goes, reading the run's outcome from a thread,
so the engine stays as it is.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from dmvx import output


class Progress:
    """How far a long run has got, for people, on stderr.

    On a terminal a rich bar (cleared when done); otherwise -- a log file, a
    CI job, a pipe -- one line every ``every`` seconds, so a long run is
    never silent and a log is not flooded. :meth:`update` may be called from
    another thread (the sim's poller does) and as often as wanted.
    Use it as a context manager."""

    def __init__(self, what: str, total: int, unit: str, *, every: float = 5.0) -> None:
        self._clock = time.monotonic
        self.what = what
        self.total = total
        self.unit = unit
        self.done = 0
        self.every = every
        self._start = self._clock()
        self._last_line = self._start
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if sys.stderr.isatty():
            from rich.progress import Progress as Bar

            self._bar = Bar(console=output.stderr_console(), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(f"{self.what} ({self.unit})", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def update(self, done: int, total: int | None = None, what: str | None = None, unit: str | None = None) -> None:
        """``done`` of ``total`` ``unit`` of ``what``; each, when not given, as before."""
        self.done = done
        self.total = self.total if total is None else total
        self.what = self.what if what is None else what
        self.unit = self.unit if unit is None else unit
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=self.total, description=f"{self.what} ({self.unit})")
            return
        now = self._clock()
        if now - self._last_line >= self.every:
            self._last_line = now
            output.note(self.line(now))

    def line(self, now: float | None = None) -> str:
        """The line a log gets: ``dmvx: simulating: 3 of 8 points (37%), 12 s``."""
        elapsed = (self._clock() if now is None else now) - self._start
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        return f"{output.PROG}: {self.what}: {self.done:,} of {self.total:,} {self.unit}{share}, {elapsed:.0f} s"


class Poller:
    """Reads how far the one run in this process has got, every
    :attr:`seconds`, into a :class:`Progress` (the engine's hot loop only
    appends to ``leader_times``; nothing in it reports)."""

    #: How often the progress of the run is read.
    seconds = 0.25

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.current: tuple[str, Any, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="sim-progress", daemon=True)

    def watch(self, what: str, outcome: Any, calls: int) -> None:
        self.current = (what, outcome, calls)

    def _poll(self) -> None:
        while not self._stop.wait(self.seconds):
            if self.current is not None:
                what, outcome, calls = self.current
                self.progress.update(min(len(outcome.leader_times), calls), calls, f"simulating, {what}", "calls")

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
