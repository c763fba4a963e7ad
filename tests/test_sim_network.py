"""The link model of sim mode against hand computations.

Links of 8 Mbit/s serialise one byte per microsecond, which keeps the
arithmetic readable: a 1000-byte message takes 1 ms to put on the wire.
Packet headers are set to zero bytes unless a test is about them.
"""

from __future__ import annotations

import pytest

from dmvx.topology import Topology
from sim.network import LinkDirection, Network
from sim.profile import load_profile

MS = 1_000_000
US = 1_000


def topology(links: list[dict], hosts: tuple[str, ...] = ("h1", "h2")) -> Topology:
    switches = sorted({end for link in links for end in (link["a"], link["b"]) if end.startswith("s")})
    return Topology.model_validate(
        {
            "name": "t",
            "hosts": {h: {"role": "variant"} for h in hosts},
            "switches": switches,
            "links": links,
        }
    )


def network(links: list[dict], *, overhead: int = 0, mss: int = 10**9, seed: int = 0, **extra) -> Network:
    profile = load_profile("paper").with_values(packet_overhead=overhead, mss=mss, **extra)
    return Network(topology(links), profile, seed)


TWO_HOPS = [
    {"a": "h1", "b": "s1", "delay": "1ms", "bw": "8Mbit"},
    {"a": "h2", "b": "s1", "delay": "1ms", "bw": "8Mbit"},
]


def test_serialisation_and_propagation_per_hop() -> None:
    net = network(TWO_HOPS)
    # 1000 B: 1 ms on h1->s1, 1 ms across it, 1 ms on s1->h2, 1 ms across it.
    assert net.transmit("h1", "h2", 1000, 0).arrival == 4 * MS
    assert net.min_latency("h1", "h2") == 2 * MS


def test_fifo_queueing_behind_an_earlier_message() -> None:
    net = network(TWO_HOPS)
    first = net.transmit("h1", "h2", 1000, 0).arrival
    second = net.transmit("h1", "h2", 1000, 0).arrival
    # The second waits 1 ms for the first on h1->s1, then follows it 1 ms behind.
    assert (first, second) == (4 * MS, 5 * MS)
    # Later, on idle links, no queueing at all.
    assert net.transmit("h1", "h2", 1000, 10 * MS).arrival == 14 * MS
    # The reverse direction has its own queue.
    assert net.transmit("h2", "h1", 1000, 0).arrival == 4 * MS


def test_multi_packet_messages_are_pipelined_across_hops() -> None:
    net = network(TWO_HOPS, mss=500)
    # Two 500 B packets: the first reaches s1 at 0.5 + 1 = 1.5 ms and goes on
    # while the second is serialised; the last leaves s1 at 2.5 ms.
    assert net.transmit("h1", "h2", 1000, 0).arrival == 3500 * US


def test_packet_headers_count_on_the_wire() -> None:
    net = network(TWO_HOPS, overhead=100, mss=1000)
    assert net.wire_size(1500) == (1700, 2, 1100, 600)
    # 1700 B in two packets. The first (1100 B) leaves h1 at 1.1 ms and reaches
    # s1 at 2.1 ms; s1->h2 then sends both packets back to back: 1.7 ms.
    assert net.transmit("h1", "h2", 1500, 0).arrival == 1100 * US + MS + 1700 * US + MS
    stats = net.stats()["h1->s1"]
    assert (stats["messages"], stats["bytes"], stats["packets"]) == (1, 1700, 2)


def test_a_full_queue_holds_the_sender_back() -> None:
    links = [
        {"a": "h1", "b": "s1", "delay": "1ms", "bw": "8Mbit", "queue": "1packets"},
        {"a": "h2", "b": "s1", "delay": "1ms", "bw": "8Mbit"},
    ]
    net = network(links)
    times = [net.transmit("h1", "h2", 1000, 0).arrival for _ in range(3)]
    assert times == [4 * MS, 5 * MS, 6 * MS]
    stats = net.stats()["h1->s1"]
    assert stats["held_back"] == 2 and stats["max_queue_packets"] == 1


def test_unshaped_links_only_delay() -> None:
    net = network([{"a": "h1", "b": "s1", "delay": "3us"}, {"a": "h2", "b": "s1", "delay": "4us"}])
    assert net.transmit("h1", "h2", 10**6, 5).arrival == 5 + 7 * US


def test_lowest_delay_route_over_the_graph() -> None:
    links = [
        {"a": "h1", "b": "s1", "delay": "1ms"},
        {"a": "s1", "b": "h2", "delay": "1ms"},
        {"a": "h1", "b": "s2", "delay": "5ms"},
        {"a": "s2", "b": "h2", "delay": "5ms"},
    ]
    net = network(links)
    assert [hop.name for hop in net.route("h1", "h2")] == ["h1->s1", "s1->h2"]
    assert net.route("h1", "h1") == ()
    assert net.transmit("h1", "h1", 100, 42).arrival == 42


