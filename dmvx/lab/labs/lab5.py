"""Lab 5: ABI heterogeneity against a data-only attack.

A data-only attack changes no code pointer: it overwrites a flag at a
relative offset inside a struct. Address diversity cannot see it; a variant
whose struct layout differs (another data model: i386's ILP32 beside
x86_64's LP64) takes the benign path and diverges. The student shows this,
finds that an ISA pair with the same data model misses it too, sees that
under dMVX the secret can get out before the verdict and closes that with
one lockstep call, and runs the real exploit in real mode (root).
"""

from __future__ import annotations

from dmvx.lab.checking import Context, all_of, numeric, outcome_and_first_harm, same
from dmvx.lab.model import Check, Key, Kind, Lab, Task
from dmvx.outcome import EXPECTABLE
from dmvx.syscalls import Arch
from dmvx.syscalls import names as syscall_names
from dmvx.verdict import VerdictKind

SCENARIO = "lab5-data-only.yml"
REAL = "lab5-real.yml"
ABI = {"variants": [{"host": "h1"}, {"host": "h2", "arch": "i386"}]}
ISA = {"variants": [{"host": "h1"}, {"host": "h3"}]}
OUTCOMES = tuple(ending.value for ending in EXPECTABLE)  # the words of expect.verdict
KINDS = tuple(kind.value for kind in VerdictKind)

DISJOINT_OUTCOME = Key("disjoint_outcome", Kind.CHOICE, "the outcome with two disjoint x86_64 variants", OUTCOMES)
DISJOINT_HARM = Key("disjoint_harm", Kind.WORD, "the first harmful system call the attack made")
ABI_SCENARIO = Key("abi_scenario", Kind.FILE, "a scenario with an i386 follower that detects the attack")
ABI_VERDICT = Key("abi_verdict", Kind.CHOICE, "the verdict kind with an i386 follower", KINDS)
ISA_OUTCOME = Key("isa_outcome", Kind.CHOICE, "the outcome with an aarch64 follower (host h3)", OUTCOMES)
ABI_ESCAPED = Key(
    "abi_harm_first", Kind.BOOL, "with the i386 follower under dmvx, did a harmful call run before the verdict?"
)
LOCKSTEP = Key(
    "lockstep_call",
    Kind.WORD,
    "one system call that, put in lockstep, stops the attack before any harmful call runs (i386 follower, dmvx)",
)
LOCKSTEP_COST = Key("lockstep_slowdown", Kind.NUMBER, "the server's slowdown with that override and the i386 follower")
REAL_VERDICT = Key("real_verdict", Kind.CHOICE, f"the verdict kind of 'dmvx real --scenario {REAL}'", KINDS)
REAL_SHELL = Key("real_shell_ran", Kind.BOOL, "did the shell the exploit asks for run?")
REAL_IN_SIM = Key("real_file_in_sim", Kind.CHOICE, f"the outcome of 'dmvx sim {REAL}'", OUTCOMES)


def _task1(ctx: Context) -> Check:
    point = ctx.modes.sim_point(ctx.scenario(SCENARIO))
    return outcome_and_first_harm(ctx, point, DISJOINT_OUTCOME.name, DISJOINT_HARM.name, variants="disjoint")


def _task2(ctx: Context) -> Check:
    path, scenario = ctx.student_scenario(ABI_SCENARIO.name)
    if scenario.attack is None or scenario.attack.kind != "data-only":
        return Check(False, f"{path} does not fire the data-only attack", hint="keep the attack of the lab's file")
    if not any(v.arch is Arch.I386 for v in scenario.variants or ()):
        return Check(False, f"{path} has no i386 variant", hint="a variant on an x86_64 host may set arch: i386")
    points = ctx.modes.sim(path)["points"]
    missed = [p for p in points if p["outcome"] != "divergence"]
    if missed:
        return Check(False, f"{path}: the attack ends with {missed[0]['outcome']}")
    truth = ctx.modes.sim_point(ctx.scenario(SCENARIO), ABI)
    verdict = same(
        ctx,
        ABI_VERDICT.name,
        truth["verdict"]["kind"] if truth["verdict"] else None,
        what="verdict with an i386 follower",
    )
    return all_of([Check(True, f"{path}: detected"), verdict])


