"""Stand-in machines for the SSH tests (no tests of its own).

Each "machine" is a network namespace joined by a veth pair to a bridge of
the root namespace that all the machines of a set share (one network
segment, as machines in a lab: each reaches the others and this machine
reaches each), running Debian's OpenSSH server (``/usr/sbin/sshd -D``) on its own
address with a host key, an ``authorized_keys`` and a configuration the test
makes in a temporary directory. The client side is an ``ssh -F`` file (what
:data:`realmode.remote.SSH_CONFIG_ENV` names) with the test's key and the
machine's host key pinned in a known-hosts file: nothing of the user's own
``~/.ssh`` is read or written.

:func:`machines` stands them up and always takes them down -- every process
in each namespace killed (``ip netns pids``), the namespaces and links
deleted -- however the test ends, then asserts that nothing is left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
needs_sshd = pytest.mark.skipif(
    not (os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("ssh-keygen") and shutil.which("ip")),
    reason="needs Debian's openssh-server and openssh-client, and iproute2 (deps/debian-packages.txt)",
)
#: Links of the stand-ins are named with this prefix (not "dmvx": the real-mode
#: tests' cleanup checks count those machine-wide).
LINK_PREFIX = "dssh"


@dataclass
class Machine:
    name: str  # the ssh alias in the client configuration
    namespace: str
    address: str
    link: str
    home: Path
    sshd: subprocess.Popen[bytes] | None = None

    @property
    def tmp(self) -> Path:
        """What this machine has as its own /tmp (seen from outside it)."""
        return self.home / "tmp"

    @property
    def kept(self) -> set[str]:
        """Names in this machine's /tmp that are this checkout, not the run's
        (:func:`_shared_under_tmp`)."""
        return {path.relative_to("/tmp").parts[0] for path in _shared_under_tmp()}

    def start(self) -> None:
        """Start (or start again) this machine's sshd, and wait until it listens."""
        # A machine of its own: root's shell start-up files of this one
        # (which bash reads for an ssh command, and which may run anything,
        # pyenv's rehash say) are blanked in a mount namespace. It has a /tmp
        # of its own, as a machine has (the same path on two machines is two
        # files); its set-up stays reachable at /mnt.
        blank = " ".join(
            f"mount --bind {self.home / 'empty'} {rc} &&"
            for rc in ("/root/.bashrc", "/root/.bash_profile", "/root/.profile")
            if os.path.isfile(rc)
        )
        # The dmvx this machine runs is this checkout's: a checkout under /tmp
        # (as CI clones one) is bound into the machine's own /tmp at its path.
        for shared in _shared_under_tmp():
            inside = self.tmp / shared.relative_to("/tmp")
            inside.mkdir(parents=True, exist_ok=True)
            blank += f" mount --bind {shared} {inside} &&"
        blank += f" mount --bind {self.home.parent} /mnt && mount --rbind {self.tmp} /tmp &&"
        with open(self.home / "sshd.log", "ab") as log:
            self.sshd = subprocess.Popen(
                [
                    *("ip", "netns", "exec", self.namespace),
                    *("unshare", "--mount", "--propagation", "private"),
                    *("sh", "-c", f"{blank} exec {SSHD} -D -e -f /mnt/{self.name}/sshd_config"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        _wait_listening(self)

    def revive(self) -> None:
        """Start sshd again if something ended it. The real-mode tests of
        other people running on this machine kill, as they end, every
        process that appeared meanwhile in a network namespace they did not
        know -- this machine's sshd included."""
        if self.sshd is None or self.sshd.poll() is not None:
            self.start()


def _shared_under_tmp() -> list[Path]:
    """The checkout and the Python environment the stand-ins run dmvx from,
    where they lie under /tmp (which each stand-in replaces with its own)."""
    out: list[Path] = []
    for path in sorted({Path(__file__).resolve().parent.parent, Path(sys.prefix).resolve()}):
        if path.is_relative_to("/tmp") and not any(path.is_relative_to(kept) for kept in out):
            out.append(path)
    return out


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _namespace_pids(namespace: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout
    return [int(word) for word in out.split()]


def _keygen(path: Path) -> str:
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dmvx-test", "-f", str(path))
    return path.with_suffix(".pub").read_text().strip()


@contextlib.contextmanager
def machines(directory: Path, count: int, *, refuse: frozenset[int] = frozenset()) -> Iterator[list[Machine]]:
    """``count`` stand-in machines reachable as ``m0``, ``m1``, ... with the
    ssh configuration at ``directory/ssh_config``; machine ``i`` in
    ``refuse`` does not accept the test's key."""
    tag = secrets.token_hex(3)
    client_key = directory / "id_test"
    client_pub = _keygen(client_key)
    known = directory / "known_hosts"
    config_lines: list[str] = []
    made: list[Machine] = []
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
    subnet = 100 + secrets.randbelow(150)
    bridge = f"{LINK_PREFIX}{tag}b"
    try:
        _run("ip", "link", "add", "name", bridge, "type", "bridge")
        _run("ip", "addr", "add", f"10.{subnet}.0.1/24", "dev", bridge)
        _run("ip", "link", "set", bridge, "up")
        for i in range(count):
            home = directory / f"m{i}"
            home.mkdir()
            (home / "empty").write_text("")
            (home / "tmp").mkdir(mode=0o1777)
            machine = Machine(f"m{i}", f"dmvxssh-{tag}-{i}", f"10.{subnet}.0.{i + 2}", f"{LINK_PREFIX}{tag}{i}", home)
            made.append(machine)
            host_pub = _keygen(home / "host_key")
            (home / "authorized_keys").write_text("" if i in refuse else client_pub + "\n")
            seen = Path("/mnt") / machine.name  # home, as the machine sees it
            (home / "sshd_config").write_text(
                f"ListenAddress {machine.address}\nPort 22\nHostKey {seen / 'host_key'}\n"
                f"AuthorizedKeysFile {seen / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                f"PidFile {seen / 'sshd.pid'}\nLogLevel ERROR\n"
            )
            with known.open("a") as handle:
                handle.write(f"{machine.address} {host_pub}\n")
            config_lines += [
                f"Host {machine.name}",
                f"  HostName {machine.address}",
                "  User root",
                f"  IdentityFile {client_key}",
                "  IdentitiesOnly yes",
                "  IdentityAgent none",
                f"  UserKnownHostsFile {known}",
                "  StrictHostKeyChecking yes",
                "",
            ]
            _run("ip", "netns", "add", machine.namespace)
            peer = machine.link + "p"
            _run("ip", "link", "add", machine.link, "type", "veth", "peer", "name", peer)
            _run("ip", "link", "set", peer, "netns", machine.namespace)
            _run("ip", "link", "set", machine.link, "master", bridge)
            _run("ip", "link", "set", machine.link, "up")
            inside = ("ip", "netns", "exec", machine.namespace)
            _run(*inside, "ip", "addr", "add", f"{machine.address}/24", "dev", peer)
            _run(*inside, "ip", "link", "set", peer, "up")
            _run(*inside, "ip", "link", "set", "lo", "up")
        (directory / "ssh_config").write_text("\n".join(config_lines))
        for machine in made:
            machine.start()
        yield made
    finally:
        _take_down(made, bridge)


@pytest.fixture(scope="module", name="stand_ins")
def stand_ins_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Machine]]]:
    """``stand_ins``: two stand-in machines that take the test's key, for the
    module (import this into a test module to use it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    directory = tmp_path_factory.mktemp("machines")
    with machines(directory, 2) as made:
        yield directory, made


def _wait_listening(machine: Machine, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["ip", "netns", "exec", machine.namespace, "ss", "-Hltn", f"src {machine.address}:22"],
            capture_output=True,
            text=True,
        ).stdout
        if out.strip():
            return
        assert machine.sshd is not None
        if machine.sshd.poll() is not None:
            raise RuntimeError(f"sshd of {machine.name} ended with status {machine.sshd.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"sshd of {machine.name} is not listening after {timeout:g} s")


def _take_down(made: list[Machine], bridge: str) -> None:
    for machine in made:
        for _ in range(50):
            pids = _namespace_pids(machine.namespace)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        if machine.sshd is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                machine.sshd.wait(timeout=2)
        subprocess.run(["ip", "link", "del", machine.link], capture_output=True)
        subprocess.run(["ip", "netns", "del", machine.namespace], capture_output=True)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    left = [m.namespace for m in made if os.path.exists(f"/run/netns/{m.namespace}")]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    left += [name for name in [m.link for m in made] + [bridge] if f" {name}@" in links or f" {name}:" in links]
    assert not left, f"stand-in machines left behind: {left}"
