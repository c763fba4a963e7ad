"""From measurements to a cost profile: what real mode's parts cost in
sim's terms (:func:`profile_document`), written as ``sim/profiles/*.yml``."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from dmvx.syscalls import canonical_name
from dmvx.units import format_duration
from realmode import microbench
from realmode.calibrate.components import (
    ALTERNATE_READ_BYTES,
    ROOT,
    ConnectorCosts,
    DipmonCosts,
    LinkCosts,
    MessageCosts,
    RoleCosts,
    available_cpus,
    connector_costs,
    dipmon_costs,
    fit_line,
    link_costs,
    message_costs,
    monitor_ns,
    ptrace_pair_ns,
    role_cpu_ns,
    seccomp_untraced_ns,
    wakeup_ns,
)
from realmode.inproc.area import RING_BYTES
from realmode.inproc.tables import FAST_CALLS
from realmode.microbench import KINDS, native_cpu_ns, native_ns
from realmode.native import build as native_build

#: Where ``dmvx calibrate`` writes by default; sim finds it as ``cost_profile: measured``.
DEFAULT_PROFILE = ROOT / "sim" / "profiles" / "measured.yml"


# ---------------------------------------------------------------------------
# The profile
# ---------------------------------------------------------------------------


@dataclass
class Measurements:
    native: dict[str, float]
    native_local: float
    seccomp_untraced: float
    ptrace: float
    monitor_leader: float
    monitor_follower: float
    wakeup: float
    wakeup_same_cpu: float
    messages: MessageCosts
    link: LinkCosts
    connector: ConnectorCosts
    #: Real mode on loops of calls the check does not predict.
    dmvx_getppid: RoleCosts
    dmvx_uname: RoleCosts
    dmon_getppid: RoleCosts
    #: The in-process path (None: its library is not built here).
    dipmon: DipmonCosts | None = None
    #: dmon on ``alternate`` and ``alternate_read`` (the second's records
    #: carry ALTERNATE_READ_BYTES more): what a byte costs the ptrace
    #: path's monitors and CONNECTORs (None: not measured).
    dmon_alternate: RoleCosts | None = None
    dmon_alternate_read: RoleCosts | None = None
    #: The share of a CPU the native runs had (their CPU time over their
    #: wall time, median): 1 on a quiet machine, the load's mark otherwise.
    #: ``native`` is in CPU time (the program's clock times the share).
    native_share: float = 1.0

    def to_json(self) -> dict[str, Any]:
        m = self.messages
        extra = {"dipmon_getppid_ns": asdict(self.dipmon)} if self.dipmon is not None else {}
        for key, roles in (
            ("dmon_alternate_ns", self.dmon_alternate),
            ("dmon_alternate_read_ns", self.dmon_alternate_read),
        ):
            if roles is not None:
                extra[key] = asdict(roles)
        return {
            "native_ns": self.native,
            "native_share": self.native_share,
            "native_local_ns": self.native_local,
            "seccomp_untraced_ns": self.seccomp_untraced,
            "ptrace_pair_ns": self.ptrace,
            "monitor_leader_ns": self.monitor_leader,
            "monitor_follower_ns": self.monitor_follower,
            "wakeup_ns": self.wakeup,
            "wakeup_same_cpu_ns": self.wakeup_same_cpu,
            "messages": {"send_ns": m.send, "receive_ns": m.receive, "encode_ns": m.encode, "decode_ns": m.decode},
            "link_ns": asdict(self.link),
            "connector_ns": asdict(self.connector),
            "dmvx_getppid_ns": asdict(self.dmvx_getppid),
            "dmvx_uname_ns": asdict(self.dmvx_uname),
            "dmon_getppid_ns": asdict(self.dmon_getppid),
            **extra,
        }


def measure(
    *,
    calls: int = 200_000,
    traced_calls: int = 20_000,
    repeat: int = 5,
    note: Callable[[str], None] = lambda text: None,
) -> Measurements:
    """Every component, median of ``repeat`` runs where a run is short."""
    median = statistics.median
    with tempfile.TemporaryDirectory() as tmp:
        binary = microbench.build(tmp)
        cpu = available_cpus()[0]
        note("native calls")
        # In CPU time, as real mode's processes are measured (their CPU
        # time): under load the program's clock counts others' time too.
        runs = {kind: [native_cpu_ns(binary, kind, calls, cpu) for _ in range(repeat)] for kind in KINDS}
        native = {kind: median(ns * share for ns, share in pairs) for kind, pairs in runs.items()}
        native_share = median(share for pairs in runs.values() for _, share in pairs)
        native_local = median(native_ns(binary, "local", calls, cpu) for _ in range(repeat))
        note("seccomp filter, calls not traced")
        seccomp_ns = median(seccomp_untraced_ns(binary, calls, native_local) for _ in range(repeat))
        note("ptrace stop pair with decoding")
        ptrace = median(ptrace_pair_ns(binary, traced_calls, native["getpid"]) for _ in range(repeat))
        note("real mode's processes on getppid and uname loops")
        roles = {
            (kind, policy): _median_of([role_cpu_ns(binary, kind, policy) for _ in range(repeat)])
            for kind, policy in (
                ("getppid", "dmvx"),
                ("uname", "dmvx"),
                ("getppid", "dmon"),
                ("alternate", "dmon"),
                ("alternate_read", "dmon"),
            )
        }
        dipmon = None
        if native_build.library() is not None:
            note("the in-process path on a getppid loop")
            getppid = [native_cpu_ns(binary, "getppid", calls, cpu) for _ in range(repeat)]
            native_getppid = median(ns for ns, _ in getppid)
            getppid_share = median(share for _, share in getppid)
            dipmon = _median_of([dipmon_costs(binary, native_getppid, getppid_share) for _ in range(repeat)])
    note("core monitors, wake-ups, the local link, CONNECTORs")
    leader, follower = (median(v) for v in zip(*(monitor_ns() for _ in range(repeat))))
    wakeup = median(wakeup_ns() for _ in range(repeat))
    wakeup_same = median(wakeup_ns(same_cpu=True) for _ in range(repeat))
    messages = message_costs()
    links = [link_costs() for _ in range(repeat)]
    connectors = [connector_costs() for _ in range(repeat)]
    return Measurements(
        native,
        native_local,
        seccomp_ns,
        ptrace,
        leader,
        follower,
        wakeup,
        wakeup_same,
        messages,
        _median_of(links),
        _median_of(connectors),
        roles[("getppid", "dmvx")],
        roles[("uname", "dmvx")],
        roles[("getppid", "dmon")],
        dipmon,
        roles[("alternate", "dmon")],
        roles[("alternate_read", "dmon")],
        native_share,
    )


def _median_of(samples: list[Any]) -> Any:
    """A dataclass of field-wise medians (tuples element-wise)."""
    first = samples[0]
    fields = {}
    for name in asdict(first):
        values = [getattr(sample, name) for sample in samples]
        if isinstance(values[0], tuple):
            fields[name] = tuple(statistics.median(column) for column in zip(*values))
        else:
            fields[name] = statistics.median(values)
    return type(first)(**fields)


def _d(ns: float) -> str:
    """A duration with units, as profiles write them: whole nanoseconds
    (sim's clock counts no finer), finer only below one (costs per byte)."""
    return format_duration((round(ns) if ns >= 1 else round(ns, 3)) / 1e9)


def profile_document(m: Measurements, *, name: str = "measured") -> dict[str, Any]:
    """The profile for ``m``, in the format of ``sim/profiles/*.yml``.

    How real mode's parts map onto sim's costs (docs/case-study.md has the
    figures):

    * a monitor handing a message to its CONNECTOR (``cb_append``) is the
      core's leader work plus a write on the local link; taking what the
      CONNECTOR delivered (``receive``, ``receive_per_message``) is a read
      on the link and a decode per message; comparing is the core's;
    * a monitor woken for a message (``monitor.wakeup``) and a CONNECTOR
      woken by its monitor (``connector.wakeup``) share a CPU under real
      mode's placement: a switch of process. Frames from the network wake a
      CONNECTOR on an idle CPU (``connector.receive_wakeup``);
    * intercepting a call is what is left of a monitor's time per call of a
      real run (:func:`role_cpu_ns`) once the parts above are taken out.
      Under dmvx (mechanism ``in_process``: real mode has no in-process
      monitor, so it is its ptrace path) that is the leader's loop on a
      ``getppid`` loop, as its program clocks it -- its monitor's CPU and
      the scheduling gaps between the two, on the CPU they have to
      themselves; under dmon (``ptrace``) the mean CPU of the two monitors
      on the same loop in lockstep, which also sleep and wake at every call;
    * ``copy_per_buffer`` is what a call with an output buffer (``uname``)
      costs the two monitors more than one without (``getppid``): moving a
      buffer between a variant's memory and its monitor, which a buffer
      argument (a path, data written) costs too;
    * a CONNECTOR's costs per entry are those of the real CONNECTOR code
      between two processes (:func:`connector_costs`); its costs per batch
      are scaled to what the CONNECTORs of the dmon run spend (one entry a
      batch there); per byte, those of frames over loopback TCP.

    * the in-process path (``dipmon``, when its library is built): what a
      wrapped call costs the program beyond the native call (``call``: the
      wrapper, the call from the trampoline, the record appended), and what
      each record costs each process off the program's path, all in, from
      their CPU time: the leader's monitor (``drain``, its entry handed over
      included), a follower's (``follow``, taking the entry from its link
      included) and each CONNECTOR per entry (``send``, ``receive``), less
      the program's own time per call (a monitor's CPU counts the program it
      reaps; sim charges that on the program's timeline and CPU). The
      path takes records in runs and its entries go in batches of hundreds,
      so the per-message costs measured on single messages would price each
      record many times over (with them, the check over-predicted dmvx's
      rows by +160% to +390%); the ring's size and the calls the library
      wraps are the code's (:mod:`realmode.inproc`).

    Fields not measured here (native costs of the server's calls, the
    network's packet sizes, the server's own work) come from ``vm``.
    """
    sizes = sorted(m.messages.send)
    _, send_slope = fit_line([(s, m.messages.send[s]) for s in sizes])
    _, recv_slope = fit_line([(s, m.messages.receive[s]) for s in sizes])
    link_ = m.link
    cb_append = m.monitor_leader + link_.send
    compare = m.monitor_follower
    taking = link_.receive + link_.receive_message
    # The leader's loop on a CPU of its own: its monitor's CPU, and the
    # scheduling gaps between it and its program, which the loop also waits.
    in_process = max(max(m.dmvx_getppid.loop, m.dmvx_getppid.monitor[0]) - cb_append, m.ptrace)
    lockstep_side = statistics.mean(m.dmon_getppid.monitor)
    ptrace = max(lockstep_side - cb_append - compare - taking - m.wakeup_same_cpu, m.ptrace)
    copy = max(statistics.mean(m.dmvx_uname.monitor) - statistics.mean(m.dmvx_getppid.monitor), 0.0)
    c = m.connector
    dipmon = {}
    if m.dipmon is not None:
        # Each process's CPU per record, all in: on the path records go in
        # runs and batches of hundreds, so the per-message costs measured on
        # single messages (cb_append, the link's and the CONNECTORs') do not
        # add up to them; sim prices the path's entries with these instead
        # (sim.profile.CostProfile.handover).
        # A record alone (a run of one) costs each process more than one in
        # a run: the difference is the cost of a run.
        d = m.dipmon
        # A monitor's CPU counts its program's, which it reaps: sim charges
        # that on the program's timeline (its native calls and dipmon.call),
        # on the program's CPU -- the leader's is not the monitors' -- so
        # each loop's program time per call comes off both monitors' figures.
        in_loop, in_alone, in_bytes = d.program
        in_run = tuple(max(ns - in_loop, 0.0) for ns in d.monitor)
        by_one = tuple(max(ns - in_alone, 0.0) for ns in d.monitor_alone)
        loaded = tuple(max(ns - in_bytes, 0.0) for ns in d.monitor_bytes)
        alone = (*by_one, *d.connector_alone)
        run = [max(one - ran, 0.0) for one, ran in zip(alone, (*in_run, *d.connector))]
        # And the bytes a record carries, from a loop whose records are as
        # alone but carry 4 KiB every other one.
        per_byte = [
            max(more - one, 0.0) / ALTERNATE_READ_BYTES for more, one in zip((*loaded, *d.connector_bytes), alone)
        ]
        dipmon = {
            "dipmon": {
                "call": _d(d.call),
                "drain": _d(in_run[0]),
                "follow": _d(in_run[1]),
                "send": _d(d.connector[0]),
                "receive": _d(d.connector[1]),
                "drain_run": _d(run[0]),
                "follow_run": _d(run[1]),
                "send_run": _d(run[2]),
                "receive_run": _d(run[3]),
                "ring": f"{RING_BYTES // 1024}KiB",
                # As recorded calls name them (epoll_wait is epoll_pwait).
                "calls": [canonical_name(name) for name in FAST_CALLS],
            }
        }
        if any(d.monitor_bytes):  # measured (else the monitor's and connector's costs per byte)
            for key, ns in zip(("drain", "follow", "send", "receive"), per_byte):
                dipmon["dipmon"][f"{key}_per_byte"] = _d(ns)
    # A byte a record carries, on the ptrace path: what dmon's monitors and
    # CONNECTORs spend more per record of alternate_read than of alternate
    # (~40-80 and ~12-40 ns a byte at load ~13; frames over loopback alone
    # said ~1 and the vm profile's copy ~0.5: a lighttpd request carries
    # ~8.6 KB). Without it, the frames' costs per byte and the vm's copy.
    monitor_bytes: dict[str, str] = {}
    if m.dmon_alternate is not None and m.dmon_alternate_read is not None:
        reads, lone = m.dmon_alternate_read, m.dmon_alternate
        byte_ns = max(statistics.mean(reads.monitor) - statistics.mean(lone.monitor), 0.0) / ALTERNATE_READ_BYTES
        monitor_bytes = {"copy_per_byte": _d(byte_ns), "compare_per_byte": _d(byte_ns)}
        send_slope = max(reads.connector[0] - lone.connector[0], 0.0) / ALTERNATE_READ_BYTES
        recv_slope = max(reads.connector[1] - lone.connector[1], 0.0) / ALTERNATE_READ_BYTES
    batch_measured = statistics.mean(m.dmon_getppid.connector) - c.send_message - c.receive_message
    scale = max(batch_measured, 0.0) / max(c.send_batch + c.receive_batch, 1.0)
    return {
        "name": name,
        "description": (
            f"Measured on this machine by dmvx calibrate ({time.strftime('%Y-%m-%d')}): "
            "native calls, real mode's seccomp filter, its processes on getppid and uname loops, "
            "the core monitors, the local link, wake-ups and real CONNECTORs over loopback TCP."
        ),
        "base": "vm",
        "native": {"calls": {kind: _d(ns) for kind, ns in m.native.items()}},
        "interception": {
            "ptrace": _d(ptrace),
            "in_process": _d(in_process),
            "seccomp_untraced": _d(m.seccomp_untraced),
        },
        "mechanisms": {
            "dmon": {"default": "ptrace"},
            "dmvx": {"default": "in_process", "lockstep": "ptrace", "local": "seccomp_untraced"},
        },
        "monitor": {
            "compare": _d(compare),
            "copy_per_buffer": _d(copy),
            "cb_append": _d(cb_append),
            "receive": _d(link_.receive),
            "receive_per_message": _d(link_.receive_message),
            "wakeup": _d(m.wakeup_same_cpu),
            **monitor_bytes,
        },
        "connector": {
            "used_by": ["dmon", "dmvx"],
            "wakeup": _d(m.wakeup_same_cpu),
            "receive_wakeup": _d(m.wakeup),
            "send": _d(c.send_batch * scale),
            "per_message": _d(c.send_message),
            "send_per_byte": _d(send_slope),
            "receive": _d(c.receive_batch * scale),
            "receive_per_message": _d(c.receive_message),
            "receive_per_byte": _d(recv_slope),
        },
        **dipmon,
    }


def _rounded(value: Any) -> Any:
    """``value`` with every float to 0.1 (ns: finer is noise)."""
    if isinstance(value, float):
        return round(value, 1)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_rounded(item) for item in value)
    return value


def write_profile(document: dict[str, Any], path: Path, m: Measurements) -> None:
    header = [
        "# Written by `dmvx calibrate` (realmode/calibrate/): component costs measured on",
        "# this machine. Every number is a calibration INPUT; what sim predicts from them is",
        "# checked against real mode by `dmvx calibrate --check`. Written "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
        " (1, 5, 15 min; native_share below: the CPU the native runs had).",
        "# Raw measurements (ns):",
    ]
    for key, value in m.to_json().items():
        header.append(f"#   {key}: {_rounded(value)}")
    text = "\n".join(header) + "\n" + yaml.safe_dump(document, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
