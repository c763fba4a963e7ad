"""Lab 3: the price of distance -- DMON against dMVX as link delay grows.

The student sweeps the link delay under both presets and plots it, then
explains the curves with numbers: DMON pays a round trip per call, dMVX
pays the delay about once -- until the connector buffer (CB) cannot hold
the calls in flight, a bandwidth-delay product in calls.
"""

from __future__ import annotations

from pathlib import Path

from dmvx.errors import InputError
from dmvx.lab.checking import Context, all_of, numeric
from dmvx.lab.model import Check, Key, Kind, Lab, Task
from dmvx.scenario import Microbench
from dmvx.units import format_duration, parse_duration

SCENARIO = "lab3-distance.yml"
DELAY = "topology.links[*].delay"
#: The delays of task 5, as the lab page lists them.
DELAYS = ("100us", "200us", "500us", "1ms", "2ms", "5ms", "10ms")
#: A CB too big to ever fill in task 6's run.
UNBOUNDED_CB = 1 << 20
PNG = b"\x89PNG\r\n\x1a\n"

SWEEP_FILE = Key(
    "sweep_file",
    Kind.FILE,
    "your sweep: link delay from 100us (or less) to 10ms (or more) in at least five steps, under both presets",
)
PLOT = Key("plot", Kind.FILE, "the PNG 'dmvx sim YOUR-SWEEP --plot FILE' drew")
DMON_PER_CALL = Key("dmon_per_call_1ms", Kind.DURATION, "DMON's time per call at 1ms per link, e.g. 3.5ms")
DMON_GROWTH = Key("dmon_growth_1ms_to_10ms", Kind.NUMBER, "DMON's slowdown at 10ms divided by its slowdown at 1ms")
DMVX_LEAD = Key("dmvx_lead_calls_1ms", Kind.INTEGER, "dMVX: the leader's max lead over the follower in calls, at 1ms")
CB_FULL_FROM = Key("cb_full_from", Kind.DURATION, f"the smallest of {', '.join(DELAYS)} at which dMVX's CB fills")
CB_NEEDED = Key("cb_entries_5ms", Kind.INTEGER, "the CB entries a 20000-read run at 5ms needs never to be held back")


def _task1(ctx: Context) -> Check:
    return all_of([_sweep_file(ctx), _plot(ctx)])


def _sweep_file(ctx: Context) -> Check:
    path, scenario = ctx.student_scenario(SWEEP_FILE.name)
    sweeps = {sweep.parameter: sweep.values for sweep in scenario.sweeps}
    delays = next((values for parameter, values in sweeps.items() if parameter.endswith(".delay")), None)
    if delays is None:
        return Check(
            False,
            f"{path} does not sweep a link delay",
            hint=f"sweep: a list of two sweeps, one with parameter: {DELAY}",
        )
    seconds = sorted(parse_duration(v) for v in delays)
    if len(seconds) < 5 or seconds[0] > 100e-6 or seconds[-1] < 10e-3:
        return Check(
            False,
            f"{path}: the delays go from {format_duration(seconds[0])} to "
            f"{format_duration(seconds[-1])} in {len(seconds)} values",
            hint="at least five values, the smallest 100us or less and the largest 10ms or more",
        )
    presets = set(sweeps.get("policy.preset", ()))
    if presets != {"dmon", "dmvx"}:
        return Check(
            False,
            f"{path} does not sweep policy.preset over dmon and dmvx",
            hint="a second sweep: {parameter: policy.preset, values: [dmon, dmvx]}",
        )
    if not isinstance(scenario.workload, Microbench):
        return Check(False, f"{path} runs a {scenario.workload.kind} workload", hint="keep the read microbenchmark")
    return Check(True, f"{path}: {len(seconds)} delays x 2 presets")


def _plot(ctx: Context) -> Check:
    try:
        plot: Path = ctx.value(PLOT.name)
    except InputError as exc:
        return Check(False, str(exc), hint=f"{PLOT.name}: the PNG file dmvx sim drew, relative to the answers file")
    if plot.read_bytes()[:8] != PNG:
        return Check(False, f"{plot} is not a PNG image", hint="draw it with dmvx sim YOUR-SWEEP --plot lab3.png")
    return Check(True, f"plot {plot}")


