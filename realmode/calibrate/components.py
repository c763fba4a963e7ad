"""The components ``dmvx calibrate`` measures, each on its own (see the
package's docstring): native calls, the seccomp filter, a bare stop pair,
the core monitors, wake-ups, CONNECTOR frames, the local link, real
CONNECTOR processes, and real mode's processes on whole runs."""

from __future__ import annotations

import functools
import os
import signal
import socket
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmvx.calls import Call, Outcome
from dmvx.exitstatus import EnvironmentProblem
from dmvx.messages import Entry, EntryKind
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.protocol import FrameReader, FrameWriter, new_run_key
from realmode import abi, monitor_socket
from realmode import ptrace_ll as ll
from realmode.helper_process import run_helper
from realmode.inproc.area import RING_BYTES
from realmode.microbench import filtered_ns, per_call_ns

ROOT = Path(__file__).resolve().parent.parent.parent
#: The stall timeout of the calibration's runs: a loaded machine can keep a
#: monitor off its CPU longer than ``dmvx run``'s default, and a calibration
#: run that ends no-progress measures nothing.
CALIBRATION_STALL = 30.0
MESSAGE_SIZES = (64, 1024, 16384)


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def available_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares line through (x, y): intercept and slope (slope >= 0)."""
    slope = statistics.linear_regression([x for x, _ in points], [y for _, y in points]).slope
    slope = max(slope, 0.0)
    intercept = statistics.mean(y for _, y in points) - slope * statistics.mean(x for x, _ in points)
    return max(intercept, 0.0), slope


# ---------------------------------------------------------------------------
# Component measurements (nanoseconds)
# ---------------------------------------------------------------------------


def seccomp_untraced_ns(binary: str, calls: int, native_local: float) -> float:
    """The local loop under real mode's filter (traced, never stopped) minus native."""
    return max(filtered_ns(binary, calls, "dmvx") - native_local, 0.0)


def ptrace_pair_ns(binary: str, calls: int, native_getpid: float) -> float:
    """One call stopped at entry and exit by a tracer that decodes it, minus native.

    The tracer is this process, pinned with its tracee to one CPU (real
    mode's placement for a tracer); the tracee measures itself.
    """
    cpu = available_cpus()[0]
    saved = os.sched_getaffinity(0)
    read_fd, write_fd = os.pipe()
    os.sched_setaffinity(0, {cpu})
    try:
        pid = ll.spawn_stopped([binary, "getpid", str(calls)], write_fd)
        os.close(write_fd)
        ll.set_options(pid, ll.PTRACE_O_TRACESYSGOOD | ll.PTRACE_O_EXITKILL)
        reader = abi.Reader(pid)
        held: Any = None
        ll.resume(pid, True)
        while True:
            _, status = os.waitpid(pid, ll.WALL)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                break
            sig = os.WSTOPSIG(status)
            if sig == (signal.SIGTRAP | 0x80):
                info = ll.syscall_info(pid)
                if info.op == ll.OP_EXIT:
                    if held is not None:
                        reader.outcome(held, info.rval)
                    held = None
                elif info.op == ll.OP_ENTRY:
                    arch = abi.arch_of(info.arch)
                    held = reader.call(arch, info.nr, info.args) if arch is not None else None
                ll.resume(pid, True)
            else:
                ll.resume(pid, True, 0 if sig == signal.SIGTRAP else sig)
    finally:
        os.sched_setaffinity(0, saved)
    with os.fdopen(read_fd) as out:
        return max(per_call_ns(out.read()) - native_getpid, 0.0)


