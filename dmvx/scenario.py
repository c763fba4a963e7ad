"""Scenarios: what to run, where, under which policy, and what should happen.

A scenario file is what a user hands to ``dmvx sim scenario.yml`` and what
the attack suite runs. It names a topology, the variants (the first is the
leader), the monitor policy, a workload, optionally an attack and the
verdict expected, and optionally a sweep over one parameter::

    name: read-microbench
    topology: two-host
    variants:
      - host: h1
      - host: h2
        layout: {aslr: true}
    policy: {preset: dmvx}
    workload: {kind: microbench, call: read, iterations: 20000}
    expect: {verdict: ok}

:func:`load_scenario` resolves the topology (a bare name, a path relative to
the scenario file, or a mapping written inline) and cross-checks the two:
variant hosts exist and have role ``variant``, the workload's client exists
and is not a variant, the attack targets a variant that exists. It also
fills what was left to defaults, so consumers of a loaded scenario always
find ``topology`` as a :class:`~dmvx.topology.Topology`, a ``variants``
list with each ``arch`` set, and a server workload's ``client`` set.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from dmvx.bounds import (
    MAX_AT_CALL,
    MAX_CB_ENTRIES,
    MAX_CONCURRENCY,
    MAX_ITERATIONS,
    MAX_REPEAT,
    MAX_REQUESTS,
    MAX_STALL_TIMEOUT,
    MAX_VARIANTS,
)
from dmvx.errors import InputError, Problem, did_you_mean, format_path, one_of
from dmvx.syscalls import Arch
from dmvx.syscalls import names as syscall_names
from dmvx.topology import Topology, load_topology, resolve_topology
from dmvx.units import Duration, Size
from dmvx.verdict import VerdictKind
from dmvx.yamlfile import (
    SOURCE_ROOT,
    FileModel,
    YamlDocument,
    display_path,
    find_named,
    is_path_like,
    not_found_message,
    read_yaml,
)

if TYPE_CHECKING:
    from dmvx.policy import Policy

PAGE_SIZE = 4096

Preset = Literal["dmon", "dmvx"]
Relaxation = Literal["base", "nonsocket-ro", "nonsocket-rw", "socket-ro", "socket-rw"]
#: Route names, as :class:`dmvx.policy.Route` spells them.
RouteName = Literal["lockstep", "replicate", "local", "local-file", "predict"]
MicrobenchCall = Literal["getpid", "read", "read4k", "getcwd", "sched_yield", "write"]
AttackKind = Literal[
    "rop-absolute",
    "pointer-leak",
    "relative-rop",
    "data-only",
    "record-forgery",
    "connector-forgery",
    "connector-replay",
]
#: Attacks on the monitor's network channel rather than on a variant.
CONNECTOR_ATTACKS = frozenset({"connector-forgery", "connector-replay"})
#: Real-mode exploits (vulnerable programs of realmode/vuln), and the attack
#: class each one is an instance of.
EXPLOIT_KIND = {
    "stack-overflow": "rop-absolute",
    "heap-overflow": "rop-absolute",
    "partial-overwrite": "relative-rop",
    "format-string": "pointer-leak",
    "struct-overflow": "data-only",
}
Exploit = Literal["stack-overflow", "heap-overflow", "partial-overwrite", "format-string", "struct-overflow"]
#: The modes a diversity setting lists an expectation for.
MODES = ("sim", "real")
_SETTING_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


# ---------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------


def _parse_address(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Problem(f"'{value}' is not an address", expected="an integer or a hex string such as 0x400000")
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"0[xX][0-9a-fA-F]+|[0-9]+", text):
            raise Problem(f"{value!r} is not an address", expected="an integer or a hex string such as 0x400000")
        value = int(text, 0)
    if value < 0 or value % PAGE_SIZE:
        raise Problem(
            f"{hex(value) if value >= 0 else value} is not page-aligned",
            expected=f"a non-negative multiple of {PAGE_SIZE} (0x{PAGE_SIZE:x})",
        )
    return value


Address = Annotated[
    int,
    PlainValidator(_parse_address),
    PlainSerializer(hex, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^\s*(0[xX][0-9a-fA-F]+|[0-9]+)\s*$"},
            ],
            "description": "A page-aligned address: an integer or a hex string such as 0x400000.",
        }
    ),
]


class Layout(FileModel):
    """How a variant's memory layout is diversified."""

    aslr: bool = Field(default=True, description="Randomise the address-space layout (ASLR).")
    base: Address | None = Field(
        default=None,
        description="Fixed load address of the program image (needs aslr: false), e.g. 0x400000.",
    )
    disjoint: bool = Field(
        default=False,
        description="Place code and data so that no address is valid in this variant and another "
        "disjoint variant (disjoint code layouts): absolute-address attacks then fail in all but one.",
    )

    @model_validator(mode="after")
    def _base_needs_fixed_layout(self) -> Layout:
        if self.base is not None and self.aslr:
            raise Problem(
                "base is set while aslr is on",
                path=("base",),
                at="key",
                expected="aslr: false together with a fixed base, or no base",
            )
        return self


