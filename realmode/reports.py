"""What a monitor process reports to the process that launched it, and the
one place those reports are read.

Each monitor (:mod:`realmode.tracer`) writes its reports on a pipe, one JSON
line each: :class:`Started` once its variant runs, then exactly one end --
:class:`Exited` (the variant exited), :class:`Halted` (a verdict ended the
run), :class:`UnsupportedProgram` (the program did something real mode cannot
follow) or :class:`MonitorFailed` (the monitor itself broke). ``dmvx run``
(:mod:`realmode.orchestrator`) and the agents on emulated hosts
(:mod:`realmode.net.agents`) both read them with :func:`collect`, so the
rules of who decides a run are written once (:class:`RunReports`):

* the first end that is not :class:`Exited` decides the run; every variant is
  then killed at once and the other monitors get a grace period to speak;
* a monitor whose pipe closes before its end report died: ``connector-lost``
  naming its variant;
* later verdicts may correct the first as the core's
  :class:`dmvx.verdict.Blame` says: an ``auth-failure`` or ``protocol-error``
  replaces a ``connector-lost`` (it is why the link was lost), and the
  claims of silence from both ends of a lost link are weighed;
* :class:`UnsupportedProgram` outranks any verdict, before or after it: a monitor
  that cannot follow its program kills its variant, and the verdict a peer
  then reports (the lost link, a stop) is only the echo of that.

The leader's :class:`Halted` also says what it ran before the verdict
(:mod:`dmvx.ranahead`). A run interrupted from outside asks every monitor
for a :class:`Progress` report, its figures so far, before it kills them
(:func:`progress`).
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dmvx import codec
from dmvx.messages import Stop
from dmvx.ranahead import RanAhead
from dmvx.verdict import Blame, Verdict, VerdictKind, lost, variant_name
from realmode.net import runs

#: After the run is decided, how long the other monitors have to say theirs.
GRACE = 0.5
#: The same when the first verdict is a claim of silence: the other end of a
#: lost link makes its claim up to a keepalive period later
#: (:func:`realmode.connector.keepalive_every`, at most 0.5 s).
SILENCE_GRACE = GRACE + 0.5


@dataclass(frozen=True)
class Started:
    """The monitor's variant runs, as process ``pid``."""

    pid: int


@dataclass(frozen=True)
class Exited:
    """The variant ended by itself with wait ``status``."""

    status: int
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Halted:
    """The monitor ended the run with ``verdict`` (its own or a peer's)."""

    verdict: Verdict
    stats: dict[str, Any] = field(default_factory=dict)
    #: The leader's: the calls it ran that no follower had confirmed.
    ran_ahead: RanAhead | None = None


@dataclass(frozen=True)
class UnsupportedProgram:
    """The program did something real mode cannot follow (``message`` says what)."""

    message: str
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitorFailed:
    """The monitor itself broke: a bug, with its traceback."""

    message: str
    traceback: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    """The monitor's figures so far, when asked (:data:`PROGRESS_SIGNAL`);
    not an end: the variant may still run."""

    stats: dict[str, Any] = field(default_factory=dict)


#: The signal that asks a monitor for a :class:`Progress` report.
PROGRESS_SIGNAL = signal.SIGUSR1

Report = Started | Exited | Halted | UnsupportedProgram | MonitorFailed | Progress
#: Each report's name on the wire.
_TAGS: dict[type, str] = {
    Started: "started",
    Exited: "done",
    Halted: "verdict",
    UnsupportedProgram: "unsupported",
    MonitorFailed: "error",
    Progress: "progress",
}


def encode(report: Report) -> bytes:
    """One JSON line. A verdict travels as the :class:`~dmvx.messages.Stop`
    the core's codec encodes, so it arrives exactly as it was decided."""
    data: dict[str, Any] = {"event": _TAGS[type(report)]}
    if isinstance(report, Started):
        data["pid"] = report.pid
    elif isinstance(report, Exited):
        data.update(status=report.status, stats=report.stats)
    elif isinstance(report, Halted):
        data.update(stop=codec.dumps(Stop("0", report.verdict)).hex(), stats=report.stats)
        if report.ran_ahead is not None:
            data["ran_ahead"] = report.ran_ahead.to_dict()
    elif isinstance(report, Progress):
        data.update(stats=report.stats)
    elif isinstance(report, UnsupportedProgram):
        data.update(message=report.message, stats=report.stats)
    else:
        data.update(message=report.message, traceback=report.traceback, stats=report.stats)
    return (json.dumps(data) + "\n").encode()


