"""The connector buffer's accounting, and the sizes it is charged.

``ConnectorBuffer.full`` is kept up to date by ``push`` and ``release_upto``
(the leader reads it at every replicated call instead of calling
``has_room``): it must say what ``has_room`` says after any sequence of the
two. ``Entry.size`` is computed when the entry is made, from the same parts
as before (a fixed header, the call's name and arguments, the digest, the
outcome), or passed in by a maker that sized the entry already.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dmvx.calls import Call, Outcome
from dmvx.cb import ConnectorBuffer
from dmvx.messages import Entry, EntryKind, call_size, entry_size

_OPS = st.lists(
    st.one_of(st.tuples(st.just("push"), st.integers(1, 300)), st.tuples(st.just("release"), st.integers(0, 8))),
    max_size=60,
)


@given(st.integers(1, 6), st.integers(1, 1000), _OPS)
def test_full_is_not_has_room_after_any_pushes_and_releases(entries: int, nbytes: int, ops: list) -> None:
    cb = ConnectorBuffer(entries, nbytes)
    seq = 0
    assert cb.full is (not cb.has_room())
    for op, value in ops:
        if op == "push":
            seq += 1
            cb.push(seq, value, Call("getpid"))
        else:
            cb.release_upto(seq - value)
        assert cb.full is (not cb.has_room()), (op, value, len(cb), cb.bytes)


def _old_size(entry: Entry) -> int:
    """The size as Entry computed it before it was an attribute."""
    size = 24 + len(entry.call.name) + 8 * sum(1 for a in entry.call.args if not isinstance(a, (bytes, str)))
    size += sum(len(a) + 4 for a in entry.call.args if isinstance(a, (bytes, str))) + len(entry.digest)
    return size + (entry.outcome.size if entry.outcome is not None else 0)


def test_entry_size_is_computed_when_made_or_taken_as_given() -> None:
    call = Call("read", (3, b"ab", "path", None))
    outcome = Outcome(2, ((1, b"xy"),))
    for entry in (
        Entry("0", 1, call, EntryKind.FULL, outcome),
        Entry("0", 1, call, EntryKind.PREDICTED),
        Entry("0", 1, call, EntryKind.DIGEST, Outcome(2), b"d" * 16),
    ):
        assert entry.size == _old_size(entry) == entry_size(call_size(call), entry.outcome, entry.digest)
    given_size = Entry("0", 1, call, EntryKind.FULL, outcome, size=7)
    assert given_size.size == 7
    assert given_size == Entry("0", 1, call, EntryKind.FULL, outcome)  # the size is not part of equality


@given(st.integers(1, 8), st.integers(1, 1000), st.integers(0, 300), st.integers(0, 5), st.integers(1, 12))
def test_push_run_is_fits_pushes_one_by_one(entries: int, nbytes: int, size: int, before: int, most: int) -> None:
    """A run of equal entries (``push_run``) leaves the buffer as that many
    ``push`` calls do, and ``fits`` is how many pushes go in before ``full``."""
    one, run = ConnectorBuffer(entries, nbytes), ConnectorBuffer(entries, nbytes)
    call = Call("getpid")
    for seq in range(1, before + 1):
        if one.full:
            break
        one.push(seq, size, call)
        run.push(seq, size, call)
    seq = len(one)
    fits = one.fits(size)
    pushed = 0
    while not one.full and pushed < most:
        pushed += 1
        one.push(seq + pushed, size, call)
    assert pushed == min(most, fits)
    count = min(most, run.fits(size))
    if count:
        run.push_run(seq + 1, count, size, call)
    state = ("full", "max_entries", "max_bytes", "mean_entries", "bytes")
    assert [getattr(run, name) for name in state] == [getattr(one, name) for name in state]
    assert run.unconfirmed() == one.unconfirmed()
