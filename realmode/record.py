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
import time
from pathlib import Path
from typing import Any, Iterable

from dmvx.calls import Call, Outcome
from dmvx.trace import TraceWriter


class Recorder:
    """One variant's part of the trace."""

    def __init__(self, path: str, index: int) -> None:
        self.index = index
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        # The part's own header line is dropped by join(); TraceWriter always writes one.
        self._writer = TraceWriter(self._file)
        self._last = time.perf_counter_ns()

    def entered(self) -> int:
        """At a call's entry stop: the time, for :meth:`call`'s ``gap``."""
        return time.perf_counter_ns()

    def call(self, call: Call, outcome: Outcome, entered: int, ran: int | None) -> None:
        """A finished call: ``entered`` at its entry stop, ``ran`` when it was
        resumed to run (None: skipped); now is its end."""
        now = time.perf_counter_ns()
        gap = max(0, entered - self._last)
        self._writer.call(self.index, call, outcome, ns=None if ran is None else max(0, now - ran), gap=gap)
        self._last = now

    def exited(self, status: int) -> None:
        self._writer.exit(self.index, status)

    def killed(self, signal: int) -> None:
        self._writer.killed(self.index, signal)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def join(path: Path, parts: Iterable[str], variants: list[dict[str, Any]], **header: Any) -> None:
    """Write ``path``: the header, then each part's events (its header line
    skipped); the parts are removed."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8") as out:
        TraceWriter(out, variants, **header)
        for part in parts:
            try:
                with open(part, encoding="utf-8") as handle:
                    handle.readline()
                    for line in handle:
                        if line.endswith("\n"):  # a line cut by a killed monitor is dropped
                            out.write(line)
            except FileNotFoundError:
                continue
            finally:
                try:
                    os.unlink(part)
                except FileNotFoundError:
                    pass
    os.replace(tmp, path)
