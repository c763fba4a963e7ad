"""Shared helpers of the ``dmvx real`` tests (no tests of its own): topologies,
experiment set-ups, and the before/after check that a run left nothing behind.

The machine may run other people's processes and tests at the same time,
so "nothing left" is checked for what dmvx can have made: interfaces in the
root namespace whose names start with ``dmvx``, processes carrying a
``DMVX_RUN`` mark, children of the test process, the network namespaces
(by inode) of every process that appeared during the test, and the
system-wide settings Mininet would raise. Processes that carry another
pytest run's ``DMVX_TEST_SESSION`` mark are that run's business, and are
neither counted nor killed here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dmvx.policy import Policy
from dmvx.topology import Topology, load_topology
from realmode.net import runs
from realmode.net.experiment import Config, NetExperiment, NetResult, Workload
from realmode.orchestrator import make_policy
from realmode.reports import RunReports

REPO = Path(__file__).resolve().parent.parent
needs_mininet = pytest.mark.skipif(
    shutil.which("mnexec") is None or shutil.which("tc") is None or os.uname().machine != "x86_64",
    reason="needs Debian's mininet (mnexec), iproute2 and an x86-64 Linux host",
)


def two_host(delay: str = "1ms", bw: str = "100Mbit", **extra: object) -> Topology:
    """The shipped two-host topology with every link's delay set to ``delay``."""
    base = load_topology("two-host").model_dump(mode="json")
    for link in base["links"]:
        link["delay"] = delay
        link["bw"] = bw
        link.update(extra)
    return Topology.model_validate(base)


def two_host_run(workload: Workload, policy: Policy | None = None, **options: Any) -> Config:
    """A monitored run on :func:`two_host`: variants on h1 and h2 (``policy``, dmvx's preset by
    default), the client on h3, no native run and no RTT probe; ``options`` set other fields."""
    policy = make_policy("dmvx") if policy is None else policy
    return Config(two_host(), policy, ["h1", "h2"], "h3", workload, native=False, measure_rtt=False, **options)


