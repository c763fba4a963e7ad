"""``python -m realmode.corpus``: run the corpus and print the false-divergence
count per preset (docs/realmode.md, "The corpus").

``--projects`` runs real projects' own test suites instead
(:mod:`realmode.corpus.projects`) and prints each one's pass count natively
and under each preset.

Exits 0 when every entry without a known reason agreed under every preset,
1 (as a divergence) otherwise, 2 on a bad command line, 4 when not root,
130 on Ctrl-C or SIGTERM (every run in progress stopped, its work
directory removed).
"""

from __future__ import annotations

import argparse
import compileall
import os
import queue
import signal
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dmvx
import realmode
from dmvx.exitstatus import ExitStatus
from realmode.corpus import projects
from realmode.corpus.commands import SETS, Entry
from realmode.corpus.fixtures import environment
from realmode.corpus.run import Comparison, available, compare, hold_signals, stop_runs

POLICIES = ("dmvx", "dmon")


def main(argv: list[str] | None = None) -> int:
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("corpus: interrupted: every run stopped, nothing left behind", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(_signum: int, _frame: object) -> None:
    """SIGTERM ends the corpus as Ctrl-C does."""
    raise KeyboardInterrupt


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realmode.corpus", description=__doc__.splitlines()[0])
    parser.add_argument(
        "-k", dest="only", action="append", default=[], help="run only entries whose name contains this (repeatable)"
    )
    parser.add_argument("--policy", action="append", choices=POLICIES, help="a preset (repeatable; default both)")
    parser.add_argument("--set", dest="set", choices=sorted(SETS), default="all", help="which entries (default all)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="run each entry N times per preset")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run N entries at once, each in its own work directory (default 1)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every entry, not only divergences")
    parser.add_argument(
        "--projects", action="store_true", help="run real projects' own test suites instead (pip fetches them once)"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dmvx" / "projects",
        help="where --projects keeps the source distributions it fetched (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("corpus: dmvx run needs root (ptrace of every variant)", file=sys.stderr)
        return ExitStatus.ENVIRONMENT
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    policies = tuple(args.policy or POLICIES)
    if args.projects:
        return _projects(parser, args, policies)
    entries = [e for e in SETS[args.set] if not args.only or any(k in e.name for k in args.only)]
    if not entries:
        parser.error(f"no corpus entry matches {args.only}")
    skipped = [e.name for e in entries if not available(e)]
    entries = [e for e in entries if available(e)]
    _compile_dmvx()
    failures: dict[str, list[Comparison]] = {p: [] for p in policies}
    with tempfile.TemporaryDirectory(prefix="dmvx-corpus-") as base:
        # One work directory per job: an entry's native run and its runs
        # under dmvx share one (their outputs may name its path).
        works: queue.SimpleQueue[Path] = queue.SimpleQueue()
        for job in range(args.jobs):
            works.put(Path(base) / f"work{job}" if args.jobs > 1 else Path(base) / "work")

        def one(entry: Entry) -> list[Comparison]:
            work = works.get()
            try:
                return compare(entry, work, policies)
            finally:
                works.put(work)

        # Round after round (each entry once a round): a run cut short has
        # as many runs of every entry, give or take one.
        tasks = [entry for _ in range(args.repeat) for entry in entries]
        # The runs are sessions of their own (out of the terminal's reach):
        # on Ctrl-C they are stopped here, and the pool's threads end with
        # them, before the work directories go.
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            try:
                for results in pool.map(one, tasks):  # in order, as they come
                    for result in results:
                        if not result.agrees:
                            failures[result.policy].append(result)
                        if not result.agrees or args.verbose:
                            print(_line(result), flush=True)
            except KeyboardInterrupt:
                hold_signals()
                pool.shutdown(wait=False, cancel_futures=True)
                stop_runs()
                raise
    runs = len(entries) * args.repeat
    if skipped:
        print(f"skipped (programs missing): {', '.join(skipped)}")
    unexpected = 0
    for policy in policies:
        found = failures[policy]
        known = sum(1 for r in found if r.entry.known)
        unexpected += len(found) - known
        print(
            f"false divergences under {policy}: {len(found)} of {runs} runs "
            f"({known} known: {', '.join(sorted({r.entry.name for r in found if r.entry.known})) or 'none'})"
        )
    return ExitStatus.DIVERGENCE if unexpected else ExitStatus.OK


def _line(result: Comparison) -> str:
    """One run as ``-v`` prints it (and every run that did not agree)."""
    entry = result.entry
    mark = "ok" if result.agrees else ("KNOWN" if entry.known else "FALSE")
    detail = "; ".join(result.problems) or f"{result.under.seconds:.2f}s"
    return f"[{result.policy}] {mark:5} {entry.name}: {detail}" + (
        f" ({entry.known})" if entry.known and not result.agrees else ""
    )


def _compile_dmvx() -> None:
    """Write dmvx's bytecode once, before the runs: every run starts
    ``python -m dmvx`` afresh, and with ``PYTHONDONTWRITEBYTECODE`` (the
    fixtures' environment sets it, so that programs under test write no
    caches) and no ``.pyc`` beside the sources each start compiled all of
    dmvx again -- a third of a short run's CPU time."""
    for package in (dmvx, realmode):
        compileall.compile_dir(package.__path__[0], quiet=2)


def _projects(parser: argparse.ArgumentParser, args: argparse.Namespace, policies: tuple[str, ...]) -> int:
    """``--projects``: each project's suite natively and under each preset."""
    chosen = [p for p in projects.PROJECTS if not args.only or any(k in p.name for k in args.only)]
    if not chosen:
        parser.error(f"no project matches {args.only}")
    sdists = {project.name: projects.fetch(project, args.cache) for project in chosen}  # the network, once
    diverged = dict.fromkeys(policies, 0)
    with tempfile.TemporaryDirectory(prefix="dmvx-projects-") as base:
        env = environment(Path(base))
        Path(env["HOME"]).mkdir()
        for project in chosen:
            for _ in range(args.repeat):
                results = projects.compare(project, sdists[project.name], policies, env)
                native = results[0].native
                line = [f"{project.name} ({project.requirement}, {project.runner}): native {native.tally}"]
                for result in results:
                    if not result.agrees:
                        diverged[result.under.policy or ""] += 1
                    state = "agrees" if result.agrees else "FALSE: " + "; ".join(result.problems)
                    line.append(
                        f"{result.under.policy} {result.under.tally} in {result.under.ran.seconds:.0f} s, {state}"
                    )
                print("; ".join(line), flush=True)
    runs = len(chosen) * args.repeat
    for policy in policies:
        print(f"false divergences under {policy}: {diverged[policy]} of {runs} suite runs")
    return ExitStatus.DIVERGENCE if any(diverged.values()) else ExitStatus.OK


if __name__ == "__main__":
    sys.exit(main())
