#!/usr/bin/env python3
"""Generate ``dmvx/_syscall_numbers.py``: system-call numbers and names per architecture.

The runtime must not need kernel headers (a variant host may have none), so
the numbers are read here once and committed as plain dict literals.

Sources
-------
* ``/usr/include/x86_64-linux-gnu/asm/unistd_64.h`` and ``unistd_32.h``
  (x86-64 and i386, plain ``#define __NR_name N`` lists);
* ``/usr/include/asm-generic/unistd.h`` (aarch64).  That file is written for
  the C preprocessor: its ``#if`` blocks depend on ``__BITS_PER_LONG`` and on
  the ``__ARCH_WANT_*`` macros that ``arch/arm64/include/uapi/asm/unistd.h``
  defines before including it, and its 64-bit names come from the
  ``__NR3264_*`` indirection at the end.  :func:`read_generic` evaluates
  exactly that much preprocessor;
* calls newer than the installed headers (Debian 12 ships 6.1 headers; hosts
  run newer kernels), from the kernels' own ``syscall_64.tbl`` /
  ``syscall_32.tbl`` / generic tables through Linux 6.19 -- see ``NEWER``;
* argument names and C types of every x86-64 call, from the running kernel's
  ftrace syscall formats (``/sys/kernel/tracing/events/syscalls``) when those
  are readable.  Without them the signatures already in the generated module
  are kept, so regenerating on a host without tracefs loses nothing.

The canonical-name decisions (which raw kernel names mean the same call) are
made here, in ``ALIASES``, and written into the table so the runtime merely
looks them up.

Run from the repository root::

    python tools/gen_syscalls.py [--formats DIR | --no-formats] [--check]
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "dmvx" / "_syscall_numbers.py"
INCLUDE = Path("/usr/include")
X86_64_H = INCLUDE / "x86_64-linux-gnu/asm/unistd_64.h"
I386_H = INCLUDE / "x86_64-linux-gnu/asm/unistd_32.h"
GENERIC_H = INCLUDE / "asm-generic/unistd.h"
VERSION_H = INCLUDE / "linux/version.h"
FORMAT_DIRS = (
    Path("/sys/kernel/tracing/events/syscalls"),
    Path("/sys/kernel/debug/tracing/events/syscalls"),
)

#: What arch/arm64/include/uapi/asm/unistd.h defines before it includes
#: asm-generic/unistd.h (Linux 6.1).
AARCH64_WANTS = frozenset(
    {
        "__ARCH_WANT_RENAMEAT",
        "__ARCH_WANT_NEW_STAT",
        "__ARCH_WANT_SET_GET_RLIMIT",
        "__ARCH_WANT_TIME32_SYSCALLS",
        "__ARCH_WANT_SYS_CLONE3",
        "__ARCH_WANT_MEMFD_SECRET",
    }
)

#: Calls added after the installed headers, numbered as in Linux 6.19's tables.
#: Since 424 every new call has one number on all architectures; the
#: exceptions are x86-64's uprobe trampolines (335, 336).
_COMMON_NEWER = {
    "cachestat": 451,
    "fchmodat2": 452,
    "map_shadow_stack": 453,
    "futex_wake": 454,
    "futex_wait": 455,
    "futex_requeue": 456,
    "statmount": 457,
    "listmount": 458,
    "lsm_get_self_attr": 459,
    "lsm_set_self_attr": 460,
    "lsm_list_modules": 461,
    "mseal": 462,
    "setxattrat": 463,
    "getxattrat": 464,
    "listxattrat": 465,
    "removexattrat": 466,
    "open_tree_attr": 467,
    "file_getattr": 468,
    "file_setattr": 469,
    "listns": 470,
}
NEWER = {
    "x86_64": {**_COMMON_NEWER, "uretprobe": 335, "uprobe": 336},
    # map_shadow_stack is x86-64 and arm64 (GCS) only.
    "i386": {k: v for k, v in _COMMON_NEWER.items() if k != "map_shadow_stack"},
    "aarch64": dict(_COMMON_NEWER),
}

#: Raw kernel name -> canonical name, per architecture.  The canonical name is
#: the x86-64 name of the call where x86-64 has it, except that the stat-at
#: call is ``fstatat`` everywhere (x86-64 and aarch64 call it ``newfstatat``,
#: i386 ``fstatat64``).  Raw names that collide with a canonical name of a
#: *different* call get a name of their own (i386 ``mmap`` is old_mmap, whose
#: arguments live in memory; i386 ``select`` is old_select).
_I386_UID32 = (
    "getuid",
    "getgid",
    "geteuid",
    "getegid",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "getresuid",
    "setresgid",
    "getresgid",
    "getgroups",
    "setgroups",
    "chown",
    "lchown",
    "fchown",
    "setfsuid",
    "setfsgid",
)
_I386_TIME64 = {
    "clock_gettime64": "clock_gettime",
    "clock_settime64": "clock_settime",
    "clock_adjtime64": "clock_adjtime",
    "clock_getres_time64": "clock_getres",
    "clock_nanosleep_time64": "clock_nanosleep",
    "timer_gettime64": "timer_gettime",
    "timer_settime64": "timer_settime",
    "timerfd_gettime64": "timerfd_gettime",
    "timerfd_settime64": "timerfd_settime",
    "utimensat_time64": "utimensat",
    "pselect6_time64": "pselect6",
    "ppoll_time64": "ppoll",
    "io_pgetevents_time64": "io_pgetevents",
    "recvmmsg_time64": "recvmmsg",
    "mq_timedsend_time64": "mq_timedsend",
    "mq_timedreceive_time64": "mq_timedreceive",
    "semtimedop_time64": "semtimedop",
    "rt_sigtimedwait_time64": "rt_sigtimedwait",
    "futex_time64": "futex",
    "sched_rr_get_interval_time64": "sched_rr_get_interval",
}
ALIASES = {
    "x86_64": {"newfstatat": "fstatat"},
    "i386": {
        "fstat64": "fstat",
        "stat64": "stat",
        "lstat64": "lstat",
        "fstatat64": "fstatat",
        "mmap2": "mmap",
        "mmap": "old_mmap",
        "_llseek": "lseek",
        "fcntl64": "fcntl",
        "_newselect": "select",
        "select": "old_select",
        "truncate64": "truncate",
        "ftruncate64": "ftruncate",
        "statfs64": "statfs",
        "fstatfs64": "fstatfs",
        "sendfile64": "sendfile",
        "fadvise64_64": "fadvise64",
        "ugetrlimit": "getrlimit",
        "getrlimit": "old_getrlimit",
        **{f"{name}32": name for name in _I386_UID32},
        **_I386_TIME64,
    },
    "aarch64": {"newfstatat": "fstatat"},
}

#: Where one architecture has several raw calls for one canonical name, the
#: number :func:`dmvx.syscalls.number` gives is the one a current libc uses
#: (what Debian 12's glibc calls, checked with strace on -m32 builds).  The
#: alias wins by default (fstat64 over the 32-bit fstat, getuid32 over the
#: 16-bit getuid); these are the exceptions.  i386 glibc keeps calling the
#: time32 calls while the values fit.
KEEP_RAW = {"i386": frozenset(_I386_TIME64.values())}

#: SYSCALL_DEFINE names in ftrace formats that differ from the x86-64 names.
FTRACE_NAMES = {
    "newfstat": "fstat",
    "newstat": "stat",
    "newlstat": "lstat",
    "newuname": "uname",
    "sendfile64": "sendfile",
    "umount": "umount2",
    "newfstatat": "fstatat",
}

#: Signatures ftrace does not show (arch-specific entry points, modules, kexec,
#: and calls that only exist on i386), so that every call gets its arity.
#: Unimplemented x86-64 slots (afs_syscall, tuxcall, ...) take no arguments.
EXTRA_SIGNATURES = {
    "init_module": (("umod", "void *"), ("len", "unsigned long"), ("uargs", "const char *")),
    "finit_module": (("fd", "int"), ("uargs", "const char *"), ("flags", "int")),
    "delete_module": (("name_user", "const char *"), ("flags", "unsigned int")),
    "kexec_load": (
        ("entry", "unsigned long"),
        ("nr_segments", "unsigned long"),
        ("segments", "struct kexec_segment *"),
        ("flags", "unsigned long"),
    ),
    "kexec_file_load": (
        ("kernel_fd", "int"),
        ("initrd_fd", "int"),
        ("cmdline_len", "unsigned long"),
        ("cmdline_ptr", "const char *"),
        ("flags", "unsigned long"),
    ),
    "set_thread_area": (("u_info", "struct user_desc *"),),
    "get_thread_area": (("u_info", "struct user_desc *"),),
    "uselib": (("library", "const char *"),),
    "lookup_dcookie": (("cookie64", "u64"), ("buf", "char *"), ("len", "size_t")),
    "_sysctl": (("args", "struct __sysctl_args *"),),
    "map_shadow_stack": (("addr", "unsigned long"), ("size", "unsigned long"), ("flags", "unsigned int")),
    "listns": (
        ("req", "const struct ns_id_req *"),
        ("ns_ids", "u64 *"),
        ("nr_ns_ids", "size_t"),
        ("flags", "unsigned int"),
    ),
    **dict.fromkeys(
        (
            "afs_syscall",
            "create_module",
            "epoll_ctl_old",
            "epoll_wait_old",
            "get_kernel_syms",
            "getpmsg",
            "nfsservctl",
            "putpmsg",
            "query_module",
            "security",
            "tuxcall",
            "vserver",
        ),
        (),
    ),
    # i386 only
    "waitpid": (("pid", "pid_t"), ("stat_addr", "int *"), ("options", "int")),
    "oldstat": (("filename", "const char *"), ("statbuf", "struct __old_kernel_stat *")),
    "oldfstat": (("fd", "unsigned int"), ("statbuf", "struct __old_kernel_stat *")),
    "oldlstat": (("filename", "const char *"), ("statbuf", "struct __old_kernel_stat *")),
    "olduname": (("name", "struct oldold_utsname *"),),
    "oldolduname": (("name", "struct oldold_utsname *"),),
    "umount": (("name", "char *"),),
    "stime": (("tptr", "old_time32_t *"),),
    "nice": (("increment", "int"),),
    "signal": (("sig", "int"), ("handler", "__sighandler_t")),
    "sigaction": (("sig", "int"), ("act", "const struct old_sigaction *"), ("oact", "struct old_sigaction *")),
    "sgetmask": (),
    "ssetmask": (("newmask", "int"),),
    "sigsuspend": (("unused1", "int"), ("unused2", "int"), ("mask", "old_sigset_t")),
    "sigpending": (("uset", "old_sigset_t *"),),
    "sigprocmask": (("how", "int"), ("nset", "old_sigset_t *"), ("oset", "old_sigset_t *")),
    "sigreturn": (),
    "old_getrlimit": (("resource", "unsigned int"), ("rlim", "struct rlimit *")),
    "old_select": (("arg", "struct sel_arg_struct *"),),
    "old_mmap": (("arg", "struct mmap_arg_struct *"),),
    "readdir": (("fd", "unsigned int"), ("dirent", "struct old_linux_dirent *"), ("count", "unsigned int")),
    "socketcall": (("call", "int"), ("args", "unsigned long *")),
    "ipc": (
        ("call", "unsigned int"),
        ("first", "int"),
        ("second", "unsigned long"),
        ("third", "unsigned long"),
        ("ptr", "void *"),
        ("fifth", "long"),
    ),
    "vm86old": (("user_vm86", "struct vm86_struct *"),),
    "vm86": (("cmd", "unsigned long"), ("arg", "unsigned long")),
    "bdflush": (("func", "int"), ("data", "long")),
    "idle": (),
    "break": (),
    "stty": (),
    "gtty": (),
    "ftime": (),
    "prof": (),
    "lock": (),
    "mpx": (),
    "ulimit": (),
    "profil": (),
}


class GenerateError(Exception):
    """A header or format file did not look as expected."""


def read_flat(path: Path) -> dict[str, int]:
    """``#define __NR_name N`` lines of an x86 unistd_*.h."""
    text = _read(path)
    numbers = {m[1]: int(m[2]) for m in re.finditer(r"^#define __NR_(\w+)\s+(\d+)\s*$", text, re.M)}
    if len(numbers) < 300:
        raise GenerateError(f"{path}: only {len(numbers)} __NR_ definitions; is this a unistd header?")
    return numbers


