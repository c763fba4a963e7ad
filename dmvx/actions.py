"""Actions: what a monitor asks its mode to do.

Every monitor method takes one event and returns a list of actions. The mode
carries them out in order. A variant stopped at a call stays stopped until an
:class:`Execute` or :class:`Skip` for that call comes back -- possibly much
later, from a message event. :class:`Wait` says why it stays stopped, so
modes can time the wait and draw it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from dmvx.calls import Outcome
from dmvx.messages import Message
from dmvx.verdict import Verdict

#: The leader's variant index (``Send.to`` of a follower's messages); followers are 1..n-1.
LEADER = 0
#: ``Send.to`` value meaning "every other variant's monitor".
EVERYONE = -1
#: While its variant is inside a native call, a mode tells the others so this
#: often (nanoseconds): a peer held waiting for that call must not take the
#: wait for a stall (see :meth:`dmvx.monitor.LeaderMonitor.stalled`). Real
#: mode sends a heartbeat; sim marks the call as heard through.
HEARTBEAT_EVERY = 500_000_000


class WaitReason(str, Enum):
    """Why a variant is held at a call."""

    LOCKSTEP = "lockstep"  # waiting for every variant to reach this call
    SYNC = "sync"  # DMON: waiting for the others before executing
    CB_FULL = "cb-full"  # leader: the connector buffer is full
    ENTRY = "entry"  # follower: the leader's entry has not arrived
    VOTE = "vote"  # a divergence is being decided
    FINISH = "finish"  # exited; waiting for the others to finish
    NOTE = "note"  # follower: released, waiting for the leader's result to steer by


@dataclass(slots=True)
class Execute:
    """Let the variant run the call natively. ``seq`` is None for local calls.

    ``expect``, from a steering follower's monitor only, is the leader's
    result of this call: the mode steers the variant's own run towards it
    where only timing could make the two differ (a pipe read reads as many
    bytes, ``wait4`` reaps the same child; see :data:`dmvx.monitor.STEERED`).
    """

    seq: int | None
    expect: int | None = None


@dataclass(slots=True)
class Skip:
    """Do not run the call: make it return ``outcome`` instead.

    The mode sets the return value, writes each output at the variant's own
    pointer for that argument, and for every descriptor in ``new_fds`` makes
    sure a placeholder is open at exactly that number (so descriptor numbers
    stay equal across variants although only the leader really opened it).
    ``closed_fds`` are placeholders the mode may now close.
    """

    seq: int
    outcome: Outcome
    new_fds: tuple[int, ...] = ()
    closed_fds: tuple[int, ...] = ()


@dataclass(slots=True)
class Send:
    """Send ``message`` to variant ``to``'s monitor (or :data:`EVERYONE`)."""

    to: int
    message: Message


@dataclass(slots=True)
class Wait:
    """The variant stays stopped; ``awaiting`` names whom it waits for."""

    reason: WaitReason
    seq: int | None
    awaiting: tuple[int, ...] = ()


@dataclass(slots=True)
class Halt:
    """Stop every variant now, before any further call runs."""

    verdict: Verdict


@dataclass(slots=True)
class Done:
    """This monitor's part of the run is over; the variants agreed to the end."""

    exit_status: int


@dataclass(slots=True)
class LeaderPid:
    """The leader's process of this monitor's stream has pid ``pid``: the
    mode maps this variant's process to it (see :class:`~dmvx.messages.PidNote`)."""

    pid: int


@dataclass(slots=True)
class LeaderKilled:
    """The leader's process of this monitor's stream died of ``signal``
    (its ``<killed>`` entry came). A mode that can tell whether the same
    signal is pending in this variant's process -- sent alike, say by the
    parent's ``kill`` -- lets it land as it did in the leader: the held call
    returns EINTR without running and the signal is delivered on the way
    back, so the two ends compare equal. A signal that is not pending yet
    may come later; the mode keeps looking while the process waits, and says
    when it sees it neither pending nor done there
    (:meth:`dmvx.monitor.FollowerMonitor.signal_absent`)."""

    signal: int


