"""Tests for ``emulator/cycle.py``, the cycle-accurate engine (docs/architecture.md sections 6-8).

Where the expected values come from:

(1) spikes, probes, every functional counter, the flags and the final ChipState must equal the
    reference engine's (``emulator/reference.py``, the spec written out in plain Python), and the
    functional engine's, on seeded random networks, edge networks and congested meshes;
(2) cycle counts derived by hand in the comments from the FSM rules of section 7;
(3) the router transfers of every cycle must equal those of ``hdl/router_model.py``'s
    ``MeshModel`` (the hardware engineer's independent plain-Python model of section 6), driven by
    the packets the engine's fan-out units and host injector pushed, cycle by cycle;
(4) identities between counters that hold for any traffic (each is derived where it is tested);
(5) the numba and plain-Python backends are the same function and must agree on everything.
"""

import numpy as np
import pytest

import neurotile as nt
from neurotile.compiler.errors import EmulatorError, NeurotileTypeError
from neurotile.emulator import testing as T
from neurotile.emulator.cycle import (
    CycleEngine, grant_table, numba_available, route_table, TRACE_KINDS,
)
from neurotile.emulator.reference import ReferenceEngine
from neurotile.emulator.result import COUNTERS_CHIP, COUNTERS_CYCLE, COUNTERS_PER_CORE
from neurotile.emulator.state import ChipState

N_, E_, S_, W_, L_ = range(5)                 # router ports
FUNCTIONAL = COUNTERS_PER_CORE + COUNTERS_CHIP + ("link",)
ACC = nt.Arch.ACC_LATENCY                     # 3
BARRIER = nt.Arch.BARRIER_LATENCY             # 2
OVERHEAD = nt.Arch.STEP_OVERHEAD              # 1
BACKEND = "numba" if numba_available() else "python"
MODES = [(d, r) for d in ("loihi", "shift") for r in ("zero", "subtract")]

try:
    from neurotile.emulator.functional import FunctionalEngine
except ImportError:        # written concurrently; compared against once it exists
    FunctionalEngine = None


def channels_of(image, inputs, steps):
    """The [steps, n_channels] channel array of ``inputs`` (groups in image.inputs order)."""
    parts = [np.asarray(inputs[name], bool) for name in image.inputs]
    return np.concatenate(parts, axis=1) if parts else np.zeros((steps, 0), bool)


def run_cycle(image, channels, probes=(), state=None, backend=BACKEND, trace=False):
    state = state if state is not None else ChipState.from_image(image)
    engine = CycleEngine(image, backend=backend)
    return engine.run(state, channels, list(probes), trace=trace), state, engine


def assert_functional_equal(ref, ref_state, cyc, cyc_state):
    """Spikes, probes, non-cycle counters, flags and final state of two runs are identical."""
    assert ref.spikes.keys() == cyc.spikes.keys()
    for name in ref.spikes:
        np.testing.assert_array_equal(ref.spikes[name], cyc.spikes[name], err_msg=name)
    assert ref.probes.keys() == cyc.probes.keys()
    for name in ref.probes:
        np.testing.assert_array_equal(ref.probes[name], cyc.probes[name], err_msg=name)
    for name in FUNCTIONAL:
        np.testing.assert_array_equal(ref.counters[name], cyc.counters[name], err_msg=name)
    assert ref.flags == cyc.flags and ref.flag_step == cyc.flag_step
    assert ref_state.equals(cyc_state)


def check_against_engines(image, channels, probes=()):
    """Run cycle mode and the reference (and functional) engines; compare; return cycle's run."""
    ref_state = ChipState.from_image(image)
    ref = ReferenceEngine(image).run(ref_state, channels, list(probes))
    cyc, cyc_state, engine = run_cycle(image, channels, probes)
    assert_functional_equal(ref, ref_state, cyc, cyc_state)
    if FunctionalEngine is not None:
        fun_state = ChipState.from_image(image)
        fun = FunctionalEngine(image).run(fun_state, channels, list(probes))
        assert_functional_equal(fun, fun_state, cyc, cyc_state)
    assert_counter_identities(image, cyc)
    return cyc, cyc_state, engine


