"""Cost profiles: how long each thing the simulator models takes.

Every duration the simulation adds to a clock comes from a profile file in
``sim/profiles/`` (or any path), never from a constant in the code: the cost
of a native call, of stopping a variant with ptrace, of an in-process
interception, of comparing, of copying a byte, of a CONNECTOR sending a frame.
A profile is a calibration, so it is data: ``paper.yml`` is tuned so that the
simulated slowdowns have the shape the dMVX paper reports, ``vm.yml`` holds
what was measured on the 2-core VMs this project runs on.

Durations are written with units (``15us``, ``0.2ns``) and held here as
nanoseconds: whole nanoseconds for fixed costs (the simulation clock counts
integer nanoseconds, which keeps runs bit-for-bit repeatable) and fractional
nanoseconds per byte (a byte costs far less than one).

A profile may name a ``base`` profile and give only what differs from it,
down to single fields (``monitor: {wakeup: 30us}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import Field, field_validator

from dmvx import syscalls
from dmvx.errors import InputError, did_you_mean
from dmvx.units import Duration, Queue, QueueLimit, Size
from dmvx.yamlfile import FileModel, display_path, is_path_like, read_yaml

#: Where named profiles live.
PROFILE_DIR = Path(__file__).resolve().parent / "profiles"

#: How a call is intercepted: the mechanisms a profile prices.
MECHANISMS = ("ptrace", "in_process", "seccomp_untraced", "none")
#: Route names (``dmvx.policy.Route`` values) plus ``default``.
ROUTE_KEYS = ("default", "lockstep", "replicate", "local", "local-file", "predict")


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def _ns_per_byte(seconds: float) -> float:
    return seconds * 1e9


# ---------------------------------------------------------------------------
# The file format (pydantic models, so a bad profile gets file:line:column)
# ---------------------------------------------------------------------------


class _Native(FileModel):
    default: Duration | None = Field(default=None, description="Native cost of a call not listed in calls.")
    calls: dict[str, Duration] | None = Field(default=None, description="Native cost per canonical call name.")
    per_byte: dict[str, Duration] | None = Field(
        default=None,
        description="Extra native cost per byte moved, per call name (read, write, sendfile...).",
    )


class _Monitor(FileModel):
    compare: Duration | None = Field(default=None, description="Comparing one call with the leader's (fixed part).")
    compare_per_byte: Duration | None = Field(default=None, description="Comparing, per byte of buffer arguments.")
    copy_per_buffer: Duration | None = Field(
        default=None,
        description="A monitor reading one buffer of a call (an argument, or an output of the leader's) from "
        "its variant's memory, or writing an output into a follower's (fixed part, per buffer).",
    )
    copy_per_byte: Duration | None = Field(
        default=None,
        description="Copying a result into the CB (leader) or into the variant's memory (follower skip).",
    )
    cb_append: Duration | None = Field(
        default=None,
        description="A monitor handing one message to its CONNECTOR (the leader's "
        "in-process monitor appending an entry to the CB).",
    )
    receive: Duration | None = Field(
        default=None,
        description="A monitor taking what its CONNECTOR delivered at once (in real mode, one read on the local link).",
    )
    receive_per_message: Duration | None = Field(
        default=None,
        description="A monitor taking one message from its CONNECTOR "
        "(reading the CB; in real mode, decoding it from the local link).",
    )
    wakeup: Duration | None = Field(
        default=None, description="Waking a variant that slept waiting for its monitor (a futex wake)."
    )


class _Connector(FileModel):
    used_by: list[Literal["dmon", "dmvx"]] | None = Field(
        default=None,
        description="Presets whose monitors talk through a CONNECTOR process fed by the CB. The others' "
        "monitors (DMON's ptrace monitors) send and receive on their own sockets: no CONNECTOR wake-ups.",
    )
    wakeup: Duration | None = Field(
        default=None, description="Waking an idle CONNECTOR when the CB gets its first entry."
    )
    receive_wakeup: Duration | None = Field(
        default=None,
        description="Waking an idle CONNECTOR when frames arrive from the network. Default: wakeup. (They differ "
        "where a CONNECTOR shares its monitor's CPU, as in real mode, but not its peers'.)",
    )
    send: Duration | None = Field(default=None, description="One send system call carrying a batch of frames.")
    per_message: Duration | None = Field(default=None, description="Encoding, encrypting and authenticating one frame.")
    send_per_byte: Duration | None = Field(default=None, description="Sending, per byte.")
    receive: Duration | None = Field(default=None, description="One receive system call (a batch of frames).")
    receive_per_message: Duration | None = Field(default=None, description="Checking and decoding one frame.")
    receive_per_byte: Duration | None = Field(default=None, description="Receiving, per byte.")
    max_batch_messages: int | None = Field(default=None, ge=1, description="At most this many frames in one send.")
    max_batch_bytes: Size | None = Field(default=None, description="At most this many bytes in one send.")


class _Network(FileModel):
    packet_overhead: Size | None = Field(default=None, description="Bytes of Ethernet, IP and TCP headers per packet.")
    mss: Size | None = Field(default=None, description="TCP payload bytes per packet.")
    loss_recovery: Duration | None = Field(
        default=None,
        description="Time TCP needs, beyond one round trip, to send a lost packet again (fast retransmit).",
    )
    max_retransmits: int | None = Field(
        default=None, ge=0, description="Give a message up after this many losses in a row."
    )
    default_queue: Queue | None = Field(default=None, description="Queue limit of a link that names none.")


class _Server(FileModel):
    compute_per_request: Duration | None = Field(
        default=None, description="User-space work per request (parsing, headers, logging)."
    )
    header_bytes: Size | None = Field(default=None, description="Size of the response header.")
    stat_bytes: Size | None = Field(default=None, description="Size of the struct stat the server reads.")


class _Client(FileModel):
    per_request: Duration | None = Field(default=None, description="Client CPU time to issue one request.")
    syn_bytes: Size | None = Field(default=None, description="Bytes of a connection set-up packet (SYN, SYN-ACK).")


class _Diversity(FileModel):
    aslr_bits: dict[str, int] | None = Field(
        default=None,
        description="Bits of ASLR entropy of the program image, per architecture (x86_64, i386, aarch64).",
    )


class _Dipmon(FileModel):
    call: Duration = Field(
        description="A wrapped call in the variant beyond the native call: the call from the trampoline and "
        "its record appended to the ring (leader), or the entry taken from the in ring (follower)."
    )
    drain: Duration = Field(
        description="The leader's monitor per record, off the program's path, all in: draining it from the "
        "ring, through the core and its entry handed to the CONNECTOR (records go in runs and batches, so no "
        "per-message part is charged apart: not monitor.cb_append)."
    )
    follow: Duration = Field(
        description="A follower's monitor per record, off the program's path, all in: taking the entry from "
        "its CONNECTOR, laying it into the in ring and checking the follower's own record (the link's "
        "monitor.receive costs are not charged apart on the path)."
    )
    send: Duration = Field(
        default=0,
        description="The leader's CONNECTOR per entry on the path, all in (its batches of hundreds of entries: "
        "the per-batch and per-message connector costs are not charged apart on the path).",
    )
    receive: Duration = Field(default=0, description="A follower's CONNECTOR per entry on the path, all in (as send).")
    drain_run: Duration = Field(
        default=0,
        description="The leader's monitor per run of equal records, beyond drain: the path takes a run of "
        "records equal but for their numbers as one event (a loop's), and a record unlike the one before it "
        "(a server's) is a run of one, which costs drain + drain_run.",
    )
    follow_run: Duration = Field(default=0, description="A follower's monitor per run of equal records (as drain_run).")
    send_run: Duration = Field(default=0, description="The leader's CONNECTOR per run of equal entries (as drain_run).")
    receive_run: Duration = Field(
        default=0, description="A follower's CONNECTOR per run of equal entries (as drain_run)."
    )
    drain_per_byte: Duration | None = Field(
        default=None,
        description="The leader's monitor per byte a record carries (what the call wrote, and what it was "
        "given: a writev's data). Absent: monitor.copy_per_byte.",
    )
    follow_per_byte: Duration | None = Field(
        default=None,
        description="A follower's monitor per byte of the leader's entry (laid into its in ring, compared). "
        "Absent: monitor.copy_per_byte for outputs and monitor.compare_per_byte for buffer arguments.",
    )
    send_per_byte: Duration | None = Field(
        default=None, description="The leader's CONNECTOR per byte on the path. Absent: connector.send_per_byte."
    )
    receive_per_byte: Duration | None = Field(
        default=None, description="A follower's CONNECTOR per byte on the path. Absent: connector.receive_per_byte."
    )
    ring: Size = Field(description="Each ring's size: the leader runs ahead of its monitor by at most this.")
    calls: list[str] = Field(description="The calls the in-process library wraps (canonical names).")


class ProfileFile(FileModel):
    """A cost profile as written in a file."""

    name: str | None = Field(default=None, description="Name. Default: the file name without .yml.")
    description: str = Field(default="", description="What the numbers are and where they come from.")
    base: str | None = Field(default=None, description="A profile this one starts from; give only what differs.")
    native: _Native | None = None
    interception: dict[str, Duration] | None = Field(
        default=None,
        description="Cost of one intercepted call per mechanism: ptrace, in_process, seccomp_untraced.",
    )
    mechanisms: dict[str, dict[str, str]] | None = Field(
        default=None,
        description="Per policy preset, which mechanism intercepts each route (keys: default and route names).",
    )
    monitor: _Monitor | None = None
    connector: _Connector | None = None
    network: _Network | None = None
    server: _Server | None = None
    client: _Client | None = None
    diversity: _Diversity | None = None
    dipmon: _Dipmon | None = Field(
        default=None,
        description="Real mode's in-process DIP-MON (dmvx run --in-process on), as dmvx calibrate measures it: "
        "under dmvx a wrapped call the broker routes asynchronously to the leader costs the variant the "
        "wrapper alone, and its monitor's work runs beside the program until the ring is full. Absent: every "
        "call is priced by its interception mechanism.",
    )

    @field_validator("interception")
    @classmethod
    def _known_mechanisms(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key in value or {}:
            if key not in MECHANISMS[:-1]:
                raise ValueError(
                    f"unknown mechanism {key!r}{did_you_mean(key, MECHANISMS[:-1])}; "
                    f"expected one of: {', '.join(MECHANISMS[:-1])}"
                )
        return value

    @field_validator("mechanisms")
    @classmethod
    def _known_routes(cls, value: dict[str, dict[str, str]] | None) -> dict[str, dict[str, str]] | None:
        for preset, table in (value or {}).items():
            if preset not in ("dmon", "dmvx"):
                raise ValueError(f"unknown preset {preset!r}; expected dmon or dmvx")
            if "default" not in table:
                raise ValueError(f"mechanisms of {preset} lack a default")
            for route, mechanism in table.items():
                if route not in ROUTE_KEYS:
                    raise ValueError(
                        f"unknown route {route!r}{did_you_mean(route, ROUTE_KEYS)}; "
                        f"expected one of: {', '.join(ROUTE_KEYS)}"
                    )
                if mechanism not in MECHANISMS:
                    raise ValueError(
                        f"unknown mechanism {mechanism!r}{did_you_mean(mechanism, MECHANISMS)}; "
                        f"expected one of: {', '.join(MECHANISMS)}"
                    )
        return value


# ---------------------------------------------------------------------------
# The loaded profile
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dipmon:
    """Real mode's in-process path, nanoseconds (:class:`_Dipmon` says what each is)."""

    call: int
    drain: int
    follow: int
    ring: int
    calls: frozenset[str]
    send: int = 0
    receive: int = 0
    #: Per run of equal records (a record unlike the one before is a run of one).
    drain_run: int = 0
    follow_run: int = 0
    send_run: int = 0
    receive_run: int = 0
    #: Per byte on the path (ns); None: the profile's monitor and connector costs per byte.
    drain_per_byte: float | None = None
    follow_per_byte: float | None = None
    send_per_byte: float | None = None
    receive_per_byte: float | None = None


