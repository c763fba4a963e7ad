"""dmvx calibrate (issue 7): the measured profile loads in sim and drives its predictions."""

from __future__ import annotations

from pathlib import Path

import pytest

from realmode import calibrate as cal
from realmode import microbench
from realmode.orchestrator import make_policy, placement
from sim.calibration import predict as sim_predict
from sim.engine import RECORD_BYTES
from sim.profile import load_profile


def predict(path: Path, kind: str, policy: str, iterations: int):
    """Sim's prediction on the CPUs real mode would use here (the CLI hands
    sim real mode's placement the same way)."""
    return sim_predict(path, kind, policy, iterations, placement(make_policy(policy), 2, "auto"))


def _measurements(dmvx_leader_ns: float = 50000.0, dmon_side_ns: float = 170000.0) -> cal.Measurements:
    messages = cal.MessageCosts(
        send={64: 5000.0, 16384: 9000.0},
        receive={64: 6000.0, 16384: 12000.0},
        encode={64: 3000.0, 16384: 6000.0},
        decode={64: 4000.0, 16384: 8000.0},
    )
    return cal.Measurements(
        native={"getpid": 90.0, "read": 150.0, "getcwd": 190.0, "sched_yield": 210.0},
        native_local=100.0,
        seccomp_untraced=10.0,
        ptrace=15000.0,
        monitor_leader=3500.0,
        monitor_follower=1300.0,
        wakeup=37000.0,
        wakeup_same_cpu=800.0,
        messages=messages,
        link=cal.LinkCosts(send=5000.0, receive=14000.0, receive_message=4000.0),
        connector=cal.ConnectorCosts(
            send_batch=30000.0, send_message=10000.0, receive_batch=35000.0, receive_message=10000.0
        ),
        dmvx_getppid=cal.RoleCosts((dmvx_leader_ns, 36000.0), (17000.0, 16000.0)),
        dmvx_uname=cal.RoleCosts((dmvx_leader_ns + 20000.0, 56000.0), (23000.0, 20000.0)),
        dmon_getppid=cal.RoleCosts((dmon_side_ns, dmon_side_ns), (130000.0, 130000.0)),
    )


def test_written_profile_loads_with_the_derived_values(tmp_path: Path) -> None:
    m = _measurements()
    path = tmp_path / "measured.yml"
    cal.write_profile(cal.profile_document(m), path, m)
    profile = load_profile(str(path))
    assert profile.native_cost("getpid") == 90
    # dmvx's interception: the leader's monitor per call less handing the entry over (core + link).
    assert profile.interception_costs("dmvx")["replicate"] == 50000 - 3500 - 5000
    # dmon's: a lockstep side less the hand-over, comparing, taking the reply and the wake-up.
    assert profile.interception_costs("dmon")["replicate"] == 170000 - 8500 - 1300 - 18000 - 800
    assert profile.copy_per_buffer == 20000  # uname's monitors cost 20 us more than getppid's
    # CONNECTOR batches scaled to the dmon run: 130 us a call = 2 x 10 us per entry + 110 us of batches.
    assert profile.send + profile.receive == pytest.approx(110000, abs=2)
    assert profile.connector_wakeup_for("dmon") == 800  # woken by its monitor, on the monitor's CPU
    assert profile.connector_receive_wakeup == 37000  # woken from the network, on an idle CPU


def test_dmvx_interception_is_the_leaders_loop_when_it_waits_beyond_its_cpu(tmp_path: Path) -> None:
    """The leader's program clocks its loop at 60 us a call while its monitor
    used 50 us of CPU: the 10 us of scheduling gaps are part of a call's cost."""
    m = _measurements()
    m.dmvx_getppid = cal.RoleCosts((50000.0, 36000.0), (17000.0, 16000.0), loop=60000.0)
    path = tmp_path / "measured.yml"
    cal.write_profile(cal.profile_document(m), path, m)
    assert load_profile(str(path)).interception_costs("dmvx")["replicate"] == 60000 - 3500 - 5000


