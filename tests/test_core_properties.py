"""Property tests of the core, without root, SimPy or ptrace.

1. Identical variants never diverge, under every preset and knob, for any
   schedule of calls and message deliveries.
2. A stream in which one variant's call is mutated is always detected, and
   exactly at the first compared call where the variants' sequences differ:
   at the mutated call itself when the mutant is a compared call; when the
   mutant is a local call (which drops out of the compared sequence), at the
   next compared call that differs. The test reports how many compared calls
   after the mutation the verdict came.

Both run with and without ``steer`` (pid notes, result notes and the results
followers steer towards, as real mode runs the monitors); tests/test_notes.py
checks what steering monitors say.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core_streams import streams
from dmvx.broker import Broker
from dmvx.calls import Call
from dmvx.fdtable import FdTable
from dmvx.policy import Level, Policy, Route, comparable
from dmvx.replay import Step, replay


def _policies() -> list[Policy]:
    dmvx = Policy.preset("dmvx", local_files=("/etc/*",))
    policies = [Policy.preset("dmon"), dmvx]
    policies += [replace(dmvx, relaxation=level) for level in Level]
    policies += [
        replace(dmvx, async_replication=False),
        replace(dmvx, predict=False),
        replace(dmvx, local_files=()),
        replace(dmvx, cb_entries=1),
        replace(dmvx, cb_entries=3, ack_every=2),
        replace(dmvx, cb_bytes=64),
    ]
    return policies


POLICIES = _policies()
policy_choice = st.sampled_from(POLICIES)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), policy=policy_choice, n=st.integers(2, 4), seed=st.integers(0, 2**16), steer=st.booleans())
def test_identical_variants_never_diverge(stream: list[Step], policy: Policy, n: int, seed: int, steer: bool) -> None:
    result = replay(policy, [stream] * n, seed=seed, steer=steer)
    assert result.verdict is None, result.verdict.summary()
    assert all(log.done for log in result.logs)
    assert all(log.exit_status == 0 for log in result.logs)


def _compared(policy: Policy, stream: list[Step]) -> list[tuple[int, Call]]:
    """(index into ``stream``, comparable call) of every call that gets a
    sequence number, ending with the process exit."""
    from dmvx.monitor import fd_pair

    broker, fds, compared = Broker(policy), FdTable(), []
    for index, step in enumerate(stream):
        decision = broker.decide(step.call, fds)
        if decision.route is not Route.LOCAL:
            compared.append((index, comparable(step.call)))
            fds.after(
                step.call, step.outcome.result, fd_pair(step.call, step.outcome), decision.route is Route.LOCAL_FILE
            )
    compared.append((len(stream), Call("<exit>", (0,))))
    return compared


MUTANTS = [
    Call("execve", ("/bin/sh", None, None)),
    Call("write", (1, b"pwned", 5)),
    Call("getppid"),
    Call("mmap", (None, 4096, 7, 0x22, -1, 0)),
    Call("mmap", (None, 4096, 3, 0x22, -1, 0)),  # a local call: shifts the sequence
]
LATENESS: Counter[int] = Counter()


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=streams(),
    policy=policy_choice,
    n=st.integers(2, 3),
    seed=st.integers(0, 2**16),
    data=st.data(),
    steer=st.booleans(),
)
def test_mutated_call_is_detected_by_the_next_compared_call(
    stream: list[Step], policy: Policy, n: int, seed: int, data: st.DataObject, steer: bool
) -> None:
    assume(stream)
    victim = data.draw(st.integers(0, n - 1), label="victim")
    position = data.draw(st.integers(0, len(stream) - 1), label="position")
    mutant = data.draw(st.sampled_from(MUTANTS), label="mutant")
    original = stream[position].call
    if comparable(mutant) == comparable(original):
        return
    mutated = list(stream)
    mutated[position] = Step(mutant, stream[position].outcome)
    streams_ = [stream] * n
    streams_[victim] = mutated

    result = replay(policy, streams_, seed=seed, steer=steer)

    assert result.verdict is not None, "mutation went unnoticed"
    honest, changed = _compared(policy, stream), _compared(policy, mutated)
    # The first point where the compared calls differ: a monitor sees it
    # there at the latest (earlier if outcomes differ before the calls do).
    differ = next(
        seq for seq, (a, b) in enumerate(zip(honest + [(0, None)], changed + [(0, None)]), start=1) if a[1] != b[1]
    )
    assert result.verdict.seq <= differ, result.verdict.summary()
    # Lateness: compared calls between the mutation and the verdict.
    mutated_seq = next(seq for seq, (index, _) in enumerate(changed, start=1) if index >= position)
    late = result.verdict.seq - mutated_seq
    LATENESS[late] += 1
    if Broker(policy).decide(mutant, FdTable()).route is not Route.LOCAL:
        assert late == 0, "a compared mutant must be caught at the mutated call itself"
    if n >= 3 and result.verdict.odd_one_out:
        assert result.verdict.odd_one_out == (victim,)
    # Nothing sensitive the honest variants did not do ever ran.
    if mutant.name == "execve" or mutant.args[2:3] == (7,):
        assert all(mutant not in log.executed for log in result.logs)


def test_report_detection_lateness(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints how many compared calls after a mutation the verdict came."""
    if not LATENESS:
        pytest.skip("run together with the mutation property test")
    total = sum(LATENESS.values())
    with capsys.disabled():
        parts = ", ".join(f"{late} later: {count}" for late, count in sorted(LATENESS.items()))
        print(f"\n[core] mutated calls detected: {total}; at the mutated call: {LATENESS[0]}; {parts}")
