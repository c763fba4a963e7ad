"""``dmvx real``: the leader CONNECTOR admits only peers that authenticate.

From the client host h3, before the follower's CONNECTOR connects, the red
team's four attacks reach the leader CONNECTOR's (per-run) port: a silent
connection, garbage, a frame header claiming to be follower 1, and a
genuine answer replayed from another connection. None gets a slot; the run
goes on and ends clean, every request answered.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from dmvx.protocol import Admission, FrameWriter, Hello, Join
from dmvx.syscalls import Arch
from realmode import isolation
from realmode.net import agents as agents_mod
from realmode.net import experiment as ex
from test_net_support import client_of, needs_mininet, outcome_of, two_host_run

pytestmark = [pytest.mark.root, needs_mininet]

KEY = bytes(range(32))

#: Run on h3: connect the attacks, say so, then report what each received.
ATTACKER = r"""
import json, socket, sys, time
ip, port = sys.argv[1], int(sys.argv[2])
payloads = [None] + [bytes.fromhex(h) for h in sys.argv[3:]]
socks = []
for payload in payloads:
    s = socket.create_connection((ip, port), timeout=5)
    if payload:
        s.sendall(payload)
    socks.append(s)
print("connected", flush=True)
import select
got = {s: b"" for s in socks}
until = time.monotonic() + 6
while got and time.monotonic() < until:
    readable, _, _ = select.select(list(got), [], [], 0.1)
    for s in readable:
        chunk = s.recv(4096)
        if chunk:
            got[s] += chunk
            continue
        print(json.dumps([socks.index(s), got.pop(s)[:6].hex()]), flush=True)
"""


def test_attacks_from_the_client_host_get_no_slot(clean_check, monkeypatch, tmp_path) -> None:
    recorded = Join(KEY, 1)
    recorded.receive(Admission(KEY, {1}).challenge)
    assert recorded.answer is not None
    payloads = [
        b"GET / HTTP/1.0\r\n\r\n".hex(),
        FrameWriter(bytes(32), 1, 0).encode(Hello("run", 1, Arch.X86_64)).hex(),
        recorded.answer.hex(),
    ]
    attackers = []
    report = tmp_path / "attacker.out"
    real_start = agents_mod.Agents.start
    real_create_server = socket.create_server

    def start(self) -> None:
        def create_server(address, **kwargs):
            listener = real_create_server(address, **kwargs)
            # (Its output goes to a file: the network's stop takes its pipes.)
            with open(report, "wb") as out:
                attackers.append(
                    self.net.popen(
                        "h3",
                        [sys.executable, "-c", ATTACKER, address[0], str(address[1]), *payloads],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
            deadline = time.monotonic() + 10
            while not report.read_text().startswith("connected\n") and time.monotonic() < deadline:
                time.sleep(0.02)
            return listener

        monkeypatch.setattr(agents_mod.socket, "create_server", create_server)
        try:
            real_start(self)
        finally:
            monkeypatch.setattr(agents_mod.socket, "create_server", real_create_server)

    key_file = tmp_path / "run.key"  # the run's key is one the attacker recorded an answer under
    key_file.write_bytes(KEY)
    monkeypatch.setattr(isolation.RunKey, "source", str(key_file))
    monkeypatch.setattr(agents_mod.Agents, "start", start)
    config = two_host_run(ex.Workload(requests=80, pace=0.05), timeout=30)
    result = ex.NetExperiment(config).run()
    assert len(attackers) == 1
    attackers[0].wait(timeout=15)
    out = report.read_text().splitlines()
    assert out[0] == "connected", out
    assert result.verdict is None and outcome_of(result).error is None, result.to_json()
    assert client_of(result)["requests"] == 80, result.mvx_client
    # Every attack got the challenge ("DMVX" 02 'C') and then the hang-up
    # (the silent one after 2 s):
    # never a welcome, never a frame.
    got = sorted(json.loads(line) for line in out[1:])
    assert got == [[i, "444d56580243"] for i in range(4)], out
