"""Tests for the public emulator API: ``nt.Emulator``, ``first_divergence`` and the energy estimate.

Expected values: input formats are checked against the same spikes given as a bool array;
continuation and reset against one uninterrupted run; modes against each other (the functional
engine is checked against the reference in test_functional.py); energies against the counters
multiplied out by hand.
"""

import numpy as np
import pytest

import neurotile as nt
from neurotile.compiler.errors import EmulatorError, ImageError, NeurotileTypeError
from neurotile.emulator import (Divergence, EnergyTable, RunResult, first_divergence,
                                result_energy)
from neurotile.emulator import testing as T


@pytest.fixture(scope="module")
def image():
    # Input "in" (8 channels) -> p0 (24) -> p1 (16), recurrent, outputs p1; spread over cores.
    net = T.random_network(4, sizes=(24, 16), max_delay=4, profiles=None)
    return nt.compile(net, nt.Arch(mesh_w=2, mesh_h=2))


def spikes_in(steps=20, seed=0):
    return np.random.default_rng(seed).random((steps, 8)) < 0.3


def same(a, b, image=None):
    div = first_divergence(a, b, image)
    assert div is None, str(div)


# -- construction ----------------------------------------------------------------------------------

def test_construct_from_image_and_from_saved_path(image, tmp_path):
    path = tmp_path / "chip.npz"
    image.save(path)
    a = nt.Emulator(image, progress=False).run({"in": spikes_in()}, steps=20)
    for src in (path, str(path)):
        b = nt.Emulator(src, progress=False).run({"in": spikes_in()}, steps=20)
        same(a, b)


def test_construction_errors(image, tmp_path):
    with pytest.raises(NeurotileTypeError, match=r"Emulator needs an nt.ChipImage or the path of "
                                                 r"a saved one, not int"):
        nt.Emulator(3)
    with pytest.raises(ImageError, match=r"no chip image at"):
        nt.Emulator(tmp_path / "missing.npz")
    with pytest.raises(EmulatorError, match=r"mode must be one of 'functional', 'cycle', "
                                            r"'reference', not 'fast'"):
        nt.Emulator(image, mode="fast")
    with pytest.raises(EmulatorError, match=r"backend must be one of 'auto', 'numba', 'numpy', "
                                            r"not 'cuda'"):
        nt.Emulator(image, backend="cuda")
    with pytest.raises(EmulatorError, match=r"progress must be True, False or None \(automatic\), "
                                            r"not 'yes'"):
        nt.Emulator(image, progress="yes")
    with pytest.raises(NeurotileTypeError, match=r"energy must be an EnergyTable, not dict"):
        nt.Emulator(image, energy={"synop_pj": 1})


def test_image_is_validated_at_construction():
    # A packet to axon 3 of a core that has one axon: validate() refuses it (section 5's
    # bad_axon only happens with corrupt images).
    arch = nt.Arch()
    bad = T.hand_image(arch, [dict(pop="p", core=(0, 0), fanout=[(0, 1, 0, 3)]),
                              dict(pop="q", core=(1, 0))],
                       axons={(1, 0): [[(0, 1, 1, 0)]]})
    with pytest.raises(ImageError, match=r"addresses axon 3 of core \(1, 0\), which has 1 axons"):
        nt.Emulator(bad)


# -- inputs ----------------------------------------------------------------------------------------

def test_every_input_format_gives_the_same_run(image):
    steps = 20
    x = spikes_in(steps, 1)
    t, c = np.nonzero(x)
    forms = {
        "bool": x,
        "int": x.astype(np.int64),
        "uint8": x.astype(np.uint8),
        "float": x.astype(np.float32),
        "times": [np.flatnonzero(x[:, k]).tolist() for k in range(8)],
        "times_arrays": tuple(np.flatnonzero(x[:, k]) for k in range(8)),
        "events": {"times": t.tolist(), "channels": c.tolist()},
        "events_arrays": {"times": t, "channels": c},
    }
    emu = nt.Emulator(image, progress=False)
    base = emu.run({"in": x}, steps=steps)
    assert base.total("host_in") > 0
    for name, value in forms.items():
        emu.reset()
        same(base, emu.run({"in": value}, steps=steps), image)


