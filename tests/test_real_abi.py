"""Real mode's ABI layer on the core's one table, without tracing anything.

:class:`realmode.abi.Reader` reads tracee memory with process_vm_readv; here
the "tracee" is this test process itself (reading one's own memory needs no
privilege), so registers are built by hand around ctypes buffers. These
tests pin down what makes two ABIs comparable: an x86-64 and an i386 variant
making the same request get the same canonical call, and an outcome taken
from one is written into the other in its own layout.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

import pytest

from dmvx import structs, syscalls
from dmvx.calls import Call, Outcome
from dmvx.syscalls import Arch
from realmode import abi, seccomp
from realmode.orchestrator import make_policy, placement
from realmode.pids import PidMap
from realmode.spawn import elf_arch

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads memory with process_vm_readv")

ME = os.getpid()
AT_FDCWD = -100 & (2**64 - 1)
AT_EMPTY_PATH = 0x1000


def _address(buffer) -> int:
    return ctypes.addressof(buffer)


def _string(text: bytes):
    return ctypes.create_string_buffer(text)


def _regs(*values: int) -> tuple[int, ...]:
    return tuple(values) + (0,) * (6 - len(values))


def _nr(name: str, arch: Arch, raw: str | None = None) -> int:
    if raw is None:
        nr = syscalls.number(name, arch)
        assert nr is not None, (name, arch)
        return nr
    return next(nr for nr in range(1000) if syscalls.raw_name(arch, nr) == raw)


def test_fstat_is_one_canonical_call_on_both_abis() -> None:
    # x86-64 glibc: newfstatat(fd, "", buf, AT_EMPTY_PATH); i386 glibc: statx(fd, "", flags, BASIC, buf).
    empty = _string(b"")
    stat64 = ctypes.create_string_buffer(144)
    statx = ctypes.create_string_buffer(256)
    reader = abi.Reader(ME)
    x86 = reader.call(
        Arch.X86_64, _nr("fstatat", Arch.X86_64), _regs(3, _address(empty), _address(stat64), AT_EMPTY_PATH)
    )
    i386 = reader.call(
        Arch.I386, _nr("statx", Arch.I386), _regs(3, _address(empty), AT_EMPTY_PATH | 0x800, 0x7FF, _address(statx))
    )
    assert x86.call == i386.call == Call("fstatat", (3, "", 1, AT_EMPTY_PATH))
    assert [(s.canon, s.canon_struct) for s in x86.slots] == [(2, "stat")]
    assert [(s.raw, s.canon, s.arg.struct) for s in i386.slots] == [(4, 2, "statx")]


def test_a_stat_outcome_is_written_in_the_follower_layout() -> None:
    # The leader (x86-64) fstat's bytes go into an i386 statx buffer as statx.
    fields = {
        "st_dev": 2049,
        "st_ino": 1234567,
        "st_nlink": 1,
        "st_mode": 0o100644,
        "st_uid": 0,
        "st_gid": 0,
        "st_rdev": 0,
        "st_size": 1221,
        "st_blksize": 4096,
        "st_blocks": 8,
        "st_atime": 1700000000,
        "st_atime_nsec": 5,
        "st_mtime": 1700000001,
        "st_mtime_nsec": 6,
        "st_ctime": 1700000002,
        "st_ctime_nsec": 7,
    }
    canonical = structs.encode("stat", Arch.X86_64, fields)
    empty = _string(b"")
    statx = ctypes.create_string_buffer(256)
    reader = abi.Reader(ME)
    raw = reader.call(
        Arch.I386, _nr("statx", Arch.I386), _regs(3, _address(empty), AT_EMPTY_PATH, 0x7FF, _address(statx))
    )
    assert reader.write_outcome(raw, Outcome(0, ((2, canonical),))) == 0
    written = structs.decode("statx", Arch.I386, statx.raw)
    assert structs.stat_from_statx(written) == fields
    # ... and read back, it is the same canonical outcome the leader sent.
    assert reader.outcome(raw, 0) == Outcome(0, ((2, canonical),))


def test_32_bit_arguments_mean_their_low_half() -> None:
    # wait4(-1, ...) from dash: the register holds 0xffffffff, the meaning is -1.
    status = ctypes.create_string_buffer(4)
    reader = abi.Reader(ME)
    x86 = reader.call(Arch.X86_64, _nr("wait4", Arch.X86_64), _regs(0xFFFFFFFF, _address(status), 0, 0))
    i386 = reader.call(Arch.I386, _nr("wait4", Arch.I386), _regs(0xFFFFFFFF, _address(status), 0, 0))
    assert x86.call.args[0] == i386.call.args[0] == -1
    # A word-sized argument keeps its full width.
    lseek = reader.call(Arch.X86_64, _nr("lseek", Arch.X86_64), _regs(3, 1 << 40, 0))
    assert lseek.call.args == (3, 1 << 40, 0)


def test_i386_split_offsets_and_llseek_results() -> None:
    reader = abi.Reader(ME)
    result = ctypes.create_string_buffer(8)
    llseek = reader.call(Arch.I386, _nr("lseek", Arch.I386, "_llseek"), _regs(3, 1, 16, _address(result), 0))
    plain = reader.call(Arch.X86_64, _nr("lseek", Arch.X86_64), _regs(3, (1 << 32) + 16, 0))
    assert llseek.call == plain.call == Call("lseek", (3, (1 << 32) + 16, 0))
    # The canonical result of _llseek is the offset it stored; a follower gets it back there.
    result.raw = struct.pack("<q", 77)
    assert reader.outcome(llseek, 0) == Outcome(77)
    assert reader.write_outcome(llseek, Outcome(99)) == 0 and struct.unpack("<q", result.raw)[0] == 99


def test_outputs_never_overflow_the_followers_buffer() -> None:
    reader = abi.Reader(ME, abi_diverse=True)
    small = ctypes.create_string_buffer(b"\xaa" * 8, 8)
    raw = reader.call(Arch.I386, _nr("getrandom", Arch.I386), _regs(_address(small), 4, 1))
    assert raw.call.args == (None, None, 1)  # a word of randomness: its size is the ABI's
    assert reader.write_outcome(raw, Outcome(8, ((0, b"12345678"),))) == 4
    assert small.raw == b"1234" + b"\xaa" * 4
    wide = ctypes.create_string_buffer(8)
    raw = reader.call(Arch.X86_64, _nr("getrandom", Arch.X86_64), _regs(_address(wide), 8, 1))
    assert reader.write_outcome(raw, Outcome(4, ((0, b"abcd"),))) == 8 and wide.raw[:4] == b"abcd"


def test_pids_are_the_leaders_in_arguments_and_paths() -> None:
    pids = PidMap()
    pids.add(ME, 4242)  # this process is the follower's copy of the leader's 4242
    pids.add(ME + 100000, 4343)
    reader = abi.Reader(ME, pids)
    kill = reader.call(Arch.X86_64, _nr("kill", Arch.X86_64), _regs(ME + 100000, 15))
    assert kill.call == Call("kill", (4343, 15))
    assert pids.real(4343) == ME + 100000 and pids.real(-4343) == -(ME + 100000)
    path = _string(b"/proc/4242/status")
    opened = reader.call(Arch.X86_64, _nr("openat", Arch.X86_64), _regs(AT_FDCWD, _address(path), 0, 0))
    assert opened.call.args[1] == "/proc/self/status"
    other = _string(f"/proc/{ME + 100000}/stat".encode())
    opened = reader.call(Arch.X86_64, _nr("openat", Arch.X86_64), _regs(AT_FDCWD, _address(other), 0, 0))
    assert opened.call.args[1] == "/proc/4343/stat"


def test_getdents_offsets_fit_a_32_bit_reader() -> None:
    def record(ino: int, off: int, name: bytes) -> bytes:
        body = struct.pack("<QqHB", ino, off, 0, 8) + name + b"\0"
        body += b"\0" * (-len(body) % 8)
        return body[:16] + struct.pack("<H", len(body)) + body[18:]

    data = record(12, 0x7FFFFFFF_00000000, b"a") + record(13, 5, b"bb")
    fixed = abi._dirents_for_32bit(data)
    first_off = struct.unpack_from("<q", fixed, 8)[0]
    second_at = struct.unpack_from("<H", data, 16)[0]
    assert first_off == 1 and struct.unpack_from("<q", fixed, second_at + 8)[0] == 5
    assert fixed[:8] == data[:8] and fixed[16:second_at] == data[16:second_at]


def test_the_filter_takes_its_numbers_from_the_core_table() -> None:
    policy = make_policy("dmvx")
    always, _ = seccomp.local_names(policy)
    assert "sigreturn" in always  # i386 returns from non-RT handlers with it
    program = seccomp.build_filter(policy)
    allowed = {k for code, jt, jf, k in program if code == 0x15}
    for name in ("rt_sigprocmask", "brk", "munmap"):
        assert set(syscalls.all_numbers(name, Arch.X86_64)) <= allowed
        assert set(syscalls.all_numbers(name, Arch.I386)) <= allowed
    assert syscalls.number("getpid", Arch.X86_64) not in allowed


def test_placement_puts_each_tracer_with_its_tracee() -> None:
    dmvx, dmon = make_policy("dmvx"), make_policy("dmon")
    # (program, monitor, CONNECTOR) per variant.
    if len(os.sched_getaffinity(0)) < 2:
        assert placement(dmvx, 2) == [(None, None, None)] * 2
        return
    first, second = sorted(os.sched_getaffinity(0))[:2]
    assert placement(dmon, 2) == [(first, first, first), (second, first, first)]
    assert placement(dmvx, 2) == [(first, first, second), (second, second, second)]
    assert placement(dmon, 2, "same") == [(first, first, first)] * 2
    assert placement(dmvx, 2, "spread") == [(first, first, first), (second, second, second)]
    assert placement(dmvx, 3, "none") == [(None, None, None)] * 3


def test_the_in_process_path_places_each_variants_side_on_its_own_cpu() -> None:
    """On the in-process path ``auto`` is ``spread``: the leader's program
    waits for its own monitor at a stopped call, so the two take turns on one
    CPU and the followers' side keeps pace on the other (docs/realmode.md,
    "Placement"); ``split`` there puts the leader's monitor beside the
    CONNECTORs. dmon takes no in-process path: its ``auto`` stays lockstep."""
    dmvx, dmon = make_policy("dmvx"), make_policy("dmon")
    if len(os.sched_getaffinity(0)) < 2:
        assert placement(dmvx, 2, in_process=True) == [(None, None, None)] * 2
        return
    first, second = sorted(os.sched_getaffinity(0))[:2]
    assert placement(dmvx, 2, in_process=True) == [(first, first, first), (second, second, second)]
    assert placement(dmvx, 2, "split", in_process=True) == [(first, second, second), (second, second, second)]
    assert placement(dmvx, 2, "spread", in_process=True) == placement(dmvx, 2, "spread")
    assert placement(dmon, 2, in_process=True) == placement(dmon, 2)


def test_elf_architectures_are_read_from_the_header(tmp_path) -> None:
    assert elf_arch(sys.executable) is Arch.X86_64 or os.uname().machine != "x86_64"
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\n")
    assert elf_arch(str(script)) is None
    i386 = tmp_path / "tiny"
    i386.write_bytes(b"\x7fELF\x01\x01\x01" + b"\0" * 11 + (3).to_bytes(2, "little"))
    assert elf_arch(str(i386)) is Arch.I386


def test_memory_a_variant_does_not_have_is_a_value_not_a_crash() -> None:
    # A bad pointer (an exploit's, or a bug's) must give a comparable value,
    # not take the monitor down: two variants agree only if both pass one.
    reader = abi.Reader(ME)
    bad = 8
    opened = reader.call(Arch.X86_64, _nr("openat", Arch.X86_64), _regs(AT_FDCWD, bad, 0, 0))
    assert opened.call.args[1] == abi.UNREADABLE
    written = reader.call(Arch.X86_64, _nr("write", Arch.X86_64), _regs(1, bad, 5))
    assert written.call == Call("write", (1, abi.UNREADABLE, 5))
    read = reader.call(Arch.X86_64, _nr("read", Arch.X86_64), _regs(0, bad, 5))
    assert reader.outcome(read, 5) == Outcome(5)  # nothing this variant could read back


def test_an_argv_a_variant_does_not_have_is_unreadable() -> None:
    # partial-overwrite under ABI diversity: the i386 follower enters
    # execve with argv[2] == 0x21. Its argv must read as UNREADABLE (and
    # then differ from the leader's), whether the array or an element of
    # it is what the variant does not have.
    reader = abi.Reader(ME)
    path = _string(b"/bin/sh")
    strings = [_string(b"/bin/sh"), _string(b"-c")]
    argv = (ctypes.c_uint64 * 4)(*(_address(s) for s in strings), 0x21, 0)
    leader_argv = (ctypes.c_uint64 * 4)(*(_address(s) for s in strings), _address(path), 0)
    execve = _nr("execve", Arch.X86_64)
    bad = reader.call(Arch.X86_64, execve, _regs(_address(path), _address(argv), 0))
    assert bad.call == Call("execve", ("/bin/sh", abi.UNREADABLE, None))
    good = reader.call(Arch.X86_64, execve, _regs(_address(path), _address(leader_argv), 0))
    assert good.call == Call("execve", ("/bin/sh", ("/bin/sh", "-c", "/bin/sh"), None))
    unmapped = reader.call(Arch.X86_64, execve, _regs(_address(path), 0x21, 0))
    assert unmapped.call.args[1] == abi.UNREADABLE
    narrow = (ctypes.c_uint32 * 2)(0x21, 0)  # i386 words: the element itself is bad
    i386 = reader.call(Arch.I386, _nr("execve", Arch.I386), _regs(_address(path), _address(narrow), 0))
    assert i386.call == Call("execve", ("/bin/sh", abi.UNREADABLE, None))


def test_sim_names_an_unreadable_argument_as_real_mode_does() -> None:
    from sim import workload

    assert workload.UNREADABLE == abi.UNREADABLE


@pytest.mark.parametrize("raw_name, canonical", [("open", "openat"), ("openat", "openat"), ("mkdir", "mkdirat")])
def test_an_adopted_name_is_written_over_the_followers_own_template(raw_name: str, canonical: str) -> None:
    # dmvx.tempnames: a skip's extra output at the path's canonical index is the
    # leader's name, written over this variant's buffer wherever the raw call had it.
    reader = abi.Reader(ME)
    template = _string(b"/tmp/x-zzzzzz")
    args = {
        "open": (_address(template), 0o302, 0o600),
        "openat": (AT_FDCWD, _address(template), 0o302, 0o600),
        "mkdir": (_address(template), 0o700),
    }[raw_name]
    raw = reader.call(Arch.X86_64, _nr(raw_name, Arch.X86_64), _regs(*args))
    assert raw.call.name == canonical and raw.call.args[1] == "/tmp/x-zzzzzz"
    assert reader.write_outcome(raw, Outcome(3, ((1, b"/tmp/x-AbC123"),))) == 3
    assert template.raw == b"/tmp/x-AbC123\0"
    # Never over a string of another length (not a template filled in place).
    reader.write_outcome(raw, Outcome(3, ((1, b"/tmp/x-AbC1234"),)))
    assert template.raw == b"/tmp/x-AbC123\0"


def test_a_threads_proc_directory_names_the_leaders_tid() -> None:
    """pthread_setname_np writes /proc/self/task/<tid>/comm: the tid is the
    variant's own, compared as the leader's."""
    from realmode.abi import Reader
    from realmode.pids import PidMap

    pids = PidMap()
    pids.add(500, 100)
    pids.add(501, 101)
    reader = Reader(501, pids)
    assert reader._path(b"/proc/self/task/501/comm") == "/proc/self/task/101/comm"
    assert reader._path(b"/proc/500/task/501/comm") == "/proc/100/task/101/comm"
    assert reader._path(b"/proc/501/status") == "/proc/self/status"
