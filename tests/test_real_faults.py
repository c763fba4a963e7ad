"""Faults, fast and fair (issue 13, item 6), for ``dmvx run``: ``kill -9`` of each process kind
of either variant -- its monitor, its CONNECTOR, its only process, the root of its process tree
and a child in it -- ends the run in a verdict within 5 s that names that variant, with nothing
left running, under both presets. ``python -m realmode.faults --mode run`` prints the same as a
table (docs/realmode.md). On the code before, a tree's root took 18-27 s and most verdicts named
nobody or the wrong variant.
"""

from __future__ import annotations

import pytest

from realmode.faults import RUN_PARTS, WITHIN, Fault, run_fault
from test_real_support import POLICIES, REAL_RUNS, no_strays  # noqa: F401 - fixture

pytestmark = REAL_RUNS


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("victim", [0, 1], ids=["leader", "follower"])
@pytest.mark.parametrize("part", RUN_PARTS, ids=[p.value for p in RUN_PARTS])
def test_a_killed_part_ends_the_run_fast_naming_its_variant(part, victim: int, policy: str) -> None:
    measured = run_fault(Fault("run", part, victim), policy)
    report = measured.to_json()
    assert measured.error is None, report
    assert measured.verdict is not None, report
    assert measured.seconds is not None and measured.seconds < WITHIN, report
    assert measured.named == (victim,), report
    assert not measured.left, report