class VariantSpec(FileModel):
    """One variant: where it runs and how it differs. The first is the leader."""

    host: str = Field(description="Topology host that runs this variant (a host with role: variant).")
    arch: Arch | None = Field(
        default=None,
        description="Architecture of this variant. Default: the host's. An x86_64 host may also run "
        "an i386 variant (ABI diversity on one machine).",
    )
    binary: str | None = Field(
        default=None,
        description="Program this variant runs (real mode). A relative path is taken from the "
        "scenario file's directory. Default: the mode's built-in program for the workload.",
    )
    layout: Layout = Field(default_factory=Layout, description="Memory-layout diversity of this variant.")


# ---------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------


class CB(FileModel):
    """The connector buffer (CB): the ring between DIP-MON and the CONNECTOR."""

    entries: int | None = Field(
        default=None, ge=1, le=MAX_CB_ENTRIES, description="Capacity in entries. Default: the preset's."
    )
    bytes: Size | None = Field(default=None, description="Capacity in bytes, e.g. 16MiB. Default: the preset's.")


class PolicySpec(FileModel):
    """Which calls are cross-checked, replicated, or handled locally. Unset knobs take the preset's value."""

    preset: Preset = Field(
        default="dmvx",
        description="dmon: every call checked and replicated synchronously (the DMON baseline). "
        "dmvx: hybrid broker, asynchronous and selective replication.",
    )
    relaxation: Relaxation | None = Field(
        default=None,
        description="How many call families the in-process monitor may replicate without lockstep, "
        "from strictest to most relaxed: base, nonsocket-ro, nonsocket-rw, socket-ro, socket-rw. "
        "Default: base for dmon, socket-rw for dmvx.",
    )
    async_replication: bool | None = Field(
        default=None,
        description="Let the leader run ahead on non-sensitive calls instead of waiting for followers. "
        "Default: off for dmon, on for dmvx.",
    )
    local_files: list[str] = Field(
        default_factory=list,
        description="Glob patterns of files no outside process changes: each variant reads its own "
        "copy (selective replication), e.g. /usr/lib/**.",
    )
    predict: bool | None = Field(
        default=None,
        description="Let followers derive predictable results (close of a known fd, ...) instead of "
        "receiving them. Default: off for dmon, on for dmvx.",
    )
    cb: CB = Field(default_factory=CB, description="Connector buffer size.")
    ack_every: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CB_ENTRIES,
        description="Followers acknowledge every N entries (flow control of the CB). Default: the preset's.",
    )
    overrides: dict[str, RouteName] = Field(
        default_factory=dict,
        description="Route per system call, overriding the broker, e.g. {read: lockstep}. "
        "Routes: lockstep, replicate, local, local-file, predict.",
    )
    stall_timeout: Duration = Field(
        default="1s",
        validate_default=True,
        description="How long a variant may make no progress before the run is stopped with a "
        "no-progress verdict, e.g. 1s.",
    )

    @model_validator(mode="after")
    def _bounded_stall_timeout(self) -> PolicySpec:
        if self.stall_timeout > MAX_STALL_TIMEOUT:
            raise Problem(
                f"a stall timeout of {self.stall_timeout:g} s is too long",
                path=("stall_timeout",),
                expected=f"at most {MAX_STALL_TIMEOUT:g} s",
            )
        return self

    @model_validator(mode="after")
    def _known_calls(self) -> PolicySpec:
        known = syscall_names()
        for name in self.overrides:
            if name not in known:
                raise Problem(
                    f"unknown system call {name!r}{did_you_mean(name, known)}",
                    path=("overrides", name),
                    at="key",
                    expected="a canonical system call name, e.g. read, openat, execve",
                )
        return self

    def to_policy(self) -> Policy:
        """The :class:`dmvx.policy.Policy` this spec describes."""
        from dmvx.policy import Policy

        knobs: dict[str, Any] = {}
        for name in ("relaxation", "async_replication", "predict", "ack_every"):
            value = getattr(self, name)
            if value is not None:
                knobs[name] = value
        if self.local_files:
            knobs["local_files"] = self.local_files
        if self.cb.entries is not None:
            knobs["cb_entries"] = self.cb.entries
        if self.cb.bytes is not None:
            knobs["cb_bytes"] = self.cb.bytes
        if self.overrides:
            knobs["overrides"] = self.overrides
        return Policy.preset(self.preset, **knobs)


# ---------------------------------------------------------------------------
# Workloads, attacks, expectations, sweeps
# ---------------------------------------------------------------------------


