"""The trace format, and replaying a trace through sim mode.

A divergence recorded in real mode must be explainable by replaying the trace
through the same core: sim mode finds the same verdict, at the same call, as
the core's own in-memory driver (:mod:`dmvx.replay`) does.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dmvx.calls import Call, Outcome
from dmvx.errors import InputError
from dmvx.replay import Step, replay
from dmvx.scenario import Scenario
from dmvx.trace import TraceCall, TraceEnd, TraceWriter, read_trace
from sim.profile import load_profile
from sim.results import point_report
from sim.runner import simulate

PROGRAM = [
    (Call("openat", (-100, "/etc/hosts", 0, 0)), Outcome(3)),
    (Call("read", (3, 64, 64)), Outcome(9, ((1, b"127.0.0.1"),))),
    (Call("close", (3,)), Outcome(0)),
    (Call("getpid", ()), Outcome(77)),
    (Call("write", (1, b"hello\n", 6)), Outcome(6)),
    (Call("execve", ("/bin/true", ("true",), ())), Outcome(0)),
]


def record(path: Path, streams: list[list[tuple[Call, Outcome]]]) -> None:
    with path.open("w") as out:
        writer = TraceWriter(out, [{"arch": "x86_64"} for _ in streams], program="demo")
        for index, stream in enumerate(streams):
            for number, (call, outcome) in enumerate(stream):
                writer.call(index, call, outcome, ns=500 + number, gap=100)
            writer.exit(index, 0)


def scenario(path: Path, preset: str = "dmvx") -> Scenario:
    return Scenario.model_validate(
        {
            "name": "trace",
            "topology": {
                "name": "t",
                "hosts": {"h1": {"role": "variant"}, "h2": {"role": "variant"}},
                "links": [{"a": "h1", "b": "h2", "delay": "20us", "bw": "1Gbit"}],
            },
            "policy": {"preset": preset},
            "workload": {"kind": "trace", "path": str(path)},
        }
    )


def test_round_trip_keeps_every_value(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    record(path, [PROGRAM])
    trace = read_trace(path)
    assert trace.header["program"] == "demo" and trace.calls == len(PROGRAM)
    events = trace.streams[0]
    assert [(e.call, e.outcome) for e in events if isinstance(e, TraceCall)] == PROGRAM
    assert isinstance(events[0], TraceCall) and events[0].ns == 500 and events[0].gap == 100
    assert events[-1] == TraceEnd("exit", 0)


def test_writer_output_is_one_sorted_object_per_line() -> None:
    out = io.StringIO()
    TraceWriter(out).call(0, Call("read", (3, 1, 1)), Outcome(1, ((1, b"A"),)), ns=210)
    header, line = out.getvalue().splitlines()
    assert header == '{"dmvx_trace":1,"variants":[]}'
    assert line == '{"args":[3,1,1],"call":"read","ns":210,"out":[[1,{"hex":"41"}]],"result":1,"v":0}'


@pytest.mark.parametrize(
    "lines, where, what",
    [
        (['{"dmvx_trace": 2}'], 1, "not a dmvx trace header"),
        (['{"dmvx_trace": 1}', "{"], 2, "not JSON"),
        (['{"dmvx_trace": 1}', '{"call": "read"}'], 2, "without 'v'"),
        (['{"dmvx_trace": 1}', '{"v": 0, "call": "read", "args": [{"b64": "QQ=="}], "result": 1}'], 2, "hex"),
        (['{"dmvx_trace": 1}', '{"v": 0, "exit": 0}', '{"v": 0, "call": "getpid", "result": 1}'], 3, "after its end"),
        (['{"dmvx_trace": 1}', '{"v": 0, "call": "getpid", "result": 1.5}'], 2, "'result' must be an integer"),
    ],
)
def test_bad_traces_name_the_line(tmp_path: Path, lines: list[str], where: int, what: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as info:
        read_trace(path)
    assert str(info.value).startswith(f"{path}:{where}")
    assert what in str(info.value)


def test_identical_recorded_variants_replay_clean(tmp_path: Path) -> None:
    path = tmp_path / "same.jsonl"
    record(path, [PROGRAM, PROGRAM])
    report = point_report(scenario(path), simulate(scenario(path), load_profile("paper")), {}).to_json()
    assert report["outcome"] == "ok"
    assert [v["ended_by"] for v in report["variants"]] == ["done", "done"]
    # Recorded durations are the native costs: 6 calls of 500..505 ns plus gaps.
    assert report["native"]["time_ns"] == sum(500 + i + 100 for i in range(len(PROGRAM)))


@pytest.mark.parametrize("preset", ["dmvx", "dmon"])
def test_a_recorded_divergence_is_explained_the_same_way(tmp_path: Path, preset: str) -> None:
    diverged = list(PROGRAM)
    diverged[4] = (Call("write", (1, b"HELLO\n", 6)), Outcome(6))
    path = tmp_path / "div.jsonl"
    record(path, [PROGRAM, diverged])
    sc = scenario(path, preset)
    sim_verdict = simulate(sc, load_profile("paper")).mvx.verdict
    core = replay(sc.policy.to_policy(), [[Step(c, o) for c, o in PROGRAM], [Step(c, o) for c, o in diverged]])
    assert sim_verdict is not None and core.verdict is not None
    assert (sim_verdict.kind, sim_verdict.seq) == (core.verdict.kind, core.verdict.seq)
    assert sim_verdict.kind.value == "output-mismatch"


def test_a_recorded_crash_ends_in_a_crash_verdict(tmp_path: Path) -> None:
    path = tmp_path / "crash.jsonl"
    with path.open("w") as out:
        writer = TraceWriter(out, [{"arch": "x86_64"}, {"arch": "i386"}])
        for index in (0, 1):
            for call, outcome in PROGRAM[:3]:
                writer.call(index, call, outcome)
        writer.call(0, *PROGRAM[3])
        writer.exit(0, 0)
        writer.killed(1, 11)
    report = point_report(scenario(path), simulate(scenario(path), load_profile("paper")), {}).to_json()
    assert report["verdict"]["kind"] == "crash"
    assert report["outcome"] == "divergence"


@pytest.mark.parametrize("heartbeats", [True, False])
def test_a_long_native_call_is_not_a_stall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, heartbeats: bool) -> None:
    """A recorded server's last epoll_wait timed out after 1 s, just longer
    than the stall timeout, and then it was stopped. Real mode's monitor sent
    heartbeats meanwhile, so the follower waiting for the leader's entry --
    on its way while the leader already waits for the follower's end -- must
    not call it a stall; without heartbeats it does (the check can fail)."""
    from sim import engine

    if not heartbeats:
        monkeypatch.setattr(engine, "HEARTBEAT_EVERY", engine.INF)
    program = [
        (Call("getpid", ()), Outcome(77)),
        (Call("epoll_wait", (3, 8, 1000)), Outcome(0)),
        (Call("time", (None,)), Outcome(1795668352)),
    ]
    path = tmp_path / "t.jsonl"
    with path.open("w") as out:
        writer = TraceWriter(out, [{"arch": "x86_64"}, {"arch": "x86_64"}], program="server")
        for index in (0, 1):
            for call, outcome in program:
                # The leader ran the wait; the follower was handed its result.
                long = call.name == "epoll_wait" and index == 0
                writer.call(index, call, outcome, ns=1_000_100_000 if long else 500, gap=100)
            writer.killed(index, 9)
    s = scenario(path).model_copy(update={"stall_timeout": 1.0})
    mvx = simulate(s, load_profile("vm")).mvx
    if heartbeats:
        assert mvx.verdict is None
    else:
        assert mvx.verdict is not None and mvx.verdict.kind.value == "no-progress"
