"""A Mininet node shell that dies, or never answers, while the network starts:
:class:`realmode.net.network.EmulatedNetwork` raises one line naming the host
instead of waiting forever, and its cleanup still removes everything.

The failing shell is simulated: Mininet's ``Popen`` (what starts each node's
``mnexec ... bash`` shell) is wrapped so that one host's shell is a command
that exits at once (as mnexec does when the kernel refuses it a namespace)
or that never prints the prompt (a shell starved of CPU)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from dmvx.exitstatus import EnvironmentProblem
from realmode.net import _mininet, network, runs
from realmode.net.network import EmulatedNetwork
from test_net_support import needs_mininet, two_host

pytestmark = [pytest.mark.root, needs_mininet]


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Turn a start-up that hangs (the bug) into a failure after 30 s."""

    def hung(*_: object) -> None:
        raise TimeoutError("the network start-up hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def shell_of(monkeypatch: pytest.MonkeyPatch, host: str, argv: list[str]) -> None:
    """Start ``argv`` in place of ``host``'s Mininet shell."""
    _mininet.load()
    import mininet.node

    real = mininet.node.Popen

    def popen(cmd: list[str], **params: Any):
        if cmd and cmd[-1] == f"mininet:{host}":
            cmd = argv
        return real(cmd, **params)

    monkeypatch.setattr(mininet.node, "Popen", popen)


def start(run_id: str) -> EnvironmentProblem:
    with pytest.raises(EnvironmentProblem) as failed, EmulatedNetwork(two_host(), run_id):
        pass
    return failed.value


def test_a_shell_that_dies_at_start_up_is_one_line_naming_the_host(
    monkeypatch: pytest.MonkeyPatch, clean_check, no_hang
) -> None:
    shell_of(monkeypatch, "h2", ["sh", "-c", "echo 'mnexec: unshare: Cannot allocate memory' >&2; exit 1"])
    run_id = runs.new_run_id()
    message = str(start(run_id))
    assert "\n" not in message
    assert message == "dmvx real: the shell of host h2 exited while starting (exit status 1)"
    assert runs.leftovers(run_id) == {"links": [], "processes": []}


def test_a_shell_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch, clean_check, no_hang) -> None:
    monkeypatch.setattr(network, "SHELL_START_TIMEOUT", 1.0, raising=False)
    shell_of(monkeypatch, "h3", ["sleep", "60"])
    run_id = runs.new_run_id()
    message = str(start(run_id))
    assert message == "dmvx real: the shell of host h3 did not start within 1 s (is the machine overloaded?)"
    assert runs.leftovers(run_id) == {"links": [], "processes": []}


def test_a_shell_that_dies_after_its_prompt_is_caught_too(
    monkeypatch: pytest.MonkeyPatch, clean_check, no_hang
) -> None:
    # Prints the prompt (Mininet's PS1 is chr(127)) and then exits, before
    # answering the first command Mininet sends it.
    shell_of(monkeypatch, "h1", ["sh", "-c", r"printf '\177'; exit 3"])
    run_id = runs.new_run_id()
    assert str(start(run_id)) == "dmvx real: the shell of host h1 exited while starting (exit status 3)"
    assert runs.leftovers(run_id) == {"links": [], "processes": []}


def test_a_shell_that_dies_while_the_network_is_set_up(monkeypatch: pytest.MonkeyPatch, clean_check, no_hang) -> None:
    # Starts (prompt, then answers Mininet's first command) and exits before
    # Mininet configures h2's interface through it.
    shell_of(monkeypatch, "h2", ["sh", "-c", r"printf '\177'; read line; printf '\177'; exit 4"])
    run_id = runs.new_run_id()
    assert str(start(run_id)) == "dmvx real: the shell of host h2 exited while the network was set up (exit status 4)"
    assert runs.leftovers(run_id) == {"links": [], "processes": []}
