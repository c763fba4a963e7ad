"""Lab 1: two variants of a program, watching calls get compared and replicated.

The student runs a real program as two variants (``dmvx run``), then replays
a 20-call trace through the core one event at a time (``dmvx lab watch``)
and through sim mode under both presets, and finally makes the loader's
files local so each variant reads its own copy (selective replication).
"""

from __future__ import annotations

from pathlib import Path

from dmvx.lab.checking import Context, all_of, same
from dmvx.lab.model import Check, Key, Kind, Lab, Task
from dmvx.lab.watch import first_call_on_route, watch, watch_trace
from dmvx.policy import Route
from dmvx.scenario import Trace
from dmvx.trace import TraceCall, read_trace
from dmvx.verdict import VerdictKind

SCENARIO = "lab1-motd.yml"
TRACE = "lab1-motd.jsonl"
DIVERGE = "lab1-diverge.jsonl"
KINDS = tuple(kind.value for kind in VerdictKind)
PROGRAM = ["/bin/true"]
#: What task 5 wants local, and what it wants kept replicated.
SYSTEM_FILES = ("/etc/ld.so.cache", "/lib/x86_64-linux-gnu/libc.so.6")
CHANGING_FILE = "/etc/motd"

TRUE_STOPS = Key("true_stops", Kind.INTEGER, "system calls at which the monitors stopped /bin/true's leader")
TRUE_SKIPPED = Key(
    "true_follower_skipped", Kind.INTEGER, "calls of /bin/true the follower did not run itself but took from the leader"
)
FIRST_LOCKSTEP = Key(
    "first_lockstep_call", Kind.WORD, "name of the first call of the trace that runs in lockstep under dmvx"
)
FIRST_LOCKSTEP_SEQ = Key("first_lockstep_seq", Kind.INTEGER, "its sequence number (the # column)")
ROUTES_DMVX = Key("routes_dmvx", Kind.COUNTS, "the leader's calls per route under dmvx, e.g. {replicate: 3, local: 1}")
ROUTES_DMON = Key("routes_dmon", Kind.COUNTS, "the same under dmon")
FOLLOWER_RAN = Key("follower_ran_dmvx", Kind.INTEGER, "calls the follower ran itself under dmvx")
MESSAGES_DMVX = Key("messages_dmvx", Kind.INTEGER, "messages between the monitors under dmvx")
MESSAGES_DMON = Key("messages_dmon", Kind.INTEGER, "messages between the monitors under dmon")
LOCAL_SCENARIO = Key("local_scenario", Kind.FILE, "your copy of lab1-motd.yml with the loader's files local")
DIVERGE_SEQ = Key("diverge_seq", Kind.INTEGER, f"the call at which the verdict of {DIVERGE} is found (#)")
DIVERGE_KIND = Key("diverge_kind", Kind.CHOICE, "its verdict kind", KINDS)
WROTE_DMVX = Key("leader_wrote_first_dmvx", Kind.BOOL, "under dmvx, did the leader run its write before the verdict?")
WROTE_DMON = Key("leader_wrote_first_dmon", Kind.BOOL, "and under dmon?")


def _task1(ctx: Context) -> Check:
    run = ctx.modes.program(PROGRAM)
    leader, follower = run["variants"][0], run["variants"][1]
    return all_of(
        [
            same(ctx, TRUE_STOPS.name, leader["stops"], what="stops of /bin/true's leader"),
            same(ctx, TRUE_SKIPPED.name, follower["skipped"], what="calls the follower took from the leader"),
        ]
    )


def _task2(ctx: Context) -> Check:
    result = watch_trace(ctx.scenario(TRACE), "dmvx")
    first = first_call_on_route(result, Route.LOCKSTEP.value)
    seq = next(
        e.seq
        for e in result.events
        if e.variant == 0 and e.route == Route.LOCKSTEP.value and e.what.startswith("enters ")
    )
    return all_of(
        [
            same(ctx, FIRST_LOCKSTEP.name, first, what="first lockstep call"),
            same(ctx, FIRST_LOCKSTEP_SEQ.name, seq, what="its sequence number"),
        ]
    )


