"""lighttpd natively, under dmon and under dmvx, in one run, with ab as the client.

    .venv/bin/python benchmarks/bench_lighttpd.py [--requests 10000] [--sample 500] [--json]

On this machine (``dmvx run``: two variants, CONNECTORs on loopback), not yet
on the two-host Mininet topology (docs/case-study.md says why). Per
configuration: start Debian's lighttpd in the foreground, single process
(``server.max-worker = 0``), serving a static tree of files of several sizes;
fetch a sample of them and compare each body's SHA-256 with the file's; run
``ab -n REQUESTS -c 1`` on a 4 KiB file; read throughput and p50/p99 latency
from ab; stop the run with SIGINT (lighttpd never ends by itself) and take a
divergence as ``dmvx run`` reports it on stderr.

ASLR stays on: lighttpd keeps connection pointers in ``epoll_event.data``,
and real mode hands each variant its own data for the descriptor an event is
for (realmode/epoll.py; docs/case-study.md, "the epoll gap").

Needs root (ptrace, port 8089 on 127.0.0.1), lighttpd and ab.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = 8089
SIZES = {"f100.bin": 100, "f4k.bin": 4096, "f64k.bin": 65536, "f1m.bin": 1 << 20}
CONFIG = """server.document-root = "{root}"
server.port = {port}
server.bind = "127.0.0.1"
server.max-worker = 0
server.errorlog = "{log}"
server.modules = ()
mimetype.assign = ( "" => "application/octet-stream" )
"""


def make_tree(directory: Path) -> tuple[Path, dict[str, str]]:
    """The static tree, its config file, and each file's SHA-256."""
    www = directory / "www"
    www.mkdir()
    digests = {}
    for name, size in SIZES.items():
        data = os.urandom(size)
        (www / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    config = directory / "lighttpd.conf"
    config.write_text(CONFIG.format(root=www, port=PORT, log=directory / "error.log"))
    return config, digests


def server_argv(config: Path, policy: str | None) -> list[str]:
    program = [shutil.which("lighttpd") or "lighttpd", "-D", "-f", str(config)]
    if policy is None:
        return program
    return [sys.executable, "-m", "dmvx", "run", "--policy", policy, "--"] + program


def wait_listening(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/f100.bin", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("lighttpd did not start listening")


def check_bodies(digests: dict[str, str], sample: int) -> int:
    """Fetch ``sample`` bodies round-robin over the files; the number that differ."""
    names = list(digests)
    wrong = 0
    for i in range(sample):
        name = names[i % len(names)]
        body = urllib.request.urlopen(f"http://127.0.0.1:{PORT}/{name}", timeout=10).read()
        wrong += hashlib.sha256(body).hexdigest() != digests[name]
    return wrong


def run_ab(requests: int) -> dict[str, float]:
    out = subprocess.run(["ab", "-q", "-n", str(requests), "-c", "1", f"http://127.0.0.1:{PORT}/f4k.bin"],
                         capture_output=True, text=True, check=True).stdout

    def number(pattern: str) -> float:
        match = re.search(pattern, out, re.M)
        if match is None:
            raise SystemExit(f"ab printed no {pattern!r}:\n{out}")
        return float(match.group(1))

    return {"requests_per_s": number(r"^Requests per second:\s+([\d.]+)"),
            "failed": number(r"^Failed requests:\s+(\d+)"),
            "mean_ms": number(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)"),
            "p50_ms": number(r"^\s+50%\s+(\d+)"), "p99_ms": number(r"^\s+99%\s+(\d+)")}


def one(config: Path, digests: dict[str, str], policy: str | None, requests: int, sample: int) -> dict:
    server = subprocess.Popen(server_argv(config, policy), cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_listening()
        wrong = check_bodies(digests, sample)
        ab = run_ab(requests)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            _, err = server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
    diverged = "divergence" in err
    return {"policy": policy or "native", "bodies_checked": sample, "bodies_wrong": wrong, **ab,
            "divergence": err.strip().splitlines()[0] if diverged else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for tool in ("lighttpd", "ab"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (Debian: lighttpd, apache2-utils)")
    with tempfile.TemporaryDirectory() as tmp:
        config, digests = make_tree(Path(tmp))
        rows = [one(config, digests, policy, args.requests, args.sample) for policy in (None, "dmon", "dmvx")]
    native = rows[0]["requests_per_s"]
    for row in rows:
        row["slowdown"] = native / row["requests_per_s"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"lighttpd, ab -n {args.requests} -c 1 on a 4 KiB file; {args.sample} bodies checked by SHA-256")
    print(f"{'run':<8}{'req/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'mean ms':>9}{'slowdown':>10}{'wrong':>7}  divergence")
    for r in rows:
        print(f"{r['policy']:<8}{r['requests_per_s']:>10.1f}{r['p50_ms']:>8.0f}{r['p99_ms']:>8.0f}"
              f"{r['mean_ms']:>9.3f}{r['slowdown']:>9.2f}x{r['bodies_wrong'] + r['failed']:>7.0f}  "
              f"{r['divergence'] or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
