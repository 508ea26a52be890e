"""Tests for ``emulator/reference.py``, the plain-Python engine written straight from the spec.

Three kinds of expected values: (a) impulse responses and routing counts derived by hand in the
comments (docs/architecture.md sections 4 to 8) on hand-built images; (b) the compiler-independent
:func:`~neurotile.emulator.testing.network_model`, which runs the ``Network`` itself; (c)
counters recomputed from the image's tables and the spikes.
"""

import numpy as np
import pytest

import neurotile as nt
from neurotile.compiler.errors import EmulatorError, NeurotileError
from neurotile.emulator import testing as T
from neurotile.emulator.reference import ReferenceEngine
from neurotile.emulator.state import ChipState

MODES = [(d, r) for d in ("loihi", "shift") for r in ("zero", "subtract")]
N_, E_, S_, W_, L_ = range(5)       # router ports


def channels_of(image, inputs, steps):
    """The [steps, n_channels] channel array of ``inputs`` (groups in image.inputs order)."""
    parts = [np.asarray(inputs[name], bool) for name in image.inputs]
    return np.concatenate(parts, axis=1) if parts else np.zeros((steps, 0), bool)


def run(image, inputs, steps=None, probes=(), state=None):
    if steps is None:
        steps = next(iter(inputs.values())).shape[0]
    state = state or ChipState.from_image(image)
    result = ReferenceEngine(image).run(state, channels_of(image, inputs, steps), list(probes))
    return result, state


def impulse(arch, *, w=100, wexp=1, delay=3, at=0, steps=8, **lif):
    """One neuron of population "p" at core (1, 1), fed by channel 0 of "in" (axon 0).

    The input spike of step ``at`` adds ``w << wexp`` to the accumulator slot of step
    ``at + delay``. The neuron sends its spikes to the host (output 0).
    """
    image = T.hand_image(arch, [dict(pop="p", core=(1, 1), fanout=[(1, 0, 0, 0)], **lif)],
                         axons={(1, 1): [[(0, w, delay, wexp)]]}, inputs={"in": [[(1, 1, 0)]]})
    image.validate()
    spikes = np.zeros((steps, 1), bool)
    spikes[at, 0] = True
    result, _ = run(image, {"in": spikes}, probes=[("p", "u"), ("p", "v")])
    return (result.probes["p.u"][:, 0].tolist(), result.probes["p.v"][:, 0].tolist(),
            result.spikes["p"][:, 0].tolist(), result)


LOIHI = nt.Arch()
SHIFT = nt.Arch(decay_mode="shift")


# -- (a) hand-derived impulse responses ------------------------------------------------------------

def test_impulse_with_u_cleared_and_v_held():
    # w << wexp = 100 << 1 = 200 lands in the slot of step 0 + 3; u' = 200 << 6 = 12800 in step 3
    # only (du = 4095 clears u); dv = 0 keeps v = 12800 from then on (vth 1000 -> 64000).
    u, v, s, _ = impulse(LOIHI, du=4095, dv=0, vth=1000)
    assert u == [0, 0, 0, 12800, 0, 0, 0, 0]
    assert v == [0, 0, 0, 12800, 12800, 12800, 12800, 12800]
    assert not any(s)


def test_impulse_with_u_decay_du_2047():
    # du = 2047: u * (4096 - 2048) >> 12 halves u: 12800, 6400, 3200, 1600, 800;
    # v (dv = 0) sums them: 12800, 19200, 22400, 24000, 24800.
    u, v, _, _ = impulse(LOIHI, du=2047, dv=0, vth=1000)
    assert u[3:] == [12800, 6400, 3200, 1600, 800]
    assert v[3:] == [12800, 19200, 22400, 24000, 24800]