class Microbench(FileModel):
    """One system call in a tight loop: the paper's microbenchmarks."""

    kind: Literal["microbench"] = Field(description="Workload kind.")
    call: MicrobenchCall = Field(
        description="The call: getpid, read (1 byte), read4k (4 KiB), getcwd, sched_yield or write."
    )
    iterations: int = Field(default=20000, ge=1, le=MAX_ITERATIONS, description="How many times the call is made.")


class Server(FileModel):
    """A file server (lighttpd-like) answering requests from a client host."""

    kind: Literal["server"] = Field(description="Workload kind.")
    requests: int = Field(default=1000, ge=1, le=MAX_REQUESTS, description="Requests the client sends in total.")
    concurrency: int = Field(default=1, ge=1, le=MAX_CONCURRENCY, description="Requests in flight at once.")
    request_size: Size = Field(default="200B", validate_default=True, description="Size of one request, e.g. 200B.")
    file_size: Size = Field(
        default="4KiB", validate_default=True, description="Size of the file each request fetches, e.g. 4KiB."
    )
    client: str | None = Field(
        default=None,
        description="Host that sends the requests (role client or attacker). Default: the first client host.",
    )


class Trace(FileModel):
    """A recorded system-call trace (from real mode) replayed as the workload."""

    kind: Literal["trace"] = Field(description="Workload kind.")
    path: str = Field(description="The trace file; a relative path is taken from the scenario file's directory.")

    @model_validator(mode="after")
    def _exists(self) -> Trace:
        if not Path(self.path).is_file():
            raise Problem(f"no trace file {self.path!r}", path=("path",), expected="an existing trace file")
        return self


Workload = Annotated[Microbench | Server | Trace, Field(discriminator="kind")]


class Attack(FileModel):
    """An exploit fired during the run."""

    kind: AttackKind = Field(
        description="rop-absolute, pointer-leak, relative-rop, data-only (against a variant), "
        "record-forgery (a compromised leader lies in its in-process ring), "
        "connector-forgery, connector-replay (against the monitors' channel).",
    )
    at_call: int = Field(
        ge=0, le=MAX_AT_CALL, description="Sequence number of the system call at which the attack fires."
    )
    target: int = Field(default=0, ge=0, lt=MAX_VARIANTS, description="Index of the attacked variant: 0 is the leader.")
    source: str | None = Field(
        default=None,
        description="Host the attack is sent from (connector attacks). Default: the first attacker "
        "host, else the first client host.",
    )
    exploit: Exploit | None = Field(
        default=None,
        description="Real mode: the vulnerable program and its exploit, an instance of kind -- "
        "stack-overflow or heap-overflow (rop-absolute), partial-overwrite (relative-rop), "
        "format-string (pointer-leak), struct-overflow (data-only). Default: the first of these for the kind.",
    )

    @model_validator(mode="after")
    def _exploit_fits(self) -> Attack:
        if self.exploit is not None and EXPLOIT_KIND[self.exploit] != self.kind:
            fitting = [name for name, kind in EXPLOIT_KIND.items() if kind == self.kind]
            raise Problem(
                f"exploit {self.exploit!r} is a {EXPLOIT_KIND[self.exploit]} attack, not {self.kind}",
                path=("exploit",),
                expected=one_of(fitting) if fitting else f"no exploit with kind {self.kind}",
            )
        return self


class Expect(FileModel):
    """The outcome a scenario should have; a run that differs fails."""

    verdict: Literal["ok", "divergence", "missed", "rejected"] = Field(
        description="ok: no verdict. divergence: the monitors stop the run. missed: an attack "
        "succeeds undetected (documents a limit). rejected: forged monitor traffic is refused.",
    )
    kind: VerdictKind | None = Field(
        default=None,
        description="The verdict kind expected with divergence or rejected, e.g. call-mismatch, auth-failure.",
    )
    effect: bool | None = Field(
        default=None,
        description="Whether the attack reaches its goal (the shell it starts runs, the secret or the "
        "pointer it is after reaches the attacker), verdict or not. Default: not checked.",
    )

    @model_validator(mode="after")
    def _coherent(self) -> Expect:
        if self.effect is False and self.verdict == "missed":
            raise Problem(
                "a missed attack without effect",
                path=("effect",),
                expected="effect: true with verdict missed (an attack that fails in every variant is not missed)",
            )
        if self.kind is None:
            return self
        if self.verdict in ("ok", "missed"):
            raise Problem(
                f"a verdict kind with verdict {self.verdict!r}",
                path=("kind",),
                at="key",
                expected="kind only with verdict divergence or rejected",
            )
        divergences = [k.value for k in VerdictKind if k.is_divergence]
        if self.verdict == "divergence" and not self.kind.is_divergence:
            raise Problem(f"{self.kind.value!r} is not a divergence", path=("kind",), expected=one_of(divergences))
        if self.verdict == "rejected" and self.kind.is_divergence:
            others = [k.value for k in VerdictKind if not k.is_divergence]
            raise Problem(
                f"{self.kind.value!r} is a divergence, not a rejection", path=("kind",), expected=one_of(others)
            )
        return self


