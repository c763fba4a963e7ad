"""Lab 4: the attack window of asynchronous replication.

Under dMVX the leader does not wait for the followers on non-sensitive
calls. The student measures how far ahead it runs (in calls: bounded by the
CB; in time: the one-way delay, whatever the CB), how many calls a
compromised leader makes between the attack and the verdict, finds that a
leaked pointer gets out before anyone notices even with a one-entry CB, then
closes the window for this attack while staying asynchronous -- and prices
the defence on a program that writes a lot.
"""

from __future__ import annotations

from typing import Any

from dmvx.lab.checking import Context, all_of, numeric, same
from dmvx.lab.model import Check, Key, Kind, Lab, Task

SCENARIO = "lab4-window.yml"
WRITES = "lab4-write.yml"
#: A defence must keep asynchronous replication with at least this CB.
MIN_CB = 16

LEAD_CB16 = Key("lead_calls_cb16", Kind.INTEGER, "the leader's max lead over the follower in calls, with a 16-entry CB")
LEAD_TIME = Key("lead_time", Kind.DURATION, "the leader's max lead in time (default CB), e.g. 1.5ms")
LEAD_TIME_CB = Key("lead_time_depends_on_cb", Kind.BOOL, "does the lead in time change between 16 and 4096 entries?")
WINDOW_CALLS = Key(
    "window_calls_cb64", Kind.INTEGER, "calls the leader entered between the attack and the verdict, CB of 64 entries"
)
WINDOW_TIME = Key("window_time_cb64", Kind.DURATION, "the time from the attack to the verdict, CB of 64 entries")
ESCAPED = Key("leak_escaped", Kind.BOOL, "did the leaked pointer reach the attacker before the verdict (default CB)?")
ESCAPED_CB1 = Key("leak_escaped_cb1", Kind.BOOL, "and with a CB of one entry?")
DEFENDED = Key(
    "defended_scenario",
    Kind.FILE,
    "a dmvx scenario (asynchronous, CB of 16 entries or more) in which the leak is detected before it gets out",
)
COST = Key("defended_write_slowdown", Kind.NUMBER, f"the slowdown of {WRITES} under your defended policy")
COST_DMON = Key("dmon_write_slowdown", Kind.NUMBER, f"the slowdown of {WRITES} under dmon")


def _cb(entries: int) -> dict[str, Any]:
    return {"policy.cb.entries": entries}


def _task1(ctx: Context) -> Check:
    point = ctx.modes.sim_point(ctx.scenario(SCENARIO), _cb(16))
    return numeric(
        ctx,
        LEAD_CB16.name,
        point["lead"]["follower 1"]["calls_max"],
        relative=0.0,
        absolute=1,
        what="the leader's lead at CB=16",
        unit=" call",
    )


def _task2(ctx: Context) -> Check:
    default = ctx.modes.sim_point(ctx.scenario(SCENARIO))
    small = ctx.modes.sim_point(ctx.scenario(SCENARIO), _cb(16))
    t_default = default["lead"]["follower 1"]["time_max_ns"] / 1e9
    t_small = small["lead"]["follower 1"]["time_max_ns"] / 1e9
    depends = abs(t_small - t_default) > 0.1 * t_default
    return all_of(
        [
            numeric(ctx, LEAD_TIME.name, t_default, relative=0.10, what="the leader's lead in time"),
            same(ctx, LEAD_TIME_CB.name, depends, what="depends on the CB"),
        ]
    )


def _task3(ctx: Context) -> Check:
    point = ctx.modes.sim_point(ctx.scenario(SCENARIO), _cb(64))
    detection = point["attack"]["detection"]
    if detection is None:
        raise AssertionError(f"{SCENARIO} at CB=64 no longer detects the leak: the lab needs updating")
    return all_of(
        [
            numeric(
                ctx,
                WINDOW_CALLS.name,
                detection["leader_calls"],
                relative=0.10,
                absolute=2,
                what="calls in the window at CB=64",
            ),
            numeric(ctx, WINDOW_TIME.name, detection["time_ns"] / 1e9, relative=0.10, what="the window in time"),
        ]
    )


