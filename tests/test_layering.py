"""sim/ and realmode/ are siblings around the core: neither imports the
other, and nothing but the benchmarks themselves imports benchmarks/.

What both modes use lives in the core (``dmvx/``); a command that needs both
(``dmvx suite --mode both``, ``dmvx calibrate --check``) loads each by name
(:mod:`dmvx.modeloader`) and combines them in the CLI. This scans the
source, imports inside functions included, as tests/test_core_purity.py
does for the core.
"""

from __future__ import annotations

from pathlib import Path

from test_core_purity import _imports as imported_packages

REPO = Path(__file__).resolve().parent.parent
#: What each package's modules must not import.
FORBIDDEN = {
    "sim": {"realmode", "benchmarks"},
    "realmode": {"sim", "benchmarks"},
    "dmvx": {"benchmarks"},
    "tests": {"benchmarks"},
    "tools": {"benchmarks"},
}


def offenders(package: str) -> dict[str, list[str]]:
    found = {}
    for path in sorted((REPO / package).rglob("*.py")):
        bad = imported_packages(path) & FORBIDDEN[package]
        if bad:
            found[str(path.relative_to(REPO))] = sorted(bad)
    return found


def test_sim_imports_neither_realmode_nor_benchmarks() -> None:
    assert not offenders("sim"), "sim must not import real mode or the benchmarks"


def test_realmode_imports_neither_sim_nor_benchmarks() -> None:
    assert not offenders("realmode"), "real mode must not import sim or the benchmarks"


def test_nothing_outside_benchmarks_imports_them() -> None:
    found = {**offenders("dmvx"), **offenders("tests"), **offenders("tools")}
    assert not found, "move what is shared out of benchmarks/ (into realmode/ or the core)"


def test_the_scan_sees_a_lazy_import(tmp_path: Path) -> None:
    """An import inside a function counts as much as one at the top."""
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from sim.runner import simulate\n    import benchmarks.bench_real\n")
    assert imported_packages(module) == {"sim", "benchmarks"}
