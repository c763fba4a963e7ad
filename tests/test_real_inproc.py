"""The in-process path (issue 14): replicated calls without a ptrace stop, still checked by the core.

End to end under ``dmvx run --in-process on``: the microbenchmark's calls run
through the library (realmode/native/dipmon.c) in both variants and reach the
core's monitors (every call counted, the program's output as natively); a
variant that jumps to the trampoline itself for a sensitive call is still
stopped (its lockstep call is compared, the directory it asks for is never
made); a replicated call issued from the trampoline behind the library's back
goes unrecorded (what a compromised leader keeps, docs/attacks.md); a forged
record in a variant's ring is a protocol-error verdict, not a crash. The
layout the monitor parses is checked against the C header, and malformed
records against the parser.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from dmvx import syscalls
from dmvx.syscalls import Arch
from dmvx.verdict import VerdictKind
from realmode import orchestrator, seccomp
from realmode import ptrace_ll as ll
from realmode.inproc import layout, tables
from realmode.native import build as native_build
from realmode.orchestrator import inproc_libraries, make_policy, run
from test_real_support import REAL_RUNS, captured, compile_target, no_strays  # noqa: F401

CALLS = 300
#: bench.c reads the clock before and after its loop: fast calls too (x86-64).
CLOCK_READS = 2


def real(test):
    """The marks of a real run (root, no process left behind, x86-64 Linux)."""
    for mark in REAL_RUNS:
        test = mark(test)
    return test


# -- the layout, without running anything ----------------------------------------


def test_layout_mirrors_the_c_header() -> None:
    """Every number both sides use is the same in dipmon.h and layout.py."""
    header = layout.HEADER_FILE.read_text()
    defined = {m[0]: int(m[1], 0) for m in re.findall(r"#define (\w+) (0x[0-9a-fA-F]+|\d+)", header)}
    pairs = {
        "DIPMON_MAGIC": layout.MAGIC,
        "DIPMON_VERSION": layout.VERSION,
        "DIPMON_FD": layout.FD,
        "DIPMON_TRAMPOLINE": layout.TRAMPOLINE,
        "DIPMON_HEADER": layout.HEADER,
        "DIPMON_NR_TABLE": layout.NR_TABLE,
        "DIPMON_FD_TABLE": layout.FD_TABLE,
        "REC_HEAD": layout.REC_HEAD,
        "REG_HEAD": layout.REG_HEAD,
        "ARG_SHIFT": layout.ARG_SHIFT,
        "RF_NOTFAST": layout.RF_NOTFAST,
    }
    for name in ("H_ENABLED", "H_ROLE", "H_WAITING", "H_WAKE", "H_LOADED", "H_SEQ", "H_OUT_HEAD", "H_OUT_TAIL"):
        pairs[name] = getattr(layout, name)
    for name in ("H_IN_HEAD", "H_IN_TAIL", "H_RING", "H_FAST", "H_FALLBACK", "H_INCALL", "H_CALL_ROUTE", "H_FD_ROUTE"):
        pairs[name] = getattr(layout, name)
    for name in ("H_SOCKET_BITS", "H_HEARD", "H_WAITED", "WAIT_ROOM", "WAIT_ENTRY"):
        pairs[name] = getattr(layout, name)
    assert {name: defined.get(name) for name in pairs} == pairs
    tag = re.search(r'#define DIPMON_ABI_TAG "([^"]*)"', header)
    assert tag is not None and tag[1].encode() == layout.ABI_TAG
    for name, bit in (("FDK_READ", "read"), ("FDK_WRITE", "writev"), ("FDK_RECV", "recvfrom")):
        assert defined[name] == layout.FD_KINDS[bit]


def _ring(*records: bytes) -> tuple[memoryview, int]:
    data = b"".join(records)
    return memoryview(bytearray(data) + bytearray(4096 - len(data))), len(data)


def test_a_record_parses_back() -> None:
    ring, written = _ring(layout.build_record(7, 0, 5, (3, 0x1000, 10), [(0x1000, b"hello")]))
    record, length = layout.parse_record(ring, 0, written)
    assert record is not None and length == written
    assert (record.seq, record.nr, record.result, record.args[:3], record.regions) == (
        7,
        0,
        5,
        (3, 0x1000, 10),
        ((0x1000, b"hello"),),
    )


@pytest.mark.parametrize(
    "forged, why",
    [
        (b"\x08", "cut short"),
        (layout.build_record(1, 39, 0, (), [])[:40], "written"),  # the header promises more than is there
        (bytes.fromhex("f8ffff7f27000000") + bytes(72), "bytes at ring offset"),  # longer than the ring
        (bytes.fromhex("1000000027000000") + bytes(8), "shorter than its header"),
        (
            layout.build_record(1, 0, 5, (3, 0, 10), [(0x1000, b"hello")])[:80]
            + (0x1000).to_bytes(8, "little")
            + (4000).to_bytes(4, "little")
            + bytes(4),
            "past its record",
        ),
    ],
)
def test_a_forged_record_is_malformed_not_a_crash(forged: bytes, why: str) -> None:
    data = bytearray(forged)
    if len(data) >= 8 and why == "past its record":
        data[0:4] = len(data).to_bytes(4, "little")
    ring, _ = _ring(bytes(data))
    with pytest.raises(layout.Malformed, match=why):
        layout.parse_record(ring, 0, len(data))


def test_a_drain_takes_every_record_in_one_pass() -> None:
    """The monitor parses the whole ring at once (padding skipped, each
    record with the ring position after it, so the tail moves only as the
    core takes them)."""
    first = layout.build_record(7, 39, 100, (), [])
    second = layout.build_record(8, 0, 1, (3, 0x1000, 1), [(0x1000, b"x")])
    ring, written = _ring(first + layout.pad_record(16) + second)
    records, problem = layout.parse_records(ring, 0, written, 6)
    assert problem is None
    assert [(p.record.seq if p.record else None, p.end, p.records) for p in records] == [
        (7, len(first), 1),
        (None, len(first) + 16, 1),
        (8, written, 1),
    ]
    last = records[2].record
    assert last is not None and last.regions == ((0x1000, b"x"),)


def _ticked(record: bytes, ticks: int) -> bytes:
    """``record`` with the TSC ticks the library writes in its flags word."""
    return record[:76] + ticks.to_bytes(4, "little") + record[80:]


def test_equal_records_in_a_row_are_one_run() -> None:
    """A loop's records -- equal but for their sequence numbers and ticks --
    parse as one run (the monitor hands it to the core as one event); a
    different result, other memory, a gap in the numbers or padding ends
    the run, and what follows is parsed on its own."""
    read = [_ticked(layout.build_record(seq, 0, 1, (3, 0x1000, 1), [(0x1000, b"x")]), seq * 7) for seq in (5, 6, 7)]
    other_byte = layout.build_record(8, 0, 1, (3, 0x1000, 1), [(0x1000, b"y")])
    failed = layout.build_record(9, 0, -11, (3, 0x1000, 1), [(0x1000, b"y")])
    gap = layout.build_record(11, 0, -11, (3, 0x1000, 1), [(0x1000, b"y")])
    ring, written = _ring(
        *read,
        other_byte,
        failed,
        gap,
        layout.pad_record(16),
        layout.build_record(12, 0, -11, (3, 0x1000, 1), [(0x1000, b"y")]),
    )
    records, problem = layout.parse_records(ring, 0, written, 4)
    assert problem is None
    size = len(read[0])
    assert [(p.record.seq if p.record else None, p.records, p.length, p.end) for p in records] == [
        (5, 3, size, 3 * size),
        (8, 1, size, 4 * size),
        (9, 1, size, 5 * size),
        (11, 1, size, 6 * size),
        (None, 1, 0, 6 * size + 16),
        (12, 1, size, written),
    ]
    first = records[0].record
    assert first is not None and first.ticks == 35 and first.regions == ((0x1000, b"x"),)


def test_a_forged_record_inside_a_run_ends_it_and_is_named() -> None:
    """The run's genuine records are returned; the forged one after them is
    named by the run's last call."""
    good = [layout.build_record(seq, 39, 100, (), []) for seq in (21, 22, 23, 24)]
    forged = bytes.fromhex("f8ffff7f27000000") + bytes(72)
    ring, written = _ring(*good, forged)
    records, problem = layout.parse_records(ring, 0, written, 20)
    assert [(p.record.seq, p.records) for p in records if p.record] == [(21, 4)]
    assert problem is not None and "the record after call 24" in str(problem)


