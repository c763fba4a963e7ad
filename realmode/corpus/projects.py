"""Real projects' own test suites, run natively and under ``dmvx run``.

The corpus's commands are one-liners; a project's test suite is a program
nobody here wrote that makes thousands of calls, imports a few hundred
modules and checks its own answers. Each :class:`Project` is a pure-Python
library from PyPI whose tests need no network: its source distribution is
fetched once with pip (the only step that needs the network; kept in a cache
directory), unpacked afresh for every run, and its tests run natively and
under each preset. A run *agrees* when it passes as many tests as the native
run, exits as it did, and dmvx said nothing (no verdict, no refusal).

``python -m realmode.corpus --projects`` runs them (docs/realmode.md,
"The corpus").
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from realmode.corpus.run import Ran, run_in

#: How long one run of a suite may take (dmon, on a loaded 2-CPU machine).
SUITE_TIMEOUT = 900.0


@dataclass(frozen=True, slots=True)
class Project:
    """A library whose own tests are run: ``requirement`` is what pip
    fetches (a pinned version, so the figure is reproducible), ``argv`` the
    test command in the unpacked source, ``runner`` how it reports."""

    name: str
    requirement: str
    argv: tuple[str, ...]
    runner: str  # "unittest" | "pytest"


#: The projects: idna's unittest suite on Debian's python3, toolz's pytest
#: suite on this interpreter (pytest comes with dmvx's test extra). Neither
#: starts a thread or opens a socket.
PROJECTS: tuple[Project, ...] = (
    Project("idna", "idna==3.10", ("/usr/bin/python3", "-m", "unittest"), "unittest"),
    Project(
        "toolz", "toolz==1.0.0", (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "toolz"), "pytest"
    ),
)


@dataclass(frozen=True, slots=True)
class Tally:
    """What a test runner said it did."""

    passed: int
    failed: int
    skipped: int

    def __str__(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


def tally(runner: str, output: bytes) -> Tally | None:
    """The counts in a runner's closing lines; None when it printed none
    (it crashed, or was killed)."""
    text = output.decode(errors="replace")
    if runner == "unittest":
        ran = re.findall(r"^Ran (\d+) tests? in ", text, re.MULTILINE)
        end = re.findall(r"^(OK|FAILED)(?: \((.*)\))?$", text, re.MULTILINE)
        if not ran or not end:
            return None
        counts = dict.fromkeys(("failures", "errors", "skipped", "expected failures", "unexpected successes"), 0)
        for part in filter(None, (end[-1][1] or "").split(", ")):
            key, _, value = part.partition("=")
            counts[key] = int(value)
        failed = counts["failures"] + counts["errors"] + counts["unexpected successes"]
        skipped = counts["skipped"] + counts["expected failures"]
        return Tally(int(ran[-1]) - failed - skipped, failed, skipped)
    found = dict.fromkeys(("passed", "failed", "error", "skipped", "xfailed", "xpassed"), 0)
    lines = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    if not lines:
        return None
    for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", lines[-1]):
        found[word.rstrip("s") if word.startswith("error") else word] += int(number)
    return Tally(
        found["passed"] + found["xpassed"], found["failed"] + found["error"], found["skipped"] + found["xfailed"]
    )


@dataclass(frozen=True, slots=True)
class SuiteRun:
    """One run of a project's suite (policy None: native)."""

    policy: str | None
    ran: Ran
    tally: Tally | None


@dataclass(frozen=True, slots=True)
class ProjectComparison:
    """A project's suite under one preset against its native run."""

    project: Project
    native: SuiteRun
    under: SuiteRun

    @property
    def problems(self) -> tuple[str, ...]:
        found = []
        if self.under.ran.status != self.native.ran.status:
            found.append(f"status {self.under.ran.status} where native {self.native.ran.status}")
        if self.under.tally != self.native.tally:
            found.append(f"{self.under.tally or 'no test count'} where native {self.native.tally or 'no test count'}")
        if self.under.ran.dmvx_says:
            found.append(self.under.ran.dmvx_says)
        return tuple(found)

    @property
    def agrees(self) -> bool:
        return not self.problems


def fetch(project: Project, cache: Path) -> Path:
    """The project's source distribution in ``cache``, downloaded with pip
    (from source only, without dependencies) if it is not there yet."""
    name, _, version = project.requirement.partition("==")
    found = _sdists(cache, name, version)
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps", "-d", str(cache)]
            + [project.requirement],
            check=True,
        )
        found = _sdists(cache, name, version)
    if not found:
        raise FileNotFoundError(f"pip left no source distribution of {project.requirement} in {cache}")
    return found[0]


def _sdists(cache: Path, name: str, version: str) -> list[Path]:
    return sorted(cache.glob(f"{name.replace('-', '_')}-{version}.tar.gz")) + sorted(
        cache.glob(f"{name}-{version}.tar.gz")
    )


def unpack(sdist: Path, into: Path) -> Path:
    """A fresh copy of the source in ``into``; the directory holding it.
    Only regular files and directories are unpacked, each inside ``into``
    (this Python's tarfile has no extraction filters yet)."""
    root = into.resolve()
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.isfile() or m.isdir()]
        for member in members:
            if not (root / member.name).resolve().is_relative_to(root):
                raise ValueError(f"{sdist}: {member.name}: outside the archive's directory")
        archive.extractall(into, members)
    [top] = [path for path in into.iterdir() if path.is_dir()]
    return top


def run_suite(project: Project, sdist: Path, policy: str | None, env: dict[str, str]) -> SuiteRun:
    """The project's tests in a fresh copy of its source: natively (policy
    None) or under ``dmvx run --policy policy``."""
    with tempfile.TemporaryDirectory(prefix=f"dmvx-project-{project.name}-") as scratch:
        source = unpack(sdist, Path(scratch))
        ran = run_in(list(project.argv), source, env, policy, SUITE_TIMEOUT, share_path=False)
    return SuiteRun(policy, ran, tally(project.runner, ran.stdout + b"\n" + ran.stderr))


def compare(project: Project, sdist: Path, policies: tuple[str, ...], env: dict[str, str]) -> list[ProjectComparison]:
    """The project's suite natively once and under each preset once, compared."""
    native = run_suite(project, sdist, None, env)
    return [ProjectComparison(project, native, run_suite(project, sdist, policy, env)) for policy in policies]