def test_impulse_with_v_decay_dv_2048():
    # du = 4095 clears u after step 3; dv = 2048 halves v: 12800, 6400, 3200, 1600, 800.
    u, v, _, _ = impulse(LOIHI, du=4095, dv=2048, vth=1000)
    assert v[3:] == [12800, 6400, 3200, 1600, 800]


def test_impulse_with_negative_weight_decays_toward_zero_in_loihi_mode():
    # w = -1, wexp 0: u' = -64 in step 3; du = 2047 halves in sign-magnitude: -32, -16, -8, -4,
    # -2, -1, then (1 * 2048) >> 12 = 0 (a floor would stay at -1 forever).
    u, _, _, _ = impulse(LOIHI, w=-1, wexp=0, steps=12, du=2047, dv=4095, vth=1000)
    assert u[3:] == [-64, -32, -16, -8, -4, -2, -1, 0, 0]


def test_impulse_in_shift_mode_keeps_positive_one_and_clears_negative_one():
    # shift k = 1: x - (x >> 1). Positive: 64, 32, 16, 8, 4, 2, 1, then 1 - 0 = 1 forever.
    u, _, _, _ = impulse(SHIFT, w=1, wexp=0, steps=12, du=1, dv=0, vth=1000)
    assert u[3:] == [64, 32, 16, 8, 4, 2, 1, 1, 1]
    # Negative: -64 ... -1, then -1 - (-1) = 0.
    u, _, _, _ = impulse(SHIFT, w=-1, wexp=0, steps=12, du=1, dv=0, vth=1000)
    assert u[3:] == [-64, -32, -16, -8, -4, -2, -1, 0, 0]


def test_impulse_in_shift_mode_with_v_held_by_k_23():
    # du = 1 halves u: 12800, 6400, 3200; dv = 23 keeps positive v (v >> 23 = 0): 12800, 19200, ...
    u, v, _, _ = impulse(SHIFT, du=1, dv=23, vth=1000, steps=7)
    assert u[3:] == [12800, 6400, 3200, 1600]
    assert v[3:] == [12800, 19200, 22400, 24000]


@pytest.mark.parametrize("arch", [LOIHI, SHIFT], ids=["loihi", "shift"])
def test_reset_zero_and_subtract(arch):
    clear = T.full_decay(arch.decay_mode)
    keep = T.no_decay(arch.decay_mode)
    # vth = 150 -> 9600 < v' = 12800: spike in step 3; "zero" leaves 0, "subtract" 12800 - 9600.
    _, v, s, r = impulse(arch, du=clear, dv=keep, vth=150)
    assert s == [False] * 3 + [True] + [False] * 4
    assert v[3] == 0
    _, v, s, _ = impulse(arch.replace(reset_mode="subtract"), du=clear, dv=keep, vth=150)
    assert v[3:5] == [3200, 3200]
    # The spike of step 3 is one host-bound packet: from (1, 1) W to (0, 1), N to (0, 0), out
    # through the host exit (W of router 0). Two hops between routers, one host_out.
    assert r.counters["spikes"][3].tolist() == [0, 0, 0, 1]
    assert r.counters["packets_out"][3].tolist() == [0, 0, 0, 1]
    assert r.counters["host_out"].tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    assert r.counters["hops"][3] == 2
    assert r.counters["link"][3].tolist() == [[0, 0, 0, 1, 0], [0] * 5, [1, 0, 0, 0, 0],
                                              [0, 0, 0, 1, 0]]


def test_threshold_is_strictly_greater():
    # vth = 200 -> 12800 == v': no spike, v keeps 12800.
    _, v, s, _ = impulse(LOIHI, du=4095, dv=0, vth=200)
    assert not any(s) and v[3] == 12800
    _, _, s, _ = impulse(LOIHI, du=4095, dv=0, vth=199)
    assert s[3]


