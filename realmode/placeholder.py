"""What a follower opens in place of a file only the leader opened.

When the leader alone runs an ``open``, the follower's call becomes an open
of a *placeholder* at the leader's descriptor number (realmode.tracer). Its
reads and writes are the leader's, replicated; but calls every variant runs
itself on the descriptor still need a real one: ``mmap`` of a file (ld.so
maps libraries by descriptor, Python's ``mmap``, git's pack and index
files, sqlite) fails on an ``O_PATH`` descriptor, and the follower takes
an error path the leader never took.

So a follower opens the leader's *regular file* read-only when the leader
opened it read-only: that open changes nothing (no creation, no truncation,
no device or FIFO woken), and its mapping holds the same bytes as the
leader's, since both variants see one file. Anything else -- a write
access, a directory, a device, a FIFO, a socket -- stays ``O_PATH``: no
side effect, and ``fchdir`` or ``*at`` calls on it still work. A writable
shared mapping is not supported for followers (the leader's bytes would be
written twice); such a program keeps diverging.
"""

from __future__ import annotations

import os
import stat

O_ACCMODE, O_RDONLY = 0o3, 0
O_NONBLOCK, O_NOCTTY, O_PATH, O_NOFOLLOW, O_DIRECTORY = 0o4000, 0o400, 0o10000000, 0o400000, 0o200000


def open_flags(original_flags: int, target: str) -> int:
    """The flags of the follower's placeholder ``openat`` of ``target`` (a
    path this monitor can reach), given the canonical flags the leader
    opened it with (without ``O_CLOEXEC``, which the caller adds)."""
    kept = original_flags & (O_NOFOLLOW | O_DIRECTORY)
    if original_flags & O_PATH or original_flags & O_ACCMODE != O_RDONLY:
        return O_PATH | kept
    try:
        info = os.stat(target, follow_symlinks=not original_flags & O_NOFOLLOW)
    except OSError:
        return O_PATH | kept
    if not stat.S_ISREG(info.st_mode):
        return O_PATH | kept
    return O_RDONLY | O_NONBLOCK | O_NOCTTY | kept
