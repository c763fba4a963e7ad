"""The broker routes calls as the policy says, and its page is current."""

from __future__ import annotations

import pytest

from dmvx import policy_doc
from dmvx.broker import Broker
from dmvx.calls import Call
from dmvx.fdtable import FdInfo, FdKind, FdTable
from dmvx.policy import EACCES, EPERM, SENSITIVE, Effect, Level, Policy, Reach, Route

READ_STDIN = Call("read", (0, 1))


def decide(policy: Policy, call: Call, fds: FdTable | None = None):
    return Broker(policy).decide(call, fds or FdTable())


def test_every_sensitive_call_is_lockstep_under_every_preset_and_level() -> None:
    for preset in ("dmon", "dmvx"):
        for level in Level:
            policy = Policy.preset(preset, relaxation=level)
            for name in SENSITIVE:
                decision = decide(policy, Call(name, ()))
                assert decision.route is Route.LOCKSTEP and decision.sync, name


def test_exec_mappings_are_sensitive_and_plain_ones_local() -> None:
    policy = Policy.preset("dmvx")
    assert decide(policy, Call("mprotect", (None, 4096, 5))).route is Route.LOCKSTEP
    assert decide(policy, Call("mprotect", (None, 4096, 3))).route is Route.LOCAL
    assert decide(policy, Call("mmap", (None, 4096, 3, 0x22, -1, 0))).route is Route.LOCAL


def test_dmon_checks_everything_synchronously() -> None:
    policy = Policy.preset("dmon")
    for call in (Call("getpid"), READ_STDIN, Call("write", (1, b"x", 1)), Call("sched_yield")):
        decision = decide(policy, call)
        assert decision.sync and decision.route in (Route.LOCKSTEP, Route.REPLICATE), call


def test_dmvx_replicates_asynchronously_and_selectively() -> None:
    policy = Policy.preset("dmvx", local_files=("/usr/share/*",))
    assert decide(policy, Call("getpid")) == decide(policy, Call("getpid"))
    assert not decide(policy, READ_STDIN).sync
    assert decide(policy, Call("sched_yield")).route is Route.PREDICT
    assert decide(policy, Call("openat", (-100, "/usr/share/doc", 0, 0))).route is Route.LOCAL_FILE
    # Opening a local file for writing is not a local-file read.
    assert decide(policy, Call("openat", (-100, "/usr/share/doc", 0o1, 0))).route is not Route.LOCAL_FILE


@pytest.mark.parametrize(
    ("level", "call", "fds", "route"),
    [
        (Level.BASE, Call("getpid"), None, Route.REPLICATE),
        (Level.BASE, READ_STDIN, None, Route.LOCKSTEP),
        (Level.NONSOCKET_RO, READ_STDIN, None, Route.REPLICATE),
        (Level.NONSOCKET_RO, Call("write", (1, b"x", 1)), None, Route.LOCKSTEP),
        (Level.NONSOCKET_RW, Call("write", (1, b"x", 1)), None, Route.PREDICT),
        (Level.NONSOCKET_RW, Call("read", (5, 1)), {5: FdKind.SOCKET}, Route.LOCKSTEP),
        (Level.SOCKET_RO, Call("read", (5, 1)), {5: FdKind.SOCKET}, Route.REPLICATE),
        (Level.SOCKET_RO, Call("write", (5, b"x", 1)), {5: FdKind.SOCKET}, Route.LOCKSTEP),
        (Level.SOCKET_RW, Call("write", (5, b"x", 1)), {5: FdKind.SOCKET}, Route.PREDICT),
        (Level.SOCKET_RO, Call("socket", (2, 1, 0)), None, Route.LOCKSTEP),
        (Level.SOCKET_RW, Call("socket", (2, 1, 0)), None, Route.REPLICATE),
    ],
)
def test_relaxation_levels(level: Level, call: Call, fds, route: Route) -> None:
    table = FdTable(
        {**{fd: FdInfo(FdKind.STREAM) for fd in (0, 1, 2)}, **{fd: FdInfo(kind) for fd, kind in (fds or {}).items()}}
    )
    assert decide(Policy.preset("dmvx", relaxation=level), call, table).route is route


def test_overrides_win() -> None:
    policy = Policy.preset("dmvx", overrides={"getpid": "lockstep", "execve": "local"})
    assert decide(policy, Call("getpid")).route is Route.LOCKSTEP
    assert decide(policy, Call("execve", ("/bin/true", None, None))).route is Route.LOCAL


