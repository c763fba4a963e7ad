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
    between a monitor and its CONNECTOR (:mod:`realmode.monitor_socket`);
the tracer
    what real mode's monitor processes spend per call of a whole run, from
    their CPU time (:func:`role_cpu_ns`): loops of ``getppid`` and ``uname``
    under dmvx and of ``getppid`` under dmon. Stops, registers, decoding,
    the event loop, sleeping and being woken: a stand-alone stop pair
    (:func:`ptrace_pair_ns`, kept for reference) is a third of it;
the in-process path
    ``dmvx run --in-process on`` on a ``getppid`` loop (:func:`dipmon_costs`):
    the program's cost per wrapped call, and each process's CPU per record
    (the leader's monitor draining its ring, a follower's feeding and
    checking); measured, since the pipeline behind the ring changes; the
    same on ``alternate`` (records each alone, as a server's: what a run of
    one costs) and ``alternate_read`` (what the bytes a record carries cost),
    which dmon also runs for the ptrace path's costs per byte;
``connector``
    two real CONNECTOR processes passing batches of entries
    (:func:`connector_costs`) and frames over loopback TCP
    (:func:`message_costs`, for the cost per byte);
wake-ups
    a process woken on an idle CPU, and one woken on its waker's CPU.

:func:`profile_document` says how these map onto sim's costs. The calls the
check predicts (getpid, read, getcwd, sched_yield) are not among those the
calibration runs use.

:func:`measure_check` (:mod:`.check`) then measures, for ``--check``, the
microbenchmarks (:mod:`realmode.microbench`) and lighttpd under ``ab``
(:mod:`realmode.lighttpd_local`, with a run recorded for sim to replay) in
real mode. Sim predicts the same runs with that profile
(:mod:`sim.calibration`) and the CLI sets the predicted and measured
slowdowns side by side with the error (:mod:`dmvx.calibration`): the
comparison lives above both modes, which never import each other.
Real mode packs its processes onto this machine's CPUs; sim gives each
timeline a CPU of its own, so the prediction is also held to the work sim
charged to each of real mode's CPUs (:class:`sim.calibration.Prediction`).
Nothing measured for the check goes into the profile: the profile holds
component costs, the slowdowns are sim's output.
"""

from __future__ import annotations

from realmode.calibrate.check import measure as measure_check
from realmode.calibrate.components import (
    ALTERNATE_READ_BYTES,
    ConnectorCosts,
    DipmonCosts,
    LinkCosts,
    MessageCosts,
    RoleCosts,
    connector_costs,
    dipmon_costs,
    link_costs,
    message_costs,
    monitor_ns,
    ptrace_pair_ns,
    role_cpu_ns,
    seccomp_untraced_ns,
    wakeup_ns,
)
from realmode.calibrate.profile import DEFAULT_PROFILE, Measurements, measure, profile_document, write_profile

__all__ = [
    "ALTERNATE_READ_BYTES",
    "DEFAULT_PROFILE",
    "MessageCosts",
    "LinkCosts",
    "ConnectorCosts",
    "DipmonCosts",
    "RoleCosts",
    "Measurements",
    "seccomp_untraced_ns",
    "ptrace_pair_ns",
    "monitor_ns",
    "wakeup_ns",
    "message_costs",
    "link_costs",
    "connector_costs",
    "dipmon_costs",
    "role_cpu_ns",
    "measure",
    "profile_document",
    "write_profile",
    "measure_check",
]
