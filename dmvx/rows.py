"""Flat rows: results as a table a spreadsheet, pandas or R reads as is.

``--json`` writes a result's whole document, nested as the result is. A
researcher wants something else: one row per point (or per variant, per
call), one column per quantity, numbers as numbers. :class:`Rows` is that
table, and :func:`render` writes it as ``--format csv``, ``tsv`` or ``json``
(an array of flat objects). Every command whose result can be a table (the
result has a ``rows()`` method, :class:`Tabular`) takes ``--format``; the
columns of each are listed in docs/cli.md.

Numbers are in SI base units, so no reader parses ``100us`` or ``1.91k``:
seconds, bytes, bits per second, fractions (0.05, not 5%). A column says its
unit (:class:`Column`); columns whose name ends in ``_s`` hold seconds and in
``_bytes`` bytes. Swept parameters become columns of their own, named by
their path (``topology.links[0].delay``), their values converted the same
way (:func:`si_value`: ``100us`` becomes ``0.0001``).

This module is core: it imports no pandas (``Rows.to_pandas`` imports it
when called) and writes nothing itself; :mod:`dmvx.output` prints.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from dmvx.errors import Problem

#: What a cell holds: text, a number, a flag, or nothing (an empty CSV cell, JSON null).
Value = str | int | float | bool | None


class RowFormat(Enum):
    """``--format``: how :func:`render` writes rows."""

    CSV = "csv"
    TSV = "tsv"
    JSON = "json"


#: The unit names a :class:`Column` uses: SI base units, "1" for a plain
#: number (a count, a ratio), "" for text and flags.
SECONDS, BYTES, BITS_PER_SECOND, FRACTION, COUNT, TEXT = "s", "B", "bit/s", "fraction", "1", ""


@dataclass(frozen=True)
class Column:
    """One column: its name, the unit of its numbers, and what it holds."""

    name: str
    unit: str = COUNT
    doc: str = ""


@dataclass(frozen=True)
class Rows:
    """A flat table: columns and rows of :data:`Value`, one value per column.

    ``parameters`` names the columns that are swept parameters (the
    conditions of an experiment, as opposed to what it measured); plots and
    summaries group by them."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[Value, ...], ...]
    parameters: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        width = len(self.columns)
        for i, row in enumerate(self.rows):
            if len(row) != width:
                raise ValueError(f"row {i} has {len(row)} values for {width} columns")

    @classmethod
    def from_records(
        cls, columns: Sequence[Column], records: Iterable[Mapping[str, Value]], parameters: Sequence[str] = ()
    ) -> Rows:
        """Rows from one mapping per row; a column a record lacks is None."""
        names = [c.name for c in columns]
        return cls(tuple(columns), tuple(tuple(r.get(n) for n in names) for r in records), tuple(parameters))

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def unit(self, name: str) -> str:
        """The unit of column ``name`` (KeyError if there is none)."""
        for column in self.columns:
            if column.name == name:
                return column.unit
        raise KeyError(name)

    def column(self, name: str) -> list[Value]:
        """Every row's value of column ``name``."""
        index = self.names.index(name)
        return [row[index] for row in self.rows]

    def records(self) -> list[dict[str, Value]]:
        """One dict per row, keys in column order."""
        names = self.names
        return [dict(zip(names, row)) for row in self.rows]

    def __iter__(self) -> Iterator[dict[str, Value]]:
        return iter(self.records())

    def __len__(self) -> int:
        return len(self.rows)

    def __add__(self, other: Rows) -> Rows:
        """Both tables' rows, under the union of their columns (first seen first)."""
        columns = list(self.columns) + [c for c in other.columns if c.name not in self.names]
        parameters = list(self.parameters) + [p for p in other.parameters if p not in self.parameters]
        return Rows.from_records(columns, [*self.records(), *other.records()], parameters)

    def to_pandas(self) -> Any:
        """The rows as a :class:`pandas.DataFrame` (pandas is the ``analysis``
        extra: ``pip install -e '.[analysis]'``); units are in ``df.attrs["units"]``."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Rows.to_pandas() needs pandas: pip install -e '.[analysis]'") from None
        frame = pandas.DataFrame.from_records(list(self.rows), columns=self.names)
        frame.attrs["units"] = {c.name: c.unit for c in self.columns}
        frame.attrs["parameters"] = list(self.parameters)
        return frame


@runtime_checkable
class Tabular(Protocol):
    """A result that can be flat rows (what ``--format`` asks of it)."""

    def rows(self) -> Rows: ...


def _cell(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def render(rows: Rows, fmt: RowFormat) -> str:
    """``rows`` as text: CSV (RFC 4180, a header line), TSV (tabs and newlines
    inside a cell become spaces) or JSON (an array of objects, one per row)."""
    if fmt is RowFormat.JSON:
        records = [
            {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in r.items()} for r in rows
        ]
        return json.dumps(records, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    out = io.StringIO()
    if fmt is RowFormat.CSV:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(rows.names)
        writer.writerows([_cell(v) for v in row] for row in rows.rows)
        return out.getvalue()
    for row in [rows.names, *([_cell(v) for v in row] for row in rows.rows)]:
        out.write("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row) + "\n")
    return out.getvalue()


# ---------------------------------------------------------------------------
# Values into SI numbers
# ---------------------------------------------------------------------------


def si_value(value: Any) -> tuple[Value, str]:
    """A swept parameter's value as a cell and its unit: a quantity with a
    unit (``5ms``, ``100Mbit``, ``4KiB``, ``1%``) in SI base units, a number
    or flag as it is, anything else as text (lists and maps as compact JSON)."""
    from dmvx import units

    if isinstance(value, bool):
        return value, TEXT
    if isinstance(value, (int, float)):
        return value, COUNT
    if value is None:
        return None, TEXT
    if isinstance(value, str):
        for parse, unit in (
            (units.parse_duration, SECONDS),
            (units.parse_rate, BITS_PER_SECOND),
            (units.parse_size, BYTES),
            (units.parse_fraction, FRACTION),
        ):
            try:
                number = parse(value)
            except Problem:
                continue
            # 100us is 100 * 1e-6 = 9.999999999999999e-05 in binary; 12 digits say 0.0001.
            return (float(f"{number:.12g}") if isinstance(number, float) else number), unit
        return value, TEXT
    return json.dumps(value, separators=(",", ":"), sort_keys=True), TEXT


def flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, Value]:
    """A nested JSON-like mapping as one flat row: nested keys joined with
    ``.``, list items as ``key[i]``; lists of plain values as compact JSON text."""
    out: dict[str, Value] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    out.update(flatten(item, f"{name}[{i}]."))
                else:
                    out[f"{name}[{i}]"] = _plain(item)
        else:
            out[name] = _plain(value)
    return out


def _plain(value: Any) -> Value:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def unit_of_name(name: str) -> str:
    """The unit a flattened column's name says (``elapsed_s``, ``max_seconds``:
    seconds; ``bytes``, ``frame_bytes_out``: bytes), for results whose rows
    come from :func:`flatten`."""
    parts = name.replace("[", ".").split(".")
    if any(part.endswith(("_s", "_seconds")) for part in parts):  # elapsed_s, cpu_s.monitor, lead.max_seconds
        return SECONDS
    if "bytes" in parts[-1]:  # bytes, wire_bytes, frame_bytes_out
        return BYTES
    return COUNT


def rows_of_records(records: Sequence[Mapping[str, Value]], parameters: Sequence[str] = ()) -> Rows:
    """Rows of flat records (as :func:`flatten` makes them): the columns are
    every key seen, first seen first, each with the unit its name says (text
    for a column with only text or flags)."""
    names: list[str] = []
    for record in records:
        names += [k for k in record if k not in names]
    columns = []
    for name in names:
        values = [r.get(name) for r in records]
        numeric = any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        columns.append(Column(name, unit_of_name(name) if numeric else TEXT))
    return Rows.from_records(columns, records, parameters)
