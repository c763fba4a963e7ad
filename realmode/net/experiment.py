"""One ``dmvx real`` experiment: a served program under MVX on emulated hosts.

A :class:`NetExperiment` builds the topology's network (:mod:`.network`),
measures the CONNECTOR round trip on it (:mod:`.rtt`), runs the workload
natively on the leader's host for the baseline, then runs it again with the
server as leader and followers under the monitors (:mod:`.agents`) while the
client host makes the same requests and, if asked, the attacker host
attacks (:mod:`.attacker`). Tests hook in with ``faults``: callables fired a
given time after the variants started (kill an agent, cut a link, slow it).

Every way out -- a clean end, a verdict, an error, Ctrl-C, SIGTERM -- goes
through the same ``finally``: agents stopped, attacker and client killed,
network removed (:meth:`.network.EmulatedNetwork.stop`), leftovers of the run id
cleaned. :func:`.runs.reap_stale` first removes what earlier runs that were
killed outright left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmvx.errors import InputError
from dmvx.exitstatus import EnvironmentProblem, ExitStatus
from dmvx.outcome import Ending, Expectation, ending_of
from dmvx.policy import Policy
from dmvx.rows import Rows, flatten, rows_of_records
from dmvx.syscalls import Arch
from dmvx.topology import Topology
from dmvx.verdict import Verdict, VerdictKind, variant_name
from realmode import callsummary
from realmode import record as record_mod
from realmode.callsummary import CallSummary
from realmode.deferral import signals_deferred
from realmode.net import rtt, runs, targets
from realmode.net.agents import Agents, connector_port
from realmode.net.network import EmulatedNetwork
from realmode.net.ssh_agents import SshAgents
from realmode.reports import RunReports
from realmode.spawn import elf_arch

SERVER_PORT = 8080
#: Attacks real mode can run, by the name the attacker program knows them.
STREAM_ATTACKS = frozenset({"forge", "replay", "reset"})
ATTACKS = STREAM_ATTACKS | {"exploit"}
#: Seconds a served program's CONNECTORs get to report after the run.
SERVED_SUMMARY_WAIT = 20.0
#: Seconds, beyond the stall timeout, a recording monitor gets to end by
#: itself (and close its part of the trace) once its variant is killed.
RECORD_MONITOR_EXIT = 1.0


@dataclass
class Workload:
    """Requests from the client host to the served program."""

    requests: int = 20
    body_bytes: int = 4096
    pace: float = 0.0  # seconds between requests


@dataclass
class Served:
    """A program of one's own served by every variant instead of the built-in
    demo -- say Debian's lighttpd with a config file and a static tree.

    The same ``argv`` runs natively and as each variant; it must serve HTTP
    on :data:`SERVER_PORT` of every address of its host. Such a program
    never exits by itself, so its run ends once the client is done: after
    ``settle`` seconds more for the followers to catch up, the agents are
    stopped, and no verdict by then is a clean run. The client
    (:func:`realmode.net.client.run_served`) checks ``sample`` bodies against
    ``digests`` (a JSON file: URL path -> SHA-256 of the body), then runs
    ``ab -n <workload.requests> -c 1`` on ``path``.
    """

    argv: list[str]
    digests: Path
    path: str
    sample: int = 100
    settle: float = 1.0
    #: A directory the program needs (its config, its files): sent to each
    #: machine a variant runs on, its path there put for this one's in the
    #: program's arguments and text files (:mod:`realmode.net.remote_agent`).
    tree: Path | None = None


@dataclass
class NetAttack:
    kind: str  # exploit | forge | replay | reset
    source: str  # host the attack comes from
    target: int = 0  # exploit: the variant that gets the vulnerable layout
    wait: float = 0.3  # seconds after the client's start
    tries: int = 5
    towards: str = "leader"  # stream attacks: whose CONNECTOR receives the injected segments


@dataclass
class Fault:
    """Something done to the run ``after`` seconds after the variants started."""

    after: float
    action: Callable[[NetExperiment], None]
    label: str = ""
    fired_at: float | None = None


@dataclass
class Config:
    topology: Topology
    policy: Policy
    variant_hosts: list[str]
    client_host: str
    workload: Workload = field(default_factory=Workload)
    attack: NetAttack | None = None
    native: bool = True
    measure_rtt: bool = True
    stall_timeout: float = 2.0
    timeout: float = 60.0
    seed: int = 0
    netem: bool | None = None
    expect: tuple[str, str | None] | None = None  # (outcome, verdict kind)
    scenario: str | None = None
    served: Served | None = None
    #: Write the run's trace here (docs/trace-format.md): the variants' calls
    #: under the monitors, as ``dmvx run --record`` writes them.
    record: Path | None = None
    #: Count every variant's calls per route (``dmvx real --summary``).
    summary: bool = False
    #: The variants' replicated calls on the in-process path (``dmvx run
    #: --in-process``); None: as ``DMVX_IN_PROCESS`` says (:class:`Agents`).
    in_process: bool | None = None
    #: Put before the built-in server's command line: say a shell that runs
    #: the server as its child (``sh -c '"$@"; exit $?' sh``), so a variant
    #: is a process tree (:mod:`realmode.faults` kills its root or the child).
    launcher: tuple[str, ...] = ()
    #: The program's name the topology's ``binaries`` knows it by (on
    #: machines of another architecture, :mod:`dmvx.binaries`).
    program_name: str = "net_server"
    #: Whether the variants run differently laid out builds of the server (the
    #: attacked one layout 0, the others 1); False: all run layout 1, the same
    #: file -- as a shell in ``launcher`` must, which execs the server by path.
    diversified: bool = True


@dataclass
class NetResult:
    """The :class:`dmvx.output.Result` of ``dmvx real``."""

    config: Config
    run_id: str
    delay_mechanism: str
    outcome: RunReports | None = None
    native: dict[str, Any] | None = None
    mvx_client: dict[str, Any] | None = None
    rtt: dict[str, float] | None = None
    link: dict[str, Any] = field(default_factory=dict)
    lead: dict[str, Any] = field(default_factory=dict)
    variants: list[dict[str, Any]] = field(default_factory=list)
    attack: dict[str, Any] | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    harmful_ran: bool | None = None
    #: ``record``: where the trace went and how many calls of each variant it
    #: holds, or why none was written (``path`` None, ``reason``).
    trace: dict[str, Any] | None = None
    elapsed_s: float = 0.0
    #: Every process the run started (for cleanup checks).
    pids: list[int] = field(default_factory=list)
    #: ``summary``: every variant's calls per route (:mod:`realmode.callsummary`).
    summary: CallSummary | None = None

    #: Each variant machine's architecture as its agent reported it
    #: (``uname -m``), by host; empty on emulated hosts.
    machines: dict[str, str] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict | None:
        return self.outcome.verdict if self.outcome else None

    @property
    def ending(self) -> Ending:
        """How the run ended, in the core's words (:mod:`dmvx.outcome`);
        a run that failed or could not run here is an error."""
        if self.outcome is None or self.outcome.error or self.outcome.unsupported:
            return Ending.ERROR
        return ending_of(self.verdict, self.config.attack is not None)

    @property
    def outcome_label(self) -> str:
        """ok | divergence | rejected | missed | error, as sim mode says it."""
        return self.ending.value

    @property
    def as_expected(self) -> bool | None:
        if self.config.expect is None:
            return None
        label, kind = self.config.expect
        expected = Expectation(Ending(label), None if kind is None else VerdictKind(kind))
        return expected.met_by(self.ending, self.verdict)

    @property
    def slowdown(self) -> float | None:
        if not self.native or not self.mvx_client:
            return None
        native, mvx = self.native.get("elapsed_s"), self.mvx_client.get("elapsed_s")
        if not native or not mvx or self.native.get("requests") != self.mvx_client.get("requests"):
            return None
        return mvx / native

    @property
    def exit_status(self) -> ExitStatus:
        if self.outcome is None or self.outcome.error is not None:
            return ExitStatus.INTERNAL
        if self.outcome.unsupported is not None:
            return ExitStatus.UNAVAILABLE
        expected = self.as_expected
        if expected is not None:
            status = ExitStatus.OK if expected else ExitStatus.ATTACK_MISSED
        elif self.ending is Ending.MISSED:
            status = ExitStatus.ATTACK_MISSED
        else:
            status = ExitStatus.OK if self.verdict is None else ExitStatus.DIVERGENCE
        if status is ExitStatus.OK and self.trace is not None and self.trace["path"] is None:
            return ExitStatus.INTERNAL  # a clean run whose asked-for trace could not be written
        return status

    def to_json(self) -> dict[str, Any]:
        config = self.config
        outcome = self.outcome
        return {
            "mode": "real",
            "scenario": config.scenario,
            "topology": config.topology.name,
            "policy": config.policy.name,
            "run_id": self.run_id,
            "status": self.exit_status.label,
            "outcome": self.outcome_label,
            "expected": None if config.expect is None else {"verdict": config.expect[0], "kind": config.expect[1]},
            "as_expected": self.as_expected,
            "verdict": None if self.verdict is None else {**self.verdict.to_dict(), "summary": self.verdict.summary()},
            "error": outcome.error if outcome else None,
            "unsupported": outcome.unsupported if outcome else None,
            "hosts": {
                "variants": config.variant_hosts,
                # Machines reached over SSH: each one's architecture as it reported it.
                **({"machines": self.machines} if self.machines else {}),
                "client": config.client_host,
                "attacker": config.attack.source if config.attack else None,
            },
            # Machines reached over SSH are on their own network: no emulated delay.
            "link_delay": {
                "mechanism": self.delay_mechanism,
                "leader_follower_one_way_s": config.topology.path_delay(
                    config.variant_hosts[0], config.variant_hosts[1]
                ),
            }
            if not self.machines
            else {"mechanism": "the machines' own network", "leader_follower_one_way_s": None},
            "connector_rtt": self.rtt,
            "native": _client_json(self.native),
            "mvx": _client_json(self.mvx_client),
            "slowdown": None if self.slowdown is None else round(self.slowdown, 4),
            "link": self.link,
            "lead": self.lead,
            "variants": self.variants,
            "attack": self.attack,
            "harmful_call_ran": self.harmful_ran,
            "faults": self.faults,
            "trace": self.trace,
            "elapsed_s": round(self.elapsed_s, 3),
            **({"summary": self.summary.to_json()} if self.summary is not None else {}),
        }

    def rows(self) -> Rows:
        """``--format``: the run as one flat row (:func:`dmvx.rows.flatten` of
        its JSON document: ``native.elapsed_s``, ``link_delay.leader_follower_one_way_s``);
        with ``summary``, one row per variant, call and route instead."""
        if self.summary is not None:
            return self.summary.table(policy=self.config.policy.name)
        return rows_of_records([flatten(self.to_json())])

    def render(self, console: Any) -> None:
        from rich.table import Table

        data = self.to_json()
        table = Table(
            title=f"dmvx real: {data['topology']}, policy {data['policy']}"
            + (f", scenario {data['scenario']}" if data["scenario"] else ""),
            show_header=False,
            title_justify="left",
        )
        table.add_column("what", style="bold")
        table.add_column("value")
        verdict = self.verdict
        if verdict is None:
            table.add_row("verdict", "[red]error[/]" if data["error"] else "ok (the variants agreed)")
        else:
            table.add_row("verdict", f"[red]{verdict.summary()}[/]")
        for key in ("error", "unsupported"):
            if data[key]:
                table.add_row(key, data[key])
        if self.config.attack is not None and data["attack"]:
            attack = data["attack"]
            table.add_row(
                "attack",
                f"{attack['kind']} from {attack['source']}: {attack['injected']} injection(s)"
                + ("" if self.harmful_ran is None else f"; harmful call {'RAN' if self.harmful_ran else 'not run'}"),
            )
        if data["expected"] is not None:
            table.add_row(
                "expected",
                f"{data['expected']['verdict']} {data['expected']['kind'] or ''}".strip()
                + (" [green](as expected)[/]" if data["as_expected"] else " [red](NOT as expected)[/]"),
            )
        table.add_row("hosts", f"leader {config_hosts(self)}")
        if self.machines:
            table.add_row(
                "machines", ", ".join(f"{host} {machine} (over SSH)" for host, machine in self.machines.items())
            )
        delay = data["link_delay"]
        rtt_text = ""
        if self.rtt:
            one_way = delay["leader_follower_one_way_s"]
            rtt_text = (
                f"; CONNECTOR round trip {self.rtt['median_s'] * 1e3:.2f} ms (2 x one-way = {2 * one_way * 1e3:.2f} ms)"
            )
        if not self.machines:
            table.add_row("link delay", f"{delay['mechanism']}{rtt_text}")
        if self.native:
            table.add_row("native", _client_text(self.native))
        if self.mvx_client:
            table.add_row("under MVX", _client_text(self.mvx_client))
        if self.slowdown is not None:
            table.add_row("slowdown", f"{self.slowdown:.2f}x vs native over the same topology")
        if self.link.get("messages") is not None:
            link = self.link
            wire = (
                f"; {link['wire_bytes']} bytes in {link['wire_frames']} Ethernet frames on the wire"
                if link.get("wire_bytes")
                else ""
            )
            table.add_row(
                "leader-follower link",
                f"{link['messages']} messages ({link['heartbeats']} heartbeats), "
                f"{link['frame_bytes']} frame bytes{wire}",
            )
        if self.lead:
            lead = self.lead
            table.add_row(
                "leader's lead",
                f"max {lead['max_calls']} calls ({lead['max_cb_entries']} in the CB, bound "
                f"{self.config.policy.cb_entries}); {lead['max_seconds'] * 1e3:.2f} ms max, "
                f"{lead['median_seconds'] * 1e3:.2f} ms median",
            )
        for fault in self.faults:
            table.add_row(
                "fault",
                f"{fault['label']} at +{fault['after_s']:.2f} s; run ended {fault['ended_after_s']:.2f} s later",
            )
        if self.trace is not None:
            table.add_row("trace", _trace_text(self.trace))
        console.print(table)
        if self.summary is not None:
            self.summary.render(console)


def config_hosts(result: NetResult) -> str:
    config = result.config
    followers = ", ".join(config.variant_hosts[1:])
    plural = "s" if len(config.variant_hosts) > 2 else ""
    text = f"{config.variant_hosts[0]}, follower{plural} {followers}, client {config.client_host}"
    if config.attack is not None:
        text += f", attacker {config.attack.source}"
    return text


def _trace_text(trace: dict[str, Any]) -> str:
    if trace["path"] is None:
        return f"[red]not written[/]: {trace['reason']}"
    calls = ", ".join(f"{n} ({variant_name(int(v))})" for v, n in trace["calls"].items())
    text = f"{trace['path']}: calls {calls}"
    dropped = {v: n for v, n in trace["dropped"].items() if n}
    if dropped:
        text += "; left out, as not yet made by every variant when the run was stopped: " + ", ".join(
            f"{n} ({variant_name(int(v))})" for v, n in dropped.items()
        )
    return text


def _client_json(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    latencies = [end - start for start, end, _ in report.get("done", [])]
    out = {
        "requests": report.get("requests"),
        "asked": report.get("asked"),
        "elapsed_s": round(report.get("elapsed_s", 0.0), 6),
        "bytes": report.get("bytes"),
        "median_latency_s": round(statistics.median(latencies), 6) if latencies else None,
        "error": report.get("error"),
    }
    # A served program's client (realmode.net.client.run_served) also says
    # how the bodies compared with their digests, and what ab measured.
    for key in ("digests", "ab"):
        if key in report:
            out[key] = report[key]
    return out


def _client_text(report: dict[str, Any]) -> str:
    data = _client_json(report)
    assert data is not None
    text = f"{data['requests']}/{data['asked']} requests in {data['elapsed_s'] * 1e3:.1f} ms"
    if data["median_latency_s"] is not None:
        text += f" (median {data['median_latency_s'] * 1e3:.2f} ms each)"
    ab = data.get("ab") or {}
    if ab.get("p50_ms") is not None:
        text += (
            f" (ab: {ab.get('requests_per_s') or 0:.1f} req/s, p50 {ab['p50_ms']:.0f} ms, "
            f"p99 {ab.get('p99_ms') or 0:.0f} ms)"
        )
    digests = data.get("digests")
    if digests is not None:
        text += f"; {digests['checked']}/{digests['asked']} bodies checked, {digests['wrong']} wrong"
    if data["error"]:
        text += f"; stopped: {data['error']}"
    return text


def route_interface(address: str) -> str:
    """The interface of this machine that its route to ``address`` leaves by."""
    out = subprocess.run(["ip", "-o", "route", "get", address], capture_output=True, text=True).stdout.split()
    if "dev" not in out:
        raise EnvironmentProblem(f"dmvx real: no route from this machine to {address}")
    return out[out.index("dev") + 1]


def attacker_account(attacker: subprocess.Popen) -> tuple[list[dict[str, Any]], str | None]:
    """Stop the attacker if it still runs; the events it printed (one JSON object a line, other
    lines skipped) and its error: the message of its first ``failed`` event, else the end of its
    stderr, else None."""
    if attacker.poll() is None:
        attacker.send_signal(signal.SIGKILL)
    out, err = attacker.communicate()
    events = []
    for line in out.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    failed = [e for e in events if e.get("event") == "failed"]
    return events, (failed[0].get("message") if failed else None) or (err.strip()[-300:] or None)


class NetExperiment:
    """One run of :class:`Config`; :meth:`run` returns its :class:`NetResult`."""

    def __init__(self, config: Config, faults: list[Fault] | None = None, console: Any = None) -> None:
        self.config = config
        self.faults = faults or []
        self.console = console
        self.run_id = runs.new_run_id()
        self.state = runs.RunState(self.run_id)
        hub = config.attack is not None and config.attack.kind in STREAM_ATTACKS
        #: The leader CONNECTOR's port: drawn per run (the relay counts its flow).
        self.connector_port = connector_port()
        self.net = EmulatedNetwork(
            config.topology,
            self.run_id,
            state=self.state,
            hub=hub,
            seed=config.seed,
            watch_port=self.connector_port,
            netem=config.netem,
        )
        self.agents: Agents | SshAgents | None = None
        #: The variant hosts are machines reached over SSH (all of them, or none).
        self.machines = {h: a for h, a in config.topology.machines().items() if h in config.variant_hosts}
        #: Processes started on this machine outside the emulated network (with machines).
        self._local: list[subprocess.Popen] = []
        self.marker = Path(tempfile.gettempdir()) / f"dmvx{self.run_id}-harmful"
        #: ``record``: where each monitor writes its variant's part of the trace.
        self.trace_dir: Path | None = None
        self.result = NetResult(config, self.run_id, self.net.delay_mechanism)

    def _note(self, text: str) -> None:
        if self.console is not None:
            self.console.print(f"dmvx real: {text}", markup=False, highlight=False)

    def run(self) -> NetResult:
        started = time.monotonic()
        runs.reap_stale()
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _terminate)
        completed = False
        try:
            if self.config.record is not None:
                self.trace_dir = Path(tempfile.mkdtemp(prefix=f"{runs.prefix(self.run_id)}-trace-"))
            if self.machines:
                # The variants are machines on their own network, the client
                # runs here: there is nothing to emulate.
                self._note(f"starting the agents on {', '.join(self.machines)} over SSH, run {self.run_id}")
            else:
                self._note(
                    f"building {self.config.topology.name} ({self.net.delay_mechanism} link delay), run {self.run_id}"
                )
                self.net.start()
            leader, follower = self.config.variant_hosts[0], self.config.variant_hosts[1]
            if self.config.measure_rtt and not self.machines:
                samples = rtt.connector_rtt(self.net, leader, follower, samples=10)
                self.result.rtt = {k: round(v, 6) for k, v in rtt.summary(samples).items()}
            builds = self._builds()
            if self.config.native:
                self._note("native run")
                self.result.native = self._native_on_machine(builds[0]) if self.machines else self._native(builds[0])
            self._note("run under the monitors")
            self._mvx(builds)
            completed = True
        finally:
            # A second Ctrl-C must not cut the cleanup short: the signals wait
            # until it is done (and then interrupt, if they came).
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            try:
                if self.agents is not None:
                    # A served program's run can be long: its CONNECTORs'
                    # link logs take longer to summarise.
                    self.agents.stop(
                        **({"connector_exit": SERVED_SUMMARY_WAIT} if self.config.served else {}),
                        monitor_exit=self.config.stall_timeout + RECORD_MONITOR_EXIT
                        if self.trace_dir and completed
                        else 0.0,
                    )
                    if self.trace_dir is not None and completed:
                        self._save_trace()
                    if isinstance(self.agents, SshAgents) and self.result.harmful_ran is not None:
                        self.result.harmful_ran = self.result.harmful_ran or self.agents.harmful
                for process in self._local:
                    if process.poll() is None:
                        process.kill()
                    process.wait()
            finally:
                try:
                    self.net.stop()
                    self.result.pids = sorted(self.state.pids)
                    runs.clean(self.run_id, self.state.pids)
                    self.marker.unlink(missing_ok=True)
                    if self.trace_dir is not None:
                        shutil.rmtree(self.trace_dir, ignore_errors=True)
                    self.result.elapsed_s = time.monotonic() - started
                finally:
                    signal.signal(signal.SIGTERM, previous)
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self._summarise()
        return self.result

    # -- pieces ---------------------------------------------------------------------

    def _builds(self) -> list[str]:
        """The server build of each variant: the attacked one (the leader if
        none) in layout 0, the others in layout 1 -- diversified variants."""
        if self.config.served is not None:
            return [self.config.served.argv[0]] * len(self.config.variant_hosts)
        target = self.config.attack.target if self.config.attack is not None else 0
        if not self.config.diversified:
            target = -1
        return [targets.net_server(0 if i == target else 1) for i in range(len(self.config.variant_hosts))]

    @property
    def fixed_layout(self) -> bool:
        """Whether the variants start with ADDR_NO_RANDOMIZE: never for the
        built-in server (the attack suite's builds say it, :mod:`realmode.vuln`)."""
        return False

    def _server_argv(self, binary: str, requests: int) -> list[str]:
        workload = self.config.workload
        if self.config.served is not None:
            return [binary, *self.config.served.argv[1:]]
        return [
            *self.config.launcher,
            binary,
            str(SERVER_PORT),
            str(requests),
            str(workload.body_bytes),
            f"touch {self.marker}",
        ]

    def _server_ip(self, host: str) -> str:
        """The address a variant host serves on: its emulated address, or the
        address a machine's SSH session reached it at."""
        if isinstance(self.agents, SshAgents):
            return self.agents.leader_address[0] if host == self.config.variant_hosts[0] else host
        return self.net.ip(host)

    def _popen(self, host: str, argv: list[str]) -> subprocess.Popen:
        """``argv`` on ``host``; with variants on machines, on this machine
        itself, on the network that reaches them (an emulated host reaches
        nothing outside its namespace)."""
        if not self.machines:
            return self.net.popen(host, argv, text=True)
        from realmode.net.children import die_with_parent

        with signals_deferred():  # a Ctrl-C in the at-fork hooks is not lost (realmode.deferral)
            process = subprocess.Popen(
                argv,
                env=self.net.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            self.state.add(process.pid)
            self._local.append(process)
        return process

    def _client(self, server_host: str, address: str | None = None) -> subprocess.Popen:
        workload = self.config.workload
        server = f"{address or self._server_ip(server_host)}:{SERVER_PORT}"
        argv = [sys.executable, "-m", "realmode.net.client", "--server", server]
        served = self.config.served
        if served is not None:
            argv += [
                "--ab",
                str(workload.requests),
                "--path",
                served.path,
                "--digests",
                str(served.digests),
                "--sample",
                str(served.sample),
            ]
        else:
            argv += ["--requests", str(workload.requests), "--pace", str(workload.pace)]
        return self._popen(self.config.client_host, argv)

    def _ssh_agents(
        self,
        argvs: list[list[str]],
        *,
        native: bool = False,
        shipped: Sequence[str] = (),
        no_randomize: bool = False,
        image_of: int | None = None,
    ) -> SshAgents:
        """The agents of the first ``len(argvs)`` variant hosts, machines;
        ``shipped``: more files the programs' arguments name, sent along
        (:class:`SshAgents` for the rest)."""
        config, served = self.config, self.config.served
        hosts = config.variant_hosts[: len(argvs)]
        return SshAgents(
            hosts,
            self.machines,
            {h: config.topology.hosts[h].dmvx or "dmvx" for h in self.machines},
            argvs,
            [Path(served.argv[0]).name if served is not None else config.program_name] * len(argvs),
            config.policy,
            self.run_id,
            self.state,
            binaries=config.topology.binaries,
            shipped=[*([str(served.tree)] if served is not None and served.tree is not None else []), *shipped],
            stall_timeout=config.stall_timeout,
            port=self.connector_port,
            summary=config.summary,
            marker=str(self.marker),
            native=native,
            no_randomize=no_randomize,
            image_of=image_of,
        )

    def _start_on_machines(self, argvs: list[list[str]], **options: Any) -> SshAgents:
        """The run's agents on its machines (:meth:`_ssh_agents` with
        ``options``), started; each machine's architecture kept for the
        report, even when one fails to start."""
        agents = self.agents = self._ssh_agents(argvs, **options)
        try:
            agents.start()
        finally:
            self.result.machines = dict(agents.machines)
        return agents

    def _native_on_machine(self, binary: str) -> dict[str, Any]:
        """The baseline on the leader's machine: its program alone, started
        and stopped by an agent there (no monitor, no key)."""
        native = self._ssh_agents([self._server_argv(binary, self.config.workload.requests)], native=True)
        try:
            native.start()
            client = self._client(self.config.variant_hosts[0], native.leader_address[0])
            try:
                out, err = client.communicate(timeout=self.config.timeout)
            except subprocess.TimeoutExpired:
                client.kill()
                raise
            if self.config.served is None:
                native.sessions[0].wait_for("ended", time.monotonic() + 5)  # the server exits after its requests
        finally:
            native.stop()
        if not out.strip():
            return {"requests": 0, "error": err.strip()[-300:] or "the client said nothing"}
        report: dict[str, Any] = json.loads(out)
        return report

    def _native(self, binary: str) -> dict[str, Any]:
        leader = self.config.variant_hosts[0]
        server = self.net.popen(
            leader,
            self._server_argv(binary, self.config.workload.requests),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        client = self._client(leader)
        try:
            out, _ = client.communicate(timeout=self.config.timeout)
            if self.config.served is not None:
                server.send_signal(signal.SIGTERM)  # it serves on; its client is done
            _, server_err = server.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            client.kill()
            raise
        report: dict[str, Any] = json.loads(out) if out.strip() else {"requests": 0, "error": "the client said nothing"}
        if report.get("error") and server_err.strip():
            report["error"] += f" (server: {server_err.strip()[-200:]})"
        return report

    def _mvx(self, builds: list[str]) -> None:
        config = self.config
        extra = 1 if config.attack is not None and config.attack.kind == "exploit" else 0
        argvs = [self._server_argv(b, config.workload.requests + extra) for b in builds]
        agents: Agents | SshAgents
        if self.machines:
            agents = self._start_on_machines(argvs, no_randomize=self.fixed_layout)
        else:
            agents = self.agents = Agents(
                self.net,
                config.variant_hosts,
                argvs,
                config.policy,
                stall_timeout=config.stall_timeout,
                port=self.connector_port,
                record=self._trace_parts() if self.trace_dir is not None else None,
                summary=config.summary,
                in_process=config.in_process,
            )
            agents.start()
        client = self._client(config.variant_hosts[0])
        attacker = self._start_attacker() if config.attack is not None else None
        client_failed_at: list[float] = []

        def watch() -> str | None:
            now = time.monotonic()
            outcome = agents.outcome
            if outcome.started_at is not None:
                for fault in self.faults:
                    if fault.fired_at is None and now - outcome.started_at >= fault.after:
                        fault.fired_at = now
                        fault.action(self)
            if client.poll() is not None and not client_failed_at:
                client_failed_at.append(now)
            if client_failed_at and client.returncode != 0:
                return f"the client failed (status {client.returncode})"
            if (
                client_failed_at
                and config.served is None
                and now - client_failed_at[0] > max(2.0, 2 * config.stall_timeout)
            ):
                # The client is done or gave up, yet the server runs on: it
                # waits for requests that will not come.
                return "the client stopped, the served program did not"
            return None

        if config.served is not None:
            agents.collect(
                timeout=config.timeout, tick=watch, finished=lambda: client.poll() == 0, settle=config.served.settle
            )
        else:
            agents.collect(timeout=config.timeout, tick=watch)
        try:
            out, err = client.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            client.kill()
            out, err = client.communicate()
        self.result.mvx_client = (
            json.loads(out) if out.strip() else {"requests": 0, "error": err.strip()[-300:] or "no report"}
        )
        if attacker is not None:
            self.result.attack = self._finish_attacker(attacker)
        self.result.outcome = agents.outcome
        if config.attack is not None and config.attack.kind == "exploit":
            self.result.harmful_ran = self.marker.exists()

    # -- the trace (``record``) ------------------------------------------------------

    def _trace_parts(self) -> list[str]:
        assert self.trace_dir is not None
        return [str(self.trace_dir / f"v{i}.jsonl") for i in range(len(self.config.variant_hosts))]

    def _save_trace(self) -> None:
        """Join the monitors' parts into ``config.record`` -- only if the run
        came to an end (a verdict included: its trace replays to the same
        verdict in sim) and every part is whole. A failed run leaves no file
        that could pass for its trace; ``result.trace`` says why."""
        config, agents, outcome = self.config, self.agents, self.result.outcome
        assert config.record is not None and agents is not None
        reason = None
        if outcome is None or outcome.error is not None or outcome.unsupported is not None:
            reason = f"the run failed ({(outcome and (outcome.error or outcome.unsupported)) or 'no outcome'})"
        else:
            cut = [a.index for a in agents.variants if a.monitor_status is None or not os.WIFEXITED(a.monitor_status)]
            if cut:
                reason = f"the monitor of {variant_name(cut[0])} was killed before it closed its part of the trace"
        if reason is not None:
            self.result.trace = {"path": None, "reason": reason}
            return
        assert outcome is not None  # reason says so otherwise
        # A served program never exits: its run was stopped from outside,
        # when a follower may still have been a few calls behind the leader.
        trim = config.served is not None and outcome.verdict is None
        variants = [
            {"arch": (elf_arch(path) or Arch.X86_64).value, "host": agent.host, "program": agent.argv}
            for agent, path in zip(agents.variants, agents.paths)
        ]
        try:
            counts = record_mod.join(
                config.record,
                self._trace_parts(),
                variants,
                trim=trim,
                policy=config.policy.name,
                recorded="dmvx real",
                topology=config.topology.name,
                stall_timeout=config.stall_timeout,
            )
        except InputError as error:
            self.result.trace = {"path": None, "reason": error.message}
            return
        self.result.trace = {
            "path": str(config.record),
            "calls": {str(i): written for i, (written, _) in counts.items()},
            "dropped": {str(i): dropped for i, (_, dropped) in counts.items()},
        }

    def _start_attacker(self) -> subprocess.Popen:
        attack = self.config.attack
        assert attack is not None
        hosts = self.config.variant_hosts
        argv = [
            sys.executable,
            "-m",
            "realmode.net.attacker",
            attack.kind,
            "--wait",
            str(attack.wait),
            "--tries",
            str(attack.tries),
            "--timeout",
            str(self.config.timeout),
        ]
        if attack.kind == "exploit":
            argv += ["--server", f"{self._server_ip(hosts[0])}:{SERVER_PORT}"]
        else:
            if isinstance(self.agents, SshAgents):
                # This machine, on its interface towards the leader's machine:
                # it sees the machines' stream only if that interface does.
                leader, follower = self.agents.leader_address[0], self.agents.reached[hosts[1]]
                iface = route_interface(leader)
            else:
                leader, follower = self.net.ip(hosts[0]), self.net.ip(hosts[1])
                iface = self.net.host_intf(attack.source)
            argv += [
                "--iface",
                iface,
                "--leader",
                leader,
                "--follower",
                follower,
                "--port",
                str(self.connector_port),
                "--towards",
                attack.towards,
            ]
        return self._popen(attack.source, argv)

    def _finish_attacker(self, attacker: subprocess.Popen) -> dict[str, Any]:
        attack = self.config.attack
        assert attack is not None
        events, error = attacker_account(attacker)
        injected = [e for e in events if e.get("event") == "injected"]
        return {
            "kind": attack.kind,
            "source": attack.source,
            "towards": attack.towards,
            "injected": len(injected),
            "first_injection": injected[0]["time"] if injected else None,
            # A try that lost the race to a real segment is followed by
            # another 0.3 s later: the last one is the one that took.
            "last_injection": injected[-1]["time"] if injected else None,
            "events": events,
            "error": error,
        }

    def _summarise(self) -> None:
        agents = self.agents
        if agents is None:
            return
        result = self.result
        leader = agents.variants[0].connector_summary
        if leader:
            links = leader.get("links", {})
            messages = sum(c["messages_out"] + c["messages_in"] for c in links.values())
            heartbeats = sum(c["heartbeats_out"] + c["heartbeats_in"] for c in links.values())
            frame_bytes = sum(c["frame_bytes_out"] + c["frame_bytes_in"] for c in links.values())
            result.link = {
                "messages": messages + heartbeats,
                "heartbeats": heartbeats,
                "frame_bytes": frame_bytes,
                "per_follower": links,
            }
            result.lead = leader.get("lead", {})
        wire = self._wire_counts()
        if wire:
            result.link.update(wire)
        if self.config.summary:
            result.summary = CallSummary.of((a.index, a.stats) for a in agents.variants)
        result.variants = [
            {
                "variant": a.index,
                "host": a.host,
                "argv": a.argv,
                "status": a.status,
                "end": a.end,
                **callsummary.take(a.stats),
            }
            for a in agents.variants
        ]
        outcome = agents.outcome
        for fault in self.faults:
            if fault.fired_at is not None:
                result.faults.append(
                    {
                        "label": fault.label,
                        "after_s": fault.after,
                        "ended_after_s": round((outcome.ended_at or fault.fired_at) - fault.fired_at, 3),
                    }
                )

    def _wire_counts(self) -> dict[str, int]:
        """CONNECTOR-flow Ethernet frames and bytes the relay carried on the
        follower's access link (both directions), when a relay is in use."""
        counts = self.net.relay_counts
        follower = self.config.variant_hosts[1]
        frames = bytes_ = 0
        found = False
        for plan in self.net.links:
            if plan.relay_node is None or follower not in (plan.a, plan.b):
                continue
            for suffix in (">", "<"):
                entry = counts.get(f"{plan.a}-{plan.b}{suffix}")
                if entry:
                    found = True
                    frames += entry["flow_frames"]
                    bytes_ += entry["flow_bytes"]
            break
        return {"wire_frames": frames, "wire_bytes": bytes_} if found else {}


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM ends a run the way Ctrl-C does: through every ``finally``."""
    raise KeyboardInterrupt(f"signal {signum}")
