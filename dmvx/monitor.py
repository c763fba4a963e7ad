"""Leader and follower monitors: the MVX core as sans-IO state machines.

One monitor watches one variant (one process lineage of it). A mode feeds it
events -- the variant entered a call, a call returned, a message arrived, the
process ended, a wait took too long -- and carries out the actions it returns.
Monitors never touch a socket, a clock or a process, so simulation and real
mode drive exactly these classes, and a trace recorded in one can be replayed
through them in the other.

The protocol between them, per compared call ``seq``:

* **asynchronous** (DIP-MON, ``Decision.sync`` false): the leader runs the call
  at once and sends an :class:`~dmvx.messages.Entry` with its outcome; the
  connector buffer bounds how far it may run ahead. A follower reaching
  ``seq`` compares its own call with the entry and either skips the call with
  the leader's outcome, or runs its own and compares outcomes. It
  acknowledges consumed entries cumulatively.
* **synchronous** (DCP-MON lockstep, and every call under DMON): each follower
  sends a :class:`~dmvx.messages.Report` of its call and waits; the leader
  waits for every report, compares, and only then runs the call: a GO entry
  releases calls every variant runs, an outcome entry feeds calls only the
  leader runs. No variant runs a lockstep call the others did not agree to.

The leader is the coordinator: every divergence a follower sees is reported
to it, and with three or more variants it holds a vote so the verdict can
name the odd one out. Any verdict ends in a :class:`~dmvx.actions.Halt` for
the local variant and a :class:`~dmvx.messages.Stop` for everyone else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from dmvx.actions import (
    EVERYONE,
    LEADER,
    Action,
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
    WaitReason,
)
from dmvx.broker import Broker
from dmvx.calls import EXIT, KILLED, PSEUDO_CALLS, Call, Outcome
from dmvx.cb import ConnectorBuffer
from dmvx.fdtable import CHANGES_FDS, RETURNS_FD, TABLE_ORDERED, FdTable
from dmvx.messages import Ack, Entry, EntryKind, Message, PidNote, Report, ResultNote, Stop, call_size, entry_size
from dmvx.policy import OUTPUT_ARGS, PREDICTABLE, Decision, Effect, Policy, Reach, Route, comparable
from dmvx.signals import ERESTARTNOINTR, MASK_WAITS, RESTART, SENT_FATAL, SIGKILL
from dmvx.states import FollowerState, InvalidTransition, LeaderState
from dmvx.tempnames import adopted_path
from dmvx.verdict import Verdict, VerdictKind, classify_mismatch, crashed, killed_ones, majority_vote, variant_name

#: Calls every variant runs itself whose result only timing can make differ
#: (how much a pipe held when it was read, which child ended first, whether a
#: pipe's reader had gone yet). A monitor made with ``steer`` tells its mode
#: the leader's result of such a call when the variant runs it
#: (``Execute.expect``), from the leader's entry or, for a call released by GO
#: before the leader ran it, from the leader's :class:`ResultNote`.
WRITES = frozenset({"write", "pwrite64", "writev", "pwritev", "pwritev2"})
STEERED = WRITES | {"read", "wait4"}

#: Calls that write a pair of descriptors into an output argument.
_FD_PAIR_ARG = {"pipe": 0, "pipe2": 0, "socketpair": 3}

_EXECUTE_LOCAL = (Execute(None),)

# Enum members the monitors test, bound to module names once: on Python 3.11
# reading a member off its Enum class costs five times a global lookup
# (``EnumType`` defines ``__getattr__``, which keeps class attribute reads off
# the interpreter's fast path), and these are read at every call of every
# variant -- under DMON every call takes the lockstep path, so all of them.
_ROUTE_LOCAL, _ROUTE_PREDICT, _ROUTE_LOCKSTEP, _ROUTE_LOCAL_FILE = (
    Route.LOCAL,
    Route.PREDICT,
    Route.LOCKSTEP,
    Route.LOCAL_FILE,
)
_EFFECT_LEADER, _EFFECT_EACH = Effect.LEADER, Effect.EACH
_WAIT_ENTRY, _WAIT_CB_FULL, _WAIT_FINISH, _WAIT_NOTE = (
    WaitReason.ENTRY,
    WaitReason.CB_FULL,
    WaitReason.FINISH,
    WaitReason.NOTE,
)
_WAIT_LOCKSTEP, _WAIT_SYNC, _WAIT_VOTE = WaitReason.LOCKSTEP, WaitReason.SYNC, WaitReason.VOTE
_KIND_FULL, _KIND_PREDICTED, _KIND_DIGEST, _KIND_RESULT = (
    EntryKind.FULL,
    EntryKind.PREDICTED,
    EntryKind.DIGEST,
    EntryKind.RESULT,
)
_KIND_GO, _KIND_VOTE, _KIND_ANNOUNCE, _KIND_SIGNAL = EntryKind.GO, EntryKind.VOTE, EntryKind.ANNOUNCE, EntryKind.SIGNAL
_L_RUNNING, _L_EXECUTING, _L_CB_WAIT, _L_SYNC_WAIT = (
    LeaderState.RUNNING,
    LeaderState.EXECUTING,
    LeaderState.CB_WAIT,
    LeaderState.SYNC_WAIT,
)
_L_FINISH_WAIT, _L_VOTING, _L_DONE = LeaderState.FINISH_WAIT, LeaderState.VOTING, LeaderState.DONE
_F_RUNNING, _F_EXECUTING, _F_ENTRY_WAIT, _F_SYNC_WAIT = (
    FollowerState.RUNNING,
    FollowerState.EXECUTING,
    FollowerState.ENTRY_WAIT,
    FollowerState.SYNC_WAIT,
)
_F_FINISH_WAIT, _F_NOTE_WAIT, _F_DIVERGED, _F_DONE = (
    FollowerState.FINISH_WAIT,
    FollowerState.NOTE_WAIT,
    FollowerState.DIVERGED,
    FollowerState.DONE,
)
_PROCESS_END = Decision(Route.LOCKSTEP, Effect.EACH, True)
#: Where a follower's call may be when the leader's entry says a signal ended it.
_SIGNAL_ENDS = (_F_ENTRY_WAIT, _F_SYNC_WAIT, _F_NOTE_WAIT, _F_EXECUTING)
#: Entry kinds a follower's message_received takes the long way: not data
#: for a call, or data that ends one otherwise (a process end, a signal).
_LONG_WAY = (_KIND_VOTE, _KIND_ANNOUNCE, _KIND_RESULT, _KIND_SIGNAL)
#: Whom a follower waits for (a constant: ``(LEADER,)`` builds a tuple each time).
_FROM_LEADER = (LEADER,)
#: Calls the one-step paths (:meth:`LeaderMonitor.call_replicated`,
#: :meth:`FollowerMonitor.call_skipped`) leave to the general one: those that
#: change the descriptor table, and the process ends.
_GENERAL_PATH = frozenset(CHANGES_FDS) | PSEUDO_CALLS
#: Why a variant killed by a signal is the one blamed when its wait stalls.
_WENT_ON = "no other variant ended so within the stall timeout"


def _skippable(name: str, decision: Decision) -> bool:
    """Whether a follower's call of ``name`` decided so may be skipped on a
    one-step path (:meth:`FollowerMonitor.call_skipped`, ``calls_skipped``):
    asynchronous, run by the leader alone, and not one the general path
    must see (:data:`_GENERAL_PATH`)."""
    return not (
        decision.sync
        or decision.effect is not _EFFECT_LEADER
        or decision.route is _ROUTE_LOCAL
        or name in _GENERAL_PATH
    )


def same_call(a: Call, b: Call) -> bool:
    """Whether two variants' calls agree (layout-only arguments aside)."""
    return a == b or comparable(a) == comparable(b)


def outcome_digest(outcome: Outcome) -> bytes:
    """Digest of what a call returned, for comparing outcomes every variant
    produced on its own (local files, pipes)."""
    digest = hashlib.blake2b(outcome.result.to_bytes(16, "little", signed=True), digest_size=16)
    for index, data in outcome.outputs:
        digest.update(index.to_bytes(2, "little"))
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.digest()


def predicted_result(call: Call) -> int | None:
    """What a follower can derive without being told, or None."""
    if call.name not in PREDICTABLE:
        return None
    value = PREDICTABLE[call.name]
    if value is None:
        count = call.args[2] if len(call.args) > 2 else None
        if call.name == "umask":
            return None
        return count if isinstance(count, int) else None
    return value


_PREDICTED: dict[int, Outcome] = {}


def _predicted_outcome(call: Call) -> Outcome:
    """The outcome a follower derives for ``call`` (shared: outcomes are values)."""
    result = predicted_result(call) or 0
    outcome = _PREDICTED.get(result)
    if outcome is None:
        outcome = _PREDICTED[result] = Outcome(result)
    return outcome


