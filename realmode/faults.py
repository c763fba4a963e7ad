"""Faults, fast and fair: inject every fault of the red team's list, time the verdict, check who it names.

``python -m realmode.faults`` (root) runs each fault under both presets and prints one table
(``--json``: the same as one document). For ``dmvx run`` (one machine) the faults are ``kill -9``
of each process kind of each variant: its monitor (the tracer), its CONNECTOR, the variant's
only process, and in a process tree (``sh -c 'sleep 30; echo late'``) its root and a child. For
``dmvx real`` on emulated hosts (:mod:`realmode.net`) they are the same per host agent, plus the
follower's access link cut (``ip link set ... down``) or losing every frame, and a host stopped
(``SIGSTOP`` of every process of the run on it).

A fault passes when the run ends in a verdict within :data:`WITHIN` seconds of it, the verdict
names exactly the variant whose part failed (``Verdict.odd_one_out``; a lost link is the
follower's at its far end, docs/realmode.md says why), and nothing of the run is left: no
process, and on emulated hosts no namespace, veth or bridge.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from dmvx.verdict import Verdict, variant_name
from realmode.net import runs
from realmode.net.runs import start_time

#: The bound of issue 13: a fault ends in a verdict within this many seconds.
WITHIN = 5.0
#: How long after the run is under way a fault is injected (seconds).
FAULT_AFTER = 0.5
#: The programs each fault runs under on one machine: a single process that keeps making calls
#: (the monitors talk all the time), and a tree whose root waits for a child.
BUSY = ["/bin/sh", "-c", "while :; do echo x >/dev/null; done"]
TREE = ["/bin/sh", "-c", "sleep 30; echo late"]


class Part(str, Enum):
    """What a fault breaks."""

    MONITOR = "monitor"  # the variant's tracer (the core's monitors run in it)
    CONNECTOR = "connector"
    VARIANT = "variant"  # the variant's only process
    ROOT = "root"  # the root process of the variant's process tree
    CHILD = "child"  # a child in that tree
    LINK = "link"  # the host's access link, down
    LOSS = "loss"  # the host's access link, losing every frame
    HOST = "host"  # every process of the run on the host, stopped

    @property
    def how(self) -> str:
        return {
            Part.MONITOR: "kill -9 of {v}'s monitor",
            Part.CONNECTOR: "kill -9 of {v}'s CONNECTOR",
            Part.VARIANT: "kill -9 of {v} (one process)",
            Part.ROOT: "kill -9 of {v}'s tree root",
            Part.CHILD: "kill -9 of a child in {v}'s tree",
            Part.LINK: "{v}'s link down",
            Part.LOSS: "{v}'s link losing 100%",
            Part.HOST: "{v}'s host stopped (SIGSTOP)",
        }[self]


#: What each mode injects.
RUN_PARTS = (Part.MONITOR, Part.CONNECTOR, Part.VARIANT, Part.ROOT, Part.CHILD)
REAL_PARTS = (*RUN_PARTS, Part.LINK, Part.LOSS, Part.HOST)


@dataclass(frozen=True)
class Fault:
    """One fault: ``part`` of variant ``victim`` in ``mode`` (``run`` or ``real``)."""

    mode: str
    part: Part
    victim: int
    variants: int = 2

    @property
    def label(self) -> str:
        text = self.part.how.format(v="the leader" if self.victim == 0 else variant_name(self.victim))
        return text + (f" ({self.variants} variants)" if self.variants != 2 else "")


@dataclass
class Measured:
    """What one fault under one preset gave."""

    fault: Fault
    policy: str
    #: From the fault to the run's end (its verdict decided, everything reaped), seconds.
    seconds: float | None = None
    verdict: Verdict | None = None
    #: What of the run was still there after it ended (processes, links, namespaces).
    left: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def named(self) -> tuple[int, ...]:
        return self.verdict.odd_one_out if self.verdict is not None else ()

    @property
    def fast(self) -> bool:
        return self.seconds is not None and self.seconds < WITHIN

    @property
    def fair(self) -> bool:
        return self.named == (self.fault.victim,)

    @property
    def passed(self) -> bool:
        return self.error is None and self.verdict is not None and self.fast and self.fair and not self.left

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.fault.mode,
            "fault": self.fault.label,
            "part": self.fault.part.value,
            "victim": variant_name(self.fault.victim),
            "policy": self.policy,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "verdict": None if self.verdict is None else self.verdict.kind.value,
            "named": [variant_name(v) for v in self.named],
            "detail": None if self.verdict is None else self.verdict.detail,
            "left": self.left,
            "error": self.error,
            "passed": self.passed,
        }


# -- processes ------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The children of ``pid``, oldest first (the kernel keeps them in creation order)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                out += [int(c) for c in handle.read().split()]
        except OSError:
            continue
    return out


def tracer_of(pid: int) -> int | None:
    """The pid tracing ``pid`` (0: none), None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def kill_checked(pid: int, started: int | None, what: str, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``pid`` if it is still the process that started at ``started``: pids come
    round quickly on a busy machine (32768 of them), and a fault must never hit a stranger."""
    if started is None or not runs.alive(pid, started):
        raise RuntimeError(f"{what} (pid {pid}) was gone before the fault")
    os.kill(pid, sig)


def still_running(pids: dict[int, int | None], within: float = 1.0) -> list[int]:
    """Which of ``pids`` (pid -> start time) still run after up to ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        alive = [pid for pid, started in pids.items() if started is not None and runs.alive(pid, started)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


def _wait_for(found: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.02)
    return None


# -- dmvx run ---------------------------------------------------------------------------------


def run_fault(fault: Fault, policy: str, *, stall_timeout: float = 2.0) -> Measured:
    """Inject ``fault`` into a ``dmvx run`` of two variants under ``policy`` (in this process:
    the orchestrator's children are found as this process's) and measure it."""
    from realmode import orchestrator

    measured = Measured(fault, policy)
    program = TREE if fault.part in (Part.ROOT, Part.CHILD) else BUSY
    seen: dict[int, int | None] = {}
    fired: list[float] = []
    problems: list[str] = []
    me = os.getpid()

    def parts() -> dict[tuple[int, Part], int] | None:
        mine = children(me)
        if len(mine) < 4:
            return None
        found: dict[tuple[int, Part], int] = {}
        for index in range(2):
            connector, monitor = mine[2 * index], mine[2 * index + 1]
            found[index, Part.CONNECTOR], found[index, Part.MONITOR] = connector, monitor
            variant = children(monitor)
            if not variant or _cmdline(variant[0])[:1] != [program[0]]:
                return None
            found[index, Part.VARIANT] = found[index, Part.ROOT] = variant[0]
            if program is TREE:
                below = children(variant[0])
                if not below or _cmdline(below[0])[:1] != ["sleep"]:
                    return None
                found[index, Part.CHILD] = below[0]
        return found

    def inject() -> None:
        found = _wait_for(parts, 30.0)
        if found is None:
            return
        for pid in found.values():
            seen[pid] = start_time(pid)
        time.sleep(FAULT_AFTER)
        fired.append(time.monotonic())
        pid = found[fault.victim, fault.part]
        try:
            kill_checked(pid, seen[pid], fault.label)
        except RuntimeError as error:
            problems.append(str(error))

    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    null = os.open(os.devnull, os.O_RDWR)
    saved = os.dup(1)
    try:
        os.dup2(null, 1)  # the leader's stdout: nothing of the program's on the table
        result = orchestrator.run([program, program], policy, stall_timeout=stall_timeout)
    except Exception as error:  # noqa: BLE001 - a run that breaks is a row of the table, not the end of it
        measured.error = f"{type(error).__name__}: {error}"
        return measured
    finally:
        ended = time.monotonic()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)
        injector.join(timeout=5)
    if problems or not fired:
        measured.error = problems[0] if problems else "the run ended before the fault"
        measured.verdict = result.verdict
        return measured
    measured.seconds = ended - fired[0]
    measured.verdict = result.verdict
    if result.error or result.unsupported:
        measured.error = result.error or result.unsupported
    for pid in result.helpers:
        seen.setdefault(pid, start_time(pid))
    measured.left = [f"process {pid} ({' '.join(_cmdline(pid))})" for pid in still_running(seen)]
    return measured


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


# -- the table ---------------------------------------------------------------------------------


def faults(modes: Iterable[str]) -> list[Fault]:
    """Every fault of the list, in table order. A lost link is injected on the follower's side
    with two variants (either end hears the same silence: the run names the follower) and on
    the leader's with three (the followers' word outweighs the leader's)."""
    out = []
    for mode in modes:
        for part in RUN_PARTS if mode == "run" else REAL_PARTS:
            if part in (Part.LINK, Part.LOSS):
                out += [Fault(mode, part, 1), Fault(mode, part, 0, variants=3)]
            else:
                out += [Fault(mode, part, 0), Fault(mode, part, 1)]
    return out


def measure(fault: Fault, policy: str) -> Measured:
    if fault.mode == "run":
        return run_fault(fault, policy)
    from realmode.net.faults import real_fault

    return real_fault(fault, policy)


def table(rows: Sequence[Measured]) -> str:
    """The table docs/realmode.md shows: one line per fault and preset."""
    head = f"{'mode':<5} {'fault':<44} {'policy':<5} {'time':>7}  {'verdict':<15} {'named':<11} {'left':<4} ok"
    lines = [head, "-" * len(head)]
    for row in rows:
        time_text = f"{row.seconds:6.2f}s" if row.seconds is not None else "     - "
        kind = row.verdict.kind.value if row.verdict is not None else (row.error or "none")[:15]
        named = ", ".join(variant_name(v) for v in row.named) or "nobody"
        lines.append(
            f"{row.fault.mode:<5} {row.fault.label:<44} {row.policy:<5} {time_text}  {kind:<15} {named:<11} "
            f"{len(row.left):<4} {'yes' if row.passed else 'NO'}"
        )
    passed = sum(row.passed for row in rows)
    lines.append(f"{passed} of {len(rows)} faults ended within {WITHIN:g} s, naming the right variant, nothing left")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realmode.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("run", "real", "both"), default="both", help="dmvx run, dmvx real or both")
    parser.add_argument("--policy", choices=("dmvx", "dmon", "both"), default="both")
    parser.add_argument("-k", dest="only", help="only faults whose label contains this text")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON document")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("python -m realmode.faults: needs root (ptrace of other users' processes, network namespaces)")
        return 4
    modes = ("run", "real") if args.mode == "both" else (args.mode,)
    policies = ("dmvx", "dmon") if args.policy == "both" else (args.policy,)
    rows = []
    for fault in faults(modes):
        if args.only and args.only not in fault.label:
            continue
        for policy in policies:
            row = measure(fault, policy)
            rows.append(row)
            if not args.json:
                print(table([row]).splitlines()[2], file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"within_s": WITHIN, "faults": [row.to_json() for row in rows]}, indent=2))
    else:
        print(table(rows))
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    # Through the module's own name: realmode.net.faults shares its types, which must not be
    # __main__'s copies.
    from realmode.faults import main as _main

    sys.exit(_main())
