"""Transparency: real programs under two variants behave exactly as natively.

Same stdout, same stderr, same exit status, no verdict -- under both
policies. Programs missing from the machine are skipped by name.
"""

from __future__ import annotations

import shutil

import pytest

from realmode.orchestrator import run
from test_real_support import captured, native

pytestmark = pytest.mark.root

PROGRAMS = [
    ["ls", "-la", "/etc/apt"], ["cat", "/etc/passwd"], ["sort", "-r", "/etc/passwd"],
    ["wc", "-l", "/etc/passwd"], ["sha256sum", "/etc/passwd"], ["md5sum", "/etc/passwd"],
    ["grep", "-n", "root", "/etc/passwd"], ["sed", "s/:/;/g", "/etc/passwd"],
    ["awk", "-F:", "{print $1}", "/etc/passwd"], ["find", "/etc/apt", "-type", "f"],
    ["head", "-n3", "/etc/passwd"], ["tail", "-n3", "/etc/passwd"], ["cut", "-d:", "-f1", "/etc/passwd"],
    ["uniq", "/etc/passwd"], ["gzip", "-c", "/etc/passwd"], ["tar", "cf", "-", "/etc/apt"],
    ["od", "-x", "/etc/hostname"], ["stat", "/etc/passwd"], ["du", "-s", "/etc/apt"],
    ["nl", "/etc/passwd"], ["tr", "a-z", "A-Z"], ["sqlite3", ":memory:", "select 1+1;"],
    ["perl", "-e", "print 6*7"], ["base64", "/etc/hostname"], ["comm", "/etc/passwd", "/etc/group"],
    ["diff", "/etc/passwd", "/etc/group"], ["id"], ["cat", "/no/such/file"],
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
