"""A simulated run as flat rows (``dmvx sim --format``, :mod:`dmvx.api`).

One row per point: the swept parameters first (each a column named by its
path, its value in SI base units by :func:`dmvx.rows.si_value`), then what
the point measured, in the same columns for every scenario so that rows of
different runs concatenate. A column a point has nothing for (a server's
throughput in a microbenchmark, the detection of a run without an attack) is
empty. Times come from the report's integer nanoseconds, as seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dmvx.rows import BYTES, COUNT, FRACTION, SECONDS, TEXT, Column, Rows, Value, si_value
from sim.report import PointReport

#: Requests per second: a rate of events, not of bits.
PER_SECOND = "1/s"


def _s(ns: int | float | None) -> float | None:
    return None if ns is None else ns / 1e9


def _server(p: PointReport, run: str, field: str) -> Any:
    numbers = (p.native if run == "native" else p.mvx).server
    return None if numbers is None else getattr(numbers, field)


def _lead(p: PointReport, field: str) -> Any:
    """The worst follower's value (the leader's lead over the slowest)."""
    return max((getattr(lead, field) for lead in p.lead), default=None)


def _detection(p: PointReport, field: str) -> Any:
    d = p.attack.detection if p.attack is not None else None
    return None if d is None else getattr(d, field)


def _overhead(p: PointReport) -> float | None:
    return None if p.mvx.overhead_pct is None else p.mvx.overhead_pct / 100.0


#: The measured columns, in order: (column, how to read it from a point).
MEASURES: tuple[tuple[Column, Callable[[PointReport], Value]], ...] = (
    (Column("scenario", TEXT, "the scenario's name"), lambda p: p.scenario),
    (Column("seed", COUNT, "the seed of the point's random streams"), lambda p: p.seed),
    (Column("policy", TEXT, "the policy preset (dmon, dmvx)"), lambda p: p.policy.name),
    (Column("diversity", TEXT, "the diversity the variants make"), lambda p: p.diversity),
    (Column("workload", TEXT, "microbench, server or trace"), lambda p: p.workload.kind),
    (Column("calls", COUNT, "system calls the program makes"), lambda p: p.calls),
    (Column("native_time_s", SECONDS, "the native run's makespan"), lambda p: _s(p.native.time_ns)),
    (Column("mvx_time_s", SECONDS, "the monitored run's makespan"), lambda p: _s(p.mvx.time_ns)),
    (
        Column("slowdown", COUNT, "monitored against native (makespan, or a server's throughput)"),
        lambda p: p.mvx.slowdown or None,
    ),
    (
        Column("native_throughput", PER_SECOND, "a server's requests per second, native"),
        lambda p: _server(p, "native", "throughput_rps"),
    ),
    (
        Column("mvx_throughput", PER_SECOND, "a server's requests per second, monitored"),
        lambda p: _server(p, "mvx", "throughput_rps"),
    ),
    (Column("throughput_overhead", FRACTION, "a server's throughput lost (0.05: 5%)"), _overhead),
    (
        Column("native_latency_mean_s", SECONDS, "a server's mean request latency, native"),
        lambda p: _s(_server(p, "native", "latency_mean_ns")),
    ),
    (
        Column("mvx_latency_mean_s", SECONDS, "a server's mean request latency, monitored"),
        lambda p: _s(_server(p, "mvx", "latency_mean_ns")),
    ),
    (Column("messages", COUNT, "monitor messages over every CONNECTOR"), lambda p: p.messages.total),
    (Column("messages_bytes", BYTES, "their bytes"), lambda p: p.messages.bytes),
    (Column("messages_lost", COUNT, "messages lost on the links"), lambda p: p.messages.lost),
    (Column("cb_max_entries", COUNT, "the connector buffer's peak occupancy"), lambda p: p.cb.max_entries),
    (Column("cb_mean_entries", COUNT, "its mean occupancy"), lambda p: p.cb.mean_entries),
    (Column("cb_max_bytes", BYTES, "its peak bytes"), lambda p: p.cb.max_bytes),
    (
        Column("lead_calls_max", COUNT, "compared calls the leader was ahead (worst follower)"),
        lambda p: _lead(p, "calls_max"),
    ),
    (Column("lead_calls_mean", COUNT, "the same, mean over the run"), lambda p: _lead(p, "calls_mean")),
    (
        Column("lead_time_max_s", SECONDS, "how long after the leader a follower reached a call"),
        lambda p: _s(_lead(p, "time_max_ns")),
    ),
    (Column("lead_time_mean_s", SECONDS, "the same, mean"), lambda p: _s(_lead(p, "time_mean_ns"))),
    (Column("outcome", TEXT, "ok, divergence, rejected, missed"), lambda p: p.outcome.value),
    (
        Column("verdict", TEXT, "the verdict's kind"),
        lambda p: None if p.verdict is None else p.verdict.verdict.kind.value,
    ),
    (Column("verdict_seq", COUNT, "the call it names"), lambda p: None if p.verdict is None else p.verdict.verdict.seq),
    (Column("verdict_time_s", SECONDS, "when it came"), lambda p: None if p.verdict is None else _s(p.verdict.time_ns)),
    (Column("attack", TEXT, "the attack's kind"), lambda p: None if p.attack is None else p.attack.kind),
    (
        Column("attack_at_call", COUNT, "the leader's call the attack lands at"),
        lambda p: None if p.attack is None else p.attack.at_call,
    ),
    (
        Column("detected", TEXT, "whether a verdict followed the attack"),
        lambda p: None if p.attack is None else p.attack.detected,
    ),
    (
        Column("detection_calls", COUNT, "calls the leader ran from the attack to the verdict (calls ahead)"),
        lambda p: _detection(p, "leader_calls"),
    ),
    (
        Column("detection_time_s", SECONDS, "time from the attack to the verdict"),
        lambda p: _s(_detection(p, "time_ns")),
    ),
    (
        Column("harmful_before_verdict", TEXT, "whether a harmful call ran before the verdict"),
        lambda p: None if p.attack is None else p.attack.harmful_before_verdict,
    ),
    (Column("effect", TEXT, "whether the attack reached its goal"), lambda p: p.effect),
    (
        Column("expected", TEXT, "the ending the file expects"),
        lambda p: None if p.expected is None else p.expected.ending.value,
    ),
    (Column("as_expected", TEXT, "whether the point ended so"), lambda p: p.as_expected),
)

#: The measured columns' names, for readers that want to tell them from parameters.
MEASURED = tuple(column.name for column, _ in MEASURES)

#: What a summary over repetitions sums up: every measure but the ones that
#: name the repetition (the seed, the attack position) or a point in it.
SUMMARIZED = tuple(name for name in MEASURED if name not in ("file", "seed", "attack_at_call", "verdict_seq"))


def _parameter(p: PointReport, key: str) -> tuple[Value, str]:
    if key == "variants":
        return p.diversity, TEXT  # a swept variant list, by the diversity it makes (as the table shows it)
    return si_value(p.labels.get(key))


def point_rows(points: Sequence[PointReport], file: str | None = None) -> Rows:
    """One row per point (see the module docstring); ``file`` leads each row when given."""
    keys: list[str] = []
    for p in points:
        keys += [k for k in p.labels if k not in keys]
    units: dict[str, str] = {}
    records: list[dict[str, Value]] = []
    for p in points:
        record: dict[str, Value] = {} if file is None else {"file": file}
        for key in keys:
            value, unit = _parameter(p, key)
            record[key] = value
            if unit != TEXT:
                units.setdefault(key, unit)
        for column, read in MEASURES:
            if column.name not in keys:  # a swept seed is its own parameter column
                record[column.name] = read(p)
        records.append(record)
    columns = [Column("file", TEXT, "the scenario file")] if file is not None else []
    columns += [Column(key, units.get(key, TEXT), "a swept parameter") for key in keys]
    columns += [column for column, _ in MEASURES if column.name not in keys]
    return Rows.from_records(columns, records, keys)
