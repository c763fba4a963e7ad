"""``dmvx calibrate``'s result: the profile it wrote and the check's rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmvx.exitstatus import ExitStatus
from realmode.calibrate.check import CheckRow
from realmode.calibrate.profile import Measurements


# ---------------------------------------------------------------------------
# ``dmvx calibrate``'s result
# ---------------------------------------------------------------------------

#: The issue's target: each predicted slowdown within 25% of the measured one.
TARGET_ERROR = 0.25


@dataclass
class CalibrationResult:
    """The :class:`dmvx.output.Result` of ``dmvx calibrate``."""

    profile_path: Path
    measurements: Measurements | None
    profile: dict[str, Any] | None
    rows: list[CheckRow] = field(default_factory=list)

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "profile_path": str(self.profile_path),
            "measurements": self.measurements.to_json() if self.measurements else None,
            "profile": self.profile,
            "check": [{"call": r.call, "policy": r.policy, "native_us": round(r.native_us, 4),
                       "predicted_us": round(r.predicted_us, 2), "measured_us": round(r.measured_us, 2),
                       "predicted_x": round(r.predicted_x, 1), "measured_x": round(r.measured_x, 1),
                       "error": round(r.error, 3), "within_target": abs(r.error) <= TARGET_ERROR,
                       "bound": r.bound}
                      for r in self.rows],
            "target_error": TARGET_ERROR,
        }

    def render(self, console: Any) -> None:
        from rich.table import Table

        if self.profile is not None:
            table = Table(title=f"dmvx calibrate: wrote {self.profile_path}", title_justify="left")
            table.add_column("section")
            table.add_column("values")
            for section in ("native", "interception", "monitor", "connector"):
                values = self.profile.get(section, {})
                if section == "native":
                    values = values.get("calls", {})
                table.add_row(section, ", ".join(f"{k} {v}" for k, v in values.items() if k != "used_by"))
            console.print(table)
        if self.rows:
            table = Table(title=f"sim ({self.profile_path.name}) vs real mode: microbenchmarks in us per call, "
                                f"lighttpd in us per request; slowdown vs native; target |error| <= "
                                f"{TARGET_ERROR:.0%}",
                          title_justify="left")
            for column in ("call", "policy", "native us", "sim us", "real us", "sim x", "real x", "error", "sim bound by"):
                table.add_column(column, justify="left" if column in ("call", "policy", "sim bound by") else "right")
            for r in self.rows:
                mark = "" if abs(r.error) <= TARGET_ERROR else " [red](!)[/]"
                table.add_row(r.call, r.policy, f"{r.native_us:.3f}", f"{r.predicted_us:.1f}",
                              f"{r.measured_us:.1f}", f"{r.predicted_x:.0f}x", f"{r.measured_x:.0f}x",
                              f"{r.error:+.0%}{mark}", r.bound)
            console.print(table)