def assert_counter_identities(image, r):
    """Identities between counters that hold for every step of every valid image (section 8)."""
    a = image.arch
    c = r.counters
    link = c["link"]
    # Every step drains the mesh, so every packet pushed is consumed in the same step: each L
    # transfer lands in the core FIFO whose synapse unit then counts it in packets_in.
    np.testing.assert_array_equal(link[:, :, L_], c["packets_in"])
    # The only W output that does not feed a router is (0, 0)'s, the host exit.
    np.testing.assert_array_equal(link[:, 0, W_], c["host_out"])
    np.testing.assert_array_equal(link[:, :, :4].sum(axis=(1, 2)) - c["host_out"], c["hops"])
    # Conservation (valid image: nothing is discarded): what enters the mesh leaves it.
    np.testing.assert_array_equal(c["packets_out"].sum(1) + c["host_in"],
                                  c["packets_in"].sum(1) + c["host_out"])
    # The synapse unit spends one AXON cycle per packet and one SYN cycle per synapse.
    np.testing.assert_array_equal(c["syn_busy"], c["packets_in"] + c["synops"])
    # A fan-out unit spends NEXT + INDEX per spike, one EMIT per packet (more if stalled), and
    # the final NEXT that finds the queue empty.
    assert np.all(c["fanout_busy"] >= 1 + 2 * c["spikes"] + c["packets_out"])
    # The units are busy only before quiescence p_q = spike_cycles - BARRIER_LATENCY; the
    # synapse unit's IDLE cycles in which it pops a packet come on top of syn_busy.
    p_q = c["spike_cycles"] - BARRIER
    assert np.all(c["fanout_busy"] <= p_q[:, None])
    assert np.all(c["syn_busy"] + c["packets_in"] <= p_q[:, None])
    np.testing.assert_array_equal(c["update_cycles"], a.neurons_per_core + a.UPDATE_LATENCY)
    np.testing.assert_array_equal(c["cycles"], c["update_cycles"] + c["spike_cycles"] + OVERHEAD)


# -- (1) equal to the reference (and functional) engine -----------------------------------------

@pytest.mark.parametrize("mesh", [(1, 1), (2, 2), (3, 2)])
@pytest.mark.parametrize("decay_mode, reset_mode", MODES)
def test_random_networks_match_reference(mesh, decay_mode, reset_mode):
    seed = 7 * mesh[0] + mesh[1] + 3 * MODES.index((decay_mode, reset_mode))
    small = mesh != (1, 1)        # 16-neuron cores spread the network over the mesh
    arch = nt.Arch(mesh_w=mesh[0], mesh_h=mesh[1], neurons_per_core=16 if small else 128,
                   profiles_per_core=16 if small else 64,     # random neurons: one profile each
                   max_delay=4, fifo_depth=1 + seed % 3, core_fifo_depth=1 + seed % 2,
                   decay_mode=decay_mode, reset_mode=reset_mode)
    net = T.random_network(seed, sizes=(20, 14) if small else (24, 16), decay_mode=decay_mode,
                           outputs="all")
    image = nt.compile(net, arch)
    inputs = T.random_inputs(net, 25, 0.3, seed)
    r, _, _ = check_against_engines(image, channels_of(image, inputs, 25),
                                    [("p0", "u"), ("p0", "v"), ("p1", "v")])
    assert r.spike_count() > 0 and r.total("hops") >= 0 and r.total("synops") > 0


@pytest.mark.parametrize("kind", T.EDGE_KINDS)
@pytest.mark.parametrize("decay_mode", ["loihi", "shift"])
def test_edge_networks_match_reference(kind, decay_mode):
    arch = nt.Arch(mesh_w=2, mesh_h=2, decay_mode=decay_mode)
    case = T.edge_network(kind, arch)
    image = nt.compile(case.network, arch)
    pops = list(image.populations)
    r, state, _ = check_against_engines(image, channels_of(image, case.inputs, case.steps),
                                        [(p, var) for p in pops for var in ("u", "v")])
    if kind == "acc_sat":
        assert state.flags["acc_sat"]


@pytest.mark.parametrize("mesh", [(2, 2), (3, 2)])
def test_heavy_congestion_depth_1_matches_reference(mesh):
    # Every router FIFO and every core FIFO holds one packet: with ~N/2 sources per core and 64
    # host channels all aiming at one core, nearly every transfer waits for room downstream.
    arch = nt.Arch(mesh_w=mesh[0], mesh_h=mesh[1], fifo_depth=1, core_fifo_depth=1)
    case = T.edge_network("congestion", arch)
    image = nt.compile(case.network, arch)
    r, _, _ = check_against_engines(image, channels_of(image, case.inputs, case.steps))
    # The destination core's synapse unit is the bottleneck: it needs 1 (IDLE pop) + 1 (AXON) +
    # k (SYN) cycles per packet, one packet at a time, so the SPIKE phase is at least that long.
    dst = int(np.argmax(r.counters["packets_in"].sum(0)))
    need = 2 * r.counters["packets_in"][:, dst] + r.counters["synops"][:, dst]
    assert np.all(r.counters["spike_cycles"] >= need + BARRIER)
    # And deeper FIFOs can only make it faster.
    deep = nt.compile(case.network, arch.replace(fifo_depth=4, core_fifo_depth=4))
    r4, _, _ = run_cycle(deep, channels_of(deep, case.inputs, case.steps))
    assert r4.counters["cycles"].sum() <= r.counters["cycles"].sum()


