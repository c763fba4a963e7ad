"""The user guide: generated pages equal what the code generates, tables match
the code, and every link between the guide's and the labs' pages resolves."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from dmvx import cli_doc, schema_doc
from dmvx.exitstatus import ExitStatus
from dmvx.policy import Route
from dmvx.verdict import VerdictKind

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "guide"
PAGES = sorted(GUIDE.glob("*.md")) + sorted((REPO / "docs" / "labs").glob("*.md"))


@pytest.mark.parametrize("module", [schema_doc, cli_doc], ids=["files.md", "commands.md"])
def test_generated_page_is_up_to_date(module: ModuleType) -> None:
    page: Path = module.PAGE
    assert page.read_text(encoding="utf-8") == module.render(), (
        f"{page.relative_to(REPO)} is out of date; run: {module.REGENERATE}"
    )


def test_file_reference_lists_every_field_of_every_model() -> None:
    from dmvx.scenario import Attack, Layout, Microbench, PolicySpec, Scenario, Server, Sweep, VariantSpec
    from dmvx.topology import Host, Link, Topology

    text = schema_doc.render()
    for model in (Scenario, VariantSpec, Layout, PolicySpec, Microbench, Server, Attack, Sweep, Topology, Host, Link):
        section = text.split(f"### {model.__name__}")[1] if model not in (Scenario, Topology) else text
        for name in model.model_fields:
            assert f"| `{name}` |" in section, f"{model.__name__}.{name} is not in the file reference"


def test_generated_help_is_what_the_command_prints() -> None:
    from click.testing import CliRunner

    from dmvx.cli import cli

    text = cli_doc.render()
    for args in (["lab", "check"], ["sim"]):
        shown = CliRunner().invoke(cli, [*args, "--help"], terminal_width=cli_doc.WIDTH).stdout
        assert shown.strip() in text, f"dmvx {' '.join(args)} --help is not in the page"


def test_exit_status_table_matches_the_enum() -> None:
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*`(\w+)`\s*\|", (GUIDE / "index.md").read_text(), re.M)
    assert {int(code): name for code, name in rows} == {s.value: s.name for s in ExitStatus}


def test_concepts_name_every_route_and_verdict_kind_and_draw_the_components() -> None:
    text = (GUIDE / "concepts.md").read_text()
    for route in Route:
        assert f"| `{route.value}` |" in text, route
    for kind in VerdictKind:
        assert f"| `{kind.value}` |" in text, kind
    diagram = re.search(r"```text\n(.*?)```", text, re.S)
    assert diagram is not None
    for part in ("broker", "DCP-MON", "DIP-MON", "CB", "CONNECTOR", "leader", "follower"):
        assert part in diagram.group(1), part


def test_extending_covers_a_workload_an_attack_and_a_topology() -> None:
    headings = re.findall(r"^## (.+)$", (GUIDE / "extending.md").read_text(), re.M)
    assert {"A topology", "A workload", "An attack"} <= set(headings)


def _anchors(page: Path) -> set[str]:
    text = page.read_text()
    ids = set(re.findall(r'<a id="([^"]+)"></a>', text))
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        ids.add(slug)
    return ids


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: link to missing {target}"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{page.name}: no anchor #{anchor} in {resolved.name}"


def test_readme_points_to_the_guide_and_the_labs() -> None:
    text = (REPO / "README.md").read_text()
    assert "(docs/guide/index.md)" in text and "(docs/labs/README.md)" in text
