"""Transparency: real programs under two variants behave exactly as natively.

Same stdout, same stderr, same exit status, no verdict -- under both
policies. Programs missing from the machine are skipped by name. Python is
called as /usr/bin/python3: a ``python3`` found first on PATH may be a
wrapper script (pyenv's shim is a bash script that runs a dozen programs).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from realmode.orchestrator import run
from test_real_support import assert_no_survivors, captured, compile_target, native, no_strays  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("no_strays")]

PY = "/usr/bin/python3"
ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = [
    ["ls", "-la", "/etc/apt"],
    ["cat", "/etc/passwd"],
    ["sort", "-r", "/etc/passwd"],
    ["wc", "-l", "/etc/passwd"],
    ["sha256sum", "/etc/passwd"],
    ["md5sum", "/etc/passwd"],
    ["grep", "-n", "root", "/etc/passwd"],
    ["sed", "s/:/;/g", "/etc/passwd"],
    ["awk", "-F:", "{print $1}", "/etc/passwd"],
    ["find", "/etc/apt", "-type", "f"],
    ["head", "-n3", "/etc/passwd"],
    ["tail", "-n3", "/etc/passwd"],
    ["cut", "-d:", "-f1", "/etc/passwd"],
    ["uniq", "/etc/passwd"],
    ["gzip", "-c", "/etc/passwd"],
    ["tar", "cf", "-", "/etc/apt"],
    ["od", "-x", "/etc/hostname"],
    ["stat", "/etc/passwd"],
    ["du", "-s", "/etc/apt"],
    ["nl", "/etc/passwd"],
    ["tr", "a-z", "A-Z"],
    ["sqlite3", ":memory:", "select 1+1;"],
    ["perl", "-e", "print 6*7"],
    ["base64", "/etc/hostname"],
    ["comm", "/etc/passwd", "/etc/group"],
    ["diff", "/etc/passwd", "/etc/group"],
    ["id"],
    ["cat", "/no/such/file"],
    # python3 scripts: start-up (hundreds of calls, stat storms, getrandom), stdin, files, processes
    [PY, "-c", "import sys, json; print(json.dumps(sorted(sys.stdin.read().split())))"],
    [PY, "-c", "import hashlib; print(hashlib.sha256(open('/etc/passwd', 'rb').read()).hexdigest())"],
    [
        PY,
        "-c",
        "import os, pathlib; print(sorted(os.listdir('/etc/apt')), pathlib.Path('/etc/hostname').stat().st_size)",
    ],
    [PY, "-c", "import random, time, uuid; r = random.random(); u = uuid.uuid4(); print(0 <= r < 1, time.time() > 0)"],
    [
        PY,
        "-c",
        "import csv, io, sys; rows = list(csv.reader(open('/etc/passwd'), delimiter=':')); "
        "print(len(rows)); sys.exit(3)",
    ],
    [
        PY,
        "-c",
        "import subprocess; print(subprocess.check_output(['sort', '-r', '/etc/passwd']).decode().splitlines()[0])",
    ],
    [
        PY,
        "-c",
        "import tempfile, os\nwith tempfile.TemporaryDirectory() as d:\n"
        "    open(os.path.join(d, 'f'), 'w').write('x' * 1000)\n    print(os.path.getsize(os.path.join(d, 'f')))",
    ],
    ["sh", "-c", "seq 100 | sort -r | head -3"],
    ["sh", "-c", "ls /etc/apt | wc -l; echo $((6 * 7))"],
]
STDIN = b"hello from stdin\nsecond line\n"


@pytest.mark.parametrize("policy", ["dmvx", "dmon"])
@pytest.mark.parametrize("argv", PROGRAMS, ids=lambda argv: " ".join(argv)[:40])
def test_program_matches_native(argv: list[str], policy: str) -> None:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    expected = native(argv, STDIN)
    result, out, err = captured(lambda: run([argv, argv], policy), stdin=STDIN)
    assert result.verdict is None, result.verdict.summary()
    assert result.unsupported is None and result.error is None
    assert out == expected.stdout
    assert err == expected.stderr
    assert result.program_status == expected.returncode
    assert_no_survivors(result)


def test_the_suite_is_large_enough() -> None:
    # The issue asks for at least 20 distribution programs, python3 among them.
    names = {argv[0].rsplit("/", 1)[-1] for argv in PROGRAMS}
    assert len(names) >= 20 and "python3" in names


@pytest.mark.parametrize("policy", ["dmvx", "dmon"])
def test_a_program_whose_stdout_reader_goes_away(policy: str, tmp_path: Path) -> None:
    # Its stdout is a pipe the run inherits, so only the leader writes it;
    # the kernel sends the leader SIGPIPE with the EPIPE, and the follower's
    # handler must run at the same write, never its error path after it.
    program = compile_target("sigpipe", tmp_path)
    script = "{} | head -c 1 >/dev/null; echo status ${{PIPESTATUS[0]}} >&2"
    expected = subprocess.run(["bash", "-c", script.format(shlex.quote(program))], capture_output=True)
    dmvx_run = f"{shlex.quote(sys.executable)} -m dmvx run --policy {policy} -- {shlex.quote(program)}"
    got = subprocess.run(["bash", "-c", script.format(dmvx_run)], capture_output=True, cwd=ROOT)
    assert expected.stderr == b"handled SIGPIPE\nstatus 7\n"
    assert got.stderr == expected.stderr


@pytest.mark.parametrize("policy", ["dmvx", "dmon"])
def test_sort_spilling_to_temporary_files(policy: str, tmp_path: Path) -> None:
    # A tiny buffer makes sort write sorted runs to mkstemp files in -T and
    # merge them: names libc made up in every variant (dmvx.tempnames).
    numbers = "".join(f"{(i * 7919) % 100003}\n" for i in range(60000)).encode()
    argv = ["sort", "-n", "--parallel=1", "-S", "64K", "-T", str(tmp_path)]
    expected = native(argv, numbers)
    result, out, err = captured(lambda: run([argv, argv], policy), stdin=numbers)
    assert result.verdict is None, result.verdict.summary()
    assert (out, err, result.program_status) == (expected.stdout, expected.stderr, expected.returncode)
    assert not list(tmp_path.iterdir())
    assert_no_survivors(result)
