"""Calls and outcomes in canonical form: the currency of every monitor.

A :class:`Call` is a system call as the core sees it: its canonical name (the
same on every architecture) and its arguments already converted to their
*meaning*. Modes build calls (real mode from registers and tracee memory, sim
mode from a workload); monitors only ever compare and route them.

Canonical argument values, by argument kind, are listed in
:class:`dmvx.syscalls.ArgKind`: descriptors and integers as ``int``, buffers
the call reads by their content (structs re-encoded canonically), buffers it
writes by how much was asked for (bytes, or elements for a struct, never the
pointer), paths as ``str``, flags in the canonical x86-64 encoding, and
pointers as ``None`` -- addresses differ between diversified variants by
design.

Equality of two calls is plain tuple equality of ``(name, args)``: that is
both the cheapest and the only comparison the core needs.

Calls and outcomes are treated as immutable values but are not frozen
dataclasses: a frozen dataclass costs four times as much to build, and one
is built at every system call of every variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Pseudo-call names for process ends. They take a place in the compared call
#: sequence so "one variant exited while the other made a call" and "both
#: exited with different status" are ordinary mismatches.
EXIT = "<exit>"
KILLED = "<killed>"
PSEUDO_CALLS = frozenset({EXIT, KILLED})


@dataclass(slots=True, unsafe_hash=True)
class Call:
    """One system call in canonical form (name and argument meanings)."""

    name: str
    args: tuple[Any, ...] = ()

    def __str__(self) -> str:
        return f"{self.name}({', '.join(_short(a) for a in self.args)})"

    @property
    def is_process_end(self) -> bool:
        return self.name in PSEUDO_CALLS


@dataclass(slots=True, unsafe_hash=True)
class Outcome:
    """What a call did: its return value and the bytes it wrote to memory.

    ``outputs`` holds ``(argument index, bytes)`` pairs, one per output buffer
    the kernel filled (the ``buf`` of ``read``, the ``statbuf`` of ``fstat``).
    A follower that skips the call writes the same bytes at *its own* pointer
    for that argument, so addresses never need to match.
    """

    result: int
    outputs: tuple[tuple[int, bytes], ...] = ()

    @property
    def size(self) -> int:
        """Bytes of payload this outcome carries (for CB and link accounting)."""
        outputs = self.outputs
        # Most outcomes carry no output: skip building a generator for them.
        return 8 + sum(len(data) for _, data in outputs) if outputs else 8


def _short(value: Any, limit: int = 24) -> str:
    if value is None:
        return "ptr"
    if isinstance(value, (bytes, bytearray)):
        text = repr(bytes(value[:limit]))
        return text + (f"...<{len(value)}B>" if len(value) > limit else "")
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[:limit] + "...")
    return repr(value)
