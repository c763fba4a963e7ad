"""Lab 6: attacking the CONNECTOR channel (with scapy, in real mode).

The monitors' own traffic is an attack surface: forge a "go" entry and a
follower runs what the attacker wants. The student first works with the
frame format itself (the sans-IO codec of :mod:`dmvx.protocol`): the
overhead of a frame, a reflected frame, a replayed one, a forged one --
crafting the bytes and feeding them to the same reader the CONNECTOR uses.
Then a replay scenario in sim mode, and finally (root) both attacks in real
mode, where a scapy attacker injects them into the live TCP stream.
"""

from __future__ import annotations

import re
from pathlib import Path

from dmvx.codec import ProtocolError
from dmvx.lab.checking import Context, all_of, same
from dmvx.lab.model import Check, Key, Kind, Lab, Task
from dmvx.protocol import FRAME_OVERHEAD, FrameReader, FrameWriter, Heartbeat
from dmvx.scenario import Server
from dmvx.syscalls import Arch
from dmvx.verdict import VerdictKind

SCENARIO = "lab6-forgery.yml"
#: The lab's run key: the test vector of docs/protocol.md (bytes 00 .. 1f).
LAB_KEY = bytes(range(32))
#: The direction the streams of tasks 2 and 3 travel: follower 1 to the leader.
SENDER, RECEIVER = 1, 0
ERRORS = (
    "BadMagic",
    "UnsupportedVersion",
    "OversizedFrame",
    "AuthenticationFailed",
    "ReplayedFrame",
    "ReorderedFrame",
    "TruncatedFrame",
    "CodecError",
)
KINDS = tuple(kind.value for kind in VerdictKind)

OVERHEAD = Key("frame_overhead", Kind.INTEGER, "bytes every frame carries besides its payload")
REFLECTED = Key("reflected_error", Kind.CHOICE, "the reader's error for a frame from 0 to 1 sent back to 0", ERRORS)
REPLAY_STREAM = Key("replay_stream", Kind.FILE, "a stream from 1 to 0 (hex): authentic frames, then a replay")
FORGED_STREAM = Key(
    "forged_stream",
    Kind.FILE,
    "a stream from 1 to 0 (hex): authentic frames, then a well-formed frame whose tag is wrong",
)
EDITED = Key(
    "edited_seq_error", Kind.CHOICE, "the error for a replayed frame whose seq was edited to the next number", ERRORS
)
REPLAY_SCENARIO = Key(
    "replay_scenario",
    Kind.FILE,
    "a scenario in which a replayed CONNECTOR frame is sent at the leader; it must run in sim and in real mode",
)
REAL_FORGERY = Key("real_forgery_verdict", Kind.CHOICE, f"the verdict kind of 'dmvx real --scenario {SCENARIO}'", KINDS)


def _stream_bytes(path: Path) -> bytes:
    """A stream file: hex digits (whitespace ignored), or the raw bytes."""
    raw = path.read_bytes()
    text = re.sub(rb"\s+", b"", raw)
    if text and re.fullmatch(rb"[0-9a-fA-F]+", text) and len(text) % 2 == 0:
        return bytes.fromhex(text.decode())
    return raw


def _read(data: bytes, sender: int = SENDER, receiver: int = RECEIVER) -> tuple[int, ProtocolError | None]:
    """Feed ``data`` to the reader a CONNECTOR uses: messages accepted, and the error that ended it."""
    reader = FrameReader(LAB_KEY, sender, receiver)
    accepted = 0
    try:
        reader.feed(data)
        reader.close()
        while reader.next_message() is not None:
            accepted += 1
    except ProtocolError as error:
        return accepted, error
    return accepted, None


def _task1(ctx: Context) -> Check:
    frame = FrameWriter(LAB_KEY, 0, 1).encode(Heartbeat())
    _, error = _read(frame, sender=1, receiver=0)
    return all_of(
        [
            same(ctx, OVERHEAD.name, FRAME_OVERHEAD, what="overhead per frame"),
            same(ctx, REFLECTED.name, type(error).__name__ if error else None, what="a reflected frame"),
        ]
    )


def _stream_check(ctx: Context, key: Key, want: str, message: str) -> Check:
    path: Path = ctx.value(key.name)
    accepted, error = _read(_stream_bytes(path))
    got = type(error).__name__ if error else "no error"
    if accepted < 1:
        return Check(
            False,
            f"{path}: the reader accepted no frame before {got}",
            hint="start with authentic frames: FrameWriter(bytes(range(32)), 1, 0).encode(Heartbeat())",
        )
    if error is None or type(error).__name__ != want or message not in str(error):
        return Check(False, f"{path}: {accepted} frames accepted, then {got}" + (f" ({error})" if error else ""))
    return Check(True, f"{path}: {accepted} frames accepted, then {want}")


