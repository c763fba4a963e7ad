"""``dmvx suite --mode real --topology`` on machines reached over SSH (issue
16, item 4): the attack suite of ``scenarios/attacks`` with its variants on
two stand-in machines (:mod:`ssh_machines`), each cell ending as the same
cell ends on emulated hosts -- the files' ``expect.real``, which
tests/test_attacks_real.py holds the emulated cells to -- the cells that
cannot run on machines skipped with their reason, and nothing left on
either machine. The CONNECTOR stream attacks run from this machine, which
is the stand-ins' switch (their bridge): an attacker on their segment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dmvx.scenario import NotRun, load_scenario
from realmode import remote
from ssh_machines import Machine, needs_sshd, stand_ins_fixture  # noqa: F401 (the fixture stand_ins)
from test_ssh_runs import _assert_clean

DMVX = str(Path(sys.executable).with_name("dmvx"))
ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ROOT / "scenarios" / "attacks"

pytestmark = [needs_sshd, pytest.mark.root]


def _topology(path: Path) -> Path:
    """The attack lab's hosts with the leader and follower (h1, h2) on the
    machines; the aarch64 host (h3, for the ISA cells, which real mode
    skips) and the attacker (h4) as in scenarios/attacks/topologies."""
    hosts = {
        "h1": {"role": "variant", "arch": "x86_64", "ssh": "m0", "dmvx": DMVX},
        "h2": {"role": "variant", "arch": "x86_64", "ssh": "m1", "dmvx": DMVX},
        "h3": {"role": "variant", "arch": "aarch64"},
        "h4": {"role": "attacker", "arch": "x86_64"},
    }
    links = [{"a": "h3", "b": "s1"}, {"a": "h4", "b": "s1"}]
    path.write_text(yaml.safe_dump({"name": "lab-machines", "hosts": hosts, "switches": ["s1"], "links": links}))
    return path


def _suite(target: Path, topology: Path, config: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = dict(os.environ, **{remote.SSH_CONFIG_ENV: str(config)})
    started = time.monotonic()
    done = subprocess.run(
        [DMVX, "suite", str(target), "--mode", "real", "--topology", str(topology), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=1200,
    )
    return done, time.monotonic() - started


def _expected_cells() -> dict[tuple[str, str], dict[str, object] | str]:
    """Every (attack, setting) of the suite: its ``expect.real`` (verdict,
    kind, effect), or the file's reason to skip it."""
    out: dict[tuple[str, str], dict[str, object] | str] = {}
    for path in sorted(ATTACKS.glob("*.yml")):
        scenario = load_scenario(path)
        for setting in scenario.diversity or {}:
            wanted = scenario.with_values({"setting": setting}).expectation("real")
            key = (scenario.name or path.stem, setting)
            if isinstance(wanted, NotRun):
                out[key] = wanted.skip
            else:
                assert wanted is not None
                kind = wanted.kind.value if wanted.kind else None
                out[key] = {"verdict": wanted.verdict, "kind": kind, "effect": wanted.effect}
    return out


#: What cannot run with the variants on machines, and why.
NOT_ON_MACHINES = {"record-forgery": "a forged in-process ring record is run by dmvx run --in-process on"}


def test_the_attack_suite_on_machines_finds_what_emulated_hosts_find(
    tmp_path: Path, stand_ins: tuple[Path, list[Machine]]
) -> None:
    directory, made = stand_ins
    for machine in made:
        machine.revive()
    done, took = _suite(ATTACKS, _topology(tmp_path / "t.yml"), directory / "ssh_config")
    report = json.loads(done.stdout)
    cells = {(c["attack"], c["setting"]): c for c in report["cells"]}
    table = "\n".join(
        f"{a:18} {s:9} {c['skip'] or c['outcome']} {c['verdict'] or ''} effect={c['effect']} {c['error'] or ''}"
        for (a, s), c in sorted(cells.items())
    )
    print(f"suite on machines: {took:.0f} s\n{table}")
    assert done.returncode == 0, (done.stderr[-2000:], table)
    assert not report["errors"], report["errors"]
    expected = _expected_cells()
    assert set(cells) == set(expected), set(cells) ^ set(expected)
    ran = 0
    for key, wanted in expected.items():
        cell = cells[key]
        attack, _ = key
        if isinstance(wanted, str):  # the file's own skip: an aarch64 follower
            assert cell["skip"] == wanted, cell
        elif attack in NOT_ON_MACHINES:
            assert cell["skip"] is not None and NOT_ON_MACHINES[attack] in cell["skip"], cell
        else:
            ran += 1
            assert cell["error"] is None and cell["skip"] is None, cell
            found = {"verdict": cell["outcome"], "kind": cell["verdict"], "effect": cell["effect"]}
            assert found == wanted, (key, found, wanted, cell["detail"])
            assert cell["details"]["run_id"], cell
            if cell["verdict"] in ("auth-failure", "output-mismatch", "crash", "arg-mismatch", "call-mismatch"):
                assert cell["latency_s"] is not None and cell["latency_s"] < 1.0, cell
            _assert_clean(made, cell["details"]["run_id"])
    assert ran == 28, ran  # 5 exploits and 2 CONNECTOR stream attacks x 4 settings
    _assert_clean(made, None)


def test_a_machine_failing_the_check_stops_the_suite_before_anything_runs(
    tmp_path: Path, stand_ins: tuple[Path, list[Machine]]
) -> None:
    """The suite checks the topology's machines as ``dmvx real`` does, once,
    before any cell: an unreachable one is status 4, one line naming it."""
    directory, made = stand_ins
    for machine in made:
        machine.revive()
    topo = _topology(tmp_path / "t.yml")
    topo.write_text(topo.read_text().replace("ssh: m1", "ssh: nowhere.invalid"))
    done, took = _suite(ATTACKS / "stack-overflow.yml", topo, directory / "ssh_config")
    assert done.returncode == 4, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "not starting: host h2 (nowhere.invalid): unreachable over SSH" in last, last
    assert "real: " not in done.stderr and took < 15, (done.stderr, took)
    _assert_clean(made, None)


def test_the_format_string_study_runs_in_a_network_namespace_of_its_own(tmp_path: Path) -> None:
    """With machines nothing is emulated: the attacker's study of the
    format-string build (which slot prints a code pointer) runs the build in
    a network namespace of its own, and finds the slot the study on an
    emulated host finds (the slot is a property of the build)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (a network namespace)")
    from dmvx.scenario import VariantSpec
    from realmode.vuln import study
    from realmode.vuln.build import build_variants
    from realmode.vuln.exploits import PROGRAM

    (build,) = build_variants(PROGRAM["format-string"], [VariantSpec(host="h1")])
    copy = tmp_path / "format_string"  # no cached slot beside it
    copy.write_bytes(Path(build.path).read_bytes())
    copy.chmod(0o755)
    slot = study.leak_slot(str(copy), None, "h1")
    assert 1 <= slot <= 400
    cached = Path(build.path + ".callback-slot")
    if cached.is_file():
        assert slot == int(cached.read_text())
