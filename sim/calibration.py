"""Sim's side of ``dmvx calibrate --check``: what sim predicts for the runs
real mode measures, on the CPUs real mode puts them on.

The check itself (measurement beside prediction) lives above both modes
(:mod:`dmvx.calibration`); real mode hands over where it placed its
processes (:data:`dmvx.calibration.Placement`), so sim never imports it.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmvx.calibration import Placement, Predicted, PredictionAsk
from dmvx.exitstatus import EnvironmentProblem
from dmvx.policy import Policy
from dmvx.scenario import load_scenario
from sim.engine import RECORD_BYTES
from sim.profile import load_profile
from sim.runner import simulate

#: Real mode's ``dmvx run`` puts both variants on this machine, CONNECTORs on
#: loopback: two hosts one switch apart, a few microseconds per hop.
_CHECK_SCENARIO = """\
name: calibration-check
topology:
  name: loopback
  hosts:
    h1: {arch: x86_64, role: variant}
    h2: {arch: x86_64, role: variant}
  switches: [s1]
  links:
    - {a: h1, b: s1, delay: 5us, bw: 10Gbit}
    - {a: h2, b: s1, delay: 5us, bw: 10Gbit}
seed: 1
cost_profile: PROFILE
variants:
  - host: h1
  - host: h2
policy:
  preset: POLICY
workload: WORKLOAD
"""


@dataclass
class Prediction:
    """Sim's figures for a run, microseconds per call (or per request).

    ``span`` is the leader's run as sim's timelines give it: each variant
    and each CONNECTOR with a CPU of its own. Real mode packs six processes
    onto this machine's CPUs (:func:`realmode.orchestrator.placement`), so
    ``cpus`` adds up, per CPU, the work sim charged to what runs there, and
    the leader can go no faster than the CPUs it depends on allow.

    In lockstep that is every CPU. With asynchronous replication it is its
    own CPU, and the others only beyond what the CB holds: a leader may
    finish ``cb_entries`` ahead, so for the share ``behind`` of its entries
    it can go no faster than the others take them. A CPU that falls behind
    finds more waiting at each wake-up: its CONNECTORs' batches and its
    monitors' reads grow to the CONNECTOR's limit and their fixed costs
    fade, which sim's timelines, a CPU each, never see. ``saturated`` is
    each CPU's work so counted.

    ``own`` (asynchronous replication): the leader's own work on its CPU,
    as (work, saturated). What else runs there -- its monitor on the
    in-process path under ``spread`` placement, its CONNECTOR -- works
    behind the leader as another CPU's does, so only its share ``behind``
    counts: a short loop runs ahead of its monitor, a long one waits for it
    at the CPU's pace.
    """

    span: float
    cpus: dict[int, float]
    binding: tuple[int, ...]
    behind: float = 0.0
    saturated: dict[int, float] = field(default_factory=dict)
    #: The same loop run natively in sim, us per call (0: not run).
    native: float = 0.0
    own: tuple[float, float] | None = None

    def _limits(self) -> dict[str, float]:
        limits = {"timelines": self.span}
        for cpu, work in self.cpus.items():
            if cpu not in self.binding:
                limits[f"cpu {cpu}"] = self.saturated.get(cpu, work) * self.behind
            elif self.own is None:
                limits[f"cpu {cpu}"] = work
            else:
                mine, mine_saturated = self.own
                limits[f"cpu {cpu}"] = mine + (self.saturated.get(cpu, work) - mine_saturated) * self.behind
        return limits

    @property
    def us(self) -> float:
        return max(self._limits().values())

    @property
    def bound(self) -> str:
        """What sets the predicted figure: the timelines, or a CPU's work."""
        limits = self._limits()
        return max(limits, key=lambda name: limits[name])


