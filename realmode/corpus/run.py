"""Run corpus entries natively and under ``dmvx run``, and say where they differ."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from realmode.corpus.commands import Entry
from realmode.corpus.fixtures import environment, lay_out

#: How long one run may take before it counts as hung. dmvx's own stall
#: timeout (2 s without a call while another variant waits) reports a hang
#: of the run itself long before; this limit only catches what that cannot
#: see. 60 s was too short on a machine at load average 30-37 (two CPUs
#: shared with other work): signals-dash-jobs-wait, 1 CPU second under
#: dmvx, took 21-32 s there against 5 s at load 15, and runs of it and of
#: `make` were killed at 60 s (status None) with no verdict from dmvx.
RUN_TIMEOUT = 180.0
_DMVX_LINE = b"dmvx: "


@dataclass(frozen=True, slots=True)
class Ran:
    """What one run of an entry produced."""

    status: int | None  # None: killed after RUN_TIMEOUT
    stdout: bytes
    stderr: bytes  # the program's own, dmvx's lines left out
    dmvx_says: str  # dmvx's own lines (a verdict, a refusal), joined
    seconds: float


@dataclass(frozen=True, slots=True)
class Comparison:
    """One entry under one preset against its native run."""

    entry: Entry
    policy: str
    native: Ran
    under: Ran

    @property
    def problems(self) -> tuple[str, ...]:
        found = []
        if self.under.status != self.native.status:
            found.append(f"status {self.under.status} where native {self.native.status}")
        if self.entry.output and self.under.stdout != self.native.stdout:
            found.append("stdout differs")
        if self.entry.output and self.under.stderr != self.native.stderr:
            found.append("stderr differs")
        if self.under.dmvx_says:
            found.append(self.under.dmvx_says)
        return tuple(found)

    @property
    def agrees(self) -> bool:
        return not self.problems


def available(entry: Entry) -> bool:
    """Whether every program the entry needs is on PATH."""
    return all(shutil.which(name) for name in entry.needs)


def run_once(entry: Entry, work: Path, policy: str | None) -> Ran:
    """One run of ``entry`` in a fresh ``work``: natively (policy None) or
    under ``dmvx run --policy policy``."""
    lay_out(work)
    return run_in(list(entry.argv), work, environment(work), policy)


def run_in(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    policy: str | None,
    timeout: float = RUN_TIMEOUT,
    share_path: bool = True,
) -> Ran:
    """``argv`` run in ``cwd`` with ``env``: natively (policy None) or under
    ``dmvx run --policy policy``; dmvx's own lines are kept apart from the
    program's stderr. A run longer than ``timeout`` is killed (status None).
    ``share_path`` gives dmvx this interpreter's ``sys.path`` (PYTHONPATH,
    which the program inherits too); without it, dmvx must be installed in
    this interpreter, and a Python program under test imports as natively."""
    if policy is not None:
        argv = [sys.executable, "-m", "dmvx", "run", "--policy", policy, "--", *argv]
        if share_path:  # dmvx itself runs from this interpreter's installation
            env = {**env, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    start = time.monotonic()
    with subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
            status: int | None = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            status = None
    if status is not None and status < 0:
        status = 128 - status  # as a shell (and dmvx run) reports a death by signal
    mine = [line for line in err.splitlines(keepends=True) if line.startswith(_DMVX_LINE)]
    theirs = b"".join(line for line in err.splitlines(keepends=True) if not line.startswith(_DMVX_LINE))
    said = " ".join(line.decode(errors="replace").strip() for line in mine)
    return Ran(status, out, theirs if policy is not None else err, said, time.monotonic() - start)


def compare(entry: Entry, work: Path, policies: tuple[str, ...]) -> list[Comparison]:
    """The entry run natively once and under each preset once, compared."""
    native = run_once(entry, work, None)
    return [Comparison(entry, policy, native, run_once(entry, work, policy)) for policy in policies]