def test_missing_inputs_are_silent_and_steps_come_from_arrays(image):
    emu = nt.Emulator(image, progress=False)
    silent = emu.run(steps=12)
    emu.reset()
    zeros = emu.run({"in": np.zeros((12, 8), bool)})      # steps taken from the array
    emu.reset()
    none = emu.run({"in": None}, steps=12)
    same(silent, zeros)
    same(silent, none)
    assert silent.steps == 12 and silent.total("host_in") == 0


@pytest.mark.parametrize("inputs,steps,message", [
    ({"nope": np.zeros((5, 8), bool)}, 5,
     r"unknown input 'nope'; the image's inputs are 'in'"),
    ({"in": np.zeros((5, 7), bool)}, 5,
     r"input 'in' must be an array of shape \[steps, 8\] \(one column per channel\), not \(5, 7\)"),
    ({"in": np.zeros(8, bool)}, 5,
     r"input 'in' must be an array of shape \[steps, 8\] .* not \(8,\)"),
    ({"in": np.zeros((6, 8), bool)}, 5,
     r"input 'in' has 6 rows but steps=5; give exactly one row per step \(nothing is truncated "
     r"or padded\)"),
    ({"in": np.zeros((4, 8), bool)}, 5, r"input 'in' has 4 rows but steps=5"),
    ({"in": np.full((5, 8), 0.5)}, 5,
     r"input 'in' must hold only 0 and 1 \(spike or not\), but step 0 channel 0 holds 0.5"),
    ({"in": np.eye(5, 8, dtype=np.int64) * 2}, 5,
     r"input 'in' must hold only 0 and 1 .* step 0 channel 0 holds 2"),
    ({"in": np.full((5, 8), np.nan)}, 5, r"input 'in' must hold only 0 and 1"),
    ({"in": np.full((5, 8), "x")}, 5, r"input 'in' must hold bools \(or 0/1 numbers\), not <U1"),
    ({"in": [[0]] * 7}, 5,
     r"input 'in' as spike times must be a list of 8 lists \(one per channel\), not of 7"),
    ({"in": [[0], [5]] + [[]] * 6}, 5,
     r"input 'in': channel 1 spikes at step 5, outside 0..4 \(steps=5\)"),
    ({"in": [[-1]] + [[]] * 7}, 5, r"input 'in': channel 0 spikes at step -1, outside 0..4"),
    ({"in": [[1, 1]] + [[]] * 7}, 5,
     r"input 'in': channel 0 spikes twice in step 1; a channel spikes at most once per step"),
    ({"in": [[0.5]] + [[]] * 7}, 5,
     r"input 'in': channel 0's spike times must be a flat list of integers"),
    ({"in": [3] + [[]] * 7}, 5,
     r"input 'in': channel 0's spike times must be a list of steps, not 3"),
    ({"in": {"times": [1]}}, 5,
     r"input 'in' as events must be a dict with keys 'times' and 'channels', not \['times'\]"),
    ({"in": {"times": [1, 2], "channels": [0]}}, 5,
     r"input 'in': 'times' has 2 entries but 'channels' has 1; they must pair up"),
    ({"in": {"times": [1], "channels": [8]}}, 5,
     r"input 'in': channel 8 does not exist; channels are 0..7"),
    ({"in": {"times": [9], "channels": [2]}}, 5,
     r"input 'in': channel 2 spikes at step 9, outside 0..4"),
    (None, 0, r"steps must be at least 1, not 0"),
    (None, -3, r"steps must be at least 1, not -3"),
    (None, 2.0, r"steps must be an int, not 2.0"),
    (None, True, r"steps must be an int, not True"),
    (None, None, r"steps=\.\.\. is needed: it can only be taken from input arrays, and none "
                 r"was given"),
    ({"in": [[]] * 8}, None, r"steps=\.\.\. is needed"),
])
def test_input_errors(image, inputs, steps, message):
    emu = nt.Emulator(image, progress=False)
    with pytest.raises(EmulatorError, match=message):
        emu.run(inputs, steps=steps)
    assert emu.state.t == 0          # nothing ran


