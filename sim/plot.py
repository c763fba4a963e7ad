"""``--plot FILE``: the sweep as a figure worth putting in a paper.

The figure is drawn from the run's summary rows (:meth:`sim.results.SimResult.summary`:
one row per point, parameters in SI base units), so it does not depend on
the order of the sweep's parameters:

- the x axis is the numeric parameter with the most values, on a numeric
  axis (logarithmic when the values span a factor of ten or more), labelled
  with the parameter's path and unit, its ticks at the swept values;
- every other parameter (a preset, a diversity setting, a second numeric
  one) makes one line per value, named in the legend; with no numeric
  parameter, the points are grouped bars over the one with the most values;
- the y axis is the slowdown against the native run (a server: the
  throughput overhead); an attack sweep gets two panels instead, the calls
  the leader ran between the attack and the verdict ("calls ahead") and the
  time to detection, a miss marked on the axis;
- with repetitions (``--seeds``, ``--at-calls``) each line is the mean, a
  band spans min to max and error bars the 95% interval;
- ``--timeline`` adds a panel of how far each variant got over virtual time
  in one run (the first attacked point, else the first), named in its title.

The format is the file's suffix: ``.png`` (raster, 150 dpi), ``.svg`` or
``.pdf`` (vector, for LaTeX).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmvx.errors import InputError
from dmvx.rows import BITS_PER_SECOND, BYTES, SECONDS, TEXT, Rows, Value
from sim.report import Timeline

if TYPE_CHECKING:
    from sim.results import SimResult

#: The suffixes --plot writes, and matplotlib's name for each.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def check_path(path: Path) -> str:
    """The format of ``path`` by its suffix, or one line saying which exist."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"cannot draw a {path.suffix or 'suffix-less'} file", file=str(path), expected="a .png, .svg or .pdf file"
        )
    return fmt


def _numeric(values: Sequence[Value]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)


def _number(value: Value) -> float:
    """A summary cell known to hold a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _distinct(values: Sequence[Value]) -> list[Value]:
    return list(dict.fromkeys(values))


def _unit_label(unit: str) -> str:
    return {SECONDS: "s", BYTES: "bytes", BITS_PER_SECOND: "bit/s"}.get(unit, "" if unit in (TEXT, "1") else unit)


def _axis_label(name: str, unit: str) -> str:
    shown = _unit_label(unit)
    return f"{name} ({shown})" if shown else name


def _formatter(unit: str) -> Any:
    from matplotlib.ticker import EngFormatter, ScalarFormatter

    shown = {SECONDS: "s", BYTES: "B", BITS_PER_SECOND: "bit/s"}.get(unit)
    return EngFormatter(unit=shown, sep=" ") if shown else ScalarFormatter()


def _short(value: float, unit: str) -> str:
    """``value`` to three digits with an SI prefix: 0.0042928 s as 4.29 ms."""
    return str(_formatter(unit)(float(f"{value:.3g}")))


def _text(value: Value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class _Layout:
    """Which parameter is the x axis and which make the lines."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        varying = [p for p in rows.parameters if len(_distinct(rows.column(p))) > 1]
        numeric = [p for p in varying if _numeric(rows.column(p))]
        pool = numeric or varying
        # The parameter with the most values is the x axis, whatever its place in the sweep.
        self.x = max(pool, key=lambda p: len(_distinct(rows.column(p))), default=None)
        self.numeric_x = self.x is not None and self.x in numeric
        self.series = [p for p in varying if p != self.x]

    def groups(self) -> dict[str, list[dict[str, Value]]]:
        """The rows of each line, by its legend label."""
        out: dict[str, list[dict[str, Value]]] = {}
        for record in self.rows.records():
            label = ", ".join(_series_label(p, record[p], self.rows) for p in self.series)
            out.setdefault(label, []).append(record)
        return out

    def x_label(self) -> str:
        return "" if self.x is None else _axis_label(self.x, self.rows.unit(self.x))