class Handover(NamedTuple):
    """What moving entries between monitors costs, nanoseconds: each
    CONNECTOR's per batch, per message and per byte, and a monitor's per
    read of its link and per message (:meth:`CostProfile.handover`)."""

    send: int
    send_per_message: int
    send_per_byte: float
    receive: int
    receive_per_message: int
    receive_per_byte: float
    monitor_receive: int
    monitor_receive_per_message: int


@dataclass(frozen=True)
class CostProfile:
    """A complete, resolved profile in nanoseconds. See the module docstring."""

    name: str
    description: str
    native_default: int
    native: Mapping[str, int]
    native_per_byte: Mapping[str, float]
    interception: Mapping[str, int]
    mechanisms: Mapping[str, Mapping[str, str]]
    compare: int
    compare_per_byte: float
    copy_per_buffer: int
    copy_per_byte: float
    cb_append: int
    monitor_receive: int
    monitor_receive_per_message: int
    wakeup: int
    connector_wakeup: int
    connector_receive_wakeup: int
    connector_used_by: tuple[str, ...]
    send: int
    send_per_message: int
    send_per_byte: float
    receive: int
    receive_per_message: int
    receive_per_byte: float
    max_batch_messages: int
    max_batch_bytes: int
    packet_overhead: int
    mss: int
    loss_recovery: int
    max_retransmits: int
    default_queue: QueueLimit
    server_compute: int
    header_bytes: int
    stat_bytes: int
    client_per_request: int
    syn_bytes: int
    aslr_bits: Mapping[str, int] = field(default_factory=dict)
    dipmon: Dipmon | None = None

    def native_cost(self, name: str, nbytes: int = 0) -> int:
        """Native cost of one call of ``name`` moving ``nbytes`` bytes."""
        cost = self.native.get(name, self.native_default)
        per_byte = self.native_per_byte.get(name)
        if per_byte and nbytes:
            cost += int(round(per_byte * nbytes))
        return cost

    def handover(self, in_process: bool) -> Handover:
        """What moving an entry costs: the profile's connector and monitor
        costs, or on real mode's in-process path (``in_process``: a
        ``dipmon`` section, under asynchronous replication) the path's own,
        measured per entry all in -- its entries go in runs and batches of
        hundreds (docs/realmode.md, "Runs of equal records"), so the
        per-batch and per-message parts measured on single messages would
        price each entry many times over; the follower's monitor's link
        work is in ``dipmon.follow``. The per-byte parts stay."""
        dipmon = self.dipmon
        if not in_process or dipmon is None:
            return Handover(
                self.send,
                self.send_per_message,
                self.send_per_byte,
                self.receive,
                self.receive_per_message,
                self.receive_per_byte,
                self.monitor_receive,
                self.monitor_receive_per_message,
            )
        return Handover(
            0,
            dipmon.send,
            self.send_per_byte if dipmon.send_per_byte is None else dipmon.send_per_byte,
            0,
            dipmon.receive,
            self.receive_per_byte if dipmon.receive_per_byte is None else dipmon.receive_per_byte,
            0,
            0,
        )

    def connector_wakeup_for(self, preset: str) -> int:
        """The CONNECTOR wake-up cost under ``preset`` (0 where monitors send directly)."""
        return self.connector_wakeup if preset in self.connector_used_by else 0

    def connector_receive_wakeup_for(self, preset: str) -> int:
        """Waking a CONNECTOR with frames from the network under ``preset`` (0 as above)."""
        return self.connector_receive_wakeup if preset in self.connector_used_by else 0

    def interception_costs(self, preset: str) -> dict[str, int]:
        """Route value -> cost of intercepting one call on that route under ``preset``."""
        table = self.mechanisms.get(preset) or self.mechanisms["dmvx"]
        default = table["default"]
        out = {}
        for route in ROUTE_KEYS[1:]:
            mechanism = table.get(route, default)
            out[route] = 0 if mechanism == "none" else self.interception[mechanism]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The numbers a run used, for its JSON (nanoseconds)."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, QueueLimit):
                value = str(value)
            elif isinstance(value, Dipmon):
                value = {**value.__dict__, "calls": sorted(value.calls)}
            elif isinstance(value, Mapping):
                value = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in sorted(value.items())}
            out[key] = value
        return out

    def with_values(self, **values: Any) -> CostProfile:
        return replace(self, **values)


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yml"))


