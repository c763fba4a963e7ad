"""dmvx calibrate (issue 7): the measured profile loads in sim and drives its predictions."""

from __future__ import annotations

from pathlib import Path

import pytest

from realmode import calibrate as cal
from realmode import microbench
from realmode.orchestrator import make_policy, placement
from sim.calibration import predict as sim_predict
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
    assert link.send > 0 and link.receive > 0
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


def _with_dipmon(tmp_path: Path, call_ns: float = 300.0, drain_ns: float = 20000.0) -> Path:
    """A measured profile whose dipmon section says: a wrapped call costs the
    program ``call_ns``; the leader's monitor ``drain_ns`` a record beside it."""
    m = _measurements()
    m.dipmon = cal.DipmonCosts(call=call_ns, monitor=(drain_ns + 8500.0, 30000.0), connector=(5000.0, 6000.0))
    path = tmp_path / f"dipmon-{int(call_ns)}-{int(drain_ns)}.yml"
    cal.write_profile(cal.profile_document(m), path, m)
    return path


def _predict_in_process(path: Path, kind: str, iterations: int):
    from realmode.orchestrator import in_process_placement

    return sim_predict(path, kind, "dmvx", iterations, in_process_placement(placement(make_policy("dmvx"), 2, "auto")))


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
    which the path's runs and batches of hundreds do not pay per entry."""
    long = _predict_in_process(_with_dipmon(tmp_path), "getpid", 60000)
    measured = (20000 + 8500) + 30000 + 5000 + 6000  # drain, follow, each CONNECTOR (ns a record)
    assert long.bound == "cpu 1"
    assert long.cpus[1] == pytest.approx(measured / 1000, rel=0.1)


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
