"""``dmvx real``: from the command line's values to an :class:`.experiment.NetExperiment`.

Without a scenario, ``dmvx real --topology T`` runs the built-in demo on T:
the small server of ``realmode/targets/net_server.c`` as leader (first
variant host) and follower (second), 20 requests from the first client
host, native baseline first. With ``--scenario FILE`` the scenario says the
topology (``--topology`` replaces it), variants, policy, workload (kind
``server``), attack and expected verdict; what real mode cannot do yet is
refused with one line and exit status 5. ``--server lighttpd`` serves
Debian's lighttpd instead of the built-in server (:mod:`.lighttpd`), and
``--record FILE`` writes the run's trace (:mod:`realmode.record`).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

from dmvx.errors import InputError
from dmvx.exitstatus import EnvironmentProblem, Unavailable
from dmvx.policy import Policy
from dmvx.scenario import Scenario, Server, load_scenario, scenario_from_document
from dmvx.syscalls import Arch
from dmvx.topology import Topology, load_topology
from dmvx.yamlfile import read_yaml
from realmode import record as record_mod
from realmode.net import lighttpd
from realmode.net.experiment import STREAM_ATTACKS, Config, NetAttack, NetExperiment, NetResult, Workload
from realmode.orchestrator import make_policy, with_system_files_local

DEFAULT_TOPOLOGY = "two-host"
DEFAULT_POLICY = "dmvx"
#: Requests of the built-in demo, and of ``--server lighttpd``, by default.
DEMO_REQUESTS = 20
LIGHTTPD_REQUESTS = 1000
#: Bodies ``--server lighttpd`` checks against their digests by default.
LIGHTTPD_SAMPLE = 100
#: Servers ``--server`` knows, besides the built-in one.
SERVERS = ("lighttpd",)
#: Scenario attack kinds real mode runs, and the attacker program's name for each.
ATTACK_KINDS = {"data-only": "exploit", "connector-forgery": "forge", "connector-replay": "replay"}
#: Seconds between requests while an attacker works on the CONNECTOR stream.
STREAM_PACE = 0.05


def real(
    *,
    topology: str | None,
    scenario: Path | None,
    policy: str | None,
    console: Any,
    server: str | None = None,
    requests: int | None = None,
    sample: int | None = None,
    record: Path | None = None,
    summary: bool = False,
) -> NetResult:
    """The ``dmvx real`` mode entry (see dmvx/cli.py). ``policy`` None means
    the scenario's preset (dmvx for the built-in demo). ``server``: a served
    program of :data:`SERVERS` instead of the built-in one; ``requests``
    replaces the workload's count, ``sample`` the bodies a served program's
    client checks; ``record``: write the run's trace there; ``summary``:
    count every variant's calls per route (``--summary``)."""
    if os.geteuid() != 0:
        raise EnvironmentProblem("dmvx real needs root (network namespaces, tracing)")
    if server is not None and server not in SERVERS:
        raise InputError(f"dmvx real: --server {server}: expected one of {', '.join(SERVERS)}")
    if server is not None and scenario is not None:
        raise InputError("dmvx real: --server and --scenario: a scenario runs the built-in server; give one of them")
    if sample is not None and server is None:
        raise InputError("dmvx real: --sample counts the bodies a served program's client checks; it needs --server")
    if record is not None:
        record_mod.check_target(record, "dmvx real")
    if server == "lighttpd":
        programs = lighttpd.programs()
        with tempfile.TemporaryDirectory(prefix="dmvx-lighttpd-") as tree:
            config = lighttpd_config(
                Path(tree),
                load_topology(topology or DEFAULT_TOPOLOGY),
                make_policy(policy or DEFAULT_POLICY),
                requests or LIGHTTPD_REQUESTS,
                LIGHTTPD_SAMPLE if sample is None else sample,
                programs[0],
            )
            config.record, config.summary = record, summary
            return _run(config, console)
    if scenario is not None:
        config = scenario_config(scenario, topology, policy)
        if requests is not None:
            config.workload.requests = requests
    else:
        config = demo_config(
            load_topology(topology or DEFAULT_TOPOLOGY),
            make_policy(policy or DEFAULT_POLICY),
            requests or DEMO_REQUESTS,
        )
    config.record, config.summary = record, summary
    return _run(config, console)


def _run(config: Config, console: Any) -> NetResult:
    """Run ``config``, once its topology's real machines (if any) pass the
    check ``dmvx doctor`` makes: a failed check is refused before anything
    starts, on any machine."""
    machines = config.topology.machines()
    if machines:
        from realmode.remote import refuse_unless_ready

        name = config.topology.name or "the topology"
        _check_machine_run(config, name)
        refuse_unless_ready(config.topology, name)
    return NetExperiment(config, console=console).run()


def _check_machine_run(config: Config, name: str) -> None:
    """What a run whose variants are machines reached over SSH cannot do yet:
    one line, status 5, before anything starts."""
    why = machine_run_refusal(config)
    if why is not None:
        raise Unavailable(f"dmvx real: {name}: {why}")


def machine_run_refusal(config: Config) -> str | None:
    """Why ``config`` cannot run with its variants on machines reached over
    SSH, or None (also when no variant host is a machine). ``dmvx real``
    refuses such a run; ``dmvx suite --mode real --topology`` skips its cell
    with this reason."""
    machines = config.topology.machines()
    on_machines = [host for host in config.variant_hosts if host in machines]
    if not on_machines:
        return None
    emulated = [host for host in config.variant_hosts if host not in machines]
    if emulated:
        return (
            f"variant hosts {', '.join(on_machines)} are machines and {', '.join(emulated)} "
            "emulated; the variants of one run are all on machines reached over SSH or all emulated"
        )
    if config.record is not None:
        return "--record on machines reached over SSH is not built yet"
    return None


