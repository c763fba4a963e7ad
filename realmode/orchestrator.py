"""``dmvx run``: start the variants, their monitors and CONNECTORs; collect the end.

Per variant the orchestrator forks two processes: a CONNECTOR
(:mod:`realmode.connector`) and a monitor (:mod:`realmode.tracer`) which
forks the variant itself. Monitor and CONNECTOR share a socketpair; the
CONNECTORs talk over TCP on loopback, the leader's listening on a socket the
orchestrator opened before anything started (so no port is guessed and no
follower can connect too early). The run key is made here and reaches the
CONNECTORs by inheritance only: each monitor wipes its inherited copy before
anything else, and the orchestrator its own once every CONNECTOR is forked
(:class:`realmode.isolation.RunKey`), so no monitor and no variant holds it.

The orchestrator is also the last line of cleanup. Each monitor reports on
a pipe (:mod:`realmode.reports`, read by :func:`realmode.reports.collect` as
the agents on emulated hosts read theirs). On the first verdict every
variant is killed at once; whatever way the run ends --
verdict, normal end, an exception, Ctrl-C -- every process it forked is
SIGKILLed and reaped by pid before :func:`run` returns, and the variants,
traced with ``PTRACE_O_EXITKILL``, die with their monitors in any case.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dmvx.errors import InputError
from dmvx.exitstatus import EnvironmentProblem, ExitStatus
from dmvx.policy import Policy
from dmvx.ranahead import RanAhead
from dmvx.rows import Rows, flatten, rows_of_records
from dmvx.syscalls import Arch
from dmvx.verdict import Verdict, VerdictKind, variant_name
from realmode import callsummary, isolation, reports, seccomp
from realmode import record as record_mod
from realmode.callsummary import CallSummary
from realmode.connector import BACKLOG, run_connector
from realmode.deferral import signals_deferred
from realmode.helper_process import run_helper
from realmode.inproc import layout, tables
from realmode.native import build as native_build
from realmode.spawn import default_compare_from, elf_arch, resolve, spawn_variant
from realmode.tracer import Launch

#: Files no outside process changes during a run: libraries, the loader
#: cache, locale and time-zone data. Each variant reads its own copy (the
#: dynamic loader must map real files, which a placeholder cannot give).
SYSTEM_LOCAL_FILES: tuple[str, ...] = (
    "/etc/ld.so.cache",
    "/lib/*",
    "/lib32/*",
    "/lib64/*",
    "/libx32/*",
    "/usr/lib/*",
    "/usr/lib32/*",
    "/usr/lib64/*",
    "/usr/libx32/*",
    "/usr/local/lib/*",
    "/usr/share/locale/*",
    "/usr/share/zoneinfo/*",
    "/etc/localtime",
    "/usr/lib/locale/*",
    "/usr/share/i18n/*",
)

#: ``DMVX_IN_PROCESS=on`` makes the in-process path the default of a run that
#: does not say (``dmvx run`` without ``--in-process``, the test suite's runs).
IN_PROCESS_ENV = "DMVX_IN_PROCESS"

#: How long a variant may stay silent while another waits, by default.
DEFAULT_STALL_TIMEOUT = 2.0


@dataclass
class VariantReport:
    index: int
    argv: list[str]
    pid: int | None = None
    status: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    #: How its monitor's last report ended it (:mod:`realmode.reports`).
    end: str | None = None
    #: CPU seconds (user + system) of this variant's monitor -- with the
    #: variant's own processes, which it reaps -- and of its CONNECTOR:
    #: where a run's overhead goes, and what ``dmvx calibrate`` prices.
    cpu_s: dict[str, float] = field(default_factory=dict)


@dataclass
class RunResult:
    """The outcome of ``dmvx run`` (a :class:`dmvx.output.Result`)."""

    policy: str
    variants: list[VariantReport]
    verdict: Verdict | None = None
    program_status: int | None = None
    unsupported: str | None = None
    error: str | None = None
    elapsed: float = 0.0
    #: How long a variant may stay silent while another waits (seconds).
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    #: Every process the run forked (monitors, CONNECTORs), for cleanup checks.
    helpers: list[int] = field(default_factory=list)
    #: With a verdict: the calls the leader ran that no follower had
    #: confirmed (asynchronous replication), as its monitor reported them.
    ran_ahead: RanAhead | None = None
    #: The signal that interrupted the run (SIGINT, SIGTERM); None if none did.
    interrupted: str | None = None
    #: ``--summary``: every variant's calls per route (None when not asked).
    summary: CallSummary | None = None

    @property
    def exit_status(self) -> ExitStatus:
        if self.error is not None:
            return ExitStatus.INTERNAL
        if self.interrupted is not None:
            return ExitStatus.INTERRUPTED
        if self.unsupported is not None:
            return ExitStatus.UNAVAILABLE
        if self.verdict is not None:
            return ExitStatus.DIVERGENCE
        return ExitStatus.OK

    @property
    def process_exit_code(self) -> int:
        """What the ``dmvx run`` process should exit with: the program's own
        status after a clean run (as a native run would), else the dmvx status."""
        if self.exit_status is ExitStatus.OK and self.program_status is not None:
            return self.program_status
        return int(self.exit_status)

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "status": self.exit_status.label,
            "program_status": self.program_status,
            "verdict": self.verdict.to_dict() if self.verdict is not None else None,
            "ran_ahead": self.ran_ahead.to_dict() if self.verdict is not None and self.ran_ahead is not None else None,
            "unsupported": self.unsupported,
            "error": self.error,
            "interrupted_by": self.interrupted,
            "elapsed_s": round(self.elapsed, 6),
            **({"summary": self.summary.to_json()} if self.summary is not None else {}),
            "variants": [
                {
                    "variant": variant_name(v.index),
                    "argv": v.argv,
                    "status": v.status,
                    **v.stats,
                    "cpu_s": {role: round(seconds, 6) for role, seconds in v.cpu_s.items()},
                }
                for v in self.variants
            ],
        }

    def rows(self) -> Rows:
        """``--format``: one flat row per variant, the run's own fields
        (policy, status, the verdict, ``elapsed_s``) repeated in each; with
        ``--summary``, one row per variant, call and route instead."""
        if self.summary is not None:
            return self.summary.table(policy=self.policy)
        document = self.to_json()
        variants = document.pop("variants")
        run = flatten(document)
        records = []
        for v in variants:
            own = {k: (shlex.join(value) if k == "argv" else value) for k, value in v.items() if k != "variant"}
            records.append({**run, "variant": v["variant"], **flatten(own, "variant.")})
        return rows_of_records(records or [run])

    def render(self, console: Any) -> None:
        # A clean run prints nothing: its stderr must be the program's alone.
        if self.interrupted is not None:
            console.print(
                f"dmvx: interrupted by {self.interrupted} after {self.elapsed:.1f} s", soft_wrap=True, markup=False
            )
        elif self.unsupported is not None:
            console.print(f"dmvx run: {self.unsupported}", soft_wrap=True, markup=False)
        elif self.verdict is not None:
            console.print(f"[bold red]dmvx: divergence[/] {self.verdict.summary()}", markup=True, soft_wrap=True)
            ran = self.ran_ahead if self.ran_ahead is not None else RanAhead()
            console.print(
                f"dmvx: {ran.summary(self.verdict.seq, self.verdict.calls.get(0))}", soft_wrap=True, markup=False
            )
            if self.verdict.kind is VerdictKind.NO_PROGRESS:
                console.print(
                    f"dmvx: a variant made no system call for {self.stall_timeout:g} s (time it waited for a "
                    f"CPU not counted) while another waited for it: a hang, or a program that computes longer "
                    f"than that between calls (dmvx run --stall-timeout).",
                    soft_wrap=True,
                    markup=False,
                )
        elif self.error is not None:
            console.print(f"dmvx run: internal error: {self.error}", soft_wrap=True, markup=False)
        if self.summary is not None:
            self.summary.render(console)
        paths = self.paths()
        if (self.verdict is not None or self.interrupted is not None) and "in-process" in paths.values():
            said = ", ".join(f"{variant_name(index)} {path}" for index, path in paths.items())
            console.print(f"dmvx: replicated calls took these paths: {said}", soft_wrap=True, markup=False)

    def paths(self) -> dict[int, str]:
        """Which path each variant's first process took: ``in-process`` or
        ``ptrace`` (docs/realmode.md, "The in-process path")."""
        return {v.index: v.stats.get("in_process", {}).get("path", "ptrace") for v in self.variants}


def with_system_files_local(policy: Policy) -> Policy:
    """``policy`` with real mode's system files (libraries, locale, the loader
    cache) declared local: each variant's loader maps its own copies."""
    return replace(policy, local_files=tuple(dict.fromkeys((*policy.local_files, *SYSTEM_LOCAL_FILES))))


