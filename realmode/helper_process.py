"""The body of every helper process a run forks (monitors, CONNECTORs,
agents, relays, probes): one place that decides what such a child keeps and
how it ends."""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable, Iterable
from typing import NoReturn

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL the calling process when its parent dies,
    then make sure ``parent`` (its pid, taken before the fork) had not died
    already: a parent killed between the fork and the request would
    otherwise go unnoticed. So ``kill -9`` of a run's orchestrator ends its
    monitors and CONNECTORs at once, and the variants with them (traced with
    ``PTRACE_O_EXITKILL``). Safe in ``preexec_fn``."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def run_helper(
    body: Callable[[], None],
    keep: set[int],
    *,
    cpu: int | None = None,
    ignore: Iterable[signal.Signals] = (signal.SIGINT,),
    parent: int | None = None,
) -> NoReturn:
    """Run ``body`` in this freshly forked child and never return.

    The child ignores ``ignore`` (the orchestrator ends the run on Ctrl-C and
    SIGTERM and ends every helper itself), is pinned to ``cpu`` if given,
    keeps only descriptors 0-2 and ``keep``, and exits with 0, or with 70 if
    ``body`` raised: a child never unwinds into the parent's code. Given
    ``parent`` (the forking process's pid), it dies with that process
    (:func:`die_with_parent`).
    """
    status = 0
    try:
        if parent is not None:
            die_with_parent(parent)
        for signum in ignore:
            signal.signal(signum, signal.SIG_IGN)
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        for fd in range(3, 1024):
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        body()
    except BaseException:  # noqa: BLE001 - a child never unwinds into the parent's code
        status = 70
    finally:
        os._exit(status)
