"""The corpus of real commands (realmode.corpus): its shape, and a subset of
it run natively and under both presets. The whole corpus is
``python -m realmode.corpus`` (docs/realmode.md, "The corpus")."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from realmode.corpus.commands import ENTRIES
from realmode.corpus.run import available, compare

ROOT = Path(__file__).resolve().parent.parent
#: One entry of each kind the issue names; each has diverged before a fix.
SUBSET = (
    "mktemp",
    "tar-xzf",
    "nproc",
    "python-mmap",
    "git-init-commit-log",
    "sqlite3-csv",
    "make-gcc",
    "dash-subshells",
    "python-http-server",
    "python-tempfile",
    "bzip2",
)
#: Debian package of each program an entry needs (deps/debian-packages.txt).
_PACKAGES = {
    "git": "git",
    "sqlite3": "sqlite3",
    "make": "make",
    "gcc": "gcc",
    "xz": "xz-utils",
    "bzip2": "bzip2",
    "zip": "zip",
    "unzip": "unzip",
    "jq": "jq",
    "dash": "dash",
    "redis-server": "redis-server",
    "redis-benchmark": "redis-server",  # redis-tools, which redis-server depends on
    "redis-cli": "redis-server",
    "memcached": "memcached",
    "memcslap": "libmemcached-tools",
    "memccp": "libmemcached-tools",
    "memccat": "libmemcached-tools",
}


def test_the_corpus_has_sixty_commands_of_every_kind_with_unique_names() -> None:
    names = [e.name for e in ENTRIES]
    assert len(names) >= 60 and len(set(names)) == len(names)
    programs = {word for e in ENTRIES for word in re.findall(r"[\w./+-]+", " ".join(e.argv))}
    for needed in ("tar", "gzip", "git", "sqlite3", "make", "gcc", "bash", "dash", "/usr/bin/python3", "sed", "awk"):
        assert needed in programs, needed
    assert all(name in names for name in SUBSET)
    # A known failure says why, and names the work that will fix it.
    assert all("issue 15" in e.known for e in ENTRIES if e.known)


def test_every_program_an_entry_needs_is_a_listed_debian_package() -> None:
    listed = {
        line.split()[0]
        for line in (ROOT / "deps" / "debian-packages.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in ENTRIES:
        for program in entry.needs:
            assert _PACKAGES[program] in listed or program == "dash", (entry.name, program)


@pytest.mark.root
@pytest.mark.skipif(
    sys.platform != "linux" or os.uname().machine != "x86_64", reason="real mode traces x86-64 Linux processes"
)
@pytest.mark.parametrize("name", SUBSET)
def test_a_corpus_subset_runs_as_natively_under_both_presets(name: str, tmp_path: Path) -> None:
    entry = next(e for e in ENTRIES if e.name == name)
    if not available(entry):
        pytest.skip(f"{name} needs {entry.needs}")
    for result in compare(entry, tmp_path / "work", ("dmvx", "dmon")):
        assert result.agrees, f"[{result.policy}] {name}: {'; '.join(result.problems)}"


@pytest.mark.root
@pytest.mark.skipif(
    sys.platform != "linux" or os.uname().machine != "x86_64", reason="real mode traces x86-64 Linux processes"
)
def test_jobs_run_entries_at_once_each_round_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    """``--jobs 2`` runs two entries at once, each in its own work
    directory, and prints every run in the order of the rounds."""
    from realmode.corpus.__main__ import main

    status = main(["-k", "seq", "-k", "date-fixed", "--policy", "dmvx", "--repeat", "2", "--jobs", "2", "-v"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert re.findall(r"\] ok +(\S+):", out) == ["seq", "date-fixed"] * 2
    assert "false divergences under dmvx: 0 of 4 runs" in out


def test_jobs_must_be_at_least_one(capsys: pytest.CaptureFixture[str]) -> None:
    from realmode.corpus.__main__ import main

    if os.geteuid() != 0:
        pytest.skip("the corpus checks for root first")
    with pytest.raises(SystemExit) as ended:
        main(["--jobs", "0"])
    assert ended.value.code == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err


def _processes_in(directory: Path) -> list[int]:
    """Processes whose working directory is below ``directory``: every run
    of the corpus (natively, and ``dmvx run`` with its monitors, CONNECTORs
    and variants) works in a directory there."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(os.readlink(f"/proc/{entry}/cwd")).is_relative_to(directory):
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _dmvx_runs_in(directory: Path) -> list[int]:
    runs = []
    for pid in _processes_in(directory):
        try:
            if b"dmvx\0run\0" in Path(f"/proc/{pid}/cmdline").read_bytes():
                runs.append(pid)
        except OSError:
            continue
    return runs


@pytest.mark.root
@pytest.mark.skipif(
    sys.platform != "linux" or os.uname().machine != "x86_64", reason="real mode traces x86-64 Linux processes"
)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_corpus_stops_its_runs_and_leaves_nothing_behind(signum: int, tmp_path: Path) -> None:
    """Ctrl-C on ``python -m realmode.corpus`` printed a traceback (its
    work directory could not be removed under runs still writing there) and
    left its runs going: each is a session of its own, out of the
    terminal's reach. Now it stops them, exits 130 with one line, and
    nothing is left."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "realmode.corpus", "--set", "signals", "-k", "timeout", "--repeat", "50"]
    with subprocess.Popen([*argv, "--jobs", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as corpus:
        deadline = time.monotonic() + 60
        while not _dmvx_runs_in(tmp_path):
            assert time.monotonic() < deadline and corpus.poll() is None, "no dmvx run started"
            time.sleep(0.05)
        corpus.send_signal(signum)
        out, err = corpus.communicate(timeout=60)
    assert corpus.returncode == 130, (out, err)
    assert b"Traceback" not in err, err
    assert err.decode().splitlines()[-1] == "corpus: interrupted: every run stopped, nothing left behind"
    assert _processes_in(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


_ONE_RUN = (
    "import os, sys\n"
    "from pathlib import Path\n"
    "from realmode.corpus.run import run_in\n"
    "try:\n"
    "    run_in(['sleep', '60'], Path(sys.argv[1]), dict(os.environ), 'dmvx')\n"
    "except KeyboardInterrupt:\n"
    "    sys.exit(130)\n"
)


@pytest.mark.root
@pytest.mark.skipif(
    sys.platform != "linux" or os.uname().machine != "x86_64", reason="real mode traces x86-64 Linux processes"
)
def test_a_run_interrupted_in_the_main_thread_is_stopped(tmp_path: Path) -> None:
    """``--projects`` waits for each suite's run in the main thread, where
    Ctrl-C lands: Popen's exit then waited 0.25 s and let the ``dmvx run``
    -- a session of its own, which the signal never reached -- go on in a
    work directory about to be removed. The run is stopped first now."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-c", _ONE_RUN, str(tmp_path)], env=env, stderr=subprocess.PIPE) as waiter:
        deadline = time.monotonic() + 60
        while not _dmvx_runs_in(tmp_path):
            assert time.monotonic() < deadline and waiter.poll() is None, "no dmvx run started"
            time.sleep(0.05)
        waiter.send_signal(signal.SIGINT)
        _, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 130, err
    assert _processes_in(tmp_path) == []
