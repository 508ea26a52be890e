"""The pre-charged initial state of imported networks (docs/nir.md section 4; ``nt.from_nir(precharge=True)``).

The chip runs a population ``latency`` steps behind the float model with its bias on from chip step 0, and a CubaLIF
bias reaches the chip's ``v`` at its steady state at once. ``from_nir`` chooses each neuron's initial chip state
``(u0, v0)`` so that after the ``latency`` steps of pre-roll the chip is in the float model's initial state with the
bias current's transient included. The hand-derived cases below check the integers and the spike steps; the others
check the solver against the chip's update in both decay modes, its fallbacks, and that the state reaches the image,
every engine, the saved file and ``to_nir``.
"""

import numpy as np
import pytest

import neurotile as nt
from neurotile.compiler.quantize import precharge, round_half_away
from neurotile.emulator import testing as T
from neurotile.emulator.neuron import lif_update

nir = pytest.importorskip("nir")

MODES = [("loihi", "zero"), ("loihi", "subtract"), ("shift", "zero"), ("shift", "subtract")]
S = 65536.0             # the scale of the hand-derived cases: threshold 1.0 -> vth = S / 64 = 1024, vth << 6 = S


def lif(**kw):
    # Euler at dt = 1 ms with tau = 2 ms: a = 1 - dt / tau = 0.5, g = 0.5; r = 2 makes g r = 1
    return nir.LIF(tau=np.array([2e-3]), r=np.array([2.0]), v_leak=np.array([0.0]), v_threshold=np.array([1.0]),
                   v_reset=np.array([0.0]), **kw)


def cuba():
    # a_syn = a_mem = 0.5; w_in = 2 makes g_syn w_in = 1 and r = 2 makes g_mem r = 1: I = I/2 + x, v = v/2 + I
    return nir.CubaLIF(tau_syn=np.array([2e-3]), tau_mem=np.array([2e-3]), r=np.array([2.0]),
                       v_leak=np.array([0.0]), v_threshold=np.array([1.0]), v_reset=np.array([0.0]),
                       w_in=np.array([2.0]))


def deep(neuron, b):
    """Input -> LIF 'a' (silent: no bias, no input spikes) -> Affine(bias b) -> neuron 'h': h has latency 2."""
    return nir.NIRGraph(nodes={
        "x": nir.Input(np.array([1])), "wa": nir.Linear(np.array([[1.0]])), "a": lif(),
        "wh": nir.Affine(np.array([[0.5]]), np.array([b])), "h": neuron, "out": nir.Output(np.array([1]))},
        edges=[("x", "wa"), ("wa", "a"), ("a", "wh"), ("wh", "h"), ("h", "out")])


def shallow(neuron, b):
    """Input -> Affine(bias b) -> neuron 'h'; imported with order='delayed', h has latency 0."""
    return nir.NIRGraph(nodes={
        "x": nir.Input(np.array([1])), "wh": nir.Affine(np.array([[0.5]]), np.array([b])), "h": neuron,
        "out": nir.Output(np.array([1]))}, edges=[("x", "wh"), ("wh", "h"), ("h", "out")])


def both(net, steps):
    """(float spike steps, chip spike steps) of population h, no input spikes."""
    f = net.run_float(steps=steps).spikes["h"][:, 0]
    c = net.run_chip(steps=steps).spikes["h"][:, 0]
    return np.flatnonzero(f).tolist(), np.flatnonzero(c).tolist()


