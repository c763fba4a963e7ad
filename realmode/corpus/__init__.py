"""A regression corpus of real commands nobody here wrote, run natively and
under ``dmvx run``: the false divergences a new user would meet.

Every entry (:mod:`realmode.corpus.commands`) runs three times in a fresh copy
of one work directory (:mod:`realmode.corpus.fixtures`) at the same path:
natively, then under ``dmvx run --policy P`` for each preset. A run under dmvx
*agrees* when its exit status equals the native one and, for an entry whose
output is deterministic, its stdout and stderr do too (dmvx's own ``dmvx:``
lines left out). Anything else is a false divergence: the program did nothing
wrong. Entries with a known reason (``known``) are counted all the same and
listed apart, so the figure stays honest.

``python -m realmode.corpus`` runs it (docs/realmode.md, "The corpus");
``--projects`` runs real projects' own test suites the same way
(:mod:`realmode.corpus.projects`).
"""
