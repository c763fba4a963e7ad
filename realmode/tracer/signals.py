"""Signals as the tracer sees them: what the kernel would have dropped or
sent for an untraced process, read from ``/proc/<pid>/status``.

A signal the process ignores (by disposition, or by default like
``SIGCHLD``) is dropped at its delivery stop, as the kernel would have
dropped it untraced; a call it interrupted restarts and is reported once
with its final result (:data:`RESTART`, :func:`restart_nr`).
"""

from __future__ import annotations

import signal

from dmvx import syscalls
from dmvx.calls import Call
from dmvx.monitor import WRITES
from realmode import abi
from realmode.tracer.steering import EPIPE

EINTR = 4
#: Results with which the kernel says "interrupted, to be restarted or turned into EINTR".
RESTART = frozenset({-512, -513, -514, -516})
#: The send calls that raise SIGPIPE with EPIPE unless their flags (this
#: argument) say MSG_NOSIGNAL; every call in WRITES always does.
_SEND_FLAGS = {"sendto": 3, "sendmsg": 2}
MSG_NOSIGNAL = 0x4000
#: Signals whose default action is to do nothing.
_DEFAULT_IGNORED = frozenset({signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH})
_MASK_KEYS = frozenset({b"SigPnd", b"ShdPnd", b"SigBlk", b"SigIgn", b"SigCgt"})


def restart_nr(audit_arch: int) -> int:
    arch = abi.arch_of(audit_arch)
    nr = syscalls.number("restart_syscall", arch) if arch is not None else None
    return nr if nr is not None else -1


def raised_sigpipe(call: Call, result: int) -> bool:
    """Whether the kernel sends SIGPIPE along with ``result`` of ``call``: a
    write to a pipe or socket whose reader is gone."""
    if result != -EPIPE:
        return False
    if call.name in WRITES:
        return True
    index = _SEND_FLAGS.get(call.name)
    flags = call.args[index] if index is not None and len(call.args) > index else None
    return isinstance(flags, int) and not flags & MSG_NOSIGNAL


def _signal_masks(pid: int) -> dict[bytes, int]:
    """The signal masks of /proc/<pid>/status (SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, _, value = line.partition(b":")
        if key in _MASK_KEYS:
            out[key] = int(value.strip(), 16)
    return out


def pending(pid: int, sig: int) -> bool:
    masks = _signal_masks(pid)
    bit = 1 << (sig - 1)
    return bool((masks.get(b"SigPnd", 0) | masks.get(b"ShdPnd", 0)) & bit) and not masks.get(b"SigBlk", 0) & bit


def ignored(pid: int, sig: int) -> bool:
    """Whether ``pid`` ignores ``sig`` (SIG_IGN, or SIG_DFL with a default of
    nothing): the kernel drops such signals for untraced processes."""
    if not 0 < sig < 65:
        return False
    fields = _signal_masks(pid)
    bit = 1 << (sig - 1)
    ignored, caught, blocked = fields.get(b"SigIgn", 0), fields.get(b"SigCgt", 0), fields.get(b"SigBlk", 0)
    if blocked & bit:
        return False
    return bool(ignored & bit) or (sig in _DEFAULT_IGNORED and not caught & bit)