def read_generic(path: Path, wants: frozenset[str], bits: int = 64) -> dict[str, int]:
    """Numbers of asm-generic/unistd.h as a ``bits``-bit architecture sees them.

    Evaluates the file's conditionals (``#if``/``#ifdef``/``#ifndef``/``#else``/
    ``#endif`` over ``defined(...)``, ``__BITS_PER_LONG`` comparisons, ``!``,
    ``&&``, ``||``) and resolves names defined as other names.
    """
    macros: dict[str, str] = dict.fromkeys(wants, "1")
    stack: list[tuple[bool, bool]] = []  # (this branch active, any branch taken)
    active = True
    for lineno, line in enumerate(_read(path).splitlines(), 1):
        directive = line.strip()
        where = f"{path}:{lineno}"
        if directive.startswith(("#ifdef", "#ifndef")):
            name = directive.split()[1]
            cond = (name in macros) == directive.startswith("#ifdef")
            stack.append((active, cond))
            active = active and cond
        elif directive.startswith("#if"):
            cond = _eval_condition(directive[3:], macros, bits, where)
            stack.append((active, cond))
            active = active and cond
        elif directive.startswith("#else"):
            if not stack:
                raise GenerateError(f"{where}: #else without #if")
            outer, taken = stack[-1]
            stack[-1] = (outer, True)
            active = outer and not taken
        elif directive.startswith("#endif"):
            if not stack:
                raise GenerateError(f"{where}: #endif without #if")
            active = stack.pop()[0]
        elif active and directive.startswith("#undef"):
            macros.pop(directive.split()[1], None)
        elif active and directive.startswith("#define"):
            parts = directive.split(None, 2)
            if len(parts) >= 2 and "(" not in parts[1]:
                macros[parts[1]] = parts[2].split("/*")[0].strip() if len(parts) == 3 else ""
    if stack:
        raise GenerateError(f"{path}: {len(stack)} unterminated #if block(s)")
    numbers: dict[str, int] = {}
    for macro in macros:
        if macro.startswith("__NR_") and macro not in ("__NR_syscalls", "__NR_arch_specific_syscall"):
            numbers[macro[5:]] = _resolve(macro, macros, path)
    return numbers


