"""Ctrl-C and SIGTERM held back while a run forks a child, never lost.

After a fork, Python runs the at-fork hooks in the parent (``os.fork``,
and ``subprocess.Popen`` with a ``preexec_fn``): logging's ``_releaseLock``
is one wherever anything imported :mod:`logging`. A signal that lands
then raises its ``KeyboardInterrupt`` inside the hook, where Python prints
it ("Exception ignored in: <function _releaseLock ...>") and drops it: the
run went on as if nobody had pressed Ctrl-C. Blocking the signals around
the fork would not do: the child inherits the mask, and ``subprocess``
restores the parent's mask in its child before ``exec``, so the program
would start with SIGINT and SIGTERM blocked.

So while the child starts, the signals only note that they came; once the
parent holds the child (the fork returned and the pid is where the run's
cleanup finds it), a noted signal is raised again and handled as it would
have been -- by the handler in place before (``KeyboardInterrupt``, the
run's own SIGTERM handler, or the default action).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: The signals that end a run from outside.
ENDING = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_deferred(signums: tuple[int, ...] = ENDING) -> Iterator[None]:
    """Hold ``signums`` back for the body (a fork and the bookkeeping of its
    child), then raise the first that came, if any. Only the main thread
    handles signals, so elsewhere this holds nothing back; a handler set
    outside Python (``getsignal`` says None) is left alone. A noted signal
    is raised even if the body raised (its ``KeyboardInterrupt`` then takes
    the place of the body's exception)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []

    def note(signum: int, _frame: object) -> None:
        came.append(signum)

    previous = {signum: signal.getsignal(signum) for signum in signums}
    held = [signum for signum, handler in previous.items() if handler is not None]
    for signum in held:
        signal.signal(signum, note)
    try:
        yield
    finally:
        for signum in held:
            signal.signal(signum, previous[signum])
        if came:
            signal.raise_signal(came[0])
