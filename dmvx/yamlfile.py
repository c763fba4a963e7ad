"""YAML files that remember where everything came from.

PyYAML's ``safe_load`` gives plain data and forgets positions, and pydantic
reports errors by location in that data (``("links", 1, "delay")``). To turn
such a location into ``file:line:column`` we load in two steps: compose the
node tree (which carries a source mark on every key and value), construct the
data from it with PyYAML's safe constructor, and walk the tree once to index
each path to its marks. The walk also refuses duplicate keys, which YAML
allows silently (the last one wins) and which are nearly always a mistake in
a hand-written file.

Everything that can go wrong with reading — a missing, unreadable or
non-UTF-8 file, a syntax error, a tab in the indentation, an empty file, a
list where a mapping belongs, a validation error — comes out as one
:class:`~dmvx.errors.InputError`.

This module also knows where the built-in files live (:func:`find_named`):
``topologies/`` and ``scenarios/`` sit at the root of the source tree (a
checkout, or an editable install), and a wheel installs them under
``<prefix>/share/dmvx/`` (the ``data-files`` table in ``pyproject.toml``).
"""

from __future__ import annotations

import os
import re
import stat
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from dmvx.errors import FieldPath, InputError, Problem, did_you_mean, format_path, one_of

#: Nodes visited when indexing, at most. A few aliases can expand a small
#: file into billions of nodes ("billion laughs"); real files stay far below.
MAX_NODES = 200_000

#: Nesting of lists and mappings, at most. Real files nest a few levels;
#: PyYAML composes a node tree recursively, and validation and the error
#: messages recurse through the data as well, so a file nested thousands
#: deep would end in a RecursionError (a bug, status 70) instead of a line.
MAX_DEPTH = 64

_MERGE_TAG = "tag:yaml.org,2002:merge"

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Marks:
    """Where one value sits: its key's position (``None`` for list items and
    the document), its value's position, and the value's source text when it
    is a scalar. Positions are 1-based ``(line, column)``."""

    key: tuple[int, int] | None
    value: tuple[int, int]
    text: str | None


@dataclass(frozen=True)
class YamlDocument:
    """A loaded YAML file: its data and the position of every path in it."""

    file: str
    data: Any
    index: Mapping[FieldPath, Marks]

    def position(self, path: FieldPath, at: Literal["key", "value"] = "value") -> tuple[int, int]:
        """The position of ``path``, or of its nearest indexed ancestor."""
        path = tuple(path)
        while path not in self.index and path:
            path = path[:-1]
        marks = self.index.get(path) or Marks(None, (1, 1), None)
        if at == "key" and marks.key is not None:
            return marks.key
        return marks.value

    def error(
        self,
        path: FieldPath,
        message: str,
        expected: str | None = None,
        at: Literal["key", "value"] = "value",
    ) -> InputError:
        """An :class:`InputError` pointing at ``path`` in this file."""
        line, column = self.position(path, at)
        return InputError(
            message, file=self.file, line=line, column=column, field=format_path(path, self.data), expected=expected
        )

    def validate(self, model: type[M], data: Any = None, context: Any = None) -> M:
        """Validate ``data`` (default: the whole document) as ``model``;
        a failure becomes one :class:`InputError` at the earliest problem
        (the others in its ``more``)."""
        value = self.data if data is None else data
        self.check_kind(model, value)
        try:
            return model.model_validate(value, context=context)
        except ValidationError as exc:
            raise self.validation_error(exc) from None

    def check_kind(self, model: type[BaseModel], value: Any = None) -> None:
        """Refuse ``value`` (default: the document) if it is a mapping none of
        whose keys is a field of ``model``: most likely not a dmvx file at all
        (``/etc/shadow`` reads as a mapping), so its keys -- the file's
        content -- are not shown."""
        value = self.data if value is None else value
        if not isinstance(value, Mapping) or not value or not model.model_fields:
            return
        names = set(model.model_fields) | {info.alias for info in model.model_fields.values() if info.alias}
        if not any(key in names for key in value):
            kind = getattr(model, "file_kind", model.__name__.lower())
            raise InputError(
                f"not a {kind} file: none of its top-level keys is a {kind} field",
                file=self.file,
                expected=f"a {kind} with fields " + ", ".join(sorted(model.model_fields)),
            )

    def validation_error(self, exc: ValidationError, prefix: FieldPath = ()) -> InputError:
        """Translate a pydantic error whose locations are relative to the
        value at ``prefix`` in this document."""
        found: dict[str, InputError] = {}
        for err in exc.errors():
            error = self._translate(err, tuple(prefix))
            found.setdefault(str(error), error)  # a union's branches can report the same place twice
        ordered = sorted(found.values(), key=lambda e: (e.line or 0, e.column or 0))
        first = ordered[0]
        first.more = tuple(ordered[1:])
        return first

    def scalar_text(self, path: FieldPath) -> str | None:
        marks = self.index.get(tuple(path))
        return marks.text if marks else None

    # -- pydantic error -> InputError -------------------------------------------------

    def _translate(self, err: Mapping[str, Any], prefix: FieldPath) -> InputError:
        path, at, missing = self._follow(prefix, tuple(err["loc"]))
        problem = (err.get("ctx") or {}).get("error")
        if isinstance(problem, Problem):
            path, at2, missing2 = self._follow(path, problem.path)
            at = problem.at if problem.at == "key" else at2
            missing = missing2
            message, expected = problem.message, problem.expected
        else:
            message, expected, path, at = _describe(err, self, path, missing)
        if missing is not None:
            line, column = self.position(path, "key")
            field = format_path((*path, missing), self.data)
        else:
            line, column = self.position(path, at)
            field = format_path(path, self.data)
        return InputError(message, file=self.file, line=line, column=column, field=field, expected=expected)

    def _follow(self, start: FieldPath, loc: FieldPath) -> tuple[FieldPath, Literal["key", "value"], str | None]:
        """Walk ``loc`` through the data from ``start``.

        pydantic's locations also hold union tags (``"microbench"``) and
        markers (``"[key]"``) that are not in the data; they are skipped. A
        last element that is not in the data is a missing field, returned
        apart so the error can point at the mapping that lacks it.
        """
        node = self._at(start)
        path = list(start)
        at: Literal["key", "value"] = "value"
        for i, item in enumerate(loc):
            last = i == len(loc) - 1
            if item == "[key]":
                at = "key"
                continue
            if isinstance(node, Mapping) and item in node:  # noqa: SIM114 - apart, so that each narrows item
                node = node[item]
                path.append(item)
            elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
                node = node[item]
                path.append(item)
            elif last and isinstance(node, Mapping) and isinstance(item, str):
                return tuple(path), at, item
        return tuple(path), at, None

    def _at(self, path: FieldPath) -> Any:
        node = self.data
        for item in path:
            try:
                node = node[item]
            except (KeyError, IndexError, TypeError):
                return None
        return node


