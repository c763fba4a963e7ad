"""The one place dmvx prints.

Two audiences, two streams. People read stderr: one-line notes and errors,
and the rich tables a result draws of itself. Programs read stdout, which
carries nothing but the JSON document asked for with ``--json``, or the flat
rows asked for with ``--format csv|tsv|json`` (:mod:`dmvx.rows`). Keeping every
write in this module is what lets ``dmvx sim --json | jq`` work whatever a mode
tells people along the way.

A mode hands back a :class:`Result`; :func:`emit` decides which stream gets
it. With ``--json`` the result is not drawn on stderr as well: a script asked
for data, and a terminal full of tables next to it helps no one. Progress and
notes still go to stderr.

rich is imported only when something is drawn, so ``dmvx --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dmvx.exitstatus import ExitStatus
from dmvx.rows import RowFormat, Rows, Tabular, render

if TYPE_CHECKING:
    from rich.console import Console

PROG = "dmvx"


@runtime_checkable
class Result(Protocol):
    """What every mode entry returns (see docs/cli.md, "Mode entry contract").

    ``exit_status`` says how the run ended; ``to_json()`` gives the whole
    result as JSON-compatible data (a dict, what :func:`json.dumps` accepts);
    ``render(console)`` draws it for people on the given stderr console.
    """

    @property
    def exit_status(self) -> ExitStatus: ...

    def to_json(self) -> Any: ...

    def render(self, console: Console) -> None: ...


def stderr_console() -> Console:
    """A rich console on stderr for tables, progress bars and plots' captions.

    Made afresh for each use so it writes to whatever ``sys.stderr`` is at
    the time (the test runner swaps it). On a terminal, tables take its
    width; into a file or a CI log (no terminal, and no ``COLUMNS``), they
    get 140 columns instead of rich's 80, so that wide tables are not
    squeezed into folded cells."""
    import os
    import sys

    from rich.console import Console

    width = None if sys.stderr.isatty() or "COLUMNS" in os.environ else 140
    return Console(stderr=True, highlight=False, width=width)


def note(text: str) -> None:
    """One line for people, on stderr, printed as given."""
    _line(text)


def error(text: str) -> None:
    """The one line a failure gets: ``dmvx: error: <text>``."""
    _line(f"{PROG}: error: {text}")


def _line(text: str) -> None:
    # A message may quote user input or an exception with newlines in it;
    # the promise is one line, so fold them.
    sys.stderr.write(" ".join(text.splitlines()) + "\n")
    sys.stderr.flush()


def json_document(data: Any) -> None:
    """Write ``data`` as one JSON document on stdout.

    Serialised before anything is written, so data that is not JSON fails as
    a whole instead of leaving half a document on stdout."""
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def text_lines(lines: Iterable[str]) -> None:
    """Plain text on stdout, one line each, for a command asked to write its
    lines there (``dmvx lab watch --stdout``, to pipe into grep or less) in
    place of a table on stderr. Never together with a JSON document."""
    for line in lines:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()


def rows_document(result: Result, fmt: RowFormat) -> None:
    """Write ``result``'s flat rows (:meth:`dmvx.rows.Tabular.rows`) on stdout
    in ``fmt``; rendered whole before anything is written, as a JSON document is."""
    if not isinstance(result, Tabular):
        raise TypeError(f"{type(result).__name__} has no rows for --format")
    sys.stdout.write(render(result.rows(), fmt))
    sys.stdout.flush()


def emit(result: Result, *, as_json: bool, fmt: RowFormat | None = None) -> ExitStatus:
    """Print ``result`` for its audience and return its exit status: its JSON
    document (``as_json``), its flat rows (``fmt``), or its tables on stderr."""
    status = ExitStatus(result.exit_status)
    if fmt is not None:
        rows_document(result, fmt)
    elif as_json:
        json_document(result.to_json())
    else:
        result.render(stderr_console())
    return status


@dataclass(frozen=True)
class FileCheck:
    """The outcome of validating one file: a summary if good, its errors if not
    (every one found, in file order, so one run shows all there is to fix)."""

    file: str
    summary: str | None = None
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Validation:
    """The result of ``dmvx validate``: every file is reported, good or bad."""

    checks: tuple[FileCheck, ...]

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.OK if all(c.ok for c in self.checks) else ExitStatus.USAGE

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.exit_status is ExitStatus.OK,
            "files": [
                {"file": c.file, "ok": True, "summary": c.summary}
                if c.ok
                else {"file": c.file, "ok": False, "error": c.errors[0], "errors": list(c.errors)}
                for c in self.checks
            ],
        }

    def render(self, console: Console) -> None:
        for check in self.checks:
            if check.ok:
                note(f"{check.file}: ok — {check.summary}")
            else:
                for line in check.errors:
                    error(line)


@dataclass(frozen=True)
class Partial:
    """What an interrupted run finished (:class:`dmvx.exitstatus.Interrupted`).

    The run's own result, limited to the work done, reported as usual and
    marked interrupted: status 130 and ``"interrupted": true`` in the JSON."""

    result: Result
    done: str

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.INTERRUPTED

    def to_json(self) -> Any:
        document = self.result.to_json()
        if isinstance(document, dict):
            return {**document, "interrupted": True, "done": self.done, "exit_status": ExitStatus.INTERRUPTED.label}
        return {"result": document, "interrupted": True, "done": self.done, "exit_status": ExitStatus.INTERRUPTED.label}

    def rows(self) -> Rows:
        """The finished part's rows (what ``--format`` writes after Ctrl-C)."""
        if not isinstance(self.result, Tabular):
            raise TypeError(f"{type(self.result).__name__} has no rows for --format")
        return self.result.rows()

    def render(self, console: Console) -> None:
        # The CLI's own "interrupted after ..." line follows it.
        self.result.render(console)
