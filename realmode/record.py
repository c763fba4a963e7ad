"""``dmvx run --record FILE``: the variants' calls as a dmvx trace.

Each monitor writes its own variant's events to a part file of its own while
the run goes (:class:`Recorder`; no monitor waits for another to write), and
the orchestrator joins the parts under one header once every monitor has
ended (:func:`join`). The format is docs/trace-format.md's, written with
:class:`dmvx.trace.TraceWriter`, so ``dmvx sim`` replays it as a ``trace``
workload and ``dmvx lab watch`` shows it.

What is recorded per variant: every call of its first process that the core
saw finish (from the exec on, or from the entry point for ABI-diverse
pairs), in canonical form, with the outcome the program got -- its own for a
call it ran, the leader's for one it skipped -- and the exit or the killing
signal. The trace format has one stream per variant, so the calls of child
processes are not recorded (their interleaving with the parent's differs
from variant to variant). Times, measured by the tracer:

* ``ns``: from resuming the call at its entry stop to its exit stop, for
  calls the variant ran (the kernel's work plus one stop pair); a call it
  skipped has none (sim uses its cost profile);
* ``gap``: from the previous call's resumption to this call's entry stop (the
  program's own work in between, plus the stops' cost).
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from dmvx.calls import Call, Outcome
from dmvx.errors import InputError
from dmvx.trace import TraceWriter

_END_LINES = ('{"exit":', '{"killed":')


def _not_regular(path: Path) -> str | None:
    """What ``path`` is if it exists and is not a regular file (a symbolic
    link counts as one of those, whatever it points to)."""
    from dmvx.yamlfile import NOT_REGULAR  # here: it loads pydantic, which a run without --record never needs

    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    for test, kind in ((stat.S_ISLNK, "a symbolic link"), *NOT_REGULAR):
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def check_target(path: Path, command: str) -> None:
    """Refuse, before a run starts, a ``--record FILE`` that is not a regular
    file or cannot be written: replacing ``/dev/null`` or a symbolic link
    with a trace, or failing on a read-only filesystem after the run, is
    worse than saying so now. The check creates and removes a temporary file
    beside ``path`` -- the same kind of file :func:`join` writes."""
    where = f"{command}: --record {path}"
    kind = _not_regular(path)
    if kind is not None:
        raise InputError(f"{where}: is {kind}; --record writes only regular files")
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"{where}: no such directory {parent}")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise InputError(f"{where}: cannot write in {parent}: {error.strerror or error}") from None


def part_path(path: Path, run_id: str, index: int) -> str:
    """Where variant ``index``'s monitor writes its part, beside ``path``."""
    return str(path.with_name(f".{path.name}.{run_id}.v{index}"))


