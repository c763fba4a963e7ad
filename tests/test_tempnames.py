"""Temporary names libc made up apart in each variant (dmvx.tempnames) and
the word draws that run locally (dmvx.broker.is_word_draw): the core side.
Real programs calling mkstemp, mkdtemp and tmpfile are in
tests/test_real_processes.py."""

from __future__ import annotations

import pytest

from dmvx.actions import Execute, Halt, Skip, Wait, WaitReason
from dmvx.broker import Broker, is_word_draw
from dmvx.calls import Call, Outcome
from dmvx.fdtable import FdTable
from dmvx.messages import Entry, EntryKind, Report
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.policy import Policy, Route
from dmvx.replay import Step, replay
from dmvx.tempnames import adopted_path
from dmvx.verdict import VerdictKind

EXCL = 0o302  # O_RDWR | O_CREAT | O_EXCL, as mkstemp opens
AT = -100


def _open(path: str, flags: int = EXCL, mode: int = 0o600) -> Call:
    return Call("openat", (AT, path, flags, mode))


@pytest.mark.parametrize(
    "leader, mine",
    [
        (_open("/tmp/dmvx-temp-pzGbba"), _open("/tmp/dmvx-temp-ZI0hmJ")),  # mkstemp
        (_open("/tmp/dmvx-temp-pzGbba.txt"), _open("/tmp/dmvx-temp-ZI0hmJ.txt")),  # mkstemps
        (_open("/tmp/dmvx-temp-pzGbbJ"), _open("/tmp/dmvx-temp-ZI0hmJ")),  # letters alike at an end
        (Call("mkdirat", (AT, "/tmp/dmvx-temp-pzGbba", 0o700)), Call("mkdirat", (AT, "/tmp/dmvx-temp-ZI0hmJ", 0o700))),
        (_open("tmpAAAAAA"), _open("tmpBBBBBB")),  # relative, no directory
        (
            Call("fstatat", (AT, "/tmp/tmp.PmQcMiDW3y", 144, 0x100)),  # coreutils mktemp -u: ten X's
            Call("fstatat", (AT, "/tmp/tmp.hu9vxb3ujw", 144, 0x100)),
        ),
        (Call("mkdirat", (AT, "/tmp/tmp.86SFwMxGog", 0o700)), Call("mkdirat", (AT, "/tmp/tmp.XCFOXS4Scp", 0o700))),
        (_open("/tmp/tmpa_9kq2zr", 0o100302), _open("/tmp/tmp_x3b0mmw", 0o100302)),  # Python tempfile: [a-z0-9_]{8}
        (_open("/tmp/tmpa_9kq2zr.csv"), _open("/tmp/tmp_x3b0mmw.csv")),  # ... with a suffix
        (_open("/tmp/t.Ab3"), _open("/tmp/t.zq9")),  # gnulib's fewest: three X's
        (_open("/tmp/" + "A" * 40), _open("/tmp/" + "b" * 40)),  # any number of X's
        (
            Call("fstatat", (AT, "/tmp/dmvx-temp-pzGbba", 144, 0x100)),  # mktemp's lstat probe
            Call("fstatat", (AT, "/tmp/dmvx-temp-ZI0hmJ", 144, 0x100)),
        ),
    ],
)
def test_names_made_up_apart_are_adopted(leader: Call, mine: Call) -> None:
    assert adopted_path(leader, mine) == (1, leader.args[1])


@pytest.mark.parametrize(
    "leader, mine",
    [
        (_open("/tmp/dmvx-temp-pzGbba", 0o102), _open("/tmp/dmvx-temp-ZI0hmJ", 0o102)),  # not exclusive
        (_open("/tmp/dmvx-temp-pzGbba"), _open("/tmp/dmvx-temp-ZI0hmJ", mode=0o644)),  # another mode
        (_open("/tmp/dmvx-temp-pzGbba"), _open("/tmp/dmvx-evil-ZI0hmJ")),  # another template
        (_open("/tmp/dmvx-temp-pzGbba"), _open("/tmp/dmvx-temp-pzGbba")),  # no difference at all
        (_open("/tmp/a.aaaaab"), _open("/tmp/b.aaaaaa")),  # two runs, not one
        (_open("/tmp/dmvx-ab.x"), _open("/tmp/dmvx-cd.x")),  # a run of two
        (_open("/tmp/tmp.abcdef"), _open("/tmp/tmp-abcdeg")),  # another separator
        (_open("/tmp/ab/tmpXYZQ"), _open("/tmp/cd/tmpXYZQ")),  # another directory
        (_open("/tmp/x/abcdefg"), _open("/tmp/xy/bcdefg")),  # a slash moved
        (_open("/tmp/dAAAAAA/f"), _open("/tmp/dBBBBBB/f")),  # not the last component
        (_open("/tmp/dmvx-temp-pzGbba"), _open("/tmp/dmvx-temp-ZI0hmJJ")),  # another length
        (_open("/tmp/dmvx-temp-pzGbba"), Call("mkdirat", (AT, "/tmp/dmvx-temp-ZI0hmJ", 0o600))),
        (Call("unlinkat", (AT, "/tmp/dmvx-temp-pzGbba", 0)), Call("unlinkat", (AT, "/tmp/dmvx-temp-ZI0hmJ", 0))),
        (
            Call("fstatat", (AT, "/tmp/dmvx-temp-pzGbba", 144, 0)),  # stat, not the lstat probe
            Call("fstatat", (AT, "/tmp/dmvx-temp-ZI0hmJ", 144, 0)),
        ),
    ],
)
def test_any_other_difference_is_not(leader: Call, mine: Call) -> None:
    assert adopted_path(leader, mine) is None


