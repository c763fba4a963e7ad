"""The body of every helper process a run forks (monitors, CONNECTORs,
agents, relays, probes): one place that decides what such a child keeps and
how it ends."""

from __future__ import annotations

import os
import signal
from typing import Callable, Iterable, NoReturn


def run_helper(body: Callable[[], None], keep: set[int], *, cpu: int | None = None,
               ignore: Iterable[signal.Signals] = (signal.SIGINT,)) -> NoReturn:
    """Run ``body`` in this freshly forked child and never return.

    The child ignores ``ignore`` (the orchestrator ends the run on Ctrl-C and
    SIGTERM and ends every helper itself), is pinned to ``cpu`` if given,
    keeps only descriptors 0-2 and ``keep``, and exits with 0, or with 70 if
    ``body`` raised: a child never unwinds into the parent's code.
    """
    status = 0
    try:
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
