"""Errors in files people write: one line that says where and what.

A user who mistypes a delay should read

    topologies/bad.yml:12:5: links[1].delay: '5' is not a duration; expected a number with a unit, e.g. 5ms

and nothing else: no traceback, no list of twelve consequential errors. Two
classes carry that:

:class:`InputError`
    the finished report, with the file and the position in it. The CLI
    prints ``str(error)`` on stderr and exits with its usage-error status.

:class:`Problem`
    a ``ValueError`` raised *inside* validation (by a unit parser or a model
    validator), which knows the field relative to where it was raised but not
    the file. :mod:`dmvx.yamlfile` turns it into an :class:`InputError` by
    looking the field up in the file's position index. It subclasses
    ``ValueError`` so pydantic collects it like any validation error and keeps
    the instance in the error's context.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

#: A place in a document: mapping keys and list indexes, outermost first.
FieldPath = tuple["str | int", ...]


class InputError(Exception):
    """A file cannot be used as written.

    ``file`` is the path as the user gave it (or as it was found); ``line``
    and ``column`` are 1-based and ``None`` when unknown (a file that cannot be
    read has no position). ``field`` is a dotted path such as
    ``links[1].delay``, empty for the document as a whole.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str = "",
        expected: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
        self.expected = expected
        #: Further errors found in the same pass over the same file (pydantic
        #: reports every field at once), in file order. Commands that stop at
        #: an error print this one; ``dmvx validate`` prints them all.
        self.more: tuple[InputError, ...] = ()

    def every(self) -> tuple[InputError, ...]:
        """This error and the :attr:`more` found with it, in file order."""
        return (self, *self.more)

    def __str__(self) -> str:
        where = ":".join(str(part) for part in (self.file, self.line, self.column) if part is not None)
        parts = [p for p in (where, self.field) if p]
        text = self.message if self.expected is None else f"{self.message}; expected {self.expected}"
        # Messages may quote user text; a newline in it must not break the one-line promise.
        return ": ".join([*parts, text]).replace("\n", "\\n")

    def __repr__(self) -> str:
        return f"InputError({str(self)!r})"


class Problem(ValueError):
    """A validation failure at a field below the place it was raised.

    ``path`` is relative to the value being validated when the problem was
    raised (``("links", 2, "b")`` from a topology's model validator).
    ``at`` says whether the position to report is the key's (an unknown or
    misspelt field name) or the value's (everything else).
    """

    def __init__(
        self,
        message: str,
        *,
        expected: str | None = None,
        path: Sequence[str | int] = (),
        at: Literal["key", "value"] = "value",
    ) -> None:
        super().__init__(message if expected is None else f"{message}; expected {expected}")
        self.message = message
        self.expected = expected
        self.path: FieldPath = tuple(path)
        self.at = at


def format_path(path: Iterable[str | int], data: Any = None) -> str:
    """``("links", 1, "delay")`` -> ``links[1].delay``.

    Integers are list indexes, unless ``data`` (the document the path is
    in) shows a mapping at that point: a YAML key may be a number too.
    """
    out = ""
    node = data
    for part in path:
        in_mapping = isinstance(node, Mapping)
        if isinstance(part, int) and not in_mapping:
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
        try:
            node = node[part] if node is not None else None
        except (KeyError, IndexError, TypeError):
            node = None
    return out


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'delay'?)`` for a near miss, else ``""``."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_of(choices: Iterable[str]) -> str:
    """``one of: a, b, c`` for the expected part of a message."""
    items = list(choices)
    if len(items) == 1:
        return items[0]
    return "one of: " + ", ".join(items)


class NotExecutable(InputError):
    """The program a run was asked to start cannot be executed. The message
    is the shell's (``./x: Exec format error``, ``x: command not found``)
    and ``exit_status`` the shell's status: 127 for a program that does not
    exist, 126 for one the kernel refuses."""

    def __init__(self, program: str, reason: str, *, found: bool) -> None:
        super().__init__(f"{program}: {reason}")
        self.program = program
        self.exit_status = 126 if found else 127