def _task4(ctx: Context) -> Check:
    default = ctx.modes.sim_point(ctx.scenario(SCENARIO))
    tiny = ctx.modes.sim_point(ctx.scenario(SCENARIO), _cb(1))
    return all_of(
        [
            same(ctx, ESCAPED.name, default["attack"]["harmful_before_verdict"], what="escaped (default CB)"),
            same(ctx, ESCAPED_CB1.name, tiny["attack"]["harmful_before_verdict"], what="escaped (CB=1)"),
        ]
    )


def _defended(ctx: Context) -> tuple[Check | None, Any]:
    path, scenario = ctx.student_scenario(DEFENDED.name)
    policy = scenario.policy.to_policy()
    if scenario.attack is None or scenario.attack.kind != "pointer-leak":
        return Check(False, f"{path} does not fire the pointer leak", hint="keep the attack of lab4-window.yml"), None
    if policy.name != "dmvx" or not policy.async_replication or policy.cb_entries < MIN_CB:
        return Check(
            False,
            f"{path}: the policy is no longer asynchronous dMVX (preset {policy.name}, "
            f"async_replication {policy.async_replication}, CB {policy.cb_entries} entries)",
            hint=f"keep preset dmvx with asynchronous replication and a CB of {MIN_CB} entries or more: "
            "the point is to close the window for this attack only",
        ), None
    return None, (path, scenario)


def _task5(ctx: Context) -> Check:
    refused, found = _defended(ctx)
    if refused is not None:
        return refused
    path, _ = found
    points = ctx.modes.sim(path)["points"]
    for point in points:
        if point["outcome"] != "divergence":
            return Check(False, f"{path}: the leak ends with {point['outcome']}")
        if point["attack"]["harmful_before_verdict"]:
            return Check(
                False,
                f"{path}: detected ({point['verdict']['kind']}), but the pointer got out first",
                hint="the leak is a write of the pointer: which route lets a call run before the "
                "follower has compared it, and which one does not?",
            )
    return Check(True, f"{path}: detected ({points[0]['verdict']['kind']}) before the pointer got out")


def _task6(ctx: Context) -> Check:
    refused, found = _defended(ctx)
    if refused is not None:
        return refused
    _, scenario = found
    policy = scenario.policy.model_dump(mode="json")
    defended = ctx.modes.sim_point(ctx.scenario(WRITES), {"policy": policy})
    dmon = ctx.modes.sim_point(ctx.scenario(WRITES), {"policy.preset": "dmon"})
    return all_of(
        [
            numeric(ctx, COST.name, defended["mvx"]["slowdown"], relative=0.05, what="write slowdown, defended"),
            numeric(ctx, COST_DMON.name, dmon["mvx"]["slowdown"], relative=0.05, what="write slowdown, dmon"),
        ]
    )


LAB = Lab(
    number=4,
    slug="window",
    title="The attack window of asynchronous replication",
    summary="Measure how far the leader runs ahead, what a compromised leader does before the verdict, "
    "close the window for one attack and price the defence.",
    modes="sim",
    tasks=(
        Task(
            1,
            "the lead in calls",
            (LEAD_CB16,),
            _task1,
            "run the one point with --set policy.cb.entries=16 and read 'lead over follower 1' in its details "
            "(max N calls / T); the sweep's attack table has no lead column; compare with other CB sizes",
        ),
        Task(
            2,
            "the lead in time",
            (LEAD_TIME, LEAD_TIME_CB),
            _task2,
            "the time in 'lead over follower 1' (max N calls / T) of a single run; compare it at CB=16 and with "
            "the default CB, and with the one-way delay from h1 to h2",
        ),
        Task(
            3,
            "the window of a compromised leader",
            (WINDOW_CALLS, WINDOW_TIME),
            _task3,
            "the 'detection' column: calls the leader entered after the attack until the verdict, and the time "
            "(--json: attack.detection)",
        ),
        Task(
            4,
            "does the leak get out?",
            (ESCAPED, ESCAPED_CB1),
            _task4,
            "'harm first' in the table (--json: attack.harmful_before_verdict); try --set policy.cb.entries=1",
        ),
        Task(
            5,
            "close the window for this attack",
            (DEFENDED,),
            _task5,
            "the leak is a write of the pointer; policy.overrides gives a call another route",
        ),
        Task(
            6,
            "what the defence costs",
            (COST, COST_DMON),
            _task6,
            f"run scenarios/labs/{WRITES} with your scenario's policy (--set 'policy={{...}}' or a copy of the "
            "file) and with --set policy.preset=dmon; read 'slowdown'",
        ),
    ),
)
