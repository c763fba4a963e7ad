"""The faults of :mod:`realmode.faults` on emulated hosts (``dmvx real``).

Each fault runs one :class:`~realmode.net.experiment.NetExperiment` of the built-in server on
``two-host`` (leader h1, follower h2, client h3; ``three-variant`` for three variants),
:data:`REQUESTS` requests from the client, and fires once the variants have run :data:`realmode.faults.FAULT_AFTER`
seconds: ``kill -9`` of an agent or of the variant (for a tree, the server runs as the child of a
shell, ``sh -c '"$@"; exit $?' sh net_server ...``, every variant the same build: the shell
compares the path it runs), the host's access link down or losing every
frame, or every process of the host stopped (``SIGSTOP``: its Mininet shell, its monitor and
CONNECTOR, its variant's processes -- whatever runs in its network namespace).
"""

from __future__ import annotations

import os
import signal
import time

from dmvx.topology import load_topology
from dmvx.verdict import variant_name
from realmode.faults import (
    FAULT_AFTER,
    Fault,
    Measured,
    Part,
    children,
    kill_checked,
    still_running,
    tracer_of,
)
from realmode.net import experiment as ex
from realmode.net import runs
from realmode.net.agents import VariantAgent
from realmode.net.runs import start_time
from realmode.orchestrator import make_policy

#: A shell that runs the server as its child and waits for it (dash forks a command that is not last).
TREE_LAUNCHER = ("/bin/sh", "-c", '"$@"; exit $?', "sh")
#: Requests the client makes: enough to keep the variants busy past the fault under either preset.
REQUESTS = 300


def _config(fault: Fault, policy: str, stall_timeout: float) -> ex.Config:
    three = fault.variants == 3
    tree = fault.part in (Part.ROOT, Part.CHILD)
    topology = load_topology("three-variant" if three else "two-host")
    hosts = ["h1", "h2", "h3"] if three else ["h1", "h2"]
    return ex.Config(
        topology,
        make_policy(policy),
        hosts,
        "h4" if three else "h3",
        ex.Workload(requests=REQUESTS, pace=0.005),
        native=False,
        measure_rtt=False,
        stall_timeout=stall_timeout,
        timeout=60,
        launcher=TREE_LAUNCHER if tree else (),
        diversified=not tree,
    )


def _namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _host_processes(shell: int) -> list[int]:
    """Every process in the network namespace of a host whose shell is ``shell``."""
    namespace = _namespace(shell)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and _namespace(int(entry)) == namespace:
            found.append(int(entry))
    return found


def _victim(agent: VariantAgent, part: Part) -> int:
    """The pid ``part`` of ``agent`` runs as now, checked to be that process: the agents as the
    run recorded them (pid and start time), the variant's processes by who traces them."""
    if part in (Part.MONITOR, Part.CONNECTOR):
        pid = agent.monitor_pid if part is Part.MONITOR else agent.connector_pid
        if pid is None or _parent(pid) != os.getpid():
            raise RuntimeError(f"the {part.value} of {variant_name(agent.index)} is not running")
        return pid
    root = agent.pid
    if root is None or tracer_of(root) != agent.monitor_pid:
        raise RuntimeError(f"the variant {variant_name(agent.index)} is not running")
    if part is not Part.CHILD:
        return root
    below = [pid for pid in children(root) if tracer_of(pid) == agent.monitor_pid]
    if not below:
        raise RuntimeError(f"the variant {variant_name(agent.index)} has no child")
    return below[0]


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def real_fault(fault: Fault, policy: str, *, stall_timeout: float = 2.0) -> Measured:
    """Inject ``fault`` into a ``dmvx real`` run under ``policy`` and measure it."""
    measured = Measured(fault, policy)
    seen: dict[int, int | None] = {}

    def act(experiment: ex.NetExperiment) -> None:
        agents, net = experiment.agents, experiment.net
        assert agents is not None, "a fault fires while the agents run"
        agent = agents.variants[fault.victim]
        if fault.part in (Part.LINK, Part.LOSS):
            plan = net.link_between(agent.host, "s1")
            if fault.part is Part.LINK:
                net.set_link_up(plan, False)
            else:
                net.set_link_loss(plan, 1.0)
            return
        if fault.part is Part.HOST:
            targets = _host_processes(net.node_pid(agent.host))
            for pid in targets:
                seen[pid] = start_time(pid)
            for pid in targets:
                os.kill(pid, signal.SIGSTOP)
            return
        deadline = time.monotonic() + 10.0
        while True:  # under dmon a follower's tree may take a while to grow its child
            try:
                pid = _victim(agent, fault.part)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        seen[pid] = start_time(pid)
        kill_checked(pid, seen[pid], fault.label)
        injected.fired_at = time.monotonic()  # the time to the verdict counts from here

    injected = ex.Fault(FAULT_AFTER, act, fault.label)
    try:
        result = ex.NetExperiment(_config(fault, policy, stall_timeout), faults=[injected]).run()
    except Exception as error:  # noqa: BLE001 - a run that breaks is a row of the table, not the end of it
        measured.error = f"{type(error).__name__}: {error}"
        return measured
    outcome = result.outcome
    if injected.fired_at is None:
        measured.error = "the run ended before the fault"
        measured.verdict = result.verdict
        return measured
    if outcome is not None and outcome.ended_at is not None:
        measured.seconds = outcome.ended_at - injected.fired_at
    measured.verdict = result.verdict
    if outcome is not None and (outcome.error or outcome.unsupported):
        measured.error = outcome.error or outcome.unsupported
    left = runs.leftovers(result.run_id, result.pids)
    measured.left = [f"link {name}" for name in left["links"]] + [f"process {pid}" for pid in left["processes"]]
    measured.left += [f"process {pid}" for pid in still_running(seen) if f"process {pid}" not in measured.left]
    return measured
