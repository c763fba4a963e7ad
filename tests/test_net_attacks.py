"""``dmvx real``, item 5: the scapy attacker on the attacker host.

(a) an input that makes one variant misbehave is caught before the harmful
call runs; (b) forged and (c) replayed CONNECTOR frames, injected into the
live TCP stream with valid sequence numbers, are rejected by authentication
and end the run fail-safe; (d) an injected RST ends the run with
``connector-lost`` and the leader sends nothing more.
"""

from __future__ import annotations

import pytest

from dmvx.verdict import VerdictKind
from realmode.net import experiment as ex
from realmode.orchestrator import make_policy
from test_net_support import attack_of, client_of, needs_mininet, outcome_of, two_host_run

pytestmark = [pytest.mark.root, needs_mininet]


def _run(
    kind: str,
    *,
    policy: str = "dmvx",
    target: int = 0,
    towards: str = "leader",
    requests: int = 200,
    pace: float = 0.05,
) -> ex.NetResult:
    config = two_host_run(
        ex.Workload(requests=requests, pace=pace),
        make_policy(policy),
        attack=ex.NetAttack(kind, "h3", target=target, towards=towards),
        timeout=30,
    )
    return ex.NetExperiment(config).run()


def _first_injection(result: ex.NetResult) -> float:
    assert result.attack is not None and result.attack["injected"] >= 1, result.attack
    return result.attack["first_injection"]


def _last_injection(result: ex.NetResult) -> float:
    """When the try that took was sent: a try whose sequence number a real
    segment made stale is ignored by the receiver, and repeated 0.3 s later."""
    _first_injection(result)
    return attack_of(result)["last_injection"]


@pytest.mark.parametrize("policy,target", [("dmvx", 0), ("dmvx", 1), ("dmon", 0)])
def test_malicious_input_is_caught_before_the_harmful_call(clean_check, policy: str, target: int) -> None:
    result = _run("exploit", policy=policy, target=target, requests=10, pace=0.02)
    verdict = result.verdict
    assert verdict is not None and verdict.kind is VerdictKind.CALL_MISMATCH, result.to_json()
    attacked, other = verdict.calls[target], verdict.calls[1 - target]
    assert (
        attacked is not None and attacked.name == "execve"
    )  # the variant with the vulnerable layout went for the shell
    assert other is not None and other.name == "write"  # the other answered the request
    assert result.harmful_ran is False
    assert result.outcome_label == "divergence"
    _first_injection(result)


@pytest.mark.parametrize("towards", ["leader", "follower"])
@pytest.mark.parametrize("kind", ["forge", "replay"])
def test_forged_and_replayed_frames_are_rejected(clean_check, kind: str, towards: str) -> None:
    result = _run(kind, towards=towards)
    verdict = result.verdict
    assert verdict is not None and verdict.kind is VerdictKind.AUTH_FAILURE, result.to_json()
    victim = 1 if towards == "leader" else 0  # the receiving CONNECTOR names the link it came over
    assert f"link to variant {victim}" in verdict.detail
    assert ("tag mismatch" if kind == "forge" else "sequence number already used") in verdict.detail
    assert result.outcome_label == "rejected"
    # Fail-safe: the run ended at once, every variant stopped by a verdict,
    # the client's later requests unanswered.
    injected = _first_injection(result)
    ended = outcome_of(result).ended_at
    assert ended is not None and ended - injected < 2.0
    assert all(v["end"] == "verdict" for v in result.variants if v["end"] is not None)
    assert client_of(result)["requests"] < 200 and client_of(result)["error"]


@pytest.mark.parametrize("towards", ["leader", "follower"])
def test_reset_ends_the_run_and_the_leader_sends_no_more(clean_check, towards: str) -> None:
    result = _run("reset", towards=towards)
    verdict = result.verdict
    assert verdict is not None and verdict.kind is VerdictKind.CONNECTOR_LOST, result.to_json()
    injected = _last_injection(result)
    stopped = outcome_of(result).reported_at[0]  # the leader's monitor killed its variant, then reported
    assert injected < stopped < injected + 1.0
    responses = client_of(result)["done"]
    assert responses, "the server answered before the attack"
    one_way = result.config.topology.path_delay("h1", "h3")
    # No response leaves the leader after it was stopped; at most the one in
    # flight when the RST came completes.
    assert all(end <= stopped + one_way + 0.05 for _, end, _ in responses)
    assert sum(1 for _, end, _ in responses if end > injected) <= 1
