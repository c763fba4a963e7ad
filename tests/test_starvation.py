"""A variant's wait for a CPU is not a stall (realmode.tracer.starvation):
what a tracer measures and reports, and what a waiting tracer does not count."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from dmvx import codec
from dmvx.calls import Call
from dmvx.messages import ClockNote, StarvedNote
from realmode.tracer import starvation
from realmode.tracer.clocks import PATIENCE_ALIGNED, PATIENCE_STARVED, Clocks
from realmode.tracer.process import TracerProcess
from realmode.tracer.starvation import LATE_LIMIT, MIN_REPORTED, Starvation, period, schedstat

MS = 1_000_000


def _readings(monkeypatch: pytest.MonkeyPatch, table: dict) -> None:
    """``table``: task -> (ns it ran, ns it waited for a CPU), as schedstat says."""
    monkeypatch.setattr(starvation, "schedstat", lambda tid: table.get(tid))


def test_how_much_longer_a_task_waited_than_it_ran_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    table = {"thread-self": (0, 0), 101: (0, 50 * MS), 102: (0, 0)}
    _readings(monkeypatch, table)
    measure = Starvation()
    assert measure.measure([101, 102], 0.5) == 50 * MS  # a task first met counts from its birth
    # 101 ran 40 ms and waited 340 ms (a tenth of a CPU); 102 was blocked and
    # then waited 100 ms; the tracer ran 10 ms and waited 10 ms.
    table.update({101: (40 * MS, 390 * MS), 102: (1 * MS, 100 * MS), "thread-self": (10 * MS, 10 * MS)})
    # The sum, 300 + 99 ms: a variant's tasks share one CPU, and threads that
    # hand work to each other wait in turn (the largest alone, 300 ms,
    # excused half of a queue's ping-pong, and a thread pool's run at load
    # 13-20 ended in no-progress in 5 of 6 runs).
    assert measure.measure([101, 102], 0.5) == 399 * MS


def test_a_task_that_gets_half_a_cpu_or_more_is_not_excused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop the scheduler runs half the time is judged by the wall clock:
    a spinning variant on a loaded machine is still reported in time."""
    table = {"thread-self": (0, 0), 7: (0, 0)}
    _readings(monkeypatch, table)
    measure = Starvation()
    measure.measure([7], 0.5)
    table[7] = (250 * MS, 250 * MS)
    assert measure.measure([7], 0.5) == 0
    table[7] = (253 * MS, 500 * MS)  # then 3 ms in 250: starved
    assert measure.measure([7], 0.5) == 247 * MS
    table[7] = (254 * MS, 503 * MS)  # a few ms: a quiet machine's wakeups, not reported
    assert measure.measure([7], 0.5) == 0


def test_a_wait_is_never_more_than_the_time_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    table = {"thread-self": (0, 0), 7: (0, 0)}
    _readings(monkeypatch, table)
    measure = Starvation()
    measure.measure([7], 0.5)
    table[7] = (0, 2_000 * MS)
    assert measure.measure([7], 0.5) == 500 * MS


def test_a_task_that_is_gone_is_forgotten_and_a_new_one_counts_from_its_birth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tracer traces every task from its birth: a variant's first
    process, starved before its first call, is reported at once."""
    table = {"thread-self": (0, 0), 7: (0, 100 * MS)}
    _readings(monkeypatch, table)
    measure = Starvation()
    assert measure.measure([7], 1.0) == 100 * MS
    del table[7]  # it ended
    table[8] = (10 * MS, 300 * MS)  # a child born since
    assert measure.measure([7, 8], 1.0) == 290 * MS
    table[8] = (10 * MS, 400 * MS)
    assert measure.measure([8], 1.0) == 100 * MS


def test_a_variant_with_no_process_left_reports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tracer's own wait holds back no call then (a killed follower
    whose tracer is busy with the leader's entries must not excuse the
    leader's wait for it)."""
    table = {"thread-self": (0, 0)}
    _readings(monkeypatch, table)
    measure = Starvation()
    measure.measure([], 1.0)
    table["thread-self"] = (10 * MS, 900 * MS)
    assert measure.measure([], 1.0) == 0


