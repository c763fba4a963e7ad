"""Struct layouts: round trips, ABI conversion, and sizes/offsets checked against gcc."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmvx import structs
from dmvx.structs import StructError, convert, decode, encode, size
from dmvx.syscalls import Arch, ArgKind, by_number, names, socketcall, spec

X64, I386, A64 = Arch.X86_64, Arch.I386, Arch.AARCH64

# A file as all three ABIs can describe it (32-bit times, 64-bit inode).
STAT = {
    "st_dev": 0x10303,
    "st_ino": 0x1_2345_6789,
    "st_nlink": 3,
    "st_mode": 0o100644,
    "st_uid": 1000,
    "st_gid": 100,
    "st_rdev": 0,
    "st_size": 5_000_000_000,
    "st_blksize": 4096,
    "st_blocks": 9_765_632,
    "st_atime": 1_700_000_000,
    "st_atime_nsec": 123,
    "st_mtime": 1_700_000_001,
    "st_mtime_nsec": 456_789,
    "st_ctime": 1_700_000_002,
    "st_ctime_nsec": 999_999_999,
}


def _fields_for(lay: structs.StructLayout, draw) -> dict:
    """Hypothesis: a canonical dict whose values fit ``lay``."""
    out = {}
    for f in lay.fields:
        if f.hidden:
            continue
        if f.ctype.endswith("]"):
            n = f.size
            if f.ctype.startswith("char["):
                out[f.name] = draw(st.binary(max_size=n - 1).map(lambda b: b.replace(b"\0", b"x")))
            else:
                out[f.name] = draw(st.binary(min_size=n, max_size=n))
            continue
        bits = 8 * f.size
        if f.ctype.startswith("s") or f.ctype == "long":
            out[f.name] = draw(st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1))
        elif f.ctype == "rlim":
            out[f.name] = draw(st.integers(0, (1 << bits) - 2) | st.just(structs.RLIM_INFINITY))
        else:
            out[f.name] = draw(st.integers(0, (1 << bits) - 1))
    return out


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_every_layout_round_trips(data):
    for (name, arch), lay in sorted(structs._LAYOUTS.items(), key=lambda kv: (kv[0][0], kv[0][1].value)):
        fields = _fields_for(lay, data.draw)
        raw = encode(name, arch, fields)
        assert len(raw) == lay.size == size(name, arch)
        assert decode(name, arch, raw) == fields, (name, arch)
        assert encode(name, arch, decode(name, arch, raw)) == raw


@pytest.mark.parametrize("a, b", [(X64, I386), (I386, X64), (X64, A64), (A64, I386)])
def test_stat_conversion_keeps_the_facts(a, b):
    there = convert("stat", a, b, encode("stat", a, STAT))
    assert len(there) == size("stat", b)
    back = decode("stat", b, there)
    assert back == STAT
    for key in ("st_size", "st_mode", "st_ino", "st_mtime", "st_mtime_nsec"):
        assert back[key] == STAT[key]


def test_i386_stat64_mirrors_the_truncated_inode_like_the_kernel():
    raw = encode("stat", I386, STAT)
    # __st_ino sits at offset 12, st_ino at 88 (arch/x86/include/uapi/asm/stat.h)
    assert int.from_bytes(raw[12:16], "little") == STAT["st_ino"] & 0xFFFFFFFF
    assert int.from_bytes(raw[88:96], "little") == STAT["st_ino"]


def test_conversion_refuses_what_the_target_cannot_hold():
    late = dict(STAT, st_mtime=1 << 33)  # after 2038: no room in i386 stat64
    with pytest.raises(StructError, match=r"st_mtime=8589934592 does not fit s32 .* on i386"):
        convert("stat", X64, I386, encode("stat", X64, late))
    with pytest.raises(StructError, match="st_ino"):
        convert("stat", X64, I386, encode("stat", X64, STAT), to_struct="stat32")


def test_stat32_and_statfs64_convert_to_the_canonical_structs():
    small = dict(STAT, st_ino=77, st_size=1234, st_blocks=8, st_dev=0x803)
    old = encode("stat32", I386, small)
    assert len(old) == 64
    assert decode("stat", X64, convert("stat32", I386, X64, old, to_struct="stat")) == small
    fs = {
        "f_type": 0xEF53,
        "f_bsize": 4096,
        "f_blocks": 1 << 33,
        "f_bfree": 5,
        "f_bavail": 4,
        "f_files": 100,
        "f_ffree": 50,
        "f_fsid0": -1,
        "f_fsid1": 7,
        "f_namelen": 255,
        "f_frsize": 4096,
        "f_flags": 0x1020,
        "f_spare": b"",
    }
    raw64 = encode("statfs64", I386, fs)
    assert len(raw64) == 84
    out = decode("statfs", X64, convert("statfs64", I386, X64, raw64, to_struct="statfs"))
    assert out["f_blocks"] == 1 << 33 and out["f_fsid0"] == -1 and out["f_spare"] == bytes(32)


def test_timespec_is_32_bit_on_i386_and_converts():
    assert (size("timespec", X64), size("timespec", I386), size("timespec64", I386)) == (16, 8, 16)
    ts = {"tv_sec": 1_700_000_000, "tv_nsec": 5}
    assert decode("timespec", X64, convert("timespec", I386, X64, encode("timespec", I386, ts))) == ts
    assert convert("timespec64", I386, X64, encode("timespec64", I386, ts), to_struct="timespec") == encode(
        "timespec", X64, ts
    )
    tv = {"tv_sec": -1, "tv_usec": 999_999}
    assert decode("timeval", I386, convert("timeval", X64, I386, encode("timeval", X64, tv))) == tv


def test_arrays_convert_element_by_element():
    events = [{"events": 1, "data": 7}, {"events": 4, "data": 9}]
    raw = b"".join(encode("epoll_event", X64, e) for e in events)
    assert len(raw) == 24  # packed on x86-64
    out = convert("epoll_event", X64, A64, raw)
    assert len(out) == 32 and decode("epoll_event", A64, out[16:]) == events[1]
    with pytest.raises(StructError, match="whole number of epoll_event"):
        convert("epoll_event", X64, A64, raw[:-1])


def test_rlimit_infinity_saturates_on_i386():
    inf = {"rlim_cur": 1024, "rlim_max": structs.RLIM_INFINITY}
    raw = encode("rlimit", I386, inf)
    assert raw == (1024).to_bytes(4, "little") + b"\xff" * 4
    assert decode("rlimit", I386, raw) == inf
    assert decode("rlimit", X64, convert("rlimit", I386, X64, raw)) == inf


def test_utsname_and_fd_pair_and_iovecs():
    uts = {
        "sysname": b"Linux",
        "nodename": b"vm",
        "release": b"6.18",
        "version": b"#1",
        "machine": b"x86_64",
        "domainname": b"(none)",
    }
    raw = encode("utsname", X64, uts)
    assert len(raw) == 6 * 65 and decode("utsname", I386, raw) == uts
    assert decode("fd_pair", I386, encode("fd_pair", X64, {"fd0": 3, "fd1": 4})) == {"fd0": 3, "fd1": 4}
    data32 = (
        (0x1000).to_bytes(4, "little")
        + (5).to_bytes(4, "little")
        + (0x2000).to_bytes(4, "little")
        + (6).to_bytes(4, "little")
    )
    assert structs.iovecs(I386, data32) == [(0x1000, 5), (0x2000, 6)]
    assert structs.iovecs(X64, encode("iovec", X64, {"iov_base": 1 << 40, "iov_len": 3})) == [(1 << 40, 3)]


def test_fd_set_rounds_to_the_word():
    assert size("fd_set", X64, 6) == 8 and size("fd_set", I386, 6) == 4 and size("fd_set", I386, 33) == 8
    bits = bytes([0b100000, 0, 0, 0])  # fd 5 set, as i386 writes it for nfds=6
    assert convert("fd_set", I386, X64, bits) == bits + bytes(4)
    assert convert("fd_set", X64, I386, bits + bytes(4), bits=6) == bits
    assert convert("fd_set", X64, I386, bits + bytes(4)) == bits + bytes(4)


def test_canonical_bytes_hide_addresses_but_keep_meaning():
    act = {"sa_handler": 0x5655_1234, "sa_flags": 0x0400_0000, "sa_restorer": 0x5655_0000, "sa_mask": 1 << 9}
    a = structs.canonical_bytes("sigaction", I386, encode("sigaction", I386, act))
    b = structs.canonical_bytes(
        "sigaction", X64, encode("sigaction", X64, dict(act, sa_handler=0x7F00_0000_1234, sa_restorer=0x7F00_0000_0000))
    )
    assert a == b
    ignore = structs.canonical_bytes("sigaction", X64, encode("sigaction", X64, dict(act, sa_handler=1)))
    assert ignore != a  # SIG_IGN differs from a handler
    ts = {"tv_sec": 3, "tv_nsec": 4}
    assert structs.canonical_bytes("timespec", I386, encode("timespec", I386, ts)) == encode("timespec", X64, ts)


@pytest.mark.parametrize("arch", [Arch.X86_64, Arch.I386])
def test_utimensat_seconds_are_ignored_when_the_nanoseconds_say_now_or_omit(arch):
    def pair(asec, ansec, msec, mnsec):
        return encode(
            "timespec_pair", arch, {"atime_sec": asec, "atime_nsec": ansec, "mtime_sec": msec, "mtime_nsec": mnsec}
        )

    omit, now = structs.UTIME_OMIT, structs.UTIME_NOW
    # tar and touch leave tv_sec uninitialised next to UTIME_OMIT / UTIME_NOW.
    assert structs.canonical_bytes("timespec_pair", arch, pair(12345, omit, 981173106, 0)) == structs.canonical_bytes(
        "timespec_pair", arch, pair(-77, omit, 981173106, 0)
    )
    assert structs.canonical_bytes("timespec_pair", arch, pair(5, now, 7, now)) == structs.canonical_bytes(
        "timespec_pair", arch, pair(9, now, 3, now)
    )
    # Seconds the kernel does use are still compared.
    assert structs.canonical_bytes("timespec_pair", arch, pair(1, 0, 2, omit)) != structs.canonical_bytes(
        "timespec_pair", arch, pair(3, 0, 2, omit)
    )
    wide = encode("timespec64_pair", arch, {"atime_sec": 4, "atime_nsec": omit, "mtime_sec": 5, "mtime_nsec": 0})
    assert (
        decode("timespec64_pair", Arch.X86_64, structs.canonical_bytes("timespec64_pair", arch, wide))["atime_sec"] == 0
    )


def _dirent64(ino, off, dtype, name, garbage):
    body = bytes([dtype]) + name + b"\0"
    reclen = (19 + len(name) + 1 + 7) // 8 * 8
    return (
        ino.to_bytes(8, "little")
        + off.to_bytes(8, "little")
        + reclen.to_bytes(2, "little")
        + (body + garbage * 8)[: reclen - 18]
    )


def test_dirents_compare_without_the_padding_between_records():
    one = _dirent64(11, 1, 8, b"words.txt", b"\xaa") + _dirent64(12, 2, 4, b"a", b"\xbb")
    two = _dirent64(11, 1, 8, b"words.txt", b"\x00") + _dirent64(12, 2, 4, b"a", b"\x17")
    assert one != two
    assert (
        structs.dirents_canonical("getdents64", Arch.X86_64, one)
        == structs.dirents_canonical("getdents64", Arch.X86_64, two)
        == two.replace(b"\x17", b"\0")
    )
    # What the entries say still counts: another name, inode or type differs.
    for other in (
        _dirent64(11, 1, 8, b"words.txu", b"\0"),
        _dirent64(13, 1, 8, b"words.txt", b"\0"),
        _dirent64(11, 1, 4, b"words.txt", b"\0"),
    ):
        assert structs.dirents_canonical(
            "getdents64", Arch.X86_64, other + two[len(other) :]
        ) != structs.dirents_canonical("getdents64", Arch.X86_64, two)
    # The old getdents keeps d_type in the last byte of its record.
    old = (7).to_bytes(8, "little") + (1).to_bytes(8, "little") + (24).to_bytes(2, "little") + b"ab\0\xcc\xcc\x08"
    assert structs.dirents_canonical("getdents", Arch.X86_64, old) == old[:21] + b"\0\0\x08"
    # Bytes that are not whole records are left alone.
    assert structs.dirents_canonical("getdents64", Arch.X86_64, one[:30]) == one[:30]


def test_stat_and_statx_describe_each_other():
    stx = structs.statx_from_stat(STAT)
    raw = encode("statx", I386, stx)
    assert structs.stat_from_statx(decode("statx", X64, raw)) == STAT
    assert stx["stx_dev_major"] == 0x103 and stx["stx_dev_minor"] == 3


def test_bad_input_gets_one_clear_error():
    with pytest.raises(StructError, match="unknown struct 'nope'"):
        size("nope", X64)
    with pytest.raises(StructError, match=r"stat32.*does not exist on x86_64"):
        size("stat32", X64)
    with pytest.raises(StructError, match="stat on i386 is 96 bytes, got 144"):
        decode("stat", I386, bytes(144))
    with pytest.raises(StructError, match="missing st_ino"):
        encode("stat", X64, {k: v for k, v in STAT.items() if k != "st_ino"})
    with pytest.raises(StructError, match=r"utsname\.sysname on x86_64 holds 65 bytes"):
        encode(
            "utsname",
            X64,
            {"sysname": b"x" * 70, "nodename": b"", "release": b"", "version": b"", "machine": b"", "domainname": b""},
        )


def test_every_struct_the_table_names_has_a_layout_where_the_call_exists():
    """A mode must be able to size every buffer of every call on every arch it runs."""
    seen = []
    for arch in Arch:
        from dmvx import _syscall_numbers as table

        specs = [by_number(arch, nr) for nr in table.RAW[arch.value]]
        if arch is Arch.I386:
            specs += [socketcall(sub) for sub in range(1, 21)]
        for sp in specs:
            assert sp is not None
            for arg in sp.args:
                if arg.struct:
                    size(arg.struct, arch, 1)  # raises if missing
                    seen.append(arg.struct)
                if arg.kind in (ArgKind.IN_IOVEC, ArgKind.OUT_IOVEC):
                    size("iovec", arch)
    assert {"stat", "stat32", "statfs64", "timespec64", "gid16", "fd_pair", "epoll_event"} <= set(seen)
    for name in names():
        assert spec(name).name == name


# ---------------------------------------------------------------- gcc cross-check

HERE_C_KERNEL = """
#include <stddef.h>
#include <stdio.h>
#include <asm/stat.h>
#include <asm/statfs.h>
#include <linux/stat.h>
#include <linux/time.h>
#include <linux/time_types.h>
#include <linux/utime.h>
#include <linux/times.h>
#include <linux/resource.h>
#include <linux/utsname.h>
#include <linux/sysinfo.h>
#include <linux/poll.h>
#include <linux/eventpoll.h>
#include <linux/uio.h>
#include <linux/openat2.h>
#include <linux/sched.h>
"""
HERE_C_LIBC = """
#include <stddef.h>
#include <stdio.h>
#include <signal.h>
#include <sys/socket.h>
"""
HERE_C_GENERIC = """
#include <stddef.h>
#include <stdio.h>
#include <asm-generic/stat.h>
#include <linux/eventpoll.h>
"""

SIZE_ONLY: dict = {}
#: (our struct, C type or {arch: C type}, field map -- see _program).
KERNEL_STRUCTS = [
    ("stat", {X64: "struct stat", I386: "struct stat64"}, None),
    ("stat32", {I386: "struct stat"}, None),
    (
        "statx",
        "struct statx",
        {
            **{
                f"stx_{t}_{p}": f"stx_{t}.tv_{p}" for t in ("atime", "btime", "ctime", "mtime") for p in ("sec", "nsec")
            },
            "stx_spare": "__spare3",
        },
    ),
    ("statfs", "struct statfs", {"f_fsid0": "f_fsid", "f_fsid1": ""}),
    ("statfs64", {I386: "struct statfs64"}, {"f_fsid0": "f_fsid", "f_fsid1": ""}),
    ("timespec", "struct timespec", None),
    ("timespec64", "struct __kernel_timespec", None),
    ("timespec_pair", "struct timespec[2]", SIZE_ONLY),
    ("timespec64_pair", "struct __kernel_timespec[2]", SIZE_ONLY),
    ("timeval", "struct timeval", None),
    ("timeval_pair", "struct timeval[2]", SIZE_ONLY),
    ("timezone", "struct timezone", None),
    (
        "itimerspec",
        "struct itimerspec",
        {f"it_{w}_{p}": f"it_{w}.tv_{p}" for w in ("interval", "value") for p in ("sec", "nsec")},
    ),
    (
        "itimerspec64",
        "struct __kernel_itimerspec",
        {f"it_{w}_{p}": f"it_{w}.tv_{p}" for w in ("interval", "value") for p in ("sec", "nsec")},
    ),
    (
        "itimerval",
        "struct itimerval",
        {f"it_{w}_{p}": f"it_{w}.tv_{p}" for w in ("interval", "value") for p in ("sec", "usec")},
    ),
    ("utimbuf", "struct utimbuf", None),
    ("rusage", "struct rusage", {f"ru_{w}_{p}": f"ru_{w}.tv_{p}" for w in ("utime", "stime") for p in ("sec", "usec")}),
    ("tms", "struct tms", None),
    ("rlimit", "struct rlimit", None),
    ("rlimit64", "struct rlimit64", None),
    ("utsname", "struct new_utsname", None),
    ("sysinfo", "struct sysinfo", {f"loads{i}": f"loads[{i}]" for i in range(3)}),
    ("pollfd", "struct pollfd", None),
    ("epoll_event", "struct epoll_event", None),
    ("iovec", "struct iovec", None),
    ("open_how", "struct open_how", None),
    ("clone_args", "struct clone_args", None),
    ("fd_pair", "int[2]", SIZE_ONLY),
    ("long", "long", SIZE_ONLY),
    ("loff_t", "long long", SIZE_ONLY),
]
LIBC_STRUCTS = [
    ("msghdr", "struct msghdr", None),
    ("stack_t", "stack_t", None),
]
GENERIC_STRUCTS = [  # aarch64: LP64 with the generic headers (no x86 packing)
    ("stat", "struct stat", None),
    ("epoll_event", "struct epoll_event", None),
]


def _program(prelude: str, entries: list, arch: Arch) -> tuple[str, list]:
    """C source printing, as JSON, sizeof and offsetof of each entry that exists on ``arch``.

    ``fieldmap`` None checks every visible field under its own name; a dict
    overrides names (an empty string skips the field); ``SIZE_ONLY`` checks
    the size alone.
    """
    lines: list[str] = [prelude, "int main(void) {", 'printf("[");']
    expected: list[tuple[str, structs.StructLayout, dict[str, str]]] = []
    for name, ctype, fieldmap in entries:
        ctype = ctype.get(arch) if isinstance(ctype, dict) else ctype
        if ctype is None:
            continue
        lay = structs.layout(name, arch)
        members = {}
        if fieldmap is not SIZE_ONLY:
            for f in lay.fields:
                if f.hidden and not f.mirror:
                    continue
                theirs = (fieldmap or {}).get(f.name, f.name)
                if theirs:
                    members[f.name] = theirs
        fmt = (
            ("," if expected else "")
            + '{"name": "'
            + name
            + '", "size": %zu, "offsets": {'
            + ", ".join(f'"{ours}": %zu' for ours in members)
            + "}}"
        )
        args = "".join(f", offsetof({ctype}, {theirs})" for theirs in members.values())
        lines.append('printf("' + fmt.replace('"', '\\"') + f'", sizeof({ctype}){args});')
        expected.append((name, lay, members))
    lines += ['printf("]\\n");', "return 0; }"]
    return "\n".join(lines), expected


def _compile_and_run(source: str, flags: list[str], tmp: Path) -> list[dict]:
    c, exe = tmp / "layout.c", tmp / "layout"
    c.write_text(source)
    result = subprocess.run(["gcc", *flags, "-o", str(exe), str(c)], capture_output=True, text=True)
    if result.returncode:
        if "-m32" in flags and ("cannot find" in result.stderr or "No such file" in result.stderr):
            pytest.skip(f"gcc -m32 cannot build here (install gcc-multilib): {result.stderr.strip()[:200]}")
        pytest.fail(f"gcc {' '.join(flags)} failed:\n{result.stderr[:2000]}")
    return json.loads(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout)


@pytest.mark.parametrize(
    "arch, prelude, entries, flags",
    [
        (X64, HERE_C_KERNEL, KERNEL_STRUCTS, ["-m64"]),
        (I386, HERE_C_KERNEL, KERNEL_STRUCTS, ["-m32"]),
        (X64, HERE_C_LIBC, LIBC_STRUCTS, ["-m64"]),
        (I386, HERE_C_LIBC, LIBC_STRUCTS, ["-m32"]),
        (A64, HERE_C_GENERIC, GENERIC_STRUCTS, ["-m64", "-U__x86_64__"]),
    ],
    ids=["kernel-x86_64", "kernel-i386", "libc-x86_64", "libc-i386", "generic-aarch64"],
)
def test_layouts_match_gcc(arch, prelude, entries, flags, tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed; the layout cross-check needs it")
    source, expected = _program(prelude, entries, arch)
    measured = {m["name"]: m for m in _compile_and_run(source, flags, tmp_path)}
    assert len(measured) == len(expected)
    for name, lay, members in expected:
        got = measured[name]
        assert got["size"] == lay.size, f"{name} on {arch.value}: gcc says {got['size']}, we say {lay.size}"
        for f in lay.fields:
            if f.name in members:
                assert got["offsets"][f.name] == f.offset, (
                    f"{name}.{f.name} on {arch.value}: gcc offset {got['offsets'][f.name]}, ours {f.offset}"
                )


# ---------------------------------------------------------------- what the kernel really writes

KERNEL_WRITES_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
static unsigned char buf[1024];
static void dump(const char *name, long rc, int n) {
    printf("%s %ld ", name, rc);
    for (int i = 0; i < n; i++) printf("%02x", buf[i]);
    printf("\n");
    memset(buf, 0, sizeof buf);
}
int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDONLY);
#ifdef __i386__
    dump("stat", syscall(SYS_fstat64, fd, buf), 96);
    dump("stat32", syscall(SYS_fstat, fd, buf), 64);
    dump("rlimit", syscall(SYS_ugetrlimit, 7, buf), 8);
    dump("statfs64", syscall(SYS_fstatfs64, fd, 84, buf), 84);
#else
    dump("stat", syscall(SYS_fstat, fd, buf), 144);
    dump("rlimit", syscall(SYS_getrlimit, 7, buf), 16);
#endif
    dump("statfs", syscall(SYS_fstatfs, fd, buf), 120);
    dump("statx", syscall(SYS_statx, fd, "", AT_EMPTY_PATH, 0x7ff, buf), 256);
    dump("utsname", syscall(SYS_uname, buf), 390);
    dump("rlimit64", syscall(SYS_prlimit64, 0, 7, 0, buf), 16);
    return 0;
}
"""


