"""``python -m realmode [--policy P] [--variants N] [--variant CMD]... -- PROG [ARGS]``

The same run as ``dmvx run``, but exiting with the program's own status
after a clean run (as a native run would) and with dmvx's status (1 for a
divergence) otherwise. Tests and benchmarks use it; ``dmvx run`` will once
the CLI passes the program's status through (see docs/realmode.md).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from dmvx import output
from dmvx.errors import InputError
from dmvx.exitstatus import EnvironmentProblem, ExitStatus
from realmode.orchestrator import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realmode")
    parser.add_argument("--policy", choices=("dmvx", "dmon"), default="dmvx")
    parser.add_argument("--variants", type=int, default=None)
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--stall-timeout", type=float, default=2.0)
    parser.add_argument("program", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    program = args.program[1:] if args.program[:1] == ["--"] else args.program
    extra = [shlex.split(cmd) for cmd in args.variant]
    variants = ([program] if program else []) + extra if extra else [program] * (args.variants or 2)
    if not variants or not variants[0]:
        parser.error("no program given")
    try:
        result = run(variants, args.policy, stall_timeout=args.stall_timeout)
    except InputError as error:
        output.error(str(error))
        return int(ExitStatus.USAGE)
    except EnvironmentProblem as error:
        output.error(str(error))
        return int(ExitStatus.ENVIRONMENT)
    result.render(output.stderr_console())
    return result.process_exit_code


if __name__ == "__main__":
    sys.exit(main())
