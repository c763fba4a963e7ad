"""Real mode on emulated hosts: ``dmvx real`` (docs/realmode-net.md).

:mod:`.network` builds a topology file's Mininet network (Linux bridges, htb
shaping, netem or :mod:`.relay` for delay), :mod:`.agents` starts a monitor
and a CONNECTOR on each variant host, :mod:`.experiment` runs the served
program natively and under the monitors with a client (:mod:`.client`) and
an attacker (:mod:`.attacker`), and :mod:`.runs` names and removes
everything a run makes. :mod:`.lighttpd` sets up Debian's lighttpd as the
served program. :mod:`.entry` is the command's entry point.
"""