def _eval_condition(expr: str, macros: dict[str, str], bits: int, where: str) -> bool:
    expr = expr.split("/*")[0]
    expr = re.sub(
        r"defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)", lambda m: "True" if (m[1] or m[2]) in macros else "False", expr
    )
    expr = expr.replace("__BITS_PER_LONG", str(bits))
    expr = expr.replace("&&", " and ").replace("||", " or ")
    expr = re.sub(r"!(?!=)", " not ", expr)
    leftover = set(re.findall(r"[A-Za-z_]\w*", expr)) - {"True", "False", "and", "or", "not"}
    if leftover:
        raise GenerateError(f"{where}: cannot evaluate #if on {', '.join(sorted(leftover))}")
    return bool(eval(compile(ast.parse(expr.strip(), mode="eval"), where, "eval"), {"__builtins__": {}}))


def _resolve(name: str, macros: dict[str, str], path: Path) -> int:
    seen = []
    value = macros[name]
    while not value.isdigit():
        if value not in macros or value in seen:
            raise GenerateError(f"{path}: {name} is defined as {value!r}, which is not a number")
        seen.append(value)
        value = macros[value]
    return int(value)


def read_signatures(directory: Path) -> dict[str, tuple[tuple[str, str], ...]]:
    """Argument names and C types of each call from ftrace ``sys_enter_*/format``."""
    signatures = {}
    for entry in sorted(directory.iterdir()):
        if not entry.name.startswith("sys_enter_"):
            continue
        text = (entry / "format").read_text()
        args = []
        for m in re.finditer(r"field:([^;]+);\s*offset:(\d+);", text):
            decl, offset = m[1].strip(), int(m[2])
            if offset < 16:  # common_* header and __syscall_nr
                continue
            ctype, _, arg = decl.rpartition(" ")
            args.append((arg.lstrip("*"), (ctype + " *" * arg.count("*")).replace("  ", " ").strip()))
        name = entry.name[len("sys_enter_") :]
        signatures[FTRACE_NAMES.get(name, name)] = tuple(args)
    if len(signatures) < 300:
        raise GenerateError(f"{directory}: only {len(signatures)} syscall formats")
    return signatures