def test_long_run_in_pieces_equals_one_run():
    # Runs continue from the state (and from the round-robin pointers the engine keeps), so
    # 10 + 15 steps through one engine give exactly the 25-step run, cycles included.
    arch = nt.Arch(mesh_w=3, mesh_h=2, neurons_per_core=16, max_delay=4, fifo_depth=1)
    net = T.random_network(11, sizes=(20, 14), outputs="all")
    image = nt.compile(net, arch)
    ch = channels_of(image, T.random_inputs(net, 25, 0.4, 11), 25)
    whole, s1, _ = run_cycle(image, ch)
    s2 = ChipState.from_image(image)
    engine = CycleEngine(image, backend=BACKEND)
    calls = []
    parts = [engine.run(s2, ch[:10]),
             engine.run(s2, ch[10:], progress=lambda done, total: calls.append((done, total)))]
    assert calls == [(k, 15) for k in range(1, 16)]
    assert s1.equals(s2)
    assert parts[1].start_step == 10
    for name in FUNCTIONAL + COUNTERS_CYCLE:
        np.testing.assert_array_equal(
            whole.counters[name], np.concatenate([p.counters[name] for p in parts]), name)


# -- (2) cycle counts derived by hand -----------------------------------------------------------

def one_hop_image(arch, k, n_dest=1):
    """Neuron 0 of core (0, 0) fires every step (vth 0, bias 1: v' = 1 > 0) and sends ``n_dest``
    packets to core (1, 0), axons 0 .. n_dest - 1, each with ``k`` synapses onto its neuron 0."""
    return T.hand_image(
        arch,
        [dict(pop="src", core=(0, 0), du=4095, vth=0, bias_mant=1,
              fanout=[(0, 1, 0, a) for a in range(n_dest)]),
         dict(pop="dst", core=(1, 0), du=4095, vth=(1 << 17) - 1)],
        axons={(1, 0): [[(0, 1, 1, 0)] * k for _ in range(n_dest)]})


def test_empty_step_length():
    # No spike and no input: every fan-out unit is NEXT in p = 0, finds its queue empty and is
    # DONE from p = 1; the host injector goes START -> DONE in p = 0; all FIFOs are empty and
    # every synapse unit IDLE. So p_q = 1 and the step is
    # U + (p_q + BARRIER_LATENCY) + STEP_OVERHEAD = (128 + 6) + (1 + 2) + 1 = 138 cycles.
    arch = nt.Arch(mesh_w=2, mesh_h=2)
    image = T.hand_image(arch, [dict(pop="p", core=(1, 1))])
    r, _, _ = run_cycle(image, np.zeros((3, 0), bool))
    assert r.counters["update_cycles"].tolist() == [134] * 3
    assert r.counters["spike_cycles"].tolist() == [3] * 3
    assert r.counters["cycles"].tolist() == [138] * 3
    assert r.counters["fanout_busy"].tolist() == [[1, 1, 1, 1]] * 3     # NEXT in p = 0 only
    assert r.counters["syn_busy"].tolist() == [[0, 0, 0, 0]] * 3


@pytest.mark.parametrize("k", [0, 1, 2, 5, 40])
def test_one_packet_one_hop_cycle_count(k):
    # Core (0, 0) fan-out unit:  p0 NEXT pops neuron 0; p1 INDEX (count 1); p2 EMIT pushes the
    #   packet into router (0, 0)'s L FIFO (readable from p3); p3 NEXT finds the queue empty;
    #   DONE from p4: fanout_busy = 4 (= 2 + k_dest + 1 with one destination).
    # Router (0, 0): p3 the L head routes E (dx 1 > 0), (1, 0)'s W FIFO is empty: it moves, and
    #   is readable there from p4.
    # Router (1, 0): p4 the W head routes L; the core FIFO is empty: it moves (readable p5).
    # Synapse unit of (1, 0): p5 IDLE pops it; p6 AXON reads axon 0 (count k); if k = 0 it is
    #   IDLE from p7 and p_q = 7. Otherwise SYN in p7 .. p6+k (one synapse per cycle), IDLE
    #   from p7+k; the last synapse enters the pipeline in p6+k and keeps it busy to the end of
    #   p6+k+ACC_LATENCY-1, so the first quiescent cycle is p_q = 6 + k + ACC_LATENCY = 9 + k
    #   (after 7 + k, since ACC_LATENCY >= 1).
    arch = nt.Arch(mesh_w=2, mesh_h=1)
    r, _, _ = run_cycle(one_hop_image(arch, k), np.zeros((2, 0), bool))
    p_q = 7 if k == 0 else 6 + k + ACC
    assert r.counters["spike_cycles"].tolist() == [p_q + BARRIER] * 2
    assert r.counters["cycles"].tolist() == [134 + p_q + BARRIER + OVERHEAD] * 2
    assert r.counters["fanout_busy"].tolist() == [[4, 1]] * 2
    assert r.counters["syn_busy"].tolist() == [[0, 1 + k]] * 2          # AXON + k SYN cycles
    assert r.counters["link"][0].tolist() == [[0, 1, 0, 0, 0], [0, 0, 0, 0, 1]]
    assert r.counters["hops"].tolist() == [1, 1]
    assert r.counters["synops"].tolist() == [[0, k]] * 2


