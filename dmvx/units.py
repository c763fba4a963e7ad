"""Quantities written as strings with units: ``5ms``, ``100Mbit``, ``4KiB``, ``0.1%``.

Files always say the unit. A bare number is refused (``delay: 5`` could be
seconds, milliseconds or a typo) with a hint that shows the fix, and a unit
of the wrong kind (``delay: 100Mbit``) is refused naming the kind expected.
Parsed values are plain SI numbers:

==========  =============  ===================================================
family      value          units
==========  =============  ===================================================
duration    seconds        ``ns``, ``us`` (or ``µs``), ``ms``, ``s``, ``min``
rate        bits/second    ``bit``, ``kbit``, ``Mbit``, ``Gbit``, ``Tbit``
                           (also ``.../s`` and ``bps``, ``kbps``, ``Mbps``,
                           ``Gbps``, ``Tbps``), all *bits*; bytes per second
                           only as ``B/s``, ``kB/s``, ``MB/s``, ``GB/s``,
                           ``KiB/s``, ``MiB/s``, ``GiB/s``
size        bytes (int)    ``B``, ``kB`` (= ``KB`` = 1000), ``MB``, ``GB``,
                           ``TB``, ``KiB`` (1024), ``MiB``, ``GiB``, ``TiB``
fraction    0.0 .. 1.0     ``%``
packets     count (int)    ``p``, ``pkt``, ``pkts``, ``packet``, ``packets``
==========  =============  ===================================================

On ``Mbps``: in networking prose it means megabits, and that is what it
means here. Linux ``tc`` reads ``mbps`` as megaBYTES per second, so the
lower-case ``kbps``/``mbps``/``gbps``/``tbps`` forms are refused as ambiguous
rather than silently read one way; lower-case prefixes are fine with ``bit``
(``mbit`` = ``Mbit``, as tc writes them). A byte rate is always spelt with
``B/s``.

The pydantic types :data:`Duration`, :data:`Rate`, :data:`Size`,
:data:`Fraction` and :data:`Queue` let a model field just declare its
family; they serialise back to a canonical string (so a dumped model
validates again) and appear in JSON Schema as a string with a ``pattern``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from dmvx.errors import Problem, did_you_mean

_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_QUANTITY = re.compile(rf"^\s*(?P<number>{_NUMBER})\s*(?P<unit>\S*?)\s*$")

_DURATION_UNITS: Mapping[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "min": 60.0,
}

_BIT_PREFIXES = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "m": 1e6, "G": 1e9, "g": 1e9, "T": 1e12, "t": 1e12}
_RATE_UNITS: dict[str, float] = {}
for _p, _f in _BIT_PREFIXES.items():
    _RATE_UNITS[f"{_p}bit"] = _f
    _RATE_UNITS[f"{_p}bit/s"] = _f
for _p in ("", "k", "K", "M", "G", "T"):
    _RATE_UNITS[f"{_p}bps"] = _BIT_PREFIXES[_p]
_BYTE_FACTORS: Mapping[str, int] = {
    "B": 1,
    "kB": 10**3,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
for _u, _f in _BYTE_FACTORS.items():
    if _u not in ("TB", "TiB"):
        _RATE_UNITS[f"{_u}/s"] = 8.0 * _f
#: tc reads these as bytes per second; people mean bits. Refuse both readings.
_AMBIGUOUS_RATES = frozenset({"mbps", "gbps", "tbps", "kbps"}) - set(_RATE_UNITS)

_SIZE_UNITS: Mapping[str, int] = dict(_BYTE_FACTORS)
_PERCENT_UNITS: Mapping[str, float] = {"%": 0.01}
_PACKET_UNITS: Mapping[str, int] = {"p": 1, "pkt": 1, "pkts": 1, "packet": 1, "packets": 1}

Family = Literal["duration", "rate", "size", "fraction", "packets"]

_FAMILIES: Mapping[str, Mapping[str, float]] = {
    "duration": _DURATION_UNITS,
    "rate": _RATE_UNITS,
    "size": _SIZE_UNITS,
    "fraction": _PERCENT_UNITS,
    "packets": _PACKET_UNITS,
}

#: What to write, per family: the ``expected`` part of an error message.
EXPECTED: Mapping[str, str] = {
    "duration": "a number with a unit, e.g. 5ms (ns, us, ms, s, min)",
    "rate": "a number with a unit, e.g. 100Mbit (bit, kbit, Mbit, Gbit, Mbps; MB/s for bytes)",
    "size": "a number with a unit, e.g. 4KiB (B, kB, MB, GB, KiB, MiB, GiB)",
    "fraction": "a percentage, e.g. 0.1%",
    "packets": "a number of packets, e.g. 100packets",
    "queue": "a packet count or a size, e.g. 100packets or 64KiB",
}
_EXAMPLE = {
    "duration": "5ms",
    "rate": "100Mbit",
    "size": "4KiB",
    "fraction": "0.1%",
    "packets": "100packets",
    "queue": "100packets",
}
_ARTICLE = {
    "duration": "a duration",
    "rate": "a rate",
    "size": "a size",
    "fraction": "a percentage",
    "packets": "a packet count",
    "queue": "a queue limit",
}


class UnitError(Problem):
    """A quantity that cannot be read as the family it should be."""


def _split(text: object, family: str) -> tuple[float, str, str]:
    """Return ``(number, unit, source_text)`` or raise :class:`UnitError`."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise UnitError(f"{_show(text)} is not {_ARTICLE[family]}", expected=EXPECTED[family])
    if not isinstance(text, str):
        # A YAML number: the unit is missing. Show the fix with the user's number.
        number = _plain(text)
        raise UnitError(
            f"'{number}' is not {_ARTICLE[family]} (write {number}{_unit_of(_EXAMPLE[family])}, not {number})",
            expected=EXPECTED[family],
        )
    match = _QUANTITY.match(text)
    if match is None:
        raise UnitError(f"{text!r} is not {_ARTICLE[family]}", expected=EXPECTED[family])
    number_text, unit = match.group("number"), match.group("unit")
    if not unit:
        raise UnitError(
            f"{text!r} is not {_ARTICLE[family]} (write {number_text}{_unit_of(_EXAMPLE[family])}, not {number_text})",
            expected=EXPECTED[family],
        )
    value = float(number_text)
    if not math.isfinite(value):
        raise UnitError(f"{text!r} is out of range", expected=EXPECTED[family])
    return value, unit, text