def build(formats: Path | None) -> dict:
    raw = {
        "x86_64": read_flat(X86_64_H),
        "i386": read_flat(I386_H),
        "aarch64": read_generic(GENERIC_H, AARCH64_WANTS),
    }
    for arch, extra in NEWER.items():
        for name, nr in extra.items():
            raw[arch].setdefault(name, nr)
        by_nr: dict[int, str] = {}
        for name, nr in raw[arch].items():
            if nr in by_nr:
                raise GenerateError(f"{arch}: {name} and {by_nr[nr]} both have number {nr}")
            by_nr[nr] = name
    for arch, aliases in ALIASES.items():
        missing = sorted(set(aliases) - set(raw[arch]))
        if missing:
            raise GenerateError(f"{arch}: aliases for calls the headers lack: {', '.join(missing)}")
    preferred = _preferred(raw)

    if formats is not None:
        signatures = read_signatures(formats)
        source = f"ftrace syscall formats of Linux {os.uname().release} ({os.uname().machine})"
    else:
        old = _load_existing()
        signatures = dict(old.get("SIGNATURES", {}))
        source = old.get("SIGNATURE_SOURCE", "none")
    for name, sig in EXTRA_SIGNATURES.items():
        signatures.setdefault(name, sig)
    canonical = {ALIASES[arch].get(name, name) for arch in raw for name in raw[arch]}
    unsigned = sorted(canonical - set(signatures))
    signatures = {name: sig for name, sig in sorted(signatures.items()) if name in canonical}
    return {
        "raw": {arch: dict(sorted((nr, name) for name, nr in table.items())) for arch, table in raw.items()},
        "aliases": {arch: dict(sorted(a.items())) for arch, a in ALIASES.items()},
        "preferred": preferred,
        "signatures": signatures,
        "signature_source": source,
        "unsigned": unsigned,
    }