def _shown(doc: YamlDocument, path: FieldPath, value: Any) -> str:
    text = doc.scalar_text(path)
    if text is not None and not isinstance(value, (Mapping, list)):
        return f"'{text}'"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty value"
    return repr(value) if isinstance(value, str) else f"'{value}'"


def _choices(ctx_text: str) -> list[str]:
    return re.findall(r"'([^']*)'", ctx_text)


def _describe(
    err: Mapping[str, Any], doc: YamlDocument, path: FieldPath, missing: str | None
) -> tuple[str, str | None, FieldPath, Literal["key", "value"]]:
    """A message and an expected-phrase for pydantic's own error types."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    shown = _shown(doc, path, value)
    at: Literal["key", "value"] = "value"
    if kind == "missing":
        return f"missing required field {missing!r}", None, path, at
    if kind == "extra_forbidden":
        return f"unknown field {path[-1]!r}", None, path, "key"
    if kind in ("literal_error", "enum"):
        choices = _choices(str(ctx.get("expected", "")))
        return f"{shown} is not a valid choice{did_you_mean(value, choices)}", one_of(choices), path, at
    if kind == "union_tag_invalid":
        choices = _choices(str(ctx.get("expected_tags", "")))
        key = str(ctx.get("discriminator", "")).strip("'")
        if isinstance(value, Mapping) and key in value:
            path = (*path, key)
        tag = ctx.get("tag")
        return f"unknown {key} {tag!r}{did_you_mean(tag, choices)}", one_of(choices), path, at
    if kind == "union_tag_not_found":
        key = str(ctx.get("discriminator", "")).strip("'")
        return f"missing field {key!r}", f"a {key!r} key saying which kind this is", path, at
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{shown} is not a whole number", "an integer, e.g. 3", path, at
    if kind in ("float_type", "float_parsing"):
        return f"{shown} is not a number", "a number, e.g. 1.5", path, at
    if kind in ("bool_type", "bool_parsing"):
        return f"{shown} is not true or false", "true or false", path, at
    if kind in ("string_type", "str_type"):
        return f"{shown} is not text", "a string", path, at
    if kind in ("dict_type", "model_type", "model_attributes_type", "dataclass_type"):
        return f"{shown} found where a mapping belongs", "a mapping of fields (name: value)", path, at
    if kind in ("list_type", "tuple_type", "set_type"):
        return f"{shown} found where a list belongs", "a list (lines starting with '- ')", path, at
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = {
            "greater_than": "greater than {gt}",
            "greater_than_equal": "at least {ge}",
            "less_than": "less than {lt}",
            "less_than_equal": "at most {le}",
        }[kind]
        return f"{shown} is out of range", "a number " + bound.format(**ctx), path, at
    if kind == "too_short":
        return "too few items", f"at least {ctx.get('min_length')} item(s)", path, at
    if kind == "too_long":
        return "too many items", f"at most {ctx.get('max_length')} item(s)", path, at
    if kind == "string_too_long":
        return f"{shown} is too long", f"at most {ctx.get('max_length')} characters", path, at
    if kind == "string_too_short":
        return f"{shown} is too short", f"at least {ctx.get('min_length')} characters", path, at
    if kind == "value_error":
        return str(ctx.get("error", err["msg"])), None, path, at
    return str(err["msg"]), None, path, at


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def display_path(path: Path) -> str:
    """The path as a person would type it: relative to the working
    directory when it lies under it, else absolute."""
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd().resolve()) else str(path)
    except (OSError, ValueError):
        return str(path)


#: Largest YAML file read (scenarios, topologies, profiles, lab answers):
#: hand-written files are a few kilobytes.
MAX_YAML_BYTES = 1 << 20
#: Largest trace read (``dmvx sim`` trace workloads, ``dmvx lab``): a
#: recorded run of a few million calls.
MAX_TRACE_BYTES = 256 << 20

#: What a path that is not a regular file is: (test of its mode, its name). A symbolic link
#: is not among them: open follows it (``realmode.record`` adds it, for a path it does not follow).
NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def read_input(
    path: str | Path, *, file: str | None = None, limit: int = MAX_YAML_BYTES, what: str = "regular file"
) -> bytes:
    """The bytes of the input file ``path``: the one way dmvx reads a file a
    user named, so every input has the same limits. ``what`` names the
    kind of file for the error (``.yml file``).

    The file is opened non-blocking and checked with ``fstat`` on the open
    descriptor before anything is read: a FIFO, a device (``/dev/zero``
    would be read for ever), a socket or a directory is refused at once,
    never waited on; a file over ``limit`` bytes is refused (checked again
    while reading, for a file that grows). Any failure is one
    :class:`InputError` that names the file and never shows its content."""
    file = file if file is not None else str(path)
    expected = f"a {what}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError("no such file", file=file, expected=f"an existing {what}") from None
    except PermissionError:
        raise InputError("permission denied", file=file, expected="a readable file") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=file, expected=expected) from None
    try:
        info = os.fstat(fd)
        for test, kind in NOT_REGULAR:
            if test(info.st_mode):
                raise InputError(f"is {kind}, not a regular file", file=file, expected=expected)
        if not stat.S_ISREG(info.st_mode):
            raise InputError("is not a regular file", file=file, expected=expected)
        too_big = InputError(
            f"is larger than {limit:,} bytes, the limit for this kind of file", file=file, expected=expected
        )
        if info.st_size > limit:
            raise too_big
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise too_big
        return b"".join(chunks)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=file, expected=expected) from None
    finally:
        os.close(fd)


def read_yaml(path: str | Path, *, display: str | None = None, expect_mapping: bool = True) -> YamlDocument:
    """Read and parse one YAML file; any failure is one :class:`InputError`."""
    path = Path(path)
    file = display if display is not None else str(path)
    raw = read_input(path, file=file, what=".yml file")
    return parse_yaml(raw, file=file, expect_mapping=expect_mapping)


def parse_yaml(raw: bytes | str, *, file: str, expect_mapping: bool = True) -> YamlDocument:
    """Parse YAML text (bytes must be UTF-8) into a :class:`YamlDocument`."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, column = _byte_position(raw, exc.start)
            raise InputError(
                f"byte 0x{raw[exc.start]:02x} is not valid UTF-8",
                file=file,
                line=line,
                column=column,
                expected="a UTF-8 text file",
            ) from None
    else:
        text = raw
    text = text.removeprefix("\ufeff")
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # checks for unprintable characters at once
        node = loader.get_single_node()
        if node is None:
            raise InputError(
                "the file is empty",
                file=file,
                line=1,
                column=1,
                expected="a mapping of fields (name: value)" if expect_mapping else "a YAML document",
            )
        # Index before constructing: construction flattens merge keys (<<) in place.
        index: dict[FieldPath, Marks] = {}
        _Indexer(loader, file, index).walk(node, ())
        data = loader.construct_document(node)
    except RecursionError:
        # Composing (or constructing) recurses per level: too deep for
        # Python's stack before MAX_DEPTH could be checked on the tree.
        assert loader is not None
        mark = loader.get_mark()
        raise _too_deep(file, mark.line + 1, mark.column + 1) from None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, file) from None
    except yaml.reader.ReaderError as exc:
        line, column = _char_position(text, exc.position)
        raise InputError(
            f"character U+{exc.character:04X} is not allowed in YAML",
            file=file,
            line=line,
            column=column,
            expected="printable text (no control characters)",
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", file=file) from None
    finally:
        if loader is not None:
            loader.dispose()
    if expect_mapping and not isinstance(data, dict):
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        raise InputError(
            f"the file holds {_kind_of(data)}",
            file=file,
            line=line,
            column=column,
            expected="a mapping of fields (name: value) at the top level",
        )
    return YamlDocument(file=file, data=data, index=index)


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a single string"
    return f"a single value ({value!r})"


def _syntax_error(exc: yaml.MarkedYAMLError, file: str) -> InputError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    expected = None
    if "'\\t'" in problem or "\t" in problem:
        message = "a tab character where YAML needs spaces"
        expected = "indentation with spaces only (YAML forbids tabs)"
    else:
        message = f"invalid YAML: {problem}"
        cm = exc.context_mark
        if exc.context and cm is not None and mark is not None and cm.line != mark.line:
            message += f" ({exc.context} at line {cm.line + 1})"
    if isinstance(exc, yaml.constructor.ConstructorError) and "constructor for the tag" in problem:
        expected = "plain YAML without application tags (!!python/... and similar are refused)"
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    return InputError(message, file=file, line=line, column=column, expected=expected)


def _byte_position(raw: bytes, offset: int) -> tuple[int, int]:
    start = raw.rfind(b"\n", 0, offset) + 1
    return raw.count(b"\n", 0, offset) + 1, offset - start + 1


def _char_position(text: str, offset: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - start + 1


def _too_deep(file: str, line: int, column: int) -> InputError:
    return InputError(
        f"lists and mappings nested more than {MAX_DEPTH} deep",
        file=file,
        line=line,
        column=column,
        expected=f"at most {MAX_DEPTH} levels of nesting",
    )


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Indexer:
    """Walks a composed node tree, recording marks and refusing duplicates."""

    def __init__(self, loader: yaml.SafeLoader, file: str, index: dict[FieldPath, Marks]) -> None:
        self.loader = loader
        self.file = file
        self.index = index
        self.visited = 0
        self.active: set[int] = set()

    def walk(self, node: yaml.Node, path: FieldPath, key: yaml.Node | None = None) -> None:
        self.visited += 1
        if self.visited > MAX_NODES:
            line, column = _mark(node)
            raise InputError(
                f"the document expands to more than {MAX_NODES} values",
                file=self.file,
                line=line,
                column=column,
                expected="a file without runaway aliases",
            )
        if len(path) > MAX_DEPTH:
            raise _too_deep(self.file, *_mark(node))
        text = node.value if isinstance(node, yaml.ScalarNode) else None
        self.index.setdefault(path, Marks(_mark(key) if key is not None else None, _mark(node), text))
        if id(node) in self.active:  # a recursive alias: its positions are already indexed
            return
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                self._mapping(node, path)
            elif isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    self.walk(item, (*path, i))
        finally:
            self.active.discard(id(node))

    def _key(self, key_node: yaml.Node) -> Any:
        if not isinstance(key_node, yaml.ScalarNode):
            line, column = _mark(key_node)
            raise InputError(
                "a list or mapping used as a key",
                file=self.file,
                line=line,
                column=column,
                expected="a plain name before the ':'",
            )
        return self.loader.construct_object(key_node)

    def _mapping(self, node: yaml.MappingNode, path: FieldPath) -> None:
        seen: dict[Any, yaml.Node] = {}
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node])
                continue
            key = self._key(key_node)
            if key in seen:
                line, column = _mark(key_node)
                first = seen[key].start_mark.line + 1
                raise InputError(
                    f"duplicate key {key!r} (first at line {first})",
                    file=self.file,
                    line=line,
                    column=column,
                    field=format_path((*path, key)),
                    expected="each key once per mapping",
                )
            seen[key] = key_node
            self.walk(value_node, (*path, key), key_node)
        for source in merged:
            if isinstance(source, yaml.MappingNode):
                for key_node, value_node in source.value:
                    if key_node.tag == _MERGE_TAG:
                        continue
                    key = self._key(key_node)
                    if key not in seen:
                        seen[key] = key_node
                        self.walk(value_node, (*path, key), key_node)


