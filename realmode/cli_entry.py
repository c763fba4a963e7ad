"""Real mode's entry points for the ``dmvx`` command (see dmvx/cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmvx.exitstatus import Unavailable
from realmode.orchestrator import RunResult, run


def run_program(variants: list[list[str]], *, policy: str, record: Path | None, console: Any) -> RunResult:
    """``dmvx run``: the variants under ptrace monitors on this machine."""
    if record is not None:
        raise Unavailable("dmvx run --record: trace recording is not built yet")
    return run(variants, policy)


def real(*, topology: str | None, scenario: Path | None, policy: str | None, console: Any) -> Any:
    """``dmvx real``: variants on emulated hosts (see docs/realmode-net.md)."""
    from realmode.net.entry import real as real_on_mininet

    return real_on_mininet(topology=topology, scenario=scenario, policy=policy, console=console)


def suite(directory: Path, *, console: Any) -> RunResult:
    raise Unavailable("dmvx suite --mode real: the real-mode suite runner is not built yet (issue 5)")
