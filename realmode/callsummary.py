"""The per-call summary of a real run (``dmvx run --summary``, ``dmvx real --summary``).

``strace -c`` tells which calls a program's time went to; a researcher
asking where MVX's overhead goes needs the same per route: a ``read`` the
leader replicates costs the follower a wait for the leader's entry, a
lockstep ``execve`` costs every variant a round trip. Each variant's tracer
counts its calls where it handles their stops (:mod:`realmode.tracer.tally`);
this module turns the tallies of every variant into one typed
:class:`CallSummary`: a row per variant, call and route (the core's route
names, :class:`dmvx.policy.Route`), its JSON, its flat rows for ``--format``
and its table for people.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dmvx.policy import Route
from dmvx.rows import COUNT, SECONDS, TEXT, Column, Rows
from dmvx.verdict import variant_name

#: The key of a tracer's figures that holds its tally.
STATS_KEY = "calls"

#: The columns of ``--format`` with ``--summary`` (docs/cli.md).
COLUMNS = (
    Column("variant", TEXT, "leader, follower 1, ..."),
    Column("call", TEXT, "the call's name, as the core's table names it"),
    Column("route", TEXT, "the route the core's broker gave it: lockstep, replicate, local, local-file, predict"),
    Column("calls", COUNT, "how many times the variant stopped at it on that route"),
    Column("errors", COUNT, "how many of those returned an error to the program"),
    Column("stopped_s", SECONDS, "time from the entry stop until the monitors released the call"),
    Column("monitor_s", SECONDS, "time inside the core's monitor methods for the call"),
)


@dataclass(frozen=True, slots=True)
class CallRow:
    """One call on one route in one variant."""

    variant: int
    call: str
    route: Route
    calls: int
    errors: int
    stopped_s: float
    monitor_s: float

    @property
    def stopped_per_call_us(self) -> float:
        return self.stopped_s / self.calls * 1e6 if self.calls else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": variant_name(self.variant),
            "call": self.call,
            "route": self.route.value,
            "calls": self.calls,
            "errors": self.errors,
            "stopped_s": round(self.stopped_s, 9),
            "monitor_s": round(self.monitor_s, 9),
        }


@dataclass(frozen=True, slots=True)
class CallSummary:
    """Every variant's calls, per call and route; in each variant, the call
    that kept it stopped longest first (as ``strace -c`` sorts by time)."""

    rows: tuple[CallRow, ...]

    @classmethod
    def of(cls, variants: Iterable[tuple[int, Mapping[str, Any]]]) -> CallSummary:
        """The summary of ``(variant index, its tracer's figures)`` pairs; a
        variant whose tracer reported no tally (it failed to start) has no rows."""
        rows = []
        for index, stats in variants:
            for name, route, calls, errors, stopped_ns, monitor_ns in stats.get(STATS_KEY, ()):
                rows.append(CallRow(index, name, Route(route), calls, errors, stopped_ns / 1e9, monitor_ns / 1e9))
        rows.sort(key=lambda r: (r.variant, -r.stopped_s, r.call, r.route.value))
        return cls(tuple(rows))

    def to_json(self) -> list[dict[str, Any]]:
        return [row.to_json() for row in self.rows]

    def table(self, **run: Any) -> Rows:
        """The flat rows of ``--format`` (:data:`COLUMNS`); ``run`` adds
        columns every row repeats first (``policy``)."""
        columns = tuple(Column(name, TEXT) for name in run) + COLUMNS
        return Rows.from_records(columns, [{**run, **row.to_json()} for row in self.rows])

    def render(self, console: Any) -> None:
        """One table per variant on ``console``, with a total line."""
        from rich.table import Table

        for index in sorted({row.variant for row in self.rows}):
            mine = [row for row in self.rows if row.variant == index]
            stopped = sum(row.stopped_s for row in mine)
            table = Table(title=f"dmvx: calls of the {variant_name(index)}", title_justify="left", show_footer=True)
            for header, footer in (
                ("% stopped", "100.00" if stopped else ""),
                ("stopped s", f"{stopped:.6f}"),
                ("us/call", ""),
                ("monitor s", f"{sum(row.monitor_s for row in mine):.6f}"),
                ("calls", str(sum(row.calls for row in mine))),
                ("errors", str(sum(row.errors for row in mine) or "")),
            ):
                table.add_column(header, footer, justify="right")
            table.add_column("route", "")
            table.add_column("call", "total")
            for row in mine:
                table.add_row(
                    f"{row.stopped_s / stopped * 100:.2f}" if stopped else "",
                    f"{row.stopped_s:.6f}",
                    f"{row.stopped_per_call_us:.0f}",
                    f"{row.monitor_s:.6f}",
                    str(row.calls),
                    str(row.errors or ""),
                    row.route.value,
                    row.call,
                )
            console.print(table)


def take(stats: dict[str, Any]) -> dict[str, Any]:
    """A tracer's figures with its tally taken out (the summary holds it)."""
    return {key: value for key, value in stats.items() if key != STATS_KEY}