# ---------------------------------------------------------------------------
# Built-in files
# ---------------------------------------------------------------------------

#: The source tree's root when dmvx is imported from a checkout (or an
#: editable install); its ``topologies/`` and ``scenarios/`` are the built-ins.
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def builtin_dirs(kind: str) -> list[Path]:
    """Directories holding the built-in files of ``kind`` (``topologies`` or
    ``scenarios``): the source tree's, then an installed wheel's, which puts
    them under ``<prefix>/share/dmvx/`` (setuptools ``data-files``)."""
    candidates = [SOURCE_ROOT / kind]
    for scheme in (sysconfig.get_default_scheme(), f"{os.name}_user"):
        try:
            candidates.append(Path(sysconfig.get_path("data", scheme)) / "share" / "dmvx" / kind)
        except KeyError:
            continue
    return [d for d in dict.fromkeys(candidates) if d.is_dir()]


def search_dirs(kind: str, relative_to: Path | None = None) -> list[Path]:
    """Where a bare name is looked up, first match wins: next to the file
    that names it (``DIR/kind`` and ``DIR/../kind``), then the working
    directory's ``kind/``, then the built-ins."""
    candidates: list[Path] = []
    if relative_to is not None:
        candidates += [relative_to / kind, relative_to.parent / kind]
    candidates.append(Path.cwd() / kind)
    candidates += builtin_dirs(kind)
    out: list[Path] = []
    for directory in candidates:
        try:
            resolved = directory.resolve()
        except OSError:
            continue
        if resolved.is_dir() and resolved not in out:
            out.append(resolved)
    return out