def test_backpressure_with_depth_1_fifos():
    # fifo_depth = core_fifo_depth = 1; neuron 0 of (0, 0) sends two packets A, B to (1, 0),
    # each with one synapse.
    #   p0 NEXT, p1 INDEX, p2 EMIT A (L FIFO level 0 -> 1 at p3).
    #   p3 EMIT B stalls: L level is 1 = depth at the start of p3 (A leaving in p3 does not make
    #      room in the same cycle). Router (0, 0) moves A east ((1, 0).W empty).
    #   p4 EMIT B (L level 0), rem 0 -> NEXT. Router (1, 0) moves A into the core FIFO.
    #   p5 NEXT: queue empty -> DONE (fanout_busy = p0..p5 = 6). Router (0, 0) moves B east
    #      ((1, 0).W emptied in p4). Synapse unit pops A.
    #   p6 AXON A. Router (1, 0) moves B to the core FIFO (its level was 0 at the start of p6).
    #   p7 SYN A (pipeline busy to the end of p9). p8 IDLE pops B. p9 AXON B. p10 SYN B (busy
    #      to the end of p12), IDLE from p11. First quiescent cycle: p_q = 13.
    arch = nt.Arch(mesh_w=2, mesh_h=1, fifo_depth=1, core_fifo_depth=1)
    r, _, _ = run_cycle(one_hop_image(arch, 1, n_dest=2), np.zeros((1, 0), bool), trace=True)
    assert r.counters["spike_cycles"].tolist() == [13 + BARRIER]
    assert r.counters["fanout_busy"].tolist() == [[6, 1]]
    assert r.counters["syn_busy"].tolist() == [[0, 4]]                  # p6, p7, p9, p10
    ev = r.trace[0]
    kinds = [TRACE_KINDS[k] for k in ev["kind"]]
    got = [(int(e["cycle"]), kind, int(e["router"]), int(e["port"]), int(e["index"]))
           for e, kind in zip(ev, kinds)]
    assert got == [
        (2, "inject", 0, L_, 0),
        (3, "transfer", 0, E_, 0),
        (4, "inject", 0, L_, 1),
        (4, "transfer", 1, L_, 0),
        (5, "consume", 1, L_, 0),
        (5, "transfer", 0, E_, 1),
        (6, "transfer", 1, L_, 1),
        (8, "consume", 1, L_, 1),
    ]


@pytest.mark.parametrize("k", [0, 3])
def test_host_input_cycle_count(k):
    # One input channel with one packet to core (0, 0), axon 0 with k synapses.
    # Host injector: p0 START (one packet) -> EMIT; p1 EMIT pushes into (0, 0).W (readable p2);
    #   DONE from p2. Router (0, 0): p2 the W head routes L (dest = here): moves, readable p3.
    # Synapse unit of (0, 0): p3 IDLE pops, p4 AXON; k = 0: IDLE from p5, p_q = 5. Otherwise SYN
    #   p5 .. p4+k, the last entering in p4+k: busy to the end of p4+k+ACC-1: p_q = 4 + k + ACC.
    arch = nt.Arch(mesh_w=2, mesh_h=2)
    image = T.hand_image(arch, [dict(pop="p", core=(0, 0), vth=(1 << 17) - 1)],
                         axons={(0, 0): [[(0, 1, 1, 0)] * k]}, inputs={"in": [[(0, 0, 0)]]})
    ch = np.array([[True], [False]])
    r, _, _ = run_cycle(image, ch)
    p_q = 5 if k == 0 else 4 + k + ACC
    assert r.counters["spike_cycles"].tolist() == [p_q + BARRIER, 1 + BARRIER]
    assert r.counters["host_in"].tolist() == [1, 0]
    assert r.counters["link"][0, 0].tolist() == [0, 0, 0, 0, 1]