def ip_links() -> set[str]:
    """Interface names in the root namespace, as ``ip -o link`` lists them."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":", 2)[1].strip().split("@")[0] for line in out.splitlines() if line.strip()}


#: System-wide settings Mininet raises on its first use (``fixLimits``); dmvx
#: must not change them.
SYSCTLS = (
    "net/core/wmem_max",
    "net/core/rmem_max",
    "net/ipv4/tcp_rmem",
    "net/ipv4/tcp_wmem",
    "net/core/netdev_max_backlog",
    "net/ipv4/neigh/default/gc_thresh3",
    "kernel/pty/max",
)


def sysctls() -> dict[str, str]:
    out = {}
    for name in SYSCTLS:
        with open(f"/proc/sys/{name}") as handle:
            out[name] = handle.read().strip()
    return out


def _netns_inode(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return 0


def _processes() -> dict[int, tuple[int | None, int, bytes]]:
    """pid -> (start time, network namespace inode, environ) of every process."""
    table: dict[int, tuple[int | None, int, bytes]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        started = runs.start_time(pid)
        if started is None:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            environ = b""
        table[pid] = (started, _netns_inode(pid), environ)
    return table


def _other_test_run(environ: bytes) -> bool:
    """Whether a process belongs to another pytest run on this machine: it
    carries that run's mark (tests/conftest.py sets one per run). A process
    with no mark, or whose environment cannot be read, still counts: the
    check errs on the side of finding leftovers."""
    own = os.environ.get("DMVX_TEST_SESSION", "").encode()
    for entry in environ.split(b"\0"):
        if entry.startswith(b"DMVX_TEST_SESSION="):
            return entry.split(b"=", 1)[1] != own
    return False


def _live_foreign_runs() -> tuple[set[str], set[int]]:
    """The runs on this machine that are live and not this test session's
    (another engineer's tests, a benchmark): their ids and their processes
    (recorded in the state file, or marked with the run id). Their links
    and processes are theirs, never this test's leftovers -- cleaning them
    up killed a nice'd two-host benchmark's Mininet shells in mid-run
    (``FileNotFoundError: /proc/PID/ns/net`` in ``Agents.start``).

    A run is this session's when its owner is this process or carries this
    session's mark (tests/conftest.py sets it before any run starts)."""
    own = os.environ.get("DMVX_TEST_SESSION", "").encode()
    ids: set[str] = set()
    pids: set[int] = set()
    try:
        files = list(runs._state_dir().glob("*.json"))
    except OSError:
        return ids, pids
    for path in files:
        state = runs.RunState.load(path.stem)
        if state is None or not runs.alive(state.owner, state.owner_start) or state.owner == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{state.owner}/environ").read_bytes()
        except OSError:
            continue
        if own and b"DMVX_TEST_SESSION=" + own in environ.split(b"\0"):
            continue
        ids.add(state.run_id)
        pids.update(pid for pid, started in state.pids.items() if runs.alive(pid, started))
        pids.update(runs.marked_processes(state.run_id))
    return ids, pids


def _children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != b"Z":
                out.add(int(entry))
    return out


@dataclass
class Snapshot:
    """What dmvx could have left: taken before a run, compared after."""

    links: set[str] = field(default_factory=ip_links)
    processes: dict[int, tuple] = field(default_factory=_processes)
    children: set[int] = field(default_factory=lambda: _children(os.getpid()))
    settings: dict[str, str] = field(default_factory=sysctls)

    def leftovers(self, settle: float = 2.0) -> dict[str, list]:
        """What appeared since the snapshot and is still there (waiting up to
        ``settle`` seconds for processes that are dying to be gone)."""
        deadline = time.monotonic() + settle
        while True:
            found = self._leftovers()
            if not any(found.values()) or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def _leftovers(self) -> dict[str, list]:
        root = _netns_inode(1)
        before_ns = {ns for _, ns, _ in self.processes.values()}
        foreign_runs, foreign_pids = _live_foreign_runs()
        links = sorted(
            n
            for n in ip_links() - self.links
            if n.startswith(runs.PREFIX) and n[len(runs.PREFIX) : len(runs.PREFIX) + 5] not in foreign_runs
        )
        now = _processes()
        new = {
            pid: info
            for pid, info in now.items()
            if (pid not in self.processes or self.processes[pid][0] != info[0])
            and not _other_test_run(info[2])
            and pid not in foreign_pids
        }
        marked = sorted(pid for pid, (_, _, env) in new.items() if re.search(rb"(^|\0)DMVX_RUN=", env))
        foreign_ns = sorted(pid for pid, (_, ns, _) in new.items() if ns not in before_ns and ns != root)
        children = sorted(p for p in _children(os.getpid()) - self.children if runs.start_time(p) is not None)
        now_settings = sysctls()
        changed = sorted(f"{k}: {self.settings[k]} -> {v}" for k, v in now_settings.items() if v != self.settings[k])
        return {
            "links": links,
            "marked_processes": marked,
            "processes_in_new_namespaces": foreign_ns,
            "children": children,
            "changed_settings": changed,
        }


def leftovers_checked() -> Iterator[Snapshot]:
    """The ``clean_check`` fixture (tests/conftest.py): fails the test if
    anything dmvx made outlives it (and removes it, so one failure does not
    spill into the next test)."""
    before = Snapshot()
    yield before
    left = before.leftovers()
    if any(left.values()):
        for name in left["links"]:
            run_id = name[len(runs.PREFIX) : len(runs.PREFIX) + 5]
            runs.clean(run_id)
        for pid in left["marked_processes"] + left["processes_in_new_namespaces"] + left["children"]:
            runs.kill(pid)
        pytest.fail(f"the run left things behind: {left}")


def outcome_of(result: NetResult) -> RunReports:
    """What the monitors reported (a run that started its agents has it)."""
    assert result.outcome is not None, result.to_json()
    return result.outcome


def client_of(result: NetResult) -> dict[str, Any]:
    """The report of the client that ran against the variants."""
    assert result.mvx_client is not None, result.to_json()
    return result.mvx_client


def attack_of(result: NetResult) -> dict[str, Any]:
    """The attacker's report."""
    assert result.attack is not None, result.to_json()
    return result.attack


def kill_agent(index: int, which: str) -> Callable[[NetExperiment], None]:
    """A fault's action: kill the ``which`` (monitor, connector) of variant ``index``."""

    def action(experiment: NetExperiment) -> None:
        assert experiment.agents is not None, "a fault fires while the agents run"
        experiment.agents.kill_agent(index, which)

    return action


def dmvx_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dmvx", *args]


def run_dmvx(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(dmvx_command(*args), capture_output=True, text=True, timeout=timeout, cwd=REPO)
