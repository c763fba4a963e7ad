"""Tables for people: how :class:`sim.results.SimResult` draws itself.

One point gets a summary (times, slowdown, traffic, CB, lead, verdict), the
busy link directions, and for an attack each variant's reaction and the
detection. A sweep gets one row per point, and a two-parameter sweep also a
pivot of its headline number (slowdown, or the attack outcome).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmvx.outcome import Ending
from dmvx.rows import BYTES, FRACTION, SECONDS
from sim.report import AttackReport, Load, MicrobenchLoad, PointReport, ServerLoad, ServerNumbers
from sim.results import SimResult, SuiteResult, ordered_labels

if TYPE_CHECKING:
    from rich.console import Console


def fmt_time(ns: int | float | None) -> str:
    if ns is None:
        return "-"
    ns = float(ns)
    for unit, factor in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= factor:
            return f"{_3(ns / factor)} {unit}"
    return f"{_3(ns)} ns"


def _scaled(n: float, units: tuple[tuple[str, float], ...], gap: str) -> str | None:
    """``n`` in the largest of ``units`` (largest first) it reaches, or None below them all."""
    for unit, factor in units:
        if n >= factor:
            return f"{_3(n / factor)}{gap}{unit}"
    return None


def fmt_bytes(n: int | float) -> str:
    n = float(n)
    return _scaled(n, (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)), " ") or f"{int(n)} B"


def fmt_count(n: int | float) -> str:
    n = float(n)
    return _scaled(n, (("G", 1e9), ("M", 1e6), ("k", 1e3)), "") or f"{int(round(n))}"


def _3(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def headline(point: PointReport) -> str:
    """The number a row is about: slowdown (x) or server overhead (%)."""
    mvx = point.mvx
    if point.server:
        if mvx.server is None or not mvx.server.throughput_rps:
            return "-"
        return f"{mvx.overhead_pct:+.1f}%"
    return f"{mvx.slowdown:.2f}x" if mvx.slowdown else "-"


def outcome_text(point: PointReport) -> str:
    verdict = point.verdict
    text = point.outcome.value
    if verdict is not None:
        text = f"{text}: {verdict.verdict.kind.value} at #{verdict.verdict.seq}"
    if point.as_expected is False and point.expected is not None:
        text += f" (expected {point.expected.ending.value})"
    return text


def _style(point: PointReport) -> str:
    if point.as_expected is False or point.outcome is Ending.MISSED:
        return "red"
    if point.outcome.stopped:
        return "yellow" if point.attack is None and point.as_expected is None else "green"
    return ""


def _label(value: Any) -> str:
    if isinstance(value, (list, dict)):
        import json

        text = json.dumps(value, separators=(",", ":"))
        return text if len(text) <= 40 else text[:37] + "..."
    return str(value)


def shown(point: PointReport, key: str) -> str:
    """A point's value for a swept parameter, as a table shows it: swept
    variant lists by the diversity they make."""
    if key == "variants":
        return point.diversity
    return _label(point.labels.get(key, ""))


def _lead(point: PointReport) -> str:
    leads = point.lead
    if not leads:
        return "-"
    worst_calls = max(v.calls_max for v in leads)
    worst_time = max(v.time_max_ns for v in leads)
    return f"{fmt_count(worst_calls)} / {fmt_time(worst_time)}"


def _traffic(point: PointReport) -> str:
    m = point.messages
    return f"{fmt_count(m.total)} / {fmt_bytes(m.bytes)}"


def _rps(server: ServerNumbers | None) -> str:
    """A run's requests per second (0 for a run without a server)."""
    return f"{server.throughput_rps if server is not None else 0:.0f}"