def _task2(ctx: Context) -> Check:
    scenario = ctx.scenario(SCENARIO)
    at1 = ctx.modes.sim_point(scenario, {"policy.preset": "dmon", DELAY: "1ms"})
    at10 = ctx.modes.sim_point(scenario, {"policy.preset": "dmon", DELAY: "10ms"})
    per_call = at1["mvx"]["time_ns"] / at1["calls"] / 1e9
    growth = at10["mvx"]["slowdown"] / at1["mvx"]["slowdown"]
    return all_of(
        [
            numeric(ctx, DMON_PER_CALL.name, per_call, relative=0.05, what="DMON's time per call at 1ms"),
            numeric(ctx, DMON_GROWTH.name, growth, relative=0.05, what="DMON's growth from 1ms to 10ms"),
        ]
    )


def _task3(ctx: Context) -> Check:
    point = ctx.modes.sim_point(ctx.scenario(SCENARIO), {DELAY: "1ms"})
    lead = point["lead"]["follower 1"]["calls_max"]
    return numeric(ctx, DMVX_LEAD.name, lead, relative=0.10, what="dMVX leader's lead at 1ms")


def _task4(ctx: Context) -> Check:
    points = ctx.modes.sim(ctx.scenario(SCENARIO), {DELAY: list(DELAYS)})["points"]
    full = [p["labels"][DELAY] for p in points if p["cb"]["max_entries"] >= p["policy"]["cb_entries"]]
    if not full:
        raise AssertionError(f"the CB never fills in {SCENARIO}: the lab's delays need updating")
    answer = ctx.value(CB_FULL_FROM.name)
    if answer == parse_duration(full[0]):
        return Check(True, f"the CB fills from {ctx.written(CB_FULL_FROM.name)} on")
    shown = ctx.written(CB_FULL_FROM.name)
    if not any(answer == parse_duration(d) for d in DELAYS):
        return Check(False, f"{shown} is not one of {', '.join(DELAYS)}")
    return Check(False, f"the CB does not first fill at {shown}")


def _task5(ctx: Context) -> Check:
    point = ctx.modes.sim_point(
        ctx.scenario(SCENARIO), {DELAY: "5ms", "workload.iterations": 20000, "policy.cb.entries": UNBOUNDED_CB}
    )
    return numeric(
        ctx, CB_NEEDED.name, point["cb"]["max_entries"], relative=0.10, what="CB entries the 5ms run keeps in flight"
    )


LAB = Lab(
    number=3,
    slug="distance",
    title="The price of distance: DMON vs dMVX as link delay grows",
    summary="Sweep the link delay under both presets, plot it, and explain the two curves: a round trip "
    "per call against a CB that hides the delay until it fills.",
    modes="sim",
    tasks=(
        Task(
            1,
            "a sweep and its plot",
            (SWEEP_FILE, PLOT),
            _task1,
            "a grid is a list of sweeps: [{parameter: policy.preset, values: [dmon, dmvx]}, "
            f"{{parameter: '{DELAY}', values: [...]}}]; then dmvx sim FILE --plot lab3.png",
        ),
        Task(
            2,
            "DMON: a round trip per call",
            (DMON_PER_CALL, DMON_GROWTH),
            _task2,
            "time per call = the mvx time / the number of calls; under DMON each call waits until the "
            "follower has seen it: count the links between h1 and h2, both ways",
        ),
        Task(
            3,
            "dMVX: how far ahead the leader runs",
            (DMVX_LEAD,),
            _task3,
            "'lead over follower 1' of a single run (or a sweep's 'lead max' column), in calls; estimate it "
            "first: the one-way delay from h1 to h2 divided by the leader's time per call",
        ),
        Task(
            4,
            "when the CB fills",
            (CB_FULL_FROM,),
            _task4,
            f"sweep the delay over {', '.join(DELAYS)} under dmvx and compare 'CB max' with the CB size "
            "in the policy line (4096 entries)",
        ),
        Task(
            5,
            "sizing the CB",
            (CB_NEEDED,),
            _task5,
            "entries in flight = round-trip time / the leader's time per call; or set policy.cb.entries very "
            "large and read 'CB max' (20000 reads, 5ms per link)",
        ),
    ),
)
