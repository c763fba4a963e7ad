"""The check: sim's predictions with a measured profile beside real mode's
measurements, for the microbenchmarks and for lighttpd."""

from __future__ import annotations

import json
import math
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dmvx.exitstatus import EnvironmentProblem
from realmode.calibrate.components import KINDS, ROOT, available_cpus, build_bench, native_ns


# ---------------------------------------------------------------------------
# The check: sim's prediction beside real mode's measurement
# ---------------------------------------------------------------------------

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
    """

    span: float
    cpus: dict[int, float]
    binding: tuple[int, ...]
    behind: float = 0.0
    saturated: dict[int, float] = field(default_factory=dict)

    def _limits(self) -> dict[str, float]:
        limits = {"timelines": self.span}
        for cpu, work in self.cpus.items():
            limits[f"cpu {cpu}"] = work if cpu in self.binding else self.saturated.get(cpu, work) * self.behind
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
    from dmvx.scenario import load_scenario
    from sim.profile import load_profile
    from sim.runner import simulate

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "check.yml"
        path.write_text(_CHECK_SCENARIO.replace("PROFILE", json.dumps(str(profile_path.resolve())))
                        .replace("POLICY", policy).replace("WORKLOAD", json.dumps(workload)))
        scenario = load_scenario(path)
    profile = load_profile(str(profile_path.resolve()))
    return simulate(scenario, profile), profile


def _saturated(mvx: Any, variant: Any, profile: Any) -> tuple[float, float]:
    """``variant``'s monitor and its CONNECTOR, ns of work, with every batch
    and every read of the link as large as the CONNECTOR allows."""
    most = profile.max_batch_messages
    stats = mvx.connectors[variant.host]  # the check's hosts have a variant each
    sent, taken = stats["messages"], stats["received_messages"]
    batches_out, batches_in = math.ceil(sent / most), math.ceil(taken / most)
    monitor = variant.busy_time - profile.monitor_receive * (variant.reads - batches_in)
    connector = (profile.send * batches_out + profile.send_per_message * sent
                 + profile.send_per_byte * stats["bytes"]
                 + profile.receive * batches_in + profile.receive_per_message * taken
                 + profile.receive_per_byte * stats["received_bytes"])
    return max(monitor, 0.0), connector


def _placed(mvx: Any, policy: str, span_ns: float, per: int, profile: Any) -> Prediction:
    """``mvx`` (a sim run under ``profile``) on real mode's CPUs, ``per``
    calls or requests."""
    from realmode.orchestrator import make_policy, placement

    pol = make_policy(policy)
    places = placement(pol, len(mvx.variants), "auto")
    cpus: dict[int, float] = {}
    saturated: dict[int, float] = {}
    for variant, (_, monitor_cpu, connector_cpu) in zip(mvx.variants, places):
        # A variant's work is its monitor's (its program's own is native).
        monitor_sat, connector_sat = _saturated(mvx, variant, profile)
        for cpu, busy, sat in ((monitor_cpu, variant.busy_time, monitor_sat),
                               (connector_cpu, mvx.connectors[variant.host]["busy_ns"], connector_sat)):
            key = cpu if cpu is not None else -1
            cpus[key] = cpus.get(key, 0.0) + busy / per / 1000
            saturated[key] = saturated.get(key, 0.0) + sat / per / 1000
    span = span_ns / per / 1000
    if not pol.async_replication:
        return Prediction(span, cpus, tuple(cpus))
    leader_cpu = places[0][1] if places[0][1] is not None else -1
    entries = len(mvx.leader_times)
    behind = max(entries - pol.cb_entries, 0) / max(entries, 1)
    return Prediction(span, cpus, (leader_cpu,), behind, saturated)


def predict(profile_path: Path, kind: str, policy: str, iterations: int) -> Prediction:
    """Sim on a microbenchmark loop, and what real mode's CPU placement makes of it."""
    experiment, profile = _simulate(profile_path, {"kind": "microbench", "call": kind, "iterations": iterations},
                                    policy)
    mvx = experiment.mvx
    loop = list(mvx.leader_times)[-iterations:]
    span = (loop[-1] - loop[0]) * iterations / max(len(loop) - 1, 1)
    return _placed(mvx, policy, span, iterations, profile)


def predict_us(profile_path: Path, kind: str, policy: str, iterations: int) -> float:
    """Sim's microseconds per call of the leader's loop (the figure the real
    program prints: its own clock around the loop), on this machine's CPUs."""
    return predict(profile_path, kind, policy, iterations).us


# -- the server row ----------------------------------------------------------------

#: Requests per run of the server row: lighttpd under ``ab -c 1`` on this
#: machine (benchmarks/bench_lighttpd.py), natively and as two variants.
SERVER_REQUESTS = {"native": 4000, "dmvx": 1500, "dmon": 300}
#: Requests of the run recorded for sim to replay.
RECORDED_REQUESTS = 400
_ACCEPTS = ("accept", "accept4")