@pytest.mark.parametrize("delay", [1, 2, 15, 16])
def test_spike_with_delay_d_is_integrated_in_step_t_plus_d(delay):
    # Input spike in step 5; delay 16 = max_delay uses the slot step 5 itself just cleared.
    u, _, _, _ = impulse(LOIHI, delay=delay, at=5, steps=24, du=4095, dv=0, vth=1000)
    assert [t for t, x in enumerate(u) if x] == [5 + delay]


def test_input_packet_route_and_counters():
    # Host -> core (1, 1) on the 2x2 mesh: enters router 0 through W, XY: E to router 1, S to
    # router 3, L into core 3. link[0][E] = link[1][S] = link[3][L] = 1, hops 2, host_in 1.
    _, _, _, r = impulse(LOIHI, du=4095, dv=0, vth=1000)
    assert r.counters["host_in"].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    assert r.counters["link"][0].tolist() == [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0] * 5,
                                              [0, 0, 0, 0, 1]]
    assert r.counters["hops"][0] == 2
    assert r.counters["packets_in"][0].tolist() == [0, 0, 0, 1]
    assert r.counters["synops"][0].tolist() == [0, 0, 0, 1]
    assert r.counters["updates"].tolist() == [[0, 0, 0, 1]] * 8
    assert r.counters["link"][1:].sum() == 0


def test_local_packet_uses_only_the_l_port():
    # A neuron at (0, 0) fires every step (bias 1 > vth 0) into axon 0 of its own core: one L
    # transfer per step, no hops; its target (neuron 1) receives 5 << 0 one step later.
    arch = nt.Arch()
    image = T.hand_image(arch, [
        dict(pop="a", core=(0, 0), du=4095, dv=4095, vth=0, bias_mant=1, fanout=[(0, 0, 0, 0)]),
        dict(pop="b", core=(0, 0), du=4095, dv=0, vth=1000)],
        axons={(0, 0): [[(1, 5, 1, 0)]]})
    image.validate()
    r, _ = run(image, {}, steps=3, probes=[("b", "u")])
    assert r.spikes["a"][:, 0].tolist() == [True] * 3
    assert r.probes["b.u"][:, 0].tolist() == [0, 320, 320]          # 5 << 6, from step 1 on
    assert r.counters["link"][:, 0].tolist() == [[0, 0, 0, 0, 1]] * 3
    assert r.counters["hops"].tolist() == [0, 0, 0]
    assert r.counters["packets_out"][:, 0].tolist() == [1, 1, 1]


# -- flags ----------------------------------------------------------------------------------------

def test_bad_axon_flags_the_step_and_is_an_empty_list():
    # The input packet names axon 1 of core (0, 0), which has n_axons = 1: bad_axon in step 2,
    # the packet is consumed (packets_in 1) with no synapse (synops 0).
    arch = nt.Arch()
    image = T.hand_image(arch, [dict(pop="p", core=(0, 0), du=4095)],
                         axons={(0, 0): [[(0, 100, 1, 0)]]}, inputs={"in": [[(0, 0, 1)]]})
    spikes = np.zeros((4, 1), bool)
    spikes[2, 0] = True
    r, state = run(image, {"in": spikes}, probes=[("p", "u")])
    assert r.flags["bad_axon"] and r.flag_step["bad_axon"] == 2
    assert r.counters["packets_in"][2, 0] == 1 and r.total("synops") == 0
    assert r.probes["p.u"].sum() == 0 and state.acc.sum() == 0
    # Sticky: a further run keeps the flag and the step it was first raised in.
    r2, _ = run(image, {"in": spikes}, state=state)
    assert r2.flags["bad_axon"] and r2.flag_step["bad_axon"] == 2


