"""Which program a variant runs on each machine: chosen by the machine's
architecture (issue 16, heterogeneous ISAs).

A variant host reached over SSH reports its architecture (``uname -m``,
in its agent's hello). The program the run names is a file of *this*
machine -- the built-in server compiled here, a served program such as
lighttpd -- so for each machine one rule says what runs there
(:func:`choose_program`), in this order:

1. the topology's ``binaries`` names the program for the machine's
   architecture: that path, on that machine (an aarch64 build of the server
   on an ARMv8 board, say);
2. a system program (under ``/usr``, ``/bin``, ``/sbin``) runs from the
   machine's own installation, at the same path: its package manager put
   there the build for its architecture;
3. a program built here goes down the SSH session to a machine of this one's
   architecture;
4. anything else cannot run there: one line naming the host and the
   ``binaries`` entry to add.

The rule is the core's (pure); :mod:`realmode.net.ssh_agents` applies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dmvx.exitstatus import EnvironmentProblem
from dmvx.syscalls import Arch

__all__ = ["SYSTEM_DIRS", "ProgramChoice", "choose_program"]

#: Where a machine's own package manager installs programs.
SYSTEM_DIRS = ("/usr/", "/bin/", "/sbin/")


@dataclass(frozen=True)
class ProgramChoice:
    """The program a variant runs on its machine: ``path`` there, and
    whether this machine's file of that path is sent to it first (``ship``)."""

    path: str
    ship: bool
    #: Which rule chose it, for the report: binaries | system | shipped.
    rule: str


def choose_program(
    host: str,
    name: str,
    local_path: str,
    arch: Arch,
    local_arch: Arch,
    binaries: Mapping[Arch, Mapping[str, str]],
) -> ProgramChoice:
    """The program ``name`` (``local_path`` here) for ``host``, a machine of
    ``arch``; :class:`~dmvx.exitstatus.EnvironmentProblem` when no rule fits."""
    given = binaries.get(arch, {}).get(name)
    if given is not None:
        return ProgramChoice(given, False, "binaries")
    if local_path.startswith(SYSTEM_DIRS):
        return ProgramChoice(local_path, False, "system")
    if arch is local_arch:
        return ProgramChoice(local_path, True, "shipped")
    raise EnvironmentProblem(
        f"dmvx real: host {host} is {arch.value} and {name} here is built for {local_arch.value}; "
        f"build it there and name it in the topology: binaries: {{{arch.value}: {{{name}: PATH}}}}"
    )
