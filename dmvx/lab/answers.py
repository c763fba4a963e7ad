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
still checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

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
    def load(cls, path: Path, lab: Lab) -> "Answers":
        """Read ``path`` and check its keys against ``lab`` (see the module doc)."""
        doc = read_yaml(path, display=str(path))
        keys = lab.keys()
        for name in doc.data:
            if name in keys or name in RESERVED:
                continue
            raise doc.error((name,), f"not an answer of lab {lab.number}{did_you_mean(str(name), keys)}",
                            expected=one_of(keys), at="key")
        number = doc.data.get("lab")
        if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
            raise doc.error(("lab",), f"{number!r} is not a lab number", expected=f"lab: {lab.number}")
        if number is not None and number != lab.number:
            raise doc.error(("lab",), f"this answers file is for lab {number}, not lab {lab.number}",
                            expected=f"lab: {lab.number}, or check it with 'dmvx lab check {number}'")
        return cls(doc, path.parent, lab)

    @classmethod
    def empty(cls, lab: Lab, file: str) -> "Answers":
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


def _convert(key: Key, value: Any, base_dir: Path) -> Any:
    kind = key.kind
    if kind is Kind.NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Problem(f"{value!r} is not a number", expected="a number such as 4.02 or 1e3")
        return float(value)
    if kind is Kind.INTEGER:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise Problem(f"{value!r} is not a whole number", expected="a whole number such as 15")
        return value
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
            raise Problem(f"{value!r} is not one of the choices{did_you_mean(str(word), key.choices)}",
                          expected=one_of(key.choices))
        return word
    if kind is Kind.WORD:
        if not isinstance(value, str) or not value.strip() or len(value.split()) != 1:
            raise Problem(f"{value!r} is not one word", expected="one word, e.g. a system call name such as openat")
        return value.strip()
    if kind is Kind.FILE:
        if not isinstance(value, str) or not value.strip():
            raise Problem(f"{value!r} is not a file name", expected="a path relative to the answers file")
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise Problem(f"no such file {value!r} (looked for {path})",
                          expected="a path relative to the answers file")
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
