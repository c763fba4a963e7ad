"""The diversity model: how each variant reacts to an exploit.

An exploit is crafted for one variant (the scenario's ``attack.target``): its
addresses, offsets or struct layout. Whether it also works in another variant
depends on what the two share, as the attack table (docs/attacks.md) lays out:

==================  ==========================================  =======================
attack              works in another variant when it shares     otherwise the variant
==================  ==========================================  =======================
rop-absolute        the arch and the absolute image address     crashes (SIGSEGV)
relative-rop        the arch (the same binary image)            crashes (SIGSEGV); another
                                                                ABI of the same ISA makes
                                                                the call without its
                                                                arguments
data-only           the data model (word size, struct layout)   takes the benign path
pointer-leak        the printed pointer value                   prints another pointer
==================  ==========================================  =======================

This module decides only the *reaction* of each variant. Whether the run is
stopped, when, and whether a harmful call ran first is for the monitors of
:mod:`dmvx.monitor` to decide when the simulated variants make those calls.

Layouts: a variant without ASLR loads at its ``base`` (or the architecture's
usual non-PIE address); with ASLR at a page-aligned address drawn from a
seeded stream with the architecture's entropy (so two ASLR variants collide
with probability 2**-bits, which is real for 8-bit i386 ASLR); a ``disjoint``
variant gets its own slot of the address space, so none of its addresses is
valid in another disjoint variant.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from dmvx.syscalls import Arch

#: Usual load address of a non-PIE executable, per architecture.
NON_PIE_BASE = {Arch.X86_64: 0x400000, Arch.I386: 0x8048000, Arch.AARCH64: 0x400000}
#: Where a PIE image is placed with ASLR, per architecture (the random part is added).
PIE_REGION = {Arch.X86_64: 0x555555554000, Arch.I386: 0x56555000, Arch.AARCH64: 0xAAAAAAAA0000}
#: Size of one disjoint slot: variant k of a disjoint set lives in slot k.
DISJOINT_SLOT = {Arch.X86_64: 1 << 40, Arch.I386: 1 << 28, Arch.AARCH64: 1 << 40}
#: Offset of the leaked code pointer inside the image: the compilers of the
#: three architectures place the function differently.
LEAKED_OFFSET = {Arch.X86_64: 0x1189, Arch.I386: 0x11AD, Arch.AARCH64: 0x0A14}
#: Instruction set families: i386 and x86-64 builds of one source differ in
#: ABI but not in the kind of code the compiler lays out, so a relative jump
#: into the other build lands in the same function, at another instruction.
ISA_FAMILY = {Arch.X86_64: "x86", Arch.I386: "x86", Arch.AARCH64: "arm"}
#: Data models: struct layout and word size. x86-64 and AArch64 Linux are both
#: LP64 with the same alignment rules, so a data structure looks the same.
DATA_MODEL = {Arch.X86_64: "LP64", Arch.I386: "ILP32", Arch.AARCH64: "LP64"}

VARIANT_ATTACKS = ("rop-absolute", "relative-rop", "data-only", "pointer-leak")
#: A compromised leader's lie in its in-process ring (``dmvx run --in-process
#: on``, docs/attacks.md): the variant an earlier exploit owns writes the
#: records its followers are fed, so no diversity changes what they see.
RECORD_FORGERY = "record-forgery"


class Reaction(str, Enum):
    SUCCEEDS = "succeeds"  # makes the attacker's harmful call
    CRASHES = "crashes"  # killed by SIGSEGV at the point of the attack
    DIFFERS = "differs"  # behaves differently (another call, another output)
    UNAFFECTED = "unaffected"  # the attack is not against variants


@dataclass(frozen=True)
class VariantLayout:
    """What the diversity model needs to know of one variant."""

    arch: Arch
    aslr: bool
    base: int | None
    disjoint: bool


@dataclass(frozen=True)
class VariantReaction:
    reaction: Reaction
    reason: str
    image_base: int
    leaked_pointer: bytes = b""


def image_bases(layouts: Sequence[VariantLayout], seed: int, aslr_bits: Mapping[str, int]) -> list[int]:
    """The load address of every variant's image."""
    rng = random.Random(f"{seed}:layout")
    bases = []
    disjoint_slot = 0
    for layout in layouts:
        arch = layout.arch
        if layout.aslr:
            bits = aslr_bits.get(arch.value, 28)
            base = PIE_REGION[arch] + (rng.getrandbits(bits) << 12 if bits else 0)
        else:
            base = layout.base if layout.base is not None else NON_PIE_BASE[arch]
        if layout.disjoint:
            disjoint_slot += 1
            base = (base % DISJOINT_SLOT[arch]) + disjoint_slot * DISJOINT_SLOT[arch]
        bases.append(base)
    return bases


