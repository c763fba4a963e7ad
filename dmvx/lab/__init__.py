"""Teaching labs: what a student is asked to do, and checkers that say whether they did it.

Each lab (``docs/labs/labN.md``) asks for things a program can check: numbers
read off a run, a verdict kind, a choice, a scenario file that must end a
given way. The student writes them into an answers file (YAML, one key per
answer) and runs ``dmvx lab check N --answers FILE``. The checker recomputes
the truth now, on this machine -- by running sim mode, real mode or the core
itself -- and compares, task by task, with a hint for every task that fails.
Nothing a checker compares against is stored: the reference solutions in
``dmvx/lab/solutions/`` are answers files like a student's, and the test
suite checks them the same way.

The modes are reached the way the CLI reaches them, by module name and only
when a task needs one (:mod:`dmvx.lab.modes`), so listing the labs costs no
SimPy, ptrace or Mininet import.

Modules: :mod:`~dmvx.lab.model` (labs, tasks, answer keys, task outcomes),
:mod:`~dmvx.lab.answers` (reading an answers file), :mod:`~dmvx.lab.modes`
(running the modes, with a cache), :mod:`~dmvx.lab.checking` (running the
tasks of a lab), :mod:`~dmvx.lab.watch` (every call of a trace through the
core's monitors, one line per event), :mod:`~dmvx.lab.labs` (the six labs),
:mod:`~dmvx.lab.results` and :mod:`~dmvx.lab.entry` (what ``dmvx lab`` calls).
"""
