"""The per-variant monitor process (DCP-MON): a ptrace tracer driving the core.

One monitor process launches its variant as a traced child and follows every
process the variant creates (``PTRACE_O_TRACEFORK``/``VFORK``/``CLONE``). Each
traced process has its own core monitor (:mod:`dmvx.monitor`): the first
process is stream ``"0"``, and a process's n-th child gets the stream the
parent's monitor hands out with :meth:`~dmvx.monitor.LeaderMonitor.child`
(``"0.1"``, ``"0.1.2"`` ...), equal in every variant because process
creation runs in lockstep. Messages name their stream; the tracer routes
each to its process's monitor and holds those that arrive before that
process exists. It decides nothing itself: which calls are compared, who
runs them and when a run is over are the core's answers.

What it does do, because only a tracer can:

* **Launch in the right order** (a ``SECCOMP_RET_TRACE`` before
  ``PTRACE_O_TRACESECCOMP`` is set would fail the call): the child asks to be
  traced and stops itself; the monitor sets its options (``EXITKILL`` so a
  dead monitor never leaves its variant running unwatched); the child sets
  no-new-privs, loads the filter (:mod:`realmode.seccomp`) and execs.
  Comparison starts at that exec -- or, for variants of different ABIs, at
  the program's entry point after each exec (``compare_from="entry"``): the
  dynamic loaders of two ABIs make different calls by design, so each
  variant's loader runs uncompared on its own local files and an ``int3`` at
  ``AT_ENTRY`` says where the program itself begins.
* **Hide the vDSO** at every exec (``AT_SYSINFO_EHDR`` becomes ``AT_IGNORE``):
  libc then makes real ``clock_gettime``/``gettimeofday``/``time`` calls,
  which the core replicates like any other.
* **Skip** a call for a follower at its seccomp stop, in one stop: the number
  becomes -1, the return register gets the leader's result and its output
  bytes go to the follower's own pointers (:mod:`realmode.abi`).
* **Placeholders**: when the leader alone opened a descriptor, the follower's
  call is turned into ``openat(O_PATH)`` of the same path or
  ``openat("/dev/null")`` (``pipe2`` for a pair); the kernel picks the lowest
  free number and the tables are equal, so it lands at the leader's number,
  which is checked.
* **Pids** (:mod:`realmode.pids`): the leader's monitor announces each new
  process's pid on the child's stream (``process_started``, a
  :class:`~dmvx.messages.PidNote`); a follower's monitor answers with a
  :class:`~dmvx.actions.LeaderPid` action and the tracer maps its own pids to
  the leader's in results and back in the arguments of calls it runs itself.
* **Steer** calls a follower runs itself towards the leader's result where
  only timing could make them differ: the core's monitors (made with
  ``steer=True``) say which result (``Execute.expect``, from the leader's
  entry or :class:`~dmvx.messages.ResultNote`); a pipe ``read`` reads exactly
  as many bytes as the leader's did, ``wait4`` reaps the child the leader's
  reaped, and a write that met a closed pipe in one variant but not the
  other ends as in the leader.
* **Signals**: a signal the process ignores (by disposition or by default,
  like ``SIGCHLD``) is dropped at its delivery stop, as the kernel would have
  dropped it untraced; a call it interrupted restarts and is reported once
  with its final result. Others are delivered as they come (see
  docs/realmode.md for what that does and does not guarantee).
* **Time**: a wait the core asked for that lasts longer than the stall
  timeout becomes ``stalled()``; a variant inside a long native call sends
  heartbeats so the others' wait is not mistaken for a stall.
* **Batching**: entries of asynchronous calls and acknowledgements are sent
  to the CONNECTOR in batches (one write per batch, at the latest after
  ``flush_delay``); anything somebody may be waiting for goes at once.

The package, one job per module:

* :mod:`.launch` -- :class:`Launch` and starting the variant traced;
* :mod:`.process` -- :class:`TracerProcess`: the event loop, its timers and
  carrying out the core's actions; :func:`tracer_main`, the entry point;
* :mod:`.outbox` -- batching what goes to the CONNECTOR;
* :mod:`.routing` -- each message to its process's monitor;
* :mod:`.stops` -- what to do at each ptrace stop;
* :mod:`.steering` and :mod:`.skipping` -- a follower's call run towards,
  or replaced by, the leader's outcome;
* :mod:`.signals`, :mod:`.auxv` -- signal masks and the vDSO;
* :mod:`.tally` -- calls counted per route and timed (``--summary``);
* :mod:`.procs` -- the traced processes and the stage of their held call.
"""

from realmode.tracer.launch import Launch
from realmode.tracer.process import TracerProcess, tracer_main
from realmode.tracer.procs import Unsupported

__all__ = ["Launch", "TracerProcess", "Unsupported", "tracer_main"]
