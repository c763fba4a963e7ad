"""The canonical system-call table: numbers, aliases, variants, flags, equivalent forms."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dmvx import _syscall_numbers as table
from dmvx import syscalls
from dmvx.syscalls import (
    Arch,
    ArgKind,
    RetKind,
    SyscallSpec,
    UnknownFlags,
    UnknownSyscall,
    all_numbers,
    by_number,
    canonical_args,
    canonical_flags,
    names,
    normalize,
    number,
    socketcall,
    spec,
)

ROOT = Path(__file__).resolve().parent.parent
X64, I386, A64 = Arch.X86_64, Arch.I386, Arch.AARCH64


def known(arch: Arch, nr: int | None) -> SyscallSpec:
    """:func:`by_number` for a call the table must know."""
    assert nr is not None
    found = by_number(arch, nr)
    assert found is not None, (arch, nr)
    return found


def subcall(sub: int) -> SyscallSpec:
    """:func:`socketcall` for a sub-call the table must know."""
    found = socketcall(sub)
    assert found is not None, sub
    return found


# Kernel ABI facts (arch/x86/entry/syscalls/syscall_{64,32}.tbl, asm-generic/unistd.h).
WELL_KNOWN = {
    #  name          x86-64 i386 aarch64
    "read": (0, 3, 63),
    "write": (1, 4, 64),
    "close": (3, 6, 57),
    "openat": (257, 295, 56),
    "execve": (59, 11, 221),
    "execveat": (322, 358, 281),
    "getpid": (39, 20, 172),
    "exit_group": (231, 252, 94),
    "clone": (56, 120, 220),
    "wait4": (61, 114, 260),
    "kill": (62, 37, 129),
    "brk": (12, 45, 214),
    "socket": (41, 359, 198),
    "futex": (202, 240, 98),
    "getdents64": (217, 220, 61),
    "prlimit64": (302, 340, 261),
    "getrandom": (318, 355, 278),
    "pipe2": (293, 331, 59),
    # canonical names whose i386/aarch64 raw calls are spelt differently
    "fstat": (5, 197, 80),  # i386 fstat64
    "fstatat": (262, 300, 79),  # newfstatat / fstatat64 / newfstatat
    "mmap": (9, 192, 222),  # i386 mmap2
    "lseek": (8, 140, 62),  # i386 _llseek
    "fcntl": (72, 221, 25),  # i386 fcntl64
    "getuid": (102, 199, 174),  # i386 getuid32
    "clock_gettime": (228, 265, 113),
}


@pytest.mark.parametrize("name", sorted(WELL_KNOWN))
def test_well_known_numbers(name):
    expected = dict(zip((X64, I386, A64), WELL_KNOWN[name], strict=True))
    for arch, nr in expected.items():
        assert number(name, arch) == nr, (name, arch)
        assert known(arch, nr).name == name
    assert spec(name).numbers == expected


def test_calls_aarch64_lacks():
    for name in ("open", "stat", "lstat", "fork", "pipe", "poll", "select", "dup2", "epoll_wait"):
        assert number(name, A64) is None
        assert number(name, X64) is not None
        assert all_numbers(name, A64) == ()


def test_aliases_canonicalise():
    cases = [
        (I386, 197, "fstat", "fstat64"),
        (I386, 195, "stat", "stat64"),
        (I386, 196, "lstat", "lstat64"),
        (I386, 300, "fstatat", "fstatat64"),
        (X64, 262, "fstatat", "newfstatat"),
        (A64, 79, "fstatat", "newfstatat"),
        (I386, 192, "mmap", "mmap2"),
        (I386, 90, "old_mmap", "mmap"),
        (I386, 199, "getuid", "getuid32"),
        (I386, 140, "lseek", "_llseek"),
        (I386, 221, "fcntl", "fcntl64"),
        (I386, 142, "select", "_newselect"),
        (I386, 82, "old_select", "select"),
        (I386, 191, "getrlimit", "ugetrlimit"),
        (I386, 403, "clock_gettime", "clock_gettime64"),
    ]
    for arch, nr, canon, raw in cases:
        assert known(arch, nr).name == canon
        assert syscalls.raw_name(arch, nr) == raw
    # both i386 fstat calls mean fstat; the filter builder needs both numbers
    assert all_numbers("fstat", I386) == (108, 197)
    assert all_numbers("clock_gettime", I386) == (265, 403)


def test_every_number_round_trips():
    for arch in Arch:
        for nr, raw in table.RAW[arch.value].items():
            sp = by_number(arch, nr)
            assert sp is not None and sp.name in names(), (arch, nr, raw)
            assert nr in all_numbers(sp.name, arch)
            preferred = number(sp.name, arch)
            assert preferred in all_numbers(sp.name, arch)
            assert known(arch, preferred).name == sp.name
    for name in names():
        sp = spec(name)
        assert sp.numbers, name
        for arch, nr in sp.numbers.items():
            assert known(arch, nr).name == name
    assert by_number(X64, 100_000) is None
    assert by_number("i386", 197) is by_number(I386, 197)  # type: ignore[arg-type]  # plain strings work too


def test_unknown_names_are_clear_errors():
    with pytest.raises(UnknownSyscall, match=r"^unknown system call 'frobnicate'$"):
        spec("frobnicate")
    with pytest.raises(KeyError):  # still a KeyError for callers that expect one
        number("frobnicate", X64)
    with pytest.raises(UnknownFlags, match="unknown flag family 'nope'; known: at, clone"):
        canonical_flags("nope", X64, 0)


def _kinds(name):
    return [(a.name, a.kind, a.size_arg, a.flags, a.struct) for a in spec(name).args]


def test_argument_kinds_of_common_calls():
    assert _kinds("read") == [
        ("fd", ArgKind.FD, None, None, None),
        ("buf", ArgKind.OUT_BUF, 2, None, None),
        ("count", ArgKind.INT, None, None, None),
    ]
    assert spec("read").args[1].ret_len
    assert _kinds("write")[1] == ("buf", ArgKind.IN_BUF, 2, None, None)
    assert [k[1] for k in _kinds("openat")] == [ArgKind.FD, ArgKind.PATH, ArgKind.FLAGS, ArgKind.INT]
    assert spec("openat").args[2].flags == "open"
    assert _kinds("fstat")[1] == ("statbuf", ArgKind.OUT_BUF, None, None, "stat")
    assert _kinds("pipe2") == [
        ("fds", ArgKind.OUT_BUF, None, None, "fd_pair"),
        ("flags", ArgKind.FLAGS, None, "open", None),
    ]
    assert [(k[1], k[3]) for k in _kinds("mmap")] == [
        (ArgKind.PTR, None),
        (ArgKind.INT, None),
        (ArgKind.FLAGS, "prot"),
        (ArgKind.FLAGS, "mmap"),
        (ArgKind.FD, None),
        (ArgKind.INT, None),
    ]
    assert [k[1] for k in _kinds("execve")] == [ArgKind.PATH, ArgKind.STR_ARRAY, ArgKind.STR_ARRAY]
    assert _kinds("writev")[1][:3] == ("iov", ArgKind.IN_IOVEC, 2)
    assert _kinds("poll")[0] == ("fds", ArgKind.INOUT_BUF, 1, None, "pollfd")
    assert spec("accept").args[1].size_in_mem


def test_return_kinds():
    for name in (
        "open",
        "openat",
        "socket",
        "accept",
        "accept4",
        "dup",
        "dup2",
        "dup3",
        "epoll_create",
        "epoll_create1",
        "eventfd",
        "eventfd2",
        "timerfd_create",
        "signalfd",
        "signalfd4",
        "memfd_create",
        "inotify_init",
        "inotify_init1",
        "pidfd_open",
        "perf_event_open",
        "userfaultfd",
        "fanotify_init",
        "io_uring_setup",
        "creat",
    ):
        assert spec(name).ret is RetKind.FD, name
    for name in ("mmap", "brk", "mremap"):
        assert spec(name).ret is RetKind.PTR, name
    for name in ("exit", "exit_group"):
        assert spec(name).ret is RetKind.NONE, name
    assert spec("read").ret is RetKind.INT


def test_hand_specs_cover_common_calls_and_match_the_kernel_arity():
    assert len(syscalls._HAND) >= 150
    assert set(syscalls._HAND) <= names()
    # the canonical preadv family folds pos_l/pos_h into one offset
    folded = {"preadv", "pwritev", "preadv2", "pwritev2"}
    for name in set(syscalls._HAND) - folded:
        if name in table.SIGNATURES:
            assert len(spec(name).args) == len(table.SIGNATURES[name]), name


def test_conservative_specs_follow_the_kernel_signature():
    sp = spec("add_key")  # no hand spec: derived from the x86-64 signature
    assert [a.kind for a in sp.args] == [ArgKind.STR, ArgKind.STR, ArgKind.PTR, ArgKind.INT, ArgKind.INT]
    assert [a.kind for a in spec("fanotify_mark").args][-2:] == [ArgKind.FD, ArgKind.PATH]
    assert spec("socketcall").args[1].kind is ArgKind.PTR  # i386 only: from the generator's extras


def test_every_flag_family_in_the_table_is_known():
    used = {a.flags for n in names() for a in spec(n).args if a.flags}
    assert used <= syscalls.FLAG_FAMILIES
    assert {"open", "prot", "mmap", "at", "socket_type", "msg", "clone"} <= syscalls.FLAG_FAMILIES
    for family in syscalls.FLAG_FAMILIES:
        for arch in Arch:
            assert canonical_flags(family, arch, 0) == 0


def _generic_open_flags() -> dict[str, int]:
    text = Path("/usr/include/asm-generic/fcntl.h").read_text()
    return {m[1]: int(m[2], 8) for m in re.finditer(r"#define (O_\w+|__O_\w+)\s+(0\d+)", text)}


def test_open_flags_canonicalise():
    O_RDONLY, O_WRONLY, O_CREAT, O_CLOEXEC = 0, 1, 0o100, 0o2000000
    assert canonical_flags("open", I386, 0o100000 | O_RDONLY) == canonical_flags("open", X64, O_RDONLY)
    assert canonical_flags("open", X64, 0o100000 | O_WRONLY | O_CREAT) == O_WRONLY | O_CREAT
    # aarch64 (arch/arm64/include/uapi/asm/fcntl.h) keeps the 32-bit ARM bits
    arm = {"O_DIRECTORY": 0o40000, "O_NOFOLLOW": 0o100000, "O_DIRECT": 0o200000, "O_LARGEFILE": 0o400000}
    if not Path("/usr/include/asm-generic/fcntl.h").exists():
        pytest.skip("no /usr/include/asm-generic/fcntl.h to read the x86 values from")
    x86 = _generic_open_flags()
    for name in ("O_DIRECTORY", "O_NOFOLLOW", "O_DIRECT"):
        assert canonical_flags("open", A64, arm[name] | O_CLOEXEC) == x86[name] | O_CLOEXEC, name
    assert canonical_flags("open", A64, arm["O_LARGEFILE"] | arm["O_DIRECTORY"]) == x86["O_DIRECTORY"]
    tmpfile_arm = x86["__O_TMPFILE"] | arm["O_DIRECTORY"] | O_WRONLY
    assert canonical_flags("open", A64, tmpfile_arm) == x86["__O_TMPFILE"] | x86["O_DIRECTORY"] | O_WRONLY
    # bits that do not move are kept as they are
    for name in ("O_CREAT", "O_EXCL", "O_TRUNC", "O_APPEND", "O_NONBLOCK", "O_CLOEXEC", "O_PATH"):
        assert canonical_flags("open", A64, x86[name]) == x86[name], name


def test_other_flag_families():
    assert canonical_flags("prot", A64, 0x1 | 0x4 | 0x10) == 0x5  # PROT_BTI dropped
    assert canonical_flags("mmap", X64, 0x2 | 0x20 | 0x40) == 0x22  # MAP_32BIT dropped
    assert canonical_flags("mmap", I386, 0x2 | 0x20) == 0x22
    assert canonical_flags("msg", I386, 0x80000000 | 0x40) == 0x40  # MSG_CMSG_COMPAT
    assert canonical_flags("fcntl_cmd", I386, 12) == 5  # F_GETLK64 -> F_GETLK
    assert canonical_flags("fcntl_cmd", X64, 12) == 12
    sock = 1 | 0o4000 | 0o2000000  # STREAM|NONBLOCK|CLOEXEC
    assert {canonical_flags("socket_type", a, sock) for a in Arch} == {sock}
    assert canonical_flags("open", "i386", 0o100000) == 0  # type: ignore[arg-type]  # plain strings work too


def test_variants_rebuild_canonical_arguments():
    llseek = known(I386, 140)
    assert llseek.is_variant and llseek.raw == "_llseek" and "result" in llseek.note
    assert canonical_args(llseek, (3, 1, 2, None, 0)) == (3, (1 << 32) + 2, 0)
    assert canonical_args(llseek, (3, 0xFFFFFFFF, 0xFFFFFFFE, None, 1)) == (3, -2, 1)
    mmap2 = known(I386, 192)
    assert canonical_args(mmap2, (None, 8192, 1, 2, 3, 1)) == (None, 8192, 1, 2, 3, 4096)
    assert len(canonical_args(mmap2, (None, 0, 0, 0, 0, 0))) == len(spec("mmap").args)
    pread = known(I386, 180)
    assert pread.raw == "pread64" and canonical_args(pread, (3, 10, 10, 5, 1)) == (3, 10, 10, (1 << 32) + 5)
    # preadv: the 64-bit ABIs take the whole offset in pos_l
    assert canonical_args(known(X64, 295), (3, None, 1, 7, 0)) == (3, None, 1, 7)
    assert canonical_args(known(I386, 333), (3, None, 1, 7, 2)) == (3, None, 1, (2 << 32) + 7)
    # clone: tls and child_tid swap places on i386 and aarch64
    for arch in (I386, A64):
        raw = known(arch, number("clone", arch))
        assert [a.name for a in raw.args][3:] == ["tls", "child_tid"]
        assert canonical_args(raw, (0x11, "s", "p", "t", "c")) == (0x11, "s", "p", "c", "t")
    assert not known(X64, 56).is_variant
    # not a variant: identical raw registers
    assert known(X64, 0) is spec("read") and canonical_args(spec("read"), (1, 2, 3)) == (1, 2, 3)


def test_variants_name_the_structs_they_write():
    assert known(I386, 197).args[1].struct == "stat"  # fstat64: canonical i386 stat
    assert known(I386, 108).args[1].struct == "stat32"  # the old 32-bit fstat
    assert known(I386, 403).args[1].struct == "timespec64"  # clock_gettime64
    assert known(I386, 265).args[1].struct == "timespec"
    assert known(I386, 80).args[1].struct == "gid16"  # 16-bit getgroups
    assert known(I386, 205).args[1].struct == "gid_t"  # getgroups32
    statfs64 = known(I386, 268)
    assert statfs64.name == "statfs" and canonical_args(statfs64, ("/", None, 1)) == ("/", 1)


def test_socketcall_subcalls():
    send = subcall(9)
    assert send.name == "sendto" and len(send.args) == 4
    assert canonical_args(send, (4, b"x", 1, 0)) == (4, b"x", 1, 0, None, 0)
    recv = subcall(10)
    assert recv.name == "recvfrom" and canonical_args(recv, (5, 1, 1, 0)) == (5, 1, 1, 0, None, None)
    assert subcall(1).name == "socket" and len(subcall(1).args) == 3
    assert subcall(5).name == "accept" and subcall(5).ret is RetKind.FD
    assert socketcall(0) is None and socketcall(21) is None


def test_normalize_makes_the_stat_family_one_request():
    AT_FDCWD, AT_EMPTY_PATH, AT_NO_AUTOMOUNT, NOFOLLOW = -100, 0x1000, 0x800, 0x100
    # x86-64 glibc fstat: newfstatat(fd, "", buf, AT_EMPTY_PATH); i386 glibc: statx
    x86 = normalize("fstatat", (3, "", 1, AT_EMPTY_PATH))
    i386 = normalize("statx", (3, "", AT_EMPTY_PATH | AT_NO_AUTOMOUNT, 0x7FF, 1))
    old = normalize("fstat", (3, 1))
    assert x86 == i386 == old == ("fstatat", (3, "", 1, AT_EMPTY_PATH))
    assert normalize("lstat", ("/etc", 1)) == normalize("statx", (AT_FDCWD, "/etc", NOFOLLOW, 0x7FF, 1))
    assert normalize("stat", ("/etc", 1)) == ("fstatat", (AT_FDCWD, "/etc", 1, 0))
    # asking for the birth time is more than stat(2) can answer: left alone
    assert normalize("statx", (3, "", AT_EMPTY_PATH, 0x800, 1))[0] == "statx"
    assert normalize("statx", (3, "", AT_EMPTY_PATH | 0x2000, 0x7FF, 1))[0] == "statx"


def test_normalize_maps_calls_aarch64_lacks():
    assert normalize("open", ("/f", 0, 0)) == ("openat", (-100, "/f", 0, 0))
    assert normalize("pipe", (1,)) == ("pipe2", (1, 0))
    assert normalize("getrlimit", (7, 1)) == ("prlimit64", (0, 7, None, 1))
    assert normalize("unlink", ("/f",)) == ("unlinkat", (-100, "/f", 0))
    assert normalize("rmdir", ("/d",)) == ("unlinkat", (-100, "/d", 0x200))
    assert normalize("read", (0, 1, 1)) == ("read", (0, 1, 1))
    for name, (new, _) in ((n, syscalls._REWRITES[n]((0,) * len(spec(n).args)) or (n, ())) for n in syscalls._REWRITES):
        assert new in names() and (number(new, A64) is not None), (name, new)


def test_import_is_pure_and_cheap():
    code = (
        "import sys, time; t = time.perf_counter(); import dmvx.syscalls, dmvx.structs; "
        "print(time.perf_counter() - t); "
        "print(sorted(m for m in ('subprocess', 'socket', 'simpy', 'ptrace') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split("\n")
    assert out[1] == "[]"
    assert float(out[0]) < 1.0  # generous: it is ~10 ms; catches a runtime header parse


def test_by_number_is_a_dict_lookup():
    assert isinstance(syscalls._BY_NUMBER[X64], dict)
    assert syscalls._BY_NUMBER[X64] is syscalls._BY_NUMBER["x86_64"]


# ---------------------------------------------------------------- the generator


def _generator():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_syscalls
    finally:
        sys.path.pop(0)
    return gen_syscalls


def test_generated_table_is_up_to_date():
    gen = _generator()
    if not all(p.exists() for p in (gen.X86_64_H, gen.I386_H, gen.GENERIC_H)):
        pytest.skip("kernel uapi headers are not installed (linux-libc-dev)")
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/gen_syscalls.py"), "--check", "--no-formats"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_generic_header_preprocessing(tmp_path):
    gen = _generator()
    header = tmp_path / "unistd.h"
    header.write_text(
        "\n".join(
            [
                "#define __NR_io_setup 0",
                "#if defined(__ARCH_WANT_TIME32_SYSCALLS) || __BITS_PER_LONG != 32",
                "#define __NR_io_getevents 4",
                "#endif",
                "#ifdef __ARCH_WANT_RENAMEAT",
                "#define __NR_renameat 38",
                "#endif",
                "#define __NR3264_fcntl 25",
                "#ifndef __ARCH_NOMMU",
                "#define __NR_swapon 224",
                "#else",
                "#define __NR_bogus 999",
                "#endif",
                "#undef __NR_syscalls",
                "#define __NR_syscalls 451",
                "#if __BITS_PER_LONG == 64 && !defined(__SYSCALL_COMPAT)",
                "#define __NR_fcntl __NR3264_fcntl",
                "#else",
                "#define __NR_fcntl64 __NR3264_fcntl",
                "#endif",
            ]
        )
    )
    got = gen.read_generic(header, frozenset({"__ARCH_WANT_RENAMEAT"}))
    assert got == {"io_setup": 0, "io_getevents": 4, "renameat": 38, "swapon": 224, "fcntl": 25}
    got32 = gen.read_generic(header, frozenset(), bits=32)
    assert got32 == {"io_setup": 0, "swapon": 224, "fcntl64": 25}
    header.write_text("#if __FOO > 2\n#define __NR_x 1\n#endif\n")
    with pytest.raises(gen.GenerateError, match=r"unistd.h:1: cannot evaluate #if on __FOO"):
        gen.read_generic(header, frozenset())


def test_buffer_lengths_point_at_sensible_arguments():
    from dmvx import structs

    for name in names():
        sp = spec(name)
        for arg in sp.args:
            if arg.size_arg is not None:
                target = sp.args[arg.size_arg]
                wanted = (ArgKind.INOUT_BUF, ArgKind.PTR) if arg.size_in_mem else (ArgKind.INT,)
                assert target.kind in wanted, (name, arg.name, target.name)
            if arg.kind in (ArgKind.IN_BUF, ArgKind.OUT_BUF, ArgKind.INOUT_BUF):
                assert arg.size_arg is not None or arg.struct, (name, arg.name)
            if arg.struct:
                assert arg.struct in structs.NAMES, (name, arg.struct)
            if arg.kind is ArgKind.FLAGS:
                assert arg.flags, (name, arg.name)


def test_an_open_that_creates_nothing_has_no_mode():
    """Without O_CREAT or O_TMPFILE the kernel does not read the mode: it is
    whatever the register held (redis's opens of /proc files differ there)."""
    assert syscalls.normalize("openat", (-100, "/x", 0o2000000, 41024007)) == ("openat", (-100, "/x", 0o2000000, 0))
    assert syscalls.normalize("open", ("/x", 0, 12345)) == ("openat", (-100, "/x", 0, 0))
    assert syscalls.normalize("openat", (-100, "/x", 0o100, 0o644)) == ("openat", (-100, "/x", 0o100, 0o644))
    assert syscalls.normalize("openat", (-100, "/x", 0o20200002, 0o600))[1][3] == 0o600
