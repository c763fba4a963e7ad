"""Real mode, careless use: ``--record`` writes only regular files, a file
failure is one line and status 2 (never 70), and ``kill -9`` of ``dmvx run``
ends every process of the run at once."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dmvx.exitstatus import ExitStatus
from test_real_support import running

pytestmark = [pytest.mark.root, pytest.mark.skipif(sys.platform != "linux", reason="real mode is Linux's")]

DMVX = [sys.executable, "-m", "dmvx"]


def _dmvx(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*DMVX, *args], capture_output=True, text=True, timeout=timeout)


def _refused(target: Path, needle: str) -> None:
    before = os.lstat(target)
    done = _dmvx("run", "--record", str(target), "--", "/bin/true")
    assert done.returncode == ExitStatus.USAGE, done.stderr
    assert done.stderr.count("\n") == 1 and needle in done.stderr, done.stderr
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode, after.st_rdev) == (before.st_ino, before.st_mode, before.st_rdev)


def test_record_refuses_a_device() -> None:
    _refused(Path("/dev/full"), "is a character device; --record writes only regular files")


def test_record_refuses_a_symlink_and_a_fifo(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("kept\n")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target")
    _refused(link, "is a symbolic link")
    assert (tmp_path / "target").read_text() == "kept\n"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _refused(fifo, "is a FIFO")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "link", "target"]  # no temporary left


def test_record_on_a_read_only_filesystem_is_one_line_not_70(tmp_path: Path) -> None:
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "none", str(mount)], check=True)
    try:
        done = _dmvx("run", "--record", str(mount / "t.trace"), "--", "/bin/true")
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert done.returncode == ExitStatus.USAGE, done.stderr
    assert (
        done.stderr == f"dmvx: error: dmvx run: --record {mount}/t.trace: cannot write in {mount}: "
        "Read-only file system\n"
    )


def test_record_replaces_a_regular_file_whole(tmp_path: Path) -> None:
    trace = tmp_path / "run.trace"
    trace.write_text("old\n")
    old_inode = trace.stat().st_ino
    done = _dmvx("run", "--record", str(trace), "--", "/bin/echo", "hi")
    assert done.returncode == 0, done.stderr
    assert trace.read_text().startswith('{"dmvx_trace"') and trace.stat().st_ino != old_inode  # renamed in
    assert stat.S_IMODE(trace.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["run.trace"]  # no part or temporary left


def _descendants(pid: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found.add(child)
                todo.append(child)
    return found


def test_kill_9_of_dmvx_run_ends_every_process_of_the_run_within_1_s() -> None:
    run = subprocess.Popen(
        [*DMVX, "run", "--variants", "3", "--", "/bin/sh", "-c", "sleep 30; echo late"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # 3 CONNECTORs, 3 monitors, 3 shells (each with a sleep)
        deadline = time.monotonic() + 30
        while len(pids := _descendants(run.pid)) < 12 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(pids) >= 12, pids
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        killed = time.monotonic()
        while any(running(pid) for pid in pids) and time.monotonic() < killed + 5:
            time.sleep(0.01)
        took = time.monotonic() - killed
        assert not [pid for pid in pids if running(pid)]
        assert took < 1.0, f"the run's processes outlived dmvx run by {took:.2f} s"
        assert run.stdout is not None and run.stdout.read() == b""  # nothing kept running long enough to say "late"
    finally:
        for pid in _descendants(run.pid) if run.poll() is None else ():
            os.kill(pid, signal.SIGKILL)
        if run.poll() is None:
            run.kill()


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.mark.parametrize(
    "make,message,status,label",
    [
        (lambda d: _script(d / "x", "echo hi\n"), "Exec format error", 126, "cannot-execute"),
        (lambda d: (d / "x").write_text("#!/bin/sh\necho hi\n"), "Permission denied", 126, "cannot-execute"),
        (lambda d: (d / "x").mkdir(), "Is a directory", 126, "cannot-execute"),
        (lambda d: None, "No such file or directory", 127, "not-found"),
    ],
)
def test_a_program_the_kernel_cannot_execute_is_reported_as_a_shell_does(
    tmp_path: Path, make, message: str, status: int, label: str
) -> None:
    import json

    make(tmp_path)
    program = str(tmp_path / "x")
    done = _dmvx("run", "--", program)
    assert (done.returncode, done.stderr) == (status, f"dmvx: error: {program}: {message}\n")
    done = _dmvx("run", "--json", "--", program)
    assert done.returncode == status
    assert json.loads(done.stdout)["status"] == label != "ok"


def test_a_command_not_on_path_is_not_found() -> None:
    done = _dmvx("run", "--", "dmvx-no-such-command")
    assert (done.returncode, done.stderr) == (127, "dmvx: error: dmvx-no-such-command: command not found\n")
