"""Asynchronous signals in the core (dmvx/signals.py): every variant takes
the leader's signal at the same compared call, whenever its own came.

The replay driver gives each variant its own moment for the signal (a
step's ``signal``) and runs the handler's steps where the monitors deliver
it; a handler that makes calls then diverges unless the delivery points
agree. These tests fail on a core without signal points (no
``signal_arrived``, no ``Deliver``).
"""

from __future__ import annotations

import signal

import pytest

from dmvx.actions import Deliver, Send
from dmvx.calls import Call, Outcome
from dmvx.codec import decode_message, encode_message
from dmvx.messages import Entry, EntryKind, Report
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.policy import Policy
from dmvx.replay import Step, replay
from dmvx.signals import ERESTARTNOHAND, ERESTARTNOINTR, ERESTARTSYS

CHLD, USR1 = int(signal.SIGCHLD), int(signal.SIGUSR1)
PRESETS = ("dmvx", "dmon")


def _write(text: bytes) -> Step:
    return Step(Call("write", (1, text, len(text))), Outcome(len(text)))


#: bash's SIGCHLD handler: reap what ended, until nothing is left.
REAP = (Step(Call("wait4", (-1, 0, 1, 0)), Outcome(1234)), Step(Call("wait4", (-1, 0, 1, 0)), Outcome(-10)))
#: A handler that writes, for nesting.
NOTE = (_write(b"usr1\n"),)


def _stream(signal_at: int | None, sig: int = CHLD, length: int = 6, interrupted: int | None = None) -> list[Step]:
    steps = [_write(f"line {i}\n".encode()) for i in range(length)]
    if signal_at is not None:
        step = steps[signal_at]
        steps[signal_at] = Step(step.call, step.outcome, sig, interrupted)
    return steps


def _executed_and_skipped(log) -> list[Call]:
    return log.executed + log.skipped


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(("leader_at", "follower_at"), [(2, 0), (0, 4), (3, 3), (5, None), (1, 5)])
def test_handler_calls_land_at_the_leaders_point(preset: str, leader_at: int, follower_at: int | None) -> None:
    """The signal comes to each variant before a different call (or never to
    the follower): the handler's calls still come at one place in both."""
    policy = Policy.preset(preset)
    for seed in range(20):
        result = replay(
            policy,
            [_stream(leader_at), _stream(follower_at)],
            seed=seed,
            handlers={CHLD: REAP},
        )
        assert result.ok, (seed, result.verdict)
        leader, follower = result.logs
        assert len(leader.delivered) == 1 and leader.delivered == follower.delivered
        assert sorted(map(repr, _executed_and_skipped(leader))) == sorted(map(repr, _executed_and_skipped(follower)))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("result", [ERESTARTSYS, ERESTARTNOHAND])
def test_a_signal_that_interrupts_the_leaders_call_ends_the_followers_there(preset: str, result: int) -> None:
    """The leader's call 3 is interrupted while it runs; the follower's own
    copy comes earlier and is dropped: both deliver at call 3."""
    policy = Policy.preset(preset)
    for seed in range(20):
        run = replay(
            policy,
            [_stream(2, interrupted=result), _stream(0)],
            seed=seed,
            handlers={CHLD: REAP},
        )
        assert run.ok, (seed, run.verdict)
        assert run.logs[0].delivered == run.logs[1].delivered == [(3, CHLD)]


@pytest.mark.parametrize("preset", PRESETS)
def test_nested_signals_agree(preset: str) -> None:
    """A second signal comes while the first one's handler runs (in the
    leader only): it is taken inside that handler in every variant."""
    policy = Policy.preset(preset)
    handlers = {CHLD: (REAP[0], Step(REAP[1].call, REAP[1].outcome, USR1)), USR1: NOTE}
    for seed in range(20):
        run = replay(policy, [_stream(1), _stream(4)], seed=seed, handlers=handlers)
        assert run.ok, (seed, run.verdict)
        assert [s for _, s in run.logs[0].delivered] == [CHLD, USR1]
        assert run.logs[0].delivered == run.logs[1].delivered


def test_a_handler_where_the_follower_differs_is_still_a_divergence() -> None:
    """Synchronising signals does not excuse a different call: the follower
    at the signal point makes another call, and that is reported."""
    policy = Policy.preset("dmvx")
    other = _stream(None)
    other[2] = _write(b"changed\n")
    run = replay(policy, [_stream(2), other], seed=1, handlers={CHLD: REAP})
    assert run.verdict is not None and run.verdict.seq == 3