def _task3(ctx: Context) -> Check:
    point = ctx.modes.sim_point(ctx.scenario(SCENARIO), ISA)
    return same(ctx, ISA_OUTCOME.name, point["outcome"], what="outcome with an aarch64 follower")


def _task4(ctx: Context) -> Check:
    abi = ctx.modes.sim_point(ctx.scenario(SCENARIO), ABI)
    escaped = same(ctx, ABI_ESCAPED.name, abi["attack"]["harmful_before_verdict"], what="harm first")
    name = ctx.value(LOCKSTEP.name)
    if name not in syscall_names():
        return all_of(
            [
                escaped,
                Check(
                    False,
                    f"{name!r} is not a system call name",
                    hint="canonical names, as the trace and the verdicts print them: openat, read",
                ),
            ]
        )
    point = ctx.modes.sim_point(ctx.scenario(SCENARIO), {**ABI, "policy.overrides": {name: "lockstep"}})
    if point["outcome"] != "divergence" or point["attack"]["harmful_before_verdict"]:
        what = "the attack is missed" if point["outcome"] != "divergence" else "a harmful call still runs first"
        return all_of(
            [
                escaped,
                Check(
                    False,
                    f"with {name} in lockstep {what}",
                    hint="which call is the first harmful one? a lockstep call runs only "
                    "after every variant reached it",
                ),
            ]
        )
    return all_of(
        [
            escaped,
            Check(True, f"{name} in lockstep: detected before any harm"),
            numeric(
                ctx,
                LOCKSTEP_COST.name,
                point["mvx"]["slowdown"],
                relative=0.05,
                what=f"slowdown with {name} in lockstep",
            ),
        ]
    )


def _task5(ctx: Context) -> Check:
    in_sim = ctx.modes.sim_point(ctx.scenario(REAL))
    run = ctx.modes.real(ctx.scenario(REAL))
    verdict = run["verdict"]["kind"] if run.get("verdict") else None
    return all_of(
        [
            same(ctx, REAL_IN_SIM.name, in_sim["outcome"], what="outcome in sim"),
            same(ctx, REAL_VERDICT.name, verdict, what="verdict in real mode"),
            same(ctx, REAL_SHELL.name, bool(run.get("harmful_call_ran")), what="the shell ran"),
        ]
    )


LAB = Lab(
    number=5,
    slug="data-only",
    title="ABI heterogeneity against a data-only attack",
    summary="Attack a server's data, not its code: address diversity misses it, a different data model "
    "catches it; close the window under dMVX and run the real exploit.",
    modes="sim + real (root, task 5)",
    tasks=(
        Task(
            1,
            "disjoint layouts",
            (DISJOINT_OUTCOME, DISJOINT_HARM),
            _task1,
            f"run 'dmvx sim scenarios/labs/{SCENARIO}'; the attack table has the outcome and the harmful calls",
        ),
        Task(
            2,
            "an i386 follower",
            (ABI_SCENARIO, ABI_VERDICT),
            _task2,
            "copy the scenario and give the follower arch: i386 (it runs on the x86_64 host h2)",
        ),
        Task(
            3,
            "an aarch64 follower",
            (ISA_OUTCOME,),
            _task3,
            "set the variants to [{host: h1}, {host: h3}]; then ask what x86_64 and aarch64 Linux share",
        ),
        Task(
            4,
            "harm before the verdict, and one lockstep call",
            (ABI_ESCAPED, LOCKSTEP, LOCKSTEP_COST),
            _task4,
            "--set policy.overrides={NAME: lockstep} with the i386 follower; 'harm first' must say no",
        ),
        Task(
            5,
            "the real exploit (root)",
            (REAL_IN_SIM, REAL_VERDICT, REAL_SHELL),
            _task5,
            f"sudo dmvx real --scenario scenarios/labs/{REAL} (--json: verdict.kind, harmful_call_ran), then "
            f"dmvx sim scenarios/labs/{REAL}",
            needs_root=True,
        ),
    ),
)