def _unit_of(example: str) -> str:
    return re.sub(r"^[0-9.]+", "", example)


def _plain(number: float | int) -> str:
    return str(int(number)) if float(number).is_integer() else repr(number)


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else f"'{value}'"


def _unit_factor(unit: str, family: str, text: str, families: tuple[str, ...]) -> float:
    for name in families:
        table = _FAMILIES[name]
        if unit in table:
            return table[unit]
    if family == "rate" and unit in _AMBIGUOUS_RATES:
        raise UnitError(
            f"{text!r}: unit {unit!r} is ambiguous (tc reads it as bytes per second)",
            expected=f"{unit[0].upper()}bit for bits or {unit[0].upper()}B/s for bytes per second",
        )
    for other, table in _FAMILIES.items():
        if other not in families and unit in table:
            raise UnitError(f"{text!r} is {_ARTICLE[other]}, not {_ARTICLE[family]}", expected=EXPECTED[family])
    known = [u for name in families for u in _FAMILIES[name]]
    raise UnitError(f"{text!r} has an unknown unit {unit!r}{did_you_mean(unit, known)}", expected=EXPECTED[family])


def parse_duration(text: object) -> float:
    """``"5ms"`` -> ``0.005`` seconds. Negative durations are refused."""
    value, unit, source = _split(text, "duration")
    seconds = value * _unit_factor(unit, "duration", source, ("duration",))
    if seconds < 0:
        raise UnitError(f"{source!r} is negative", expected="a duration of 0 or more")
    return seconds


def parse_rate(text: object) -> float:
    """``"100Mbit"`` -> ``1e8`` bits per second. Must be positive."""
    value, unit, source = _split(text, "rate")
    bps = value * _unit_factor(unit, "rate", source, ("rate",))
    if bps <= 0:
        raise UnitError(f"{source!r} is not a positive rate", expected="a rate above 0, e.g. 100Mbit")
    return bps


def parse_size(text: object) -> int:
    """``"4KiB"`` -> ``4096`` bytes. Must be a whole, non-negative number of bytes."""
    value, unit, source = _split(text, "size")
    exact = value * _unit_factor(unit, "size", source, ("size",))
    if exact < 0:
        raise UnitError(f"{source!r} is negative", expected="a size of 0 or more")
    rounded = round(exact)
    if abs(exact - rounded) > 1e-6 * max(1.0, exact):
        raise UnitError(f"{source!r} is not a whole number of bytes", expected=EXPECTED["size"])
    return rounded


def parse_fraction(text: object) -> float:
    """``"0.1%"`` -> ``0.001``. Must lie in 0%..100%."""
    value, unit, source = _split(text, "fraction")
    fraction = value * _unit_factor(unit, "fraction", source, ("fraction",))
    if not 0.0 <= fraction <= 1.0:
        raise UnitError(f"{source!r} is outside 0%..100%", expected="a percentage from 0% to 100%")
    return fraction


