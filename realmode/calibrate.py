"""Measure this machine's MVX costs and write them as a sim cost profile.

``dmvx calibrate`` closes the loop between the two modes (issue 7): sim mode
prices every action from a cost profile (docs/sim.md), real mode pays real
costs. This module measures what real mode is made of and writes it in the
profile format of ``sim/profiles/*.yml``:

``native``
    each microbenchmark call run natively (``realmode/targets/bench.c``);
``interception.seccomp_untraced``
    the same local loop under real mode's seccomp filter, never stopped;
the monitors' own work
    the core's (``dmvx.monitor``, timed in this process) and the local link
    between a monitor and its CONNECTOR (:mod:`realmode.link`);
the tracer
    what real mode's monitor processes spend per call of a whole run, from
    their CPU time (:func:`role_cpu_ns`): loops of ``getppid`` and ``uname``
    under dmvx and of ``getppid`` under dmon. Stops, registers, decoding,
    the event loop, sleeping and being woken: a stand-alone stop pair
    (:func:`ptrace_pair_ns`, kept for reference) is a third of it;
``connector``
    two real CONNECTOR processes passing batches of entries
    (:func:`connector_costs`) and frames over loopback TCP
    (:func:`message_costs`, for the cost per byte);
wake-ups
    a process woken on an idle CPU, and one woken on its waker's CPU.

:func:`profile_document` says how these map onto sim's costs. The calls the
check predicts (getpid, read, getcwd, sched_yield) are not among those the
calibration runs use.

:func:`check` then runs sim with that profile on the microbenchmarks and
real mode on the same programs (``benchmarks/bench_real.py``'s functions),
and sets the predicted and measured slowdowns side by side with the error.
Real mode packs its processes onto this machine's CPUs; sim gives each
timeline a CPU of its own, so the prediction is also held to the work sim
charged to each of real mode's CPUs (:class:`Prediction`). Nothing measured
by :func:`check` goes into the profile: the profile holds component costs,
the slowdowns are sim's output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from dmvx.calls import Call, Outcome
from dmvx.exitstatus import EnvironmentProblem, ExitStatus
from dmvx.messages import Entry, EntryKind
from dmvx.monitor import FollowerMonitor, LeaderMonitor
from dmvx.protocol import FrameReader, FrameWriter, new_run_key
from realmode import abi, link
from realmode import ptrace_ll as ll
from realmode.helper_process import run_helper

ROOT = Path(__file__).resolve().parent.parent
BENCH_SOURCE = ROOT / "realmode" / "targets" / "bench.c"
#: Where ``dmvx calibrate`` writes by default; sim finds it as ``cost_profile: measured``.
DEFAULT_PROFILE = ROOT / "sim" / "profiles" / "measured.yml"
KINDS = ("getpid", "read", "getcwd", "sched_yield")
MESSAGE_SIZES = (64, 1024, 16384)


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def build_bench(directory: str) -> str:
    """Compile the microbenchmark program into ``directory``; its path."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise EnvironmentProblem("dmvx calibrate needs gcc to build realmode/targets/bench.c")
    binary = str(Path(directory) / "bench")
    subprocess.run([gcc, "-O2", "-o", binary, str(BENCH_SOURCE)], check=True)
    return binary


