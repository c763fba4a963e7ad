"""Building the vulnerable targets as the variants a scenario describes.

A scenario says how each variant is diversified (``arch`` and ``layout`` of
:class:`dmvx.scenario.VariantSpec`); sim mode reads the same fields in its
diversity model (:mod:`sim.diversity`). Here they become compiler and linker
flags and a process attribute:

=========================  ================================================  ===================
variant spec               build                                             at run time
=========================  ================================================  ===================
``arch: i386``             ``-m32`` (same source: ILP32 struct layout,       the i386 ABI
                           i386 system calls, 32-bit pointers)
``layout.aslr: true``      ``-fPIE -pie``                                    the kernel's ASLR
``layout.aslr: false``     ``-no-pie``, image at ``base`` (or the usual      no randomisation at
                           0x400000 / 0x8048000)                             all (personality
                                                                             ``ADDR_NO_RANDOMIZE``)
``layout.disjoint: true``  ``-no-pie``, image in this variant's own 256 MiB  ASLR for the rest as
                           slot (``-Wl,-Ttext-segment``): the k-th           ``aslr`` says
                           disjoint variant at ``k * 0x10000000`` plus the
                           base's offset in a slot
=========================  ================================================  ===================

Sim mode's disjoint slots are larger (2**40 on x86-64); a non-PIE x86-64
image must sit below 2 GiB (the small code model), so real slots are 256
MiB, which keeps the property that matters: no address of one disjoint
variant's image is mapped in another's.

Every build is compiled without stack protector and without
``_FORTIFY_SOURCE`` (the bugs are the point) at ``-O0`` (so the memory
layouts the exploits rely on are those the source reads as), and is cached
by source, flags and compiler, like :mod:`realmode.net.targets`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dmvx.exitstatus import EnvironmentProblem, Unavailable
from dmvx.scenario import VariantSpec
from dmvx.syscalls import Arch
from realmode.net.targets import cache_dir, source_text

SOURCES = Path(__file__).resolve().parent / "src"
COMMON_FLAGS = (
    "-O0",
    "-fno-stack-protector",
    "-U_FORTIFY_SOURCE",
    "-D_FORTIFY_SOURCE=0",
    "-fcf-protection=none",
    "-Wall",
    "-Wno-format-security",
)
#: Usual load address of a non-PIE executable.
NON_PIE_BASE = {Arch.X86_64: 0x400000, Arch.I386: 0x8048000}
#: Size of one disjoint slot (see the module docstring).
DISJOINT_SLOT = 0x10000000


@dataclass(frozen=True)
class Build:
    """One variant's executable and how it must be started."""

    path: str
    arch: Arch
    flags: tuple[str, ...]
    pie: bool
    no_randomize: bool  # start it with ADDR_NO_RANDOMIZE


def variant_flags(spec: VariantSpec, disjoint_index: int) -> tuple[tuple[str, ...], bool]:
    """Compiler flags for ``spec`` and whether it runs without ASLR.
    ``disjoint_index`` is k for the k-th disjoint variant (from 1)."""
    arch = spec.arch or Arch.X86_64
    if arch not in NON_PIE_BASE:
        raise Unavailable(f"an {arch.value} variant needs a real {arch.value} host; this machine runs x86_64 and i386")
    flags: list[str] = ["-m32"] if arch is Arch.I386 else []
    layout = spec.layout
    if layout.disjoint:
        base = layout.base if layout.base is not None else NON_PIE_BASE[arch]
        base = base % DISJOINT_SLOT + disjoint_index * DISJOINT_SLOT
        flags += ["-no-pie", "-fno-pie", f"-Wl,-Ttext-segment={base:#x}"]
    elif layout.aslr:
        flags += ["-fPIE", "-pie"]
    else:
        flags += ["-no-pie", "-fno-pie"]
        if layout.base is not None:
            flags.append(f"-Wl,-Ttext-segment={layout.base:#x}")
    return tuple(flags), not layout.aslr


def compile_target(program: str, flags: Sequence[str]) -> str:
    """``src/PROGRAM.c`` compiled with the common flags and ``flags``; cached."""
    source = SOURCES / f"{program}.c"
    if not source.is_file():
        raise FileNotFoundError(f"no vulnerable target {program!r} in {SOURCES}")
    gcc = shutil.which("gcc")
    if gcc is None:
        raise EnvironmentProblem("gcc not found; it builds the vulnerable targets (./run setup installs it)")
    text = source_text(source)
    all_flags = (*COMMON_FLAGS, *flags)
    digest = hashlib.sha256(text + b"\0" + "\0".join(all_flags).encode() + gcc.encode()).hexdigest()[:12]
    out = cache_dir() / f"vuln-{program}-{digest}"
    if out.exists():
        return str(out)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    done = subprocess.run([gcc, *all_flags, "-o", str(tmp), str(source)], capture_output=True, text=True)
    if done.returncode != 0:
        message = done.stderr.strip()
        if "-m32" in flags and ("cannot find" in message or "No such file" in message):
            raise EnvironmentProblem(f"gcc -m32 cannot build {source.name}: install gcc-multilib ({message[:200]})")
        raise EnvironmentProblem(f"compiling {source.name} {' '.join(flags)} failed: {message[:300]}")
    tmp.replace(out)
    return str(out)


def build_variants(program: str, variants: Sequence[VariantSpec]) -> list[Build]:
    """The build of ``program`` for each variant (identical specs share one)."""
    builds = []
    disjoint = 0
    for spec in variants:
        if spec.layout.disjoint:
            disjoint += 1
        flags, fixed = variant_flags(spec, disjoint)
        builds.append(Build(compile_target(program, flags), spec.arch or Arch.X86_64, flags, "-pie" in flags, fixed))
    return builds


def no_randomize(builds: Sequence[Build]) -> bool:
    """Whether the run must start its variants with ADDR_NO_RANDOMIZE. The
    personality is inherited from the orchestrator, so it is all or none."""
    wanted = {b.no_randomize for b in builds}
    if len(wanted) > 1:
        raise Unavailable(
            "variants with aslr: false beside variants with ASLR: real mode turns address "
            "randomisation off for all variants of a run or for none"
        )
    return wanted == {True}