def _preferred(raw: dict[str, dict[str, int]]) -> dict[str, dict[str, str]]:
    """For each canonical name with several raw calls on an arch, the raw one to prefer."""
    out: dict[str, dict[str, str]] = {}
    for arch, table in raw.items():
        groups: dict[str, list[str]] = {}
        for name in table:
            groups.setdefault(ALIASES[arch].get(name, name), []).append(name)
        keep = KEEP_RAW.get(arch, frozenset())
        choice = {}
        for canon, names in groups.items():
            if len(names) == 1:
                continue
            if canon in keep and canon in names:
                choice[canon] = canon
            else:
                aliased = [n for n in names if n != canon]
                if len(aliased) != 1:
                    raise GenerateError(f"{arch}: {canon} has several aliases {aliased}; say which wins")
                choice[canon] = aliased[0]
        out[arch] = dict(sorted(choice.items()))
    return out


def _load_existing() -> dict:
    if not OUT.exists():
        return {}
    namespace: dict = {}
    exec(compile(OUT.read_text(), str(OUT), "exec"), namespace)
    return namespace


def render(data: dict) -> str:
    version = re.search(r"LINUX_VERSION_MAJOR (\d+).*?PATCHLEVEL (\d+).*?SUBLEVEL (\d+)", _read(VERSION_H), re.S)
    headers = ".".join(version.groups()) if version else "unknown"
    lines = [
        '"""System-call numbers, canonical-name aliases and x86-64 signatures.',
        "",
        "GENERATED by tools/gen_syscalls.py -- do not edit; edit the generator and rerun it.",
        "",
        f"Numbers: Linux {headers} uapi headers (x86-64 unistd_64.h, i386 unistd_32.h,",
        "aarch64 asm-generic/unistd.h) plus calls up to Linux 6.19 from the kernel tables.",
        f"Signatures: {data['signature_source']}.",
        '"""',
        "",
        "# arch -> number -> raw kernel name",
        "RAW = {",
    ]
    for arch, table in data["raw"].items():
        lines.append(f"    {arch!r}: {{")
        lines.extend(f"        {nr}: {name!r}," for nr, name in table.items())
        lines.append("    },")
    lines += ["}", "", "# arch -> raw kernel name -> canonical name (only where they differ)", "ALIASES = {"]
    for arch, table in data["aliases"].items():
        lines.append(f"    {arch!r}: {{")
        lines.extend(f"        {raw!r}: {canon!r}," for raw, canon in table.items())
        lines.append("    },")
    lines += ["}", "", "# arch -> canonical name -> the raw call to prefer when several map to it", "PREFERRED = {"]
    for arch, table in data["preferred"].items():
        lines.append(f"    {arch!r}: {{")
        lines.extend(f"        {canon!r}: {raw!r}," for canon, raw in table.items())
        lines.append("    },")
    lines += [
        "}",
        "",
        f"SIGNATURE_SOURCE = {data['signature_source']!r}",
        "",
        "# canonical name -> ((argument name, C type), ...) as the x86-64 kernel declares it",
        "SIGNATURES = {",
    ]
    for name, sig in data["signatures"].items():
        lines.append(f"    {name!r}: {sig!r},")
    lines += ["}", ""]
    return "\n".join(lines)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise GenerateError(f"{path}: cannot read ({exc.strerror}); install linux-libc-dev") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--formats", type=Path, help="ftrace events/syscalls directory (default: the mounted tracefs, if any)"
    )
    parser.add_argument(
        "--no-formats",
        action="store_true",
        help="keep the signatures of the committed module even if tracefs is readable",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed module differs from what would be generated"
    )
    args = parser.parse_args(argv)
    formats = None if args.no_formats else args.formats or next((d for d in FORMAT_DIRS if d.is_dir()), None)
    try:
        if formats is not None and not formats.is_dir():
            raise GenerateError(f"{formats}: not a directory of ftrace syscall formats")
        data = build(formats)
    except GenerateError as exc:
        print(f"gen_syscalls: {exc}", file=sys.stderr)
        return 2
    text = render(data)
    if args.check:
        same = OUT.exists() and OUT.read_text() == text
        print(f"{OUT.relative_to(ROOT)}: {'up to date' if same else 'differs; rerun tools/gen_syscalls.py'}")
        return 0 if same else 1
    OUT.write_text(text)
    counts = ", ".join(f"{arch} {len(t)}" for arch, t in data["raw"].items())
    print(f"wrote {OUT.relative_to(ROOT)}: {counts} calls, {len(data['signatures'])} signatures")
    if data["unsigned"]:
        print(f"no signature for: {', '.join(data['unsigned'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