def test_a_forged_record_in_the_middle_of_a_drain_is_named() -> None:
    """The records before a forged one are genuine and are handed over; the
    forged one is named by the call it follows and its ring offset."""
    good = [layout.build_record(seq, 39, 100, (), []) for seq in (11, 12, 13)]
    forged = bytes.fromhex("f8ffff7f27000000") + bytes(72)  # longer than the ring
    ring, written = _ring(b"".join(good) + forged + layout.build_record(14, 39, 100, (), []))
    records, problem = layout.parse_records(ring, 0, written, 10)
    assert [(p.record.seq if p.record else None, p.records) for p in records] == [(11, 3)]
    assert problem is not None
    assert f"the record after call 13: a record of {0x7FFFFFF8} bytes at ring offset {3 * len(good[0])}" in str(problem)
    # Cut short instead: the same naming, from the call before the pass.
    records, problem = layout.parse_records(ring, 0, 40, 10)
    assert records == [] and "the record after call 10" in str(problem)


def test_a_followers_own_epoll_data_is_checked_against_the_registrations_its_monitor_keeps() -> None:
    """A follower's library writes its own data for each of the leader's
    events (which name descriptors) from its copy of its registrations; its
    monitor checks the record against the map it keeps from the same calls,
    as a stop would have written it: data that is not the follower's own for
    that descriptor (a stale or lying library) is a protocol-error."""
    from types import SimpleNamespace

    from dmvx.calls import Call, Outcome
    from realmode.epoll import EpollMap
    from realmode.inproc.path import InProcess

    fast = InProcess.__new__(InProcess)
    epoll = EpollMap()
    epoll.apply(5, 1, 8, 0xAAAA)  # epoll_ctl(5, ADD, 8, {.data = 0xAAAA})
    fast.proc = SimpleNamespace(reader=SimpleNamespace(epoll=epoll))  # type: ignore[assignment]
    errors: list[str] = []
    fast._protocol_error = errors.append  # type: ignore[method-assign,assignment]
    raw = SimpleNamespace(call=Call("epoll_pwait", (5, 0x1000, 4, 1000, None, None)))
    leaders = Outcome(1, ((1, struct.pack("<IQ", 1, 8)),))  # EPOLLIN on descriptor 8
    own = layout.Record(9, 232, 1, (5, 0x1000, 4, 1000, 0, 0), ((0x1000, struct.pack("<IQ", 1, 0xAAAA)),))
    assert fast._own_events(raw, own, leaders) and errors == []  # type: ignore[arg-type]
    stale = own._replace(regions=((0x1000, struct.pack("<IQ", 1, 0xBBBB)),))
    assert not fast._own_events(raw, stale, leaders)  # type: ignore[arg-type]
    assert errors and "other epoll data than its registrations say" in errors[0]
    # The leader's own value, tagged unknown, is passed on as it came.
    unknown = Outcome(1, ((1, struct.pack("<IQ", 1, (1 << 63) | 0x5555)),))
    assert fast._own_events(raw, own._replace(regions=((0x1000, struct.pack("<IQ", 1, 0x5555)),)), unknown)  # type: ignore[arg-type]