def render_result(result: SimResult, console: Console) -> None:
    from rich.table import Table

    first = result.points[0]
    title = f"{result.scenario} — {first.topology}, {len(first.variants)} variants, profile {result.profile.name}"
    if result.repeats:
        _render_summary(result, title, console)
    elif len(result.points) == 1 and not result.dimensions:
        _render_point(first, title, console)
    else:
        keys = ordered_labels(result.points)
        table = Table(title=title, title_justify="left", header_style="bold")
        for key in keys:
            table.add_column(key)
        attack = any(p.attack is not None for p in result.points)
        server = first.server
        if not attack:
            if server:
                table.add_column("native req/s", justify="right")
                table.add_column("mvx req/s", justify="right")
                table.add_column("overhead", justify="right")
            else:
                table.add_column("native", justify="right")
                table.add_column("mvx", justify="right")
                table.add_column("slowdown", justify="right")
            table.add_column("msgs / bytes", justify="right")
            table.add_column("CB max / mean", justify="right")
            table.add_column("lead max (calls / time)", justify="right")
        else:
            if "variants" not in keys:
                table.add_column("diversity")
            table.add_column("reactions")
            table.add_column("detection (calls / time)", justify="right")
            table.add_column("harmful first")
        table.add_column("outcome")
        for p in result.points:
            cells = [shown(p, k) for k in keys]
            if not attack:
                if server:
                    cells += [_rps(p.native.server), _rps(p.mvx.server), headline(p)]
                else:
                    cells += [fmt_time(p.native.time_ns), fmt_time(p.mvx.time_ns), headline(p)]
                cells += [_traffic(p), f"{p.cb.max_entries} / {p.cb.mean_entries:.1f}", _lead(p)]
            else:
                a = p.attack
                assert a is not None
                cells += ([] if "variants" in keys else [p.diversity]) + [_reactions(a), _detection(a), _harmful(a)]
            cells.append(outcome_text(p))
            table.add_row(*cells, style=_style(p))
        console.print(table)
        if len(result.dimensions) == 2:
            _render_pivot(result, console)
    for note in result.notes:
        console.print(note, style="dim")
    if result.plot:
        console.print(f"plot written to {result.plot}", style="dim")


def _stat(record: dict[str, Any], measure: str, show: Callable[[float], str]) -> list[str]:
    """A summary row's measure as three cells: mean, min-max, ±95% interval."""
    mean = record.get(f"{measure}_mean")
    if mean is None:
        return ["-", "", ""]
    ci = record.get(f"{measure}_ci95")
    low, high = show(record[f"{measure}_min"]), show(record[f"{measure}_max"])
    unit = low.rpartition(" ")[2] if " " in low else ""
    if unit and high.endswith(" " + unit):  # 4.02-8.03 ms, not 4.02 ms-8.03 ms
        low = low.removesuffix(" " + unit)
    return [
        show(mean),
        f"{low}-{high}",
        "-" if ci is None else show(ci),
    ]


