"""``dmvx agent``: one variant's agents on a machine reached over SSH.

The orchestrator (:mod:`realmode.net.ssh_agents`) runs ``dmvx agent`` on
each variant machine with the system's ``ssh`` and speaks to it on the
session's stdin and stdout only -- nothing secret on a command line or in
an environment, nothing on the network but the SSH session itself:

1. the agent says ``hello`` (its dmvx version, ``uname -m``: the
   architecture the orchestrator picks this host's program by, and the
   address the session reached it at);
2. it reads its configuration -- a length line, then that many bytes of
   JSON (:class:`AgentConfig`) -- and then the run key, :data:`KEY_SIZE` raw
   bytes read straight into a buffer that is wiped once the CONNECTOR is
   forked (:meth:`realmode.isolation.RunKey.received`);
3. it writes the files it was sent (the program built on the orchestrator's
   machine, a served program's tree) into a directory of the run, says
   ``ready`` and, once told ``go`` (when every machine is ready), forks the
   CONNECTOR and the monitor as :mod:`realmode.net.agents` does for an
   emulated host (:func:`realmode.spawn.spawn_variant`), the leader's
   CONNECTOR listening on the address the session reached (``listening``);
4. it relays the monitor's reports (``report``, each the line of
   :mod:`realmode.reports`; ``monitor-ended`` when the monitor's pipe
   closes; ``image``, where the variant's program is mapped, when asked)
   and obeys control lines: ``kill`` (the run is
   decided: kill the variant, let the monitor report), ``stop MONITOR_EXIT
   CONNECTOR_EXIT`` (the orderly end of :meth:`realmode.net.agents.Agents.stop`:
   the CONNECTOR's ``summary``, then ``bye``).

Its stdin closing -- the session dropped, the orchestrator gone -- ends
everything at once: the agent kills its own tree, removes its directory and
exits. The orchestrator never signals a pid of this machine; the agent's
children die with it (``PR_SET_PDEATHSIG``) and the variant with its monitor
(``PTRACE_O_EXITKILL``), so even an agent killed outright leaves nothing.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dmvx import __version__
from dmvx.errors import InputError
from dmvx.exitstatus import EnvironmentProblem
from dmvx.policy import Policy
from realmode import isolation, seccomp
from realmode.net import children, linklog, runs

#: Bytes of the run key after the configuration.
KEY_SIZE = isolation.RunKey.SIZE
#: Longest configuration accepted (a served program's tree travels in it).
MAX_CONFIG = 64 << 20


@dataclass
class Shipped:
    """A file or directory of the orchestrator's machine sent to the agent:
    written under the run's directory there, and every mention of
    ``local`` in the program, its arguments and its text files replaced by
    where it was written."""

    local: str
    #: Relative path -> (base64 bytes, mode). One entry named "" for a file.
    files: dict[str, tuple[str, int]]


@dataclass
class AgentConfig:
    """What one agent is told to run."""

    version: str
    run_id: str
    hello_id: str
    index: int
    n_variants: int
    policy: dict[str, Any]
    program: str
    argv: list[str]
    env: dict[str, str]
    stall_timeout: float
    compare_from: str
    port: int
    leader: tuple[str, int] | None = None
    summary: bool = False
    marker: str | None = None
    shipped: list[Shipped] = field(default_factory=list)
    #: Run the program natively, unmonitored (the baseline): no CONNECTOR,
    #: and so no run key follows the configuration.
    native: bool = False
    #: Start the variant with ADDR_NO_RANDOMIZE (an attack-suite setting with
    #: ``aslr: false``): set here, where the monitor forks it.
    no_randomize: bool = False
    #: Say where the variant's program is mapped (``image``) once it is: an
    #: exploit crafted for this variant needs its load address, and its pid
    #: is not one the orchestrator's machine can read.
    report_image: bool = False
    #: Take the in-process path where this machine's library and the policy
    #: allow (as ``dmvx run --in-process on``): the library is the one of
    #: the machine's own dmvx checkout, built by its ``./run setup``.
    in_process: bool = False

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> AgentConfig:
        doc = json.loads(data)
        doc["shipped"] = [Shipped(s["local"], {k: tuple(v) for k, v in s["files"].items()}) for s in doc["shipped"]]
        if doc.get("leader") is not None:
            doc["leader"] = tuple(doc["leader"])
        return cls(**doc)


def policy_dict(policy: Policy) -> dict[str, Any]:
    """``policy`` as :func:`policy_of` reads it back."""
    return {**policy.to_dict(), "ack_every": policy.ack_every}


def policy_of(doc: dict[str, Any]) -> Policy:
    knobs = dict(doc)
    return Policy.preset(knobs.pop("preset"), **knobs)


def ship(path: str) -> Shipped:
    """A file or a directory tree of this machine, ready to send."""
    if os.path.isdir(path):
        files = {}
        for root, _, names in os.walk(path):
            for name in names:
                full = os.path.join(root, name)
                files[os.path.relpath(full, path)] = _encoded(full)
        return Shipped(path, files)
    return Shipped(path, {"": _encoded(path)})


def _encoded(path: str) -> tuple[str, int]:
    return base64.b64encode(Path(path).read_bytes()).decode(), os.stat(path).st_mode & 0o777


def config_message(config: AgentConfig) -> bytes:
    """The configuration as it goes down the session (the key follows it)."""
    data = config.to_bytes()
    return f"{len(data)}\n".encode() + data


# -- the agent's side ---------------------------------------------------------


class _Out:
    """The session's stdout: one JSON object a line. A write that fails (the
    session is gone) ends the agent as a closed stdin does."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def say(self, event: str, **data: Any) -> None:
        line = (json.dumps({"event": event, **data}) + "\n").encode()
        try:
            while line:
                line = line[os.write(self.fd, line) :]
        except OSError:
            raise _Gone from None


