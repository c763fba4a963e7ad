"""``--plot FILE.png``: slowdown (or overhead) per point, and a progress timeline.

The left panel shows the headline number of every point: bars for a single
run or a handful of cases, a curve over the swept values otherwise (one
curve per value of a second parameter). The right panel shows how far each
variant had got over time -- compared calls against virtual time -- for the
first point, or the first attacked one, with the attack and the verdict
marked: the distance between the leader's line and a follower's is the
leader's lead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dmvx.outcome import Ending
from sim.report import PointReport, Timeline


def _value(point: PointReport) -> float:
    mvx = point.mvx
    if point.server:
        return float(mvx.overhead_pct or 0.0)
    return float(mvx.slowdown)


def _text(point: PointReport, key: str) -> str:
    from sim.table import shown

    text = shown(point, key)
    return text if len(text) <= 24 else text[:21] + "..."


def _point_label(point: PointReport) -> str:
    return " / ".join(_text(point, key) for key in point.labels) or point.policy.name


def _headline(
    axes: Any, points: Sequence[PointReport], dimensions: Sequence[tuple[str, list[Any]]], server: bool
) -> None:
    values = [_value(p) for p in points]
    if len(dimensions) >= 1 and len(dimensions[0][1]) >= 3 and len(dimensions) <= 2:
        outer = dimensions[0][0]
        groups: dict[str, list[float]] = {}
        ticks: list[str] = []
        for p, v in zip(points, values):
            key = _text(p, dimensions[1][0]) if len(dimensions) == 2 else "mvx"
            groups.setdefault(key, []).append(v)
            if _text(p, outer) not in ticks:
                ticks.append(_text(p, outer))
        for key, ys in groups.items():
            axes.plot(range(len(ys)), ys, marker="o", label=key)
        axes.set_xticks(range(len(ticks)), ticks, rotation=30, ha="right")
        axes.set_xlabel(outer)
        if len(groups) > 1:
            axes.legend(title=dimensions[1][0])
    else:
        colors = ["tab:red" if p.policy.name == "dmon" else "tab:blue" for p in points]
        axes.bar(range(len(points)), values, color=colors)
        axes.set_xticks(range(len(points)), [_point_label(p) for p in points], rotation=30, ha="right")
        for x, v in enumerate(values):
            axes.annotate(f"{v:.1f}%" if server else f"{v:.2f}x", (x, v), ha="center", va="bottom", fontsize=8)
    positive = [v for v in values if v > 0]
    if not server and positive and max(positive) / min(positive) > 30:
        axes.set_yscale("log")
    axes.set_ylabel("throughput overhead vs native (%)" if server else "slowdown vs native (x)")
    axes.grid(True, axis="y", alpha=0.3)


def _detection_bars(axes: Any, points: Sequence[PointReport]) -> None:
    """Attack runs: time from the attack to the verdict; misses marked."""
    heights, colors = [], []
    for p in points:
        detection = p.attack.detection if p.attack else None
        heights.append(detection.time_ns / 1e3 if detection else 0.0)
        colors.append(
            "tab:red"
            if p.outcome is Ending.MISSED
            else "tab:orange"
            if p.attack and p.attack.harmful_before_verdict
            else "tab:green"
        )
    axes.bar(range(len(points)), heights, color=colors)
    for x, (p, h) in enumerate(zip(points, heights)):
        axes.annotate(
            "missed" if p.outcome is Ending.MISSED else f"{h:.0f} us", (x, h), ha="center", va="bottom", fontsize=8
        )
    axes.set_xticks(range(len(points)), [_point_label(p) for p in points], rotation=30, ha="right")
    axes.set_ylabel("detection latency (us); orange: harmful call ran first")
    axes.grid(True, axis="y", alpha=0.3)


def draw(
    path: Path,
    points: Sequence[PointReport],
    timelines: Sequence[Timeline | None],
    dimensions: Sequence[tuple[str, list[Any]]],
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    server = points[0].server
    attack = any(p.attack is not None for p in points)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    fig.suptitle(title)
    if attack:
        _detection_bars(left, points)
    else:
        _headline(left, points, dimensions, server)

    index = next((i for i, p in enumerate(points) if p.attack is not None), 0)
    timeline = timelines[index] if index < len(timelines) else None
    if timeline:
        for name, samples in timeline.lines.items():
            if samples:
                right.plot([t / 1e6 for t, _ in samples], [s for _, s in samples], label=name, drawstyle="steps-post")
        if timeline.attack_ns is not None:
            right.axvline(timeline.attack_ns / 1e6, color="tab:red", linestyle="--", label="attack")
        if timeline.verdict_ns is not None:
            right.axvline(timeline.verdict_ns / 1e6, color="black", linestyle=":", label="verdict")
        right.set_xlabel("virtual time (ms)")
        right.set_ylabel("compared calls entered")
        labels = " / ".join(_text(points[index], key) for key in points[index].labels)
        right.set_title(f"progress{': ' + labels if labels else ''}")
        right.legend()
        right.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