def _param_text(value: Any, unit: str) -> str:
    """A parameter's SI value as people write it (1e-4 s as 100 us, 0.01 as 1%)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _label(value)
    if unit == SECONDS:
        return fmt_time(value * 1e9)
    if unit == FRACTION:
        return f"{value * 100:g}%"
    if unit == BYTES:
        return fmt_bytes(value)
    return f"{value:g}"


def _render_summary(result: SimResult, title: str, console: Console) -> None:
    """Repetitions: one row per point, its measures as mean, min-max and ±95% interval."""
    from rich.markup import escape
    from rich.table import Table

    summary = result.summary()
    keys = list(summary.parameters)
    attack = any(p.attack is not None for p in result.points)
    server = result.points[0].server
    runs = " x ".join(f"{len(values)} {name}" for name, values in result.dimensions if name in result.repeats)
    table = Table(title=escape(f"{title}; each point run over {runs}"), title_justify="left", header_style="bold")
    for key in keys:
        table.add_column(key, min_width=min(len(key), 24))
    counts = summary.column("n")
    uneven = len(set(counts)) > 1  # (an interrupted run: its last point may be short of runs)
    if uneven:
        table.add_column("runs", justify="right")
    triple: list[tuple[str, str, Callable[[float], str]]]  # (header, measure, how a value is shown)
    single: list[tuple[str, Callable[[dict[str, Any]], str]]]
    if attack:
        triple = [
            ("calls ahead", "detection_calls", lambda v: f"{v:.1f}".removesuffix(".0")),
            ("time to detection", "detection_time_s", lambda v: fmt_time(v * 1e9)),
        ]
        single = [("harm first", lambda r: _fraction(r.get("harmful_before_verdict_fraction")))]
    elif server:
        triple = [("overhead", "throughput_overhead", lambda v: f"{v * 100:.1f}%")]
        single = [("mvx req/s", lambda r: f"{r.get('mvx_throughput_mean') or 0:.0f}")]
    else:
        triple = [("slowdown", "slowdown", lambda v: f"{v:.2f}x")]
        single = [("lead max (calls)", lambda r: f"{r.get('lead_calls_max_mean') or 0:.0f}")]
    for header, _, _ in triple:
        table.add_column(header, justify="right")
        table.add_column("min-max", justify="right", no_wrap=True)
        table.add_column("±95%", justify="right", no_wrap=True)
    for header, _ in single:
        table.add_column(header, justify="right")
    outcomes = [str(r.get("outcome") or "-") for r in summary.records()]
    table.add_column("outcome", min_width=min(24, max(map(len, outcomes))))
    for record in summary.records():
        cells = [_param_text(record[k], summary.unit(k)) for k in keys] + ([str(record["n"])] if uneven else [])
        for _, measure, show in triple:
            cells += _stat(record, measure, show)
        cells += [show_one(record) for _, show_one in single]
        cells.append(str(record.get("outcome") or "-"))
        table.add_row(*(escape(cell) for cell in cells))
    console.print(table)
    console.print(
        "each measure: its mean over the runs, min-max, and ±95%: the 95% interval of the mean is mean ± that "
        "(Student's t)" + ("; harm first: runs where a harmful call ran before the verdict" if attack else ""),
        style="dim",
    )


def _fraction(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _reactions(attack: AttackReport) -> str:
    return ", ".join(r.reaction for r in attack.reactions)


def _detection(attack: AttackReport) -> str:
    d = attack.detection
    if d is None:
        return "-"
    return f"{d.leader_calls} / {fmt_time(d.time_ns)}"


def _harmful(attack: AttackReport) -> str:
    first = attack.first_harm
    return "no" if first is None else f"yes: {first.what}"


def _render_pivot(result: SimResult, console: Console) -> None:
    from rich.table import Table

    (outer, _), (inner, _) = result.dimensions
    attack = any(p.attack is not None for p in result.points)
    table = Table(
        title=f"{'outcome' if attack else 'headline'} by {outer} and {inner}", title_justify="left", header_style="bold"
    )
    table.add_column(f"{outer} \\ {inner}")
    rows: list[str] = []
    columns: list[str] = []
    cells: dict[tuple[str, str], str] = {}
    for p in result.points:
        key = (shown(p, outer), shown(p, inner))
        if key[0] not in rows:
            rows.append(key[0])
        if key[1] not in columns:
            columns.append(key[1])
        if attack:
            a = p.attack
            cells[key] = p.outcome.value + (" (harm first)" if a and a.harmful_before_verdict else "")
        else:
            cells[key] = headline(p)
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row, *[cells.get((row, column), "") for column in columns])
    console.print(table)


def _workload_text(w: Load) -> str:
    if isinstance(w, ServerLoad):
        return f"{w.requests} requests, concurrency {w.concurrency}, {w.file_size} B files"
    if isinstance(w, MicrobenchLoad):
        return f"{w.call} x {w.iterations}"
    return f"trace {w.path}"


def _render_point(p: PointReport, title: str, console: Console) -> None:
    from rich.table import Table

    w = p.workload
    summary = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    summary.add_column(style="bold")
    summary.add_column()
    pol = p.policy
    summary.add_row("workload", f"{w.kind}: {_workload_text(w)}")
    summary.add_row(
        "policy",
        f"{pol.name} (relaxation {pol.relaxation.label}, async "
        f"{'on' if pol.async_replication else 'off'}, predict "
        f"{'on' if pol.predict else 'off'}, CB {pol.cb_entries} entries)",
    )
    summary.add_row("diversity", p.diversity)
    if p.server:
        n, m = p.native.server, p.mvx.server
        summary.add_row("native", f"{_rps(n)} req/s, latency {fmt_time(n.latency_mean_ns if n else None)}")
        summary.add_row("mvx", f"{_rps(m)} req/s, latency {fmt_time(m.latency_mean_ns if m else None)}")
        summary.add_row("overhead", headline(p))
    else:
        summary.add_row("native", fmt_time(p.native.time_ns))
        summary.add_row("mvx", fmt_time(p.mvx.time_ns))
        summary.add_row("slowdown", headline(p))
    summary.add_row(
        "messages",
        f"{fmt_count(p.messages.total)} ({fmt_bytes(p.messages.bytes)})"
        + (f", {p.messages.lost} lost" if p.messages.lost else ""),
    )
    summary.add_row(
        "CB occupancy", f"max {p.cb.max_entries} entries ({fmt_bytes(p.cb.max_bytes)}), mean {p.cb.mean_entries:.1f}"
    )
    for lead in p.lead:
        summary.add_row(
            f"lead over {lead.name}",
            f"max {fmt_count(lead.calls_max)} calls / "
            f"{fmt_time(lead.time_max_ns)}, mean {lead.calls_mean:.1f} calls / "
            f"{fmt_time(lead.time_mean_ns)}",
        )
    summary.add_row("outcome", outcome_text(p), style=_style(p))
    if p.verdict is not None:
        summary.add_row(
            "verdict", f"{p.verdict.verdict.summary()} (by the {p.verdict.by_name} at {fmt_time(p.verdict.time_ns)})"
        )
    console.print(summary)
    links = Table(title="links", title_justify="left", header_style="bold")
    for column in ("direction", "messages", "bytes", "max queue", "held back", "lost"):
        links.add_column(column, justify="left" if column == "direction" else "right")
    for name, s in p.links.items():
        links.add_row(
            name, fmt_count(s.messages), fmt_bytes(s.bytes), str(s.max_queue_packets), str(s.held_back), str(s.losses)
        )
    if p.links:
        console.print(links)
    routes = Table(title="variants", title_justify="left", header_style="bold")
    for column in ("variant", "host", "arch", "calls", "ran", "skipped", "waited", "ended", "routes"):
        routes.add_column(column)
    for v in p.variants:
        routes.add_row(
            v.name,
            v.host,
            v.arch,
            fmt_count(v.entered),
            fmt_count(v.executed),
            fmt_count(v.skipped),
            fmt_time(v.waited_ns),
            f"{v.ended_by} at {fmt_time(v.end_ns)}",
            ", ".join(f"{k} {fmt_count(c)}" for k, c in v.routes.items()),
        )
    console.print(routes)
    a = p.attack
    if a is not None:
        attack = Table(
            title=f"attack {a.kind} at call {a.at_call} (crafted for variant {a.target})",
            title_justify="left",
            header_style="bold",
        )
        attack.add_column("variant")
        attack.add_column("reaction")
        attack.add_column("why")
        for r in a.reactions:
            attack.add_row(str(r.variant), r.reaction, r.reason)
        console.print(attack)
        console.print(f"detection: {_detection(a)} after the attack; harmful call before the verdict: {_harmful(a)}")


def render_suite(result: SuiteResult, console: Console) -> None:
    from rich.table import Table

    table = Table(title=f"sim suite {result.directory}", title_justify="left", header_style="bold")
    for column in ("scenario", "points", "headline", "outcome", "status"):
        table.add_column(column)
    for path, sim_result, error in result.results:
        file = Path(path).name
        if error is not None:
            table.add_row(file, "-", "-", error, "error", style="red")
            continue
        assert sim_result is not None
        points: Sequence[PointReport] = sim_result.points
        statuses = [p.as_expected for p in points]
        ok = all(s is not False for s in statuses)
        heads = ", ".join(headline(p) for p in points[:4]) + (" ..." if len(points) > 4 else "")
        outcomes = ", ".join(sorted({p.outcome.value for p in points}))
        table.add_row(
            file,
            str(len(points)),
            heads,
            outcomes,
            "as expected" if ok else "NOT as expected",
            style="" if ok else "red",
        )
    console.print(table)