def _heard(*notes: tuple[int, int, float], since: float = 0.0) -> Starvation:
    """A measure that heard ``notes`` (peer, ns, when), begun at ``since``."""
    heard = Starvation(now=since)
    for peer, ns, when in notes:
        heard.heard(peer, ns, when)
    return heard


def test_only_what_peers_reported_after_the_wait_began_is_excused() -> None:
    heard = _heard((1, 400 * MS, 10.0), (1, 300 * MS, 11.0), (1, 200 * MS, 12.0))
    assert heard.excused(9.0) == pytest.approx(0.9)
    assert heard.excused(10.5) == pytest.approx(0.5)
    assert heard.excused(12.0) == 0.0
    assert heard.excused(13.0) == 0.0


def test_several_peers_excuse_the_largest_wait_of_one_not_their_sum() -> None:
    heard = _heard((1, 400 * MS, 10.0), (2, 300 * MS, 10.1), (2, 300 * MS, 10.6))
    assert heard.excused(9.0) == pytest.approx(0.6)


def test_a_monitor_forked_for_the_run_counts_its_own_wait_from_its_birth(monkeypatch: pytest.MonkeyPatch) -> None:
    """A monitor forked on a busy machine waited 0.3-2.4 s for a CPU before
    it first measured (it is forked for the run, as its variant is): that
    wait is in its first note, not lost before it began to measure."""
    table: dict[str | int, tuple[int, int]] = {"thread-self": (5 * MS, 800 * MS)}
    _readings(monkeypatch, table)
    forked = Starvation(born=True)
    table[7] = (1 * MS, 0)
    assert forked.measure([7], 1.0) == 795 * MS
    _readings(monkeypatch, {"thread-self": (5 * MS, 800 * MS), 7: (1 * MS, 0)})
    assert Starvation().measure([7], 1.0) == 0  # one that was not forked for the run counts from now


def test_a_peer_that_has_sent_no_note_for_two_periods_is_late() -> None:
    """Every tracer sends a note every period, 0 too: one that does not is
    one the machine does not run, and its note may yet excuse the wait."""
    heard = _heard((1, 0, 10.0), (2, 0, 10.4), since=9.0)
    assert not heard.late([1, 2], 10.9, 1.0)
    assert heard.late([1, 2], 11.1, 1.0)  # peer 1 said nothing since 10.0
    assert not heard.late([2], 11.1, 1.0)
    assert not _heard(since=9.0).late([1], 9.9, 1.0)  # never heard: counted from the start
    assert _heard(since=9.0).late([1], 10.1, 1.0)


class _Tracer:
    """What :meth:`TracerProcess._stall_at` reads: one process waiting since
    ``reference`` for the leader, stall timeout 2 s, a measure every 0.5 s."""

    def __init__(self, heard: Starvation, reference: float) -> None:
        self.launch = SimpleNamespace(stall_timeout=2.0)
        self.starvation = heard
        self.peers = (0,)
        self.starved_every = 0.5
        self.reference = reference

    def _wait_reference(self, _proc: object) -> float:
        return self.reference


def _stall_at(tracer: _Tracer, now: float) -> float:
    return TracerProcess._stall_at(tracer, None, now)  # type: ignore[arg-type]


def test_a_wait_for_a_peer_whose_monitor_runs_is_a_stall_after_the_timeout() -> None:
    """The leader's monitor reports every period, 0: its variant is not
    starved (spinning, or blocked): the follower's wait from 10.0 is a stall at 12.0."""
    tracer = _Tracer(_heard(*((0, 0, 10.0 + k / 2) for k in range(5)), since=9.0), reference=10.0)
    assert _stall_at(tracer, 11.0) == 12.0
    assert _stall_at(tracer, 12.0) == 12.0


