"""How long a CONNECTOR lets a peer be silent (realmode.connector), without a run.

A CONNECTOR on a machine that starves its variant may itself not run for
longer than the stall timeout: the leader's CONNECTOR ended runs with
"heard nothing from follower 1's for 2.2 s" under load (the corpus's
make-gcc). A peer whose monitor's last note reported a wait for a CPU is
given as long as a monitor gives a peer whose notes are overdue.
"""

from __future__ import annotations

import socket

from dmvx.messages import StarvedNote
from dmvx.protocol import FrameWriter
from realmode import connector, monitor_socket
from realmode.tracer.starvation import LATE_LIMIT

KEY = bytes(range(32))


def _link() -> tuple[connector._Peer, FrameWriter, socket.socket, socket.socket]:
    """The leader's side of a link to follower 1 (greeted), the follower's
    writer, and the leader's monitor socket's two ends."""
    near, far = socket.socketpair()
    far.close()
    peer = connector._Peer(near, KEY, 0, 1)
    peer.greeted = True
    monitor, tracer = socket.socketpair()
    return peer, FrameWriter(KEY, 1, 0), monitor, tracer


def test_a_peer_whose_last_note_reported_a_wait_for_a_cpu_may_be_silent_longer() -> None:
    peer, writer, monitor, tracer = _link()
    try:
        assert peer.silence(2.0) == 2.0  # a quiet machine: as before
        assert connector._feed(peer, writer.encode(StarvedNote(300_000_000)), monitor, "run")
        assert peer.starved and peer.silence(2.0) == 2.0 * LATE_LIMIT
        assert connector._feed(peer, writer.encode(StarvedNote(0)), monitor, "run")
        assert not peer.starved and peer.silence(2.0) == 2.0  # it ran as it wanted since
        # The notes still reach the monitor.
        records = monitor_socket.receive(tracer, monitor_socket.RecordReader())
        assert [source for source, _ in records] == [1, 1]
    finally:
        for sock in (peer.sock, monitor, tracer):
            sock.close()