def test_inputs_must_be_a_dict(image):
    with pytest.raises(NeurotileTypeError, match=r"inputs must be a dict of input name to spikes, "
                                                 r"not list"):
        nt.Emulator(image, progress=False).run([np.zeros((5, 8), bool)], steps=5)


# -- probes ----------------------------------------------------------------------------------------

def test_probe_forms(image):
    emu = nt.Emulator(image, progress=False)
    r1 = emu.run({"in": spikes_in()}, probes=["p0.v", ("p1", "u")])
    emu.reset()
    r2 = emu.run({"in": spikes_in()}, probes="p0.v")
    emu.reset()
    r3 = emu.run({"in": spikes_in()}, probes=("p0", "v"))
    assert set(r1.probes) == {"p0.v", "p1.u"}
    assert r1.probes["p0.v"].shape == (20, 24) and r1.probes["p1.u"].shape == (20, 16)
    np.testing.assert_array_equal(r2.probes["p0.v"], r1.probes["p0.v"])
    np.testing.assert_array_equal(r3.probes["p0.v"], r1.probes["p0.v"])


@pytest.mark.parametrize("probe,message", [
    ("p0.w", r"probe p0.w: the variable must be 'u' or 'v', not 'w'"),
    ("nope.v", r"probe nope.v: no population 'nope'; populations: 'p0', 'p1'"),
    ("p0", r"probe 'p0' must be 'population.u' or 'population.v'"),
    (3, r"a probe must be 'population.v' \(or .u\) or a \(population, variable\) pair, not 3"),
])
def test_probe_errors(image, probe, message):
    with pytest.raises(EmulatorError, match=message):
        nt.Emulator(image, progress=False).run(steps=3, probes=[probe])


# -- state: continuation and reset -----------------------------------------------------------------

@pytest.mark.parametrize("mode", ["functional", "reference", "cycle"])
def test_run_continues_and_reset_restores(image, mode):
    x = spikes_in(25, 2)
    emu = nt.Emulator(image, mode=mode, progress=False)
    whole = emu.run({"in": x}, probes=["p1.v"])
    end = emu.state.copy()
    state = emu.state
    emu.reset()
    assert emu.state is state and emu.state.t == 0 and not emu.state.acc.any()
    first = emu.run({"in": x[:10]}, probes=["p1.v"])
    second = emu.run({"in": x[10:]}, probes=["p1.v"])
    assert (first.start_step, second.start_step, emu.state.t) == (0, 10, 25)
    assert emu.state.equals(end)
    np.testing.assert_array_equal(np.concatenate([first.spikes["p1"], second.spikes["p1"]]),
                                  whole.spikes["p1"])
    np.testing.assert_array_equal(np.concatenate([first.probes["p1.v"], second.probes["p1.v"]]),
                                  whole.probes["p1.v"])
    for name in ("synops", "link", "hops"):
        np.testing.assert_array_equal(
            np.concatenate([first.counters[name], second.counters[name]]), whole.counters[name])


def test_reset_clears_flags():
    arch = nt.Arch(mesh_w=3, mesh_h=2)
    case = T.edge_network("acc_sat", arch)
    emu = nt.Emulator(nt.compile(case.network, arch), progress=False)
    res = emu.run(case.inputs)
    assert res.flags["acc_sat"] and emu.state.flag_step["acc_sat"] == 1
    emu.reset()
    assert not emu.state.flags["acc_sat"] and emu.state.flag_step["acc_sat"] == -1


def test_modes_agree(image):
    x = {"in": spikes_in(15, 3)}
    results = {m: nt.Emulator(image, mode=m, progress=False).run(x, probes=["p0.u", "p1.v"])
               for m in ("functional", "reference", "cycle")}
    assert {m: r.mode for m, r in results.items()} == {m: m for m in results}
    # first_divergence compares the counters both hold: cycle's clock counts are extra.
    same(results["reference"], results["functional"], image)
    same(results["cycle"], results["functional"], image)
    assert results["cycle"].cycles is not None and results["functional"].cycles is None
    nb = nt.Emulator(image, backend="numpy", progress=False).run(x, probes=["p0.u", "p1.v"])
    same(nb, results["functional"], image)


