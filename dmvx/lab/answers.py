"""Reading a student's answers file.

An answers file is a YAML mapping of answer keys to values, one key per
thing a lab asks for::

    lab: 4                      # optional: refuses a file meant for another lab
    lead_calls_cb16: 15
    lead_time_1ms: 2ms
    defended_scenario: lab4-defended.yml   # relative to this file

The file as a whole is checked when it is loaded: it must parse, be a
mapping, and hold only keys of the lab (a misspelt key would otherwise leave
a right answer unread; the error names the closest key). Each *value* is
checked only when a task reads it, so a value of the wrong form fails that
task with one line naming the file, line and column, and the other tasks are
still checked. Numbers may be written as the tables show them (``1.91k``,
``9559.46x``, ``+3.1%``): a student copies what the tool printed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dmvx.errors import Problem, did_you_mean, one_of
from dmvx.lab.model import Key, Kind, Lab, NotAnswered
from dmvx.units import parse_duration
from dmvx.yamlfile import YamlDocument, read_yaml

#: Keys an answers file may hold besides the lab's own.
RESERVED = ("lab",)

_TRUE = ("yes", "true", "on")
_FALSE = ("no", "false", "off")


class Answers:
    """The answers of one file, read per key on demand."""

    def __init__(self, doc: YamlDocument, base_dir: Path, lab: Lab) -> None:
        self.doc = doc
        self.base_dir = base_dir
        self.lab = lab
        self.file = doc.file

    @classmethod
    def load(cls, path: Path, lab: Lab) -> Answers:
        """Read ``path`` and check its keys against ``lab`` (see the module doc)."""
        doc = read_yaml(path, display=str(path))
        keys = lab.keys()
        for name in doc.data:
            if name in keys or name in RESERVED:
                continue
            raise doc.error(
                (name,),
                f"not an answer of lab {lab.number}{did_you_mean(str(name), keys)}",
                expected=one_of(keys),
                at="key",
            )
        number = doc.data.get("lab")
        if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
            raise doc.error(("lab",), f"{number!r} is not a lab number", expected=f"lab: {lab.number}")
        if number is not None and number != lab.number:
            raise doc.error(
                ("lab",),
                f"this answers file is for lab {number}, not lab {lab.number}",
                expected=f"lab: {lab.number}, or check it with 'dmvx lab check {number}'",
            )
        return cls(doc, path.parent, lab)

    @classmethod
    def empty(cls, lab: Lab, file: str) -> Answers:
        """No answers at all (every task reports what it needs)."""
        return cls(YamlDocument(file, {}, {}), Path("."), lab)

    def has(self, key: Key) -> bool:
        return self.doc.data.get(key.name) is not None

    def text(self, key: Key) -> str:
        """The value as the student wrote it, for messages."""
        shown = self.doc.scalar_text((key.name,))
        if shown is not None:
            return shown
        value = self.doc.data.get(key.name)
        if isinstance(value, Mapping):
            return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
        return str(value)

    def resolution(self, key: Key) -> float:
        """How precise the answer is as written (:func:`shown_number`): 5 for
        ``1.91k``, 0 for an exact number or anything else."""
        shown = shown_number(self.doc.data.get(key.name))
        return shown[1] if shown is not None else 0.0

    def get(self, key: Key) -> Any:
        """The value of ``key`` in the form its kind says, or raise
        :class:`NotAnswered` / :class:`InputError` (naming the place)."""
        value = self.doc.data.get(key.name)
        if value is None:
            raise NotAnswered(key.name)
        try:
            return _convert(key, value, self.base_dir)
        except Problem as problem:
            raise self.doc.error((key.name, *problem.path), problem.message, problem.expected) from None


#: A number as dmvx's tables show it: ``1.91k``, ``9559.46x``, ``+3.1%``, ``40,000``.
_SHOWN = re.compile(r"^([+-]?(?:\d{1,3}(?:,\d{3})+|\d*)(?:\.(\d+))?)\s*([kMG]?)\s*([x%]?)$")
_SCALE = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}


def shown_number(value: Any) -> tuple[float, float] | None:
    """A number written as a table shows it, and how precise that is.

    ``"1.91k"`` is ``(1910.0, 5.0)``: a table rounds counts to three digits
    with a k, M or G, so the answer stands for anything within half its last
    digit. ``"9559.46x"`` (a slowdown), ``"+3.1%"`` (an overhead) and
    ``"40,000"`` are their numbers, as precise as written (0). A YAML number is
    itself. None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value), 0.0
    if not isinstance(value, str):
        return None
    match = _SHOWN.match(value.strip())
    if match is None or not any(c.isdigit() for c in match.group(1)):
        return None
    number, decimals, scale, _ = match.groups()
    factor = _SCALE[scale]
    resolution = 0.5 * 10 ** -len(decimals or "") * factor if factor > 1 else 0.0
    return float(number.replace(",", "")) * factor, resolution


def _convert(key: Key, value: Any, base_dir: Path) -> Any:
    kind = key.kind
    if kind is Kind.NUMBER:
        shown = shown_number(value)
        if shown is None:
            raise Problem(
                f"{value!r} is not a number",
                expected="a number such as 4.02, 1e3, or as a table shows it (9559.46x, 1.91k)",
            )
        return shown[0]
    if kind is Kind.INTEGER:
        shown = shown_number(value)
        number = None if shown is None else shown[0]
        if number is None or (shown[1] == 0 and not number.is_integer()):  # type: ignore[index]
            raise Problem(
                f"{value!r} is not a whole number", expected="a whole number such as 15, or as a table shows it (1.91k)"
            )
        return int(round(number))
    if kind is Kind.DURATION:
        return parse_duration(value)
    if kind is Kind.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise Problem(f"{value!r} is not yes or no", expected="yes or no")
    if kind is Kind.CHOICE:
        word = str(value).strip() if not isinstance(value, (dict, list)) else None
        if word not in key.choices:
            raise Problem(
                f"{value!r} is not one of the choices{did_you_mean(str(word), key.choices)}",
                expected=one_of(key.choices),
            )
        return word
    if kind is Kind.WORD:
        if not isinstance(value, str) or not value.strip() or "\n" in value.strip():
            raise Problem(
                f"{value!r} is not a word",
                expected="a word, e.g. a system call name such as openat, or the text a table shows",
            )
        return " ".join(value.split())
    if kind is Kind.FILE:
        if not isinstance(value, str) or not value.strip():
            raise Problem(f"{value!r} is not a file name", expected="a path relative to the answers file")
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise Problem(f"no such file {value!r} (looked for {path})", expected="a path relative to the answers file")
        return path
    if kind is Kind.COUNTS:
        return _counts(value)
    raise AssertionError(kind)


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise Problem(f"{value!r} is not a mapping", expected="a mapping such as {replicate: 11, local: 4}")
    out: dict[str, int] = {}
    for name, count in value.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise Problem(f"{count!r} is not a count", path=(name,), expected="a whole number, 0 or more")
        out[str(name)] = count
    return out