def _series_label(parameter: str, value: Value, rows: Rows) -> str:
    unit = rows.unit(parameter)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and unit in (SECONDS, BYTES, BITS_PER_SECOND):
        return f"{parameter} = {_formatter(unit).format_data(value)}".replace("  ", " ")
    plain = len(rows.parameters) == 1 or parameter in ("policy.preset", "setting")
    return _text(value) if plain else f"{parameter} = {_text(value)}"


def _panel(
    axes: Any, layout: _Layout, measure: str, ylabel: str, scale: float = 1.0, unit: str = "", integer: bool = False
) -> None:
    """One measure (``measure``_mean/_min/_max/_ci95 of the summary) per line;
    ``unit`` formats its ticks (``s``: 4 ms), ``integer`` keeps them whole (counts)."""
    groups = layout.groups()
    repeated = any(isinstance(n, int) and n > 1 for n in layout.rows.column("n"))
    categories = [] if layout.numeric_x or layout.x is None else _distinct(layout.rows.column(layout.x))
    width = 0.8 / max(1, len(groups))
    missed_x: list[float] = []
    for index, (label, records) in enumerate(groups.items()):
        xs: list[float] = []
        ys: list[float] = []
        lows: list[float] = []
        highs: list[float] = []
        errors: list[float] = []
        for r in records:
            if layout.x is None:
                x = float(index)
            elif layout.numeric_x:
                x = float(r[layout.x])  # type: ignore[arg-type]
            else:
                x = categories.index(r[layout.x]) + (index - (len(groups) - 1) / 2) * width
            mean = r.get(f"{measure}_mean")
            if mean is None:
                missed_x.append(x)
                continue
            xs.append(x)
            ys.append(_number(mean) * scale)
            lows.append(_number(r[f"{measure}_min"]) * scale)
            highs.append(_number(r[f"{measure}_max"]) * scale)
            ci = r.get(f"{measure}_ci95")
            errors.append(0.0 if ci is None else _number(ci) * scale)
        name = label or None
        if layout.numeric_x:
            (line,) = axes.plot(xs, ys, marker="o", label=name)
            if repeated:
                axes.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.15, linewidth=0)
                axes.errorbar(xs, ys, yerr=errors, fmt="none", ecolor=line.get_color(), capsize=3)
        else:
            bars = axes.bar(xs, ys, width=width if layout.x is not None else 0.6, label=name)
            if repeated:
                spans = [[y - lo for y, lo in zip(ys, lows)], [hi - y for y, hi in zip(ys, highs)]]
                axes.errorbar(xs, ys, yerr=spans, fmt="none", ecolor="black", capsize=3)
            for bar, y in zip(bars, ys):
                text = _short(y, unit) if unit else f"{y:,.0f}" if y >= 1000 else f"{y:.3g}"
                axes.annotate(text, (bar.get_x() + bar.get_width() / 2, y), ha="center", va="bottom", fontsize=8)
    if missed_x:
        axes.plot(missed_x, [0] * len(missed_x), "x", color="tab:red", markersize=9, clip_on=False, label="missed")
    if layout.numeric_x:
        values = sorted(float(v) for v in _distinct(layout.rows.column(layout.x)) if v is not None)  # type: ignore[arg-type]
        if values and values[0] > 0 and values[-1] / values[0] >= 10:
            axes.set_xscale("log")
        axes.set_xticks(values)
        axes.xaxis.set_major_formatter(_formatter(layout.rows.unit(layout.x)))  # type: ignore[arg-type]
        axes.xaxis.set_minor_locator(_null_locator())
        if len(values) > 6:
            axes.tick_params(axis="x", labelrotation=30)
    elif layout.x is not None:
        axes.set_xticks(range(len(categories)), [_text(c) for c in categories])
    else:
        axes.set_xticks([])
    axes.set_xlabel(layout.x_label())
    axes.set_ylabel(ylabel)
    if unit:
        axes.yaxis.set_major_formatter(_formatter(unit))
    if integer:
        from matplotlib.ticker import MaxNLocator

        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    positive = [
        float(v) * scale for v in layout.rows.column(f"{measure}_mean") if isinstance(v, (int, float)) and v > 0
    ]
    if positive and max(positive) / min(positive) > 30:
        axes.set_yscale("log")
    axes.grid(True, axis="both" if layout.numeric_x else "y", alpha=0.3)
    if any(groups) or missed_x:
        axes.legend(title=", ".join(layout.series) or None, fontsize=8)


