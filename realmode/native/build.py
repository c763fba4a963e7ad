"""Building the in-process DIP-MON library (``dipmon.c``) with the Debian toolchain.

The library goes next to its source, under ``lib/`` (ignored by git), and is
rebuilt when ``dipmon.c`` or ``dipmon.h`` is newer than it. ``./run setup``
builds it (``python -m realmode.native``); a run looks for it with
:func:`library` and takes the ptrace path when it is not there. x86-64 only:
an ``-m32`` variant is not given it and runs on the ptrace path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = (HERE / "dipmon.c", HERE / "dipmon.h")
LIBRARY = HERE / "lib" / "x86_64" / "libdmvxdipmon.so"
FLAGS = ("-O2", "-fPIC", "-shared", "-mno-red-zone", "-fno-stack-protector", "-Wall", "-Werror")


class BuildFailed(RuntimeError):
    """gcc is missing or refused the source (the message says which)."""


def stale() -> bool:
    """Whether the library is missing or older than its sources."""
    if not LIBRARY.is_file():
        return True
    built = LIBRARY.stat().st_mtime
    return any(source.stat().st_mtime > built for source in SOURCES)


def build(force: bool = False) -> Path:
    """Build the library if it is stale (or ``force``); its path."""
    if not force and not stale():
        return LIBRARY
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildFailed("gcc is needed to build realmode/native/dipmon.c (deps/debian-packages.txt)")
    LIBRARY.parent.mkdir(parents=True, exist_ok=True)
    # Built beside, then renamed: a run starting meanwhile never loads half a file.
    fd, partial = tempfile.mkstemp(dir=LIBRARY.parent, suffix=".so")
    os.close(fd)
    try:
        done = subprocess.run(
            [gcc, *FLAGS, "-o", partial, str(SOURCES[0])], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise BuildFailed(f"gcc failed on {SOURCES[0]}: {done.stderr.strip()}")
        os.chmod(partial, 0o755)
        os.replace(partial, LIBRARY)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return LIBRARY


def library() -> Path | None:
    """The built library, None if it is not there (or stale: never a wrong layout)."""
    return None if stale() else LIBRARY
