"""``dmvx real`` on machines reached over SSH (issue 16, items 1 and 4): the
agents started by the system's ``ssh`` on stand-in machines (Debian's sshd in
network namespaces, keys made for the test: :mod:`ssh_machines`), the demo,
an attack and lighttpd through them, and the faults -- each run ending with
nothing left on any machine.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from realmode import remote
from ssh_machines import Machine, needs_sshd, stand_ins_fixture  # noqa: F401 (the fixture stand_ins)

DMVX = str(Path(sys.executable).with_name("dmvx"))
ROOT = Path(__file__).resolve().parent.parent

pytestmark = [needs_sshd, pytest.mark.root]


@pytest.fixture
def up(stand_ins: tuple[Path, list[Machine]]) -> tuple[Path, list[Machine]]:
    for machine in stand_ins[1]:
        machine.revive()
    return stand_ins


def _topology(path: Path, **extra: object) -> Path:
    hosts = {
        "h1": {"role": "variant", "ssh": "m0", "dmvx": DMVX},
        "h2": {"role": "variant", "ssh": "m1", "dmvx": DMVX},
        "h3": {"role": "client"},
    }
    path.write_text(yaml.safe_dump({"name": "machines", "hosts": hosts, "switches": [], "links": [], **extra}))
    return path


def _start(*args: str, config: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, **{remote.SSH_CONFIG_ENV: str(config)})
    return subprocess.Popen([DMVX, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _run(*args: str, config: Path, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    process = _start(*args, config=config)
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), time.monotonic() - started


def _namespace_pids(machine: Machine) -> set[int]:
    out = subprocess.run(["ip", "netns", "pids", machine.namespace], capture_output=True, text=True).stdout
    return {int(word) for word in out.split()}


def _assert_clean(made: list[Machine], run_id: str | None) -> None:
    """Nothing of the run left on any machine: no process in its namespace but
    its sshd, no file of the run in its temporary directory."""
    for machine in made:
        assert machine.sshd is not None
        deadline = time.monotonic() + 3
        while _namespace_pids(machine) - {machine.sshd.pid} and time.monotonic() < deadline:
            time.sleep(0.05)  # sshd's session processes leave once the client is gone
        left = _namespace_pids(machine) - {machine.sshd.pid}
        names = {
            pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            for pid in left
            if os.path.exists(f"/proc/{pid}")
        }
        assert not left, f"{machine.name}: {names}"
        assert not [
            path.name
            for path in machine.tmp.iterdir()
            if path.name.startswith("dmvx") and path.name not in machine.kept
        ], machine.name
    if run_id is not None:
        assert not glob.glob(os.path.join(tempfile.gettempdir(), f"dmvx{run_id}*"))
    assert all(run_id is None or run_id not in path for path in glob.glob("/run/dmvx/*.json")), (
        "the run's state file is left"
    )


def test_the_demo_runs_on_two_machines_over_ssh(tmp_path: Path, up: tuple[Path, list[Machine]]) -> None:
    directory, made = up
    topo = _topology(tmp_path / "t.yml")
    done, _ = _run("real", "--topology", str(topo), "--requests", "10", "--json", config=directory / "ssh_config")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["outcome"] == "ok" and report["mvx"]["requests"] == 10, report
    # The baseline: the same server alone on the leader's machine, started by an agent there.
    assert report["native"]["requests"] == 10 and report["slowdown"] > 0, report["native"]
    # The architecture each host reported, and the leader-follower link counted by its CONNECTOR.
    assert report["hosts"]["machines"] == {"h1": os.uname().machine, "h2": os.uname().machine}
    assert report["link"]["messages"] > 10
    _assert_clean(made, report["run_id"])
    # For people: the machines' row.
    done, _ = _run("real", "--topology", str(topo), "--requests", "5", config=directory / "ssh_config")
    assert done.returncode == 0 and "h1 x86_64 (over SSH), h2 x86_64 (over SSH)" in done.stderr, done.stderr
    _assert_clean(made, None)


def test_machines_take_the_in_process_path(tmp_path: Path, up: tuple[Path, list[Machine]]) -> None:
    """``DMVX_IN_PROCESS=on`` reaches each machine's agent, which preloads its
    own checkout's library (the stand-ins run this one): the demo's answers
    are the same and both variants say they took the path. (Before, agents
    on machines ran every variant on the ptrace path.)"""
    directory, made = up
    topo = _topology(tmp_path / "t.yml")
    env = dict(os.environ, **{remote.SSH_CONFIG_ENV: str(directory / "ssh_config"), "DMVX_IN_PROCESS": "on"})
    done = subprocess.run(
        [DMVX, "real", "--topology", str(topo), "--requests", "10", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["outcome"] == "ok" and report["mvx"]["requests"] == 10, report
    assert [v["in_process"]["path"] for v in report["variants"]] == ["in-process", "in-process"], report["variants"]
    assert report["variants"][0]["in_process"]["fast_calls"] > 10
    _assert_clean(made, report["run_id"])


def test_a_data_only_attack_is_caught_on_machines(tmp_path: Path, up: tuple[Path, list[Machine]]) -> None:
    """The real data-only exploit (scenarios/labs/lab5-real.yml: the attack
    table's real data-only cell) on SSH-launched agents: the diversified
    builds sent to each machine, the exploit from this machine."""
    directory, made = up
    topo = _topology(tmp_path / "t.yml")
    done, _ = _run(
        "real",
        "--scenario",
        str(ROOT / "scenarios" / "labs" / "lab5-real.yml"),
        "--topology",
        str(topo),
        "--json",
        config=directory / "ssh_config",
    )
    report = json.loads(done.stdout)
    assert done.returncode == 1, (
        report["verdict"],
        report["error"],
        report["attack"]["events"],
        report["attack"]["error"],
    )
    assert report["verdict"]["kind"] == "call-mismatch" and report["harmful_call_ran"] is False, json.dumps(report)
    assert report["attack"]["injected"] >= 1 or report["attack"]["kind"] == "exploit"
    _assert_clean(made, report["run_id"])


def test_a_forged_frame_on_the_machines_stream_is_rejected(tmp_path: Path, up: tuple[Path, list[Machine]]) -> None:
    """scenarios/real-connector-forgery.yml with its variants on the
    machines: the attacker (this machine, whose bridge joins the stand-ins)
    injects a forged frame into the encrypted stream between their
    CONNECTORs, and the leader's CONNECTOR rejects it."""
    directory, made = up
    topo = _topology(tmp_path / "t.yml")
    done, _ = _run(
        "real",
        "--scenario",
        str(ROOT / "scenarios" / "real-connector-forgery.yml"),
        "--topology",
        str(topo),
        "--json",
        config=directory / "ssh_config",
    )
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["as_expected"], (report["verdict"], report["error"], report["attack"])
    assert report["verdict"]["kind"] == "auth-failure" and report["attack"]["injected"] >= 1, report["attack"]
    assert report["hosts"]["machines"] == {"h1": os.uname().machine, "h2": os.uname().machine}
    _assert_clean(made, report["run_id"])


def test_lighttpd_runs_on_machines(tmp_path: Path, up: tuple[Path, list[Machine]]) -> None:
    directory, made = up
    topo = _topology(tmp_path / "t.yml")
    done, _ = _run(
        "real",
        "--server",
        "lighttpd",
        "--topology",
        str(topo),
        "--requests",
        "50",
        "--sample",
        "8",
        "--json",
        config=directory / "ssh_config",
    )
    report = json.loads(done.stdout)
    assert done.returncode == 0, (report["verdict"], report["error"], report["variants"])
    digests = report["mvx"]["digests"]
    assert report["outcome"] == "ok" and (digests["asked"], digests["checked"], digests["wrong"]) == (8, 8, 0)
    assert report["mvx"]["ab"]["complete"] == 50, report["mvx"]
    _assert_clean(made, report["run_id"])


def _session_of(machine: Machine) -> list[int]:
    """The sshd processes of the sessions open on ``machine``: the listener's
    children (each session's privileged monitor) and their sshd children
    (the unprivileged process that holds the connection)."""
    assert machine.sshd is not None
    found: list[int] = []
    parents = [machine.sshd.pid]
    while parents:
        out = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(parents.pop())], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            pid, comm = line.split(None, 1)
            if comm.strip() == "sshd":
                found.append(int(pid))
                parents.append(int(pid))
    return found


