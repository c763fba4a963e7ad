"""Lab 2: an exploit against identical and diversified variants -- detected or not, and why.

The student fires a code-reuse exploit with absolute addresses at identical
variants (it works in both: missed), then at ASLR variants (the follower
crashes), hunts a seed for which two i386 variants collide (8 bits of ASLR),
writes a scenario that catches a *relative* code-reuse exploit (only another
ABI or ISA does), and looks at a pointer leak.
"""

from __future__ import annotations

from dmvx.lab.checking import Context, all_of, numeric, outcome_and_first_harm, same
from dmvx.lab.model import Check, Key, Kind, Lab, Task
from dmvx.outcome import EXPECTABLE
from dmvx.verdict import VerdictKind

SCENARIO = "lab2-exploit.yml"
I386 = "lab2-i386.yml"
ASLR = {"variants": [{"host": "h1"}, {"host": "h2"}]}
OUTCOMES = tuple(ending.value for ending in EXPECTABLE)  # the words of expect.verdict
KINDS = tuple(kind.value for kind in VerdictKind)
WHO = ("leader", "follower")

IDENTICAL_OUTCOME = Key("identical_outcome", Kind.CHOICE, "how the run with identical variants ends", OUTCOMES)
IDENTICAL_HARM = Key("identical_harm", Kind.WORD, "the first harmful system call the exploit made")
ASLR_VERDICT = Key("aslr_verdict", Kind.CHOICE, "the verdict kind with ASLR in both variants", KINDS)
ASLR_CRASHED = Key("aslr_crashed", Kind.CHOICE, "which variant crashed", WHO)
LUCKY_SEED = Key("lucky_seed", Kind.INTEGER, f"a seed for which the exploit is missed in {I386}")
CHANCE = Key("i386_collision_chance", Kind.NUMBER, "the chance that two i386 ASLR variants load at the same address")
RELATIVE = Key(
    "relative_scenario", Kind.FILE, "a scenario in which a relative-rop exploit against the leader is detected"
)
LEAK_VERDICT = Key("leak_verdict", Kind.CHOICE, "the verdict kind for a pointer leak with ASLR variants", KINDS)
LEAK_ESCAPED = Key("leak_escaped", Kind.BOOL, "did the leaked pointer reach the attacker before the verdict?")


def _task1(ctx: Context) -> Check:
    point = ctx.modes.sim_point(ctx.scenario(SCENARIO))
    return outcome_and_first_harm(ctx, point, IDENTICAL_OUTCOME.name, IDENTICAL_HARM.name, variants="identical")


def _task2(ctx: Context) -> Check:
    point = ctx.modes.sim_point(ctx.scenario(SCENARIO), ASLR)
    crashed = [r["variant"] for r in point["attack"]["reactions"] if r["reaction"] == "crashes"]
    verdict = point["verdict"]["kind"] if point["verdict"] else None
    return all_of(
        [
            same(ctx, ASLR_VERDICT.name, verdict, what="verdict with ASLR"),
            same(ctx, ASLR_CRASHED.name, WHO[min(crashed[0], 1)] if crashed else None, what="the variant that crashed"),
        ]
    )


def _task3(ctx: Context) -> Check:
    seed = ctx.value(LUCKY_SEED.name)
    if seed < 0:
        return Check(False, f"seed {seed} is negative", hint="seeds are 0 or more")
    run = ctx.modes.sim(ctx.scenario(I386), seed=seed)
    point = run["points"][0]
    bits = run["profile_values"]["aslr_bits"]["i386"]
    lucky = (
        Check(True, f"seed {seed}: the exploit works in both i386 variants, missed")
        if point["outcome"] == "missed"
        else Check(
            False,
            f"seed {seed}: {point['outcome']}, the variants loaded at different addresses",
            hint=f'sweep the seed: dmvx sim scenarios/labs/{I386} --set "seed=[$(seq -s, 0 999)]" '
            "and look for 'missed'",
        )
    )
    return all_of([lucky, numeric(ctx, CHANCE.name, 2.0**-bits, relative=0.05, what="collision chance")])


def _task4(ctx: Context) -> Check:
    path, scenario = ctx.student_scenario(RELATIVE.name)
    if scenario.attack is None or scenario.attack.kind != "relative-rop":
        return Check(False, f"{path} does not fire a relative-rop attack", hint="attack: {kind: relative-rop, ...}")
    points = ctx.modes.sim(path)["points"]
    missed = [p for p in points if p["outcome"] != "divergence"]
    if missed:
        return Check(
            False,
            f"{path}: the exploit ends with {missed[0]['outcome']}",
            hint="relative offsets inside one binary hold at any load address; what makes the "
            "follower's binary a different one?",
        )
    return Check(True, f"{path}: relative-rop detected ({points[0]['verdict']['kind']})")


def _task5(ctx: Context) -> Check:
    point = ctx.modes.sim_point(ctx.scenario(SCENARIO), {**ASLR, "attack.kind": "pointer-leak"})
    verdict = point["verdict"]["kind"] if point["verdict"] else None
    return all_of(
        [
            same(ctx, LEAK_VERDICT.name, verdict, what="verdict for the pointer leak"),
            same(ctx, LEAK_ESCAPED.name, point["attack"]["harmful_before_verdict"], what="leak escaped first"),
        ]
    )


LAB = Lab(
    number=2,
    slug="exploit",
    title="An exploit against identical and diversified variants",
    summary="Fire code-reuse exploits and a pointer leak at identical, ASLR, i386 and heterogeneous "
    "variants; see which diversity detects what, and why.",
    modes="sim",
    tasks=(
        Task(
            1,
            "identical variants",
            (IDENTICAL_OUTCOME, IDENTICAL_HARM),
            _task1,
            f"run 'dmvx sim scenarios/labs/{SCENARIO}'; the attack table has the outcome and the harmful call",
        ),
        Task(
            2,
            "ASLR in both variants",
            (ASLR_VERDICT, ASLR_CRASHED),
            _task2,
            "set the variants to [{host: h1}, {host: h2}] (ASLR is on by default); the reactions column says "
            "who crashed",
        ),
        Task(
            3,
            "8 bits of ASLR",
            (LUCKY_SEED, CHANCE),
            _task3,
            "the profile's aslr_bits (--json: profile_values.aslr_bits.i386) is the entropy of one variant's "
            "load address; two independent draws collide with probability 2^-bits",
        ),
        Task(
            4,
            "catching a relative code-reuse exploit",
            (RELATIVE,),
            _task4,
            "relative offsets inside one binary hold at any load address: only a different binary image "
            "(another ABI or ISA) breaks them",
        ),
        Task(
            5,
            "a pointer leak",
            (LEAK_VERDICT, LEAK_ESCAPED),
            _task5,
            "set attack.kind=pointer-leak with ASLR variants; the verdict column names the kind, and 'harm first' "
            "(--json: attack.harmful_before_verdict) says whether the leak got out",
        ),
    ),
)
