"""From registers and tracee memory to canonical calls and outcomes, and back.

The core compares *meanings*, and its one table (:mod:`dmvx.syscalls`) says
what each argument of each call means on each architecture. This module only
reads and writes tracee memory by that table:

* :meth:`Reader.call` turns a syscall stop into a :class:`RawCall`: the raw
  registers (needed later to finish the call) and the canonical
  :class:`~dmvx.calls.Call` -- each argument decoded by its
  :class:`~dmvx.syscalls.ArgKind`, re-laid by :func:`~dmvx.syscalls.canonical_args`
  (i386 split offsets, ``mmap2`` pages, i386 ``socketcall``) and brought to one
  spelling by :func:`~dmvx.syscalls.normalize` (``fstat``/``newfstatat``/
  ``statx`` all become ``fstatat``), so an x86-64 and an i386 variant produce
  equal calls for equal requests.
* :meth:`Reader.outcome` reads what a call wrote. Outputs are *canonical*:
  indexed by the canonical argument position and, for structures, laid out as
  the canonical structure on x86-64 (:mod:`dmvx.structs`), so any variant can
  take them.
* :meth:`Reader.write_outcome` writes an outcome into a follower at its own
  pointers, converted to its own layout (an i386 ``statx`` buffer receives
  the leader's x86-64 ``stat`` as ``statx``).

What real mode adds to the table, because only a reader of real memory can:

* a Unix socket address ends at its NUL (the rest is the caller's stack);
* ``fcntl``'s third argument counts only for commands that take an int (for
  the others the register holds a pointer or leftover garbage);
* ``ioctl`` outputs for the terminal requests programs make on stdio;
* ``execve``'s environment is not compared: variants may be given different
  environments on purpose (docs/realmode.md, "Benign divergence");
* ``/proc/<pid>`` paths and pid arguments and results go through the
  variant's :class:`~realmode.pids.PidMap`: the canonical value of a pid is
  the leader's;
* per-variant facts in outputs every variant produces itself are left out of
  the comparison: ``wait4``'s ``rusage``, the CPU times in ``waitid``'s siginfo;
  ``getdents`` records are compared without the padding between them
  (:func:`dmvx.structs.dirents_canonical`);
* a variant sees the machine as a native run does: ``sched_getaffinity`` of
  itself answers the CPUs the run started with (``machine_cpus``), not the
  one CPU its placement pins it to, so ``nproc`` and thread pools size
  themselves as they do natively.
"""

from __future__ import annotations

import errno
import os
import re
import struct as _st
from dataclasses import dataclass
from typing import Protocol

from dmvx import _syscall_numbers as _table
from dmvx import structs, syscalls
from dmvx.calls import Call, Outcome
from dmvx.syscalls import Arch, Arg, ArgKind, SyscallSpec
from realmode import ptrace_ll as ll
from realmode.epoll import EVENTS_ARG, WAITS, EpollMap
from realmode.pids import PID_ARGS, PidMap

K = ArgKind
X86_64, I386 = Arch.X86_64, Arch.I386

_BY_AUDIT = {ll.AUDIT_ARCH_X86_64: X86_64, ll.AUDIT_ARCH_I386: I386}

#: Where the arguments of a call sit, per architecture (``int 0x80`` /
#: ``syscall`` conventions); an i386 tracee shows through the x86-64 names.
ARG_REGISTERS: dict[Arch, tuple[str, ...]] = {
    X86_64: ("rdi", "rsi", "rdx", "r10", "r8", "r9"),
    I386: ("rbx", "rcx", "rdx", "rsi", "rdi", "rbp"),
}
WORD_MASK = {X86_64: (1 << 64) - 1, I386: (1 << 32) - 1}