def test_leader_holds_a_signal_until_its_next_compared_call() -> None:
    leader = LeaderMonitor(Policy.preset("dmvx"), 2)
    assert leader.signal_arrived(CHLD) == []  # held back: the mode keeps it from the process
    assert leader.signal_arrived(CHLD) == []  # a standard signal pending twice is one
    actions = leader.call_entered(Call("write", (1, b"x", 1)))
    assert actions[-1] == Deliver(1, CHLD, ERESTARTNOINTR)
    send = actions[0]
    assert isinstance(send, Send)
    entry = send.message
    assert isinstance(entry, Entry) and entry.kind is EntryKind.SIGNAL and entry.signal == CHLD
    # Made again after the handler: an ordinary call at the next place.
    again = leader.call_entered(Call("write", (1, b"x", 1)))
    assert not any(isinstance(a, Deliver) for a in again) and leader.seq == 2


def test_follower_drops_its_own_signals() -> None:
    follower = FollowerMonitor(Policy.preset("dmvx"), 1, 2)
    assert follower.signal_arrived(CHLD) == []
    assert follower.signal_arrived(CHLD, ERESTARTSYS) == []


def test_follower_reruns_a_call_that_installs_a_mask() -> None:
    """rt_sigsuspend must run (its mask) with the signal pending, not be skipped."""
    policy = Policy.preset("dmvx")
    follower = FollowerMonitor(policy, 1, 2)
    call = Call("rt_sigsuspend", (0, 8))
    follower.call_entered(call)
    entry = Entry("0", 1, call, EntryKind.SIGNAL, Outcome(ERESTARTNOHAND), signal=CHLD)
    assert follower.message_received(entry)[0] == Deliver(1, CHLD, ERESTARTNOHAND, rerun=True)


def test_follower_skips_a_mask_wait_the_leaders_signal_was_held_for() -> None:
    """A signal held from between calls for the leader's rt_sigsuspend ends
    it unrun (ERESTARTNOINTR); blocked there (dash blocks every signal before
    its sigsuspend), it reaches the leader's handler inside the call made
    again, which then returns EINTR. The follower's must not run either: run
    with the signal pending, it took the signal itself, and the call made
    again waited for ever (realmode/targets/signals.c ``late``)."""
    follower = FollowerMonitor(Policy.preset("dmvx"), 1, 2)
    call = Call("rt_sigsuspend", (0, 8))
    follower.call_entered(call)
    entry = Entry("0", 1, call, EntryKind.SIGNAL, Outcome(ERESTARTNOINTR), signal=CHLD)
    assert follower.message_received(entry)[0] == Deliver(1, CHLD, ERESTARTNOINTR, rerun=False)


def test_signal_entry_round_trips() -> None:
    entry = Entry("0.2", 7, Call("wait4", (-1, 0, 0, 0)), EntryKind.SIGNAL, Outcome(ERESTARTSYS), signal=CHLD)
    code, payload = encode_message(entry)
    back = decode_message(code, payload)
    assert isinstance(back, Entry) and back.signal == CHLD and back.outcome == Outcome(ERESTARTSYS)


def test_a_fork_restarted_for_a_pending_signal_goes_on_and_the_signal_waits() -> None:
    """fork ends with ERESTARTNOINTR when a signal is pending and is made
    again whatever the handler says: the leader holds the signal for its next
    call rather than end a fork a follower may already have run."""
    leader = LeaderMonitor(Policy.preset("dmon"), 2)
    fork = Call("fork")
    leader.call_entered(fork)
    leader.message_received(Report("0", 1, fork, 1))
    assert leader.signal_arrived(CHLD, ERESTARTNOINTR) == []
    leader.call_exited(Outcome(4321))
    assert leader.call_entered(Call("write", (1, b"x", 1)))[-1] == Deliver(2, CHLD, ERESTARTNOINTR)


# -- a tree killed from outside: each variant's process dies at its own moment --


def _leader_and_follower(preset: str = "dmvx") -> tuple[LeaderMonitor, FollowerMonitor]:
    policy = Policy.preset(preset)
    return LeaderMonitor(policy, 2), FollowerMonitor(policy, 1, 2)


def _pipe(actions, to) -> list:
    """Hand every message in ``actions`` to monitor ``to``; its answer."""
    out = []
    for action in actions:
        if isinstance(action, Send):
            out += to.message_received(action.message)
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_follower_killed_before_the_leaders_call_ends_equal(sig: int) -> None:
    """``timeout 0.5 sleep 5``: the parent's kill reaches the follower's
    child before its call 1, the leader's at call 1 (an asynchronous call it
    runs): both died of the same signal, sent from outside; no verdict.
    Fails on a core that votes at the follower's report (crash)."""
    from dmvx.actions import Done, Execute

    leader, follower = _leader_and_follower()
    first = leader.call_entered(Call("getpid"))
    assert isinstance(first[-1], Execute)
    report = follower.process_killed(int(sig))  # before its call 1
    answer = _pipe(report, leader)
    assert leader.verdict is None and not any(isinstance(a, Done) for a in answer)
    leader.call_exited(Outcome(1234))
    ended = leader.process_killed(int(sig))
    assert leader.verdict is None and isinstance(ended[-1], Done)
    back = _pipe(ended, follower)
    assert follower.verdict is None and any(isinstance(a, Done) for a in back)


