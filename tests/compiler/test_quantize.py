"""Tests of :mod:`neurotile.compiler.quantize` and :mod:`neurotile.compiler.float_model`.

Scales and integers are derived by hand from the formulas of the quantize module docstring; the behavioural
comparison runs the float reference and the functional emulator on the same seeded inputs.
"""

import numpy as np
import pytest

import neurotile as nt

nir = pytest.importorskip("nir")

WMAX = 127


def if_graph(weights, v_threshold=1.0):
    """Input(n_in) -> Linear -> IF (r = 1, so the gain G is 1 and the effective weight is W) -> Output."""
    w = np.atleast_2d(np.asarray(weights, float))
    n = w.shape[0]
    return nir.NIRGraph(nodes={"x": nir.Input(np.array([w.shape[1]])), "w": nir.Linear(w),
                               "h": nir.IF(r=np.ones(n), v_threshold=np.full(n, v_threshold)),
                               "o": nir.Output(np.array([n]))},
                        edges=[("x", "w"), ("w", "h"), ("h", "o")], type_check=False)


def small_network(seed, n_in=16, n_h=24, n_o=6):
    """Input -> Affine -> CubaLIF -> Affine -> LIF: the network the agreement figures are measured on."""
    rng = np.random.default_rng(seed)
    return nir.NIRGraph(nodes={
        "input": nir.Input(np.array([n_in])),
        "fc1": nir.Affine(rng.normal(0.1, 0.5, (n_h, n_in)), np.zeros(n_h)),
        "lif1": nir.CubaLIF(tau_syn=np.full(n_h, 5e-3), tau_mem=np.full(n_h, 20e-3), r=np.full(n_h, 20.0),
                            v_leak=np.zeros(n_h), v_threshold=np.ones(n_h), w_in=np.full(n_h, 5.0)),
        "fc2": nir.Affine(rng.normal(0.1, 0.5, (n_o, n_h)), np.zeros(n_o)),
        "lif2": nir.LIF(tau=np.full(n_o, 20e-3), r=np.full(n_o, 20.0), v_leak=np.zeros(n_o),
                        v_threshold=np.ones(n_o)),
        "output": nir.Output(np.array([n_o])),
    }, edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")])


# -- scales and clipping ---------------------------------------------------------------------------------------------

def test_in_range_weights_do_not_clip_and_the_largest_is_full_range():
    net = nt.from_nir(small_network(0))
    for q in net.quantization.values():
        assert q.limit == "weights"
        assert all(r.clipped == 0 for r in q.records)
    for p in net.projections:
        assert np.abs(p.weight).max() == WMAX
    # rounding error of a weight is at most half an LSB: 2**(6 + e) / (2 s G) in float units
    for q in net.quantization.values():
        fp = net.float_model.populations[q.name]
        for r in q.records:
            if r.kind == "weight":
                lsb = 2.0 ** (6 + r.exp) / (q.scale * fp.gain.min())
                assert r.max_err <= lsb / 2 + 1e-12


def test_scale_for_weights_picks_the_largest_exponent_that_fits():
    # IF, G = 1, largest weight 1.0, threshold 1.0: s = 127 * 2**(6 + e) / 1.0. The threshold allows
    # s <= 64 * (2**17 - 1) / 1.0 = 8388544 and the input bound (one synapse) s <= 64 * (2**17 - 1) / 1.0 as well;
    # e = 7 gives 127 * 8192 = 1040384, which fits: vth = 1040384 / 64 = 16256, w = 127, weight_exp 7.
    net = nt.from_nir(if_graph([[1.0, 0.5]]))
    q = net.quantization["h"]
    assert q.scale == 127 * 2 ** 13
    (p,) = net.projections
    assert p.weight_exp == 7
    assert sorted(p.weight.tolist()) == [64, 127]               # 0.5 * 127 = 63.5 rounds half away to 64
    assert int(net.groups["h"].params["vth"][0]) == 16256


def test_percentile_clips_the_outlier_and_reports_it():
    # ten weights 0.1 .. 0.9 and 10.0; the 90th percentile (linear interpolation) is 0.9 + 0.1 * 9.1 = 1.81, which
    # maps to 127: only the 10.0 clips (to 127).
    w = [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 10.0]]
    rep = nt.quantization_report(nt.from_nir(if_graph(w), percentile=90), steps=20)
    rec = rep.param("x->h.weight")
    assert rec.clipped == 1 and rep.clipped == 1
    assert rec.max_err > 8                                       # 10.0 came back as 127 / 127 * 1.81 = 1.81
    rep = nt.quantization_report(nt.from_nir(if_graph(w)), steps=20)
    assert rep.clipped == 0


def test_forced_scale_clips_and_counts():
    # s = 100 * 2**13: the largest weight_exp 7 gives w = W * 100, so 2.0 and 4.0 exceed 127 and clip.
    net = nt.from_nir(if_graph([[1.0, 2.0, 4.0]], v_threshold=100.0), scales={"h": 100 * 2 ** 13})
    q = net.quantization["h"]
    assert q.limit == "given"
    rec = next(r for r in q.records if r.kind == "weight")
    assert (rec.exp, rec.clipped) == (7, 2)
    assert sorted(net.projections[0].weight.tolist()) == [100, 127, 127]