def untimed_trace(source: Path, target: Path) -> int:
    """Copy a recorded trace without its times, and count the requests.

    A recorded call's ``ns`` and ``gap`` include real mode's stops, and its
    waits (``epoll_wait``) are the waits for a client that was itself slowed
    by MVX: neither is native. Without them sim prices each call from the
    profile. The requests are the connections the leader accepted."""
    requests = 0
    with open(source, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as out:
        for number, line in enumerate(src):
            if number and line.strip():
                event = json.loads(line)
                event.pop("ns", None)
                event.pop("gap", None)
                if event.get("v") == 0 and event.get("call") in _ACCEPTS and event.get("result", -1) >= 0:
                    requests += 1
                line = json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n"
            out.write(line)
    return requests


def predict_server(profile_path: Path, trace: Path, policy: str) -> tuple[float, str]:
    """What MVX adds per request to the recorded lighttpd run, in sim: the
    leader's run under ``policy`` on real mode's CPUs less the same calls
    run natively, per request (us), and what bounds it."""
    with tempfile.TemporaryDirectory() as tmp:
        untimed = Path(tmp) / "untimed.jsonl"
        requests = untimed_trace(trace, untimed)
        if requests == 0:
            raise EnvironmentProblem(f"dmvx calibrate: the recorded lighttpd run {trace} accepted no connection")
        experiment, profile = _simulate(profile_path, {"kind": "trace", "path": str(untimed)}, policy)
    mvx = experiment.mvx
    if mvx.verdict is not None:
        raise EnvironmentProblem(f"dmvx calibrate: sim found a divergence in the recorded lighttpd run: "
                                 f"{mvx.verdict.summary()}")
    prediction = _placed(mvx, policy, mvx.variants[0].end_time, requests, profile)
    return prediction.us - experiment.native.makespan / requests / 1000, prediction.bound


def server_rows(profile_path: Path, policies: tuple[str, ...], repeat: int,
                note: Callable[[str], None]) -> list[CheckRow]:
    """lighttpd's mean time per request natively and under each policy in
    real mode, beside native plus what sim says MVX adds (:func:`predict_server`)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_lighttpd import PORT, one
    from realmode.net import lighttpd

    median = statistics.median
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        config, digests = lighttpd.make_tree(directory, port=PORT, bind="127.0.0.1")

        def mean_us(policy: str | None, requests: int, record: Path | None = None) -> float:
            report = one(config, digests, policy, requests, 0, record=record)
            if report["divergence"] or report["failed"]:
                raise EnvironmentProblem(f"dmvx calibrate: lighttpd under {policy or 'no MVX'}: "
                                         f"{report['divergence'] or str(int(report['failed'])) + ' failed requests'}")
            return report["mean_ms"] * 1000

        note("lighttpd natively")
        native = median(mean_us(None, SERVER_REQUESTS["native"]) for _ in range(repeat))
        note("lighttpd recorded under dmvx, for sim")
        trace = directory / "lighttpd.jsonl"
        mean_us("dmvx", RECORDED_REQUESTS, record=trace)
        for policy in policies:
            note(f"lighttpd under {policy}")
            measured = median(mean_us(policy, SERVER_REQUESTS[policy]) for _ in range(repeat))
            added, bound = predict_server(profile_path, trace, policy)
            rows.append(CheckRow("lighttpd", policy, native, native + added, measured, bound))
    return rows


def measure_us(binary: str, kind: str, policy: str, calls: int) -> float:
    """Real mode's microseconds per call (``benchmarks/bench_real.py``)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_real import _traced

    return _traced(binary, kind, calls, policy, "auto")


@dataclass
class CheckRow:
    call: str
    policy: str
    native_us: float
    predicted_us: float
    measured_us: float
    bound: str = "timelines"

    @property
    def predicted_x(self) -> float:
        return self.predicted_us / self.native_us

    @property
    def measured_x(self) -> float:
        return self.measured_us / self.native_us

    @property
    def error(self) -> float:
        """Relative error of the predicted slowdown against the measured one."""
        return (self.predicted_x - self.measured_x) / self.measured_x


def check(profile_path: Path, *, calls: dict[str, int] | None = None, repeat: int = 3,
          kinds: tuple[str, ...] = KINDS, policies: tuple[str, ...] = ("dmon", "dmvx"), server: bool = True,
          note: Callable[[str], None] = lambda text: None) -> list[CheckRow]:
    """Predicted vs measured per call for each (call, policy), and per
    request of lighttpd (:func:`server_rows`) with ``server``."""
    calls = calls or {"dmon": 2000, "dmvx": 10000}
    median = statistics.median
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_bench(tmp)
        cpu = available_cpus()[0]
        for kind in kinds:
            native = median(native_ns(binary, kind, 200_000, cpu) for _ in range(repeat)) / 1000
            for policy in policies:
                note(f"{kind} under {policy}")
                measured = median(measure_us(binary, kind, policy, calls[policy]) for _ in range(repeat))
                predicted = predict(profile_path, kind, policy, calls[policy])
                rows.append(CheckRow(kind, policy, native, predicted.us, measured, predicted.bound))
    if server:
        from realmode.net import lighttpd

        try:
            lighttpd.programs()
        except EnvironmentProblem as problem:
            note(f"no lighttpd rows: {problem}")
        else:
            rows += server_rows(profile_path, policies, repeat, note)
    return rows
