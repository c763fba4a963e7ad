"""Every exploit works when nothing watches (issue 6, item 2).

Each exploit is fired by scapy from the attacker host at its target built
as each variant a scenario attacks -- the identical, ASLR and disjoint
settings' leader builds and the ABI setting's i386 build -- running
natively (no monitors) on a variant host, and must reach its goal: the
shell it starts creates the marker file, or the secret, or a pointer into
the program, comes back. So when the suite says "detected", an attack that
works was stopped. The last tests fire bytes crafted for the x86-64 build at
the i386 build: what ABI diversity does to them, natively.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dmvx.scenario import Layout, VariantSpec
from dmvx.syscalls import Arch
from dmvx.topology import load_topology
from realmode.net import experiment as ex
from realmode.orchestrator import make_policy
from realmode.vuln import exploits
from realmode.vuln.build import Build, build_variants
from realmode.vuln.experiment import VulnExperiment
from test_net_support import needs_mininet

pytestmark = [pytest.mark.root, needs_mininet]

LAB = Path(__file__).resolve().parent.parent / "scenarios" / "attacks" / "topologies" / "attack-lab.yml"
#: The builds the attack scenarios attack (and the ABI setting's follower).
TARGETS = {
    "non-pie": VariantSpec(host="h1", arch=Arch.X86_64, layout=Layout(aslr=False, base=0x400000)),
    "pie": VariantSpec(host="h1", arch=Arch.X86_64),
    "disjoint-slot": VariantSpec(host="h1", arch=Arch.X86_64, layout=Layout(disjoint=True)),
    "i386-pie": VariantSpec(host="h1", arch=Arch.I386),
}


def _native(exploit: str, builds: list[Build], native_build: int = 0) -> dict:
    config = ex.Config(
        load_topology(LAB),
        make_policy("dmvx"),
        ["h1", "h2"],
        "h4",
        ex.Workload(requests=3),
        attack=ex.NetAttack("exploit", "h4", target=0),
        native=False,
        measure_rtt=False,
        timeout=20,
    )
    experiment = VulnExperiment(config, builds, exploit, native=True, native_build=native_build)
    result = experiment.run()
    report = result.attack
    assert report is not None and report["error"] is None, report
    assert report["injected"] == 1 and report["benign_answers"] == 2, report  # the service worked before
    return {**report, "secret": experiment.secret}


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("exploit", exploits.EXPLOITS)
def test_exploit_reaches_its_goal_natively(clean_check, exploit: str, target: str) -> None:
    builds = build_variants(exploits.PROGRAM[exploit], [TARGETS[target]])
    report = _native(exploit, builds)
    assert report["effect"] is True, report
    answer = report["answer"]
    if exploit == "struct-overflow":
        assert report["secret"] in answer
    elif exploit == "format-string":
        low, high = report["target_image"]
        assert any(low <= p < high for p in exploits.leaked_pointers(answer.encode()))
    else:
        # The program became the shell: it never answered.
        assert answer == ""


def test_data_only_bytes_for_x86_64_leave_the_i386_flag_alone(clean_check) -> None:
    builds = build_variants("struct_overflow", [TARGETS["pie"], TARGETS["i386-pie"]])
    report = _native("struct-overflow", builds, native_build=1)
    assert report["effect"] is False
    assert report["secret"] not in report["answer"] and "hello AAAAAAAAAAAAAAAA" in report["answer"]


def test_relative_bytes_for_x86_64_misfire_in_the_i386_build(clean_check) -> None:
    builds = build_variants("stack_overflow", [TARGETS["pie"], TARGETS["i386-pie"]])
    report = _native("partial-overwrite", builds, native_build=1)
    assert report["effect"] is False and report["native_status"] != 0