def monitor_ns(calls: int = 20000, chunk: int = 2000) -> tuple[float, float]:
    """The core's work per replicated getpid: (leader, follower), in this
    process. In rounds of ``chunk`` calls, each with a fresh pair of
    monitors: no follower acknowledges here, and a leader whose CB (4,096
    entries) is full holds its next call instead of running it."""
    from realmode.orchestrator import make_policy

    policy = make_policy("dmvx")
    call = Call("getpid", ())
    lead_s = follow_s = 0.0
    led = followed = 0
    for _ in range(max(calls // chunk, 1)):
        leader = LeaderMonitor(policy, 2)
        follower = FollowerMonitor(policy, 1, 2)
        outbox: list[Any] = []
        start = time.perf_counter()
        for _ in range(chunk):
            leader.call_entered(call)
            for action in leader.call_exited(Outcome(4242)):
                message = getattr(action, "message", None)
                if message is not None:
                    outbox.append(message)
        lead_s += time.perf_counter() - start
        led += chunk
        start = time.perf_counter()
        for message in outbox:
            follower.message_received(message)
            follower.call_entered(call)
        follow_s += time.perf_counter() - start
        followed += len(outbox)
    return lead_s / led * 1e9, follow_s / max(followed, 1) * 1e9


def _pinned(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


def wakeup_ns(rounds: int = 2000, *, same_cpu: bool = False) -> float:
    """Waking a process: half a one-byte pipe ping-pong between two
    processes, less a write and a read of one byte in one process (the
    pipe calls themselves). On two CPUs (an idle CPU woken: the costly case
    on these VMs) or, with ``same_cpu``, on one (a switch of process)."""
    cpus = available_cpus()
    other = cpus[0] if same_cpu else cpus[-1]
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _pinned(other)
            for _ in range(rounds):
                os.read(to_child_r, 1)
                os.write(to_parent_w, b"x")
        finally:
            os._exit(0)
    saved = os.sched_getaffinity(0)
    _pinned(cpus[0])
    try:
        start = time.perf_counter()
        for _ in range(rounds):
            os.write(to_child_w, b"x")
            os.read(to_parent_r, 1)
        elapsed = time.perf_counter() - start
        r, w = os.pipe()
        start = time.perf_counter()
        for _ in range(rounds):
            os.write(w, b"x")
            os.read(r, 1)
        local = time.perf_counter() - start
        os.close(r)
        os.close(w)
    finally:
        os.sched_setaffinity(0, saved)
        os.waitpid(pid, 0)
        for fd in (to_child_r, to_child_w, to_parent_r, to_parent_w):
            os.close(fd)
    return max((elapsed - 2 * local) / rounds / 2 * 1e9, 0.0)


@dataclass
class MessageCosts:
    """Per size: sender CPU (encode + send) and receiver CPU (recv + check + decode), ns."""

    send: dict[int, float] = field(default_factory=dict)
    receive: dict[int, float] = field(default_factory=dict)
    encode: dict[int, float] = field(default_factory=dict)
    decode: dict[int, float] = field(default_factory=dict)


def _entry(size: int, seq: int) -> Entry:
    return Entry("0", seq, Call("read", (3, size)), EntryKind.FULL, Outcome(size, ((1, os.urandom(size)),)))


def message_costs(sizes: tuple[int, ...] = MESSAGE_SIZES, count: int = 2000) -> MessageCosts:
    """Frames of each size over loopback TCP (``TCP_NODELAY``), one per write
    and read, both ends in this process so that no wake-up is counted (that
    is :func:`wakeup_ns`): send = encode + ``send``, receive = ``recv`` +
    check + decode."""
    key = new_run_key()
    costs = MessageCosts()
    listener = socket.create_server(("127.0.0.1", 0))
    sender = socket.create_connection(listener.getsockname())
    receiver, _ = listener.accept()
    listener.close()
    for sock in (sender, receiver):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for size in sizes:
            messages = [_entry(size, i + 1) for i in range(count)]
            writer, reader = FrameWriter(key, 0, 1), FrameReader(key, 0, 1)
            encode = send = recv = decode = 0.0
            for message in messages:
                t0 = time.perf_counter()
                frame = writer.encode(message)
                t1 = time.perf_counter()
                sender.sendall(frame)
                t2 = time.perf_counter()
                encode += t1 - t0
                send += t2 - t1
                got = 0
                while got < len(frame):
                    data = receiver.recv(1 << 20)
                    t3 = time.perf_counter()
                    reader.feed(data)
                    got += len(data)
                    recv += t3 - t2
                    t2 = time.perf_counter()
                    decode += t2 - t3
                if reader.next_message() is None:
                    raise RuntimeError("a calibration frame did not decode")
                decode += time.perf_counter() - t2
            costs.encode[size] = encode / count * 1e9
            costs.decode[size] = decode / count * 1e9
            costs.send[size] = (encode + send) / count * 1e9
            costs.receive[size] = (recv + decode) / count * 1e9
    finally:
        sender.close()
        receiver.close()
    return costs


def _small_entry(seq: int) -> Entry:
    """What a leader sends for a replicated call without output (getppid's)."""
    return Entry("0", seq, Call("getppid", ()), EntryKind.FULL, Outcome(4242))


@dataclass
class LinkCosts:
    """A monitor's side of the local link (:mod:`realmode.monitor_socket`), ns: handing
    one message to its CONNECTOR (encode + send), and taking a read's worth
    from it (one receive, then a decode per message)."""

    send: float
    receive: float
    receive_message: float


def _link_round(
    mine: socket.socket, theirs: socket.socket, reader: monitor_socket.RecordReader, batch: int, seq: int
) -> tuple[float, float]:
    """``batch`` messages sent one by one, then taken in one read: seconds."""
    t0 = time.perf_counter()
    for i in range(batch):
        theirs.sendall(monitor_socket.encode(0, _small_entry(seq + i)))
    t1 = time.perf_counter()
    got = 0
    while got < batch:
        records = monitor_socket.receive(mine, reader)
        for _, payload in records:
            monitor_socket.decode(payload)
        got += len(records)
    return t1 - t0, time.perf_counter() - t1


def link_costs(small: int = 1, large: int = 32, messages: int = 4000) -> LinkCosts:
    """:func:`_link_round` at two batch sizes: a straight line gives the cost
    of a read and of a decode; the sends are timed one by one."""
    mine, theirs = socket.socketpair()
    reader = monitor_socket.RecordReader()
    per_read = {}
    send = 0.0
    try:
        seq = 1
        for batch in (small, large):
            rounds = max(messages // batch, 1)
            taken = 0.0
            for _ in range(rounds):
                sent, took = _link_round(mine, theirs, reader, batch, seq)
                seq += batch
                send += sent
                taken += took
            per_read[batch] = taken / rounds * 1e9
    finally:
        mine.close()
        theirs.close()
    per_message = max((per_read[large] - per_read[small]) / (large - small), 0.0)
    count = max(messages // small, 1) * small + max(messages // large, 1) * large
    return LinkCosts(send / count * 1e9, max(per_read[small] - small * per_message, 0.0), per_message)


def _connectors_cpu(batch: int, rounds: int, cpu: int | None) -> tuple[float, float]:
    """Two real CONNECTOR processes (:func:`realmode.connector.run_connector`)
    on loopback: ``rounds`` batches of ``batch`` entries from the leader's
    monitor end to the follower's, each batch read before the next is sent.
    CPU seconds of the sending and of the receiving CONNECTOR."""
    from realmode.connector import run_connector

    key = new_run_key()
    run_id = "calibration"
    listener = socket.create_server(("127.0.0.1", 0), backlog=1)
    address = listener.getsockname()[:2]
    ends = [socket.socketpair() for _ in range(2)]
    pids: list[int] = []
    try:
        for index, (_, con_end) in enumerate(ends):
            pid = os.fork()
            if pid == 0:
                run_helper(
                    functools.partial(
                        run_connector,
                        index,
                        2,
                        key,
                        run_id,
                        con_end,
                        listener if index == 0 else None,
                        None if index == 0 else address,
                    ),
                    keep={con_end.fileno(), *([listener.fileno()] if index == 0 else [])},
                    cpu=cpu,
                )
            pids.append(pid)
            con_end.close()
        listener.close()
        leader_end, follower_end = ends[0][0], ends[1][0]
        reader = monitor_socket.RecordReader()
        seq = 0
        for _ in range(rounds):
            frames = []
            for _ in range(batch):
                seq += 1
                frames.append(monitor_socket.encode(1, _small_entry(seq)))
            leader_end.sendall(b"".join(frames))
            got = 0
            while got < batch:
                got += len(monitor_socket.receive(follower_end, reader))
        leader_end.close()
        follower_end.close()
        seconds = []
        for pid in pids:
            _, _, usage = os.wait4(pid, 0)
            seconds.append(usage.ru_utime + usage.ru_stime)
        pids.clear()
        return seconds[0], seconds[1]
    finally:
        listener.close()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


@dataclass
class ConnectorCosts:
    """Real mode's CONNECTOR, ns: per batch (one read from the monitor's
    link, one TCP send; one TCP receive, one write to the link) and per
    entry in it, on the sending and on the receiving side."""

    send_batch: float
    send_message: float
    receive_batch: float
    receive_message: float


def connector_costs(small: int = 1, large: int = 32, messages: int = 2000) -> ConnectorCosts:
    """:func:`_connectors_cpu` at two batch sizes, less a run with no
    traffic (start-up, keys, the hello): a straight line per side."""
    cpu = available_cpus()[0]
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        base_send, base_receive = _connectors_cpu(1, 0, cpu)
        per_batch = {}
        for batch in (small, large):
            rounds = max(messages // batch, 1)
            send, receive = _connectors_cpu(batch, rounds, cpu)
            per_batch[batch] = (
                max(send - base_send, 0.0) / rounds * 1e9,
                max(receive - base_receive, 0.0) / rounds * 1e9,
            )
    finally:
        os.sched_setaffinity(0, saved)
    send_message = max((per_batch[large][0] - per_batch[small][0]) / (large - small), 0.0)
    receive_message = max((per_batch[large][1] - per_batch[small][1]) / (large - small), 0.0)
    return ConnectorCosts(
        max(per_batch[small][0] - small * send_message, 0.0),
        send_message,
        max(per_batch[small][1] - small * receive_message, 0.0),
        receive_message,
    )


@dataclass
class RoleCosts:
    """Real mode's processes per call of a loop, ns of CPU: each variant's
    monitor (with its program) and each CONNECTOR, leader first; and the
    loop's own time per call, as the leader's program clocks it."""

    monitor: tuple[float, float]
    connector: tuple[float, float]
    loop: float = 0.0


def role_cpu_ns(
    binary: str, kind: str, policy: str, calls: tuple[int, int] = (2000, 12000), in_process: bool = False
) -> RoleCosts:
    """Real mode at work: ``dmvx run`` of a loop of ``kind`` under
    ``policy`` (two variants, real mode's default placement), and the CPU
    time of every process it forked per call -- the slope between a short
    and a long run, so that start-up does not count.

    These are the components measured on whole runs: the tracer's own event
    loop (waitpid, registers, the broker, the link, sleeping in select and
    being woken) is what a stand-alone stop pair (:func:`ptrace_pair_ns`)
    leaves out. The kinds used, ``getppid`` (no output) and ``uname`` (one
    output buffer), are no calls the check predicts. ``in_process``: on the
    in-process path (the monitors' CPU is then per record they take)."""
    from realmode.orchestrator import run

    points = []
    for count in calls:
        with tempfile.TemporaryFile() as out:
            saved = os.dup(1)
            try:
                os.dup2(out.fileno(), 1)
                result = run(
                    [[binary, kind, str(count)]] * 2, policy, in_process=in_process, stall_timeout=CALIBRATION_STALL
                )
            finally:
                os.dup2(saved, 1)
                os.close(saved)
            out.seek(0)
            printed = out.read().decode()
        if result.verdict is not None or result.error is not None:
            raise EnvironmentProblem(
                f"dmvx calibrate: the calibration run of {kind} under {policy} failed: "
                f"{result.verdict.summary() if result.verdict else result.error}"
            )
        points.append((count, [v.cpu_s for v in result.variants], per_call_ns(printed)))
    (n0, short, _), (n1, long, loop) = points

    def slope(role: str, index: int) -> float:
        return max(long[index][role] - short[index][role], 0.0) / (n1 - n0) * 1e9

    return RoleCosts((slope("monitor", 0), slope("monitor", 1)), (slope("connector", 0), slope("connector", 1)), loop)


#: The bytes a record of ``alternate_read`` carries more than one of
#: ``alternate``, on average: every other one a 4 KiB read's.
ALTERNATE_READ_BYTES = 4096 / 2


@dataclass
class DipmonCosts:
    """The in-process path's costs (``dmvx run --in-process on``), ns per
    call of a ``getppid`` loop (a call the library wraps and the check does
    not predict)."""

    #: The leader's program per call beyond the native call: the wrapper,
    #: the call from the trampoline and its record appended to the ring (one
    #: figure: the program's own clock cannot tell them apart).
    call: float
    #: Each variant's monitor per record, CPU: the leader's drains the ring
    #: into the core and hands the entry to its CONNECTOR; a follower's lays
    #: the leader's entry into its in ring and checks its own record.
    monitor: tuple[float, float]
    #: Each CONNECTOR per entry, CPU (batches as the run made them).
    connector: tuple[float, float]
    #: ``monitor`` and ``connector`` on a loop of records each unlike the one
    #: before (``alternate``: getppid and getuid by turns), which the path
    #: takes one by one, as a server's: what a run of one record costs.
    monitor_alone: tuple[float, float] = (0.0, 0.0)
    connector_alone: tuple[float, float] = (0.0, 0.0)
    #: The same on ``alternate_read`` (getppid and a 4 KiB read by turns:
    #: :data:`ALTERNATE_READ_BYTES` more a record than ``alternate``'s): what
    #: the bytes a record carries cost each process.
    monitor_bytes: tuple[float, float] = (0.0, 0.0)
    connector_bytes: tuple[float, float] = (0.0, 0.0)
    #: The leader's program per call of each loop (``getppid``,
    #: ``alternate``, ``alternate_read``) below the CB, as its clock says:
    #: the native call and the wrapper. A variant's monitor reaps its
    #: program, so ``monitor`` (and the ``_alone``, ``_bytes`` figures) count
    #: the program's CPU too, which sim charges on the program's own timeline
    #: (its native cost and ``call``): the profile takes it out (0: not
    #: measured, the figures are written as they are).
    program: tuple[float, float, float] = (0.0, 0.0, 0.0)


def dipmon_costs(
    binary: str,
    native_getppid: float,
    share: float = 1.0,
    short: int = 3000,
    calls: tuple[int, int] = (2000, 12000),
) -> DipmonCosts:
    """The in-process path at work: a loop of ``short`` calls (fewer than
    the CB holds, so the leader never waits for its pipeline) for the
    program's cost per call, and the CPU per record of each process from
    two longer runs (:func:`role_cpu_ns`), of ``getppid`` (every record
    like the one before: the path takes them in runs) and of ``alternate``
    (none alike: each alone). What the pipeline costs per record is
    measured, not assumed: it changes with the code that drains, and a
    record alone has cost it ten times one in a run (lighttpd's are alone).
    A third, ``alternate_read``, gives the cost of the bytes a record
    carries (~40 ns a byte over the four processes: a lighttpd request
    carries ~8.6 KB, its file read and written). Each loop is also run
    short for its program's own time per call, which its monitor's CPU
    counts (it reaps the program) and the profile takes out. The
    program's clock counts the time others held its CPU: its figures are
    taken at ``share`` (what a native run of ``native_getppid`` ns a call
    had of its CPU: :func:`realmode.microbench.native_cpu_ns`), as CPU."""
    from realmode.microbench import traced

    # Short enough that the ring holds the whole loop (alternate_read's
    # records carry 2 KiB each on average: ~500 fill the ring, past which
    # the program goes at the pipeline's pace, not its own).
    loop, loop_alone, loop_bytes = (
        traced(binary, kind, count, "dmvx", in_process=True, stall_timeout=CALIBRATION_STALL).ns_per_call
        for kind, count in (
            ("getppid", short),
            ("alternate", short),
            ("alternate_read", min(short, RING_BYTES // (4 * int(ALTERNATE_READ_BYTES)))),
        )
    )
    roles = role_cpu_ns(binary, "getppid", "dmvx", calls, in_process=True)
    alone = role_cpu_ns(binary, "alternate", "dmvx", calls, in_process=True)
    loaded = role_cpu_ns(binary, "alternate_read", "dmvx", calls, in_process=True)
    return DipmonCosts(
        max(loop - native_getppid, 0.0) * share,
        roles.monitor,
        roles.connector,
        alone.monitor,
        alone.connector,
        loaded.monitor,
        loaded.connector,
        (loop * share, loop_alone * share, loop_bytes * share),
    )
