"""What the tracer knows of each traced process and of the call it holds.

A :class:`Proc` is one traced process of the variant with its core monitor;
its :class:`Held` is the call it is stopped at and how far the tracer got
with it. The held call's :class:`Stage` moves only along
:data:`STAGE_TRANSITIONS` (as the core's monitors do, :mod:`dmvx.states`), so
a stop that finds a call in a stage nobody planned for fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from dmvx.actions import Carrier, Deliver, Skip
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.states import install, move
from realmode import abi
from realmode.pids import PidMap

#: clone flags the tracer reads: a new thread, sharing the descriptor table,
#: untraced (refused).
CLONE_FILES, CLONE_THREAD, CLONE_UNTRACED = 0x400, 0x10000, 0x800000

if TYPE_CHECKING:
    from realmode.inproc.path import InProcess
    from realmode.tracer.tally import Count


class Stage(Enum):
    """Where the tracer is with a held call."""

    ENTRY = "entry"  # stopped at its entry; the core has not released it yet
    # (a follower's monitor may hold it for the leader's result note)
    RUNNING = "running"  # resumed to run natively; its exit stop is to come
    SKIPPING = "skipping"  # follower: turned into a placeholder open, whose exit is to come
    AWAIT_PID = "await-pid"  # follower: a fork returned; stays stopped until the leader's pid is known
    SIGNALLED = "signalled"  # a signal ends it where the leader's did (dmvx.signals); its exit is to come


_S = Stage
#: Every move of a held call. It leaves the tracer (``Proc.held = None``)
#: from any stage; these are the moves while it is held.
STAGE_TRANSITIONS = install(
    {
        _S.ENTRY: (_S.RUNNING, _S.SKIPPING, _S.SIGNALLED),
        _S.RUNNING: (_S.AWAIT_PID, _S.SIGNALLED),
        _S.SKIPPING: (),
        _S.AWAIT_PID: (),
        _S.SIGNALLED: (),
    }
)


@dataclass(slots=True)
class Held:
    """The call a process is stopped at, and what is being done with it."""

    raw: abi.RawCall
    stage: Stage = Stage.ENTRY
    seq: int | None = None
    compared: int | None = None  # its sequence number when the core compares it (None: local)
    skip: Skip | None = None
    scratch: tuple[int, bytes] | None = None  # address, saved bytes
    restarting: bool = False  # the kernel interrupted it; a restart may come
    interrupted: int = 0  # the "interrupted" result it returned then (dmvx.signals.RESTART)
    ending: Deliver | None = None  # the signal that ends it where the leader's ended (Stage.SIGNALLED)
    continuing: bool = False  # its restart (or the next part of a steered read) runs
    expect: int | None = None  # the leader's result a follower steers towards
    fake: int | None = None  # a result the follower returns without running the call
    inject: int = 0  # a signal to deliver when the call returns
    done_bytes: int = 0  # a steered read: bytes read so far
    restore: dict[str, int] | None = None  # registers to put back when it returns
    steer: dict[str, int] | None = None  # registers a follower set to steer it
    child: Proc | None = None  # fork family: the new process
    clone_flags: int = 0  # clone family: the flags (CLONE_THREAD, CLONE_FILES ...)
    entered: int = 0  # --record: when it stopped at its entry
    ran: int | None = None  # --record: when it was resumed to run
    ahead: bool = False  # leader: run before the core heard of it (realmode.inproc.path.InProcess.run_ahead)
    count: Count | None = None  # --summary: its (call, route) count (realmode.tracer.tally)
    since: int = 0  # --summary: when it stopped at its entry, until released

    def to(self, stage: Stage) -> None:
        """Move to ``stage`` (:data:`STAGE_TRANSITIONS` must list the move)."""
        self.stage = move("held call", self.stage, stage)


class Proc:
    """One traced process or thread of the variant and its core monitor
    (each thread is traced, and compared, as a stream of its own)."""

    def __init__(
        self,
        pid: int,
        monitor: LeaderMonitor | FollowerMonitor,
        pids: PidMap,
        phase: str,
        abi_diverse: bool = False,
        machine_cpus: frozenset[int] | None = None,
    ) -> None:
        self.pid = pid
        #: The thread group (process) this thread belongs to: its leader's pid.
        self.tgid = pid
        self.monitor = monitor
        self.stream = monitor.stream
        self.reader = abi.Reader(pid, pids, abi_diverse, machine_cpus)
        self.held: Held | None = None
        self.alive = True
        self.done = False
        self.phase = phase  # launch | loader | compare
        self.fresh = False  # auto-attached child whose first SIGSTOP is still to come
        self.breakpoint: tuple[int, bytes] | None = None  # entry address, original word
        self.waiting_since: float | None = None
        self.passing = False  # a call the monitor does not hold is running
        self.drop_signal = 0  # a signal to drop once (SIGPIPE of a steered write)
        #: Signals sent to it to be delivered where the monitors placed them
        #: (signal -> how many): let through at their delivery stop.
        self.released: dict[int, int] = {}
        self.peer_killed = 0  # the signal the leader's process died of, once it did
        self.timer_signal_sent = False  # that signal, a timer's, sent here (routing.Router.on_peer_killed)
        #: In the leader: a follower's fatal signal the core asked to let land
        #: here (FollowerKilled), whose absence is still to be told to the core
        #: (routing.Router.report_absence).
        self.absence_due = 0
        self.heard = 0.0  # when the last message for this process's stream came (time.monotonic())
        self.status: int | None = None
        #: It made its own ``exit`` call: its end is its own, and compared. A
        #: thread that ends without one was taken along by its group's end
        #: (exit_group, a fatal signal, another thread's exec).
        self.own_exit = False
        #: What carries out this process's monitor's actions (set on adoption).
        self.hands: Carrier | None = None
        #: Its in-process path, if it has a shared area (realmode.inproc.path).
        self.fast: InProcess | None = None

    @property
    def group_leader(self) -> bool:
        """Whether this is its thread group's leader: the process itself,
        whose end is the process's end."""
        return self.pid == self.tgid


@dataclass
class Stats:
    stops: int = 0
    executed: int = 0
    skipped: int = 0
    processes: int = 0


class Unsupported(Exception):
    """The program did something real mode does not follow."""