#: fcntl commands whose third argument is an int.
_FCNTL_INT_ARG = frozenset({0, 2, 4, 8, 10, 1024, 1026, 1030, 1031, 1033})
#: ioctl requests whose output programs read from stdio: request -> bytes.
_IOCTL_OUT = {0x5401: 36, 0x5413: 8, 0x541B: 4, 0x540F: 4}  # TCGETS TIOCGWINSZ FIONREAD TIOCGPGRP
_SOCKADDR_ARGS = frozenset({"addr", "dest_addr"})
#: Outputs that are facts of the variant itself, never compared: (call, canonical index).
_PRIVATE_OUTPUTS = frozenset({("wait4", 3), ("waitid", 4)})
_MAX_BUF = 1 << 26
#: C types of 32 bits in the kernel's x86-64 signatures: such an argument
#: means its low half, signed (an i386 variant passes the same 32 bits).
_INT32_TYPES = frozenset(
    {
        "int",
        "unsigned int",
        "unsigned",
        "pid_t",
        "u32",
        "umode_t",
        "uid_t",
        "gid_t",
        "clockid_t",
        "const clockid_t",
        "mqd_t",
        "key_t",
        "key_serial_t",
        "rwf_t",
        "qid_t",
        "const __u32",
        "__s32",
        "const int",
        "timer_t",
    }
)
_INT32_ARGS: dict[str, frozenset[int]] = {
    name: frozenset(i for i, (_, ctype) in enumerate(signature) if ctype in _INT32_TYPES)
    for name, signature in _table.SIGNATURES.items()
}
_PROC_PID = re.compile(r"^/proc/(\d+)(?=/|$)")
#: A thread's directory (``pthread_setname_np`` writes ``/proc/self/task/<tid>/comm``).
_PROC_TASK = re.compile(r"^/proc/(?:self|\d+)/task/(\d+)(?=/|$)")
#: The canonical value of an argument whose memory cannot be read.
UNREADABLE = "<unreadable>"
#: Calls whose answer is where this process may run: stopped even when local
#: (realmode.seccomp), and answered with ``Reader.machine_cpus``.
AFFINITY_CALLS = frozenset({"sched_getaffinity"})
#: ``exit`` ends one thread (``exit_group`` ends them all): stopped even though
#: local, so the tracer tells a thread that ended itself from one the group's
#: end took along (realmode.tracer.stops).
THREAD_EXIT = frozenset({"exit"})
#: Local calls the filter stops all the same (realmode.seccomp).
STOPPED_LOCAL = AFFINITY_CALLS | THREAD_EXIT


def arch_of(audit_arch: int) -> Arch | None:
    """The architecture of an ``AUDIT_ARCH_*`` value, None if not traced here."""
    return _BY_AUDIT.get(audit_arch)


@dataclass(slots=True)
class Slot:
    """One buffer a call writes: where it is in the registers and in the call."""

    raw: int  # index into RawCall.args
    canon: int | None  # index into RawCall.call.args (None: dropped by the layout)
    arg: Arg  # the raw argument's description (kind, struct, sizes)
    canon_struct: str | None


@dataclass(slots=True)
class RawCall:
    """A call as stopped: what the tracer needs to finish it later."""

    name: str  # canonical name after normalisation (the core's)
    kernel_name: str  # what the kernel calls it on this architecture (for messages)
    arch: Arch
    nr: int
    args: tuple[int, ...]  # raw argument values (registers, or socketcall's words)
    call: Call
    slots: tuple[Slot, ...] = ()
    #: ``epoll_ctl``: ``(epfd, op, fd, data)`` as this variant passed them,
    #: applied to its epoll map once the call succeeded (run or skipped).
    epoll_ctl: tuple[int, int, int, int | None] | None = None