def decode(line: bytes) -> Report:
    """The report of one line :func:`encode` wrote."""
    data = json.loads(line)
    tag, stats = data["event"], data.get("stats", {})
    if tag == "started":
        return Started(data["pid"])
    if tag == "done":
        return Exited(data["status"], stats)
    if tag == "verdict":
        stop = codec.loads(bytes.fromhex(data["stop"]))
        if not isinstance(stop, Stop):
            raise ValueError(f"a verdict report carries a {type(stop).__name__}, not a Stop")
        ran = data.get("ran_ahead")
        return Halted(stop.verdict, stats, RanAhead.from_dict(ran) if ran is not None else None)
    if tag == "progress":
        return Progress(stats)
    if tag == "unsupported":
        return UnsupportedProgram(data["message"], stats)
    if tag == "error":
        return MonitorFailed(data.get("message", "monitor failed"), data.get("traceback", ""), stats)
    raise ValueError(f"unknown monitor report {tag!r}")


def write(fd: int, report: Report) -> None:
    """Send ``report`` on the pipe ``fd`` (one write: lines do not interleave)."""
    os.write(fd, encode(report))


class VariantRecord(Protocol):
    """What the launcher keeps per variant, filled in from its reports."""

    index: int
    pid: int | None
    status: int | None
    stats: dict[str, Any]
    end: str | None


@dataclass
class RunReports:
    """What the monitors' reports say about a run, and when they said it."""

    verdict: Verdict | None = None
    unsupported: str | None = None
    error: str | None = None
    program_status: int | None = None
    #: What the leader ran before the verdict, as its Halted report says.
    ran_ahead: RanAhead | None = None
    #: When every monitor had reported its variant started, and when
    #: collecting ended (time.monotonic()).
    started_at: float | None = None
    ended_at: float | None = None
    #: When each variant's monitor reported its end (index -> monotonic time).
    reported_at: dict[int, float] = field(default_factory=dict)
    #: Who the verdicts reported so far blame (the core's rule).
    blame: Blame = field(default_factory=Blame)
    #: Each started variant's start time (index -> clock ticks since boot), read when its
    #: monitor reported it: what :func:`kill_variants` checks a pid against.
    variant_starts: dict[int, int | None] = field(default_factory=dict)

    @property
    def decided(self) -> bool:
        return self.verdict is not None or self.unsupported is not None or self.error is not None

    def decide_verdict(self, reporter: int | None, verdict: Verdict) -> bool:
        """Record ``reporter``'s verdict (None: the collector's own); True
        if it is the first word that ends the run. Later ones correct it as
        the core says (:class:`dmvx.verdict.Blame`)."""
        if self.unsupported is not None or self.error is not None:
            return False
        first = self.blame.add(reporter, verdict)
        self.verdict = self.blame.verdict
        return first

    def decide_unsupported(self, message: str) -> bool:
        """Record an unsupported program; it outranks any verdict (the
        module's docstring says why). True if it ends the run now."""
        first = not self.decided
        if self.error is None:
            self.unsupported = self.unsupported or message
            self.verdict = None
        return first

    def decide_error(self, message: str) -> bool:
        """Record a failure; a monitor that fails after the run was decided
        (its variant killed under it) changes nothing."""
        if not self.decided:
            self.error = message
            return True
        return False


