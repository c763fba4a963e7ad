"""Spawning one variant's processes: its CONNECTOR and its tracer.

``dmvx run`` (:mod:`realmode.orchestrator`) and the agents on emulated hosts
(:mod:`realmode.net.agents`) spawn a variant the same way, here: a
socketpair (:mod:`realmode.monitor_socket`) joins the tracer
(:func:`realmode.tracer.tracer_main`, which forks the variant itself and
drives its monitor) to its CONNECTOR, and the tracer reports on a
pipe that :func:`realmode.reports.collect` reads. What differs stays with
the caller: how a process is forked (pinned to a CPU on this machine, moved
into a host's namespace on emulated hosts) and what the CONNECTOR does
around its socket (log it, say).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dmvx.errors import NotExecutable
from dmvx.syscalls import Arch
from realmode.tracer import Launch, tracer_main

_ELF_MACHINES = {3: Arch.I386, 62: Arch.X86_64, 183: Arch.AARCH64}
ADDR_NO_RANDOMIZE = 0x0040000
_PERSONALITY_QUERY = 0xFFFFFFFF
_libc = ctypes.CDLL(None, use_errno=True)

#: Forks ``body`` as the variant's ``role`` ("connector" or "monitor"),
#: keeping the descriptors ``keep``; the child's pid.
Fork = Callable[[str, Callable[[], None], set[int]], int]


@dataclass(frozen=True)
class Spawned:
    """One variant's processes, and the pipe its monitor reports on."""

    connector_pid: int
    monitor_pid: int
    report_fd: int


def elf_arch(path: str) -> Arch | None:
    """The architecture an ELF executable runs as, None for anything else
    (a script runs its interpreter, which is of this machine)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return _ELF_MACHINES.get(int.from_bytes(head[18:20], "little"))


#: How an executable begins: an ELF image, or a script naming its interpreter.
_EXECUTABLE_MAGIC = (b"\x7fELF", b"#!")


def resolve(program: str) -> str:
    """The absolute path of ``program`` (searched on PATH without a slash).

    A program the kernel would not execute is refused before anything
    starts, as a shell reports it (:class:`~dmvx.errors.NotExecutable`,
    status 127 or 126): otherwise its variants would fail their ``execve``
    unseen and the run would pass for one that ended with status 127."""
    if "/" not in program:
        found = shutil.which(program)
        if found is None:
            raise NotExecutable(program, "command not found", found=False)
        program_path = found
    else:
        program_path = program
    try:
        with open(program_path, "rb", opener=_no_block) as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise NotExecutable(program, "Is a directory", found=True)
            if not stat.S_ISREG(info.st_mode) or not os.access(program_path, os.X_OK):
                raise NotExecutable(program, "Permission denied", found=True)
            if not handle.read(4).startswith(_EXECUTABLE_MAGIC):
                raise NotExecutable(program, "Exec format error", found=True)
    except IsADirectoryError:
        raise NotExecutable(program, "Is a directory", found=True) from None
    except FileNotFoundError:
        raise NotExecutable(program, "No such file or directory", found=False) from None
    except OSError as error:
        raise NotExecutable(program, error.strerror or str(error), found=True) from None
    return os.path.abspath(program_path)


@contextmanager
def personality(no_random: bool) -> Iterator[None]:
    """Processes forked inside the block start with ADDR_NO_RANDOMIZE (as
    ``setarch -R`` does): the personality is inherited by children and kept
    across exec. The attack suite's ``aslr: false`` settings
    (:mod:`realmode.vuln.build`) start their monitors -- which fork the
    variants -- inside it, on this machine or in a machine's agent."""
    if not no_random:
        yield
        return
    before = _libc.personality(_PERSONALITY_QUERY)
    _libc.personality(before | ADDR_NO_RANDOMIZE)
    try:
        yield
    finally:
        _libc.personality(before)


def _no_block(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NONBLOCK)


def default_compare_from(paths: Iterable[str]) -> str:
    """Where the monitors start comparing: at each program's entry point when
    the executables are of different architectures (their dynamic loaders
    differ; docs/realmode.md), else from ``execve``."""
    arches = {elf_arch(path) or Arch.X86_64 for path in paths}
    return "entry" if len(arches) > 1 else "exec"


def spawn_variant(
    launch: Launch,
    fork: Fork,
    connector: Callable[[socket.socket], None],
    connector_keep: Iterable[int] = (),
    before_monitor: Callable[[], None] | None = None,
) -> Spawned:
    """Fork the CONNECTOR (``connector`` runs with its end of the monitor
    link) and then the monitor of ``launch``; ``before_monitor`` runs first
    in the monitor's process."""
    mon_end, con_end = socket.socketpair()
    connector_pid = fork("connector", lambda: connector(con_end), {con_end.fileno(), *connector_keep})
    con_end.close()
    read_fd, write_fd = os.pipe()

    def monitor() -> None:
        if before_monitor is not None:
            before_monitor()
        tracer_main(launch, mon_end, write_fd)

    monitor_pid = fork("monitor", monitor, {mon_end.fileno(), write_fd})
    mon_end.close()
    os.close(write_fd)
    return Spawned(connector_pid, monitor_pid, read_fd)
