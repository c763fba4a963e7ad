"""The paper scenarios reproduce the shape of the dMVX paper's results.

With the ``paper`` cost profile: DMON 30-45x and dMVX 2-7x of native on READ,
GETCWD and SCHED_YIELD; lighttpd overhead above 50% under DMON and below 5%
under dMVX. The runs here are shorter than the files' (the ratios do not
depend on the length); docs/sim.md lists the full-length figures.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from dmvx.exitstatus import ExitStatus
from sim import cli_entry

REPO = Path(__file__).resolve().parent.parent
QUIET = Console(file=open("/dev/null", "w"), width=200)  # noqa: SIM115


def _run(scenario: str, overrides: dict[str, str]):
    """``dmvx sim scenarios/SCENARIO --set ...`` quietly, with the scenario's own seed."""
    return cli_entry.run(REPO / "scenarios" / scenario, seed=None, plot=None, console=QUIET, overrides=overrides)


def test_microbenchmarks_have_the_papers_shape() -> None:
    result = _run(
        "paper-microbench.yml", {"workload.iterations": "2000", "sweep[1].values": "[read, getcwd, sched_yield]"}
    )
    assert result.exit_status is ExitStatus.OK
    slowdown = {(p.labels["workload.call"], p.labels["policy.preset"]): p.mvx.slowdown for p in result.points}
    for call in ("read", "getcwd", "sched_yield"):
        assert 30 <= slowdown[(call, "dmon")] <= 45, (call, slowdown[(call, "dmon")])
        assert 2 <= slowdown[(call, "dmvx")] <= 7, (call, slowdown[(call, "dmvx")])


def test_lighttpd_has_the_papers_shape() -> None:
    result = _run("paper-lighttpd.yml", {"workload.requests": "300"})
    assert result.exit_status is ExitStatus.OK
    overhead = {p.labels["policy.preset"]: p.mvx.overhead_pct for p in result.points}
    dmon, dmvx = overhead["dmon"], overhead["dmvx"]
    assert dmon is not None and dmon > 50
    assert dmvx is not None and 0 <= dmvx < 5
