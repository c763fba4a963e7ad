"""Cost profiles: the shipped ones load, bad ones get one line naming the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmvx.errors import InputError
from sim.profile import load_profile, profile_names


def test_shipped_profiles_load() -> None:
    assert {"paper", "vm"} <= set(profile_names())
    paper = load_profile("paper")
    assert paper.native["getpid"] == 120
    assert paper.interception_costs("dmon") == dict.fromkeys(
        ("lockstep", "replicate", "local", "local-file", "predict"), paper.interception["ptrace"]
    )
    dmvx = paper.interception_costs("dmvx")
    assert dmvx["lockstep"] == paper.interception["ptrace"]
    assert dmvx["local"] == paper.interception["seccomp_untraced"]
    assert dmvx["replicate"] == dmvx["predict"] == paper.interception["in_process"]


def test_a_profile_extends_its_base() -> None:
    vm, paper = load_profile("vm"), load_profile("paper")
    assert vm.interception["ptrace"] == 15_000  # measured on this project's VMs: ~15 us per traced call
    assert vm.native["getpid"] == 142
    assert vm.mechanisms == paper.mechanisms  # not restated in vm.yml: taken from the base
    assert vm.server_compute == paper.server_compute


def test_native_cost_adds_per_byte() -> None:
    paper = load_profile("paper")
    assert paper.native_cost("read", 4096) == paper.native["read"] + round(paper.native_per_byte["read"] * 4096)
    assert paper.native_cost("no_such_call") == paper.native_default


def write(tmp_path: Path, text: str, name: str = "p.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unknown_name_suggests_a_close_one() -> None:
    with pytest.raises(InputError) as info:
        load_profile("papr")
    assert "did you mean 'paper'" in str(info.value)


def test_bad_value_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "base: paper\nmonitor:\n  compare: 5\n")
    with pytest.raises(InputError) as info:
        load_profile(str(path))
    text = str(info.value)
    assert text.startswith(f"{path}:3:")
    assert "monitor.compare" in text and "\n" not in text


def test_unknown_mechanism_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "base: paper\nmechanisms:\n  dmvx: {default: in_process, lockstep: ebpf}\n")
    with pytest.raises(InputError) as info:
        load_profile(str(path))
    assert "ebpf" in str(info.value) and f"{path}:3" in str(info.value)


def test_incomplete_profile_without_base(tmp_path: Path) -> None:
    path = write(tmp_path, "interception: {ptrace: 1us, in_process: 1ns, seccomp_untraced: 1ns}\n")
    with pytest.raises(InputError) as info:
        load_profile(str(path))
    assert str(info.value).startswith(f"{path}: cost profile 'p' lacks ")


def test_a_derived_profile_may_change_one_field(tmp_path: Path) -> None:
    path = write(tmp_path, "base: paper\nmonitor: {wakeup: 30us}\nnative: {calls: {getpid: 1us}}\n")
    derived, paper = load_profile(str(path)), load_profile("paper")
    assert derived.wakeup == 30_000 and derived.compare == paper.compare
    assert derived.native["getpid"] == 1000 and derived.native["read"] == paper.native["read"]
    assert derived.name == "p"


def test_base_cycle_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "base: ./b.yml\n", "a.yml")
    write(tmp_path, "base: ./a.yml\n", "b.yml")
    with pytest.raises(InputError) as info:
        load_profile(str(tmp_path / "a.yml"))
    assert "its own base" in str(info.value)


def test_receive_wakeup_defaults_to_the_wakeup_and_zero_is_a_value(tmp_path) -> None:
    from sim.profile import load_profile

    inherited = load_profile("vm")
    assert inherited.connector_receive_wakeup == inherited.connector_wakeup
    path = tmp_path / "zero.yml"
    path.write_text("name: zero\nbase: vm\nconnector:\n  receive_wakeup: 0ns\n")
    zero = load_profile(str(path))
    assert zero.connector_receive_wakeup == 0 and zero.connector_wakeup == inherited.connector_wakeup
