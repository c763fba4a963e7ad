"""Real projects' own test suites (realmode.corpus.projects): the runners'
closing lines counted, and a project's suite -- a small one made here, so no
network is needed -- fetched from a source distribution, unpacked afresh and
run natively and under both presets. The real projects (PyPI's idna and
toolz) are ``python -m realmode.corpus --projects`` (docs/realmode.md)."""

from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

from realmode.corpus import projects
from realmode.corpus.fixtures import environment
from realmode.corpus.projects import Project, Tally, tally


def test_the_runners_closing_lines_are_counted() -> None:
    unittest_ok = b"....s\n------\nRan 6256 tests in 1.767s\n\nOK (skipped=485)\n"
    assert tally("unittest", unittest_ok) == Tally(5771, 0, 485)
    unittest_bad = b"Ran 10 tests in 0.1s\n\nFAILED (failures=2, errors=1, skipped=3, expected failures=1)\n"
    assert tally("unittest", unittest_bad) == Tally(3, 3, 4)
    assert tally("unittest", b"Traceback (most recent call last):\n") is None
    assert tally("pytest", b"....\n180 passed in 4.90s\n") == Tally(180, 0, 0)
    assert tally("pytest", b"== 3 failed, 170 passed, 7 skipped, 1 error in 9.1s ==\n") == Tally(170, 4, 7)
    assert tally("pytest", b"killed\n") is None


def _sdist(directory: Path) -> Path:
    """A source distribution of a small package whose unittest suite has
    passing, skipped and subprocess-using tests (as a real suite's are)."""
    files = {
        "tiny-1.0/tiny/__init__.py": "def double(x):\n    return 2 * x\n",
        "tiny-1.0/tests/__init__.py": "",
        "tiny-1.0/tests/test_tiny.py": (
            "import os, subprocess, sys, tempfile, unittest\n"
            "import tiny\n"
            "class T(unittest.TestCase):\n"
            "    def test_double(self):\n"
            "        for i in range(50): self.assertEqual(tiny.double(i), i + i)\n"
            "    def test_files(self):\n"
            "        with tempfile.TemporaryDirectory() as d:\n"
            "            p = os.path.join(d, 'x'); open(p, 'w').write('hi')\n"
            "            self.assertEqual(open(p).read(), 'hi')\n"
            "    def test_child(self):\n"
            "        out = subprocess.run([sys.executable, '-c', 'print(6*7)'], capture_output=True, text=True)\n"
            "        self.assertEqual(out.stdout, '42\\n')\n"
            "    @unittest.skip('not here')\n"
            "    def test_skipped(self): pass\n"
        ),
    }
    path = directory / "tiny-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.root
@pytest.mark.skipif(
    sys.platform != "linux" or os.uname().machine != "x86_64", reason="real mode traces x86-64 Linux processes"
)
def test_a_project_s_suite_passes_as_natively_under_both_presets(tmp_path: Path) -> None:
    project = Project("tiny", "tiny==1.0", ("/usr/bin/python3", "-m", "unittest", "-v"), "unittest")
    sdist = projects.fetch(project, _sdist(tmp_path).parent)  # found in the cache: no pip, no network
    env = environment(tmp_path)
    (tmp_path / "home").mkdir()
    results = projects.compare(project, sdist, ("dmvx", "dmon"), env)
    assert results[0].native.tally == Tally(3, 0, 1), results[0].native.ran.stderr
    for result in results:
        assert result.agrees, f"[{result.under.policy}] {'; '.join(result.problems)}"
