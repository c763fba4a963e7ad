"""Real mode: the dmvx core driving real programs.

python-ptrace tracers (DCP-MON), CONNECTOR processes over TCP, Mininet hosts
and a scapy attacker carry out the actions the core's monitors return. Most
of it needs root. The CLI reaches this package only through
``realmode.cli_entry`` (see docs/cli.md, "Mode entry contract").
"""