def test_prediction_follows_the_monitors_cost(tmp_path: Path) -> None:
    predictions = {}
    for leader_ns in (40000.0, 70000.0):
        m = _measurements(dmvx_leader_ns=leader_ns)
        path = tmp_path / f"p{int(leader_ns)}.yml"
        cal.write_profile(cal.profile_document(m), path, m)
        predictions[leader_ns] = predict(path, "getpid", "dmvx", 500)
    low, high = predictions[40000.0], predictions[70000.0]
    assert low.us > 30 and high.us - low.us == pytest.approx(30, abs=3)  # +30 us per call shows, one for one


def test_lockstep_prediction_is_bound_by_the_shared_cpu(tmp_path: Path) -> None:
    """Under dmon real mode puts every monitor and CONNECTOR on one CPU, so
    the loop is as slow as the work sim charged to all of them together,
    more than any one timeline."""
    m = _measurements()
    path = tmp_path / "measured.yml"
    cal.write_profile(cal.profile_document(m), path, m)
    prediction = predict(path, "getpid", "dmon", 300)
    assert prediction.bound.startswith("cpu")
    shared = max(prediction.cpus.values())
    assert prediction.us == pytest.approx(shared) and shared > prediction.span


@pytest.mark.root
def test_component_measurements_are_positive(tmp_path: Path) -> None:
    binary = microbench.build(str(tmp_path))
    native = microbench.native_ns(binary, "getpid", 20000)
    assert native > 0
    assert cal.ptrace_pair_ns(binary, 2000, native) > 1000  # a stop pair costs microseconds
    costs = cal.message_costs(sizes=(64, 4096), count=200)
    assert costs.send[64] > 0 and costs.receive[4096] > 0
    link = cal.link_costs(messages=200)
    # A read of one message costs something; how it splits between the read
    # and the message is a line through two points, which load can tilt to 0.
    assert link.send > 0 and link.receive + link.receive_message > 0
    connector = cal.connector_costs(messages=200)
    assert connector.send_batch + connector.send_message > 1000
    roles = cal.role_cpu_ns(binary, "getppid", "dmvx", calls=(200, 1200))
    assert roles.monitor[0] > 5000 and roles.connector[1] > 0  # a traced, replicated call costs microseconds


def test_asynchronous_leader_meets_the_other_cpu_beyond_the_cb(tmp_path: Path) -> None:
    """Under dmvx the leader's CPU sets the pace until the CB is full; past
    its 4096 entries the leader waits for the CPU that carries the followers
    and the CONNECTORs, when that one has more work per call -- counted with
    the largest batches, which a CPU that falls behind comes to take."""
    m = _measurements()
    m.connector = cal.ConnectorCosts(
        send_batch=30000.0, send_message=60000.0, receive_batch=35000.0, receive_message=60000.0
    )  # costly entries: 120 us a call on CPU 1
    path = tmp_path / "slow-connectors.yml"
    cal.write_profile(cal.profile_document(m), path, m)
    short = predict(path, "getpid", "dmvx", 2000)
    long = predict(path, "getpid", "dmvx", 20000)
    assert short.behind == 0.0 and short.bound == "cpu 0" and short.us == pytest.approx(short.cpus[0])
    assert long.bound == "cpu 1" and long.behind == pytest.approx((20000 - 4096) / 20000, abs=0.01)
    assert long.us == pytest.approx(long.saturated[1] * long.behind) and long.us > 1.5 * short.us
    assert long.saturated[1] < long.cpus[1]  # batches as large as allowed: their fixed costs fade
    assert long.span < 1.1 * short.span  # sim's own timelines, a CPU each, never feel it


# -- the in-process path (issue 14: sim follows) ---------------------------------------


