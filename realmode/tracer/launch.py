"""Launching a variant as a traced child, in the order the kernel needs.

A ``SECCOMP_RET_TRACE`` before ``PTRACE_O_TRACESECCOMP`` is set would fail
the call, so: the child asks to be traced and stops itself; the monitor sets
its options (``EXITKILL`` so a dead monitor never leaves its variant running
unwatched); the child sets no-new-privs, loads the filter
(:mod:`realmode.seccomp`) and execs. Comparison starts at that exec -- or,
for variants of different ABIs, at the program's entry point after each exec
(``compare_from="entry"``): the dynamic loaders of two ABIs make different
calls by design, so each variant's loader runs uncompared on its own local
files and an ``int3`` at ``AT_ENTRY`` says where the program itself begins.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from dmvx.actions import LEADER
from dmvx.policy import Policy
from dmvx.syscalls import Arch
from realmode import isolation
from realmode import ptrace_ll as ll
from realmode.inproc import layout


@dataclass
class Launch:
    """Everything a monitor process needs to start its variant."""

    index: int
    n_variants: int
    policy: Policy
    path: str
    argv: list[str]
    env: dict[str, str]
    filter: list[tuple[int, int, int, int]]
    stall_timeout: float = 2.0
    cpu: int | None = None
    #: "exec": compare from the first exec on; "entry": from each program's
    #: entry point (variants of different ABIs, whose loaders differ).
    compare_from: str = "exec"
    #: The leader's stdout goes to its stderr (``dmvx run --json`` owns stdout).
    stdout_to_stderr: bool = False
    #: Longest an entry of an asynchronous call waits in the send batch.
    flush_delay: float = 0.001
    #: The CPU of the program itself when not the monitor's (``cpu``).
    program_cpu: int | None = None
    #: Where to write this variant's part of the trace (``dmvx run --record``).
    record: str | None = None
    #: The in-process DIP-MON library to preload (realmode.inproc), or None:
    #: every replicated call stops in this tracer.
    preload: str | None = None
    #: Count calls per route and time (``dmvx run --summary``, :mod:`.tally`).
    summary: bool = False
    #: The architecture that library is built for (the program's ELF class).
    preload_arch: Arch = Arch.X86_64


_OPTIONS = (
    ll.PTRACE_O_TRACESYSGOOD
    | ll.PTRACE_O_TRACESECCOMP
    | ll.PTRACE_O_TRACEEXEC
    | ll.PTRACE_O_TRACEFORK
    | ll.PTRACE_O_TRACEVFORK
    | ll.PTRACE_O_TRACECLONE
    | ll.PTRACE_O_EXITKILL
)


def spawn(launch: Launch, area_fd: int | None = None) -> int:
    """Fork the variant, stopped before its exec with the tracer's options
    set; its pid. The caller resumes it. ``area_fd``: the in-process path's
    shared area, which the variant finds at ``layout.FD``."""
    if launch.cpu is not None:
        try:
            os.sched_setaffinity(0, {launch.cpu})
        except OSError:
            pass
    pid = os.fork()
    if pid == 0:  # the variant-to-be
        try:
            _become_variant(launch, area_fd)
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, ll.WALL)
    if not os.WIFSTOPPED(status):
        raise RuntimeError(f"variant {launch.index} did not stop before exec (status {status:#x})")
    ll.set_options(pid, _OPTIONS)
    return pid


def _become_variant(launch: Launch, area_fd: int | None = None) -> None:
    """In the forked child: set up as a shell would, ask to be traced, stop,
    load the filter and exec. Returns only if the exec failed."""
    if launch.index != LEADER:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    elif launch.stdout_to_stderr:
        os.dup2(2, 1)
    env = launch.env
    if area_fd is not None and launch.preload is not None:
        os.dup2(area_fd, layout.FD, inheritable=True)
        os.closerange(3, layout.FD)
        os.closerange(layout.FD + 1, 65536)
        env = {**env, "LD_PRELOAD": launch.preload, layout.ENV: "1"}
    else:
        os.closerange(3, 65536)
    # As a shell would start it: Python ignores SIGPIPE and SIGXFSZ
    # and the run's helpers SIGINT and SIGTERM; none of that is the program's.
    for number in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    if launch.program_cpu is not None and launch.program_cpu != launch.cpu:
        os.sched_setaffinity(0, {launch.program_cpu})
    isolation.confine_variant()
    ll.traceme()
    os.kill(os.getpid(), signal.SIGSTOP)
    ll.install_filter(launch.filter)
    os.execve(launch.path, launch.argv, env)
