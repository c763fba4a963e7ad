"""A traced process's in-process path: its records into the core, the leader's entries into its ring.

The variant's library (``realmode/native/dipmon.c``) runs the calls the
tables mark fast without a ptrace stop and appends a record of each to its
out ring. This class, one per traced process that has an area, is the
monitor's side:

* **drain**: each record becomes the same core events a stop would have made
  -- ``call_entered`` with the call decoded by the process's own
  :class:`realmode.abi.Reader` from the record's bytes, then for the leader
  ``call_exited`` with the recorded outcome -- so the core checks every call
  (off the variant's critical path), counts it in the same sequence, sends
  the same entries and acknowledgements and reaches the same verdicts. A
  record the core would not have let run that way, one out of sequence, or
  one that does not parse is a ``protocol-error`` verdict: a variant's
  library is as untrusted as the variant.
* **before a stop**: the ring is drained first, so a traced call lands at the
  right sequence number, and the shared sequence counter is set to the core's
  after it; a leader whose core holds a drained call (the connector buffer
  is full) keeps the stop waiting until the core releases it.
* **feed** (followers): every leader entry of the stream goes into the in
  ring, with the leader's outputs laid out for the library to copy into the
  follower's own buffers; an entry for a call the library does not take is
  marked so, and the library lets the tracer handle that call.
* **tables**: compiled from the core's broker (:mod:`realmode.inproc.tables`)
  and kept current as the core's descriptor table changes.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dmvx.actions import (
    EVERYONE,
    LEADER,
    Carrier,
    Deliver,
    Done,
    Execute,
    FollowerKilled,
    Halt,
    LeaderKilled,
    LeaderPid,
    Send,
    Skip,
    Wait,
)
from dmvx.calls import Call, Outcome
from dmvx.fdtable import CHANGES_FDS
from dmvx.messages import Entry, EntryKind
from dmvx.monitor import predicted_result
from dmvx.signals import RESTART
from dmvx.verdict import Verdict, VerdictKind
from realmode import abi
from realmode import ptrace_ll as ll
from realmode.epoll import EVENTS_ARG, WAITS
from realmode.inproc import layout, tables
from realmode.inproc.area import Area
from realmode.inproc.layout import Malformed, Parsed, Record
from realmode.tracer.procs import Held
from realmode.tracer.tally import Count
from realmode.tracer.tally import now as tally_now

if TYPE_CHECKING:
    from realmode.tracer.process import TracerProcess
    from realmode.tracer.procs import Proc

_CLONE_VM, _CLONE_THREAD = 0x100, 0x10000
#: Stopped calls the tracer itself acts on (process ends, new processes and
#: threads, exec): never run ahead of the core.
_NOT_AHEAD = frozenset({"exit", "exit_group", "fork", "vfork", "clone", "clone3", "execve", "execveat"})
#: Stopped calls the leader's epoll map reads or changes (realmode.epoll): an
#: epoll wait's events are turned into descriptors with it at the call's exit
#: stop, and epoll_ctl and close change it there; the map follows the records
#: as the core takes them, so run ahead of records still in the ring these
#: would meet a map behind the program (a registration in the ring unknown:
#: the event went to the followers as the leader's own pointer, and lighttpd's
#: follower crashed on it) or change it before those records do.
_EPOLL_MAP = WAITS | {"epoll_ctl", "close"}
#: Decoded calls kept per process (:meth:`InProcess._decode`), and in-ring
#: records made per call and outcome (:meth:`InProcess.feed`).
_CALL_CACHE = 256
#: In-ring records longer than this are not kept (a read's data rarely repeats).
_TEMPLATE_BYTES = 1024
#: A call decoded from a record's memory is kept when the memory is at most
#: this big (a server's response header and a small file: ``writev``).
_CACHED_REGION_BYTES = 16 * 1024
#: How often the monitor looks at an active ring, and at an idle one.
POLL_BUSY, POLL_IDLE, IDLE_AFTER = 0.0005, 0.005, 0.02


#: Why a process given the library ran on the ptrace path all the same.
NOT_LOADED = (
    "the program did not take the library's area (statically linked, its environment cleared "
    "before it ran, or a library of another layout version)"
)

_TSC_PER_NS: list[float] = []


def tsc_ns(ticks: int) -> int | None:
    """A fast call's duration, measured by the library in TSC ticks, in ns
    (the kernel's TSC rate: /proc/cpuinfo's ``cpu MHz``, which Linux takes
    from the TSC where it is constant); None when unmeasured or unknown."""
    if not ticks:
        return None
    if not _TSC_PER_NS:
        rate = 0.0
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
                for line in info:
                    if line.startswith("cpu MHz"):
                        rate = float(line.split(":")[1]) / 1000.0
                        break
        except (OSError, ValueError):
            pass
        _TSC_PER_NS.append(rate)
    rate = _TSC_PER_NS[0]
    return round(ticks / rate) if rate > 0 else None


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


class Regions:
    """The memory a record carries, read as the tracee's (abi.Memory)."""

    __slots__ = ("regions",)

    def __init__(self, regions: tuple[tuple[int, bytes], ...], before: bool = False) -> None:
        """``before``: memory as the call read it (decoding the call): the
        regions the library marked so (:data:`layout.REG_BEFORE`) first;
        else as the call left it, without those."""
        after = tuple((base, data) for base, data in regions if not base & layout.REG_BEFORE)
        if before:
            first = tuple((base & ~layout.REG_BEFORE, data) for base, data in regions if base & layout.REG_BEFORE)
            self.regions = first + after if first else after
        else:
            self.regions = after

    def read(self, address: int, size: int) -> bytes:
        if size <= 0:
            return b""
        for base, data in self.regions:
            if base <= address and address + size <= base + len(data):
                return data[address - base : address - base + size]
        raise Malformed(f"the record holds no {size} bytes at {address:#x}")

    def read_string(self, address: int) -> bytes:
        for base, data in self.regions:
            if base <= address < base + len(data):
                rest = data[address - base :]
                end = rest.find(b"\0")
                if end >= 0:
                    return rest[:end]
        raise Malformed(f"the record holds no string at {address:#x}")