def _with_dipmon(
    tmp_path: Path, call_ns: float = 300.0, drain_ns: float = 20000.0, alone_ns: float = 0.0, byte_ns: float = 0.0
) -> Path:
    """A measured profile whose dipmon section says: a wrapped call costs the
    program ``call_ns``; the leader's monitor ``drain_ns`` a record beside it;
    a record alone (a run of one) costs each process ``alone_ns`` more, and
    each byte it carries ``byte_ns`` (0: not measured)."""
    m = _measurements()
    monitor, connector = (drain_ns + 8500.0, 30000.0), (5000.0, 6000.0)
    m.dipmon = cal.DipmonCosts(
        call=call_ns,
        monitor=monitor,
        connector=connector,
        monitor_alone=tuple(ns + alone_ns for ns in monitor),  # type: ignore[arg-type]
        connector_alone=tuple(ns + alone_ns for ns in connector),  # type: ignore[arg-type]
    )
    if byte_ns:
        loaded = byte_ns * cal.ALTERNATE_READ_BYTES
        m.dipmon.monitor_bytes = tuple(ns + alone_ns + loaded for ns in monitor)  # type: ignore[assignment]
        m.dipmon.connector_bytes = tuple(ns + alone_ns + loaded for ns in connector)  # type: ignore[assignment]
    path = tmp_path / f"dipmon-{int(call_ns)}-{int(drain_ns)}-{int(alone_ns)}-{int(byte_ns)}.yml"
    cal.write_profile(cal.profile_document(m), path, m)
    return path


def _predict_in_process(path: Path, kind: str, iterations: int, how: str = "auto"):
    return sim_predict(path, kind, "dmvx", iterations, placement(make_policy("dmvx"), 2, how, in_process=True))


def test_the_profile_carries_the_in_process_costs(tmp_path: Path) -> None:
    profile = load_profile(str(_with_dipmon(tmp_path)))
    assert profile.dipmon is not None
    assert profile.dipmon.call == 300
    # Each process's CPU per record, all in (records go in runs and batches
    # of hundreds on the path: no per-message part is taken off or added).
    assert profile.dipmon.drain == 20000 + 8500
    assert profile.dipmon.follow == 30000
    assert (profile.dipmon.send, profile.dipmon.receive) == (5000, 6000)
    assert {"getpid", "read", "getcwd", "sched_yield"} <= profile.dipmon.calls
    assert load_profile(str(_plain(tmp_path))).dipmon is None  # no library measured: every call priced as before


def test_a_fast_call_costs_the_leader_the_wrapper_until_the_ring_is_full(tmp_path: Path) -> None:
    """On the in-process path the leader's program pays the wrapper (0.3 us)
    and its monitor drains the records beside it: below the CB and ring
    the loop runs near native speed, its monitor's work on the other CPU;
    far beyond them the leader goes at the pace of that CPU."""
    fast = _with_dipmon(tmp_path)
    short = _predict_in_process(fast, "getpid", 2000)
    assert short.us < 1.0, short  # 0.09 native + 0.3 wrapper, not the ~40 us of a stop
    assert short.cpus[1] > 20  # the drain (20 us a record) and the follower, on the monitors' CPU
    ptrace = predict(_plain(tmp_path), "getpid", "dmvx", 2000)
    assert ptrace.us > 30 * short.us
    long = _predict_in_process(fast, "getpid", 60000)
    assert long.bound == "cpu 1" and long.us > 10 * short.us
    # The slower the monitor's drain, the slower the long loop; the short one does not feel it.
    slow = _with_dipmon(tmp_path, drain_ns=40000.0)
    assert _predict_in_process(slow, "getpid", 60000).us > long.us + 5
    assert _predict_in_process(slow, "getpid", 2000).us == pytest.approx(short.us, abs=0.2)


