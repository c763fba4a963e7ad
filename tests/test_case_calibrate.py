"""dmvx calibrate (issue 7): the measured profile loads in sim and drives its predictions."""

from __future__ import annotations

from pathlib import Path

import pytest

from realmode import calibrate as cal
from sim.profile import load_profile


def _measurements(ptrace_ns: float) -> cal.Measurements:
    messages = cal.MessageCosts(send={64: 5000.0, 16384: 9000.0}, receive={64: 6000.0, 16384: 12000.0},
                                encode={64: 3000.0, 16384: 6000.0}, decode={64: 4000.0, 16384: 8000.0})
    return cal.Measurements(native={"getpid": 90.0, "read": 150.0, "getcwd": 190.0, "sched_yield": 210.0},
                            native_local=100.0, seccomp_untraced=10.0, ptrace=ptrace_ns, monitor_leader=3500.0,
                            monitor_follower=1700.0, wakeup=37000.0, messages=messages)


def test_written_profile_loads_with_the_measured_values(tmp_path: Path) -> None:
    m = _measurements(21000.0)
    path = tmp_path / "measured.yml"
    cal.write_profile(cal.profile_document(m), path, m)
    profile = load_profile(str(path))
    assert profile.native_cost("getpid") == 90
    assert profile.interception_costs("dmon")["lockstep"] == 21000
    assert profile.connector_wakeup_for("dmon") == 37000  # real mode's DMON goes through CONNECTORs


def test_prediction_follows_the_ptrace_cost(tmp_path: Path) -> None:
    predictions = []
    for ptrace_ns in (10000.0, 40000.0):
        m = _measurements(ptrace_ns)
        path = tmp_path / f"p{int(ptrace_ns)}.yml"
        cal.write_profile(cal.profile_document(m), path, m)
        predictions.append(cal.predict_us(path, "getpid", "dmvx", 500))
    assert predictions[0] > 10 and predictions[1] - predictions[0] > 25  # +30 us of stops per call shows


@pytest.mark.root
def test_component_measurements_are_positive(tmp_path: Path) -> None:
    binary = cal.build_bench(str(tmp_path))
    native = cal.native_ns(binary, "getpid", 20000)
    assert native > 0
    assert cal.ptrace_pair_ns(binary, 2000, native) > 1000  # a stop pair costs microseconds
    costs = cal.message_costs(sizes=(64, 4096), count=200)
    assert costs.send[64] > 0 and costs.receive[4096] > 0
