"""Forking the run's helper processes (agents, relay, probes)."""

from __future__ import annotations

import os
from collections.abc import Callable

from realmode import helper_process
from realmode.helper_process import run_helper


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL the calling process when its parent dies.

    Every process of a run is a child of the orchestrator (host shells,
    relay, agents, client, attacker) or is traced by one (the variants, with
    ``PTRACE_O_EXITKILL``), so an orchestrator killed outright takes the
    whole run with it; only the root namespace's bridges wait for the next
    run's :func:`realmode.net.runs.reap_stale`. Safe in ``preexec_fn``."""
    helper_process.die_with_parent(os.getppid())


def fork(body: Callable[[], None], keep: set[int]) -> int:
    """Run ``body`` in a forked child that keeps only the file descriptors
    ``keep`` (and 0-2) and never returns into the parent's code; the child's
    pid. SIGINT is ignored in the child: Ctrl-C is the orchestrator's to
    handle, and it ends every child itself. The child dies with the parent
    (see :func:`die_with_parent`)."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    run_helper(body, keep, parent=parent)
