"""The largest counts and durations dmvx accepts, in one place.

Each bound is far above any run this testbed is for, and low enough that a
typo (``--variants 99999999999999999999``, ``iterations: 1e14``) is refused
at once with a usage error instead of eating memory or never ending. The
CLI options and the scenario schema both use these names, and
docs/guide/files.md and docs/cli.md list them; ``nan`` and ``inf`` are
refused wherever a number is read.
"""

from __future__ import annotations

#: Variants of one run (``dmvx run --variants``, a scenario's ``variants:``,
#: ``dmvx lab watch --variants``): each is a monitor, a CONNECTOR and a
#: process tree, or a modelled host.
MAX_VARIANTS = 16
#: System calls of a ``microbench`` workload (``iterations:``).
MAX_ITERATIONS = 10_000_000
#: Requests of a ``server`` workload, or of ``dmvx real --requests``.
MAX_REQUESTS = 1_000_000
#: Requests in flight at once (``concurrency:``).
MAX_CONCURRENCY = 1_024
#: Seconds a variant may make no progress (``--stall-timeout``,
#: ``policy.stall_timeout``): an hour.
MAX_STALL_TIMEOUT = 3_600.0
#: Repetitions of a measurement (``dmvx calibrate --repeat``), bodies
#: checked by digest (``dmvx real --sample``), connector-buffer entries and
#: acknowledgement intervals.
MAX_REPEAT = 1_000
MAX_SAMPLE = 1_000_000
MAX_CB_ENTRIES = 100_000_000
#: The system call an attack fires at (``at_call:``).
MAX_AT_CALL = MAX_ITERATIONS * 100
