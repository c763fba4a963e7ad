"""Real mode's side of ``dmvx calibrate --check``: the microbenchmarks and
lighttpd measured natively and under each policy, and where real mode puts
its processes.

Sim's predictions of the same runs come from sim mode
(:mod:`sim.calibration`); the CLI sets the two side by side
(:mod:`dmvx.calibration`), above both modes, which never import each other.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from dmvx.calibration import MeasuredCall, MeasuredServer, RealMeasurements
from dmvx.exitstatus import EnvironmentProblem
from realmode import microbench
from realmode.calibrate.components import CALIBRATION_STALL, available_cpus
from realmode.native import build as native_build
from realmode.orchestrator import make_policy, placement

#: Calls per traced microbenchmark run, per policy (beyond dmvx's CB of
#: 4096 entries, so the leader cannot finish before the followers are fed).
CALLS = {"dmon": 2000, "dmvx": 10000}
#: Calls per run on the in-process path: beyond the CB and the ring together
#: (4,096 entries and ~10,000 records), so most of the loop goes at the pace
#: of the pipeline behind the ring, which is what the check holds sim to.
IN_PROCESS_CALLS = 40000
#: Requests per run of the server row: lighttpd under ``ab -c 1`` on this
#: machine (:mod:`realmode.lighttpd_local`), natively and as two variants.
SERVER_REQUESTS = {"native": 4000, "dmvx": 1500, "dmon": 300}
#: Requests of the run recorded under each policy for sim to replay.
RECORDED_REQUESTS = {"dmvx": 400, "dmon": 200}


def takes_path(policy: str | None, in_process: bool) -> bool:
    """Whether real mode's runs under ``policy`` take the in-process path:
    with ``in_process`` (the profile checked has a ``dipmon`` section, which
    sim then prices), dmvx's do where its library is built."""
    return (
        in_process
        and policy is not None
        and make_policy(policy).async_replication
        and native_build.library() is not None
    )


def paired_median(rounds: list[tuple[float, float]]) -> tuple[float, float]:
    """(native, traced) of the check's rounds, each round a native run and
    the traced run right after it: the median native time, and the traced
    time the median of the rounds' ratios gives against it. A slowdown is
    measured against the native run of its own moment, so a load that comes
    and goes between rounds (another job on a shared machine, the CPU's
    clock) moves both halves of a ratio, not one; the median drops a round
    such a change hit in the middle."""
    native = statistics.median(n for n, _ in rounds)
    ratio = statistics.median(t / n for n, t in rounds)
    return native, native * ratio


def measure_calls(
    *,
    calls: dict[str, int] | None = None,
    repeat: int = 3,
    kinds: tuple[str, ...] = microbench.KINDS,
    policies: tuple[str, ...] = ("dmon", "dmvx"),
    note: Callable[[str], None] = lambda text: None,
    in_process: bool = False,
) -> list[MeasuredCall]:
    """Each microbenchmark kind natively and as two variants under each
    policy, microseconds per call: ``repeat`` rounds of a native run and the
    traced run right after it, each slowdown the median of its rounds'
    (:func:`paired_median`)."""
    calls = calls or CALLS
    measured = []
    with tempfile.TemporaryDirectory() as tmp:
        binary = microbench.build(tmp)
        cpu = available_cpus()[0]
        for kind in kinds:
            for policy in policies:
                note(f"{kind} under {policy}")
                fast = takes_path(policy, in_process)
                count = IN_PROCESS_CALLS if fast and calls is CALLS else calls[policy]
                rounds = []
                for _ in range(repeat):
                    native = microbench.native_ns(binary, kind, 200_000, cpu) / 1000
                    traced = (
                        microbench.traced(
                            binary, kind, count, policy, in_process=fast, stall_timeout=CALIBRATION_STALL
                        ).ns_per_call
                        / 1000
                    )
                    rounds.append((native, traced))
                native_us, traced_us = paired_median(rounds)
                measured.append(MeasuredCall(kind, policy, count, native_us, traced_us))
    return measured


