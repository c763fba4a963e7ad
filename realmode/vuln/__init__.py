"""Vulnerable targets, their diversified builds and working exploits (docs/attacks.md).

``src/`` holds small C servers with real memory bugs -- a stack overflow onto
a code pointer, a heap overflow across a malloc chunk onto a code pointer, an
overflow onto an adjacent flag (data-only, relative offset), a format string
that leaks a code pointer. :mod:`.build` compiles each as the variants a
scenario describes (identical, PIE with ASLR, disjoint load addresses,
x86-64 and i386); :mod:`.exploits` crafts the bytes for one variant from what
an attacker would know of it, :mod:`.study` finds what must be learned from
a native run, and :mod:`.attacker` delivers them with scapy from the
attacker host. :mod:`.experiment` runs one target under attack, natively or
under the monitors, and says whether the attacker reached its goal.
"""
