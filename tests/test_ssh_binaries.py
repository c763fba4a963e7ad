"""Heterogeneous ISAs over SSH (issue 16, item 5), without aarch64 hardware:
the architecture comes from the agent's hello, the program each host runs is
chosen by it (:mod:`dmvx.binaries`), and the attack table's ISA cells say
they need a real aarch64 host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from dmvx.binaries import choose_program
from dmvx.exitstatus import EnvironmentProblem
from dmvx.hostcheck import SshAddress
from dmvx.policy import Policy
from dmvx.suitefiles import read_suite
from dmvx.syscalls import Arch
from dmvx.topology import Topology
from realmode.net import runs
from realmode.net.ssh_agents import SshAgents

DMVX = str(Path(sys.executable).with_name("dmvx"))
ROOT = Path(__file__).resolve().parent.parent
ARM = {Arch.AARCH64: {"net_server": "/home/me/arm/net_server", "lighttpd": "/opt/arm/sbin/lighttpd"}}


def test_the_topology_names_a_program_per_architecture() -> None:
    choice = choose_program("arm", "net_server", "/tmp/cache/net_server-1a2b", Arch.AARCH64, Arch.X86_64, ARM)
    assert (choice.path, choice.ship, choice.rule) == ("/home/me/arm/net_server", False, "binaries")


def test_a_program_built_here_goes_to_a_machine_of_this_architecture() -> None:
    choice = choose_program("x86", "net_server", "/tmp/cache/net_server-1a2b", Arch.X86_64, Arch.X86_64, ARM)
    assert (choice.path, choice.ship, choice.rule) == ("/tmp/cache/net_server-1a2b", True, "shipped")


def test_a_system_program_runs_from_the_machines_own_installation() -> None:
    choice = choose_program("arm", "lighttpd", "/usr/sbin/lighttpd", Arch.AARCH64, Arch.X86_64, {})
    assert (choice.path, choice.ship, choice.rule) == ("/usr/sbin/lighttpd", False, "system")


def test_a_build_of_this_architecture_is_refused_on_another_in_one_line() -> None:
    with pytest.raises(EnvironmentProblem) as caught:
        choose_program("arm", "net_server", "/tmp/cache/net_server-1a2b", Arch.AARCH64, Arch.X86_64, {})
    assert str(caught.value) == (
        "dmvx real: host arm is aarch64 and net_server here is built for x86_64; build it there and name it "
        "in the topology: binaries: {aarch64: {net_server: PATH}}"
    )


def test_a_topology_reads_binaries_per_architecture() -> None:
    topo = Topology.model_validate(
        {
            "name": "x86-arm",
            "hosts": {
                "x86": {"role": "variant", "ssh": "me@x86box"},
                "arm": {"role": "variant", "arch": "aarch64", "ssh": "me@armboard:2222"},
                "client": {"role": "client"},
            },
            "binaries": {"aarch64": {"net_server": "/home/me/arm/net_server"}},
        }
    )
    assert topo.binaries == {Arch.AARCH64: {"net_server": "/home/me/arm/net_server"}}


def _agents(tmp_path: Path, machines: dict[str, str], binaries: dict[Arch, dict[str, str]]) -> SshAgents:
    program = tmp_path / "net_server-1a2b"
    program.write_bytes(b"\x7fELF" + b"\0" * 14 + (62).to_bytes(2, "little"))  # an x86-64 ELF header
    agents = SshAgents(
        ["x86", "arm"],
        {"x86": SshAddress("x86box", "me"), "arm": SshAddress("armboard", "me")},
        {},
        [[str(program), "8080"], [str(program), "8080"]],
        ["net_server", "net_server"],
        Policy.preset("dmvx"),
        "abcde",
        runs.RunState("abcde"),
        binaries=binaries,
    )
    agents.machines = dict(machines)
    return agents


def test_each_host_gets_the_program_of_the_architecture_its_agent_reported(tmp_path: Path) -> None:
    # As if the agents' hellos had said x86_64 and aarch64 (uname -m on each machine).
    agents = _agents(tmp_path, {"x86": "x86_64", "arm": "aarch64"}, ARM)
    configs = [agents._config(SimpleNamespace(agent=a, who=f"host {a.host}")) for a in agents.variants]  # type: ignore[arg-type]
    assert configs[0].program == str(tmp_path / "net_server-1a2b") and len(configs[0].shipped) == 1
    assert configs[1].program == "/home/me/arm/net_server" and configs[1].shipped == []
    assert configs[1].argv == ["/home/me/arm/net_server", "8080"]
    # Different ISAs: the monitors compare from each program's entry point.
    assert configs[0].compare_from == configs[1].compare_from == "entry"
    # Neither the key nor this machine's environment travels in a configuration.
    assert set(configs[1].env) == {"PATH", "LC_ALL", runs.ENV}


def test_two_x86_machines_compare_from_execve(tmp_path: Path) -> None:
    agents = _agents(tmp_path, {"x86": "x86_64", "arm": "x86_64"}, {})
    assert agents.compare_from == "exec"


def test_an_aarch64_machine_without_a_binaries_entry_is_one_line_naming_it(tmp_path: Path) -> None:
    agents = _agents(tmp_path, {"x86": "x86_64", "arm": "aarch64"}, {})
    with pytest.raises(EnvironmentProblem, match=r"^dmvx real: host arm is aarch64 and net_server here"):
        agents._config(SimpleNamespace(agent=agents.variants[1], who="host arm"))  # type: ignore[arg-type]


def test_the_agent_reports_its_machines_architecture_in_its_hello() -> None:
    """``dmvx agent`` as ssh starts it, minus ssh: its first line names
    ``uname -m``; its stdin closing ends it with nothing started."""
    agent = subprocess.run([DMVX, "agent"], input=b"", capture_output=True, timeout=30)
    hello = json.loads(agent.stdout.splitlines()[0])
    assert hello["event"] == "hello" and hello["machine"] == os.uname().machine
    assert agent.returncode == 0, agent.stderr


def test_the_isa_attack_cells_need_a_real_aarch64_host() -> None:
    from realmode.suite import run_point

    skipped = []
    for found in read_suite(ROOT / "scenarios" / "attacks"):
        scenario = found.scenario
        assert scenario is not None, found.error
        if scenario.diversity is None:
            continue
        for values, point in scenario.sweep_points():
            arches = {v.arch or point.topo.hosts[v.host].arch for v in point.variants or []}
            if Arch.AARCH64 in arches:
                cell = run_point(str(found.path), point, str(values))  # a skipped point runs nothing
                skipped.append(cell.skip)
    assert skipped and set(skipped) == {"an aarch64 variant needs a real aarch64 host"}


def test_an_agent_of_another_version_refuses_its_configuration_in_one_line() -> None:
    """The configuration and the key come down stdin; an agent whose dmvx is
    not the orchestrator's says so and starts nothing."""
    from dmvx import __version__
    from realmode.net.remote_agent import AgentConfig, config_message

    config = AgentConfig(
        version="0.0.9",
        run_id="abcde",
        hello_id="0" * 16,
        index=1,
        n_variants=2,
        policy={},
        program="/bin/true",
        argv=["/bin/true"],
        env={},
        stall_timeout=2.0,
        compare_from="exec",
        port=61000,
        leader=("10.0.0.1", 61000),
    )
    agent = subprocess.run(
        [DMVX, "agent"], input=config_message(config) + bytes(range(32)), capture_output=True, timeout=30
    )
    lines = [json.loads(line) for line in agent.stdout.splitlines()]
    assert [line["event"] for line in lines] == ["hello", "error"]
    assert lines[1]["message"] == f"dmvx {__version__} here, the orchestrator's is 0.0.9"
    assert agent.returncode == 4
