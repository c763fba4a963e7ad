"""``dmvx validate`` on a scenario with diversity settings (the attack files):
its summary counts the settings, their variants and what each mode expects,
where it used to say ``0 variants``."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmvx.scenario import load_scenario
from dmvx.validate import validate_file
from dmvx.yamlfile import SOURCE_ROOT

ATTACK_FILES = sorted((SOURCE_ROOT / "scenarios" / "attacks").glob("*.yml"))

SETTINGS = """\
name: settings
topology: three-variant
workload: {kind: microbench, call: getpid, iterations: 100}
attack: {kind: rop-absolute, at_call: 50}
diversity:
  identical:
    variants: [{host: h1, layout: {aslr: false}}, {host: h2, layout: {aslr: false}}]
    expect:
      sim: {verdict: missed, effect: true}
      real: {verdict: missed, effect: true}
  aslr:
    variants: [{host: h1}, {host: h2}, {host: h3}]
    expect:
      sim: {verdict: divergence, kind: crash}
      real: {skip: not on this machine}
"""


def test_a_file_with_settings_says_what_they_hold(tmp_path: Path) -> None:
    path = tmp_path / "settings.yml"
    path.write_text(SETTINGS)
    assert validate_file(path) == (
        "scenario 'settings': topology 'three-variant', 2 diversity settings (identical, aslr) of 2 to 3 "
        "variants (leader h1), dmvx policy, microbench getpid x100, attack rop-absolute at call #50, "
        "expects 1 divergence + 1 missed in sim, 1 missed + 1 skipped in real"
    )


def test_a_selected_setting_names_it_beside_its_variants(tmp_path: Path) -> None:
    path = tmp_path / "settings.yml"
    path.write_text(SETTINGS + "setting: aslr\n")
    assert validate_file(path) == (
        "scenario 'settings': topology 'three-variant', 3 variants (leader h1), setting 'aslr' of 2, "
        "dmvx policy, microbench getpid x100, attack rop-absolute at call #50, expects divergence"
    )


def test_an_explicit_sweep_over_some_settings_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "settings.yml"
    path.write_text(SETTINGS + "sweep: {parameter: setting, values: [aslr]}\n")
    assert validate_file(path).endswith(", sweeps setting over 1 value")


@pytest.mark.parametrize("path", ATTACK_FILES, ids=lambda p: p.stem)
def test_every_attack_file_counts_its_settings(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.diversity
    line = validate_file(path)
    assert "0 variants" not in line and "sweeps setting" not in line
    assert f"{len(scenario.diversity)} diversity settings ({', '.join(scenario.diversity)}) of " in line
    assert " in sim, " in line and line.endswith(" in real")
