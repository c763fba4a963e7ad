"""The check before a run on machines: what each variant host must offer.

A topology host may be a real machine reached over SSH (``ssh:
user@name[:port]`` in the topology file). Before ``dmvx real`` starts
anything there, ``dmvx doctor --topology FILE`` asks each machine what it
has -- one SSH session per host, the facts in :class:`HostFacts` -- and
this module judges them: a :class:`HostCheck` per host, one line per problem
naming the host and the fix. The judging is here, in the core, so that the
rules (which ptrace scope lets a monitor trace, which clock offset is too
much) are one table read by the doctor and by ``dmvx real`` alike; the mode
(:mod:`realmode.remote`) runs ``ssh`` and reports the facts.

Why these facts: a monitor must be allowed to ptrace its variant (Yama's
``ptrace_scope``), its seccomp filter returns ``SECCOMP_RET_TRACE`` (the
kernel must list ``trace`` among its seccomp actions), the remote dmvx must
speak this build's protocol (same version), the architecture picks the
follower's binary, and a clock far off makes the hosts' timings
incomparable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dmvx.exitstatus import ExitStatus
from dmvx.syscalls import Arch

__all__ = [
    "SSH_PATTERN",
    "SshAddress",
    "HostFacts",
    "HostCheck",
    "DoctorResult",
    "MAX_CLOCK_OFFSET",
    "arch_of_machine",
    "judge",
]

#: ``[user@]name[:port]``: what a topology's ``ssh:`` field holds.
SSH_PATTERN = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9_.-]*)@)?(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]*)(?::(?P<port>\d{1,5}))?$"
)
#: Clocks further apart than this (seconds, beyond the measurement's own
#: uncertainty) are a problem: timings from the hosts no longer line up.
MAX_CLOCK_OFFSET = 1.0
#: ``uname -m`` to the architectures dmvx knows.
_MACHINES = {"x86_64": Arch.X86_64, "amd64": Arch.X86_64, "aarch64": Arch.AARCH64, "arm64": Arch.AARCH64}
_MACHINES.update(dict.fromkeys(("i386", "i486", "i586", "i686"), Arch.I386))


@dataclass(frozen=True)
class SshAddress:
    """How to reach a machine with the system's ``ssh``: ``user@name`` and a
    port, each optional (the user's ``~/.ssh/config`` fills what is not given)."""

    name: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> SshAddress:
        """``[user@]name[:port]``, or ValueError with what is wrong."""
        match = SSH_PATTERN.match(text)
        if match is None or match["name"].startswith("-"):
            raise ValueError(f"{text!r} is not [user@]name[:port]")
        port = int(match["port"]) if match["port"] else None
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"port {port} of {text!r} is not in 1..65535")
        return cls(match["name"], match["user"], port)

    @property
    def destination(self) -> str:
        """What ``ssh`` takes as its destination: ``user@name`` or ``name``."""
        return f"{self.user}@{self.name}" if self.user else self.name

    def __str__(self) -> str:
        return self.destination + (f":{self.port}" if self.port else "")


def arch_of_machine(machine: str) -> Arch | None:
    """The architecture ``uname -m`` names, None for one dmvx does not know."""
    return _MACHINES.get(machine.strip())


@dataclass(frozen=True)
class HostFacts:
    """What one machine said about itself over SSH (None: it could not say).

    ``error`` is set when the session itself failed (unreachable, key
    refused): then nothing else is known."""

    host: str
    address: SshAddress
    error: str | None = None
    dmvx_version: str | None = None
    machine: str | None = None
    kernel: str | None = None
    uid: int | None = None
    ptrace_scope: int | None = None
    seccomp_actions: tuple[str, ...] = ()
    #: Remote clock minus local clock, seconds, and the measurement's
    #: uncertainty (half the round trip).
    clock_offset: float | None = None
    clock_uncertainty: float = 0.0


@dataclass(frozen=True)
class HostCheck:
    """The judgement of one host: a value per column, and its problems."""

    facts: HostFacts
    reachable: bool
    version_ok: bool
    ptrace_ok: bool
    seccomp_ok: bool
    arch: Arch | None
    clock_ok: bool
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


#: The architectures a machine of each kind runs variants of: an x86_64
#: kernel runs i386 programs too (ABI diversity on one machine).
_RUNS = {Arch.X86_64: {Arch.X86_64, Arch.I386}, Arch.I386: {Arch.I386}, Arch.AARCH64: {Arch.AARCH64}}