def _adoptable(call: Call, decision: Decision, entry: Entry) -> tuple[int, str] | None:
    """Where ``call`` differs from the leader's ``entry``: whether the two are
    one call taking a fresh name whose letters libc made up apart
    (:mod:`dmvx.tempnames`), which only the leader ran and whose outcome the
    entry carries. Then the argument index and the leader's path the variant
    adopts; None for a divergence."""
    if decision.effect is not _EFFECT_LEADER or entry.kind is not _KIND_FULL or entry.outcome is None:
        return None
    return adopted_path(entry.call, call)


def _leader_result(entry: Entry) -> int | None:
    """The leader's result a follower running its own call steers towards:
    the entry's, or for a predicted write the count it predicts."""
    if entry.outcome is not None:
        return entry.outcome.result
    if entry.kind is _KIND_PREDICTED and entry.call.name in WRITES:
        return predicted_result(entry.call)
    return None


def fd_pair(call: Call, outcome: Outcome) -> tuple[int, int] | None:
    """The two descriptors pipe/pipe2/socketpair wrote, if any."""
    index = _FD_PAIR_ARG.get(call.name)
    if index is None or outcome.result < 0:
        return None
    for arg, data in outcome.outputs:
        if arg == index and len(data) >= 8:
            return (int.from_bytes(data[0:4], "little", signed=True), int.from_bytes(data[4:8], "little", signed=True))
    return None


class _Monitor:
    """What leader and follower monitors share."""

    def __init__(
        self,
        policy: Policy,
        index: int,
        n_variants: int,
        stream: str = "0",
        fds: FdTable | None = None,
        steer: bool = False,
        reach: Callable[[int], Reach] | None = None,
    ) -> None:
        if n_variants < 2:
            raise ValueError("MVX needs at least two variants (a leader and a follower)")
        self.policy = policy
        self.index = index
        self.n_variants = n_variants
        self.stream = stream
        #: Whether the mode steers followers' own runs towards the leader's
        #: results (:data:`STEERED`): real mode does; in sim and replay a
        #: variant's outcomes are given, so only tests turn it on there.
        self.steer = steer
        #: ``reach`` is the mode's answer to "where does this pid land"
        #: (:class:`~dmvx.policy.Reach`); without one every pid is the tree's.
        self.broker = Broker(policy, reach)
        self._by_name = self.broker.by_name
        self.fds = fds if fds is not None else FdTable()
        #: Sequence number of the last compared call this variant entered.
        self.seq = 0
        self._route_counts: dict[Route, int] = dict.fromkeys(Route, 0)
        #: The verdict that ended the run, if one did.
        self.verdict: Verdict | None = None
        self.finished = False
        self._children = 0
        #: The broker's decision for the call most recently entered.
        self.last_decision: Decision | None = None

    def child(self, share_fds: bool = False) -> _Monitor:
        """The monitor of a process or thread this one's variant just created.

        Call it after a successful fork/vfork/clone (a lockstep call, so
        every variant creates its children in the same order). The child's
        stream is ``"<parent stream>.<n>"`` for the parent's n-th child,
        equal in every variant. A process's descriptor table is a copy of
        the parent's; a child that shares it (``share_fds``: a thread, made
        by clone with ``CLONE_FILES``) holds the parent's very table (the
        same :class:`FdTable`, marked :attr:`FdTable.shared`), as the kernel
        gives both one. Messages name their stream: a mode routes each
        to the monitor of that stream, holding those that arrive before it
        exists.
        """
        self._children += 1
        stream = f"{self.stream}.{self._children}"
        reach = self.broker.reach
        if share_fds:
            self.fds.shared = True
        fds = self.fds if share_fds else self.fds.copy()
        if isinstance(self, LeaderMonitor):
            return LeaderMonitor(self.policy, self.n_variants, stream, fds, self.steer, reach)
        return FollowerMonitor(self.policy, self.index, self.n_variants, stream, fds, self.steer, reach)

    @property
    def routes(self) -> dict[str, int]:
        """Calls seen per route (route name -> count), for reports."""
        return {route.value: count for route, count in self._route_counts.items() if count}

    def process_started(self, pid: int) -> list[Action]:
        """The variant's process of this stream runs, as ``pid`` (a mode whose
        processes have pids says so; followers map theirs to the leader's)."""
        return []

    def process_exited(self, status: int) -> list[Action]:
        """The variant's process exited with ``status``."""
        return self._process_end(Call(EXIT, (status,)), status)

    def process_killed(self, signal: int) -> list[Action]:
        """The variant's process was killed by ``signal``."""
        return self._process_end(Call(KILLED, (signal,)), 128 + signal)

    def _process_end(self, call: Call, status: int) -> list[Action]:
        raise NotImplementedError

    def _halt(self, verdict: Verdict) -> list[Action]:
        if self.verdict is not None:
            return []
        self.verdict = verdict
        return [Send(EVERYONE, Stop(self.stream, verdict)), Halt(verdict)]

    def _stopped_by_peer(self, message: Stop) -> list[Action]:
        if self.verdict is not None:
            return []
        self.verdict = message.verdict
        return [Halt(message.verdict)]

    def _update_fds(self, call: Call, decision: Decision, outcome: Outcome) -> None:
        if call.name in CHANGES_FDS:
            self.fds.after(call, outcome.result, fd_pair(call, outcome), decision.route is _ROUTE_LOCAL_FILE)