def resolve_profile(ref: str, relative_to: Path | None = None) -> Path:
    """The file a profile reference names: a path, or a name in ``sim/profiles``."""
    if is_path_like(ref):
        path = Path(ref).expanduser()
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        if not path.is_file():
            raise InputError(f"no cost profile file {ref!r}", expected="an existing profile file or a profile name")
        return path
    path = PROFILE_DIR / f"{ref}.yml"
    if not path.is_file():
        names = profile_names()
        raise InputError(
            f"no cost profile named {ref!r}{did_you_mean(ref, names)}",
            expected=f"a profile name ({', '.join(names)}) or a path to a profile file",
        )
    return path


def load_profile(ref: str, relative_to: Path | None = None) -> CostProfile:
    """Load a profile by name (``paper``) or path, following ``base`` links."""
    merged, name, description = _load_chain(ref, relative_to, seen=())
    try:
        return _resolve(name, description, merged)
    except InputError as exc:
        path = resolve_profile(ref, relative_to)
        raise InputError(
            exc.message, file=display_path(path) if not is_path_like(ref) else str(path), expected=exc.expected
        ) from None


#: The dipmon section's costs that may be left out (0), in :class:`Dipmon`'s order.
_DIPMON_OPTIONAL = ("send", "receive", "drain_run", "follow_run", "send_run", "receive_run")