@pytest.mark.parametrize("decay,reset", MODES)
def test_lif_bias_at_latency_2_by_hand(decay, reset):
    # Float (Euler, a = 0.5, g r = 1, b = 0.625): v = v/2 + 0.625 from v = 0: 0.625, 0.9375, 1.09375 > 1, so the
    # first spike is at step 2, and with the zero reset every 3 steps: 2, 5, 8, ...
    # Chip, scale 2**16: bias = 0.625 * 65536 = 40960 = 2560 << 4, threshold vth << 6 = 65536, dv = 2048 (loihi) or
    # k = 1 (shift): both halve these even values exactly. The population is two layers deep: chip steps 0 and 1
    # are a pre-roll with the bias on and nothing else. Without pre-charge, v = 40960, 61440 in the pre-roll and
    # 71680 > 65536 at float step 0: the train fires at 0, 3, 6, two steps early throughout.
    # Pre-charge: u is cleared every step (LIF: du = 4095, shift k = 0), so u0 = 0; v0 with v = 0 after two steps:
    # v2 = v1/2 + 40960 = 0 -> v1 = -81920; v1 = v0/2 + 40960 -> v0 = -245760 (= -6 * 40960; of the four integers
    # v0 = -245760 .. -245763 that truncate to it, the one nearest 0). Then the chip's v is the float model's times
    # 2**16 exactly, step for step, and every spike is at the same step.
    arch = nt.Arch(decay_mode=decay, reset_mode=reset)
    opts = dict(dt=1e-3, discretization="euler", arch=arch, scales={"h": S})
    net = nt.from_nir(deep(lif(), 0.625), **opts)
    p = net.groups["h"].params
    assert net.latency["h"] == 2
    assert int(p["bias_mant"][0]) << int(p["bias_exp"][0]) == 40960 and int(p["vth"][0]) << 6 == 65536
    assert (int(p["u0"][0]), int(p["v0"][0])) == (0, -245760)
    fl, ch = both(net, 40)
    if reset == "zero":
        assert fl[:6] == [2, 5, 8, 11, 14, 17]
    assert fl[0] == 2 and ch == fl
    old = nt.from_nir(deep(lif(), 0.625), precharge=False, **opts)
    assert int(old.groups["h"].params["v0"][0]) == 0
    fl0, ch0 = both(old, 40)
    assert fl0 == fl and ch0[0] == 0
    if reset == "zero":
        assert ch0[:3] == [0, 3, 6]


@pytest.mark.parametrize("decay,reset", MODES)
@pytest.mark.parametrize("latency", [0, 2])
def test_cubalif_bias_at_latency_0_and_2_by_hand(decay, reset, latency):
    # Float: I = I/2 + b and v = v/2 + I with b = 0.3125 (the Affine's bias). In units of 2**16: I = 20480, 30720,
    # 35840, 38400, 39680, ... -> 40960 = 2 b (1 - 2**-(t+1)); v = 20480, 40960, 56320, 66560 > 65536: the first spike
    # at step 3, then (zero reset) v = 39680, 60160, 70720: 6, and 9, 12, ... as I settles at 40960 (v = 40960, 61440,
    # 71680 fires every third step).
    # Chip: du = round(4096 * 0.5) - 1 = 2047 (loihi; u <- trunc(u / 2)) or k = 1 (shift), dv likewise; the bias is
    # the steady state s G b / (1 - a_syn) = 2**16 * 0.3125 / 0.5 = 40960, all of it the current's part (v_leak = 0).
    # Without pre-charge v gets 40960 from the first step: 40960, 61440, 71680 fires at step 2, 5, 8, one step early
    # (latency 0).
    # Latency 0 (order='delayed'): u0 = -40960, so that the drive u + bias = 40960 - 40960 / 2**(t+1) is the float
    # current; v0 = 0. Step 0: u = -20480, v = 0 - 20480 + 40960 = 20480, the float value; and so on.
    # Latency 2: u must be -40960 after two decays, u0 = -163840 (the nearest 0 of -163840 .. -163843, which all halve
    # twice to it in either mode); in the pre-roll u = -81920, -40960 and the drive u + bias = -40960, 0, so v1 =
    # decay(v0) - 40960 and v2 = decay(v1) must be 0. Loihi (halving toward zero): v1 in -1..1, so v0 in 81918 ..
    # 81923, the nearest 0 is 81918 (v = -1, 0 in the pre-roll). Shift (x - (x >> 1) = ceil(x / 2)): v1 in -1..0, v0
    # in 81917 .. 81920, so 81917. (v0 is above the threshold 65536, but a neuron compares only its updated v, which
    # stays at or below 0.)
    arch = nt.Arch(decay_mode=decay, reset_mode=reset)
    opts = dict(dt=1e-3, discretization="euler", arch=arch, scales={"h": S})
    graph = deep(cuba(), 0.3125) if latency else shallow(cuba(), 0.3125)
    if not latency:
        opts["order"] = "delayed"
    net = nt.from_nir(graph, **opts)
    p = net.groups["h"].params
    assert net.latency["h"] == latency
    assert int(p["bias_mant"][0]) << int(p["bias_exp"][0]) == 40960
    assert int(p["du"][0]) == (2047 if decay == "loihi" else 1)
    assert net.quantization["h"].bias_u[0] == pytest.approx(40960)
    v0 = 0 if latency == 0 else (81918 if decay == "loihi" else 81917)
    assert (int(p["u0"][0]), int(p["v0"][0])) == (-40960 if latency == 0 else -163840, v0)
    fl, ch = both(net, 60)
    if reset == "zero":
        assert fl[:6] == [3, 6, 9, 12, 15, 18]
    assert fl[0] == 3 and ch == fl
    assert not any("tau_syn transient dropped" in n for n in net.notes)
    old = nt.from_nir(graph, precharge=False, **opts)
    fl0, ch0 = both(old, 60)
    assert fl0 == fl and ch0[0] == (2 if latency == 0 else 0)
    assert any("tau_syn transient dropped; precharge=False" in n for n in old.notes)


