"""The per-variant monitor process (DCP-MON): a ptrace tracer driving the core.

One monitor process launches its variant as a traced child and follows every
process the variant creates (``PTRACE_O_TRACEFORK``/``VFORK``/``CLONE``). Each
traced process has its own core monitor (:mod:`dmvx.monitor`): the first
process is stream ``"0"``, and a process's n-th child gets the stream the
parent's monitor hands out with :meth:`~dmvx.monitor.LeaderMonitor.child`
(``"0.1"``, ``"0.1.2"`` ...), equal in every variant because process
creation runs in lockstep. Messages name their stream; this module routes
each to its process's monitor and holds those that arrive before that
process exists. It decides nothing itself: which calls are compared, who
runs them and when a run is over are the core's answers.

What it does do, because only a tracer can:

* **Launch in the right order** (a ``SECCOMP_RET_TRACE`` before
  ``PTRACE_O_TRACESECCOMP`` is set would fail the call): the child asks to be
  traced and stops itself; the monitor sets its options (``EXITKILL`` so a
  dead monitor never leaves its variant running unwatched); the child sets
  no-new-privs, loads the filter (:mod:`realmode.seccomp`) and execs.
  Comparison starts at that exec -- or, for variants of different ABIs, at
  the program's entry point after each exec (``compare_from="entry"``): the
  dynamic loaders of two ABIs make different calls by design, so each
  variant's loader runs uncompared on its own local files and an ``int3`` at
  ``AT_ENTRY`` says where the program itself begins.
* **Hide the vDSO** at every exec (``AT_SYSINFO_EHDR`` becomes ``AT_IGNORE``):
  libc then makes real ``clock_gettime``/``gettimeofday``/``time`` calls,
  which the core replicates like any other.
* **Skip** a call for a follower at its seccomp stop, in one stop: the number
  becomes -1, the return register gets the leader's result and its output
  bytes go to the follower's own pointers (:mod:`realmode.abi`).
* **Placeholders**: when the leader alone opened a descriptor, the follower's
  call is turned into ``openat(O_PATH)`` of the same path or
  ``openat("/dev/null")`` (``pipe2`` for a pair); the kernel picks the lowest
  free number and the tables are equal, so it lands at the leader's number,
  which is checked.
* **Pids** (:mod:`realmode.pids`): the leader announces each new process's pid
  on the child's stream; a follower maps its own pids to the leader's in
  results and back in the arguments of calls it runs itself.
* **Steer** calls a follower runs itself towards the leader's result where
  only timing could make them differ (asynchronous replication tells the
  follower that result first): a pipe ``read`` reads exactly as many bytes as
  the leader's did, ``wait4`` reaps the child the leader's reaped, and a
  write that met a closed pipe in one variant but not the other ends as in
  the leader.
* **Signals**: a signal the process ignores (by disposition or by default,
  like ``SIGCHLD``) is dropped at its delivery stop, as the kernel would have
  dropped it untraced; a call it interrupted restarts and is reported once
  with its final result. Others are delivered as they come (see
  docs/realmode.md for what that does and does not guarantee).
* **Time**: a wait the core asked for that lasts longer than the stall
  timeout becomes ``stalled()``; a variant inside a long native call sends
  heartbeats so the others' wait is not mistaken for a stall.
* **Batching**: entries of asynchronous calls and acknowledgements are sent
  to the CONNECTOR in batches (one write per batch, at the latest after
  ``flush_delay``); anything somebody may be waiting for goes at once.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import time
import traceback
from dataclasses import dataclass

from dmvx import codec, syscalls
from dmvx.actions import EVERYONE, Done, Execute, Halt, Send, Skip, Wait
from dmvx.calls import KILLED, Call, Outcome
from dmvx.messages import Ack, Entry, EntryKind, Stop
from dmvx.monitor import FollowerMonitor, LeaderMonitor, predicted_result
from dmvx.policy import Policy
from dmvx.syscalls import Arch
from dmvx.verdict import Verdict, VerdictKind
from realmode import abi, link
from realmode.record import Recorder
from realmode import ptrace_ll as ll
from realmode.pids import PID_RESULTS, PidMap

LEADER = 0
#: The pseudo-call of a pid announcement: the leader's pid of a stream's process.
PID_CALL = "<pid>"
#: The pseudo-call of a result note: what the leader's own run of a call
#: released by GO returned, for a follower that steers its run towards it.
RESULT_CALL = "<result>"
AT_NULL, AT_IGNORE, AT_ENTRY, AT_SYSINFO_EHDR = 0, 1, 9, 33
O_RDWR, O_CLOEXEC, O_PATH, O_NOFOLLOW, O_DIRECTORY = 0o2, 0o2000000, 0o10000000, 0o400000, 0o200000
_PATH_OPENS = {"open": 0, "openat": 1}
AT_FDCWD = -100
_PROCESS_CREATORS = frozenset({"fork", "vfork", "clone", "clone3"})
CLONE_VM, CLONE_THREAD, CLONE_UNTRACED = 0x100, 0x10000, 0x800000
WNOHANG = 1
EINTR, EPIPE = 4, 32
#: Results with which the kernel says "interrupted, to be restarted or turned into EINTR".
_RESTART = frozenset({-512, -513, -514, -516})
_WRITES = frozenset({"write", "pwrite64", "writev", "pwritev", "pwritev2"})
#: The send calls that raise SIGPIPE with EPIPE unless their flags (this
#: argument) say MSG_NOSIGNAL; every call in _WRITES always does.
_SEND_FLAGS = {"sendto": 3, "sendmsg": 2}
MSG_NOSIGNAL = 0x4000
#: Calls a follower may steer towards the leader's result (see _steer).
_STEERED = _WRITES | {"read", "wait4"}
#: Signals whose default action is to do nothing.
_DEFAULT_IGNORED = frozenset({signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH})
HEARTBEAT_EVERY = 0.5
#: Stops handled before the link is looked at again.
_STOPS_PER_ROUND = 16
_BATCH_BYTES = 1 << 16
#: How often a process held while its leader's died of a signal looks for
#: that signal here (see MonitorProcess._on_peer_killed).
_PEER_SIGNAL_POLL = 0.005
_MASK64 = (1 << 64) - 1


@dataclass
class Launch:
    """Everything a monitor process needs to start its variant."""

    index: int
    n_variants: int
    policy: Policy
    path: str
    argv: list[str]
    env: dict[str, str]
    filter: list[tuple[int, int, int, int]]
    stall_timeout: float = 2.0
    cpu: int | None = None
    #: "exec": compare from the first exec on; "entry": from each program's
    #: entry point (variants of different ABIs, whose loaders differ).
    compare_from: str = "exec"
    #: The leader's stdout goes to its stderr (``dmvx run --json`` owns stdout).
    stdout_to_stderr: bool = False
    #: Longest an entry of an asynchronous call waits in the send batch.
    flush_delay: float = 0.001
    #: The CPU of the program itself when not the monitor's (``cpu``).
    program_cpu: int | None = None
    #: Where to write this variant's part of the trace (``dmvx run --record``).
    record: str | None = None


@dataclass(slots=True)
class _Held:
    """The call a process is stopped at, and what is being done with it."""

    raw: abi.RawCall
    stage: str = "entry"  # entry | running | skipping | await-pid
    seq: int | None = None
    skip: Skip | None = None
    scratch: tuple[int, bytes] | None = None  # address, saved bytes
    restarting: bool = False   # the kernel interrupted it; a restart may come
    continuing: bool = False   # its restart (or the next part of a steered read) runs
    expect: int | None = None  # the leader's result a follower steers towards
    fake: int | None = None    # a result the follower returns without running the call
    inject: int = 0            # a signal to deliver when the call returns
    done_bytes: int = 0        # a steered read: bytes read so far
    restore: dict[str, int] | None = None  # registers to put back when it returns
    steer: dict[str, int] | None = None    # registers a follower set to steer it
    note: bool = False         # leader: tell the followers this call's result
    child: "Proc | None" = None  # fork family: the new process
    entered: int = 0           # --record: when it stopped at its entry
    ran: int | None = None     # --record: when it was resumed to run


class Proc:
    """One traced process of the variant and its core monitor."""

    def __init__(self, pid: int, monitor: LeaderMonitor | FollowerMonitor, pids: PidMap, phase: str,
                 abi_diverse: bool = False) -> None:
        self.pid = pid
        self.monitor = monitor
        self.stream = monitor.stream
        self.reader = abi.Reader(pid, pids, abi_diverse)
        self.held: _Held | None = None
        self.alive = True
        self.done = False
        self.phase = phase        # launch | loader | compare
        self.fresh = False        # auto-attached child whose first SIGSTOP is still to come
        self.breakpoint: tuple[int, bytes] | None = None  # entry address, original word
        self.waiting_since: float | None = None
        self.passing = False      # a call the monitor does not hold is running
        self.drop_signal = 0      # a signal to drop once (SIGPIPE of a steered write)
        self.peer_killed = 0      # the signal the leader's process died of, once it did
        self.status: int | None = None


@dataclass
class Stats:
    stops: int = 0
    executed: int = 0
    skipped: int = 0
    processes: int = 0


class Unsupported(Exception):
    """The program did something real mode does not follow."""


class MonitorProcess:
    def __init__(self, launch: Launch, link_sock: socket.socket, report_fd: int) -> None:
        self.launch = launch
        self.link = link_sock
        self.report_fd = report_fd
        self.index = launch.index
        self.leader = launch.index == LEADER
        self.pids = PidMap()
        self.procs: dict[int, Proc] = {}
        self.streams: dict[str, Proc] = {}
        self.root: Proc | None = None
        self.inbox: dict[str, list] = {}
        self.announced: dict[str, int] = {}
        self.orphans: dict[int, int] = {}
        #: Followers: the leader's result of calls they may steer, by (stream, seq).
        self.peek: dict[tuple[str, int], int] = {}
        #: Followers: calls released by GO whose result note is still to come.
        self.noted: set[tuple[str, int]] = set()
        self.finished = False
        self.last_inbound = time.monotonic()
        self.last_heartbeat_in = self.last_inbound
        self.last_heartbeat = 0.0
        self.stats = Stats()
        self.link_reader = link.LinkReader()
        self.outbox: list[bytes] = []
        self.outbox_size = 0
        self.flush_at: float | None = None
        self.batching = launch.policy.async_replication
        self.more_stops = False
        self.recorder = Recorder(launch.record, launch.index) if launch.record else None

    # -- reporting to the orchestrator ------------------------------------------

    def _report(self, **event: object) -> None:
        os.write(self.report_fd, (json.dumps(event) + "\n").encode())

    # -- launch ------------------------------------------------------------------

    def launch_variant(self) -> None:
        launch = self.launch
        if launch.cpu is not None:
            try:
                os.sched_setaffinity(0, {launch.cpu})
            except OSError:
                pass
        pid = os.fork()
        if pid == 0:  # the variant-to-be
            try:
                if self.index != LEADER:
                    null = os.open(os.devnull, os.O_RDWR)
                    for fd in (0, 1, 2):
                        os.dup2(null, fd)
                elif launch.stdout_to_stderr:
                    os.dup2(2, 1)
                os.closerange(3, 65536)
                # As a shell would start it: Python ignores SIGPIPE and SIGXFSZ
                # and the run's helpers SIGINT and SIGTERM; none of that is the program's.
                for number in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                    signal.signal(number, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, ())
                if launch.program_cpu is not None and launch.program_cpu != launch.cpu:
                    os.sched_setaffinity(0, {launch.program_cpu})
                ll.traceme()
                os.kill(os.getpid(), signal.SIGSTOP)
                ll.install_filter(launch.filter)
                os.execve(launch.path, launch.argv, launch.env)
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, ll.WALL)
        if not os.WIFSTOPPED(status):
            raise RuntimeError(f"variant {self.index} did not stop before exec (status {status:#x})")
        ll.set_options(pid, ll.PTRACE_O_TRACESYSGOOD | ll.PTRACE_O_TRACESECCOMP | ll.PTRACE_O_TRACEEXEC
                       | ll.PTRACE_O_TRACEFORK | ll.PTRACE_O_TRACEVFORK | ll.PTRACE_O_TRACECLONE
                       | ll.PTRACE_O_EXITKILL)
        monitor: LeaderMonitor | FollowerMonitor
        if self.leader:
            monitor = LeaderMonitor(launch.policy, launch.n_variants)
        else:
            monitor = FollowerMonitor(launch.policy, launch.index, launch.n_variants)
        self.root = self._adopt(pid, monitor, "launch")
        if self.leader:
            self._announce(self.root)
        ll.resume(pid, False)
        self._report(event="started", pid=pid)

    def _adopt(self, pid: int, monitor: LeaderMonitor | FollowerMonitor, phase: str) -> Proc:
        proc = Proc(pid, monitor, self.pids, phase, self.launch.compare_from == "entry")
        self.procs[pid] = proc
        self.streams[proc.stream] = proc
        self.stats.processes += 1
        if not self.leader and proc.stream in self.announced:
            self.pids.add(pid, self.announced[proc.stream])
        return proc

    def _announce(self, proc: Proc) -> None:
        """Tell the followers the leader's pid of ``proc`` (seq 0 on its stream)."""
        self._send(EVERYONE, Entry(proc.stream, 0, Call(PID_CALL, (proc.pid,)), EntryKind.RESULT, Outcome(proc.pid)))

    # -- main loop -----------------------------------------------------------------

    def run(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.launch_variant()
        try:
            while not self.finished:
                timeout = 0.0 if self.more_stops else self._timeout()
                if self.outbox and self._anyone_waiting():
                    self._flush()
                readable, _, _ = select.select([self.link, wake_r], [], [], timeout)
                if wake_r in readable:
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                try:
                    self._reap()
                    if self.link in readable and not self.finished:
                        self._read_link()
                    self._timers()
                except ll.PtraceError as error:
                    if error.errno != errno.ESRCH:
                        raise
                    # A process died under us (killed from outside, or by
                    # the orchestrator): its exit status is reaped next round.
                    continue
            self._flush()
        except Unsupported as problem:
            self._kill_all()
            self._report(event="unsupported", message=str(problem))
        finally:
            self._kill_all()
            if self.recorder is not None:
                self.recorder.close()

    def _anyone_waiting(self) -> bool:
        return any(proc.waiting_since is not None for proc in self.procs.values())

    def _timeout(self) -> float:
        now = time.monotonic()
        deadlines = []
        running = False
        for proc in self.procs.values():
            if proc.waiting_since is not None:
                deadlines.append(self._wait_reference(proc) + self.launch.stall_timeout)
            if proc.held is not None and proc.held.stage in ("running", "skipping") and proc.alive:
                running = True
            if self._awaiting_peer_signal(proc):
                deadlines.append(now + _PEER_SIGNAL_POLL)
        if running:
            deadlines.append(self.last_heartbeat + HEARTBEAT_EVERY)
        if self.flush_at is not None:
            deadlines.append(self.flush_at)
        if not deadlines:
            return 1.0
        return max(0.0, min(deadlines) - now)

    @staticmethod
    def _awaiting_peer_signal(proc: Proc) -> bool:
        """Whether ``proc`` waits at a call while the leader's process has
        died of a signal: a signal that may yet come here too."""
        return bool(proc.peer_killed) and proc.alive and proc.held is not None \
            and proc.held.stage in ("entry", "await-note")

    def _wait_reference(self, proc: Proc) -> float:
        """Since when ``proc`` has waited without word from the others. A
        heartbeat (a peer inside a long native call) excuses the wait of a
        live process, not of one that has ended: no peer call can be owed
        to it, only the peer's own end."""
        reference = max(proc.waiting_since or 0.0, self.last_inbound)
        return max(reference, self.last_heartbeat_in) if proc.alive else reference

    def _timers(self) -> None:
        if self.finished:
            return
        now = time.monotonic()
        if self.flush_at is not None and now >= self.flush_at:
            self._flush()
        if now - self.last_heartbeat >= HEARTBEAT_EVERY and any(
                p.alive and p.held is not None and p.held.stage in ("running", "skipping") for p in self.procs.values()):
            # Inside a native call (possibly a blocking one): tell the others.
            self.last_heartbeat = now
            self._send(link.BROADCAST if self.leader else LEADER, None)
        for proc in list(self.procs.values()):
            if self.finished:
                return
            if self._awaiting_peer_signal(proc):
                self._on_peer_killed(proc)
            since = proc.waiting_since
            if since is not None and now - self._wait_reference(proc) >= self.launch.stall_timeout:
                proc.waiting_since = None
                self._carry_out(proc, proc.monitor.stalled())

    # -- the link ------------------------------------------------------------------

    def _send(self, to: int, message, batch: bool = False) -> None:
        record = link.encode(to, message)
        self.outbox.append(record)
        self.outbox_size += len(record)
        if not batch or self.outbox_size >= _BATCH_BYTES:
            self._flush()
        elif self.flush_at is None:
            self.flush_at = time.monotonic() + self.launch.flush_delay

    def _flush(self) -> None:
        self.flush_at = None
        if not self.outbox:
            return
        data = b"".join(self.outbox)
        self.outbox.clear()
        self.outbox_size = 0
        try:
            self.link.sendall(data)
        except OSError:
            pass  # the CONNECTOR is gone; the peers see the link drop

    def _read_link(self) -> None:
        try:
            records = link.receive(self.link, self.link_reader)
        except (link.LinkClosed, OSError):
            if not self.finished:
                self._halt(Verdict(VerdictKind.CONNECTOR_LOST, 0, detail="the CONNECTOR went away"))
            return
        for _peer, payload in records:
            if self.finished:
                return
            message = link.decode(payload)
            if message is None:
                self.last_heartbeat_in = time.monotonic()
                continue
            self.last_inbound = time.monotonic()
            self._route(message)

    def _route(self, message) -> None:
        if isinstance(message, Stop):
            proc = self.streams.get(message.stream) or self.root
            if proc is not None:
                proc.monitor.message_received(message)
            self._halt(message.verdict)
            return
        stream = message.stream
        if isinstance(message, Entry) and message.call.name == PID_CALL and message.seq == 0:
            self._on_announce(stream, message.call.args[0])
            return
        if isinstance(message, Entry) and message.call.name == RESULT_CALL:
            self._on_note(stream, message.seq, message.call.args[0])
            return
        proc = self.streams.get(stream)
        if proc is None:
            self.inbox.setdefault(stream, []).append(message)
            return
        self._deliver(proc, message)

    def _deliver(self, proc: Proc, message) -> None:
        if isinstance(message, Entry) and message.call.name == KILLED and not self.leader:
            proc.peer_killed = message.call.args[0]
            self._on_peer_killed(proc)
        if isinstance(message, Entry) and message.kind is EntryKind.GO and message.call.name in _STEERED \
                and not self.leader:
            self.noted.add((proc.stream, message.seq))
        if isinstance(message, Entry) and message.outcome is not None and not self.leader and (
                message.call.name in _STEERED):
            self.peek[(proc.stream, message.seq)] = message.outcome.result
        elif isinstance(message, Entry) and message.kind is EntryKind.PREDICTED and message.call.name in _WRITES \
                and not self.leader:
            predicted = predicted_result(message.call)
            if predicted is not None:
                self.peek[(proc.stream, message.seq)] = predicted
        self._carry_out(proc, proc.monitor.message_received(message))

    def _on_peer_killed(self, proc: Proc) -> None:
        """The leader's process died of ``proc.peer_killed`` and this one is
        held at a call. If that signal is pending here too (sent alike, say
        by the parent's kill), let it land as it did there: the call returns
        EINTR without running and the signal is delivered on the way back.

        The signal need not be pending yet when the leader's death is heard:
        the sender here (this variant's parent, running its own ``kill``) may
        come later, so the loop asks again while the process waits
        (:meth:`_awaiting_peer_signal`)."""
        held = proc.held
        if held is None or held.stage not in ("entry", "await-note") or not proc.alive \
                or not _pending(proc.pid, proc.peer_killed):
            return
        regs = ll.get_regs(proc.pid)
        regs.orig_rax = _MASK64
        regs.rax = -EINTR & _MASK64
        ll.set_regs(proc.pid, regs)
        proc.held = None
        proc.waiting_since = None
        ll.resume(proc.pid, False)

    def _on_note(self, stream: str, seq: int, result: int) -> None:
        self.peek[(stream, seq)] = result
        proc = self.streams.get(stream)
        held = proc.held if proc is not None else None
        if held is not None and held.stage == "await-note" and held.seq == seq:
            held.stage = "entry"
            self._execute(proc, seq)

    def _on_announce(self, stream: str, pid: int) -> None:
        self.announced[stream] = pid
        proc = self.streams.get(stream)
        if proc is not None:
            self.pids.add(proc.pid, pid)
        for parent in list(self.procs.values()):
            held = parent.held
            if held is not None and held.stage == "await-pid" and held.child is not None and held.child.stream == stream:
                self._finish_fork(parent, held, pid)

    # -- tracee events ---------------------------------------------------------------

    def _reap(self) -> None:
        """Handle the stops that are there. At most a round's worth: a tracee
        resumed on this CPU often reaches its next stop before the monitor
        asks again, and the link (a peer's verdict above all) must not wait
        behind a busy variant; the next round's select then does not block.

        With no stop there, the monitor gives its CPU up once before it goes
        to sleep in select: a variant resumed on this CPU that yields it back
        before its next stop (``sched_yield``, a sleep of no time) then
        reaches that stop meanwhile, without the trip through SIGCHLD, the
        wake-up pipe and select that a sleeping monitor takes."""
        self.more_stops = False
        yielded = False
        for _ in range(_STOPS_PER_ROUND):
            if self.finished:
                return
            try:
                pid, status = os.waitpid(-1, os.WNOHANG | ll.WALL)
            except ChildProcessError:
                return
            if pid == 0:
                if yielded:
                    return
                yielded = True
                os.sched_yield()
                continue
            proc = self.procs.get(pid)
            if proc is None:
                if os.WIFSTOPPED(status):
                    self.orphans[pid] = status  # a new child, reported before its parent's event
                continue
            self._on_status(proc, status)
        self.more_stops = True

    def _on_status(self, proc: Proc, status: int) -> None:
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self._on_end(proc, status)
            return
        if not os.WIFSTOPPED(status) or not proc.alive:
            return
        sig = os.WSTOPSIG(status)
        event = status >> 16
        if sig == signal.SIGTRAP | 0x80:
            info = ll.syscall_info(proc.pid)
            if info.op == ll.OP_EXIT:
                self._on_exit(proc, info.rval)
            else:
                self._on_plain_entry(proc, info)
        elif sig == signal.SIGTRAP and event == ll.PTRACE_EVENT_SECCOMP:
            self._on_entry(proc)
        elif sig == signal.SIGTRAP and event in (ll.PTRACE_EVENT_FORK, ll.PTRACE_EVENT_VFORK, ll.PTRACE_EVENT_CLONE):
            self._on_fork_event(proc)
        elif sig == signal.SIGTRAP and event == ll.PTRACE_EVENT_EXEC:
            self._on_exec(proc)
        elif sig == signal.SIGTRAP and event:
            self._resume(proc)
        else:
            self._on_signal(proc, sig)

    def _resume(self, proc: Proc, sig: int = 0) -> None:
        """Resume ``proc``, stopping at the next syscall too when a held call
        still has to return (or an interrupted one may restart)."""
        held = proc.held
        ll.resume(proc.pid, proc.passing or (held is not None and held.stage != "entry"), sig)

    def _on_plain_entry(self, proc: Proc, info: ll.SyscallStop) -> None:
        """A syscall-entry stop: only seen while a held call runs or restarts."""
        held = proc.held
        if held is not None and (held.restarting or held.continuing) and info.nr == held.raw.nr:
            # The interrupted call restarts (or the program, told EINTR by a
            # handler, makes it again): one call for the core; steer it again.
            held.restarting = False
            held.continuing = True
            self._resteer(proc, held)
        elif held is not None and held.restarting and info.nr == _restart_nr(info.arch):
            held.restarting = False
            held.continuing = True
        else:
            proc.passing = True  # a call of its own (a handler's, or a local one)
        self._resume(proc)

    def _on_entry(self, proc: Proc) -> None:
        info = ll.syscall_info(proc.pid)
        if proc.phase != "compare":
            ll.resume(proc.pid, False)  # the launcher's exec, or the loader of an ABI-diverse pair
            return
        held = proc.held
        proc.passing = False
        if held is not None:
            if held.continuing or (held.restarting and info.nr == held.raw.nr):
                held.restarting = False
                held.continuing = True
                ll.resume(proc.pid, True)
                return
            if held.restarting:
                # The interrupted call did not restart: the program got EINTR.
                proc.held = None
                self._carry_out(proc, proc.monitor.call_exited(Outcome(-EINTR)))
                if self.finished or not proc.alive:
                    return
        arch = abi.arch_of(info.arch)
        if arch is None:
            raise Unsupported(f"variant {self.index} made a system call of unknown architecture {info.arch:#x}")
        raw = proc.reader.call(arch, info.nr, info.args)
        if raw.name in _PROCESS_CREATORS:
            self._check_creator(proc, raw)
        self.stats.stops += 1
        proc.held = _Held(raw)
        if self.recorder is not None and proc is self.root:
            proc.held.entered = self.recorder.entered()
        self._carry_out(proc, proc.monitor.call_entered(raw.call))

    def _check_creator(self, proc: Proc, raw: abi.RawCall) -> None:
        flags = 0
        if raw.name == "clone":
            flags = raw.args[0]
        elif raw.name == "clone3" and raw.args[0]:
            flags = int.from_bytes(ll.read_memory(proc.pid, raw.args[0], 8), "little")
        if flags & CLONE_THREAD:
            raise Unsupported(
                f"{self.launch.argv[0]} created a thread ({raw.kernel_name} with CLONE_THREAD); "
                f"real mode follows processes, not threads")
        if flags & CLONE_UNTRACED:
            raise Unsupported(f"{self.launch.argv[0]} asked for an untraced child ({raw.kernel_name} with CLONE_UNTRACED)")

    def _on_exit(self, proc: Proc, rval: int) -> None:
        held = proc.held
        if proc.passing:
            proc.passing = False
            self._resume(proc)
            return
        if held is None or held.stage == "entry":
            ll.resume(proc.pid, False)
            return
        if rval in _RESTART and held.fake is None:
            held.restarting = True
            held.continuing = False
            ll.resume(proc.pid, True)
            return
        held.continuing = False
        if held.stage == "skipping":
            proc.held = None
            self._finish_skip(proc, held, rval)
            return
        if self.leader:
            held.child = None
            self._complete(proc, held, rval)
            return
        steered = self._after_steering(proc, held, rval)
        if steered is None:
            return  # the steered call goes on
        if held.child is not None and steered > 0:
            virtual = self.announced.get(held.child.stream)
            if virtual is None:
                held.stage = "await-pid"  # stays stopped until the leader says
                proc.waiting_since = time.monotonic()
                return
            self._finish_fork(proc, held, virtual)
            return
        if steered > 0 and held.raw.name in PID_RESULTS:
            steered = self.pids.virtual(steered)
        if steered != rval or held.restore:
            self._set_result(proc, held, steered)
        self._complete(proc, held, steered)

    def _complete(self, proc: Proc, held: _Held, rval: int) -> None:
        proc.held = None
        if held.note:
            self._send(EVERYONE, Entry(proc.stream, held.seq, Call(RESULT_CALL, (rval,)), EntryKind.RESULT,
                                       Outcome(rval)))
        outcome = proc.reader.outcome(held.raw, rval)
        if self.recorder is not None and proc is self.root:
            self.recorder.call(held.raw.call, outcome, held.entered, held.ran)
        self._carry_out(proc, proc.monitor.call_exited(outcome))
        if proc.alive and not self.finished:
            ll.resume(proc.pid, False, held.inject)

    def _finish_fork(self, proc: Proc, held: _Held, virtual: int) -> None:
        self._set_result(proc, held, virtual)
        held.child = None
        self._complete(proc, held, virtual)

    def _set_result(self, proc: Proc, held: _Held, value: int) -> None:
        regs = ll.get_regs(proc.pid)
        regs.rax = value & _MASK64
        if held.restore:
            for name, original in held.restore.items():
                setattr(regs, name, original)
            held.restore = None
        ll.set_regs(proc.pid, regs)

    def _on_fork_event(self, proc: Proc) -> None:
        child_pid = ll.event_message(proc.pid)
        child = self._adopt(child_pid, proc.monitor.child(), proc.phase)
        child.fresh = True
        child.reader.epoll = proc.reader.epoll.copy()  # a copy of the parent's descriptor table
        if proc.held is not None:
            proc.held.child = child
        if self.leader:
            self._announce(child)
        for message in self.inbox.pop(child.stream, []):
            self._deliver(child, message)
        status = self.orphans.pop(child_pid, None)
        if status is not None:
            self._on_status(child, status)
        ll.resume(proc.pid, True)

    def _on_exec(self, proc: Proc) -> None:
        entry = self._rewrite_auxv(proc.pid)
        if self.launch.compare_from == "entry" and entry:
            original = ll.read_memory(proc.pid, entry, 8)
            ll.poke_word(proc.pid, entry, b"\xcc" + original[1:])
            proc.breakpoint = (entry, original)
            proc.phase = "loader"
        else:
            proc.phase = "compare"
        self._resume(proc)

    def _on_signal(self, proc: Proc, sig: int) -> None:
        if proc.fresh and sig == signal.SIGSTOP:
            proc.fresh = False
            ll.resume(proc.pid, False)
            return
        if sig == signal.SIGTRAP and proc.breakpoint is not None:
            regs = ll.get_regs(proc.pid)
            address, original = proc.breakpoint
            if (regs.rip - 1) & _MASK64 == address:
                ll.poke_word(proc.pid, address, original)
                regs.rip = address
                ll.set_regs(proc.pid, regs)
                proc.breakpoint = None
                proc.phase = "compare"  # the program itself starts here
                ll.resume(proc.pid, False)
                return
        if sig == proc.drop_signal or _ignored(proc.pid, sig):
            proc.drop_signal = 0 if sig == proc.drop_signal else proc.drop_signal
            sig = 0
        self._resume(proc, sig)

    def _on_end(self, proc: Proc, status: int) -> None:
        proc.alive = False
        proc.held = None
        proc.waiting_since = None
        if self.recorder is not None and proc is self.root and not self.finished:
            if os.WIFEXITED(status):
                self.recorder.exited(os.WEXITSTATUS(status))
            else:
                self.recorder.killed(os.WTERMSIG(status))
        if not proc.done and not self.finished:
            if os.WIFEXITED(status):
                self._carry_out(proc, proc.monitor.process_exited(os.WEXITSTATUS(status)))
            else:
                self._carry_out(proc, proc.monitor.process_killed(os.WTERMSIG(status)))
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self.finished or any(p.alive or not p.done for p in self.procs.values()):
            return
        self.finished = True
        assert self.root is not None
        self._flush()
        if self.recorder is not None:
            self.recorder.close()
        self._report(event="done", status=self.root.status, stats=self._stats())

    def _rewrite_auxv(self, pid: int) -> int:
        """Hide the vDSO (AT_SYSINFO_EHDR becomes AT_IGNORE, see the module doc)
        in the new image's auxiliary vector; return its AT_ENTRY."""
        regs = ll.get_regs(pid)
        word = 8 if regs.cs == 0x33 else 4
        address = regs.rsp & (_MASK64 if word == 8 else 0xFFFFFFFF)
        data = b""
        position = 0

        def next_word() -> int:
            nonlocal data, position
            while len(data) - position < word:
                more = ll.read_memory(pid, address + len(data), 4096 - ((address + len(data)) % 4096))
                if not more:
                    raise OSError("auxiliary vector not found on the new stack")
                data += more
            value = int.from_bytes(data[position:position + word], "little")
            position += word
            return value

        argc = next_word()
        for _ in range(argc + 1):
            next_word()
        while next_word():
            pass
        entry = 0
        while True:
            kind = next_word()
            value = next_word()
            if kind == AT_NULL:
                return entry
            if kind == AT_ENTRY:
                entry = value
            if kind == AT_SYSINFO_EHDR:
                ll.write_memory(pid, address + position - 2 * word, AT_IGNORE.to_bytes(word, "little"))

    # -- actions -----------------------------------------------------------------------

    def _carry_out(self, proc: Proc, actions: list) -> None:
        released = None
        for action in actions:
            kind = type(action)
            if kind is Send:
                message = action.message
                batch = self.batching and (type(message) is Ack or (type(message) is Entry and message.kind in (
                    EntryKind.FULL, EntryKind.DIGEST, EntryKind.PREDICTED)))
                if type(message) is Entry and message.kind is EntryKind.GO:
                    released = message.seq
                self._send(action.to, message, batch)
            elif kind is Execute:
                if released is not None and released == action.seq and proc.held is not None \
                        and proc.held.raw.name in _STEERED:
                    proc.held.note = True  # every variant runs it: the followers steer by its result
                self._execute(proc, action.seq)
            elif kind is Skip:
                self._skip(proc, action)
            elif kind is Wait:
                if proc.waiting_since is None:
                    proc.waiting_since = time.monotonic()
            elif kind is Halt:
                self._halt(action.verdict)
                return
            elif kind is Done:
                proc.done = True
                proc.waiting_since = None
                proc.status = action.exit_status
                self._maybe_finish()
                return

    def _execute(self, proc: Proc, seq: int | None) -> None:
        proc.waiting_since = None
        held = proc.held
        if held is None or held.stage != "entry":
            return
        held.seq = seq
        key = (proc.stream, seq)
        if key in self.noted:
            self.noted.discard(key)
            if key not in self.peek:
                held.stage = "await-note"  # released by GO: run it once the leader's result is known
                proc.waiting_since = time.monotonic()
                return
        held.stage = "running"
        self.stats.executed += 1
        if self.recorder is not None and proc is self.root:
            held.ran = time.perf_counter_ns()
        if not self.leader and (self.pids.active or seq is not None):
            self._steer(proc, held)
        ll.resume(proc.pid, True)

    def _steer(self, proc: Proc, held: _Held) -> None:
        """A follower runs this call itself: give it this variant's pids and
        steer it towards the leader's result (see the module doc)."""
        raw = held.raw
        name = raw.name
        registers = abi.ARG_REGISTERS[raw.arch]
        mask = abi.WORD_MASK[raw.arch]
        changes: dict[str, int] = {}
        for index in self.pids.indexes(name, raw.call.args) if self.pids.active else ():
            value = raw.call.args[index]
            if isinstance(value, int) and value not in (0, -1):
                real = self.pids.real(value)
                if real != value:
                    changes[registers[index]] = real & mask
        expect = self.peek.pop((proc.stream, held.seq), None) if held.seq is not None else None
        if expect is not None:
            held.expect = expect
            if name == "read" and expect > 0 and _signed(raw.args[2], raw.arch) > expect:
                changes[registers[2]] = expect
            elif name == "wait4":
                if expect > 0:
                    changes[registers[0]] = self.pids.real(expect) & mask
                    changes[registers[2]] = (raw.args[2] & ~WNOHANG) & mask
                elif expect == 0:
                    held.fake = 0
            elif name in _WRITES and expect == -EPIPE:
                held.fake = -EPIPE
                held.inject = signal.SIGPIPE
        if held.fake is not None or changes:
            regs = ll.get_regs(proc.pid)
            held.steer = changes
            held.restore = {}
            for register, value in changes.items():
                held.restore[register] = getattr(regs, register)
                setattr(regs, register, value)
            if held.fake is not None:
                regs.orig_rax = _MASK64
                regs.rax = held.fake & _MASK64
            ll.set_regs(proc.pid, regs)

    def _resteer(self, proc: Proc, held: _Held) -> None:
        """At the entry of a restarted or repeated call: the steering again."""
        registers = abi.ARG_REGISTERS[held.raw.arch]
        values = dict(held.steer or {})
        if held.done_bytes:
            mask = abi.WORD_MASK[held.raw.arch]
            values[registers[1]] = (held.raw.args[1] + held.done_bytes) & mask
            values[registers[2]] = held.expect - held.done_bytes
        if not values:
            return
        regs = ll.get_regs(proc.pid)
        for register, value in values.items():
            setattr(regs, register, value)
        ll.set_regs(proc.pid, regs)

    def _after_steering(self, proc: Proc, held: _Held, rval: int) -> int | None:
        """The follower's own call returned ``rval``: finish the steering and
        return the result the program is to see. None means the call goes on
        (a read that has not read what the leader's read yet)."""
        if held.fake is not None:
            return held.fake
        expect = held.expect
        if expect is None:
            return rval
        name = held.raw.name
        if name == "read" and rval > 0:
            held.done_bytes += rval
            if held.done_bytes < expect:
                # Read the rest: back to the syscall instruction with buffer
                # and count moved on, as the kernel itself restarts a call.
                regs = ll.get_regs(proc.pid)
                registers = abi.ARG_REGISTERS[held.raw.arch]
                mask = abi.WORD_MASK[held.raw.arch]
                if held.restore is None:
                    held.restore = {}
                for register in (registers[1], registers[2]):
                    held.restore.setdefault(register, getattr(regs, register))
                setattr(regs, registers[1], (held.raw.args[1] + held.done_bytes) & mask)
                setattr(regs, registers[2], expect - held.done_bytes)
                regs.rax = held.raw.nr
                regs.rip = (regs.rip - 2) & mask
                ll.set_regs(proc.pid, regs)
                held.continuing = True
                ll.resume(proc.pid, True)
                return None
            return held.done_bytes
        if name in _WRITES and rval == -EPIPE and expect >= 0:
            proc.drop_signal = signal.SIGPIPE  # the leader's reader took it; this one's had gone
            return expect
        return rval

    def _skip(self, proc: Proc, skip: Skip) -> None:
        proc.waiting_since = None
        self.peek.pop((proc.stream, skip.seq), None)  # the leader's result is used as it is
        held = proc.held
        if held is None or held.stage != "entry":
            return
        self.stats.skipped += 1
        regs = ll.get_regs(proc.pid)
        if skip.new_fds:
            held.stage = "skipping"
            held.skip = skip
            self._placeholder(proc, held, regs, skip.new_fds)
            ll.set_regs(proc.pid, regs)
            ll.resume(proc.pid, True)
            return
        # One stop: at a seccomp stop the kernel skips a call numbered -1 and
        # leaves the return register as the tracer set it.
        proc.held = None
        result = self._write_outcome(proc, held, skip)
        if result is None:
            return
        self._record_skip(proc, held, skip, result)
        regs.orig_rax = _MASK64
        regs.rax = result & _MASK64
        ll.set_regs(proc.pid, regs)
        if _raised_sigpipe(held.raw.call, result):
            # The kernel sent the leader SIGPIPE with its EPIPE; a signal
            # given at a seccomp stop is dropped, so send it: it is pending
            # when the skipped call returns, as the leader's was.
            os.kill(proc.pid, signal.SIGPIPE)
        ll.resume(proc.pid, False)

    def _placeholder(self, proc: Proc, held: _Held, regs: ll.UserRegs, fds: tuple[int, ...]) -> None:
        """Make the skipped call open placeholders at the leader's numbers."""
        arch = held.raw.arch
        cloexec = any(info.cloexec for fd, info in proc.monitor.fds.snapshot().items() if fd in fds)
        address = (regs.rsp - 1024) & ~0xF
        if arch is Arch.I386:
            address &= 0xFFFFFFFF
        flags = O_CLOEXEC if cloexec else 0
        raw = held.raw
        data = b"/dev/null\0" if len(fds) == 1 else b"\0" * 8
        openat = syscalls.number("openat", arch)
        if len(fds) == 1 and raw.name in _PATH_OPENS and self._resolvable(proc, raw):
            # The same path as an O_PATH descriptor: no side effect (nothing is
            # read, no device opened), and fchdir or *at calls on it still work.
            path_index = _PATH_OPENS[raw.name]
            dirfd = raw.call.args[0] if raw.name == "openat" else AT_FDCWD
            path_register = held.raw.args[0 if raw.kernel_name in ("open", "creat") else 1]
            original_flags = raw.call.args[path_index + 1] if raw.kernel_name != "creat" else 0
            regs.orig_rax = openat
            args = [dirfd, path_register, O_PATH | flags | (original_flags & (O_NOFOLLOW | O_DIRECTORY)), 0]
        elif len(fds) == 1:
            held.scratch = (address, ll.read_memory(proc.pid, address, len(data)))
            ll.write_memory(proc.pid, address, data)
            regs.orig_rax = openat
            args = [AT_FDCWD, address, O_RDWR | flags, 0]
        else:
            held.scratch = (address, ll.read_memory(proc.pid, address, len(data)))
            ll.write_memory(proc.pid, address, data)
            regs.orig_rax = syscalls.number("pipe2", arch)
            args = [address, flags]
        mask = abi.WORD_MASK[arch]
        for name, value in zip(abi.ARG_REGISTERS[arch], args):
            setattr(regs, name, value & mask)

    def _resolvable(self, proc: Proc, raw: abi.RawCall) -> bool:
        """Whether this variant can open the leader's path itself (not under
        /proc, where a path names a process, and existing from here)."""
        path = raw.call.args[_PATH_OPENS[raw.name]]
        if not isinstance(path, str) or path.startswith("/proc") or raw.name not in _PATH_OPENS:
            return False
        if not path.startswith("/"):
            dirfd = raw.call.args[0] if raw.name == "openat" else AT_FDCWD
            base = f"/proc/{proc.pid}/cwd" if dirfd == AT_FDCWD else f"/proc/{proc.pid}/fd/{dirfd}"
            path = f"{base}/{path}"
        return os.path.lexists(path)

    def _finish_skip(self, proc: Proc, held: _Held, rval: int) -> None:
        skip = held.skip
        assert skip is not None
        got: tuple[int, ...] = (rval,)
        if held.scratch is not None:
            address, saved = held.scratch
            if len(skip.new_fds) == 2:
                pair = ll.read_memory(proc.pid, address, 8)
                got = (int.from_bytes(pair[:4], "little", signed=True),
                       int.from_bytes(pair[4:], "little", signed=True)) if rval == 0 else (rval,)
            ll.write_memory(proc.pid, address, saved)
        if got != tuple(skip.new_fds):
            self._halt(Verdict(VerdictKind.PROTOCOL_ERROR, skip.seq, {self.index: held.raw.call},
                               detail=f"placeholder descriptor landed at {got}, the leader's is {skip.new_fds}"))
            return
        result = self._write_outcome(proc, held, skip)
        if result is None:
            return
        self._record_skip(proc, held, skip, result)
        regs = ll.get_regs(proc.pid)
        regs.rax = result & _MASK64
        ll.set_regs(proc.pid, regs)
        ll.resume(proc.pid, False)

    def _record_skip(self, proc: Proc, held: _Held, skip: Skip, result: int) -> None:
        if self.recorder is not None and proc is self.root:
            self.recorder.call(held.raw.call, Outcome(result, skip.outcome.outputs), held.entered, None)

    def _write_outcome(self, proc: Proc, held: _Held, skip: Skip) -> int | None:
        """Write the leader's outcome into ``proc``; None (and a verdict) if it cannot be."""
        try:
            return proc.reader.write_outcome(held.raw, skip.outcome)
        except (OSError, ValueError) as error:
            if isinstance(error, OSError) and error.errno == errno.ESRCH:
                raise
            self._halt(Verdict(VerdictKind.OUTPUT_MISMATCH, skip.seq, {self.index: held.raw.call},
                               detail=f"cannot write the leader's output into this variant: {error}"))
            return None

    def _halt(self, verdict: Verdict) -> None:
        self._kill_all()
        if not self.finished:
            self.finished = True
            self._flush()
            if self.recorder is not None:
                self.recorder.close()
            self._report(event="verdict", stop=codec.dumps(Stop("0", verdict)).hex(), stats=self._stats())

    def _kill_all(self) -> None:
        alive = [proc for proc in self.procs.values() if proc.alive]
        for proc in alive:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in alive:
            try:
                os.waitpid(proc.pid, ll.WALL)
            except ChildProcessError:
                pass
            proc.alive = False

    def _stats(self) -> dict:
        routes: dict[str, int] = {}
        for proc in self.procs.values():
            for route, count in proc.monitor.routes.items():
                routes[route] = routes.get(route, 0) + count
        return {"stops": self.stats.stops, "executed": self.stats.executed, "skipped": self.stats.skipped,
                "processes": self.stats.processes, "routes": routes}


def _signed(value: int, arch: Arch) -> int:
    bits = 32 if arch is Arch.I386 else 64
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _restart_nr(audit_arch: int) -> int:
    arch = abi.arch_of(audit_arch)
    return syscalls.number("restart_syscall", arch) if arch is not None else -1


_MASK_KEYS = frozenset({b"SigPnd", b"ShdPnd", b"SigBlk", b"SigIgn", b"SigCgt"})


def _raised_sigpipe(call: Call, result: int) -> bool:
    """Whether the kernel sends SIGPIPE along with ``result`` of ``call``: a
    write to a pipe or socket whose reader is gone."""
    if result != -EPIPE:
        return False
    if call.name in _WRITES:
        return True
    index = _SEND_FLAGS.get(call.name)
    flags = call.args[index] if index is not None and len(call.args) > index else None
    return isinstance(flags, int) and not flags & MSG_NOSIGNAL


def _signal_masks(pid: int) -> dict[bytes, int]:
    """The signal masks of /proc/<pid>/status (SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, _, value = line.partition(b":")
        if key in _MASK_KEYS:
            out[key] = int(value.strip(), 16)
    return out


def _pending(pid: int, sig: int) -> bool:
    masks = _signal_masks(pid)
    bit = 1 << (sig - 1)
    return bool((masks.get(b"SigPnd", 0) | masks.get(b"ShdPnd", 0)) & bit) and not masks.get(b"SigBlk", 0) & bit


def _ignored(pid: int, sig: int) -> bool:
    """Whether ``pid`` ignores ``sig`` (SIG_IGN, or SIG_DFL with a default of
    nothing): the kernel drops such signals for untraced processes."""
    if not 0 < sig < 65:
        return False
    fields = _signal_masks(pid)
    bit = 1 << (sig - 1)
    ignored, caught, blocked = fields.get(b"SigIgn", 0), fields.get(b"SigCgt", 0), fields.get(b"SigBlk", 0)
    if blocked & bit:
        return False
    return bool(ignored & bit) or (sig in _DEFAULT_IGNORED and not caught & bit)


def monitor_main(launch: Launch, link_sock: socket.socket, report_fd: int) -> None:
    """Entry of a forked monitor process. Never returns."""
    status = 0
    try:
        MonitorProcess(launch, link_sock, report_fd).run()
    except BaseException as error:  # noqa: BLE001 - reported, then the process ends
        try:
            os.write(report_fd, (json.dumps({"event": "error", "message": f"{type(error).__name__}: {error}",
                                             "traceback": traceback.format_exc()}) + "\n").encode())
        except OSError:
            pass
        status = 70
    finally:
        os._exit(status)