def test_bad_route_discards_a_packet_that_leaves_the_mesh():
    # 3x3 mesh, x field of 2 bits: a packet for core (3, 0) goes E from router 0 to 1 to 2, then
    # would leave the mesh: discarded, bad_route in step 1; the two hops made are counted.
    arch = nt.Arch(mesh_w=3, mesh_h=3)
    image = T.hand_image(arch, [dict(pop="p", core=(0, 0))], inputs={"in": [[(3, 0, 0)]]})
    spikes = np.array([[False], [True], [False]])
    r, _ = run(image, {"in": spikes})
    assert r.flags["bad_route"] and r.flag_step["bad_route"] == 1
    assert r.counters["hops"].tolist() == [0, 2, 0]
    assert r.counters["link"][1, :3, E_].tolist() == [1, 1, 0]
    assert r.total("packets_in") == 0 and not r.flags["bad_axon"]


def test_acc_sat_flag_on_an_input_beyond_18_bits():
    # Nine synapses of 127 << 7 = 16256 sum to 146304 > 2^17 - 1 = 131071 -> i = 131071,
    # u' = 131071 << 6 = 8388544 (du clears u); acc_sat raised in step 2 + delay 1 = 3.
    arch = nt.Arch()
    image = T.hand_image(arch, [dict(pop="p", core=(0, 0), du=4095, vth=131071)],
                         axons={(0, 0): [[(0, 127, 1, 7)] * 9]}, inputs={"in": [[(0, 0, 0)]]})
    image.validate()
    spikes = np.zeros((5, 1), bool)
    spikes[2, 0] = True
    r, _ = run(image, {"in": spikes}, probes=[("p", "u")])
    assert r.probes["p.u"][:, 0].tolist() == [0, 0, 0, 8388544, 0]
    assert r.flags["acc_sat"] and r.flag_step["acc_sat"] == 3
    assert r.counters["synops"][2, 0] == 9


# -- runs and input checks ------------------------------------------------------------------------

def test_two_runs_continue_like_one():
    net = T.random_network(3)
    image = nt.compile(net, nt.Arch())
    inputs = T.random_inputs(net, 20, 0.3, 3)
    probes = [("p0", "v"), ("p1", "u")]
    whole, s_whole = run(image, inputs, probes=probes)
    first, s_split = run(image, {k: x[:7] for k, x in inputs.items()}, probes=probes)
    second, _ = run(image, {k: x[7:] for k, x in inputs.items()}, probes=probes, state=s_split)
    assert (first.start_step, second.start_step, s_split.t) == (0, 7, 20)
    assert s_whole.equals(s_split)
    for name in whole.spikes:
        assert np.array_equal(whole.spikes[name], np.concatenate([first.spikes[name],
                                                                  second.spikes[name]]))
    for key in whole.probes:
        assert np.array_equal(whole.probes[key], np.concatenate([first.probes[key],
                                                                 second.probes[key]]))
    assert whole.mode == "reference"


def test_bad_run_arguments_raise_emulator_errors():
    image = T.hand_image(nt.Arch(), [dict(pop="p", core=(0, 0))], axons={(0, 0): [[]]},
                         inputs={"in": [[(0, 0, 0)], [(0, 0, 0)]]})
    eng = ReferenceEngine(image)
    state = ChipState.from_image(image)
    with pytest.raises(EmulatorError, match="channels must be a bool array, not an array of int64"):
        eng.run(state, np.zeros((3, 2), np.int64), [])
    with pytest.raises(EmulatorError, match=r"channels must have shape \[steps, 2\]"):
        eng.run(state, np.zeros((3, 3), bool), [])
    with pytest.raises(EmulatorError, match="probe names population 'q'"):
        eng.run(state, np.zeros((3, 2), bool), [("q", "v")])
    with pytest.raises(EmulatorError, match="probe variable must be 'u' or 'v', not 'w'"):
        eng.run(state, np.zeros((3, 2), bool), [("p", "w")])
    with pytest.raises(NeurotileError, match="image must be an nt.ChipImage"):
        ReferenceEngine("image")
    small = T.hand_image(nt.Arch(host_in_depth=1), [dict(pop="p", core=(0, 0))],
                         axons={(0, 0): [[], []]}, inputs={"in": [[(0, 0, 0)], [(0, 0, 1)]]})
    with pytest.raises(EmulatorError, match=r"step 1 injects 2 input packets, more than the host "
                                            r"port's host_in_depth \(1\)"):
        ReferenceEngine(small).run(ChipState.from_image(small),
                                   np.array([[True, False], [True, True]]), [])
    assert state.t == 0


