"""A variant's wait for a CPU is not a stall (realmode.tracer.starvation):
what a tracer measures and reports, and what a waiting tracer does not count."""

from __future__ import annotations

import pytest

from dmvx import codec
from dmvx.messages import StarvedNote
from realmode.tracer import starvation
from realmode.tracer.starvation import MIN_REPORTED, Starvation, period, schedstat

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
    assert measure.measure([101, 102], 0.5) == 300 * MS  # the largest, not the sum: they wait at once


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


def test_only_what_peers_reported_after_the_wait_began_is_excused() -> None:
    heard = Starvation()
    heard.heard(1, 400 * MS, 10.0)
    heard.heard(1, 300 * MS, 11.0)
    heard.heard(1, 200 * MS, 12.0)
    assert heard.excused(9.0) == pytest.approx(0.9)
    assert heard.excused(10.5) == pytest.approx(0.5)
    assert heard.excused(12.0) == 0.0
    assert heard.excused(13.0) == 0.0


def test_several_peers_excuse_the_largest_wait_of_one_not_their_sum() -> None:
    heard = Starvation()
    heard.heard(1, 400 * MS, 10.0)
    heard.heard(2, 300 * MS, 10.1)
    heard.heard(2, 300 * MS, 10.6)
    assert heard.excused(9.0) == pytest.approx(0.6)


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