_SECTIONS = (
    "native",
    "interception",
    "mechanisms",
    "monitor",
    "connector",
    "network",
    "server",
    "client",
    "diversity",
    "dipmon",
)


def _load_chain(
    ref: str, relative_to: Path | None, seen: tuple[Path, ...]
) -> tuple[dict[str, dict[str, Any]], str, str]:
    """Every section of ``ref`` merged over its base chain, field by field."""
    path = resolve_profile(ref, relative_to)
    resolved = path.resolve()
    if resolved in seen:
        raise InputError(
            f"cost profile {ref!r} is its own base (through {', '.join(p.stem for p in seen)})",
            expected="a chain of base profiles without a cycle",
        )
    doc = read_yaml(path, display=display_path(path) if not is_path_like(ref) else None)
    model = doc.validate(ProfileFile)
    merged: dict[str, dict[str, Any]] = {}
    if model.base is not None:
        merged, _, _ = _load_chain(model.base, path.parent, (*seen, resolved))
    for section in _SECTIONS:
        value = getattr(model, section)
        if value is None:
            continue
        fields = dict(value) if isinstance(value, dict) else {k: v for k, v in value if v is not None}
        target = merged.setdefault(section, {})
        for key, item in fields.items():
            if isinstance(item, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **item}
            else:
                target[key] = item
    return merged, model.name or path.stem, model.description


