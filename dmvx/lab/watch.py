"""``dmvx lab watch TRACE``: every event of a trace's replay through the core, one line each.

Sim mode reports a run in totals (calls per route, messages, slowdown); to
*see* calls being compared and replicated, a student needs each event with
what the monitor decided. This runs the core's own
:class:`~dmvx.monitor.LeaderMonitor` and :class:`~dmvx.monitor.FollowerMonitor`
over a recorded trace (:mod:`dmvx.trace`) with the core's in-memory driver
(:func:`dmvx.replay.replay`, the one the property tests use, so the watcher
cannot show a run the core would not make) and logs, for every event, the
broker's route and the actions the monitor returned: run the call, skip it
with the leader's result, send an entry, wait, halt with a verdict.

The schedule is fixed (:func:`dmvx.replay.eager`) so that the log reads the
same every time, and it is the one asynchronous replication is about:
messages arrive at once, and the leader runs whenever it can, so under
``dmvx`` it runs ahead until a lockstep call or its end holds it, and the
followers then catch up from the entries it left; under ``dmon`` every call
waits for the followers. There is no time here -- sim mode adds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmvx import output
from dmvx.actions import EVERYONE, Action, Done, Execute, Halt, Send, Skip, Wait
from dmvx.callformat import strace_call, strace_result
from dmvx.calls import Call, Outcome
from dmvx.exitstatus import ExitStatus
from dmvx.messages import Ack, Entry, Message, Report, Stop
from dmvx.policy import Decision, Policy
from dmvx.replay import Observer, Step, eager, replay
from dmvx.trace import TraceCall, TraceEnd, TraceEvent, read_trace
from dmvx.verdict import Verdict, variant_name

if TYPE_CHECKING:
    from rich.console import Console

#: Events after which a replay that has not ended is cut short.
MAX_EVENTS = 20_000


@dataclass(frozen=True)
class Event:
    """One line of the log: who, what happened, the route, what the monitor did.

    ``call`` and ``about`` name the call the event concerns and its sequence
    number -- for a return or a message as well as for the call's entry --
    so that a filter keeps every line of a call (:class:`EventFilter`)."""

    step: int
    variant: int
    seq: int | None
    what: str
    route: str
    actions: str
    call: str | None = None
    about: int | None = None
    #: The route of the call the event concerns (shown only on its entry).
    on_route: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "variant": variant_name(self.variant),
            "seq": self.seq,
            "event": self.what,
            "route": self.route or None,
            "actions": self.actions,
            "call": self.call,
        }

    def line(self) -> str:
        """The event as one plain line (``--stdout``), columns as in the table."""
        seq = "" if self.seq is None else f"#{self.seq}"
        route = f"  [{self.route}]" if self.route else ""
        actions = f"  -> {self.actions}" if self.actions else ""
        return f"{self.step:>6} {variant_name(self.variant):<11} {seq:>6}  {self.what}{route}{actions}"


@dataclass(frozen=True)
class EventFilter:
    """Which events ``dmvx lab watch`` shows: those of the given calls, routes
    and sequence numbers (each empty: any). A call's return and the messages
    about it go with it, so a filter keeps whole calls, not halves.
    The summary below the events always counts the whole run."""

    calls: frozenset[str] = frozenset()
    routes: frozenset[str] = frozenset()
    seqs: tuple[int, int] | None = None

    def __bool__(self) -> bool:
        return bool(self.calls or self.routes or self.seqs)

    def keeps(self, event: Event) -> bool:
        if self.calls and event.call not in self.calls:
            return False
        if self.seqs is not None and (event.about is None or not self.seqs[0] <= event.about <= self.seqs[1]):
            return False
        return not self.routes or event.on_route in self.routes

    def apply(self, events: list[Event]) -> list[Event]:
        return [e for e in events if self.keeps(e)] if self else events


def parse_seqs(text: str) -> tuple[int, int]:
    """``14`` -> (14, 14); ``10-20`` -> (10, 20); ``10-`` -> from 10 on."""
    first, dash, last = text.strip().partition("-")
    try:
        low = int(first)
        high = (int(last) if last.strip() else 1 << 62) if dash else low
    except ValueError:
        raise ValueError(f"{text!r} is not a sequence number or range") from None
    if low < 0 or high < low:
        raise ValueError(f"{text!r} is not a range from low to high")
    return low, high


@dataclass
class WatchResult:
    """The :class:`dmvx.output.Result` of ``dmvx lab watch``."""

    trace: str
    policy: str
    events: list[Event]
    verdict: Verdict | None
    variants: list[dict[str, Any]]
    messages: int
    cut_short: bool = False
    #: The calls each variant ran itself, in order (leader first).
    ran: list[list[Call]] = field(default_factory=list)

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.DIVERGENCE if self.verdict is not None else ExitStatus.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "trace": self.trace,
            "policy": self.policy,
            "events": [e.to_json() for e in self.shown()],
            "verdict": None if self.verdict is None else {**self.verdict.to_dict(), "summary": self.verdict.summary()},
            "variants": self.variants,
            "messages": self.messages,
            "cut_short": self.cut_short,
        }

    #: What the events shown were filtered by (the summary counts them all).
    shown_filter: EventFilter = field(default_factory=EventFilter)
    #: ``--stdout``: the events as plain lines on stdout, the summary on stderr.
    to_stdout: bool = False

    def shown(self) -> list[Event]:
        return self.shown_filter.apply(self.events)

    def render(self, console: Console) -> None:
        if self.to_stdout:
            output.text_lines(e.line() for e in self.shown())
            self._summary(console)
            return
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"{self.trace} under {self.policy}", title_justify="left")
        for column, justify in (
            ("step", "right"),
            ("variant", "left"),
            ("#", "right"),
            ("event", "left"),
            ("route", "left"),
            ("the monitor's actions", "left"),
        ):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for e in self.shown():
            style = "bold red" if "VERDICT" in e.actions else ("dim" if e.what.startswith("receives") else None)
            table.add_row(
                str(e.step),
                variant_name(e.variant),
                "" if e.seq is None else str(e.seq),
                escape(e.what),
                e.route,
                escape(e.actions),
                style=style,
            )
        console.print(table)
        self._summary(console)

    def _summary(self, console: Console) -> None:
        from rich.markup import escape

        if self.shown_filter:
            console.print(f"{len(self.shown())} of {len(self.events)} events shown")
        for v in self.variants:
            routes = ", ".join(f"{k} {n}" for k, n in v["routes"].items())
            console.print(
                f"{v['variant']}: ran {v['executed']}, skipped {v['skipped']} (took the leader's "
                f"result); routes: {routes}"
            )
        console.print(f"messages between monitors: {self.messages}")
        if self.cut_short:
            console.print(f"[yellow]cut short after {MAX_EVENTS} events[/yellow]")
        console.print(
            "verdict: " + ("none: the variants agreed" if self.verdict is None else escape(self.verdict.summary()))
        )


def _streams(events: dict[int, list[TraceEvent]], n: int) -> tuple[list[list[Step]], list[TraceEnd]]:
    """Each variant's calls and end; a variant without events replays the leader's."""
    leader = events.get(0) or next(iter(events.values()), [])
    streams: list[list[Step]] = []
    ends: list[TraceEnd] = []
    for index in range(n):
        own = events.get(index) or leader
        streams.append([Step(e.call, e.outcome) for e in own if isinstance(e, TraceCall)])
        ends.append(next((e for e in own if isinstance(e, TraceEnd)), TraceEnd("exit", 0)))
    return streams, ends


def _message(message: Message) -> str:
    if isinstance(message, Entry):
        what = f"entry #{message.seq} {message.kind.value}"
        return what if message.call.is_process_end else f"{what} ({message.call.name})"
    if isinstance(message, Report):
        return f"report #{message.seq} ({message.call.name}) from {variant_name(message.variant)}"
    if isinstance(message, Ack):
        return f"ack up to #{message.seq} from {variant_name(message.variant)}"
    if isinstance(message, Stop):
        return f"stop ({message.verdict.kind.value})"
    return type(message).__name__


def _action(action: Action) -> str:
    if isinstance(action, Execute):
        return "runs it" if action.seq is not None else "runs it unchecked"
    if isinstance(action, Skip):
        fds = f", placeholder fd {', '.join(map(str, action.new_fds))}" if action.new_fds else ""
        return f"skips it: returns {action.outcome.result} from the leader{fds}"
    if isinstance(action, Send):
        to = "all" if action.to == EVERYONE else variant_name(action.to)
        return f"sends {_message(action.message)} to {to}"
    if isinstance(action, Wait):
        whom = ", ".join(variant_name(i) for i in action.awaiting) or "the others"
        return f"waits ({action.reason.value}) for {whom}"
    if isinstance(action, Halt):
        return f"VERDICT {action.verdict.summary()}"
    if isinstance(action, Done):
        return "done"
    return type(action).__name__


class _Log(Observer):
    """Writes one :class:`Event` per event of the replay, as it happens."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        #: The call each variant is in, for its return: (name, seq, route).
        self.inside: dict[int, tuple[str | None, int | None, str]] = {}
        #: The route of each compared call, by seq, for the messages about it.
        self.routes: dict[int, str] = {}

    def _add(
        self,
        variant: int,
        seq: int | None,
        what: str,
        route: str,
        actions: list[Action],
        call: str | None = None,
        about: int | None = None,
        on_route: str = "",
    ) -> None:
        self.events.append(
            Event(
                len(self.events) + 1,
                variant,
                seq,
                what,
                route,
                "; ".join(_action(a) for a in actions),
                call,
                about,
                on_route or route,
            )
        )

    def received(self, variant: int, message: Message, actions: list[Action]) -> None:
        about = getattr(message, "seq", None)
        inner = getattr(message, "call", None)
        self._add(
            variant,
            None,
            f"receives {_message(message)}",
            "",
            actions,
            inner.name if isinstance(inner, Call) else None,
            about,
            self.routes.get(about or -1, ""),
        )

    def entered(
        self, variant: int, call: Call, decision: Decision | None, seq: int | None, actions: list[Action]
    ) -> None:
        route = decision.route.value if decision is not None else ""
        self.inside[variant] = (call.name, seq, route)
        if seq is not None and route:
            self.routes.setdefault(seq, route)
        self._add(variant, seq, f"enters {strace_call(call)}", route, actions, call.name, seq)

    def returned(self, variant: int, outcome: Outcome, actions: list[Action]) -> None:
        name, seq, route = self.inside.get(variant, (None, None, ""))
        self._add(variant, None, f"returns {strace_result(outcome)}", "", actions, name, seq, route)

    def ended(self, variant: int, end: TraceEnd, actions: list[Action]) -> None:
        what = f"exits with status {end.value}" if end.how == "exit" else f"killed by signal {end.value}"
        self._add(variant, None, what, "", actions)

    def stalled(self, variant: int, actions: list[Action]) -> None:
        if actions:  # a monitor with nothing to say about the stall is not news
            self._add(variant, None, "stalls", "", actions)