# -- (b) compiled random networks against the network model ---------------------------------------

def all_probes(net):
    return [(p.name, var) for p in net.populations for var in ("u", "v")]


def assert_same_run(result, model):
    spikes, probes, acc_sat_step = model
    for name in spikes:
        assert np.array_equal(result.spikes[name], spikes[name]), name
    for key in probes:
        assert np.array_equal(result.probes[key], probes[key]), key
    assert result.flag_step["acc_sat"] == acc_sat_step


@pytest.mark.parametrize("decay,reset", MODES)
@pytest.mark.parametrize("seed,profiles", [(0, None), (1, 4), (2, None)])
def test_compiled_random_network_matches_network_model(decay, reset, seed, profiles):
    # profiles=None: one parameter set per neuron, so the network spreads over 3 cores.
    arch = nt.Arch(decay_mode=decay, reset_mode=reset)
    net = T.random_network(seed, decay_mode=decay, max_delay=6, profiles=profiles)
    inputs = T.random_inputs(net, 30, 0.25, seed)
    result, _ = run(nt.compile(net, arch), inputs, probes=all_probes(net))
    assert_same_run(result, T.network_model(net, arch, inputs, probes=all_probes(net)))
    # The workload is not trivial: both populations fire, and not always.
    for name, s in result.spikes.items():
        assert 0 < s.mean() < 1, name


@pytest.mark.parametrize("decay,reset", MODES)
@pytest.mark.parametrize("seed", [1, 3])
def test_compiled_strong_random_network_saturates_and_matches(decay, reset, seed):
    # Mostly positive 8-bit weights with weight_exp up to 7 and delays of 1..2 pile many
    # 127 << 7 = 16256 contributions into one slot: the 18-bit input saturates (acc_sat) and u
    # wraps for these seeds; the engine must still agree with the network model.
    arch = nt.Arch(decay_mode=decay, reset_mode=reset, mesh_w=3, mesh_h=2)
    net = T.random_network(seed, n_inputs=24, decay_mode=decay, weight_range=(-40, 127),
                           weight_exp_max=7, max_delay=2, p=0.7, profiles=None)
    inputs = T.random_inputs(net, 20, 0.7, seed)
    result, _ = run(nt.compile(net, arch), inputs, probes=all_probes(net))
    assert_same_run(result, T.network_model(net, arch, inputs, probes=all_probes(net)))
    assert result.flags["acc_sat"]


@pytest.mark.parametrize("decay", ["loihi", "shift"])
def test_compiled_random_network_on_the_one_core_ice40_profile(decay):
    # 1x1 mesh, 4 profiles per core, max_delay 4, 20-bit accumulators: two parameter sets per
    # population fit one core; every packet is local (L port only, no hops).
    arch = nt.Arch.profile("ice40up5k", decay_mode=decay)
    net = T.random_network(4, decay_mode=decay, profiles=2)
    inputs = T.random_inputs(net, 30, 0.25, 4)
    result, _ = run(nt.compile(net, arch), inputs, probes=all_probes(net))
    assert_same_run(result, T.network_model(net, arch, inputs, probes=all_probes(net)))
    assert result.total("hops") == 0 and result.spike_count() > 0
    assert result.total("packets_in") == result.counters["link"][:, 0, L_].sum()


