"""ABI-diverse variants: an i386 (gcc -m32) build beside an x86-64 build.

The two builds make the same requests through different system calls and
structures (fstat is newfstatat on x86-64 and statx on i386; struct stat
differs; getrandom asks for a word of either size), and their dynamic loaders
differ altogether. Compared from each program's entry point by canonical
call and meaning, they agree, the follower gets the leader's results in its
own layout, and output equals a native run; a behaviour difference is still
caught.
"""

from __future__ import annotations

import os
import sys

import pytest

from dmvx.exitstatus import ExitStatus
from dmvx.verdict import VerdictKind
from realmode.orchestrator import run
from test_real_support import POLICIES, assert_no_survivors, captured, compile_target, native, no_strays  # noqa: F401

pytestmark = [
    pytest.mark.root,
    pytest.mark.usefixtures("no_strays"),
    pytest.mark.skipif(
        sys.platform != "linux" or os.uname().machine != "x86_64",
        reason="needs an x86-64 kernel that runs i386 programs",
    ),
]


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    directory = tmp_path_factory.mktemp("abi")
    return lambda name: (compile_target(name, directory), compile_target(name, directory, "-m32"))


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("leader", ["x86_64", "i386"])
def test_file_work_agrees_across_abis(builds, policy: str, leader: str) -> None:
    x86, i386 = builds("files")
    first, second = (x86, i386) if leader == "x86_64" else (i386, x86)
    expected = native([x86])
    assert native([i386]).stdout == expected.stdout  # the two builds agree natively
    result, out, err = captured(lambda: run([[first], [second]], policy))
    assert result.verdict is None, result.verdict.summary()
    assert (out, err, result.program_status) == (expected.stdout, expected.stderr, 0)
    # The follower was fed: fstat, read and getdents results came from the leader.
    assert result.variants[1].stats["skipped"] >= 5
    assert_no_survivors(result)


@pytest.mark.parametrize("policy", POLICIES)
def test_stdin_and_status_across_abis(builds, tmp_path, policy: str) -> None:
    x86, i386 = builds("hello")
    (tmp_path / "64").mkdir()
    (tmp_path / "32").mkdir()
    os.link(x86, tmp_path / "64" / "hello")  # one program name for both builds
    os.link(i386, tmp_path / "32" / "hello")
    first, second = str(tmp_path / "64" / "hello"), str(tmp_path / "32" / "hello")
    data = b"one\ntwo\n"
    expected = native([first, "4", "echo"], data)
    result, out, err = captured(lambda: run([[first, "4", "echo"], [second, "4", "echo"]], policy), stdin=data)
    assert result.verdict is None, result.verdict.summary()
    assert (out, err, result.process_exit_code) == (expected.stdout, expected.stderr, 4)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("evil", [0, 1])
def test_a_divergent_variant_is_caught_across_abis(builds, policy: str, evil: int) -> None:
    x86, i386 = builds("files")
    envs = [dict(os.environ), dict(os.environ)]
    envs[evil]["DMVX_EVIL"] = "1"  # that variant opens another file
    result, out, _ = captured(lambda: run([[x86], [i386]], policy, envs=envs))
    assert result.exit_status is ExitStatus.DIVERGENCE, result.to_json()
    assert result.verdict.kind is VerdictKind.ARG_MISMATCH
    assert "/etc/hostname" in result.verdict.summary()
    if policy == "dmon":
        assert b"checksum" not in out  # stopped at the open (dmvx's leader may run ahead)
    assert_no_survivors(result)


def test_same_abi_pairs_are_compared_from_exec(builds) -> None:
    # The loader of a homogeneous pair is compared too: from exec, not from entry.
    x86, _ = builds("files")
    exec_run, _, _ = captured(lambda: run([[x86], [x86]], "dmvx"))
    entry_run, _, _ = captured(lambda: run([[x86], [x86]], "dmvx", compare_from="entry"))
    assert exec_run.verdict is None and entry_run.verdict is None
    assert exec_run.variants[0].stats["stops"] > entry_run.variants[0].stats["stops"] + 5