def test_the_tables_come_from_the_broker() -> None:
    """dmvx replicates the wrapped calls asynchronously, so the filter lets
    them through from the trampoline; dmon holds every call in lockstep,
    so nothing is fast and the filter knows no trampoline."""
    assert {"getpid", "read", "getcwd", "sched_yield", "writev", "recvfrom"} <= tables.filter_names(make_policy("dmvx"))
    assert tables.filter_names(make_policy("dmon")) == frozenset()


def _filter_says(program, arch: int, nr: int, ip: int) -> int:
    """What the classic-BPF ``program`` returns for a call (a small
    interpreter of the instructions realmode.seccomp emits)."""
    data = struct.pack("<iIQ", nr, arch, ip) + bytes(48)
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x20:  # ld word at k
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x06:
            return k
        elif code == 0x05:
            pc += k
        else:
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf


def test_the_filter_lets_fast_calls_through_from_each_abis_trampoline_only() -> None:
    """An i386 variant's fast calls come from its own trampoline's ``int
    $0x80``: allowed from there (by i386 number), stopped from anywhere else,
    and a sensitive call stops even from there; the same for x86-64."""
    policy = make_policy("dmvx")
    program = seccomp.build_filter(policy, tables.filter_names(policy), layout.SITES)
    allow, trace = seccomp.SECCOMP_RET_ALLOW, seccomp.SECCOMP_RET_TRACE
    x64, i386 = ll.AUDIT_ARCH_X86_64, ll.AUDIT_ARCH_I386
    site64, site32 = layout.SITES[Arch.X86_64], layout.SITES[Arch.I386]

    def nr(name: str, arch: Arch) -> int:
        return syscalls.all_numbers(name, arch)[0]

    for name in ("getpid", "read", "getcwd", "recvfrom"):
        assert _filter_says(program, i386, nr(name, Arch.I386), site32) == allow, name
        assert _filter_says(program, i386, nr(name, Arch.I386), site32 + 0x1000) == trace, name
        assert _filter_says(program, i386, nr(name, Arch.I386), site32 | 1 << 32) == trace, name
        assert _filter_says(program, x64, nr(name, Arch.X86_64), site64) == allow, name
        assert _filter_says(program, x64, nr(name, Arch.X86_64), site32) == trace, name
    for name in ("mkdirat", "openat", "execve", "kill"):
        assert _filter_says(program, i386, nr(name, Arch.I386), site32) == trace, name
        assert _filter_says(program, x64, nr(name, Arch.X86_64), site64) == trace, name
    # Without the in-process path, no trampoline.
    plain = seccomp.build_filter(policy)
    assert _filter_says(plain, i386, nr("getpid", Arch.I386), site32) == trace


def test_only_a_followers_filter_lets_its_placeholder_dup3_through_from_the_trampoline() -> None:
    """A follower's library makes its fast accept4's descriptor with a
    ``dup`` from the trampoline (its listening socket's placeholder copied to
    the lowest free number, the leader's), a ``dup3`` over that copy for
    ``SOCK_CLOEXEC`` and a ``close`` of it when it landed elsewhere: the
    followers' filter lets ``dup`` and ``dup3`` through from there only, and
    the leader's -- whose descriptors are real objects the core keeps kinds
    of -- stops them from the trampoline as anywhere else."""
    policy = make_policy("dmvx")
    leader, follower, *others = orchestrator.variant_filters(policy, 3, preloading=True)
    assert others == [follower]
    allow, trace = seccomp.SECCOMP_RET_ALLOW, seccomp.SECCOMP_RET_TRACE
    x64, site = ll.AUDIT_ARCH_X86_64, layout.SITES[Arch.X86_64]
    for name in ("dup", "dup3", "close"):
        number = syscalls.all_numbers(name, Arch.X86_64)[0]
        assert _filter_says(follower, x64, number, site) == allow, name
        assert _filter_says(follower, x64, number, site + 0x1000) == trace, name
    for name in ("dup", "dup3"):
        assert _filter_says(leader, x64, syscalls.all_numbers(name, Arch.X86_64)[0], site) == trace, name
        assert name not in tables.filter_names(policy) and name in tables.filter_names(policy, follower=True)
    for name in ("mkdirat", "openat", "dup2", "execve"):
        assert _filter_says(follower, x64, syscalls.all_numbers(name, Arch.X86_64)[0], site) == trace, name
    dup3 = syscalls.all_numbers("dup3", Arch.X86_64)[0]
    # Without the in-process path, one filter for all, no trampoline.
    plain = orchestrator.variant_filters(policy, 2, preloading=False)
    assert plain[0] == plain[1] and _filter_says(plain[1], x64, dup3, site) == trace