@dataclass(frozen=True, slots=True)
class QueueLimit:
    """A link's queue length: ``amount`` packets or ``amount`` bytes."""

    amount: int
    unit: Literal["packets", "bytes"]

    def __str__(self) -> str:
        return f"{self.amount}packets" if self.unit == "packets" else format_size(self.amount)


def parse_queue(text: object) -> QueueLimit:
    """``"100packets"`` or ``"64KiB"`` -> a :class:`QueueLimit` (positive)."""
    if isinstance(text, QueueLimit):
        return text
    value, unit, source = _split(text, "queue")
    factor = _unit_factor(unit, "queue", source, ("packets", "size"))
    kind: Literal["packets", "bytes"] = "packets" if unit in _PACKET_UNITS else "bytes"
    amount = value * factor
    if amount <= 0 or abs(amount - round(amount)) > 1e-6 * max(1.0, amount):
        raise UnitError(f"{source!r} is not a positive whole number of {kind}", expected=EXPECTED["queue"])
    return QueueLimit(round(amount), kind)


# ---------------------------------------------------------------------------
# Canonical strings: the inverse of the parsers, used when a model is dumped.
# ---------------------------------------------------------------------------


def _num(value: float) -> str:
    text = repr(round(value, 9))
    return text[:-2] if text.endswith(".0") else text


def format_duration(seconds: float) -> str:
    """``0.005`` -> ``"5ms"``."""
    if seconds == 0:
        return "0s"
    for unit, factor in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= factor:
            return f"{_num(seconds / factor)}{unit}"
    return f"{_num(seconds / 1e-9)}ns"


def format_rate(bps: float) -> str:
    """``1e8`` -> ``"100Mbit"``."""
    for unit, factor in (("Tbit", 1e12), ("Gbit", 1e9), ("Mbit", 1e6), ("kbit", 1e3)):
        if bps >= factor:
            return f"{_num(bps / factor)}{unit}"
    return f"{_num(bps)}bit"


def format_size(size: int) -> str:
    """``4096`` -> ``"4KiB"``, ``1500`` -> ``"1500B"``, ``2000`` -> ``"2kB"``."""
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    for unit, factor in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def format_fraction(fraction: float) -> str:
    """``0.001`` -> ``"0.1%"``."""
    return f"{_num(fraction * 100)}%"


# ---------------------------------------------------------------------------
# pydantic types
# ---------------------------------------------------------------------------


def _pattern(*families: str) -> str:
    units = sorted({u for f in families for u in _FAMILIES[f]}, key=lambda u: (-len(u), u))
    alternatives = "|".join(re.escape(u) for u in units)
    return rf"^\s*(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*(?:{alternatives})\s*$"


def _field_type(
    python_type: type,
    parser: Callable[[Any], Any],
    formatter: Callable[[Any], str],
    families: tuple[str, ...],
    family: str,
    description: str,
) -> Any:
    schema = {
        "type": "string",
        "pattern": _pattern(*families),
        "description": description,
        "examples": [_EXAMPLE[family]],
    }
    return Annotated[
        python_type,
        PlainValidator(parser),
        PlainSerializer(formatter, return_type=str),
        WithJsonSchema(schema),
    ]


Duration = _field_type(
    float,
    parse_duration,
    format_duration,
    ("duration",),
    "duration",
    "A duration: a number and a unit (ns, us, ms, s, min), e.g. 5ms. Read as seconds.",
)
Rate = _field_type(
    float,
    parse_rate,
    format_rate,
    ("rate",),
    "rate",
    "A rate: a number and a unit, e.g. 100Mbit. bit, kbit, Mbit, Gbit, bps, Mbps... are bits "
    "per second; B/s, kB/s, MB/s, MiB/s... are bytes per second. Read as bits per second.",
)
Size = _field_type(
    int,
    parse_size,
    format_size,
    ("size",),
    "size",
    "A size: a number and a unit, e.g. 4KiB. kB = KB = 1000 bytes, KiB = 1024 bytes. Read as bytes.",
)
Fraction = _field_type(
    float,
    parse_fraction,
    format_fraction,
    ("fraction",),
    "fraction",
    "A percentage from 0% to 100%, e.g. 0.1%. Read as a fraction from 0 to 1.",
)
Queue = _field_type(
    QueueLimit,
    parse_queue,
    str,
    ("packets", "size"),
    "queue",
    "A queue limit: a packet count (e.g. 100packets, 100p) or a size in bytes (e.g. 64KiB).",
)
