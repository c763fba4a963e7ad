"""Quantities with units: parsing, refusals, canonical strings, pydantic types."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from dmvx.units import (
    Duration,
    Fraction,
    Queue,
    QueueLimit,
    Rate,
    Size,
    UnitError,
    format_duration,
    format_fraction,
    format_rate,
    format_size,
    parse_duration,
    parse_fraction,
    parse_queue,
    parse_rate,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5ms", 0.005),
        ("0.1ms", 1e-4),
        ("250us", 250e-6),
        ("250µs", 250e-6),
        ("1s", 1.0),
        ("2ns", 2e-9),
        ("1.5 s", 1.5),
        ("2min", 120.0),
        ("0ms", 0.0),
        (".5ms", 5e-4),
        ("1e3us", 1e-3),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("100Mbit", 1e8),
        ("1Gbit", 1e9),
        ("10kbit", 1e4),
        ("10Kbit", 1e4),
        ("100Mbps", 1e8),
        ("100mbit", 1e8),
        ("100Mbit/s", 1e8),
        ("12.5MB/s", 1e8),
        ("1KiB/s", 8192),
        ("64bit", 64),
    ],
)
def test_rates_are_bits_per_second(text: str, bps: float) -> None:
    assert parse_rate(text) == pytest.approx(bps)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4KiB", 4096),
        ("16MiB", 16 * 2**20),
        ("1500B", 1500),
        ("1kB", 1000),
        ("1KB", 1000),
        ("2GB", 2 * 10**9),
        ("1.5KiB", 1536),
        ("0B", 0),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size
    assert isinstance(parse_size(text), int)


@pytest.mark.parametrize(("text", "fraction"), [("0.1%", 0.001), ("0%", 0.0), ("100%", 1.0), ("2.5%", 0.025)])
def test_percentages(text: str, fraction: float) -> None:
    assert parse_fraction(text) == pytest.approx(fraction)


def test_queue_limits_are_packets_or_bytes() -> None:
    assert parse_queue("100packets") == QueueLimit(100, "packets")
    assert parse_queue("100p") == QueueLimit(100, "packets")
    assert parse_queue("64KiB") == QueueLimit(65536, "bytes")
    assert str(QueueLimit(100, "packets")) == "100packets"
    assert str(QueueLimit(65536, "bytes")) == "64KiB"


@pytest.mark.parametrize(
    ("parser", "value", "message", "expected"),
    [
        (parse_duration, 5, "'5' is not a duration (write 5ms, not 5)", "e.g. 5ms"),
        (parse_duration, "5", "'5' is not a duration (write 5ms, not 5)", "e.g. 5ms"),
        (parse_duration, 0.5, "'0.5' is not a duration (write 0.5ms, not 0.5)", "e.g. 5ms"),
        (parse_rate, 100, "'100' is not a rate (write 100Mbit, not 100)", "e.g. 100Mbit"),
        (parse_size, 4096, "'4096' is not a size (write 4096KiB, not 4096)", "e.g. 4KiB"),
        (parse_fraction, 0.1, "'0.1' is not a percentage (write 0.1%, not 0.1)", "0.1%"),
        (parse_duration, "100Mbit", "'100Mbit' is a rate, not a duration", "e.g. 5ms"),
        (parse_rate, "5ms", "'5ms' is a duration, not a rate", "e.g. 100Mbit"),
        (parse_size, "10%", "'10%' is a percentage, not a size", "e.g. 4KiB"),
        (parse_duration, "5mss", "unknown unit 'mss' (did you mean 'ms'?)", "e.g. 5ms"),
        (parse_duration, "-1ms", "'-1ms' is negative", "0 or more"),
        (parse_rate, "-10Mbit", "'-10Mbit' is not a positive rate", "above 0"),
        (parse_rate, "0bit", "'0bit' is not a positive rate", "above 0"),
        (parse_rate, "10mbps", "unit 'mbps' is ambiguous", "Mbit for bits or MB/s"),
        (parse_fraction, "150%", "'150%' is outside 0%..100%", "from 0% to 100%"),
        (parse_size, "0.5B", "not a whole number of bytes", "e.g. 4KiB"),
        (parse_size, "-1KiB", "'-1KiB' is negative", "0 or more"),
        (parse_duration, "fast", "'fast' is not a duration", "e.g. 5ms"),
        (parse_duration, True, "'True' is not a duration", "e.g. 5ms"),
        (parse_duration, None, "'None' is not a duration", "e.g. 5ms"),
        (parse_duration, "1e999s", "out of range", "e.g. 5ms"),
        (parse_queue, "0packets", "not a positive whole number of packets", "100packets or 64KiB"),
        (parse_queue, "5ms", "'5ms' is a duration, not a queue limit", "100packets or 64KiB"),
    ],
)
def test_refusals_say_what_to_write(parser, value, message, expected) -> None:
    with pytest.raises(UnitError) as caught:
        parser(value)
    assert message in caught.value.message
    assert caught.value.expected is not None and expected in caught.value.expected


def test_formatting() -> None:
    assert format_duration(0.005) == "5ms"
    assert format_duration(1e-4) == "100us"
    assert format_duration(0) == "0s"
    assert format_duration(2.5) == "2.5s"
    assert format_rate(1e8) == "100Mbit"
    assert format_rate(12.5e6 * 8) == "100Mbit"
    assert format_size(16 * 2**20) == "16MiB"
    assert format_size(1500) == "1500B"
    assert format_size(2000) == "2kB"
    assert format_fraction(0.001) == "0.1%"


@settings(derandomize=True)
@given(st.floats(min_value=0, max_value=1e4, allow_nan=False))
def test_duration_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-6, abs=1e-9)


@settings(derandomize=True)
@given(st.floats(min_value=1, max_value=1e13, allow_nan=False))
def test_rate_round_trip(bps: float) -> None:
    assert parse_rate(format_rate(bps)) == pytest.approx(bps, rel=1e-6)


@settings(derandomize=True)
@given(st.integers(min_value=0, max_value=2**50))
def test_size_round_trip(size: int) -> None:
    assert parse_size(format_size(size)) == size


@settings(derandomize=True)
@given(st.floats(min_value=0, max_value=1, allow_nan=False))
def test_fraction_round_trip(fraction: float) -> None:
    assert parse_fraction(format_fraction(fraction)) == pytest.approx(fraction, abs=1e-9)


class _Knobs(BaseModel):
    delay: Duration
    bw: Rate
    buffer: Size
    loss: Fraction
    queue: Queue


def test_pydantic_types_parse_dump_and_publish_a_pattern() -> None:
    knobs = _Knobs(delay="5ms", bw="100Mbit", buffer="4KiB", loss="0.1%", queue="100p")
    assert (knobs.delay, knobs.bw, knobs.buffer, knobs.loss) == (0.005, 1e8, 4096, 0.001)
    assert knobs.queue == QueueLimit(100, "packets")
    dumped = knobs.model_dump(mode="json")
    assert dumped == {"delay": "5ms", "bw": "100Mbit", "buffer": "4KiB", "loss": "0.1%", "queue": "100packets"}
    assert _Knobs.model_validate(json.loads(json.dumps(dumped))) == knobs
    schema = _Knobs.model_json_schema()["properties"]
    for name in ("delay", "bw", "buffer", "loss", "queue"):
        assert schema[name]["type"] == "string"
        assert schema[name]["pattern"].startswith("^")
        assert schema[name]["description"]


def test_the_published_pattern_agrees_with_the_parser() -> None:
    import re

    pattern = re.compile(_Knobs.model_json_schema()["properties"]["delay"]["pattern"])
    for good in ("5ms", "0.1ms", "250us", "1 s"):
        assert pattern.match(good)
    for bad in ("5", "100Mbit", "ms", "-1ms"):
        assert not pattern.match(bad)


def test_a_bare_number_fails_validation_with_the_hint() -> None:
    with pytest.raises(ValidationError) as caught:
        _Knobs(delay=5, bw="1Mbit", buffer="1B", loss="0%", queue="1p")
    (error,) = caught.value.errors()
    assert error["loc"] == ("delay",)
    assert "write 5ms, not 5" in str(error["ctx"]["error"])