def test_compiled_network_with_empty_inputs_and_no_synapses():
    # No input spikes at all and p = 0 (no synapses): only the biases act; still matches.
    arch = nt.Arch()
    net = T.random_network(7, p=0.0)
    inputs = T.random_inputs(net, 12, 0.0, 7)
    result, _ = run(nt.compile(net, arch), inputs, probes=all_probes(net))
    assert_same_run(result, T.network_model(net, arch, inputs, probes=all_probes(net)))
    assert result.total("synops") == result.total("host_in") == 0


def test_delay_semantics_on_a_compiled_network():
    # Neuron j of "d" gets input 0 with delay j + 1 (1 .. max_delay = 8); u is cleared each step
    # (du = 4095), so u_j is non-zero exactly in step t + j + 1 for the input spike of step t.
    arch = nt.Arch(max_delay=8)
    net = nt.Network()
    x = net.input(1, name="in")
    d = net.population(8, nt.LIF(du=4095, dv=0, vth=10000), name="d")
    net.connect(x, d, (np.zeros(8, int), np.arange(8), np.full(8, 3)), delay=np.arange(1, 9))
    spikes = np.zeros((20, 1), bool)
    spikes[[2, 11], 0] = True
    result, _ = run(nt.compile(net, arch), {"in": spikes}, probes=[("d", "u")])
    u = result.probes["d.u"]
    for j in range(8):
        assert np.flatnonzero(u[:, j]).tolist() == [2 + j + 1, 11 + j + 1]
        assert u[2 + j + 1, j] == 3 << 6


def expected_counters(image, channels, spikes):
    """Packet-level counters recomputed from the image tables, the inputs and the spikes."""
    a = image.arch
    steps = channels.shape[0]
    out = {k: np.zeros((steps, a.n_cores), np.int64) for k in ("packets_out", "packets_in",
                                                               "synops", "spikes")}
    out.update({k: np.zeros(steps, np.int64) for k in ("host_in", "host_out", "hops")})
    in_packets = [list(zip(*(inp["packets"][f][b:b + c] for f in ("host", "x", "y", "index"))))
                  for inp in image.inputs.values() for b, c in zip(inp["base"], inp["count"])]

    def deliver(k, packets, sx, sy):
        for host, x, y, index in packets:
            if host:
                out["host_out"][k] += 1
                out["hops"][k] += sx + sy
            else:
                c = y * a.mesh_w + x
                out["packets_in"][k, c] += 1
                out["synops"][k, c] += image.cores[c].tables["axon"]["count"][index]
                out["hops"][k] += abs(x - sx) + abs(y - sy)

    for k in range(steps):
        for name, where in image.populations.items():
            for j in np.flatnonzero(spikes[name][k]):
                c, n = int(where["core"][j]), int(where["local"][j])
                core = image.cores[c]
                out["spikes"][k, c] += 1
                fi = core.tables["fanout_index"]
                b, cnt = fi["base"][n], fi["count"][n]
                out["packets_out"][k, c] += cnt
                fo = core.tables["fanout"]
                deliver(k, zip(*(fo[f][b:b + cnt] for f in ("host", "x", "y", "index"))),
                        core.x, core.y)
        for ch in np.flatnonzero(channels[k]):
            out["host_in"][k] += len(in_packets[ch])
            deliver(k, in_packets[ch], 0, 0)
    return out


@pytest.mark.parametrize("mesh", [(2, 2), (3, 3), (4, 1)])
def test_counters_agree_with_packets_recomputed_from_the_tables(mesh):
    arch = nt.Arch(mesh_w=mesh[0], mesh_h=mesh[1])
    net = T.random_network(11, outputs="all", profiles=None)      # spread over 3 cores
    inputs = T.random_inputs(net, 25, 0.3, 11)
    image = nt.compile(net, arch)
    assert sum(core.n_neurons > 0 for core in image.cores) == 3
    result, _ = run(image, inputs)
    chans = channels_of(image, inputs, 25)
    want = expected_counters(image, chans, result.spikes)
    for key, value in want.items():
        assert np.array_equal(result.counters[key], value), key
    c = result.counters
    # Every core-bound packet ends with one L transfer into its core; hops are the N/E/S/W
    # transfers minus the host exit (W of router 0), which counts once per host-bound packet.
    assert np.array_equal(c["link"][:, :, L_], c["packets_in"])
    assert np.array_equal(c["link"][:, :, :4].sum(axis=(1, 2)) - c["host_out"], c["hops"])
    assert np.array_equal(c["updates"], np.tile([core.n_neurons for core in image.cores],
                                                (25, 1)))
    # Outputs reach the host: one host_out per spike of an output neuron.
    assert c["host_out"].tolist() == sum(s.sum(axis=1) for s in result.spikes.values()).tolist()
    assert result.total("synops") > 0 and result.total("hops") > 0


