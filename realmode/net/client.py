"""The workload client of ``dmvx real``: real requests to the served program.

Run inside the client host (``python -m realmode.net.client``): it makes
``--requests`` HTTP/1.0 requests to ``--server``, one connection each, one
after the other (``--pace`` seconds apart), and prints one JSON document on
stdout: how many succeeded, when (``time.monotonic()``, the same clock in
every namespace of the machine), how many bytes came back, and the first
error. Until the first answer a refused connection is retried (the server
may still be starting); after it, an error ends the run -- the server is
gone, which is how a run stopped by a verdict looks from outside.

With ``--ab N`` it drives a served program of one's own (say lighttpd)
instead: it fetches ``--sample`` bodies round-robin over the files named in
``--digests`` (a JSON map of URL path to SHA-256) and compares each body's
digest, then runs ``ab -n N -c 1`` on ``--path``. The report has the same
keys, plus ``ab`` (ab's figures) and ``digests`` (checked, wrong); any wrong
body or failed request makes it an error, and the exit status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import socket
import subprocess
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
        try:
            start, body = _get_ok(address, path, timeout, None if done else give_up)
        except (OSError, ConnectionError, ValueError) as exc:
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
    return {
        "requests": len(done),
        "asked": requests,
        "elapsed_s": elapsed,
        "bytes": sum(int(d[2]) for d in done),
        "done": done,
        "error": error,
    }


def _get_ok(address: tuple[str, int], path: str, timeout: float, retry_until: float | None) -> tuple[float, bytes]:
    """GET ``path`` expecting 200: when the attempt began, and the body. Until
    ``retry_until`` (the server may still be starting) a refused connection
    is tried again."""
    while True:
        start = time.monotonic()
        try:
            status, body = request(address, path, timeout)
        except ConnectionRefusedError:
            if retry_until is not None and time.monotonic() < retry_until:
                time.sleep(0.02)
                continue
            raise
        if status != 200:
            raise ConnectionError(f"status {status}")
        return start, body


def check_digests(
    address: tuple[str, int], digests: dict[str, str], sample: int, timeout: float
) -> tuple[int, list[list[float]], str | None]:
    """Fetch ``sample`` bodies round-robin over ``digests``' paths: how many
    differ from their digest, each fetch's [start, end, bytes], the first error.
    Refused connections are retried until the first answer (the server may
    still be starting)."""
    paths = list(digests)
    wrong = 0
    done: list[list[float]] = []
    give_up = time.monotonic() + _READY_WAIT
    i = 0
    while i < sample:
        path = paths[i % len(paths)]
        try:
            start, body = _get_ok(address, path, timeout, None if done else give_up)
        except (OSError, ConnectionError, ValueError) as exc:
            return wrong, done, f"body {i + 1} ({path}): {type(exc).__name__}: {exc}"
        done.append([start, time.monotonic(), len(body)])
        wrong += hashlib.sha256(body).hexdigest() != digests[path]
        i += 1
    return wrong, done, None


def run_ab(address: tuple[str, int], requests: int, path: str, timeout: float) -> dict[str, Any]:
    """``ab -n REQUESTS -c 1`` on one path: ab's figures, or ``error``."""
    url = f"http://{address[0]}:{address[1]}{path}"
    try:
        done = subprocess.run(
            ["ab", "-q", "-s", str(int(max(1, timeout))), "-n", str(requests), "-c", "1", url],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        return {"error": "ab not found (Debian: apache2-utils)"}
    out = done.stdout

    def number(pattern: str) -> float | None:
        match = re.search(pattern, out, re.M)
        return float(match.group(1)) if match else None

    figures: dict[str, Any] = {
        "complete": number(r"^Complete requests:\s+(\d+)"),
        "failed": number(r"^Failed requests:\s+(\d+)"),
        "non_2xx": number(r"^Non-2xx responses:\s+(\d+)") or 0.0,
        "elapsed_s": number(r"^Time taken for tests:\s+([\d.]+) seconds"),
        "body_bytes": number(r"^HTML transferred:\s+(\d+) bytes"),
        "requests_per_s": number(r"^Requests per second:\s+([\d.]+)"),
        "mean_ms": number(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)"),
        "p50_ms": number(r"^\s+50%\s+(\d+)"),
        "p99_ms": number(r"^\s+99%\s+(\d+)"),
    }
    if done.returncode != 0 or figures["complete"] is None:
        tail = (done.stderr.strip() or out.strip())[-300:]
        figures["error"] = f"ab failed (status {done.returncode}): {tail}"
    return figures


def run_served(
    address: tuple[str, int], requests: int, path: str, digests: dict[str, str], sample: int, timeout: float
) -> dict[str, Any]:
    """The digest sample, then ab; one report in :func:`run`'s shape."""
    wrong, fetched, error = check_digests(address, digests, sample, timeout)
    ab: dict[str, Any] = {}
    if error is None:
        ab = run_ab(address, requests, path, timeout)
        error = ab.pop("error", None)
    complete = int(ab.get("complete") or 0)
    failed = int(ab.get("failed") or 0) + int(ab.get("non_2xx") or 0)
    if error is None and (wrong or failed):
        error = f"{wrong} of {sample} bodies differ from their digest, {failed} of {requests} requests failed"
    return {
        "requests": complete - failed,
        "asked": requests,
        "elapsed_s": ab.get("elapsed_s") or 0.0,
        "bytes": int(ab.get("body_bytes") or 0),
        "done": [],
        "error": error,
        "ab": ab,
        "digests": {"checked": len(fetched), "wrong": wrong, "asked": sample, "bytes": sum(int(d[2]) for d in fetched)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realmode.net.client")
    parser.add_argument("--server", required=True, help="IP:PORT")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--path", default="/file")
    parser.add_argument("--pace", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--ab", type=int, metavar="N", help="run ab -n N -c 1 on --path instead")
    parser.add_argument("--digests", help="with --ab: JSON file mapping URL paths to their SHA-256")
    parser.add_argument("--sample", type=int, default=0, help="with --ab: bodies to check against --digests")
    args = parser.parse_args(argv)
    host, _, port = args.server.rpartition(":")
    if args.ab is None:
        report = run((host, int(port)), args.requests, args.path, args.pace, args.timeout)
    else:
        try:
            with open(args.digests or "") as handle:
                digests = json.load(handle)
        except (OSError, ValueError) as exc:
            print(f"realmode.net.client: --digests {args.digests}: {exc}", file=sys.stderr)
            return 2
        report = run_served((host, int(port)), args.ab, args.path, digests, args.sample, args.timeout)
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0 if args.ab is None or report["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
