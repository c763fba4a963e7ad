"""The monitors' reports (realmode/reports.py): typed on both ends of the
pipe, and read by one collector that ``dmvx run`` and the agents on emulated
hosts share, so both decide a run the same way. No root, no processes: the
reports are written on pipes by the test."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from dmvx.verdict import Verdict, VerdictKind
from realmode import reports
from realmode.net.agents import VariantAgent
from realmode.orchestrator import VariantReport


@dataclass
class Record:
    index: int
    pid: int | None = None
    status: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    end: str | None = None


def lost() -> Verdict:
    return Verdict(VerdictKind.CONNECTOR_LOST, 0, detail="the link to v0 closed")


def run_reports(*said: tuple[int, reports.Report], variants: int = 2) -> tuple[reports.RunReports, list[Record]]:
    """Collect what each variant's monitor ``said``, in this order, then
    every monitor's pipe closes."""
    pipes, writers = {}, []
    for index in range(variants):
        read_fd, write_fd = os.pipe()
        pipes[read_fd] = index
        writers.append(write_fd)
    for index, report in said:
        reports.write(writers[index], report)
    for fd in writers:
        os.close(fd)
    records = [Record(i) for i in range(variants)]
    outcome = reports.RunReports()
    try:
        reports.collect(pipes, records, outcome)
    finally:
        for fd in pipes:
            os.close(fd)
    return outcome, records


@pytest.mark.parametrize(
    "report",
    [
        reports.Started(4242),
        reports.Exited(0, {"calls": 7}),
        reports.Halted(Verdict(VerdictKind.ARG_MISMATCH, 12, detail="write(1, ...)"), {"calls": 12}),
        reports.UnsupportedProgram("asked for an untraced child"),
        reports.MonitorFailed("ZeroDivisionError: boom", "Traceback ..."),
    ],
)
def test_a_report_arrives_as_it_was_sent(report: reports.Report) -> None:
    assert reports.decode(reports.encode(report).rstrip(b"\n")) == report


def test_a_clean_run_is_every_variant_done() -> None:
    outcome, records = run_reports(
        (0, reports.Started(1 << 30)),
        (1, reports.Started(1 << 30)),
        (0, reports.Exited(3 << 8)),
        (1, reports.Exited(3 << 8)),
    )
    assert not outcome.decided and outcome.program_status == 3 << 8
    assert [r.end for r in records] == ["done", "done"] and outcome.started_at is not None


def test_unsupported_outranks_the_verdict_it_caused() -> None:
    """A monitor that cannot follow its program kills its variant; its peer
    then reports the lost link. Whichever word arrives first, the run is
    unsupported, not a divergence (``dmvx run`` said so; the agents kept the
    echo as the run's verdict)."""
    orders: list[list[tuple[int, reports.Report]]] = [
        [(1, reports.Halted(lost())), (0, reports.UnsupportedProgram("unknown architecture 0x1234"))],
        [(0, reports.UnsupportedProgram("unknown architecture 0x1234")), (1, reports.Halted(lost()))],
    ]
    for order in orders:
        outcome, _ = run_reports(*order)
        assert outcome.unsupported == "unknown architecture 0x1234"
        assert outcome.verdict is None


def test_a_monitor_that_dies_silently_loses_the_link_and_its_cause_replaces_that() -> None:
    outcome, _ = run_reports((1, reports.Exited(0)))
    assert outcome.verdict is not None and outcome.verdict.kind is VerdictKind.CONNECTOR_LOST
    forged = Verdict(VerdictKind.AUTH_FAILURE, 0, detail="a frame failed its HMAC")
    outcome, _ = run_reports((1, reports.Halted(lost())), (0, reports.Halted(forged)))
    assert outcome.verdict == forged


def test_a_failure_after_the_verdict_changes_nothing() -> None:
    verdict = Verdict(VerdictKind.CALL_MISMATCH, 5, detail="open vs execve")
    outcome, _ = run_reports((0, reports.Halted(verdict)), (1, reports.MonitorFailed("ESRCH")))
    assert outcome.verdict == verdict and outcome.error is None


def test_dmvx_run_and_the_agents_keep_what_the_collector_fills_in() -> None:
    """Both launchers' per-variant records are what the collector fills in."""
    wanted = {"index", "pid", "status", "stats", "end"}
    assert wanted <= set(vars(VariantReport(0, ["prog"])))
    assert wanted <= set(vars(VariantAgent(0, "h1", ["prog"])))
