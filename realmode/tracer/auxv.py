"""The vDSO, hidden at every exec.

``AT_SYSINFO_EHDR`` in the new image's auxiliary vector becomes
``AT_IGNORE``: libc then makes real ``clock_gettime``/``gettimeofday``/``time``
calls, which the core replicates like any other, instead of reading the
clock in user space where no tracer sees it.
"""

from __future__ import annotations

from realmode import ptrace_ll as ll

AT_NULL, AT_IGNORE, AT_ENTRY, AT_SYSINFO_EHDR = 0, 1, 9, 33
_MASK64 = (1 << 64) - 1


def rewrite_auxv(pid: int) -> int:
    """Hide the vDSO (AT_SYSINFO_EHDR becomes AT_IGNORE)
    in the new image's auxiliary vector; return its AT_ENTRY."""
    regs = ll.get_regs(pid)
    word = 8 if regs.cs == 0x33 else 4
    address = regs.rsp & (_MASK64 if word == 8 else 0xFFFFFFFF)
    data = b""
    position = 0

    def next_word() -> int:
        nonlocal data, position
        while len(data) - position < word:
            more = ll.read_memory(pid, address + len(data), 4096 - ((address + len(data)) % 4096))
            if not more:
                raise OSError("auxiliary vector not found on the new stack")
            data += more
        value = int.from_bytes(data[position : position + word], "little")
        position += word
        return value

    argc = next_word()
    for _ in range(argc + 1):
        next_word()
    while next_word():
        pass
    entry = 0
    while True:
        kind = next_word()
        value = next_word()
        if kind == AT_NULL:
            return entry
        if kind == AT_ENTRY:
            entry = value
        if kind == AT_SYSINFO_EHDR:
            ll.write_memory(pid, address + position - 2 * word, AT_IGNORE.to_bytes(word, "little"))