def test_pipes_are_run_by_each_variant() -> None:
    fds = FdTable()
    fds.after(Call("pipe2", (8, 0)), 0, (3, 4))
    decision = decide(Policy.preset("dmvx"), Call("write", (4, b"x", 1)), fds)
    assert decision.effect is Effect.EACH


def test_unknown_presets_and_levels_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="expected dmon or dmvx"):
        Policy.preset("remon")
    with pytest.raises(ValueError, match="socket-rw"):
        Level.parse("everything")


def test_policy_page_is_generated_from_the_tables() -> None:
    assert not policy_doc.stale(), f"docs/policy.md is out of date; run: {policy_doc.REGENERATE}"


def test_fstatat_with_an_empty_path_is_routed_by_its_descriptor() -> None:
    policy = Policy.preset("dmvx", local_files=("/usr/lib/*",))
    fds = FdTable()
    fds.after(Call("openat", (-100, "/usr/lib/libc.so.6", 0, 0)), 3, local=True)
    fds.after(Call("socket", (2, 1, 0)), 4)
    assert decide(policy, Call("fstatat", (3, "", 1, 0x1000)), fds).route is Route.LOCAL_FILE
    assert decide(policy, Call("fstatat", (4, "", 1, 0x1000)), fds).route is Route.REPLICATE
    # Each variant's own pipe has its own inode: the leader answers.
    fds.after(Call("pipe2", (8, 0)), 0, (5, 6))
    for call in (Call("fstatat", (5, "", 1, 0x1000)), Call("fstat", (5, 1))):
        decision = decide(policy, call, fds)
        assert (decision.route, decision.effect) == (Route.REPLICATE, Effect.LEADER), call
    assert (
        decide(Policy.preset("dmvx", relaxation="nonsocket-rw"), Call("fstatat", (4, "", 1, 0x1000)), fds).route
        is Route.LOCKSTEP
    )


# -- calls that reach other processes ------------------------------------------------

TREE_PIDS, RUN_PIDS = {100, 101}, {5}


def _reach(pid: int) -> Reach:
    return Reach.TREE if pid in TREE_PIDS else Reach.RUN if pid in RUN_PIDS else Reach.OUTSIDE


@pytest.mark.parametrize("preset", ["dmon", "dmvx"])
@pytest.mark.parametrize(
    "call, expected",
    [
        (Call("kill", (100, 15)), (Effect.EACH, 0)),  # its own child: each variant its own
        (Call("kill", (0, 9)), (Effect.EACH, 0)),  # its own group
        (Call("kill", (-100, 9)), (Effect.EACH, 0)),  # a group of its tree
        (Call("kill", (777, 10)), (Effect.LEADER, 0)),  # outside the run: once
        (Call("kill", (5, 9)), (Effect.LEADER, EPERM)),  # the run: nobody
        (Call("kill", (-1, 0)), (Effect.LEADER, EPERM)),
        (Call("kill", (-7, 9)), (Effect.LEADER, EPERM)),  # a group not of its tree
        (Call("tgkill", (100, 5, 9)), (Effect.LEADER, EPERM)),
        (Call("ptrace", (16, 5, 0, 0)), (Effect.LEADER, EPERM)),
        (Call("ptrace", (16, 777, 0, 0)), (Effect.LEADER, EPERM)),  # outside: not even once
        (Call("ptrace", (0, 0, 0, 0)), (Effect.EACH, 0)),  # PTRACE_TRACEME
        (Call("process_vm_writev", (5, None, 1, None, 1, 0)), (Effect.LEADER, EPERM)),
        (Call("process_vm_readv", (101, None, 1, None, 1, 0)), (Effect.EACH, 0)),
        (Call("pidfd_getfd", (3, 4, 0)), (Effect.LEADER, EPERM)),
        (Call("prlimit64", (5, 7, None, None)), (Effect.LEADER, EPERM)),
        (Call("fcntl", (3, 8, 5)), (Effect.LEADER, EPERM)),  # F_SETOWN: SIGIO to the run
        (Call("openat", (-100, "/proc/5/mem", 2, 0)), (Effect.LEADER, EACCES)),
        (Call("openat", (-100, "/proc/777/environ", 0, 0)), (Effect.LEADER, EACCES)),
        (Call("openat", (-100, "/proc/self/root/proc/5/mem", 2, 0)), (Effect.LEADER, EACCES)),
        (Call("openat", (-100, "/proc/self/../5/mem", 2, 0)), (Effect.LEADER, EACCES)),
        (Call("open", ("/proc/5", 0)), (Effect.LEADER, EACCES)),
        (Call("chdir", ("/proc/5",)), (Effect.LEADER, EACCES)),
    ],
)
def test_a_call_that_reaches_another_process_is_decided_by_where_it_lands(preset, call, expected) -> None:
    decision = Broker(Policy.preset(preset, overrides={"kill": "replicate"}), _reach).decide(call, FdTable())
    assert decision.route is Route.LOCKSTEP and decision.sync  # every variant reaches it before anything
    assert (decision.effect, decision.refuse) == expected