class NotRun(FileModel):
    """A mode that cannot run a setting, and why."""

    skip: str = Field(
        min_length=1,
        description="Why this mode does not run the setting, e.g. 'an aarch64 variant needs a real aarch64 host'.",
    )


def _expect_tag(value: Any) -> str:
    return (
        "skip" if isinstance(value, (Mapping, NotRun)) and (isinstance(value, NotRun) or "skip" in value) else "expect"
    )


ModeExpect = Annotated[
    Annotated[Expect, Tag("expect")] | Annotated[NotRun, Tag("skip")],
    Discriminator(_expect_tag),
]


class ExpectByMode(FileModel):
    """The outcome expected in each mode. Sim and real mode must agree where
    both run (the suite reports any disagreement)."""

    sim: ModeExpect = Field(description="What dmvx sim must find, or {skip: why}.")
    real: ModeExpect = Field(
        description="What dmvx real must find, or {skip: why} where real mode "
        "cannot run the setting (say, a variant of another ISA)."
    )


class DiversitySetting(FileModel):
    """One way to diversify the variants, and what each mode must find under it."""

    description: str = Field(default="", description="What this setting varies, in a sentence.")
    variants: list[VariantSpec] = Field(
        min_length=2, max_length=MAX_VARIANTS, description="The variants, leader first."
    )
    expect: ExpectByMode = Field(description="The expected outcome in sim and in real mode.")


_SWEEP_PATH = re.compile(r"^[A-Za-z_*][\w*-]*(\[(\d+|\*)\])*(\.[A-Za-z_*][\w*-]*(\[(\d+|\*)\])*)*$")


class Sweep(FileModel):
    """Run the scenario once per value of one parameter."""

    parameter: str = Field(
        description="Dotted path into this scenario, with [N] or [*] for list items and * for all "
        "entries of a mapping, e.g. topology.links[*].delay or policy.cb.entries.",
    )
    values: list[Any] = Field(min_length=1, description="The values, written as in the file, e.g. [1ms, 5ms, 10ms].")

    @model_validator(mode="after")
    def _syntax(self) -> Sweep:
        if not _SWEEP_PATH.match(self.parameter):
            raise Problem(
                f"{self.parameter!r} is not a parameter path",
                path=("parameter",),
                expected="a dotted path such as topology.links[*].delay",
            )
        return self