def leaked_pointer(layout: VariantLayout, base: int) -> bytes:
    """What a variant prints when the bug leaks a code pointer."""
    width = 2 * layout.arch.word_size
    return f"{base + LEAKED_OFFSET[layout.arch]:#0{width + 2}x}\n".encode()


def reactions(
    kind: str, target: int, layouts: Sequence[VariantLayout], seed: int, aslr_bits: Mapping[str, int]
) -> list[VariantReaction]:
    """Each variant's reaction to an attack of ``kind`` crafted for ``target``."""
    bases = image_bases(layouts, seed, aslr_bits)
    goal = layouts[target]
    goal_base = bases[target]
    out = []
    for index, (layout, base) in enumerate(zip(layouts, bases)):
        pointer = leaked_pointer(layout, base)
        same_arch = layout.arch is goal.arch
        if kind == RECORD_FORGERY:
            if index == target:
                reaction = VariantReaction(
                    Reaction.SUCCEEDS, "owns its in-process ring: its record says what it chooses", base
                )
            else:
                reaction = VariantReaction(
                    Reaction.UNAFFECTED,
                    "takes the forged record as the leader's outcome: its benign path goes on",
                    base,
                )
            out.append(reaction)
            continue
        if kind not in VARIANT_ATTACKS:
            out.append(VariantReaction(Reaction.UNAFFECTED, "the attack targets the monitors' channel", base))
            continue
        if index == target:
            out.append(VariantReaction(Reaction.SUCCEEDS, "the exploit was built for this variant", base, pointer))
            continue
        if kind == "rop-absolute":
            if same_arch and base == goal_base:
                reaction = VariantReaction(Reaction.SUCCEEDS, "same image address: the gadget addresses hold", base)
            elif not same_arch:
                reaction = VariantReaction(
                    Reaction.CRASHES, f"{layout.arch.value} code is not at the {goal.arch.value} gadget addresses", base
                )
            else:
                reaction = VariantReaction(
                    Reaction.CRASHES, f"image at {base:#x}, not {goal_base:#x}: the gadget addresses are unmapped", base
                )
        elif kind == "relative-rop":
            if same_arch:
                reaction = VariantReaction(Reaction.SUCCEEDS, "same binary: relative offsets hold at any base", base)
            elif ISA_FAMILY[layout.arch] == ISA_FAMILY[goal.arch]:
                # The real i386 stack_overflow build lands 11 bytes into its
                # own admin_reply: the execve comes, its argv set-up does not.
                reaction = VariantReaction(
                    Reaction.DIFFERS,
                    f"the {layout.arch.value} build has the target "
                    "function at another offset: the jump lands inside it and makes "
                    "the call with arguments it does not have",
                    base,
                )
            else:
                reaction = VariantReaction(
                    Reaction.CRASHES, f"a {layout.arch.value} image has other code at those offsets", base
                )
        elif kind == "data-only":
            if DATA_MODEL[layout.arch] == DATA_MODEL[goal.arch]:
                reaction = VariantReaction(
                    Reaction.SUCCEEDS, f"same data model ({DATA_MODEL[layout.arch]}): the overwrite hits the flag", base
                )
            else:
                reaction = VariantReaction(
                    Reaction.DIFFERS, f"{DATA_MODEL[layout.arch]} struct layout: the overwrite hits another field", base
                )
        else:  # pointer-leak
            goal_pointer = leaked_pointer(goal, goal_base)
            if pointer == goal_pointer:
                reaction = VariantReaction(Reaction.SUCCEEDS, "prints the same pointer", base, pointer)
            else:
                reaction = VariantReaction(
                    Reaction.DIFFERS,
                    f"prints {pointer.decode().strip()}, not {goal_pointer.decode().strip()}",
                    base,
                    pointer,
                )
        out.append(reaction)
    return out


def setting_name(layouts: Sequence[VariantLayout]) -> str:
    """A short name for a set of variants' diversity, for tables."""
    archs = sorted({layout.arch.value for layout in layouts})
    if len(archs) > 1:
        models = {DATA_MODEL[layout.arch] for layout in layouts}
        return ("abi" if len(models) > 1 else "isa") + ":" + "+".join(archs)
    if all(layout.disjoint for layout in layouts):
        return "disjoint"
    if any(layout.aslr for layout in layouts):
        return "aslr"
    bases = {layout.base for layout in layouts}
    return "identical" if len(bases) == 1 else "fixed-distinct"
