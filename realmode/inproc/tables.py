"""The native monitor's routing tables, compiled from the core's broker.

The library wraps a fixed set of calls (:data:`FAST_CALLS`); which of them it
may take without a stop is the core's decision, as the seccomp filter's is:
a call is fast when the broker routes it asynchronously to the leader alone
(``replicate`` or ``predict``, effect leader, not synchronous, not refused) --
the calls a follower skips with the leader's outcome. For calls whose route
depends on their descriptor (``dmvx.policy.FD_CALLS``) the table holds one
byte per descriptor, recomputed where the core's descriptor table changes
(:meth:`realmode.inproc.path.InProcess.refresh`).
"""

from __future__ import annotations

from dmvx import syscalls
from dmvx.broker import Broker
from dmvx.calls import Call
from dmvx.fdtable import FdTable
from dmvx.policy import FD_CALLS, Decision, Effect, Policy, Route
from dmvx.syscalls import Arch
from realmode.inproc import layout

#: The calls ``dipmon.c`` wraps, by canonical name.
FAST_CALLS = (
    "getpid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getpgrp",
    "sched_yield",
    "getcwd",
    "read",
    "pread64",
    "writev",
    "recvfrom",
    "shutdown",
    "accept4",
    "close",
    "epoll_ctl",
    "epoll_wait",
    "clock_gettime",
)
#: Of those, the calls every variant runs on its own descriptor (effect
#: ``each``): a follower's library runs its own and the core compares its
#: result with the leader's entry, as at a stop.
EACH_CALLS = frozenset({"close"})
#: The architectures the library is built for (realmode/native/build.py).
ARCHES = (Arch.X86_64, Arch.I386)
#: Every raw number of each wrapped call, per architecture (an i386 name may
#: have two: ``getuid`` and ``getuid32``).
ALL_NUMBERS: dict[Arch, dict[str, tuple[int, ...]]] = {
    arch: {name: syscalls.all_numbers(name, arch) for name in FAST_CALLS} for arch in ARCHES
}
#: The number each library issues a call by (the first), per architecture:
#: what a follower's in ring names.
ARCH_NUMBERS: dict[Arch, dict[str, int]] = {
    arch: {name: numbers[0] for name, numbers in table.items()} for arch, table in ALL_NUMBERS.items()
}
#: A record's call by its number, per architecture.
ARCH_NAMES: dict[Arch, dict[int, str]] = {
    arch: {nr: name for name, numbers in table.items() for nr in numbers} for arch, table in ALL_NUMBERS.items()
}
#: The x86-64 ones.
NUMBERS: dict[str, int] = ARCH_NUMBERS[Arch.X86_64]
NAMES: dict[int, str] = ARCH_NAMES[Arch.X86_64]


def in_ring_number(arch: Arch, call: Call) -> int | None:
    """The number a follower's library takes ``call`` (a leader's entry) by,
    or None when no wrapper takes it: the call's own, or for the canonical
    ``epoll_pwait`` without a signal mask -- which a leader's ``epoll_wait``
    is to the core (:mod:`dmvx.syscalls`) -- the ``epoll_wait`` wrapper's."""
    numbers = ARCH_NUMBERS[arch]
    nr = numbers.get(call.name)
    if nr is None and call.name == "epoll_pwait" and len(call.args) > 4 and not call.args[4]:
        return numbers.get("epoll_wait")
    return nr


#: The numbers whose decoding reads the variant's memory (writev's iovecs and bytes).
#: (and accept4's addrlen, epoll_ctl's event).
ARCH_READS_MEMORY: dict[Arch, frozenset[int]] = {
    arch: frozenset(nr for name in ("writev", "accept4", "epoll_ctl") for nr in ALL_NUMBERS[arch][name])
    for arch in ARCHES
}
READS_MEMORY = ARCH_READS_MEMORY[Arch.X86_64]
#: Of those, the numbers whose decoding reads only the memory as it was
#: before the call (the record's ``REG_BEFORE`` regions: accept4's addrlen);
#: the rest of their record (the peer's address) is outcome.
ARCH_DECODES_BEFORE: dict[Arch, frozenset[int]] = {arch: frozenset(ALL_NUMBERS[arch]["accept4"]) for arch in ARCHES}

_FAST_ROUTES = (Route.REPLICATE, Route.PREDICT)


def takes_fast(decision: Decision) -> bool:
    """Whether a call so decided may run without a stop: the leader runs it
    and the followers take its outcome, asynchronously."""
    return (
        decision.route in _FAST_ROUTES
        and decision.effect is Effect.LEADER
        and not decision.sync
        and not decision.refuse
    )