def make_policy(name: str, **knobs: Any) -> Policy:
    """The preset ``name`` with real mode's system files declared local."""
    try:
        return with_system_files_local(Policy.preset(name, **knobs))
    except ValueError as error:
        raise InputError(str(error)) from None


def placement(
    policy: Policy, n: int, how: str = "auto", in_process: bool = False
) -> Sequence[tuple[int | None, int | None, int | None]]:
    """Where each variant's side runs: ``(CPU of its program, of its monitor,
    of its CONNECTOR)`` per variant. ``in_process``: the leader takes the
    in-process path (docs/realmode.md, "The in-process path").

    Waking a process on another, idle vCPU costs 20-45 us on these VMs
    (measured on this project's VMs), and two busy programs on one CPU each get half of
    it. The choices:

    ``split``
        the leader's program and monitor on the first CPU, every CONNECTOR
        and every follower (program and monitor) on the others: the leader
        runs ahead undisturbed while the rest catches up. Best for
        asynchronous policies (dmvx) on the ptrace path. On the in-process
        path the leader's monitor drains its ring while the program runs,
        so it goes to the CONNECTORs' CPU: every monitor and CONNECTOR then
        shares one CPU.
    ``lockstep``
        every monitor and CONNECTOR on the first CPU with the leader's
        program, the followers' programs on the others: each message of a
        lockstep round trip stays on one CPU, and the programs' own work
        still runs in parallel. The default for synchronous policies (dmon).
    ``same``
        everything on one CPU: the fastest traced calls under dmon, but two
        variants' own work then shares one CPU (a loop of untraced calls
        takes twice as long).
    ``spread``
        each variant's side (program, monitor, CONNECTOR) on its own CPU.
        The default on the in-process path: the leader's program waits for
        its own monitor at every stopped call (an ``epoll_wait`` waits for
        the ring to be drained), so the two take turns on one CPU and the
        followers' side keeps pace on the other.
    ``none``
        no pinning.

    ``auto`` is ``split`` for asynchronous policies on the ptrace path,
    ``spread`` on the in-process path, and ``lockstep`` for synchronous
    policies (docs/realmode.md has the measurements).
    """
    cpus = sorted(os.sched_getaffinity(0))
    if how == "auto":
        how = ("spread" if in_process else "split") if policy.async_replication else "lockstep"
    if how not in ("same", "split", "spread", "lockstep", "none"):
        raise InputError(f"dmvx run: placement {how!r}: expected auto, same, split, spread or none")
    if how == "none" or len(cpus) < 2:
        return [(None, None, None)] * n
    first, others = cpus[0], cpus[1:]
    if how == "same":
        return [(first, first, first)] * n
    if how == "spread":
        return [(cpus[i % len(cpus)],) * 3 for i in range(n)]
    if how == "lockstep":
        return [(first, first, first)] + [(others[(i - 1) % len(others)], first, first) for i in range(1, n)]
    followers = [(others[(i - 1) % len(others)],) * 3 for i in range(1, n)]
    return [(first, others[0] if in_process else first, others[0])] + followers


