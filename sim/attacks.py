"""Attacks in sim mode, and sim's rows of the attack table.

Two parts. First, attacks on the monitors' channel: forged and replayed
CONNECTOR frames (below). Second, what an attack *achieved*:
:data:`EFFECT_CALLS` says which harmful calls mean the attacker reached its
goal, :func:`check_effects` holds a sim result to the ``effect`` its
scenario expects, and :func:`sim_cells` makes a sim point into the
(attack, diversity setting, mode) :class:`~dmvx.attacktable.Cell` of the
table both modes report (:mod:`dmvx.attacktable`). This half imports no
SimPy.

Forged and replayed frames
--------------------------

An attacker host sends frames to a variant host's CONNECTOR as if they came
from a peer monitor: a *forgery* is signed with a key the attacker made up, a
*replay* is an authentic frame captured on the link and sent again. The
frames are real: they are built and checked by the CONNECTOR protocol of
:mod:`dmvx.protocol` (HMAC per direction, sequence numbers), so whether the
frame is refused, and with which verdict kind, is that module's decision.

A refused frame ends the run the way a real CONNECTOR ends it: it hands its
monitor a :class:`~dmvx.messages.Stop` with the verdict and sends one to
every other monitor. A frame the protocol accepted would reach the monitor
as a genuine message; the run records that as a harmful event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dmvx.attacktable import Cell, setting_label
from dmvx.calls import Call, Outcome
from dmvx.codec import ProtocolError
from dmvx.messages import Ack, Entry, EntryKind, Stop
from dmvx.protocol import FrameReader, FrameWriter
from dmvx.verdict import Verdict, VerdictKind

if TYPE_CHECKING:
    from dmvx.scenario import Scenario
    from sim.engine import Simulation, Variant
    from sim.report import AttackReport, PointReport

CONNECTOR_ATTACKS = ("connector-forgery", "connector-replay")


def connector_attack(kind: str, source: str, target: int, seed: int) -> Callable[[Simulation, Variant], None]:
    """A hook for :attr:`Simulation.attack_hook`: fires once, when the first
    variant reaches the attack point."""
    fired = False

    def hook(sim: Simulation, variant: Variant) -> None:
        nonlocal fired
        if fired:
            return
        fired = True
        victim = sim.variants[target]
        peer = 1 if target == 0 else 0
        run_key = hashlib.sha256(f"dmvx-sim run key {seed}".encode()).digest()
        writer = FrameWriter(run_key, peer, target)
        reader = FrameReader(run_key, peer, target)
        # The link has carried authentic traffic before the attacker strikes.
        authentic = writer.encode(
            Ack(victim.monitor.stream, 0, peer)
            if target == 0
            else Entry(victim.monitor.stream, 0, Call("getpid"), EntryKind.FULL, Outcome(1))
        )
        reader.feed(authentic)
        reader.next_message()
        if kind == "connector-forgery":
            attacker_key = hashlib.sha256(f"attacker key {seed}".encode()).digest()
            forged = Entry(
                victim.monitor.stream, victim.monitor.seq + 1, Call("execve", ("/bin/sh", ("sh",), ())), EntryKind.GO
            )
            frame = FrameWriter(attacker_key, peer, target).encode(forged)
        else:
            frame = authentic
        delivery = sim.network.transmit(source, victim.host, len(frame), variant.t)
        if delivery.arrival is None:
            return
        done = sim.connectors[victim.host].receive(source, delivery.arrival, 1, len(frame))
        reader.feed(frame)
        try:
            message = reader.next_message()
        except ProtocolError as exc:
            kind_of = getattr(exc, "verdict_kind", None) or VerdictKind.PROTOCOL_ERROR
            verdict = Verdict(
                kind_of,
                victim.monitor.seq,
                detail=f"the CONNECTOR of {victim.host} refused a frame from {source}: {exc}",
            )
            stop = Stop(victim.monitor.stream, verdict)
            victim.deliver(done, [stop])
            # A link is one ordered stream: what the victim's CONNECTOR has
            # taken to send goes out before the stop, however far the
            # variants' lookahead has run (else the result would depend on it).
            sim.connectors[victim.host].emit()
            for other in range(len(sim.variants)):
                if other != target:
                    sim.ship(victim.host, other, [stop], 64 + len(verdict.detail), done)
            return
        if message is not None:
            from sim.engine import HarmfulCall

            sim.outcome.harmful.append(
                HarmfulCall(target, type(message).__name__, "forged CONNECTOR frame accepted", done)
            )
            victim.deliver(done, [message])

    return hook


# ---------------------------------------------------------------------------
# What an attack achieved, and the attack table
# ---------------------------------------------------------------------------

#: The harmful calls (``WorkloadStep.harmful`` of :mod:`sim.workload`) that mean the
#: attacker reached its goal -- the shell ran, the secret or the pointer
#: reached it -- per attack kind. Other harmful calls (the leader opening
#: the secret file before the verdict) are steps on the way, which the
#: table shows as "harm first" but which are not the goal.
EFFECT_CALLS: dict[str, frozenset[str]] = {
    "rop-absolute": frozenset({"execve of a shell"}),
    "relative-rop": frozenset({"execve of a shell"}),
    "data-only": frozenset({"secret sent to the attacker"}),
    "pointer-leak": frozenset({"pointer leaked to the attacker"}),
    "record-forgery": frozenset({"answer to a request the followers never saw"}),
}


def effect_of(attack: AttackReport | None) -> bool | None:
    """Whether the attack of a sim point reached its goal (None: no attack,
    or an attack on the CONNECTORs, whose goal is the verdict itself)."""
    if attack is None or attack.kind not in EFFECT_CALLS:
        return None
    goals = EFFECT_CALLS[attack.kind]
    return any(h.what in goals for h in attack.harmful_calls)


def expected_effect(scenario: Scenario, labels: Mapping[str, Any], mode: str = "sim") -> bool | None:
    """The effect a scenario expects at the point with ``labels``."""
    setting = labels.get("setting")
    if scenario.diversity is not None and setting in scenario.diversity:
        expect = getattr(scenario.diversity[setting].expect, mode)
    else:
        expect = scenario.expect
    return getattr(expect, "effect", None)


def check_effects(points: Iterable[PointReport], scenario: Scenario) -> list[PointReport]:
    """The points of a sim result, each attack point with its ``effect`` and
    held to the effect the scenario expects at it (``as_expected`` turns
    False on a miss); other points as they were."""
    out = []
    for point in points:
        if point.attack is None:
            out.append(point)
            continue
        effect = effect_of(point.attack)
        expected = point.expected
        if expected is not None:
            expected = replace(expected, effect=expected_effect(scenario, point.labels))
        as_expected = (
            None
            if expected is None
            else expected.met_by(point.outcome, point.verdict.verdict if point.verdict else None, effect)
        )
        out.append(replace(point, effect=effect, expected=expected, as_expected=as_expected))
    return out


def sim_cells(file: str, points: Sequence[PointReport], scenario: Scenario | None) -> list[Cell]:
    """The cells of one scenario's sim result (only points with an attack)."""
    cells = []
    for point in points:
        attack = point.attack
        if attack is None:
            continue
        labels = point.labels
        expect = point.expected
        skip = None
        if scenario is not None and scenario.diversity is not None and labels.get("setting") in scenario.diversity:
            wanted = scenario.diversity[labels["setting"]].expect.sim
            skip = getattr(wanted, "skip", None)
        verdict = None if point.verdict is None else point.verdict.verdict
        cells.append(
            Cell(
                file=file,
                attack=point.scenario or file,
                kind=attack.kind,
                setting=setting_label(dict(labels)),
                mode="sim",
                expected=None
                if expect is None
                else {
                    "verdict": expect.ending.value,
                    "kind": None if expect.kind is None else expect.kind.value,
                    "effect": expect.effect,
                },
                skip=skip,
                outcome=point.outcome.value,
                verdict=verdict.kind.value if verdict else None,
                effect=effect_of(attack),
                latency_s=None if attack.detection is None else attack.detection.time_ns / 1e9,
                detail=verdict.summary() if verdict else "",
            )
        )
    return cells