class Repeat(FileModel):
    """Run every point several times, over seeds and over attack positions;
    the result reports each measure's mean, min, max and 95% interval."""

    seeds: (
        Annotated[int, Field(ge=1, le=MAX_REPEAT)]
        | Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=MAX_REPEAT)]
        | None
    ) = Field(
        default=None,
        description="N: the scenario's seed and the N-1 after it; or the seeds, e.g. [1, 7, 42].",
    )
    at_calls: list[Annotated[int, Field(ge=0, le=MAX_AT_CALL)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_REPEAT,
        description="Attack positions: the attack.at_call of each repetition, e.g. [5000, 10000, 20000].",
    )

    def dimensions(self, seed: int) -> list[tuple[str, list[Any]]]:
        """The repetitions as sweep dimensions (``seed``, ``attack.at_call``),
        for a scenario whose own seed is ``seed``."""
        out: list[tuple[str, list[Any]]] = []
        if self.seeds is not None:
            out.append(("seed", list(range(seed, seed + self.seeds)) if isinstance(self.seeds, int) else self.seeds))
        if self.at_calls is not None:
            out.append(("attack.at_call", list(self.at_calls)))
        return out


def _sweep_tag(value: Any) -> str:
    return "grid" if isinstance(value, list) else "one"


#: One sweep, or a list of sweeps (a grid). Tagged by shape, so an error in
#: a single sweep is reported at its own field, not at a union member.
SweepSpec = Annotated[
    Annotated[Sweep, Tag("one")] | Annotated[list[Sweep], Tag("grid")],
    Discriminator(_sweep_tag),
]


def _topology_tag(value: Any) -> str:
    return "inline" if isinstance(value, (dict, Topology)) else "name"


TopologyRef = Annotated[
    Annotated[str, Tag("name")] | Annotated[Topology, Tag("inline")],
    Discriminator(_topology_tag),
]


# ---------------------------------------------------------------------------
# The scenario
# ---------------------------------------------------------------------------


class Scenario(FileModel):
    """A complete experiment for ``dmvx sim`` or ``dmvx real``."""

    name: str | None = Field(default=None, description="Name of the scenario. Default: the file name without .yml.")
    description: str = Field(default="", description="What this scenario shows, in a sentence or two.")
    topology: TopologyRef = Field(
        default="two-host",
        description="The topology: a built-in name (two-host, three-variant, abi-pair, isa-pair, wan), "
        "a path to a topology file relative to this file, or a topology written inline.",
    )
    seed: int = Field(default=0, ge=0, description="Seed of every random choice in the run, for repeatable results.")
    variants: list[VariantSpec] | None = Field(
        default=None,
        min_length=2,
        max_length=MAX_VARIANTS,
        description="The variants, leader first. Default: one per variant host of the topology, in its order.",
    )
    policy: PolicySpec = Field(default_factory=PolicySpec, description="Monitor policy.")
    cost_profile: str = Field(
        default="paper",
        description="Sim-mode cost profile: a name from sim/profiles/ (paper: calibrated to the dMVX "
        "paper) or a path to a profile file relative to this file.",
    )
    workload: Workload = Field(description="What the program does: a microbenchmark, a server, or a recorded trace.")
    attack: Attack | None = Field(default=None, description="An attack to fire during the run. Default: none.")
    expect: Expect | None = Field(default=None, description="The expected outcome. Default: not checked.")
    sweep: SweepSpec | None = Field(
        default=None,
        description="Repeat the run over values of one parameter, or, given a list of sweeps, over every "
        "combination of their values (the first varies slowest).",
    )
    repeat: Repeat | None = Field(
        default=None,
        description="Repeat every point over seeds and attack positions, and report the mean, min, max "
        "and 95% interval of each measure. Default: each point runs once.",
    )
    diversity: dict[str, DiversitySetting] | None = Field(
        default=None,
        description="Named diversity settings (identical, aslr, ...), each with its variants and the "
        "outcome expected in sim and in real mode. The scenario then runs once per setting "
        "(a sweep over setting); variants and expect come from the setting.",
    )
    setting: str | None = Field(
        default=None,
        description="Run only this diversity setting (a name under diversity).",
    )

    @model_validator(mode="after")
    def _cross_check(self) -> Scenario:
        self._apply_setting()
        if self.repeat is not None and self.repeat.at_calls is not None and self.attack is None:
            raise Problem(
                "attack positions to repeat over without an attack",
                path=("repeat", "at_calls"),
                expected="an attack: section, or no at_calls",
            )
        for name, expect in self._expectations():
            if expect is not None and expect.verdict == "missed" and self.attack is None:
                raise Problem(
                    "verdict 'missed' without an attack",
                    path=(*name, "verdict"),
                    expected="an attack: section, or another verdict",
                )
            if expect is not None and expect.effect is not None and self.attack is None:
                raise Problem(
                    "an expected effect without an attack",
                    path=(*name, "effect"),
                    expected="an attack: section, or no effect",
                )
        if isinstance(self.topology, Topology):
            if self.diversity is None or self.setting is not None:
                # (with settings, each point is checked with its own variants)
                self._check_against(self.topology)
            for index, sweep in enumerate(self.sweeps):
                self._check_sweep(sweep, ("sweep", index) if isinstance(self.sweep, list) else ("sweep",))
        return self

    def _expectations(self) -> list[tuple[tuple[Any, ...], Expect | None]]:
        if self.diversity is None or self.setting is not None:
            return [(("expect",), self.expect)]
        return [
            (("diversity", name, "expect", mode), getattr(setting.expect, mode))
            for name, setting in self.diversity.items()
            for mode in MODES
            if isinstance(getattr(setting.expect, mode), Expect)
        ]

    def _apply_setting(self) -> None:
        """Diversity settings: the selected one gives ``variants`` and
        ``expect`` (sim's expectation: ``expect`` is what dmvx sim checks);
        with none selected, the scenario sweeps over all of them."""
        if self.diversity is None:
            if self.setting is not None:
                raise Problem(
                    "setting without diversity settings",
                    path=("setting",),
                    at="key",
                    expected="a diversity: section naming the settings",
                )
            return
        for name in self.diversity:
            if not _SETTING_NAME.match(name):
                raise Problem(
                    f"{name!r} is not a setting name",
                    path=("diversity", name),
                    at="key",
                    expected="lower-case letters, digits and dashes, e.g. aslr or abi-i386",
                )
        if self.setting is not None:
            chosen = self.diversity.get(self.setting)
            if chosen is None:
                raise Problem(
                    f"no diversity setting {self.setting!r}{did_you_mean(self.setting, self.diversity)}",
                    path=("setting",),
                    expected=one_of(self.diversity),
                )
            self.variants = [variant.model_copy(deep=True) for variant in chosen.variants]
            sim = chosen.expect.sim
            self.expect = sim.model_copy() if isinstance(sim, Expect) else None
            return
        for field in ("variants", "expect"):
            if getattr(self, field) is not None:
                raise Problem(
                    f"{field} given beside diversity settings",
                    path=(field,),
                    at="key",
                    expected=f"{field} under each setting of diversity: (each setting has its own)",
                )
        if not any(sweep.parameter == "setting" for sweep in self.sweeps):
            by_setting = Sweep(parameter="setting", values=list(self.diversity))
            self.sweep = [by_setting, *self.sweeps] if self.sweeps else by_setting

    def expectation(self, mode: str) -> Expect | NotRun | None:
        """What ``mode`` (sim or real) must find: the selected setting's
        expectation for it, else the scenario's ``expect``."""
        if self.diversity is not None and self.setting is not None:
            chosen: Expect | NotRun | None = getattr(self.diversity[self.setting].expect, mode)
            return chosen
        return self.expect

    @property
    def sweeps(self) -> list[Sweep]:
        """The sweeps of this scenario as a list (empty without one)."""
        if self.sweep is None:
            return []
        return list(self.sweep) if isinstance(self.sweep, list) else [self.sweep]

    # -- cross-checks against the topology (they also fill in defaults) ----------

    def _check_against(self, topo: Topology) -> None:
        hosts = list(topo.hosts)
        if self.variants is None:
            names = topo.variant_hosts()
            if len(names) < 2:
                raise Problem(
                    f"topology {topo.name!r} has only one variant host",
                    path=("topology",),
                    expected="a variants: list (several variants may share a host)",
                )
            self.variants = [VariantSpec(host=name) for name in names]
        for i, variant in enumerate(self.variants):
            host = topo.hosts.get(variant.host)
            if host is None:
                raise Problem(
                    f"no host {variant.host!r} in topology {topo.name!r}{did_you_mean(variant.host, hosts)}",
                    path=("variants", i, "host"),
                    expected=f"a variant host: {', '.join(topo.variant_hosts())}",
                )
            if host.role != "variant":
                raise Problem(
                    f"host {variant.host!r} has role {host.role!r}",
                    path=("variants", i, "host"),
                    expected=f"a host with role variant: {', '.join(topo.variant_hosts())}",
                )
            if variant.arch is None:
                variant.arch = host.arch
            elif variant.arch != host.arch and not (variant.arch is Arch.I386 and host.arch is Arch.X86_64):
                raise Problem(
                    f"an {variant.arch.value} variant cannot run on {host.arch.value} host {variant.host!r}",
                    path=("variants", i, "arch"),
                    expected=f"{host.arch.value}" + (" or i386" if host.arch is Arch.X86_64 else ""),
                )
        others = topo.hosts_with_role("client", "attacker")
        if isinstance(self.workload, Server):
            if self.workload.client is None:
                clients = topo.hosts_with_role("client") or others
                if not clients:
                    raise Problem(
                        f"topology {topo.name!r} has no client host",
                        path=("workload",),
                        expected="a host with role client, or workload.client naming one",
                    )
                self.workload.client = clients[0]
            elif self.workload.client not in others:
                client = self.workload.client
                raise Problem(
                    f"{client!r} is not a client or attacker host{did_you_mean(client, others)}",
                    path=("workload", "client"),
                    expected=one_of(others) if others else "a host with role client",
                )
        if self.attack is not None:
            if self.attack.target >= len(self.variants):
                raise Problem(
                    f"variant {self.attack.target} does not exist",
                    path=("attack", "target"),
                    expected=f"a variant index from 0 (leader) to {len(self.variants) - 1}",
                )
            if self.attack.source is not None and self.attack.source not in others:
                source = self.attack.source
                raise Problem(
                    f"{source!r} is not a client or attacker host{did_you_mean(source, others)}",
                    path=("attack", "source"),
                    expected=one_of(others) if others else "a non-variant host",
                )
            if self.attack.source is None and self.attack.kind in CONNECTOR_ATTACKS:
                sources = topo.hosts_with_role("attacker") or topo.hosts_with_role("client")
                if not sources:
                    raise Problem(
                        f"topology {topo.name!r} has no attacker or client host",
                        path=("attack",),
                        expected="a host with role attacker to send the forged traffic",
                    )
                self.attack.source = sources[0]

    def _check_sweep(self, sweep: Sweep, where: tuple[Any, ...]) -> None:
        base = self.model_dump(mode="json", exclude={"sweep"})
        try:
            targets = _select(base, sweep.parameter)
        except LookupError as exc:
            raise Problem(
                str(exc),
                path=(*where, "parameter"),
                expected="a path to a field of this scenario, e.g. topology.links[*].delay",
            ) from None
        if not targets:
            raise Problem(
                f"{sweep.parameter!r} selects nothing",
                path=(*where, "parameter"),
                expected="a path to a field of this scenario",
            )
        for i, value in enumerate(sweep.values):
            try:
                Scenario.model_validate(_with_value(base, sweep.parameter, value))
            except ValidationError as exc:
                err = YamlDocument("", _with_value(base, sweep.parameter, value), {}).validation_error(exc)
                raise Problem(
                    f"{value!r} does not fit {sweep.parameter}: at {err.field}: {err.message}",
                    path=(*where, "values", i),
                    expected=err.expected,
                ) from None

    # -- conveniences for the modes -------------------------------------------------

    @property
    def topo(self) -> Topology:
        """The resolved topology (only after :func:`load_scenario` when the file names one)."""
        if not isinstance(self.topology, Topology):
            raise TypeError(f"topology {self.topology!r} is not resolved: load the scenario with load_scenario()")
        return self.topology

    @property
    def leader(self) -> VariantSpec:
        """The first variant."""
        if not self.variants:
            raise TypeError("variants are not resolved: load the scenario with load_scenario()")
        return self.variants[0]

    def with_values(self, settings: Mapping[str, Any]) -> Scenario:
        """A copy with each ``parameter -> value`` applied (paths as in
        :class:`Sweep`, values as they would be written in the file, e.g.
        ``{"policy.cb.entries": 16, "topology.links[*].delay": "5ms"}``).
        A bad path or value is an :class:`InputError` naming the parameter."""
        data = self.model_dump(mode="json")
        for parameter, value in settings.items():
            try:
                if not _SWEEP_PATH.match(parameter):
                    raise LookupError(f"{parameter!r} is not a parameter path")
                data = _with_value(data, parameter, value)
            except LookupError as exc:
                raise InputError(
                    str(exc).strip('"'),
                    field=parameter,
                    expected="a path to a field of the scenario, e.g. policy.cb.entries",
                ) from None
        try:
            return Scenario.model_validate(data)
        except ValidationError as exc:
            err = YamlDocument("", data, {}).validation_error(exc)
            names = ", ".join(f"{k}={v}" for k, v in settings.items())
            raise InputError(f"{err.message} (after setting {names})", field=err.field, expected=err.expected) from None

    def resolved(self, base_dir: Path | None = None) -> Scenario:
        """This scenario with a topology given by name loaded and cross-checked
        (after ``--set topology=wan``, say); itself when already resolved."""
        if isinstance(self.topology, Topology):
            return self
        try:
            topology = load_topology(resolve_topology(self.topology, base_dir or Path.cwd()))
        except InputError as exc:
            if exc.file is not None:
                raise  # a problem inside the topology file: it says where
            raise InputError(exc.message, field="topology", expected=exc.expected) from None
        data = self.model_dump(mode="json")
        data["topology"] = topology.model_dump(mode="json")
        data["variants"] = None if self.variants is None else data["variants"]
        try:
            return Scenario.model_validate(data)
        except ValidationError as exc:
            err = YamlDocument("", data, {}).validation_error(exc)
            raise InputError(
                f"{err.message} (with topology {self.topology!r})", field=err.field, expected=err.expected
            ) from None

    def sweep_points(self) -> list[tuple[Any, Scenario]]:
        """One ``(values, scenario)`` per point of the sweep, the scenario with
        the values applied and no sweep; ``[(None, self)]`` without a sweep.
        With one sweep ``values`` is that sweep's value; with a grid, the
        tuple of one value per sweep, the first sweep varying slowest."""
        sweeps = self.sweeps
        if not sweeps:
            return [(None, self)]
        base = self.model_dump(mode="json", exclude={"sweep"})
        points = []
        for combo in itertools.product(*(sweep.values for sweep in sweeps)):
            data = base
            for sweep, value in zip(sweeps, combo):
                data = _with_value(data, sweep.parameter, value)
            points.append((combo[0] if len(sweeps) == 1 else combo, Scenario.model_validate(data)))
        return points


# ---------------------------------------------------------------------------
# Sweep paths
# ---------------------------------------------------------------------------


def _steps(parameter: str) -> list[str | int]:
    steps: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+|\*)\]", parameter):
        steps.append(name if name else ("*" if index == "*" else int(index)))
    return steps


