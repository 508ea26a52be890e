"""Tests for the pipelined LIF datapath (:mod:`neurotile.hdl.neuron`).

Expected values come from the golden integer model :func:`neurotile.emulator.neuron.lif_update`
(docs/architecture.md section 4), applied to the same seeded random neurons that are streamed
through the Amaranth simulation back to back, one per clock. The random draws are biased towards
the edges the arithmetic must get right: u near +-2^23 (the wrap of u'), v at and beyond its clamps
+-(2^23 - 1) and at -2^23 (a value only a loaded image can hold), accumulators just inside and
beyond the 18-bit input range and at the ends of ``acc_bits``, the extreme decay factors, the
largest bias ``mant << 7`` and thresholds 0 and 2^17 - 1.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

import neurotile as nt
from neurotile.emulator.neuron import lif_update
from neurotile.hdl.neuron import NeuronDatapath

MODES = [(d, r) for d in ("loihi", "shift") for r in ("zero", "subtract")]


def _pick(rng, n, uniform, edges, p_edge=0.35):
    """``n`` values: uniform draws, a fraction ``p_edge`` replaced by edge values."""
    out = np.asarray(uniform, np.int64)
    mask = rng.random(n) < p_edge
    out[mask] = rng.choice(np.asarray(edges, np.int64), int(mask.sum()))
    return out


def random_neurons(arch, n, seed, *, shift_k_max=23):
    """Seeded random neuron inputs (state, accumulator, profile) with the edges over-represented."""
    rng = np.random.default_rng(seed)
    h = 1 << 23
    state_edges = [-h, -h + 1, -h + 2, h - 1, h - 2, -1, 0, 1, h - 64, -h + 64, 1 << 22, -(1 << 22)]
    amax = 1 << (arch.acc_bits - 1)
    acc_edges = [(1 << 17) - 1, 1 << 17, (1 << 17) + 1, -(1 << 17), -(1 << 17) - 1, -amax, amax - 1,
                 0, 1, -1]
    u = _pick(rng, n, rng.integers(-h, h, n), state_edges)
    v = _pick(rng, n, rng.integers(-h, h, n), state_edges)
    # Half the accumulators within +-2^18 (mostly inside the input range), half over all acc_bits.
    acc = np.where(rng.random(n) < 0.5, rng.integers(-(1 << 18), 1 << 18, n), rng.integers(-amax, amax, n))
    acc = np.clip(_pick(rng, n, acc, acc_edges), -amax, amax - 1)    # an acc_bits register's range
    if arch.decay_mode == "loihi":
        du = _pick(rng, n, rng.integers(0, 4096, n), [0, 1, 4094, 4095])
        dv = _pick(rng, n, rng.integers(0, 4096, n), [0, 1, 4094, 4095])
    else:
        du = _pick(rng, n, rng.integers(0, shift_k_max + 1, n), [0, 1, 22, 23, shift_k_max])
        dv = _pick(rng, n, rng.integers(0, shift_k_max + 1, n), [0, 1, 22, 23, shift_k_max])
    vth = _pick(rng, n, rng.integers(0, 1 << 17, n), [0, 1, (1 << 17) - 1, 1 << 16])
    bias_mant = _pick(rng, n, rng.integers(-4096, 4096, n), [-4096, 4095, 0, -1, 1])
    bias_exp = _pick(rng, n, rng.integers(0, 8, n), [0, 7])
    return dict(u=u, v=v, a=acc, du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp)


def run_datapath(arch, neurons, seed=0, gaps=0.1):
    """Stream ``neurons`` through a NeuronDatapath; return (u, v, spike, saturated) arrays.

    ``gaps`` is the probability of an idle cycle (valid = 0) between two neurons, to check that only
    valid neurons come out; the rest are presented back to back.
    """
    dut = NeuronDatapath(arch)
    n = len(neurons["u"])
    rng = np.random.default_rng(seed)
    schedule = []                                   # per cycle: neuron index or None
    for k in range(n):
        while rng.random() < gaps:
            schedule.append(None)
        schedule.append(k)
    out = {"u": [], "v": [], "spike": [], "saturated": []}
    issued_at = {}

    async def testbench(ctx):
        cycle = 0
        for k in schedule + [None] * (NeuronDatapath.LATENCY + 1):
            if k is None:
                ctx.set(dut.valid, 0)
            else:
                issued_at[k] = cycle
                ctx.set(dut.valid, 1)
                ctx.set(dut.state, {"u": int(neurons["u"][k]), "v": int(neurons["v"][k])})
                ctx.set(dut.acc, {"value": int(neurons["a"][k])})
                ctx.set(dut.profile, {f: int(neurons[f][k])
                                      for f in ("du", "dv", "vth", "bias_mant", "bias_exp")})
            if ctx.get(dut.out_valid):
                j = len(out["u"])
                # Fixed latency: neuron j was presented exactly LATENCY cycles ago.
                assert issued_at[j] == cycle - NeuronDatapath.LATENCY
                out["u"].append(ctx.get(dut.out_state.u))
                out["v"].append(ctx.get(dut.out_state.v))
                out["spike"].append(ctx.get(dut.spike))
                out["saturated"].append(ctx.get(dut.saturated))
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert len(out["u"]) == n
    return tuple(np.array(out[f], np.int64) for f in ("u", "v", "spike", "saturated"))


def expected(arch, nrn):
    u, v, spike, sat = lif_update(nrn["u"], nrn["v"], nrn["a"], nrn["du"], nrn["dv"], nrn["vth"],
                                  nrn["bias_mant"], nrn["bias_exp"],
                                  decay_mode=arch.decay_mode, reset_mode=arch.reset_mode)
    return u, v, spike.astype(np.int64), sat.astype(np.int64)


def check(arch, nrn, got):
    want = expected(arch, nrn)
    for name, g, w in zip(("u", "v", "spike", "saturated"), got, want):
        bad = np.flatnonzero(g != w)
        if bad.size:
            k = int(bad[0])
            case = {f: int(nrn[f][k]) for f in nrn}
            pytest.fail(f"{name} differs for {bad.size} of {len(g)} neurons; first: neuron {k} "
                        f"{case}: rtl {int(g[k])}, lif_update {int(w[k])}")


@pytest.mark.parametrize("decay_mode, reset_mode", MODES)
def test_datapath_matches_lif_update_on_random_and_edge_neurons_streamed_back_to_back(decay_mode, reset_mode):
    arch = nt.Arch(decay_mode=decay_mode, reset_mode=reset_mode)
    nrn = random_neurons(arch, 3000, seed=MODES.index((decay_mode, reset_mode)))
    check(arch, nrn, run_datapath(arch, nrn, seed=1))


@pytest.mark.parametrize("acc_bits, decay_mode, reset_mode", [(18, "loihi", "subtract"), (32, "shift", "zero")])
def test_datapath_saturates_the_input_for_the_narrowest_and_widest_accumulators(acc_bits, decay_mode, reset_mode):
    # acc_bits = 18: sat18 can never trigger; 32: accumulators far beyond 2^17 must clamp and flag.
    arch = nt.Arch(acc_bits=acc_bits, decay_mode=decay_mode, reset_mode=reset_mode)
    nrn = random_neurons(arch, 400, seed=acc_bits)
    got = run_datapath(arch, nrn, seed=2, gaps=0.0)
    check(arch, nrn, got)
    assert got[3].any() == (acc_bits > 18)


def test_shift_amounts_beyond_23_act_as_the_arithmetic_shift():
    # Beyond the compiler's range (k <= 23) the hardware still computes x - (x >> k); for a 24-bit x,
    # x >> k = x >> 23 (the sign) for every k >= 23, so lif_update with k clamped to 23 is exact.
    arch = nt.Arch(decay_mode="shift", reset_mode="subtract")
    nrn = random_neurons(arch, 300, seed=7, shift_k_max=4095)
    got = run_datapath(arch, nrn, seed=3, gaps=0.0)
    clamped = dict(nrn, du=np.minimum(nrn["du"], 23), dv=np.minimum(nrn["dv"], 23))
    assert (nrn["du"] > 23).any() and (nrn["dv"] > 63).any()
    check(arch, clamped, got)


def test_hand_computed_loihi_cases():
    # u = -2^23 with du = 0 decays by 1/4096 toward zero: -(2^23 * 4095 >> 12) = -8386560; with a
    # saturating input (a = 2^20 -> i = 2^17 - 1, i << 6 = 8388544) u' = 1984.  v = 2^23 - 1,
    # dv = 0, u' = -2016, bias 4095 << 7 = 524160: v' = sat24(8388607 + 1984 + 524160) = 8388607 >
    # 100 << 6, so it spikes and resets to 0.
    arch = nt.Arch(decay_mode="loihi", reset_mode="zero")
    nrn = {k: np.array([x], np.int64) for k, x in dict(
        u=-(1 << 23), v=(1 << 23) - 1, a=1 << 20, du=0, dv=0, vth=100, bias_mant=4095, bias_exp=7).items()}
    u, v, spike, sat = run_datapath(arch, nrn, gaps=0.0)
    assert (u[0], v[0], spike[0], sat[0]) == (1984, 0, 1, 1)


def test_datapath_rejects_a_non_arch():
    with pytest.raises(nt.NeurotileTypeError, match=r"^arch must be an nt.Arch, not 3$"):
        NeuronDatapath(3)