class LeaderMonitor(_Monitor):
    """The leader's monitor, and the coordinator of every verdict.

    Observable for reports: :meth:`lead` (how many compared calls the leader
    is ahead of a follower), :attr:`cb` (occupancy), :attr:`routes`.
    """

    def __init__(
        self,
        policy: Policy,
        n_variants: int,
        stream: str = "0",
        fds: FdTable | None = None,
        steer: bool = False,
        reach: Callable[[int], Reach] | None = None,
    ) -> None:
        super().__init__(policy, LEADER, n_variants, stream, fds, steer, reach)
        self.followers = tuple(range(1, n_variants))
        self.cb = ConnectorBuffer(policy.cb_entries, policy.cb_bytes)
        #: Highest entry each follower has acknowledged (consumed and found equal).
        self.acked = dict.fromkeys(self.followers, 0)
        self._reports: dict[int, dict[int, Call]] = {}
        self._current: tuple[int | None, Call, Decision] | None = None
        self._state = _L_RUNNING
        self._vote_seq = 0
        self._vote_calls: dict[int, Call | None] = {}
        self._exit_status = 0
        #: Signals that came between calls, to be taken at the next compared
        #: call (:mod:`dmvx.signals`), in the order they came, each once.
        self._held_signals: list[int] = []
        #: Compared calls a signal ended (seq -> call), for followers'
        #: reports of them that come later.
        self._signal_calls: dict[int, Call] = {}
        #: The call the process was held at (never run) when it ended, if it was.
        self._unrun: int | None = None
        #: Followers whose process died of a signal sent from outside
        #: (:data:`~dmvx.signals.SENT_FATAL`) before the leader's got as far:
        #: follower -> (the number its end came at, its end). Compared with
        #: the leader's own end when it comes (:meth:`_killed_early`).
        self._early_ends: dict[int, tuple[int, Call]] = {}
        # The call and outcome whose full entry was sized last, and its size:
        # a variant that makes one call over and over (a loop, a simulated
        # workload) passes the same Call and Outcome, sized once.
        self._sized: tuple[Call | None, Outcome | None, int] = (None, None, 0)
        #: What :meth:`call_replicated` made its last entry of: call, outcome,
        #: decision, and the entry's kind, outcome and size.
        self._made: tuple[Call | None, Outcome | None, Decision | None, EntryKind, Outcome | None, int] = (
            None,
            None,
            None,
            _KIND_FULL,
            None,
            0,
        )

    def _to(self, state: LeaderState) -> None:
        """Move to ``state`` (:data:`dmvx.states.LEADER_TRANSITIONS` must list the move)."""
        if state not in self._state.successors:  # type: ignore[attr-defined]
            raise InvalidTransition("leader monitor", self._state, state)
        self._state = state

    # -- observation -----------------------------------------------------------

    def lead(self, follower: int | None = None) -> int:
        """Compared calls the leader is ahead of ``follower`` (of the slowest
        follower when None), as far as acknowledgements tell."""
        if follower is None:
            return self.seq - min(self.acked.values())
        return self.seq - self.acked[follower]

    def unconfirmed(self) -> tuple[tuple[int, Call, Outcome | None], ...]:
        """``(seq, call, outcome)`` of the compared calls this leader ran that
        not every follower has confirmed: the connector buffer, then a
        replicated call still running (outcome None). A verdict arriving now
        comes after these ran (:mod:`dmvx.ranahead`)."""
        running: tuple[tuple[int, Call, Outcome | None], ...] = ()
        if self._state is _L_EXECUTING and self._current is not None:
            seq, call, decision = self._current
            if seq is not None and not decision.sync:
                running = ((seq, call, None),)
        return self.cb.unconfirmed() + running

    # -- events ----------------------------------------------------------------

    def process_started(self, pid: int) -> list[Action]:
        """The leader's process of this stream is ``pid``: tell the followers."""
        return [Send(EVERYONE, PidNote(self.stream, pid))]

    def call_entered(self, call: Call) -> list[Action]:
        """The leader stopped at the entry of ``call``."""
        if self.verdict is not None:
            return []
        decision = self.last_decision = self._by_name.get(call.name) or self.broker.decide(call, self.fds)
        route = decision.route
        self._route_counts[route] += 1
        if self._state is _L_VOTING:
            # A divergence is being decided: nothing more runs until it is.
            self._current = (None, call, decision)
            return [Wait(_WAIT_VOTE, self._vote_seq, self._vote_missing())]
        if route is _ROUTE_LOCAL:
            self._current = (None, call, decision)
            self._to(_L_EXECUTING)
            return list(_EXECUTE_LOCAL)
        seq = self.seq = self.seq + 1
        if self._held_signals:
            self._route_counts[route] -= 1  # made again after the handler, and counted then
            return self._signal_at(seq, call, self._held_signals.pop(0), ERESTARTNOINTR)
        self._current = (seq, call, decision)
        if decision.sync:
            self._to(_L_SYNC_WAIT)
            actions = self._try_release()
            if (self.policy.async_replication or self.fds.shared) and actions and isinstance(actions[-1], Wait):
                # Followers may see this point as an asynchronous call and
                # wait for an entry that will not come: tell them to report.
                # (With threads, under any preset: a follower's thread may
                # wait to learn that the leader's reached this call,
                # realmode.tracer.clocks.)
                actions.insert(0, Send(EVERYONE, Entry(self.stream, seq, call, _KIND_ANNOUNCE)))
            if self._early_ends and actions and isinstance(actions[-1], Wait):
                actions[:0] = self._early_kills()
            return actions
        waiting = self._reports.get(seq) if self._reports else None
        if waiting:
            # A follower already reported a lockstep call at this point, and
            # the leader's call here is not one: they differ.
            variant, other = next(iter(waiting.items()))
            return self._open_vote(seq, call, variant, other)
        if self.cb.full:
            self._to(_L_CB_WAIT)
            return [*self._early_kills(), Wait(_WAIT_CB_FULL, seq, self._laggards())]
        # self._to(_L_EXECUTING), written out: this is every replicated call.
        if _L_EXECUTING not in self._state.successors:  # type: ignore[attr-defined]
            raise InvalidTransition("leader monitor", self._state, _L_EXECUTING)
        self._state = _L_EXECUTING
        return [Execute(seq)]

    def call_exited(self, outcome: Outcome) -> list[Action]:
        """The call the leader ran returned ``outcome``."""
        if self.verdict is not None or self._current is None:
            return []
        seq, call, decision = self._current
        self._current = None
        state = self._state
        if state is _L_VOTING:
            return []
        # self._to(_L_RUNNING), written out: this is every call the leader runs.
        if _L_RUNNING not in state.successors:  # type: ignore[attr-defined]
            raise InvalidTransition("leader monitor", state, _L_RUNNING)
        self._state = _L_RUNNING
        if seq is None:
            return []
        if call.name in CHANGES_FDS:
            self._update_fds(call, decision, outcome)
        if decision.sync:
            if decision.effect is _EFFECT_EACH:
                # Released with a GO entry before it ran: followers that steer
                # their own run hold it until they know this result; where
                # threads share the descriptor table, followers change it in
                # the order the leader's calls returned in (a mode that steers
                # orders by these notes: realmode.tracer.fdorder).
                if self.steer and (call.name in STEERED or (self.fds.shared and call.name in TABLE_ORDERED)):
                    return [Send(EVERYONE, ResultNote(self.stream, seq, outcome.result))]
                return []
            return [Send(EVERYONE, self._entry(seq, call, decision, outcome))]
        entry = self._entry(seq, call, decision, outcome)
        self.cb.push(seq, entry.size, call, outcome)
        return [Send(EVERYONE, entry)]

    def call_replicated(self, call: Call, outcome: Outcome, by_descriptor: bool = False) -> Entry | None:
        """:meth:`call_entered` and :meth:`call_exited` of one call in one
        step, for a call the leader runs and replicates asynchronously with
        nothing in its way: its entry (to send to every follower), or None
        when the call needs the general path -- and then nothing has changed.

        The decision is the broker's, made as :meth:`call_entered` makes it
        (the same counts, sequence number and connector buffer): a mode
        whose variant runs a call right after its entry, with nothing in
        between (simulation), takes it here in one method call instead of two
        answers of three actions. Descriptor-changing calls, lockstep and
        local calls, a full buffer, a held signal, a pending report or a vote
        take the general path. A call the broker decides by its descriptor
        (``read``) takes it too unless ``by_descriptor``: the broker is then
        asked, as :meth:`call_entered` asks it."""
        if self._state is not _L_RUNNING or self.verdict is not None or self._held_signals or self._reports:
            return None
        decision = self._by_name.get(call.name)
        if decision is None and by_descriptor and call.name not in _GENERAL_PATH:
            decision = self.broker.decide(call, self.fds)
        if (
            decision is None
            or decision.sync
            or decision.route is _ROUTE_LOCAL
            or self.cb.full
            or call.name in _GENERAL_PATH
        ):
            return None
        self.last_decision = decision
        self._route_counts[decision.route] += 1
        seq = self.seq = self.seq + 1
        # RUNNING -> EXECUTING -> RUNNING (both listed in LEADER_TRANSITIONS):
        # the call ran and returned; nothing is current.
        made = self._made
        if made[0] is call and made[1] is outcome and made[2] is decision:
            # The same call, outcome and decision as the last one made here
            # (a loop): the entry :meth:`_entry` would make, but for its number.
            entry = Entry(self.stream, seq, call, made[3], made[4], size=made[5])
        else:
            entry = self._entry(seq, call, decision, outcome)
            if entry.kind is _KIND_FULL or entry.kind is _KIND_PREDICTED:
                self._made = (call, outcome, decision, entry.kind, entry.outcome, entry.size)
        self.cb.push(seq, entry.size, call, outcome)
        return entry

    def calls_replicated(self, call: Call, outcome: Outcome, most: int, by_descriptor: bool = False) -> list[Entry]:
        """:meth:`call_replicated` of up to ``most`` equal calls in a row,
        as one core event: their entries, in order (empty when the first
        needs the general path -- and then nothing has changed). Fewer than
        ``most`` when the connector buffer fills: the call after the last
        one taken would wait for room.

        Nothing can happen between the calls of a run (a mode passes a run
        only up to its next message, signal or other event), so after the
        first the checks :meth:`call_replicated` makes all come out the
        same but the buffer's room: the run's numbers, counts and buffer
        accounting are reckoned once, and every entry but its number is the
        first one's. ``by_descriptor``: as :meth:`call_replicated`'s."""
        first = self.call_replicated(call, outcome, by_descriptor)
        if first is None:
            return []
        size = first.size
        more = min(most - 1, self.cb.fits(size))
        if more <= 0:
            return [first]
        seq = first.seq
        self.seq = seq + more
        self._route_counts[self.last_decision.route] += more  # type: ignore[union-attr]  # just decided
        stream, kind, made, digest = self.stream, first.kind, first.outcome, first.digest
        entries = [first]
        entries += [Entry(stream, n, call, kind, made, digest, 0, size) for n in range(seq + 1, seq + more + 1)]
        self.cb.push_run(seq + 1, more, size, call, outcome)
        return entries

    def message_received(self, message: Message) -> list[Action]:
        """A follower's monitor sent ``message``."""
        if isinstance(message, Stop):
            return self._stopped_by_peer(message)
        if self.verdict is not None:
            return []
        if isinstance(message, Ack):
            return self._on_ack(message.variant, message.seq)
        if isinstance(message, Report):
            return self._on_report(message)
        return self._halt(
            Verdict(VerdictKind.PROTOCOL_ERROR, self.seq, detail=f"leader received a {type(message).__name__} message")
        )

    def signal_arrived(self, signal: int, interrupted: int | None = None) -> list[Action]:
        """An asynchronous signal with a handler came to the leader's process
        (:mod:`dmvx.signals`). ``interrupted`` is the result the kernel ended
        the running call with when the signal interrupted it (one of
        :data:`~dmvx.signals.RESTART`), None when it came between calls.

        Interrupting a compared call, it is delivered there (a
        :class:`Deliver` in the answer: the mode lets it through); otherwise
        it is held until the next compared call (an empty answer: the mode
        holds it back), or dropped if the process ends first."""
        if self.verdict is not None or self.finished:
            return []
        current = self._current
        # ERESTARTNOINTR (fork with a signal pending) restarts whatever the
        # handler says: as if the signal came before the call, so it is held
        # for the next one, and the call goes on as it would in a follower.
        if (
            interrupted in RESTART
            and interrupted != ERESTARTNOINTR
            and self._state is _L_EXECUTING
            and current is not None
        ):
            seq, call, _ = current
            if seq is not None and interrupted is not None:
                self._current = None
                self._to(_L_RUNNING)
                return self._signal_at(seq, call, signal, interrupted)
        if signal not in self._held_signals:
            self._held_signals.append(signal)
        return []

    @property
    def holds_signals(self) -> bool:
        """Whether a signal waits for the leader's next compared call
        (:meth:`signal_arrived`). A mode that runs calls before the monitor
        hears of them (real mode's in-process path) must make that call one
        the monitor hears of first: the signal is placed at it, and a call
        that already ran cannot end interrupted any more."""
        return bool(self._held_signals)

    def _signal_at(self, seq: int, call: Call, signal: int, result: int) -> list[Action]:
        """Compared call ``seq`` ends with ``result`` and ``signal`` delivered
        as it returns, here and in every follower."""
        self._signal_calls[seq] = call
        if len(self._signal_calls) > 64:  # keep those a follower may still report
            low = min(self.acked.values())
            self._signal_calls = {s: c for s, c in self._signal_calls.items() if s > low}
        self._reports.pop(seq, None)  # a synchronous call's reports: void, the call did not run
        entry = Entry(self.stream, seq, call, _KIND_SIGNAL, Outcome(result), signal=signal)
        return [Send(EVERYONE, entry), Deliver(seq, signal, result)]

    def stalled(self) -> list[Action]:
        """A wait lasted longer than the stall timeout."""
        if self.verdict is not None or self.finished:
            return []
        if self._state is _L_VOTING:
            return self._decide_vote(force=True)
        seq, call = (self._current[0], self._current[1]) if self._current else (self.seq, None)
        seq = seq if seq is not None else self.seq
        missing = self._missing_reports(seq) if self._state in (_L_SYNC_WAIT, _L_FINISH_WAIT) else self._laggards()
        calls: dict[int, Call | None] = {LEADER: call}
        calls.update(self._reports.get(seq, {}))
        for follower in missing:
            calls[follower] = None
        if self._early_ends and (call is None or call.name != KILLED):
            return self._early_crash(seq, calls, f"killed by a signal in some variants; {_WENT_ON}")
        if call is not None and call.name == KILLED:
            # Killed by a signal, and the followers went on (their heartbeats
            # excuse nothing here): the leader is the one whose part failed.
            return self._halt(crashed(seq, calls, f"the leader was killed by signal {call.args[0]}; {_WENT_ON}"))
        names = ", ".join(f"follower {f}" for f in missing) or "no one"
        return self._halt(
            Verdict(
                VerdictKind.NO_PROGRESS, seq, calls, tuple(missing), detail=f"waiting for {names} ({self._state.value})"
            )
        )

    # -- internals ---------------------------------------------------------------

    def _entry(self, seq: int, call: Call, decision: Decision, outcome: Outcome) -> Entry:
        if decision.route is _ROUTE_PREDICT and not outcome.outputs and predicted_result(call) == outcome.result:
            return Entry(self.stream, seq, call, _KIND_PREDICTED)
        if decision.effect is _EFFECT_LEADER:
            sized_call, sized_outcome, size = self._sized
            if sized_call is not call or sized_outcome is not outcome:
                size = entry_size(call_size(call), outcome)
                self._sized = (call, outcome, size)
            return Entry(self.stream, seq, call, _KIND_FULL, outcome, size=size)
        return Entry(self.stream, seq, call, _KIND_DIGEST, Outcome(outcome.result), outcome_digest(outcome))

    def _laggards(self) -> tuple[int, ...]:
        low = min(self.acked.values())
        return tuple(f for f, a in self.acked.items() if a == low)

    def _missing_reports(self, seq: int) -> tuple[int, ...]:
        reports = self._reports.get(seq, {})
        return tuple(f for f in self.followers if f not in reports)

    def _on_ack(self, follower: int, seq: int) -> list[Action]:
        if follower not in self.acked:
            return self._halt(Verdict(VerdictKind.PROTOCOL_ERROR, seq, detail=f"ack from unknown variant {follower}"))
        if seq > self.acked[follower]:
            self.acked[follower] = seq
            self.cb.release_upto(min(self.acked.values()))
        if self._state is _L_VOTING:
            return self._decide_vote()
        if self._state is _L_CB_WAIT and self.cb.has_room() and self._current is not None:
            self._to(_L_EXECUTING)
            return [Execute(self._current[0])]
        return []

    def _on_report(self, report: Report) -> list[Action]:
        follower, seq = report.variant, report.seq
        if follower not in self.acked:
            return self._halt(
                Verdict(VerdictKind.PROTOCOL_ERROR, seq, detail=f"report from unknown variant {follower}")
            )
        self._reports.setdefault(seq, {})[follower] = report.call
        if seq - 1 > self.acked[follower]:
            self.acked[follower] = seq - 1  # a report implies every earlier entry was consumed
            self.cb.release_upto(min(self.acked.values()))
        if self._state is _L_VOTING:
            return self._decide_vote()
        if (
            report.call.name == KILLED
            and report.call.args
            and report.call.args[0] in SENT_FATAL
            and (seq <= self.seq or (seq == self.seq + 1 and self._state is not _L_FINISH_WAIT))
            and not (self._state is _L_FINISH_WAIT and seq == self.seq)
        ):
            # (One past the leader's number: the follower's died between its
            # last call and the next, which the leader has not reached yet.)
            return self._killed_early(follower, seq, report.call)
        current_seq = self._current[0] if self._current is not None else None
        if seq > self.seq:
            return []  # the leader has not reached that call yet
        if seq == current_seq and self._state in (_L_SYNC_WAIT, _L_FINISH_WAIT):
            return self._try_release()
        if seq == self._unrun:
            # The call the leader's process was held at when it ended: it
            # never ran it, and its end, at the next number, is compared.
            return []
        # The follower is at a call the leader handled asynchronously, or
        # has already passed: unless the calls are equal, they differ.
        leader_call = self._leader_call_at(seq)
        if leader_call is not None and same_call(leader_call, report.call):
            del self._reports[seq][follower]
            return self._on_ack(follower, seq)
        return self._open_vote(seq, leader_call, follower, report.call)

    def _leader_call_at(self, seq: int) -> Call | None:
        if self._current is not None and self._current[0] == seq:
            return self._current[1]
        signalled = self._signal_calls.get(seq)
        return signalled if signalled is not None else self.cb.call_at(seq)

    def _try_release(self) -> list[Action]:
        """At a synchronous call: release it once every follower reported an
        equal call; open a vote on the first difference."""
        assert self._current is not None
        seq, call, decision = self._current
        assert seq is not None
        reports = self._reports.get(seq, {})
        mine = comparable(call)
        awaited = self._awaited_ends(call, reports)
        for follower, theirs in reports.items():
            if follower in awaited:
                continue
            if comparable(theirs) != mine and (
                decision.effect is not _EFFECT_LEADER or adopted_path(call, theirs) is None
            ):
                return self._open_vote(seq, call, follower, theirs)
        missing = self._missing_reports(seq) + awaited
        if missing:
            reason = (
                _WAIT_FINISH
                if self._state is _L_FINISH_WAIT
                else (_WAIT_LOCKSTEP if decision.route is _ROUTE_LOCKSTEP else _WAIT_SYNC)
            )
            return [Wait(reason, seq, missing)]
        del self._reports[seq]
        for follower in self.followers:
            if seq - 1 > self.acked[follower]:
                self.acked[follower] = seq - 1
        if self._state is _L_FINISH_WAIT:
            self.finished = True
            self._to(_L_DONE)
            # A follower whose end came earlier (:meth:`_killed_early`) waits at its own number.
            early = [Send(f, Entry(self.stream, at, call, _KIND_GO)) for f, (at, _) in self._early_ends.items()]
            return [*early, Send(EVERYONE, Entry(self.stream, seq, call, _KIND_GO)), Done(self._exit_status)]
        if decision.refuse:
            # Agreed, and nobody runs it: every variant gets the refusal,
            # the leader too (its call is skipped as a follower's is).
            outcome = Outcome(-decision.refuse)
            self._current = None
            self._to(_L_RUNNING)
            return [Send(EVERYONE, self._entry(seq, call, decision, outcome)), Skip(seq, outcome)]
        self._to(_L_EXECUTING)
        if decision.effect is _EFFECT_EACH:
            return [Send(EVERYONE, Entry(self.stream, seq, call, _KIND_GO)), Execute(seq)]
        return [Execute(seq)]

    def _process_end(self, call: Call, status: int) -> list[Action]:
        if self.verdict is not None or self.finished:
            return []
        if self._state is _L_VOTING:
            return self._decide_vote()
        self._held_signals.clear()  # came too late: the process ended first
        held = self._current if self._state in (_L_SYNC_WAIT, _L_CB_WAIT) else None
        self._unrun = held[0] if held is not None else None
        self.seq += 1
        seq = self.seq
        self._exit_status = status
        self._current = (seq, call, _PROCESS_END)
        self._to(_L_FINISH_WAIT)
        for follower, (_, end) in self._early_ends.items():
            self._reports.setdefault(seq, {})[follower] = end
        return [Send(EVERYONE, Entry(self.stream, seq, call, _KIND_RESULT, Outcome(status)))] + self._try_release()

    def _awaited_ends(self, call: Call, reports: dict[int, Call]) -> tuple[int, ...]:
        """At the leader's end by a signal sent from outside (``call``, say
        the parent's kill of its tree while the variants were still in
        ld.so): the followers whose report there is a call of their own,
        held and never run. The same signal reaches each at its own moment
        and ends it at that number (:meth:`FollowerMonitor._process_end`),
        so the leader waits for that end until the stall timeout -- then
        the follower went on: ``crash``."""
        if self._state is not _L_FINISH_WAIT or call.name != KILLED or call.args[0] not in SENT_FATAL:
            return ()
        return tuple(f for f, theirs in reports.items() if theirs.name not in PSEUDO_CALLS)

    def signal_absent(self, signal: int) -> list[Action]:
        """The mode, asked to let a follower's fatal ``signal`` land in the
        leader's process (:class:`FollowerKilled`), sees it there neither
        pending nor done: the process is alive and has no such signal.

        SIGKILL cannot wait pending in a live process (:data:`SIGKILL`), so
        one not there was never sent here: the follower's process was
        killed alone, and is the odd one out now rather than at the stall
        (a kill sent to the whole tree has ended the leader's process, or
        is pending in it, by the time the follower's end crossed the link).
        Any other signal may still come from a slower sender: the wait goes
        on and the stall decides, as before."""
        if (
            signal != SIGKILL
            or self.verdict is not None
            or self.finished
            or self._state in (_L_FINISH_WAIT, _L_VOTING)
            or not any(end.args[0] == signal for _, end in self._early_ends.values())
        ):
            return []
        seq, call = (self._current[0], self._current[1]) if self._current else (self.seq, None)
        seq = seq if seq is not None else self.seq
        calls: dict[int, Call | None] = {LEADER: call, **self._reports.get(seq, {})}
        names = ", ".join(variant_name(f) for f in self._early_ends)
        detail = f"{names} was killed by signal {signal}, which the leader's process was not sent"
        return self._early_crash(seq, calls, detail)

    def _early_crash(self, seq: int, calls: dict[int, Call | None], detail: str) -> list[Action]:
        """``crash`` at ``seq``: the followers' early ends (:meth:`_killed_early`)
        against the leader's call there and the other followers' reports."""
        for follower, (_, end) in self._early_ends.items():
            calls[follower] = end
        return self._halt(crashed(seq, calls, detail))

    def _early_kills(self) -> list[Action]:
        """The leader is held at a call (a synchronous one, a full CB) after a
        follower's process died of a signal sent from outside
        (:meth:`_killed_early`): where the same signal is pending here, it
        lands at the held call (:class:`FollowerKilled`) -- the follower may
        have died before the leader got to any held call (a kill during
        start-up, in ld.so)."""
        return [FollowerKilled(s) for s in dict.fromkeys(end.args[0] for _, end in self._early_ends.values())]

    def _killed_early(self, follower: int, seq: int, end: Call) -> list[Action]:
        """``follower``'s process died at ``seq`` of a signal sent from
        outside (a parent's ``kill`` of its tree, ``timeout``), before the
        leader's got that far. The same signal, sent alike, reaches the
        leader's process at its own moment: the two ends are compared when
        the leader's comes (a leader held at a call lets it land there,
        :class:`FollowerKilled`). Until then nothing synchronous runs (the
        follower's report is missing) and a leader that does not die of it
        within the stall timeout is the odd one out: ``crash`` -- at once
        when the mode sees a SIGKILL absent from the leader's process
        (:meth:`signal_absent`): the mode is asked whether the leader is
        held or running, not only once a call holds it, since a leader
        running asynchronous calls reaches a held one only when its CB is
        full (4,096 calls on: seconds under load)."""
        self._reports.get(seq, {}).pop(follower, None)
        self._early_ends[follower] = (seq, end)
        if self._state is _L_FINISH_WAIT:
            self._reports.setdefault(self.seq, {})[follower] = end
            return self._try_release()
        if self._state in (_L_VOTING, _L_DONE):
            return []
        # Held or running: the mode is asked at once -- a held call lets the
        # signal land there, and the mode says when it is not in the
        # leader's process at all (signal_absent).
        return [FollowerKilled(end.args[0])]

    def _vote_missing(self) -> tuple[int, ...]:
        return tuple(f for f in self.followers if f not in self._vote_calls)

    def _open_vote(self, seq: int, leader_call: Call | None, follower: int, theirs: Call) -> list[Action]:
        self._to(_L_VOTING)
        self._vote_seq = seq
        self._vote_calls = {LEADER: leader_call, follower: theirs}
        actions: list[Action] = []
        if self.n_variants > 2 and leader_call is not None:
            actions.append(Send(EVERYONE, Entry(self.stream, seq, leader_call, _KIND_VOTE)))
        return actions + self._decide_vote()

    def _decide_vote(self, force: bool = False) -> list[Action]:
        seq, calls = self._vote_seq, self._vote_calls
        leader_call = calls.get(LEADER)
        for follower in self.followers:
            if follower in calls:
                continue
            reported = self._reports.get(seq, {}).get(follower)
            if reported is not None:
                calls[follower] = reported
            elif self.acked[follower] >= seq:
                calls[follower] = leader_call
            elif force:
                calls[follower] = None
        missing = tuple(f for f in self.followers if f not in calls)
        if missing:
            return [Wait(_WAIT_VOTE, seq, missing)]
        comparable_calls = {v: (comparable(c) if c is not None else None) for v, c in calls.items()}
        odd = majority_vote(comparable_calls)
        reference = leader_call
        if odd and LEADER in odd:
            reference = next(c for v, c in calls.items() if v not in odd)
        other = next(
            (c for v, c in calls.items() if comparable_calls[v] != (comparable(reference) if reference else None)), None
        )
        kind, detail = classify_mismatch(
            reference, other, OUTPUT_ARGS.get(reference.name if reference else "", frozenset())
        )
        if any(c is not None and c.name == KILLED for c in calls.values()):
            detail = "killed by a signal in some variants"
            return self._halt(
                Verdict(VerdictKind.CRASH, seq, dict(sorted(calls.items())), odd or killed_ones(calls), detail)
            )
        return self._halt(Verdict(kind, seq, dict(sorted(calls.items())), odd, detail))