def test_a_library_is_chosen_per_variant_by_elf_class(tmp_path: Path) -> None:
    """x86-64 and i386 executables each get their own build of the library;
    dmon (all lockstep) none; an architecture without a build none."""
    x86, i386, arm = tmp_path / "x86", tmp_path / "i386", tmp_path / "arm"
    x86.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + (62).to_bytes(2, "little"))
    i386.write_bytes(b"\x7fELF\x01\x01\x01" + bytes(11) + (3).to_bytes(2, "little"))
    arm.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + (183).to_bytes(2, "little"))
    native_build.build()
    chosen = inproc_libraries(make_policy("dmvx"), [str(x86), str(i386), str(arm)])
    assert chosen == [
        str(native_build.LIBRARIES[Arch.X86_64]),
        str(native_build.LIBRARIES[Arch.I386]),
        None,
    ]
    assert inproc_libraries(make_policy("dmon"), [str(x86), str(i386)]) == [None, None]


def _tagged_copy(tmp_path: Path, name: str, old: bytes, new: bytes) -> Path:
    """A copy of the built x86-64 library with ``old`` in its bytes replaced."""
    data = native_build.LIBRARIES[Arch.X86_64].read_bytes()
    assert old in data
    copy = tmp_path / name
    copy.write_bytes(data.replace(old, new))
    return copy


def test_a_library_not_built_from_this_tree_is_refused_and_says_why(tmp_path: Path, monkeypatch) -> None:
    """The library's ABI tag (layout version, digest of its sources) is read
    before a run: a library of another layout, from other sources (dipmon.c
    changed since ./run setup) or older than the tag is not preloaded, and
    the problem is one sentence naming the file and the fix."""
    native_build.build()
    tag = layout.ABI_TAG + f"{layout.VERSION} {native_build.source_digest()}".encode()
    assert native_build.identity(native_build.LIBRARIES[Arch.X86_64]) == (layout.VERSION, native_build.source_digest())
    cases = {
        "missing": (tmp_path / "absent.so", "is not built"),
        "stale": (_tagged_copy(tmp_path, "stale.so", tag, tag[:-4] + b"0000"), "built from other sources"),
        "layout": (
            _tagged_copy(tmp_path, "layout.so", tag, tag.replace(f" {layout.VERSION} ".encode(), b" 9 ", 1)),
            "layout version 9",
        ),
        "untagged": (_tagged_copy(tmp_path, "old.so", layout.ABI_TAG, b"x" * len(layout.ABI_TAG)), "no ABI tag"),
    }
    if layout.VERSION == 9:
        del cases["layout"]
    same = _tagged_copy(tmp_path, "same.so", tag, tag)
    for path, said in cases.values():
        monkeypatch.setitem(native_build.LIBRARIES, Arch.X86_64, path)
        found = native_build.check(Arch.X86_64)
        problem = found.problem or ""
        assert found.path is None and said in problem and str(path.name) in problem
        assert "./run setup" in problem and "\n" not in problem
        assert native_build.stale()
    monkeypatch.setitem(native_build.LIBRARIES, Arch.X86_64, same)
    assert native_build.check(Arch.X86_64).problem is None


# -- real runs ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def library() -> Path:
    return native_build.build()


@pytest.fixture(scope="module")
def targets(tmp_path_factory, library) -> Path:
    directory = tmp_path_factory.mktemp("targets")
    compile_target("bench", directory)
    compile_target("inproc_hostile", directory)
    compile_target("inproc_server", directory)
    compile_target("inproc_signals", directory)
    compile_target("inproc_clone", directory)
    compile_target("inproc_again", directory)
    compile_target("inproc_ahead", directory)
    compile_target("inproc_squat", directory)
    compile_target("epoll_raw", directory)
    return directory


@pytest.fixture(scope="module")
def targets32(targets) -> Path:
    """The same targets built with gcc -m32 (i386), beside the x86-64 ones."""
    compile_target("bench", targets, "-m32")
    compile_target("inproc_hostile", targets, "-m32")
    return targets


def _variant(result, index: int) -> dict:
    return result.variants[index].stats