def demo_config(topo: Topology, policy: Policy, requests: int = DEMO_REQUESTS) -> Config:
    variants, client = _hosts(topo, "the demo")
    return Config(topo, policy, variants, client, Workload(requests=requests, body_bytes=4096))


def lighttpd_config(
    directory: Path, topo: Topology, policy: Policy, requests: int, sample: int, program: str
) -> Config:
    """Debian's lighttpd (``program``) as every variant of ``topo``, its tree
    in ``directory``: ``sample`` bodies checked, then ``ab -n requests``."""
    variants, client = _hosts(topo, "lighttpd")
    return Config(
        topo,
        policy,
        variants,
        client,
        Workload(requests=requests),
        served=lighttpd.served(directory, sample, program),
        timeout=lighttpd.timeout(requests, sample),
    )


def _hosts(topo: Topology, what: str) -> tuple[list[str], str]:
    """The variant hosts of ``topo`` (x86_64, two or more) and the client host."""
    variants = topo.variant_hosts()
    if len(variants) < 2:
        raise InputError(f"topology {topo.name!r} has {len(variants)} variant host(s); {what} needs two or more")
    for host in variants:
        _check_arch(topo, host, topo.hosts[host].arch)
    clients = topo.hosts_with_role("client") or topo.hosts_with_role("attacker")
    if not clients:
        raise InputError(f"topology {topo.name!r} has no client host to send {what}'s requests")
    return variants, clients[0]


def _check_arch(topo: Topology, host: str, arch: Arch) -> None:
    if topo.hosts[host].ssh is not None:
        return  # a real machine: the doctor's check reports its architecture
    if arch is Arch.I386:
        raise Unavailable(
            f"dmvx real: host {host} of {topo.name} runs i386; real mode runs x86_64 variants only "
            f"so far (i386 variants wait for the -m32 support of dmvx run)"
        )
    if arch is not Arch.X86_64:
        raise Unavailable(
            f"dmvx real: host {host} of {topo.name} runs {arch.value}; an emulated host runs on "
            f"this x86_64 machine, so an {arch.value} variant needs a real {arch.value} host"
        )


def scenario_config(
    path: Path, topology: str | None, policy_name: str | None, loaded: Scenario | None = None
) -> Config:
    """The run of scenario file ``path`` (``loaded``: its scenario, when already read)."""
    scenario = loaded if loaded is not None else _load(path, topology)
    topo = scenario.topo
    if scenario.diversity is not None:
        raise Unavailable(
            f"{path}: a scenario with diversity settings runs in real mode with "
            f"'dmvx suite {path} --mode real' (docs/attacks.md)"
        )
    assert scenario.variants is not None
    for i, variant in enumerate(scenario.variants):
        _check_arch(topo, variant.host, variant.arch or topo.hosts[variant.host].arch)
        if variant.binary is not None:
            raise Unavailable(f"{path}: variants[{i}].binary: real mode serves its built-in program only so far")
    workload = scenario.workload
    if not isinstance(workload, Server):
        raise Unavailable(f"{path}: workload kind {workload.kind!r}: dmvx real runs server workloads so far")
    if workload.concurrency != 1:
        raise Unavailable(
            f"{path}: workload.concurrency {workload.concurrency}: the real-mode server takes one request at a time"
        )
    attack = None
    if scenario.attack is not None:
        kind = ATTACK_KINDS.get(scenario.attack.kind)
        if kind is None:
            raise Unavailable(
                f"{path}: attack kind {scenario.attack.kind!r} is simulated only; real mode runs "
                f"{', '.join(ATTACK_KINDS)}"
            )
        source = scenario.attack.source or (topo.hosts_with_role("attacker") or topo.hosts_with_role("client"))[0]
        attack = NetAttack(kind, source, target=scenario.attack.target)
    expect = None
    if scenario.expect is not None:
        expect = (scenario.expect.verdict, scenario.expect.kind.value if scenario.expect.kind else None)
    # An attacker on the CONNECTOR stream fires into a quiet moment of it
    # (see realmode.net.attacker): requests are paced so that there are some.
    pace = STREAM_PACE if attack is not None and attack.kind in STREAM_ATTACKS else 0.0
    return Config(
        topo,
        _policy(scenario, policy_name),
        [v.host for v in scenario.variants],
        workload.client or "",
        Workload(requests=workload.requests, body_bytes=int(workload.file_size), pace=pace),
        attack=attack,
        native=attack is None,
        stall_timeout=float(scenario.policy.stall_timeout),
        seed=scenario.seed,
        expect=expect,
        scenario=scenario.name or path.stem,
    )


def _load(path: Path, topology: str | None) -> Scenario:
    if topology is None:
        return load_scenario(path)
    doc = read_yaml(path)
    doc = dataclasses.replace(doc, data=dict(doc.data, topology=topology))
    return scenario_from_document(doc, path.parent, default_name=path.stem)


def _policy(scenario: Scenario, name: str | None) -> Policy:
    """The scenario's policy, with real mode's system files local. A
    ``--policy`` given on the command line replaces the scenario's preset."""
    spec = scenario.policy
    if name is not None and name != spec.preset:
        spec = spec.model_copy(update={"preset": name})
    base = spec.to_policy()
    return with_system_files_local(base)
