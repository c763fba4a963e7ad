"""The in-process path (issue 14): replicated calls that never stop in ptrace.

``layout`` is the shared area's format (the same numbers as
``realmode/native/dipmon.h``), ``area`` makes and reads one, ``tables`` compiles
the native monitor's routing tables from the core's broker, and ``path`` is a
traced process's in-process path: it drains the variant's records into the
core's monitor and fills a follower's ring from the leader's entries.
docs/realmode.md, "The in-process path", tells the whole story.
"""