def test_a_wait_for_a_peer_whose_monitor_gets_no_cpu_waits_for_its_note() -> None:
    """As measured (four `dmvx run`s at once beside ten CPU hogs on the
    followers' CPU, docs/realmode.md "Timing and ends"): the leader waited
    at call #10 from 0.83 s; the follower's monitor, starved in its own
    start, measured first at 3.66 s (2.44 s without a CPU) and the leader
    had ended the run with no-progress at 2.83 s. Now the wait goes on
    while that monitor's notes are overdue, and its note excuses it."""
    heard = _heard(since=0.0)
    tracer = _Tracer(heard, reference=0.83)
    assert _stall_at(tracer, 1.0) == pytest.approx(2.83)
    assert _stall_at(tracer, 2.83) == pytest.approx(2.83 + 0.25)  # nothing heard: looked at again soon
    heard.heard(0, 2_443 * MS, 3.83)
    assert _stall_at(tracer, 3.84) == pytest.approx(2.83 + 2.443)
    heard.heard(0, 0, 4.3)
    heard.heard(0, 0, 4.8)  # caught up, reports on time: the stall is where the notes put it
    assert _stall_at(tracer, 5.3) == pytest.approx(2.83 + 2.443)


def test_a_peer_that_never_reports_ends_the_run_all_the_same() -> None:
    """A monitor that is stopped (not starved) sends nothing either: the
    wait becomes a stall after :data:`LATE_LIMIT` stall timeouts."""
    tracer = _Tracer(_heard(since=0.0), reference=1.0)
    assert _stall_at(tracer, 8.9) == pytest.approx(9.0)
    assert _stall_at(tracer, 9.0) == pytest.approx(3.0)  # due long ago: a stall now
    assert LATE_LIMIT * 2.0 == 8.0


def test_the_measure_comes_at_least_four_times_per_stall_timeout() -> None:
    assert period(2.0, 0.5) == 0.5
    assert period(0.4, 0.5) == pytest.approx(0.1)


def test_this_kernel_keeps_run_queue_waits() -> None:
    """Without schedstat the measure says nothing and waits are wall time
    (the module's docstring): the machines dmvx runs on have it."""
    reading = schedstat("thread-self")
    assert reading is not None and all(isinstance(n, int) for n in reading)
    assert MIN_REPORTED > 0


def test_the_note_round_trips_through_the_codec() -> None:
    note = StarvedNote(1_234_567_890)
    assert codec.loads(codec.dumps(note)) == note


def test_the_leader_is_starved_while_its_last_note_says_so_or_its_notes_are_overdue() -> None:
    heard = _heard((0, 0, 10.0), (0, 300 * MS, 10.5), since=9.0)
    assert heard.starved(0, 10.6, 1.0)  # its last note: 300 ms without a CPU
    heard.heard(0, 0, 11.0)
    assert not heard.starved(0, 11.1, 1.0)  # ran as it wanted since
    assert heard.starved(0, 12.1, 1.0)  # nothing for more than a second: its monitor gets no CPU
    assert not _heard(since=9.0).starved(0, 9.5, 1.0)


class _Parked:
    """What :meth:`Clocks.expire` reads of a follower's tracer: the leader's
    notes; one thread parked at an aligned read of CLOCK_MONOTONIC."""

    def __init__(self, heard: Starvation) -> None:
        self.starvation = heard
        self.starved_every = 0.5
        self.clocks = Clocks(self)  # type: ignore[arg-type]
        self.proc = SimpleNamespace(
            alive=True,
            stream="0.1",
            monitor=SimpleNamespace(seq=3),
            held=SimpleNamespace(raw=SimpleNamespace(call=Call("x", (1, 0)))),
        )
        self.clocks.aligned[("0.1", 1)] = True
        self.clocks.parked["0.1"] = (self.proc, 10.15, 10.0)  # type: ignore[assignment]
        self.own: list[str] = []
        self.clocks._answer = lambda proc, held, clock, ns: self.own.append("own")  # type: ignore[method-assign]