def test_the_path_prices_each_record_by_its_measured_costs(tmp_path: Path) -> None:
    """Far past the CB and the ring, the loop goes at the pace of the CPU that
    carries the monitors and CONNECTORs, and what sim charges it per record is
    what each process was measured to spend per record on the path (plus the
    follower's comparing): not the per-message costs of single messages,
    which the path's runs and batches of hundreds do not pay per entry.
    Under ``split`` one CPU carries all four; under ``spread`` (the path's
    default) each variant's side has its own, and the dearer sets the pace."""
    path = _with_dipmon(tmp_path)
    drain, follow, send, receive = 20000 + 8500, 30000, 5000, 6000  # ns a record in each process
    split = _predict_in_process(path, "getpid", 60000, "split")
    assert split.bound == "cpu 1"
    assert split.cpus[1] == pytest.approx((drain + follow + send + receive) / 1000, rel=0.1)
    spread = _predict_in_process(path, "getpid", 60000)
    assert spread.bound == "cpu 1"  # the follower's side: 36 us a record, against the leader's 33.5 and its calls
    assert spread.cpus[1] == pytest.approx((follow + receive) / 1000, rel=0.1)
    assert spread.cpus[0] == pytest.approx((drain + send) / 1000, rel=0.1)
    assert spread.us < 0.7 * split.us


def _plain(tmp_path: Path) -> Path:
    m = _measurements()
    path = tmp_path / "plain.yml"
    cal.write_profile(cal.profile_document(m), path, m)
    return path


def test_the_core_monitors_are_timed_past_the_cb() -> None:
    """More calls than the CB holds (4,096), with no follower acknowledging:
    timed in rounds, never a leader held at a full CB (which ran into an
    invalid state move)."""
    leader, follower = cal.monitor_ns(calls=6000)
    assert leader > 0 and follower > 0


def test_a_slowdown_is_measured_against_the_native_run_of_its_round() -> None:
    """The check pairs each traced run with a native run taken just before
    it: a round the machine's load slowed (both halves twice as slow) keeps
    its ratio, and the median of the rounds' ratios drops one outlier; the
    medians of the two columns apart would have mixed the rounds."""
    from realmode.calibrate.check import paired_median

    native, traced = paired_median([(1.0, 10.0), (2.0, 20.0), (2.0, 20.0)])
    assert native == 2.0 and traced == pytest.approx(20.0)
    native, traced = paired_median([(1.0, 10.0), (1.5, 30.0), (2.0, 20.0)])
    assert native == 1.5 and traced / native == pytest.approx(10.0)  # unpaired: 20 / 1.5 = 13.3x


def test_a_fast_calls_buffers_come_in_its_record(tmp_path: Path) -> None:
    """On the path a call's output and argument buffers travel in its record
    (the library copies them): far past CB and ring, a read's and a getcwd's
    records cost the monitors' CPU what a getpid's does, give or take their
    bytes -- not a ptrace read of each buffer (copy_per_buffer, tens of us)."""
    path = _with_dipmon(tmp_path)
    getpid = _predict_in_process(path, "getpid", 60000)
    for kind in ("read", "getcwd"):
        other = _predict_in_process(path, kind, 60000)
        assert other.cpus[1] == pytest.approx(getpid.cpus[1], rel=0.1), kind


# -- records alone, recorded names, the server row (sim's lighttpd model) ------------


def _server_trace(path: Path, requests: int, body: int = 4200) -> Path:
    """A recorded run of a server as lighttpd's looks on the in-process path:
    per request a wait, an accept, the request read, the response written
    (its ``body`` bytes in the record) and the close -- no two records in a
    row alike."""
    from dmvx.calls import Call, Outcome
    from dmvx.trace import TraceWriter

    with open(path, "w", encoding="utf-8") as out:
        writer = TraceWriter(out, [{"arch": "x86_64"}, {"arch": "x86_64"}])
        for variant in (0, 1):
            writer.call(variant, Call("socket", (2, 1, 0)), Outcome(3))
            for _ in range(requests):
                # epoll_wait as the core names every one: epoll_pwait without a mask.
                writer.call(
                    variant, Call("epoll_pwait", (5, None, 64, 1000, None, None)), Outcome(1, ((1, b"e" * 12),))
                )
                writer.call(
                    variant, Call("accept4", (3, None, None, 0)), Outcome(8, ((1, b"a" * 16), (2, b"\x10\0\0\0")))
                )
                writer.call(variant, Call("recvfrom", (8, None, 16384, 0, None, None)), Outcome(90, ((1, b"r" * 90),)))
                writer.call(variant, Call("writev", (8, b"w" * body, 2)), Outcome(body))
                writer.call(variant, Call("close", (8,)), Outcome(0))
            writer.exit(variant, 0)
    return path


