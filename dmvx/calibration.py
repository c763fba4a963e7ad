"""``dmvx calibrate --check``: sim's prediction beside real mode's measurement.

The check combines the two modes, so it lives above both: real mode measures
(:func:`realmode.cli_entry.calibration_measurements` gives a
:class:`RealMeasurements`), sim predicts each measured row
(:func:`sim.cli_entry.calibration_predictions` answers a
:class:`PredictionAsk` with a :class:`Predicted`), and the CLI sets them side
by side with :func:`check_rows`. Neither mode imports the other; what they
hand each other is defined here.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dmvx.exitstatus import ExitStatus

#: The target (issue 7: 25%; issue 14, with the in-process path: 20%): each
#: predicted slowdown within 20% of the measured one.
TARGET_ERROR = 0.20

#: Where each of a variant's processes runs: (CPU of its program, of its
#: monitor, of its CONNECTOR), None for unpinned; one triple per variant.
Placement = Sequence[tuple[int | None, int | None, int | None]]


@dataclass(frozen=True)
class MeasuredCall:
    """Real mode on one microbenchmark loop: native and as two variants."""

    call: str
    policy: str
    iterations: int
    native_us: float
    measured_us: float


@dataclass(frozen=True)
class MeasuredServer:
    """lighttpd under ``ab -c 1`` natively and under each policy (us per
    request, over ``requests[policy]`` requests), and a run recorded under
    each policy (``traces``) for sim to replay: what lighttpd calls per
    request depends on its pace under the policy."""

    native_us: float
    traces: dict[str, Path]
    measured_us: dict[str, float]
    requests: dict[str, int] = field(default_factory=dict)
    #: The leader's calls a request in the measured runs (start-up included).
    calls_per_request: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RealMeasurements:
    """Everything real mode measured for the check, and where it placed its
    processes under each policy (sim charges each CPU the work that real
    mode puts there)."""

    calls: list[MeasuredCall]
    server: MeasuredServer | None
    placements: Mapping[str, Placement]


@dataclass(frozen=True)
class PredictionAsk:
    """What sim is asked: ``call`` (a microbenchmark kind, ``iterations``
    long) or, with ``trace``, the recorded server run (``iterations``: the
    requests of the measured run, 0 for the trace's own), under ``policy``
    on real mode's ``placement``."""

    policy: str
    placement: Placement
    call: str = ""
    iterations: int = 0
    trace: Path | None = None
    #: With ``trace``: the leader's calls a request in the measured run (0: the trace's).
    calls_per_request: float = 0.0


@dataclass(frozen=True)
class Predicted:
    """Sim's answer: microseconds per call (for a trace: what MVX adds per
    request) and what bounds the figure (the timelines, or a CPU's work)."""

    us: float
    bound: str
    #: The same loop run natively in sim, us per call (0: not given, a trace's).
    native_us: float = 0.0


@dataclass
class CheckRow:
    call: str
    policy: str
    native_us: float
    predicted_us: float
    measured_us: float
    bound: str = "timelines"
    #: What sim's figure was multiplied by (:func:`check_rows`): the check's
    #: native run over sim's, 1 where the two agree.
    scale: float = 1.0

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


def profile_prices_in_process(path: Path) -> bool:
    """Whether the profile at ``path`` prices real mode's in-process path
    (a ``dipmon`` section, which ``dmvx calibrate`` writes when the path's
    library is built): the check then runs dmvx's real runs on that path,
    and on the ptrace path otherwise, so both modes run the same thing."""
    from dmvx.yamlfile import read_yaml

    data = read_yaml(path).data
    return isinstance(data, Mapping) and "dipmon" in data


def check_rows(real: RealMeasurements, predict: Callable[[Sequence[PredictionAsk]], list[Predicted]]) -> list[CheckRow]:
    """Real mode's measurements beside sim's predictions of the same runs.

    Slowdown beside slowdown: a microbenchmark's predicted slowdown is sim's
    run over sim's native run of the same loop, as the measured one is real
    mode's over the native run of its round. Sim's costs are the profile's,
    measured at another moment than the check's runs; on a shared machine
    the load between the two can make every call dearer (the native runs
    twice as slow, say), and a slowdown taken against the check's own
    native would count that as an error of sim's. The predicted figure
    shown is sim's slowdown times the check's native; ``scale`` says by
    what sim's own figure was multiplied (the check's native over sim's).
    A server row's prediction is native plus what sim says MVX adds per
    request to the recorded run, at the microbenchmarks' scale (their
    median: sim's native server is not a measured one)."""
    asks = [
        PredictionAsk(m.policy, real.placements[m.policy], call=m.call, iterations=m.iterations) for m in real.calls
    ]
    server = real.server
    policies = list(server.measured_us) if server is not None else []
    if server is not None:
        asks += [
            PredictionAsk(
                policy,
                real.placements[policy],
                iterations=server.requests.get(policy, 0),
                trace=server.traces[policy],
                calls_per_request=server.calls_per_request.get(policy, 0.0),
            )
            for policy in policies
        ]
    answers = predict(asks)
    rows = []
    for m, p in zip(real.calls, answers):
        scale = m.native_us / p.native_us if p.native_us > 0 else 1.0
        rows.append(CheckRow(m.call, m.policy, m.native_us, p.us * scale, m.measured_us, p.bound, scale))
    if server is not None:
        scales = sorted(row.scale for row in rows)
        scale = statistics.median(scales) if scales else 1.0
        for policy, p in zip(policies, answers[len(real.calls) :]):
            rows.append(
                CheckRow(
                    "lighttpd",
                    policy,
                    server.native_us,
                    server.native_us + p.us * scale,
                    server.measured_us[policy],
                    p.bound,
                    scale,
                )
            )
    return rows


class _Measurements(Protocol):
    def to_json(self) -> dict[str, Any]: ...


@dataclass
class CalibrationResult:
    """The :class:`dmvx.output.Result` of ``dmvx calibrate``: the profile
    real mode measured and wrote, and the check's rows."""

    profile_path: Path
    measurements: _Measurements | None
    profile: dict[str, Any] | None
    rows: list[CheckRow] = field(default_factory=list)
    #: The profile prices real mode's in-process path (:func:`profile_prices_in_process`).
    in_process: bool = False

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "profile_path": str(self.profile_path),
            "measurements": self.measurements.to_json() if self.measurements else None,
            "profile": self.profile,
            "check": [
                {
                    "call": r.call,
                    "policy": r.policy,
                    "native_us": round(r.native_us, 4),
                    "predicted_us": round(r.predicted_us, 2),
                    "measured_us": round(r.measured_us, 2),
                    "predicted_x": round(r.predicted_x, 1),
                    "measured_x": round(r.measured_x, 1),
                    "error": round(r.error, 3),
                    "within_target": abs(r.error) <= TARGET_ERROR,
                    "bound": r.bound,
                    "scale": round(r.scale, 3),
                }
                for r in self.rows
            ],
            "target_error": TARGET_ERROR,
        }

    def render(self, console: Any) -> None:
        from rich.table import Table

        if self.profile is not None:
            table = Table(title=f"dmvx calibrate: wrote {self.profile_path}", title_justify="left")
            table.add_column("section")
            table.add_column("values")
            for section in ("native", "interception", "monitor", "connector", "dipmon"):
                if section not in self.profile:
                    continue  # dipmon: only where the in-process library is built
                values = self.profile[section]
                if section == "native":
                    values = values.get("calls", {})
                shown = {k: v for k, v in values.items() if k not in ("used_by", "calls")}
                table.add_row(section, ", ".join(f"{k} {v}" for k, v in shown.items()))
            console.print(table)
        if self.rows:
            table = Table(
                title=f"sim ({self.profile_path.name}) vs real mode: microbenchmarks in us per call, "
                f"lighttpd in us per request; slowdown vs native; target |error| <= "
                f"{TARGET_ERROR:.0%}; sim us = sim's slowdown times the check's native "
                "(sim scale: the check's native over sim's)",
                title_justify="left",
            )
            for column in (
                "call",
                "policy",
                "native us",
                "sim us",
                "real us",
                "sim x",
                "real x",
                "error",
                "sim bound by",
                "sim scale",
            ):
                table.add_column(column, justify="left" if column in ("call", "policy", "sim bound by") else "right")
            for r in self.rows:
                mark = "" if abs(r.error) <= TARGET_ERROR else " [red](!)[/]"
                table.add_row(
                    r.call,
                    r.policy,
                    f"{r.native_us:.3f}",
                    f"{r.predicted_us:.1f}",
                    f"{r.measured_us:.1f}",
                    f"{r.predicted_x:.0f}x",
                    f"{r.measured_x:.0f}x",
                    f"{r.error:+.0%}{mark}",
                    r.bound,
                    f"{r.scale:.2f}",
                )
            console.print(table)
