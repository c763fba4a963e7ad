"""How fast the CONNECTOR protocol encodes and decodes, in messages per second.

    .venv/bin/python benchmarks/bench_protocol.py [--seconds 0.5]

For each message shape it times three things separately: ``FrameWriter.encode``
(codec + header + AEAD seal), ``FrameReader.feed`` + ``next_message`` (AEAD open,
sequence check, decode), and the codec alone (``encode_message`` +
``decode_message``, no framing). The figure to watch is the round trip of a
small entry: a ptrace stop costs ~15-20 us on the machines we use, so the
protocol must stay well below that per call.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dmvx.calls import Call, Outcome
from dmvx.codec import decode_message, encode_message
from dmvx.messages import Ack, Entry, EntryKind
from dmvx.protocol import FrameReader, FrameWriter, new_run_key

SHAPES = {
    "small entry (write 12 B, result)": Entry(
        "0", 41, Call("write", (1, b"hello world\n", 12)), EntryKind.RESULT, Outcome(12)
    ),
    "read entry (4 KiB output)": Entry(
        "0", 42, Call("read", (3, 4096)), EntryKind.FULL, Outcome(4096, ((1, os.urandom(4096)),))
    ),
    "ack": Ack("0", 41, 1),
    "read entry (1 MiB output)": Entry(
        "0", 43, Call("read", (3, 1 << 20)), EntryKind.FULL, Outcome(1 << 20, ((1, os.urandom(1 << 20)),))
    ),
}


def rate(fn, seconds: float) -> float:
    """Calls of ``fn`` per second, over batches until ``seconds`` have passed."""
    done, batch = 0, 1
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(batch):
            fn()
        done += batch
        batch = min(batch * 2, 4096)
    return done / (time.perf_counter() - start)


def bench(message, seconds: float) -> tuple[float, float, float, int]:
    key = new_run_key()
    writer = FrameWriter(key, 0, 1)
    frame_size = len(writer.encode(message))
    encode_rate = rate(lambda: writer.encode(message), seconds)

    # Pre-encode a stream so decoding is timed alone, frames in sequence.
    count = max(1, min(20000, int(encode_rate * seconds)))
    writer = FrameWriter(key, 0, 1)
    frames = [writer.encode(message) for _ in range(count)]
    reader = FrameReader(key, 0, 1)
    start = time.perf_counter()
    for frame in frames:
        reader.feed(frame)
        reader.next_message()
    decode_rate = count / (time.perf_counter() - start)

    codec_rate = rate(lambda: decode_message(*encode_message(message)), seconds)
    return encode_rate, decode_rate, codec_rate, frame_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement (default 0.5)")
    seconds = parser.parse_args().seconds
    print(f"{'message':36} {'frame B':>9} {'encode/s':>11} {'decode/s':>11} {'round trip':>11} {'codec rt/s':>11}")
    for name, message in SHAPES.items():
        enc, dec, codec_rt, size = bench(message, seconds)
        round_trip_us = 1e6 / enc + 1e6 / dec
        print(f"{name:36} {size:9d} {enc:11,.0f} {dec:11,.0f} {round_trip_us:8.1f} us {codec_rt:11,.0f}")


if __name__ == "__main__":
    main()