def test_a_follower_killed_while_the_leader_is_held_asks_the_mode() -> None:
    """At a synchronous call the leader is held: the mode is asked to let the
    signal land there too (FollowerKilled), and the ends compare equal."""
    from dmvx.actions import Done, FollowerKilled

    leader, follower = _leader_and_follower("dmon")
    leader.call_entered(Call("getpid"))
    answer = _pipe(follower.process_killed(int(signal.SIGTERM)), leader)
    assert FollowerKilled(int(signal.SIGTERM)) in answer and leader.verdict is None
    ended = leader.process_killed(int(signal.SIGTERM))
    assert leader.verdict is None and isinstance(ended[-1], Done)


def test_a_follower_crash_is_still_a_crash_at_once() -> None:
    """SIGSEGV comes from the instruction a process runs, not from outside:
    the leader's process going on is a crash verdict at the report."""
    leader, follower = _leader_and_follower()
    leader.call_entered(Call("getpid"))
    _pipe(follower.process_killed(int(signal.SIGSEGV)), leader)
    assert leader.verdict is not None and leader.verdict.kind.value == "crash"


def test_a_follower_killed_when_the_leader_never_dies_is_a_crash_at_the_stall() -> None:
    leader, follower = _leader_and_follower()
    leader.call_entered(Call("getpid"))
    _pipe(follower.process_killed(int(signal.SIGTERM)), leader)
    leader.call_exited(Outcome(1234))
    assert leader.verdict is None
    leader.call_entered(Call("getpid"))
    leader.stalled()
    assert leader.verdict is not None and leader.verdict.kind.value == "crash"


@pytest.mark.parametrize("held", [False, True], ids=["running", "held"])
def test_a_sigkill_the_mode_sees_absent_from_the_leader_is_a_crash_at_once(held: bool) -> None:
    """``kill -9`` of the follower's process alone, one call past the
    leader's: the mode is asked at once, whether the leader runs on or is
    held, and sees no SIGKILL in the leader's live process -- it was never
    sent there (dmvx.signals.SIGKILL), so the follower is the crashed one
    now, not at the stall. Fails on a core that asks only once a call holds
    the leader (a running leader reached one only when its CB was full:
    7-13 s of a loaded machine in tests/test_real_faults.py) or that waits
    for the stall whatever the mode sees."""
    from dmvx.actions import FollowerKilled

    leader, follower = _leader_and_follower("dmon" if held else "dmvx")
    if held:
        leader.call_entered(Call("getpid"))  # dmon: a synchronous call holds it
    asked = _pipe(follower.process_killed(int(signal.SIGKILL)), leader)
    assert FollowerKilled(int(signal.SIGKILL)) in asked and leader.verdict is None
    leader.signal_absent(int(signal.SIGKILL))
    assert leader.verdict is not None and leader.verdict.kind.value == "crash"
    assert leader.verdict.odd_one_out == (1,) and "not sent" in leader.verdict.detail


def test_another_signal_the_mode_sees_absent_still_waits_for_the_stall() -> None:
    """SIGTERM not pending in the leader yet may still come from a slower
    sender (a parent's kill in each variant at its own pace): seeing it
    absent changes nothing; the leader's end, when it comes, is compared as
    before, and the stall decides otherwise."""
    from dmvx.actions import Done

    leader, follower = _leader_and_follower("dmon")
    leader.call_entered(Call("getpid"))
    _pipe(follower.process_killed(int(signal.SIGTERM)), leader)
    assert leader.signal_absent(int(signal.SIGTERM)) == [] and leader.verdict is None
    ended = leader.process_killed(int(signal.SIGTERM))
    assert leader.verdict is None and isinstance(ended[-1], Done)


def test_a_whole_tree_sigkill_still_ends_as_natively() -> None:
    """The same SIGKILL reached the leader's process too (a kill of the
    whole tree): the mode sees it pending or done and reports no absence,
    and the two ends compare equal, as 73be42c made them."""
    from dmvx.actions import Done

    leader, follower = _leader_and_follower("dmon")
    leader.call_entered(Call("getpid"))
    _pipe(follower.process_killed(int(signal.SIGKILL)), leader)
    ended = leader.process_killed(int(signal.SIGKILL))
    assert leader.verdict is None and isinstance(ended[-1], Done)
    assert leader.signal_absent(int(signal.SIGKILL)) == []  # late word changes nothing


# -- a tree killed from outside during start-up: the leader's end first --