def test_results_do_not_depend_on_placement():
    # One network on 2x2, 3x3 and 4x1 meshes (and both placement methods): different cores,
    # routes and hop counts, the same spikes, probes and synaptic operations.
    net = T.random_network(5, sizes=(20, 12, 10), outputs="all", profiles=None)
    inputs = T.random_inputs(net, 25, 0.3, 5)
    runs = []
    for mesh in [(2, 2), (3, 3), (4, 1)]:
        for placement in ("optimized", "naive"):
            arch = nt.Arch(mesh_w=mesh[0], mesh_h=mesh[1])
            runs.append(run(nt.compile(net, arch, placement=placement), inputs,
                            probes=all_probes(net))[0])
    first = runs[0]
    assert first.spike_count() > 0
    for r in runs[1:]:
        for name in first.spikes:
            assert np.array_equal(r.spikes[name], first.spikes[name])
        for key in first.probes:
            assert np.array_equal(r.probes[key], first.probes[key])
        assert r.total("synops") == first.total("synops")
        assert r.total("host_out") == first.total("host_out")


# -- (b) edge networks, compiled ----------------------------------------------------------------

def run_edge(kind, arch):
    case = T.edge_network(kind, arch)
    net = case.network
    result, _ = run(nt.compile(net, arch), case.inputs, probes=all_probes(net))
    assert_same_run(result, T.network_model(net, arch, case.inputs, probes=all_probes(net)))
    return result


@pytest.mark.parametrize("decay", ["loihi", "shift"])
def test_edge_u_wrap(decay):
    r = run_edge("u_wrap", nt.Arch(decay_mode=decay))
    u = r.probes["edge.u"]
    # Step 1: u = input << 6: (2^17 - 64) << 6 = 8384512, -2^17 << 6 = -2^23, (2^17 - 1) << 6.
    assert u[1].tolist() == [8384512, -8388608, 8388544]
    if decay == "loihi":
        # du = 0: 8384512 -> 2047 * 4095 = 8382465, + 8384512 = 16766977 - 2^24 = -10239;
        # -2^23 -> -8386560, - 2^23 = -16775168 + 2^24 = 2048;
        # 8388544 -> (8388544 * 4095) >> 12 = 8386496, + 8388544 - 2^24 = -2176.
        assert u[2].tolist() == [-10239, 2048, -2176]
    else:
        # k = 23 keeps positive u, moves -2^23 up by 1: 2 * 8384512 - 2^24 = -8192;
        # -2^23 + 1 - 2^23 + 2^24 = 1; 2 * 8388544 - 2^24 = -128.
        assert u[2].tolist() == [-8192, 1, -128]
    assert not r.flags["acc_sat"]


