"""CPU a lighttpd request costs each process of the in-process pipeline, for one or more trees, interleaved.

The in-process path's cost is Python per record, spread over four processes (each
variant's monitor and CONNECTOR) beside the two programs. Wall-clock throughput on a
shared machine says more about the neighbours than about a change; the CPU each process
spends per request does not. For every tree in turn (A, B, A, B, ...; each with its own
``.venv``) this starts lighttpd under ``dmvx run --in-process on``, sends a warm-up of
``ab -c 1`` requests (start-up and the first requests taken off), reads every pipeline
process's ``/proc/PID/stat`` (utime + stime), sends ``--requests`` more, reads again, and
prints the difference per request, with the follower library's fallbacks (a call it left
to its tracer: its entry came too late, or did not match) per 1,000 requests, read from
the follower's shared area (the monitor's memfd) before and after.

    .venv/bin/python tools/inproc_cpu.py TREE [TREE ...] [--rounds 2] [--requests 2000]
        [--warmup 300] [--placement split|spread] [--py-spy OUT.txt]

``--py-spy``: the first tree's first round also records the follower's monitor with
``py-spy record --format raw`` (folded stacks) into that file while ab runs (py-spy
must be on PATH or in the tree's ``.venv/bin``). Needs root, lighttpd and ab.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realmode.inproc import layout  # noqa: E402
from realmode.lighttpd_local import free_port, wait_listening  # noqa: E402
from realmode.net import lighttpd  # noqa: E402

#: The orchestrator forks, per variant, its CONNECTOR and then its monitor
#: (realmode/spawn.py); each monitor's child is the variant's program.
ROLES = ("leader connector", "leader monitor", "follower connector", "follower monitor")
TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return sorted(found)


def _cpu(pid: int) -> float:
    """Seconds of CPU ``pid`` has used (every thread: utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _pipeline(run_pid: int) -> dict[str, int]:
    """The pipeline's processes by role, once all have started."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kids = _children(run_pid)
        if len(kids) >= 4:
            named = dict(zip(ROLES, kids[:4], strict=True))
            programs = [_children(named["leader monitor"]), _children(named["follower monitor"])]
            if all(programs):
                named["leader program"] = programs[0][0]
                named["follower program"] = programs[1][0]
                return named
        time.sleep(0.2)
    raise SystemExit(f"inproc_cpu: dmvx run {run_pid} did not start its four pipeline processes")


def _area_counts(monitor: int) -> tuple[int, int] | None:
    """(fast calls, fallbacks) of the first shared area ``monitor`` holds."""
    for fd in sorted(Path(f"/proc/{monitor}/fd").iterdir(), key=lambda p: int(p.name)):
        try:
            if "dmvx-dipmon" not in os.readlink(fd):
                continue
            handle = os.open(fd, os.O_RDONLY)
        except OSError:
            continue
        try:
            words = os.pread(handle, 16, layout.H_FAST)
        finally:
            os.close(handle)
        return int.from_bytes(words[:8], "little"), int.from_bytes(words[8:], "little")
    return None


def _ab(port: int, requests: int) -> float:
    url = f"http://127.0.0.1:{port}{lighttpd.AB_PATH}"
    done = subprocess.run(["ab", "-q", "-s", "60", "-n", str(requests), "-c", "1", url], capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("Requests per second:"):
            return float(line.split()[3])
    raise SystemExit(f"inproc_cpu: ab failed: {done.stdout[-500:]} {done.stderr[-500:]}")


def measure(tree: Path, args: argparse.Namespace, profile: Path | None) -> dict[str, float]:
    """One run on ``tree``: CPU us per request by role, fallbacks per 1,000 requests, req/s."""
    python = tree / ".venv" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"inproc_cpu: {python} is missing: run ./run setup in {tree} first")
    with tempfile.TemporaryDirectory(prefix="inproc-cpu-") as tmp:
        port = free_port()
        config, _ = lighttpd.make_tree(Path(tmp), port, "127.0.0.1")
        placed = ["--placement", args.placement] if args.placement else []
        argv = [str(python), "-m", "dmvx", "run", "--in-process", "on", "--json", *placed, "--"]
        argv += [lighttpd.programs()[0], "-D", "-f", str(config)]
        server = subprocess.Popen(argv, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        spy = None
        try:
            wait_listening(60.0, port)
            _ab(port, args.warmup)
            pids = _pipeline(server.pid)
            before = {role: _cpu(pid) for role, pid in pids.items()}
            counts = _area_counts(pids["follower monitor"])
            if profile is not None:
                spy_bin = shutil.which("py-spy") or str(tree / ".venv" / "bin" / "py-spy")
                spy = subprocess.Popen(
                    [spy_bin, "record", "--format", "raw", "-r", "250", "-o", str(profile)]
                    + ["-p", str(pids["follower monitor"])],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            rate = _ab(port, args.requests)
            after = {role: _cpu(pid) for role, pid in pids.items()}
            counts_after = _area_counts(pids["follower monitor"])
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=30)
            server.send_signal(signal.SIGTERM)
            try:
                out, err = server.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                out, err = server.communicate()
    if "divergence" in err:
        print(f"  {tree}: the run reported a divergence: {err.strip().splitlines()[-1]}", file=sys.stderr)
    figures = {role: 1e6 * (after[role] - before[role]) / args.requests for role in pids}
    figures["pipeline (4)"] = sum(figures[role] for role in ROLES)
    if counts is not None and counts_after is not None:
        figures["follower fast calls/req"] = (counts_after[0] - counts[0]) / args.requests
        figures["fallbacks/1000 req"] = 1000 * (counts_after[1] - counts[1]) / args.requests
    try:  # the whole run's, start-up and warm-up included
        follower = json.loads(out)["variants"][1]
        figures["follower stops/req (all)"] = follower["stops"] / (args.requests + args.warmup)
    except (ValueError, KeyError, IndexError):
        pass
    figures["req/s (loaded: no evidence)"] = rate
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", type=Path, nargs="+")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--placement", choices=("split", "spread"))
    parser.add_argument("--py-spy", type=Path, dest="py_spy")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < 1:
        parser.error("--rounds and --requests must be at least 1")
    results: dict[Path, list[dict[str, float]]] = {tree: [] for tree in args.trees}
    for round_ in range(args.rounds):
        for number, tree in enumerate(args.trees):
            profile = args.py_spy if round_ == 0 and number == 0 else None
            figures = measure(tree.resolve(), args, profile)
            results[tree].append(figures)
            shown = ", ".join(f"{k} {v:.1f}" for k, v in figures.items())
            print(f"round {round_ + 1}/{args.rounds} {tree}: {shown}", file=sys.stderr, flush=True)
    keys = list(results[args.trees[0]][0])
    width = max(14, *(len(str(tree)) for tree in args.trees))
    print(f"lighttpd, ab -c 1, {args.requests} requests after {args.warmup}; CPU us a request, median of {args.rounds}")
    print(f"{'':<30}" + "".join(f"{str(tree)[-width:]:>{width + 2}}" for tree in args.trees))
    for key in keys:
        cells = []
        for tree in args.trees:
            values = [run[key] for run in results[tree] if key in run]
            cells.append(f"{statistics.median(values):>{width + 2}.1f}" if values else f"{'-':>{width + 2}}")
        print(f"{key:<30}" + "".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