def collect(
    pipes: dict[int, int],
    variants: list[Any],
    reports: RunReports,
    *,
    timeout: float | None = None,
    tick: Callable[[], str | None] | None = None,
    finished: Callable[[], bool] | None = None,
    settle: float = GRACE,
    kill: Callable[[], None] | None = None,
) -> None:
    """Read the monitors' reports from ``pipes`` (fd -> variant index) into
    ``variants`` (each a :class:`VariantRecord`) and ``reports`` until every
    monitor has ended, or ``timeout`` seconds pass (then the run is stopped
    with a no-progress verdict).

    ``tick`` is called about every 50 ms (the caller's own watch); when it
    returns a reason, the run is stopped as an error with that reason. A
    served program that never exits by itself (a web server) ends its run
    through ``finished``, polled as often: once it says True with no verdict
    yet, the reports are read ``settle`` seconds more -- time for the
    followers to consume what the leader already did -- and, if no verdict
    came by then, collecting ends with none: a clean run. The variants still
    run then; the caller ends them. The pipes stay open: the caller closes
    them.

    ``kill`` ends every variant once the run is decided, for variants that
    are not processes of this machine (agents on machines reached over SSH,
    :mod:`realmode.net.sshagents`): a pid reported from another machine is
    never signalled, nor its start time read, here. By default the variants'
    pids are SIGKILLed (:func:`kill_variants`)."""
    buffers = dict.fromkeys(pipes, b"")
    open_fds = set(pipes)
    pending = {v.index for v in variants}
    started: set[int] = set()
    grace_until: float | None = None
    settle_until: float | None = None
    give_up = None if timeout is None else time.monotonic() + timeout

    def end_now() -> None:
        nonlocal grace_until
        if kill is not None:
            kill()
        else:
            kill_variants(variants, reports.variant_starts)
        # A claim of silence waits for the other end of the link to make its own.
        grace_until = time.monotonic() + (SILENCE_GRACE if reports.blame.weighing else GRACE)

    while open_fds and (pending or (grace_until is not None and time.monotonic() < grace_until)):
        now = time.monotonic()
        if grace_until is not None and now >= grace_until:
            break
        if grace_until is None and reports.verdict is None and reports.error is None:
            if settle_until is None and finished is not None and finished():
                settle_until = now + settle
            if settle_until is not None and now >= settle_until:
                break
        if give_up is not None and now >= give_up and reports.verdict is None:
            reports.decide_verdict(
                None, Verdict(VerdictKind.NO_PROGRESS, 0, detail=f"the run took longer than {timeout:g} s")
            )
            end_now()
        limit = 0.05
        if grace_until is not None:
            limit = min(limit, max(0.0, grace_until - now))
        readable, _, _ = select.select(list(open_fds), [], [], limit)
        if tick is not None and grace_until is None:
            reason = tick()
            if reason is not None and reports.decide_error(reason):
                end_now()
        for fd in readable:
            index = pipes[fd]
            data = os.read(fd, 65536)
            if not data:
                open_fds.discard(fd)
                if index in pending:
                    pending.discard(index)
                    reports.reported_at.setdefault(index, time.monotonic())
                    died = lost(index, f"the monitor of {variant_name(index)} died")
                    if reports.decide_verdict(None, died) and grace_until is None:
                        end_now()
                continue
            buffers[fd] += data
            *lines, buffers[fd] = buffers[fd].split(b"\n")
            for line in lines:
                report = decode(line)
                variant = variants[index]
                if isinstance(report, Started):
                    variant.pid = report.pid
                    if kill is None:  # a pid of this machine
                        reports.variant_starts[index] = runs.start_time(report.pid)
                    started.add(index)
                    if len(started) == len(variants):
                        reports.started_at = time.monotonic()
                    continue
                if isinstance(report, Progress):
                    variant.stats = report.stats
                    continue
                pending.discard(index)
                reports.reported_at[index] = time.monotonic()
                variant.end = _TAGS[type(report)]
                variant.stats = report.stats
                if isinstance(report, Exited):
                    variant.status = report.status
                    if index == 0:
                        reports.program_status = report.status
                    continue
                if isinstance(report, Halted):
                    if index == 0 and report.ran_ahead is not None:
                        reports.ran_ahead = report.ran_ahead
                    first = reports.decide_verdict(index, report.verdict)
                elif isinstance(report, UnsupportedProgram):
                    first = reports.decide_unsupported(report.message)
                else:
                    first = reports.decide_error(report.message)
                if first and grace_until is None:
                    end_now()
    reports.ended_at = time.monotonic()


def progress(pipes: dict[int, int], variants: list[Any], monitors: list[int], wait: float = GRACE) -> None:
    """Ask every monitor (pids ``monitors``) for its figures so far and take
    them into ``variants``' stats, waiting at most ``wait`` seconds: a run
    interrupted from outside still reports what it did."""
    for pid in monitors:
        try:
            os.kill(pid, PROGRESS_SIGNAL)
        except ProcessLookupError:
            pass
    buffers = dict.fromkeys(pipes, b"")
    waiting = set(pipes)
    deadline = time.monotonic() + wait
    while waiting:
        readable, _, _ = select.select(list(waiting), [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            return
        for fd in readable:
            data = os.read(fd, 65536)
            if not data:
                waiting.discard(fd)
                continue
            buffers[fd] += data
            *lines, buffers[fd] = buffers[fd].split(b"\n")
            for line in lines:
                report = decode(line)
                stats = getattr(report, "stats", None)
                if stats:
                    variants[pipes[fd]].stats = stats
                if isinstance(report, Progress):
                    waiting.discard(fd)


def kill_variants(variants: list[Any], started: dict[int, int | None] | None = None) -> None:
    """SIGKILL every variant that has started (its monitor reaps it) -- if it is still that
    process: ``started`` maps a variant's index to its start time as read when it reported
    started. A variant killed from outside and reaped by its monitor frees its pid, and pids
    come round within seconds on a busy machine (32768 of them): a stale pid must not kill a
    stranger."""
    for variant in variants:
        if variant.pid is None:
            continue
        if started is not None:
            begun = started.get(variant.index)
            if begun is None or not runs.alive(variant.pid, begun):
                continue
        try:
            os.kill(variant.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