def _replayed(profile: Path, trace: Path):
    from sim.calibration import _simulate

    experiment, _ = _simulate(profile, {"kind": "trace", "path": str(trace)}, "dmvx")
    return experiment.mvx


def test_a_record_alone_costs_each_process_a_run(tmp_path: Path) -> None:
    """The path takes a run of equal records as one event: a loop's records
    cost what the getppid loop measured, but a server's, each unlike the one
    before, are each a run of one and cost what the ``alternate`` loop
    measured -- ten times as much in real mode (lighttpd's leader monitor
    ~46 us a record where getppid's took ~4). Priced at the run's cost, sim
    had lighttpd's pipeline several times too cheap (-62% on a quiet VM)."""
    alone = 30000.0
    plain, costly = _with_dipmon(tmp_path), _with_dipmon(tmp_path, alone_ns=alone)
    profile = load_profile(str(costly))
    assert profile.dipmon is not None
    assert (profile.dipmon.drain_run, profile.dipmon.follow_run) == (30000, 30000)
    assert (profile.dipmon.send_run, profile.dipmon.receive_run) == (30000, 30000)
    # A loop: its records join runs, the run's cost fades.
    loop, loop_costly = (_predict_in_process(p, "getpid", 60000) for p in (plain, costly))
    assert loop_costly.cpus[1] == pytest.approx(loop.cpus[1], rel=0.02)
    # A server: every record alone pays it in each of the four processes.
    trace = _server_trace(tmp_path / "server.jsonl", 200)
    cheap, dear = _replayed(plain, trace), _replayed(costly, trace)
    records = dear.variants[0].ring_records
    assert records == 1000  # every call of a request on the path (the socket stops)
    for index in (0, 1):  # the leader's monitor draining, the follower's checking
        added = dear.variants[index].monitor_busy - cheap.variants[index].monitor_busy
        assert added == pytest.approx(records * alone, rel=0.01), index
    connectors = sum(c["busy_ns"] for c in dear.connectors.values()) - sum(
        c["busy_ns"] for c in cheap.connectors.values()
    )
    assert connectors == pytest.approx(2 * records * alone, rel=0.01)


def test_the_library_s_calls_are_matched_by_their_recorded_names(tmp_path: Path) -> None:
    """The library wraps ``epoll_wait``, which the core (and a recorded run)
    names ``epoll_pwait``: the profile lists the calls as recorded, so sim
    takes a server's waits on the path, not at an interception each."""
    from dmvx.syscalls import canonical_name

    assert canonical_name("epoll_wait") == "epoll_pwait" and canonical_name("getpgrp") == "getpgid"
    assert canonical_name("read") == "read" and canonical_name("fstatat") == "fstatat"  # depends on its args: kept
    profile = load_profile(str(_with_dipmon(tmp_path)))
    assert profile.dipmon is not None and "epoll_pwait" in profile.dipmon.calls
    mvx = _replayed(_with_dipmon(tmp_path), _server_trace(tmp_path / "server.jsonl", 100))
    leader = mvx.variants[0]
    assert leader.ring_records == 500
    # The program's own time: a wrapper a call, not a stop (41.5 us) at each wait.
    assert leader.busy_time < 100 * 41500


