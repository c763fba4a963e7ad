"""Compile sim mode's hot modules with mypyc, for ``./run setup``.

    .venv/bin/python tools/mypyc_build.py [--check] [--force]

Builds :data:`dmvx.compiled.MODULES` into ``<venv>/dmvx-mypyc/`` (see
dmvx/compiled.py for how and when the package loads it) and writes the stamp
last, so a build that fails half way is never loaded. Nothing to do when the
build there is of these sources (exit 0, silent). ``--check``: exit 0 when
current, 1 when a build is due. Exit 1 when compiling failed, with the reason
on the last line of stderr: the package then runs as pure Python, as it
always can.

Compiling takes a minute or two (mypy, then gcc on a few MB of C); the
sources are type-checked as mypy checks the tree (pyproject.toml).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dmvx import compiled


def build(out: Path) -> None:
    """mypyc, then setuptools' build_ext, run here without the project's own setup configuration."""
    from mypyc.build import mypycify
    from setuptools import Distribution  # type: ignore[import-untyped]

    root = compiled.ROOT
    with tempfile.TemporaryDirectory(prefix="dmvx-mypyc-") as temp:
        work = Path(temp)
        # mypyc writes its C under build/ of the working directory and names modules
        # from the paths given: run it from the checkout, with build/ in the temp dir.
        (work / "build").mkdir()
        here = Path.cwd()
        os.chdir(root)
        try:
            extensions = mypycify(
                ["--no-warn-unused-configs", *compiled.MODULES],
                opt_level="3",
                group_name=compiled.GROUP,
                target_dir=str(work / "build"),
            )
            dist = Distribution({"name": "dmvx-mypyc", "ext_modules": extensions})
            dist.script_args = ["build_ext", "--build-lib", str(work / "lib"), "--build-temp", str(work / "tmp")]
            dist.parse_command_line()
            dist.run_commands()
        finally:
            os.chdir(here)
        fresh = out.with_name(out.name + ".new")
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(work / "lib", fresh)
    shutil.rmtree(out, ignore_errors=True)
    fresh.rename(out)
    stamp = {"abi": compiled.abi(), "sources": compiled.source_hashes()}
    (out / compiled.STAMP).write_text(json.dumps(stamp, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a build is due, else 0")
    parser.add_argument("--force", action="store_true", help="build even when the build is current")
    args = parser.parse_args()
    out = compiled.build_dir()
    if compiled.current(out) and not args.force:
        return 0
    if args.check:
        return 1
    try:
        build(out)
    except (Exception, SystemExit) as error:  # noqa: BLE001 -- any failure means: run pure Python
        print(f"mypyc_build: not compiled ({type(error).__name__}: {error})", file=sys.stderr)
        return 1
    if not compiled.current(out):
        print("mypyc_build: not compiled (the sources changed during the build)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