def variant_filters(policy: Policy, n: int, preloading: bool) -> list[list[seccomp.Insn]]:
    """Each of ``n`` variants' seccomp filter: with the in-process path
    (``preloading``), the leader's lets its fast calls through from the
    trampoline and the followers' theirs (:func:`tables.filter_names`)."""
    if not preloading:
        return [seccomp.build_filter(policy)] * n
    leader = seccomp.build_filter(policy, tables.filter_names(policy), layout.SITES)
    follower = seccomp.build_filter(policy, tables.filter_names(policy, follower=True), layout.SITES)
    return [leader] + [follower] * (n - 1)


def inproc_choices(policy: Policy, paths: Sequence[str]) -> list[native_build.Library | None]:
    """What each variant finds for the in-process path: None where the
    policy has no asynchronous replication (dmon: every call is lockstep,
    so every variant stays on the ptrace path, as asked), else the library
    of the executable's ELF class (x86-64 for a script: its interpreter is
    the machine's; ABI-diverse pairs included), or why there is none usable
    (not built, an architecture dmvx builds none for, another layout
    version or other sources: :func:`realmode.native.build.check`)."""
    if not policy.async_replication:
        return [None] * len(paths)
    return [native_build.check(elf_arch(path) or Arch.X86_64) for path in paths]


def inproc_libraries(policy: Policy, paths: Sequence[str]) -> list[str | None]:
    """The library each variant preloads for the in-process path, None for a
    variant that runs on the ptrace path (:func:`inproc_choices`)."""
    return [str(c.path) if c is not None and c.path is not None else None for c in inproc_choices(policy, paths)]


