"""Shared test set-up.

Tests that need root and network namespaces carry ``@pytest.mark.root``.
Without root they are skipped with a reason instead of failing, so the suite
runs anywhere; CI runs as root and runs them all.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from test_net_support import Snapshot

#: Marks the processes of one pytest run (see :func:`pytest_configure`).
SESSION_ENV = "DMVX_TEST_SESSION"


def pytest_configure(config: pytest.Config) -> None:
    """Without a terminal (CI, scripts), run the suite in a session of its own.

    Real-mode tests check that nothing they started outlives them by looking
    for new processes in the test run's session (a daemonised process leaves
    the process tree but not the session). In a session of its own, commands
    someone else runs meanwhile from the same shell session are not taken for
    leftovers. At a terminal the session stays, so Ctrl-C still reaches pytest.
    """
    # Every process this test run starts inherits the mark (dmvx passes the
    # environment on), so the leftover check of ``dmvx real`` tests can tell
    # this run's processes from another test run's on the same machine.
    os.environ[SESSION_ENV] = f"{os.getpid()}-{secrets.token_hex(4)}"
    if not sys.stdin.isatty():
        try:
            os.setsid()
        except OSError:  # already a process-group leader: keep the session
            pass
    # A shell starts a background job with SIGINT ignored, and a child keeps
    # that (Python then never raises KeyboardInterrupt): the tests that stop
    # ``dmvx run`` and ``dmvx real`` with SIGINT need their children to hear it.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, Mininet, tracing); CI runs as root")
    for item in items:
        if item.get_closest_marker("root") is not None:
            item.add_marker(skip)


@pytest.fixture
def clean_check() -> Iterator[Snapshot]:
    """Fails the test if anything dmvx made outlives it: see
    :func:`test_net_support.leftovers_checked` (imported here, when a test
    asks for it, so that the other tests do not load real mode)."""
    from test_net_support import leftovers_checked

    yield from leftovers_checked()


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    """``build(name, *flags)``: a real-mode target compiled once per module, into a directory
    of its own (:func:`test_real_support.compile_target`, imported here when a test asks)."""
    from test_real_support import compile_target

    directory = tmp_path_factory.mktemp("targets")
    return lambda name, *flags: compile_target(name, directory, *flags)


@pytest.fixture(autouse=True)
def _test_process_keeps_its_identity() -> Iterator[None]:
    """Fails a test that leaves the test process with other user ids.

    A monitor and a CONNECTOR shield themselves (``realmode.isolation.shield``:
    real and saved uid 65533) in the process they run in. A test that runs one in
    pytest's own process would turn pytest itself into that user, and every later
    test would then fail on its own temporary directory (mode 0700, root's) with
    "Permission denied" -- hundreds of failures far from the cause. This names it.
    """
    before = os.getresuid()
    yield
    after = os.getresuid()
    if after != before:
        if os.geteuid() == 0:  # put it back, so that the tests after this one still run
            os.setresuid(*before)
        pytest.fail(
            f"the test changed the test process's (real, effective, saved) uid from {before} to {after}: "
            "it ran a shielded monitor or CONNECTOR in pytest's own process",
            pytrace=False,
        )