def judge(facts: HostFacts, *, local_version: str, dmvx_path: str = "dmvx", declared: Arch | None = None) -> HostCheck:
    """Every problem of one host, each one line naming the host and the fix.
    ``declared``: the architecture the topology gives the host; the machine
    must be able to run it (the variant's binary is chosen by it)."""
    where = f"host {facts.host} ({facts.address})"
    if facts.error is not None:
        return HostCheck(
            facts, False, False, False, False, None, False, (f"{where}: unreachable over SSH: {facts.error}",)
        )
    problems: list[str] = []
    version_ok = facts.dmvx_version == local_version
    if facts.dmvx_version is None:
        problems.append(
            f"{where}: no dmvx at {dmvx_path!r}; install dmvx {local_version} there, "
            "or give its path as the host's 'dmvx:' in the topology"
        )
    elif not version_ok:
        problems.append(
            f"{where}: dmvx {facts.dmvx_version}, this one is {local_version}; install dmvx {local_version} there"
        )
    root = facts.uid == 0
    scope = facts.ptrace_scope
    # Yama: 0 and 1 let a process trace its own children (what a monitor does),
    # 2 needs CAP_SYS_PTRACE (root), 3 forbids ptrace outright. No Yama: allowed.
    ptrace_ok = scope is None or scope <= 1 or (scope == 2 and root)
    if not ptrace_ok:
        fix = "sysctl kernel.yama.ptrace_scope=1 (as root; 3 needs a reboot)" if scope == 3 else "run as root there"
        problems.append(f"{where}: ptrace is not permitted (kernel.yama.ptrace_scope={scope}); {fix}")
    seccomp_ok = "trace" in facts.seccomp_actions
    if not seccomp_ok:
        problems.append(
            f"{where}: the kernel cannot return SECCOMP_RET_TRACE (seccomp actions: "
            f"{' '.join(facts.seccomp_actions) or 'none'}); use a kernel built with CONFIG_SECCOMP_FILTER"
        )
    arch = arch_of_machine(facts.machine) if facts.machine else None
    if arch is not None and declared is not None and declared not in _RUNS[arch]:
        problems.append(
            f"{where}: the topology says {declared.value}, the machine is {arch.value}; "
            f"set arch: {arch.value} for it, or point ssh: at an {declared.value} machine"
        )
        arch = None  # not what the topology may rely on
    elif arch is None:
        problems.append(
            f"{where}: architecture {facts.machine or 'unknown'} is not one dmvx knows (x86_64, i386, aarch64)"
        )
    clock_ok = facts.clock_offset is not None and abs(facts.clock_offset) - facts.clock_uncertainty <= MAX_CLOCK_OFFSET
    if facts.clock_offset is None:
        problems.append(f"{where}: its clock could not be read (date +%s.%N)")
    elif not clock_ok:
        problems.append(
            f"{where}: clock {facts.clock_offset:+.3f} s off this machine's; "
            "synchronise both (e.g. chrony or systemd-timesyncd)"
        )
    return HostCheck(facts, True, version_ok, ptrace_ok, seccomp_ok, arch, clock_ok, tuple(problems))


@dataclass
class DoctorResult:
    """The :class:`dmvx.output.Result` of ``dmvx doctor --topology FILE``."""

    topology: str
    checks: list[HostCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def problems(self) -> list[str]:
        return [problem for check in self.checks for problem in check.problems]

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.OK if self.ok else ExitStatus.ENVIRONMENT

    def to_json(self) -> dict[str, Any]:
        return {
            "topology": self.topology,
            "ok": self.ok,
            "hosts": [
                {
                    "host": c.facts.host,
                    "ssh": str(c.facts.address),
                    "reachable": c.reachable,
                    "dmvx_version": c.facts.dmvx_version,
                    "version_ok": c.version_ok,
                    "ptrace_scope": c.facts.ptrace_scope,
                    "ptrace_ok": c.ptrace_ok,
                    "seccomp_ok": c.seccomp_ok,
                    "kernel": c.facts.kernel,
                    "arch": c.arch.value if c.arch else None,
                    "machine": c.facts.machine,
                    "clock_offset_s": None if c.facts.clock_offset is None else round(c.facts.clock_offset, 4),
                    "clock_ok": c.clock_ok,
                    "problems": list(c.problems),
                }
                for c in self.checks
            ],
        }

    def render(self, console: Any) -> None:
        from rich.table import Table

        def mark(good: bool, text: str = "") -> str:
            return (text + " " if text else "") + ("ok" if good else "NO")

        if not self.checks:
            console.print("no host of this topology is reached over SSH: nothing to check", markup=False)
            return
        table = Table(title=f"dmvx doctor: the machines of {self.topology}", title_justify="left")
        for column in ("host", "ssh", "reachable", "dmvx", "ptrace", "seccomp", "kernel", "arch", "clock offset"):
            table.add_column(column)
        for c in self.checks:
            f = c.facts
            if not c.reachable:
                table.add_row(f.host, str(f.address), "NO", *["-"] * 6)
                continue
            offset = "?" if f.clock_offset is None else f"{f.clock_offset:+.3f} s (±{f.clock_uncertainty:.3f})"
            table.add_row(
                f.host,
                str(f.address),
                "ok",
                mark(c.version_ok, f.dmvx_version or "none"),
                mark(c.ptrace_ok, f"scope {f.ptrace_scope}" if f.ptrace_scope is not None else "no Yama"),
                mark(c.seccomp_ok),
                f.kernel or "?",
                c.arch.value if c.arch else f"{f.machine or '?'} NO",
                mark(c.clock_ok, offset),
            )
        console.print(table)
        for problem in self.problems:
            console.print(f"problem: {problem}", markup=False, highlight=False)