def _null_locator() -> Any:
    from matplotlib.ticker import NullLocator

    return NullLocator()


def _timeline(axes: Any, result: SimResult, timelines: Sequence[Timeline | None]) -> None:
    points = result.points
    # The first attacked run, else the one where the leader ran furthest ahead: the panel is about the lead.
    lead = [max((lead.calls_max for lead in p.lead), default=0) for p in points]
    index = next((i for i, p in enumerate(points) if p.attack is not None), lead.index(max(lead)))
    timeline = timelines[index] if index < len(timelines) else None
    if timeline is None:
        return
    for name, samples in timeline.lines.items():
        if samples:
            axes.plot([t / 1e9 for t, _ in samples], [s for _, s in samples], label=name, drawstyle="steps-post")
    if timeline.attack_ns is not None:
        axes.axvline(timeline.attack_ns / 1e9, color="tab:red", linestyle="--", label="attack")
    if timeline.verdict_ns is not None:
        axes.axvline(timeline.verdict_ns / 1e9, color="black", linestyle=":", label="verdict")
    axes.set_xlabel("virtual time (s)")
    axes.xaxis.set_major_formatter(_formatter(SECONDS))
    axes.set_ylabel("compared calls entered")
    labels = ", ".join(f"{k} = {v}" for k, v in points[index].labels.items())
    axes.set_title(f"progress of one run{': ' + labels if labels else ''}", fontsize=9)
    axes.legend(fontsize=8)
    axes.grid(True, alpha=0.3)


def draw(path: Path, result: SimResult, timelines: Sequence[Timeline | None] | None = None) -> None:
    """Draw ``result`` into ``path`` (see the module docstring); ``timelines``
    (one per point, or None) adds the progress panel."""
    fmt = check_path(path)
    import matplotlib.pyplot as plt

    fig = figure(result, timelines)
    fig.savefig(path, format=fmt, dpi=150)
    plt.close(fig)


def figure(result: SimResult, timelines: Sequence[Timeline | None] | None = None) -> Any:
    """The matplotlib figure :func:`draw` writes (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.summary()
    layout = _Layout(rows)
    attack = any(p.attack is not None for p in result.points)
    server = result.points[0].server
    panels = 2 if attack else 1
    extra = 1 if timelines else 0
    fig, axes = plt.subplots(1, panels + extra, figsize=(5.5 * (panels + extra), 4.2), squeeze=False)
    row = axes[0]
    if attack:
        _panel(row[0], layout, "detection_calls", "calls ahead: leader calls from attack to verdict", integer=True)
        _panel(row[1], layout, "detection_time_s", "time to detection (s)", unit=SECONDS)
    elif server:
        _panel(row[0], layout, "throughput_overhead", "throughput overhead vs native (%)", scale=100.0)
    else:
        _panel(row[0], layout, "slowdown", "slowdown vs native (x)")
    if timelines:
        _timeline(row[-1], result, timelines)
    runs = max((r.get("n") or 1 for r in rows.records()), default=1)
    note = f"; mean of {runs} runs, band min-max, bars 95% interval" if isinstance(runs, int) and runs > 1 else ""
    fig.suptitle(f"{result.scenario} ({result.profile.name} profile{note})")
    fig.tight_layout()
    return fig