def _chip_bias(params):
    return params["bias_mant"] << params["bias_exp"]


@pytest.mark.parametrize("decay", ["loihi", "shift"])
@pytest.mark.parametrize("latency", [0, 1, 3, 6])
def test_precharge_lands_on_the_float_initial_state(decay, latency):
    # Random neurons: after the pre-roll, run with the chip's own update, u is the integer nearest -bias_u (where
    # the chip keeps u) and v is 0, and neither a neighbour nearer 0 nor anything else would do as well.
    rng = np.random.default_rng(latency + 10 * (decay == "shift"))
    n = 400
    # a_syn of 0.63 .. 0.98 or none (u cleared), a_mem of 0.5 .. 1 (shift: also none, k = 0 clears v), biases up
    # to +-32760 per step, thresholds of 4.48e6 and more: the pre-charge fits and the pre-roll does not fire (the
    # fallbacks have their own test)
    clear = rng.random(n) < 0.2
    if decay == "loihi":
        du, dv = np.where(clear, 4095, rng.integers(100, 1500, n)), rng.integers(0, 2049, n)
    else:
        du, dv = np.where(clear, 0, rng.integers(2, 8, n)), rng.integers(0, 24, n)
    params = {"du": du, "dv": dv, "vth": rng.integers(70000, 1 << 17, n), "bias_mant": rng.integers(-4095, 4096, n),
              "bias_exp": rng.integers(0, 4, n)}
    bias_u = _chip_bias(params) * rng.uniform(0, 1.2, n)
    arch = nt.Arch(decay_mode=decay)
    u0, v0, fb = precharge(params, latency, bias_u, arch)
    keeps = du < 4095 if decay == "loihi" else du > 0
    ok = ~(fb["u_range"] | fb["v_range"] | fb["spike"])
    assert ok.all()
    u, v = u0, v0
    for _ in range(latency):
        u, v, z, _ = lif_update(u, v, 0, du, dv, params["vth"], params["bias_mant"], params["bias_exp"],
                                decay_mode=decay, reset_mode="zero")
        assert not z[ok].any()
    want_u = np.where(keeps, round_half_away(-bias_u), 0)
    assert np.array_equal(u[ok], want_u[ok])
    forgets = (dv == 0) if decay == "shift" else np.zeros(n, bool)
    assert np.array_equal(v[~forgets], np.zeros((~forgets).sum()))
    assert np.all(v0[forgets] == 0)
    assert np.all(u0[~keeps] == 0)
    if latency == 0:
        assert np.array_equal(v0, np.zeros(n)) and np.array_equal(u0, want_u)

    def after(u, v):
        for _ in range(latency):
            u, v, _, _ = lif_update(u, v, 0, du, dv, 1 << 40, params["bias_mant"], params["bias_exp"],
                                    decay_mode=decay, reset_mode="zero")
        return u, v
    # the neighbour nearer 0 misses: of the starts that land on the target, the one nearest 0 was taken
    nu, nv = u0 != 0, (v0 != 0) & ~forgets
    assert np.all(after(u0 - np.sign(u0), v0)[0][nu] != want_u[nu])
    assert np.all(after(u0, v0 - np.sign(v0))[1][nv] != 0)


