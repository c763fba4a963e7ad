"""The core decides, the modes do: nothing under ``dmvx/`` may import a
socket, a clock, a process or thread API, SimPy, ptrace, Mininet or scapy.

This scans the source (imports inside functions included), so a lazy import
cannot slip through either.
"""

from __future__ import annotations

import ast
from pathlib import Path

FORBIDDEN = {
    "socket",
    "socketserver",
    "ssl",
    "select",
    "selectors",
    "asyncio",
    "time",
    "datetime",
    "subprocess",
    "multiprocessing",
    "threading",
    "concurrent",
    "signal",
    "sched",
    "simpy",
    "ptrace",
    "mininet",
    "scapy",
    "ctypes",
    "mmap",
    "fcntl",
    "termios",
    "pty",
    "sim",
    "realmode",
}
CORE = Path(__file__).resolve().parent.parent / "dmvx"
LAB = CORE / "lab"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_modules_import_no_io_clock_or_process_api() -> None:
    offenders = {
        str(path.relative_to(CORE.parent)): sorted(_imports(path) & FORBIDDEN)
        for path in sorted(CORE.rglob("*.py"))
        if path.name != "cli.py"  # the CLI dispatches to the modes, lazily, by name
        and LAB not in path.parents  # lab checkers run the modes, lazily, by name, as the CLI does
    }
    offenders = {path: names for path, names in offenders.items() if names}
    assert not offenders, f"the core must stay sans-IO: {offenders}"


def test_cli_reaches_the_modes_only_by_name() -> None:
    for path in [CORE / "cli.py", *sorted(LAB.rglob("*.py"))]:
        assert not (_imports(path) & (FORBIDDEN - {"time", "signal"})), f"{path} imports a mode directly"