def test_a_follower_adopts_the_leaders_name_into_its_own_buffer() -> None:
    follower = FollowerMonitor(Policy.preset("dmvx"), 1, 2)
    leader_call, mine = _open("/tmp/x-AbC123"), _open("/tmp/x-zzzzzz")
    assert follower.call_entered(mine) == [Wait(WaitReason.ENTRY, 1, (0,))]
    actions = follower.message_received(Entry("0", 1, leader_call, EntryKind.FULL, Outcome(3)))
    assert actions[0] == Skip(1, Outcome(3, ((1, b"/tmp/x-AbC123"),)), (3,))
    # From here the variant holds the leader's name: its next use of it is the leader's.
    unlink = Call("unlinkat", (AT, "/tmp/x-AbC123", 0))
    follower.message_received(Entry("0", 2, unlink, EntryKind.FULL, Outcome(0)))
    assert Skip(2, Outcome(0), ()) in follower.call_entered(unlink)  # after its lockstep report


def test_a_follower_with_another_template_is_still_caught() -> None:
    follower = FollowerMonitor(Policy.preset("dmvx"), 1, 2)
    follower.call_entered(_open("/tmp/dmvx-evil-zzzzzz"))
    actions = follower.message_received(Entry("0", 1, _open("/tmp/dmvx-temp-AbC123"), EntryKind.FULL, Outcome(3)))
    assert not any(isinstance(a, Skip) for a in actions)
    assert any(isinstance(a, Wait) for a in actions)  # reported; the leader's vote decides


def test_in_lockstep_the_leader_lets_a_name_made_up_apart_through() -> None:
    leader = LeaderMonitor(Policy.preset("dmon"), 2)
    assert not any(isinstance(a, Execute) for a in leader.call_entered(_open("/tmp/x-AbC123")))
    assert leader.message_received(Report("0", 1, _open("/tmp/x-zzzzzz"), 1))[-1] == Execute(1)
    other = LeaderMonitor(Policy.preset("dmon"), 2)
    other.call_entered(_open("/tmp/x-AbC123"))
    actions = other.message_received(Report("0", 1, _open("/tmp/y-zzzzzz"), 1))
    assert isinstance(actions[-1], Halt) and actions[-1].verdict.kind is VerdictKind.ARG_MISMATCH


@pytest.mark.parametrize("preset", ["dmvx", "dmon"])
@pytest.mark.parametrize("redraw", [0, 1, None], ids=["leader-redraws", "follower-redraws", "none-redraws"])
def test_mkstemp_runs_whoever_draws_again(preset: str, redraw: int | None) -> None:
    # What glibc's mkstemp, write and unlink make; a variant whose first draw
    # was biased draws again with getrandom (a word, without blocking).
    def stream(index: int, name: str) -> list[Step]:
        steps = [Step(Call("clock_gettime", (1, 16)), Outcome(0, ((1, bytes(16)),)))]
        if redraw == index:
            steps.append(Step(Call("getrandom", (8, 8, 1)), Outcome(8, ((0, b"12345678"),))))
        return steps + [
            Step(_open(name), Outcome(3)),
            Step(Call("write", (3, b"data", 4)), Outcome(4)),
            Step(Call("unlinkat", (AT, "/tmp/t-AbC123", 0)), Outcome(0)),
        ]

    for seed in range(10):
        result = replay(Policy.preset(preset), [stream(0, "/tmp/t-AbC123"), stream(1, "/tmp/t-zzzzzz")], seed=seed)
        assert result.ok, result.verdict
        # The exclusive create ran once, in the leader, under the leader's name.
        assert _open("/tmp/t-AbC123") in result.logs[0].executed
        assert not any(c.name == "openat" for c in result.logs[1].executed)


def test_word_draws_are_local_and_other_draws_replicated() -> None:
    broker, fds = Broker(Policy.preset("dmvx")), FdTable()
    assert is_word_draw(Call("getrandom", (8, 8, 1)))
    assert is_word_draw(Call("getrandom", (None, None, 1)))  # an ABI-diverse word
    for call in (Call("getrandom", (16, 16, 1)), Call("getrandom", (8, 8, 0)), Call("getrandom", (8, 8, 2))):
        assert not is_word_draw(call)
        assert broker.decide(call, fds).route is not Route.LOCAL
    assert broker.decide(Call("getrandom", (8, 8, 1)), fds).route is Route.LOCAL
    replicated = Broker(Policy.preset("dmvx").with_overrides({"getrandom": "replicate"}))
    assert replicated.decide(Call("getrandom", (8, 8, 1)), fds).route is Route.REPLICATE