def test_the_server_row_holds_sim_to_the_measured_runs_length(tmp_path: Path) -> None:
    """A recorded run of 100 requests stays within the ring and the CB, so
    the leader never waits for the CPU behind them; the run real mode
    measured (here 30,000 requests) goes far past them and runs at that
    CPU's pace. The ring holds records by their bytes: lighttpd's carry the
    4 KiB it sends, so it holds far fewer than 1 MiB / 96 B of them. Under
    ``split`` that CPU carries every monitor and CONNECTOR; under ``spread``
    (the path's default) each variant's side has a CPU, about half each."""
    from sim.calibration import predict_server

    path = _with_dipmon(tmp_path, alone_ns=30000.0)
    trace = _server_trace(tmp_path / "server.jsonl", 100)
    places = placement(make_policy("dmvx"), 2, "split", in_process=True)
    own, own_bound = predict_server(path, trace, "dmvx", places)
    long, long_bound = predict_server(path, trace, "dmvx", places, 30000)
    assert own_bound != "cpu 1" and long_bound == "cpu 1"  # the leader alone, then the CPU behind it
    # Five records a request, each alone, on the one CPU: drain, follow and
    # both CONNECTORs (28.5 + 30 + 5 + 6 us, and 30 us more each alone); the
    # bytes and the comparing on top; the first ~5,200 records (3.5%) run ahead.
    per_request = 5 * (28.5 + 30 + 5 + 6 + 4 * 30)
    assert 0.95 * per_request < long < 1.3 * per_request
    assert long > 10 * own
    spread = placement(make_policy("dmvx"), 2, "auto", in_process=True)
    assert spread == placement(make_policy("dmvx"), 2, "spread")
    alone, _ = predict_server(path, trace, "dmvx", spread)
    apart, apart_bound = predict_server(path, trace, "dmvx", spread, 30000)
    assert alone == pytest.approx(own)  # within the ring the leader's monitor beside it costs it nothing
    # The follower's side, its CPU's own: follow and its CONNECTOR (30 + 6 us
    # and 30 more each alone), the bytes and the comparing on top; the
    # leader's CPU (drain and CONNECTOR 0: 28.5 + 5 + 2 * 30) a little less.
    assert apart_bound == "cpu 1"
    assert 0.95 * 5 * (30 + 6 + 2 * 30) < apart < 1.3 * 5 * (30 + 6 + 2 * 30)
    assert apart < 0.6 * long
    lead = _replayed(path, trace).variants[0]
    # The body is in the writev's record, beside its head: ~1 KB a record, not 96 B.
    assert lead.ring_bytes == 500 * RECORD_BYTES + 100 * (12 + 20 + 90 + 4200)


def test_the_bytes_a_record_carries_cost_each_process(tmp_path: Path) -> None:
    """On the path a record's bytes (a read's data, a writev's) cost each of
    the four processes per byte, measured on ``alternate_read`` (~13, ~15, ~5
    and ~8 ns a byte in real mode: ~40 ns in all, where the profile's
    copy_per_byte and connector costs per byte said ~1): a lighttpd request
    carries ~8.6 KB, ~350 us of it."""
    trace = _server_trace(tmp_path / "server.jsonl", 200)
    plain, costly = _with_dipmon(tmp_path, alone_ns=30000.0), _with_dipmon(tmp_path, alone_ns=30000.0, byte_ns=10.0)
    profile = load_profile(str(costly))
    assert profile.dipmon is not None and profile.dipmon.drain_per_byte == pytest.approx(10.0)
    assert load_profile(str(plain)).dipmon.drain_per_byte is None  # type: ignore[union-attr]  # not measured
    cheap, dear = _replayed(plain, trace), _replayed(costly, trace)
    carried = 200 * (12 + 20 + 90 + 4200)  # outputs and the writev's data, per request
    follower = dear.variants[1].monitor_busy - cheap.variants[1].monitor_busy
    assert follower == pytest.approx(10 * carried, rel=0.05)
    leader = dear.variants[0].monitor_busy - cheap.variants[0].monitor_busy
    assert leader == pytest.approx(10 * carried, rel=0.15)  # the entries' bytes: the call's name and numbers too
    connectors = sum(c["busy_ns"] for c in dear.connectors.values()) - sum(
        c["busy_ns"] for c in cheap.connectors.values()
    )
    assert connectors == pytest.approx(2 * 10 * carried, rel=0.25)