def _task2(ctx: Context) -> Check:
    return _stream_check(ctx, REPLAY_STREAM, "ReplayedFrame", "already used")


def _task3(ctx: Context) -> Check:
    writer = FrameWriter(LAB_KEY, SENDER, RECEIVER)
    first = writer.encode(Heartbeat())
    edited = bytearray(first)
    edited[8:16] = (2).to_bytes(8, "big")
    _, error = _read(first + bytes(edited))
    return all_of(
        [
            _stream_check(ctx, FORGED_STREAM, "AuthenticationFailed", "tag mismatch"),
            same(ctx, EDITED.name, type(error).__name__ if error else None, what="an edited replay"),
        ]
    )


def _replay_scenario(ctx: Context) -> tuple[Check | None, Path]:
    path, scenario = ctx.student_scenario(REPLAY_SCENARIO.name)
    if scenario.attack is None or scenario.attack.kind != "connector-replay":
        return Check(
            False, f"{path} does not replay a CONNECTOR frame", hint="attack: {kind: connector-replay, ...}"
        ), path
    if not isinstance(scenario.workload, Server) or any(v.arch is not Arch.X86_64 for v in scenario.variants or ()):
        return Check(
            False,
            f"{path} cannot run in real mode",
            hint=f"real mode runs a server workload with x86_64 variants: start from {SCENARIO}",
        ), path
    return None, path


def _task4(ctx: Context) -> Check:
    refused, path = _replay_scenario(ctx)
    if refused is not None:
        return refused
    point = ctx.modes.sim(path)["points"][0]
    kind = point["verdict"]["kind"] if point["verdict"] else None
    if point["outcome"] != "rejected" or kind != VerdictKind.AUTH_FAILURE.value:
        return Check(False, f"{path}: {point['outcome']}" + (f" ({kind})" if kind else ""))
    return Check(True, f"{path}: rejected ({kind}) in sim mode")


def _task5(ctx: Context) -> Check:
    forgery = ctx.modes.real(ctx.scenario(SCENARIO))
    verdict = same(
        ctx,
        REAL_FORGERY.name,
        forgery["verdict"]["kind"] if forgery.get("verdict") else None,
        what="verdict of the real forgery",
    )
    refused, path = _replay_scenario(ctx)
    if refused is not None:
        return all_of([verdict, refused])
    replay = ctx.modes.real(path)
    kind = replay["verdict"]["kind"] if replay.get("verdict") else None
    if replay.get("outcome") != "rejected" or kind != VerdictKind.AUTH_FAILURE.value:
        return all_of(
            [
                verdict,
                Check(
                    False,
                    f"{path} in real mode: {replay.get('outcome')}"
                    + (f" ({kind})" if kind else "")
                    + (f"; {replay['error']}" if replay.get("error") else ""),
                ),
            ]
        )
    return all_of([verdict, Check(True, f"{path}: rejected ({kind}) in real mode")])


LAB = Lab(
    number=6,
    slug="connector",
    title="Attacking the CONNECTOR channel",
    summary="Craft, replay and forge CONNECTOR frames against the reader the CONNECTOR uses, then inject "
    "them into a live stream with scapy on emulated hosts.",
    modes="core + sim + real (root, task 5)",
    tasks=(
        Task(
            1,
            "the frame",
            (OVERHEAD, REFLECTED),
            _task1,
            "docs/protocol.md section 2 has the layout; try it: FrameWriter(key, 0, 1).encode(Heartbeat()) fed to "
            "FrameReader(key, 1, 0)",
        ),
        Task(
            2,
            "a replayed frame",
            (REPLAY_STREAM,),
            _task2,
            "write hex: Path('replay.hex').write_text((a + b + a).hex()) with frames a, b from one FrameWriter",
        ),
        Task(
            3,
            "a forged frame",
            (FORGED_STREAM, EDITED),
            _task3,
            "a forger does not know the key: sign with another one (FrameWriter(other_key, 1, 0)), keeping the "
            "sequence numbers going",
        ),
        Task(
            4,
            "a replay in sim mode",
            (REPLAY_SCENARIO,),
            _task4,
            f"copy scenarios/labs/{SCENARIO}, set attack.kind: connector-replay and fix expect",
        ),
        Task(
            5,
            "both attacks on a live stream (root)",
            (REAL_FORGERY, REPLAY_SCENARIO),
            _task5,
            f"sudo dmvx real --scenario scenarios/labs/{SCENARIO}, then with your replay scenario; read the "
            "verdict line",
            needs_root=True,
        ),
    ),
)