def _select(data: Any, parameter: str) -> list[tuple[Any, str | int]]:
    """``(container, key)`` pairs a parameter path designates.

    Every step but the last must exist; the last may name a key not yet in
    a mapping (revalidation decides whether it is a field).
    """
    steps = _steps(parameter)
    current: list[tuple[Any, str | int, str]] = [({"": data}, "", "")]
    for n, step in enumerate(steps):
        last = n == len(steps) - 1
        nxt: list[tuple[Any, str | int, str]] = []
        for container, key, where in current:
            node = container[key]
            if step == "*":
                if isinstance(node, list):
                    keys: list[str | int] = list(range(len(node)))
                elif isinstance(node, dict):
                    keys = list(node)
                else:
                    raise LookupError(f"{where or 'the scenario'} has no items to select with *")
            else:
                keys = [step]
            for k in keys:
                label = format_path([*([where] if where else []), k]) if where else format_path([k])
                ok = (isinstance(node, dict) and (k in node or (last and isinstance(k, str)))) or (
                    isinstance(node, list) and isinstance(k, int) and k < len(node)
                )
                if not ok:
                    choices = [str(c) for c in node] if isinstance(node, dict) else []
                    raise LookupError(f"{label} does not exist{did_you_mean(str(k), choices)}")
                nxt.append((node, k, label))
        current = nxt
    return [(container, key) for container, key, _ in current]


