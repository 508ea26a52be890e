"""Tests of :mod:`neurotile.compiler.nir_io`: NIR graphs to chip networks and back.

Expected integers are derived by hand from the mapping formulas of the module docstring (and docs/nir.md); the
composed synapses of convolutions and pools are checked against a plain-loop reference written here.
"""

import math

import numpy as np
import pytest

import neurotile as nt

nir = pytest.importorskip("nir")

DT = 1e-3


# -- graph builders -------------------------------------------------------------------------------------------------

def lif(n, tau=10e-3, r=10.0, v_threshold=1.0, v_leak=0.0, v_reset=0.0):
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.full(n, v_leak),
                   v_threshold=np.full(n, v_threshold), v_reset=np.full(n, v_reset))


def cubalif(n, tau_syn=5e-3, tau_mem=10e-3, r=10.0, w_in=5.0, v_threshold=1.0):
    return nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem), r=np.full(n, r),
                       v_leak=np.zeros(n), v_threshold=np.full(n, v_threshold), w_in=np.full(n, w_in))


def feedforward(seed=0, n_in=12, n_h=20, n_o=5):
    """Input -> Affine -> CubaLIF -> Affine -> LIF -> Output."""
    rng = np.random.default_rng(seed)
    return nir.NIRGraph(nodes={
        "input": nir.Input(np.array([n_in])),
        "fc1": nir.Affine(rng.normal(0.1, 0.5, (n_h, n_in)), np.zeros(n_h)),
        "lif1": cubalif(n_h),
        "fc2": nir.Affine(rng.normal(0.1, 0.5, (n_o, n_h)), np.zeros(n_o)),
        "lif2": lif(n_o),
        "output": nir.Output(np.array([n_o])),
    }, edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")])


def recurrent(seed=0, n=10):
    """Input -> Linear -> LIF with a recurrent Linear LIF -> LIF (snnTorch's RLeaky)."""
    rng = np.random.default_rng(seed)
    return nir.NIRGraph(nodes={
        "in": nir.Input(np.array([4])), "fc": nir.Linear(rng.normal(0.2, 1, (n, 4))), "lif": lif(n),
        "rec": nir.Linear(rng.normal(0, 0.3, (n, n))), "out": nir.Output(np.array([n])),
    }, edges=[("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")], type_check=False)


def conv_pool(seed=0, padding=1, conv_input_shape=None, stride=1):
    """Input (1, 8, 8) -> Conv2d(2, 3x3) -> SumPool2d(2) -> IF (scalar parameters) -> Flatten -> Affine -> LI."""
    rng = np.random.default_rng(seed)
    conv = nir.Conv2d(input_shape=conv_input_shape, weight=rng.normal(0, 1, (2, 1, 3, 3)), stride=stride,
                      padding=padding, dilation=1, groups=1, bias=np.array([0.1, -0.2]))
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    return nir.NIRGraph(nodes={
        "in": nir.Input(np.array([1, 8, 8])), "conv": conv, "pool": pool,
        "if": nir.IF(r=np.array(1.0), v_threshold=np.array(2.0)),
        "flat": nir.Flatten(input_type=None, start_dim=0),
        "fc": nir.Affine(rng.normal(0, 1, (3, 32)), np.zeros(3)),
        "li": nir.LI(tau=np.full(3, 20e-3), r=np.ones(3), v_leak=np.zeros(3)),
        "out": nir.Output(np.array([3])),
    }, edges=[("in", "conv"), ("conv", "pool"), ("pool", "if"), ("if", "flat"), ("flat", "fc"), ("fc", "li"),
              ("li", "out")], type_check=False)


def single(neuron, n=1, weight=None):
    """Input(n) -> Linear -> neuron -> Output."""
    w = np.eye(n) if weight is None else np.asarray(weight, float)
    return nir.NIRGraph(nodes={"x": nir.Input(np.array([w.shape[1]])), "w": nir.Linear(w), "h": neuron,
                               "o": nir.Output(np.array([w.shape[0]]))},
                        edges=[("x", "w"), ("w", "h"), ("h", "o")], type_check=False)


def assert_same_network(a, b):
    """Equal integer networks, compared by names (synapses in a canonical order)."""
    assert [g.name for g in a.inputs] == [g.name for g in b.inputs]
    assert [g.n for g in a.inputs] == [g.n for g in b.inputs]
    assert {p.name for p in a.populations} == {p.name for p in b.populations}
    for p in a.populations:
        q = b.groups[p.name]
        assert p.n == q.n
        for k in p.params:
            assert np.array_equal(p.params[k], q.params[k]), (p.name, k)
    pa = {p.name: p for p in a.projections}
    pb = {p.name: p for p in b.projections}
    assert set(pa) == set(pb)
    for k in pa:
        x, y = pa[k], pb[k]
        assert (x.pre.name, x.post.name, x.weight_exp) == (y.pre.name, y.post.name, y.weight_exp), k
        ox = np.lexsort((x.delay, x.pre_idx, x.post_idx))
        oy = np.lexsort((y.delay, y.pre_idx, y.post_idx))
        for f in ("pre_idx", "post_idx", "weight", "delay"):
            assert np.array_equal(getattr(x, f)[ox], getattr(y, f)[oy]), (k, f)
    assert [p.name for p in a.outputs] == [p.name for p in b.outputs]


# -- mapping values, derived by hand ---------------------------------------------------------------------------------

def test_lif_tau_10ms_at_1ms_gives_dv_390_and_clears_u():
    # a = exp(-1/10) = 0.904837, 1 - a = 0.095163; dv = round(4096 * 0.095163) = round(389.79) = 390.
    # LIF has no synaptic current: a_syn = 0, du = round(4096 * 1) - 1 = 4095 clears u every step.
    net = nt.from_nir(single(lif(1, tau=10e-3)), dt=1e-3)
    p = net.groups["h"].params
    assert math.isclose(math.exp(-0.1), 0.904837, abs_tol=1e-6)
    assert int(p["dv"][0]) == 390
    assert int(p["du"][0]) == 4095


def test_cubalif_du_has_the_loihi_offset():
    # tau_syn = 5 ms, dt = 1 ms: a_syn = exp(-0.2) = 0.818731; 4096 * 0.181269 = 742.48 -> 742, minus the +1 offset
    # of Loihi's current decay: du = 741 (the chip decays u by (4096 - 742) / 4096 = 0.818848).
    # tau_mem = 20 ms: dv = round(4096 * (1 - exp(-0.05))) = round(199.76) = 200.
    net = nt.from_nir(single(cubalif(1, tau_syn=5e-3, tau_mem=20e-3)))
    p = net.groups["h"].params
    assert (int(p["du"][0]), int(p["dv"][0])) == (741, 200)


def test_euler_discretisation_uses_one_minus_dt_over_tau():
    # Euler: a = 1 - dt/tau = 0.9 for tau = 10 ms, so dv = round(4096 * 0.1) = round(409.6) = 410.
    net = nt.from_nir(single(lif(1, tau=10e-3)), discretization="euler")
    assert int(net.groups["h"].params["dv"][0]) == 410


def test_shift_decay_mode_uses_shift_amounts():
    # shift mode: decay 1 - 2**-k; 1 - a = 0.095163 -> k = round(-log2(0.095163)) = round(3.39) = 3; u cleared: k = 0.
    net = nt.from_nir(single(lif(1, tau=10e-3)), arch=nt.Arch(decay_mode="shift"))
    p = net.groups["h"].params
    assert (int(p["du"][0]), int(p["dv"][0])) == (0, 3)


def test_compile_refuses_an_arch_other_than_the_one_the_graph_was_quantized_for():
    # du/dv above are shift amounts for a shift-mode chip; a loihi-mode chip would read 3 as a
    # 4093/4096 decay, so compiling for it must fail instead of running a different model.
    net = nt.from_nir(single(lif(1, tau=10e-3)), arch=nt.Arch(decay_mode="shift"))
    with pytest.raises(nt.MappingError, match=r"quantized for decay_mode='shift' but the target arch "
                                              r"has decay_mode='loihi': compile with arch=net.arch"):
        nt.compile(net, nt.Arch())
    assert nt.compile(net).arch.decay_mode == "shift"     # no arch given: the one it was made for


def test_threshold_weight_and_bias_with_a_given_scale():
    # IF (r = 1): G = 1. With s = 6400: vth = 6400 * 1.0 / 64 = 100; W = 0.5 -> 6400 * 0.5 = 3200 = 50 << 6, so
    # weight_exp 0 and w = 50; W = -2.0 -> -12800 = -200 << 6 needs weight_exp 1: w = -100.
    g = single(nir.IF(r=np.ones(2), v_threshold=np.ones(2)), n=2, weight=[[0.5, 0.0], [0.0, -2.0]])
    net = nt.from_nir(g, scales={"h": 6400})
    assert int(net.groups["h"].params["vth"][0]) == 100
    (proj,) = net.projections
    assert proj.weight_exp == 1
    assert sorted(proj.weight.tolist()) == [-100, 25]        # 3200 / 2**(6+1) = 25
    # LIF v_leak = 0.5, tau = 10 ms: bias per step = s * (1 - a) * v_leak = 6400 * 0.095163 * 0.5 = 304.52 -> 305.
    net = nt.from_nir(single(lif(1, v_leak=0.5)), scales={"h": 6400})
    p = net.groups["h"].params
    assert (int(p["bias_mant"][0]), int(p["bias_exp"][0])) == (305, 0)


def test_v_reset_shifts_the_chip_voltage():
    # chip v = s (v - v_reset): threshold 1.0 above a reset of -1.0 is 2.0 * s / 64; with s = 3200, vth = 100.
    # The leak towards v_leak = 0 from v_reset = -1 is (1 - a) * (0 - (-1)) * s = 0.095163 * 3200 = 304.5 -> 305.
    net = nt.from_nir(single(lif(1, v_threshold=1.0, v_reset=-1.0)), scales={"h": 3200})
    p = net.groups["h"].params
    assert int(p["vth"][0]) == 100
    assert int(p["bias_mant"][0]) == 305


# -- structures -------------------------------------------------------------------------------------------------------

def test_feedforward_structure_latency_and_outputs():
    net = nt.from_nir(feedforward())
    assert isinstance(net, nt.Network)
    assert [g.name for g in net.inputs] == ["input"]
    assert [(p.name, p.n) for p in net.populations] == [("lif1", 20), ("lif2", 5)]
    assert [p.name for p in net.outputs] == ["lif2"]
    # sequential order: each layer is one step deeper on the chip; every synapse has delay 1
    assert net.latency == {"lif1": 1, "lif2": 2}
    assert all(np.all(p.delay == 1) for p in net.projections)
    # the largest weight into each population uses the full 8-bit range
    for p in net.projections:
        assert np.abs(p.weight).max() == 127
    image = nt.compile(net, net.arch)
    assert image.meta is not None


def test_delayed_order_has_no_latency():
    net = nt.from_nir(feedforward(), order="delayed")
    assert set(net.latency.values()) == {0}
    assert all(np.all(p.delay == 1) for p in net.projections)


def test_recurrent_graph_maps_the_loop_to_a_one_step_self_projection():
    net = nt.from_nir(recurrent())
    names = {p.name: p for p in net.projections}
    assert set(names) == {"in->lif", "lif->lif"}
    # the loop-closing edge reads the previous step: delay 1 on the chip, in the float model offset 1
    assert np.all(names["lif->lif"].delay == 1)
    fp = {p.name: p for p in net.float_model.projections}
    assert fp["lif->lif"].back and np.all(fp["lif->lif"].offset == 1)
    assert np.all(fp["in->lif"].offset == 0)
    rep = nt.quantization_report(net, steps=150, rate=0.3)
    assert rep.layer("lif").match > 0.8


def test_two_population_loop_is_ambiguous_in_sequential_order():
    rng = np.random.default_rng(0)
    n = 4
    g = nir.NIRGraph(nodes={
        "in": nir.Input(np.array([2])), "fc": nir.Linear(rng.normal(0, 1, (n, 2))), "a": lif(n),
        "ab": nir.Linear(np.eye(n)), "b": lif(n), "ba": nir.Linear(np.eye(n)), "out": nir.Output(np.array([n]))},
        edges=[("in", "fc"), ("fc", "a"), ("a", "ab"), ("ab", "b"), ("b", "ba"), ("ba", "a"), ("b", "out")],
        type_check=False)
    with pytest.raises(nt.NetworkError, match=r"order='sequential' cannot keep the timing of the loop b -> a -> b: "
                                              r"its 2 edges take 1 step\(s\) in the float model .* pass "
                                              r"order='delayed' .* add nir.Delay nodes worth 1 more step\(s\)"):
        nt.from_nir(g)
    net = nt.from_nir(g, order="delayed")
    assert {p.name for p in net.projections} == {"in->a", "a->b", "b->a"}
    # a Delay of one step on the loop makes it representable in sequential order too
    g.nodes["d"] = nir.Delay(np.full(n, DT))
    g.edges = [e for e in g.edges if e != ("ba", "a")] + [("ba", "d"), ("d", "a")]
    net = nt.from_nir(g)
    assert {p.name: int(p.delay.max()) for p in net.projections} == {"in->a": 1, "a->b": 1, "b->a": 1}


def reference_conv_pool(g, x):
    """Plain loops: conv (cross-correlation, zero padding 1, stride 1) then 2x2 sum pool of a (1, 8, 8) input."""
    conv = g.nodes["conv"]
    w = conv.weight
    pad = np.zeros((1, 10, 10))
    pad[:, 1:9, 1:9] = x
    y = np.zeros((2, 8, 8))
    for co in range(2):
        for i in range(8):
            for j in range(8):
                y[co, i, j] = np.sum(w[co, 0] * pad[0, i:i + 3, j:j + 3])
    z = np.zeros((2, 4, 4))
    for c in range(2):
        for i in range(4):
            for j in range(4):
                z[c, i, j] = y[c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].sum()
    return z


def test_conv_and_pool_expand_into_the_composed_synapses():
    g = conv_pool()
    net = nt.from_nir(g)
    # shapes inferred: Conv2d without input_shape, IF with scalar parameters -> 2 x 4 x 4 = 32 neurons
    assert [(p.name, p.n) for p in net.populations] == [("if", 32), ("li", 3)]
    fp = {p.name: p for p in net.float_model.projections}["in->if"]
    dense = np.zeros((32, 64))
    np.add.at(dense, (fp.post_idx, fp.pre_idx), fp.weight)
    for i in range(64):
        x = np.zeros((1, 8, 8))
        x.flat[i] = 1
        np.testing.assert_allclose(dense[:, i], reference_conv_pool(g, x).ravel(), atol=1e-12)
    # conv bias per channel, summed over each 2x2 pool window: 4 * 0.1 and 4 * -0.2
    np.testing.assert_allclose(net.float_model.populations["if"].bias, np.repeat([0.4, -0.8], 16))


def test_conv_with_same_padding_and_given_input_shape():
    net = nt.from_nir(conv_pool(padding="same", conv_input_shape=(8, 8)))
    assert net.groups["if"].n == 32


def test_conv_same_padding_with_stride_is_refused():
    with pytest.raises(nt.NetworkError, match=r"node 'conv' \(nir.Conv2d\) has padding='same' with stride \(2, 2\); "
                                              r"'same' is defined for stride 1 only"):
        nt.from_nir(conv_pool(padding="same", stride=2))


def test_conv1d_and_avgpool():
    rng = np.random.default_rng(3)
    w = rng.normal(0, 1, (2, 1, 3))
    g = nir.NIRGraph(nodes={
        "in": nir.Input(np.array([1, 6])),
        "conv": nir.Conv1d(input_shape=6, weight=w, stride=1, padding=0, dilation=1, groups=1, bias=np.zeros(2)),
        "if": nir.IF(r=np.ones((2, 4)), v_threshold=np.ones((2, 4))), "out": nir.Output(np.array([2, 4]))},
        edges=[("in", "conv"), ("conv", "if"), ("if", "out")], type_check=False)
    fp = nt.from_nir(g).float_model.projections[0]
    dense = np.zeros((8, 6))
    dense[fp.post_idx, fp.pre_idx] = fp.weight
    for c in range(2):
        for o in range(4):
            np.testing.assert_allclose(dense[c * 4 + o, o:o + 3], w[c, 0])
    g2 = nir.NIRGraph(nodes={
        "in": nir.Input(np.array([1, 4, 4])),
        "pool": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "if": nir.IF(r=np.ones(4), v_threshold=np.ones(4)), "out": nir.Output(np.array([4]))},
        edges=[("in", "pool"), ("pool", "if"), ("if", "out")], type_check=False)
    fp = nt.from_nir(g2).float_model.projections[0]
    assert fp.n_synapses == 16 and np.allclose(fp.weight, 0.25)


def test_delay_node_becomes_synaptic_delay():
    g = single(lif(2), n=2)
    g.nodes["d"] = nir.Delay(np.array([3e-3, 1e-3]))
    g.edges = [("x", "w"), ("w", "d"), ("d", "h"), ("h", "o")]
    # sequential: the edge itself takes no time, the Delay 3 and 1 steps; the chip's minimum of one step is
    # absorbed by the Delay, so no latency is needed: chip delays 3 and 1.
    net = nt.from_nir(g)
    (p,) = net.projections
    assert dict(zip(p.post_idx.tolist(), p.delay.tolist())) == {0: 3, 1: 1}
    assert net.latency == {"h": 0}
    # delayed: one step per edge plus the Delay: 4 and 2.
    (p,) = nt.from_nir(g, order="delayed").projections
    assert dict(zip(p.post_idx.tolist(), p.delay.tolist())) == {0: 4, 1: 2}


def test_delay_that_is_not_whole_steps_is_ambiguous():
    g = single(lif(1))
    g.nodes["d"] = nir.Delay(np.array([2.5e-3]))
    g.edges = [("x", "w"), ("w", "d"), ("d", "h"), ("h", "o")]
    with pytest.raises(nt.NetworkError, match=r"node 'd' \(nir.Delay\) delays channel 0 by 0.0025 s = 2.5 steps of "
                                              r"dt=0.001: the chip delays by whole steps; choose a dt that divides "
                                              r"every delay"):
        nt.from_nir(g)
    assert nt.from_nir(g, dt=0.5e-3).projections[0].delay.tolist() == [5]


def test_delay_beyond_max_delay_is_a_mapping_error():
    g = single(lif(1))
    g.nodes["d"] = nir.Delay(np.array([20e-3]))
    g.edges = [("x", "w"), ("w", "d"), ("d", "h"), ("h", "o")]
    with pytest.raises(nt.MappingError, match=r"projection 'x->h' \(NIR 'x' -> 'h'\) needs a delay of 20 steps .* "
                                              r"beyond arch.max_delay=16 \(exceeded by 4\)"):
        nt.from_nir(g)


def test_li_readout_is_a_population_that_never_fires():
    net = nt.from_nir(conv_pool())
    assert net.readouts.keys() == {"li"}
    assert int(net.groups["li"].params["vth"][0]) == (1 << 17) - 1
    assert [p.name for p in net.outputs] == []               # readouts are read through v, not spikes
    assert net.probes == ["li.v"]
    assert any("non-spiking readout" in n and "probes=['li.v']" in n for n in net.notes)
    rng = np.random.default_rng(0)
    inputs = {"in": rng.random((60, 64)) < 0.3}
    ref = net.run_float(inputs, 60)
    chip = net.run_chip(inputs, 60)
    assert not chip.result.spikes["li"].any()
    # v in float units; rounding of 8-bit weights leaves a few percent of the trace's spread
    err = np.sqrt(np.mean((ref.v["li"] - chip.v["li"]) ** 2)) / ref.v["li"].std()
    assert err < 0.3


def test_cubali_and_i_readouts():
    n = 2
    for node in (nir.CubaLI(tau_syn=np.full(n, 5e-3), tau_mem=np.full(n, 10e-3), r=np.ones(n), v_leak=np.zeros(n),
                            w_in=np.ones(n)),
                 nir.I(r=np.ones(n))):
        net = nt.from_nir(single(node, n=n))
        assert set(net.readouts) == {"h"}
    assert any("integrates without leak" in x for x in net.notes)


def test_nested_subgraph_is_inlined():
    # nirtorch writes snnTorch's RLeaky as a subgraph with its own Input and Output
    rng = np.random.default_rng(0)
    n = 5
    sub = nir.NIRGraph(nodes={"input": nir.Input(np.array([n])), "lif": lif(n),
                              "w_rec": nir.Linear(rng.normal(0, 0.2, (n, n))), "output": nir.Output(np.array([n]))},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
                       type_check=False)
    g = nir.NIRGraph(nodes={"x": nir.Input(np.array([3])), "fc": nir.Linear(rng.normal(0, 1, (n, 3))), "rlif": sub,
                            "o": nir.Output(np.array([n]))},
                     edges=[("x", "fc"), ("fc", "rlif"), ("rlif", "o")], type_check=False)
    net = nt.from_nir(g)
    assert [p.name for p in net.populations] == ["rlif_lif"]
    assert net.names["rlif.lif"] == "rlif_lif"
    assert {p.name for p in net.projections} == {"x->rlif_lif", "rlif_lif->rlif_lif"}
    assert [p.name for p in net.outputs] == ["rlif_lif"]


def test_scale_and_multiple_paths_add():
    # two paths from x to h: W1 and Scale(2) o W2 sum into one projection: 1*1 + 2*3 = 7 for the one synapse
    g = nir.NIRGraph(nodes={"x": nir.Input(np.array([1])), "a": nir.Linear(np.array([[1.0]])),
                            "b": nir.Linear(np.array([[3.0]])), "s": nir.Scale(np.array([2.0])),
                            "h": nir.IF(r=np.ones(1), v_threshold=np.full(1, 50.0)), "o": nir.Output(np.array([1]))},
                     edges=[("x", "a"), ("x", "b"), ("b", "s"), ("a", "h"), ("s", "h"), ("h", "o")],
                     type_check=False)
    net = nt.from_nir(g)
    (fp,) = net.float_model.projections
    assert fp.weight.tolist() == [7.0]


# -- errors ----------------------------------------------------------------------------------------------------------

def test_unsupported_node_names_node_type_and_alternatives():
    g = single(lif(1))
    g.nodes["t"] = nir.Threshold(np.array([1.0]))
    g.edges = [("x", "w"), ("w", "t"), ("t", "h"), ("h", "o")]
    with pytest.raises(nt.NetworkError, match=r"node 't' is a nir.Threshold, which neurotile cannot map \(a Threshold "
                                              r"alone has no state: use IF .*\); supported node types: Affine, "
                                              r"AvgPool2d, Conv1d, Conv2d, CubaLI, CubaLIF, Delay, Flatten, I, IF, "
                                              r"Identity, Input, LI, LIF, Linear, Output, Scale, SumPool2d"):
        nt.from_nir(g)


def test_output_fed_by_a_linear_node_is_refused():
    g = nir.NIRGraph(nodes={"x": nir.Input(np.array([2])), "h": lif(2), "w": nir.Linear(np.eye(2)),
                            "o": nir.Output(np.array([2]))},
                     edges=[("x", "h"), ("h", "w"), ("w", "o")], type_check=False)
    with pytest.raises(nt.NetworkError, match=r"Output 'o' is fed by 'w' \(nir.Linear\); the chip reads out the "
                                              r"spikes of neuron populations .* e.g. nir.LI as a readout"):
        nt.from_nir(g)


def test_subtract_reset_with_v_reset_is_ambiguous():
    with pytest.raises(nt.NetworkError, match=r"node 'h' \(nir.LIF\) has v_reset=-0.5, but reset='subtract' "
                                              r"subtracts the threshold and ignores v_reset; pass reset='zero'"):
        nt.from_nir(single(lif(1, v_reset=-0.5)), reset="subtract")
    net = nt.from_nir(single(lif(1)), reset="subtract")
    assert net.arch.reset_mode == "subtract"


def test_reset_disagreeing_with_arch_is_refused():
    with pytest.raises(nt.NeurotileValueError, match=r"reset='subtract' but arch.reset_mode='zero'"):
        nt.from_nir(single(lif(1)), reset="subtract", arch=nt.Arch())


def test_shape_that_cannot_be_inferred():
    g = nir.NIRGraph(nodes={"h": nir.LIF(tau=np.array(0.01), r=np.array(1.0), v_leak=np.array(0.0),
                                         v_threshold=np.array(1.0)), "o": nir.Output(None)},
                     edges=[("h", "o")], type_check=False)
    with pytest.raises(nt.NetworkError, match=r"cannot infer the shape of node 'h' \(nir.LIF\)"):
        nt.from_nir(g)


def test_shape_mismatch_names_the_edge():
    g = nir.NIRGraph(nodes={"x": nir.Input(np.array([3])), "w": nir.Linear(np.ones((2, 3))), "h": lif(4),
                            "o": nir.Output(np.array([4]))},
                     edges=[("x", "w"), ("w", "h"), ("h", "o")], type_check=False)
    with pytest.raises(nt.NetworkError, match=r"shape mismatch on edge \('w', 'h'\): 'w' \(nir.Linear\) gives 2 "
                                              r"values"):
        nt.from_nir(g)


def test_linear_loop_is_refused():
    g = nir.NIRGraph(nodes={"x": nir.Input(np.array([1])), "a": nir.Linear(np.ones((1, 1))),
                            "b": nir.Linear(np.ones((1, 1))), "h": lif(1), "o": nir.Output(np.array([1]))},
                     edges=[("x", "a"), ("a", "b"), ("b", "a"), ("b", "h"), ("h", "o")], type_check=False)
    with pytest.raises(nt.NetworkError, match=r"loop through linear nodes only \(b -> a -> b\)"):
        nt.from_nir(g)


def test_euler_with_dt_longer_than_tau_is_refused():
    with pytest.raises(nt.NetworkError, match=r"node 'h': tau=0.0005 is shorter than dt=0.001; Euler"):
        nt.from_nir(single(lif(1, tau=0.5e-3)), discretization="euler")


def test_graph_without_neurons_is_refused():
    g = nir.NIRGraph(nodes={"x": nir.Input(np.array([2])), "w": nir.Linear(np.eye(2)),
                            "o": nir.Output(np.array([2]))}, edges=[("x", "w"), ("w", "o")], type_check=False)
    with pytest.raises(nt.NetworkError, match=r"the graph has no neuron node, so nothing to put on the chip"):
        nt.from_nir(g)


def test_bad_arguments():
    with pytest.raises(nt.NeurotileTypeError, match=r"from_nir needs a nir.NIRGraph or the path of a NIR file, "
                                                    r"not dict"):
        nt.from_nir({})
    with pytest.raises(nt.NeurotileValueError, match=r"order must be one of 'sequential', 'delayed', not 'x'"):
        nt.from_nir(single(lif(1)), order="x")
    with pytest.raises(nt.NeurotileValueError, match=r"dt must be a positive number of seconds, not -1"):
        nt.from_nir(single(lif(1)), dt=-1)
    with pytest.raises(nt.NeurotileValueError, match=r"scales names unknown populations \['nope'\]"):
        nt.from_nir(single(lif(1)), scales={"nope": 1.0})


def test_quantize_false_refuses_float_values():
    # tau = 10 ms at dt = 1 ms: 4096 * (1 - exp(-0.1)) = 389.786 is no integer dv
    with pytest.raises(nt.NetworkError, match=r"quantize=False needs exact chip values, but population 'h' dv "
                                              r"\(4096 \* \(1 - decay\)\) is 389.786, not an integer: import with "
                                              r"quantize=True"):
        nt.from_nir(single(lif(1)), quantize=False)
    # with an exact decay (a = 3706 / 4096, tau = -dt / ln(a)) the weight is next: s = 1, and the weight 1 into an
    # LIF with r = 10 adds G = (390 / 4096) * 10 = 0.952 LSB to v, which is w << weight_exp << 6 for no integer w.
    tau = -1e-3 / np.log(3706 / 4096)
    with pytest.raises(nt.NetworkError, match=r"quantize=False needs exact chip values, but projection 'x->h' "
                                              r"weight \(s \* G \* W / 2\*\*\(6 \+ weight_exp\)\) is 0.0148773, not "
                                              r"an integer"):
        nt.from_nir(single(lif(1, tau=tau)), quantize=False)


# -- round trips -----------------------------------------------------------------------------------------------------

def test_round_trip_through_hdf5_is_exact(tmp_path):
    net1 = nt.from_nir(feedforward())
    g2 = nt.to_nir(net1)
    assert {k: type(v).__name__ for k, v in g2.nodes.items()} == {
        "input": "Input", "lif1": "CubaLIF", "lif2": "LIF", "input_to_lif1": "Linear", "lif1_to_lif2": "Linear",
        "lif2_out": "Output"}
    path = tmp_path / "ff.nir"
    nir.write(path, g2)
    net2 = nt.from_nir(path, quantize=False)
    assert net2.name == "ff"
    assert net2.options["order"] == "delayed"               # recorded by to_nir
    assert_same_network(net1, net2)
    assert_same_network(net1, nt.from_nir(nir.read(path), quantize=False))   # nir's own reader, type-checked


def test_round_trip_keeps_structure_and_parameters_within_quantization():
    g = feedforward(seed=2)
    net1 = nt.from_nir(g, order="delayed")
    net3 = nt.from_nir(nt.to_nir(net1))                       # re-quantized from chip units
    assert [(p.name, p.n) for p in net3.populations] == [("lif1", 20), ("lif2", 5)]
    a, b = net1.float_model, net3.float_model
    for name in ("lif1", "lif2"):
        pa, pb = a.populations[name], b.populations[name]
        # decay factors agree to the 12-bit decay resolution (1/4096 at most for the rounding)
        assert np.all(np.abs(pa.a_mem - pb.a_mem) <= 0.5 / 4096 + 1e-12)
        assert np.all(np.abs(pa.a_syn - pb.a_syn) <= 0.5 / 4096 + 1e-12)
        # effective weight relative to the threshold agrees to the 8-bit weight resolution of the largest weight
        pja = next(p for p in a.projections if p.post == name)
        pjb = next(p for p in b.projections if p.post == name)
        ea = pa.gain[pja.post_idx] * pja.weight / (pa.v_threshold[0] - pa.v_reset[0])
        eb = pb.gain[pjb.post_idx] * pjb.weight / (pb.v_threshold[0] - pb.v_reset[0])
        oa, ob = np.lexsort((pja.pre_idx, pja.post_idx)), np.lexsort((pjb.pre_idx, pjb.post_idx))
        keep = np.isin(pja.post_idx * 1000 + pja.pre_idx, pjb.post_idx * 1000 + pjb.pre_idx)[oa]
        np.testing.assert_allclose(ea[oa][keep], eb[ob], atol=np.abs(ea).max() / 254 + 1e-3)


def test_integer_network_round_trip_with_delays_bias_and_current(tmp_path):
    rng = np.random.default_rng(5)
    net = nt.Network("hand")
    x = net.input(3, name="x")
    a = net.population(4, nt.LIF(du=4095, dv=205, vth=50, bias_mant=3, bias_exp=2), name="a")
    b = net.population(2, nt.LIF(du=300, dv=100, vth=np.array([40, 60])), name="b")
    c = net.population(2, nt.LIF(du=4095, dv=0, vth=20, bias_mant=-5), name="c")
    net.connect(x, a, weights=rng.integers(-100, 100, (3, 4)), delay=rng.integers(1, 4, (3, 4)), weight_exp=2)
    net.connect(a, b, weights=rng.integers(-60, 60, (4, 2)), weight_exp=0)
    net.connect(b, b, weights=np.array([[0, 5], [7, 0]]), delay=2, weight_exp=1)
    net.connect(a, c, weights=rng.integers(1, 9, (4, 2)), weight_exp=3)
    net.output(b)
    net.output(c)
    g = nt.to_nir(net)
    assert type(g.nodes["c"]).__name__ == "IF"               # du = 4095, dv = 0: no current, no leak
    assert type(g.nodes["b"]).__name__ == "CubaLIF"
    assert any(type(v).__name__ == "Delay" for v in g.nodes.values())
    nir.write(tmp_path / "hand.nir", g)
    back = nt.from_nir(tmp_path / "hand.nir", quantize=False)
    assert_same_network(net, back)
    # the imported network behaves like the original on the chip
    inputs = {"x": rng.random((40, 3)) < 0.4}
    r1 = nt.Emulator(nt.compile(net), progress=False).run(inputs, 40)
    r2 = nt.Emulator(nt.compile(back), progress=False).run(inputs, 40)
    for p in ("a", "b", "c"):
        assert np.array_equal(r1.spikes[p], r2.spikes[p])


def test_to_nir_refuses_what_nir_cannot_express():
    net = nt.Network()
    x = net.input(1, name="x")
    h = net.population(1, nt.LIF(du=10, dv=0, vth=5), name="h")
    net.connect(x, h, weights=np.array([[1]]))
    with pytest.raises(nt.NetworkError, match=r"population 'h' has a synaptic current \(du < 4095\) but no leak "
                                              r"\(dv = 0\); NIR's CubaLIF cannot express it"):
        nt.to_nir(net)
    with pytest.raises(nt.NeurotileTypeError, match=r"to_nir needs an nt.Network, not str"):
        nt.to_nir("net")


def test_readouts_round_trip_as_li(tmp_path):
    net1 = nt.from_nir(conv_pool())
    g = nt.to_nir(net1)
    assert type(g.nodes["li"]).__name__ == "LI"
    nir.write(tmp_path / "cp.nir", g)
    net2 = nt.from_nir(tmp_path / "cp.nir", quantize=False)
    assert set(net2.readouts) == {"li"}
    assert_same_network(net1, net2)


# -- real frameworks ------------------------------------------------------------------------------------------------
# Graphs exported by snnTorch itself, compared with snnTorch's own spikes: tests/compiler/test_nir_frameworks.py.