_NO_REGIONS = Regions(())


class _Drained(Carrier):
    """Carries out the core's answer to a drained record: messages and
    verdicts as the process's own hands do; the call's fate is noted."""

    __slots__ = ("hands", "fate")

    def __init__(self, hands: Carrier) -> None:
        self.hands = hands
        self.fate: Execute | Skip | Wait | None = None

    def execute(self, action: Execute) -> None:
        self.fate = action

    def skip(self, action: Skip) -> None:
        self.fate = action

    def wait(self, action: Wait) -> None:
        self.fate = action
        self.hands.wait(action)

    def send(self, action: Send) -> None:
        self.hands.send(action)

    def halt(self, action: Halt) -> None:
        self.hands.halt(action)

    def done(self, action: Done) -> None:
        self.hands.done(action)

    def leader_pid(self, action: LeaderPid) -> None:
        self.hands.leader_pid(action)

    def leader_killed(self, action: LeaderKilled) -> None:
        self.hands.leader_killed(action)

    def follower_killed(self, action: FollowerKilled) -> None:
        self.hands.follower_killed(action)

    def deliver_signal(self, action: Deliver) -> None:
        """Never asked for: the core places a signal at a drained call only
        if it was given the signal before that call's record, and a record
        runs before the core hears of it -- too late to end it interrupted.
        So a leader's asynchronous signal reaches its core only at a stop
        with the ring drained, and the fast path stays off while the core
        holds one (:meth:`InProcess.hold_signal`, :meth:`InProcess._switch`):
        the call it is placed at then stops. Should that fail, the run ends
        with this error rather than letting the variants part silently."""
        raise RuntimeError(
            f"signal {action.signal} was placed at call {action.seq}, which the in-process path had already run"
        )


@dataclass(slots=True)
class _Ahead:
    """A leader's stopped call run before the core heard of it: it goes to
    the core once every record written before it has (``boundary``)."""

    boundary: int
    raw: abi.RawCall
    seq: int | None
    outcome: Outcome | None = None