def refused_libraries(choices: Sequence[native_build.Library | None]) -> dict[int, str]:
    """Each variant that asked for the in-process path and runs on the
    ptrace path because its library is not usable, and why."""
    return {i: c.problem for i, c in enumerate(choices) if c is not None and c.problem is not None}


def say_refused(refused: dict[int, str]) -> None:
    """One line on stderr per reason a library was refused: a run asked for
    the in-process path and does not silently take the other."""
    for problem in dict.fromkeys(refused.values()):
        which = ", ".join(variant_name(i) for i, why in refused.items() if why == problem)
        print(f"dmvx run: {which} on the ptrace path: {problem}", file=sys.stderr, flush=True)


def _check_kernel() -> None:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as handle:
            if handle.read().strip() == "3":
                raise EnvironmentProblem("ptrace is disabled on this machine (kernel.yama.ptrace_scope=3)")
    except FileNotFoundError:
        pass


def run(
    variants: Sequence[Sequence[str]],
    policy: str | Policy = "dmvx",
    *,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    envs: Sequence[dict[str, str]] | None = None,
    pin: bool = True,
    place: str = "auto",
    stdout_to_stderr: bool = False,
    compare_from: str | None = None,
    flush_delay: float = 0.001,
    record: str | os.PathLike[str] | None = None,
    in_process: bool | None = None,
    summary: bool = False,
) -> RunResult:
    """Run ``variants`` (argv lists, leader first) under the monitors.

    ``place`` is the CPU placement (:func:`placement`; ``pin=False`` is
    ``none``). ``stdout_to_stderr`` sends the leader's stdout to stderr (for
    ``dmvx run --json``). ``compare_from`` is ``"exec"`` or ``"entry"``; by
    default ``"entry"`` when the variants' executables are of different
    architectures (their dynamic loaders differ; docs/realmode.md), else
    ``"exec"``. ``record`` names a file to write the run's trace into
    (docs/trace-format.md; :mod:`realmode.record`). ``in_process``: replicated
    calls of dynamically linked x86-64 and i386 variants take the in-process path
    (:mod:`realmode.inproc`) where the policy and the variants allow it; None
    takes :data:`IN_PROCESS_ENV` (``on``), else the ptrace path. ``summary``
    counts every variant's calls per route (:mod:`realmode.callsummary`).
    """
    if len(variants) < 2:
        raise InputError("dmvx run: MVX needs at least two variants")
    _check_kernel()
    pol = policy if isinstance(policy, Policy) else make_policy(policy)
    paths = [resolve(argv[0]) for argv in variants]
    key = isolation.RunKey()
    run_id = secrets.token_hex(8)
    n = len(variants)
    if compare_from is None:
        compare_from = default_compare_from(paths)
    elif compare_from not in ("exec", "entry"):
        raise InputError(f"dmvx run: compare from {compare_from!r}: expected exec or entry")
    if in_process is None:
        in_process = os.environ.get(IN_PROCESS_ENV) == "on"
    choices = inproc_choices(pol, paths) if in_process else [None] * n
    preloads = [str(c.path) if c is not None and c.path is not None else None for c in choices]
    cpus = placement(pol, n, place if pin else "none", in_process=preloads[0] is not None)
    refused = refused_libraries(choices)
    say_refused(refused)
    bpfs = variant_filters(pol, n, any(preload is not None for preload in preloads))
    variant_reports = [VariantReport(i, list(argv)) for i, argv in enumerate(variants)]
    trace = Path(record) if record is not None else None
    parts = [record_mod.part_path(trace, run_id, i) for i in range(n)] if trace is not None else None
    if trace is not None:
        record_mod.check_target(trace, "dmvx run")
    result = RunResult(pol.name, variant_reports, stall_timeout=stall_timeout)
    children: list[int] = []
    interrupted = False
    pipes: dict[int, int] = {}
    listener = socket.create_server(("127.0.0.1", 0), backlog=max(n, BACKLOG))
    address = listener.getsockname()[:2]
    started = time.monotonic()
    sys.stdout.flush()
    sys.stderr.flush()
    previous_term = signal.signal(signal.SIGTERM, _terminate)
    me = os.getpid()
    try:
        for index in range(n):

            def fork(role: str, body: Callable[[], None], keep: set[int], index: int = index) -> int:
                with signals_deferred():  # a Ctrl-C in the at-fork hooks is not lost (realmode.deferral)
                    pid = os.fork()
                    if pid == 0:  # the CONNECTOR pinned by the placement; the monitor pins itself
                        if role == "monitor":
                            key.wipe()  # the key lives only where it is used
                        _child(
                            body,
                            keep=keep | ({0, 1, 2} if role == "monitor" else set()),
                            parent=me,
                            cpu=cpus[index][2] if role == "connector" else None,
                        )
                    children.append(pid)
                return pid

            def connector(con_end: socket.socket, index: int = index) -> None:
                run_connector(
                    index,
                    n,
                    key.secret,
                    run_id,
                    con_end,
                    listener if index == 0 else None,
                    None if index == 0 else address,
                    silence=stall_timeout,
                )

            env = dict(envs[index]) if envs is not None else dict(os.environ)
            launch = Launch(
                index,
                n,
                pol,
                paths[index],
                list(variants[index]),
                env,
                bpfs[index],
                stall_timeout,
                cpus[index][1],
                compare_from,
                stdout_to_stderr and index == 0,
                flush_delay,
                cpus[index][0],
                parts[index] if parts is not None else None,
                preloads[index],
                summary,
                preload_arch=elf_arch(paths[index]) or Arch.X86_64,
            )
            spawned = spawn_variant(launch, fork, connector, [listener.fileno()] if index == 0 else [])
            pipes[spawned.report_fd] = index
        key.wipe()
        listener.close()
        collected = reports.RunReports()
        reports.collect(pipes, variant_reports, collected)
        result.verdict, result.unsupported, result.error = collected.verdict, collected.unsupported, collected.error
        result.program_status = collected.program_status
        result.ran_ahead = collected.ran_ahead
    except KeyboardInterrupt as stop:
        interrupted = True
        result.interrupted = str(stop) if str(stop).startswith("SIG") else "SIGINT"
        raise Interrupted(result) from None
    finally:
        # A second Ctrl-C or SIGTERM must not cut the cleanup short: the
        # signals wait until it is done (and then interrupt, if they came).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            listener.close()
            if interrupted:
                reports.progress(pipes, variant_reports, children[_ROLES.index("monitor") :: len(_ROLES)])
            for fd in pipes:
                os.close(fd)
            for i, seconds in enumerate(_kill_all(children)):
                variant_reports[i // len(_ROLES)].cpu_s[_ROLES[i % len(_ROLES)]] = seconds
            for index, why in refused.items():
                variant_reports[index].stats.setdefault("in_process", {"path": "ptrace"})["why"] = why
            result.helpers = children
            if summary:
                result.summary = CallSummary.of((v.index, v.stats) for v in variant_reports)
                for v in variant_reports:
                    v.stats = callsummary.take(v.stats)
            if trace is not None and parts is not None:
                variants_info = [
                    {"arch": (elf_arch(path) or Arch.X86_64).value, "program": list(argv)}
                    for path, argv in zip(paths, variants)
                ]
                # A server stopped from outside (Ctrl-C, SIGTERM) leaves its
                # followers a few calls behind: cut to what all of them made.
                record_mod.join(
                    trace,
                    parts,
                    variants_info,
                    trim=interrupted and result.verdict is None,
                    policy=pol.name,
                    recorded="dmvx run",
                )
            result.elapsed = time.monotonic() - started
        finally:
            signal.signal(signal.SIGTERM, previous_term)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return result


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM ended a run; ``result`` holds its figures so far
    (``dmvx run --json`` still writes its document)."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(result.interrupted)
        self.result = result


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM ends a run the way Ctrl-C does: through the ``finally`` that
    kills and reaps every process of the run (``dmvx run`` then exits 130)."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _child(body, keep: set[int], parent: int, cpu: int | None = None) -> None:
    """Run ``body`` in a freshly forked child of ``parent`` and never return.
    The orchestrator ends the run on Ctrl-C and SIGTERM (sent to the whole
    process group too); its helpers leave both to it, and die with it if it
    is killed outright (``kill -9``)."""
    run_helper(body, keep, cpu=cpu, ignore=(signal.SIGINT, signal.SIGTERM), parent=parent)


#: The processes the orchestrator forks per variant, in order.
_ROLES = ("connector", "monitor")


def _kill_all(children: list[int]) -> list[float]:
    """SIGKILL and reap every child; the CPU seconds each used (with the
    descendants it reaped itself), 0.0 for one reaped elsewhere."""
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    seconds = []
    for pid in children:
        try:
            _, _, usage = os.wait4(pid, 0)
            seconds.append(usage.ru_utime + usage.ru_stime)
        except ChildProcessError:
            seconds.append(0.0)
    return seconds