def test_progress_bar(image, capsys):
    nt.Emulator(image, progress=True).run(steps=30)
    assert "neurotile functional" in capsys.readouterr().err
    nt.Emulator(image, progress=False).run(steps=30)
    nt.Emulator(image).run(steps=30)       # automatic: stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""


# -- first_divergence ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair(image):
    emu = nt.Emulator(image, progress=False)
    res = emu.run({"in": spikes_in(20, 5)}, probes=["p0.v"])
    return res


def copy_result(r):
    return RunResult(r.mode, r.steps, r.start_step, {k: v.copy() for k, v in r.spikes.items()},
                     {k: v.copy() for k, v in r.probes.items()},
                     {k: v.copy() for k, v in r.counters.items()}, dict(r.flags),
                     dict(r.flag_step))


def test_first_divergence_none_on_equal_results(pair):
    assert first_divergence(pair, copy_result(pair)) is None


def test_first_divergence_finds_an_injected_spike(image, pair):
    b = copy_result(pair)
    b.spikes["p1"][7, 3] ^= True
    b.spikes["p1"][12, 0] ^= True           # later: not the first
    div = first_divergence(pair, b, image)
    core, local = (int(image.populations["p1"][k][3]) for k in ("core", "local"))
    assert isinstance(div, Divergence)
    assert (div.step, div.kind, div.name, div.neuron, div.core, div.local) == \
        (7, "spikes", "p1", 3, core, local)
    assert div.a == bool(pair.spikes["p1"][7, 3]) and div.b != div.a
    text = str(div)
    assert "\n" not in text
    assert text.startswith(f"step 7: spikes of 'p1' neuron 3 (core {core} at "
                           f"({core % 2}, {core // 2}), local neuron {local})")
    # Without an image: the neuron only.
    assert str(first_divergence(pair, b)).startswith("step 7: spikes of 'p1' neuron 3: a=")


def test_first_divergence_orders_by_step_then_probe_spike_counter_flag(image, pair):
    b = copy_result(pair)
    b.counters["synops"][4, 1] += 1
    b.counters["link"][4, 2, 1] += 1
    b.spikes["p0"][5, 0] ^= True
    div = first_divergence(pair, b, image)
    assert (div.step, div.kind, div.name, div.core) == (4, "counter", "synops", 1)
    assert str(div) == (f"step 4: counter 'synops' core 1 at (1, 0): "
                        f"a={int(pair.counters['synops'][4, 1])}, "
                        f"b={int(pair.counters['synops'][4, 1]) + 1}")
    b.probes["p0.v"][4, 2] += 1               # a probe in the same step comes first
    assert first_divergence(pair, b, image).kind == "probe"
    c = copy_result(pair)
    c.counters["link"][3, 2, 1] += 1
    div = first_divergence(pair, c)
    assert (div.step, div.name, div.core, div.port) == (3, "link", 2, "E")


def test_first_divergence_flags_and_lengths_and_start(pair):
    b = copy_result(pair)
    b.flags["acc_sat"] = True
    b.flag_step["acc_sat"] = 9
    div = first_divergence(pair, b)
    assert (div.step, div.kind, div.name) == (9, "flag", "acc_sat")
    assert str(div) == "step 9: flag 'acc_sat' a not raised, b raised in chip step 9"
    short = copy_result(pair)
    short.steps = 15
    for k in short.spikes:
        short.spikes[k] = short.spikes[k][:15]
    div = first_divergence(pair, short)
    assert (div.kind, div.step, div.a, div.b) == ("steps", 15, 20, 15)
    assert str(div) == "runs differ in length: a has 20 steps, b has 15; they agree on the first 15"
    later = copy_result(pair)
    later.start_step = 5
    assert first_divergence(pair, later).kind == "start_step"
    with pytest.raises(NeurotileTypeError, match=r"first_divergence needs two RunResults; b is a "
                                                 r"dict"):
        first_divergence(pair, {})


# -- energy ----------------------------------------------------------------------------------------

