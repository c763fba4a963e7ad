"""Topologies: the hosts, switches and links both modes run on.

A topology file is a pure description, like Mininet's ``Topo``: sim mode
turns it into modelled hosts and links, real mode into Mininet hosts and
Linux bridges. Both read the same :class:`Topology`, usually as a
``networkx`` graph from :meth:`Topology.graph`::

    name: two-host
    hosts:
      h1: {arch: x86_64, role: variant}
      h2: {arch: x86_64, role: variant}
      h3: {arch: x86_64, role: client}
    switches: [s1]
    links:
      - {a: h1, b: s1, delay: 1ms, bw: 100Mbit}

Delays are one-way. ``delay`` applies in both directions; ``delay_ab`` and
``delay_ba`` set each direction (from ``a`` to ``b`` and back) on its own.
A link without a delay has none, one without ``bw`` is not shaped.

Bare names (``two-host``) are looked up in ``topologies/`` next to the
referring file, in the working directory, then among the built-ins (see
:func:`dmvx.yamlfile.find_named`).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Literal

import networkx as nx
from pydantic import Field, model_validator

from dmvx.errors import InputError, Problem, did_you_mean
from dmvx.hostcheck import SSH_PATTERN, SshAddress
from dmvx.syscalls import Arch
from dmvx.units import Duration, Fraction, Queue, Rate
from dmvx.yamlfile import FileModel, display_path, find_named, not_found_message, read_yaml

#: Node names become Mininet interface names (``NAME-eth0``), which Linux
#: caps at 15 characters; 10 leaves room for ``-eth`` and two digits.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
NAME_MAX = 10
_NAME_EXPECTED = f"a name of letters, digits and '_' starting with a letter, at most {NAME_MAX} characters"

Role = Literal["variant", "client", "attacker"]


class Host(FileModel):
    """A machine: it runs a variant, or drives the workload, or attacks."""

    arch: Arch = Field(
        default=Arch.X86_64,
        description="Architecture (ISA and ABI) of the host: x86_64, i386 or aarch64. "
        "A variant runs in this architecture unless the scenario says otherwise.",
    )
    role: Role = Field(
        description="variant: runs one variant of the program (with its monitor and CONNECTOR). "
        "client: drives the workload (e.g. sends requests to a server). "
        "attacker: sends attack traffic; either non-variant role may do both jobs.",
    )
    cpu: int | None = Field(
        default=None,
        ge=0,
        description="CPU to pin this host's processes to, a hint: monitors trace much faster "
        "when tracer and tracee share a CPU. Omit to let the scheduler decide.",
    )
    ssh: str | None = Field(
        default=None,
        pattern=SSH_PATTERN.pattern,
        description="A real machine instead of an emulated host: how the system's ssh reaches it, "
        "[user@]name[:port] (the user's ~/.ssh/config, keys and agent apply; BatchMode, so no password "
        "prompt). Variant hosts only; dmvx doctor --topology FILE checks each such machine.",
    )
    dmvx: str | None = Field(
        default=None,
        description="With ssh: the dmvx command on that machine (a path), if it is not 'dmvx' on its PATH.",
    )

    @model_validator(mode="after")
    def _ssh_for_variants(self) -> Host:
        if self.ssh is not None and self.role != "variant":
            raise Problem(
                f"a {self.role} host cannot be a machine reached over SSH",
                path=("ssh",),
                expected="ssh only on hosts with role: variant",
            )
        if self.dmvx is not None and self.ssh is None:
            raise Problem("dmvx is given without ssh", path=("dmvx",), expected="dmvx only beside ssh")
        return self

    @property
    def address(self) -> SshAddress | None:
        """The machine this host is, None for an emulated host."""
        return SshAddress.parse(self.ssh) if self.ssh is not None else None


class Link(FileModel):
    """A cable between two nodes, full duplex, with one-way delays."""

    a: str = Field(description="One end: a host or switch name.")
    b: str = Field(description="The other end: a host or switch name.")
    delay: Duration | None = Field(
        default=None,
        description="One-way delay in each direction, e.g. 1ms. Use delay_ab/delay_ba for "
        "different delays per direction. Default: no delay.",
    )
    delay_ab: Duration | None = Field(
        default=None, description="One-way delay from a to b (set together with delay_ba)."
    )
    delay_ba: Duration | None = Field(
        default=None, description="One-way delay from b to a (set together with delay_ab)."
    )
    bw: Rate | None = Field(default=None, description="Bandwidth in each direction, e.g. 100Mbit. Default: not shaped.")
    loss: Fraction | None = Field(default=None, description="Packet loss in each direction, e.g. 0.1%. Default: none.")
    queue: Queue | None = Field(
        default=None,
        description="Queue limit at each sending end: packets (100packets) or bytes (64KiB). "
        "Default: the mode's default queue.",
    )

    @model_validator(mode="after")
    def _one_delay_form(self) -> Link:
        per_direction = (self.delay_ab is not None, self.delay_ba is not None)
        if self.delay is not None and any(per_direction):
            field = "delay_ab" if per_direction[0] else "delay_ba"
            raise Problem(
                f"{field} given together with delay",
                path=(field,),
                at="key",
                expected="either delay (both directions) or delay_ab and delay_ba",
            )
        if any(per_direction) and not all(per_direction):
            given, other = ("delay_ab", "delay_ba") if per_direction[0] else ("delay_ba", "delay_ab")
            raise Problem(
                f"{given} given without {other}",
                path=(given,),
                at="key",
                expected="both delay_ab and delay_ba, or delay for both directions",
            )
        return self

    @property
    def delay_a_to_b(self) -> float:
        """One-way delay from ``a`` to ``b``, in seconds."""
        return self.delay_ab if self.delay_ab is not None else (self.delay or 0.0)

    @property
    def delay_b_to_a(self) -> float:
        """One-way delay from ``b`` to ``a``, in seconds."""
        return self.delay_ba if self.delay_ba is not None else (self.delay or 0.0)


class Topology(FileModel):
    """Hosts, switches and the links between them."""

    name: str | None = Field(default=None, description="Name of the topology. Default: the file name without .yml.")
    description: str = Field(default="", description="What this topology is for, in a sentence or two.")
    hosts: dict[str, Host] = Field(
        min_length=1,
        description="Hosts by name. The order matters: the first variant host is the default "
        "leader, the others the default followers in order.",
    )
    switches: list[str] = Field(default_factory=list, description="Switch names (learning bridges).")
    links: list[Link] = Field(default_factory=list, description="Links between hosts and switches.")
    binaries: dict[Arch, dict[str, str]] = Field(
        default_factory=dict,
        description="Per architecture, the program a variant on a machine of that architecture runs, by "
        "the program's name (net_server for the built-in demo, lighttpd, ...): a path on that machine. "
        "Without an entry, a program built here goes to a machine of this one's architecture, and a "
        "system program (under /usr, /bin or /sbin) runs from the machine's own installation.",
    )

    @model_validator(mode="after")
    def _check(self) -> Topology:
        for name in self.hosts:
            _check_name(name, ("hosts", name))
        seen_switches: dict[str, int] = {}
        for i, name in enumerate(self.switches):
            _check_name(name, ("switches", i), at="value")
            if name in self.hosts:
                raise Problem(
                    f"switch {name!r} has the name of a host",
                    path=("switches", i),
                    expected="node names that are unique across hosts and switches",
                )
            if name in seen_switches:
                raise Problem(
                    f"switch {name!r} is listed twice (first at switches[{seen_switches[name]}])",
                    path=("switches", i),
                    expected="each switch once",
                )
            seen_switches[name] = i
        nodes = [*self.hosts, *self.switches]
        pairs: dict[frozenset[str], int] = {}
        for i, link in enumerate(self.links):
            for end in ("a", "b"):
                node = getattr(link, end)
                if node not in self.hosts and node not in seen_switches:
                    raise Problem(
                        f"unknown node {node!r}{did_you_mean(node, nodes)}",
                        path=("links", i, end),
                        expected=f"a host or switch: {', '.join(nodes)}",
                    )
            if link.a == link.b:
                raise Problem(
                    f"link from {link.a!r} to itself", path=("links", i, "b"), expected="a different node than a"
                )
            pair = frozenset((link.a, link.b))
            if pair in pairs:
                raise Problem(
                    f"a second link between {link.a!r} and {link.b!r} (first is links[{pairs[pair]}])",
                    path=("links", i),
                    expected="at most one link per pair of nodes",
                )
            pairs[pair] = i
        self._check_no_switch_loop()
        variants = self.variant_hosts()
        if not variants:
            raise Problem(
                "no host has role 'variant'", path=("hosts",), at="key", expected="at least one host with role: variant"
            )
        graph = self._undirected()
        # A machine reached over SSH is on the real network, not on these links.
        emulated = [host for host, spec in self.hosts.items() if spec.ssh is None]
        for host in emulated:
            for target in variants:
                if target in emulated and not nx.has_path(graph, host, target):
                    raise Problem(
                        f"host {host!r} cannot reach variant host {target!r}",
                        path=("hosts", host),
                        at="key",
                        expected="links connecting every host to every variant host",
                    )
        return self

    def _check_no_switch_loop(self) -> None:
        """Refuse switches linked in a loop. Real mode builds each switch as a
        Linux learning bridge without STP, on which a loop makes every
        broadcast circle for ever; the link that closes the loop is named."""
        switches: nx.Graph[str] = nx.Graph()
        switches.add_nodes_from(self.switches)
        for i, link in enumerate(self.links):
            if link.a in switches and link.b in switches:
                if nx.has_path(switches, link.a, link.b):
                    loop = nx.shortest_path(switches, link.b, link.a)
                    raise Problem(
                        f"switches {' - '.join([*loop, link.b])} form a loop (this link closes it); "
                        "switches are bridges without STP",
                        path=("links", i),
                        expected="switches linked as a tree (no loop)",
                    )
                switches.add_edge(link.a, link.b)

    # -- queries -------------------------------------------------------------

    def machines(self) -> dict[str, SshAddress]:
        """The hosts that are real machines reached over SSH, by name, in order."""
        return {name: address for name, spec in self.hosts.items() if (address := spec.address) is not None}

    def variant_hosts(self) -> list[str]:
        """Hosts with role ``variant``, in file order (leader first by default)."""
        return [name for name, host in self.hosts.items() if host.role == "variant"]

    def hosts_with_role(self, *roles: Role) -> list[str]:
        """Hosts with any of ``roles``, in file order."""
        return [name for name, host in self.hosts.items() if host.role in roles]

    def _undirected(self) -> nx.Graph[str]:
        graph: nx.Graph[str] = nx.Graph()
        graph.add_nodes_from([*self.hosts, *self.switches])
        graph.add_edges_from((link.a, link.b) for link in self.links)
        return graph

    def graph(self) -> nx.DiGraph[str]:
        """The topology as a directed graph, one edge per direction of a link.

        Node attributes: ``kind`` (``host`` or ``switch``), and for hosts
        ``arch`` (:class:`~dmvx.syscalls.Arch`), ``role`` and ``cpu``.
        Edge attributes (per direction): ``delay_s`` (one-way, seconds),
        ``bw_bps`` (bits/s or ``None`` for unshaped), ``loss`` (fraction),
        ``queue`` (:class:`~dmvx.units.QueueLimit` or ``None``) and
        ``link`` (the index in :attr:`links`). Always directed, so that
        per-direction delays need no special case in the modes.
        """
        graph: nx.DiGraph[str] = nx.DiGraph(name=self.name or "")
        for name, host in self.hosts.items():
            graph.add_node(name, kind="host", arch=host.arch, role=host.role, cpu=host.cpu)
        for name in self.switches:
            graph.add_node(name, kind="switch")
        for i, link in enumerate(self.links):
            common = {"bw_bps": link.bw, "loss": link.loss or 0.0, "queue": link.queue, "link": i}
            graph.add_edge(link.a, link.b, delay_s=link.delay_a_to_b, **common)
            graph.add_edge(link.b, link.a, delay_s=link.delay_b_to_a, **common)
        return graph

    def path(self, a: str, b: str) -> list[str]:
        """Nodes on the lowest-delay path from ``a`` to ``b``, both included."""
        self._require_nodes(a, b)
        nodes: list[str] = nx.shortest_path(self.graph(), a, b, weight="delay_s")
        return nodes

    def path_delay(self, a: str, b: str) -> float:
        """One-way propagation delay from ``a`` to ``b`` along :meth:`path`, seconds."""
        graph = self.graph()
        nodes = self.path(a, b)
        return float(sum(graph.edges[u, v]["delay_s"] for u, v in itertools.pairwise(nodes)))

    def path_bandwidth(self, a: str, b: str) -> float | None:
        """The narrowest bandwidth on :meth:`path` from ``a`` to ``b``, bits/s;
        ``None`` when no link on it is shaped."""
        graph = self.graph()
        nodes = self.path(a, b)
        rates = [graph.edges[u, v]["bw_bps"] for u, v in itertools.pairwise(nodes)]
        shaped = [r for r in rates if r is not None]
        return min(shaped) if shaped else None

    def _require_nodes(self, *names: str) -> None:
        nodes = [*self.hosts, *self.switches]
        for name in names:
            if name not in nodes:
                raise KeyError(f"no node {name!r} in topology {self.name!r}; nodes: {', '.join(nodes)}")


def _check_name(name: object, path: tuple[str | int, ...], at: Literal["key", "value"] = "key") -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or len(name) > NAME_MAX:
        raise Problem(f"{name!r} is not a valid node name", path=path, at=at, expected=_NAME_EXPECTED)


def resolve_topology(ref: str, relative_to: Path | None = None) -> Path:
    """The file a topology reference names; :class:`InputError` (without a
    position: the caller adds it) when there is none."""
    path = find_named("topologies", ref, relative_to)
    if path is None:
        message, expected = not_found_message("topologies", ref, relative_to)
        raise InputError(message, expected=expected)
    return path


def load_topology(name_or_path: str | Path, relative_to: Path | None = None) -> Topology:
    """Load a topology by bare name (``two-host``) or path.

    A missing ``name`` is taken from the file name. Any problem is one
    :class:`~dmvx.errors.InputError` naming the file, line and field.
    """
    ref = str(name_or_path)
    path = Path(ref) if isinstance(name_or_path, Path) else resolve_topology(ref, relative_to)
    doc = read_yaml(path, display=display_path(path) if not isinstance(name_or_path, Path) else None)
    topology = doc.validate(Topology)
    if topology.name is None:
        topology = topology.model_copy(update={"name": path.stem})
    return topology
