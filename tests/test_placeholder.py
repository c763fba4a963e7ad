"""What a follower opens in place of a file only the leader opened
(realmode.placeholder): the file itself, read-only, only when that changes
nothing; O_PATH otherwise."""

from __future__ import annotations

import os
from pathlib import Path

from realmode.placeholder import O_DIRECTORY, O_NOFOLLOW, O_PATH, O_RDONLY, open_flags

O_WRONLY, O_RDWR, O_CREAT, O_TRUNC = 0o1, 0o2, 0o100, 0o1000


def test_a_regular_file_opened_read_only_is_opened_read_only(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("x")
    flags = open_flags(O_RDONLY, str(file))
    assert flags & 0o3 == O_RDONLY and not flags & O_PATH
    # Creation and truncation are the leader's alone: never repeated.
    assert not open_flags(O_RDONLY | O_CREAT | O_TRUNC, str(file)) & (O_CREAT | O_TRUNC | O_PATH)
    assert open_flags(O_RDONLY | O_NOFOLLOW, str(file)) & O_NOFOLLOW


def test_anything_else_stays_o_path(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(file)
    for flags, target in (
        (O_WRONLY, file),
        (O_RDWR, file),
        (O_PATH, file),
        (O_RDONLY, fifo),
        (O_RDONLY | O_DIRECTORY, tmp_path),
        (O_RDONLY, tmp_path / "gone"),
        (O_RDONLY | O_NOFOLLOW, link),
        (O_RDONLY, Path("/dev/null")),
    ):
        assert open_flags(flags, str(target)) & O_PATH, (flags, target)
    assert open_flags(O_RDONLY | O_DIRECTORY, str(tmp_path)) & O_DIRECTORY