class _Out:
    """Stands for an output buffer while :func:`syscalls.normalize` moves arguments."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def to_canonical(data: bytes, raw_struct: str | None, canon_struct: str | None, arch: Arch) -> bytes:
    """Bytes of ``raw_struct`` on ``arch`` as the canonical struct on x86-64."""
    if raw_struct is None or canon_struct is None or (arch is X86_64 and raw_struct == canon_struct):
        return data
    if raw_struct == "statx" and canon_struct == "stat":
        return structs.encode("stat", X86_64, structs.stat_from_statx(structs.decode("statx", arch, data)))
    return structs.convert(raw_struct, arch, X86_64, data, to_struct=canon_struct)


def from_canonical(data: bytes, canon_struct: str | None, raw_struct: str | None, arch: Arch) -> bytes:
    """The inverse of :func:`to_canonical`, for writing into a follower."""
    if raw_struct is None or canon_struct is None or (arch is X86_64 and raw_struct == canon_struct):
        return data
    if raw_struct == "statx" and canon_struct == "stat":
        return structs.encode("statx", arch, structs.statx_from_stat(structs.decode("stat", X86_64, data)))
    return structs.convert(canon_struct, X86_64, arch, data, to_struct=raw_struct)


class Memory(Protocol):
    """Memory a call's arguments are read from, other than the tracee's own."""

    def read(self, address: int, size: int) -> bytes: ...

    def read_string(self, address: int) -> bytes: ...


class Reader:
    """Builds calls and outcomes for one tracee."""

    def __init__(
        self,
        pid: int,
        pids: PidMap | None = None,
        abi_diverse: bool = False,
        machine_cpus: frozenset[int] | None = None,
    ) -> None:
        self.pid = pid
        #: The CPUs a native run would see (before placement pinned the
        #: variant); None: report what the kernel says.
        self.machine_cpus = machine_cpus
        self.pids = pids if pids is not None else PidMap()
        #: The variants differ in word size: lengths that are a word (glibc's
        #: getrandom of one random word for malloc) are not compared.
        self.abi_diverse = abi_diverse
        #: This process's ``epoll_event.data`` per (epfd, fd) (realmode.epoll).
        self.epoll = EpollMap()
        #: Where memory is read from instead of the tracee, while the
        #: in-process path decodes a record (realmode.inproc.path.Regions).
        self.memory: Memory | None = None

    def _read(self, address: int, size: int) -> bytes:
        memory = self.memory
        return ll.read_memory(self.pid, address, size) if memory is None else memory.read(address, size)

    def _read_string(self, address: int) -> bytes:
        memory = self.memory
        return ll.read_string(self.pid, address) if memory is None else memory.read_string(address)

    # -- calls ---------------------------------------------------------------

    def call(self, arch: Arch, nr: int, regs: tuple[int, ...]) -> RawCall:
        plan = _plan(arch, nr)
        if plan is None:
            name = f"syscall_{nr}"
            return RawCall(name, name, arch, nr, regs, Call(name))
        raw = regs
        if plan.spec.name == "socketcall":
            sub = regs[0] & 0xFFFFFFFF
            sub_plan = _plan(arch, -sub) if syscalls.socketcall(sub) is not None else None
            if sub_plan is None:
                return RawCall(plan.name, plan.kernel_name, arch, nr, regs, Call(plan.name, (sub,)))
            words = self._read(regs[1], 4 * len(sub_plan.spec.args)) if regs[1] else b""
            raw = _st.unpack(f"<{len(words) // 4}I", words[: len(words) // 4 * 4]) + (0,) * 6
            plan = sub_plan
        spec = plan.spec
        bits = plan.bits
        narrow = plan.narrow
        values = [
            self._value(arg, index, raw, 32 if index in narrow else bits, arch, spec)
            for index, arg in enumerate(spec.args)
        ]
        name = spec.name
        if name == "fcntl" and len(values) > 2 and values[1] not in _FCNTL_INT_ARG:
            values[2] = None
        elif name in ("execve", "execveat"):
            values[-1 if name == "execve" else 3] = None
        elif name == "getrandom" and self.abi_diverse:
            values[0] = values[1] = None
        args = syscalls.canonical_args(spec, tuple(values)) if spec.layout is not None else tuple(values)
        if name in PID_ARGS and self.pids.active:
            args = self.pids.canonical_args(name, args)
        canonical, normal = syscalls.normalize(name, args)
        slots = plan.slots
        if canonical != name:
            slots = _moved_slots(plan, canonical, len(args))
        if name == "ioctl" and raw[1] & 0xFFFFFFFF in _IOCTL_OUT:
            slots = (Slot(2, 2, Arg("arg", K.OUT_BUF), None),)
        registration = self._epoll_ctl(arch, raw, normal) if canonical == "epoll_ctl" else None
        return RawCall(canonical, plan.kernel_name, arch, nr, tuple(raw), Call(canonical, normal), slots, registration)

    def _epoll_ctl(self, arch: Arch, raw: tuple[int, ...], normal: tuple) -> tuple[int, int, int, int | None]:
        """What this variant registers, its own ``data`` included (the
        canonical argument reduces a pointer to 0/1 for comparison)."""
        data = None
        if raw[3]:
            try:
                data = EpollMap.parse(arch, self._read(raw[3], structs.size("epoll_event", arch)))
            except ll.PtraceError as error:
                if error.errno != errno.EFAULT:
                    raise
        epfd, op, fd = (value if isinstance(value, int) else -1 for value in normal[:3])
        return epfd, op, fd, data

    def committed(self, raw: RawCall, result: int) -> None:
        """Keep this process's epoll map in step with a call that returned ``result``."""
        if result < 0:
            return
        if raw.epoll_ctl is not None:
            self.epoll.apply(*raw.epoll_ctl)
        elif raw.name == "close" and raw.call.args and isinstance(raw.call.args[0], int):
            self.epoll.forget_fd(raw.call.args[0])

    def _value(self, arg: Arg, index: int, raw: tuple[int, ...], bits: int, arch: Arch, spec: SyscallSpec):
        """One argument's canonical value; ``"<unreadable>"`` for memory the
        variant points at but does not have (the call fails with EFAULT; two
        variants compare equal only if both do so)."""
        try:
            return self._arg(arg, index, raw, bits, arch, spec)
        except ll.PtraceError as error:
            if error.errno != errno.EFAULT:
                raise
            return UNREADABLE

    def _arg(self, arg: Arg, index: int, raw: tuple[int, ...], bits: int, arch: Arch, spec: SyscallSpec):
        value = raw[index]
        kind = arg.kind
        if kind is K.INT:
            return _signed(value, bits)
        if kind is K.FD:
            return _signed(value, 32)
        if kind is K.FLAGS:
            value &= (1 << bits) - 1
            return syscalls.canonical_flags(arg.flags, arch, value) if arg.flags else value
        if kind is K.PTR or kind is K.SIZEOF:
            return None
        if not value:
            return None
        if kind is K.PATH:
            return self._path(self._read_string(value))
        if kind is K.STR:
            return os.fsdecode(self._read_string(value))
        if kind is K.IN_BUF or kind is K.INOUT_BUF:
            data = self._read(value, self._in_size(arg, raw, bits, arch))
            if arg.struct is not None:
                try:
                    return structs.canonical_bytes(arg.struct, arch, data)
                except structs.StructError:
                    return data
            if arg.name in _SOCKADDR_ARGS and data[:2] == b"\x01\x00" and data[2:3] != b"\0":
                end = data.find(b"\0", 2)  # AF_UNIX path (not abstract): ends at its NUL
                if end >= 0:
                    data = data[:end]
            return data
        if kind is K.OUT_BUF:
            if arg.size_arg is None:
                return 1
            if arg.size_in_mem:
                return (
                    _signed(int.from_bytes(self._read(raw[arg.size_arg], 4) or b"\0" * 4, "little"), 32)
                    if raw[arg.size_arg]
                    else None
                )
            return _signed(raw[arg.size_arg], bits)
        if kind is K.STR_ARRAY:
            return self._argv(value, bits // 8)
        if kind is K.IN_IOVEC or kind is K.OUT_IOVEC:
            assert arg.size_arg is not None, f"{spec.name}: an iovec argument names its count"
            count = _signed(raw[arg.size_arg], bits)
            if kind is K.IN_IOVEC:
                return b"".join(self._iov_read(value, count, arch, None))
            return sum(length for _, length in self._iovecs(value, count, arch))
        if kind is K.IN_MSGHDR:
            return self._msghdr_in(value, arch)
        if kind is K.OUT_MSGHDR:
            header = self._msghdr(value, arch)
            total = sum(length for _, length in self._iovecs(header["msg_iov"], header["msg_iovlen"], arch))
            return (header["msg_namelen"], total, header["msg_controllen"])
        raise ValueError(f"{spec.name}: unknown argument kind {kind!r}")

    def _in_size(self, arg: Arg, raw: tuple[int, ...], bits: int, arch: Arch) -> int:
        if arg.size_arg is None:
            return structs.size(arg.struct, arch) if arg.struct else 0
        count = raw[arg.size_arg]
        if arg.size_in_mem:
            count = int.from_bytes(self._read(count, 4) or b"\0" * 4, "little") if count else 0
        count = max(0, min(_signed(count, bits), _MAX_BUF))
        return structs.size(arg.struct, arch, count) if arg.struct else count

    def _path(self, data: bytes) -> str:
        text = os.fsdecode(data)
        match = _PROC_PID.match(text)
        if match:
            pid = int(match.group(1))
            if pid in self.pids.self_pids(self.pid):
                text = "/proc/self" + text[match.end(1) :]
            else:
                virtual = self.pids.virtual(pid)
                if virtual != pid:
                    text = f"/proc/{virtual}" + text[match.end(1) :]
        task = _PROC_TASK.match(text)
        if task:
            tid = int(task.group(1))
            text = text[: task.start(1)] + str(self.pids.virtual(tid)) + text[task.end(1) :]
        return text

    def _argv(self, address: int, word: int) -> tuple[str, ...] | None:
        out: list[str] = []
        fmt = "<I" if word == 4 else "<Q"
        while len(out) < 4096:
            data = self._read(address + word * len(out), word)
            if len(data) < word:
                break
            pointer = _st.unpack(fmt, data)[0]
            if not pointer:
                break
            out.append(os.fsdecode(self._read_string(pointer)))
        return tuple(out)

    def _iovecs(self, address: int, count: int, arch: Arch) -> list[tuple[int, int]]:
        if not address or count <= 0:
            return []
        step = structs.size("iovec", arch)
        data = self._read(address, min(count, 1024) * step)
        return structs.iovecs(arch, data[: len(data) // step * step])

    def _iov_read(self, address: int, count: int, arch: Arch, limit: int | None) -> list[bytes]:
        chunks = []
        left = limit
        for base, length in self._iovecs(address, count, arch):
            if left is not None:
                length = min(length, left)
                left -= length
            if length:
                chunks.append(self._read(base, length))
            if left == 0:
                break
        return chunks

    def _msghdr(self, address: int, arch: Arch) -> dict:
        data = self._read(address, structs.size("msghdr", arch))
        return structs.decode("msghdr", arch, data)

    def _msghdr_in(self, address: int, arch: Arch) -> tuple[bytes, bytes, bytes]:
        header = self._msghdr(address, arch)
        name = self._read(header["msg_name"], header["msg_namelen"]) if header["msg_name"] else b""
        data = b"".join(self._iov_read(header["msg_iov"], header["msg_iovlen"], arch, None))
        control = self._read(header["msg_control"], header["msg_controllen"]) if header["msg_control"] else b""
        return (name, data, control)

    # -- outcomes ------------------------------------------------------------

    def outcome(self, raw: RawCall, result: int) -> Outcome:
        """The canonical outcome of ``raw``: its result and the bytes it wrote."""
        self.committed(raw, result)
        if raw.kernel_name == "_llseek" and result == 0 and raw.args[3]:
            return Outcome(_signed(int.from_bytes(self._read(raw.args[3], 8), "little"), 64))
        if result < 0 or not raw.slots or (result == 0 and raw.name == "wait4"):
            return Outcome(result)  # (wait4 writes its status only when it reaped a child)
        if raw.name in AFFINITY_CALLS and self.machine_cpus is not None and raw.args[0] & 0xFFFFFFFF in (0, self.pid):
            return self._machine_affinity(raw, result)
        outputs: list[tuple[int, bytes]] = []
        for slot in raw.slots:
            pointer = raw.args[slot.raw]
            if not pointer or slot.canon is None or (raw.name, slot.canon) in _PRIVATE_OUTPUTS:
                continue
            try:
                data = self._read_output(raw, slot, pointer, result)
            except ll.PtraceError as error:
                if error.errno != errno.EFAULT:
                    raise
                continue  # written nowhere this variant can read back
            if data is None:
                continue
            if raw.name == "waitid" and slot.canon == 2:
                data = self.pids.canonical_siginfo(data, raw.arch)
            elif raw.name in WAITS and slot.canon == EVENTS_ARG:
                data = self.epoll.to_canonical(raw.call.args[0], data)
            elif raw.name in ("getdents64", "getdents"):
                data = structs.dirents_canonical(raw.name, raw.arch, data)
            outputs.append((slot.canon, data))
        return Outcome(result, tuple(outputs))

    def _machine_affinity(self, raw: RawCall, result: int) -> Outcome:
        """``sched_getaffinity`` of this process as a native run sees it: the
        ``result`` bytes of mask the kernel wrote, rewritten to ``machine_cpus``."""
        assert self.machine_cpus is not None
        mask = sum(1 << cpu for cpu in self.machine_cpus if cpu < 8 * result).to_bytes(result, "little")
        ll.write_memory(self.pid, raw.args[2], mask)
        return Outcome(result, ((2, mask),))

    def _read_output(self, raw: RawCall, slot: Slot, pointer: int, result: int) -> bytes | None:
        arg, arch = slot.arg, raw.arch
        bits = 32 if arch is I386 else 64
        if arg.kind is K.OUT_IOVEC:
            assert arg.size_arg is not None, f"{raw.name}: an iovec argument names its count"
            return b"".join(self._iov_read(pointer, _signed(raw.args[arg.size_arg], bits), arch, result))
        if arg.kind is K.OUT_MSGHDR:
            return self._msghdr_out(pointer, arch, result)
        if raw.name == "ioctl":
            return self._read(pointer, _IOCTL_OUT[raw.args[1] & 0xFFFFFFFF])
        if arg.struct is not None:
            if arg.size_arg is None:
                count = 1
            elif arg.ret_len:
                count = result
            elif arg.size_in_mem:
                count = self._in_size(Arg("n", K.IN_BUF, size_arg=arg.size_arg, size_in_mem=True), raw.args, bits, arch)
            else:
                count = max(0, _signed(raw.args[arg.size_arg], bits))
            data = self._read(pointer, structs.size(arg.struct, arch, count))
            try:
                return to_canonical(data, arg.struct, slot.canon_struct, arch)
            except structs.StructError:
                return data
        if arg.ret_len:
            size = result
        elif arg.size_in_mem:
            size = self._in_size(Arg("n", K.IN_BUF, size_arg=arg.size_arg, size_in_mem=True), raw.args, bits, arch)
        elif arg.size_arg is not None:
            size = max(0, min(_signed(raw.args[arg.size_arg], bits), _MAX_BUF))
        else:
            return None
        return self._read(pointer, size)

    def _msghdr_out(self, address: int, arch: Arch, result: int) -> bytes:
        """recvmsg's outputs as ``namelen, datalen, controllen, flags`` + name + data + control."""
        header = self._msghdr(address, arch)
        name = self._read(header["msg_name"], header["msg_namelen"]) if header["msg_name"] else b""
        data = b"".join(self._iov_read(header["msg_iov"], header["msg_iovlen"], arch, result))
        control = self._read(header["msg_control"], header["msg_controllen"]) if header["msg_control"] else b""
        return _st.pack("<IIIi", len(name), len(data), len(control), header["msg_flags"]) + name + data + control

    def write_outcome(self, raw: RawCall, outcome: Outcome) -> int:
        """Write ``outcome`` at this tracee's own pointers for ``raw``; return
        the value its return register must hold."""
        self.committed(raw, outcome.result)
        if raw.kernel_name == "_llseek" and outcome.result >= 0:
            if raw.args[3]:
                ll.write_memory(self.pid, raw.args[3], (outcome.result & ((1 << 64) - 1)).to_bytes(8, "little"))
            return 0
        by_canon = {slot.canon: slot for slot in raw.slots if slot.canon is not None}
        bits = 32 if raw.arch is I386 else 64
        result = outcome.result
        for index, data in outcome.outputs:
            slot = by_canon.get(index)
            if slot is None:
                self._adopt_path(raw, index, data)
                continue
            if not raw.args[slot.raw]:
                continue
            pointer = raw.args[slot.raw]
            kind = slot.arg.kind
            if (
                kind is K.OUT_BUF
                and slot.arg.struct is None
                and slot.arg.size_arg is not None
                and not slot.arg.size_in_mem
            ):
                # Never past this variant's own buffer (equal sizes are
                # compared; word-sized ones of ABI-diverse pairs are not).
                room = max(0, _signed(raw.args[slot.arg.size_arg], bits))
                if len(data) > room:
                    data = data[:room]
                    if slot.arg.ret_len:
                        result = min(result, room)
                elif raw.name == "getrandom" and self.abi_diverse and len(data) < room and result >= 0:
                    # A random word of this variant's size: the rest is as random.
                    data += os.urandom(room - len(data))
                    result = room
                if raw.name == "getdents64" and raw.arch is I386:
                    data = _dirents_for_32bit(data)
            if kind is K.OUT_IOVEC:
                assert slot.arg.size_arg is not None, f"{raw.name}: an iovec argument names its count"
                self._scatter(pointer, _signed(raw.args[slot.arg.size_arg], bits), raw.arch, data)
            elif kind is K.OUT_MSGHDR:
                self._msghdr_write(pointer, raw.arch, data)
            else:
                if raw.name in WAITS and index == EVENTS_ARG:
                    data = self.epoll.from_canonical(raw.call.args[0], data)
                ll.write_memory(self.pid, pointer, from_canonical(data, slot.canon_struct, slot.arg.struct, raw.arch))
        return result

    def _adopt_path(self, raw: RawCall, index: int, name: bytes) -> None:
        """Put the leader's ``name`` into this variant's own path buffer, the
        path that is argument ``index`` of the canonical call (a temporary
        name libc made up apart, :mod:`dmvx.tempnames`). Only over a string of
        the same length: the buffer is the caller's template, filled in place."""
        pointer = _path_pointer(raw, index)
        if pointer and len(self._read_string(pointer)) == len(name):
            ll.write_memory(self.pid, pointer, name)

    def _scatter(self, address: int, count: int, arch: Arch, data: bytes) -> None:
        offset = 0
        for base, length in self._iovecs(address, count, arch):
            if offset >= len(data):
                break
            piece = data[offset : offset + length]
            ll.write_memory(self.pid, base, piece)
            offset += len(piece)

    def _msghdr_write(self, address: int, arch: Arch, blob: bytes) -> None:
        namelen, datalen, controllen, flags = _st.unpack_from("<IIIi", blob)
        at = 16
        name, data, control = (
            blob[at : at + namelen],
            blob[at + namelen : at + namelen + datalen],
            blob[at + namelen + datalen : at + namelen + datalen + controllen],
        )
        header = self._msghdr(address, arch)
        if header["msg_name"]:
            ll.write_memory(self.pid, header["msg_name"], name[: header["msg_namelen"]])
        self._scatter(header["msg_iov"], header["msg_iovlen"], arch, data)
        if header["msg_control"]:
            ll.write_memory(self.pid, header["msg_control"], control[: header["msg_controllen"]])
        header.update(
            msg_namelen=min(namelen, header["msg_namelen"]),
            msg_controllen=min(controllen, header["msg_controllen"]),
            msg_flags=flags,
        )
        ll.write_memory(self.pid, address, structs.encode("msghdr", arch, header))


def _dirents_for_32bit(data: bytes) -> bytes:
    """getdents64 records as a 32-bit caller gets them: the kernel hands
    compat tasks directory offsets that fit 32 bits (ext4 hashes, for one),
    and a 32-bit readdir refuses any that does not (EOVERFLOW). Offsets too
    big become the record's position instead (seekdir across such a pair is
    not supported)."""
    out = bytearray(data)
    at = 0
    index = 0
    while at + 19 <= len(out):
        index += 1
        length = int.from_bytes(out[at + 16 : at + 18], "little")
        if length < 19:
            break
        offset = int.from_bytes(out[at + 8 : at + 16], "little", signed=True)
        if not -(1 << 31) <= offset < (1 << 31):
            out[at + 8 : at + 16] = index.to_bytes(8, "little")
        at += length
    return bytes(out)


@dataclass(slots=True)
class _Plan:
    """What does not change between two stops of the same call number."""

    spec: SyscallSpec
    name: str
    kernel_name: str
    bits: int
    narrow: frozenset[int]
    outs: tuple[tuple[int, Arg], ...]
    canon_index: dict[int, int]  # raw argument index -> canonical index (plain copies)
    slots: tuple[Slot, ...]  # for the call as named (before normalisation)


_PLANS: dict[tuple[Arch, int], _Plan | None] = {}
_MOVED: dict[tuple[Arch, int, str, str], tuple[Slot, ...]] = {}
_OUT_KINDS = frozenset({K.OUT_BUF, K.INOUT_BUF, K.OUT_IOVEC, K.OUT_MSGHDR})


def _plan(arch: Arch, nr: int) -> _Plan | None:
    """The plan of call ``nr`` on ``arch`` (a negative number: i386 socketcall ``-nr``)."""
    key = (arch, nr)
    try:
        return _PLANS[key]
    except KeyError:
        pass
    if nr < 0:
        spec = syscalls.socketcall(-nr)
        kernel_name = spec.raw if spec is not None else None
    else:
        spec = syscalls.by_number(arch, nr)
        kernel_name = syscalls.raw_name(arch, nr) if spec is not None else None
    if spec is None:
        _PLANS[key] = None
        return None
    bits = 32 if arch is I386 else 64
    narrow = _INT32_ARGS.get(spec.name, frozenset()) if bits == 64 and spec.layout is None else frozenset()
    outs = tuple((i, arg) for i, arg in enumerate(spec.args) if arg.kind in _OUT_KINDS)
    if spec.layout is None:
        canon_index = {i: i for i in range(len(spec.args))}
    else:
        canon_index = {src: position for position, src in enumerate(spec.layout) if type(src) is int}
    plan = _Plan(spec, spec.name, kernel_name or spec.name, bits, narrow, outs, canon_index, ())
    plan.slots = _slots(plan, spec.name, {i: i for i in canon_index.values()})
    _PLANS[key] = plan
    return plan


def _slots(plan: _Plan, canonical: str, moved: dict[int, int]) -> tuple[Slot, ...]:
    canon_spec = syscalls.spec(canonical) if canonical in syscalls.names() else None
    slots = []
    for index, arg in plan.outs:
        position = plan.canon_index.get(index)
        position = moved.get(position) if position is not None else None
        canon_struct = arg.struct
        if canon_spec is not None and position is not None and position < len(canon_spec.args):
            canon_struct = canon_spec.args[position].struct
        slots.append(Slot(index, position, arg, canon_struct))
    return tuple(slots)


def _path_pointer(raw: RawCall, index: int) -> int | None:
    """The pointer this variant passed for the path that is argument
    ``index`` of the canonical call (wherever normalisation moved it)."""
    plan = _plan(raw.arch, raw.nr)
    if plan is None:
        return None
    n_args = len(plan.spec.layout) if plan.spec.layout is not None else len(plan.spec.args)
    paths = {
        raw_index: position
        for raw_index, arg in enumerate(plan.spec.args)
        if arg.kind is K.PATH and (position := plan.canon_index.get(raw_index)) is not None and position < n_args
    }
    if raw.name != plan.name:
        moved = _moved_positions(plan, set(paths.values()), n_args)
        paths = {raw_index: moved[position] for raw_index, position in paths.items() if position in moved}
    for raw_index, position in paths.items():
        if position == index:
            return raw.args[raw_index]
    return None


def _moved_positions(plan: _Plan, positions: set[int], n_args: int) -> dict[int, int]:
    """Where :func:`syscalls.normalize` moves the arguments at ``positions``
    of ``plan``'s call, found by normalising stand-ins (a dropped one is
    missing from the answer)."""
    markers: list = [0] * n_args
    for position in positions:
        markers[position] = _Out(position)
    _, normal = syscalls.normalize(plan.name, tuple(markers))
    return {value.index: at for at, value in enumerate(normal) if isinstance(value, _Out)}


def _moved_slots(plan: _Plan, canonical: str, n_args: int) -> tuple[Slot, ...]:
    """Slots of a call :func:`syscalls.normalize` respelled as ``canonical``:
    where its output buffers moved, found by normalising stand-ins."""
    key = (plan.spec.arch or Arch.X86_64, id(plan), plan.name, canonical)
    slots = _MOVED.get(key)
    if slots is None:
        outs = {
            position
            for index, _ in plan.outs
            if (position := plan.canon_index.get(index)) is not None and position < n_args
        }
        slots = _MOVED[key] = _slots(plan, canonical, _moved_positions(plan, outs, n_args))
    return slots