@dataclass(slots=True)
class FollowerKilled:
    """A follower's process of this (leader) monitor's stream died of
    ``signal`` before the leader's process got that far (it is held at a
    call, or still running). The mirror of :class:`LeaderKilled`: where the
    same signal is pending in the leader's process (sent alike, say by the
    parent's ``kill``), the mode lets it land at the held call -- which does
    not run -- and the two ends compare equal (the leader's end comes one
    number later, after the call it was held at and never ran). Where the
    signal is neither pending nor done there, a mode that can see it says so
    (:meth:`dmvx.monitor.LeaderMonitor.signal_absent`)."""

    signal: int


@dataclass(slots=True)
class Deliver:
    """Deliver ``signal`` at the variant's compared call ``seq`` (see
    :mod:`dmvx.signals`): the call ends with ``result`` (one of
    :data:`dmvx.signals.RESTART`) and the signal is delivered as it returns,
    so the kernel runs the handler and then restarts the call or makes it
    return ``EINTR``, as it did in the leader. The call does not run, unless
    ``rerun``: then it runs with the signal already pending (a call that
    installs a signal mask while it waits, :data:`dmvx.signals.MASK_WAITS`,
    whose leader's ran and was interrupted).
    At the leader's call interrupted by the signal, the mode lets the signal
    through where it stopped it."""

    seq: int
    signal: int
    result: int
    rerun: bool = False


Action = Execute | Skip | Send | Wait | Halt | Done | LeaderPid | LeaderKilled | FollowerKilled | Deliver


class Carrier:
    """A mode's hands: one method per kind of action, and :meth:`carry_out`,
    the one loop that hands each action of a monitor's answer to its method.

    Replay, sim and real mode each subclass it and say only what differs --
    what "execute" or "send" means to them -- so an action added to the core
    is one method here and one per mode that cares, not a fourth hand-written
    ``isinstance`` chain. A :class:`Halt` or :class:`Done` ends the answer
    (the monitors put them last): nothing after a verdict or the end is
    carried out.
    """

    __slots__ = ()

    def carry_out(self, actions: Iterable[Action]) -> None:
        """Carry ``actions`` out in order."""
        for action in actions:
            name, last = _METHODS[type(action)]
            getattr(self, name)(action)
            if last:
                return

    def execute(self, action: Execute) -> None:
        """Let the variant run its held call."""
        raise NotImplementedError

    def skip(self, action: Skip) -> None:
        """Make the held call return the leader's outcome without running."""
        raise NotImplementedError

    def send(self, action: Send) -> None:
        """Send the message to the other monitors."""
        raise NotImplementedError

    def wait(self, action: Wait) -> None:
        """The variant stays held (it already is, from its call's entry on);
        a mode that times or draws waits says so here."""

    def halt(self, action: Halt) -> None:
        """Stop every variant: a verdict."""
        raise NotImplementedError

    def done(self, action: Done) -> None:
        """This monitor's part of the run is over."""
        raise NotImplementedError

    def leader_pid(self, action: LeaderPid) -> None:
        """Map this variant's process to the leader's pid; modes whose
        processes have no pids of their own have nothing to do."""

    def leader_killed(self, action: LeaderKilled) -> None:
        """Let the leader's fatal signal land here too where it is pending;
        modes without real signals have nothing to do."""

    def follower_killed(self, action: FollowerKilled) -> None:
        """Let a follower's fatal signal land in the leader's held process
        where it is pending; modes without real signals have nothing to do."""

    def deliver_signal(self, action: Deliver) -> None:
        """Deliver a signal at the held call (see :class:`Deliver`)."""
        raise NotImplementedError


#: Action type -> (Carrier method, whether it ends the answer).
_METHODS: dict[type, tuple[str, bool]] = {
    Execute: ("execute", False),
    Skip: ("skip", False),
    Send: ("send", False),
    Wait: ("wait", False),
    Halt: ("halt", True),
    Done: ("done", True),
    LeaderPid: ("leader_pid", False),
    LeaderKilled: ("leader_killed", False),
    FollowerKilled: ("follower_killed", False),
    Deliver: ("deliver_signal", False),
}
