"""The seccomp-BPF filter each variant gets before exec: no stop where none is needed.

A ptrace stop costs 15-20 us; a call the filter lets through costs next to
nothing. So the filter is generated from the policy through the broker
itself: every call the broker routes LOCAL whatever its arguments gets
``SECCOMP_RET_ALLOW``; calls that are local only without ``PROT_EXEC``
(``mmap``, ``mprotect``, ``pkey_mprotect``) are allowed unless bit 2 of
their third argument is set, which BPF checks; everything else stops with
``SECCOMP_RET_TRACE`` and goes to the monitor.

The filter checks the audit architecture first: x86-64 and i386 each get
their own numbers (an ``-m32`` variant runs under the same kernel), x32
calls on x86-64 are refused (``ENOSYS``: no monitored program uses them, and
an exploit must not get a second numbering the filter does not know), and an
unknown architecture always stops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dmvx import syscalls
from dmvx.broker import Broker
from dmvx.calls import Call
from dmvx.fdtable import FdTable
from dmvx.policy import LOCAL_CALLS, PROT_EXEC, SENSITIVE_WHEN, Policy, Route
from dmvx.syscalls import Arch
from realmode import ptrace_ll as ll
from realmode.abi import STOPPED_LOCAL

# classic BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_JA = 0x05

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_ERRNO = 0x00050000
ENOSYS = 38
X32_SYSCALL_BIT = 0x40000000

_OFF_NR, _OFF_ARCH, _OFF_IP_LOW, _OFF_IP_HIGH, _OFF_ARG2_LOW = 0, 4, 8, 12, 16 + 2 * 8

Insn = tuple[int, int, int, int]


def local_names(policy: Policy) -> tuple[frozenset[str], frozenset[str]]:
    """(always local, local unless PROT_EXEC) for ``policy``, asked of the broker."""
    broker = Broker(policy)
    always: set[str] = set()
    checked: set[str] = set()
    for name in LOCAL_CALLS | frozenset(n for n, r in policy.overrides.items() if r is Route.LOCAL):
        if name in SENSITIVE_WHEN:
            index, bit, _ = SENSITIVE_WHEN[name]
            if bit != PROT_EXEC or index != 2:
                continue  # a check this filter cannot express: let it stop
            plain = Call(name, (None, 0, 0, 0, -1, 0))
            marked = Call(name, (None, 0, PROT_EXEC, 0, -1, 0))
            if (
                broker.decide(plain, FdTable()).route is Route.LOCAL
                and broker.decide(marked, FdTable()).route is not Route.LOCAL
            ):
                checked.add(name)
        elif broker.decide(Call(name, ()), FdTable()).route is Route.LOCAL and name not in STOPPED_LOCAL:
            always.add(name)  # (the tracer needs to see STOPPED_LOCAL calls: realmode.abi)
    return frozenset(always), frozenset(checked)


def _numbers(names: frozenset[str], arch: Arch) -> list[int]:
    """Every raw number that means one of ``names`` on ``arch`` (the core's table)."""
    out: set[int] = set()
    for name in names:
        try:
            out.update(syscalls.all_numbers(name, arch))
        except syscalls.UnknownSyscall:
            continue  # a policy name for a call no architecture here has
    return sorted(out)


def _block(
    allow: list[int], check: list[int], reject_x32: bool, fast: Sequence[int] = (), site: int | None = None
) -> list[Insn]:
    """Instructions for one architecture, ending in its own returns. ``fast``
    calls are allowed when issued from the instruction before ``site`` (the
    in-process path's trampoline, realmode.inproc) and stop anywhere else."""
    body: list[tuple[str, int, str | None]] = []  # (op, k, target label)
    body.append(("ld", _OFF_NR, None))
    if reject_x32:
        body.append(("jge", X32_SYSCALL_BIT, "errno"))
    body += [("jeq", nr, "allow") for nr in allow]
    body += [("jeq", nr, "check") for nr in check]
    if site is not None:
        body += [("jeq", nr, "site") for nr in fast]
    body.append(("ret", SECCOMP_RET_TRACE, None))
    labels = {"check": len(body)}
    body.append(("ldarg", _OFF_ARG2_LOW, None))
    body.append(("jset", PROT_EXEC, "trace"))
    if site is not None:
        body.append(("jmp", 0, "allow"))
        labels["site"] = len(body)
        body.append(("ldarg", _OFF_IP_LOW, None))
        body.append(("jne", site & 0xFFFFFFFF, "trace"))
        body.append(("ldarg", _OFF_IP_HIGH, None))
        body.append(("jne", site >> 32, "trace"))
    labels["allow"] = len(body)
    body.append(("ret", SECCOMP_RET_ALLOW, None))
    labels["trace"] = len(body)
    body.append(("ret", SECCOMP_RET_TRACE, None))
    labels["errno"] = len(body)
    body.append(("ret", SECCOMP_RET_ERRNO | ENOSYS, None))
    out: list[Insn] = []
    for pc, (op, k, target) in enumerate(body):
        if op in ("ld", "ldarg"):
            out.append((_LD_W_ABS, 0, 0, k))
        elif op == "ret":
            out.append((_RET_K, 0, 0, k))
        else:
            assert target is not None
            jump = labels[target] - pc - 1
            if jump > 255:
                raise ValueError("seccomp filter too long for one jump")
            if op == "jne":  # not equal -> target; equal -> fall through
                out.append((_JEQ_K, 0, jump, k))
                continue
            if op == "jmp":
                out.append((_JA, 0, 0, jump))
                continue
            code = {"jeq": _JEQ_K, "jge": _JGE_K, "jset": _JSET_K}[op]
            # jset: matched -> stop; not matched -> fall through to allow
            out.append((code, jump, 0, k))
    return out


def build_filter(
    policy: Policy, fast: frozenset[str] = frozenset(), sites: Mapping[Arch, int] | None = None
) -> list[Insn]:
    """The whole filter for ``policy`` as ``(code, jt, jf, k)`` instructions.
    ``fast`` names the calls allowed from the in-process path's ``sites``
    (per architecture, the address after the trampoline's one call
    instruction: ``syscall`` on x86-64, ``int $0x80`` on i386; the kernel
    reports that address as the call's instruction pointer on both)."""
    sites = sites or {}
    always, checked = local_names(policy)

    def block(arch: Arch, reject_x32: bool) -> list[Insn]:
        return _block(
            _numbers(always, arch),
            _numbers(checked, arch),
            reject_x32,
            _numbers(fast - always, arch),
            sites.get(arch),
        )

    x64 = block(Arch.X86_64, True)
    i386 = block(Arch.I386, False)
    head: list[Insn] = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 2, 0, ll.AUDIT_ARCH_X86_64),  # -> x64 block (after the next two)
        (_JEQ_K, 1 + len(x64), 0, ll.AUDIT_ARCH_I386),  # -> i386 block
        (_RET_K, 0, 0, SECCOMP_RET_TRACE),
    ]
    return head + x64 + i386
