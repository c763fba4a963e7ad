"""The dmvx trace format: system calls as JSON lines.

Real mode records what each variant did (``dmvx run --record FILE``); sim mode
replays it as a workload (``workload: {kind: trace, path: FILE}``). The format
is specified in docs/trace-format.md; this module reads and writes it and has
no other dependency than the core's :class:`~dmvx.calls.Call` and
:class:`~dmvx.calls.Outcome`, so real mode can import it without SimPy.

One JSON object per line. The first line is the header, every other line one
event of one variant, in the order that variant made them::

    {"dmvx_trace": 1, "variants": [{"arch": "x86_64"}, {"arch": "i386"}]}
    {"v": 0, "call": "read", "args": [3, 1, 1], "result": 1, "out": [[1, {"hex": "41"}]], "ns": 210}
    {"v": 0, "exit": 0}

Canonical argument values map to JSON as: ``int`` and ``str`` as themselves,
``None`` as ``null``, ``bytes`` as ``{"hex": "..."}``, tuples as arrays.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dmvx.calls import Call, Outcome
from dmvx.errors import InputError

VERSION = 1


@dataclass(frozen=True, slots=True)
class TraceCall:
    """One recorded call: what it was, what it returned, how long it took."""

    call: Call
    outcome: Outcome
    ns: int | None = None  # native duration measured in real mode (entry to exit)
    gap: int | None = None  # user-space time since the previous call returned


@dataclass(frozen=True, slots=True)
class TraceEnd:
    """How a variant's recording ended: ``exit`` status or ``killed`` by a signal."""

    how: str  # "exit" | "killed"
    value: int


TraceEvent = TraceCall | TraceEnd


@dataclass
class RecordedTrace:
    """A whole trace: the header and each variant's events in order."""

    header: dict[str, Any]
    streams: dict[int, list[TraceEvent]] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        """Calls of the leader's stream (or of the first stream there is)."""
        if not self.streams:
            return 0
        stream = self.streams.get(0) or next(iter(self.streams.values()))
        return sum(1 for e in stream if isinstance(e, TraceCall))


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


def encode_value(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    if isinstance(value, (tuple, list)):
        return [encode_value(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"cannot record a {type(value).__name__} argument")


def decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) != {"hex"} or not isinstance(value["hex"], str):
            raise ValueError(f'an object argument must be {{"hex": ...}}, not {json.dumps(value)[:60]}')
        return bytes.fromhex(value["hex"])
    if isinstance(value, list):
        return tuple(decode_value(v) for v in value)
    if isinstance(value, float):
        raise ValueError(f"{value} is not an integer")
    return value


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


class TraceWriter:
    """Writes a trace line by line (flushes nothing itself; close it)."""

    def __init__(self, out: IO[str], variants: Iterable[dict[str, Any]] = (), **header: Any) -> None:
        self._out = out
        head = {"dmvx_trace": VERSION, "variants": list(variants), **header}
        self._write(head)

    def _write(self, obj: dict[str, Any]) -> None:
        self._out.write(json.dumps(obj, separators=(",", ":"), sort_keys=True) + "\n")

    def call(
        self, variant: int, call: Call, outcome: Outcome, *, ns: int | None = None, gap: int | None = None
    ) -> None:
        record: dict[str, Any] = {
            "v": variant,
            "call": call.name,
            "args": encode_value(call.args),
            "result": outcome.result,
        }
        if outcome.outputs:
            record["out"] = [[index, encode_value(data)] for index, data in outcome.outputs]
        if ns is not None:
            record["ns"] = int(ns)
        if gap is not None:
            record["gap"] = int(gap)
        self._write(record)

    def exit(self, variant: int, status: int) -> None:
        self._write({"v": variant, "exit": status})

    def killed(self, variant: int, signal: int) -> None:
        self._write({"v": variant, "killed": signal})


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def read_trace(path: str | Path) -> RecordedTrace:
    """Read a trace; any problem is one :class:`InputError` naming the line."""
    # Imported here: dmvx.yamlfile loads pydantic (a fifth of a second), which
    # writing a trace -- every `dmvx run`, through realmode.record -- never needs.
    from dmvx.yamlfile import MAX_TRACE_BYTES, read_input

    path = Path(path)
    shown = str(path)
    raw = read_input(path, file=shown, limit=MAX_TRACE_BYTES, what="JSON-lines trace file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("trace is not UTF-8 text", file=shown, expected="a JSON-lines trace file") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise InputError("empty trace", file=shown, line=1, expected='a header line {"dmvx_trace": 1, ...}')
    header = _json(lines[0], shown, 1)
    if not isinstance(header, dict) or header.get("dmvx_trace") != VERSION:
        raise InputError(
            "the first line is not a dmvx trace header",
            file=shown,
            line=1,
            expected=f'{{"dmvx_trace": {VERSION}, ...}}',
        )
    trace = RecordedTrace(header)
    ended: set[int] = set()
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        record = _json(line, shown, number)
        try:
            variant, event = _event(record)
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(
                str(exc), file=shown, line=number, expected="an event as docs/trace-format.md describes"
            ) from None
        if variant in ended:
            raise InputError(
                f"variant {variant} has an event after its end",
                file=shown,
                line=number,
                expected="nothing after a variant's exit or killed line",
            )
        trace.streams.setdefault(variant, []).append(event)
        if isinstance(event, TraceEnd):
            ended.add(variant)
    if not trace.streams:
        raise InputError("trace holds no events", file=shown, line=len(lines), expected="at least one call")
    return trace


def _json(line: str, shown: str, number: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not JSON: {exc.msg}", file=shown, line=number, column=exc.colno, expected="one JSON object per line"
        ) from None


def _int(record: dict[str, Any], key: str) -> int:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key!r} must be an integer, not {json.dumps(value)}")
    return value


def _event(record: Any) -> tuple[int, TraceEvent]:
    if not isinstance(record, dict):
        raise ValueError("an event must be a JSON object")
    if "v" not in record:
        raise ValueError("event without 'v' (the variant index)")
    variant = _int(record, "v")
    if variant < 0:
        raise ValueError(f"variant index {variant} is negative")
    if "exit" in record:
        return variant, TraceEnd("exit", _int(record, "exit"))
    if "killed" in record:
        return variant, TraceEnd("killed", _int(record, "killed"))
    if "call" not in record:
        raise ValueError("event with neither 'call', 'exit' nor 'killed'")
    name = record["call"]
    if not isinstance(name, str) or not name:
        raise ValueError("'call' must be a call name")
    unknown = set(record) - {"v", "call", "args", "result", "out", "ns", "gap", "t"}
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]!r} in a call event")
    args = decode_value(record.get("args", []))
    if not isinstance(args, tuple):
        raise ValueError("'args' must be an array")
    outputs = []
    for item in record.get("out", []):
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], int):
            raise ValueError("each 'out' item must be [argument index, {\"hex\": ...}]")
        data = decode_value(item[1])
        if not isinstance(data, bytes):
            raise ValueError('output data must be {"hex": ...}')
        outputs.append((item[0], data))
    ns = _int(record, "ns") if "ns" in record else None
    gap = _int(record, "gap") if "gap" in record else None
    if (ns is not None and ns < 0) or (gap is not None and gap < 0):
        raise ValueError("'ns' and 'gap' must not be negative")
    return variant, TraceCall(Call(name, args), Outcome(_int(record, "result"), tuple(outputs)), ns, gap)
