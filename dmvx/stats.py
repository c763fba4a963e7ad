"""Repetitions summed up: mean, min, max and a 95% interval per measure.

One run is one seed and one attack position, and what it measures can
depend on both (the leader's lead at the verdict depends on where in the
run the attack lands). A scenario's ``repeat:`` (or ``--seeds``,
``--at-calls``) runs every point over several of each; :func:`summarize`
folds those runs into one row per point of the sweep.

The interval is Student's t interval of the mean, ``mean ± t(0.975, n-1) *
s / sqrt(n)``: it assumes the runs are independent draws, which different
seeds are, and attack positions chosen by the experimenter are not quite;
min and max are always given beside it, and with one run it is empty.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from dmvx.rows import COUNT, FRACTION, TEXT, Column, Rows, Value

#: t(0.975, df) for df = 1..30 (two-sided 95%).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959964


def t975(df: int) -> float:
    """Student's t quantile at 0.975 for ``df`` degrees of freedom: the table
    up to 30, then the Cornish-Fisher expansion (within 0.001 of the exact value)."""
    if df < 1:
        raise ValueError(f"df {df} < 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Summary:
    """A measure over the runs of one point."""

    n: int
    mean: float
    min: float
    max: float
    #: Half the width of the 95% interval of the mean (None with one run).
    ci95: float | None

    @property
    def low(self) -> float | None:
        return None if self.ci95 is None else self.mean - self.ci95

    @property
    def high(self) -> float | None:
        return None if self.ci95 is None else self.mean + self.ci95


def summary(values: Sequence[float]) -> Summary:
    """Mean, min, max and the 95% interval of ``values`` (at least one)."""
    if not values:
        raise ValueError("no values to sum up")
    n = len(values)
    mean = math.fsum(values) / n
    ci = None if n < 2 else t975(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Summary(n, _round(mean), min(values), max(values), None if ci is None else _round(ci))


def _round(x: float) -> float:
    """12 significant digits: the same runs give the same text, whatever the summation order's last bit."""
    return float(f"{x:.12g}")


#: The statistics each numeric measure gets, as column suffixes.
STATISTICS = ("mean", "min", "max", "ci95")


def summarize(rows: Rows, over: Sequence[str], measures: Sequence[str], first: Sequence[str] = ()) -> Rows:
    """One row per point: ``rows`` grouped by their parameter columns other
    than ``over`` (the repetitions), in first-seen order.

    Each row has the point's parameters, ``n`` (runs), then for each numeric
    column of ``measures`` its ``_mean``, ``_min``, ``_max`` and ``_ci95``
    (empty where no run had a value); a flag column becomes ``_fraction``
    (of the runs with a value, how many were true); any other text column is
    kept when every run agrees, else counted (``divergence:4 missed:1``).
    ``first``: text columns (such as the file) that lead each row, kept as
    the first run of the point has them."""
    keys = [p for p in rows.parameters if p not in over]
    groups: dict[tuple[Value, ...], list[dict[str, Value]]] = {}
    for run in rows.records():
        groups.setdefault(tuple(run.get(k) for k in keys), []).append(run)
    by_name = {c.name: c for c in rows.columns}
    columns = [by_name[k] for k in first] + [by_name[k] for k in keys] + [Column("n", COUNT, "runs of this point")]
    kinds: dict[str, str] = {}
    for name in measures:
        values = [r[name] for r in rows.records() if r.get(name) is not None]
        column = by_name[name]
        if values and all(isinstance(v, bool) for v in values):
            kinds[name] = "flag"
            columns.append(Column(f"{name}_fraction", FRACTION, f"runs where {name} was true"))
        elif column.unit != TEXT:
            kinds[name] = "number"
            columns += [Column(f"{name}_{s}", column.unit, f"{s} of {name} over the runs") for s in STATISTICS]
        else:
            kinds[name] = "text"
            columns.append(column)
    out = []
    for key, members in groups.items():
        record: dict[str, Value] = {k: members[0].get(k) for k in first}
        record.update(zip(keys, key))
        record["n"] = len(members)
        for name, kind in kinds.items():
            values = [m[name] for m in members if m.get(name) is not None]
            if kind == "flag":
                record[f"{name}_fraction"] = _round(sum(bool(v) for v in values) / len(values)) if values else None
            elif kind == "number":
                numbers = [float(v) for v in values if isinstance(v, (int, float))]
                if numbers:
                    s = summary(numbers)
                    record.update({f"{name}_{stat}": getattr(s, stat) for stat in STATISTICS})
            else:
                record[name] = _counted(values)
        out.append(record)
    return Rows.from_records(columns, out, keys)


def _counted(values: Sequence[Value]) -> Value:
    if not values:
        return None
    distinct = list(dict.fromkeys(values))
    if len(distinct) == 1:
        return distinct[0]
    return " ".join(f"{v}:{values.count(v)}" for v in distinct)
