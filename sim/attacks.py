"""Attacks on the monitors' channel: forged and replayed CONNECTOR frames.

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
from typing import TYPE_CHECKING, Callable

from dmvx.calls import Call, Outcome
from dmvx.codec import ProtocolError
from dmvx.messages import Ack, Entry, EntryKind, Stop
from dmvx.protocol import FrameReader, FrameWriter
from dmvx.verdict import Verdict, VerdictKind

if TYPE_CHECKING:
    from sim.engine import Simulation, Variant

CONNECTOR_ATTACKS = ("connector-forgery", "connector-replay")


def connector_attack(kind: str, source: str, target: int, seed: int) -> Callable[["Simulation", "Variant"], None]:
    """A hook for :attr:`Simulation.attack_hook`: fires once, when the first
    variant reaches the attack point."""
    fired = False

    def hook(sim: "Simulation", variant: "Variant") -> None:
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
        authentic = writer.encode(Ack(victim.monitor.stream, 0, peer) if target == 0 else
                                  Entry(victim.monitor.stream, 0, Call("getpid"), EntryKind.FULL, Outcome(1)))
        reader.feed(authentic)
        reader.next_message()
        if kind == "connector-forgery":
            attacker_key = hashlib.sha256(f"attacker key {seed}".encode()).digest()
            forged = Entry(victim.monitor.stream, victim.monitor.seq + 1, Call("execve", ("/bin/sh", ("sh",), ())),
                           EntryKind.GO)
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
            verdict = Verdict(kind_of, victim.monitor.seq,
                              detail=f"the CONNECTOR of {victim.host} refused a frame from {source}: {exc}")
            stop = Stop(victim.monitor.stream, verdict)
            victim.deliver(done, [stop])
            for other in range(len(sim.variants)):
                if other != target:
                    sim.ship(victim.host, other, [stop], 64 + len(verdict.detail), done)
            return
        if message is not None:
            from sim.engine import HarmfulCall

            sim.outcome.harmful.append(HarmfulCall(target, type(message).__name__,
                                                   "forged CONNECTOR frame accepted", done))
            victim.deliver(done, [message])

    return hook
