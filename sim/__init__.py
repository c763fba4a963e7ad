"""Simulation mode: the dmvx core driven by SimPy in virtual time.

Hosts, links (latency, bandwidth, queueing), ptrace stops and in-process
interceptions are modelled with costs from a cost profile; workloads are
models or traces recorded by real mode. The monitors are the core's own
(:mod:`dmvx.monitor`), so a verdict here means what it means in real mode.
The CLI reaches this package only through ``sim.cli_entry`` (see
docs/cli.md, "Mode entry contract").

Modules, from the outside in: ``cli_entry`` (overrides, sweeps, plots) ->
``sweep`` (points, worker processes) -> ``runner`` (one scenario: native and
monitored runs) -> ``engine`` (SimPy processes, CONNECTORs, the watchdog) ->
``network`` (links and routes). Beside them: ``profile`` (cost profiles in
``profiles/``), ``workload`` and ``trace`` (call streams), ``diversity`` and
``attacks`` (exploits), ``results``, ``table`` and ``plot`` (reports).
docs/sim.md explains the model and its calibration.
"""

from dmvx.compiled import activate as _activate

# The engine, links and workloads from their mypyc build, when it is of these sources.
_activate(__name__, __path__)
