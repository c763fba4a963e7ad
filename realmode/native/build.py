"""Building the in-process DIP-MON library (``dipmon.c``) with the Debian toolchain.

One library per architecture a variant may run as: x86-64, and i386 with
``gcc -m32`` (the Debian packages gcc-multilib and libc6-dev, in
deps/debian-packages.txt). They go next to their source, under ``lib/<arch>/``
(ignored by git), and are rebuilt when ``dipmon.c`` or ``dipmon.h`` is newer
than either. ``./run setup`` builds them (``python -m realmode.native``); a run
looks for the one of each variant's ELF class with :func:`library` and takes
the ptrace path for a variant whose library is not there.

Why one path per variant and not both in ``LD_PRELOAD`` (tested on Debian 12):
ld.so skips a library of the wrong ELF class but prints an ``ERROR: ld.so:
... wrong ELF class: ignored`` line on the program's stderr, which a native
run does not have; ``$LIB`` in the path expands to ``lib/x86_64-linux-gnu``
and ``lib32`` here, names that differ between distributions. The library
leaves ``LD_PRELOAD`` out of the program's environment (later images run on
the ptrace path), so the first image's class is the one that counts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from dmvx.syscalls import Arch

HERE = Path(__file__).resolve().parent
SOURCES = (HERE / "dipmon.c", HERE / "dipmon.h")
#: The library of each architecture, and gcc's flag that builds it.
LIBRARIES: dict[Arch, Path] = {
    arch: HERE / "lib" / arch.value / "libdmvxdipmon.so" for arch in (Arch.X86_64, Arch.I386)
}
ARCH_FLAGS: dict[Arch, tuple[str, ...]] = {Arch.X86_64: (), Arch.I386: ("-m32",)}
#: The x86-64 library (the machine's own).
LIBRARY = LIBRARIES[Arch.X86_64]
FLAGS = ("-O2", "-fPIC", "-shared", "-mno-red-zone", "-fno-stack-protector", "-Wall", "-Werror")


class BuildFailed(RuntimeError):
    """gcc is missing or refused the source (the message says which)."""


def _stale(path: Path) -> bool:
    if not path.is_file():
        return True
    built = path.stat().st_mtime
    return any(source.stat().st_mtime > built for source in SOURCES)


def stale() -> bool:
    """Whether a library is missing or older than its sources."""
    return any(_stale(path) for path in LIBRARIES.values())


def _build_one(gcc: str, arch: Arch) -> None:
    target = LIBRARIES[arch]
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside, then renamed: a run starting meanwhile never loads half a file.
    fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".so")
    os.close(fd)
    try:
        done = subprocess.run(
            [gcc, *ARCH_FLAGS[arch], *FLAGS, "-o", partial, str(SOURCES[0])],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            hint = " (gcc -m32 needs gcc-multilib: deps/debian-packages.txt)" if arch is Arch.I386 else ""
            raise BuildFailed(f"gcc failed on {SOURCES[0]} for {arch.value}{hint}: {done.stderr.strip()}")
        os.chmod(partial, 0o755)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def build(force: bool = False) -> Path:
    """Build the libraries that are stale (or all, ``force``); the x86-64 one's path."""
    todo = [arch for arch, path in LIBRARIES.items() if force or _stale(path)]
    if not todo:
        return LIBRARY
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildFailed("gcc is needed to build realmode/native/dipmon.c (deps/debian-packages.txt)")
    for arch in todo:
        _build_one(gcc, arch)
    return LIBRARY


def library(arch: Arch = Arch.X86_64) -> Path | None:
    """The built library for ``arch``, None if it is not there (or stale:
    never a wrong layout) or dmvx builds none for ``arch``."""
    path = LIBRARIES.get(arch)
    return None if path is None or _stale(path) else path
