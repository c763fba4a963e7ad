"""lighttpd on this machine under ``ab -c 1``: natively, or as two variants
under ``dmvx run`` (CONNECTORs on loopback).

``benchmarks/bench_lighttpd.py`` prints these runs side by side and
``dmvx calibrate --check`` measures its server row with them, so both take
them from here. The tree, config and digests are those of
``dmvx real --server lighttpd`` (:mod:`realmode.net.lighttpd`); the client is
:mod:`realmode.net.client`'s, aimed at loopback.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from dmvx.exitstatus import EnvironmentProblem
from realmode.net import client, lighttpd

#: The port lighttpd listens on, on 127.0.0.1.
PORT = 8089
ADDRESS = ("127.0.0.1", PORT)
#: Seconds ab may wait for one answer.
_AB_TIMEOUT = 30.0
#: The repository: ``dmvx run`` starts there.
_ROOT = Path(__file__).resolve().parent.parent


def server_argv(config: Path, policy: str | None, record: Path | None = None) -> list[str]:
    """lighttpd in the foreground, itself or under ``dmvx run --policy policy``."""
    program = [lighttpd.programs()[0], "-D", "-f", str(config)]
    if policy is None:
        return program
    recording = ["--record", str(record)] if record is not None else []
    return [sys.executable, "-m", "dmvx", "run", "--policy", policy, *recording, "--"] + program


def wait_listening(timeout: float = 10.0) -> None:
    """Until lighttpd answers (the variants may take a moment to start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/f100.bin", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise EnvironmentProblem("lighttpd did not start listening on 127.0.0.1:8089")


def serve(config: Path, digests: dict[str, str], policy: str | None, requests: int, sample: int,
          record: Path | None = None) -> dict[str, Any]:
    """lighttpd natively (``policy`` None) or under ``dmvx run``, ``sample``
    bodies checked against ``digests`` and then ``ab -n requests -c 1`` on
    the 4 KiB file; with ``record``, the run's trace goes there.

    The report: ``policy``, ``bodies_checked``, ``bodies_wrong``, ab's
    figures (``requests_per_s``, ``failed``, ``mean_ms``, ``p50_ms``,
    ``p99_ms``) and ``divergence`` (the first line ``dmvx run`` printed
    about one, or None)."""
    server = subprocess.Popen(server_argv(config, policy, record), cwd=_ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_listening()
        wrong, _, error = client.check_digests(ADDRESS, {f"/{name}": d for name, d in digests.items()}, sample,
                                               timeout=10)
        if error is not None:
            raise EnvironmentProblem(f"lighttpd under {policy or 'no MVX'}: {error}")
        ab = client.run_ab(ADDRESS, requests, lighttpd.AB_PATH, _AB_TIMEOUT)
        if "error" in ab:
            raise EnvironmentProblem(f"lighttpd under {policy or 'no MVX'}: {ab['error']}")
    finally:
        # SIGTERM ends dmvx run as Ctrl-C does; a background job ignores SIGINT.
        server.send_signal(signal.SIGTERM)
        try:
            _, err = server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
    figures = {key: ab[key] for key in ("requests_per_s", "failed", "mean_ms", "p50_ms", "p99_ms")}
    diverged = "divergence" in err
    return {"policy": policy or "native", "bodies_checked": sample, "bodies_wrong": wrong, **figures,
            "divergence": err.strip().splitlines()[0] if diverged else None}
