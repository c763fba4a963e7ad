"""The few kernel interfaces real mode needs, bound with ctypes.

python-ptrace's event loop does not fit (it raises on seccomp stops, polls
with sleep and has no hook between fork and exec), so the tracer speaks to
the kernel directly: ``ptrace`` with ``PTRACE_GET_SYSCALL_INFO`` (entry and
exit stops told apart by the kernel, not by counting), register get/set for
skipping calls, and ``process_vm_readv``/``process_vm_writev`` for tracee
memory (one system call per transfer, and it respects page protections, so a
follower can never be made to write into its own code).
"""

from __future__ import annotations

import ctypes
import os
import signal
from dataclasses import dataclass

_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_ptrace.restype = ctypes.c_long

PTRACE_TRACEME = 0
PTRACE_PEEKDATA = 2
PTRACE_POKEDATA = 5
PTRACE_CONT = 7
PTRACE_KILL = 8
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_GETSIGINFO = 0x4202
PTRACE_SYSCALL = 24
PTRACE_GET_SYSCALL_INFO = 0x420E

PTRACE_O_TRACESYSGOOD = 0x1
PTRACE_O_TRACEFORK = 0x2
PTRACE_O_TRACEVFORK = 0x4
PTRACE_O_TRACECLONE = 0x8
PTRACE_O_TRACEEXEC = 0x10
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_O_EXITKILL = 0x100000

PTRACE_EVENT_FORK = 1
PTRACE_EVENT_VFORK = 2
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_EXIT = 6
PTRACE_EVENT_SECCOMP = 7

OP_NONE, OP_ENTRY, OP_EXIT, OP_SECCOMP = 0, 1, 2, 3

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003

WALL = 0x40000000


class PtraceError(OSError):
    """A ptrace request failed (usually: the tracee is gone)."""


class UserRegs(ctypes.Structure):
    """``struct user_regs_struct`` of x86-64; i386 tracees show through it too."""

    _fields_ = [
        (name, ctypes.c_ulonglong)
        for name in (
            "r15",
            "r14",
            "r13",
            "r12",
            "rbp",
            "rbx",
            "r11",
            "r10",
            "r9",
            "r8",
            "rax",
            "rcx",
            "rdx",
            "rsi",
            "rdi",
            "orig_rax",
            "rip",
            "cs",
            "eflags",
            "rsp",
            "ss",
            "fs_base",
            "gs_base",
            "ds",
            "es",
            "fs",
            "gs",
        )
    ]


class _SyscallInfo(ctypes.Structure):
    _fields_ = [
        ("op", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 3),
        ("arch", ctypes.c_uint32),
        ("ip", ctypes.c_uint64),
        ("sp", ctypes.c_uint64),
        ("u", ctypes.c_uint64 * 8),  # entry/seccomp: nr, args[6], ret_data; exit: rval, is_error
    ]


@dataclass(frozen=True, slots=True)
class SyscallStop:
    """What ``PTRACE_GET_SYSCALL_INFO`` says about a stop."""

    op: int
    arch: int
    nr: int
    args: tuple[int, ...]
    rval: int


def ptrace(request: int, pid: int, addr: int = 0, data: int | ctypes.c_void_p | None = 0) -> int:
    result = _ptrace(
        request, pid, ctypes.c_void_p(addr), data if isinstance(data, ctypes.c_void_p) else ctypes.c_void_p(data)
    )
    if result == -1:
        err = ctypes.get_errno()
        if err:
            raise PtraceError(err, f"ptrace({request:#x}, {pid}): {os.strerror(err)}")
    return result


def traceme() -> None:
    ptrace(PTRACE_TRACEME, 0)


def set_options(pid: int, options: int) -> None:
    ptrace(PTRACE_SETOPTIONS, pid, 0, options)


def resume(pid: int, syscall: bool, signal: int = 0) -> None:
    """Resume ``pid``: to the next syscall stop (``syscall``) or the next
    seccomp/event/signal stop."""
    ptrace(PTRACE_SYSCALL if syscall else PTRACE_CONT, pid, 0, signal)


def syscall_info(pid: int) -> SyscallStop:
    info = _SyscallInfo()
    ptrace(PTRACE_GET_SYSCALL_INFO, pid, ctypes.sizeof(info), ctypes.c_void_p(ctypes.addressof(info)))
    u = info.u
    if info.op == OP_EXIT:
        rval = ctypes.c_int64(u[0]).value
        return SyscallStop(info.op, info.arch, -1, (), rval)
    return SyscallStop(info.op, info.arch, u[0], tuple(u[1:7]), 0)


def get_regs(pid: int) -> UserRegs:
    regs = UserRegs()
    ptrace(PTRACE_GETREGS, pid, 0, ctypes.c_void_p(ctypes.addressof(regs)))
    return regs


def set_regs(pid: int, regs: UserRegs) -> None:
    ptrace(PTRACE_SETREGS, pid, 0, ctypes.c_void_p(ctypes.addressof(regs)))


