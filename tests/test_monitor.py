"""Unit tests of the leader and follower monitors, driven by hand or by the
in-memory replay driver."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dmvx.actions import Action, Execute, Halt, Send, Skip, Wait, WaitReason
from dmvx.calls import Call, Outcome
from dmvx.messages import Ack, Entry, EntryKind, Report, ResultNote
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.policy import Policy
from dmvx.replay import Step, replay
from dmvx.verdict import Verdict, VerdictKind

GETPID = Step(Call("getpid"), Outcome(4242))
EXECVE = Call("execve", ("/bin/sh", None, None))


def sent_entry(action: Action) -> Entry:
    """The entry a :class:`Send` action carries (the test fails on anything else)."""
    assert isinstance(action, Send) and isinstance(action.message, Entry), action
    return action.message


def halted(action: Action) -> Verdict:
    """The verdict of a :class:`Halt` action (the test fails on anything else)."""
    assert isinstance(action, Halt), action
    return action.verdict


def test_leader_runs_ahead_until_the_cb_is_full_then_waits() -> None:
    policy = Policy.preset("dmvx", cb_entries=3)
    leader = LeaderMonitor(policy, 2)
    for seq in range(1, 4):
        assert leader.call_entered(Call("getpid")) == [Execute(seq)]
        [send] = leader.call_exited(Outcome(1))
        assert isinstance(send, Send) and isinstance(send.message, Entry)
    assert leader.lead(1) == 3
    actions = leader.call_entered(Call("getpid"))
    assert actions == [Wait(WaitReason.CB_FULL, 4, (1,))]
    assert leader.message_received(Ack("0", 2, 1)) == [Execute(4)]
    assert leader.lead(1) == 2
    assert leader.cb.max_entries == 3


def test_lockstep_call_waits_for_every_follower_and_none_runs_early() -> None:
    policy = Policy.preset("dmvx")
    leader = LeaderMonitor(policy, 3)
    actions = leader.call_entered(EXECVE)
    assert isinstance(actions[-1], Wait) and actions[-1].awaiting == (1, 2)
    assert not any(isinstance(a, Execute) for a in actions)
    assert leader.message_received(Report("0", 1, EXECVE, 1))[-1] == Wait(WaitReason.LOCKSTEP, 1, (2,))
    released = leader.message_received(Report("0", 1, EXECVE, 2))
    assert released[-1] == Execute(1)
    assert sent_entry(released[0]).kind is EntryKind.GO


def test_follower_skips_with_the_leaders_outcome_and_mirrors_new_descriptors() -> None:
    follower = FollowerMonitor(Policy.preset("dmvx"), 1, 2)
    opened = Call("openat", (-100, "/srv/data", 0, 0))
    assert follower.call_entered(opened) == [Wait(WaitReason.ENTRY, 1, (0,))]
    actions = follower.message_received(Entry("0", 1, opened, EntryKind.FULL, Outcome(7)))
    assert actions[0] == Skip(1, Outcome(7), (7,))
    read = Call("read", (7, 10))
    follower.message_received(Entry("0", 2, read, EntryKind.FULL, Outcome(3, ((1, b"abc"),))))
    assert follower.call_entered(read)[0] == Skip(2, Outcome(3, ((1, b"abc"),)), ())


def test_three_variants_vote_names_the_odd_follower() -> None:
    honest = [GETPID, Step(Call("write", (1, b"hi", 2)), Outcome(2)), GETPID]
    attacked = [GETPID, Step(EXECVE), GETPID]
    result = replay(Policy.preset("dmvx"), [honest, attacked, honest], seed=3)
    assert result.verdict is not None
    assert result.verdict.kind is VerdictKind.CALL_MISMATCH
    assert result.verdict.seq == 2
    assert result.verdict.odd_one_out == (1,)
    assert all(EXECVE not in log.executed for log in result.logs)


def test_three_variants_vote_can_name_the_leader() -> None:
    honest = [GETPID, Step(Call("write", (1, b"hi", 2)), Outcome(2)), GETPID]
    attacked = [GETPID, Step(EXECVE), GETPID]
    for seed in range(20):
        result = replay(Policy.preset("dmvx"), [attacked, honest, honest], seed=seed)
        assert result.verdict is not None and result.verdict.odd_one_out == (0,), (
            result.verdict and result.verdict.summary()
        )
        assert all(EXECVE not in log.executed for log in result.logs)


@pytest.mark.parametrize("preset", ["dmon", "dmvx"])
def test_different_output_bytes_are_an_output_mismatch(preset: str) -> None:
    a = [Step(Call("write", (1, b"0x7ffd1000", 10)), Outcome(10))]
    b = [Step(Call("write", (1, b"0x7ffe2000", 10)), Outcome(10))]
    result = replay(Policy.preset(preset), [a, b])
    assert result.verdict is not None and result.verdict.kind is VerdictKind.OUTPUT_MISMATCH


def test_local_file_reads_are_compared_by_digest() -> None:
    policy = Policy.preset("dmvx", local_files=("/etc/*",))
    opened = Step(Call("openat", (-100, "/etc/motd", 0, 0)), Outcome(3))
    good = [opened, Step(Call("read", (3, 64)), Outcome(5, ((1, b"hello"),)))]
    evil = [opened, Step(Call("read", (3, 64)), Outcome(5, ((1, b"HELLO"),)))]
    assert replay(policy, [good, good]).ok
    result = replay(policy, [good, evil])
    assert result.verdict is not None and result.verdict.kind is VerdictKind.OUTPUT_MISMATCH
    # The follower read its own copy: both variants ran the read.
    assert all(Call("read", (3, 64)) in log.executed for log in replay(policy, [good, good]).logs)


def test_crash_in_one_variant() -> None:
    leader = LeaderMonitor(Policy.preset("dmvx"), 2)
    leader.call_entered(Call("getpid"))
    leader.call_exited(Outcome(1))
    actions = leader.message_received(Report("0", 1, Call("<killed>", (11,)), 1))
    halt = actions[-1]
    assert isinstance(halt, Halt) and halt.verdict.kind is VerdictKind.CRASH


def test_exit_status_difference() -> None:
    result = replay(Policy.preset("dmvx"), [[GETPID], [GETPID]], exit_statuses=[0, 3])
    assert result.verdict is not None and result.verdict.kind is VerdictKind.EXIT_STATUS


def test_a_silent_variant_is_no_progress() -> None:
    leader = LeaderMonitor(Policy.preset("dmvx"), 3)
    leader.call_entered(EXECVE)
    leader.message_received(Report("0", 1, EXECVE, 1))
    halt = leader.stalled()[-1]
    assert isinstance(halt, Halt)
    assert halt.verdict.kind is VerdictKind.NO_PROGRESS and halt.verdict.odd_one_out == (2,)
    follower = FollowerMonitor(Policy.preset("dmvx"), 1, 2)
    follower.call_entered(Call("getpid"))
    assert halted(follower.stalled()[-1]).odd_one_out == (0,)


def test_dmon_is_synchronous_and_dmvx_batches_acks() -> None:
    stream = [GETPID] * 200
    dmon = replay(Policy.preset("dmon"), [stream, stream])
    dmvx = replay(Policy.preset("dmvx"), [stream, stream])
    assert dmon.ok and dmvx.ok
    assert dmon.max_lead <= 2
    # dmon: a report and an entry per call; dmvx: an entry per call, acks in batches.
    assert 400 <= dmon.messages <= 403
    assert dmvx.messages <= 200 + 200 // 64 + 3  # + exit report, exit entry, GO
    assert dmvx.max_lead > 1


def test_predicted_results_send_no_outcome() -> None:
    leader = LeaderMonitor(Policy.preset("dmvx"), 2)
    leader.call_entered(Call("sched_yield"))
    [send] = leader.call_exited(Outcome(0))
    assert sent_entry(send).kind is EntryKind.PREDICTED and sent_entry(send).outcome is None
    off = LeaderMonitor(replace(Policy.preset("dmvx"), predict=False), 2)
    off.call_entered(Call("sched_yield"))
    [send] = off.call_exited(Outcome(0))
    assert sent_entry(send).kind is EntryKind.FULL


def test_forged_message_types_are_protocol_errors() -> None:
    leader = LeaderMonitor(Policy.preset("dmvx"), 2)
    halt = leader.message_received(Entry("0", 1, Call("getpid"), EntryKind.FULL, Outcome(1)))[-1]
    assert halted(halt).kind is VerdictKind.PROTOCOL_ERROR
    follower = FollowerMonitor(Policy.preset("dmvx"), 1, 2)
    halt = follower.message_received(Ack("0", 1, 1))[-1]
    assert halted(halt).kind is VerdictKind.PROTOCOL_ERROR


def test_monitors_need_a_follower() -> None:
    with pytest.raises(ValueError):
        LeaderMonitor(Policy.preset("dmvx"), 1)


def test_children_get_equal_streams_and_a_copy_of_the_descriptor_table() -> None:
    policy = Policy.preset("dmvx")
    leader, follower = LeaderMonitor(policy, 2), FollowerMonitor(policy, 1, 2)
    leader.fds.after(Call("socket", (2, 1, 0)), 3)
    follower.fds.after(Call("socket", (2, 1, 0)), 3)
    first, second = leader.child(), leader.child()
    assert (first.stream, second.stream) == ("0.1", "0.2")
    assert isinstance(first, LeaderMonitor) and 3 in first.fds
    assert follower.child().stream == "0.1"
    first.fds.after(Call("close", (3,)), 0)
    assert 3 in leader.fds and 3 not in first.fds


# -- threads ---------------------------------------------------------------------


def test_a_thread_shares_its_parents_descriptor_table_and_a_process_copies_it() -> None:
    parent = LeaderMonitor(Policy.preset("dmon"), 2, steer=True)
    thread = parent.child(share_fds=True)
    process = parent.child()
    assert thread.fds is parent.fds and parent.fds.shared
    assert process.fds is not parent.fds and not process.fds.shared
    assert (thread.stream, process.stream) == ("0.1", "0.2")


@pytest.mark.parametrize("shared", [False, True])
def test_the_leader_notes_the_return_of_a_table_change_only_where_threads_share_it(shared: bool) -> None:
    """Under dmon a close every variant runs is released by GO before the
    leader runs it; where threads share the table, the leader notes its
    return, so followers change the table in the leader's order
    (realmode.tracer.fdorder)."""
    leader = LeaderMonitor(Policy.preset("dmon"), 2, steer=True)
    leader.fds.after(Call("pipe2", (None, 0)), 0, (3, 4))
    leader.fds.shared = shared
    close = Call("close", (3,))
    leader.call_entered(close)
    released = leader.message_received(Report(leader.stream, leader.seq, close, 1))
    assert any(isinstance(a, Execute) for a in released)
    notes = [a for a in leader.call_exited(Outcome(0)) if isinstance(a, Send) and isinstance(a.message, ResultNote)]
    assert len(notes) == (1 if shared else 0)


def _leader_entries(policy: Policy, call: Call, outcome: Outcome, count: int) -> list[Entry]:
    """``count`` entries of ``call`` from a leader's one-step path (the
    broker decides the name once, on the general path, first)."""
    leader = LeaderMonitor(policy, 2)
    leader.call_entered(call)
    (send,) = leader.call_exited(outcome)
    assert isinstance(send, Send) and isinstance(send.message, Entry)
    entries = [send.message]
    for _ in range(count - 1):
        entry = leader.call_replicated(call, outcome)
        assert entry is not None
        leader.cb.release_upto(entry.seq)
        entries.append(entry)
    return entries


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_call_skipped_on_is_a_wait_then_the_delivery(batch: int) -> None:
    """A caught-up follower's wait and delivery as one core event
    (``call_skipped_on``) skips what ``call_entered`` (a Wait) and
    ``message_received`` of the delivery's messages skip, with the same
    acknowledgements, numbers and counts; the delivery's later entries are
    kept for their calls."""
    policy = replace(Policy.preset("dmvx"), cb_entries=6)  # an acknowledgement every 3 entries
    call, outcome = Call("getpid"), Outcome(4242)
    entries = _leader_entries(policy, call, outcome, 30)
    one, event = FollowerMonitor(policy, 1, 2), FollowerMonitor(policy, 1, 2)
    mine = Call("getpid")  # the follower's own call object, equal to the leader's
    for monitor in (one, event):  # the broker decides a name once, on the general path
        monitor.call_entered(mine)
        monitor.message_received(entries[0])
    sent_one: list[object] = []
    sent_event: list[object] = []
    for start in range(1, len(entries), batch):
        delivery = entries[start : start + batch]
        answers = one.call_entered(mine)
        assert [type(a) for a in answers] == [Wait]
        for message in delivery:
            answers += one.message_received(message)
        for _ in delivery[1:]:
            answers += one.call_entered(mine)
        assert all(isinstance(a, (Skip, Send, Wait)) for a in answers)
        sent_one += [a.message for a in answers if isinstance(a, Send)]
        acks = event.call_skipped_on(mine, delivery)
        assert acks is not None
        sent_event += acks
        for _ in delivery[1:]:
            more = event.call_skipped(mine)
            assert more is not None
            sent_event += more
    assert sent_event == sent_one and sent_one
    assert (event.seq, event.routes, event.verdict) == (one.seq, one.routes, one.verdict)


def test_call_skipped_on_leaves_anything_else_to_the_general_path() -> None:
    """A delivery that does not start with the entry of the call the
    follower is about to enter, or holds a message that is not an entry for
    a later call, leaves the monitor as it was."""
    policy = Policy.preset("dmvx")
    call, outcome = Call("getpid"), Outcome(4242)
    entries = _leader_entries(policy, call, outcome, 4)
    follower = FollowerMonitor(policy, 1, 2)
    follower.call_entered(call)
    follower.message_received(entries[0])
    vote = Entry(follower.stream, entries[2].seq, call, EntryKind.VOTE)
    other = Entry(follower.stream, entries[1].seq, Call("getppid"), EntryKind.FULL, Outcome(1))
    for delivery in ([entries[2]], [entries[1], vote], [other], [entries[1], entries[1]], []):
        assert follower.call_skipped_on(call, delivery) is None
        assert follower.seq == entries[0].seq
    assert follower.call_skipped_on(call, entries[1:]) == ()
    assert follower.seq == entries[1].seq
    assert follower.call_skipped(call) == () and follower.call_skipped(call) == ()
    assert follower.seq == entries[3].seq


@pytest.mark.parametrize("cb_entries", [1, 3, 64])
@pytest.mark.parametrize("preset", ["dmvx", "dmon"])
def test_calls_replicated_is_call_replicated_repeated(cb_entries: int, preset: str) -> None:
    """A run of equal calls as one core event (``calls_replicated``) makes
    the entries, numbers, counts and buffer that ``call_replicated`` one by
    one does, and stops where the buffer fills; a call it cannot take
    (under DMON every call is lockstep) leaves the monitor as it was."""
    policy = replace(Policy.preset(preset), cb_entries=cb_entries)
    one, run = LeaderMonitor(policy, 2), LeaderMonitor(policy, 2)
    call, outcome = Call("getpid"), Outcome(4242)
    for monitor in (one, run):  # the broker decides a name once, on the general path
        monitor.call_entered(call)
        monitor.call_exited(outcome)
    singles: list[Entry] = []
    while len(singles) < 100 and (entry := one.call_replicated(call, outcome)) is not None:
        singles.append(entry)
    taken: list[Entry] = []
    while len(taken) < 100 and (more := run.calls_replicated(call, outcome, 7)):
        taken += more
    assert taken == singles
    # The general call took one entry of the buffer; DMON replicates nothing.
    assert len(taken) == (cb_entries - 1 if preset == "dmvx" else 0)
    assert [e.size for e in taken] == [e.size for e in singles]
    assert (run.seq, run.routes, run.cb.unconfirmed(), run.cb.full, run.cb.mean_entries, run.cb.max_entries) == (
        one.seq,
        one.routes,
        one.cb.unconfirmed(),
        one.cb.full,
        one.cb.mean_entries,
        one.cb.max_entries,
    )


def _skip_one_by_one(follower: FollowerMonitor, call: Call, count: int) -> tuple[list[Outcome], list[Ack]]:
    """The general path a follower takes for each of ``count`` equal calls."""
    outcomes, acks = [], []
    for _ in range(count):
        actions = follower.call_entered(call)
        skip = next(a for a in actions if isinstance(a, Skip))
        outcomes.append(skip.outcome)
        acks += [a.message for a in actions if isinstance(a, Send) and isinstance(a.message, Ack)]
    return outcomes, acks


@pytest.mark.parametrize("call", [Call("getpid"), Call("read", (3, 0x1000, 1))])
def test_calls_skipped_is_the_general_path_in_one_event(call: Call) -> None:
    """A follower's run of equal calls as one core event (``calls_skipped``)
    returns the outcomes the general path's skips give, leaves the monitor
    where they leave it, and acknowledges up to the last call where an
    acknowledgement fell due (one message for the run). A call decided by
    its descriptor (``read``) takes it too."""
    policy = Policy.preset("dmvx")
    leader = LeaderMonitor(policy, 2)
    outcome = Outcome(4242) if call.name == "getpid" else Outcome(1, ((1, b"x"),))
    entries = []
    for _ in range(150):
        leader.call_entered(call)
        entries += [sent_entry(a) for a in leader.call_exited(outcome) if isinstance(a, Send)]
    one, run = FollowerMonitor(policy, 1, 2), FollowerMonitor(policy, 1, 2)
    for follower in (one, run):
        assert follower.entries_kept(entries) == 150
    singles, acks = _skip_one_by_one(one, call, 140)
    outcomes, sent = run.calls_skipped(call, 140)
    assert outcomes == singles and [o.result for o in outcomes] == [outcome.result] * 140
    assert sent == (acks[-1],) and acks[-1].seq == 128
    assert (run.seq, run.routes) == (one.seq, one.routes)
    # The rest go on as they would have: the same acknowledgements after.
    assert _skip_one_by_one(run, call, 10) == _skip_one_by_one(one, call, 10)


def test_calls_skipped_stops_at_a_missing_or_different_entry() -> None:
    """The run ends before an entry that is not here or is for another call:
    that call takes the general path (which compares it); a first call
    without its entry leaves the monitor as it was."""
    policy = Policy.preset("dmvx")
    leader = LeaderMonitor(policy, 2)
    entries = []
    for name in ("getpid",) * 3 + ("getppid",):
        leader.call_entered(Call(name))
        entries += [sent_entry(a) for a in leader.call_exited(Outcome(7)) if isinstance(a, Send)]
    follower = FollowerMonitor(policy, 1, 2)
    follower.entries_kept(entries[:2] + entries[3:])  # entry 3 has not come yet
    outcomes, _ = follower.calls_skipped(Call("getpid"), 10)
    assert len(outcomes) == 2 and follower.seq == 2
    assert follower.calls_skipped(Call("getpid"), 10) == ([], ())
    assert follower.seq == 2
    follower.entries_kept(entries[2:3])
    assert len(follower.calls_skipped(Call("getpid"), 10)[0]) == 1
    # getppid's entry is there, but this variant makes another call: general path.
    assert follower.calls_skipped(Call("getuid"), 10) == ([], ())
    actions = follower.call_entered(Call("getuid"))
    assert any(isinstance(a, Send) and isinstance(a.message, Report) for a in actions)


def test_calls_replicated_by_descriptor_takes_a_run_of_reads() -> None:
    """A call the broker decides by its descriptor takes the one-event path
    when the mode asks for it (the in-process drain), as the general path
    would have decided it; without asking, it takes the general path."""
    policy = Policy.preset("dmvx")
    one, run = LeaderMonitor(policy, 2), LeaderMonitor(policy, 2)
    call, outcome = Call("read", (3, 0x1000, 1)), Outcome(1, ((1, b"x"),))
    assert run.calls_replicated(call, outcome, 5) == []
    singles = []
    for _ in range(5):
        one.call_entered(call)
        singles += [sent_entry(a) for a in one.call_exited(outcome) if isinstance(a, Send)]
    assert run.calls_replicated(call, outcome, 5, by_descriptor=True) == singles
    assert (run.seq, run.routes, run.cb.unconfirmed()) == (one.seq, one.routes, one.cb.unconfirmed())
