"""The system-call microbenchmark (``realmode/targets/bench.c``): built, and
run natively, under real mode's seccomp filter, and as traced variants.

``benchmarks/bench_real.py`` prints these side by side and ``dmvx calibrate``
(:mod:`realmode.calibrate`) measures the same runs, so both take them from
here. The program times its own loop and prints ``kind count ns-per-call``:
every figure is the program's own clock (the leader's, which every variant
reads), in nanoseconds per call.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dmvx.exitstatus import EnvironmentProblem
from realmode import ptrace_ll as ll
from realmode import seccomp
from realmode.orchestrator import DEFAULT_STALL_TIMEOUT, make_policy, run

BENCH_SOURCE = Path(__file__).resolve().parent / "targets" / "bench.c"
#: The traced call kinds of the program (``local`` is the one the filter lets through).
KINDS = ("getpid", "read", "getcwd", "sched_yield")


def build(directory: str) -> str:
    """Compile the program into ``directory``; its path."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise EnvironmentProblem("gcc is needed to build realmode/targets/bench.c")
    binary = str(Path(directory) / "bench")
    subprocess.run([gcc, "-O2", "-o", binary, str(BENCH_SOURCE)], check=True)
    return binary


def per_call_ns(text: str) -> float:
    """What the program printed (``kind count ns-per-call``): ns per call."""
    return float(text.split()[2])


def native_ns(binary: str, kind: str, calls: int, cpu: int | None = None) -> float:
    """One native run of ``calls`` calls of ``kind`` (pinned to ``cpu``)."""
    argv = [binary, kind, str(calls)]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu)] + argv
    return per_call_ns(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def native_cpu_ns(binary: str, kind: str, calls: int, cpu: int | None = None) -> tuple[float, float]:
    """:func:`native_ns`, and the share of a CPU the run had (its CPU time
    over its wall time, at most 1): on a loaded machine the program's clock
    counts the time other processes held its CPU, and ns per call times the
    share is what the calls cost in CPU -- the unit ``dmvx calibrate``
    measures real mode's processes in (their CPU time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    ns = native_ns(binary, kind, calls, cpu)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return ns, min(used / wall, 1.0) if wall > 0 else 1.0


def native_pair_ns(binary: str, calls: int) -> float:
    """Two native copies of the local loop at once, one per CPU (the mean of both)."""
    cpus = sorted(os.sched_getaffinity(0))[:2]
    procs = [
        subprocess.Popen(["taskset", "-c", str(cpu), binary, "local", str(calls)], stdout=subprocess.PIPE, text=True)
        for cpu in cpus
    ]
    return statistics.mean(per_call_ns(p.communicate()[0]) for p in procs)


def filtered_ns(binary: str, calls: int, policy: str) -> float:
    """The local loop in one process under ``policy``'s filter, traced but never stopped in it."""
    program = seccomp.build_filter(make_policy(policy))
    read_fd, write_fd = os.pipe()
    pid = ll.spawn_stopped([binary, "local", str(calls)], write_fd, program)
    os.close(write_fd)
    ll.set_options(pid, ll.PTRACE_O_TRACESECCOMP | ll.PTRACE_O_EXITKILL)
    ll.resume(pid, False)
    while True:
        _, status = os.waitpid(pid, ll.WALL)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            break
        sig = os.WSTOPSIG(status)
        ll.resume(pid, False, 0 if sig == signal.SIGTRAP else sig)
    with os.fdopen(read_fd) as out:
        return per_call_ns(out.read())


def traced_ns(
    binary: str,
    kind: str,
    calls: int,
    policy: str,
    place: str = "auto",
    in_process: bool = False,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
) -> float:
    """Two variants of the loop under ``dmvx run`` with ``policy``, CPUs
    placed by ``place`` (:func:`realmode.orchestrator.placement`), on the
    in-process path if ``in_process``: the program's nanoseconds per call
    (:func:`traced`)."""
    return traced(binary, kind, calls, policy, place, in_process, stall_timeout=stall_timeout).ns_per_call


def traced_times(
    binary: str,
    kind: str,
    calls: int,
    policy: str,
    place: str = "auto",
    in_process: bool = False,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
) -> tuple[float, float]:
    """As :func:`traced_ns`: (ns per call as the program's clock says, ns per
    call of the whole run from start to end). The second counts the
    followers catching up after the leader's loop, and the run's start-up."""
    one = traced(binary, kind, calls, policy, place, in_process, stall_timeout=stall_timeout)
    return one.ns_per_call, one.run_ns_per_call


@dataclass(frozen=True, slots=True)
class Traced:
    """One traced run of the loop: the program's own nanoseconds per call,
    the whole run's, and the CPU nanoseconds per call of each variant's
    monitor process (with the variant it reaps), which load from other work
    on the machine moves far less than the wall clock."""

    ns_per_call: float
    run_ns_per_call: float
    monitor_cpu_ns_per_call: tuple[float, ...]
    #: CPU nanoseconds of every monitor and CONNECTOR process of the run
    #: together (not per call): the whole pipeline's work.
    pipeline_cpu_ns: float = 0.0


def traced(
    binary: str,
    kind: str,
    calls: int,
    policy: str,
    place: str = "auto",
    in_process: bool = False,
    summary: bool = False,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
) -> Traced:
    """Two variants of the loop under ``dmvx run`` with ``policy``, CPUs
    placed by ``place`` (:func:`realmode.orchestrator.placement`), on the
    in-process path if ``in_process``, counting the calls when ``summary``
    (``dmvx run --summary``); ``stall_timeout`` as ``dmvx run``'s (a loaded
    machine can starve a variant longer than the default). A divergence is an
    :class:`EnvironmentProblem`: the program is deterministic, so this
    machine's tracing is what went wrong."""
    argv = [binary, kind, str(calls)]
    with tempfile.TemporaryFile() as out:
        saved = os.dup(1)
        try:
            os.dup2(out.fileno(), 1)
            result = run(
                [argv, argv], policy, place=place, in_process=in_process, summary=summary, stall_timeout=stall_timeout
            )
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        out.seek(0)
        text = out.read().decode()
    if result.verdict is not None:
        raise EnvironmentProblem(f"{kind} under {policy}: {result.verdict.summary()}")
    if in_process and result.variants[0].stats.get("in_process", {}).get("path") != "in-process":
        raise EnvironmentProblem(f"{kind} under {policy}: the in-process path did not load (./run setup builds it)")
    cpu = tuple(v.cpu_s.get("monitor", 0.0) * 1e9 / calls for v in result.variants)
    pipeline = sum(v.cpu_s.get("monitor", 0.0) + v.cpu_s.get("connector", 0.0) for v in result.variants) * 1e9
    return Traced(per_call_ns(text), result.elapsed * 1e9 / calls, cpu, pipeline)
