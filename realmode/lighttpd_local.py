"""lighttpd on this machine under ``ab -c 1``: natively, or as two variants
under ``dmvx run`` (CONNECTORs on loopback).

``benchmarks/bench_lighttpd.py`` prints these runs side by side and
``dmvx calibrate --check`` measures its server row with them, so both take
them from here. The tree, config and digests are those of
``dmvx real --server lighttpd`` (:mod:`realmode.net.lighttpd`); the client is
:mod:`realmode.net.client`'s, aimed at loopback.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dmvx.exitstatus import EnvironmentProblem
from realmode.net import client, lighttpd

#: The port lighttpd listens on, on 127.0.0.1, unless told another
#: (:func:`free_port`: runs of several people on one machine must not meet
#: on one port -- ab would measure, or reset, someone else's server).
PORT = 8089
ADDRESS = ("127.0.0.1", PORT)


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on now, for one run's lighttpd."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: Seconds ab may wait for one answer.
_AB_TIMEOUT = 30.0
#: The repository: ``dmvx run`` starts there.
_ROOT = Path(__file__).resolve().parent.parent


def server_argv(
    config: Path,
    policy: str | None,
    record: Path | None = None,
    in_process: bool = False,
    placement: str | None = None,
    report: bool = False,
) -> list[str]:
    """lighttpd in the foreground, itself or under ``dmvx run --policy policy``
    (with ``--in-process on`` if ``in_process``, else ``off``; ``--placement``
    if ``placement``; ``--json`` if ``report``)."""
    program = [lighttpd.programs()[0], "-D", "-f", str(config)]
    if policy is None:
        return program
    recording = ["--record", str(record)] if record is not None else []
    path = ["--in-process", "on" if in_process else "off"]
    placed = ["--placement", placement] if placement is not None else []
    json_ = ["--json"] if report else []
    return [sys.executable, "-m", "dmvx", "run", "--policy", policy, *path, *placed, *recording, *json_, "--"] + program


def wait_listening(timeout: float = 10.0, port: int = PORT) -> None:
    """Until lighttpd answers (the variants may take a moment to start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/f100.bin", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise EnvironmentProblem(f"lighttpd did not start listening on 127.0.0.1:{port}")


@dataclass(frozen=True)
class ServedRun:
    """One run of lighttpd under ab: ab's figures, the bodies checked, and
    the first line ``dmvx run`` printed about a divergence (None: none)."""

    policy: str  # "native" without MVX
    bodies_checked: int
    bodies_wrong: int
    requests_per_s: float
    failed: float
    mean_ms: float
    p50_ms: float
    p99_ms: float
    divergence: str | None
    #: The calls the leader made over the whole run (start-up included), as
    #: ``dmvx run --json`` counts them; None natively.
    leader_calls: int | None = None


def _leader_calls(report: str) -> int | None:
    """The leader's calls in ``dmvx run --json``'s report (None: none printed)."""
    try:
        return int(json.loads(report)["variants"][0]["executed"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def serve(
    config: Path,
    digests: dict[str, str],
    policy: str | None,
    requests: int,
    sample: int,
    record: Path | None = None,
    in_process: bool = False,
    port: int = PORT,
    placement: str | None = None,
) -> ServedRun:
    """lighttpd natively (``policy`` None) or under ``dmvx run`` (on the
    in-process path if ``in_process``), ``sample`` bodies checked against
    ``digests`` and then ``ab -n requests -c 1`` on the 4 KiB file; with
    ``record``, the run's trace goes there. ``port``: the one ``config``
    (:func:`realmode.net.lighttpd.make_tree`) has lighttpd listen on;
    ``placement``: ``dmvx run --placement`` (None: its default)."""
    address = ("127.0.0.1", port)
    server = subprocess.Popen(
        server_argv(config, policy, record, in_process, placement, report=policy is not None),
        cwd=_ROOT,
        stdout=subprocess.PIPE if policy is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_listening(60.0, port)  # variants start slowly on a loaded machine
        wrong, _, error = client.check_digests(
            address, {f"/{name}": d for name, d in digests.items()}, sample, timeout=10
        )
        if error is not None:
            raise EnvironmentProblem(f"lighttpd under {policy or 'no MVX'}: {error}")
        ab = client.run_ab(address, requests, lighttpd.AB_PATH, _AB_TIMEOUT)
        if "error" in ab:
            raise EnvironmentProblem(f"lighttpd under {policy or 'no MVX'}: {ab['error']}")
    finally:
        # SIGTERM ends dmvx run as Ctrl-C does; a background job ignores SIGINT.
        server.send_signal(signal.SIGTERM)
        try:
            out, err = server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            out, err = server.communicate()
    diverged = "divergence" in err
    return ServedRun(
        (policy or "native") + (" in-process" if in_process else "") + (f" {placement}" if placement else ""),
        sample,
        wrong,
        ab["requests_per_s"],
        ab["failed"],
        ab["mean_ms"],
        ab["p50_ms"],
        ab["p99_ms"],
        err.strip().splitlines()[0] if diverged else None,
        _leader_calls(out) if out else None,
    )
