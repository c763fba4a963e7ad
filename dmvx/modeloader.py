"""Where each command's work lives, and the one loader that finds it.

The ``dmvx`` command (:mod:`dmvx.cli`) and the lab checkers
(:mod:`dmvx.lab.modes`) both reach the modes the same way: by module and
function name, imported only when first needed, so ``dmvx --help`` never
loads SimPy, scapy or python-ptrace and a mode that is not built costs
nothing but the UNAVAILABLE status. Neither mode imports the other; where a
command needs both (``dmvx suite --mode both``, ``dmvx calibrate --check``),
the CLI loads each here and combines their results itself.

This module imports no mode: :func:`load` goes through :mod:`importlib` by
name, which is what lets the core stay sans-IO (tests/test_core_purity.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dmvx.exitstatus import EnvironmentProblem, Unavailable

#: Our own top-level packages: a missing module among them is a bug in dmvx,
#: while any other missing module is a broken environment.
OWN_PACKAGES = frozenset({"dmvx", "sim", "realmode"})


@dataclass(frozen=True)
class ModeEntry:
    """A mode's function a command calls, and what to say while it is not built.

    ``command`` is the command line a user types to reach it: it names the
    part that is missing when the caller (a lab checker) has no command of
    its own to name."""

    module: str
    function: str
    missing: str
    command: str = "dmvx"


_REAL_LATER = "(see issue 5)"
SIM_RUN = ModeEntry("sim.cli_entry", "run", "simulation mode is not built yet (see issue 3)", "dmvx sim")
SIM_PLOT = ModeEntry("sim.plot", "draw", "the plots of simulation mode are not built yet", "dmvx sim --plot")
SIM_SUITE = ModeEntry("sim.cli_entry", "suite", "the suite runner of simulation mode is not built yet", "dmvx suite")
SIM_PREDICT = ModeEntry(
    "sim.cli_entry",
    "calibration_predictions",
    "sim's predictions for the calibration check are not built yet",
    "dmvx calibrate",
)
REAL_RUN = ModeEntry("realmode.cli_entry", "real", f"real mode is not built yet {_REAL_LATER}", "dmvx real")
REAL_PROGRAM = ModeEntry("realmode.cli_entry", "run_program", f"real mode is not built yet {_REAL_LATER}", "dmvx run")
REAL_DOCTOR = ModeEntry(
    "realmode.cli_entry", "doctor", "the check of a topology's machines is not built yet", "dmvx doctor"
)
REAL_AGENT = ModeEntry(
    "realmode.net.remote_agent", "main", "the agent dmvx real starts on a machine is not built yet", "dmvx agent"
)
REAL_SUITE = ModeEntry(
    "realmode.cli_entry", "suite", f"the suite runner of real mode is not built yet {_REAL_LATER}", "dmvx suite"
)
REAL_CALIBRATE = ModeEntry(
    "realmode.cli_entry", "calibrate", "calibration is not built yet (see issue 7)", "dmvx calibrate"
)
REAL_MEASURE = ModeEntry(
    "realmode.cli_entry",
    "calibration_measurements",
    "real mode's measurements for the calibration check are not built yet",
    "dmvx calibrate",
)
VALIDATE = ModeEntry("dmvx.validate", "validate_file", "the file validator is not built yet", "dmvx validate")
LAB_LIST = ModeEntry("dmvx.lab.entry", "list_labs", "the teaching labs are not built yet", "dmvx lab list")
LAB_CHECK = ModeEntry("dmvx.lab.entry", "check", "the lab checkers are not built yet", "dmvx lab check")
LAB_WATCH = ModeEntry(
    "dmvx.lab.entry", "watch", "the trace watcher is missing from this installation", "dmvx lab watch"
)


def load(entry: ModeEntry, who: str | None = None) -> Callable[..., Any]:
    """Import ``entry``'s function now, or raise :class:`Unavailable` naming
    ``who`` (default: the entry's own command).

    Only the absence of the entry module itself (or of its package) means
    "not built yet". A module *inside* it that fails to import is a bug and
    propagates; a third-party package missing is the environment's fault
    (:class:`EnvironmentProblem`).
    """
    prefix = who if who is not None else entry.command
    try:
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if entry.module == missing or entry.module.startswith(missing + "."):
            raise Unavailable(f"{prefix}: {entry.missing}") from None
        if missing.partition(".")[0] not in OWN_PACKAGES:
            raise EnvironmentProblem(f"the Python package {missing!r} is missing; run ./run setup") from exc
        raise
    function: Callable[..., Any] | None = getattr(module, entry.function, None)
    if function is None:
        raise Unavailable(f"{prefix}: {entry.missing}")
    return function
