"""Spawning one variant's processes: its CONNECTOR and its monitor.

``dmvx run`` (:mod:`realmode.orchestrator`) and the agents on emulated hosts
(:mod:`realmode.net.agents`) spawn a variant the same way, here: a
socketpair joins the monitor (:func:`realmode.tracer.monitor_main`, which
forks the variant itself) to its CONNECTOR, and the monitor reports on a
pipe that :func:`realmode.reports.collect` reads. What differs stays with
the caller: how a process is forked (pinned to a CPU on this machine, moved
into a host's namespace on emulated hosts) and what the CONNECTOR does
around its link (log it, say).
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from typing import Callable, Iterable

from dmvx.errors import InputError
from dmvx.syscalls import Arch
from realmode.tracer import Launch, monitor_main

_ELF_MACHINES = {3: Arch.I386, 62: Arch.X86_64, 183: Arch.AARCH64}

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


def resolve(program: str, command: str) -> str:
    """The absolute path of ``program`` (searched on PATH without a slash);
    an :class:`InputError` naming ``command`` if it is missing or not executable."""
    path = program if "/" in program else shutil.which(program)
    if path is None or not os.path.isfile(path):
        raise InputError(f"{command}: {program}: no such program")
    if not os.access(path, os.X_OK):
        raise InputError(f"{command}: {program}: not executable")
    return os.path.abspath(path)


def default_compare_from(paths: Iterable[str]) -> str:
    """Where the monitors start comparing: at each program's entry point when
    the executables are of different architectures (their dynamic loaders
    differ; docs/realmode.md), else from ``execve``."""
    arches = {elf_arch(path) or Arch.X86_64 for path in paths}
    return "entry" if len(arches) > 1 else "exec"


def spawn_variant(launch: Launch, fork: Fork, connector: Callable[[socket.socket], None],
                   connector_keep: Iterable[int] = (), before_monitor: Callable[[], None] | None = None) -> Spawned:
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
        monitor_main(launch, mon_end, write_fd)

    monitor_pid = fork("monitor", monitor, {mon_end.fileno(), write_fd})
    mon_end.close()
    os.close(write_fd)
    return Spawned(connector_pid, monitor_pid, read_fd)