def watch(policy: Policy, events: dict[int, list[TraceEvent]], n_variants: int = 2) -> WatchResult:
    """Replay ``events`` (a trace's streams) through the core; see the module doc."""
    streams, ends = _streams(events, n_variants)
    log = _Log()
    result = replay(policy, streams, ends, max_events=MAX_EVENTS, schedule=eager, observer=log)
    summaries = [
        {"variant": variant_name(i), "executed": len(v.executed), "skipped": len(v.skipped), "routes": v.routes}
        for i, v in enumerate(result.logs)
    ]
    return WatchResult(
        "",
        "",
        log.events,
        result.verdict,
        summaries,
        result.messages,
        result.cut_short,
        [v.executed for v in result.logs],
    )


def watch_trace(path: Path, preset: str, n_variants: int = 2) -> WatchResult:
    """The trace at ``path`` under preset ``preset``."""
    trace = read_trace(path)
    result = watch(Policy.preset(preset), trace.streams, n_variants)
    result.trace = str(path)
    result.policy = preset
    return result


def watch_file(path: Path, preset: str | None, n_variants: int | None = None) -> WatchResult:
    """``dmvx lab watch FILE``: a trace (``.jsonl``) under ``preset`` (default
    dmvx), or a scenario whose workload is a trace, under its own policy and
    with its own number of variants (``preset``, when given, replaces the
    scenario's preset and keeps its other settings)."""
    from dmvx.errors import InputError
    from dmvx.scenario import Trace, load_scenario

    if path.suffix not in (".yml", ".yaml"):
        return watch_trace(path, preset or "dmvx", n_variants or 2)
    scenario = load_scenario(path)
    if not isinstance(scenario.workload, Trace):
        raise InputError(
            f"the workload is {scenario.workload.kind}, not a trace",
            file=str(path),
            field="workload",
            expected="a scenario with workload kind trace, or a trace file (.jsonl)",
        )
    spec = scenario.policy if preset is None else scenario.policy.model_copy(update={"preset": preset})
    count = n_variants or len(scenario.variants or ()) or 2
    result = watch(spec.to_policy(), read_trace(scenario.workload.path).streams, count)
    result.trace = str(path)
    result.policy = spec.preset + (" with the scenario's settings" if _customised(spec) else "")
    return result


def _customised(spec: Any) -> bool:
    """Whether a policy spec sets anything beyond its preset."""
    return bool(spec.model_dump(exclude={"preset", "stall_timeout"}, exclude_defaults=True))


def first_call_on_route(result: WatchResult, route: str, variant: int = 0) -> str | None:
    """The name of the first call ``variant`` entered on ``route``."""
    for event in result.events:
        if event.variant == variant and event.route == route and event.what.startswith("enters "):
            return event.call
    return None


__all__ = [
    "Event",
    "EventFilter",
    "WatchResult",
    "first_call_on_route",
    "parse_seqs",
    "watch",
    "watch_file",
    "watch_trace",
]