@pytest.mark.parametrize("kind", ["getpid", "read", "getcwd", "sched_yield"])
@real
def test_replicated_calls_take_the_in_process_path(targets: Path, kind: str) -> None:
    argv = [str(targets / "bench"), kind, str(CALLS)]
    result, out, _ = captured(lambda: run([argv, argv], "dmvx", in_process=True))
    assert result.verdict is None and result.program_status == 0, result.verdict
    assert out.startswith(f"{kind} {CALLS} ".encode())
    for index in (0, 1):
        fast = _variant(result, index)["in_process"]
        assert fast["path"] == "in-process"
        # Every call reached the core: taken on the fast path, or (a
        # follower whose entry was late) stopped and handled as before.
        # The program's first calls can beat the monitor's switching the
        # library on (they stop, as on the ptrace path): its first clock
        # read, now and then the loop's first call.
        taken = fast["fast_calls"] + fast["fallbacks"]
        assert CALLS - 1 <= taken <= CALLS + CLOCK_READS, fast
    assert CALLS <= _variant(result, 0)["in_process"]["fast_calls"] <= CALLS + CLOCK_READS
    off, off_out, _ = captured(lambda: run([argv, argv], "dmvx", in_process=False))
    assert off.verdict is None and _variant(off, 0)["in_process"] == {"path": "ptrace"}

    # The core saw every call on both paths (and, on the new one, the
    # library's own set-up: mapping its trampoline, closing the area's fd).
    def replicated(run_result) -> int:
        routes = _variant(run_result, 0)["routes"]
        return routes.get("replicate", 0) + routes.get("predict", 0)

    assert replicated(result) >= replicated(off) >= CALLS
    assert out.split()[:2] == off_out.split()[:2]


