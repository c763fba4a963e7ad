"""Real mode and ``epoll_event.data``: each variant gets back its own data.

lighttpd keeps a connection pointer in ``epoll_event.data``; under ASLR the
variants' heaps differ, so a follower given the leader's events verbatim
would follow the leader's pointers (docs/case-study.md). The target stores a
heap pointer per descriptor (ADD, then MOD and DEL) and dereferences what
``epoll_wait`` hands back.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from realmode.epoll import UNKNOWN, EpollMap
from realmode.orchestrator import run
from test_real_support import assert_no_survivors, captured, compile_target, native, no_strays  # noqa: F401

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or os.uname().machine != "x86_64", reason="real mode traces x86-64 Linux processes"
)


def _aslr_on() -> bool:
    try:
        return Path("/proc/sys/kernel/randomize_va_space").read_text().strip() != "0"
    except OSError:
        return False


@pytest.mark.root
@pytest.mark.usefixtures("no_strays")
@pytest.mark.skipif(not _aslr_on(), reason="the point is variants with different heap addresses (ASLR)")
@pytest.mark.parametrize("policy", ("dmvx", "dmon"))
def test_follower_gets_its_own_epoll_data_under_aslr(tmp_path, policy: str) -> None:
    program = compile_target("epoll_data", tmp_path)
    expected = native([program])
    assert expected.returncode == 0 and b"moved-1" in expected.stdout
    result, out, err = captured(lambda: run([[program], [program]], policy))
    assert result.verdict is None, result.verdict.summary()
    assert (out, result.program_status) == (expected.stdout, 0), err
    assert result.variants[1].stats["skipped"] > 0  # the follower's epoll_wait was skipped, not run
    assert_no_survivors(result)


def test_epoll_map_names_events_by_descriptor() -> None:
    leader, follower = EpollMap(), EpollMap()
    leader.apply(4, 1, 7, 0x5555_0000_1000)
    follower.apply(4, 1, 7, 0x7F00_0000_2000)
    leader.apply(4, 1, 8, 0x5555_0000_3000)
    follower.apply(4, 1, 8, 0x7F00_0000_4000)
    leader.apply(4, 3, 8, 0x5555_0000_5000)  # MOD: new data for fd 8
    follower.apply(4, 3, 8, 0x7F00_0000_6000)
    events = (
        (1).to_bytes(4, "little")
        + (0x5555_0000_5000).to_bytes(8, "little")
        + (4).to_bytes(4, "little")
        + (0x5555_0000_1000).to_bytes(8, "little")
        + (1).to_bytes(4, "little")
        + (99).to_bytes(8, "little")
    )  # never registered
    canonical = leader.to_canonical(4, events)
    fds = [int.from_bytes(canonical[i + 4 : i + 12], "little") for i in range(0, 36, 12)]
    assert fds == [8, 7, 99 | UNKNOWN]
    own = follower.from_canonical(4, canonical)
    datas = [int.from_bytes(own[i + 4 : i + 12], "little") for i in range(0, 36, 12)]
    assert datas == [0x7F00_0000_6000, 0x7F00_0000_2000, 99]
    leader.apply(4, 2, 7, None)  # DEL: that data names no descriptor any more
    assert leader.to_canonical(4, events[12:24])[4:] == (0x5555_0000_1000 | UNKNOWN).to_bytes(8, "little")
    leader.forget_fd(4)  # the epoll set itself closed
    assert leader.to_canonical(4, events[:12])[4:] == (0x5555_0000_5000 | UNKNOWN).to_bytes(8, "little")