def _per_call_ns(text: str) -> float:
    """bench prints ``kind count ns-per-call``."""
    return float(text.split()[2])


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def native_ns(binary: str, kind: str, calls: int, cpu: int | None = None) -> float:
    argv = [binary, kind, str(calls)]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu)] + argv
    return _per_call_ns(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
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
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_real import _filtered

    return max(_filtered(binary, calls, "dmvx") * 1000 - native_local, 0.0)


def ptrace_pair_ns(binary: str, calls: int, native_getpid: float) -> float:
    """One call stopped at entry and exit by a tracer that decodes it, minus native.

    The tracer is this process, pinned with its tracee to one CPU (real
    mode's placement for a tracer); the tracee measures itself.
    """
    cpu = _cpus()[0]
    saved = os.sched_getaffinity(0)
    read_fd, write_fd = os.pipe()
    os.sched_setaffinity(0, {cpu})
    try:
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(write_fd, 1)
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                ll.traceme()
                os.kill(os.getpid(), signal.SIGSTOP)
                os.execv(binary, [binary, "getpid", str(calls)])
            finally:
                os._exit(127)
        os.close(write_fd)
        os.waitpid(pid, ll.WALL)
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
        return max(_per_call_ns(out.read()) - native_getpid, 0.0)


def monitor_ns(calls: int = 20000) -> tuple[float, float]:
    """The core's work per replicated getpid: (leader, follower), in this process."""
    from realmode.orchestrator import make_policy

    policy = make_policy("dmvx")
    leader = LeaderMonitor(policy, 2)
    follower = FollowerMonitor(policy, 1, 2)
    call = Call("getpid", ())
    outbox: list[Any] = []
    start = time.perf_counter()
    for _ in range(calls):
        leader.call_entered(call)
        for action in leader.call_exited(Outcome(4242)):
            message = getattr(action, "message", None)
            if message is not None:
                outbox.append(message)
    lead = (time.perf_counter() - start) / calls * 1e9
    start = time.perf_counter()
    for message in outbox:
        follower.message_received(message)
        follower.call_entered(call)
    follow = (time.perf_counter() - start) / max(len(outbox), 1) * 1e9
    return lead, follow


def _pinned(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


def wakeup_ns(rounds: int = 2000, *, same_cpu: bool = False) -> float:
    """Waking a process: half a one-byte pipe ping-pong between two
    processes, less a write and a read of one byte in one process (the
    pipe calls themselves). On two CPUs (an idle CPU woken: the costly case
    on these VMs) or, with ``same_cpu``, on one (a switch of process)."""
    cpus = _cpus()
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
    """A monitor's side of the local link (:mod:`realmode.link`), ns: handing
    one message to its CONNECTOR (encode + send), and taking a read's worth
    from it (one receive, then a decode per message)."""

    send: float
    receive: float
    receive_message: float


def _link_round(mine: socket.socket, theirs: socket.socket, reader: link.LinkReader, batch: int,
                seq: int) -> tuple[float, float]:
    """``batch`` messages sent one by one, then taken in one read: seconds."""
    t0 = time.perf_counter()
    for i in range(batch):
        theirs.sendall(link.encode(0, _small_entry(seq + i)))
    t1 = time.perf_counter()
    got = 0
    while got < batch:
        records = link.receive(mine, reader)
        for _, payload in records:
            link.decode(payload)
        got += len(records)
    return t1 - t0, time.perf_counter() - t1


def link_costs(small: int = 1, large: int = 32, messages: int = 4000) -> LinkCosts:
    """:func:`_link_round` at two batch sizes: a straight line gives the cost
    of a read and of a decode; the sends are timed one by one."""
    mine, theirs = socket.socketpair()
    reader = link.LinkReader()
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
                run_helper(lambda: run_connector(index, 2, key, run_id, con_end,
                                                 listener if index == 0 else None,
                                                 None if index == 0 else address),
                           keep={con_end.fileno(), listener.fileno()}, cpu=cpu)
            pids.append(pid)
            con_end.close()
        listener.close()
        leader_end, follower_end = ends[0][0], ends[1][0]
        reader = link.LinkReader()
        seq = 0
        for _ in range(rounds):
            frames = []
            for _ in range(batch):
                seq += 1
                frames.append(link.encode(1, _small_entry(seq)))
            leader_end.sendall(b"".join(frames))
            got = 0
            while got < batch:
                got += len(link.receive(follower_end, reader))
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
    cpu = _cpus()[0]
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        base_send, base_receive = _connectors_cpu(1, 0, cpu)
        per_batch = {}
        for batch in (small, large):
            rounds = max(messages // batch, 1)
            send, receive = _connectors_cpu(batch, rounds, cpu)
            per_batch[batch] = (max(send - base_send, 0.0) / rounds * 1e9,
                                max(receive - base_receive, 0.0) / rounds * 1e9)
    finally:
        os.sched_setaffinity(0, saved)
    send_message = max((per_batch[large][0] - per_batch[small][0]) / (large - small), 0.0)
    receive_message = max((per_batch[large][1] - per_batch[small][1]) / (large - small), 0.0)
    return ConnectorCosts(max(per_batch[small][0] - small * send_message, 0.0), send_message,
                          max(per_batch[small][1] - small * receive_message, 0.0), receive_message)


@dataclass
class RoleCosts:
    """Real mode's processes per call of a loop, ns of CPU: each variant's
    monitor (with its program) and each CONNECTOR, leader first; and the
    loop's own time per call, as the leader's program clocks it."""

    monitor: tuple[float, float]
    connector: tuple[float, float]
    loop: float = 0.0


def role_cpu_ns(binary: str, kind: str, policy: str, calls: tuple[int, int] = (2000, 12000)) -> RoleCosts:
    """Real mode at work: ``dmvx run`` of a loop of ``kind`` under
    ``policy`` (two variants, real mode's default placement), and the CPU
    time of every process it forked per call -- the slope between a short
    and a long run, so that start-up does not count.

    These are the components measured on whole runs: the tracer's own event
    loop (waitpid, registers, the broker, the link, sleeping in select and
    being woken) is what a stand-alone stop pair (:func:`ptrace_pair_ns`)
    leaves out. The kinds used, ``getppid`` (no output) and ``uname`` (one
    output buffer), are no calls the check predicts."""
    from realmode.orchestrator import run

    points = []
    for count in calls:
        with tempfile.TemporaryFile() as out:
            saved = os.dup(1)
            try:
                os.dup2(out.fileno(), 1)
                result = run([[binary, kind, str(count)]] * 2, policy)
            finally:
                os.dup2(saved, 1)
                os.close(saved)
            out.seek(0)
            printed = out.read().decode()
        if result.verdict is not None or result.error is not None:
            raise EnvironmentProblem(f"dmvx calibrate: the calibration run of {kind} under {policy} failed: "
                                     f"{result.verdict.summary() if result.verdict else result.error}")
        points.append((count, [v.cpu_s for v in result.variants], _per_call_ns(printed)))
    (n0, short, _), (n1, long, loop) = points

    def slope(role: str, index: int) -> float:
        return max(long[index][role] - short[index][role], 0.0) / (n1 - n0) * 1e9

    return RoleCosts((slope("monitor", 0), slope("monitor", 1)), (slope("connector", 0), slope("connector", 1)),
                     loop)


# ---------------------------------------------------------------------------
# The profile
# ---------------------------------------------------------------------------


@dataclass
class Measurements:
    native: dict[str, float]
    native_local: float
    seccomp_untraced: float
    ptrace: float
    monitor_leader: float
    monitor_follower: float
    wakeup: float
    wakeup_same_cpu: float
    messages: MessageCosts
    link: LinkCosts
    connector: ConnectorCosts
    #: Real mode on loops of calls the check does not predict.
    dmvx_getppid: RoleCosts
    dmvx_uname: RoleCosts
    dmon_getppid: RoleCosts

    def to_json(self) -> dict[str, Any]:
        m = self.messages
        return {"native_ns": self.native, "native_local_ns": self.native_local,
                "seccomp_untraced_ns": self.seccomp_untraced, "ptrace_pair_ns": self.ptrace,
                "monitor_leader_ns": self.monitor_leader, "monitor_follower_ns": self.monitor_follower,
                "wakeup_ns": self.wakeup, "wakeup_same_cpu_ns": self.wakeup_same_cpu,
                "messages": {"send_ns": m.send, "receive_ns": m.receive, "encode_ns": m.encode, "decode_ns": m.decode},
                "link_ns": asdict(self.link), "connector_ns": asdict(self.connector),
                "dmvx_getppid_ns": asdict(self.dmvx_getppid), "dmvx_uname_ns": asdict(self.dmvx_uname),
                "dmon_getppid_ns": asdict(self.dmon_getppid)}


def measure(*, calls: int = 200_000, traced_calls: int = 20_000, repeat: int = 5,
            note: Callable[[str], None] = lambda text: None) -> Measurements:
    """Every component, median of ``repeat`` runs where a run is short."""
    median = statistics.median
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_bench(tmp)
        cpu = _cpus()[0]
        note("native calls")
        native = {kind: median(native_ns(binary, kind, calls, cpu) for _ in range(repeat)) for kind in KINDS}
        native_local = median(native_ns(binary, "local", calls, cpu) for _ in range(repeat))
        note("seccomp filter, calls not traced")
        seccomp_ns = median(seccomp_untraced_ns(binary, calls, native_local) for _ in range(repeat))
        note("ptrace stop pair with decoding")
        ptrace = median(ptrace_pair_ns(binary, traced_calls, native["getpid"]) for _ in range(repeat))
        note("real mode's processes on getppid and uname loops")
        runs = {(kind, policy): _median_of([role_cpu_ns(binary, kind, policy) for _ in range(repeat)])
                for kind, policy in (("getppid", "dmvx"), ("uname", "dmvx"), ("getppid", "dmon"))}
    note("core monitors, wake-ups, the local link, CONNECTORs")
    leader, follower = (median(v) for v in zip(*(monitor_ns() for _ in range(repeat))))
    wakeup = median(wakeup_ns() for _ in range(repeat))
    wakeup_same = median(wakeup_ns(same_cpu=True) for _ in range(repeat))
    messages = message_costs()
    links = [link_costs() for _ in range(repeat)]
    connectors = [connector_costs() for _ in range(repeat)]
    return Measurements(native, native_local, seccomp_ns, ptrace, leader, follower, wakeup, wakeup_same, messages,
                        _median_of(links), _median_of(connectors),
                        runs[("getppid", "dmvx")], runs[("uname", "dmvx")], runs[("getppid", "dmon")])


def _median_of(samples: list[Any]) -> Any:
    """A dataclass of field-wise medians (tuples element-wise)."""
    first = samples[0]
    fields = {}
    for name in asdict(first):
        values = [getattr(sample, name) for sample in samples]
        if isinstance(values[0], tuple):
            fields[name] = tuple(statistics.median(column) for column in zip(*values))
        else:
            fields[name] = statistics.median(values)
    return type(first)(**fields)


def _d(ns: float) -> str:
    """A duration with units, as profiles write them."""
    if ns >= 10_000:
        return f"{ns / 1000:.1f}us"
    if ns >= 1:
        return f"{ns:.0f}ns"
    return f"{ns:.3f}ns"


def profile_document(m: Measurements, *, name: str = "measured") -> dict[str, Any]:
    """The profile for ``m``, in the format of ``sim/profiles/*.yml``.

    How real mode's parts map onto sim's costs (docs/case-study.md has the
    figures):

    * a monitor handing a message to its CONNECTOR (``cb_append``) is the
      core's leader work plus a write on the local link; taking what the
      CONNECTOR delivered (``receive``, ``receive_per_message``) is a read
      on the link and a decode per message; comparing is the core's;
    * a monitor woken for a message (``monitor.wakeup``) and a CONNECTOR
      woken by its monitor (``connector.wakeup``) share a CPU under real
      mode's placement: a switch of process. Frames from the network wake a
      CONNECTOR on an idle CPU (``connector.receive_wakeup``);
    * intercepting a call is what is left of a monitor's time per call of a
      real run (:func:`role_cpu_ns`) once the parts above are taken out.
      Under dmvx (mechanism ``in_process``: real mode has no in-process
      monitor, so it is its ptrace path) that is the leader's loop on a
      ``getppid`` loop, as its program clocks it -- its monitor's CPU and
      the scheduling gaps between the two, on the CPU they have to
      themselves; under dmon (``ptrace``) the mean CPU of the two monitors
      on the same loop in lockstep, which also sleep and wake at every call;
    * ``copy_per_buffer`` is what a call with an output buffer (``uname``)
      costs the two monitors more than one without (``getppid``): moving a
      buffer between a variant's memory and its monitor, which a buffer
      argument (a path, data written) costs too;
    * a CONNECTOR's costs per entry are those of the real CONNECTOR code
      between two processes (:func:`connector_costs`); its costs per batch
      are scaled to what the CONNECTORs of the dmon run spend (one entry a
      batch there); per byte, those of frames over loopback TCP.

    Fields not measured here (native costs of the server's calls, the
    network's packet sizes, the server's own work) come from ``vm``.
    """
    sizes = sorted(m.messages.send)
    _, send_slope = _fit([(s, m.messages.send[s]) for s in sizes])
    _, recv_slope = _fit([(s, m.messages.receive[s]) for s in sizes])
    link_ = m.link
    cb_append = m.monitor_leader + link_.send
    compare = m.monitor_follower
    taking = link_.receive + link_.receive_message
    # The leader's loop on a CPU of its own: its monitor's CPU, and the
    # scheduling gaps between it and its program, which the loop also waits.
    in_process = max(max(m.dmvx_getppid.loop, m.dmvx_getppid.monitor[0]) - cb_append, m.ptrace)
    lockstep_side = statistics.mean(m.dmon_getppid.monitor)
    ptrace = max(lockstep_side - cb_append - compare - taking - m.wakeup_same_cpu, m.ptrace)
    copy = max(statistics.mean(m.dmvx_uname.monitor) - statistics.mean(m.dmvx_getppid.monitor), 0.0)
    c = m.connector
    batch_measured = statistics.mean(m.dmon_getppid.connector) - c.send_message - c.receive_message
    scale = max(batch_measured, 0.0) / max(c.send_batch + c.receive_batch, 1.0)
    return {
        "name": name,
        "description": (f"Measured on this machine by dmvx calibrate ({time.strftime('%Y-%m-%d')}): "
                        "native calls, real mode's seccomp filter, its processes on getppid and uname loops, "
                        "the core monitors, the local link, wake-ups and real CONNECTORs over loopback TCP."),
        "base": "vm",
        "native": {"calls": {kind: _d(ns) for kind, ns in m.native.items()}},
        "interception": {"ptrace": _d(ptrace), "in_process": _d(in_process),
                         "seccomp_untraced": _d(m.seccomp_untraced)},
        "mechanisms": {"dmon": {"default": "ptrace"},
                       "dmvx": {"default": "in_process", "lockstep": "ptrace", "local": "seccomp_untraced"}},
        "monitor": {"compare": _d(compare), "copy_per_buffer": _d(copy), "cb_append": _d(cb_append),
                    "receive": _d(link_.receive), "receive_per_message": _d(link_.receive_message),
                    "wakeup": _d(m.wakeup_same_cpu)},
        "connector": {"used_by": ["dmon", "dmvx"], "wakeup": _d(m.wakeup_same_cpu), "receive_wakeup": _d(m.wakeup),
                      "send": _d(c.send_batch * scale), "per_message": _d(c.send_message),
                      "send_per_byte": _d(send_slope),
                      "receive": _d(c.receive_batch * scale), "receive_per_message": _d(c.receive_message),
                      "receive_per_byte": _d(recv_slope)},
    }


def _rounded(value: Any) -> Any:
    """``value`` with every float to 0.1 (ns: finer is noise)."""
    if isinstance(value, float):
        return round(value, 1)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_rounded(item) for item in value)
    return value


def write_profile(document: dict[str, Any], path: Path, m: Measurements) -> None:
    header = ["# Written by `dmvx calibrate` (realmode/calibrate.py): component costs measured on",
              "# this machine. Every number is a calibration INPUT; what sim predicts from them is",
              "# checked against real mode by `dmvx calibrate --check`. Raw measurements (ns):"]
    for key, value in m.to_json().items():
        header.append(f"#   {key}: {_rounded(value)}")
    text = "\n".join(header) + "\n" + yaml.safe_dump(document, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ---------------------------------------------------------------------------
# The check: sim's prediction beside real mode's measurement
# ---------------------------------------------------------------------------

#: Real mode's ``dmvx run`` puts both variants on this machine, CONNECTORs on
#: loopback: two hosts one switch apart, a few microseconds per hop.
_CHECK_SCENARIO = """\
name: calibration-check
topology:
  name: loopback
  hosts:
    h1: {arch: x86_64, role: variant}
    h2: {arch: x86_64, role: variant}
  switches: [s1]
  links:
    - {a: h1, b: s1, delay: 5us, bw: 10Gbit}
    - {a: h2, b: s1, delay: 5us, bw: 10Gbit}
seed: 1
cost_profile: PROFILE
variants:
  - host: h1
  - host: h2
policy:
  preset: POLICY
workload: WORKLOAD
"""


@dataclass
class Prediction:
    """Sim's figures for a run, microseconds per call (or per request).

    ``span`` is the leader's run as sim's timelines give it: each variant
    and each CONNECTOR with a CPU of its own. Real mode packs six processes
    onto this machine's CPUs (:func:`realmode.orchestrator.placement`), so
    ``cpus`` adds up, per CPU, the work sim charged to what runs there, and
    the leader can go no faster than the CPUs it depends on allow.

    In lockstep that is every CPU. With asynchronous replication it is its
    own CPU, and the others only beyond what the CB holds: a leader may
    finish ``cb_entries`` ahead, so for the share ``behind`` of its entries
    it can go no faster than the others take them. A CPU that falls behind
    finds more waiting at each wake-up: its CONNECTORs' batches and its
    monitors' reads grow to the CONNECTOR's limit and their fixed costs
    fade, which sim's timelines, a CPU each, never see. ``saturated`` is
    each CPU's work so counted.
    """

    span: float
    cpus: dict[int, float]
    binding: tuple[int, ...]
    behind: float = 0.0
    saturated: dict[int, float] = field(default_factory=dict)

    def _limits(self) -> dict[str, float]:
        limits = {"timelines": self.span}
        for cpu, work in self.cpus.items():
            limits[f"cpu {cpu}"] = work if cpu in self.binding else self.saturated.get(cpu, work) * self.behind
        return limits

    @property
    def us(self) -> float:
        return max(self._limits().values())

    @property
    def bound(self) -> str:
        """What sets the predicted figure: the timelines, or a CPU's work."""
        limits = self._limits()
        return max(limits, key=lambda name: limits[name])


def _simulate(profile_path: Path, workload: dict[str, Any], policy: str) -> tuple[Any, Any]:
    """Sim's :class:`sim.runner.Experiment` of ``workload`` on the check's
    two loopback hosts under ``policy``, and the profile it ran with."""
    from dmvx.scenario import load_scenario
    from sim.profile import load_profile
    from sim.runner import simulate

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "check.yml"
        path.write_text(_CHECK_SCENARIO.replace("PROFILE", json.dumps(str(profile_path.resolve())))
                        .replace("POLICY", policy).replace("WORKLOAD", json.dumps(workload)))
        scenario = load_scenario(path)
    profile = load_profile(str(profile_path.resolve()))
    return simulate(scenario, profile), profile


def _saturated(mvx: Any, variant: Any, profile: Any) -> tuple[float, float]:
    """``variant``'s monitor and its CONNECTOR, ns of work, with every batch
    and every read of the link as large as the CONNECTOR allows."""
    most = profile.max_batch_messages
    stats = mvx.connectors[variant.host]  # the check's hosts have a variant each
    sent, taken = stats["messages"], stats["received_messages"]
    monitor = variant.busy_time - profile.monitor_receive * (variant.reads - -(-taken // most))
    connector = (profile.send * -(-sent // most) + profile.send_per_message * sent
                 + profile.send_per_byte * stats["bytes"]
                 + profile.receive * -(-taken // most) + profile.receive_per_message * taken
                 + profile.receive_per_byte * stats["received_bytes"])
    return max(monitor, 0.0), connector


def _placed(mvx: Any, policy: str, span_ns: float, per: int, profile: Any) -> Prediction:
    """``mvx`` (a sim run under ``profile``) on real mode's CPUs, ``per``
    calls or requests."""
    from realmode.orchestrator import make_policy, placement

    pol = make_policy(policy)
    places = placement(pol, len(mvx.variants), "auto")
    cpus: dict[int, float] = {}
    saturated: dict[int, float] = {}
    for variant, (_, monitor_cpu, connector_cpu) in zip(mvx.variants, places):
        # A variant's work is its monitor's (its program's own is native).
        monitor_sat, connector_sat = _saturated(mvx, variant, profile)
        for cpu, busy, sat in ((monitor_cpu, variant.busy_time, monitor_sat),
                               (connector_cpu, mvx.connectors[variant.host]["busy_ns"], connector_sat)):
            key = cpu if cpu is not None else -1
            cpus[key] = cpus.get(key, 0.0) + busy / per / 1000
            saturated[key] = saturated.get(key, 0.0) + sat / per / 1000
    span = span_ns / per / 1000
    if not pol.async_replication:
        return Prediction(span, cpus, tuple(cpus))
    leader_cpu = places[0][1] if places[0][1] is not None else -1
    entries = len(mvx.leader_times)
    behind = max(entries - pol.cb_entries, 0) / max(entries, 1)
    return Prediction(span, cpus, (leader_cpu,), behind, saturated)


def predict(profile_path: Path, kind: str, policy: str, iterations: int) -> Prediction:
    """Sim on a microbenchmark loop, and what real mode's CPU placement makes of it."""
    experiment, profile = _simulate(profile_path, {"kind": "microbench", "call": kind, "iterations": iterations},
                                    policy)
    mvx = experiment.mvx
    loop = list(mvx.leader_times)[-iterations:]
    span = (loop[-1] - loop[0]) * iterations / max(len(loop) - 1, 1)
    return _placed(mvx, policy, span, iterations, profile)


def predict_us(profile_path: Path, kind: str, policy: str, iterations: int) -> float:
    """Sim's microseconds per call of the leader's loop (the figure the real
    program prints: its own clock around the loop), on this machine's CPUs."""
    return predict(profile_path, kind, policy, iterations).us


# -- the server row ----------------------------------------------------------------

#: Requests per run of the server row: lighttpd under ``ab -c 1`` on this
#: machine (benchmarks/bench_lighttpd.py), natively and as two variants.
SERVER_REQUESTS = {"native": 4000, "dmvx": 1500, "dmon": 300}
#: Requests of the run recorded for sim to replay.
RECORDED_REQUESTS = 400
_ACCEPTS = ("accept", "accept4")


def untimed_trace(source: Path, target: Path) -> int:
    """Copy a recorded trace without its times, and count the requests.

    A recorded call's ``ns`` and ``gap`` include real mode's stops, and its
    waits (``epoll_wait``) are the waits for a client that was itself slowed
    by MVX: neither is native. Without them sim prices each call from the
    profile. The requests are the connections the leader accepted."""
    requests = 0
    with open(source, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as out:
        for number, line in enumerate(src):
            if number and line.strip():
                event = json.loads(line)
                event.pop("ns", None)
                event.pop("gap", None)
                if event.get("v") == 0 and event.get("call") in _ACCEPTS and event.get("result", -1) >= 0:
                    requests += 1
                line = json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n"
            out.write(line)
    return requests


def predict_server(profile_path: Path, trace: Path, policy: str) -> tuple[float, str]:
    """What MVX adds per request to the recorded lighttpd run, in sim: the
    leader's run under ``policy`` on real mode's CPUs less the same calls
    run natively, per request (us), and what bounds it."""
    with tempfile.TemporaryDirectory() as tmp:
        untimed = Path(tmp) / "untimed.jsonl"
        requests = untimed_trace(trace, untimed)
        if requests == 0:
            raise EnvironmentProblem(f"dmvx calibrate: the recorded lighttpd run {trace} accepted no connection")
        experiment, profile = _simulate(profile_path, {"kind": "trace", "path": str(untimed)}, policy)
    mvx = experiment.mvx
    if mvx.verdict is not None:
        raise EnvironmentProblem(f"dmvx calibrate: sim found a divergence in the recorded lighttpd run: "
                                 f"{mvx.verdict.summary()}")
    prediction = _placed(mvx, policy, mvx.variants[0].end_time, requests, profile)
    return prediction.us - experiment.native.makespan / requests / 1000, prediction.bound


def server_rows(profile_path: Path, policies: tuple[str, ...], repeat: int,
                note: Callable[[str], None]) -> list[CheckRow]:
    """lighttpd's mean time per request natively and under each policy in
    real mode, beside native plus what sim says MVX adds (:func:`predict_server`)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_lighttpd import PORT, one
    from realmode.net import lighttpd

    median = statistics.median
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        config, digests = lighttpd.make_tree(directory, port=PORT, bind="127.0.0.1")

        def mean_us(policy: str | None, requests: int, record: Path | None = None) -> float:
            report = one(config, digests, policy, requests, 0, record=record)
            if report["divergence"] or report["failed"]:
                raise EnvironmentProblem(f"dmvx calibrate: lighttpd under {policy or 'no MVX'}: "
                                         f"{report['divergence'] or str(int(report['failed'])) + ' failed requests'}")
            return report["mean_ms"] * 1000

        note("lighttpd natively")
        native = median(mean_us(None, SERVER_REQUESTS["native"]) for _ in range(repeat))
        note("lighttpd recorded under dmvx, for sim")
        trace = directory / "lighttpd.jsonl"
        mean_us("dmvx", RECORDED_REQUESTS, record=trace)
        for policy in policies:
            note(f"lighttpd under {policy}")
            measured = median(mean_us(policy, SERVER_REQUESTS[policy]) for _ in range(repeat))
            added, bound = predict_server(profile_path, trace, policy)
            rows.append(CheckRow("lighttpd", policy, native, native + added, measured, bound))
    return rows


def measure_us(binary: str, kind: str, policy: str, calls: int) -> float:
    """Real mode's microseconds per call (``benchmarks/bench_real.py``)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_real import _traced

    return _traced(binary, kind, calls, policy, "auto")


@dataclass
class CheckRow:
    call: str
    policy: str
    native_us: float
    predicted_us: float
    measured_us: float
    bound: str = "timelines"

    @property
    def predicted_x(self) -> float:
        return self.predicted_us / self.native_us

    @property
    def measured_x(self) -> float:
        return self.measured_us / self.native_us

    @property
    def error(self) -> float:
        """Relative error of the predicted slowdown against the measured one."""
        return (self.predicted_x - self.measured_x) / self.measured_x


def check(profile_path: Path, *, calls: dict[str, int] | None = None, repeat: int = 3,
          kinds: tuple[str, ...] = KINDS, policies: tuple[str, ...] = ("dmon", "dmvx"), server: bool = True,
          note: Callable[[str], None] = lambda text: None) -> list[CheckRow]:
    """Predicted vs measured per call for each (call, policy), and per
    request of lighttpd (:func:`server_rows`) with ``server``."""
    calls = calls or {"dmon": 2000, "dmvx": 10000}
    median = statistics.median
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_bench(tmp)
        cpu = _cpus()[0]
        for kind in kinds:
            native = median(native_ns(binary, kind, 200_000, cpu) for _ in range(repeat)) / 1000
            for policy in policies:
                note(f"{kind} under {policy}")
                measured = median(measure_us(binary, kind, policy, calls[policy]) for _ in range(repeat))
                predicted = predict(profile_path, kind, policy, calls[policy])
                rows.append(CheckRow(kind, policy, native, predicted.us, measured, predicted.bound))
    if server:
        from realmode.net import lighttpd

        try:
            lighttpd.programs()
        except EnvironmentProblem as problem:
            note(f"no lighttpd rows: {problem}")
        else:
            rows += server_rows(profile_path, policies, repeat, note)
    return rows


# ---------------------------------------------------------------------------
# ``dmvx calibrate``'s result
# ---------------------------------------------------------------------------

#: The issue's target: each predicted slowdown within 25% of the measured one.
TARGET_ERROR = 0.25


@dataclass
class CalibrationResult:
    """The :class:`dmvx.output.Result` of ``dmvx calibrate``."""

    profile_path: Path
    measurements: Measurements | None
    profile: dict[str, Any] | None
    rows: list[CheckRow] = field(default_factory=list)

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "profile_path": str(self.profile_path),
            "measurements": self.measurements.to_json() if self.measurements else None,
            "profile": self.profile,
            "check": [{"call": r.call, "policy": r.policy, "native_us": round(r.native_us, 4),
                       "predicted_us": round(r.predicted_us, 2), "measured_us": round(r.measured_us, 2),
                       "predicted_x": round(r.predicted_x, 1), "measured_x": round(r.measured_x, 1),
                       "error": round(r.error, 3), "within_target": abs(r.error) <= TARGET_ERROR,
                       "bound": r.bound}
                      for r in self.rows],
            "target_error": TARGET_ERROR,
        }

    def render(self, console: Any) -> None:
        from rich.table import Table

        if self.profile is not None:
            table = Table(title=f"dmvx calibrate: wrote {self.profile_path}", title_justify="left")
            table.add_column("section")
            table.add_column("values")
            for section in ("native", "interception", "monitor", "connector"):
                values = self.profile.get(section, {})
                if section == "native":
                    values = values.get("calls", {})
                table.add_row(section, ", ".join(f"{k} {v}" for k, v in values.items() if k != "used_by"))
            console.print(table)
        if self.rows:
            table = Table(title=f"sim ({self.profile_path.name}) vs real mode: microbenchmarks in us per call, "
                                f"lighttpd in us per request; slowdown vs native; target |error| <= "
                                f"{TARGET_ERROR:.0%}",
                          title_justify="left")
            for column in ("call", "policy", "native us", "sim us", "real us", "sim x", "real x", "error", "sim bound by"):
                table.add_column(column, justify="left" if column in ("call", "policy", "sim bound by") else "right")
            for r in self.rows:
                mark = "" if abs(r.error) <= TARGET_ERROR else " [red](!)[/]"
                table.add_row(r.call, r.policy, f"{r.native_us:.3f}", f"{r.predicted_us:.1f}",
                              f"{r.measured_us:.1f}", f"{r.predicted_x:.0f}x", f"{r.measured_x:.0f}x",
                              f"{r.error:+.0%}{mark}", r.bound)
            console.print(table)