def measure_server(
    directory: Path, policies: tuple[str, ...], repeat: int, note: Callable[[str], None], in_process: bool = False
) -> MeasuredServer:
    """lighttpd's mean time per request natively and under each policy
    (``repeat`` rounds of a native run and each policy's after it:
    :func:`paired_median`), and a run recorded under each policy into
    ``directory`` for sim to replay: lighttpd's calls per request depend on
    its pace (~13 under dmvx, where it often finds the next request not
    there yet and waits for it again; ~7 in dmon's lockstep), so sim
    replays each policy's own, and is told how many calls a request the
    leader made in the measured runs (a recorded run goes slower than
    they do, and the mix moves with the pace: ~13.3 recorded, ~14.5
    measured under dmvx)."""
    from realmode.lighttpd_local import free_port, serve
    from realmode.net import lighttpd

    median = statistics.median
    port = free_port()
    config, digests = lighttpd.make_tree(directory, port=port, bind="127.0.0.1")

    calls: dict[str, list[float]] = {policy: [] for policy in policies}

    def mean_us(policy: str | None, requests: int, record: Path | None = None) -> float:
        run = serve(
            config, digests, policy, requests, 0, record=record, in_process=takes_path(policy, in_process), port=port
        )
        if run.divergence or run.failed:
            raise EnvironmentProblem(
                f"dmvx calibrate: lighttpd under {policy or 'no MVX'}: "
                f"{run.divergence or str(int(run.failed)) + ' failed requests'}"
            )
        if policy is not None and record is None and run.leader_calls:
            calls[policy].append(run.leader_calls / requests)
        return run.mean_ms * 1000

    traces = {}
    for policy in policies:
        note(f"lighttpd recorded under {policy}, for sim")
        traces[policy] = directory / f"lighttpd-{policy}.jsonl"
        mean_us(policy, RECORDED_REQUESTS.get(policy, RECORDED_REQUESTS["dmvx"]), record=traces[policy])
    # Rounds of a native run and each policy's right after it (paired_median).
    rounds: dict[str, list[tuple[float, float]]] = {policy: [] for policy in policies}
    for round_ in range(repeat):
        note(f"lighttpd natively and under {', '.join(policies)} (round {round_ + 1} of {repeat})")
        native_round = mean_us(None, SERVER_REQUESTS["native"])
        for policy in policies:
            rounds[policy].append((native_round, mean_us(policy, SERVER_REQUESTS[policy])))
    native = median(n for n, _ in next(iter(rounds.values()))) if policies else mean_us(None, SERVER_REQUESTS["native"])
    measured = {policy: paired_median(pairs)[1] for policy, pairs in rounds.items()}
    return MeasuredServer(
        native,
        traces,
        measured,
        {policy: SERVER_REQUESTS[policy] for policy in policies},
        {policy: median(per) for policy, per in calls.items() if per},
    )


def measure(
    directory: Path,
    *,
    repeat: int = 3,
    policies: tuple[str, ...] = ("dmon", "dmvx"),
    server: bool = True,
    note: Callable[[str], None] = lambda text: None,
    in_process: bool = False,
) -> RealMeasurements:
    """Everything the check measures; the server row (with ``server``, and
    lighttpd and ab installed) keeps its recorded run in ``directory``.
    ``in_process``: dmvx's runs take the in-process path (:func:`takes_path`)."""
    calls = measure_calls(repeat=repeat, policies=policies, note=note, in_process=in_process)
    served = None
    if server:
        from realmode.net import lighttpd

        try:
            lighttpd.programs()
        except EnvironmentProblem as problem:
            note(f"no lighttpd rows: {problem}")
        else:
            served = measure_server(directory, policies, repeat, note, in_process)
    places = {}
    for policy in policies:
        places[policy] = placement(make_policy(policy), 2, "auto", in_process=takes_path(policy, in_process))
    return RealMeasurements(calls, served, places)