def takes_fast_each(name: str, decision: Decision) -> bool:
    """Whether ``name`` so decided may run without a stop as a call every
    variant runs itself (:data:`EACH_CALLS`), asynchronously: or as
    :func:`takes_fast` says."""
    if name not in EACH_CALLS:
        return takes_fast(decision)
    return (
        decision.route in _FAST_ROUTES
        and decision.effect in (Effect.LEADER, Effect.EACH)
        and not decision.sync
        and not decision.refuse
    )


def _probe(name: str, fd: int | None) -> Call:
    return Call(name, (fd, None, 0, 0, None, None) if fd is not None else ())


#: What a follower's library issues from the trampoline beyond the fast
#: calls themselves: ``dup``, which makes its ``accept4``'s descriptor at the
#: lowest free number (a copy of its own listening socket's placeholder, as
#: its tracer's ``/dev/null`` would be; never over a descriptor in use), then
#: ``dup3`` over that copy for ``SOCK_CLOEXEC``, or ``close`` of the copy when
#: it is not the leader's number. Never a leader's: a leader's sockets and
#: files are real, and a ``dup`` behind the core's back would let a
#: compromised one give a descriptor the core takes for one kind another
#: object. A follower has nothing real to alias there: its standard streams
#: are ``/dev/null`` and every descriptor of a replicated call a placeholder.
FOLLOWER_PLACES = ("dup", "dup3", "close")


def filter_names(policy: Policy, follower: bool = False) -> frozenset[str]:
    """The calls the seccomp filter lets through from the trampoline under
    ``policy``: those some descriptor (or none) makes fast, and for a
    ``follower`` whose ``accept4`` is fast :data:`FOLLOWER_PLACES`. The
    filter checks the number and the address only; the descriptor is the
    library's table's business, and the core checks every record the
    library writes."""
    broker = Broker(policy)
    fds = FdTable()
    names = set()
    for name in FAST_CALLS:
        if name in FD_CALLS:
            if any(takes_fast_each(name, broker.decide(Call(name, (0, None, 0, 0)), probe)) for probe in _fd_probes()):
                names.add(name)
        elif takes_fast(broker.decide(_probe(name, None if name not in layout.FD_KINDS else 0), fds)):
            names.add(name)
    if follower and "accept4" in names:
        names.update(FOLLOWER_PLACES)
    return frozenset(names)


def _fd_probes() -> list[FdTable]:
    from dmvx.fdtable import FdInfo, FdKind

    return [FdTable({0: FdInfo(kind)}) for kind in FdKind] + [FdTable()]


def call_table(broker: Broker, fds: FdTable, arch: Arch = Arch.X86_64) -> bytes:
    """One byte per number of ``arch``: 0 stops, 1 fast, 2 fast by the fd table."""
    table = bytearray(layout.NR_TABLE)
    for name, numbers in ALL_NUMBERS[arch].items():
        if name in FD_CALLS:
            byte = 2
        elif takes_fast(broker.decide(_probe(name, None if name not in layout.FD_KINDS else 0), fds)):
            byte = 1
        else:
            continue
        for nr in numbers:
            if nr < layout.NR_TABLE:
                table[nr] = byte
    return bytes(table)


def fd_bits(broker: Broker, fds: FdTable, fd: int) -> int:
    """The fd route byte of ``fd``: bit k set when fd call kind k is fast on it."""
    bits = 0
    for name, bit in layout.FD_KINDS.items():
        if name in FD_CALLS and takes_fast_each(name, broker.decide(Call(name, (fd, None, 0, 0)), fds)):
            bits |= 1 << bit
    return bits


def socket_bits(broker: Broker) -> int:
    """The fd route byte of a socket the leader's fast ``accept4`` made
    (the library sets it; the core's table says the same once it has the
    record: :meth:`dmvx.fdtable.FdTable.after` makes it a socket)."""
    from dmvx.fdtable import FdInfo, FdKind

    return fd_bits(broker, FdTable({0: FdInfo(FdKind.SOCKET)}), 0)


def fd_table(broker: Broker, fds: FdTable) -> bytes:
    """The fd route bytes of every descriptor the table has room for: the
    core's for a descriptor it knows, 0 for one it does not (a descriptor
    that appears later gets its byte once the core's table has it:
    :meth:`realmode.inproc.path.InProcess.sync_fds`, or from the library for
    a fast accept4's)."""
    known = fds.snapshot()
    return bytes(fd_bits(broker, fds, fd) if fd in known else 0 for fd in range(layout.FD_TABLE))