def _with_value(base: dict[str, Any], parameter: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(base)
    for container, key in _select(data, parameter):
        container[key] = value
    return data


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def resolve_scenario(ref: str | Path) -> Path:
    """The file a scenario reference (a path, or a built-in name such as
    ``default``) names; :class:`InputError` when there is none."""
    if isinstance(ref, Path) or is_path_like(ref) or Path(ref).is_file():
        return Path(ref)
    path = find_named("scenarios", ref)
    if path is None:
        message, expected = not_found_message("scenarios", ref)
        raise InputError(message, expected=expected)
    return path


def load_scenario(ref: str | Path) -> Scenario:
    """Load a scenario file and the topology it names, cross-checked.

    ``ref`` is a path or a built-in scenario name (``default``). Any problem
    is one :class:`~dmvx.errors.InputError`: in the scenario file, or in the
    topology file when that is where the problem is.
    """
    path = resolve_scenario(ref)
    named = not (isinstance(ref, Path) or is_path_like(str(ref)) or Path(str(ref)).is_file())
    display = display_path(path) if named else str(ref)
    doc = read_yaml(path, display=display)
    return scenario_from_document(doc, path.parent, default_name=path.stem)


def scenario_from_document(doc: YamlDocument, base_dir: Path, default_name: str | None = None) -> Scenario:
    """Validate a parsed scenario document whose relative paths are taken
    from ``base_dir``."""
    doc.check_kind(Scenario)  # before the default topology is filled in
    data = dict(doc.data)
    ref = data.get("topology", Scenario.model_fields["topology"].default)
    if isinstance(ref, str):
        try:
            topo_path = resolve_topology(ref, base_dir)
        except InputError as exc:
            raise doc.error(("topology",), exc.message, exc.expected) from None
        data["topology"] = load_topology(topo_path)
    elif isinstance(ref, dict) and "name" not in ref:
        data["topology"] = {**ref, "name": "inline"}
    _absolute_paths(data, base_dir)
    try:
        _check_cost_profile(doc, data, base_dir)
    except InputError as bad_profile:
        # Report the fields' errors with it (dmvx validate shows them all).
        try:
            doc.validate(Scenario, data)
        except InputError as also:
            places = {(bad_profile.line, bad_profile.column)}
            others = [e for e in also.every() if (e.line, e.column) not in places]
            found = sorted((bad_profile, *others), key=lambda e: (e.line or 0, e.column or 0))
            found[0].more = tuple(found[1:])
            raise found[0] from None
        raise
    scenario = doc.validate(Scenario, data)
    if scenario.name is None:
        scenario.name = default_name
    return scenario


def _absolute_paths(data: dict[str, Any], base_dir: Path) -> None:
    """Rewrite relative file references so they hold wherever the run starts."""
    workload = data.get("workload")
    if isinstance(workload, dict) and workload.get("kind") == "trace" and isinstance(workload.get("path"), str):
        data["workload"] = {**workload, "path": str(_under(base_dir, workload["path"]))}
    variants = data.get("variants")
    if isinstance(variants, list):
        data["variants"] = [
            {**v, "binary": str(_under(base_dir, v["binary"]))}
            if isinstance(v, dict) and isinstance(v.get("binary"), str) and is_path_like(v["binary"])
            else v
            for v in variants
        ]
    profile = data.get("cost_profile")
    if isinstance(profile, str) and is_path_like(profile):
        data["cost_profile"] = str(_under(base_dir, profile))


def _under(base_dir: Path, ref: str) -> Path:
    path = Path(ref).expanduser()
    return path if path.is_absolute() else base_dir / path


#: Where sim mode keeps its named cost profiles (issue: sim).
PROFILE_DIR = SOURCE_ROOT / "sim" / "profiles"


def _check_cost_profile(doc: YamlDocument, data: dict[str, Any], base_dir: Path) -> None:
    profile = data.get("cost_profile")
    if not isinstance(profile, str):
        return
    if is_path_like(profile):
        if not Path(profile).is_file():
            raise doc.error(
                ("cost_profile",),
                f"no cost profile file {doc.scalar_text(('cost_profile',))!r}",
                "an existing profile file or a profile name",
            )
        return
    if PROFILE_DIR.is_dir():
        names = sorted(p.stem for p in PROFILE_DIR.glob("*.yml"))
        if names and profile not in names:
            raise doc.error(
                ("cost_profile",),
                f"no cost profile named {profile!r}{did_you_mean(profile, names)}",
                f"a profile name ({', '.join(names)}) or a path to a profile file",
            )


__all__ = [
    "Attack",
    "CB",
    "DiversitySetting",
    "Expect",
    "ExpectByMode",
    "Layout",
    "Microbench",
    "NotRun",
    "PolicySpec",
    "Scenario",
    "Server",
    "Sweep",
    "Trace",
    "VariantSpec",
    "load_scenario",
    "resolve_scenario",
    "scenario_from_document",
]
