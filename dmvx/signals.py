"""Asynchronous signals: where in the call sequence every variant takes one.

A signal with a handler that comes from outside the process (another
process's ``kill``, a child's end as SIGCHLD, a timer) reaches each variant
at its own moment, and a handler that makes calls would then put them at a
different place in each variant's call sequence. The monitors agree on the
place instead, as GHUMVEE does: the **leader's signals are the run's**.

* A follower's own asynchronous signals are dropped when they come
  (:meth:`~dmvx.monitor.FollowerMonitor.signal_arrived` answers nothing).
  Its signals are the leader's, delivered where the leader took them.
* The leader's signal is held back when it comes between calls, and taken
  at the entry of the leader's next compared call ``n``: that call does not
  run yet, it returns :data:`ERESTARTNOINTR` with the signal delivered on
  the way, so the handler runs first and the kernel makes the call again
  afterwards (a new compared call). Holding an asynchronous signal back
  until the next call is a schedule the kernel could have chosen itself.
* A signal that interrupts the leader's compared call ``n`` while it blocks
  is delivered there: the kernel ended the call with one of the
  :data:`RESTART` results, and after the handler it restarts the call
  (``SA_RESTART``) or returns ``EINTR``. Not with :data:`ERESTARTNOINTR`
  (``fork`` with a signal pending): the call restarts whatever the handler
  says, so the signal is held for the next call and this one goes on, as
  a follower's running copy of it may already have.

Either way the leader sends an :class:`~dmvx.messages.Entry` of kind
``signal`` for ``n``: its call, the result it ended with and the signal.
Each follower's call ``n`` is compared with the leader's as usual and then
ends the same way (:class:`~dmvx.actions.Deliver`): it returns that result
with the signal delivered as it returns, so its kernel takes the same
decision, from the same disposition, as the leader's did. The handler's
calls are the next compared calls in every variant.

Nothing here reads a signal or a register: the mode tells the monitor that
a signal came and carries out the delivery the monitor asks for.
"""

from __future__ import annotations

#: The kernel's "interrupted" results (never seen by a program): restart
#: if the handler says ``SA_RESTART``, restart always, restart only when no
#: handler runs, restart through ``restart_syscall``.
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = -512, -513, -514, -516
RESTART = frozenset({ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK})

#: Calls that install a signal mask for as long as they wait. A follower
#: cannot skip them when the leader's was interrupted: the handler must run
#: under the mask the call installs, and the call must give the old one
#: back afterwards, as the kernel does. It runs its own with the signal
#: already pending, which ends it at once, as the leader's ended -- unless
#: the leader's never ran (:data:`ERESTARTNOINTR`, a signal held for it):
#: then the follower's does not run either, and the signal, blocked there,
#: comes inside the call made again, as in the leader.
MASK_WAITS = frozenset({"rt_sigsuspend"})

#: Signals whose default action ends the process and that come from outside
#: it (``kill``, a terminal, ``timeout``), never from the instruction it runs
#: or a call of its own (unlike SIGSEGV, SIGABRT or SIGPIPE): SIGHUP, SIGINT,
#: SIGKILL, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM. Sent to a whole tree, they
#: reach each variant's process at its own moment, so a follower's process
#: may die of one a few calls before the leader's does
#: (:meth:`dmvx.monitor.LeaderMonitor._killed_early`).
SENT_FATAL = frozenset({1, 2, 9, 10, 12, 14, 15})

#: SIGKILL: it cannot be blocked, caught or ignored, and a process it
#: reaches -- running, sleeping or stopped by its tracer -- dies of it at
#: once. So it never waits pending in a live process: where a mode sees it
#: neither pending nor done in its variant's process, it was not sent there
#: (:meth:`dmvx.monitor.LeaderMonitor.signal_absent`). Any other signal may
#: still be on its way from a slower sender.
SIGKILL = 9
