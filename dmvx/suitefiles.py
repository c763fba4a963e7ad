"""The scenario files of a suite, each read and validated once.

``dmvx suite PATH`` runs the scenario file PATH, or every scenario file of
the directory PATH (sorted by name; topology files beside them are skipped).
Both modes run the same files, so the choice, the parse and the validation
live here, once: :func:`read_suite` returns every file's
:class:`~dmvx.scenario.Scenario`, or the one-line problem that stops it, and
sim mode (:mod:`sim.cli_entry`) and real mode (:mod:`realmode.suite`) run
what it returns without reading the files again. A file that cannot be read
or does not validate is not skipped: it stays in the list with its error,
which the suite reports beside the files that ran.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from dmvx.errors import InputError
from dmvx.scenario import Scenario, scenario_from_document
from dmvx.validate import detect_kind
from dmvx.yamlfile import read_yaml


@dataclass(frozen=True)
class SuiteFile:
    """One scenario file of a suite: the scenario, or why there is none."""

    path: Path
    scenario: Scenario | None
    error: InputError | None = None


def read_suite(path: Path, topology: Path | None = None) -> list[SuiteFile]:
    """The scenario files of ``path`` (see the module docstring), read once;
    with ``topology`` (a topology file), each on that topology instead of
    its own (``dmvx suite --mode real --topology``).

    In a directory, a file that is not even YAML, or whose kind cannot be
    told, counts as a scenario (it is reported, not silently left out); a
    file named on its own is taken to be a scenario."""
    path = Path(path)
    if path.is_file():
        candidates = [path]
    else:
        candidates = sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
    found = []
    for file in candidates:
        try:
            doc = read_yaml(file, display=str(file))
        except InputError as problem:
            found.append(SuiteFile(file, None, problem))
            continue
        if file is not path:
            try:
                if detect_kind(doc, file) != "scenario":
                    continue
            except InputError:
                pass  # validated as a scenario below, which names the problem
        if topology is not None and isinstance(doc.data, dict):
            doc = dataclasses.replace(doc, data=dict(doc.data, topology=str(topology.resolve())))
        try:
            found.append(SuiteFile(file, scenario_from_document(doc, file.parent, default_name=file.stem)))
        except InputError as problem:
            found.append(SuiteFile(file, None, problem))
    return found