def _resolve(name: str, description: str, m: dict[str, dict[str, Any]]) -> CostProfile:
    def get(section: str, key: str) -> Any:
        value = m.get(section, {}).get(key)
        if value is None:
            raise InputError(
                f"cost profile {name!r} lacks {section}.{key} (and so does every base it names)",
                expected="every field of sim/profiles/paper.yml, or base: paper",
            )
        return value

    interception = {}
    for mechanism in MECHANISMS[:-1]:
        interception[mechanism] = _ns(get("interception", mechanism))
    mechanisms = {preset: dict(get("mechanisms", preset)) for preset in ("dmon", "dmvx")}
    # Not given anywhere: a CONNECTOR wakes the same way for both (0 is a value).
    receive_wakeup = m.get("connector", {}).get("receive_wakeup")
    return CostProfile(
        name=name,
        description=description,
        native_default=_ns(get("native", "default")),
        native={k: _ns(v) for k, v in (m.get("native", {}).get("calls") or {}).items()},
        native_per_byte={k: _ns_per_byte(v) for k, v in (m.get("native", {}).get("per_byte") or {}).items()},
        interception=interception,
        mechanisms=mechanisms,
        compare=_ns(get("monitor", "compare")),
        compare_per_byte=_ns_per_byte(get("monitor", "compare_per_byte")),
        copy_per_buffer=_ns(get("monitor", "copy_per_buffer")),
        copy_per_byte=_ns_per_byte(get("monitor", "copy_per_byte")),
        cb_append=_ns(get("monitor", "cb_append")),
        monitor_receive=_ns(get("monitor", "receive")),
        monitor_receive_per_message=_ns(get("monitor", "receive_per_message")),
        wakeup=_ns(get("monitor", "wakeup")),
        connector_wakeup=_ns(get("connector", "wakeup")),
        connector_receive_wakeup=_ns(receive_wakeup if receive_wakeup is not None else get("connector", "wakeup")),
        connector_used_by=tuple(get("connector", "used_by")),
        send=_ns(get("connector", "send")),
        send_per_message=_ns(get("connector", "per_message")),
        send_per_byte=_ns_per_byte(get("connector", "send_per_byte")),
        receive=_ns(get("connector", "receive")),
        receive_per_message=_ns(get("connector", "receive_per_message")),
        receive_per_byte=_ns_per_byte(get("connector", "receive_per_byte")),
        max_batch_messages=get("connector", "max_batch_messages"),
        max_batch_bytes=get("connector", "max_batch_bytes"),
        packet_overhead=get("network", "packet_overhead"),
        mss=max(1, get("network", "mss")),
        loss_recovery=_ns(get("network", "loss_recovery")),
        max_retransmits=get("network", "max_retransmits"),
        default_queue=get("network", "default_queue"),
        server_compute=_ns(get("server", "compute_per_request")),
        header_bytes=get("server", "header_bytes"),
        stat_bytes=get("server", "stat_bytes"),
        client_per_request=_ns(get("client", "per_request")),
        syn_bytes=get("client", "syn_bytes"),
        aslr_bits=dict(get("diversity", "aslr_bits")),
        dipmon=Dipmon(
            _ns(get("dipmon", "call")),
            _ns(get("dipmon", "drain")),
            _ns(get("dipmon", "follow")),
            int(get("dipmon", "ring")),
            # Held against recorded calls, which are normalized (epoll_wait is epoll_pwait).
            frozenset(syscalls.canonical_name(name) for name in get("dipmon", "calls")),
            *(_ns(m["dipmon"].get(key, 0)) for key in _DIPMON_OPTIONAL),
            *(
                None if m["dipmon"].get(key) is None else _ns_per_byte(m["dipmon"][key])
                for key in ("drain_per_byte", "follow_per_byte", "send_per_byte", "receive_per_byte")
            ),
        )
        if "dipmon" in m
        else None,
    )