class _Gone(Exception):
    """The session ended: kill everything and leave."""


def _read_exactly(fd: int, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise _Gone
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _read_line(fd: int, limit: int = 32) -> bytes:
    out = b""
    while not out.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            raise _Gone
        out += byte
        if len(out) > limit:
            raise ValueError("a configuration length line too long")
    return out.strip()


def _unpack(config: AgentConfig, directory: Path) -> Callable[[str], str]:
    """Write the shipped files under ``directory``; the function that turns
    a path of the orchestrator's machine into where it now is here."""
    moved: dict[str, str] = {}
    for number, shipped in enumerate(config.shipped):
        base = directory / str(number)
        for relative, (data, mode) in shipped.files.items():
            target = base / (relative or Path(shipped.local).name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(data))
            target.chmod(mode)
        moved[shipped.local] = str(base if "" not in shipped.files else base / Path(shipped.local).name)

    def here(text: str) -> str:
        for local in sorted(moved, key=len, reverse=True):
            text = text.replace(local, moved[local])
        return text

    for path in directory.rglob("*"):
        if path.is_file():
            try:
                text = path.read_text()
            except (UnicodeDecodeError, ValueError):
                continue  # a binary: nothing to rewrite
            new = here(text)
            if new != text:
                path.write_text(new)
    return here


def _listen_address() -> str:
    """The address the SSH session reached this machine at: the one the
    orchestrator -- and so the followers, on the same network -- reach it by."""
    words = os.environ.get("SSH_CONNECTION", "").split()
    return words[2] if len(words) == 4 else "0.0.0.0"


def main() -> int:
    """``dmvx agent``: the module's docstring. Its exit status: 0, or 4 when
    it could not start (the reason said as an ``error`` line first)."""
    # The session's ends are the agent's alone: its children get /dev/null.
    inp, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    out = _Out(out_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a stray Ctrl-C on the session is not ours to take
    agent = _Agent(inp, out)
    try:
        out.say("hello", version=__version__, machine=os.uname().machine, address=_listen_address())
        return agent.run()
    except _Gone:
        return 0
    finally:
        agent.clean()


class _Agent:
    def __init__(self, inp: int, out: _Out) -> None:
        self.inp, self.out = inp, out
        self.directory: Path | None = None
        self.children: list[int] = []
        self.monitor_pid: int | None = None
        self.connector_pid: int | None = None
        self.variant: tuple[int, int | None] | None = None  # pid, start time
        self.marker: str | None = None
        #: With ``report_image``: the program whose mapping in the variant is
        #: still to be reported.
        self.image_of: str | None = None

    def run(self) -> int:
        first = _read_line(self.inp)
        if first.startswith(b"stop"):
            self.out.say("bye", harmful=False)  # the run ended before it got here
            return 0
        length = int(first)
        if not 0 < length <= MAX_CONFIG:
            raise ValueError(f"a configuration of {length} bytes")
        config = AgentConfig.from_bytes(_read_exactly(self.inp, length))
        if config.native:
            return self._checked(config, lambda: self._native(config))
        key = isolation.RunKey.received(self.inp)
        try:
            return self._checked(config, lambda: self._serve(config, key))
        finally:
            key.wipe()

    def _checked(self, config: AgentConfig, body: Callable[[], int]) -> int:
        if config.version != __version__:
            self.out.say("error", message=f"dmvx {__version__} here, the orchestrator's is {config.version}")
            return 4
        try:
            return body()
        except (InputError, EnvironmentProblem, OSError) as problem:
            # What this machine lacks (the program, a free port): one line
            # for the launcher, which names the host.
            self.out.say("error", message=str(problem))
            return 4

    def _prepare(self, config: AgentConfig) -> tuple[str, list[str]]:
        """The run's directory made and filled; the program and its arguments here."""
        from realmode.spawn import resolve

        # The same path on every machine: a program's arguments name files
        # in it, and the variants' calls must agree.
        directory = Path(tempfile.gettempdir()) / f"{runs.prefix(config.run_id)}-agent"
        directory.mkdir(mode=0o700)
        self.directory = directory
        here = _unpack(config, directory)
        self.marker = config.marker
        return resolve(here(config.program)), [here(word) for word in config.argv]

    def _native(self, config: AgentConfig) -> int:
        """The baseline: the program alone, unmonitored, until told to stop."""
        program, argv = self._prepare(config)
        self.out.say("listening", address=[_listen_address(), config.port])
        self.out.say("ready")
        if _read_line(self.inp) != b"go":
            self.out.say("bye", harmful=False)
            return 0
        process = subprocess.Popen(
            argv,
            executable=program,
            env=config.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=children.die_with_parent,
        )
        self.children.append(process.pid)
        self.out.say("native-started", pid=process.pid)
        told = False
        while True:
            if not told and process.poll() is not None:
                told = True
                self.out.say("native-exited", status=process.returncode)
            readable, _, _ = select.select([self.inp], [], [], 0.05)
            if not readable:
                continue
            line = _read_line(self.inp)
            if line == b"kill" or line.startswith(b"stop"):
                if process.poll() is None:
                    process.kill()
                process.wait()
            if line.startswith(b"stop"):
                self.out.say("bye", harmful=bool(self.marker and os.path.exists(self.marker)))
                return 0

    def _serve(self, config: AgentConfig, key: isolation.RunKey) -> int:
        from dmvx.syscalls import Arch
        from realmode.connector import BACKLOG, run_connector
        from realmode.inproc import layout, tables
        from realmode.orchestrator import inproc_choices
        from realmode.spawn import personality, spawn_variant
        from realmode.tracer import Launch

        program, argv = self._prepare(config)
        policy = policy_of(config.policy)
        index, n = config.index, config.n_variants
        listener = None
        if index == 0:
            address = (_listen_address(), config.port)
            listener = socket.create_server(address, backlog=max(n, BACKLOG))
            self.out.say("listening", address=list(address))
        summary_r, summary_w = os.pipe()
        stall = config.stall_timeout

        def fork(role: str, body: Callable[[], None], keep: set[int]) -> int:
            def inside() -> None:
                if role == "monitor":
                    key.wipe()  # the key lives only where it is used
                body()

            pid = children.fork(inside, keep=keep)
            self.children.append(pid)
            return pid

        def connector(con_end: socket.socket) -> None:
            logged = linklog.LoggedLink(con_end)
            signal.signal(signal.SIGTERM, _leave)
            try:
                run_connector(index, n, key.secret, config.hello_id, logged, listener, config.leader, silence=stall)
            except _Leave:
                pass
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.write(summary_w, (json.dumps(linklog.summarise(logged.log, index, n)) + "\n").encode())

        # The in-process path, decided here: the library is this machine's
        # (its checkout's build, for its program's ELF class), and a refused
        # one is said to the orchestrator, which prints it as dmvx run does.
        choice = inproc_choices(policy, [program])[0] if config.in_process else None
        preloading = choice is not None and choice.path is not None
        launch = Launch(
            index=index,
            n_variants=n,
            policy=policy,
            path=program,
            argv=argv,
            env=config.env,
            filter=(
                # a follower's lets its library's placeholder dup3 through (tables.FOLLOWER_PLACES)
                seccomp.build_filter(policy, tables.filter_names(policy, follower=index != 0), layout.SITES)
                if preloading
                else seccomp.build_filter(policy)
            ),
            stall_timeout=stall,
            compare_from=config.compare_from,
            summary=config.summary,
            preload=str(choice.path) if preloading else None,  # type: ignore[union-attr]
            preload_arch=choice.arch if choice is not None else Arch.X86_64,
        )
        # Every machine gets this far before any variant starts: a leader
        # that ran ahead would wait for a follower still unpacking, and take
        # the wait for a stall.
        self.out.say("ready", **({"refused": choice.problem} if choice is not None and choice.problem else {}))
        if _read_line(self.inp) != b"go":  # the run ended before it began
            self.out.say("bye", harmful=False)
            return 0
        self.image_of = program if config.report_image else None
        try:
            with personality(config.no_randomize):  # the monitor forks the variant: it inherits it
                spawned = spawn_variant(
                    launch, fork, connector, [summary_w, *([listener.fileno()] if listener else [])]
                )
        finally:
            os.close(summary_w)
            key.wipe()  # the CONNECTOR has its copy
            if listener is not None:
                listener.close()
        self.monitor_pid, self.connector_pid = spawned.monitor_pid, spawned.connector_pid
        return self._relay(spawned.report_fd, summary_r)

    def _relay(self, report_fd: int, summary_fd: int) -> int:
        from realmode.reports import Started, decode

        buffers = {report_fd: b"", summary_fd: b"", self.inp: b""}
        open_fds = {report_fd, summary_fd, self.inp}
        stopping: tuple[float, float] | None = None
        while self.inp in open_fds:
            # While the variant's image is still to be reported, look every 10 ms.
            looking = self.image_of is not None and self.variant is not None
            readable, _, _ = select.select(list(open_fds), [], [], 0.01 if looking else None)
            if looking:
                self._report_image()
            for fd in readable:
                data = os.read(fd, 65536)
                if not data:
                    open_fds.discard(fd)
                    if fd == self.inp:
                        raise _Gone
                    if fd == report_fd:
                        # As a monitor's pipe closing here: the launcher
                        # judges a monitor that ended without its end report.
                        self.out.say("monitor-ended")
                    continue
                buffers[fd] += data
                *lines, buffers[fd] = buffers[fd].split(b"\n")
                for line in lines:
                    if fd == report_fd:
                        report = decode(line)
                        if isinstance(report, Started):
                            self.variant = (report.pid, runs.start_time(report.pid))
                        self.out.say("report", line=line.decode())
                    elif fd == summary_fd:
                        self.out.say("summary", summary=json.loads(line))
                    else:
                        words = line.decode().split()
                        if words == ["kill"]:
                            self._kill_variant()
                        elif words and words[0] == "stop":
                            stopping = (float(words[1]), float(words[2]))
            if stopping is not None:
                self._stop(report_fd, summary_fd, open_fds, buffers, *stopping)
                harmful = bool(self.marker and os.path.exists(self.marker))
                self.out.say("bye", harmful=harmful)
                return 0
        raise _Gone

    def _report_image(self) -> None:
        """``image``: where the variant's program is mapped, once it is."""
        from realmode.vuln.exploits import image_range

        assert self.image_of is not None and self.variant is not None
        try:
            low, high = image_range(self.variant[0], self.image_of)
        except (LookupError, OSError):
            if not runs.alive(*self.variant):
                self.image_of = None  # it ended before it mapped its program: nothing to say
            return  # not exec'd yet
        self.image_of = None
        self.out.say("image", range=[low, high])

    def _kill_variant(self) -> None:
        if self.variant is not None and runs.alive(*self.variant):
            try:
                os.kill(self.variant[0], signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _stop(
        self,
        report_fd: int,
        summary_fd: int,
        open_fds: set[int],
        buffers: dict[int, bytes],
        monitor_exit: float,
        connector_exit: float,
    ) -> None:
        """As :meth:`realmode.net.agents.Agents.stop` for one variant: the
        variant killed, the monitor given ``monitor_exit`` to end (its last
        reports relayed), then killed; the CONNECTOR, its monitor gone,
        leaves with its summary (told to, half-way through ``connector_exit``)."""
        from realmode.reports import decode

        self._kill_variant()

        def pump(until: float, fds: set[int]) -> None:
            while fds & open_fds and time.monotonic() < until:
                readable, _, _ = select.select(list(fds & open_fds), [], [], max(0.0, until - time.monotonic()))
                for fd in readable:
                    data = os.read(fd, 65536)
                    if not data:
                        open_fds.discard(fd)
                        if fd == report_fd:
                            self.out.say("monitor-ended")
                        continue
                    buffers[fd] += data
                    *lines, buffers[fd] = buffers[fd].split(b"\n")
                    for line in lines:
                        if fd == report_fd:
                            decode(line)
                            self.out.say("report", line=line.decode())
                        else:
                            self.out.say("summary", summary=json.loads(line))

        if monitor_exit > 0:
            pump(time.monotonic() + monitor_exit, {report_fd})
        if self.monitor_pid is not None:
            runs.kill(self.monitor_pid)
            runs.reap(self.monitor_pid)
            self.children.remove(self.monitor_pid)
            self.monitor_pid = None
        pump(time.monotonic() + connector_exit / 2, {summary_fd})
        if summary_fd in open_fds and self.connector_pid is not None:
            try:
                os.kill(self.connector_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            pump(time.monotonic() + connector_exit / 2, {summary_fd})

    def clean(self) -> None:
        """Everything this agent started, killed and reaped; its directory and
        the run's marker removed. The last thing the agent does, however it ends."""
        self._kill_variant()
        for pid in self.children:
            runs.kill(pid)
        for pid in self.children:
            runs.reap(pid)
        self.children.clear()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        if self.marker:
            try:
                os.unlink(self.marker)
            except OSError:
                pass


class _Leave(Exception):
    """Raised in a CONNECTOR by SIGTERM: stop serving, report, exit."""


def _leave(signum: int, frame: object) -> None:
    raise _Leave


if __name__ == "__main__":
    sys.exit(main())
