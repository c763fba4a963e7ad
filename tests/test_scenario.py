"""Scenario files: defaults, cross-checks with the topology, sweeps, the JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmvx import schema_export
from dmvx.errors import InputError
from dmvx.scenario import Microbench, Scenario, Server, load_scenario
from dmvx.syscalls import Arch
from dmvx.topology import Topology
from dmvx.validate import validate_file
from dmvx.verdict import VerdictKind
from dmvx.yamlfile import SOURCE_ROOT

SCENARIOS = sorted((SOURCE_ROOT / "scenarios").glob("*.yml"))


def write(tmp_path: Path, text: str, name: str = "s.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_default_scenario() -> None:
    scenario = load_scenario("default")
    assert scenario.name == "default"
    assert isinstance(scenario.topology, Topology) and scenario.topo.name == "two-host"
    assert [v.host for v in scenario.variants or []] == ["h1", "h2"]
    assert scenario.leader.arch is Arch.X86_64
    assert scenario.policy.preset == "dmvx"
    assert isinstance(scenario.workload, Microbench)
    assert (scenario.workload.call, scenario.workload.iterations) == ("read", 20000)
    assert scenario.expect is not None and scenario.expect.verdict == "ok"
    assert load_scenario(SOURCE_ROOT / "scenarios" / "default.yml") == scenario


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_validates(path: Path) -> None:
    assert validate_file(path).startswith(f"scenario {path.stem!r}: topology ")


def test_policy_spec_builds_the_core_policy() -> None:
    from dmvx.policy import Level, Policy, Route

    default = load_scenario("default").policy.to_policy()
    assert default == Policy.preset("dmvx")
    assert default.relaxation is Level.SOCKET_RW and default.async_replication
    dmon = Scenario.model_validate(
        {"workload": {"kind": "microbench", "call": "getpid"}, "policy": {"preset": "dmon"}}
    ).policy.to_policy()
    assert dmon == Policy.preset("dmon")
    tuned = Scenario.model_validate(
        {
            "workload": {"kind": "microbench", "call": "getpid"},
            "policy": {
                "preset": "dmvx",
                "relaxation": "nonsocket-ro",
                "async_replication": False,
                "predict": False,
                "local_files": ["/usr/lib/*"],
                "ack_every": 8,
                "cb": {"entries": 64, "bytes": "1MiB"},
                "overrides": {"getpid": "lockstep"},
            },
        }
    ).policy.to_policy()
    assert tuned.relaxation is Level.NONSOCKET_RO
    assert (tuned.async_replication, tuned.predict, tuned.ack_every) == (False, False, 8)
    assert (tuned.cb_entries, tuned.cb_bytes) == (64, 2**20)
    assert tuned.overrides == {"getpid": Route.LOCKSTEP}
    assert tuned.is_local_file("/usr/lib/libc.so")


def test_names_match_the_core_vocabulary() -> None:
    """The schema spells routes, relaxation levels and verdicts as the core does."""
    from typing import get_args

    from dmvx.policy import Level, Route
    from dmvx.scenario import Relaxation, RouteName

    assert set(get_args(RouteName)) == {r.value for r in Route}
    assert set(get_args(Relaxation)) == {level.label for level in Level}
    schema = Scenario.model_json_schema()
    assert set(schema["$defs"]["VerdictKind"]["enum"]) == {k.value for k in VerdictKind}


def test_variants_default_to_the_topologys_variant_hosts(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, "topology: three-variant\nworkload: {kind: microbench, call: getcwd}\n"))
    assert [v.host for v in scenario.variants or []] == ["h1", "h2", "h3"]
    assert scenario.name == "s"


def test_an_i386_variant_may_run_on_an_x86_64_host(tmp_path: Path) -> None:
    scenario = load_scenario(
        write(
            tmp_path,
            (
                "variants:\n  - {host: h1}\n  - {host: h2, arch: i386, layout: {aslr: false, base: 0x8048000}}\n"
                "workload: {kind: microbench, call: getpid}\n"
            ),
        )
    )
    assert scenario.topo.name == "two-host"  # the default topology
    assert [v.arch for v in scenario.variants or []] == [Arch.X86_64, Arch.I386]
    assert scenario.variants and scenario.variants[1].layout.base == 0x8048000


def test_server_client_and_attack_source_default_to_the_topologys_hosts(tmp_path: Path) -> None:
    scenario = load_scenario(
        write(
            tmp_path,
            (
                "topology: wan\nworkload: {kind: server, requests: 10, concurrency: 2, request_size: 1kB}\n"
                "attack: {kind: connector-forgery, at_call: 5}\nexpect: {verdict: rejected, kind: auth-failure}\n"
            ),
        )
    )
    assert isinstance(scenario.workload, Server)
    assert scenario.workload.client == "h3"
    assert (scenario.workload.request_size, scenario.workload.file_size) == (1000, 4096)
    assert scenario.attack is not None and scenario.attack.source == "h3"


def test_relative_paths_follow_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "topologies").mkdir()
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "run.jsonl").write_text("")
    topo = (SOURCE_ROOT / "topologies" / "wan.yml").read_text().replace("name: wan\n", "name: mine\n")
    (tmp_path / "topologies" / "mine.yml").write_text(topo)
    (tmp_path / "profile.yml").write_text("")
    sub = tmp_path / "scenarios"
    sub.mkdir()
    scenario = load_scenario(
        write(
            sub,
            (
                "topology: mine\ncost_profile: ../profile.yml\n"
                "variants:\n  - {host: h1, binary: ../bin/server}\n  - {host: h2, binary: lighttpd}\n"
                "workload: {kind: trace, path: ../traces/run.jsonl}\n"
            ),
        )
    )
    assert scenario.topo.name == "mine"
    assert Path(scenario.workload.path).resolve() == (tmp_path / "traces" / "run.jsonl").resolve()  # type: ignore[union-attr]
    assert Path(scenario.cost_profile).resolve() == (tmp_path / "profile.yml").resolve()
    assert scenario.variants
    assert Path(scenario.variants[0].binary or "").resolve() == (tmp_path / "bin" / "server").resolve()
    assert scenario.variants[1].binary == "lighttpd"  # a program name stays a name
    with pytest.raises(InputError, match=r"s2.yml:2:\d+: workload.path: no trace file"):
        load_scenario(write(sub, "workload:\n  {kind: trace, path: missing.jsonl}\n", "s2.yml"))
    with pytest.raises(InputError, match=r"s3.yml:1:15: cost_profile: no cost profile file 'nope.yml'"):
        load_scenario(write(sub, "cost_profile: nope.yml\nworkload: {kind: microbench, call: read}\n", "s3.yml"))


def test_an_inline_topology(tmp_path: Path) -> None:
    scenario = load_scenario(
        write(
            tmp_path,
            (
                "topology:\n  hosts:\n    a: {role: variant}\n    b: {role: variant}\n"
                "  links: [{a: a, b: b, delay: 2ms}]\n"
                "workload: {kind: microbench, call: write, iterations: 5}\n"
            ),
        )
    )
    assert scenario.topo.name == "inline" and scenario.topo.path_delay("a", "b") == 0.002


def test_a_dumped_scenario_validates_to_itself() -> None:
    scenario = load_scenario("default")
    again = Scenario.model_validate(json.loads(json.dumps(scenario.model_dump(mode="json"))))
    assert again == scenario


def test_sweep_points(tmp_path: Path) -> None:
    scenario = load_scenario(
        write(
            tmp_path,
            (
                "workload: {kind: microbench, call: getpid}\n"
                "sweep: {parameter: 'topology.links[*].delay', values: [1ms, 10ms]}\n"
            ),
        )
    )
    points = scenario.sweep_points()
    assert [value for value, _ in points] == ["1ms", "10ms"]
    assert [s.topo.path_delay("h1", "h2") for _, s in points] == pytest.approx([0.002, 0.02])
    assert all(s.sweep is None for _, s in points)
    unswept = load_scenario("default").model_copy(update={"sweep": None})
    assert unswept.sweep_points() == [(None, unswept)]


def test_with_values() -> None:
    scenario = load_scenario("default").with_values({"policy.cb.entries": 16, "variants[1].layout.aslr": False})
    assert scenario.policy.cb.entries == 16 and scenario.variants and not scenario.variants[1].layout.aslr
    with pytest.raises(InputError) as caught:
        load_scenario("default").with_values({"policy.cb.entires": 1})
    assert caught.value.field == "policy.cb.entires" and "did you mean 'entries'" in caught.value.message


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("expect: {verdict: missed}\n", "expect.verdict", "verdict 'missed' without an attack"),
        ("expect: {verdict: ok, kind: crash}\n", "expect.kind", "a verdict kind with verdict 'ok'"),
        (
            "attack: {kind: pointer-leak, at_call: 3}\nexpect: {verdict: rejected, kind: crash}\n",
            "expect.kind",
            "'crash' is a divergence, not a rejection",
        ),
        (
            "attack: {kind: connector-replay, at_call: 3, source: h1}\n",
            "attack.source",
            "'h1' is not a client or attacker host",
        ),
        ("variants: [{host: h1}]\n", "variants", "too few items"),
        ("sweep: {parameter: 'policy..x', values: [1]}\n", "sweep.parameter", "is not a parameter path"),
        ("sweep: {parameter: 'policy.cb.entries', values: []}\n", "sweep.values", "too few items"),
        ("seed: -1\n", "seed", "'-1' is out of range"),
        ("policy: {stall_timeout: 2}\n", "policy.stall_timeout", "'2' is not a duration (write 2ms, not 2)"),
        ("policy: {cb: {bytes: 16Mbit}}\n", "policy.cb.bytes", "'16Mbit' is a rate, not a size"),
    ],
)
def test_scenario_checks(tmp_path: Path, text: str, field: str, message: str) -> None:
    path = write(tmp_path, "workload: {kind: microbench, call: getpid}\n" + text)
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    assert caught.value.field == field
    assert message in caught.value.message
    assert caught.value.line == 1 + text.count("\n")  # the last line: where the problem is


def test_a_scenario_naming_a_bad_topology_file_reports_the_topology_file(tmp_path: Path) -> None:
    (tmp_path / "broken.yml").write_text("hosts:\n  h1: {role: variant, arch: sparc}\n")
    with pytest.raises(InputError) as caught:
        load_scenario(write(tmp_path, "topology: broken.yml\nworkload: {kind: microbench, call: read}\n"))
    assert caught.value.file is not None and caught.value.file.endswith("broken.yml")
    assert (caught.value.line, caught.value.field) == (2, "hosts.h1.arch")


def test_scenarios_are_found_by_name() -> None:
    with pytest.raises(InputError, match="no scenario named 'defualt' \\(did you mean 'default'\\?\\)"):
        load_scenario("defualt")


def test_every_field_has_a_description() -> None:
    """The reference docs are generated from the schema: no field goes undocumented."""
    for model in schema_export.MODELS.values():
        schema = model.model_json_schema()
        for name, definition in [("(root)", schema), *schema.get("$defs", {}).items()]:
            for field, spec in definition.get("properties", {}).items():
                assert spec.get("description"), f"{name}.{field} has no description"


def test_committed_schemas_match_the_models() -> None:
    stale = schema_export.stale()
    assert not stale, f"{', '.join(map(str, stale))} out of date: run `{schema_export.REGENERATE}`"
    for path, text in schema_export.schema_files().items():
        assert json.loads(text)["$schema"].startswith("https://json-schema.org/")
        assert path.parent.name == "schema"


def test_schema_export_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert schema_export.main(["--check", "--dir", str(tmp_path)]) == 1
    assert "out of date; run: python -m dmvx.schema_export" in capsys.readouterr().err
    assert schema_export.main(["--dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scenario.schema.json", "topology.schema.json"]
    assert schema_export.main(["--check", "--dir", str(tmp_path)]) == 0


def test_the_readme_example_is_a_valid_scenario(tmp_path: Path) -> None:
    readme = (SOURCE_ROOT / "scenarios" / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    scenario = load_scenario(write(tmp_path, example))
    assert scenario.policy.to_policy().name == "dmon"
