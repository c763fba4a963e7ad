"""Reaching the real machines of a topology with the system's ``ssh``.

dmvx does not invent a remote launcher: the user already reaches their
machines with OpenSSH, set up in ``~/.ssh/config`` with their keys and
agent, and every session here goes through the ``ssh`` command with exactly
that set-up. Options dmvx adds are the ones a program needs rather than a
person: ``BatchMode=yes`` (a password prompt or an unknown host key fails at
once instead of waiting for a person who is not there) and a connect
timeout. Whatever is sent to the machine goes down the session's stdin --
the probe's script here, a run's keys for the agents -- never on the
command line, where ``ps`` on either machine would show it.

:func:`probe` asks one machine what :mod:`dmvx.hostcheck` needs to judge it;
:func:`doctor` does that for every machine of a topology, in parallel (one
``ssh`` process each), within :data:`PROBE_TIMEOUT`.
"""

from __future__ import annotations

import os
import selectors
import shlex
import subprocess
import time
from collections.abc import Sequence

from dmvx import __version__
from dmvx.hostcheck import DoctorResult, HostFacts, SshAddress, judge
from dmvx.topology import Topology

#: Seconds one machine gets to answer the probe (connection included).
PROBE_TIMEOUT = 10.0
#: ``ssh -o ConnectTimeout``: seconds to set up the TCP connection.
CONNECT_TIMEOUT = 5
#: The environment variable naming an ssh client configuration to use
#: instead of ``~/.ssh/config`` (``ssh -F``): what the tests' stand-in
#: machines are reached with; a user rarely needs it.
SSH_CONFIG_ENV = "DMVX_SSH_CONFIG"

# Each fact on a line of its own, KEY=VALUE; a missing file or command
# leaves the value empty. "dmvx" is the command of the topology's 'dmvx:',
# substituted quoted. The clock is read last, once the session is up and
# the rest is said, and only when a newline comes back from this side: the
# reading then falls between that newline's sending and the answer's
# arrival, a round trip of the established session (not its set-up).
_PROBE = r"""
printf 'uid=%s\n' "$(id -u)"
printf 'machine=%s\n' "$(uname -m)"
printf 'kernel=%s\n' "$(uname -r)"
printf 'ptrace_scope=%s\n' "$(cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null)"
printf 'seccomp=%s\n' "$(cat /proc/sys/kernel/seccomp/actions_avail 2>/dev/null)"
printf 'dmvx=%s\n' "$({dmvx} --version 2>/dev/null | head -n 1)"
read -r _; printf 'clock=%s\n' "$(date +%s.%N)"
"""
#: The line after which the probe waits for the newline that times its clock.
_BEFORE_CLOCK = b"\ndmvx="


def ssh_argv(address: SshAddress, command: Sequence[str], *, config: str | None = None) -> list[str]:
    """The ``ssh`` command line that runs ``command`` (words, quoted for the
    remote shell here) on ``address``. ``config``: an ``ssh -F`` file, by
    default :data:`SSH_CONFIG_ENV` if set, else the user's own."""
    config = config if config is not None else os.environ.get(SSH_CONFIG_ENV)
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}", "-T"]
    if config:
        argv += ["-F", config]
    if address.port is not None:
        argv += ["-p", str(address.port)]
    return [*argv, "--", address.destination, " ".join(shlex.quote(word) for word in command)]


def _parse(host: str, address: SshAddress, out: str, asked: float, answered: float) -> HostFacts:
    values: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()

    def number(key: str) -> int | None:
        text = values.get(key, "")
        return int(text) if text.lstrip("-").isdigit() else None

    dmvx = values.get("dmvx", "")
    version = dmvx.split()[-1] if dmvx.startswith("dmvx ") else None
    clock: float | None
    try:
        clock = float(values["clock"])
    except (KeyError, ValueError):
        clock = None
    # The remote clock was read between our asking and its answer: the
    # midpoint, within half that round trip.
    middle = (asked + answered) / 2
    return HostFacts(
        host,
        address,
        dmvx_version=version,
        machine=values.get("machine") or None,
        kernel=values.get("kernel") or None,
        uid=number("uid"),
        ptrace_scope=number("ptrace_scope"),
        seccomp_actions=tuple(values.get("seccomp", "").split()),
        clock_offset=None if clock is None else clock - middle,
        clock_uncertainty=(answered - asked) / 2,
    )


