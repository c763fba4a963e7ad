"""One real-mode attack run: a vulnerable target, diversified, under attack.

:class:`VulnExperiment` is a :class:`realmode.net.experiment.NetExperiment`
(the same network, agents, cleanup by run id, ``finally`` on every way out)
that serves a target of ``realmode/vuln/src`` built as the scenario's
variants (:mod:`realmode.vuln.build`) and attacks it:

* **exploits** (``stack-overflow``, ``heap-overflow``, ``struct-overflow``,
  ``format-string``): once the attacked variant's image is mapped, the
  exploit is crafted for it (:mod:`realmode.vuln.exploits`) and the attacker
  host (:mod:`realmode.vuln.attacker`) makes a few benign requests and then
  sends it. Afterwards the run says whether the attacker reached its goal
  (``effect``): the marker file exists (the shell ran ``touch``), the secret
  came back, or a pointer into the attacked image came back;
* **CONNECTOR attacks** (``forge``, ``replay``): the target serves a paced
  client while :mod:`realmode.net.attacker` works on the CONNECTOR stream,
  exactly as :class:`~realmode.net.experiment.NetExperiment` does it.

``native=True`` runs the attacked variant's build alone, unmonitored, on the
leader's host, and fires the same exploit from the same host: what the
exploit does when nothing watches (the effect must happen, or a "detected"
verdict would mean nothing). ``native_build`` runs another variant's build
instead, against the exploit crafted for the attacked one (relative and
data-only exploits: an absolute address needs the attacked process).
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dmvx.exitstatus import Unavailable
from realmode.net.agents import Agents
from realmode.net.experiment import (
    SERVER_PORT,
    STREAM_ATTACKS,
    Config,
    NetAttack,
    NetExperiment,
    NetResult,
    attacker_account,
)
from realmode.net.ssh_agents import SshAgents
from realmode.spawn import personality
from realmode.vuln import exploits, study
from realmode.vuln.build import Build, no_randomize

#: The exploits whose goal comes back in the answer (the others': the
#: shell's ``touch`` of the run's marker file).
_ANSWERED = frozenset({"struct-overflow", "format-string"})
#: How long a run may go on after the attacker is done (the served program
#: answering its last request, a shell running ``touch``).
_AFTER_ATTACK = 3.0


class VulnExperiment(NetExperiment):
    """See the module docstring. ``exploit`` names the target program
    (:data:`realmode.vuln.exploits.EXPLOITS`); ``benign`` is how many benign
    requests precede the exploit."""

    def __init__(
        self,
        config: Config,
        builds: list[Build],
        exploit: str,
        *,
        benign: int = 2,
        native: bool = False,
        native_build: int | None = None,
        console: Any = None,
    ) -> None:
        super().__init__(config, console=console)
        self.builds = builds
        self.exploit = exploit
        self.benign = benign
        self.native_only = native
        #: With ``native``: whose build runs (default: the attacked
        #: variant's). Another build shows what the same bytes do there.
        self.native_build = self.attack.target if native_build is None else native_build
        self.secret_path = Path(str(self.marker).replace("-harmful", "-secret"))
        self.secret = f"dmvx-secret-{secrets.token_hex(8)}"
        self.details: dict[str, Any] = {}

    @property
    def attack(self) -> NetAttack:
        """The attack of this run (a run of this class always has one)."""
        assert self.config.attack is not None
        return self.config.attack

    @property
    def attack_kind(self) -> str:
        return self.attack.kind

    def run(self) -> NetResult:
        if self.machines and self.native_only:
            raise Unavailable(
                "an exploit against a variant running alone, unmonitored, runs on emulated hosts only "
                "(realmode/vuln/experiment.py)"
            )
        self.secret_path.write_text(self.secret + "\n")
        try:
            result = super().run()
        finally:
            self.secret_path.unlink(missing_ok=True)
        if self.machines and result.attack is not None and self.exploit not in _ANSWERED:
            # The shell's marker is a file of the leader's machine: its agent
            # said whether it was there when it stopped.
            result.attack["effect"] = bool(result.harmful_ran)
        return result

    # -- what the base experiment asks ------------------------------------------------

    def _builds(self) -> list[str]:
        """The builds (the network is up: the attacker's homework happens now)."""
        if self.attack_kind == "exploit" and self.exploit == "format-string":
            target = self.builds[self.attack.target].path
            # With machines no network is emulated: the study runs in a
            # network namespace of its own on this machine.
            net = None if self.machines else self.net
            self.details["slot"] = study.leak_slot(target, net, self.config.variant_hosts[0])
        return [b.path for b in self.builds]

    def _server_argv(self, binary: str, requests: int) -> list[str]:
        arg = {"struct-overflow": str(self.secret_path), "format-string": "-"}.get(self.exploit, f"touch {self.marker}")
        return [binary, str(SERVER_PORT), str(requests), arg]

    @property
    def fixed_layout(self) -> bool:
        """Whether the variants start with ADDR_NO_RANDOMIZE (build.py)."""
        return no_randomize(self.builds)

    def _mvx(self, builds: list[str]) -> None:
        if self.attack_kind in STREAM_ATTACKS:
            with personality(self.fixed_layout):
                super()._mvx(builds)
            return
        if self.native_only:
            self._exploit_natively(builds)
        else:
            self._exploit_under_mvx(builds)

    # -- exploits ---------------------------------------------------------------------

    def _value(self, image: tuple[int, int]) -> bytes:
        """The exploit crafted for the attacked variant, whose program is
        mapped at ``image`` (low, high: the attack waits for that)."""
        target = self.builds[self.attack.target]
        running = self.builds[self.native_build if self.native_only else self.attack.target]
        low, high = image
        self.details["target_image"] = [low, high]
        if self.exploit == "format-string":
            return exploits.format_string_value(self.details["slot"])
        if self.exploit == "struct-overflow":
            return exploits.struct_overflow_value(target.arch)
        if self.exploit == "partial-overwrite":
            # Relative: the symbol's offset in the image is all it takes.
            offset = exploits.symbol(target.path, exploits.GADGET) - exploits.elf_facts(target.path).first_load
            return exploits.partial_overwrite_value(offset)
        if running is not target:
            raise ValueError("an absolute address needs the attacked process itself")
        address = exploits.absolute_address(target.path, exploits.GADGET, low)
        self.details["address"] = address
        craft = exploits.stack_overflow_value if self.exploit == "stack-overflow" else exploits.heap_overflow_value
        return craft(target.arch, address)

    def _local_image(self, pid: int | None) -> tuple[int, int] | None:
        """Where process ``pid`` of this machine (or of an emulated host) has
        mapped the running build, or None while it has not."""
        if pid is None:
            return None
        running = self.builds[self.native_build if self.native_only else self.attack.target]
        try:
            return exploits.image_range(pid, running.path)
        except (LookupError, FileNotFoundError, ProcessLookupError):
            return None  # not exec'd yet: try again at the next tick

    def _target_image(self) -> tuple[int, int] | None:
        """Where the attacked variant has mapped its program, once it has:
        read from ``/proc`` here, or -- on a machine, where its pid is not
        ours -- as that machine's agent said it."""
        target = self.attack.target
        if isinstance(self.agents, SshAgents):
            return self.agents.image(target)
        assert self.agents is not None
        return self._local_image(self.agents.variants[target].pid)

    def _start_exploit(self, image: tuple[int, int] | None) -> subprocess.Popen | None:
        """Start the attacker once the attacked process has its image mapped."""
        if image is None:
            return None
        value = self._value(image)
        self.details["value"] = value.hex()
        leader = self.config.variant_hosts[0]
        # With machines, from this machine (on the network that reaches them).
        return self._popen(
            self.attack.source,
            [
                sys.executable,
                "-m",
                "realmode.vuln.attacker",
                "--server",
                f"{self._server_ip(leader)}:{SERVER_PORT}",
                "--benign",
                str(self.benign),
                "--value",
                value.hex(),
                "--timeout",
                str(min(10.0, self.config.timeout)),
            ],
        )

    def _exploit_under_mvx(self, builds: list[str]) -> None:
        config = self.config
        target = self.attack.target
        argvs = [self._server_argv(b, self.benign + 1) for b in builds]
        agents: Agents | SshAgents
        if self.machines:
            # The secret the struct overflow steals is a file the program
            # names: sent to each machine with the program.
            shipped = [str(self.secret_path)] if self.exploit == "struct-overflow" else []
            agents = self._start_on_machines(argvs, shipped=shipped, no_randomize=self.fixed_layout, image_of=target)
        else:
            agents = self.agents = Agents(
                self.net, config.variant_hosts, argvs, config.policy, stall_timeout=config.stall_timeout
            )
            with personality(self.fixed_layout):  # the monitors fork the variants: they inherit it
                agents.start()
        attacker: list[subprocess.Popen] = []
        attacker_done: list[float] = []

        def watch() -> str | None:
            if not attacker:
                started = self._start_exploit(self._target_image())
                if started is not None:
                    attacker.append(started)
            if attacker and attacker[0].poll() is not None:
                if not attacker_done:
                    attacker_done.append(time.monotonic())
                elif time.monotonic() - attacker_done[0] > _AFTER_ATTACK:
                    return "the attacker is done, the served program is not"
            return None

        agents.collect(timeout=config.timeout, tick=watch)
        self.result.outcome = agents.outcome
        self.result.attack = self._finish(attacker[0] if attacker else None)

    def _exploit_natively(self, builds: list[str]) -> None:
        config = self.config
        leader = config.variant_hosts[0]
        with personality(self.builds[self.native_build].no_randomize):
            server = self.net.popen(
                leader,
                self._server_argv(builds[self.native_build], self.benign + 1),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        attacker = None
        deadline = time.monotonic() + config.timeout
        while attacker is None and time.monotonic() < deadline and server.poll() is None:
            attacker = self._start_exploit(self._local_image(server.pid))
            if attacker is None:
                time.sleep(0.01)
        if attacker is not None:
            try:
                attacker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        try:
            server.wait(timeout=_AFTER_ATTACK)
        except subprocess.TimeoutExpired:
            server.send_signal(signal.SIGKILL)
            server.wait()
        self.details["native_status"] = server.returncode
        self.result.attack = self._finish(attacker)

    def _finish(self, attacker: subprocess.Popen | None) -> dict[str, Any]:
        """The attacker's account, and whether the attack reached its goal."""
        events: list[dict[str, Any]] = []
        if attacker is not None:
            events, error = attacker_account(attacker)
        else:
            error = "the attacked variant never mapped its program"
        injected = [e for e in events if e.get("event") == "injected"]
        answers = [e for e in events if e.get("event") == "exploit-answer"]
        answer = bytes.fromhex(answers[0]["answer"]) if answers else b""
        effect = self._effect(answer)
        self.result.harmful_ran = effect
        return {
            "kind": "exploit",
            "exploit": self.exploit,
            "source": self.attack.source,
            "target": self.attack.target,
            "injected": len(injected),
            "first_injection": injected[0]["time"] if injected else None,
            "injections": [e["time"] for e in injected],
            "benign_answers": sum(1 for e in events if e.get("event") == "answer"),
            "answer": answer[:512].decode(errors="replace"),
            "effect": effect,
            "error": error,
            **self.details,
        }

    def _effect(self, answer: bytes) -> bool:
        """Whether the attacker got what it came for."""
        if self.exploit == "struct-overflow":
            return self.secret.encode() in answer
        if self.exploit == "format-string":
            low, high = self.details.get("target_image", (0, 0))
            return any(low <= p < high for p in exploits.leaked_pointers(answer.partition(b"\r\n\r\n")[2]))
        return self.marker.exists()
