"""The typed per-call summary (realmode/callsummary.py): the tracers'
tallies into rows per variant, call and route, in the core's route names,
sorted as ``strace -c`` sorts, flattened for ``--format`` and drawn."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from dmvx.policy import Route
from dmvx.rows import RowFormat, render
from realmode.callsummary import CallSummary


def test_the_summary_of_tallies_is_typed_sorted_and_drawn() -> None:
    stats: list[tuple[int, dict[str, Any]]] = [
        (0, {"calls": [["read", "replicate", 3, 1, 3_000, 600], ["execve", "lockstep", 1, 0, 9_000_000, 2_000]]}),
        (1, {"calls": [["read", "replicate", 3, 1, 90_000, 500]], "stops": 4}),
        (2, {"stops": 0}),  # a tracer that reported no tally
    ]
    summary = CallSummary.of(stats)
    assert [(r.variant, r.call, r.route) for r in summary.rows] == [
        (0, "execve", Route.LOCKSTEP),
        (0, "read", Route.REPLICATE),
        (1, "read", Route.REPLICATE),
    ]
    assert summary.rows[0].stopped_s == 0.009 and summary.rows[0].stopped_per_call_us == 9000
    assert summary.to_json()[2] == {
        "variant": "follower 1",
        "call": "read",
        "route": "replicate",
        "calls": 3,
        "errors": 1,
        "stopped_s": 9e-05,
        "monitor_s": 5e-07,
    }
    text = render(summary.table(policy="dmon"), RowFormat.TSV).splitlines()
    assert text[0].split("\t") == ["policy", "variant", "call", "route", "calls", "errors", "stopped_s", "monitor_s"]
    assert text[1].split("\t")[:5] == ["dmon", "leader", "execve", "lockstep", "1"]
    console = Console(file=io.StringIO(), width=120)
    summary.render(console)
    drawn = console.file.getvalue()  # type: ignore[attr-defined]
    assert "calls of the leader" in drawn and "calls of the follower 1" in drawn
    assert "99.97" in drawn  # execve's share of the leader's stopped time
    with pytest.raises(ValueError):
        CallSummary.of([(0, {"calls": [["read", "somewhere", 1, 0, 1, 1]]})])  # routes are the core's
