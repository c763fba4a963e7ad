"""Measuring the CONNECTOR round trip over the emulated network.

Two real CONNECTOR processes (:func:`realmode.connector.run_connector`) are
started on two hosts exactly as a run starts them; the orchestrator plays
both monitors on their socketpairs. Each sample sends an
:class:`~dmvx.messages.Entry` from the leader's monitor side and answers it
with an :class:`~dmvx.messages.Ack` from the follower's as soon as it
arrives: the time until the ack is back is one CONNECTOR round trip
(framing, AEAD and TCP over the links, both ways). With the links' delay
right it is twice the one-way path delay plus a little processing.
"""

from __future__ import annotations

import hashlib
import os
import select
import socket
import statistics
import time

from dmvx.calls import Call, Outcome
from dmvx.messages import Ack, Carried, Entry, EntryKind
from dmvx.protocol import new_run_key
from realmode import monitor_socket
from realmode.connector import run_connector
from realmode.net import children, netns, runs
from realmode.net.network import EmulatedNetwork


def connector_rtt(
    net: EmulatedNetwork, leader: str, follower: str, samples: int = 20, port: int = 0, timeout: float = 5.0
) -> list[float]:
    """``samples`` CONNECTOR round trips between two hosts, in seconds.

    The two CONNECTORs and the caller share one CPU while they measure:
    waking a process on the other vCPU costs 20-45 us on these VMs
    (measured on this project's VMs), which would otherwise be counted as link delay."""
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(saved)})
    try:
        return _connector_rtt(net, leader, follower, samples, port, timeout)
    finally:
        os.sched_setaffinity(0, saved)


def _connector_rtt(
    net: EmulatedNetwork, leader: str, follower: str, samples: int, port: int, timeout: float
) -> list[float]:
    key = new_run_key()
    hello_id = hashlib.sha256(key).hexdigest()[:16]
    address = (net.ip(leader), port)
    with net.inside(leader):
        listener = socket.create_server(address, backlog=1)
    address = listener.getsockname()[:2]  # port 0: the kernel picks a free one
    ends = []
    pids: list[int] = []
    try:
        for index, host in ((0, leader), (1, follower)):
            mine, theirs = socket.socketpair()
            host_pid = net.node_pid(host)

            def body(index: int = index, host_pid: int = host_pid, theirs: socket.socket = theirs) -> None:
                netns.enter(host_pid)
                run_connector(
                    index, 2, key, hello_id, theirs, listener if index == 0 else None, None if index == 0 else address
                )

            pid = children.fork(body, keep={theirs.fileno(), *([listener.fileno()] if index == 0 else [])})
            pids.append(pid)
            net.state.add(pid)
            theirs.close()
            ends.append(mine)
        listener.close()
        return _measure(ends[0], ends[1], samples, timeout)
    finally:
        listener.close()
        for end in ends:
            end.close()
        for pid in pids:
            runs.kill(pid)
        for pid in pids:
            runs.reap(pid)


def _receive(sock: socket.socket, reader: monitor_socket.RecordReader, deadline: float) -> Carried:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer over the CONNECTOR link")
        readable, _, _ = select.select([sock], [], [], remaining)
        if readable:
            for _peer, payload in monitor_socket.receive(sock, reader):
                message = monitor_socket.decode(payload)
                if message is not None:
                    return message


def _measure(leader: socket.socket, follower: socket.socket, samples: int, timeout: float) -> list[float]:
    lead_reader, follow_reader = monitor_socket.RecordReader(), monitor_socket.RecordReader()
    call = Call("getpid", ())
    rtts = []
    for seq in range(1, samples + 2):
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        leader.sendall(monitor_socket.encode(1, Entry("0", seq, call, EntryKind.FULL, Outcome(seq))))
        message = _receive(follower, follow_reader, deadline)
        assert isinstance(message, Entry) and message.seq == seq
        follower.sendall(monitor_socket.encode(0, Ack("0", seq, 1)))
        message = _receive(leader, lead_reader, deadline)
        assert isinstance(message, Ack) and message.seq == seq
        if seq > 1:  # the first includes TCP's and ARP's first exchanges
            rtts.append(time.monotonic() - started)
    return rtts


def summary(rtts: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(rtts), "min_s": min(rtts), "max_s": max(rtts)}