@real
def test_a_stale_library_is_one_line_and_the_report_says_ptrace(
    targets: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A run that asks for the in-process path with a library built from
    other sources runs on the ptrace path, says so in one line on stderr
    (one for both variants), and its report gives each variant's path and why."""
    tag = layout.ABI_TAG + f"{layout.VERSION} {native_build.source_digest()}".encode()
    stale = _tagged_copy(tmp_path, "stale.so", tag, tag[:-4] + b"0000")
    monkeypatch.setitem(native_build.LIBRARIES, Arch.X86_64, stale)
    argv = [str(targets / "bench"), "getpid", str(CALLS)]
    capsys.readouterr()
    result, out, _ = captured(lambda: run([argv, argv], "dmvx", in_process=True))
    assert result.verdict is None and result.program_status == 0, result.verdict
    assert out.startswith(f"getpid {CALLS} ".encode())
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("dmvx run: leader, follower 1 on the ptrace path: ") and "stale.so" in lines[0]
    for index in (0, 1):
        said = _variant(result, index)["in_process"]
        assert said["path"] == "ptrace" and "built from other sources" in said["why"], said


@pytest.mark.parametrize("leader", ["x86_64", "i386"])
@pytest.mark.parametrize("kind", ["read", "getcwd"])
@real
def test_an_abi_diverse_pair_takes_the_in_process_path(targets32: Path, kind: str, leader: str) -> None:
    """An x86-64 and an i386 build of the same program: each variant loads
    the library of its own ELF class, the i386 one issues its fast calls
    from its own trampoline (``int $0x80``) with its own call numbers and
    32-bit registers, and both sides' records reach their cores, which
    compare them as at a stop: the run ends as natively, fast calls > 0 in
    the i386 variant too."""
    x86 = [str(targets32 / "bench"), kind, str(CALLS)]
    i386 = [str(targets32 / "bench-m32"), kind, str(CALLS)]
    pair = [x86, i386] if leader == "x86_64" else [i386, x86]
    result, out, _ = captured(lambda: run(pair, "dmvx", in_process=True))
    assert result.verdict is None and result.program_status == 0, result.verdict
    assert out.startswith(f"{kind} {CALLS} ".encode())
    paths = [_variant(result, index)["in_process"] for index in (0, 1)]
    assert [p["path"] for p in paths] == ["in-process", "in-process"]
    assert all(p["fast_calls"] > 0 for p in paths), paths
    # Every call reached the core: the leader's on the fast path (but for
    # any before the switch went on at the entry point), the follower's too
    # or handed back to the tracer.
    assert paths[0]["fast_calls"] >= CALLS - 2
    assert paths[1]["fast_calls"] + paths[1]["fallbacks"] >= CALLS - 2


@real
def test_an_i386_variant_jumping_to_its_trampoline_for_a_sensitive_call_still_stops(
    targets32: Path, tmp_path: Path
) -> None:
    """The i386 leader's ``int $0x80`` trampoline lets only the fast calls
    through: its mkdirat from there stops, and the core holds it in lockstep
    against the x86-64 follower's different call; no directory is made."""
    made = tmp_path / "made-unmonitored"
    document = _dmvx_run(
        str(targets32 / "inproc_hostile-m32"), "mkdir", str(made), variant=f"{targets32 / 'inproc_hostile'} plain"
    )
    assert document["status"] == "divergence"
    assert document["verdict"]["calls"]["leader"].startswith("mkdirat(")
    assert not made.exists()
    assert [v["in_process"]["path"] for v in document["variants"]] == ["in-process", "in-process"]


def _dmvx_run(*argv: str, variant: str | None = None) -> dict:
    extra = ["--variant", variant] if variant else []
    done = subprocess.run(
        [sys.executable, "-m", "dmvx", "run", "--in-process", "on", "--json", *extra, "--", *argv],
        capture_output=True,
        timeout=60,
        start_new_session=True,
    )
    assert done.stdout, f"dmvx did not survive (status {done.returncode}): {done.stderr.decode()[-500:]}"
    return json.loads(done.stdout)


@real
def test_a_sensitive_call_from_the_trampoline_still_stops(targets: Path, tmp_path: Path) -> None:
    """The leader jumps to the trampoline for mkdirat; the filter checks the
    number first, so the call stops, the core holds it in lockstep, finds the
    follower's different call and ends the run before the directory is made."""
    hostile = str(targets / "inproc_hostile")
    made = tmp_path / "made-unmonitored"
    document = _dmvx_run(hostile, "mkdir", str(made), variant=f"{hostile} plain")
    assert document["status"] == "divergence"
    assert document["verdict"]["calls"]["leader"].startswith("mkdirat(")
    assert not made.exists()
    assert [v["in_process"]["path"] for v in document["variants"]] == ["in-process", "in-process"]


@real
def test_a_replicated_call_from_the_trampoline_goes_unrecorded(targets: Path) -> None:
    """What a compromised leader keeps (docs/attacks.md): a call the filter
    lets through from the trampoline, issued behind the library's back, is
    neither recorded nor compared -- the run ends as if it had not happened."""
    hostile = str(targets / "inproc_hostile")
    document = _dmvx_run(hostile, "getpid", variant=f"{hostile} plain")
    assert document["status"] == "ok"
    assert document["variants"][0]["in_process"]["fast_calls"] == 0


@real
def test_a_forged_ring_record_is_a_verdict(targets: Path) -> None:
    """The program makes five genuine fast getpid calls, then forges a record
    behind them: the genuine ones reach the core (they are drained with the
    forged one, in one pass), and the verdict names the record after the last
    of them, at the sequence number after it."""
    document = _dmvx_run(str(targets / "inproc_hostile"), "forge")
    assert document["status"] == "divergence"
    verdict = document["verdict"]
    assert verdict["kind"] == "protocol-error"
    assert "in-process ring" in verdict["detail"]
    named = re.search(r"the record after call (\d+)", verdict["detail"])
    assert named, verdict["detail"]
    assert verdict["seq"] == int(named.group(1)) + 1
    assert document["variants"][0]["in_process"]["fast_calls"] >= 5
    # The text report says which path each variant took.
    done = subprocess.run(
        [sys.executable, "-m", "dmvx", "run", "--in-process", "on", "--", str(targets / "inproc_hostile"), "forge"],
        capture_output=True,
        timeout=60,
        start_new_session=True,
    )
    # The follower's path is what it reached before the verdict: its library
    # may not have loaded yet (it is still in the loader's calls, on the
    # ptrace path) when the leader's forged record ends the run.
    said = re.search(
        r"replicated calls took these paths: leader in-process, follower 1 (in-process|ptrace)\n", done.stderr.decode()
    )
    assert said, done.stderr.decode()


@real
def test_a_fast_read_that_blocks_past_the_stall_timeout_is_no_stall() -> None:
    """The leader's read of its stdin blocks 2.5 s (past the 2 s stall
    timeout) inside the library, with no stop: its monitor sends heartbeats
    meanwhile (the library says it is inside a call), so the follower, whose
    library hands its read back to the tracer to wait, is not taken for stalled."""
    done = subprocess.run(
        ["sh", "-c", f"(sleep 2.5; echo hello) | {sys.executable} -m dmvx run --in-process on --json -- cat"],
        capture_output=True,
        timeout=60,
        start_new_session=True,
    )
    document = json.loads(done.stdout)
    assert document["status"] == "ok", document["verdict"]
    assert done.stderr.decode().strip().endswith("hello")
    assert document["variants"][0]["in_process"]["fast_calls"] >= 1


SERVED = 30


@real
def test_a_server_loop_takes_accept_close_and_epoll_on_the_fast_path(targets: Path) -> None:
    """A server's request (realmode/targets/inproc_server.c: epoll_wait,
    accept4, epoll_ctl with a pointer as data, read, epoll_ctl DEL, close)
    no longer stops in the leader: accept4's socket gets its fast byte from
    the library (the core's for a socket) and the core's table learns it from
    the record; close keeps the bytes current; epoll_wait's events go to the
    core as descriptors and each follower gets its own data back (no event
    with the leader's pointer: ``bad 0``). A follower closes, registers and
    waits on the fast path too: its library keeps its own registrations and
    writes its own data for each of the leader's events, which its monitor
    checks against the map it keeps; its accept4 makes its descriptor at the
    leader's number with a dup3 of its listening socket's placeholder from
    the trampoline. On the old library only read was fast; before the
    follower's epoll_wait was, a follower took 5 calls a request fast (151 in
    a run of 30), before its accept4 was 7 (211)."""
    argv = [str(targets / "inproc_server"), str(SERVED)]
    result, out, _ = captured(lambda: run([argv, argv], "dmvx", in_process=True))
    assert result.verdict is None and result.program_status == 0, result.verdict
    assert out == f"served {SERVED} bad 0\n".encode()
    leader, follower = _variant(result, 0), _variant(result, 1)
    # Per request: 2 epoll_wait, accept4, 2 epoll_ctl, read, 2 close.
    assert leader["in_process"]["fast_calls"] >= 6 * SERVED, leader["in_process"]
    # Per request: 2 epoll_wait, accept4, 2 epoll_ctl, read, 2 close (a late entry may stop instead).
    assert follower["in_process"]["fast_calls"] + follower["in_process"]["fallbacks"] >= 8 * SERVED
    assert follower["in_process"]["fast_calls"] >= 15 * SERVED // 2, follower["in_process"]
    # The leader's read and epoll_ctl and epoll_wait records go to the core as
    # one event each (call_replicated), not by call_entered and call_exited
    # with their actions carried out; accept4 and close (they change the
    # descriptor table) take the general path.
    assert leader["in_process"]["one_step_calls"] >= 3 * SERVED, leader["in_process"]


AGAIN = 40


@real
def test_a_follower_takes_an_accept4_error_and_clock_reads_from_the_leaders_entry(targets: Path) -> None:
    """An accept4 that finds no connection (EAGAIN: an event loop's every
    other accept4) makes no descriptor, and a clock read's value is the
    leader's in every variant: a follower's library takes both from the
    leader's entry, without a stop (realmode/targets/inproc_again.c), and so
    does the accept4 that makes a descriptor (a dup3 of its listening
    socket's placeholder to the leader's number). The program prints the
    same as on the ptrace path. On the old library each of these stopped."""
    argv = [str(targets / "inproc_again"), str(AGAIN)]
    result, out, _ = captured(lambda: run([argv, argv], "dmvx", in_process=True))
    assert result.verdict is None and result.program_status == 0, result.verdict
    assert out == f"again {AGAIN} accepted 1 clocks {AGAIN}\n".encode()
    leader, follower = _variant(result, 0)["in_process"], _variant(result, 1)["in_process"]
    # Per round: accept4 and two clock reads, on both sides.
    assert leader["fast_calls"] >= 3 * AGAIN, leader
    assert follower["fast_calls"] + follower["fallbacks"] >= 3 * AGAIN, follower
    assert follower["fast_calls"] >= 2 * AGAIN, follower
    off, off_out, _ = captured(lambda: run([argv, argv], "dmvx", in_process=False))
    assert off.verdict is None and off_out == out


@real
def test_a_followers_fast_accept4_never_replaces_a_descriptor_it_holds(targets: Path) -> None:
    """The follower holds a descriptor at the number the leader's accept4
    returns, one the core does not know (realmode/targets/inproc_squat.c
    copies its standard input there with a dup3 from the trampoline, as a
    compromised follower or a descriptor the core's table lacks would). Its
    library's fast accept4 once made its descriptor with a dup3 to the
    leader's number, which closed that one without a word, and the run ended
    clean; now its copy lands at the lowest free number, which is not the
    leader's, so the library closes it and leaves the call to the tracer,
    whose placeholder lands there too and says so: a protocol-error verdict,
    and the descriptor the follower held was never replaced. Without the
    squat the follower's accept4 stays fast (the server tests)."""
    squat = str(targets / "inproc_squat")
    result, _, _ = captured(lambda: run([[squat, "plain"], [squat, "squat"]], "dmvx", in_process=True))
    assert result.verdict is not None, "the follower's descriptor was replaced without a word"
    assert result.verdict.kind is VerdictKind.PROTOCOL_ERROR, result.verdict
    assert "placeholder descriptor landed at (6,), the leader's is (5,)" in (result.verdict.detail or "")
    plain, plain_out, _ = captured(lambda: run([[squat, "plain"], [squat, "plain"]], "dmvx", in_process=True))
    assert plain.verdict is None and plain_out == b"accepted\n", plain.verdict


@pytest.mark.parametrize(("how", "in_process"), [("asm", True), ("asm", False), ("syscall", True)])
@real
def test_an_epoll_registration_the_library_never_saw_keeps_each_variants_data(
    targets: Path, how: str, in_process: bool
) -> None:
    """``epoll_ctl`` as a raw system call (realmode/targets/epoll_raw.c:
    inline ``syscall``, or ``syscall(2)``) registers a pipe with a heap
    pointer as its data, which differs in every variant; libc's
    ``epoll_wait`` then reports it ROUNDS times. The raw call stops (it is
    not issued from the trampoline), so the tracer and the core see it as
    any other and each monitor's map has it, but the follower's library
    does not: its fast epoll_wait once wrote the descriptor number as the
    data (it knew no registration for it), and its monitor ended the run in
    a protocol-error. An event for a descriptor the library knows no
    registration of in that set now leaves the call to the tracer, which
    writes the follower's own pointer: the run ends as natively, "bad 0",
    on the ptrace path as on the in-process one."""
    argv = [str(targets / "epoll_raw"), how, str(ROUNDS)]
    native = subprocess.run(argv, capture_output=True, check=True)
    assert native.stdout == f"rounds {ROUNDS} bad 0\n".encode()
    result, out, _ = captured(lambda: run([argv, argv], "dmvx", in_process=in_process))
    assert result.verdict is None and result.program_status == 0, result.verdict
    assert out == native.stdout


ROUNDS = 30
AHEAD_ROUNDS, AHEAD_CALLS = 3, 6000


@real
def test_a_stopped_epoll_wait_never_runs_ahead_of_the_registrations_in_the_ring(targets: Path) -> None:
    """A leader's epoll wait that stops (realmode/targets/inproc_ahead.c: a
    ``syscall(SYS_epoll_wait)``, which the library leaves to the tracer)
    while its core is behind its ring (past the connector buffer): its events
    are turned into descriptors with the leader's epoll map at its exit stop,
    and the map follows the records as the core takes them -- run ahead, the
    fast ``epoll_ctl`` that registered the descriptor was still in the ring,
    the event went to the follower as the leader's own pointer and the
    follower's program saw it (``bad 2`` against the leader's ``bad 0``: an
    output-mismatch; lighttpd's follower crashed on such a pointer and the
    run cut large responses short). Such calls wait for the core now."""
    argv = [str(targets / "inproc_ahead"), str(AHEAD_ROUNDS), str(AHEAD_CALLS)]
    result, out, _ = captured(lambda: run([argv, argv], "dmvx", in_process=True))
    assert result.verdict is None and result.program_status == 0, result.verdict
    assert out == f"rounds {AHEAD_ROUNDS} bad 0\n".encode()
    assert _variant(result, 0)["in_process"]["fast_calls"] >= AHEAD_ROUNDS * AHEAD_CALLS


@pytest.mark.parametrize("mode", ["spin", "wait", "child"])
@real
def test_a_signal_while_the_leader_runs_fast_calls_lands_at_one_point(targets: Path, mode: str) -> None:
    """SIGALRM comes while the leader makes fast calls (getpid in a loop;
    or waits in a fast epoll_wait): the tracer holds it back, the fast path
    goes off, and the core places it at the next stop once the ring is
    drained, as on the ptrace path -- the handler's write is the same call
    in both variants (no divergence) and the program's output is native.
    ``child``: a vforked child's SIGCHLD comes while the fast path is off
    (the child ran in the parent's memory) and the ring empty, and the
    parent then runs 0.3 s without a call before its next (fast) getpid:
    the signal is held all the same, and the fast path stays off until a
    stop places it. (Before, it went to the core at once, the monitor
    turned the fast path on meanwhile, and the core placed the signal at
    the fast getpid, which had already run: an internal error,
    ``NotImplementedError``, as ``sh -c`` loops met now and then.)
    (The stall timeout is generous: on a loaded machine every call of the
    loop stops while a signal is held.)"""
    argv = [str(targets / "inproc_signals"), mode]
    result, out, _ = captured(lambda: run([argv, argv], "dmvx", in_process=True, stall_timeout=60))
    assert result.verdict is None and result.program_status == 0, result.verdict
    assert out == (b"chld\n" if mode == "child" else b"tick\n" * 5) + b"done\n"
    assert _variant(result, 0)["in_process"]["path"] == "in-process"


@pytest.mark.parametrize("how", ["raw", "fork", "_Fork", "spawn"])
@real
def test_a_child_never_uses_its_parents_ring(targets: Path, how: str) -> None:
    """A child made without CLONE_VM -- by a raw clone system call, glibc's
    fork, or glibc's _Fork (neither of the first and last runs
    pthread_atfork handlers) -- takes the ptrace path: its library's switch
    is in a page the kernel wipes in the child, and the area and trampoline
    are not mapped in it. So only the parent's own calls are in its ring
    (200 before, 200 after the child is made and 200 after it ended: 600 in
    the leader), and nothing the child does is taken for the parent's. (On
    the old library a raw clone's child wrote its getpid records into its
    parent's ring: a false call-mismatch; a _Fork child's 200 were counted
    as the parent's.) glibc's posix_spawn makes its child with a clone3
    sharing the parent's memory (CLONE_VM|CLONE_VFORK): the fast path is off
    while the child runs there and on again once the parent's call returned
    (before, any clone3 turned it off for good: 200 fast calls, not ~600).
    Threads stay off for good (tests/test_real_threads.py on the path)."""
    argv = [str(targets / "inproc_clone"), how]
    result, out, _ = captured(lambda: run([argv, argv], "dmvx", in_process=True))
    assert result.verdict is None and result.program_status == 0, result.verdict
    assert out == b"child\nparent\n"
    leader = _variant(result, 0)["in_process"]
    # At most the parent's 600 (a child's records in its ring would add up to
    # 200 more); a few may stop instead -- right after a spawn's clone3, before
    # the monitor turns the switch on again, or once the child's SIGCHLD is
    # held (the fast path is off until the next stop) -- and reach the core
    # all the same.
    assert leader["path"] == "in-process" and 400 < leader["fast_calls"] <= 600, leader
