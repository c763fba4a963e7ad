"""Attacks in sim mode: the diversity model, and the attack table of docs/attacks.md.

The diversity model only says how each variant reacts; these tests check
that the *monitors* then stop (or miss) the attack as the design's table
says, for each of the five diversity settings of scenarios/attack-table.yml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from dmvx.exitstatus import ExitStatus
from dmvx.syscalls import Arch
from sim import cli_entry
from sim.diversity import Reaction, VariantLayout, image_bases, reactions, setting_name

REPO = Path(__file__).resolve().parent.parent
QUIET = Console(file=open("/dev/null", "w"), width=200)  # noqa: SIM115
ATTACKS = ["rop-absolute", "pointer-leak", "relative-rop", "data-only", "connector-forgery", "connector-replay"]
SETTINGS = ["identical", "aslr", "disjoint", "abi:i386+x86_64", "isa:aarch64+x86_64"]

# The attack table (docs/attacks.md): which diversity stops which attack ("missed" where
# none of the settings' diversity applies; forged traffic is always refused).
EXPECTED = {
    "rop-absolute": ["missed", "divergence", "divergence", "divergence", "divergence"],
    "pointer-leak": ["missed", "divergence", "divergence", "divergence", "divergence"],
    "relative-rop": ["missed", "missed", "missed", "divergence", "divergence"],
    "data-only": ["missed", "missed", "missed", "divergence", "missed"],
    "connector-forgery": ["rejected"] * 5,
    "connector-replay": ["rejected"] * 5,
}

FIXED = VariantLayout(Arch.X86_64, aslr=False, base=0x400000, disjoint=False)
ASLR = VariantLayout(Arch.X86_64, aslr=True, base=None, disjoint=False)


def test_identical_layouts_react_alike() -> None:
    for kind in ("rop-absolute", "relative-rop", "data-only", "pointer-leak"):
        assert [r.reaction for r in reactions(kind, 0, [FIXED, FIXED], 1, {})] == [Reaction.SUCCEEDS] * 2


def test_absolute_addresses_fail_under_aslr_but_relative_ones_do_not() -> None:
    assert [r.reaction for r in reactions("rop-absolute", 0, [ASLR, ASLR], 1, {"x86_64": 28})] == [
        Reaction.SUCCEEDS,
        Reaction.CRASHES,
    ]
    assert [r.reaction for r in reactions("relative-rop", 0, [ASLR, ASLR], 1, {"x86_64": 28})] == [
        Reaction.SUCCEEDS,
        Reaction.SUCCEEDS,
    ]


def test_data_only_follows_the_data_model_not_the_isa() -> None:
    x86, i386 = ASLR, VariantLayout(Arch.I386, True, None, False)
    arm = VariantLayout(Arch.AARCH64, True, None, False)
    assert reactions("data-only", 0, [x86, i386], 1, {})[1].reaction is Reaction.DIFFERS
    assert reactions("data-only", 0, [x86, arm], 1, {})[1].reaction is Reaction.SUCCEEDS


def test_relative_code_reuse_in_another_abi_makes_the_call_without_its_arguments() -> None:
    from sim.profile import load_profile
    from sim.workload import UNREADABLE, attack_steps

    i386 = VariantLayout(Arch.I386, True, None, False)
    arm = VariantLayout(Arch.AARCH64, True, None, False)
    abi = reactions("relative-rop", 0, [ASLR, i386], 1, {})[1]
    assert abi.reaction is Reaction.DIFFERS
    assert reactions("relative-rop", 0, [ASLR, arm], 1, {})[1].reaction is Reaction.CRASHES
    steps, resume = attack_steps("relative-rop", abi, load_profile("vm"), 4)
    assert not resume and [s.call.name for s in steps if s.call] == ["execve"]
    assert steps[0].call is not None and steps[0].outcome is not None
    assert steps[0].call.args[1] == UNREADABLE and not steps[0].harmful and steps[0].outcome.result < 0
    assert steps[-1].end == ("exit", 127)


def test_leaked_pointers_differ_with_layout_and_width() -> None:
    leaks = reactions(
        "pointer-leak", 0, [ASLR, VariantLayout(Arch.I386, True, None, False)], 3, {"x86_64": 28, "i386": 8}
    )
    assert leaks[1].reaction is Reaction.DIFFERS
    assert len(leaks[0].leaked_pointer) == 2 + 16 + 1 and len(leaks[1].leaked_pointer) == 2 + 8 + 1


def test_layouts_are_seeded_and_disjoint_slots_never_overlap() -> None:
    bits = {"x86_64": 28}
    assert image_bases([ASLR, ASLR], 5, bits) == image_bases([ASLR, ASLR], 5, bits)
    assert image_bases([ASLR, ASLR], 5, bits) != image_bases([ASLR, ASLR], 6, bits)
    disjoint = VariantLayout(Arch.X86_64, True, None, True)
    a, b = image_bases([disjoint, disjoint], 5, bits)
    assert a >> 40 != b >> 40
    assert setting_name([disjoint, disjoint]) == "disjoint" and setting_name([FIXED, FIXED]) == "identical"


def test_zero_entropy_aslr_collides() -> None:
    # An attacker's dream: ASLR with no entropy is no diversity at all.
    r = reactions("rop-absolute", 0, [ASLR, ASLR], 1, {"x86_64": 0})
    assert [x.reaction for x in r] == [Reaction.SUCCEEDS, Reaction.SUCCEEDS]


@pytest.fixture(scope="module")
def table() -> dict[tuple[str, str], dict[str, Any]]:
    result = cli_entry.run(
        REPO / "scenarios" / "attack-table.yml",
        seed=None,
        plot=None,
        console=QUIET,
        overrides={"attack.kind": "[" + ", ".join(ATTACKS) + "]"},
    )
    assert result.exit_status is ExitStatus.ATTACK_MISSED  # some cells are misses, by design
    return {(p["labels"]["attack.kind"], p["diversity"]): p for p in result.to_json()["points"]}


@pytest.mark.parametrize("attack", ATTACKS)
def test_the_design_attack_table_comes_out_of_sim(table: dict[tuple[str, str], dict[str, Any]], attack: str) -> None:
    got = [table[(attack, setting)]["outcome"] for setting in SETTINGS]
    assert got == EXPECTED[attack]


def test_detected_attacks_report_latency_and_missed_ones_report_harm(
    table: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for (attack, setting), point in table.items():
        a = point["attack"]
        if point["outcome"] == "missed":
            assert a["detection"] is None and a["harmful_before_verdict"], (attack, setting)
        else:
            assert a["detected"] and a["detection"]["time_ns"] > 0, (attack, setting)
    # A lockstep execve never runs before the verdict; the crash gives it away.
    rop = table[("rop-absolute", "aslr")]
    assert rop["verdict"]["kind"] == "crash" and not rop["attack"]["harmful_before_verdict"]
    forged = table[("connector-forgery", "aslr")]
    assert forged["verdict"]["kind"] == "auth-failure" and "refused a frame" in forged["verdict"]["detail"]


def test_asynchronous_replication_lets_a_leak_out_before_the_verdict() -> None:
    # Pinning the swept attack kind leaves the one sweep over variants.
    base = {"attack.kind": "pointer-leak", "sweep.values": "[[{host: h1}, {host: h2}]]"}
    dmvx = (
        cli_entry.run(REPO / "scenarios" / "attack-table.yml", seed=None, plot=None, console=QUIET, overrides=base)
        .points[0]
        .to_json()
    )
    dmon = (
        cli_entry.run(
            REPO / "scenarios" / "attack-table.yml",
            seed=None,
            plot=None,
            console=QUIET,
            overrides={**base, "policy.preset": "dmon"},
        )
        .points[0]
        .to_json()
    )
    assert dmvx["verdict"]["kind"] == dmon["verdict"]["kind"] == "output-mismatch"
    assert dmvx["attack"]["harmful_before_verdict"]  # the leader wrote the pointer out already
    assert not dmon["attack"]["harmful_before_verdict"]  # DMON compared the write before it ran
    assert dmvx["attack"]["detection"]["leader_calls"] > dmon["attack"]["detection"]["leader_calls"]


def test_expectations_decide_the_exit_status(tmp_path: Path) -> None:
    text = (REPO / "scenarios" / "attack-table.yml").read_text()
    ok = tmp_path / "ok.yml"
    ok.write_text(text + "expect:\n  verdict: divergence\n  kind: crash\n")
    result = cli_entry.run(
        ok,
        seed=None,
        plot=None,
        console=QUIET,
        overrides={"attack.kind": "rop-absolute", "sweep.values": "[[{host: h1}, {host: h2}]]"},
    )
    assert result.exit_status is ExitStatus.OK
    result = cli_entry.run(
        ok,
        seed=None,
        plot=None,
        console=QUIET,
        overrides={
            "attack.kind": "rop-absolute",
            "sweep.values": "[[{host: h1, layout: {aslr: false}}, {host: h2, layout: {aslr: false}}]]",
        },
    )
    assert result.exit_status is ExitStatus.ATTACK_MISSED
    assert result.points[0].as_expected is False