def test_scale_limited_by_the_threshold():
    # threshold 1e4 with weight 1: the 17-bit vth allows s <= 64 * 131071 / 1e4 = 838.85, below the smallest
    # full-range scale 127 * 64 = 8128; so s = 838.85, vth = 2**17 - 1 and w = round(838.85 / 64) = 13.
    net = nt.from_nir(if_graph([[1.0]], v_threshold=1e4))
    q = net.quantization["h"]
    assert q.limit == "threshold"
    assert q.scale == pytest.approx(64 * 131071 / 1e4)
    assert int(net.groups["h"].params["vth"][0]) == (1 << 17) - 1
    assert net.projections[0].weight.tolist() == [13]


def test_large_fan_in_is_limited_by_the_input_bound():
    # 1200 synapses of weight 1 into one neuron: all arriving together give 1200 * s / 64, which must stay within
    # the 18-bit input (2**17 - 1): s <= 64 * 131071 / 1200 = 6990.5, below 127 * 64 = 8128.
    net = nt.from_nir(if_graph(np.ones((1, 1200)), v_threshold=500.0))
    q = net.quantization["h"]
    assert q.limit == "input"
    (p,) = net.projections
    assert int((p.weight << p.weight_exp).sum()) <= (1 << 17) - 1
    nt.compile(net, net.arch)                                   # the compiler's accumulator check agrees


def test_bias_takes_an_exponent_when_the_mantissa_overflows():
    # LIF v_leak = 1, tau = 10 ms, s = 1e6: bias = 1e6 * 0.0951626 = 95162.6 per step; the 13-bit mantissa needs
    # bias_exp = ceil(log2(95162.6 / 4095.5)) = 5, mantissa round(95162.6 / 32) = round(2973.8) = 2974.
    g = nir.NIRGraph(nodes={"x": nir.Input(np.array([1])), "w": nir.Linear(np.ones((1, 1))),
                            "h": nir.LIF(tau=np.full(1, 0.01), r=np.ones(1), v_leak=np.ones(1),
                                         v_threshold=np.full(1, 2.0)), "o": nir.Output(np.array([1]))},
                     edges=[("x", "w"), ("w", "h"), ("h", "o")], type_check=False)
    net = nt.from_nir(g, scales={"h": 1e6})
    p = net.groups["h"].params
    assert (int(p["bias_mant"][0]), int(p["bias_exp"][0])) == (2974, 5)


def test_readout_threshold_stays_out_of_reach():
    # 40 inputs of weight 1 into a slow LI (tau = 100 ms): with every input spiking in every step v settles at
    # 40 / (1 - a) = 40 / 0.00995 ~ 4020 in float units. The range bound keeps s * 4020 below 97 % of 2**23 - 65,
    # so the readout (vth = 2**17 - 1, compared as 2**23 - 64) can neither fire nor saturate.
    g = nir.NIRGraph(nodes={"x": nir.Input(np.array([40])), "w": nir.Linear(np.ones((1, 40))),
                            "r": nir.LI(tau=np.full(1, 0.1), r=np.ones(1), v_leak=np.zeros(1)),
                            "o": nir.Output(np.array([1]))},
                     edges=[("x", "w"), ("w", "r"), ("r", "o")], type_check=False)
    net = nt.from_nir(g)
    assert net.quantization["r"].limit == "range"
    chip = net.run_chip({"x": np.ones((1500, 40), bool)}, 1500)
    v = chip.result.probes["r.v"]
    assert not chip.result.spikes["r"].any()
    assert 0.9 * 0.97 * ((1 << 23) - 65) < v.max() < (1 << 23) - 64    # close to the bound, never beyond
    ref = net.run_float({"x": np.ones((1500, 40), bool)}, 1500)
    np.testing.assert_allclose(chip.v["r"][-1], ref.v["r"][-1], rtol=0.01)


def test_weight_bits_sets_the_range():
    net = nt.from_nir(small_network(1), weight_bits=4)
    assert net.arch.weight_bits == 4
    for p in net.projections:
        assert np.abs(p.weight).max() == 7


# -- the float reference -------------------------------------------------------------------------------------------

def test_float_model_if_hand_derived():
    # IF with r = 1, threshold 1.0, one input of weight 0.4 spiking every step. Sequential order: the spike of step t
    # is integrated in step t: v = 0.4, 0.8, 1.2 > 1 -> spike in step 2, reset to 0; period 3.
    net = nt.from_nir(if_graph([[0.4]]))
    inputs = {"x": np.ones((9, 1), bool)}
    ref = net.run_float(inputs, 9)
    assert np.flatnonzero(ref.spikes["h"][:, 0]).tolist() == [2, 5, 8]
    np.testing.assert_allclose(ref.v["h"][:3, 0], [0.4, 0.8, 0.0])
    # the chip runs one step behind (latency 1), which run_chip removes: same spikes
    chip = net.run_chip(inputs, 9)
    assert np.array_equal(chip.spikes["h"], ref.spikes["h"])
    # delayed order: every edge takes one step, the spikes come one step later in the float model itself
    ref = nt.from_nir(if_graph([[0.4]]), order="delayed").run_float(inputs, 9)
    assert np.flatnonzero(ref.spikes["h"][:, 0]).tolist() == [3, 6]


