"""Measure this machine's MVX costs and write them as a sim cost profile.

``dmvx calibrate`` closes the loop between the two modes (issue 7): sim mode
prices every action from a cost profile (docs/sim.md), real mode pays real
costs. This package measures what real mode is made of (:mod:`.components`) and
writes it in the profile format of ``sim/profiles/*.yml`` (:mod:`.profile`):

``native``
    each microbenchmark call run natively (``realmode/targets/bench.c``);
``interception.seccomp_untraced``
    the same local loop under real mode's seccomp filter, never stopped;
the monitors' own work
    the core's (``dmvx.monitor``, timed in this process) and the local link
    between a monitor and its CONNECTOR (:mod:`realmode.link`);
the tracer
    what real mode's monitor processes spend per call of a whole run, from
    their CPU time (:func:`role_cpu_ns`): loops of ``getppid`` and ``uname``
    under dmvx and of ``getppid`` under dmon. Stops, registers, decoding,
    the event loop, sleeping and being woken: a stand-alone stop pair
    (:func:`ptrace_pair_ns`, kept for reference) is a third of it;
``connector``
    two real CONNECTOR processes passing batches of entries
    (:func:`connector_costs`) and frames over loopback TCP
    (:func:`message_costs`, for the cost per byte);
wake-ups
    a process woken on an idle CPU, and one woken on its waker's CPU.

:func:`profile_document` says how these map onto sim's costs. The calls the
check predicts (getpid, read, getcwd, sched_yield) are not among those the
calibration runs use.

:func:`check` (:mod:`.check`) then runs sim with that profile on the
microbenchmarks and real mode on the same programs (``benchmarks/bench_real.py``'s
functions), and lighttpd under ``ab`` in both (a recorded run replayed in sim),
and sets the predicted and measured slowdowns side by side with the error
(:mod:`.result`).
Real mode packs its processes onto this machine's CPUs; sim gives each
timeline a CPU of its own, so the prediction is also held to the work sim
charged to each of real mode's CPUs (:class:`Prediction`). Nothing measured
by :func:`check` goes into the profile: the profile holds component costs,
the slowdowns are sim's output.
"""

from __future__ import annotations

from realmode.calibrate.check import (
    CheckRow,
    Prediction,
    check,
    predict,
    predict_server,
    predict_us,
    server_rows,
    untimed_trace,
)
from realmode.calibrate.components import (
    KINDS,
    ConnectorCosts,
    LinkCosts,
    MessageCosts,
    RoleCosts,
    build_bench,
    connector_costs,
    link_costs,
    message_costs,
    monitor_ns,
    native_ns,
    ptrace_pair_ns,
    role_cpu_ns,
    seccomp_untraced_ns,
    wakeup_ns,
)
from realmode.calibrate.profile import DEFAULT_PROFILE, Measurements, measure, profile_document, write_profile
from realmode.calibrate.result import TARGET_ERROR, CalibrationResult

__all__ = [
    "KINDS", "DEFAULT_PROFILE", "TARGET_ERROR",
    "MessageCosts", "LinkCosts", "ConnectorCosts", "RoleCosts", "Measurements", "Prediction", "CheckRow",
    "CalibrationResult",
    "build_bench", "native_ns", "seccomp_untraced_ns", "ptrace_pair_ns", "monitor_ns", "wakeup_ns",
    "message_costs", "link_costs", "connector_costs", "role_cpu_ns",
    "measure", "profile_document", "write_profile",
    "predict", "predict_us", "predict_server", "untimed_trace", "server_rows", "check",
]