def _kernel_writes(arch: Arch, flag: str, tmp: Path, target: Path) -> dict[str, tuple[int, bytes]]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed; the kernel-output check needs it")
    c, exe = tmp / f"writes{flag}.c", tmp / f"writes{flag}"
    c.write_text(KERNEL_WRITES_C)
    result = subprocess.run(["gcc", flag, "-o", str(exe), str(c)], capture_output=True, text=True)
    if result.returncode:
        if flag == "-m32":
            pytest.skip(f"gcc -m32 cannot build here (install gcc-multilib): {result.stderr.strip()[:200]}")
        pytest.fail(result.stderr)
    out = {}
    for line in subprocess.run([str(exe), str(target)], capture_output=True, text=True, check=True).stdout.splitlines():
        name, rc, data = line.split(" ")
        out[name] = (int(rc), bytes.fromhex(data))
    return out


@pytest.fixture
def some_file(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"x" * 12345)
    return target


@pytest.mark.parametrize("arch, flag", [(X64, "-m64"), (I386, "-m32")], ids=["x86_64", "i386"])
def test_decode_reads_what_the_kernel_wrote(arch, flag, tmp_path, some_file):
    import os
    import resource

    got = _kernel_writes(arch, flag, tmp_path, some_file)
    st = os.stat(some_file)
    rc, raw = got["stat"]
    assert rc == 0
    ours = decode("stat", arch, raw[: size("stat", arch)])
    assert (
        ours["st_ino"],
        ours["st_size"],
        ours["st_mode"],
        ours["st_nlink"],
        ours["st_uid"],
        ours["st_blocks"],
        ours["st_blksize"],
    ) == (st.st_ino, 12345, st.st_mode, st.st_nlink, st.st_uid, st.st_blocks, st.st_blksize)
    assert ours["st_mtime"] * 10**9 + ours["st_mtime_nsec"] == st.st_mtime_ns
    assert structs._dev_decode(ours["st_dev"]) == (os.major(st.st_dev), os.minor(st.st_dev))
    rc, raw = got["statx"]
    assert rc == 0 and structs.stat_from_statx(decode("statx", arch, raw)) == ours
    if arch is I386:
        rc, raw = got["stat32"]
        if rc == 0:  # EOVERFLOW when the inode needs more than 32 bits
            assert decode("stat", X64, convert("stat32", I386, X64, raw, to_struct="stat")) == ours
        rc, raw = got["statfs64"]
        assert rc == 0
        assert decode("statfs64", I386, raw)["f_namelen"] == os.statvfs(some_file).f_namemax
    rc, raw = got["statfs"]
    assert rc == 0
    assert decode("statfs", arch, raw[: size("statfs", arch)])["f_namelen"] == os.statvfs(some_file).f_namemax
    uts = decode("utsname", arch, got["utsname"][1])
    assert uts["nodename"].decode() == os.uname().nodename and uts["sysname"] == b"Linux"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inf = structs.RLIM_INFINITY
    want = {
        "rlim_cur": inf if soft == resource.RLIM_INFINITY else soft,
        "rlim_max": inf if hard == resource.RLIM_INFINITY else hard,
    }
    assert decode("rlimit", arch, got["rlimit"][1]) == want
    assert decode("rlimit64", arch, got["rlimit64"][1]) == want


def test_x86_64_and_i386_outputs_convert_into_each_other(tmp_path, some_file):
    wide = _kernel_writes(X64, "-m64", tmp_path, some_file)
    narrow = _kernel_writes(I386, "-m32", tmp_path, some_file)
    assert convert("stat", I386, X64, narrow["stat"][1]) == wide["stat"][1]
    assert convert("stat", X64, I386, wide["stat"][1]) == narrow["stat"][1]
    assert convert("rlimit", X64, I386, wide["rlimit"][1]) == narrow["rlimit"][1]
