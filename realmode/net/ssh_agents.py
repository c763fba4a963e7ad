"""The agents of a run whose variant hosts are machines reached over SSH.

:class:`SshAgents` does for machines what :class:`realmode.net.agents.Agents`
does for emulated hosts, with the same methods: one ``ssh`` session per
variant host runs ``dmvx agent`` there (:mod:`realmode.net.remote_agent`,
which says how it is spoken to), and that session's stdout is the host's
report channel. A thread per session reads it and feeds the monitor's
reports into a pipe of this machine, which :func:`realmode.reports.collect`
reads as it reads a local monitor's -- so the rules of who decides a run are
the same. A session that ends before its monitor's end report is the loss of
that variant, named with its host and what ``ssh`` said.

The run key travels down each session's stdin, after the agent's
configuration: never on a command line, in an environment, in a file, or on
the network outside SSH. No pid of a machine is ever signalled here: the run
is decided by a ``kill`` line, ended by a ``stop`` line, and a session whose
stdin closes (this process gone, the session dropped) makes its agent kill
its whole tree. The ``ssh`` processes themselves are ours, die with this
process (``PR_SET_PDEATHSIG``) and are stopped by pid.

The program each host runs is chosen by the architecture its agent reports
(:func:`dmvx.binaries.choose_program`): a program built here is sent down
the session to a machine of this one's architecture, a system program is
run from the machine's own installation, and the topology's ``binaries``
names it for any other architecture.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dmvx import __version__
from dmvx.binaries import choose_program
from dmvx.errors import InputError
from dmvx.exitstatus import EnvironmentProblem
from dmvx.hostcheck import SshAddress, arch_of_machine
from dmvx.policy import Policy
from dmvx.syscalls import Arch
from dmvx.verdict import lost
from realmode import isolation, reports
from realmode.deferral import signals_deferred
from realmode.net import children, runs
from realmode.net.agents import VariantAgent, connector_port
from realmode.net.remote_agent import AgentConfig, config_message, policy_dict, ship
from realmode.orchestrator import IN_PROCESS_ENV, say_refused
from realmode.remote import ssh_argv
from realmode.reports import GRACE, Halted, Progress, RunReports, Started
from realmode.spawn import elf_arch

#: Seconds every agent gets to say hello (an SSH connection and a Python
#: start-up on the machine), and the leader to say where it listens.
START_TIMEOUT = 15.0
#: Seconds an agent gets, beyond what its stop asked, to say bye.
BYE_SLACK = 2.0
#: The environment of a variant on a machine: the same on every machine,
#: and nothing of this machine's own environment.
PLAIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class _Session:
    """One ``ssh`` session to one variant host, and what its agent said."""

    agent: VariantAgent
    address: SshAddress
    command: str
    process: subprocess.Popen[bytes]
    report_r: int
    report_w: int
    changed: threading.Condition = field(default_factory=threading.Condition)
    hello: dict[str, Any] | None = None
    listening: tuple[str, int] | None = None
    ready: bool = False
    #: Where the variant's program is mapped there (``image_of``), once said.
    image: tuple[int, int] | None = None
    bye: dict[str, Any] | None = None
    error: str | None = None
    started: bool = False  # the monitor's variant runs
    ended: bool = False  # the monitor's end report came
    eof: bool = False
    #: The report pipe's writing end is closed: the monitor there ended.
    closed: bool = False
    stderr: list[bytes] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def who(self) -> str:
        return f"host {self.agent.host} ({self.address})"

    def said(self) -> str:
        """The last line ``ssh`` (or the agent) wrote on stderr, if any."""
        lines = [line.strip() for line in b"".join(self.stderr).decode(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else ""

    @property
    def begun(self) -> bool:
        """The variant runs, or its monitor already ended it."""
        return self.started or self.ended

    def close_reports(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.report_w)

    def send(self, *parts: bytes | bytearray) -> bool:
        """Write ``parts`` down the session's stdin, each as it is (the run
        key goes from its wipeable buffer, never copied into a new bytes)."""
        stdin = self.process.stdin
        if stdin is None or stdin.closed:
            return False
        try:
            for part in parts:
                stdin.write(part)
            stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False

    def wait_for(self, what: str, until: float) -> bool:
        """Wait until the agent has said ``what`` (a field of this session that
        is set then: hello, listening, ready, begun, bye), the session ends,
        or ``until`` (monotonic) passes; whether it was said."""
        with self.changed:
            while not self.has_said(what) and not self.eof:
                remaining = until - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return self.has_said(what)

    def has_said(self, what: str) -> bool:
        value = getattr(self, what)
        return value is not None and value is not False


class SshAgents:
    """The monitors and CONNECTORs of one MVX run on machines over SSH."""

    def __init__(
        self,
        hosts: list[str],
        addresses: Mapping[str, SshAddress],
        commands: Mapping[str, str],
        argvs: list[list[str]],
        names: list[str],
        policy: Policy,
        run_id: str,
        state: runs.RunState,
        *,
        binaries: Mapping[Arch, Mapping[str, str]] | None = None,
        shipped: Sequence[str] = (),
        stall_timeout: float = 2.0,
        port: int | None = None,
        summary: bool = False,
        marker: str | None = None,
        native: bool = False,
        no_randomize: bool = False,
        image_of: int | None = None,
        in_process: bool | None = None,
    ) -> None:
        if len(hosts) != len(argvs) or len(hosts) < (1 if native else 2):
            raise InputError("dmvx real: MVX needs at least two variants, one host each")
        #: The baseline: each program alone on its machine, no monitor, no key.
        self.native = native
        self.hosts = hosts
        self.addresses = addresses
        self.commands = commands
        self.names = names
        self.policy = policy
        self.run_id = run_id
        self.state = state
        self.binaries = binaries or {}
        self.extra_shipped = list(shipped)
        self.stall_timeout = stall_timeout
        self.port = port if port is not None else connector_port()
        self.summary = summary
        self.marker = marker
        #: The variants start with ADDR_NO_RANDOMIZE (set by each agent).
        self.no_randomize = no_randomize
        #: The variant whose agent says where its program is mapped (:meth:`image`).
        self.image_of = image_of
        #: The in-process path as in dmvx run (None: DMVX_IN_PROCESS=on asks
        #: for it); each agent preloads its machine's own library.
        self.in_process = os.environ.get(IN_PROCESS_ENV) == "on" if in_process is None else in_process
        #: Variants whose machine refused its library, and why (each agent says).
        self.refused: dict[int, str] = {}
        self.variants = [VariantAgent(i, host, list(argv)) for i, (host, argv) in enumerate(zip(hosts, argvs))]
        #: The program each variant runs, as chosen for its host (a path on that machine).
        self.paths = [argv[0] for argv in argvs]
        #: Each host's architecture as its agent reported it (``uname -m``).
        self.machines: dict[str, str] = {}
        #: Each host's address as its SSH session reached it (its agent says):
        #: where its CONNECTOR's traffic comes from on the machines' network.
        self.reached: dict[str, str] = {}
        self.outcome = RunReports()
        self.sessions: list[_Session] = []
        #: Whether an agent found the exploit's marker (the harmful call ran there).
        self.harmful = False
        self._leader: tuple[str, int] | None = None
        self._stopped = False
        #: The run's public id in the CONNECTORs' hellos (not a secret).
        self.hello_id = secrets.token_hex(8)

    @property
    def leader_address(self) -> tuple[str, int]:
        """Where the leader's CONNECTOR listens, as its agent said: the
        address its machine was reached at."""
        if self._leader is None:
            raise RuntimeError("the leader's agent has not said where it listens yet")
        return self._leader

    # -- start --------------------------------------------------------------------

    def start(self) -> None:
        for agent in self.variants:
            self.sessions.append(self._open(agent))
        until = time.monotonic() + START_TIMEOUT
        for session in self.sessions:
            if not session.wait_for("hello", until):
                raise EnvironmentProblem(self._failed(session, "the agent did not start"))
            hello = session.hello or {}
            if hello.get("version") != __version__:
                raise EnvironmentProblem(
                    f"dmvx real: {session.who}: the agent there is dmvx {hello.get('version')}, this one is "
                    f"{__version__}; install dmvx {__version__} there"
                )
            self.machines[session.agent.host] = str(hello.get("machine"))
            self.reached[session.agent.host] = str(hello.get("address"))
        configs = [self._config(session) for session in self.sessions]
        if self.native:
            for session, config in zip(self.sessions, configs):
                if not session.send(config_message(config)):
                    raise EnvironmentProblem(self._failed(session, "the session ended before the agent had its work"))
            self._leader = self._go(until)
            return
        key = isolation.RunKey()
        try:
            self._send(self.sessions[0], configs[0], key)
            leader = self.sessions[0]
            if not leader.wait_for("listening", until):
                raise EnvironmentProblem(self._failed(leader, "the leader's CONNECTOR did not start listening"))
            self._leader = leader.listening
            for session, config in zip(self.sessions[1:], configs[1:]):
                config.leader = self._leader
                self._send(session, config, key)
        finally:
            key.wipe()  # every agent has its copy; nobody here needs one
        self._go(until)
        say_refused(self.refused)

    def _go(self, until: float) -> tuple[str, int] | None:
        """Every agent ready, then told ``go``, then its variant running; where
        the first one listens."""
        for session in self.sessions:
            if not session.wait_for("ready", until):
                raise EnvironmentProblem(self._failed(session, "the agent did not get ready"))
        for session in self.sessions:
            session.send(b"go\n")
        # The client and attacker start once every variant runs: a machine's
        # agent takes longer to get there than a fork on this one.
        for session in self.sessions:
            session.wait_for("begun", until)
            if session.eof and not session.started:
                raise EnvironmentProblem(self._failed(session, "the agent ended before its variant started"))
        return self.sessions[0].listening

    def _open(self, agent: VariantAgent) -> _Session:
        address = self.addresses[agent.host]
        command = self.commands.get(agent.host) or "dmvx"
        with signals_deferred():  # a Ctrl-C in the at-fork hooks is not lost (realmode.deferral)
            process = subprocess.Popen(
                ssh_argv(address, [command, "agent"]),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Ctrl-C is for this process, which ends the run and the sessions.
                start_new_session=True,
                preexec_fn=children.die_with_parent,
            )
            self.state.add(process.pid)
        report_r, report_w = os.pipe()
        session = _Session(agent, address, command, process, report_r, report_w)
        for target in (self._read_stdout, self._read_stderr):
            thread = threading.Thread(target=target, args=(session,), daemon=True)
            thread.start()
            session.threads.append(thread)
        return session

    def _config(self, session: _Session) -> AgentConfig:
        agent = session.agent
        local = self.paths[agent.index]
        machine = self.machines[agent.host]
        arch = arch_of_machine(machine)
        if arch is None:
            raise EnvironmentProblem(f"dmvx real: {session.who}: architecture {machine} is not one dmvx knows")
        choice = choose_program(agent.host, self.names[agent.index], local, arch, _local_arch(), self.binaries)
        argv = [choice.path, *agent.argv[1:]]
        agent.argv = argv
        self.paths[agent.index] = choice.path
        shipped = [ship(local)] if choice.ship else []
        shipped += [ship(path) for path in self.extra_shipped]
        return AgentConfig(
            version=__version__,
            run_id=self.run_id,
            hello_id=self.hello_id,
            index=agent.index,
            n_variants=len(self.variants),
            policy=policy_dict(self.policy),
            program=choice.path,
            argv=argv,
            env={"PATH": PLAIN_PATH, "LC_ALL": "C", runs.ENV: self.run_id},
            stall_timeout=self.stall_timeout,
            compare_from=self.compare_from,
            port=self.port,
            summary=self.summary,
            marker=self.marker,
            shipped=shipped,
            native=self.native,
            no_randomize=self.no_randomize,
            report_image=agent.index == self.image_of,
            in_process=self.in_process and not self.native,
        )

    @property
    def compare_from(self) -> str:
        """From the entry point when the variants' architectures differ (their
        loaders differ), else from execve -- as :func:`realmode.spawn.default_compare_from`."""
        arches = set()
        for agent in self.variants:
            reported = arch_of_machine(self.machines.get(agent.host, "")) or Arch.X86_64
            built = elf_arch(self.paths[agent.index]) if os.path.exists(self.paths[agent.index]) else None
            arches.add(built if built is not None and reported is _local_arch() else reported)
        return "entry" if len(arches) > 1 else "exec"

    def _send(self, session: _Session, config: AgentConfig, key: isolation.RunKey) -> None:
        if not session.send(config_message(config), key.secret):
            raise EnvironmentProblem(self._failed(session, "the session ended before the agent had its configuration"))

    def _failed(self, session: _Session, what: str) -> str:
        if session.error:
            return f"dmvx real: {session.who}: {session.error}"
        session.wait_for("bye", time.monotonic() + 0.3)  # let ssh's last words arrive
        said = session.said()
        return f"dmvx real: {session.who}: {what}" + (f": {said}" if said else f" within {START_TIMEOUT:g} s")

    # -- the sessions' output -------------------------------------------------------

    def _read_stdout(self, session: _Session) -> None:
        _signals_to_main_thread()
        stdout = session.process.stdout
        assert stdout is not None
        for raw in stdout:
            try:
                message = json.loads(raw)
                event = message["event"]
            except (ValueError, KeyError, TypeError):
                continue  # not the agent's (a login banner, say)
            with session.changed:
                if event == "hello":
                    session.hello = message
                elif event == "ready":
                    session.ready = True
                    if message.get("refused"):
                        self.refused[session.agent.index] = f"{message['refused']} ({session.who})"
                elif event == "listening":
                    host, port = message["address"]
                    session.listening = (str(host), int(port))
                elif event == "report":
                    line = str(message["line"])
                    report = reports.decode(line.encode())
                    if isinstance(report, Started):
                        session.started = True
                    elif not isinstance(report, Progress):
                        session.ended = True
                    _write(session.report_w, line.encode() + b"\n")
                elif event == "image":
                    low, high = message["range"]
                    session.image = (int(low), int(high))
                elif event == "summary":
                    session.agent.connector_summary = message.get("summary") or {}
                elif event == "native-started":
                    session.started = True
                elif event == "native-exited":
                    session.ended = True
                    session.agent.status = int(message.get("status", 0))
                elif event == "monitor-ended":
                    # The monitor's pipe closed on its machine: closed here
                    # too, the collector judges it as a local monitor's.
                    session.close_reports()
                elif event == "bye":
                    session.bye = message
                elif event == "error":
                    session.error = str(message.get("message"))
                session.changed.notify_all()
        # The session is over. Its stderr says why, if it was not our doing.
        for thread in session.threads[1:]:
            thread.join(timeout=0.3)
        with session.changed:
            if not session.ended and not session.closed and session.bye is None:
                said = session.error or session.said() or f"ssh ended with status {session.process.poll()}"
                died = lost(session.agent.index, f"{session.who}: the SSH session ended: {said}")
                _write(session.report_w, reports.encode(Halted(died)))
            session.close_reports()
            session.eof = True
            session.changed.notify_all()

    @staticmethod
    def _read_stderr(session: _Session) -> None:
        _signals_to_main_thread()
        stderr = session.process.stderr
        assert stderr is not None
        for line in stderr:
            session.stderr.append(line)

    # -- the run ----------------------------------------------------------------------

    def collect(
        self,
        timeout: float | None = None,
        tick: Callable[[], str | None] | None = None,
        finished: Callable[[], bool] | None = None,
        settle: float = GRACE,
    ) -> RunReports:
        """As :meth:`realmode.net.agents.Agents.collect`; a decided run kills
        the variants with a ``kill`` line to every agent."""
        pipes = {s.report_r: s.agent.index for s in self.sessions}
        reports.collect(
            pipes,
            self.variants,
            self.outcome,
            timeout=timeout,
            tick=tick,
            finished=finished,
            settle=settle,
            kill=self._kill_variants,
        )
        for index, why in self.refused.items():
            self.variants[index].stats.setdefault("in_process", {"path": "ptrace"})["why"] = why
        return self.outcome

    def image(self, index: int) -> tuple[int, int] | None:
        """Where variant ``index``'s program is mapped on its machine, as its
        agent said (``image_of``), or None until it has: the exploit crafted
        for that variant needs it, and its pid is not one of this machine."""
        return self.sessions[index].image if index < len(self.sessions) else None

    def _kill_variants(self) -> None:
        for session in self.sessions:
            session.send(b"kill\n")

    def kill_agent(self, index: int, which: str = "session") -> None:
        """Drop one host's SSH session: SIGKILL its ``ssh`` client (a fault
        injected by tests; the agent there then ends its tree)."""
        runs.kill(self.sessions[index].process.pid)

    def stop(self, connector_exit: float = 0.6, monitor_exit: float = 0.0) -> None:
        """End every agent: each told to stop (its variant killed, its monitor
        given ``monitor_exit``, its CONNECTOR ``connector_exit`` to report),
        then its session closed -- which ends whatever the agent still has --
        and the ``ssh`` processes reaped (killed if they linger)."""
        if self._stopped:
            return
        self._stopped = True
        for session in self.sessions:
            session.send(f"stop {monitor_exit} {connector_exit}\n".encode())
        until = time.monotonic() + monitor_exit + connector_exit + BYE_SLACK
        for session in self.sessions:
            session.wait_for("bye", until)
            if session.bye and session.bye.get("harmful"):
                self.harmful = True
        for session in self.sessions:
            stdin = session.process.stdin
            if stdin is not None:
                try:
                    stdin.close()
                except OSError:
                    pass
        until = time.monotonic() + BYE_SLACK
        for session in self.sessions:
            try:
                session.process.wait(timeout=max(0.0, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                runs.kill(session.process.pid)
                session.process.wait()
            for thread in session.threads:
                thread.join(timeout=1.0)
            os.close(session.report_r)

    @property
    def pids(self) -> list[int]:
        """Every process of this machine the agents are: the ``ssh`` clients."""
        return [s.process.pid for s in self.sessions]


def _signals_to_main_thread() -> None:
    """A reader thread takes no Ctrl-C or SIGTERM: the main thread blocks
    them while it cleans up, and they must wait for it there."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _write(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass  # the collector is gone: the run is over


def _local_arch() -> Arch:
    return arch_of_machine(os.uname().machine) or Arch.X86_64
