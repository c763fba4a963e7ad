"""Building the C programs real mode serves over the network.

``realmode/targets/net_*.c`` are compiled on first use into a cache
directory keyed by the hash of the source, the headers it includes and the
flags, so an edited source or header is rebuilt and an unchanged one is
not. ``gcc`` missing is an environment problem (exit status 4), never a
traceback.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from dmvx.exitstatus import EnvironmentProblem

SOURCES = Path(__file__).resolve().parent.parent / "targets"
_LOCAL_INCLUDE = re.compile(rb'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)


def cache_dir() -> Path:
    base = Path(os.environ.get("DMVX_TARGET_CACHE") or Path(tempfile.gettempdir()) / f"dmvx-targets-{os.getuid()}")
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    return base


def source_text(source: Path, seen: frozenset[Path] = frozenset()) -> bytes:
    """The bytes of a C file and of every header it includes with
    ``#include "..."`` (found beside the including file, as gcc finds them),
    depth first: what a build's cache key must cover."""
    text = source.read_bytes()
    seen = seen | {source.resolve()}
    parts = [text]
    for name in _LOCAL_INCLUDE.findall(text):
        header = (source.parent / name.decode()).resolve()
        if header not in seen and header.is_file():
            parts.append(source_text(header, seen))
    return b"\0".join(parts)


def build(name: str, *flags: str) -> str:
    """The path of ``realmode/targets/NAME.c`` compiled with ``flags``."""
    source = SOURCES / f"{name}.c"
    text = source_text(source)
    digest = hashlib.sha256(text + b"\0" + "\0".join(flags).encode()).hexdigest()[:12]
    out = cache_dir() / f"{name}-{digest}"
    if out.exists():
        return str(out)
    gcc = shutil.which("gcc")
    if gcc is None:
        raise EnvironmentProblem("dmvx real: gcc not found; it builds the served programs (./run setup installs it)")
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    done = subprocess.run([gcc, "-O2", *flags, "-o", str(tmp), str(source)], capture_output=True, text=True)
    if done.returncode != 0:
        raise EnvironmentProblem(f"dmvx real: compiling {source.name} failed: {done.stderr.strip()[:300]}")
    tmp.replace(out)
    return str(out)


def net_server(layout: int) -> str:
    """The demo server in struct layout 0 or 1 (see net_server.c)."""
    return build("net_server", f"-DLAYOUT={layout}")
