"""The attacker host's exploit program (scapy), run inside its namespace.

``python -m realmode.vuln.attacker --server IP:PORT --benign N --value HEX``
is started through the attacker host (scapy reads the namespace's
interfaces at import, so it must be imported there, by this process). It
talks to the served program as a client would: ``N`` well-formed requests
(``GET /hello?name=guest``, the service working as usual), then the exploit:
``GET /hello?name=<value>`` with the value built by
:mod:`realmode.vuln.exploits` and %-encoded. Each request is an
:class:`~scapy.layers.http.HTTPRequest` sent over a
:class:`~scapy.supersocket.StreamSocket` on its own TCP connection.

Output: JSON lines on stdout -- ``ready``; ``answer`` per benign request;
``injected`` when the exploit is sent (``time.monotonic()``, the clock of
the orchestrator); ``exploit-answer`` with every byte that came back (hex),
which is how a leak or a stolen secret reaches the attacker; ``done`` or
``failed``. The event plumbing is :mod:`realmode.net.attacker`'s, the
other program of the attacker host.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

from realmode.net.attacker import emit, read_to_end, run_reported, server_address

#: How long to keep retrying a refused first connection (the server starting).
_READY_WAIT = 20.0


def exchange(server: tuple[str, int], path: bytes, timeout: float) -> bytes:
    """One HTTP/1.0 request built and sent with scapy; every byte of the answer."""
    from scapy.layers.http import HTTP, HTTPRequest
    from scapy.packet import Raw
    from scapy.supersocket import StreamSocket

    sock = socket.create_connection(server, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream = StreamSocket(sock, Raw)
    try:
        stream.send(HTTP() / HTTPRequest(Method=b"GET", Path=path, Http_Version=b"HTTP/1.0"))
        # A target that crashes resets the connection: what came before is the answer.
        return read_to_end(sock, ends=(ConnectionResetError, socket.timeout))
    finally:
        stream.close()


def attack(server: tuple[str, int], benign: int, value: bytes, timeout: float) -> None:
    from realmode.vuln.exploits import request_path

    emit(event="ready")
    give_up = time.monotonic() + _READY_WAIT
    done = 0
    while done < benign:
        try:
            answer = exchange(server, request_path(b"guest"), timeout)
        except ConnectionRefusedError:
            if done == 0 and time.monotonic() < give_up:
                time.sleep(0.02)
                continue
            raise
        emit(event="answer", request=done + 1, answer=answer.hex())
        done += 1
    sent = time.monotonic()
    emit(event="injected", time=sent, attempt=1)
    try:
        answer = exchange(server, request_path(value), timeout)
    except OSError as error:
        emit(event="exploit-answer", answer="", error=f"{type(error).__name__}: {error}")
    else:
        emit(event="exploit-answer", answer=answer.hex(), error=None)
    emit(event="done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realmode.vuln.attacker")
    parser.add_argument("--server", required=True, help="IP:PORT of the served program")
    parser.add_argument("--benign", type=int, default=0, help="well-formed requests before the exploit")
    parser.add_argument("--value", required=True, help="the exploit's query value, hex")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds before the first request")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)

    def work() -> None:
        server = server_address(args.server)
        time.sleep(args.wait)
        attack(server, args.benign, bytes.fromhex(args.value), args.timeout)

    return run_reported(work)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
