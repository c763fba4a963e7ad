"""The vulnerable targets' builds and the exploits' arithmetic (issue 6,
item 1). No root: these compile and read ELF files only.

Each diversity setting becomes real builds: identical (one non-PIE image,
no randomisation), ASLR (PIE), disjoint (non-PIE images in slots of their
own), ABI-heterogeneous (x86-64 and i386 of one source). The exploits'
premises are checked on those builds: what an absolute or a relative
exploit relies on holds in one build and not in the other where the
scenario says it should not.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dmvx.exitstatus import Unavailable
from dmvx.scenario import Layout, VariantSpec
from dmvx.syscalls import Arch
from realmode.vuln import exploits
from realmode.vuln.build import build_variants, no_randomize, variant_flags

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("nm") is None, reason="needs gcc and binutils"
)

X86, I386 = Arch.X86_64, Arch.I386
SETTINGS = {
    "identical": [
        VariantSpec(host="h1", arch=X86, layout=Layout(aslr=False, base=0x400000)),
        VariantSpec(host="h2", arch=X86, layout=Layout(aslr=False, base=0x400000)),
    ],
    "aslr": [VariantSpec(host="h1", arch=X86), VariantSpec(host="h2", arch=X86)],
    "disjoint": [
        VariantSpec(host="h1", arch=X86, layout=Layout(disjoint=True)),
        VariantSpec(host="h2", arch=X86, layout=Layout(disjoint=True)),
    ],
    "abi": [VariantSpec(host="h1", arch=X86), VariantSpec(host="h2", arch=I386)],
}
PROGRAMS = ("stack_overflow", "heap_overflow", "struct_overflow", "format_string")


def _multilib() -> bool:
    probe = subprocess.run(
        ["gcc", "-m32", "-x", "c", "-", "-o", "/dev/null"],
        input="int main(void){return 0;}",
        capture_output=True,
        text=True,
    )
    return probe.returncode == 0


needs_multilib = pytest.mark.skipif(
    shutil.which("gcc") is None or not _multilib(), reason="needs gcc -m32 (gcc-multilib)"
)


@needs_multilib
@pytest.mark.parametrize("program", PROGRAMS)
def test_each_setting_builds_each_target(program: str) -> None:
    facts = {
        name: [exploits.elf_facts(b.path) for b in build_variants(program, specs)] for name, specs in SETTINGS.items()
    }
    identical, aslr, disjoint, abi = (facts[n] for n in SETTINGS)
    assert identical[0] == identical[1] and not identical[0].pie and identical[0].first_load == 0x400000
    assert aslr[0] == aslr[1] and aslr[0].pie
    assert [f.first_load for f in disjoint] == [0x10400000, 0x20400000] and not any(f.pie for f in disjoint)
    assert [(f.arch, f.pie) for f in abi] == [(X86, True), (I386, True)]


def test_layouts_become_flags_and_a_start_mode() -> None:
    assert variant_flags(VariantSpec(host="h", arch=X86), 0) == (("-fPIE", "-pie"), False)
    assert variant_flags(VariantSpec(host="h", arch=I386, layout=Layout(aslr=False, base=0x9000000)), 0) == (
        ("-m32", "-no-pie", "-fno-pie", "-Wl,-Ttext-segment=0x9000000"),
        True,
    )
    flags, fixed = variant_flags(VariantSpec(host="h", arch=X86, layout=Layout(disjoint=True)), 2)
    assert flags[-1] == "-Wl,-Ttext-segment=0x20400000" and not fixed
    with pytest.raises(Unavailable, match="aarch64"):
        variant_flags(VariantSpec(host="h", arch=Arch.AARCH64), 0)


def test_randomisation_is_off_for_all_variants_or_for_none() -> None:
    builds = build_variants("stack_overflow", SETTINGS["identical"])
    assert no_randomize(builds)
    assert not no_randomize(build_variants("stack_overflow", SETTINGS["aslr"]))
    mixed = [builds[0], build_variants("stack_overflow", SETTINGS["aslr"])[1]]
    with pytest.raises(Unavailable, match="for all variants of a run or for none"):
        no_randomize(mixed)


def test_heap_exploit_follows_glibc_chunks_of_each_abi() -> None:
    # x86-64: malloc(32) is a 48-byte chunk; the next chunk's size field is
    # 40 bytes after the buffer, its data 48; malloc(8) is 32 bytes in use.
    assert exploits.heap_overflow_value(X86, 0x401234) == b"A" * 40 + (0x21).to_bytes(8, "little") + (
        0x401234
    ).to_bytes(8, "little")
    # i386: 4-byte size fields, 16-byte alignment: size field at 44, data at 48.
    assert exploits.heap_overflow_value(I386, 0x8049234) == b"A" * 44 + (0x11).to_bytes(4, "little") + (
        0x8049234
    ).to_bytes(4, "little")


def test_data_only_exploit_is_an_offset_of_its_abi() -> None:
    assert exploits.struct_overflow_value(X86) == b"A" * 16 + b"\0" * 8 + b"\1"  # admin at 24
    assert exploits.struct_overflow_value(I386) == b"A" * 16 + b"\0" * 4 + b"\1"  # admin at 20


def test_request_encodes_every_byte() -> None:
    assert exploits.request_path(b"A\0%\x01 ") == b"/hello?name=A%00%25%01%20"
    assert exploits.leaked_pointers(b"hello 0x55d1c0de1189 and 0x10") == [0x55D1C0DE1189, 0x10]


@needs_multilib
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_relative_exploit_premises(setting: str) -> None:
    """The one-byte overwrite turns plain_reply into admin_reply at any base
    (the two differ only in the low byte), and the byte is the same in both
    variants of a setting -- except across ABIs, where it means another place."""
    low = []
    for build in build_variants("stack_overflow", SETTINGS[setting]):
        start = exploits.elf_facts(build.path).first_load
        admin = exploits.symbol(build.path, "admin_reply") - start
        plain = exploits.symbol(build.path, "plain_reply") - start
        assert admin >> 8 == plain >> 8 and plain & 0xFF == 0, build.path
        low.append(admin & 0xFF)
    assert (low[0] == low[1]) is (setting != "abi"), low