def _routes(ctx: Context, preset: str) -> dict[str, int]:
    point = ctx.modes.sim_point(ctx.scenario(SCENARIO), {"policy.preset": preset})
    return {route: n for route, n in point["variants"][0]["routes"].items() if n}


def _task3(ctx: Context) -> Check:
    checks = []
    for key, preset in ((ROUTES_DMVX, "dmvx"), (ROUTES_DMON, "dmon")):
        answer = {route: n for route, n in ctx.value(key.name).items() if n}
        truth = _routes(ctx, preset)
        unknown = sorted(set(answer) - {r.value for r in Route})
        if unknown:
            checks.append(
                Check(
                    False,
                    f"{key.name}: {', '.join(unknown)} is not a route",
                    hint="routes are lockstep, replicate, local, local-file and predict",
                )
            )
        elif answer == truth:
            checks.append(Check(True, f"{key.name}: {ctx.written(key.name)}"))
        else:
            wrong = sorted(r for r in set(answer) | set(truth) if answer.get(r) != truth.get(r))
            off = ", ".join(f"{r} too {'high' if answer.get(r, 0) > truth.get(r, 0) else 'low'}" for r in wrong)
            checks.append(
                Check(
                    False,
                    f"{key.name}: the counts of {', '.join(wrong)} are not right",
                    hint=f"{key.name}: {off} (count the leader's calls only, each once)",
                )
            )
    return all_of(checks)


def _task4(ctx: Context) -> Check:
    dmvx = ctx.modes.sim_point(ctx.scenario(SCENARIO), {"policy.preset": "dmvx"})
    dmon = ctx.modes.sim_point(ctx.scenario(SCENARIO), {"policy.preset": "dmon"})
    return all_of(
        [
            same(ctx, FOLLOWER_RAN.name, dmvx["variants"][1]["executed"], what="calls the follower ran"),
            same(ctx, MESSAGES_DMVX.name, dmvx["messages"]["total"], what="messages under dmvx"),
            same(ctx, MESSAGES_DMON.name, dmon["messages"]["total"], what="messages under dmon"),
        ]
    )


def _call_files(path: Path) -> list[str | None]:
    """For each call of the trace's leader, the file it works on (by path or
    by descriptor), or None."""
    files: list[str | None] = []
    open_fds: dict[int, str] = {}
    for event in read_trace(path).streams.get(0, []):
        if not isinstance(event, TraceCall):
            continue
        call, result = event.call, event.outcome.result
        if call.name == "openat":
            files.append(call.args[1])
            if result >= 0:
                open_fds[result] = call.args[1]
        elif call.name in ("read", "fstat", "close") and call.args:
            files.append(open_fds.get(call.args[0]))
            if call.name == "close":
                open_fds.pop(call.args[0], None)
        else:
            files.append(None)
    return files


def _task5(ctx: Context) -> Check:
    path, scenario = ctx.student_scenario(LOCAL_SCENARIO.name)
    lab_trace = ctx.scenario(TRACE)
    workload = scenario.workload
    if not isinstance(workload, Trace) or Path(workload.path).read_bytes() != lab_trace.read_bytes():
        return Check(
            False,
            f"{path} does not replay {TRACE}",
            hint=f"start from a copy of scenarios/labs/{SCENARIO} and keep its workload",
        )
    if scenario.policy.preset != "dmvx":
        return Check(False, f"{path} uses the {scenario.policy.preset} preset", hint="keep preset: dmvx")
    point = ctx.modes.sim_point(path)
    if point["outcome"] != "ok":
        return Check(False, f"{path} ended with {point['outcome']}, not ok")
    # Which route each call took under the student's policy, from the core itself.
    result = watch(scenario.policy.to_policy(), read_trace(lab_trace).streams)
    routes = [e.route for e in result.events if e.variant == 0 and e.what.startswith("enters ")]
    files = _call_files(lab_trace)
    should = [i for i, f in enumerate(files) if f in SYSTEM_FILES]
    must_not = [i for i, f in enumerate(files) if f == CHANGING_FILE]
    local = Route.LOCAL_FILE.value
    if any(routes[i] == local for i in must_not):
        return Check(
            False,
            f"{path}: the calls on {CHANGING_FILE} are local-file too",
            hint=f"an administrator may change {CHANGING_FILE} while the program runs: a local copy "
            "could differ between hosts, so it must stay replicated from the leader",
        )
    # close is predicted whatever the file: it carries no data to copy.
    missing = sorted({str(files[i]) for i in should if routes[i] not in (local, Route.PREDICT.value)})
    if missing:
        return Check(
            False,
            f"{path}: calls on {', '.join(missing)} are still replicated",
            hint="policy.local_files takes glob patterns of paths: the loader reads " + " and ".join(SYSTEM_FILES),
        )
    count = sum(1 for r in routes if r == local)
    return Check(True, f"{path}: {count} calls read local copies, {CHANGING_FILE} stays replicated")