def test_precharge_falls_back_where_it_cannot_and_says_so():
    arch = nt.Arch()
    # u: a_syn = 40/4096 (du = 4055) over 3 steps shrinks u about 10**6 times: -bias_u = -1000 needs u0 of about
    # -10**9, beyond 24 bits; u0 = 0 and v0 is solved without it. v: a bias of 499968 per step over 20 steps
    # without leak needs v0 = -10**7, beyond 2**23: v0 = 0 as without pre-charge. Spike: a bias of -30000 over 3
    # steps without leak needs v0 = 90000 (600000 over 20 steps), and the first updated v, 60000, is above the
    # threshold 640:
    # v0 is the largest whose pre-roll stays at or below 640, 30640 (the first updated v is the largest).
    params = {"du": np.array([4055, 4095, 4095]), "dv": np.array([0, 0, 0]), "vth": np.array([1000, 1000, 10]),
              "bias_mant": np.array([1000, 3906, -3750]), "bias_exp": np.array([0, 7, 3])}
    u0, v0, fb = precharge(params, 3, np.array([1000.0, 0, 0]), arch)
    assert fb["u_range"].tolist() == [True, False, False]
    assert (int(u0[0]), int(v0[0])) == (0, -3000)
    u0, v0, fb = precharge(params, 20, np.array([0.0, 0, 0]), arch)
    assert fb["v_range"].tolist() == [False, True, False] and (int(u0[1]), int(v0[1])) == (0, 0)
    # (and it fires in the pre-roll from any v0, the 24-bit v saturating: u0 = v0 = 0, the chip as before)
    assert fb["spike"].tolist() == [False, True, True] and int(v0[2]) == 30640
    u0, v0, fb = precharge(params, 3, np.array([0.0, 0, 0]), arch)
    assert fb["spike"].tolist() == [False, False, True] and int(v0[2]) == 30640


def test_import_notes_say_which_populations_fell_back():
    # A threshold of 0.01 (vth = round(655.36 / 64) = 10, compared as 640) and a bias of -0.625 (-40960) per step
    # over the two pre-roll steps: v0 would be 245760 (v1 = 81920, v2 = 0), and the first updated v above 640.
    # The largest v0 with v1 = trunc(v0 / 2) - 40960 <= 640 is 83201: noted, and v starts below the float model's.
    g = deep(nir.LIF(tau=np.array([2e-3]), r=np.array([2.0]), v_leak=np.array([0.0]),
                     v_threshold=np.array([0.01]), v_reset=np.array([0.0])), -0.625)
    net = nt.from_nir(g, dt=1e-3, discretization="euler", scales={"h": S})
    assert any("would fire the neuron before the float model's step 0 in ['h (1 of 1)']" in n for n in net.notes)
    assert int(net.groups["h"].params["v0"][0]) == 83201


def test_lif_initial_state_is_validated():
    nt.LIF(u0=-(1 << 23), v0=(1 << 23) - 1)
    with pytest.raises(nt.NetworkError, match=r"^LIF\.v0 must be between -8388607 and 8388607, not -8388608$"):
        nt.LIF(v0=-(1 << 23))
    with pytest.raises(nt.NetworkError, match=r"^LIF\.u0 must be between -8388608 and 8388607, not 8388608$"):
        nt.LIF(u0=np.array([0, 1 << 23]))
    with pytest.raises(nt.NetworkError, match=r"^LIF\.u0 must be integers, not 0\.5"):
        nt.LIF(u0=0.5)
    net = nt.Network()
    with pytest.raises(nt.NetworkError, match=r"^LIF\.v0 has 2 values but the population has 3 neurons"):
        net.population(3, nt.LIF(v0=[1, 2]))


