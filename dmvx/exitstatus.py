"""Exit statuses of the ``dmvx`` command, and the two failures that map to them.

Scripts drive dmvx by its exit status, so the numbers are a public interface:
they are listed in README.md and docs/cli.md, and a test checks that the
table there matches this enum. Add members, never renumber.

Two exceptions belong here rather than in :mod:`dmvx.errors` because they are
about the machine and the build, not about a file the user wrote:
:class:`EnvironmentProblem` (not root, a binary or kernel feature missing) and
:class:`Unavailable` (the command's mode is not built yet). Either may be
raised by a mode; the CLI turns it into one line on stderr and its status.
A third, :class:`Interrupted`, is Ctrl-C carrying what was finished before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class ExitStatus(IntEnum):
    """What a ``dmvx`` run ended with. The values are stable."""

    OK = 0
    #: A verdict stopped the run: the variants diverged, or forged or replayed
    #: CONNECTOR traffic was rejected. The testbed worked; the program did not.
    DIVERGENCE = 1
    #: The command line or an input file is wrong (click's own usage errors
    #: use 2 as well, so every "you asked for something impossible" is 2).
    USAGE = 2
    #: An attack ran and no verdict caught it, or a suite scenario ended other
    #: than its file expected.
    ATTACK_MISSED = 3
    #: The machine lacks something the command needs: root, a binary, a
    #: kernel feature.
    ENVIRONMENT = 4
    #: The command's mode is not built yet.
    UNAVAILABLE = 5
    #: A bug in dmvx. The user sees one line and the path of a file holding
    #: the traceback (70 is EX_SOFTWARE in sysexits.h).
    INTERNAL = 70
    #: The program to run exists but the kernel cannot execute it (no x bit,
    #: a directory, a script without ``#!``): 126, as shells report it.
    CANNOT_EXECUTE = 126
    #: The program to run does not exist: 127, as shells report it.
    NOT_FOUND = 127
    #: Stopped by Ctrl-C (128 + SIGINT, as shells report it).
    INTERRUPTED = 130

    @property
    def label(self) -> str:
        """The lower-case, hyphenated name used in JSON output."""
        return self.name.lower().replace("_", "-")


#: Which status wins when several runs are reported as one (``dmvx suite
#: --mode both``): a run that could not happen hides nothing it could have
#: found, so failures to run outrank findings, and findings outrank OK.
#: A missed attack outranks a divergence because it is the worse news.
_SEVERITY = (
    ExitStatus.OK,
    ExitStatus.DIVERGENCE,
    ExitStatus.ATTACK_MISSED,
    ExitStatus.UNAVAILABLE,
    ExitStatus.USAGE,
    ExitStatus.CANNOT_EXECUTE,
    ExitStatus.NOT_FOUND,
    ExitStatus.ENVIRONMENT,
    ExitStatus.INTERNAL,
    ExitStatus.INTERRUPTED,
)


def worst(statuses: Iterable[ExitStatus]) -> ExitStatus:
    """The status to report for several runs taken together (OK for none)."""
    return max(statuses, key=_SEVERITY.index, default=ExitStatus.OK)


class EnvironmentProblem(Exception):
    """The machine cannot run this command as it stands.

    The message says what is missing and how to get it, in one line, e.g.
    ``dmvx real needs root: it creates network namespaces; run it as root``.
    """

    exit_status = ExitStatus.ENVIRONMENT


class Unavailable(Exception):
    """The command (or this mode of it) is not built yet.

    The message is printed as it is, so it starts with the command, e.g.
    ``dmvx sim: simulation mode is not built yet (see issue 3)``.
    """

    exit_status = ExitStatus.UNAVAILABLE


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a run that had finished part of its work.

    ``partial`` is a result (:class:`dmvx.output.Result`) of the points done
    so far, or None when none was; the CLI prints it, then exits 130. It is a
    :class:`KeyboardInterrupt`, so code that does not know it (a lab check
    running a sweep) stops as for any Ctrl-C.
    """

    exit_status = ExitStatus.INTERRUPTED

    def __init__(self, partial: object | None, done: str) -> None:
        super().__init__(done)
        self.partial = partial
        #: What was done, for the note: "3 of 8 points".
        self.done = done