class FollowerMonitor(_Monitor):
    """A follower's monitor: checks its variant against the leader's entries
    and feeds it the leader's outcomes."""

    def __init__(
        self,
        policy: Policy,
        index: int,
        n_variants: int,
        stream: str = "0",
        fds: FdTable | None = None,
        steer: bool = False,
        reach: Callable[[int], Reach] | None = None,
    ) -> None:
        if not 1 <= index < n_variants:
            raise ValueError(f"follower index {index} out of range for {n_variants} variants")
        super().__init__(policy, index, n_variants, stream, fds, steer, reach)
        #: The leader's pid of this stream's process, once its PidNote came.
        self.leader_pid: int | None = None
        #: Results of GO-released calls the leader sent before this variant got there.
        self._notes: dict[int, int] = {}
        self._inbox: dict[int, Entry] = {}
        self._current: tuple[int | None, Call, Decision] | None = None
        self._expect: Entry | None = None  # the entry a running call will be checked against
        self._state = _F_RUNNING
        self._acked = 0
        self._ack_every = max(1, min(policy.ack_every, policy.cb_entries // 2 or 1))
        # Acknowledge before half the CB's bytes are in flight unacknowledged,
        # or a leader blocked on a full CB would wait for an ack never sent.
        self._ack_bytes = max(1, policy.cb_bytes // 2)
        self._unacked_bytes = 0
        self._vote_seq = 0
        self._announced = 0
        #: The last call :meth:`call_skipped` took, the leader's call its
        #: entry named, and the decision: a loop's next call is the same pair,
        #: and the name's decision cannot change (the broker decides a name once).
        self._matched: tuple[Call | None, Call | None, Decision] = (None, None, _PROCESS_END)
        #: The leader's end by a signal sent from outside (:data:`SENT_FATAL`):
        #: its number and its call, once its entry came (see :meth:`_process_end`).
        self._leader_end: tuple[int, Call] | None = None

    def _to(self, state: FollowerState) -> None:
        """Move to ``state`` (:data:`dmvx.states.FOLLOWER_TRANSITIONS` must list the move)."""
        if state not in self._state.successors:  # type: ignore[attr-defined]
            raise InvalidTransition("follower monitor", self._state, state)
        self._state = state

    # -- events ----------------------------------------------------------------

    def call_entered(self, call: Call) -> list[Action]:
        """The follower stopped at the entry of ``call``."""
        if self.verdict is not None:
            return []
        decision = self.last_decision = self._by_name.get(call.name) or self.broker.decide(call, self.fds)
        route = decision.route
        self._route_counts[route] += 1
        if route is _ROUTE_LOCAL:
            self._current = (None, call, decision)
            self._to(_F_EXECUTING)
            return list(_EXECUTE_LOCAL)
        seq = self.seq = self.seq + 1
        self._current = (seq, call, decision)
        if decision.sync:
            self._to(_F_SYNC_WAIT)
            actions: list[Action] = [Send(LEADER, Report(self.stream, seq, call, self.index))]
            entry = self._inbox.pop(seq, None)
            if entry is not None:
                actions += self._signalled(entry) if entry.kind is _KIND_SIGNAL else self._on_entry(entry)
            else:
                actions.append(
                    Wait(_WAIT_LOCKSTEP if decision.route is _ROUTE_LOCKSTEP else _WAIT_SYNC, seq, _FROM_LEADER)
                )
            return actions
        entry = self._inbox.pop(seq, None)
        if entry is None:
            self._to(_F_ENTRY_WAIT)
            if self._vote_seq == seq:
                return self._report_divergence(seq, call)
            if self._announced == seq:
                return self._report_at_lockstep(seq, call)
            return [Wait(_WAIT_ENTRY, seq, _FROM_LEADER)]
        if entry.kind is _KIND_SIGNAL:
            return self._signalled(entry)
        return self._consume(entry)

    def call_skipped(self, call: Call) -> tuple[Message, ...] | None:
        """:meth:`call_entered` of a call the leader's entry, already here,
        lets this variant skip, in one step: the messages to send the leader
        (an acknowledgement when one is due, else none), or None when the
        call needs the general path -- and then nothing has changed.

        The check is :meth:`_consume`'s (the same call, an entry of kind
        full or predicted for a call only the leader runs): a simulated
        follower skipping the leader's replicated calls one after another
        takes each here without a :class:`Skip` answer to unpack.
        Descriptor-changing, lockstep and local calls, a missing entry and
        any entry of another kind take the general path."""
        if self._state is not _F_RUNNING or self.verdict is not None:
            return None
        seq = self.seq + 1
        entry = self._inbox.get(seq)
        if entry is None:
            return None
        leader_call = entry.call
        matched = self._matched
        if matched[0] is call and matched[1] is leader_call:
            # The same call and leader's call as the last one skipped here
            # (a loop): the checks below came out so for them then.
            decision = matched[2]
        else:
            name = call.name
            decided = self._by_name.get(name)
            if (
                decided is None
                or not _skippable(name, decided)
                or not (leader_call is call or (leader_call.name == name and leader_call.args == call.args))
            ):
                return None
            decision = decided
        kind = entry.kind
        if (kind is _KIND_FULL and entry.outcome is not None) or kind is _KIND_PREDICTED:
            self._matched = (call, leader_call, decision)
            del self._inbox[seq]
            self.seq = seq
            self.last_decision = decision
            self._route_counts[decision.route] += 1
            unacked = self._unacked_bytes = self._unacked_bytes + entry.size
            # RUNNING -> RUNNING: skipped (FOLLOWER_TRANSITIONS lists it).
            self._current = None
            if seq - self._acked < self._ack_every and unacked < self._ack_bytes and not self._vote_seq:
                return ()  # :meth:`_ack_due` says no, written out
            return (self._take_ack(seq),) if self._ack_due(seq) else ()
        return None

    def calls_skipped(self, call: Call, most: int) -> tuple[list[Outcome], tuple[Message, ...]]:
        """:meth:`call_skipped` of up to ``most`` equal calls in a row, as
        one core event: the outcome each skipped call returns (the leader's,
        in order; empty when the first needs the general path -- and then
        nothing has changed) and the messages to send the leader.

        A run stops early at the first call whose entry is not here, or is
        not one :meth:`call_skipped` takes (another call, another kind):
        that call takes the general path. The checks are
        :meth:`call_skipped`'s, entry by entry; the acknowledgement is the
        one due at the run's last call, or at the last call of it where one
        fell due: a run is taken at one moment, so one acknowledgement says
        what several would (the leader releases up to it)."""
        if self._state is not _F_RUNNING or self.verdict is not None or most <= 0:
            return [], ()
        name = call.name
        decision = self._by_name.get(name)
        if decision is None and name not in _GENERAL_PATH:
            decision = self.broker.decide(call, self.fds)  # by its descriptor, as call_entered asks
        if decision is None or not _skippable(name, decision):
            return [], ()
        inbox = self._inbox
        seq = self.seq
        outcomes: list[Outcome] = []
        predicted: Outcome | None = None
        due = 0
        unacked = self._unacked_bytes
        for _ in range(most):
            entry = inbox.get(seq + 1)
            if entry is None:
                break
            leader_call = entry.call
            if not (leader_call is call or (leader_call.name == name and leader_call.args == call.args)):
                break
            kind = entry.kind
            if kind is _KIND_FULL and entry.outcome is not None:
                outcomes.append(entry.outcome)
            elif kind is _KIND_PREDICTED:
                if predicted is None:
                    predicted = _predicted_outcome(call)
                outcomes.append(predicted)
            else:
                break
            seq += 1
            del inbox[seq]
            unacked += entry.size
            self._unacked_bytes = unacked
            if self._ack_due(seq):
                due = seq
                unacked = self._unacked_bytes = 0
                self._acked = seq
        if not outcomes:
            return [], ()
        self.seq = seq
        self.last_decision = decision
        self._route_counts[decision.route] += len(outcomes)
        self._current = None  # RUNNING -> RUNNING: skipped, as call_skipped
        return outcomes, ((Ack(self.stream, due, self.index),) if due else ())

    def call_skipped_on(self, call: Call, messages: Sequence[Message]) -> tuple[Message, ...] | None:
        """:meth:`call_entered` of ``call`` before its entry is here, then
        :meth:`message_received` of each of ``messages`` (a delivery whose
        first message is that entry), in one step, for a follower caught up
        with its leader: the messages to send the leader (as
        :meth:`call_skipped`), or None when those events would answer
        anything but a wait and then a skip -- and then nothing has changed.

        A caught-up follower enters each call before the leader's entry
        comes and waits for it; the entry comes first in the next delivery
        and the rest of the delivery are entries for later calls, which it
        keeps. That is two answers and a method call per message; here it
        is one method call per delivery, and the mode reckons the wait."""
        seq = self.seq + 1
        if not messages or seq in self._inbox or self._vote_seq == seq or self._announced == seq:
            return None
        first = messages[0]
        if type(first) is not Entry or first.seq != seq or first.kind in _LONG_WAY:
            return None
        for message in messages[1:]:
            if type(message) is not Entry or message.kind in _LONG_WAY or message.seq <= seq:
                return None
        inbox = self._inbox
        inbox[seq] = first
        acks = self.call_skipped(call)
        if acks is None:
            del inbox[seq]
            return None
        for message in messages[1:]:
            inbox[message.seq] = message  # type: ignore[union-attr, assignment]  # an Entry (checked above)
        return acks

    def call_exited(self, outcome: Outcome) -> list[Action]:
        """A call the follower ran itself returned ``outcome``."""
        if self.verdict is not None or self._current is None:
            return []
        seq, call, decision = self._current
        self._current = None
        self._to(_F_RUNNING)
        if seq is None:
            return []
        self._update_fds(call, decision, outcome)
        expect, self._expect = self._expect, None
        if decision.sync:
            self._notes.pop(seq, None)  # a note that only ordered this call (not steered)
            return []  # released by GO after the leader compared our report
        if expect is not None:
            if expect.kind is _KIND_PREDICTED:
                same = outcome.result == predicted_result(call)
            else:
                same = (
                    expect.outcome is not None
                    and expect.outcome.result == outcome.result
                    and (expect.kind is not _KIND_DIGEST or outcome_digest(outcome) == expect.digest)
                )
            if not same:
                leader_result = expect.outcome.result if expect.outcome is not None else predicted_result(call)
                return self._halt(
                    Verdict(
                        VerdictKind.OUTPUT_MISMATCH,
                        seq,
                        {LEADER: expect.call, self.index: call},
                        detail=f"{call.name} returned {leader_result} in the leader and {outcome.result} "
                        f"here{'' if outcome.result != leader_result else ' with different data'}",
                    )
                )
        return self._consumed(seq)

    def entries_kept(self, messages: Sequence[Message]) -> int:
        """:meth:`message_received` of the first messages of a delivery, as
        long as each is an entry for a call this variant has not reached
        yet: each is kept for its call, and none has an answer. How many it
        took; the rest go to :meth:`message_received` one by one.

        A follower behind its leader gets most entries so: one method call
        per delivery (the CONNECTOR's batch) instead of one per entry."""
        if self.verdict is not None:
            return 0
        inbox = self._inbox
        mine = self.seq
        taken = 0
        for message in messages:
            if type(message) is not Entry or message.kind in _LONG_WAY or message.seq <= mine:
                break
            inbox[message.seq] = message
            taken += 1
        return taken

    def message_received(self, message: Message) -> list[Action]:
        """The leader's monitor sent ``message``."""
        # The common cases, first: an entry for a call this variant has not
        # reached yet (the call it is at, if any, is at most ``self.seq``), or
        # for the call it is held at waiting for it. (Votes, announcements,
        # process ends and signals take the long way below.)
        if type(message) is Entry and self.verdict is None and message.kind not in _LONG_WAY:
            seq = message.seq
            if seq > self.seq:
                self._inbox[seq] = message
                return []
            current = self._current
            if self._state is _F_ENTRY_WAIT and current is not None and current[0] == seq:
                return self._consume(message)
        if isinstance(message, Stop):
            return self._stopped_by_peer(message)
        if self.verdict is not None:
            return []
        if not isinstance(message, Entry):
            if isinstance(message, ResultNote):
                return self._on_note(message)
            if isinstance(message, PidNote):
                self.leader_pid = message.pid
                return [LeaderPid(message.pid)]
            return self._halt(
                Verdict(
                    VerdictKind.PROTOCOL_ERROR, self.seq, detail=f"follower received a {type(message).__name__} message"
                )
            )
        if message.kind is _KIND_RESULT and message.call.name == KILLED:
            # The leader's process died of a signal: where the same signal is
            # pending here (sent alike, say by the parent), the mode lets it
            # land as it did there, before the entry is looked at.
            if message.call.args[0] in SENT_FATAL:
                self._leader_end = (message.seq, message.call)
            return [LeaderKilled(message.call.args[0]), *self._entry_received(message)]
        return self._entry_received(message)

    def _entry_received(self, message: Entry) -> list[Action]:
        """The leader's entry ``message`` arrived (see :meth:`message_received`)."""
        kind = message.kind
        seq = message.seq
        current = self._current
        at_current = current is not None and current[0] == seq
        if kind is _KIND_VOTE:
            return self._on_vote(message)
        if kind is _KIND_ANNOUNCE:
            if at_current and self._state is _F_ENTRY_WAIT:
                return self._report_at_lockstep(seq, current[1])  # type: ignore[index]
            if seq > self.seq:
                self._announced = seq
            return []
        if kind is _KIND_SIGNAL and at_current and self._state in _SIGNAL_ENDS:
            return self._signalled(message)
        if at_current and self._state in (_F_ENTRY_WAIT, _F_SYNC_WAIT, _F_FINISH_WAIT):
            if self._state is _F_ENTRY_WAIT:
                return self._consume(message)
            return self._on_entry(message)
        if seq == self.seq - 1 and self._state is _F_FINISH_WAIT:
            # For the call this process was held at when it ended: it will
            # never run it; its end, reported at the next number, is compared.
            return []
        if seq <= self.seq and self._state is not _F_DIVERGED and not at_current:
            return self._halt(
                Verdict(VerdictKind.PROTOCOL_ERROR, seq, detail=f"entry {seq} arrived after call {self.seq}")
            )
        self._inbox[seq] = message
        return []

    def signal_arrived(self, signal: int, interrupted: int | None = None) -> list[Action]:
        """An asynchronous signal came to the follower's process: dropped
        (an empty answer). Its signals are the leader's, delivered where the
        leader took them (an entry of kind ``signal``, :mod:`dmvx.signals`)."""
        return []

    def _signalled(self, entry: Entry) -> list[Action]:
        """The leader's call ``entry.seq`` ended interrupted by a signal: if
        ours is the same call, it ends the same way (:class:`Deliver`)."""
        current = self._current
        assert current is not None  # the call this entry is for
        seq, call, decision = current
        assert seq is not None
        if not same_call(entry.call, call):
            if decision.sync:  # our report already told the leader
                self._to(_F_DIVERGED)
                return [Wait(_WAIT_VOTE, seq, _FROM_LEADER)]
            return self._report_divergence(seq, call)
        self._current = None
        self._expect = None
        self._to(_F_RUNNING)
        assert entry.outcome is not None  # a signal entry carries the result the call ended with
        # A wait that installs a mask runs here with the signal pending when
        # the leader's ran and was interrupted. Not when the leader's never
        # ran (ERESTARTNOINTR: a signal held for it from between calls):
        # there the signal, blocked at the call, reached the leader's handler
        # inside the call made again, which then returned EINTR; run here,
        # the call would take it and the one made again wait for ever (dash's
        # `wait`, which blocks every signal before its sigsuspend).
        rerun = call.name in MASK_WAITS and entry.outcome.result != ERESTARTNOINTR
        deliver = Deliver(seq, entry.signal, entry.outcome.result, rerun)
        if decision.sync:
            return [deliver]
        self._unacked_bytes += entry.size
        return [deliver, *self._consumed(seq)]

    def stalled(self) -> list[Action]:
        """A wait lasted longer than the stall timeout: the leader is silent."""
        if self.verdict is not None or self.finished:
            return []
        seq = self._current[0] if self._current and self._current[0] is not None else self.seq
        mine = self._current[1] if self._current else None
        if self._held_at_leader_end():
            # The leader's process died of a signal sent from outside; the
            # same signal never came here, and this one went on.
            assert self._leader_end is not None and mine is not None
            end = self._leader_end[1]
            return self._halt(
                crashed(
                    seq, {LEADER: end, self.index: mine}, f"the leader was killed by signal {end.args[0]}; {_WENT_ON}"
                )
            )
        if mine is not None and mine.name == KILLED:
            # This variant's process was killed and the leader went on.
            return self._halt(
                crashed(
                    seq,
                    {LEADER: None, self.index: mine},
                    f"{variant_name(self.index)} was killed by signal {mine.args[0]}; {_WENT_ON}",
                )
            )
        return self._halt(
            Verdict(
                VerdictKind.NO_PROGRESS,
                seq,
                {LEADER: None, self.index: mine},
                _FROM_LEADER,
                detail=f"no word from the leader ({self._state.value})",
            )
        )

    # -- internals ---------------------------------------------------------------

    def _consume(self, entry: Entry) -> list[Action]:
        """Check the current call against the leader's entry and act on it.

        This is the hot path of asynchronous replication (once per call per
        follower), so the common case -- equal calls, a call only the leader
        runs -- is written out here rather than spread over helpers."""
        current = self._current
        assert current is not None  # the call this entry is for
        seq, call, decision = current
        assert seq is not None  # only a compared call waits for the leader's entry
        self._unacked_bytes += entry.size
        kind = entry.kind
        leader_call = entry.call
        if kind is _KIND_GO or leader_call.name in PSEUDO_CALLS:
            return self._report_divergence(seq, call)
        # Equal calls are the rule: compared field by field here, not through
        # Call.__eq__ (a Python-level call building two tuples).
        if (leader_call.name != call.name or leader_call.args != call.args) and not same_call(leader_call, call):
            adopt = _adoptable(call, decision, entry)
            return self._adopt(seq, decision, entry, adopt) if adopt else self._report_divergence(seq, call)
        if decision.effect is not _EFFECT_LEADER:
            self._expect = entry
            self._to(_F_EXECUTING)
            if self.steer and leader_call.name in STEERED:
                return [Execute(seq, _leader_result(entry))]
            return [Execute(seq)]
        if kind is _KIND_FULL and entry.outcome is not None:
            outcome = entry.outcome
        elif kind is _KIND_PREDICTED:
            outcome = _predicted_outcome(call)
        else:
            return self._halt(
                Verdict(
                    VerdictKind.PROTOCOL_ERROR,
                    seq,
                    {LEADER: leader_call, self.index: call},
                    detail=f"{kind.value} entry for a call only the leader runs",
                )
            )
        return self._skip(seq, call, decision, outcome)

    def _on_entry(self, entry: Entry) -> list[Action]:
        """The leader's answer at a synchronous call (or at process end)."""
        assert self._current is not None
        seq, call, decision = self._current
        assert seq is not None
        if self._state is _F_FINISH_WAIT:
            if entry.kind is _KIND_GO:
                self.finished = True
                self._to(_F_DONE)
                return [Done(call.args[0] if call.name == EXIT else 128 + call.args[0])]
            self._inbox[entry.seq] = entry
            return []
        if entry.kind is _KIND_GO:
            if self.steer and entry.call.name in STEERED:
                # Every variant runs it, the leader too: hold ours until the
                # leader's result is known, then run it towards that result.
                result = self._notes.pop(seq, None)
                if result is None:
                    self._to(_F_NOTE_WAIT)
                    return [Wait(_WAIT_NOTE, seq, _FROM_LEADER)]
                self._to(_F_EXECUTING)
                return [Execute(seq, result)]
            self._to(_F_EXECUTING)
            return [Execute(seq)]
        if entry.kind is _KIND_FULL and entry.outcome is not None:
            if same_call(entry.call, call):
                return self._skip(seq, call, decision, entry.outcome)
            adopt = _adoptable(call, decision, entry)
            if adopt:
                return self._adopt(seq, decision, entry, adopt)
        if entry.kind is _KIND_PREDICTED and same_call(entry.call, call):
            return self._skip(seq, call, decision, _predicted_outcome(call))
        # The leader handled this point asynchronously: different calls. The
        # report already sent tells the leader; wait for its verdict.
        self._to(_F_DIVERGED)
        return [Wait(_WAIT_VOTE, seq, _FROM_LEADER)]

    def _on_note(self, note: ResultNote) -> list[Action]:
        """The leader's result of GO-released call ``note.seq``: run ours now
        if it waits for it, else keep it for when this variant gets there."""
        current = self._current
        if self._state is _F_NOTE_WAIT and current is not None and current[0] == note.seq:
            self._to(_F_EXECUTING)
            return [Execute(note.seq, note.result)]
        self._notes[note.seq] = note.result
        return []

    def _adopt(self, seq: int, decision: Decision, entry: Entry, adopt: tuple[int, str]) -> list[Action]:
        """Skip the call as the leader's (see :func:`_adoptable`), with the
        leader's name as one more output, into this variant's path buffer."""
        index, path = adopt
        outcome = entry.outcome
        assert outcome is not None
        adopted = Outcome(outcome.result, (*outcome.outputs, (index, path.encode("utf-8", "surrogateescape"))))
        return self._skip(seq, entry.call, decision, adopted)

    def _skip(self, seq: int, call: Call, decision: Decision, outcome: Outcome) -> list[Action]:
        name = call.name
        new_fds: tuple[int, ...] = ()
        if name in CHANGES_FDS:
            self._update_fds(call, decision, outcome)
            if outcome.result >= 0:
                if name in RETURNS_FD:  # followers mirror the leader's new descriptor
                    new_fds = (outcome.result,)
                else:
                    pair = fd_pair(call, outcome)
                    if pair is not None:
                        new_fds = pair
        # self._to(_F_RUNNING), written out: this is every call a follower skips.
        if _F_RUNNING not in self._state.successors:  # type: ignore[attr-defined]
            raise InvalidTransition("follower monitor", self._state, _F_RUNNING)
        self._state = _F_RUNNING
        self._current = None
        skip = Skip(seq, outcome, new_fds)
        if decision.sync:
            return [skip]  # our report already told the leader
        return [skip, Send(LEADER, self._take_ack(seq))] if self._ack_due(seq) else [skip]

    def _ack_due(self, seq: int) -> bool:
        """Whether consuming ``seq`` owes the leader an acknowledgement: every
        ``ack_every`` entries, every ``ack_bytes`` bytes, and from a vote point on."""
        return (
            seq - self._acked >= self._ack_every
            or self._unacked_bytes >= self._ack_bytes
            or bool(self._vote_seq and seq >= self._vote_seq)
        )

    def _take_ack(self, seq: int) -> Ack:
        self._acked = seq
        self._unacked_bytes = 0
        return Ack(self.stream, seq, self.index)

    def _consumed(self, seq: int) -> list[Action]:
        return [Send(LEADER, self._take_ack(seq))] if self._ack_due(seq) else []

    def _report_at_lockstep(self, seq: int, call: Call) -> list[Action]:
        """The leader waits at a lockstep call where this variant made a call
        it would not hold: report it and let the leader compare."""
        self._to(_F_SYNC_WAIT)
        return [Send(LEADER, Report(self.stream, seq, call, self.index)), Wait(_WAIT_LOCKSTEP, seq, _FROM_LEADER)]

    def _report_divergence(self, seq: int, call: Call) -> list[Action]:
        self._to(_F_DIVERGED)
        return [Send(LEADER, Report(self.stream, seq, call, self.index)), Wait(_WAIT_VOTE, seq, _FROM_LEADER)]

    def signal_absent(self, signal: int) -> list[Action]:
        """The mode, told the leader's process died of ``signal``
        (:class:`LeaderKilled`), sees it neither pending nor done in this
        variant's process, held at the leader's end's number (reported,
        never run). SIGKILL cannot wait pending in a live process
        (:data:`SIGKILL`): it was never sent here, the leader's process was
        killed alone, and it is the odd one out now rather than at the
        stall. Any other signal may still come: nothing changes."""
        if signal != SIGKILL or self.verdict is not None or self.finished or not self._held_at_leader_end():
            return []
        assert self._leader_end is not None and self._current is not None
        end = self._leader_end[1]
        if end.args[0] != signal:
            return []
        detail = f"the leader was killed by signal {signal}, which {variant_name(self.index)}'s process was not sent"
        return self._halt(crashed(self.seq, {LEADER: end, self.index: self._current[1]}, detail))

    def _held_at_leader_end(self) -> bool:
        """Whether this variant's process is held at a call (reported, never
        run) whose number is the leader's end by a signal sent from outside:
        the leader waits for this one's end there (:meth:`LeaderMonitor._awaited_ends`)."""
        end = self._leader_end
        current = self._current
        return (
            end is not None
            and self._state is _F_DIVERGED
            and current is not None
            and current[0] == end[0] == self.seq
            and current[1].name not in PSEUDO_CALLS
        )

    def _on_vote(self, vote: Entry) -> list[Action]:
        """The leader is deciding a divergence at ``vote.seq``: say where we stand."""
        seq = vote.seq
        self._vote_seq = seq
        current = self._current
        if current is not None and current[0] == seq:
            if self._state is _F_ENTRY_WAIT:
                return self._report_divergence(seq, current[1])
            return []  # already reported (sync, diverged) or consumed (acks on exit)
        if self.seq >= seq:
            at_current = current is not None and current[0] == self.seq
            self._acked = max(self._acked, self.seq - 1 if at_current else self.seq)
            return [Send(LEADER, Ack(self.stream, self._acked, self.index))]
        return []  # behind: the call at ``seq`` will be reported or acknowledged

    def _process_end(self, call: Call, status: int) -> list[Action]:
        if self.verdict is not None or self.finished:
            return []
        if not self._held_at_leader_end():
            self.seq += 1
        # else: held at the number of the leader's end, its call never ran
        # (the mode let the signal land there, LeaderKilled): its own end
        # takes that number, and the leader compares the two ends.
        seq = self.seq
        self._current = (seq, call, _PROCESS_END)
        self._to(_F_FINISH_WAIT)
        actions: list[Action] = [Send(LEADER, Report(self.stream, seq, call, self.index))]
        entry = self._inbox.pop(seq, None)
        if entry is not None and entry.kind is _KIND_GO:
            return actions + self._on_entry(entry)
        if entry is not None:
            self._inbox[seq] = entry
        return actions + [Wait(_WAIT_FINISH, seq, _FROM_LEADER)]


def monitors(policy: Policy, n_variants: int, stream: str = "0", steer: bool = False) -> list[_Monitor]:
    """One leader and ``n_variants - 1`` followers for ``policy``."""
    return [LeaderMonitor(policy, n_variants, stream, steer=steer)] + [
        FollowerMonitor(policy, i, n_variants, stream, steer=steer) for i in range(1, n_variants)
    ]