@pytest.mark.parametrize("preset", ["dmvx", "dmon"])
def test_a_leader_killed_before_the_followers_call_waits_for_the_followers_end(preset: str) -> None:
    """``kill`` of the tree while the variants are in ld.so: the leader's
    process dies at its call 2 (its end is entry 2), the follower's gets
    there first with a call of its own and dies of the same signal a moment
    later, held at that call (the mode let the signal land). Both died of
    it, as natively: no verdict, and the follower's end is compared at the
    leader's number. Fails on a core that compares the held call with the
    leader's end at once (crash at call #2)."""
    from dmvx.actions import Done, Execute

    leader, follower = _leader_and_follower(preset)
    sig = int(signal.SIGTERM)
    getpid, openat = Call("getpid"), Call("openat", (-100, "/etc/ld.so.cache", 0o2000000, 0))
    to_follower = leader.call_entered(getpid)
    to_leader = follower_did = follower.call_entered(getpid)
    while to_leader or to_follower:  # call 1 agreed (and, under dmon, released) both ways
        to_leader, to_follower = _pipe(to_follower, follower), _pipe(to_leader, leader)
        follower_did = follower_did + to_leader
    if any(isinstance(a, Execute) and a.seq == 1 for a in follower_did):  # dmon: each runs its own
        _pipe(follower.call_exited(Outcome(1234)), leader)
    _pipe(leader.call_exited(Outcome(1234)), follower)
    ended = leader.process_killed(sig)  # entry 2: <killed>(15)
    back = _pipe(ended, follower) + follower.call_entered(openat)  # call 2, held: reported, never run
    assert not any(isinstance(a, Done) for a in back)
    answer = _pipe(back, leader)
    assert leader.verdict is None and not any(isinstance(a, Done) for a in answer), leader.verdict
    answer = _pipe(follower.process_killed(sig), leader)
    assert leader.verdict is None and any(isinstance(a, Done) for a in answer), leader.verdict
    done = _pipe(answer, follower)
    assert follower.verdict is None and Done(128 + sig) in done


def test_a_leader_killed_when_the_follower_never_dies_is_a_crash_at_the_stall() -> None:
    leader, follower = _leader_and_follower()
    sig = int(signal.SIGTERM)
    _pipe(leader.process_killed(sig), follower)  # entry 1: <killed>(15)
    _pipe(follower.call_entered(Call("openat", (-100, "/etc/ld.so.cache", 0o2000000, 0))), leader)
    assert leader.verdict is None and follower.verdict is None
    leader.stalled()
    assert leader.verdict is not None and leader.verdict.kind.value == "crash"
    assert "the leader was killed by signal 15" in leader.verdict.detail
    follower.stalled()  # its own stall says the same
    assert follower.verdict is not None and follower.verdict.kind.value == "crash"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_leader_killed_alone_by_sigkill_is_a_crash_when_the_follower_sees_it_absent(sig: int) -> None:
    """``kill -9`` of the leader's process alone: the follower, held at the
    leader's end's number, sees no SIGKILL in its own live process -- never
    sent there -- and the leader is the crashed one now, not at the stall.
    Another signal seen absent may still come: the stall decides. Fails on
    a core without FollowerMonitor.signal_absent."""
    leader, follower = _leader_and_follower()
    _pipe(leader.process_killed(int(sig)), follower)  # entry 1: <killed>(sig)
    assert follower.signal_absent(int(sig)) == []  # not held there yet: nothing to say
    _pipe(follower.call_entered(Call("openat", (-100, "/etc/ld.so.cache", 0o2000000, 0))), leader)
    follower.signal_absent(int(sig))
    if sig == signal.SIGKILL:
        assert follower.verdict is not None and follower.verdict.kind.value == "crash"
        assert follower.verdict.odd_one_out == (0,) and "not sent" in follower.verdict.detail
    else:
        assert follower.verdict is None
        follower.stalled()
        assert follower.verdict is not None and follower.verdict.kind.value == "crash"


def test_a_follower_killed_before_the_leader_is_held_still_asks_the_mode() -> None:
    """The follower's process dies during start-up while the leader's runs
    (nothing held yet): the mode is asked at once (it may see the signal
    absent, signal_absent), and again when the leader's next synchronous
    call holds it, to let the same signal land there (FollowerKilled).
    Fails on a core that asks only when the follower's end comes."""
    from dmvx.actions import Done, FollowerKilled

    leader, follower = _leader_and_follower("dmvx")
    sig = int(signal.SIGTERM)
    assert FollowerKilled(sig) in _pipe(follower.process_killed(sig), leader) and leader.verdict is None
    held = leader.call_entered(Call("execve", ("/bin/true", ("true",), ())))
    assert FollowerKilled(sig) in held and leader.verdict is None
    ended = leader.process_killed(sig)
    assert leader.verdict is None and isinstance(ended[-1], Done)