def test_host_output_and_round_robin_order():
    # Neurons 0 and 1 of core (1, 0) fire every step; each sends one host-bound packet.
    # Fan-out unit of (1, 0): p0 NEXT(n0), p1 INDEX, p2 EMIT h0, p3 NEXT(n1), p4 INDEX,
    #   p5 EMIT h1, p6 NEXT -> DONE: fanout_busy = 7.
    # h0: (1, 0).L readable p3, routes W (a host packet heads for (0, 0)), moves p3 into (0, 0).E;
    #   p4 routes W at (0, 0), the host exit. h1: p6 moves W, p7 leaves through the host exit.
    # Everything is empty and DONE at the start of p8: p_q = 8.
    arch = nt.Arch(mesh_w=2, mesh_h=1)
    image = T.hand_image(arch, [dict(pop="p", core=(1, 0), du=4095, vth=0, bias_mant=1,
                                     fanout=[(1, 0, 0, 0)]),
                                dict(pop="p", core=(1, 0), du=4095, vth=0, bias_mant=1,
                                     fanout=[(1, 0, 0, 1)])])
    r, _, engine = run_cycle(image, np.zeros((1, 0), bool), trace=True)
    assert r.counters["spike_cycles"].tolist() == [8 + BARRIER]
    assert r.counters["fanout_busy"].tolist() == [[1, 7]]
    assert r.counters["host_out"].tolist() == [2]
    assert r.counters["hops"].tolist() == [2]
    out = r.trace[0][(r.trace[0]["router"] == 0) & (r.trace[0]["port"] == W_)]
    assert out["cycle"].tolist() == [4, 7] and out["index"].tolist() == [0, 1]
    # The arbiters remember who they served: (1, 0).W and (0, 0).W last served inputs L and E.
    assert engine.router_last[1, W_] == L_ and engine.router_last[0, W_] == E_
    engine.reset()
    assert np.all(engine.router_last == L_)


def test_round_robin_grant_table_is_section_6():
    # last[o] = 4 after reset: the order is 0, 1, 2, 3, 4 (N first); after serving input 1 the
    # order is 2, 3, 4, 0, 1.
    g = grant_table()
    assert g[4, 0b11111] == 0 and g[4, 0b10000] == 4 and g[4, 0b11000] == 3
    assert g[1, 0b00011] == 0 and g[1, 0b00110] == 2 and g[1, 0b00010] == 1
    assert np.all(g[:, 0] == -1)


def test_route_table_is_xy_with_host_exit():
    # 3x2 mesh, router (1, 1) = index 4. Keys: host | x << 1 | y << 5.
    arch = nt.Arch(mesh_w=3, mesh_h=2)
    rt = route_table(arch)

    def key(host, x, y):
        return host | x << 1 | y << 5
    assert rt[4, key(0, 2, 0)] == E_            # x first: dx 2 > 1 goes E even though dy < y
    assert rt[4, key(0, 0, 1)] == W_
    assert rt[4, key(0, 1, 0)] == N_
    assert rt[4, key(0, 1, 1)] == L_
    assert rt[4, key(1, 2, 1)] == W_            # host packets head for (0, 0), fields ignored
    assert rt[3, key(1, 0, 0)] == N_            # (0, 1): x matches, go N
    assert rt[0, key(1, 0, 0)] == W_            # (0, 0): the host exit
    assert rt[2, key(0, 3, 0)] == 5             # (2, 0): E would leave the mesh -> discard
    assert rt[5, key(0, 2, 2)] == 5             # (2, 1): S would leave the mesh -> discard


def test_step_timeout_flag():
    # The one-hop image with k = 5 takes p_q + 2 = 16 SPIKE cycles (hand count above); with
    # step_timeout = 15 every step raises the sticky flag, first in step 0; 16 does not.
    for timeout, flagged in ((15, True), (16, False)):
        arch = nt.Arch(mesh_w=2, mesh_h=1, step_timeout=timeout)
        r, state, _ = run_cycle(one_hop_image(arch, 5), np.zeros((2, 0), bool))
        assert r.counters["spike_cycles"].tolist() == [16, 16]
        assert state.flags["step_timeout"] is flagged
        assert state.flag_step["step_timeout"] == (0 if flagged else -1)


def test_bad_axon_and_bad_route_flags_match_reference():
    # A corrupt image: core (0, 0) neuron 0 sends to axon 3 of (1, 0), which has 1 axon
    # (bad_axon: an empty list, still one AXON cycle), and to core (3, 0) of a 3x1 mesh (x fits
    # the 2-bit field), whose route leaves the mesh at (2, 0)'s E port (bad_route, discarded).
    arch = nt.Arch(mesh_w=3, mesh_h=1)
    image = T.hand_image(arch, [dict(pop="s", core=(0, 0), du=4095, vth=0, bias_mant=1,
                                     fanout=[(0, 1, 0, 3), (0, 3, 0, 0)]),
                                dict(pop="d", core=(1, 0))],
                         axons={(1, 0): [[(0, 1, 1, 0)]]})
    ch = np.zeros((2, 0), bool)
    ref_state = ChipState.from_image(image)
    ref = ReferenceEngine(image).run(ref_state, ch)
    r, state, _ = run_cycle(image, ch, trace=True)
    assert_functional_equal(ref, ref_state, r, state)
    assert state.flags["bad_axon"] and state.flags["bad_route"]
    assert state.flag_step["bad_axon"] == 0 and state.flag_step["bad_route"] == 0
    assert r.counters["syn_busy"].tolist() == [[0, 1, 0]] * 2
    discards = r.trace[0][r.trace[0]["kind"] == TRACE_KINDS.index("discard")]
    assert discards["router"].tolist() == [2] and discards["port"].tolist() == [5]