def test_energy_is_the_counters_times_the_table(image, pair):
    e = nt.Emulator(image, progress=False).energy(pair)
    c = pair.counters
    link = c["link"]
    ew = link[..., 1].sum() + link[..., 3].sum() - c["host_out"].sum()   # host exit is no hop
    ns = link[..., 0].sum() + link[..., 2].sum()
    assert ew + ns == pair.total("hops")
    # Default table (Loihi): 23.6 pJ per synaptic op, 52 pJ per neuron update, 1.7 nJ per
    # within-tile spike (packet), 3.0 / 4.0 pJ per E-W / N-S hop.
    expect = {"synops": pair.total("synops") * 23.6e-12,
              "neuron_updates": pair.total("updates") * 52e-12,
              "packets": pair.total("packets_out") * 1.7e-9,
              "hops": ew * 3.0e-12 + ns * 4.0e-12, "host": 0.0, "static": 0.0}
    for k, v in expect.items():
        assert e[k] == pytest.approx(v, rel=1e-12), k
    assert e["total"] == pytest.approx(sum(expect.values()), rel=1e-12)


def test_energy_is_linear_in_the_table_and_the_counters(pair):
    t = EnergyTable(synop_pj=2.0, neuron_update_pj=3.0, packet_pj=5.0, hop_ew_pj=7.0,
                    hop_ns_pj=11.0, host_packet_pj=13.0)
    e1 = result_energy(pair, t)
    e2 = result_energy(pair, t.replace(**{f: 2 * getattr(t, f) for f in
                                          ("synop_pj", "neuron_update_pj", "packet_pj",
                                           "hop_ew_pj", "hop_ns_pj", "host_packet_pj")}))
    double = copy_result(pair)
    for k in double.counters:
        double.counters[k] = double.counters[k] * 2
    e3 = result_energy(double, t)
    for k in e1:
        assert e2[k] == pytest.approx(2 * e1[k]) and e3[k] == pytest.approx(2 * e1[k])
    assert e1["host"] == pytest.approx((pair.total("host_in") + pair.total("host_out")) * 13e-12)
    odin = result_energy(pair, EnergyTable.odin())
    assert odin["total"] == pytest.approx(pair.total("synops") * 12.7e-12)


def test_static_energy_needs_cycles(image, pair):
    table = EnergyTable(static_pj_per_cycle=10.0)
    with pytest.raises(EmulatorError, match=r"EnergyTable.static_pj_per_cycle=10.0 needs clock "
                                            r"cycles, but this 'functional' result has none: run "
                                            r"in mode 'cycle' or set static_pj_per_cycle=0"):
        result_energy(pair, table)
    emu = nt.Emulator(image, mode="cycle", energy=table, progress=False)
    res = emu.run(steps=5)
    assert emu.energy(res)["static"] == pytest.approx(res.total("cycles") * 10e-12)


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(synop_pj=-1.0), EmulatorError, r"EnergyTable.synop_pj must be a finite energy >= 0 pJ, "
                                         r"not -1.0"),
    (dict(hop_ns_pj=float("inf")), EmulatorError, r"EnergyTable.hop_ns_pj must be a finite"),
    (dict(packet_pj="1"), NeurotileTypeError, r"EnergyTable.packet_pj must be a number, not '1'"),
    (dict(name=3), NeurotileTypeError, r"EnergyTable.name must be a str, not 3"),
])
def test_energy_table_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        EnergyTable(**kwargs)


def test_link_utilisation_is_transfers_over_spike_cycles(image):
    # Utilisation divides each router port's transfers by the step's SPIKE-phase cycles, so it
    # lies in [0, 1] (one transfer per port per cycle at most) and times spike_cycles gives back
    # the integer link counts exactly.
    r = nt.Emulator(image, mode="cycle", progress=False).run({"in": spikes_in(12, 3)}, steps=12)
    util = r.link_utilisation()
    assert util.shape == r.counters["link"].shape
    assert r.total("link") > 0 and 0 < util.max() <= 1 and util.min() >= 0
    back = np.rint(util * r.counters["spike_cycles"][:, None, None]).astype(np.int64)
    np.testing.assert_array_equal(back, r.counters["link"])


def test_link_utilisation_needs_a_cycle_mode_run(image):
    r = nt.Emulator(image, progress=False).run(steps=2)
    with pytest.raises(nt.EmulatorError, match=r"link utilisation needs cycle counts; this "
                                               r"'functional' run has none: run with mode='cycle'"):
        r.link_utilisation()
