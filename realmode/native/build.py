"""Building the in-process DIP-MON library (``dipmon.c``) with the Debian toolchain.

One library per architecture a variant may run as: x86-64, and i386 with
``gcc -m32`` (the Debian packages gcc-multilib and libc6-dev, in
deps/debian-packages.txt). They go next to their source, under ``lib/<arch>/``
(ignored by git). ``./run setup`` builds them (``python -m realmode.native``); a run
looks for the one of each variant's ELF class with :func:`check` and takes
the ptrace path for a variant whose library is not there or is not this
tree's, saying so in one line (:class:`Library`).

Which library is this tree's: each build carries an ABI tag
(``DIPMON_ABI_TAG`` in dipmon.h) -- the shared area's layout version
(``DIPMON_VERSION``, :data:`realmode.inproc.layout.VERSION`) and a digest of
the sources and flags it was built from -- which :func:`check` reads from the
file before a run. A library of another layout version would misread the
area; one built from other sources (dipmon.c changed, ``./run setup`` not run
again) may not do what this monitor expects of it. Modification times do not
say that (a checkout or a rebase touches them; a copied tree keeps them).

Why one path per variant and not both in ``LD_PRELOAD`` (tested on Debian 12):
ld.so skips a library of the wrong ELF class but prints an ``ERROR: ld.so:
... wrong ELF class: ignored`` line on the program's stderr, which a native
run does not have; ``$LIB`` in the path expands to ``lib/x86_64-linux-gnu``
and ``lib32`` here, names that differ between distributions. The library
leaves ``LD_PRELOAD`` out of the program's environment (later images run on
the ptrace path), so the first image's class is the one that counts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dmvx.syscalls import Arch
from realmode.inproc import layout

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


@dataclass(frozen=True)
class Library:
    """What a run finds for one architecture: the library to preload
    (``path``), or None and why not (``problem``, one sentence)."""

    arch: Arch
    path: Path | None
    problem: str | None = None


def source_digest() -> str:
    """The digest a library built from this tree's sources carries."""
    digest = hashlib.sha256()
    for source in SOURCES:
        digest.update(source.read_bytes())
    digest.update(" ".join(FLAGS).encode())
    return digest.hexdigest()[:16]


def identity(path: Path) -> tuple[int, str] | None:
    """The (layout version, source digest) ``path``'s ABI tag says, None
    when it carries none (a build older than the tag)."""
    data = path.read_bytes()
    at = data.find(layout.ABI_TAG)
    if at < 0:
        return None
    end = data.find(b"\0", at)
    words = data[at + len(layout.ABI_TAG) : end if end >= 0 else len(data)].split()
    if len(words) != 2 or not words[0].isdigit():
        return None
    return int(words[0]), words[1].decode("ascii", "replace")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def check(arch: Arch = Arch.X86_64) -> Library:
    """The library a variant of ``arch`` may preload, or why it may not."""
    path = LIBRARIES.get(arch)
    if path is None:
        return Library(arch, None, f"dmvx builds no in-process library for {arch.value}")
    shown = _shown(path)
    if not path.is_file():
        return Library(arch, None, f"{shown} is not built (./run setup builds it)")
    found = identity(path)
    if found is None:
        return Library(arch, None, f"{shown} carries no ABI tag: an older build (./run setup rebuilds it)")
    version, digest = found
    if version != layout.VERSION:
        return Library(
            arch,
            None,
            f"{shown} has layout version {version}, this monitor {layout.VERSION} (./run setup rebuilds it)",
        )
    if digest != source_digest():
        return Library(
            arch, None, f"{shown} was built from other sources than this tree's dipmon.c (./run setup rebuilds it)"
        )
    return Library(arch, path)


def _stale(arch: Arch) -> bool:
    return check(arch).path is None


def stale() -> bool:
    """Whether a library is missing or not built from this tree's sources."""
    return any(_stale(arch) for arch in LIBRARIES)


def _build_one(gcc: str, arch: Arch) -> None:
    target = LIBRARIES[arch]
    digest = source_digest()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside, then renamed: a run starting meanwhile never loads half a file.
    fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".so")
    os.close(fd)
    try:
        done = subprocess.run(
            [gcc, *ARCH_FLAGS[arch], *FLAGS, f'-DDIPMON_SOURCE_DIGEST="{digest}"', "-o", partial, str(SOURCES[0])],
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
    todo = [arch for arch in LIBRARIES if force or _stale(arch)]
    if not todo:
        return LIBRARY
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildFailed("gcc is needed to build realmode/native/dipmon.c (deps/debian-packages.txt)")
    for arch in todo:
        _build_one(gcc, arch)
    return LIBRARY


def library(arch: Arch = Arch.X86_64) -> Path | None:
    """The built library for ``arch``, None if it is not there, is not this
    tree's (:func:`check` says why) or dmvx builds none for ``arch``."""
    return check(arch).path
