"""Real machines in a topology (issue 16): ``ssh:`` hosts, the check before a
run (``dmvx doctor --topology FILE``) and ``dmvx real`` refusing a failed one.

The judging rules are tested as plain values; the SSH side against stand-in
machines (:mod:`ssh_machines`: Debian's sshd in network namespaces, keys the
test makes), each fault ending with a clear line within 5 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dmvx import __version__
from dmvx.errors import InputError
from dmvx.hostcheck import HostFacts, SshAddress, arch_of_machine, judge
from dmvx.syscalls import Arch
from dmvx.topology import Topology, load_topology
from realmode import remote
from ssh_machines import Machine, machines, needs_sshd

DMVX = str(Path(sys.executable).with_name("dmvx"))

# --------------------------------------------------------------------------
# Addresses and topologies (no root).


@pytest.mark.parametrize(
    "text, want",
    [
        ("box", SshAddress("box")),
        ("me@box", SshAddress("box", "me")),
        ("me@10.0.0.2:2222", SshAddress("10.0.0.2", "me", 2222)),
        ("arm.example.org:22", SshAddress("arm.example.org", None, 22)),
    ],
)
def test_ssh_addresses_parse(text: str, want: SshAddress) -> None:
    assert SshAddress.parse(text) == want
    assert str(want) == text


@pytest.mark.parametrize("text", ["", "me@", "-oProxyCommand=sh", "me@box:0", "me@box:99999", "a b", "me@-box"])
def test_bad_ssh_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        SshAddress.parse(text)


def test_ssh_argv_is_batch_mode_and_carries_no_secret() -> None:
    argv = remote.ssh_argv(SshAddress("box", "me", 2222), ["dmvx", "agent"], config="/tmp/cfg")
    assert argv[:2] == ["ssh", "-o"] and "BatchMode=yes" in argv and argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-F") + 1] == "/tmp/cfg"
    # The destination comes after "--": a host name can never be read as an option.
    assert argv[-3:] == ["--", "me@box", "dmvx agent"]


def _topology(hosts: dict[str, dict[str, object]]) -> Topology:
    return Topology.model_validate({"name": "t", "hosts": hosts, "switches": [], "links": []})


def test_a_topology_of_machines_needs_no_links() -> None:
    topo = _topology(
        {
            "x86": {"role": "variant", "ssh": "me@x86box"},
            "arm": {"role": "variant", "arch": "aarch64", "ssh": "me@armboard:2222", "dmvx": "/opt/dmvx/bin/dmvx"},
        }
    )
    assert topo.machines() == {"x86": SshAddress("x86box", "me"), "arm": SshAddress("armboard", "me", 2222)}
    assert topo.hosts["arm"].dmvx == "/opt/dmvx/bin/dmvx"


@pytest.mark.parametrize(
    "host, needle",
    [
        ({"role": "client", "ssh": "me@box"}, "a client host cannot be a machine reached over SSH"),
        ({"role": "variant", "dmvx": "/opt/dmvx"}, "dmvx is given without ssh"),
        ({"role": "variant", "ssh": "me@box; rm -rf /"}, "should match pattern"),
    ],
)
def test_bad_machine_hosts_are_one_clear_line(tmp_path: Path, host: dict[str, object], needle: str) -> None:
    path = tmp_path / "t.yml"
    hosts = {"h1": host, "h2": {"role": "variant", "ssh": "h2box"}}
    path.write_text(yaml.safe_dump({"hosts": hosts}))
    with pytest.raises(InputError, match=r"t\.yml") as caught:
        load_topology(path)
    assert needle in str(caught.value) and "\n" not in str(caught.value).strip()


# --------------------------------------------------------------------------
# Judging (no root).

GOOD = HostFacts(
    "h2",
    SshAddress("box", "me"),
    dmvx_version=__version__,
    machine="x86_64",
    kernel="6.1.0",
    uid=1000,
    ptrace_scope=1,
    seccomp_actions=("kill_process", "trap", "errno", "trace", "allow"),
    clock_offset=0.02,
    clock_uncertainty=0.1,
)


def _with(**changes: object) -> HostFacts:
    from dataclasses import replace

    return replace(GOOD, **changes)  # type: ignore[arg-type]


def test_a_good_host_has_no_problem() -> None:
    check = judge(GOOD, local_version=__version__)
    assert check.ok and check.arch is Arch.X86_64 and check.reachable and check.version_ok


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"dmvx_version": "0.0.9"}, f"dmvx 0.0.9, this one is {__version__}; install dmvx {__version__} there"),
        ({"dmvx_version": None}, "no dmvx at 'dmvx'; install dmvx"),
        ({"ptrace_scope": 3}, "ptrace is not permitted (kernel.yama.ptrace_scope=3)"),
        ({"ptrace_scope": 2}, "ptrace_scope=2); run as root there"),
        ({"seccomp_actions": ("kill_process", "errno")}, "cannot return SECCOMP_RET_TRACE"),
        ({"machine": "riscv64"}, "architecture riscv64 is not one dmvx knows"),
        ({"clock_offset": 4.0}, "clock +4.000 s off"),
        ({"clock_offset": None}, "its clock could not be read"),
    ],
)
def test_each_problem_is_one_line_naming_the_host_and_the_fix(changes: dict[str, object], needle: str) -> None:
    check = judge(_with(**changes), local_version=__version__)
    assert len(check.problems) == 1, check.problems
    assert check.problems[0].startswith("host h2 (me@box): ") and needle in check.problems[0]


def test_root_may_trace_under_scope_2_and_no_yama_is_fine() -> None:
    assert judge(_with(ptrace_scope=2, uid=0), local_version=__version__).ok
    assert judge(_with(ptrace_scope=None), local_version=__version__).ok


def test_clock_offset_within_its_uncertainty_is_not_a_problem() -> None:
    assert judge(_with(clock_offset=1.05, clock_uncertainty=0.1), local_version=__version__).ok


def test_the_agent_reported_machine_picks_the_arch() -> None:
    assert arch_of_machine("aarch64") is Arch.AARCH64 and arch_of_machine("arm64") is Arch.AARCH64
    assert arch_of_machine("x86_64") is Arch.X86_64 and arch_of_machine("i686") is Arch.I386
    assert judge(_with(machine="aarch64"), local_version=__version__).arch is Arch.AARCH64


@pytest.mark.parametrize(
    "machine, declared, ok",
    [("aarch64", Arch.AARCH64, True), ("x86_64", Arch.I386, True), ("x86_64", Arch.AARCH64, False)],
)
def test_the_machine_must_run_the_arch_the_topology_gives_it(machine: str, declared: Arch, ok: bool) -> None:
    check = judge(_with(machine=machine), local_version=__version__, declared=declared)
    assert check.ok is ok
    if not ok:
        assert check.problems == (
            "host h2 (me@box): the topology says aarch64, the machine is x86_64; "
            "set arch: x86_64 for it, or point ssh: at an aarch64 machine",
        )


def test_an_unreachable_host_is_one_problem() -> None:
    check = judge(HostFacts("h2", SshAddress("box"), error="Permission denied (publickey)."), local_version="1")
    assert check.problems == ("host h2 (box): unreachable over SSH: Permission denied (publickey).",)


# --------------------------------------------------------------------------
# Stand-in machines (root: network namespaces and sshd).


def _machine_topology(path: Path, hosts: dict[str, dict[str, object]]) -> Path:
    """A topology file: the given variant machines and an emulated client."""
    all_hosts = {**hosts, "h3": {"role": "client"}}
    path.write_text(yaml.safe_dump({"name": "machines", "hosts": all_hosts, "switches": [], "links": []}))
    return path


def _dmvx(*args: str, config: Path, timeout: float = 30) -> tuple[subprocess.CompletedProcess[str], float]:
    env = dict(os.environ, **{remote.SSH_CONFIG_ENV: str(config)})
    started = time.monotonic()
    done = subprocess.run([DMVX, *args], capture_output=True, text=True, env=env, timeout=timeout)
    return done, time.monotonic() - started


def _variant(machine: str, dmvx: str = DMVX) -> dict[str, object]:
    return {"role": "variant", "ssh": machine, "dmvx": dmvx}


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Three stand-in machines for the module (m0 and m1 take the test's key,
    m2 refuses it); their ssh configuration's directory. One set for all the
    tests: fewer sshd start-ups, and namespaces that other tests running on
    the machine meanwhile have seen before they check for strays."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    directory = tmp_path_factory.mktemp("machines")
    with machines(directory, 3, refuse=frozenset({2})) as made:
        _made.extend(made)
        yield directory
        _made.clear()


_made: list[Machine] = []


@pytest.fixture
def machines_up(stand_ins: Path) -> Path:
    """The stand-ins, each sshd started again if something ended it."""
    for machine in _made:
        machine.revive()
    return stand_ins


@needs_sshd
@pytest.mark.root
def test_doctor_checks_each_machine_over_ssh(tmp_path: Path, machines_up: Path) -> None:
    topo = _machine_topology(tmp_path / "t.yml", {"h1": _variant("m0"), "h2": _variant("m1")})
    done, _ = _dmvx("doctor", "--topology", str(topo), "--json", config=machines_up / "ssh_config")
    assert done.returncode == 0, done.stdout
    report = json.loads(done.stdout)
    assert report["ok"] and [h["host"] for h in report["hosts"]] == ["h1", "h2"]
    for host in report["hosts"]:
        assert host["reachable"] and host["version_ok"] and host["dmvx_version"] == __version__
        assert host["arch"] == "x86_64" and host["seccomp_ok"] and host["ptrace_ok"] and host["clock_ok"]
        assert abs(host["clock_offset_s"]) < 1
    # And for people: one table.
    done, _ = _dmvx("doctor", "--topology", str(topo), config=machines_up / "ssh_config")
    assert done.returncode == 0 and "dmvx doctor: the machines of" in done.stderr and "problem" not in done.stderr


@needs_sshd
@pytest.mark.root
def test_a_host_refusing_the_key_fails_the_check_and_real_refuses_within_5_s(tmp_path: Path, machines_up: Path) -> None:
    topo = _machine_topology(tmp_path / "t.yml", {"h1": _variant("m0"), "h2": _variant("m2")})
    done, took = _dmvx("doctor", "--topology", str(topo), config=machines_up / "ssh_config")
    assert done.returncode == 4 and took < 5, (done.returncode, took)
    problems = [line for line in done.stderr.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and problems[0].startswith("problem: host h2 (m2): unreachable over SSH: root@10")
    assert "Permission denied (publickey)" in problems[0]
    done, took = _dmvx("real", "--topology", str(topo), config=machines_up / "ssh_config")
    assert done.returncode == 4 and took < 5, (done.returncode, took, done.stderr)
    assert "not starting: host h2 (m2): unreachable over SSH" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@needs_sshd
@pytest.mark.root
def test_a_host_with_another_dmvx_version_fails_the_check_within_5_s(tmp_path: Path, machines_up: Path) -> None:
    # The old dmvx is on the machine: in the stand-ins' shared directory,
    # which each sees at /mnt (their /tmp is their own).
    other = machines_up / "old-dmvx"
    other.write_text("#!/bin/sh\necho 'dmvx 0.0.9'\n")
    other.chmod(0o755)
    topo = _machine_topology(tmp_path / "t.yml", {"h1": _variant("m0"), "h2": _variant("m1", "/mnt/old-dmvx")})
    done, took = _dmvx("doctor", "--topology", str(topo), config=machines_up / "ssh_config")
    assert done.returncode == 4 and took < 5
    assert f"problem: host h2 (m1): dmvx 0.0.9, this one is {__version__}; install dmvx {__version__} there" in (
        done.stderr
    )
    done, took = _dmvx("real", "--topology", str(topo), config=machines_up / "ssh_config")
    assert done.returncode == 4 and took < 5 and "dmvx 0.0.9" in done.stderr


@pytest.mark.root
def test_real_refuses_variants_split_between_machines_and_emulated_hosts(tmp_path: Path) -> None:
    """The variants of one run are all machines or all emulated: one line,
    status 5, before any SSH session is opened."""
    if os.geteuid() != 0:
        pytest.skip("dmvx real needs root")
    path = tmp_path / "t.yml"
    hosts = {"h1": {"role": "variant", "ssh": "nowhere.invalid"}, "h2": {"role": "variant"}, "h3": {"role": "client"}}
    links = [{"a": "h2", "b": "h3"}]
    path.write_text(yaml.safe_dump({"name": "split", "hosts": hosts, "switches": [], "links": links}))
    done, _ = _dmvx("real", "--topology", str(path), config=tmp_path / "none")
    assert done.returncode == 5, done.stderr
    assert done.stderr.strip() == (
        "dmvx real: split: variant hosts h1 are machines and h2 emulated; the variants of one run are all on "
        "machines reached over SSH or all emulated"
    )


def test_a_connectors_hello_names_its_machines_arch() -> None:
    # The arch a host reports is its own (uname -m), not a fixed x86_64:
    # an agent on an aarch64 board says aarch64.
    from realmode import connector

    assert connector.HOST_ARCH is arch_of_machine(os.uname().machine)
