"""Threads: how their ends, and an exec by one of them, reach the core.

Every thread is traced, and compared, as a stream of its own (a
:class:`~realmode.tracer.procs.Proc` with its own core monitor, made at its
``clone`` like a process's). What threads have that processes do not is a
group that ends together, and that is what this module handles:

* **A thread's own end is compared; one its group's end took along is not.**
  ``exit_group`` (or a fatal signal, or another thread's ``execve``) kills
  every thread of the group wherever it is, and where that is differs from
  one variant to the next: a worker one call further in the follower than
  in the leader is no divergence. So a thread that ends without having made
  its own ``exit`` call (the tracer stops at ``exit``, which is otherwise
  local: :data:`realmode.abi.THREAD_EXIT`) ends quietly, its monitor done
  with nothing compared. The group's leader ends last (the kernel reports
  it once the group is empty) with the group's status: that is the
  process's end, compared as any process's.
* A thread that made its own ``exit`` call ends as a process does, with the
  ``<exit>`` pseudo-call agreed with its peers. Its peer may have been taken
  along meanwhile (the group's end raced with its ``exit``); that agreement
  then never comes, and is moot once the group's own end is agreed:
  :meth:`Threads.group_ended` lets every thread of the group still waiting
  for it go.
* **exec from a thread other than the leader** (the kernel's ``de_thread``):
  the other threads end (taken along), the exec'ing thread takes the
  group leader's pid, and the old leader disappears without a report.
  :meth:`Threads.exec_by_thread` moves the exec'ing thread's stream to that
  pid; the old leader's stream ends quietly.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from dmvx.verdict import Verdict
from realmode.tracer.procs import Proc

if TYPE_CHECKING:
    from realmode.tracer.process import TracerProcess


class Threads:
    """Thread-group bookkeeping of one tracer."""

    def __init__(self, tracer: TracerProcess) -> None:
        self.t = tracer

    def taken_along(self, proc: Proc) -> None:
        """``proc``, a thread that made no ``exit`` call, has ended with its
        group: done, with nothing compared."""
        self._quiet(proc)
        self.t.maybe_finish()

    def group_ended(self, leader: Proc) -> None:
        """The end of ``leader``'s thread group is agreed: threads of the
        group that ended on their own and still wait for their peers to
        agree (a peer the group's end took along never will) are done."""
        for proc in list(self.t.procs.values()):
            if proc is not leader and proc.tgid == leader.tgid and not proc.alive and not proc.done:
                self._quiet(proc)
        self.t.maybe_finish()

    def exec_by_thread(self, leader: Proc, thread: Proc) -> Proc:
        """``thread`` called ``execve`` and now runs as its group's leader's
        pid (``PTRACE_GETEVENTMSG`` at the exec stop gave its former tid):
        it keeps its stream under the new pid; ``leader``'s stream ends
        quietly (the kernel reports no end for it). The group's canonical
        pid is unchanged (the leader's pid is the group's in every variant)."""
        pid = leader.pid
        self.t.procs.pop(thread.pid, None)
        leader.alive = False
        leader.held = None
        self._quiet(leader)
        thread.pid = pid
        thread.tgid = pid
        thread.reader.pid = pid
        self.t.procs[pid] = thread
        if self.t.root is leader:
            self.t.root = thread
        return thread

    def explain(self, proc: Proc | None, verdict: Verdict) -> Verdict:
        """``verdict`` with the thread it was given at named, when the
        variant has threads: where the threads' interleaving decides what a
        thread calls (a pool's workers taking items from one queue, a lazy
        set-up the first thread to get there makes), the variants' threads
        call differently, and the verdict is that, not an attack."""
        if proc is None or not proc.monitor.fds.shared or verdict.detail.startswith("thread "):
            return verdict
        count = sum(1 for p in self.t.procs.values() if p.tgid == proc.tgid)
        where = f"thread {proc.stream} of a process with {count} threads"
        note = (
            "threads whose interleaving decides what they call (a shared work queue, a lazy one-time set-up) "
            "diverge: docs/realmode.md, Threads"
        )
        detail = f"{where}: {verdict.detail}; {note}" if verdict.detail else f"{where}; {note}"
        return dataclasses.replace(verdict, detail=detail)

    @staticmethod
    def _quiet(proc: Proc) -> None:
        proc.done = True
        proc.waiting_since = None