def test_float_model_subtract_reset():
    # threshold 1, input 0.7 per step, reset by subtracting the threshold (v after the step's reset):
    # 0.7; 1.4 spike -> 0.4; 1.1 spike -> 0.1; 0.8; 1.5 spike -> 0.5; 1.2 spike -> 0.2.
    net = nt.from_nir(if_graph([[0.7]]), reset="subtract")
    inputs = {"x": np.ones((6, 1), bool)}
    ref = net.run_float(inputs, 6)
    assert np.flatnonzero(ref.spikes["h"][:, 0]).tolist() == [1, 2, 4, 5]
    np.testing.assert_allclose(ref.v["h"][:, 0], [0.7, 0.4, 0.1, 0.8, 0.5, 0.2], atol=1e-12)
    assert np.array_equal(net.run_chip(inputs, 6).spikes["h"], ref.spikes["h"])


# -- behavioural comparison ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float_and_integer_spikes_agree(seed):
    # Measured on these networks (200 steps, inputs at rate 0.2): match 0.985-0.996 in the first layer and
    # 0.96-0.99 in the second at 8 bits. The models differ only by rounding: weights to 1/254 of the largest,
    # decay factors to 1/8192, and the chip's decay truncating toward zero every step; a neuron whose v sits at the
    # threshold then fires one step early or late (two mismatches), and the second layer inherits the first's. We
    # assert match >= 0.95 (first layer) and >= 0.9 (second), and rates within 3 %.
    net = nt.from_nir(small_network(seed))
    rep = nt.quantization_report(net, steps=200, rate=0.2, seed=seed)
    lif1, lif2 = rep.layer("lif1"), rep.layer("lif2")
    assert lif1.float_spikes > 500 and lif2.float_spikes > 100   # the comparison is not vacuous
    assert lif1.match >= 0.95
    assert lif2.match >= 0.9
    assert lif1.count_match >= 0.97 and lif2.count_match >= 0.97


def test_fewer_weight_bits_agree_less():
    m8 = np.mean([nt.quantization_report(nt.from_nir(small_network(s)), steps=150, seed=s).layer("lif1").match
                  for s in range(3)])
    m4 = np.mean([nt.quantization_report(nt.from_nir(small_network(s), weight_bits=4), steps=150,
                                         seed=s).layer("lif1").match for s in range(3)])
    assert m4 < m8


def test_report_prints_a_readable_table():
    g = small_network(0)
    rep = nt.quantization_report(g, steps=50, order="delayed")     # a graph is imported with the options given
    text = str(rep)
    assert text.startswith("Quantization report (50 steps)")
    for needle in ("parameter", "clipped", "input->lif1.weight", "lif1.vth", "lif2.dv", "spiking population",
                   "output agreement", "order='delayed'"):
        assert needle in text
    assert repr(rep).startswith("<QuantizationReport 10 parameters, 0 clipped, 2 layers, 0 readouts>")
    # dv of tau_mem = 20 ms: 200 / 4096 against 1 - exp(-0.05): |0.951172 - 0.951229| = 5.7e-5
    assert rep.param("lif1.dv").max_err == pytest.approx(abs((4096 - 200) / 4096 - np.exp(-0.05)), rel=1e-9)
    with pytest.raises(KeyError, match="no parameter 'nope'"):
        rep.param("nope")


def test_report_with_given_inputs_and_readout():
    g = if_graph([[0.4]])
    g.nodes["r"] = nir.LI(tau=np.full(1, 0.01), r=np.ones(1), v_leak=np.zeros(1))
    g.nodes["l2"] = nir.Linear(np.ones((1, 1)))
    g.nodes["o2"] = nir.Output(np.array([1]))
    g.edges += [("h", "l2"), ("l2", "r"), ("r", "o2")]
    net = nt.from_nir(g)
    rep = nt.quantization_report(net, {"x": np.ones((12, 1), bool)})
    assert rep.steps == 12
    assert rep.layer("h").match == 1.0
    (ro,) = rep.readouts
    assert ro.name == "r" and ro.corr > 0.99
    assert "readout" in str(rep)


def test_report_argument_errors():
    net = nt.from_nir(if_graph([[0.4]]))
    with pytest.raises(nt.NeurotileValueError, match=r"rate must be a probability between 0 and 1, not 2"):
        nt.quantization_report(net, rate=2)
    with pytest.raises(nt.NeurotileTypeError, match=r"import options \(order\) only apply when a graph is given"):
        nt.quantization_report(net, order="delayed")
