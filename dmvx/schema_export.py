"""Write the JSON Schemas of scenario and topology files.

``python -m dmvx.schema_export`` writes ``schema/scenario.schema.json`` and
``schema/topology.schema.json`` from the pydantic models, so editors (for
example through a ``# yaml-language-server: $schema=...`` line, as the
shipped files have) can complete and check files as they are typed.
``--check`` writes nothing and exits 1 when the committed files differ from
the models; the test suite runs the same comparison, so the published
schemas cannot drift from the code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dmvx.scenario import Scenario
from dmvx.topology import Topology
from dmvx.yamlfile import SOURCE_ROOT

SCHEMA_DIR = SOURCE_ROOT / "schema"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
MODELS: dict[str, type[BaseModel]] = {"scenario": Scenario, "topology": Topology}
REGENERATE = "python -m dmvx.schema_export"


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of ``model`` as published (validation mode: what a file may hold)."""
    schema = model.model_json_schema(mode="validation")
    return {"$schema": DIALECT, **schema}


def render(model: type[BaseModel]) -> str:
    """The exact text of a published schema file."""
    return json.dumps(schema_of(model), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def schema_files(directory: Path = SCHEMA_DIR) -> dict[Path, str]:
    """Each schema file and the text it must hold."""
    return {directory / f"{name}.schema.json": render(model) for name, model in MODELS.items()}


def stale(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Schema files that are missing or differ from the models."""
    out = []
    for path, text in schema_files(directory).items():
        try:
            current = path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the schema files are out of date")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="where the schema files live")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale(args.dir)
        for path in outdated:
            print(f"{path}: out of date; run: {REGENERATE}", file=sys.stderr)
        return 1 if outdated else 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for path, text in schema_files(args.dir).items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
