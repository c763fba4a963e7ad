"""The record-forgery attack in real mode: a compromised leader lying in its in-process ring.

``scenarios/attacks/record-forgery.yml`` (docs/attacks.md): the variants run
``realmode/vuln/src/record_forgery.c`` under ``dmvx run --in-process on`` on
this machine -- the attack is on the in-process path, which the emulated
hosts' agents do not take -- with requests on the leader's stdin. The leader
(a variant an earlier exploit owns: it is told which request to lie about)
reads the attacker's request behind the library's back and forges the
record of that read with a benign request's bytes; the followers answer the
benign request, the leader the real one. What left the machine is the run's
stdout (the leader's): the attack reached its goal when the answer to the
attacker's request is there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from realmode.spawn import personality
from realmode.vuln.build import Build, no_randomize

#: The target (``realmode/vuln/src/record_forgery.c``).
PROGRAM = "record_forgery"
#: The program's request size (``REQ`` in record_forgery.c).
REQUEST_BYTES = 32
BENIGN = [b"GET /index.html", b"GET /about.html", b"GET /news.html"]
ATTACK = b"GET /secret"


def request(text: bytes) -> bytes:
    return text.ljust(REQUEST_BYTES - 1) + b"\n"


@dataclass(frozen=True)
class ForgeryRun:
    """What one run found."""

    outcome: str  # ok | divergence | error
    verdict: str | None
    detail: str
    #: The answer to the attacker's request left the machine (the leader's stdout).
    effect: bool
    #: Which path each variant's replicated calls took.
    paths: tuple[str, ...]
    error: str | None = None
    #: The calls the verdict names, per variant.
    verdict_calls: dict[str, str] | None = None
    #: The leader's calls that ran before the verdict came (``ran_ahead``).
    ran_ahead: tuple[str, ...] = ()


def run(builds: Sequence[Build], requests: int, policy: str = "dmvx", timeout: float = 30.0) -> ForgeryRun:
    """``requests`` requests, the last the attacker's, which the leader
    (``builds[0]``) lies about; the other builds are honest followers."""
    lie_at = max(requests - 1, 0)
    sent = b"".join(request(BENIGN[k % len(BENIGN)]) for k in range(lie_at)) + request(ATTACK)
    argv = [sys.executable, "-m", "dmvx", "run", "--policy", policy, "--in-process", "on", "--json"]
    for follower in builds[1:]:
        argv += ["--variant", follower.path]
    argv += ["--", builds[0].path, str(lie_at)]
    with personality(no_randomize(builds)):
        try:
            done = subprocess.run(argv, input=sent, capture_output=True, timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired:
            return ForgeryRun("error", None, "", False, (), f"the run took longer than {timeout:g} s")
    try:
        document = json.loads(done.stdout)
    except ValueError:
        tail = done.stderr.decode(errors="replace").strip()[-300:]
        return ForgeryRun("error", None, "", False, (), f"dmvx run said no JSON (status {done.returncode}): {tail}")
    verdict = document.get("verdict") or {}
    paths = tuple(v.get("in_process", {}).get("path", "ptrace") for v in document.get("variants", []))
    error = None
    if document.get("status") not in ("ok", "divergence"):
        error = f"the run ended {document.get('status')}: {verdict.get('detail', '')}"
    elif document.get("status") == "ok" and done.returncode != 0:
        error = f"the program exited {done.returncode}: {done.stderr.decode(errors='replace').strip()[-300:]}"
    elif "ptrace" in paths:
        error = f"a variant ran on the ptrace path ({', '.join(paths)}): nothing to lie in"
    leaked = b"answer: " + ATTACK in done.stderr
    ahead = tuple(str(c.get("call", "")) for c in (document.get("ran_ahead") or {}).get("calls", []))
    return ForgeryRun(
        document.get("status", "error"),
        verdict.get("kind"),
        verdict.get("detail", ""),
        leaked,
        paths,
        error,
        verdict.get("calls"),
        ahead,
    )