def is_path_like(ref: str) -> bool:
    """A reference with a directory part or a YAML suffix is a path; any
    other is a bare name to look up."""
    return "/" in ref or os.sep in ref or ref.endswith((".yml", ".yaml"))


def find_named(kind: str, ref: str, relative_to: Path | None = None) -> Path | None:
    """Resolve ``ref`` (a name or a path) to an existing file, or ``None``.

    Paths are taken relative to ``relative_to`` when given (the directory of
    the file that holds the reference), else to the working directory.
    """
    if is_path_like(ref):
        path = Path(ref).expanduser()
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        return path if path.is_file() else None
    for directory in search_dirs(kind, relative_to):
        for suffix in (".yml", ".yaml"):
            path = directory / f"{ref}{suffix}"
            if path.is_file():
                return path
    return None


def available_names(kind: str, relative_to: Path | None = None) -> list[str]:
    """The bare names :func:`find_named` would find, sorted."""
    names: set[str] = set()
    for directory in search_dirs(kind, relative_to):
        names.update(p.stem for p in directory.iterdir() if p.suffix in (".yml", ".yaml"))
    return sorted(names)


def not_found_message(kind: str, ref: str, relative_to: Path | None = None) -> tuple[str, str]:
    """``(message, expected)`` for a reference that :func:`find_named` could not resolve."""
    singular = {"topologies": "topology", "scenarios": "scenario"}.get(kind, kind)
    if is_path_like(ref):
        return f"no {singular} file {ref!r}", f"an existing .yml file or a built-in {singular} name"
    names = available_names(kind, relative_to)
    return (
        f"no {singular} named {ref!r}{did_you_mean(ref, names)}",
        f"a {singular} name ({', '.join(names) or 'none found'}) or a path to a .yml file",
    )


# ---------------------------------------------------------------------------
# Base model for file contents
# ---------------------------------------------------------------------------


class FileModel(BaseModel):
    """Base of every model read from a file: unknown fields are refused, and
    the refusal names the field, with a close match when there is one.

    pydantic's own ``extra="forbid"`` error says only "Extra inputs are not
    permitted"; checking first lets the message say which fields exist.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            allowed = list(cls.model_fields)
            for key in data:
                if key not in cls.model_fields:
                    raise Problem(
                        f"unknown field {key!r}{did_you_mean(key, allowed)}",
                        expected=one_of(allowed),
                        path=(key,),
                        at="key",
                    )
        return data