def _task6(ctx: Context) -> Check:
    checks = []
    for preset, key in (("dmvx", WROTE_DMVX), ("dmon", WROTE_DMON)):
        result = watch_trace(ctx.scenario(DIVERGE), preset)
        if result.verdict is None:
            raise AssertionError(f"{DIVERGE} no longer diverges under {preset}: the lab needs updating")
        if preset == "dmvx":
            checks += [
                same(ctx, DIVERGE_SEQ.name, result.verdict.seq, what="the verdict's call"),
                same(ctx, DIVERGE_KIND.name, result.verdict.kind.value, what="its kind"),
            ]
        wrote = any(call.name == "write" for call in result.ran[0])
        checks.append(same(ctx, key.name, wrote, what=f"the leader wrote first under {preset}"))
    return all_of(checks)


LAB = Lab(
    number=1,
    slug="watch",
    title="Two variants: watching calls get compared and replicated",
    summary="Run a program as a leader and a follower, follow every call through the monitors, "
    "count routes and messages under DMON and dMVX, and make files local.",
    modes="real (dmvx run, no root) + core + sim",
    tasks=(
        Task(
            1,
            "a real program as two variants",
            (TRUE_STOPS, TRUE_SKIPPED),
            _task1,
            "run 'dmvx run --json -- /bin/true' and read 'stops' of the leader and 'skipped' of the follower",
        ),
        Task(
            2,
            "the first lockstep call",
            (FIRST_LOCKSTEP, FIRST_LOCKSTEP_SEQ),
            _task2,
            f"run 'dmvx lab watch scenarios/labs/{TRACE}' and look for the first 'lockstep' in the route column",
        ),
        Task(
            3,
            "routes under each preset",
            (ROUTES_DMVX, ROUTES_DMON),
            _task3,
            f"run 'dmvx sim scenarios/labs/{SCENARIO}' with --set policy.preset=dmvx and =dmon; the "
            "variants table has the routes (or --json: points[0].variants[0].routes)",
        ),
        Task(
            4,
            "what the follower runs, what crosses the network",
            (FOLLOWER_RAN, MESSAGES_DMVX, MESSAGES_DMON),
            _task4,
            "the same two runs: 'ran' of follower 1, and 'messages' (--json: messages.total)",
        ),
        Task(
            5,
            "selective replication: local copies of the loader's files",
            (LOCAL_SCENARIO,),
            _task5,
            "copy the scenario, add policy.local_files with patterns for the loader cache and the C library, "
            "and look at the routes with 'dmvx lab watch YOUR-FILE.yml'",
        ),
        Task(
            6,
            "a divergence",
            (DIVERGE_SEQ, DIVERGE_KIND, WROTE_DMVX, WROTE_DMON),
            _task6,
            f"dmvx lab watch scenarios/labs/{DIVERGE} (and --policy dmon): the red line is the verdict; "
            "look for 'runs it' on the leader's write before it",
        ),
    ),
)
