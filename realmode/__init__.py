"""Real mode: the dmvx core driving real programs.

python-ptrace tracers (DCP-MON), CONNECTOR processes over TCP, Mininet hosts
and a scapy attacker carry out the actions the core's monitors return. Most
of it needs root. The CLI reaches this package only through
``realmode.cli_entry`` (see docs/cli.md, "Mode entry contract").

``dmvx run`` (docs/realmode.md): :mod:`realmode.orchestrator` starts per
variant a CONNECTOR (:mod:`realmode.connector`) and a ptrace monitor
(:mod:`realmode.tracer`) that follows the variant's whole process tree. It
builds canonical calls with :mod:`realmode.abi` from the core's one system
call table, maps pids between variants with :mod:`realmode.pids`, and keeps
local calls off ptrace with the filter of :mod:`realmode.seccomp`.
"""
