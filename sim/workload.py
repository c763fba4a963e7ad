"""Workloads: the system calls each simulated variant makes.

A workload becomes one stream of :class:`WorkloadStep` per variant: the canonical
call, the outcome the variant gets if it runs the call itself, what running
it costs natively, and, for a server, the I/O the call does (wait for a
connection, send a response). Three kinds, as the scenario schema names them:

``microbench``
    one call in a loop (getpid, read of 1 byte or 4 KiB, getcwd,
    sched_yield, write), after the set-up the call needs (opening the file);
``server``
    a single-threaded event-loop file server in the shape of lighttpd: per
    request epoll_wait, accept4, epoll_ctl, read, openat, fstat, write of
    the header, sendfile of the file, close, close;
``trace``
    the calls a real-mode run recorded (:mod:`dmvx.trace`).

An attack replaces a variant's stream from ``attack.at_call`` on with what
the diversity model (:mod:`sim.diversity`) says that variant does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from dmvx import syscalls
from dmvx.calls import Call, Outcome
from dmvx.errors import InputError
from dmvx.scenario import Microbench, Server, Trace
from dmvx.trace import TraceCall, TraceEnd, read_trace
from sim.diversity import Reaction, VariantReaction
from sim.profile import CostProfile

AT_FDCWD = syscalls.AT_FDCWD
O_RDONLY, O_WRONLY, O_CLOEXEC, O_NONBLOCK = 0, 0o1, 0o2000000, 0o4000
SIGSEGV = 11
EFAULT = 14
#: The canonical value of an argument a variant points at but does not have
#: (``realmode.abi.UNREADABLE``; sim imports nothing of real mode).
UNREADABLE = "<unreadable>"

#: I/O a step does when the variant that owns the server socket runs it.
IO_WAIT_CONNECTION = 1  # block until a client connection is ready (epoll_wait)
IO_ACCEPT = 2  # take the ready connection
IO_RESPOND = 3  # send ``io_bytes`` of the response to the client
IO_RESPOND_LAST = 4  # send the last part of the response: the request is served


class WorkloadStep:
    """One call of one variant (or, with ``end`` set, the end of the process)."""

    __slots__ = (
        "call",
        "outcome",
        "native",
        "gap",
        "io",
        "io_bytes",
        "harmful",
        "out_bytes",
        "arg_bytes",
        "arg_buffers",
        "end",
        "copy_ns",
        "compare_ns",
        "read_ns",
        "args_ns",
    )

    def __init__(
        self,
        call: Call | None,
        outcome: Outcome | None = None,
        native: int = 0,
        *,
        gap: int = 0,
        io: int = 0,
        io_bytes: int = 0,
        harmful: str = "",
        end: tuple[str, int] | None = None,
    ) -> None:
        self.call = call
        self.outcome = outcome if outcome is not None else Outcome(0)
        self.native = native
        self.gap = gap
        self.io = io
        self.io_bytes = io_bytes
        self.harmful = harmful
        self.end = end
        self.out_bytes = sum(len(data) for _, data in self.outcome.outputs)
        self.arg_bytes = sum(len(a) for a in call.args if isinstance(a, (bytes, str))) if call else 0
        self.arg_buffers = _buffers(call.args) if call else 0
        #: What the monitor spends on this call's buffers: copying its
        #: outputs into a follower's memory (a skip), comparing its buffer
        #: arguments (per byte), and reading the outputs from the leader's
        #: variant (per buffer; the bytes are priced with the entry).
        self.copy_ns = 0
        self.compare_ns = 0
        self.read_ns = 0
        #: Reading the buffer arguments (paths, data written) from the
        #: variant's memory, per buffer: what each monitor does to compare them.
        self.args_ns = 0

    def priced(self, profile: CostProfile) -> WorkloadStep:
        """Set the per-byte monitor costs of this step from ``profile``."""
        self.read_ns = profile.copy_per_buffer * len(self.outcome.outputs)
        self.args_ns = profile.copy_per_buffer * self.arg_buffers
        self.copy_ns = self.read_ns + int(profile.copy_per_byte * self.out_bytes)
        self.compare_ns = int(profile.compare_per_byte * self.arg_bytes)
        return self

    def __repr__(self) -> str:
        return f"WorkloadStep({self.call if self.call else self.end})"


def _buffers(args: tuple) -> int:
    """How many buffers a call's canonical arguments name (a string or bytes
    each, inside tuples too: argv, iovecs)."""
    return sum(1 if isinstance(a, (bytes, str)) else _buffers(a) if isinstance(a, tuple) else 0 for a in args)


def call(name: str, *args: object) -> Call:
    """A canonical call, in the spelling :func:`dmvx.syscalls.normalize` picks."""
    canonical, normalized = syscalls.normalize(name, tuple(args))
    return Call(canonical, normalized)


class Builder:
    """Makes steps with native costs from a profile."""

    def __init__(self, profile: CostProfile) -> None:
        self.profile = profile

    def step(self, c: Call, outcome: Outcome, nbytes: int = 0, **extra: object) -> WorkloadStep:
        step = WorkloadStep(c, outcome, self.profile.native_cost(c.name, nbytes), **extra)  # type: ignore[arg-type]
        return step.priced(self.profile)


# ---------------------------------------------------------------------------
# Microbenchmarks
# ---------------------------------------------------------------------------

BENCH_FILE = "/var/tmp/dmvx-bench.dat"
CWD = b"/home/dmvx/bench\x00"


def microbench_steps(
    spec: Microbench, profile: CostProfile, pid: int = 4242
) -> tuple[list[WorkloadStep], WorkloadStep, int]:
    """``(set-up steps, the looped step, iterations)`` of a microbenchmark."""
    b = Builder(profile)
    setup: list[WorkloadStep] = []
    name = spec.call
    if name in ("read", "read4k"):
        setup.append(b.step(call("openat", AT_FDCWD, BENCH_FILE, O_RDONLY, 0), Outcome(3)))
        size = 4096 if name == "read4k" else 1
        loop = b.step(call("read", 3, size, size), Outcome(size, ((1, b"\x5a" * size),)), size)
    elif name == "write":
        setup.append(b.step(call("openat", AT_FDCWD, "/dev/null", O_WRONLY, 0), Outcome(3)))
        loop = b.step(call("write", 3, b"\x5a", 1), Outcome(1), 1)
    elif name == "getcwd":
        loop = b.step(call("getcwd", 4096, 4096), Outcome(len(CWD), ((0, CWD),)))
    elif name == "getpid":
        loop = b.step(call("getpid"), Outcome(pid))
    elif name == "sched_yield":
        loop = b.step(call("sched_yield"), Outcome(0))
    else:  # the schema lists the calls; a new one must be added here
        raise InputError(
            f"microbench call {name!r} is not modelled in sim mode",
            expected="getpid, read, read4k, getcwd, sched_yield or write",
        )
    return setup, loop, spec.iterations


# ---------------------------------------------------------------------------
# The lighttpd-shaped server
# ---------------------------------------------------------------------------

LISTEN_FD, EPOLL_FD, CONN_FD, FILE_FD = 3, 4, 5, 6
DOC_ROOT = "/srv/www"
EPOLL_CTL_ADD, EPOLL_IN = 1, 1
SOCK_STREAM, AF_INET, SOL_SOCKET, SO_REUSEADDR = 1, 2, 1, 2


def server_setup(profile: CostProfile) -> list[WorkloadStep]:
    b = Builder(profile)
    sockaddr = bytes(16)
    return [
        b.step(call("socket", AF_INET, SOCK_STREAM | O_NONBLOCK | O_CLOEXEC, 0), Outcome(LISTEN_FD)),
        b.step(call("setsockopt", LISTEN_FD, SOL_SOCKET, SO_REUSEADDR, b"\x01\x00\x00\x00", 4), Outcome(0)),
        b.step(call("bind", LISTEN_FD, sockaddr, 16), Outcome(0)),
        b.step(call("listen", LISTEN_FD, 1024), Outcome(0)),
        b.step(call("epoll_create1", O_CLOEXEC), Outcome(EPOLL_FD)),
        b.step(call("epoll_ctl", EPOLL_FD, EPOLL_CTL_ADD, LISTEN_FD, b"\x01\x00\x00\x00" + bytes(8)), Outcome(0)),
    ]


def request_steps(spec: Server, profile: CostProfile, number: int) -> list[WorkloadStep]:
    """The calls the server makes to answer request ``number``."""
    b = Builder(profile)
    size = spec.request_size
    request = (b"GET /file%06d.html HTTP/1.1\r\n" % (number % 1000)).ljust(size, b"x")[:size]
    path = f"{DOC_ROOT}/file{number % 1000:06d}.html"
    header = profile.header_bytes
    stat = bytes(profile.stat_bytes)
    ready = (EPOLL_IN).to_bytes(4, "little") + LISTEN_FD.to_bytes(8, "little")
    return [
        b.step(
            call("epoll_wait", EPOLL_FD, 64, 64, -1),
            Outcome(1, ((1, ready),)),
            io=IO_WAIT_CONNECTION,
            gap=profile.server_compute,
        ),
        b.step(call("accept4", LISTEN_FD, None, None, O_NONBLOCK | O_CLOEXEC), Outcome(CONN_FD), io=IO_ACCEPT),
        b.step(call("epoll_ctl", EPOLL_FD, EPOLL_CTL_ADD, CONN_FD, b"\x01\x00\x00\x00" + bytes(8)), Outcome(0)),
        b.step(call("read", CONN_FD, 8192, 8192), Outcome(len(request), ((1, request),)), len(request)),
        b.step(call("openat", AT_FDCWD, path, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0), Outcome(FILE_FD)),
        b.step(call("fstat", FILE_FD, 1), Outcome(0, ((1, stat),))),
        b.step(call("write", CONN_FD, b"H" * header, header), Outcome(header), header, io=IO_RESPOND, io_bytes=header),
        b.step(
            call("sendfile", CONN_FD, FILE_FD, None, spec.file_size),
            Outcome(spec.file_size),
            spec.file_size,
            io=IO_RESPOND_LAST,
            io_bytes=spec.file_size,
        ),
        b.step(call("close", FILE_FD), Outcome(0)),
        b.step(call("close", CONN_FD), Outcome(0)),
    ]


def server_stream(spec: Server, profile: CostProfile) -> Iterator[WorkloadStep]:
    yield from server_setup(profile)
    for number in range(spec.requests):
        yield from request_steps(spec, profile, number)


# ---------------------------------------------------------------------------
# Traces
# ---------------------------------------------------------------------------


def trace_streams(spec: Trace, profile: CostProfile, n_variants: int) -> tuple[list[list[WorkloadStep]], int]:
    """One step list per variant from a recorded trace, and the leader's call count.

    Variants the trace has no stream for replay the leader's (as identical
    variants would). Recorded durations are used where the trace has them;
    otherwise the profile's native costs.
    """
    trace = read_trace(spec.path)
    b = Builder(profile)
    base = trace.streams.get(0) or next(iter(trace.streams.values()))
    out = []
    for index in range(n_variants):
        events = trace.streams.get(index, base)
        steps = []
        for event in events:
            if isinstance(event, TraceEnd):
                steps.append(WorkloadStep(None, end=(event.how, event.value)))
                break
            assert isinstance(event, TraceCall)
            nbytes = event.outcome.result if event.outcome.outputs and event.outcome.result > 0 else 0
            step = b.step(event.call, event.outcome, nbytes, gap=event.gap or 0)
            if event.ns is not None:
                step.native = event.ns
            steps.append(step)
        out.append(steps)
    return out, trace.calls


# ---------------------------------------------------------------------------
# Attacks
# ---------------------------------------------------------------------------


def attack_steps(
    kind: str, reaction: VariantReaction, profile: CostProfile, out_fd: int
) -> tuple[list[WorkloadStep], bool]:
    """What a variant does at the attack point: ``(steps, then continue the
    normal stream)``. ``out_fd`` is where the program's output goes."""
    b = Builder(profile)
    if reaction.reaction is Reaction.CRASHES:
        return [WorkloadStep(None, end=("killed", SIGSEGV))], False
    if reaction.reaction is Reaction.UNAFFECTED:
        return [], True
    if kind in ("rop-absolute", "relative-rop") and reaction.reaction is Reaction.DIFFERS:
        # Landed inside the goal function past its argument set-up: the
        # execve comes with an argv the variant does not have, the kernel
        # would refuse it (EFAULT) and the program's _exit(127) follows.
        return [
            b.step(call("execve", "/bin/sh", UNREADABLE, None), Outcome(-EFAULT)),
            WorkloadStep(None, end=("exit", 127)),
        ], False
    if kind in ("rop-absolute", "relative-rop"):
        # Success: the gadget chain calls execve; the shell then talks to the attacker.
        shell = [
            b.step(call("execve", "/bin/sh", ("/bin/sh", "-i"), ()), Outcome(0), harmful="execve of a shell"),
            b.step(call("write", out_fd, b"# ", 2), Outcome(2), 2, harmful="shell prompt to the attacker"),
            b.step(call("read", 0, 1024, 1024), Outcome(3, ((1, b"id\n"),)), 3),
            WorkloadStep(None, end=("exit", 0)),
        ]
        return shell, False
    if kind == "data-only":
        if reaction.reaction is Reaction.DIFFERS:
            return [], True  # the flag was not hit: the benign path goes on
        secret = b"root:$6$Zm9vYmFy$:19000:0:99999:7:::\n"
        return [
            b.step(
                call("openat", AT_FDCWD, "/etc/shadow", O_RDONLY | O_CLOEXEC, 0),
                Outcome(7),
                harmful="open of /etc/shadow",
            ),
            b.step(call("read", 7, 4096, 4096), Outcome(len(secret), ((1, secret),)), len(secret)),
            b.step(
                call("write", out_fd, secret, len(secret)),
                Outcome(len(secret)),
                len(secret),
                harmful="secret sent to the attacker",
            ),
            b.step(call("close", 7), Outcome(0)),
        ], True
    if kind == "record-forgery":
        # The leader read the attacker's request and recorded another (the
        # one the followers are fed); it answers the request it really got,
        # in place of the answer to the recorded one.
        answer = b"SECRET ".ljust(profile.header_bytes, b"s")
        return [
            b.step(
                call("write", out_fd, answer, len(answer)),
                Outcome(len(answer)),
                len(answer),
                io=IO_RESPOND,
                io_bytes=len(answer),
                harmful="answer to a request the followers never saw",
            )
        ], True
    if kind == "pointer-leak":
        pointer = reaction.leaked_pointer
        return [
            b.step(
                call("write", out_fd, pointer, len(pointer)),
                Outcome(len(pointer)),
                len(pointer),
                harmful="pointer leaked to the attacker",
            )
        ], True
    return [], True


