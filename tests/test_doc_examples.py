"""Every ``dmvx`` command the README and the docs show must still work.

The examples are read out of the pages' code blocks (``$ dmvx ...``,
``.venv/bin/dmvx ...``, a continued line joined). Each is parsed by the
command line itself -- options, choices, files that must exist, ``--set``
syntax -- without running anything. Then the cheap ones run for real:
``validate``, ``lab list`` and ``lab watch`` in full; ``sim`` as far as
loading the scenario, applying every ``--set`` and expanding the sweep (what
fails when an example names a field or a link that is not there), short of
simulating. ``run``, ``real``, ``suite`` and ``lab check`` are parsed only:
they need root, take minutes, or read a student's answers.

Commands naming a file the student writes (``my-sweep.yml``) or holding a
placeholder (``{...}``) are parsed with that file or value left out of the
check, and listed, so the list stays short and deliberate.
"""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from dmvx.cli import cli, sim_overrides

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
_COMMAND = re.compile(r"^\s*(?:\$\s+)?(?:sudo\s+)?(?:\.venv/bin/)?dmvx\s+(.*)$")
#: Files the pages tell the student to write: they cannot exist in the tree.
STUDENT_FILE = re.compile(r"(^|/)(my[-.]|lab\d-answers)")


def examples() -> list[tuple[str, str]]:
    """(page, command line after ``dmvx``) for every example in a code block."""
    found: list[tuple[str, str]] = []
    for page in PAGES:
        for block in _BLOCK.findall(page.read_text(encoding="utf-8")):
            lines = block.replace("\\\n", " ").splitlines()
            for line in lines:
                match = _COMMAND.match(line)
                if match and not match.group(1).startswith(("[", "COMMAND")):
                    found.append((str(page.relative_to(REPO)), match.group(1)))
    return found


def _words(line: str) -> list[str]:
    """The arguments as a shell would pass them, up to a pipe, redirection or comment."""
    line = re.sub(r"\$\((?:[^()]*)\)", "0,1", line)  # $(seq ...) -> a short list
    words = shlex.split(line, comments=True)
    for stop in ("|", ">", "2>", "&&"):
        if stop in words:
            words = words[: words.index(stop)]
    # A shell glob, as the shell would expand it from the source root.
    return [
        match
        for word in words
        for match in (
            sorted(glob.glob(str(word), root_dir=REPO)) or [word]
            if "*" in word and not word.startswith(("--", "topology.", "'")) and "=" not in word
            else [word]
        )
    ]


def _leaf(words: list[str]) -> tuple[click.Command, str, list[str], click.Context]:
    """The command the words name, its name, its own words, and its parent
    context (made as dmvx makes it, so settings such as -h carry over and
    nothing is cached on the command that ``dmvx --help`` would then show)."""
    command: click.Command = cli
    name = "dmvx"
    parent = cli.make_context("dmvx", [], resilient_parsing=True)
    while isinstance(command, click.Group):
        assert words, "a group without its command"
        if command is not cli:
            parent = command.make_context(name, [], parent=parent, resilient_parsing=True)
        name = words[0]
        command = command.commands[words[0]]
        words = words[1:]
    return command, name, words, parent


EXAMPLES = examples()


def test_the_docs_have_examples_of_every_command() -> None:
    commands = {_words(line)[0] for _, line in EXAMPLES}
    assert {"sim", "validate", "run", "real", "suite", "lab"} <= commands, commands


@pytest.mark.parametrize(("page", "line"), EXAMPLES, ids=[f"{p}: {line[:60]}" for p, line in EXAMPLES])
def test_a_documented_command_works(page: str, line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    words = _words(line)
    if "{...}" in line or any(STUDENT_FILE.search(w) for w in words):
        # A template: only its command and options must exist.
        command, _, rest, _ = _leaf([w for w in words if not STUDENT_FILE.search(w) and "{...}" not in w])
        known = {opt for param in command.params for opt in param.opts}
        for word in rest:
            if word.startswith("--"):
                assert word.partition("=")[0] in known, f"{page}: {line}: no option {word}"
        return
    command, name, rest, parent = _leaf(words)
    ctx = command.make_context(name, list(rest), parent=parent)  # parses and checks every option and argument
    top = words[0]
    if top == "sim":
        from sim.cli_entry import prepare
        from sim.sweep import expand

        scenario = ctx.params["scenario"] or REPO / "scenarios" / "default.yml"
        overrides = sim_overrides(ctx.params["overrides"], ctx.params["seeds"], ctx.params["at_calls"])
        prepared, extra = prepare(Path(scenario), seed=ctx.params["seed"], overrides=overrides)
        _, points = expand(prepared, extra)
        assert points, f"{page}: {line}: no point to run"
    elif top == "validate" or words[:2] in (["lab", "list"], ["lab", "watch"]):
        result = CliRunner().invoke(cli, words)
        assert result.exit_code in (0, 1), f"{page}: {line}: exit {result.exit_code}: {result.stderr}"


def test_the_set_examples_in_the_help_fit_the_default_scenario() -> None:
    """``dmvx sim --help`` shows a ``--set`` example; it must run on the scenario ``dmvx sim`` runs by default."""
    from sim.cli_entry import prepare

    sim = cli.commands["sim"]
    texts = [param.help or "" for param in sim.params if isinstance(param, click.Option)]
    found = [m for text in texts for m in re.findall(r"--set (\S+=\S+?)\.?(?:\s|$)", text)]
    assert found, "the --set help has no example"
    for example in found:
        key, _, value = example.partition("=")
        prepare(REPO / "scenarios" / "default.yml", seed=None, overrides={key: value})


def test_nothing_points_at_a_design_file_outside_the_repository() -> None:
    """The design brief lives outside the tree; pages and docstrings must say what they mean in place."""
    outside = "DESIGN" + ".md"
    files = [
        *PAGES,
        *sorted(p for d in ("dmvx", "sim", "realmode", "tests", "benchmarks") for p in (REPO / d).rglob("*.py")),
    ]
    mentions = [str(f.relative_to(REPO)) for f in files if outside in f.read_text(encoding="utf-8", errors="replace")]
    assert not (REPO / outside).exists() or not mentions
    assert mentions == [], mentions
