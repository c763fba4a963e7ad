"""Real mode follows processes: fork, vfork, clone and exec in every variant.

Each variant forks its own children, under its own pids; the program must
see the leader's pids, a pipeline's timing must not show as a divergence,
and the run must end as the native run ends. Threads: tests/test_real_threads.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from dmvx.exitstatus import ExitStatus
from dmvx.verdict import VerdictKind
from realmode.orchestrator import RunResult, run
from test_real_support import (
    POLICIES,
    REAL_RUNS,
    assert_no_survivors,
    captured,
    descendants,
    native,
    no_strays,  # noqa: F401 - fixture
)

pytestmark = REAL_RUNS

PYTHON = "/usr/bin/python3"


def _status(returncode: int) -> int:
    """A native returncode as a shell (and dmvx run) reports it: 128 + signal."""
    return 128 - returncode if returncode < 0 else returncode


def _same_as_native(argv: list[str], policy: str, stdin: bytes = b"") -> RunResult:
    expected = native(argv, stdin)
    result, out, err = captured(lambda: run([argv, argv], policy), stdin=stdin)
    assert result.verdict is None, result.verdict.summary()
    assert result.unsupported is None and result.error is None, result.to_json()
    assert (out, err) == (expected.stdout, expected.stderr)
    assert result.process_exit_code == _status(expected.returncode)
    assert_no_survivors(result)
    return result


@pytest.mark.parametrize("policy", POLICIES)
def test_a_shell_pipeline_runs_as_natively(policy: str) -> None:
    result = _same_as_native(["sh", "-c", "seq 100 | sort -r | head -3"], policy)
    # Four processes per variant: the shell and the three commands.
    assert all(v.stats["processes"] == 4 for v in result.variants)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "script",
    [
        "seq 100000 | sort -rn | head -3",  # pipe reads whose sizes depend on timing
        "yes | head -3",  # the writer dies of SIGPIPE at a moment of its own
        "for i in 1 2 3; do echo $i | cat; done; exit 3",
        "echo $$ $PPID >/dev/null; sleep 0.1 & wait $!; echo waited $?",
        "kill -TERM $$",
    ],
    ids=["big-pipe", "sigpipe", "loop-status", "background-wait", "killed"],
)
def test_shell_process_trees(policy: str, script: str) -> None:
    _same_as_native(["sh", "-c", script], policy)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("mode", ["make", "pids", "spawn", "signals", "poll"])
def test_parent_and_children(build, policy: str, mode: str) -> None:
    # make: a make-like parent reaping jobs in whatever order they end;
    # pids: fork's result, getppid, kill and waitpid with the leader's pids;
    # spawn: vfork + exec; signals: a SIGCHLD handler while children end;
    # poll: waitpid(WNOHANG) in a loop, empty as often as in the leader.
    _same_as_native([build("procs"), mode], policy)


@pytest.mark.parametrize("policy", POLICIES)
def test_python_starting_a_pipeline(policy: str) -> None:
    if not os.path.exists(PYTHON):
        pytest.skip("no /usr/bin/python3")
    code = (
        "import subprocess\n"
        "out = subprocess.run(['sh', '-c', 'seq 5000 | wc -l'], capture_output=True, check=True).stdout\n"
        "print(out.decode().strip(), subprocess.check_output(['echo', 'hi']))\n"
    )
    _same_as_native([PYTHON, "-c", code], policy)


def test_a_pid_differs_in_the_follower_but_the_program_sees_the_leaders(build) -> None:
    procs = build("procs")
    result, out, _ = captured(lambda: run([[procs, "pids"], [procs, "pids"]], "dmvx"))
    assert result.verdict is None and b"fork said what the child said" in out
    assert result.variants[1].stats["processes"] == 2


def test_a_divergent_child_is_caught_in_its_own_stream(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    script = f'[ -n "$DMVX_EVIL" ] && touch {marker}; echo done'
    env, evil = dict(os.environ), dict(os.environ, DMVX_EVIL="1")
    argv = ["sh", "-c", f"(sh -c '{script}')"]
    result, _, _ = captured(lambda: run([argv, argv], "dmvx", envs=[env, evil]))
    assert result.verdict is not None and result.exit_status is ExitStatus.DIVERGENCE, result.to_json()
    time.sleep(0.2)
    assert not marker.exists()
    assert_no_survivors(result)


@pytest.mark.parametrize("victim", [0, 1])
def test_a_child_killed_from_outside_ends_the_run(victim: int) -> None:
    argv = ["sh", "-c", "sleep 30; echo never"]
    holder: dict = {}

    def sleepers() -> list[int]:
        # Only this test's own (descendants of the test process): another
        # test or person running ``sleep 30`` on the machine is not a variant.
        found = []
        for pid in descendants(os.getpid()):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x0030\x00":
                    found.append(pid)
            except OSError:
                pass
        return sorted(found)

    def killer() -> None:
        deadline = time.monotonic() + 30  # a loaded machine starts them slowly
        while time.monotonic() < deadline:
            found = sleepers()
            if len(found) == 2:
                time.sleep(0.2)
                os.kill(found[victim], signal.SIGKILL)
                holder["killed"] = time.monotonic()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    result, _, _ = captured(lambda: run([argv, argv], "dmvx"))
    thread.join()
    assert holder.get("killed")
    # A defined verdict soon after the kill: the 2 s stall timeout, stretched
    # up to 4-fold for a peer whose monitor the machine does not run
    # (realmode.tracer.starvation.LATE_LIMIT), plus teardown; 20 s is well
    # past that and well short of the 30 s the survivor would sleep.
    assert time.monotonic() - holder["killed"] < 20
    assert result.verdict is not None and result.verdict.kind in (VerdictKind.CRASH, VerdictKind.NO_PROGRESS), (
        result.to_json()
    )
    assert_no_survivors(result)


_NANOSLEEP, _CLOCK_NANOSLEEP = 35, 230  # x86-64 numbers, as /proc/PID/syscall gives them


#: Who gets the SIGTERM first, and when: in its sleep, or as soon as its
#: process runs ``sleep`` (still in ld.so, where each variant is at a
#: call of its own when it dies).
_ORDERS = [(0, "sleep"), (0, "start-up"), (1, "start-up")]


@pytest.mark.parametrize(
    ("first", "moment"), _ORDERS, ids=["leader-in-sleep", "leader-at-start-up", "follower-at-start-up"]
)
@pytest.mark.parametrize("policy", POLICIES)
def test_a_signal_that_reaches_one_variant_after_the_other_died_of_it(policy: str, first: int, moment: str) -> None:
    # One variant's ``sleep`` dies of SIGTERM; the other's gets the same
    # SIGTERM half a second later (its sender is slower, as a parent's kill
    # running in that variant's own time is), wherever it is: held at the
    # same call, or at another call of its start-up. It must die of it too,
    # and the run end as natively, never as a stall or a crash. (At
    # start-up the leader's end came at a number where the follower was at
    # a call of its own: that was a false crash at call #2-39.)
    argv = ["sleep", "30"]
    envs = [dict(os.environ, DMVX_TEST_VARIANT=str(i)) for i in range(2)]
    sent: dict[int, float] = {}
    over = threading.Event()

    def variant_sleepers() -> dict[int, int]:
        found = {}
        for pid in descendants(os.getpid()):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes() != b"sleep\x0030\x00":
                    continue
                for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    if entry.startswith(b"DMVX_TEST_VARIANT="):
                        found[int(entry.split(b"=")[1])] = pid
            except OSError:
                continue
        return found

    def in_their_sleep(found: dict[int, int]) -> bool:
        # Both inside (or held at) their clock_nanosleep, as /proc says: a
        # fixed 0.2 s after exec found one still in ld.so at load 9-17, where
        # a SIGTERM lands at a different call in each variant.
        try:
            return all(
                Path(f"/proc/{pid}/syscall").read_text().split()[0] in {str(_CLOCK_NANOSLEEP), str(_NANOSLEEP)}
                for pid in found.values()
            )
        except (OSError, IndexError):
            return False

    def ready(found: dict[int, int]) -> bool:
        if moment == "sleep":
            return len(found) == 2 and in_their_sleep(found)
        return first in found

    def one_then_the_other() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not over.is_set():
            if ready(variant_sleepers()):
                for index in (first, 1 - first):
                    # Only a sleeper still there is signalled, never a pid
                    # that may be reused; the other's, not there yet at
                    # start-up, is waited for (a run that ended, say in a
                    # verdict, ends the wait).
                    while time.monotonic() < deadline and not over.is_set():
                        found = variant_sleepers()
                        if index in found:
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(found[index], signal.SIGTERM)
                            sent[index] = time.monotonic()
                            break
                        time.sleep(0.01)
                    time.sleep(0.5)
                return
            time.sleep(0.01)

    thread = threading.Thread(target=one_then_the_other)
    thread.start()
    try:
        result, _, _ = captured(lambda: run([argv, argv], policy, envs=envs))
    finally:
        over.set()
        thread.join()
    assert first in sent, "the variants never started"
    assert result.verdict is None, result.verdict.summary()
    assert result.process_exit_code == 128 + signal.SIGTERM
    assert_no_survivors(result)


@pytest.mark.parametrize("policy", POLICIES)
def test_temporary_files_whose_names_libc_made_up(build, policy: str, tmp_path: Path) -> None:
    # mkstemp, mkstemps, mkdtemp and tmpfile take their letters from the
    # clock and a stack address, mktemp from a word of getrandom each variant
    # draws itself: each variant makes up its own, and the follower adopts
    # the leader's (dmvx.tempnames). One clock draw in 22 is biased and drawn
    # again with getrandom in that variant alone: ten runs of five names each
    # meet that in most test runs.
    tempfiles = build("tempfiles")
    for _ in range(10):
        _same_as_native([tempfiles, str(tmp_path)], policy)
    assert not list(tmp_path.iterdir())  # created once (by the leader), removed by it


@pytest.mark.parametrize("policy", POLICIES)
def test_variants_see_the_machines_cpus_whatever_their_placement(policy: str) -> None:
    # Placement pins each variant to one CPU; nproc and os.sched_getaffinity
    # must still say what they say natively.
    _same_as_native(
        ["sh", "-c", "nproc; /usr/bin/python3 -c 'import os; print(sorted(os.sched_getaffinity(0)))'"], policy
    )


@pytest.mark.parametrize("policy", POLICIES)
def test_a_follower_maps_a_file_only_the_leader_opened(policy: str, tmp_path: Path) -> None:
    # The follower's descriptor is a placeholder; for a regular file opened
    # read-only it is that file, read-only, so its mmap works as the leader's.
    data = tmp_path / "data"
    data.write_bytes(b"0123456789" * 1000)
    script = (
        "import mmap\n"
        f"with open({str(data)!r}, 'rb') as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:\n"
        "    print(m.find(b'789012'), m[9995:], len(m))"
    )
    _same_as_native(["/usr/bin/python3", "-c", script], policy)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("payload", ["hello", ""], ids=["data", "end"])
def test_a_non_blocking_pipe_read_waits_for_the_variants_own_writer(policy: str, payload: str) -> None:
    # The reader's select is the leader's; in the follower the child that
    # writes is slower (it computes without calls first), so its own
    # non-blocking read finds the pipe empty: EAGAIN where the leader read
    # five bytes (or the end of the pipe, when the writer writes nothing and
    # exits). The steered read tries again until its own writer has written.
    script = (
        "import os, select\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.close(r)\n"
        "    if os.environ.get('DMVX_SLOW'):\n"
        "        for _ in range(3_000_000): pass\n"
        f"    os.write(w, b'{payload}'); os._exit(0)\n"
        "os.close(w); os.set_blocking(r, False)\n"
        "select.select([r], [], [])\n"
        "print(os.read(r, 100)); os.wait()"
    )
    argv = ["/usr/bin/python3", "-c", script]
    env = dict(os.environ)
    result, out, _ = captured(lambda: run([argv, argv], policy, envs=[env, dict(env, DMVX_SLOW="1")]))
    assert result.verdict is None, result.verdict.summary()
    assert out == f"b'{payload}'\n".encode() and result.process_exit_code == 0
    assert_no_survivors(result)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("slow", [0, 1], ids=["leader-reader-slow", "follower-reader-slow"])
def test_a_non_blocking_pipe_write_moves_what_the_leader_s_moved(policy: str, slow: int) -> None:
    # xz's way: a writer on a non-blocking pipe writes chunks larger than
    # the pipe holds, and polls on EAGAIN. The child that reads is slower in
    # one variant (it computes without calls first), so that variant's
    # writes find the pipe full (EAGAIN, or a part of the chunk written)
    # where the other's did not. The follower's write is steered: EAGAIN
    # where the leader's got it, the leader's count otherwise, again until
    # its own reader has made room.
    script = (
        "import os, select\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.close(w)\n"
        "    if os.environ.get('DMVX_SLOW'):\n"
        "        for _ in range(3_000_000): pass\n"
        "    n = 0\n"
        "    while (d := os.read(r, 65536)): n += len(d)\n"
        "    os._exit(0 if n == 400_000 else 1)\n"
        "os.close(r); os.set_blocking(w, False)\n"
        "data, sent, full = b'x' * 400_000, 0, 0\n"
        "while sent < len(data):\n"
        "    try: sent += os.write(w, data[sent:sent + 50_000])\n"
        "    except BlockingIOError: full += 1; select.select([], [w], [])\n"
        "os.close(w)\n"
        "print(sent, os.wait()[1], full > 0)"
    )
    argv = ["/usr/bin/python3", "-c", script]
    env = dict(os.environ)
    envs = [env, env]
    envs[slow] = dict(env, DMVX_SLOW="1")
    result, out, _ = captured(lambda: run([argv, argv], policy, envs=envs))
    assert result.verdict is None, result.verdict.summary()
    sent, status, _full = out.decode().split()
    assert (sent, status) == ("400000", "0") and result.process_exit_code == 0
    assert_no_survivors(result)


@pytest.mark.parametrize("policy", POLICIES)
def test_names_programs_make_up_with_templates_of_any_length(policy: str, tmp_path: Path) -> None:
    # coreutils' mktemp fills ten X's (or as many as given, three at least)
    # with gnulib's gen_tempname; Python's tempfile draws eight of [a-z0-9_].
    # Each variant draws its own; the follower adopts the leader's name.
    script = (
        f"cd {tmp_path}; mktemp -u; d=$(mktemp -d); f=$(mktemp -p $d x.XXX); echo hi > $f; cat $f; "
        f"mktemp -u -p . -t {'X' * 24}; rm -r $d; "
        "/usr/bin/python3 -c 'import tempfile, os\n"
        'with tempfile.NamedTemporaryFile(suffix=".csv") as f: print(len(os.path.basename(f.name)))\n'
        "d = tempfile.mkdtemp(); os.rmdir(d); print(tempfile.mktemp() != d)'"
    )
    argv = ["sh", "-c", script]
    result, out, err = captured(lambda: run([argv, argv], policy))
    assert result.verdict is None, result.verdict.summary()
    assert result.process_exit_code == 0 and err == b"", err
    lines = out.decode().splitlines()
    assert len(lines) == 5 and lines[1:2] == ["hi"] and lines[3:] == ["15", "True"], lines
    assert lines[0].startswith("/tmp/tmp.") and len(lines[0]) == len("/tmp/tmp.") + 10
    assert len(os.path.basename(lines[2])) == 24
    assert not list(tmp_path.iterdir())
    assert_no_survivors(result)


@pytest.mark.parametrize("policy", POLICIES)
def test_another_template_in_one_variant_is_still_caught(build, policy: str, tmp_path: Path) -> None:
    argv = [build("tempfiles"), str(tmp_path)]
    env = dict(os.environ)
    result, _, _ = captured(lambda: run([argv, argv], policy, envs=[env, dict(env, DMVX_EVIL="1")]))
    assert result.verdict is not None and result.verdict.kind is VerdictKind.ARG_MISMATCH, result.to_json()
    assert result.verdict.seq is not None and "openat" in result.verdict.summary()
    assert not list(tmp_path.glob("dmvx-evil-*"))
    assert_no_survivors(result)
