"""Threads under real mode: each thread a stream of its own, compared and replicated.

The C target ``realmode/targets/threads.c`` has worker threads doing
independent I/O (descriptors created and closed concurrently, so the
follower must change its table in the leader's order), a group ended by
``exit_group`` while workers block or loop, a worker that ends itself, an
exec from a worker (the kernel's ``de_thread``) and signals to a thread and
to the group. The Python target uses ``threading`` and ``concurrent.futures``.
Every run must print and exit as the native run does, under both presets.
Before threads were followed, each of these runs was refused with exit 5.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from realmode.orchestrator import RunResult, run
from test_real_support import (
    POLICIES,
    REAL_RUNS,
    TARGETS,
    assert_no_survivors,
    captured,
    native,
    no_strays,  # noqa: F401 - fixture
)

pytestmark = REAL_RUNS

PYTHON = "/usr/bin/python3"


def _same_as_native(argv: list[str], policy: str) -> RunResult:
    expected = native(argv)
    result, out, err = captured(lambda: run([argv, argv], policy))
    assert result.verdict is None, result.verdict.summary()
    assert result.unsupported is None and result.error is None, result.to_json()
    assert (out.decode(), err.decode()) == (expected.stdout.decode(), expected.stderr.decode())
    assert result.process_exit_code == expected.returncode
    assert_no_survivors(result)
    return result


def _native_or_a_threads_verdict(result: RunResult, out: bytes, native_out: bytes, thread: str) -> None:
    """A program whose threads' interleaving decides what they call ends as
    natively or in a divergence naming ``thread`` and the documented limit,
    never in a clean end with other output."""
    if result.verdict is None:
        assert out == native_out and result.process_exit_code == 0
    else:
        assert result.verdict.kind.is_divergence
        assert thread in result.verdict.detail and "docs/realmode.md, Threads" in result.verdict.detail


@pytest.fixture(scope="module")
def threads(build: Callable[..., str]) -> str:
    return build("threads", "-pthread")


@pytest.mark.parametrize("policy", POLICIES)
def test_worker_threads_doing_independent_io_run_as_natively(threads: str, policy: str, tmp_path: Path) -> None:
    result = _same_as_native([threads, "io", "6", "15", str(tmp_path)], policy)
    # The main thread and six workers, each a stream of its own in every variant.
    assert all(v.stats["processes"] == 7 for v in result.variants)
    assert list(tmp_path.iterdir()) == []  # each worker removed its file


@pytest.mark.parametrize("mode", ["exit-group", "self-exit", "exec", "signal"])
@pytest.mark.parametrize("policy", POLICIES)
def test_a_thread_group_ends_execs_and_takes_signals_as_natively(threads: str, policy: str, mode: str) -> None:
    _same_as_native([threads, mode], policy)


@pytest.mark.parametrize("policy", POLICIES)
def test_python_threading_and_a_thread_pool_run_as_natively(policy: str) -> None:
    result = _same_as_native([PYTHON, str(TARGETS / "pythreads.py")], policy)
    assert all(v.stats["processes"] > 8 for v in result.variants)


@pytest.mark.parametrize("policy", POLICIES)
def test_threads_whose_interleaving_decides_their_calls_are_reported_never_wrong(policy: str, tmp_path: Path) -> None:
    """A pool's workers take items from one queue and open a file per item:
    which worker opens which file is up to the interleaving, so the
    variants' workers may make different calls. Either the run agrees with
    the native one, or it ends in a verdict that names the thread -- never
    a clean end with other output."""
    script = (
        "import concurrent.futures, os, sys\n"
        "d = sys.argv[1]\n"
        "def item(i):\n"
        "    p = os.path.join(d, f'item-{i}')\n"
        "    with open(p, 'w') as f: f.write(str(i) * i)\n"
        "    return os.path.getsize(p)\n"
        "with concurrent.futures.ThreadPoolExecutor(4) as pool:\n"
        "    print(sum(pool.map(item, range(40))))\n"
    )
    argv = [PYTHON, "-c", script, str(tmp_path)]
    expected = native(argv)
    result, out, _ = captured(lambda: run([argv, argv], policy))
    assert_no_survivors(result)
    _native_or_a_threads_verdict(result, out, expected.stdout, "thread 0")


@pytest.mark.parametrize("policy", POLICIES)
def test_a_worker_woken_through_an_eventfd_runs_as_natively(build: Callable[..., str], policy: str) -> None:
    """memcached's pattern (realmode/targets/eventfd_queue.c): the main thread
    queues an item and writes an eventfd; the worker reads it and takes as
    many items as the counter says. eventfd calls run in the leader only, so
    a follower's worker given the leader's read before its own main thread
    queued the item found its queue empty (3 of 3 runs under dmvx diverged);
    the leader's order of eventfd reads and writes is replicated across
    threads (realmode.tracer.fdorder), and every run ends as natively."""
    argv = [build("eventfd_queue", "-pthread")]
    for _ in range(3):
        _same_as_native(argv, policy)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_blocked_open_does_not_hold_the_other_threads_for_ever(policy: str, tmp_path: Path) -> None:
    """A thread's open of a FIFO blocks until another thread opens the other
    end: the leader, which runs calls that change the table one at a time,
    must let the second run beside the first (realmode.tracer.fdorder). The
    two return at once, in an order the tracer cannot know, so the run may
    end in a verdict naming the thread -- never in a hang, never wrong."""
    script = (
        "import os, sys, threading\n"
        "path = os.path.join(sys.argv[1], 'fifo'); os.mkfifo(path); got = []\n"
        "def reader():\n"
        "    with open(path) as f: got.append(f.read())\n"
        "t = threading.Thread(target=reader); t.start()\n"
        "with open(path, 'w') as f: f.write('through the fifo')\n"
        "t.join(); print(got[0])\n"
    )
    argv = [PYTHON, "-c", script, str(tmp_path)]
    started = time.monotonic()
    result, out, _ = captured(lambda: run([argv, argv], policy))
    assert time.monotonic() - started < 30
    assert_no_survivors(result)
    if result.verdict is None:
        assert out == b"through the fifo\n" and result.process_exit_code == 0
    else:
        assert "thread 0" in result.verdict.detail and "docs/realmode.md, Threads" in result.verdict.detail


def test_the_target_builds_cleanly(tmp_path: Path) -> None:
    done = subprocess.run(
        ["gcc", "-O2", "-Wall", "-Werror", "-pthread", "-o", str(tmp_path / "t"), str(TARGETS / "threads.c")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def _redis_client(socket: Path, answers: list[str]) -> None:
    """Wait for the server, run redis-benchmark against it, read what it left, shut it down."""
    cli = ["redis-cli", "-s", str(socket)]
    deadline = time.monotonic() + 60
    while subprocess.run([*cli, "ping"], capture_output=True).stdout != b"PONG\n":
        if time.monotonic() > deadline:
            return
        time.sleep(0.2)
    bench = ["redis-benchmark", "-s", str(socket), "-n", "200", "-c", "4", "-q", "-t", "set,get,incr,lpush,lpop"]
    done = subprocess.run(bench, capture_output=True, timeout=120)
    answers.append(f"benchmark {done.returncode}")
    for query in (["get", "counter:__rand_int__"], ["llen", "mylist"], ["dbsize"]):
        answers.append(subprocess.run([*cli, *query], capture_output=True, text=True).stdout.strip())
    subprocess.run([*cli, "shutdown", "nosave"], capture_output=True)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed (deps)")
@pytest.mark.parametrize("policy", POLICIES)
def test_redis_server_under_redis_benchmark_answers_as_natively(policy: str, tmp_path: Path) -> None:
    """Debian's redis-server (five threads: the event loop, three bio
    threads, jemalloc's background thread) under dmvx run, redis-benchmark
    outside it: what the benchmark left in the store is what a native server
    holds after the same benchmark, and the server ends cleanly. Its timers
    run from CLOCK_MONOTONIC, which a follower takes from the leader
    (realmode.tracer.clocks)."""

    def serve(directory: Path) -> list[str]:
        return [
            "redis-server", "--port", "0", "--unixsocket", str(directory / "redis.sock"),
            "--save", "", "--appendonly", "no", "--dir", str(directory), "--logfile", str(directory / "log"),
        ]  # fmt: skip

    (tmp_path / "native").mkdir()
    (tmp_path / "mvx").mkdir()
    expected: list[str] = []
    client = threading.Thread(target=_redis_client, args=(tmp_path / "native" / "redis.sock", expected))
    client.start()
    native_server = subprocess.run(serve(tmp_path / "native"), capture_output=True, timeout=120)
    client.join()
    assert native_server.returncode == 0 and expected == ["benchmark 0", "200", "0", "2"]

    answers: list[str] = []
    argv = serve(tmp_path / "mvx")
    client = threading.Thread(target=_redis_client, args=(tmp_path / "mvx" / "redis.sock", answers))
    client.start()
    result, _, _ = captured(lambda: run([argv, argv], policy))
    client.join()
    assert result.verdict is None, result.verdict.summary()
    assert answers == expected and result.process_exit_code == 0
    assert all(v.stats["processes"] >= 4 for v in result.variants)
    assert_no_survivors(result)