def poke_word(pid: int, address: int, word: bytes) -> None:
    """Write one 8-byte word with ``PTRACE_POKEDATA``, which (unlike
    process_vm_writev) also writes read-only pages: for a breakpoint in code."""
    ptrace(PTRACE_POKEDATA, pid, address, int.from_bytes(word, "little"))


def event_message(pid: int) -> int:
    value = ctypes.c_ulong()
    ptrace(PTRACE_GETEVENTMSG, pid, 0, ctypes.c_void_p(ctypes.addressof(value)))
    return value.value


@dataclass(frozen=True, slots=True)
class SigInfo:
    """What a signal-delivery stop's siginfo says of the signal: its code
    (``SI_USER``, ``SI_KERNEL``, a fault's code ...) and, for a signal a
    process sent, the sender's pid."""

    signo: int
    code: int
    sender: int


def siginfo(pid: int) -> SigInfo:
    """The siginfo of the signal ``pid`` is stopped to receive."""
    buffer = ctypes.create_string_buffer(128)
    ptrace(PTRACE_GETSIGINFO, pid, 0, ctypes.c_void_p(ctypes.addressof(buffer)))
    raw = buffer.raw
    signo, _errno, code, sender = (int.from_bytes(raw[i : i + 4], "little", signed=True) for i in (0, 4, 8, 16))
    return SigInfo(signo, code, sender)


_SYS_TGKILL = 234  # x86-64


def tgkill(tgid: int, tid: int, sig: int) -> None:
    """Send ``sig`` to thread ``tid`` of ``tgid`` (not to whichever of its
    threads the kernel picks, as ``kill`` does)."""
    if _libc.syscall(_SYS_TGKILL, tgid, tid, sig) == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_vm_readv = _libc.process_vm_readv
_vm_writev = _libc.process_vm_writev
for _f in (_vm_readv, _vm_writev):
    _f.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(_IoVec),
        ctypes.c_ulong,
        ctypes.POINTER(_IoVec),
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    _f.restype = ctypes.c_ssize_t


def read_memory(pid: int, address: int, size: int) -> bytes:
    """Up to ``size`` bytes at ``address`` (fewer if the mapping ends)."""
    if size <= 0 or address == 0:
        return b""
    buf = ctypes.create_string_buffer(size)
    local = _IoVec(ctypes.cast(buf, ctypes.c_void_p), size)
    remote = _IoVec(ctypes.c_void_p(address), size)
    got = _vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if got < 0:
        err = ctypes.get_errno()
        raise PtraceError(err, f"process_vm_readv({pid}, {address:#x}, {size}): {os.strerror(err)}")
    return buf.raw[:got]


def read_string(pid: int, address: int, limit: int = 4096) -> bytes:
    """A NUL-terminated string, read page by page so a string that ends just
    before an unmapped page is still read."""
    out = bytearray()
    while len(out) < limit:
        chunk = 4096 - (address % 4096)
        data = read_memory(pid, address, chunk)
        if not data:
            break
        end = data.find(b"\0")
        if end >= 0:
            out += data[:end]
            return bytes(out)
        out += data
        address += len(data)
    return bytes(out)


def write_memory(pid: int, address: int, data: bytes) -> None:
    if not data:
        return
    buf = ctypes.create_string_buffer(data, len(data))
    local = _IoVec(ctypes.cast(buf, ctypes.c_void_p), len(data))
    remote = _IoVec(ctypes.c_void_p(address), len(data))
    put = _vm_writev(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if put != len(data):
        err = ctypes.get_errno() if put < 0 else 0
        raise PtraceError(err, f"process_vm_writev({pid}, {address:#x}, {len(data)}): wrote {put}: {os.strerror(err)}")


# -- seccomp -------------------------------------------------------------------

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def install_filter(program: list[tuple[int, int, int, int]]) -> None:
    """Set no-new-privs and load a classic BPF seccomp filter (in the child,
    just before exec)."""
    if _prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(NO_NEW_PRIVS): {os.strerror(err)}")
    array = (SockFilter * len(program))(*[SockFilter(*insn) for insn in program])
    prog = _SockFprog(len(program), array)
    if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.cast(ctypes.byref(prog), ctypes.c_void_p), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_SECCOMP): {os.strerror(err)}")


def spawn_stopped(argv: list[str], stdout: int, program: list[tuple[int, int, int, int]] | None = None) -> int:
    """Fork ``argv[0]`` with ``argv`` as a tracee of this process, its
    stdout on ``stdout`` and nothing else open, under the seccomp
    ``program`` if given. The child stops itself (SIGSTOP) before it execs:
    its pid is returned once that stop is reaped, ready for
    :func:`set_options` and :func:`resume`. For the benchmarks and the
    calibration, which trace one program without the monitors."""
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(stdout, 1)
            os.closerange(3, 1024)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            traceme()
            os.kill(os.getpid(), signal.SIGSTOP)
            if program is not None:
                install_filter(program)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.waitpid(pid, WALL)
    return pid