#: Attacks whose steps take the place of the call at the attack point (the
#: others come before it).
REPLACING = frozenset({"record-forgery"})


def with_attack(
    stream: Iterable[WorkloadStep],
    at_call: int,
    injected: Sequence[WorkloadStep],
    resume: bool,
    replaces: bool = False,
) -> Iterator[WorkloadStep]:
    """``stream`` with ``injected`` in place at call number ``at_call``
    (0-based: after ``at_call`` calls), or before the end if the stream is
    shorter; the rest of the stream follows only when ``resume``, without
    the call at ``at_call`` when ``injected`` ``replaces`` it."""
    fired = False
    for count, step in enumerate(stream):
        if not fired and (count == at_call or step.end is not None):
            fired = True
            yield from injected
            if not resume:
                return
            if replaces and injected and step.end is None:
                continue
        yield step
        if step.end is not None:
            return
    if not fired:
        yield from injected


class Repeat:
    """The steps of a microbenchmark: ``setup``, then ``loop`` ``iterations``
    times -- an iterator that also tells how many of one step come next
    (:meth:`ahead`) and takes them (:meth:`drop`), so that
    :mod:`sim.engine` can take a run of equal calls in one go instead of
    asking for them one by one."""

    __slots__ = ("_setup", "_next", "loop", "left")

    def __init__(self, setup: Sequence[WorkloadStep], loop: WorkloadStep, iterations: int) -> None:
        self._setup = tuple(setup)
        #: The next set-up step to take (``len(_setup)`` once the loop runs).
        self._next = 0
        self.loop = loop
        #: Loop steps not taken yet.
        self.left = iterations

    def __iter__(self) -> Repeat:
        return self

    def __next__(self) -> WorkloadStep:
        index = self._next
        if index < len(self._setup):
            self._next = index + 1
            return self._setup[index]
        if self.left <= 0:
            raise StopIteration
        self.left -= 1
        return self.loop

    def ahead(self, step: WorkloadStep) -> int:
        """How many steps, from the next one on, are ``step`` (0 while the
        set-up lasts: it is not looked into)."""
        return self.left if step is self.loop and self._next >= len(self._setup) else 0

    def drop(self, count: int) -> None:
        """Take ``count`` steps that :meth:`ahead` said are the loop's."""
        if count > self.ahead(self.loop):
            raise ValueError(f"sim: {count} loop steps taken, {self.ahead(self.loop)} ahead")
        self.left -= count


def repeat(setup: Sequence[WorkloadStep], loop: WorkloadStep, iterations: int) -> Repeat:
    return Repeat(setup, loop, iterations)
