"""Run ids, the names of what a run makes, and cleaning up by run id.

Everything ``dmvx real`` creates outside a host namespace carries the run's
prefix ``dmvx<run id>``: bridges ``dmvx<id>b<n>`` and their ports
``dmvx<id>b<n>p<m>`` (Linux caps interface names at 15 characters). Inside
host and relay namespaces names are free (``h1-eth0``): a namespace dies with
its last process. Every program the run starts gets ``DMVX_RUN=<id>`` in its
environment; processes it forks without exec are listed in the run's state
file. Cleanup therefore touches exactly what this run made, found by name,
environment or recorded pid -- never by a broad pattern.

The state file (``/run/dmvx/<id>.json``, with the owner's pid and start
time) is what lets a later run clean up after an orchestrator that was
killed outright (SIGKILL leaves no chance to clean): :func:`reap_stale` removes
the leftovers of every run whose owner is gone.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "dmvx"
ENV = "DMVX_RUN"
_ID_CHARS = 5


def _state_dir() -> Path:
    for base in (Path("/run/dmvx"), Path(tempfile.gettempdir()) / "dmvx-runs"):
        try:
            base.mkdir(mode=0o700, parents=True, exist_ok=True)
            if os.access(base, os.W_OK):
                return base
        except OSError:
            continue
    raise OSError(errno.EACCES, "no writable directory for dmvx run state")


def root_links() -> list[str]:
    """Names of the interfaces in the root network namespace."""
    try:
        return sorted(os.listdir("/sys/class/net"))
    except OSError:
        return []


def new_run_id() -> str:
    """A fresh id no live run and no interface here uses."""
    taken = {name[len(PREFIX) : len(PREFIX) + _ID_CHARS] for name in root_links() if name.startswith(PREFIX)}
    state = _state_dir()
    while True:
        run_id = secrets.token_hex(4)[:_ID_CHARS]
        if run_id not in taken and not (state / f"{run_id}.json").exists():
            return run_id


def prefix(run_id: str) -> str:
    return f"{PREFIX}{run_id}"


def bridge_name(run_id: str, index: int) -> str:
    return f"{prefix(run_id)}b{index}"


def port_name(bridge: str, port: int) -> str:
    return f"{bridge}p{port}"


# -- processes ------------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None
    if it is gone; with the pid it names one process for good."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def alive(pid: int, started: int | None = None) -> bool:
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def marked_processes(run_id: str) -> list[int]:
    """Live processes whose environment carries this run's mark."""
    mark = f"{ENV}={run_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if mark in handle.read().split(b"\0") and start_time(int(entry)) is not None:
                    found.append(int(entry))
        except OSError:
            continue
    return found


def kill(pid: int, started: int | None = None) -> None:
    """SIGKILL ``pid`` if it is still the process that was recorded."""
    if not alive(pid, started):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def reap(pid: int, timeout: float = 2.0) -> None:
    """Wait for a child of ours to end (no-op for someone else's process)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done or time.monotonic() > deadline:
            return
        time.sleep(0.005)


# -- the state file -----------------------------------------------------------------


@dataclass
class RunState:
    """What a live run has made, on disk so that a later run can undo it."""

    run_id: str
    owner: int = field(default_factory=os.getpid)
    owner_start: int | None = None
    pids: dict[int, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.owner_start is None:
            self.owner_start = start_time(self.owner)

    @property
    def path(self) -> Path:
        return _state_dir() / f"{self.run_id}.json"

    def save(self) -> None:
        data = {
            "owner": self.owner,
            "owner_start": self.owner_start,
            "pids": [[pid, started] for pid, started in self.pids.items()],
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)

    def add(self, pid: int) -> None:
        self.pids[pid] = start_time(pid)
        self.save()

    def remove_file(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    @classmethod
    def load(cls, run_id: str) -> RunState | None:
        try:
            data = json.loads((_state_dir() / f"{run_id}.json").read_text())
        except (OSError, ValueError):
            return None
        return cls(run_id, data["owner"], data["owner_start"], dict(data["pids"]))


# -- cleanup ----------------------------------------------------------------------


def run_links(run_id: str) -> list[str]:
    """This run's interfaces (bridges and ports) in the root namespace."""
    mine = prefix(run_id)
    return [name for name in root_links() if name.startswith(mine)]


def leftovers(run_id: str, pids: Sequence[int] = ()) -> dict[str, list[Any]]:
    """What of run ``run_id`` still exists: root-namespace links, marked
    processes, and any of ``pids`` (with the state file's) still alive."""
    state = RunState.load(run_id)
    recorded = dict(state.pids) if state is not None else {}
    for pid in pids:
        recorded.setdefault(pid, None)
    live = sorted(set(marked_processes(run_id)) | {pid for pid, started in recorded.items() if alive(pid, started)})
    return {"links": run_links(run_id), "processes": live}


def clean(run_id: str, pids: dict[int, int | None] | None = None) -> None:
    """Remove everything run ``run_id`` made that still exists."""
    state = RunState.load(run_id)
    recorded = dict(state.pids) if state is not None else {}
    recorded.update(pids or {})
    for _ in range(3):
        targets = {pid: started for pid, started in recorded.items() if alive(pid, started)}
        targets.update(dict.fromkeys(marked_processes(run_id)))
        targets.pop(os.getpid(), None)
        if not targets:
            break
        for pid, started in targets.items():
            kill(pid, started)
        for pid in targets:
            reap(pid, 0.5)
    links = run_links(run_id)
    # Bridges first (their ports fall off), then whatever veth ends remain:
    # deleting one end of a veth pair deletes both.
    for name in sorted(links, key=lambda n: ("p" in n[len(prefix(run_id)) :], n)):
        if os.path.exists(f"/sys/class/net/{name}"):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    if state is not None:
        state.remove_file()


def reap_stale() -> list[str]:
    """Clean up after runs whose orchestrator died without doing it; the
    ids cleaned."""
    cleaned: list[str] = []
    try:
        files = list(_state_dir().glob("*.json"))
    except OSError:
        return cleaned
    for path in files:
        state = RunState.load(path.stem)
        if state is None or alive(state.owner, state.owner_start):
            continue
        clean(state.run_id)
        cleaned.append(state.run_id)
    return cleaned
