"""Run corpus entries natively and under ``dmvx run``, and say where they differ."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
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
#: 180 s was too short at load 19-25 under ``nice -n 10``: redis-benchmark
#: under both presets was killed there while still progressing (its client
#: switching ~120 times a second at 170 s, its monitors given 11 s of CPU in
#: 3 minutes). The hangs this limit did catch (dash's ``wait``: a follower's
#: sigsuspend run with the leader's held signal pending, fixed in 3feb804)
#: end here too, later.
RUN_TIMEOUT = 600.0
_DMVX_LINE = b"dmvx: "
#: How long a run stopped from outside (:func:`stop_runs`) has to end on
#: SIGTERM (``dmvx run`` then kills and reaps its variants, monitors and
#: CONNECTORs) before its session is killed outright.
STOP_GRACE = 10.0


class Stopped(Exception):
    """The runs were stopped (:func:`stop_runs`): no new one starts."""


#: The runs in progress (each the leader of a session of its own), and
#: whether they were stopped; one lock for both, so that no run starts
#: after :func:`stop_runs` has looked.
_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()
_stopped = threading.Event()


def stop_runs(grace: float = STOP_GRACE) -> None:
    """Stop every run in progress and start no other (Ctrl-C on the corpus):
    each run is a session of its own (out of the terminal's reach), so it is
    sent SIGTERM -- a ``dmvx run`` ends as on Ctrl-C, its variants killed
    and reaped -- and its session SIGKILL if it has not ended within
    ``grace``. Returns once every one has ended, so that its work directory
    can go."""
    with _live_lock:
        _stopped.set()
        running = list(_live)
    for process in running:
        _signal_session(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        _signal_session(process, signal.SIGKILL)  # what it left in its session, or itself
        process.wait()


def hold_signals() -> None:
    """Hold SIGINT and SIGTERM in this thread from now on: a second Ctrl-C
    must not cut :func:`stop_runs` short (it would leave runs behind); the
    command ends right after."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _signal_session(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


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
    with _live_lock:
        if _stopped.is_set():
            raise Stopped
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        _live.add(process)
    with process:
        try:
            out, err = process.communicate(timeout=timeout)
            status: int | None = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            status = None
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM while this thread waits for its run (the
            # main thread: ``--projects``): the run is a session of its own
            # the signal did not reach, and it is still in _live here, so
            # stop it (and every other) before the exception leaves its work
            # directory to be removed; Popen's exit would only wait 0.25 s.
            hold_signals()
            stop_runs()
            raise
        finally:
            with _live_lock:
                _live.discard(process)
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
