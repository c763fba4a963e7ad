"""Steering: a follower's own run of a call, nudged towards the leader's result.

A follower runs some calls itself where only timing could make its result
differ from the leader's, and asynchronous replication tells it the
leader's result first: a pipe ``read`` or ``write`` moves exactly as many
bytes as the leader's did, ``wait4`` reaps the child the leader's reaped,
and a write that met a closed pipe in one variant but not the other ends
as in the leader. On a non-blocking pipe the leader's ``EAGAIN`` (its pipe
empty, or full) is this variant's too, without running the call; where the
leader moved bytes and this variant's pipe is not ready yet (its own writer
or reader is late), the call runs again until it has moved as many. The
same calls also get this variant's own pids in their arguments
(:mod:`realmode.pids`).
"""

from __future__ import annotations

import signal

from dmvx.monitor import WRITES
from dmvx.syscalls import Arch
from realmode import abi
from realmode import ptrace_ll as ll
from realmode.pids import PidMap
from realmode.tracer.procs import Held, Proc

WNOHANG = 1
EAGAIN, EPIPE = 11, 32
#: Calls steered byte for byte: the count argument (third) is cut to the
#: leader's result, and the call goes on until it has moved that many.
_COUNTED = frozenset({"read", "write"})
MASK64 = (1 << 64) - 1


def signed(value: int, arch: Arch) -> int:
    bits = 32 if arch is Arch.I386 else 64
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def steer(proc: Proc, held: Held, pids: PidMap, expect: int | None) -> None:
    """A follower runs this call itself: give it this variant's pids and
    steer it towards the leader's result ``expect`` (see the module doc)."""
    raw = held.raw
    name = raw.name
    registers = abi.ARG_REGISTERS[raw.arch]
    mask = abi.WORD_MASK[raw.arch]
    changes: dict[str, int] = {}
    for index in pids.indexes(name, raw.call.args) if pids.active else ():
        value = raw.call.args[index]
        if isinstance(value, int) and value not in (0, -1):
            real = pids.real(value)
            if real != value:
                changes[registers[index]] = real & mask
    if expect is not None:
        held.expect = expect
        if name in _COUNTED and expect == -EAGAIN:
            held.fake = -EAGAIN  # the leader's non-blocking pipe was empty (full): so is this one's, for the program
        elif name in _COUNTED and expect > 0 and signed(raw.args[2], raw.arch) > expect:
            changes[registers[2]] = expect
        elif name == "wait4":
            if expect > 0:
                changes[registers[0]] = pids.real(expect) & mask
                changes[registers[2]] = (raw.args[2] & ~WNOHANG) & mask
            elif expect == 0:
                held.fake = 0
        elif name in WRITES and expect == -EPIPE:
            held.fake = -EPIPE
            held.inject = signal.SIGPIPE
    if held.fake is not None or changes:
        regs = ll.get_regs(proc.pid)
        held.steer = changes
        held.restore = {}
        for register, value in changes.items():
            held.restore[register] = getattr(regs, register)
            setattr(regs, register, value)
        if held.fake is not None:
            regs.orig_rax = MASK64
            regs.rax = held.fake & MASK64
        ll.set_regs(proc.pid, regs)


def resteer(proc: Proc, held: Held) -> None:
    """At the entry of a restarted or repeated call: the steering again."""
    registers = abi.ARG_REGISTERS[held.raw.arch]
    values = dict(held.steer or {})
    if held.done_bytes:
        assert held.expect is not None  # a partly done read knows the length it expects
        mask = abi.WORD_MASK[held.raw.arch]
        values[registers[1]] = (held.raw.args[1] + held.done_bytes) & mask
        values[registers[2]] = held.expect - held.done_bytes
    if not values:
        return
    regs = ll.get_regs(proc.pid)
    for register, value in values.items():
        setattr(regs, register, value)
    ll.set_regs(proc.pid, regs)


def after_steering(proc: Proc, held: Held, rval: int) -> int | None:
    """The follower's own call returned ``rval``: finish the steering and
    return the result the program is to see. None means the call goes on
    (a read that has not read what the leader's read yet)."""
    if held.fake is not None:
        return held.fake
    expect = held.expect
    if expect is None:
        return rval
    name = held.raw.name
    # EAGAIN where the leader read data or the end (wrote data): a
    # non-blocking pipe, after a poll this variant took from the leader; its
    # own writer (reader) is late. Again (a read: the whole count again when
    # the leader read the end).
    again = name in _COUNTED and rval == -EAGAIN and expect >= 0
    if name in _COUNTED and (rval > 0 or again):
        held.done_bytes += max(rval, 0)
        if held.done_bytes < expect or again:
            # The rest: back to the syscall instruction with buffer
            # and count moved on, as the kernel itself restarts a call.
            regs = ll.get_regs(proc.pid)
            registers = abi.ARG_REGISTERS[held.raw.arch]
            mask = abi.WORD_MASK[held.raw.arch]
            if held.restore is None:
                held.restore = {}
            for register in (registers[1], registers[2]):
                held.restore.setdefault(register, getattr(regs, register))
            setattr(regs, registers[1], (held.raw.args[1] + held.done_bytes) & mask)
            setattr(regs, registers[2], expect - held.done_bytes if expect > held.done_bytes else held.raw.args[2])
            regs.rax = held.raw.nr
            regs.rip = (regs.rip - 2) & mask
            ll.set_regs(proc.pid, regs)
            held.continuing = True
            ll.resume(proc.pid, True)
            return None
        return held.done_bytes
    if name in WRITES and rval == -EPIPE and expect >= 0:
        proc.drop_signal = signal.SIGPIPE  # the leader's reader took it; this one's had gone
        return expect
    return rval