class Recorder:
    """One variant's part of the trace."""

    def __init__(self, path: str, index: int) -> None:
        self.index = index
        # A fresh file of our own: never one that was there (a link planted
        # under the part's name is not followed).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        # The part's own header line is dropped by join(); TraceWriter always writes one.
        self._writer = TraceWriter(self._file)
        self._last = time.perf_counter_ns()
        #: Inside a write or flush of ours; a flush asked meanwhile (from a
        #: signal handler, :meth:`flush`) is due when it ends.
        self._writing = False
        self._flush_due = False

    def entered(self) -> int:
        """At a call's entry stop: the time, for :meth:`call`'s ``gap``."""
        return time.perf_counter_ns()

    def call(self, call: Call, outcome: Outcome, entered: int, ran: int | None, ns: int | None = None) -> None:
        """A finished call: ``entered`` at its entry stop, ``ran`` when it was
        resumed to run (None: skipped); now is its end. ``ns``: how long it
        ran, where the variant measured it itself (a fast call of the
        in-process path: its library's clock, realmode.inproc.path)."""
        now = time.perf_counter_ns()
        gap = max(0, entered - self._last)
        if ns is None and ran is not None:
            ns = max(0, now - ran)
        self._guarded(self._writer.call, self.index, call, outcome, ns=ns, gap=gap)
        self._last = now

    def exited(self, status: int) -> None:
        self._guarded(self._writer.exit, self.index, status)

    def killed(self, signal: int) -> None:
        self._guarded(self._writer.killed, self.index, signal)

    def _guarded(self, write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """``write`` with a flush asked meanwhile held back until it is done."""
        self._writing = True
        try:
            write(*args, **kwargs)
        finally:
            self._writing = False
        if self._flush_due:
            self.flush()

    def flush(self) -> None:
        """Write out what the file buffers. A run stopped from outside asks
        each monitor for its figures (``reports.PROGRESS_SIGNAL``) and then
        SIGKILLs it: without this the calls of the last buffer (the monitor
        had recorded them, and a follower's had checked them) were lost, and
        :func:`join` cut every variant to the shortest part -- 19 of 462
        checked calls in a loop of `echo`, more for a server's longer
        records. Asked from that signal's handler, so never inside a write
        or flush of ours: one under way flushes as it ends instead (a
        buffered file flushed from inside its own write raises)."""
        if self._writing:
            self._flush_due = True
            return
        self._flush_due = False
        if self._file.closed:
            return
        self._writing = True
        try:
            self._file.flush()
        finally:
            self._writing = False

    def close(self) -> None:
        if not self._file.closed:
            self._writing = True  # a flush asked now finds the file closed, or closing
            self._file.close()


def join(
    path: Path, parts: Iterable[str], variants: list[dict[str, Any]], *, trim: bool = False, **header: Any
) -> dict[int, tuple[int, int]]:
    """Write ``path``: the header, then each part's events (its header line
    skipped); the parts are removed. By variant (a part's index): the calls
    written, and those left out by ``trim``.

    ``trim``: the run was stopped from outside (``dmvx real`` ends a server
    that never exits once its client is done), so a follower may still be a
    few calls behind the leader. Every variant's calls are cut to the fewest
    any variant has, its end line kept, so the streams agree call for call
    where the monitors had compared them.

    ``path`` appears whole or not at all: the events go to a fresh temporary
    file beside it (``mkstemp``: an unpredictable name, created exclusively)
    that replaces it at the end by ``rename``, and is removed if writing
    fails; a failure is one :class:`InputError`. ``path`` is replaced only
    if it is a regular file or absent.
    """
    parts = list(parts)
    keep = min(_calls(part) for part in parts) if trim and parts else None
    counts: dict[int, tuple[int, int]] = {}
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(name)
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            TraceWriter(out, variants, **header)
            for index, part in enumerate(parts):
                written = dropped = 0
                for line in _events(part):
                    if _is_call(line):
                        if keep is not None and written >= keep:
                            dropped += 1
                            continue
                        written += 1
                    out.write(line)
                counts[index] = (written, dropped)
        kind = _not_regular(path)  # made one since the run started?
        if kind is not None:
            raise InputError(f"--record {path}: is {kind} now; --record writes only regular files")
        os.replace(tmp, path)
    except OSError as error:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise InputError(f"--record {path}: cannot write the trace: {error.strerror or error}") from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        for part in parts:
            try:
                os.unlink(part)
            except FileNotFoundError:
                pass
    return counts


def _events(part: str) -> Iterator[str]:
    """A part's event lines (its header skipped); a line cut short by a
    killed monitor is dropped, and a missing part has none."""
    try:
        with open(part, encoding="utf-8") as handle:
            handle.readline()
            for line in handle:
                if line.endswith("\n"):
                    yield line
    except FileNotFoundError:
        return


def _is_call(line: str) -> bool:
    # Parts are TraceWriter's (sorted keys, no spaces): an end line starts
    # with its only key besides "v", every other line is a call.
    return not line.startswith(_END_LINES)


def _calls(part: str) -> int:
    return sum(1 for line in _events(part) if _is_call(line))