@pytest.mark.parametrize(
    "call",
    [
        Call("openat", (-100, "/proc/self/status", 0, 0)),
        Call("openat", (-100, "/proc/100/stat", 0, 0)),
        Call("stat", ("/proc/777",)),
        Call("openat", (-100, "/etc/passwd", 0, 0)),
        Call("prlimit64", (0, 7, None, None)),
    ],
)
def test_a_call_that_stays_in_the_tree_is_routed_as_before(call) -> None:
    policy = Policy.preset("dmvx")
    assert Broker(policy, _reach).decide(call, FdTable()) == Broker(policy).decide(call, FdTable())
    assert Broker(policy, _reach).decide(call, FdTable()).refuse == 0


def test_a_path_relative_to_a_descriptor_of_proc_pid_is_that_process() -> None:
    fds = FdTable({0: FdInfo(FdKind.STREAM), 3: FdInfo(FdKind.FILE, path="/proc/5")})
    decision = Broker(Policy.preset("dmvx"), _reach).decide(Call("openat", (3, "mem", 2, 0)), fds)
    assert decision.refuse == EACCES


def test_a_refused_call_runs_nowhere_and_every_variant_gets_the_error() -> None:
    from dmvx.actions import Execute, Send, Skip
    from dmvx.monitor import FollowerMonitor, LeaderMonitor

    policy, call = Policy.preset("dmvx"), Call("kill", (5, 9))
    leader, follower = LeaderMonitor(policy, 2, reach=_reach), FollowerMonitor(policy, 1, 2, reach=_reach)
    assert not any(isinstance(a, (Execute, Skip)) for a in leader.call_entered(call))  # waits for the follower
    report = [a.message for a in follower.call_entered(call) if isinstance(a, Send)]
    released = leader.message_received(report[0])
    assert not any(isinstance(a, Execute) for a in released)
    assert [a.outcome.result for a in released if isinstance(a, Skip)] == [-EPERM]
    entry = [a.message for a in released if isinstance(a, Send)]
    assert [a.outcome.result for a in follower.message_received(entry[0]) if isinstance(a, Skip)] == [-EPERM]
    # A child's monitor asks the same question.
    assert leader.child().broker.reach is _reach


def test_interval_clocks_are_each_variants_own_in_a_process_with_threads() -> None:
    """Threads read the monotonic clock as often as their interleaving makes
    them wait (Python's GIL): in a process with threads each variant reads
    its own; the date stays the leader's, and a process without threads
    keeps the leader's monotonic clock too."""
    alone, threaded = FdTable(), FdTable()
    threaded.shared = True
    policy = Policy.preset("dmvx")
    monotonic, realtime = Call("clock_gettime", (1, 0)), Call("clock_gettime", (0, 0))
    assert decide(policy, monotonic, alone).route is not Route.LOCAL
    assert decide(policy, monotonic, threaded).route is Route.LOCAL
    assert decide(policy, realtime, threaded).route is not Route.LOCAL


def test_yields_are_not_compared_in_a_process_with_threads() -> None:
    """A spin loop yields as often as the interleaving takes (memcslap's
    client threads): in a process with threads sched_yield is no compared
    call. A process without threads keeps it sequenced."""
    alone, threaded = FdTable(), FdTable()
    threaded.shared = True
    policy = Policy.preset("dmvx")
    yield_ = Call("sched_yield", ())
    assert decide(policy, yield_, threaded).route is Route.LOCAL
    assert decide(policy, yield_, alone).route is not Route.LOCAL


def test_how_long_a_sleep_lasts_is_not_compared() -> None:
    """A thread that backs off computes its sleep from the work it found
    (memcached's LRU maintainer) or from its own clock: the length is no
    argument the variants must agree on; which clock and flags are."""
    from dmvx.policy import comparable

    a = Call("clock_nanosleep", (0, 0, b"\x00" * 8 + b"\x01" * 8, 0))
    b = Call("clock_nanosleep", (0, 0, b"\x00" * 8 + b"\x02" * 8, 0))
    assert comparable(a) == comparable(b)
    assert comparable(a) != comparable(Call("clock_nanosleep", (1, 1, b"\x00" * 16, 0)))
    assert comparable(Call("nanosleep", (b"\x01" * 16, 0))) == comparable(Call("nanosleep", (b"\x02" * 16, 0)))