def _wait_for_variant(machine: Machine, timeout: float = 120) -> int:
    """The pid of the variant on ``machine``, once it runs (after the
    native baseline, which runs on the leader's machine alone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in _namespace_pids(machine):
            try:
                if b"net_server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no variant started on {machine.name} within {timeout:g} s")


def _parent(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no parent for {pid}")


@pytest.mark.parametrize("where", ["sshd", "client", "monitor"])
def test_a_dropped_session_ends_the_run_within_5_s_and_leaves_nothing(
    tmp_path: Path, up: tuple[Path, list[Machine]], where: str
) -> None:
    """The follower's session dropped mid-run -- its sshd killed on the
    machine, or this machine's ssh client killed -- or its monitor killed
    there: a connector-lost verdict within 5 s, naming the host when the
    session is what was lost, and nothing left on either machine."""
    directory, made = up
    topo = _topology(tmp_path / "t.yml")
    process = _start("real", "--topology", str(topo), "--requests", "2000", "--json", config=directory / "ssh_config")
    try:
        variant = _wait_for_variant(made[1])
        time.sleep(0.5)
        if where == "monitor":
            victims = [_parent(variant)]
        elif where == "sshd":
            victims = _session_of(made[1])
        else:
            found = subprocess.run(["pgrep", "-P", str(process.pid), "-x", "ssh"], capture_output=True, text=True)
            victims = [
                int(pid)
                for pid in found.stdout.split()
                if "m1" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            ]
        assert victims
        dropped = time.monotonic()
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        out, err = process.communicate(timeout=30)
        took = time.monotonic() - dropped
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    report = json.loads(out)
    print(f"{where}: the run ended {took:.2f} s after the drop: {report['verdict']['detail']}")
    # A dropped session is one of issue 16's faults: 5 s. A monitor killed
    # there is not; seen at 1.7 s, and once at 9.2 s under a load of 30.
    assert took < (5 if where != "monitor" else 10), took
    assert process.returncode == 1 and report["verdict"]["kind"] == "connector-lost", (report["verdict"], err)
    if where == "client":
        assert "host h2 (m1): the SSH session ended" in report["verdict"]["detail"], report["verdict"]
    _assert_clean(made, report["run_id"])


def test_ctrl_c_stops_the_agents_on_every_machine(tmp_path: Path, up: tuple[Path, list[Machine]]) -> None:
    directory, made = up
    topo = _topology(tmp_path / "t.yml")
    process = _start("real", "--topology", str(topo), "--requests", "2000", config=directory / "ssh_config")
    try:
        _wait_for_variant(made[1])
        # Past the client's start: a SIGINT that lands while Python runs its
        # at-fork hooks (in subprocess.Popen) is printed and dropped
        # ("Exception ignored in: _releaseLock"), here as on emulated hosts.
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    _assert_clean(made, None)


def test_the_topology_binaries_choose_the_program_each_machine_runs(
    tmp_path: Path, up: tuple[Path, list[Machine]]
) -> None:
    """binaries: {x86_64: {net_server: PATH}}: each machine runs PATH, its
    own file, instead of the build sent from here."""
    from realmode.net import targets

    directory, made = up
    (directory / "bin").mkdir(exist_ok=True)
    own = directory / "bin" / "net_server"
    own.write_bytes(Path(targets.net_server(1)).read_bytes())
    own.chmod(0o755)
    # The machines see the set-up directory at /mnt (ssh_machines), not this machine's /tmp.
    topo = _topology(tmp_path / "t.yml", binaries={"x86_64": {"net_server": "/mnt/bin/net_server"}})
    done, _ = _run("real", "--topology", str(topo), "--requests", "5", "--json", config=directory / "ssh_config")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["outcome"] == "ok", (report["verdict"], report["error"], done.stderr)
    assert [v["argv"][0] for v in report["variants"]] == ["/mnt/bin/net_server", "/mnt/bin/net_server"]
    _assert_clean(made, report["run_id"])


def test_a_program_missing_on_a_machine_is_one_line_naming_the_host(
    tmp_path: Path, up: tuple[Path, list[Machine]]
) -> None:
    directory, made = up
    topo = _topology(tmp_path / "t.yml", binaries={"x86_64": {"net_server": "/nonexistent/net_server"}})
    done, _ = _run("real", "--topology", str(topo), "--requests", "5", config=directory / "ssh_config")
    assert done.returncode == 4, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == "dmvx: error: dmvx real: host h1 (m0): /nonexistent/net_server: No such file or directory", last
    _assert_clean(made, None)
