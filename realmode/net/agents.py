"""The agents on each variant host: a tracer (DCP-MON) and a CONNECTOR.

For every variant the orchestrator forks two processes, as ``dmvx run``
does (:mod:`realmode.orchestrator`), but each moves into its host's network
namespace first (:mod:`realmode.net.netns`):

* the **CONNECTOR** (:func:`realmode.connector.run_connector`) -- the
  leader's listens on ``<leader ip>:<port>`` of the leader host (a port
  drawn per run, :func:`connector_port`), each follower's connects to it
  across the emulated links and is admitted once it has passed the
  challenge under the run key. Frames are the
  authenticated ones of :mod:`dmvx.protocol`; the run key reaches the
  CONNECTORs by inheritance only, never through the network or a file (each
  monitor wipes its inherited copy first, :class:`realmode.isolation.RunKey`).
  Its end of the monitor socket is a :class:`~realmode.net.linklog.LoggedLink`,
  so it can say afterwards what crossed the network.
* the **tracer** (:func:`realmode.tracer.tracer_main`), which launches the
  variant as its traced child and drives its monitor -- so the variant,
  too, lives in the host's namespace and serves on the host's address.

Both are launched by :func:`realmode.spawn.spawn_variant`, as ``dmvx run``
launches them; only the fork (into the host's namespace) and the CONNECTOR's
logged link are the agents' own.

Client and attacker hosts get no agents. The leader's listening socket is
made by the orchestrator inside the leader's namespace before anything
starts, so no follower can connect too early and no port is guessed.

:meth:`Agents.collect` reads the monitors' reports exactly as ``dmvx run``
does (:mod:`realmode.reports`): on the first verdict every variant is killed
at once, whichever host it is on. Each run ends with every agent and variant
killed and reaped by pid (:meth:`Agents.stop`).
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dmvx.errors import InputError
from dmvx.policy import Policy
from dmvx.syscalls import Arch
from realmode import isolation, reports
from realmode.connector import BACKLOG, run_connector
from realmode.deferral import signals_deferred
from realmode.net import children, linklog, netns, runs
from realmode.net.network import EmulatedNetwork
from realmode.orchestrator import IN_PROCESS_ENV, inproc_choices, refused_libraries, say_refused, variant_filters
from realmode.reports import GRACE, RunReports
from realmode.spawn import default_compare_from, resolve, spawn_variant
from realmode.tracer import Launch

#: The leader CONNECTOR's port is drawn from here per run: above Linux's
#: default ephemeral range (32768-60999), so no outgoing connection on the
#: leader host holds it, and in the dynamic range of RFC 6335, where no
#: service lives.
CONNECTOR_PORTS = range(61000, 65536)
#: How long a CONNECTOR may take to leave after its monitor did.
_CONNECTOR_EXIT = 0.6


@dataclass
class VariantAgent:
    index: int
    host: str
    argv: list[str]
    monitor_pid: int | None = None
    connector_pid: int | None = None
    pid: int | None = None  # the variant
    status: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    #: How its monitor's last report ended it (:mod:`realmode.reports`).
    end: str | None = None
    connector_summary: dict[str, Any] = field(default_factory=dict)
    #: How the monitor ended (a wait status), when it ended by itself within
    #: :meth:`Agents.stop`'s wait; None if it had to be killed.
    monitor_status: int | None = None


def connector_port() -> int:
    """The port of one run's leader CONNECTOR: drawn at random, not a fixed
    well-known one, so nothing can be aimed at it before the run exists
    (what connects anyway must still pass the challenge)."""
    return CONNECTOR_PORTS[secrets.randbelow(len(CONNECTOR_PORTS))]


class Agents:
    """The monitors and CONNECTORs of one MVX run on a :class:`EmulatedNetwork`."""

    def __init__(
        self,
        net: EmulatedNetwork,
        hosts: list[str],
        argvs: list[list[str]],
        policy: Policy,
        *,
        stall_timeout: float = 2.0,
        envs: list[dict[str, str]] | None = None,
        port: int | None = None,
        compare_from: str | None = None,
        record: list[str] | None = None,
        summary: bool = False,
        in_process: bool | None = None,
    ) -> None:
        if len(hosts) != len(argvs) or len(hosts) < 2:
            raise InputError("dmvx real: MVX needs at least two variants, one host each")
        self.net = net
        self.policy = policy
        self.stall_timeout = stall_timeout
        self.port = port if port is not None else connector_port()
        self.variants = [VariantAgent(i, host, list(argv)) for i, (host, argv) in enumerate(zip(hosts, argvs))]
        self.paths = [resolve(argv[0]) for argv in argvs]
        # Variants of different ABIs are compared from each program's entry
        # point, as in dmvx run.
        self.compare_from = compare_from if compare_from is not None else default_compare_from(self.paths)
        # Each monitor writes its variant's part of the trace itself
        # (realmode.record.Recorder): hosts share the filesystem.
        self.record = record
        #: Each monitor counts its variant's calls per route (``--summary``).
        self.summary = summary
        # The in-process path as in dmvx run (None: DMVX_IN_PROCESS=on asks
        # for it): each variant preloads the library of its ELF class where
        # the policy and the library allow, and a refused library is one line.
        if in_process is None:
            in_process = os.environ.get(IN_PROCESS_ENV) == "on"
        self.choices = inproc_choices(policy, self.paths) if in_process else [None] * len(self.paths)
        self.refused = refused_libraries(self.choices)
        base = dict(net.env)
        self.envs = [dict(base, **(envs[i] if envs else {})) for i in range(len(hosts))]
        self.outcome = RunReports()
        self._pipes: dict[int, int] = {}  # report fd -> variant index
        self._summary_pipes: dict[int, int] = {}
        self._children: list[int] = []
        self._stopped = False

    @property
    def leader_address(self) -> tuple[str, int]:
        return self.net.ip(self.variants[0].host), self.port

    def start(self) -> None:
        n = len(self.variants)
        key = isolation.RunKey()
        hello_id = secrets.token_hex(8)
        say_refused(self.refused)
        preloading = any(c is not None and c.path is not None for c in self.choices)
        bpfs = variant_filters(self.policy, n, preloading)
        leader_host = self.variants[0].host
        with self.net.inside(leader_host):
            listener = socket.create_server(self.leader_address, backlog=max(n, BACKLOG))
        try:
            for agent in self.variants:
                self._start_one(agent, n, key, hello_id, bpfs[agent.index], listener)
        finally:
            key.wipe()  # every CONNECTOR has its copy; nobody else needs one
            listener.close()

    def _start_one(
        self, agent: VariantAgent, n: int, key: isolation.RunKey, hello_id: str, bpf: list, listener: socket.socket
    ) -> None:
        index = agent.index
        host_pid = self.net.node_pid(agent.host)
        summary_r, summary_w = os.pipe()
        address = None if index == 0 else self.leader_address

        def fork(role: str, body: Callable[[], None], keep: set[int]) -> int:
            def inside() -> None:
                if role == "monitor":
                    key.wipe()  # the key lives only where it is used
                netns.enter(host_pid)
                body()

            with signals_deferred():  # a Ctrl-C in the at-fork hooks is not lost (realmode.deferral)
                pid = children.fork(inside, keep=keep)
                self._children.append(pid)
                self.net.state.add(pid)
            return pid

        def connector(con_end: socket.socket) -> None:
            logged = linklog.LoggedLink(con_end)
            signal.signal(signal.SIGTERM, _leave)
            try:
                run_connector(
                    index,
                    n,
                    key.secret,
                    hello_id,
                    logged,
                    listener if index == 0 else None,
                    address,
                    silence=self.stall_timeout,
                )
            except _Leave:
                pass  # told to go (say, stuck sending on a cut link): still report
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            summary = linklog.summarise(logged.log, index, n)
            os.write(summary_w, (json.dumps(summary) + "\n").encode())

        def quiet_stdio() -> None:
            # A served program's own stdin and stdout mean nothing here (its
            # input comes over the network), and the orchestrator's stdout
            # may be carrying --json.
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.close(null)

        cpus = sorted(os.sched_getaffinity(0))
        hint = self.net.topology.hosts[agent.host].cpu
        cpu = (
            (hint if hint in cpus else None)
            if hint is not None
            else (cpus[index % len(cpus)] if len(cpus) > 1 else None)
        )
        choice = self.choices[index]
        launch = Launch(
            index=index,
            n_variants=n,
            policy=self.policy,
            path=self.paths[index],
            argv=agent.argv,
            env=self.envs[index],
            filter=bpf,
            stall_timeout=self.stall_timeout,
            cpu=cpu,
            compare_from=self.compare_from,
            record=self.record[index] if self.record else None,
            summary=self.summary,
            preload=str(choice.path) if choice is not None and choice.path is not None else None,
            preload_arch=choice.arch if choice is not None else Arch.X86_64,
        )
        try:
            spawned = spawn_variant(
                launch, fork, connector, [summary_w, *([listener.fileno()] if index == 0 else [])], quiet_stdio
            )
        finally:
            os.close(summary_w)
        agent.connector_pid, agent.monitor_pid = spawned.connector_pid, spawned.monitor_pid
        self._summary_pipes[summary_r] = index
        self._pipes[spawned.report_fd] = index

    # -- the run --------------------------------------------------------------------

    def collect(
        self,
        timeout: float | None = None,
        tick: Callable[[], str | None] | None = None,
        finished: Callable[[], bool] | None = None,
        settle: float = GRACE,
    ) -> RunReports:
        """Read the monitors' reports until every one has ended: the same
        reading as ``dmvx run``'s (:func:`realmode.reports.collect`, which
        says what ``timeout``, ``tick``, ``finished`` and ``settle`` do).
        The variants may still run afterwards; :meth:`stop` ends them."""
        reports.collect(
            self._pipes, self.variants, self.outcome, timeout=timeout, tick=tick, finished=finished, settle=settle
        )
        for index, why in self.refused.items():
            self.variants[index].stats.setdefault("in_process", {"path": "ptrace"})["why"] = why
        return self.outcome

    def _kill_variants(self) -> None:
        reports.kill_variants(self.variants, self.outcome.variant_starts)

    def kill_agent(self, index: int, which: str = "monitor") -> None:
        """SIGKILL one agent process (a fault injected by tests)."""
        agent = self.variants[index]
        pid = agent.monitor_pid if which == "monitor" else agent.connector_pid
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    def stop(self, connector_exit: float = _CONNECTOR_EXIT, monitor_exit: float = 0.0) -> None:
        """End every agent and variant; keep what the CONNECTORs had to say.
        ``connector_exit``: how long the CONNECTORs get to report (a long run's
        link log takes longer to summarise). ``monitor_exit``: how long the
        monitors get to end by themselves once their variants are killed --
        a recording monitor closes its part of the trace as it ends, one
        killed outright loses what it had not written yet."""
        if self._stopped:
            return
        self._stopped = True
        self._kill_variants()
        if monitor_exit > 0:
            self._await_monitors(monitor_exit)
        # Every monitor has had its say (or never will): end them, so that a
        # CONNECTOR still waiting for its monitor -- say on a link an
        # attacker desynchronised, whose FIN never arrives -- sees its
        # monitor link close and leaves with its summary.
        for agent in self.variants:
            if agent.monitor_pid and agent.monitor_status is None:
                runs.kill(agent.monitor_pid)
        for agent in self.variants:
            if agent.monitor_pid and agent.monitor_status is None:
                runs.reap(agent.monitor_pid)
        open_fds = set(self._summary_pipes)
        buffers = dict.fromkeys(open_fds, b"")
        # A CONNECTOR leaves by itself once its monitor has hung up; its last
        # act is the summary of what crossed its links. One stuck sending
        # into a cut link is told to leave (SIGTERM), and reports all the same.
        self._read_summaries(open_fds, buffers, connector_exit / 2)
        for agent in self.variants:
            if agent.connector_pid and any(self._summary_pipes[fd] == agent.index for fd in open_fds):
                try:
                    os.kill(agent.connector_pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        self._read_summaries(open_fds, buffers, connector_exit / 2)
        for fd, index in self._summary_pipes.items():
            text = buffers.get(fd, b"").split(b"\n")[0]
            if text:
                try:
                    self.variants[index].connector_summary = json.loads(text)
                except ValueError:
                    pass
            os.close(fd)
        for fd in self._pipes:
            os.close(fd)
        self._summary_pipes.clear()
        self._pipes.clear()
        for pid in self._children:
            runs.kill(pid)
        for pid in self._children:
            runs.reap(pid)

    def _await_monitors(self, timeout: float) -> None:
        """Reap the monitors that end within ``timeout`` seconds, noting how."""
        waiting = {agent.monitor_pid: agent for agent in self.variants if agent.monitor_pid}
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for pid, agent in list(waiting.items()):
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    del waiting[pid]
                    continue
                if done:
                    agent.monitor_status = status
                    self._children.remove(pid)  # reaped: its pid is no longer ours to kill
                    del waiting[pid]
            if waiting:
                time.sleep(0.005)

    @staticmethod
    def _read_summaries(open_fds: set[int], buffers: dict[int, bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while open_fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            readable, _, _ = select.select(list(open_fds), [], [], remaining)
            for fd in readable:
                data = os.read(fd, 1 << 20)
                if data:
                    buffers[fd] += data
                else:
                    open_fds.discard(fd)

    @property
    def pids(self) -> list[int]:
        """Every process of the agents, variants included."""
        out = list(self._children)
        out += [a.pid for a in self.variants if a.pid]
        return out


class _Leave(Exception):
    """Raised in a CONNECTOR by SIGTERM: stop serving, report, exit."""


def _leave(signum: int, frame: object) -> None:
    raise _Leave