def test_the_leader_runs_ahead_of_its_dearest_stage(tmp_path: Path) -> None:
    """On one CPU the pipeline's stages go at one pace and the queue forms
    in front of the dearest. Where the leader's monitor is (lighttpd's
    records alone: it waits for its own full ring while the CB stays near
    empty, as measured), the leader runs ahead by its ring alone; where a
    stage behind the CB is (a loop's runs: the follower's checking), by
    the CB too."""
    from sim.calibration import _ahead_in_process

    trace = _server_trace(tmp_path / "server.jsonl", 100)
    ring = 1 << 20
    record = 96 + (12 + 20 + 90 + 4200) / 5  # a request's five records, on average
    dear_leader = _replayed(_with_dipmon(tmp_path, drain_ns=60000.0, alone_ns=30000.0), trace)
    assert _ahead_in_process(dear_leader, 4096, ring) == int(ring // record)
    dear_follower = _replayed(_with_dipmon(tmp_path, drain_ns=1000.0, alone_ns=30000.0), trace)
    assert _ahead_in_process(dear_follower, 4096, ring) == int(ring // record) + 4096


def test_the_server_row_takes_the_measured_runs_calls_a_request(tmp_path: Path) -> None:
    """A recorded run goes slower than the measured ones, and lighttpd's mix
    moves with its pace (~13.3 calls a request recorded under dmvx, ~14.5
    measured): what MVX adds a request is taken in the proportion of the
    measured run's calls a request to the trace's."""
    from realmode.lighttpd_local import _leader_calls
    from sim.calibration import predict_server

    path = _with_dipmon(tmp_path, alone_ns=30000.0)
    trace = _server_trace(tmp_path / "server.jsonl", 100)  # 501 calls of the leader, 100 requests
    places = placement(make_policy("dmvx"), 2, "auto", in_process=True)
    own, _ = predict_server(path, trace, "dmvx", places)
    same, _ = predict_server(path, trace, "dmvx", places, 0, 5.01)
    double, _ = predict_server(path, trace, "dmvx", places, 0, 10.02)
    assert same == pytest.approx(own) and double == pytest.approx(2 * own)
    # dmvx run --json's count, as the check reads it from each measured run.
    assert _leader_calls('{"variants": [{"executed": 21839}, {"executed": 1498}]}') == 21839
    assert _leader_calls("") is None and _leader_calls('{"variants": []}') is None


def test_the_ptrace_paths_bytes_are_measured_on_dmon(tmp_path: Path) -> None:
    """dmon's monitors and CONNECTORs spend on each byte a record carries
    what dmon's runs of ``alternate_read`` cost more than ``alternate``'s
    (~40-80 and ~12-40 ns at load ~13), where the profile had the vm's copy
    (0.5 ns) and frames over loopback (~1 ns): a lighttpd request carries
    ~8.6 KB, so its dmon row now pays for them."""
    from realmode.orchestrator import placement as placed
    from sim.calibration import predict_server

    m = _measurements()
    plain = tmp_path / "plain.yml"
    cal.write_profile(cal.profile_document(m), plain, m)
    assert load_profile(str(plain)).copy_per_byte == pytest.approx(0.5)  # the vm's, not measured
    m.dmon_alternate = cal.RoleCosts((400000.0, 380000.0), (250000.0, 270000.0))
    extra = cal.ALTERNATE_READ_BYTES
    m.dmon_alternate_read = cal.RoleCosts(
        (400000.0 + 40 * extra, 380000.0 + 40 * extra), (250000.0 + 12 * extra, 270000.0 + 20 * extra)
    )
    measured = tmp_path / "bytes.yml"
    cal.write_profile(cal.profile_document(m), measured, m)
    profile = load_profile(str(measured))
    assert profile.copy_per_byte == pytest.approx(40) and profile.compare_per_byte == pytest.approx(40)
    assert (profile.send_per_byte, profile.receive_per_byte) == (pytest.approx(12), pytest.approx(20))
    trace = _server_trace(tmp_path / "server.jsonl", 50)
    places = placed(make_policy("dmon"), 2, "auto")
    cheap, _ = predict_server(plain, trace, "dmon", places)
    dear, _ = predict_server(measured, trace, "dmon", places)
    carried = 12 + 20 + 90 + 4200  # a request's bytes
    assert dear - cheap > carried * (40 + 12) / 1000  # the leader's monitor and CONNECTOR at least


def test_the_programs_own_time_is_not_the_monitors(tmp_path: Path) -> None:
    """A variant's monitor reaps its program, so its CPU counts the
    program's; sim charges the program's calls (native and the wrapper) on
    the program's own timeline and CPU -- the leader's is not the monitors'
    -- so the profile takes each loop's program time a call off both
    monitors' figures (counted twice, sim had getpid's dmvx row +64%)."""
    m = _measurements()
    m.dipmon = cal.DipmonCosts(
        call=300.0,
        monitor=(3000.0, 4800.0),
        connector=(300.0, 250.0),
        monitor_alone=(21000.0, 18000.0),
        connector_alone=(760.0, 750.0),
        monitor_bytes=(31000.0 + 1000.0, 34000.0 + 1000.0),
        connector_bytes=(9800.0, 6400.0),
        program=(400.0, 450.0, 1450.0),
    )
    dipmon = cal.profile_document(m)["dipmon"]
    assert (dipmon["drain"], dipmon["follow"]) == ("2.6us", "4.4us")
    # A record alone less one in a run, each less its loop's program.
    assert (dipmon["drain_run"], dipmon["follow_run"]) == ("17.95us", "13.15us")
    # alternate_read's program pays a 4 KiB read every other call (1 us more a call): not the monitors' bytes.
    per_byte = (31000.0 + 1000.0 - 1450.0 - (21000.0 - 450.0)) / cal.ALTERNATE_READ_BYTES
    assert load_profile(str(_written(tmp_path, m))).dipmon.drain_per_byte == pytest.approx(  # type: ignore[union-attr]
        round(per_byte, 3) if per_byte < 1 else round(per_byte)
    )


def _written(tmp_path: Path, m: cal.Measurements) -> Path:
    path = tmp_path / "written.yml"
    cal.write_profile(cal.profile_document(m), path, m)
    return path


def test_the_check_compares_slowdown_with_slowdown() -> None:
    """Sim's slowdown is its run over its own native run of the loop, the
    measured one real mode's over the native run of its round: a load that
    made every call twice as dear between the profile's measuring and the
    check (native and traced alike) moves neither, where a slowdown taken
    against the check's native counted it as sim's error (-50%). The server
    row's added time goes at the microbenchmarks' median scale."""
    from dmvx.calibration import MeasuredCall, MeasuredServer, Predicted, RealMeasurements, check_rows

    places = {"dmvx": [(0, 1, 1), (1, 1, 1)]}

    def rows(load: float) -> list:
        real = RealMeasurements(
            [MeasuredCall("getpid", "dmvx", 40000, 0.1 * load, 4.0 * load)],
            MeasuredServer(100.0 * load, {"dmvx": Path("t.jsonl")}, {"dmvx": 300.0 * load}, {"dmvx": 1500}),
            places,
        )
        return check_rows(real, lambda asks: [Predicted(4.0, "cpu 1", 0.1), Predicted(200.0, "cpu 1")])

    for load in (1.0, 2.0, 7.5):
        getpid, server = rows(load)
        assert getpid.scale == pytest.approx(load) and getpid.error == pytest.approx(0.0)
        assert server.scale == pytest.approx(load) and server.error == pytest.approx(0.0), load
    # Sim's native not given (a trace's, or an older sim): its figure as it is.
    real = RealMeasurements([MeasuredCall("getpid", "dmvx", 40000, 0.2, 8.0)], None, places)
    (row,) = check_rows(real, lambda asks: [Predicted(4.0, "cpu 1")])
    assert row.scale == 1.0 and row.error == pytest.approx(-0.5)


def test_native_calls_are_measured_in_cpu_time(tmp_path: Path) -> None:
    """The profile's native costs are the program's clock times the share of
    its CPU it had (CPU time over wall time), as real mode's processes are
    measured in CPU time: under load the clock counts others' time."""
    binary = microbench.build(str(tmp_path))
    ns, share = microbench.native_cpu_ns(binary, "getpid", 20000)
    assert ns > 0 and 0.0 < share <= 1.0
