"""The workload client of ``dmvx real``: real requests to the served program.

Run inside the client host (``python -m realmode.net.client``): it makes
``--requests`` HTTP/1.0 requests to ``--server``, one connection each, one
after the other (``--pace`` seconds apart), and prints one JSON document on
stdout: how many succeeded, when (``time.monotonic()``, the same clock in
every namespace of the machine), how many bytes came back, and the first
error. Until the first answer a refused connection is retried (the server
may still be starting); after it, an error ends the run -- the server is
gone, which is how a run stopped by a verdict looks from outside.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Any

_READY_WAIT = 20.0


def request(address: tuple[str, int], path: str, timeout: float) -> tuple[int, bytes]:
    """One request; the status code and the body."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.0 "):
        raise ConnectionError(f"not an HTTP response ({len(data)} bytes)")
    status = int(head.split()[1])
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and int(value) != len(body):
            raise ConnectionError(f"response cut short: {len(body)} of {int(value)} bytes")
    return status, body


def run(address: tuple[str, int], requests: int, path: str, pace: float, timeout: float) -> dict[str, Any]:
    done: list[list[float]] = []  # [start, end, bytes]
    error = None
    first_start = None
    give_up = time.monotonic() + _READY_WAIT
    i = 0
    while i < requests:
        start = time.monotonic()
        try:
            status, body = request(address, path, timeout)
            if status != 200:
                raise ConnectionError(f"status {status}")
        except (OSError, ConnectionError, ValueError) as exc:
            if not done and isinstance(exc, ConnectionRefusedError) and time.monotonic() < give_up:
                time.sleep(0.02)
                continue
            error = f"request {i + 1}: {type(exc).__name__}: {exc}"
            break
        end = time.monotonic()
        if first_start is None:
            first_start = start
        done.append([start, end, len(body)])
        i += 1
        if pace and i < requests:
            time.sleep(pace)
    elapsed = (done[-1][1] - first_start) if done and first_start is not None else 0.0
    return {"requests": len(done), "asked": requests, "elapsed_s": elapsed, "bytes": sum(int(d[2]) for d in done),
            "done": done, "error": error}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realmode.net.client")
    parser.add_argument("--server", required=True, help="IP:PORT")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--path", default="/file")
    parser.add_argument("--pace", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    host, _, port = args.server.rpartition(":")
    report = run((host, int(port)), args.requests, args.path, args.pace, args.timeout)
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
