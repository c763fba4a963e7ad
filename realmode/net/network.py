"""A Mininet network built from a topology file.

The same :class:`dmvx.topology.Topology` that sim mode models becomes, here,
Mininet hosts (one network namespace and shell each), Linux bridges for its
switches (no controller, no Open vSwitch) and veth pairs for its links:

* **Bandwidth** (``bw``) is shaped with an htb class at the sending end of
  each direction, ``queue`` with a pfifo/bfifo under it.
* **Delay and loss** use netem when the kernel has it (probed once per
  process, :func:`netem_available`). Otherwise a link with a delay or loss is
  built as ``a -- _dN -- b`` with a relay node ``_dN`` whose userspace relay
  (:mod:`realmode.net.relay`) holds every frame for the direction's one-way
  delay and drops with the link's loss rate.
* **Addresses**: hosts get ``10.0.0.<n>/24`` in file order; every link is on
  one broadcast domain, so no routing is needed whatever the switch layout.
  Nothing is routed out of the namespaces.
* **Shells**: each node's Mininet shell must come up within
  :data:`SHELL_START_TIMEOUT`; one that dies or hangs while the network is
  built is an :class:`~dmvx.exitstatus.EnvironmentProblem` naming the node.

Everything in the root namespace carries the run prefix (see
:mod:`realmode.net.runs`); :meth:`EmulatedNetwork.stop` removes it all, and is safe
to call at any point of a half-built network, and more than once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dmvx.exitstatus import EnvironmentProblem
from dmvx.topology import Topology
from realmode.deferral import signals_deferred
from realmode.net import _mininet, children, netns, relay, runs

SUBNET = "10.0.0"
PREFIX_LEN = 24
_HTB_QUANTUM = 1514


@functools.lru_cache(maxsize=1)
def netem_available() -> bool:
    """Whether this kernel has the netem qdisc (tried once, in a throwaway
    namespace, so nothing is left behind)."""
    probe = "ip link set lo up && tc qdisc add dev lo root netem delay 1ms"
    try:
        done = subprocess.run(["unshare", "--net", "sh", "-c", probe], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def delay_mechanism() -> str:
    """How link delay is made on this machine, for reports."""
    return "netem" if netem_available() else "relay"


@dataclass
class LinkPlan:
    """One topology link as built: its ends' interfaces and, without netem,
    its relay node."""

    index: int
    a: str
    b: str
    delay_ab: float
    delay_ba: float
    bw_bps: float | None
    loss: float
    queue: Any
    relay_node: str | None = None
    #: Interface names (node, interface) at the a end and at the b end.
    a_intf: tuple[str, str] | None = None
    b_intf: tuple[str, str] | None = None
    #: Every (node, interface) of this link, relay node included.
    intfs: list[tuple[str, str]] = field(default_factory=list)

    def ends(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """(node, interface) at the a end and at the b end, once the link is built."""
        if self.a_intf is None or self.b_intf is None:
            raise RuntimeError(f"link {self.a}-{self.b} is not built yet")
        return self.a_intf, self.b_intf


def _node_classes(env: dict[str, str], host: type | None = None):
    """Mininet node classes that start their shells with this run's mark in
    the environment and a time limit (:class:`_ShellStart`), and a bridge
    that is set up with ``ip``. ``host`` is the Mininet host class the mark
    is added to (default ``mininet.node.Host``)."""
    _mininet.load()
    from mininet.node import Host
    from mininet.nodelib import LinuxBridge

    host = host or Host

    class Marked(_ShellStart):
        def _popen(self, cmd, **params):
            params.setdefault("env", env)
            params.setdefault("preexec_fn", children.die_with_parent)
            with signals_deferred():  # Mininet's own forks (a host's shell) too
                return super()._popen(cmd, **params)

    class MarkedHost(Marked, host):  # type: ignore[valid-type,misc]
        @property
        def role(self) -> str:
            return "relay node" if self.name.startswith("_d") else "host"

    class Bridge(Marked, LinuxBridge):
        """A Linux bridge without STP that forwards at once; in hub mode it
        forgets every address it learns (``ageing_time`` 0), so every frame
        floods to every port (an attacker on the segment sees the traffic)."""

        hub = False
        role = "bridge"

        def start(self, _controllers) -> None:
            ports = [i.name for i in self.intfList() if i.name != "lo"]
            lines = [
                f"link add {self.name} type bridge forward_delay 0 stp_state 0" + (" ageing_time 0" if self.hub else "")
            ]
            for port in ports:
                _disable_ipv6(port)
                lines.append(f"link set dev {port} master {self.name}")
                lines.append(f"link set dev {port} up")
            lines.append(f"link set dev {self.name} up")
            _ip_batch(lines)
            _disable_ipv6(self.name)

        def stop(self, deleteIntfs: bool = True) -> None:  # noqa: N803 - Mininet's name
            subprocess.run(["ip", "link", "del", self.name], capture_output=True)
            _discard_shell(self)

    return MarkedHost, Bridge


#: Seconds a node's shell has to print its first prompt and answer Mininet's
#: first command. A shell takes milliseconds; this is for a machine so loaded
#: that it may never come.
SHELL_START_TIMEOUT = 30.0


# Mininet's Node, for the type checker (Mininet is Debian's, outside the venv).
_Node: Any = object


class _ShellStart(_Node):
    """Mixin for a Mininet node: a shell that dies or hangs while starting
    is an :class:`EnvironmentProblem` naming the node, not a wait forever.

    Mininet's ``startShell`` reads the shell's pty until the prompt with no
    time limit, and the parent's own copy of the pty's slave end keeps the
    read blocking after the shell is gone. So the slave end is closed in
    the parent once the shell holds it (a dead shell then makes the read
    fail at once with EIO), and a timer kills a shell that has not answered
    within :data:`SHELL_START_TIMEOUT` (which makes the read fail too).
    A failed node is discarded here: Mininet never hands it to the caller.
    A shell that dies later, while Mininet configures the network through
    it (:meth:`cmd`), is an :class:`EnvironmentProblem` too."""

    _starting = False
    #: Mininet's: the pty end the shell reads, until closed here (see above).
    slave: int | None

    @property
    def role(self) -> str:
        """What the node is, for messages."""
        return "node"

    def _popen(self, cmd, **params):
        process = super()._popen(cmd, **params)
        if self.shell is None and self.slave is not None and params.get("stdin") == self.slave:
            os.close(self.slave)  # the shell's; see the class doc
            self.slave = None
        return process

    def startShell(self, mnopts=None) -> None:  # noqa: N802 - Mininet's names
        timeout = SHELL_START_TIMEOUT
        lock = threading.Lock()
        state = {"started": False, "expired": False}

        def expire() -> None:
            with lock:
                if state["started"]:
                    return
                state["expired"] = True
            _kill_shell(self)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        failure: OSError | None = None
        self._starting = True
        try:
            super().startShell(mnopts)
        except OSError as error:  # reading or writing the pty of a shell that is gone, or no shell at all
            failure = error
        except BaseException:
            _discard_shell(self)
            raise
        finally:
            self._starting = False
            timer.cancel()
            with lock:
                state["started"] = True
        if failure is None and not state["expired"]:
            return
        status = _shell_status(self)
        _discard_shell(self)
        what = f"the shell of {self.role} {self.name}"
        if state["expired"]:
            raise EnvironmentProblem(
                f"dmvx real: {what} did not start within {timeout:g} s (is the machine overloaded?)"
            )
        if status is not None:
            raise EnvironmentProblem(f"dmvx real: {what} exited while starting ({status})")
        assert failure is not None  # neither expired nor returned above
        raise EnvironmentProblem(f"dmvx real: {what} failed while starting: {failure.strerror or failure}")

    def cmd(self, *args, **kwargs):
        try:
            return super().cmd(*args, **kwargs)
        except OSError as error:  # the pty of a shell that is gone
            if self._starting:
                raise
            status = _shell_status(self)
            how = (
                f"exited while the network was set up ({status})"
                if status is not None
                else f"failed while the network was set up: {error.strerror or error}"
            )
            raise EnvironmentProblem(f"dmvx real: the shell of {self.role} {self.name} {how}") from None


def _shell_status(node: Any) -> str | None:
    """How a node's shell ended (``exit status 1``, ``killed by signal 9``),
    or None if it is still running after a moment: called once its pty has
    failed, so it is gone or going."""
    shell = getattr(node, "shell", None)
    if shell is None:
        return None
    try:
        status = shell.wait(timeout=1)
    except subprocess.TimeoutExpired:
        return None
    return f"killed by signal {-status}" if status < 0 else f"exit status {status}"


def _kill_shell(node: Any) -> None:
    """SIGKILL a node's shell and everything in its session."""
    shell = getattr(node, "shell", None)
    if shell is None or shell.poll() is not None:
        return
    try:
        os.killpg(shell.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # not yet its own group leader
        shell.kill()


def _discard_shell(node: Any) -> None:
    """End a node's shell and close its pty (its namespace dies with it)."""
    _kill_shell(node)
    shell = getattr(node, "shell", None)
    if shell is not None:
        try:
            shell.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
    stream = getattr(node, "stdin", None)  # the pty's master end (also its stdout)
    if stream is not None:
        type(node).outToNode.pop(stream.fileno(), None)
        type(node).inToNode.pop(stream.fileno(), None)
        stream.close()
    elif getattr(node, "master", None) is not None:  # the shell never started
        os.close(node.master)
    if getattr(node, "slave", None) is not None:
        os.close(node.slave)
    node.stdin = node.stdout = node.master = node.slave = node.shell = None


def _mininet_class():
    """Mininet, with its one-time ``init`` marked done: that raises
    system-wide sysctls (TCP buffers, ARP cache, pty count) for big networks,
    and dmvx changes nothing on the machine that it does not undo.
    (``Mininet.__init__`` calls ``Mininet.init()`` on the base class, so the
    flag is set there, for this process.)"""
    from mininet.net import Mininet

    Mininet.inited = True
    return Mininet


def _ip_batch(lines: list[str]) -> None:
    done = subprocess.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", capture_output=True, text=True)
    if done.returncode != 0:
        raise EnvironmentProblem(f"dmvx real: ip failed: {done.stderr.strip()}")


def _disable_ipv6(ifname: str | None = None) -> None:
    """No IPv6 on our interfaces: its router solicitations and DAD would be
    the only unasked-for traffic on the links (call inside the namespace)."""
    names = ["all", "default"] if ifname is None else [ifname]
    for name in names:
        try:
            with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as handle:
                handle.write("1")
        except OSError:
            pass


class EmulatedNetwork:
    """A topology's Mininet network for one run. Use as a context manager,
    or call :meth:`start` and, in a ``finally``, :meth:`stop`.

    The kind of host is passed in, as Mininet takes ``Mininet(host=Host)``:
    ``host`` is a Mininet host class (a subclass of ``mininet.node.Host``,
    say one with CPU limits); every host of the topology is one, with the
    run's mark and time limit added. None is Mininet's plain ``Host``."""

    def __init__(
        self,
        topology: Topology,
        run_id: str,
        *,
        state: runs.RunState | None = None,
        hub: bool = False,
        seed: int = 0,
        watch_port: int | None = None,
        netem: bool | None = None,
        host: type | None = None,
    ) -> None:
        self.topology = topology
        self.host_class = host
        self.run_id = run_id
        self.state = state or runs.RunState(run_id)
        self.hub = hub
        self.seed = seed
        self.watch_port = watch_port
        self.use_netem = netem_available() if netem is None else netem
        self.env = dict(os.environ, **{runs.ENV: run_id})
        self.ips = {name: f"{SUBNET}.{i + 1}" for i, name in enumerate(topology.hosts)}
        if len(self.ips) > 250:
            raise EnvironmentProblem("dmvx real: at most 250 hosts per topology")
        self.bridges = {name: runs.bridge_name(run_id, i) for i, name in enumerate(topology.switches)}
        self.links: list[LinkPlan] = []
        self.net: Any = None
        self.nodes: dict[str, Any] = {}
        self.relay_pid: int | None = None
        self.relay_counts: dict[str, dict] = {}
        self._relay_pipe: int | None = None
        self._relay_control: int | None = None
        self._processes: list[subprocess.Popen] = []
        self._stopped = False
        self.started_at: float | None = None

    # -- building ---------------------------------------------------------------

    def __enter__(self) -> EmulatedNetwork:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def delay_mechanism(self) -> str:
        return "netem" if self.use_netem else "relay"

    def start(self) -> None:
        """Build the network and start its relay; raise on failure (after
        which :meth:`stop` still cleans up what was made)."""
        self.state.save()
        host_cls, bridge_cls = _node_classes(self.env, self.host_class)
        from mininet.link import Link
        from mininet.log import setLogLevel

        _Mininet = _mininet_class()

        setLogLevel("critical")
        bridge_cls.hub = self.hub
        self.net = _Mininet(
            topo=None,
            build=False,
            controller=None,
            host=host_cls,
            switch=bridge_cls,
            link=Link,
            autoSetMacs=True,
            inNamespace=False,
            waitConnected=False,
        )
        for name in self.topology.hosts:
            node = self.net.addHost(name, ip=f"{self.ips[name]}/{PREFIX_LEN}")
            self._track(node)
        for name, bridge in self.bridges.items():
            node = self.net.addSwitch(bridge)
            self.nodes[name] = node
            self._track(node)
        ports: dict[str, int] = {}

        def intf_name(node: str) -> str:
            if node in self.bridges:
                ports[node] = ports.get(node, 0) + 1
                return runs.port_name(self.bridges[node], ports[node])
            count = sum(1 for plan in self.links for n, _ in plan.intfs if n == node)
            return f"{node}-eth{count}"

        for index, link in enumerate(self.topology.links):
            plan = LinkPlan(
                index, link.a, link.b, link.delay_a_to_b, link.delay_b_to_a, link.bw, link.loss or 0.0, link.queue
            )
            self.links.append(plan)
            needs_relay = not self.use_netem and (plan.delay_ab > 0 or plan.delay_ba > 0 or plan.loss > 0)
            if needs_relay:
                relay_name = f"_d{index}"  # topology names start with a letter: no clash
                plan.relay_node = relay_name
                node = self.net.addHost(relay_name, ip=None)
                self._track(node)
                a_if, ra, rb, b_if = intf_name(link.a), "a", "b", intf_name(link.b)
                self.net.addLink(self.nodes[link.a], node, intfName1=a_if, intfName2=ra)
                self.net.addLink(node, self.nodes[link.b], intfName1=rb, intfName2=b_if)
                plan.intfs = [(link.a, a_if), (relay_name, ra), (relay_name, rb), (link.b, b_if)]
            else:
                a_if, b_if = intf_name(link.a), intf_name(link.b)
                self.net.addLink(self.nodes[link.a], self.nodes[link.b], intfName1=a_if, intfName2=b_if)
                plan.intfs = [(link.a, a_if), (link.b, b_if)]
            plan.a_intf, plan.b_intf = plan.intfs[0], plan.intfs[-1]
        self.net.build()
        for name in (*self.topology.hosts, *(plan.relay_node for plan in self.links if plan.relay_node)):
            with self._in(name):
                _disable_ipv6()
        for plan in self.links:
            self._shape(plan)
        for switch in self.net.switches:
            switch.start([])
        if any(plan.relay_node for plan in self.links):
            self._start_relay()
        self.started_at = time.monotonic()

    def _track(self, node: Any) -> None:
        self.nodes[node.name] = node
        self.state.add(node.pid)

    def node_pid(self, node: str) -> int:
        """The pid of ``node``'s shell, which holds its namespace. A shell
        that has ended took the namespace with it: that is one line naming
        the node (:meth:`lost`), not a FileNotFoundError on ``/proc/PID/ns``
        later -- a run under ``nice`` at load ~20 lost its leader host so."""
        shell = getattr(self.nodes[node], "shell", None)
        if shell is not None and shell.poll() is not None:
            raise self.lost(node)
        return int(self.nodes[node].pid)

    def lost(self, node: str) -> EnvironmentProblem:
        """The problem to raise for ``node``, whose shell (and with it its
        namespace) is gone while the run goes on."""
        status = _shell_status(self.nodes[node]) if node in self.nodes else None
        how = f" ({status})" if status is not None else ""
        role = "host" if node in self.topology.hosts else "node"
        return EnvironmentProblem(
            f"dmvx real: the shell of {role} {node} ended during the run{how}; its network is gone"
        )

    @contextlib.contextmanager
    def inside(self, node: str) -> Iterator[None]:
        """Run a block in ``node``'s namespace, then come back; a namespace
        gone before the block could enter it is :meth:`lost`."""
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(netns.inside(self.node_pid(node)))
            except FileNotFoundError:  # the shell ended since node_pid looked
                raise self.lost(node) from None
            yield

    def _in(self, node: str):
        """Run a block in ``node``'s namespace (root for a switch)."""
        if node in self.bridges:
            return _Root()
        return self.inside(node)

    def _shape(self, plan: LinkPlan) -> None:
        """Offloads, bandwidth, queue, and (with netem) delay and loss, at
        the sending end of each direction of ``plan``."""
        for node, intf in plan.intfs:
            with self._in(node):
                if node in self.bridges:
                    _disable_ipv6(intf)
                # Frames must be whole and checksummed on the wire: the relay
                # copies them as they are and an attacker reads them.
                subprocess.run(
                    ["ethtool", "-K", intf, "tx", "off", "tso", "off", "gso", "off", "gro", "off"], capture_output=True
                )
        first, last = plan.intfs[0], plan.intfs[-1]
        for (node, intf), delay in ((first, plan.delay_ab), (last, plan.delay_ba)):
            commands = _tc_commands(
                intf, plan.bw_bps, plan.queue, delay if self.use_netem else 0.0, plan.loss if self.use_netem else 0.0
            )
            if commands:
                with self._in(node):
                    _tc_batch(commands)

    def _start_relay(self) -> None:
        hops = [
            relay.Hop(
                self.node_pid(plan.relay_node),
                "a",
                "b",
                plan.delay_ab,
                plan.delay_ba,
                plan.loss,
                label=f"{plan.a}-{plan.b}",
            )
            for plan in self.links
            if plan.relay_node
        ]
        read_fd, write_fd = os.pipe()
        control_r, control_w = os.pipe()

        def body() -> None:
            try:
                relay.run(hops, self.seed, self.watch_port, write_fd, control_r)
            except BaseException as error:
                _child_failed(write_fd, error)
                raise

        pid = children.fork(body, keep={write_fd, control_r})
        os.close(control_r)
        self._relay_control = control_w
        os.close(write_fd)
        self.relay_pid = pid
        self._relay_pipe = read_fd
        self.state.add(pid)
        line = _read_line(read_fd, 10.0)
        event = json.loads(line) if line else {}
        if event.get("event") != "ready":
            raise EnvironmentProblem(
                f"dmvx real: the link relay did not start: {event.get('message', 'no word from it')}"
            )

    # -- using -----------------------------------------------------------------------

    def ip(self, host: str) -> str:
        return self.ips[host]

    def popen(self, host: str, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        """Start ``argv`` inside ``host`` (marked with the run id; stopped by
        :meth:`stop` if still running)."""
        kwargs.setdefault("env", self.env)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        with signals_deferred():  # a Ctrl-C in the at-fork hooks is not lost (realmode.deferral)
            process = self.nodes[host].popen(argv, **kwargs)
            self._processes.append(process)
            self.state.add(process.pid)
        return process

    def host_intf(self, host: str) -> str:
        """The interface of ``host`` on its first link."""
        for plan in self.links:
            for node, intf in plan.ends():
                if node == host:
                    return intf
        raise KeyError(f"host {host!r} has no link")

    def link_between(self, a: str, b: str) -> LinkPlan:
        for plan in self.links:
            if {plan.a, plan.b} == {a, b}:
                return plan
        raise KeyError(f"no link between {a!r} and {b!r}")

    def set_link_up(self, plan: LinkPlan, up: bool) -> None:
        """Take both ends of a link down (or up again): a cut cable."""
        for node, intf in plan.ends():
            with self._in(node):
                subprocess.run(
                    ["ip", "link", "set", "dev", intf, "up" if up else "down"], check=True, capture_output=True
                )

    def set_link_delay(self, plan: LinkPlan, delay_ab: float, delay_ba: float) -> None:
        """Change a link's one-way delays while the run goes on."""
        if plan.relay_node is not None:
            assert self._relay_control is not None
            order = {"link": f"{plan.a}-{plan.b}", "delay_ab": delay_ab, "delay_ba": delay_ba}
            os.write(self._relay_control, (json.dumps(order) + "\n").encode())
        elif self.use_netem:
            a_end, b_end = plan.ends()
            for (node, intf), delay in ((a_end, delay_ab), (b_end, delay_ba)):
                with self._in(node):
                    commands = _tc_commands(intf, plan.bw_bps, plan.queue, delay, plan.loss, change=True)
                    _tc_batch([line for line in commands if "netem" in line])
        plan.delay_ab, plan.delay_ba = delay_ab, delay_ba

    def set_link_loss(self, plan: LinkPlan, loss: float) -> None:
        """Change a link's loss rate (both ways) while the run goes on; 1.0
        loses every frame, a cable that is in but carries nothing."""
        if plan.relay_node is not None:
            assert self._relay_control is not None
            order = {"link": f"{plan.a}-{plan.b}", "loss": loss}
            os.write(self._relay_control, (json.dumps(order) + "\n").encode())
        elif self.use_netem:
            for node, intf in plan.ends():
                with self._in(node):
                    commands = _tc_commands(intf, plan.bw_bps, plan.queue, plan.delay_ab, loss, change=True)
                    _tc_batch([line for line in commands if "netem" in line])
        else:
            raise ValueError(f"link {plan.a}-{plan.b} has neither a relay nor netem to lose frames with")
        plan.loss = loss

    def set_link_rate(self, plan: LinkPlan, bw_bps: float) -> None:
        """Change a shaped link's bandwidth while the run goes on."""
        if not plan.bw_bps:
            raise ValueError(f"link {plan.a}-{plan.b} is not shaped; give it a bw in the topology")
        for node, intf in plan.ends():
            with self._in(node):
                _tc_batch(
                    [
                        f"class change dev {intf} parent 5: classid 5:1 htb rate {_rate(bw_bps)} "
                        f"burst 15k quantum {_HTB_QUANTUM}"
                    ]
                )
        plan.bw_bps = bw_bps

    # -- stopping ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every process the network started and remove every node,
        bridge and veth; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for process in self._processes:
            if process.poll() is None:
                process.kill()
        for process in self._processes:
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            for stream in (process.stdout, process.stderr, process.stdin):
                if stream is not None:
                    stream.close()
        self._stop_relay()
        nodes = list(self.nodes.values())
        for node in nodes:  # all killed first, then each waited for
            _kill_shell(node)
        for node in nodes:
            if getattr(node, "shell", None) is not None:
                _discard_shell(node)
        runs.clean(self.run_id)

    def _stop_relay(self) -> None:
        if self._relay_control is not None:
            os.close(self._relay_control)
            self._relay_control = None
        if self.relay_pid is None:
            return
        try:
            os.kill(self.relay_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if self._relay_pipe is not None:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                line = _read_line(self._relay_pipe, deadline - time.monotonic())
                if not line:
                    break
                event = json.loads(line)
                if event.get("event") == "counts":
                    self.relay_counts = event["counts"]
                    break
            os.close(self._relay_pipe)
            self._relay_pipe = None
        runs.kill(self.relay_pid)
        runs.reap(self.relay_pid)
        self.relay_pid = None


class _Root:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _rate(bps: float) -> str:
    return f"{int(bps)}bit"


def _tc_commands(
    intf: str, bw_bps: float | None, queue: Any, delay: float, loss: float, change: bool = False
) -> list[str]:
    """tc lines for one sending end: htb for the rate, then netem or a fifo
    for delay/loss/queue (``change``: of an existing set-up)."""
    verb = "change" if change else "add"
    lines: list[str] = []
    parent = "root"
    if bw_bps:
        lines.append(f"qdisc {verb} dev {intf} root handle 5: htb default 1")
        lines.append(
            f"class {verb} dev {intf} parent 5: classid 5:1 htb rate {_rate(bw_bps)} burst 15k quantum {_HTB_QUANTUM}"
        )
        parent = "parent 5:1"
    if delay > 0 or loss > 0:
        netem = f"qdisc {verb} dev {intf} {parent} handle 10: netem"
        if delay > 0:
            netem += f" delay {delay * 1e6:.0f}us"
        if loss > 0:
            netem += f" loss {loss * 100:.4f}%"
        if queue is not None and queue.unit == "packets":
            netem += f" limit {queue.amount}"
        lines.append(netem)
    elif queue is not None:
        kind = "pfifo" if queue.unit == "packets" else "bfifo"
        lines.append(f"qdisc {verb} dev {intf} {parent} handle 10: {kind} limit {queue.amount}")
    return lines


def _tc_batch(lines: list[str]) -> None:
    done = subprocess.run(["tc", "-batch", "-"], input="\n".join(lines) + "\n", capture_output=True, text=True)
    if done.returncode != 0:
        raise EnvironmentProblem(f"dmvx real: tc failed: {done.stderr.strip()}")


def _read_line(fd: int, timeout: float) -> str:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            break
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _child_failed(fd: int, error: BaseException) -> None:
    try:
        os.write(fd, (json.dumps({"event": "error", "message": f"{type(error).__name__}: {error}"}) + "\n").encode())
    except OSError:
        pass
