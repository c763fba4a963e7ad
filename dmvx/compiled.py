"""Sim mode's hot modules, compiled with mypyc when a build of these very sources exists.

A simulated call goes through the same few hundred lines of Python a million
times: the core's monitors and CB, the engine's per-call loop, the links.
``tools/mypyc_build.py`` (run by ``./run setup``) compiles :data:`MODULES`
into ``<sys.prefix>/dmvx-mypyc/``, with a stamp holding the hash of every
source it compiled. :func:`activate` puts that build in front of the source
tree -- for ``dmvx`` and ``sim`` as each package is imported -- only when
every source still hashes as stamped, so an edited module is never shadowed
by a stale build: the package then runs as pure Python, as it does with no
build at all, from a bare checkout, or with ``DMVX_PURE=1`` (for comparing
the two, or for a test that replaces a compiled function).

The compiled modules behave as the sources do (the whole test suite runs on
either); what they forbid is changing their classes at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
from pathlib import Path

#: The modules compiled, by path from the checkout: the ones a profile of
#: ``benchmarks/bench_sim.py`` spends its time in (docs/sim.md, "Numbers").
#: Not dmvx.messages: compiled, its dataclasses would check their fields'
#: types at run time, and the codec's tests build wrong ones on purpose.
MODULES = (
    "dmvx/cb.py",
    "dmvx/monitor.py",
    "sim/engine.py",
    "sim/network.py",
    "sim/workload.py",
)
#: The group library mypyc links them into (one shared object, in ``dmvx``).
GROUP = "dmvx._mypyc"
STAMP = "stamp.json"
ROOT = Path(__file__).resolve().parent.parent
#: Whether this process imported the compiled modules (set by :func:`activate`).
ACTIVE = False


def build_dir() -> Path:
    """Where the build lives: beside the interpreter that can load it."""
    return Path(sys.prefix) / "dmvx-mypyc"


def abi() -> str:
    return str(sysconfig.get_config_var("SOABI"))


def source_hashes(root: Path = ROOT) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in MODULES}


def current(where: Path | None = None, root: Path = ROOT) -> bool:
    """True when ``where`` holds a build of exactly these sources for this interpreter."""
    where = where or build_dir()
    try:
        stamp = json.loads((where / STAMP).read_text())
        return bool(stamp["abi"] == abi() and stamp["sources"] == source_hashes(root))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def activate(package: str, path: list[str]) -> None:
    """Put the build's directory for ``package`` first on its ``__path__``, if current."""
    global ACTIVE, _CURRENT
    if os.environ.get("DMVX_PURE"):
        return
    if _CURRENT is None:
        _CURRENT = current()
    if not _CURRENT:
        return
    directory = str(build_dir() / package)
    if directory not in path:
        path.insert(0, directory)
    ACTIVE = True


_CURRENT: bool | None = None
