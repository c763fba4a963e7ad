"""Shared helpers of the real-mode tests (no tests of its own): compiling targets, native runs,
capturing a run's stdio, and checking that no process outlives a run (``assert_no_survivors``
for one run's processes, the ``no_strays`` fixture for anything a test started)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

TARGETS = Path(__file__).resolve().parent.parent / "realmode" / "targets"

#: The marks of a module of real runs (``pytestmark = REAL_RUNS``): it needs root, must leave no
#: process behind (the ``no_strays`` fixture below, which the module imports so pytest finds it),
#: and runs where real mode traces processes, x86-64 Linux.
REAL_RUNS = [
    pytest.mark.root,
    pytest.mark.usefixtures("no_strays"),
    pytest.mark.skipif(
        sys.platform != "linux" or os.uname().machine != "x86_64", reason="real mode traces x86-64 Linux processes"
    ),
]
#: The two presets every real-mode test runs under.
POLICIES = ("dmvx", "dmon")


def compile_target(name: str, directory: Path, *flags: str) -> str:
    """Build realmode/targets/NAME.c into DIRECTORY; skip if gcc is missing."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed; real-mode targets are compiled at test time")
    suffix = "-m32" if "-m32" in flags else ""
    out = directory / f"{name}{suffix}"
    if not out.exists():
        done = subprocess.run(
            [gcc, "-O2", *flags, "-o", str(out), str(TARGETS / f"{name}.c")], capture_output=True, text=True
        )
        if done.returncode != 0:
            if "-m32" in flags:
                pytest.skip(f"gcc -m32 does not work here (gcc-multilib missing?): {done.stderr.strip()[:200]}")
            raise AssertionError(f"compiling {name}.c failed: {done.stderr}")
    return str(out)


def captured(fn, stdin: bytes = b""):
    """Call ``fn()`` with fds 0/1/2 redirected to temporary files; return
    (its value, stdout bytes, stderr bytes)."""
    with tempfile.TemporaryFile() as inp, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        inp.write(stdin)
        inp.seek(0)
        saved = [os.dup(fd) for fd in (0, 1, 2)]
        try:
            for fd, handle in zip((0, 1, 2), (inp, out, err)):
                os.dup2(handle.fileno(), fd)
            value = fn()
        finally:
            for fd, copy in zip((0, 1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
        out.seek(0)
        err.seek(0)
        return value, out.read(), err.read()


def native(argv: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=stdin, capture_output=True)


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (children, their children, ...)."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in os.listdir(f"/proc/{parent}/task") if os.path.isdir(f"/proc/{parent}/task") else ():
            try:
                children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in out:
                    out.add(child)
                    todo.append(child)
    return out


def assert_no_survivors(result, within: float = 1.0) -> None:
    pids = [v.pid for v in result.variants if v.pid] + list(result.helpers)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if running(pid)]
        if not alive:
            return
        time.sleep(0.02)
    raise AssertionError(f"processes outlived the run: {alive}")


def _session_processes(since: float) -> dict[int, str]:
    """Processes of this session, or below this process (a variant has a
    session of its own), started after ``since`` (seconds since boot) other
    than this one: what a run left behind, reparented or not."""
    session = os.getsid(0)
    below = descendants(os.getpid())
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                text = handle.read()
        except OSError:
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and (int(fields[3]) == session or int(entry) in below) and int(fields[19]) / ticks >= since:
            out[int(entry)] = name
    return out


def _uptime() -> float:
    with open("/proc/uptime") as handle:
        return float(handle.read().split()[0])


@pytest.fixture
def no_strays():
    """Fail the test if any process it started (a variant, a monitor, a
    CONNECTOR, a child of the program) is still running 2 s after it."""
    since = _uptime() - 0.05
    yield
    deadline = time.monotonic() + 2.0
    while True:
        left = _session_processes(since)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid in left:
        try:
            os.kill(pid, 9)  # do not let one test's leftovers spoil the next
        except ProcessLookupError:
            pass
    assert not left, f"processes outlived the test: {left}"