def _clock_step(
    host: str,
    out: bytes,
    process: subprocess.Popen[bytes],
    now: float,
    asked: dict[str, float],
    answered: dict[str, float],
) -> None:
    """Time the probe's clock reading: send the newline it waits for once the
    line before it is in, note when the clock's line arrives."""
    if host not in asked and _BEFORE_CLOCK in out and out.endswith(b"\n") and out.rfind(_BEFORE_CLOCK) >= 0:
        stdin = process.stdin
        assert stdin is not None
        asked[host] = time.time()
        try:
            stdin.write(b"\n")
            stdin.close()  # nothing more: the probe's shell ends at its script's end
        except BrokenPipeError:
            pass
    elif host in asked and host not in answered and b"\nclock=" in out and out.endswith(b"\n"):
        answered[host] = now


def _failure(stderr: str, status: int | None) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if lines:
        return lines[-1]
    return f"ssh ended with status {status}" if status is not None else f"no answer within {PROBE_TIMEOUT:g} s"


def doctor(topology: Topology, *, label: str, timeout: float = PROBE_TIMEOUT) -> DoctorResult:
    """Probe every machine of ``topology`` at once; the judged result."""
    machines = topology.machines()
    started: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    selector = selectors.DefaultSelector()
    outputs: dict[str, list[bytes]] = {}
    errors: dict[str, list[bytes]] = {}
    try:
        for host, address in machines.items():
            command = topology.hosts[host].dmvx or "dmvx"
            script = _PROBE.replace("{dmvx}", shlex.quote(command))
            process = subprocess.Popen(
                ssh_argv(address, ["sh", "-s"]),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C for dmvx is not one for ssh: we end it ourselves
            )
            assert process.stdin is not None and process.stdout is not None and process.stderr is not None
            try:
                process.stdin.write(script.encode())
                process.stdin.flush()
            except BrokenPipeError:
                pass
            started[host] = (process, command)
            outputs[host], errors[host] = [], []
            selector.register(process.stdout, selectors.EVENT_READ, (host, outputs))
            selector.register(process.stderr, selectors.EVENT_READ, (host, errors))
        deadline = time.monotonic() + timeout
        asked: dict[str, float] = {}
        answered: dict[str, float] = {}
        open_streams = 2 * len(started)
        while open_streams and time.monotonic() < deadline:
            for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
                host, sink = key.data
                chunk = os.read(key.fd, 65536)
                now = time.time()
                if chunk:
                    sink[host].append(chunk)
                    if sink is outputs:
                        _clock_step(host, b"".join(outputs[host]), started[host][0], now, asked, answered)
                    continue
                selector.unregister(key.fileobj)
                open_streams -= 1
        checks = []
        for host, (process, command) in started.items():
            try:
                status: int | None = process.wait(timeout=max(0.0, deadline - time.monotonic()) + 0.1)
            except subprocess.TimeoutExpired:
                status = None
            out = b"".join(outputs[host]).decode(errors="replace")
            err = b"".join(errors[host]).decode(errors="replace")
            address = machines[host]
            if status != 0 or host not in answered:
                facts = HostFacts(host, address, error=_failure(err, status))
            else:
                facts = _parse(host, address, out, asked[host], answered[host])
            declared = topology.hosts[host].arch
            checks.append(judge(facts, local_version=__version__, dmvx_path=command, declared=declared))
        return DoctorResult(label, checks)
    finally:
        selector.close()
        for process, _ in started.values():
            if process.poll() is None:
                process.kill()
            process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


def doctor_file(reference: str) -> DoctorResult:
    """``dmvx doctor --topology NAME``: the topology by bare name or path."""
    from dmvx.topology import load_topology

    return doctor(load_topology(reference), label=reference)


def refuse_unless_ready(topology: Topology, label: str) -> None:
    """What ``dmvx real`` does before anything starts on a topology with
    machines: the doctor's checks, and an
    :class:`~dmvx.exitstatus.EnvironmentProblem` naming every problem if one fails."""
    from dmvx.exitstatus import EnvironmentProblem

    if not topology.machines():
        return
    result = doctor(topology, label=label)
    if not result.ok:
        raise EnvironmentProblem(
            f"{label}: not starting: {'; '.join(result.problems)} (dmvx doctor --topology {label} shows each host)"
        )


__all__ = ["PROBE_TIMEOUT", "SSH_CONFIG_ENV", "ssh_argv", "doctor", "doctor_file", "refuse_unless_ready"]