def _simulate(profile_path: Path, workload: dict[str, Any], policy: str) -> tuple[Any, Any]:
    """Sim's :class:`sim.runner.Experiment` of ``workload`` on the check's
    two loopback hosts under ``policy``, and the profile it ran with."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "check.yml"
        path.write_text(
            _CHECK_SCENARIO.replace("PROFILE", json.dumps(str(profile_path.resolve())))
            .replace("POLICY", policy)
            .replace("WORKLOAD", json.dumps(workload))
        )
        scenario = load_scenario(path)
    profile = load_profile(str(profile_path.resolve()))
    return simulate(scenario, profile), profile


def _saturated(mvx: Any, variant: Any, profile: Any, in_process: bool) -> tuple[float, float]:
    """``variant``'s monitor and its CONNECTOR, ns of work, with every batch
    and every read of the link as large as the CONNECTOR allows (priced as
    the run was: :meth:`sim.profile.CostProfile.handover`)."""
    most = profile.max_batch_messages
    h = profile.handover(in_process)
    stats = mvx.connectors[variant.host]  # the check's hosts have a variant each
    sent, taken = stats["messages"], stats["received_messages"]
    batches_out, batches_in = math.ceil(sent / most), math.ceil(taken / most)
    monitor = variant.busy_time - h.monitor_receive * (variant.reads - batches_in)
    # Its work as it ran, less the fixed costs of the batches it made beyond
    # the fewest it could have (the per-entry, per-run and per-byte parts stay).
    connector = (
        stats["busy_ns"]
        - h.send * (stats["batches"] - batches_out)
        - h.receive * (stats["received_batches"] - batches_in)
    )
    return max(monitor, 0.0), max(connector, 0.0)


def _placed(
    mvx: Any, policy: str, span_ns: float, per: int, profile: Any, places: Placement, scale: float = 1.0
) -> Prediction:
    """``mvx`` (a sim run under ``profile``) on real mode's CPUs (``places``,
    a triple per variant as :data:`dmvx.calibration.Placement` says), ``per``
    calls or requests. ``scale``: the run real mode measured is that many
    times as long as the one sim ran (a server's recorded run is shorter
    than the measured one), which sets how much of it the leader can run
    ahead of the other CPUs."""
    pol = Policy.preset(policy)
    cpus: dict[int, float] = {}
    saturated: dict[int, float] = {}
    own = (0.0, 0.0)
    in_process = any(variant.monitor_busy for variant in mvx.variants)
    for variant, (program_cpu, monitor_cpu, connector_cpu) in zip(mvx.variants, places):
        # A variant's work is its monitor's (its program's own is native);
        # on the in-process path its timeline is its program's and the
        # wrapper's, and its monitor's work runs beside it (monitor_busy).
        monitor_sat, connector_sat = _saturated(mvx, variant, profile, in_process and pol.async_replication)
        timeline_cpu = program_cpu if in_process else monitor_cpu
        for cpu, busy, sat in (
            (timeline_cpu, variant.busy_time, monitor_sat),
            (monitor_cpu, variant.monitor_busy, variant.monitor_busy),
            (connector_cpu, mvx.connectors[variant.host]["busy_ns"], connector_sat),
        ):
            key = cpu if cpu is not None else -1
            cpus[key] = cpus.get(key, 0.0) + busy / per / 1000
            saturated[key] = saturated.get(key, 0.0) + sat / per / 1000
        if variant is mvx.variants[0]:
            own = (variant.busy_time / per / 1000, monitor_sat / per / 1000)
    span = span_ns / per / 1000
    if not pol.async_replication:
        return Prediction(span, cpus, tuple(cpus))
    leader = places[0][0] if in_process else places[0][1]
    leader_cpu = leader if leader is not None else -1
    entries = len(mvx.leader_times) * scale
    ahead = pol.cb_entries
    if in_process and profile.dipmon is not None:
        ahead = _ahead_in_process(mvx, pol.cb_entries, profile.dipmon.ring)
    behind = max(entries - ahead, 0) / max(entries, 1)
    return Prediction(span, cpus, (leader_cpu,), behind, saturated, own=own)


def _ahead_in_process(mvx: Any, cb_entries: int, ring: int) -> int:
    """How many records the leader's program runs ahead of the pipeline
    behind it (its monitor, then the CONNECTORs and the followers' side):
    its ring's worth, in records of the size the
    run's were -- and the CB's only when a stage behind the CB (a
    CONNECTOR, a follower's monitor) has more work a record than the
    leader's monitor, so that the entries queue there. Sharing one CPU the
    stages go at one pace, and the queue forms in front of the dearest: a
    loop's records in runs cost a follower twice what they cost the leader's
    monitor, and its CB fills; lighttpd's records, each alone, cost the
    leader's monitor as much as the follower's or more, and its program
    waits for its own ring while the CB stays near empty (measured: the
    core never held a call for a full CB in 1,000 requests, the program
    waited on its full ring 23-38% of the time; docs/realmode.md, "What the
    leader waits on")."""
    lead = mvx.variants[0]
    record = lead.ring_bytes / lead.ring_records if lead.ring_records else RECORD_BYTES
    ahead = int(ring // record)
    behind_cb = [variant.monitor_busy for variant in mvx.variants[1:]]
    behind_cb += [stats["busy_ns"] for stats in mvx.connectors.values()]
    if behind_cb and max(behind_cb) > lead.monitor_busy:
        ahead += cb_entries
    return ahead


def predict(profile_path: Path, kind: str, policy: str, iterations: int, places: Placement) -> Prediction:
    """Sim on a microbenchmark loop, and what real mode's CPU placement makes of it."""
    experiment, profile = _simulate(
        profile_path, {"kind": "microbench", "call": kind, "iterations": iterations}, policy
    )
    mvx = experiment.mvx
    loop = list(mvx.leader_times)[-iterations:]
    span = (loop[-1] - loop[0]) * iterations / max(len(loop) - 1, 1)
    prediction = _placed(mvx, policy, span, iterations, profile, places)
    # The native run's whole span (its few set-up calls are noise beside the loop).
    prediction.native = experiment.native.makespan / iterations / 1000
    return prediction


def predict_us(profile_path: Path, kind: str, policy: str, iterations: int, places: Placement) -> float:
    """Sim's microseconds per call of the leader's loop (the figure the real
    program prints: its own clock around the loop), on real mode's CPUs."""
    return predict(profile_path, kind, policy, iterations, places).us


# -- the server row ----------------------------------------------------------------

_ACCEPTS = ("accept", "accept4")


@dataclass(frozen=True)
class TraceCounts:
    """A recorded server run's requests (the connections its leader
    accepted) and its leader's calls, start-up included."""

    requests: int
    leader_calls: int


def untimed_trace(source: Path, target: Path) -> TraceCounts:
    """Copy a recorded trace without its times, and count the requests.

    A recorded call's ``ns`` and ``gap`` include real mode's stops, and its
    waits (``epoll_wait``) are the waits for a client that was itself slowed
    by MVX: neither is native. Without them sim prices each call from the
    profile. The requests are the connections the leader accepted."""
    requests = calls = 0
    with open(source, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as out:
        for number, line in enumerate(src):
            if number and line.strip():
                event = json.loads(line)
                event.pop("ns", None)
                event.pop("gap", None)
                if event.get("v") == 0 and "call" in event:
                    calls += 1
                    if event["call"] in _ACCEPTS and event.get("result", -1) >= 0:
                        requests += 1
                line = json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n"
            out.write(line)
    return TraceCounts(requests, calls)


def predict_server(
    profile_path: Path,
    trace: Path,
    policy: str,
    places: Placement,
    measured_requests: int = 0,
    calls_per_request: float = 0.0,
) -> tuple[float, str]:
    """What MVX adds per request to the recorded lighttpd run, in sim: the
    leader's run under ``policy`` on real mode's CPUs less the same calls
    run natively, per request (us), and what bounds it. ``trace`` is a run
    recorded under ``policy``: what a server calls per request depends on
    its pace (a fast one finds a request not there yet and waits in
    ``epoll_wait`` again; in lockstep it rarely does). ``measured_requests``: how
    many the measured run served (0: as many as the trace), which sets how
    far past the CB and the ring it went. ``calls_per_request``: the
    leader's calls a request in the measured run (0: the trace's): what
    MVX adds a request is taken in that proportion to the trace's (a
    recorded run goes slower, and lighttpd's mix moves with its pace: ~13.3
    calls a request recorded under dmvx, ~14.5 in the measured runs)."""
    with tempfile.TemporaryDirectory() as tmp:
        untimed = Path(tmp) / "untimed.jsonl"
        counts = untimed_trace(trace, untimed)
        requests = counts.requests
        if requests == 0:
            raise EnvironmentProblem(f"dmvx calibrate: the recorded lighttpd run {trace} accepted no connection")
        experiment, profile = _simulate(profile_path, {"kind": "trace", "path": str(untimed)}, policy)
    mvx = experiment.mvx
    if mvx.verdict is not None:
        raise EnvironmentProblem(
            f"dmvx calibrate: sim found a divergence in the recorded lighttpd run: {mvx.verdict.summary()}"
        )
    scale = measured_requests / requests if measured_requests else 1.0
    # The leader's run up to its last call: ab times the requests, and real
    # mode stops the server from outside, where sim's replay ends the
    # recording with an exit, at which the leader waits for its followers
    # to catch up -- all of the pipeline behind it, which ``scale`` prices.
    span = mvx.leader_times[-1] if mvx.leader_times else mvx.variants[0].end_time
    mix = calls_per_request / (counts.leader_calls / requests) if calls_per_request else 1.0
    prediction = _placed(mvx, policy, span, requests, profile, places, scale * mix)
    return (prediction.us - experiment.native.makespan / requests / 1000) * mix, prediction.bound


def predictions(profile_path: Path, asks: Sequence[PredictionAsk]) -> list[Predicted]:
    """Sim's answer to each of the check's questions, in order."""
    out = []
    for ask in asks:
        if ask.trace is not None:
            added, bound = predict_server(
                profile_path, ask.trace, ask.policy, ask.placement, ask.iterations, ask.calls_per_request
            )
            out.append(Predicted(added, bound))
        else:
            prediction = predict(profile_path, ask.call, ask.policy, ask.iterations, ask.placement)
            out.append(Predicted(prediction.us, prediction.bound, prediction.native))
    return out