@pytest.mark.parametrize("decay,reset", MODES)
def test_edge_v_saturation(decay, reset):
    r = run_edge("v_sat", nt.Arch(decay_mode=decay, reset_mode=reset))
    v = r.probes["edge.v"]
    # Neuron 1: bias -4096 << 7 = -524288 per step. loihi (dv = 0 keeps v): step 15 reaches
    # 16 * -524288 = -2^23, clamped to -(2^23 - 1). shift (k = 23 adds 1 to a negative v each
    # step): step 15 is -2^23 + 15, step 16 clamps. Then v stays clamped; -2^23 is never seen.
    assert v[15, 1] == (-8388607 if decay == "loihi" else -8388593)
    assert v[16:, 1].tolist() == [-8388607] * 8 and v.min() == -8388607
    # Neuron 0: +524160 per step, 16 * 524160 = 8386560 <= 8388544, the 17th step clamps to
    # 2^23 - 1 and fires: reset to 0, or 8388607 - 8388544 = 63 after subtraction.
    assert r.spikes["edge"][:, 0].tolist().index(True) == 16
    assert v[16, 0] == (0 if reset == "zero" else 63)


@pytest.mark.parametrize("decay", ["loihi", "shift"])
def test_edge_acc_saturation(decay):
    r = run_edge("acc_sat", nt.Arch(decay_mode=decay, acc_bits=20))
    # Inputs of steps 0 and 3, delay 1: 2^17 + 2^16 and -(2^17 + 2^16) saturate to 2^17 - 1 and
    # -2^17 in step 1 (acc_sat raised then); 2^17 - 1 and -2^17 are exact.
    assert r.probes["edge.u"][1].tolist() == [8388544, -8388608, 8388544, -8388608]
    assert r.flags["acc_sat"] and r.flag_step["acc_sat"] == 1


def test_edge_acc_saturation_needs_a_wide_accumulator():
    with pytest.raises(NeurotileError, match="needs acc_bits > input_bits \\(18\\).*acc_bits=18"):
        T.edge_network("acc_sat", nt.Arch(acc_bits=18))


@pytest.mark.parametrize("mesh", [(2, 2), (3, 3)])
def test_edge_congestion(mesh):
    arch = nt.Arch(mesh_w=mesh[0], mesh_h=mesh[1])
    case = T.edge_network("congestion", arch)
    image = nt.compile(case.network, arch)
    r, _ = run(image, case.inputs, probes=[("dst", "v")])
    n_src = case.network.groups["src"].n
    dst_core = int(image.populations["dst"]["core"][0])
    # Every src neuron fires every step (bias 1 > vth 0). The dst core receives one packet per
    # source (each (source neuron, destination core) pair has its own axon): n_src neuron packets
    # plus 64 input packets per step, each expanding to the 8 dst synapses.
    assert r.spikes["src"].all()
    assert r.counters["packets_in"][:, dst_core].tolist() == [64 + n_src] * case.steps
    assert r.counters["synops"][:, dst_core].tolist() == [8 * (64 + n_src)] * case.steps
    model = T.network_model(case.network, arch, case.inputs, probes=[("dst", "v")])
    assert_same_run(r, model)
    assert r.spikes["dst"][1:].all()


def test_edge_network_rejects_bad_requests():
    with pytest.raises(NeurotileError, match="edge kind must be one of 'u_wrap', 'v_sat', "
                                             "'acc_sat', 'congestion', not 'x'"):
        T.edge_network("x", nt.Arch())
    with pytest.raises(NeurotileError, match="needs a mesh of at least 2 cores, not 1x1"):
        T.edge_network("congestion", nt.Arch(mesh_w=1, mesh_h=1))


def test_random_network_is_a_function_of_its_seed():
    a, b = T.random_network(9), T.random_network(9)
    assert [p.name for p in a.projections] == [p.name for p in b.projections]
    for pa, pb in zip(a.projections, b.projections):
        assert np.array_equal(pa.weight, pb.weight) and np.array_equal(pa.delay, pb.delay)
    assert [g.name for g in a.groups.values()] == ["in", "p0", "p1"]
    ins = T.random_inputs(a, 10, 0.5, 1)
    assert ins["in"].shape == (10, 8) and ins["in"].dtype == bool
    assert np.array_equal(ins["in"], T.random_inputs(a, 10, 0.5, 1)["in"])