@pytest.mark.parametrize("mode", ["reference", "functional", "cycle"])
def test_initial_state_reaches_the_image_every_engine_and_the_file(mode, tmp_path):
    # A random network with a random initial state (per neuron): every engine starts from the image's
    # neuron_state words, which compile() fills from LIF.u0 / LIF.v0, and matches the network model run from the
    # same state; the saved image keeps it, and Emulator.reset() goes back to it.
    base = T.random_network(3, profiles=None)
    rng = np.random.default_rng(3)
    net = nt.Network("state")
    net.input(base.groups["in"].n, name="in")
    for p in base.populations:
        lif = nt.LIF(**{k: p.params[k] for k in ("du", "dv", "vth", "bias_mant", "bias_exp")},
                     u0=rng.integers(-50000, 50000, p.n), v0=rng.integers(-20000, 20000, p.n))
        net.population(p.n, lif, name=p.name)
    for q in base.projections:
        net.connect(q.pre.name, q.post.name, (q.pre_idx, q.post_idx, q.weight), delay=q.delay,
                    weight_exp=q.weight_exp)
    net.output("p1")
    arch = nt.Arch()
    image = nt.compile(net, arch)
    for p in net.populations:
        loc = image.populations[p.name]
        for k in ("u", "v"):
            got = [image.cores[c].tables["neuron_state"][k][i] for c, i in zip(loc["core"], loc["local"])]
            assert got == p.params[k + "0"].tolist()
    image.save(tmp_path / "img.npz")
    image = nt.ChipImage.load(tmp_path / "img.npz")
    inputs = T.random_inputs(net, 20, 0.25, 3)
    probes = [(p.name, v) for p in net.populations for v in ("u", "v")]
    spikes, model_probes, _ = T.network_model(net, arch, inputs, probes=probes)
    emu = nt.Emulator(image, mode=mode, progress=False)
    for _ in range(2):                     # the second run after reset() starts from the same state
        res = emu.run(inputs, probes=probes)
        for name in spikes:
            assert np.array_equal(res.spikes[name], spikes[name]), name
        for key, arr in model_probes.items():
            assert np.array_equal(res.probes[key], arr), key
        emu.reset()
    zero = T.network_model(base, arch, inputs)[0]
    assert any(not np.array_equal(zero[k], spikes[k]) for k in spikes)     # the state made a difference


def test_to_nir_records_the_initial_state_and_reads_it_back(tmp_path):
    net = nt.from_nir(deep(cuba(), 0.3125), dt=1e-3, discretization="euler", scales={"h": S})
    g = nt.to_nir(net)
    assert g.nodes["h"].metadata["neurotile"]["u0"] == -163840
    assert g.nodes["h"].metadata["neurotile"]["v0"] == 81918
    nir.write(tmp_path / "g.nir", g)
    back = nt.from_nir(nir.read(tmp_path / "g.nir"), quantize=False)
    for k in ("u0", "v0"):
        assert np.array_equal(back.groups["h"].params[k], net.groups["h"].params[k])
    # as a float graph (quantize=True) the chip-unit state is not reused: the import pre-charges afresh (the
    # exported graph has order='delayed' and the bias in v_leak: nothing to pre-charge) and says so
    again = nt.from_nir(nir.read(tmp_path / "g.nir"))
    assert int(again.groups["h"].params["u0"][0]) == 0
    assert any("recorded in the metadata of ['h']" in n for n in again.notes)


def test_a_current_too_fast_for_its_latency_keeps_the_steady_state_and_says_so():
    # tau_syn = 0.25 ms at dt = 1 ms (exp): a_syn = exp(-4) = 0.018 (du = 4020, the chip keeps 75/4096 of u per
    # step). Two layers deep, u would have to start about 1 / 0.018**2 = 3000 times its target, -bias_u of about
    # -12700: beyond 24 bits. u0 = 0 there (the bias reaches v at its steady state at once), v0 still pre-charged.
    g = deep(nir.CubaLIF(tau_syn=np.array([2.5e-4]), tau_mem=np.array([2e-3]), r=np.array([1.0]),
                         v_leak=np.array([0.0]), v_threshold=np.array([1.0]), v_reset=np.array([0.0]),
                         w_in=np.array([1.0])), 0.5)
    net = nt.from_nir(g, scales={"h": S})
    p = net.groups["h"].params
    assert net.quantization["h"].bias_u[0] * 3000 > 1 << 23
    assert int(p["u0"][0]) == 0 and int(p["v0"][0]) < 0
    assert any("pre-charge of u does not fit 24 bits in ['h (1 of 1)']" in n for n in net.notes)
    assert any("tau_syn transient dropped; where u0 does not fit" in n for n in net.notes)
