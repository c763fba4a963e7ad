"""Sim mode's mypyc build (dmvx/compiled.py) is used only when it is of these very sources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from dmvx import compiled

REPO = Path(__file__).resolve().parent.parent


def _stamp(where: Path, sources: dict[str, str]) -> None:
    where.mkdir(parents=True, exist_ok=True)
    (where / compiled.STAMP).write_text(json.dumps({"abi": compiled.abi(), "sources": sources}))


def test_a_build_of_other_sources_is_not_current(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for name in compiled.MODULES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    build = tmp_path / "build"
    assert not compiled.current(build, root)  # no build at all
    _stamp(build, compiled.source_hashes(root))
    assert compiled.current(build, root)
    # One edited module: the whole build is stale, never a mix.
    (root / compiled.MODULES[-1]).write_text((root / compiled.MODULES[-1]).read_text() + "\n# edited\n")
    assert not compiled.current(build, root)
    _stamp(build, compiled.source_hashes(root) | {"dmvx/other.py": "0"})
    assert not compiled.current(build, root)
    (build / compiled.STAMP).write_text("{not json")
    assert not compiled.current(build, root)


def _where(env: dict[str, str]) -> list[str]:
    code = "import sim.engine, sim.network, dmvx.monitor, dmvx.compiled as c; print(c.ACTIVE, sim.engine.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_build_is_loaded_when_current_and_not_with_dmvx_pure() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DMVX_PURE"}
    active, engine = _where(env)
    assert active == str(compiled.current())
    assert engine.endswith(".py") != compiled.current()
    active, engine = _where({**env, "DMVX_PURE": "1"})
    assert (active, Path(engine)) == ("False", REPO / "sim" / "engine.py")
