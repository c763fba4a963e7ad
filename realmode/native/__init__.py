"""The native half of the in-process path: ``dipmon.c`` (the libc wrappers a
variant preloads) and its build. ``python -m realmode.native`` builds it;
``./run setup`` does that, so tests and CI find it where :func:`library` says."""