class InProcess:
    """The in-process path of one traced process (see the module docstring)."""

    def __init__(self, tracer: TracerProcess, proc: Proc, area: Area) -> None:
        self.t = tracer
        self.proc = proc
        self.area = area
        self.leader = tracer.leader
        #: Leader: a drained call the core holds (connector buffer full, a vote).
        self.pending: tuple[abi.RawCall, Outcome] | None = None
        #: Follower: the core answered a drained call with a wait (a divergence).
        self.blocked = False
        #: A stop (or the process's end) that waits for the ring to be drained.
        self.deferred_stop = False
        self.deferred_end: int | None = None
        self.backlog: deque[bytes | bytearray] = deque()
        #: Leader: stopped calls run ahead of the core, in order (:meth:`run_ahead`).
        self.ahead: deque[_Ahead] = deque()
        #: A call run ahead may change the descriptor table the core has not
        #: updated yet: no call is run ahead until it has.
        self.fds_stale = False
        self.ran_ahead = 0
        self.seen_fds = proc.monitor.fds.snapshot()
        #: The library may have changed descriptor bytes (fast accept4, close)
        #: since the last :meth:`sync_fds`.
        self._fds_dirty = False
        #: A descriptor's fd route byte by its kind in the core's table.
        self._fd_bits: dict[object, int] = {}
        #: Leader: asynchronous signals the tracer held back while the fast
        #: path ran (:meth:`hold_signal`), for the core at the next stop.
        self.held_signals: list[int] = []
        #: With ``--summary``: the tally's count of the call being handed to the core.
        self._count: Count | None = None
        #: The TSC ticks of the leader's record being handed to the core.
        self._ticks = 0
        self.records = 0
        #: Leader: records the core took as one event each, or in runs
        #: (:meth:`_lead`, :meth:`_lead_run`), not by the general path.
        self.one_step = 0
        self.last_record = 0.0
        #: Records parsed from the out ring and not yet handed to the core,
        #: each with the ring position after it (:meth:`drain`); how far the
        #: ring is parsed and consumed; the malformed record that ended the
        #: last parse, if one did.
        self.parsed: deque[Parsed] = deque()
        self.parsed_to = 0
        self.consumed_at = 0
        self.bad: Malformed | None = None
        #: The carrier of the core's answers to drained records (one, reused).
        self._carrier = _Drained(proc.hands)  # type: ignore[arg-type]
        self.execs = 0
        self.ever_loaded = False
        #: Decoded calls by (number, arguments), for calls whose decoding
        #: reads no memory: a loop makes the same call again and again.
        self._calls: dict[tuple[object, ...], abi.RawCall] = {}
        #: Leader: outcomes by call key, result and memory (:meth:`_decode`).
        self._outcomes: dict[tuple[object, ...], Outcome] = {}
        self._reads_memory = tables.ARCH_READS_MEMORY[tracer.launch.preload_arch]
        self._decodes_before = tables.ARCH_DECODES_BEFORE[tracer.launch.preload_arch]
        self._templates: dict[tuple[Call, EntryKind, Outcome | None], bytes] = {}
        #: The process made a thread (or may have: clone3): threads share the
        #: library's ring, so the fast path stays off in this process for good.
        self.threaded = False
        #: The library's architecture (its records' numbers and registers).
        self.arch = tracer.launch.preload_arch
        #: Leader: a record may go to the core as one event (:meth:`_lead`);
        #: with ``--record`` each takes the general path (its own timing).
        self._one_step = self.leader and not (tracer.recorder is not None and proc is tracer.root)
        self._tables()
        self._switch(True)

    # -- reports -------------------------------------------------------------

    @property
    def path(self) -> str:
        """Which path this process's replicated calls took."""
        return "in-process" if self.ever_loaded or self.area.loaded else "ptrace"

    def summary(self) -> dict[str, object]:
        path = self.path
        return {
            "path": path,
            **({"why": NOT_LOADED} if path == "ptrace" else {}),
            "fast_calls": self.records,
            **({"one_step_calls": self.one_step} if self.leader else {}),
            "fallbacks": self.area.get64(layout.H_FALLBACK),
            "stops_run_ahead": self.ran_ahead,
        }

    # -- tables ----------------------------------------------------------------

    def _tables(self) -> None:
        monitor = self.proc.monitor
        self.area.set_routes(
            tables.call_table(monitor.broker, monitor.fds, self.arch), tables.fd_table(monitor.broker, monitor.fds)
        )
        self.area.set32(layout.H_SOCKET_BITS, tables.socket_bits(monitor.broker))

    def sync_fds(self) -> None:
        """While the process is stopped and the core has every record: each
        descriptor's byte becomes the core's -- the byte of every descriptor
        its table has, 0 for any other. (The library sets bytes itself for
        what its own fast calls change: a fast accept4's socket, a fast
        close's 0; the monitor writes only here, where the library cannot be
        running, so it never puts back a byte the library changed meanwhile.)"""
        if self.ahead or self.fds_stale or self.pending is not None or self.parsed or self.area.out_pending():
            return
        monitor = self.proc.monitor
        now = monitor.fds.snapshot()
        if now == self.seen_fds and not self._fds_dirty:
            return
        current = self.area.fd_routes()
        # Only descriptors the core's table has or had can hold a byte that is
        # not 0 (the library sets one only for a fast accept4's socket, which
        # the drained record put in the table).
        bits = self._fd_bits
        for fd in set(now) | set(self.seen_fds):
            if 0 <= fd < layout.FD_TABLE:
                want = 0
                if fd in now:
                    # The broker decides a descriptor's calls by its kind
                    # (dmvx.broker.Broker.decide caches them so): one byte per kind.
                    kind = monitor.fds.kind(fd)
                    want = bits.get(kind, -1)
                    if want < 0:
                        want = bits[kind] = tables.fd_bits(monitor.broker, monitor.fds, fd)
                if current[fd] != want:
                    self.area.set_fd_route(fd, want)
        self.seen_fds = now
        self._fds_dirty = False

    # -- the monitor's hooks -----------------------------------------------------

    def before_stop(self) -> bool:
        """At a traced call's entry stop: drain first. False while the core
        holds a drained call: the stop waits (:meth:`resume` takes it up)."""
        if not self.leader:
            self._waited_unheard()
        if not self.drain():
            self.deferred_stop = True
            return False
        self.deferred_stop = False
        self.sync_fds()
        return True

    def _waited_unheard(self) -> None:
        """A follower's library that waited for its entry without word from
        the leader before it handed the call to the tracer says how long
        (:data:`layout.H_WAITED`): the process has waited since then, and a
        stall is reckoned from there, as if it had stopped at once."""
        waited = self.area.get32(layout.H_WAITED)
        if waited:
            self.area.set32(layout.H_WAITED, 0)
            if self.proc.waiting_since is None:
                self.proc.waiting_since = time.monotonic() - waited / 1e9

    def run_ahead(self, raw: abi.RawCall) -> bool:
        """At a leader's stop while the core is behind its ring: a call the
        broker routes asynchronously (as the core will, since the descriptor
        table it decides by is current) runs at once, as the core would let
        it, and goes to the core in its place in the sequence once the records
        before it have. A synchronous call (lockstep: sensitive) waits for the
        core to catch up, as does every call while one run ahead may have
        changed the descriptor table. True if ``raw`` runs ahead."""
        if not self.leader or not self.area.loaded:
            return False
        if not self.ahead and self.pending is None and not self.area.out_pending():
            return False  # the core is up to date: the ordinary stop
        if self.fds_stale or raw.name in _NOT_AHEAD or raw.name in _EPOLL_MAP or self.held_signals:
            return False
        monitor = self.proc.monitor
        decision = monitor.broker.decide(raw.call, monitor.fds)
        if decision.sync or decision.refuse or not decision.checked:
            return False
        seq = None
        if decision.checked:
            seq = self.area.get64(layout.H_SEQ) + 1
            self.area.set64(layout.H_SEQ, seq)
        self.ahead.append(_Ahead(self.area.get64(layout.H_OUT_HEAD), raw, seq))
        self.ran_ahead += 1
        self._note_call(raw)
        if raw.name in CHANGES_FDS:
            self.fds_stale = True
        proc = self.proc
        proc.held = Held(raw, ahead=True)
        if self.t.recorder is not None and proc is self.t.root:
            proc.held.entered = self.t.recorder.entered()
        self.t.stats.stops += 1
        self.t.execute(proc, seq)
        return True

    def came_back(self, outcome: Outcome) -> None:
        """The call run ahead returned ``outcome``."""
        for item in self.ahead:
            if item.outcome is None:
                item.outcome = outcome
                return

    def entered(self, raw: abi.RawCall) -> None:
        """The core took the stopped call ``raw``: the shared counter follows
        the core's, and descriptors the call may change stop being fast."""
        self.area.set64(layout.H_SEQ, self.proc.monitor.seq)
        self._note_call(raw)
        self.sync_fds()

    def exited(self) -> None:
        """A stopped call returned and the core took its outcome (the
        process is still stopped): descriptors it made get their bytes now,
        before the program's next call on them."""
        self.sync_fds()

    def _clone_flags(self, raw: abi.RawCall) -> int:
        """The flags of a ``clone`` or ``clone3`` (the first word of its
        ``clone_args``, read while the process is stopped at it); a
        ``clone3`` whose flags cannot be read counts as a thread's."""
        if raw.name == "clone":
            return int(raw.args[0])
        try:
            return int.from_bytes(ll.read_memory(self.proc.pid, raw.args[0], 8), "little") if raw.args[0] else 0
        except OSError:
            return _CLONE_VM | _CLONE_THREAD

    def _note_call(self, raw: abi.RawCall) -> None:
        name = raw.name
        flags = self._clone_flags(raw) if name in ("clone", "clone3") else 0
        # glibc's posix_spawn is a clone3 with CLONE_VM|CLONE_VFORK: off while
        # the child runs in this memory, on again after; a thread's is off for good.
        sharing = name == "vfork" or bool(flags & _CLONE_VM)
        if flags & _CLONE_THREAD:
            self.threaded = True
        self._switch(not sharing)
        if name in CHANGES_FDS:
            for value in raw.call.args[:2]:
                if isinstance(value, int):
                    self.area.set_fd_route(value, 0)
            if name in ("close_range", "execve", "execveat"):
                self.area.set_routes(
                    tables.call_table(self.proc.monitor.broker, self.proc.monitor.fds, self.arch),
                    bytes(layout.FD_TABLE),
                )
                self.seen_fds = {}

    def _switch(self, on: bool) -> None:
        """The library's switch: ``on`` unless the process made a thread or
        is not comparing yet (an ABI-diverse pair's loader runs uncompared
        until the program's entry point: nothing of it goes in the ring)."""
        monitor = self.proc.monitor
        self.area.enable(
            on
            and not self.threaded
            and not self.held_signals
            and not (self.leader and monitor.holds_signals)  # type: ignore[union-attr]
            and self.proc.phase == "compare"
        )

    def exec_event(self) -> None:
        """The process exec'd: the first time, its program (which loads the
        library); later images find no area and run on the ptrace path."""
        self.execs += 1
        if self.execs > 1:
            self.ever_loaded = self.ever_loaded or self.area.loaded
            self.area.set32(layout.H_LOADED, 0)

    def before_end(self, status: int) -> bool:
        """The process ended: its last records go to the core first. False
        while the core holds one (:meth:`resume` ends it then)."""
        self.ever_loaded = self.ever_loaded or self.area.loaded
        if not self.drain():
            self.deferred_end = status
            return False
        return True

    def tick(self) -> None:
        """From the monitor's loop: drain, feed, refresh, re-enable."""
        if self.pending is not None or self.blocked:
            return
        if self.proc.held is None and self.proc.alive and not self.fds_stale:
            self._switch(True)
        self.flush_backlog()
        self.drain()

    # -- signals (leader) -----------------------------------------------------------

    def hold_signal(self, sig: int, regs: object) -> bool:
        """An asynchronous signal reached the leader's process while it may
        be running fast calls, which the core has not seen yet: the core
        would place the signal at the next call it hears of, one the program
        may have made long ago. So the tracer holds it back, the fast path
        goes off (every wrapped call stops from now on) and the signal goes
        to the core at the next stop, once the ring is drained
        (:meth:`release_signals`): the core places it there, as on the ptrace
        path. A fast call the signal interrupted (still at the trampoline,
        about to be restarted) is made to return :data:`layout.RETRACE`
        instead: the library issues it again from its traced path, where
        the signal is placed. True when the signal is held (``regs`` may
        have been changed: the caller writes them back)."""
        area = self.area
        if not self.leader or not area.loaded:
            return False
        # Held even when the fast path is off and the ring empty: given to
        # the core now, the signal would wait there for the next compared
        # call, and the monitor may turn the fast path on before it (after
        # a vfork, say): a fast call, run before the core could place the
        # signal at it (``test_a_signal_while_the_leader_runs_fast_calls_lands_at_one_point[child]``).
        self.held_signals.append(sig)
        self.area.enable(False)
        if regs.rip == layout.SITES.get(self.arch) and _signed64(regs.rax) in RESTART:  # type: ignore[attr-defined]
            regs.rax = layout.RETRACE & 0xFFFFFFFFFFFFFFFF  # type: ignore[attr-defined]
        return True

    def core_took_signal(self) -> None:
        """The core was given a signal at a stopped call: if it holds it for
        the next compared call, the fast path stays off until then
        (:meth:`_switch`), so that call stops and the core can place it."""
        if self.leader and self.proc.monitor.holds_signals:  # type: ignore[union-attr]
            self.area.enable(False)

    def release_signals(self) -> None:
        """At a stop, the ring drained: the held signals go to the core,
        which places them at this call (:mod:`dmvx.signals`)."""
        if not self.held_signals:
            return
        held, self.held_signals = self.held_signals, []
        for sig in held:
            self.t.carry_out(self.proc, self.proc.monitor.signal_arrived(sig, None))

    def in_call(self) -> bool:
        """Whether the leader's program is inside a fast call now (a read that
        blocks, say): its monitor keeps sending heartbeats meanwhile."""
        return self.leader and self.proc.alive and self.area.get32(layout.H_INCALL) == 1

    def poll_interval(self) -> float:
        """How soon the monitor looks at the ring again. A follower's ring is
        drained whenever its monitor wakes (each batch of entries it feeds,
        each stop) and otherwise at the idle pace: its records wait for
        nobody -- its library has taken its outputs from the entries already,
        and the core's checks and acknowledgements are off the critical path
        -- so it does not poll at the busy pace (0.5 ms), whose rounds cost
        a follower's monitor as much as its records did (lighttpd at ~150
        requests a second: 3 rounds of its loop a request, each ~5 system
        calls; 1 now)."""
        if not self.leader:
            return POLL_IDLE
        return POLL_BUSY if time.monotonic() - self.last_record < IDLE_AFTER else POLL_IDLE

    def resume(self, action: Execute) -> bool:
        """The core released the drained call it held (an Execute after an
        acknowledgement): finish it and drain on. False if nothing was held."""
        if self.pending is None:
            return False
        raw, outcome = self.pending
        self.pending = None
        self._exited(raw, outcome)
        if not self.drain():
            return True
        if self.deferred_end is not None:
            status, self.deferred_end = self.deferred_end, None
            self.t.stops.on_end(self.proc, status)
        elif self.deferred_stop and self.proc.alive:
            self.deferred_stop = False
            self.t.stops.on_seccomp_entry(self.proc)
        return True

    # -- draining ------------------------------------------------------------------

    def drain(self) -> bool:
        """Hand every record in the out ring to the core; False when the core
        holds one (or the run is over).

        The ring is parsed in one pass per call (:meth:`Area.take_out`) and
        the records go to the core in order; the tail moves past a record
        only once the core has it, so a record the core holds keeps the ring
        full behind it, and a malformed record reaches the core's verdict
        after every genuine one before it."""
        area = self.area
        parsed = self.parsed
        took = 0
        while self.pending is None and not self.blocked:
            if self.t.finished:
                break
            if self.ahead:
                item = self.ahead[0]
                if self.consumed_at >= item.boundary:
                    if item.outcome is None and self.proc.alive:
                        break  # still running: nothing after it goes to the core yet
                    self.ahead.popleft()
                    self._lead_ahead(item)
                    continue
            if not parsed:
                if self.bad is not None:
                    area.consumed(self.consumed_at)
                    self._protocol_error(f"the variant's in-process ring: {self.bad}")
                    return False
                # Everything parsed so far is the core's: a malformed record
                # is named by the core's last call.
                more, self.bad = area.take_out(self.parsed_to, self.proc.monitor.seq)
                if more:
                    parsed.extend(more)
                    self.parsed_to = more[-1].end
                elif self.bad is None:
                    break
                continue
            part = parsed.popleft()
            record = part.record
            if record is None:
                self.consumed_at = part.end
                continue  # padding
            count = part.records
            if count == 1:
                self.consumed_at = part.end
                took += 1
                if self.leader:
                    self._lead(record)
                else:
                    self._follow(record)
                continue
            # A run of equal records: as many as the core takes in one event,
            # never past a stopped call run ahead of it (which goes to the
            # core right after the records written before it).
            length = part.length
            start = part.end - count * length
            most = count
            if self.ahead:
                most = max(1, min(most, (self.ahead[0].boundary - start) // length))
            if self.t.recorder is not None and self.proc is self.t.root:
                most = 1  # --record gives each call its own duration (its ticks)
            self.consumed_at = start + length
            taken = self._lead_run(record, most) if self.leader else self._follow_run(record, most)
            self.consumed_at = start + taken * length
            took += taken
            if taken < count:
                parsed.appendleft(Parsed(record._replace(seq=record.seq + taken), part.end, count - taken, length))
        if took:
            self.records += took
            self.last_record = time.monotonic()
        area.consumed(self.consumed_at)
        if area.get32(layout.H_WAITING) == layout.WAIT_ROOM:
            area.wake()  # (a follower waiting for an entry is woken by the feed)
        if not self.ahead:
            self.fds_stale = False
        return self.pending is None and not self.blocked and not self.ahead and not self.t.finished

    def _decode(self, record: Record) -> tuple[abi.RawCall, Outcome] | None:
        name = tables.ARCH_NAMES[self.arch].get(record.nr)
        monitor = self.proc.monitor
        if name is None:
            self._protocol_error(
                f"the variant's in-process monitor ran call number {record.nr}, which it does not wrap"
            )
            return None
        if record.seq != monitor.seq + 1:
            self._protocol_error(
                f"the variant's in-process record {record.seq} ({name}) came where the core expected {monitor.seq + 1}"
            )
            return None
        reader = self.proc.reader
        try:
            # A call whose decoding reads memory (writev's iovecs and bytes,
            # accept4's addrlen, epoll_ctl's event) is decoded from the
            # record's regions alone: the same regions decode the same
            # (accept4's from those as before the call alone).
            nr = record.nr
            if nr not in self._reads_memory:
                key: tuple[object, ...] = (nr, record.args)
                memory = 0
            else:
                regions = record.regions
                if nr in self._decodes_before:
                    regions = tuple(region for region in regions if region[0] & layout.REG_BEFORE)
                key = (nr, record.args, regions)
                memory = sum(len(data) for _, data in regions)
            raw = self._calls.get(key)
            if raw is None:
                # The record's memory is read only here and for the leader's
                # outcome: made for each record, it was a tenth of a
                # follower's monitor time (lighttpd, py-spy).
                reader.memory = Regions(record.regions, before=True) if record.regions else _NO_REGIONS
                raw = reader.call(self.arch, nr, record.args)
                if memory <= _CACHED_REGION_BYTES:
                    if len(self._calls) >= _CALL_CACHE:
                        self._calls.clear()
                    self._calls[key] = raw
            if self.leader:
                # The outcome is the record's result and memory, read as the
                # call wrote it: the same record gives the same outcome (one
                # object, which the codec then encodes once), but for an
                # epoll wait's, which the epoll map turns into descriptors.
                # The map still follows every call (``committed``).
                outcomes = self._outcomes
                known = outcomes.get((key, record.result, record.regions)) if name not in WAITS else None
                if known is not None:
                    reader.committed(raw, record.result)
                    return raw, known
                reader.memory = Regions(record.regions) if record.regions else _NO_REGIONS
                outcome = reader.outcome(raw, record.result)
                if name not in WAITS and sum(len(data) for _, data in record.regions) <= _CACHED_REGION_BYTES:
                    if len(outcomes) >= _CALL_CACHE:
                        outcomes.clear()
                    outcomes[(key, record.result, record.regions)] = outcome
            else:
                reader.committed(raw, record.result)  # its own epoll data, a closed epoll set
                outcome = Outcome(record.result)
        except (Malformed, ValueError) as problem:
            self._protocol_error(f"the variant's in-process record {record.seq} ({name}): {problem}")
            return None
        finally:
            reader.memory = None
        return raw, outcome

    def _enter(self, raw: abi.RawCall) -> Execute | Skip | Wait | None:
        """``call_entered`` for a call that did not stop: the messages and
        verdicts it brings are carried out; what becomes of the call is
        returned. With ``--summary`` it is counted (:meth:`Tally.fast`)."""
        carrier = self._carrier
        carrier.fate = None
        monitor = self.proc.monitor
        tally = self.t.tally
        if tally is None:
            carrier.carry_out(monitor.call_entered(raw.call))
        else:
            start = tally_now()
            actions = monitor.call_entered(raw.call)
            self._count = tally.fast(monitor, raw.name, tally_now() - start)
            carrier.carry_out(actions)
        return carrier.fate

    def _call_exited(self, outcome: Outcome) -> None:
        """``call_exited`` for a call that did not stop (counted, timed with ``--summary``)."""
        count, self._count = self._count, None
        monitor = self.proc.monitor
        if count is None:
            self.t.carry_out(self.proc, monitor.call_exited(outcome))
            return
        if outcome.result < 0:
            count.errors += 1
        start = tally_now()
        actions = monitor.call_exited(outcome)
        count.monitor_ns += tally_now() - start
        self.t.carry_out(self.proc, actions)

    def _lead(self, record: Record) -> None:
        """One record of the leader's to the core. A call the core replicates
        with nothing in its way goes as one core event
        (:meth:`LeaderMonitor.call_replicated`: the entry, no actions to carry
        out) straight into the outbox's open batch; anything else -- a
        descriptor-changing call, a full buffer, a held signal, a call the
        core would not have let run, ``--record`` -- takes the general path
        (:meth:`_ran`), which reaches the same verdicts."""
        self._ticks = record.ticks
        decoded = self._decode(record)
        if decoded is None:
            return
        raw, outcome = decoded
        if self._one_step:
            tally = self.t.tally
            start = tally_now() if tally is not None else 0
            entry = self.proc.monitor.call_replicated(raw.call, outcome, True)  # type: ignore[union-attr]
            if entry is not None:
                self._ticks = 0
                self.one_step += 1
                self.t.stats.executed += 1
                if tally is not None:
                    self._tally_run(raw, 1, start, outcome.result < 0)
                # An entry of kind full, digest or predicted: it may wait in
                # the batch for company, as :meth:`Hands.send` lets it.
                self.t.out.send(EVERYONE, entry, self.t.batching)
                return
        self._ran(raw, outcome, False, "the leader's in-process monitor ran {}, which the core does not replicate")

    def _lead_run(self, record: Record, most: int) -> int:
        """Up to ``most`` equal records from ``record`` on (a run: see
        :class:`layout.Parsed`) to the core as one event
        (:meth:`LeaderMonitor.calls_replicated`): decoded once, counted,
        buffered and sent in one go. How many records were taken: at least
        the first, which takes the general path (:meth:`_ran`) when the core
        takes no run here (a full buffer, a call it does not replicate so)."""
        self._ticks = record.ticks
        decoded = self._decode(record)
        if decoded is None:
            return 1  # a verdict
        raw, outcome = decoded
        monitor = self.proc.monitor
        start = tally_now() if self.t.tally is not None else 0
        entries = monitor.calls_replicated(raw.call, outcome, most, True) if most > 1 else []  # type: ignore[union-attr]
        if not entries:
            self._ran(raw, outcome, False, "the leader's in-process monitor ran {}, which the core does not replicate")
            return 1
        self._ticks = 0
        self.one_step += len(entries)
        self.t.stats.executed += len(entries)
        self._tally_run(raw, len(entries), start, outcome.result < 0)
        self.proc.hands.send_entries(EVERYONE, entries)  # type: ignore[union-attr]
        return len(entries)

    def _tally_run(self, raw: abi.RawCall, calls: int, start: int, failed: bool) -> None:
        """With ``--summary``: a run of ``calls`` equal calls the core took
        in one event begun at ``start`` (its errors too, if ``failed``)."""
        tally = self.t.tally
        if tally is None:
            return
        count = tally.fast(self.proc.monitor, raw.name, tally_now() - start, calls)
        if count is not None and failed:
            count.errors += calls

    def _lead_ahead(self, item: _Ahead) -> None:
        """A call run ahead, to the core in its place."""
        monitor = self.proc.monitor
        if item.seq is not None and item.seq != monitor.seq + 1:
            self._protocol_error(f"{item.raw.call} ran ahead as call {item.seq}, the core is at {monitor.seq}")
        elif item.outcome is None:
            self._enter(item.raw)  # the process died inside it: its end tells the core the rest
        else:
            self._ran(item.raw, item.outcome, True, "{} ran ahead of the core, which does not let it run")

    def _ran(self, raw: abi.RawCall, outcome: Outcome, stopped: bool, refused: str) -> None:
        """A call the leader ran (from its ring, or ``stopped`` and run ahead)
        goes to the core: finished, or held while the core says wait.
        ``refused``: the verdict's detail if the core would not have let it
        run so, ``{}`` standing for the call (formatted only then)."""
        fate = self._enter(raw)
        if type(fate) is Execute and (stopped or fate.seq is not None):
            self._exited(raw, outcome, counted=stopped)
        elif type(fate) is Wait:
            self.pending = (raw, outcome)
        elif not self.t.finished:
            self._protocol_error(refused.format(raw.call))

    def _exited(self, raw: abi.RawCall, outcome: Outcome, counted: bool = False) -> None:
        recorder = self.t.recorder
        if recorder is not None and self.proc is self.t.root:
            now = recorder.entered()
            recorder.call(raw.call, outcome, now, now, tsc_ns(self._ticks))
        self._ticks = 0
        if not counted:
            self.t.stats.executed += 1
        self._call_exited(outcome)

    def _follow_run(self, record: Record, most: int) -> int:
        """Up to ``most`` equal records of the follower's own calls from
        ``record`` on (a run) to the core as one event
        (:meth:`FollowerMonitor.calls_skipped`): each checked against its
        entry -- the leader's result is what the library returned -- in one
        go. How many records were taken: at least the first, which takes the
        general path (:meth:`_follow`) when the core takes no run here."""
        decoded = self._decode(record)
        if decoded is None:
            return 1  # a verdict
        raw, _ = decoded
        taken = self._skipped(record, raw, most)
        if not taken:
            self._follow(record, raw)
            return 1
        return taken

    def _skipped(self, record: Record, raw: abi.RawCall, most: int) -> int:
        """Up to ``most`` records equal to ``record`` (its call: ``raw``) that
        the core skips in one step (:meth:`FollowerMonitor.calls_skipped`,
        the check :meth:`FollowerMonitor.call_entered` makes of a call only
        the leader runs, without a :class:`Skip` to unpack): how many it
        took, each checked here against the outcome the core gave it (the
        result the library returned; a wait's events, :meth:`_own_events`);
        0 when the core takes none this way (a descriptor-changing or
        lockstep call, a call every variant runs, a missing entry) -- then
        nothing has changed and the record takes the general path."""
        start = tally_now() if self.t.tally is not None else 0
        outcomes, messages = self.proc.monitor.calls_skipped(raw.call, most)  # type: ignore[union-attr]
        if not outcomes:
            return 0
        result = record.result
        self._tally_run(raw, len(outcomes), start, result < 0)
        waits = raw.name in WAITS
        for number, outcome in enumerate(outcomes):
            if outcome.result != result:
                self._protocol_error(
                    f"the follower's in-process monitor returned {result} from {raw.call} (call "
                    f"{record.seq + number}), the leader's entry says {outcome.result}"
                )
                return number + 1
            if waits and not self._own_events(raw, record, outcome):
                return number + 1
        self.t.stats.skipped += len(outcomes)
        recorder = self.t.recorder
        if recorder is not None and self.proc is self.t.root:
            for outcome in outcomes:  # --record: each call (drain takes one at a time then)
                recorder.call(raw.call, outcome, recorder.entered(), None)
        hands = self.proc.hands
        for message in messages:
            hands.send(Send(LEADER, message))  # type: ignore[union-attr]
        return len(outcomes)

    def _follow(self, record: Record, raw: abi.RawCall | None = None) -> None:
        """One record of the follower's own calls to the core (``raw``: the
        call, already decoded from it, which then takes the general path:
        :meth:`FollowerMonitor.call_entered` and its answer). A record not
        decoded yet is first offered to :meth:`_skipped`, the path of every
        call only the leader runs."""
        if raw is None:
            decoded = self._decode(record)
            if decoded is None:
                return
            raw, _ = decoded
            if self._skipped(record, raw, 1):
                return
        fate = self._enter(raw)
        if type(fate) is Execute and fate.seq is not None and raw.name in tables.EACH_CALLS:
            # A call the follower ran itself (close): its result goes to the
            # core, which compares it with the leader's entry, as at a stop.
            self.t.stats.executed += 1
            outcome = Outcome(record.result)
            recorder = self.t.recorder
            if recorder is not None and self.proc is self.t.root:
                now = recorder.entered()
                recorder.call(raw.call, outcome, now, now, tsc_ns(record.ticks))
            self._call_exited(outcome)
            self._fds_dirty = True
            return
        if type(fate) is Skip:
            if fate.outcome.result != record.result:
                self._protocol_error(
                    f"the follower's in-process monitor returned {record.result} from {raw.call}, "
                    f"the leader's entry says {fate.outcome.result}"
                )
                return
            if raw.name in WAITS and not self._own_events(raw, record, fate.outcome):
                return
            self.t.stats.skipped += 1
            count, self._count = self._count, None
            if count is not None and record.result < 0:
                count.errors += 1
            recorder = self.t.recorder
            if recorder is not None and self.proc is self.t.root:
                recorder.call(raw.call, fate.outcome, recorder.entered(), None)
        elif type(fate) is Wait:
            self.blocked = True  # the core reported a divergence: its verdict comes
        elif not self.t.finished:
            self._protocol_error(f"the follower's in-process monitor took {raw.call} from the leader's entry")

    def _own_events(self, raw: abi.RawCall, record: Record, leaders: Outcome) -> bool:
        """A follower's fast ``epoll_wait`` turned the leader's events (which
        name descriptors) into its own data with the library's copy of its
        registrations: they must be what its tracer would have written
        (:meth:`realmode.epoll.EpollMap.from_canonical` with the map this
        monitor keeps from the same calls). False (a verdict) if not."""
        if record.result <= 0:
            return True
        events = dict(leaders.outputs).get(EVENTS_ARG, b"")
        want = self.proc.reader.epoll.from_canonical(raw.call.args[0], events)
        got = b"".join(data for base, data in record.regions if not base & layout.REG_BEFORE)
        if got == want:
            return True
        self._protocol_error(
            f"the follower's in-process monitor gave {raw.call} other epoll data than its registrations say"
        )
        return False

    # -- a follower's in ring ------------------------------------------------------

    def feed(self, entry: Entry) -> None:
        """After the core took ``entry``: its record for the in ring, which
        :meth:`flush_backlog` writes (:meth:`feed_entries` of one)."""
        self.feed_entries((entry,))

    def feed_entries(self, entries: tuple[Entry, ...] | list[Entry]) -> None:
        """After the core took ``entries`` (in order): their records for the
        in ring, which :meth:`flush_backlog` writes. Entries of one call with
        one outcome (a loop) differ only in their sequence number: their
        record is made once and stamped with each one's (an entry made of
        the objects of the one before it is not even looked up). A vote or
        an announcement (the leader waits for this variant's report at that
        number) is a record the library does not take: its call there
        stops at once, where the core reports it, instead of after the
        library's patience with a leader that says nothing more."""
        floor = self.area.get64(layout.H_SEQ)
        templates = self._templates
        backlog = self.backlog
        stamp = layout.stamp_seq
        last: tuple[object, ...] = ()
        template = b""
        for entry in entries:
            seq = entry.seq
            kind = entry.kind
            if seq <= floor:
                continue
            outcome = entry.outcome
            call = entry.call
            if not (last and call is last[0] and kind is last[1] and outcome is last[2]):
                key = (call, kind, outcome)
                known = templates.get(key)
                if known is None:
                    known = self._in_record(entry)
                    if len(known) <= _TEMPLATE_BYTES:
                        if len(templates) >= _CALL_CACHE:
                            templates.clear()
                        templates[key] = known
                template = known
                last = (call, kind, outcome)
            record = bytearray(template)
            stamp(record, seq)
            backlog.append(record)

    def _in_record(self, entry: Entry) -> bytes:
        """The in-ring record of ``entry``, with sequence number 0."""
        call = entry.call
        nr = tables.in_ring_number(self.arch, call)
        regions: list[tuple[int, bytes]] = []
        flags = 0
        result = 0
        if nr is None:
            flags = layout.RF_NOTFAST
        elif entry.kind is EntryKind.FULL and entry.outcome is not None:
            result = entry.outcome.result
            regions = [((index + 1) << layout.ARG_SHIFT, data) for index, data in entry.outcome.outputs]
        elif entry.kind is EntryKind.PREDICTED:
            result = predicted_result(call) or 0
        else:
            flags = layout.RF_NOTFAST
        args = tuple(value if isinstance(value, int) else 0 for value in call.args)
        return layout.build_record(0, nr if nr is not None else 0, result, args, regions, flags)

    def leader_heard(self) -> None:
        """A follower's monitor heard from the leader (entries, a heartbeat,
        a note): its library, waiting for an entry, waits on
        (:data:`layout.H_HEARD`; dipmon.c: ``entry_for``) -- the leader is
        slow, not silent -- rather than hand the call to the tracer."""
        self.area.set32(layout.H_HEARD, self.area.get32(layout.H_HEARD) + 1)

    def flush_backlog(self) -> None:
        """The records :meth:`feed` made go into the in ring, as many as fit,
        and the library is woken once: the monitor calls it after routing
        everything its CONNECTOR brought (a batch of entries), and each tick."""
        if not self.backlog:
            return
        area = self.area
        area.put_in(self.backlog)
        area.wake()

    # -- verdicts ------------------------------------------------------------------

    def _protocol_error(self, detail: str) -> None:
        self.area.enable(False)
        self.t.halt(Verdict(VerdictKind.PROTOCOL_ERROR, self.proc.monitor.seq + 1, detail=detail))

    def close(self) -> None:
        self.ever_loaded = self.ever_loaded or self.area.loaded