def test_per_direction_delays() -> None:
    net = network([{"a": "h1", "b": "h2", "delay_ab": "1ms", "delay_ba": "3ms"}])
    assert net.transmit("h1", "h2", 1, 0).arrival == MS
    assert net.transmit("h2", "h1", 1, 0).arrival == 3 * MS


def test_a_lost_packet_costs_a_round_trip_plus_recovery() -> None:
    links = [{"a": "h1", "b": "h2", "delay": "1ms", "loss": "100%"}]
    net = network(links, loss_recovery=50 * US, max_retransmits=2)
    delivery = net.transmit("h1", "h2", 100, 0)
    assert delivery.arrival is None and delivery.retransmits == 2
    assert net.stats()["h1->h2"]["losses"] == 3


@pytest.mark.parametrize("seed", [1, 2])
def test_loss_is_random_but_seeded_and_in_order_per_flow(seed: int) -> None:
    links = [{"a": "h1", "b": "h2", "delay": "1ms", "loss": "30%"}]
    recovery = 2 * MS + 50 * US  # a round trip plus loss_recovery

    def run(s: int) -> list[int]:
        net = network(links, seed=s, loss_recovery=50 * US)
        times = [net.transmit("h1", "h2", 100, i * MS, flow="c").arrival for i in range(50)]
        assert all(t is not None for t in times)
        return times  # type: ignore[return-value]

    times = run(seed)
    assert times == run(seed)
    assert times != run(seed + 10)
    assert times == sorted(times), "one TCP connection delivers in order"
    late = [t - i * MS for i, t in enumerate(times) if t - i * MS > MS]
    assert late, "some messages must have been retransmitted at 30% loss"
    for i, t in enumerate(times):
        own = (t - i * MS - MS) % recovery == 0  # its own retransmissions
        blocked = i > 0 and t == times[i - 1]  # waited for an earlier one
        assert own or blocked, (i, t)


class _Clock:
    """Stands for the simulation's environment: only ``now`` is read."""

    now = 0


def test_links_forget_what_ended_before_now_and_times_do_not_change() -> None:
    # A long run must not keep every reservation it ever made: with the
    # simulation's clock attached, links drop those that ended before now.
    remembering, forgetting = network(TWO_HOPS), network(TWO_HOPS)
    clock = forgetting.env = _Clock()
    # About half the link's capacity (0.5-1.4 ms of wire per 2 ms, bursts of
    # two at once): often queued, never without end.
    sends = [((i // 2) * 4 * MS, 500 + (i * 37) % 900) for i in range(20_000)]
    for t, size in sends:
        clock.now = t
        assert forgetting.transmit("h1", "h2", size, t).arrival == remembering.transmit("h1", "h2", size, t).arrival
    assert max(len(hop.res) for hop in forgetting.route("h1", "h2")) <= 1024 + 256 + 2
    assert min(len(hop.res) for hop in remembering.route("h1", "h2")) == 20_000


def test_a_message_sent_before_now_is_an_internal_error() -> None:
    net = network(TWO_HOPS)
    net.env = _Clock()
    net.env.now = 5 * MS
    with pytest.raises(RuntimeError, match="before now"):
        net.transmit("h1", "h2", 1000, 4 * MS)


def test_the_link_model_is_passed_in() -> None:
    """``Network(..., link=Model)``: every link direction is the model's, and
    a model that costs more shows up in the arrival times."""

    class SlowerLink(LinkDirection):
        __slots__ = ()

        def __init__(self, name: str, delay_s: float, *args: object) -> None:
            super().__init__(name, 2 * delay_s, *args)  # type: ignore[arg-type]

    profile = load_profile("paper").with_values(packet_overhead=0, mss=10**9)
    net = Network(topology(TWO_HOPS), profile, 0, link=SlowerLink)
    assert all(isinstance(direction, SlowerLink) for direction in net.links.values())
    assert net.transmit("h1", "h2", 1000, 0).arrival == 6 * MS  # 2 x 1 ms serialised, 2 x 2 ms across


def test_reservations_stay_sorted_by_end_so_forgetting_may_bisect() -> None:
    # _forget and _insert find the first reservation busy after a time by
    # bisection on the ends: that holds only while no reservation ends
    # before the one ahead of it. Messages ready in and out of time order,
    # of one and several packets, on a link whose queue fills: after each,
    # the ends are sorted and forgetting stops where a scan would.
    queued = [dict(TWO_HOPS[0], queue="8packets"), TWO_HOPS[1]]
    net = network(queued, mss=1000)
    hops = net.route("h1", "h2")
    for i in range(3000):
        t = (i * 7919) % 5000 * US + (i // 50) * 50 * MS  # out of order within each 50 ms
        net.transmit("h1", "h2", 200 + (i * 37) % 2500, t)
        for hop in hops:
            ends = [r[2] for r in hop.res[hop.head :]]
            assert ends == sorted(ends)
        if i % 97 == 0:
            floor = (i // 50) * 50 * MS
            for hop in hops:
                scan = hop.head
                while scan < len(hop.res) and hop.res[scan][2] <= floor:
                    scan += 1
                kept = hop.res[scan:]
                hop._forget(floor)
                assert hop.res[hop.head :] == kept