def test_a_read_aligned_with_a_starved_leader_waits_for_its_reading() -> None:
    """redis-server's main thread under dmvx at load 15-19: the leader's
    reading came later than 150 ms, the follower read its own clock, its
    timer fired at another call (call-mismatch, gettimeofday vs write). With
    the leader starved the read waits on, up to PATIENCE_STARVED."""
    parked = _Parked(_heard((0, 400 * MS, 9.9), since=9.0))
    parked.clocks.expire(10.15)
    assert parked.own == [] and parked.clocks.parked["0.1"][1] == pytest.approx(10.3)
    parked.clocks.expire(10.99)
    assert parked.own == []  # the leader's notes are overdue now: its monitor gets no CPU
    parked.clocks.expire(11.0)
    assert parked.own == ["own"]  # PATIENCE_STARVED: a read of its own after all
    assert PATIENCE_STARVED == 1.0


def test_a_read_aligned_with_a_leader_that_runs_reads_its_own_clock_after_150_ms() -> None:
    """A leader that is not starved is not late: it made no reading here, or
    it waits for this variant (a lock held across the read): as before."""
    parked = _Parked(_heard((0, 0, 9.9), since=9.0))
    parked.clocks.expire(10.15)
    assert parked.own == ["own"] and "0.1" not in parked.clocks.parked


def _follower_read(clocks: Clocks, seq: int = 3) -> tuple[SimpleNamespace, SimpleNamespace]:
    """A follower's thread of stream 0.1 at a read of CLOCK_MONOTONIC, after call ``seq``."""
    proc = SimpleNamespace(stream="0.1", alive=True, monitor=SimpleNamespace(fds=SimpleNamespace(shared=True), seq=seq))
    held = SimpleNamespace(raw=SimpleNamespace(name="clock_gettime", call=Call("clock_gettime", (1, 0))))
    proc.held = held
    return proc, held


def _answered_clocks() -> tuple[Clocks, list[str]]:
    clocks = Clocks(SimpleNamespace(leader=False))  # type: ignore[arg-type]
    answered: list[str] = []
    clocks._answer = lambda proc, held, clock, ns: answered.append(proc.stream)  # type: ignore[method-assign]
    return clocks, answered


def test_a_threads_first_read_waits_for_the_leaders_as_an_aligned_one() -> None:
    """A thread's first read has no last read to go by: it waits as an
    aligned one does (an event loop's first reading sets what its timers
    count from: memcached's workers read their own after 20 ms under load,
    and libevent's 5 s date check later ran at another call, gettimeofday
    vs read)."""
    clocks, answered = _answered_clocks()
    proc, held = _follower_read(clocks)
    before = time.monotonic()
    assert clocks.answers(proc, held)  # type: ignore[arg-type]
    _, until, since = clocks.parked["0.1"]
    assert answered == [] and since >= before and until - since == pytest.approx(PATIENCE_ALIGNED)


def test_more_reads_at_one_call_than_the_leaders_read_their_own_clock_at_once() -> None:
    """Python's GIL: a thread waiting for it reads the clock every 5 ms
    holding the GIL's mutex, and where the leader's thread waited less (it
    sleeps in a join meanwhile: nothing more comes on its stream) each read
    waited 20 ms for a reading that never came, holding up this variant's
    other threads (python-threads-pool: no-progress at a worker's end under
    load). After one read of its own at a call, the next ones at that call
    are its own at once -- until the leader's stream moves."""
    clocks, answered = _answered_clocks()
    proc, held = _follower_read(clocks)
    clocks.aligned[("0.1", 1)] = False
    clocks.answers(proc, held)  # type: ignore[arg-type]
    assert answered == [] and "0.1" in clocks.parked
    clocks.parked["0.1"] = (proc, 0.0, 0.0)  # type: ignore[assignment]
    clocks.t.starvation = _heard(since=0.0)
    clocks.t.starved_every = 0.5
    clocks.expire(time.monotonic())
    assert answered == ["0.1"]  # its own, after its patience
    clocks.answers(proc, held)  # type: ignore[arg-type]
    assert answered == ["0.1", "0.1"] and "0.1" not in clocks.parked  # at once
    clocks.heard(ClockNote("0.1", 1, 5))  # the leader read it after all: taken
    clocks.answers(proc, held)  # type: ignore[arg-type]
    assert answered == ["0.1"] * 3 and clocks.aligned[("0.1", 1)]
    clocks.answers(proc, held)  # type: ignore[arg-type]
    assert "0.1" in clocks.parked  # aligned again: it waits