# -- (3) the routers against hdl/router_model.py's MeshModel ------------------------------------

def check_against_mesh_model(image, result):
    """Replay a traced run through ``MeshModel`` and compare the transfers of every cycle.

    The model gets, in each cycle, the packets the engine's fan-out units and host injector
    pushed in that cycle (it must accept them at once: its FIFO must have room too), and as the
    L outputs' downstream ``ready`` the engine's core FIFO room at the start of the cycle,
    rebuilt from the trace (L transfers push, synapse-unit pops pop). One model serves every
    step; its round-robin pointers are reset at the start of each step's SPIKE phase, as the
    engine's (and the RTL's ``arb_reset``) are.
    """
    from neurotile.hdl.router_model import MeshModel, pack_packet

    a = image.arch
    lay = a.layouts.packet
    ready = {}
    model = MeshModel(mesh_w=a.mesh_w, mesh_h=a.mesh_h, packet_layout=lay,
                      fifo_depth=a.fifo_depth, local_ready=lambda cycle, x, y: ready[(x, y)])
    kinds = {name: i for i, name in enumerate(TRACE_KINDS)}
    compared = 0
    for ev in result.trace:
        model.reset_arbitration()
        pk = [pack_packet(lay, host=int(e["host"]), x=int(e["x"]), y=int(e["y"]),
                          index=int(e["index"])) for e in ev]
        level = np.zeros(a.n_cores, np.int64)
        end = int(ev["cycle"].max()) + 1 if ev.size else 0
        for p in range(end):
            at = np.flatnonzero(ev["cycle"] == p)
            for j in at:
                if ev["kind"][j] == kinds["inject"]:
                    r = int(ev["router"][j])
                    if ev["port"][j] == L_:
                        model.send(r % a.mesh_w, r // a.mesh_w, pk[j])
                    else:
                        model.host_send(pk[j])
            for r in range(a.n_cores):
                ready[(r % a.mesh_w, r // a.mesh_w)] = bool(level[r] < a.core_fifo_depth)
            offered = {xy: router.outputs() for xy, router in model.routers.items()}
            model.step()
            want = set()
            for (x, y), router in model.routers.items():
                for o in range(5):
                    if router.transfers[o]:
                        want.add((y * a.mesh_w + x, o, offered[(x, y)][o]))
            got = {(int(ev["router"][j]), int(ev["port"][j]), pk[j]) for j in at
                   if ev["kind"][j] == kinds["transfer"]}
            assert got == want, f"cycle {p}: engine {sorted(got)} != model {sorted(want)}"
            compared += len(got)
            assert not model.host_queue and not any(model.core_queues.values()), \
                f"cycle {p}: the model's input FIFO had no room for a packet the engine pushed"
            for j in at:
                r = int(ev["router"][j])
                if ev["kind"][j] == kinds["transfer"] and ev["port"][j] == L_:
                    level[r] += 1
                elif ev["kind"][j] == kinds["consume"]:
                    level[r] -= 1
        assert model.idle
    assert any(router.bad_route for router in model.routers.values()) == \
        bool(result.flags["bad_route"])
    return compared


@pytest.mark.parametrize("mesh, depth, cdepth", [((2, 2), 1, 1), ((3, 2), 2, 1), ((3, 3), 1, 2)])
def test_routers_match_mesh_model_on_congestion(mesh, depth, cdepth):
    arch = nt.Arch(mesh_w=mesh[0], mesh_h=mesh[1], fifo_depth=depth, core_fifo_depth=cdepth)
    case = T.edge_network("congestion", arch)
    image = nt.compile(case.network, arch)
    r, _, _ = run_cycle(image, channels_of(image, case.inputs, 2)[:2], trace=True)
    assert check_against_mesh_model(image, r) > 100


def random_traffic_image(arch, seed, n_src=12, corrupt=False):
    """Random traffic: on every core ``n_src`` always-firing neurons, each with 0..4 random
    destinations (cores, and the host), and on every core random axons of 0..6 synapses, so the
    synapse units throttle the L outputs at random. ``corrupt`` adds packets addressed off the
    mesh (x = mesh_w or y = mesh_h), which routers discard."""
    rng = np.random.default_rng(seed)
    neurons, axons = [], {}
    # An address the packet's x (or y) field can hold but the mesh does not have.
    off_mesh = (0, arch.mesh_w, 0, 0) if arch.mesh_w < 1 << arch.x_bits else (0, 0, arch.mesh_h, 0)
    assert not corrupt or arch.mesh_w < 1 << arch.x_bits or arch.mesh_h < 1 << arch.y_bits
    n_ax = {(x, y): 0 for y in range(arch.mesh_h) for x in range(arch.mesh_w)}
    out = 0
    for y in range(arch.mesh_h):
        for x in range(arch.mesh_w):
            for _ in range(n_src):
                fan = []
                for _ in range(int(rng.integers(0, 5))):
                    if rng.random() < 0.15:
                        fan.append((1, 0, 0, out))
                        out += 1
                    elif corrupt and rng.random() < 0.1:
                        fan.append(off_mesh)
                    else:
                        d = (int(rng.integers(arch.mesh_w)), int(rng.integers(arch.mesh_h)))
                        fan.append((0, *d, n_ax[d]))
                        n_ax[d] += 1
                neurons.append(dict(pop=f"p{x}{y}", core=(x, y), du=4095, vth=0, bias_mant=1,
                                    fanout=fan))
    for d, n in n_ax.items():
        axons[d] = [[(int(rng.integers(n_src)), 1, 1, 0)] * int(rng.integers(0, 7))
                    for _ in range(n)]
    return T.hand_image(arch, neurons, axons=axons)


@pytest.mark.parametrize("seed, mesh, depth, cdepth", [
    (1, (3, 2), 1, 1), (2, (2, 2), 2, 1), (3, (2, 3), 1, 3), (4, (4, 1), 2, 2),
    (5, (1, 3), 1, 1)])
def test_routers_match_mesh_model_on_random_traffic(seed, mesh, depth, cdepth):
    arch = nt.Arch(mesh_w=mesh[0], mesh_h=mesh[1], fifo_depth=depth, core_fifo_depth=cdepth,
                   profiles_per_core=16)
    image = random_traffic_image(arch, seed, corrupt=seed % 2 == 1)
    r, _, _ = run_cycle(image, np.zeros((3, 0), bool), trace=True)
    assert check_against_mesh_model(image, r) > 50
    assert r.flags["bad_route"] == (seed % 2 == 1)


# -- (5) backends --------------------------------------------------------------------------------

@pytest.mark.skipif(not numba_available(), reason="numba is not installed")
@pytest.mark.parametrize("seed", [0, 1])
def test_python_backend_equals_numba(seed):
    arch = nt.Arch(mesh_w=3, mesh_h=2, fifo_depth=1 + seed, core_fifo_depth=1, profiles_per_core=16)
    image = random_traffic_image(arch, 10 + seed, corrupt=True)
    runs = [run_cycle(image, np.zeros((3, 0), bool), backend=b, trace=True)
            for b in ("numba", "python")]
    (rn, sn, en), (rp, sp, ep) = runs
    assert sn.equals(sp)
    for name in rn.counters:
        np.testing.assert_array_equal(rn.counters[name], rp.counters[name], err_msg=name)
    for a, b in zip(rn.trace, rp.trace):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(en.router_last, ep.router_last)


def test_skipping_the_synapse_tail_is_exact():
    # The engine finishes the synapse units' last packets in one go once nothing else can
    # happen (module doc); simulating those cycles one by one must give the same everything.
    arch = nt.Arch(mesh_w=3, mesh_h=2, neurons_per_core=16, max_delay=4, core_fifo_depth=1)
    net = T.random_network(5, sizes=(20, 14), outputs="all", weight_exp_max=0)
    image = nt.compile(net, arch)
    ch = channels_of(image, T.random_inputs(net, 20, 0.4, 5), 20)
    fast, fast_state, _ = run_cycle(image, ch, [("p1", "v")])
    engine = CycleEngine(image, backend=BACKEND)
    engine._skip_tail = False
    slow_state = ChipState.from_image(image)
    slow = engine.run(slow_state, ch, [("p1", "v")])
    assert_functional_equal(slow, slow_state, fast, fast_state)
    for name in COUNTERS_CYCLE:
        np.testing.assert_array_equal(slow.counters[name], fast.counters[name], err_msg=name)
    for k in (0, 1, 7):                                     # and the hand-counted cases
        img = one_hop_image(nt.Arch(mesh_w=2, mesh_h=1), k)
        engine = CycleEngine(img, backend=BACKEND)
        engine._skip_tail = False
        r = engine.run(ChipState.from_image(img), np.zeros((1, 0), bool))
        assert r.counters["spike_cycles"].tolist() == [(7 if k == 0 else 6 + k + ACC) + BARRIER]


# -- errors --------------------------------------------------------------------------------------

def test_errors_are_reported_and_change_nothing():
    arch = nt.Arch(mesh_w=2, mesh_h=2, host_in_depth=2)
    image = T.hand_image(arch, [dict(pop="p", core=(0, 0))], axons={(0, 0): [[]]},
                         inputs={"in": [[(0, 0, 0)], [(0, 0, 0)], [(0, 0, 0)]]})
    with pytest.raises(NeurotileTypeError, match="ChipImage"):
        CycleEngine("image")
    with pytest.raises(EmulatorError, match="backend must be one of"):
        CycleEngine(image, backend="cuda")
    engine = CycleEngine(image, backend=BACKEND)
    state = ChipState.from_image(image)
    with pytest.raises(EmulatorError, match=r"shape \[steps, 3\]"):
        engine.run(state, np.zeros((2, 2), bool))
    with pytest.raises(EmulatorError, match="bool array"):
        engine.run(state, np.zeros((2, 3), np.int64))
    with pytest.raises(EmulatorError, match="population 'q'"):
        engine.run(state, np.zeros((2, 3), bool), [("q", "v")])
    with pytest.raises(EmulatorError, match="'u' or 'v'"):
        engine.run(state, np.zeros((2, 3), bool), [("p", "w")])
    # Step 1 would inject 3 packets into a host port that takes 2: nothing runs.
    ch = np.array([[True, False, False], [True, True, True]])
    with pytest.raises(EmulatorError, match="step 1 injects 3 input packets.*host_in_depth"):
        engine.run(state, ch)
    assert state.equals(ChipState.from_image(image))


def big_step_image(arch, k, n_axons):
    """1x1: neuron 0 fires every step and sends ``n_axons`` packets to its own core, each with
    ``k`` weight-0 synapses onto neuron 1 (which never fires): ``n_axons * k`` synops a step."""
    return T.hand_image(
        arch,
        [dict(pop="src", core=(0, 0), du=4095, vth=0, bias_mant=1,
              fanout=[(0, 0, 0, a) for a in range(n_axons)]),
         dict(pop="dst", core=(0, 0), du=4095, vth=(1 << 17) - 1)],
        axons={(0, 0): [[(1, 0, 1, 0)] * k for _ in range(n_axons)]})


def test_counters_wrap_at_counter_bits_in_every_engine():
    # 3 packets of 25000 synapses: 75000 synops a step, and the synapse unit needs 75003 SPIKE
    # cycles (2 per packet and 1 per synapse, plus the pipeline and the barrier). With 16-bit
    # counters every engine reports each count modulo 2^16; with 32 bits the exact counts.
    base = nt.Arch(mesh_w=1, mesh_h=1, axons_per_core=4, synapses_per_core=75000,
                   fanout_per_core=4, max_delay=2)
    wide = big_step_image(base, 25000, 3)
    narrow = big_step_image(base.replace(counter_bits=16), 25000, 3)
    channels = np.zeros((2, 0), bool)
    exact, _, _ = run_cycle(wide, channels)
    assert exact.counters["synops"].tolist() == [[75000]] * 2
    assert exact.counters["spike_cycles"].min() > 1 << 16
    # Each engine says that a count wrapped (the first: counter, step, true and reported count).
    wrapped = r"counted \d+, which the chip's 16-bit register reports as \d+"
    with pytest.warns(nt.NeurotileWarning, match=wrapped):
        runs = {"cycle": run_cycle(narrow, channels)[0]}
    with pytest.warns(nt.NeurotileWarning, match=wrapped):
        runs["reference"] = ReferenceEngine(narrow).run(ChipState.from_image(narrow), channels)
    if FunctionalEngine is not None:
        with pytest.warns(nt.NeurotileWarning, match=r"counter 'synops' of step 0 .*counted "
                          r"75000, which the chip's 16-bit register reports as 9464"):
            runs["functional"] = FunctionalEngine(narrow).run(ChipState.from_image(narrow),
                                                              channels)
    assert runs["cycle"].counters["synops"].tolist() == [[75000 - 65536]] * 2
    for mode, run in runs.items():
        for name, value in run.counters.items():
            np.testing.assert_array_equal(value, exact.counters[name] & 0xFFFF,
                                          err_msg=f"{mode}: {name}")
    # The step timeout still counts every SPIKE-phase cycle (section 8): 2^16 + 1 is exceeded.
    timed = big_step_image(base.replace(counter_bits=16, step_timeout=(1 << 16) + 1), 25000, 3)
    with pytest.warns(nt.NeurotileWarning, match=wrapped):
        _, state, _ = run_cycle(timed, channels)
    assert state.flag_step["step_timeout"] == 0
