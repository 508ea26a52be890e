"""Co-simulation (:mod:`neurotile.sim.cosim`): the generated chip in Verilator, bit- and cycle-exact
against the emulator.

Every test loads a chip image into the Verilog that ``neurotile rtl`` writes (built once per Arch
inside the bench ``sim/cosim_top.v``, cached on disk), drives it only through its host port with
:class:`~neurotile.hdl.protocol.HostClient` (INJECT, RUN 1, READ_OUTPUT, READ_COUNTERS per step) and
compares the result with ``nt.Emulator(image, mode="cycle")`` on the same image and inputs: the
spikes of every output population (the random networks mark every population as an output, so
every spike is compared), every per-step counter of the cycle engine (updates, spikes,
packets_out, packets_in, synops, host_in, host_out, hops, link, fanout_busy, syn_busy,
update_cycles, spike_cycles, cycles) and the sticky flags with the step each was first raised in.
The expected values are the emulator's; nothing is written down by hand except where a comment
says why a flag must (or must not) be raised.

The architectures are few (each is a Verilator build) and small (16- and 32-neuron cores, so a
build takes seconds once Verilator's runtime is compiled), and together they cover meshes 1x1,
2x1, 2x2 and 3x2, both decay modes and both reset modes, FIFOs of depth 1, 2 and 4 and a short
step_timeout. One simulator process per Arch serves every test of that Arch: each test loads its
own image, which is what a host does with a running chip.
"""

import time

import numpy as np
import pytest
from click.testing import CliRunner

import neurotile as nt
import neurotile.__main__ as cli
from neurotile.emulator import first_divergence
from neurotile.emulator.cycle import CycleEngine
from neurotile.emulator.state import ChipState
from neurotile.emulator.testing import (EDGE_KINDS, edge_network, hand_image, random_inputs,
                                        random_network)
from neurotile.sim.build import _fst_missing, build_chip, simulator_available

REASON = simulator_available("verilator")
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"co-simulation needs Verilator and "
                                                           f"cocotb: {REASON}")

_SMALL = dict(neurons_per_core=16, profiles_per_core=4, axons_per_core=128, synapses_per_core=1024,
              fanout_per_core=128, max_delay=4, host_in_depth=128, host_out_depth=64)

#: The chips under test, one Verilator build each.
ARCHS = {
    # the default modes and FIFO depths on the default mesh shape
    "2x2": nt.Arch(mesh_w=2, mesh_h=2, **_SMALL, name="cosim-2x2"),
    # one core, the other two modes, 32 neurons, delays up to 8
    "1x1": nt.Arch(mesh_w=1, mesh_h=1, **{**_SMALL, "neurons_per_core": 32, "profiles_per_core": 8,
                                          "max_delay": 8},
                   fifo_depth=2, core_fifo_depth=2, decay_mode="shift", reset_mode="subtract",
                   name="cosim-1x1"),
    # non-square, every FIFO of depth 1 (heavy back-pressure), a step_timeout that busy steps
    # exceed, 20-bit accumulators, subtractive reset
    "3x2": nt.Arch(mesh_w=3, mesh_h=2, **{**_SMALL, "host_out_depth": 128}, fifo_depth=1,
                   core_fifo_depth=1, acc_bits=20, step_timeout=96, reset_mode="subtract",
                   name="cosim-3x2"),
    # a row, shift decay with reset to zero, 6-bit weights, delays 1..2
    "2x1": nt.Arch(mesh_w=2, mesh_h=1, **{**_SMALL, "max_delay": 2}, fifo_depth=2,
                   core_fifo_depth=1, weight_bits=6, decay_mode="shift", name="cosim-2x1"),
    # the ice40up5k profile's 16-bit counters and single-port synapse memory, a synapse memory
    # big enough for steps whose counts pass 2^16, and a step_timeout just above 2^16
    "1x1-c16": nt.Arch(mesh_w=1, mesh_h=1, **{**_SMALL, "synapses_per_core": 75000},
                       counter_bits=16, synapse_ram="spram", step_timeout=(1 << 16) + 1,
                       name="cosim-1x1-c16"),
}
#: Population sizes of the random networks: several cores of each mesh.
SIZES = {"2x2": (20, 16, 12), "1x1": (14, 10), "3x2": (30, 24, 20), "2x1": (12, 10),
         "1x1-c16": (9, 7)}


class Chips:
    """One running :class:`~neurotile.sim.cosim.CosimChip` per Arch, started on first use.

    A chip whose session failed (simulator gone, protocol error) is closed and replaced by the
    next request, so one failure does not cascade into the following tests.
    """

    def __init__(self):
        self.running = {}
        self.timings = {}

    def __call__(self, name):
        from neurotile.sim.cosim import CosimChip
        chip = self.running.get(name)
        if chip is None:
            start = time.perf_counter()
            chip = self.running[name] = CosimChip(ARCHS[name])
            self.timings[name] = (chip.build.seconds, chip.build.cached,
                                  time.perf_counter() - start)
        return chip

    def discard(self, name):
        chip = self.running.pop(name, None)
        if chip is not None:
            chip._failed = True
            chip.close()

    def close(self):
        for name in list(self.running):
            self.running.pop(name).close()


@pytest.fixture(scope="module")
def chips():
    running = Chips()
    yield running
    running.close()
    for name, (build, cached, start) in running.timings.items():
        print(f"\ncosim {name}: build {build:.1f} s ({'cached' if cached else 'built'}), "
              f"session start {start:.1f} s")


def emulate(image, inputs, steps, validate=True):
    """The expected result: the emulator's cycle mode (its engine directly for corrupt images)."""
    if validate:
        return nt.Emulator(image, mode="cycle", progress=False).run(inputs, steps)
    channels = np.concatenate([np.asarray(inputs[name], bool) for name in image.inputs], axis=1)
    return CycleEngine(image).run(ChipState.from_image(image), channels)


def assert_same(expected, got, image):
    assert got.mode == "rtl"
    assert set(got.counters) == set(expected.counters), "every counter is compared"
    assert set(got.spikes) == set(image.outputs["names"])
    divergence = first_divergence(expected, got, image)
    assert divergence is None, f"RTL (b) differs from the cycle engine (a): {divergence}"
    assert got.flag_step == expected.flag_step


def check(chips, name, image, inputs, steps, validate=True):
    """Load ``image`` into the running chip of ``name``, run it and compare with the emulator."""
    expected = emulate(image, inputs, steps, validate)
    chip = chips(name)
    try:
        chip.load(image, validate=validate)
        got = chip.run(inputs, steps)
    except Exception:
        chips.discard(name)
        raise
    assert_same(expected, got, image)
    return expected, got


def random_case(name, seed, recurrent=True, steps=40, rate=0.3):
    arch = ARCHS[name]
    w = 1 << (arch.weight_bits - 1)
    net = random_network(seed, n_inputs=8, sizes=SIZES[name], profiles=2,
                         max_delay=arch.max_delay, decay_mode=arch.decay_mode,
                         recurrent=recurrent, weight_range=(-w, w - 1), outputs="all")
    return nt.compile(net, arch), random_inputs(net, steps, rate, seed + 100)


# -- random networks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ARCHS))
@pytest.mark.parametrize("recurrent", [True, False], ids=["recurrent", "feedforward"])
@pytest.mark.parametrize("seed", [1, 2])
def test_random_network_matches_the_cycle_engine(chips, name, recurrent, seed):
    image, inputs = random_case(name, seed, recurrent)
    expected, _ = check(chips, name, image, inputs, 40)
    assert expected.spike_count() > 0 and expected.total("hops") + expected.total("synops") > 0


@pytest.mark.parametrize("name", list(ARCHS))
def test_host_inputs_in_every_step_match(chips, name):
    # Every input channel spikes in every step: the host injector pushes into the W FIFO of
    # router (0, 0) in every SPIKE phase, against the back-pressure of the mesh.
    image, inputs = random_case(name, 3, steps=30, rate=1.0)
    expected, _ = check(chips, name, image, inputs, 30)
    assert (expected.counters["host_in"] > 0).all()


def test_delays_fill_every_slot_of_the_accumulator_ring(chips):
    # Delays 1..8 on the 1x1 chip (max_delay 8): each slot of the ring is written and read.
    arch = ARCHS["1x1"]
    net = random_network(5, n_inputs=8, sizes=(16, 12), p=0.5, profiles=2, max_delay=8,
                         decay_mode=arch.decay_mode, outputs="all")
    delays = np.concatenate([proj.delay for proj in net.projections])
    assert set(delays.tolist()) == set(range(1, 9))
    check(chips, "1x1", nt.compile(net, arch), random_inputs(net, 50, 0.25, 9), 50)


# -- edges of the arithmetic and of the mesh ---------------------------------------------------------

@pytest.mark.parametrize("name", list(ARCHS))
@pytest.mark.parametrize("kind", [k for k in EDGE_KINDS if k != "congestion"])
def test_saturation_and_wrap_edges_match(chips, name, kind):
    case = edge_network(kind, ARCHS[name])
    expected, _ = check(chips, name, nt.compile(case.network, ARCHS[name]), case.inputs,
                        case.steps)
    # acc_sat saturates the dendritic input (section 4) and must raise the flag; the other two
    # edges stay inside 18 bits.
    assert expected.flags["acc_sat"] == (kind == "acc_sat")


@pytest.mark.parametrize("name", ["2x2", "3x2", "2x1"])
def test_heavy_congestion_matches(chips, name):
    # Every src neuron and all 64 input channels fire in every step onto one core.
    case = edge_network("congestion", ARCHS[name])
    expected, _ = check(chips, name, nt.compile(case.network, ARCHS[name]), case.inputs,
                        case.steps)
    assert expected.counters["spike_cycles"].max() > 64


@pytest.mark.parametrize("k, timed_out", [(25000, True), (20000, False)])
def test_16_bit_counters_wrap_like_the_emulator_and_the_timeout_counts_on(chips, k, timed_out):
    # Neuron 0 fires every step and sends 3 packets to its own core, each with k weight-0
    # synapses: 3k synops and about 3k SPIKE-phase cycles a step. At k = 25000 the counts pass
    # 2^16 (the chip reports them modulo 2^16, as the emulator does) and the SPIKE phase the
    # step_timeout of 2^16 + 1; at k = 20000 neither.
    arch = ARCHS["1x1-c16"]
    image = hand_image(
        arch,
        [dict(pop="src", core=(0, 0), du=4095, vth=0, bias_mant=1,
              fanout=[(0, 0, 0, a) for a in range(3)]),
         dict(pop="dst", core=(0, 0), du=4095, vth=(1 << 17) - 1)],
        axons={(0, 0): [[(1, 0, 1, 0)] * k for _ in range(3)]},
        inputs={"in": [[(0, 0, 0)]]})                      # one channel, never active
    if timed_out:                               # (the emulator says that the counts wrapped)
        with pytest.warns(nt.NeurotileWarning, match="16-bit register"):
            expected, got = check(chips, "1x1-c16", image, {"in": np.zeros((3, 1), bool)}, 3,
                                  validate=False)
    else:
        expected, got = check(chips, "1x1-c16", image, {"in": np.zeros((3, 1), bool)}, 3,
                              validate=False)
    assert expected.counters["synops"].tolist() == [[3 * k % (1 << 16)]] * 3
    assert (expected.flag_step["step_timeout"] == 0) is timed_out


def test_step_timeout_is_raised_in_the_same_step(chips):
    # The 3x2 chip's step_timeout is 96 SPIKE-phase cycles. Without input the first steps are
    # quiet (3 SPIKE-phase cycles, until the biased neurons fire) and stay under it; the busy
    # steps that follow exceed it, and the flag records the first of them.
    image, inputs = random_case("3x2", 4, steps=30, rate=0.6)
    inputs = {k: v.copy() for k, v in inputs.items()}
    for v in inputs.values():
        v[:3] = False
    expected, _ = check(chips, "3x2", image, inputs, 30)
    assert expected.flag_step["step_timeout"] > 0


def test_bad_axon_and_bad_route_flags_match(chips):
    # A hand-built corrupt image on the 3x2 chip (x_bits = 2, so x = 3 is off the mesh): input
    # channel 1 sends a packet east off the mesh (bad_route), channel 2 one to axon 5 of a core
    # with one axon (bad_axon); neuron p fires to the host. The cycle engine is the reference.
    arch = ARCHS["3x2"]
    image = hand_image(arch, [{"pop": "p", "core": (0, 0), "vth": 1, "du": 4095,
                               "fanout": [(1, 0, 0, 0)]},
                              {"pop": "q", "core": (2, 1), "vth": 1, "du": 4095}],
                       axons={(0, 0): [[(0, 100, 1, 0)]], (2, 1): [[(0, 100, 1, 0)]]},
                       inputs={"in": [[(0, 0, 0)], [(3, 0, 0)], [(0, 0, 5)], [(2, 1, 0)]]})
    ch = np.zeros((6, 4), bool)
    ch[0, 0] = ch[1, 1] = ch[3, 2] = ch[4, 3] = True
    expected, _ = check(chips, "3x2", image, {"in": ch}, 6, validate=False)
    assert expected.flag_step["bad_route"] == 1 and expected.flag_step["bad_axon"] == 3


# -- the host side -----------------------------------------------------------------------------------

def test_input_forms_of_the_emulator_give_the_same_run(chips):
    # The same spikes as an array, as spike-time lists and as an event dict.
    image, inputs = random_case("2x1", 6, steps=20, rate=0.3)
    array = inputs["in"]
    times = [np.flatnonzero(array[:, c]).tolist() for c in range(array.shape[1])]
    t, c = np.nonzero(array)
    chip = chips("2x1")
    results = []
    for form in (array, times, {"times": t.tolist(), "channels": c.tolist()}):
        chip.load(image)
        results.append(chip.run({"in": form}, 20))
    assert first_divergence(results[0], results[1]) is None
    assert first_divergence(results[0], results[2]) is None
    assert_same(emulate(image, inputs, 20), results[0], image)


def test_runs_continue_from_the_chip_state(chips):
    # Two runs in a row, without reloading: the second starts at chip step 25 with the state the
    # first left, on the chip as in the emulator.
    image, inputs = random_case("2x2", 7, steps=40)
    first = {k: v[:25] for k, v in inputs.items()}
    second = {k: v[25:] for k, v in inputs.items()}
    emu = nt.Emulator(image, mode="cycle", progress=False)
    chip = chips("2x2")
    chip.load(image)
    for part, steps in ((first, 25), (second, 15)):
        assert_same(emu.run(part, steps), chip.run(part, steps), image)
    assert chip.client.read_reg(0, "step") == 40


def test_a_second_network_loaded_into_the_running_chip_matches(chips):
    # One simulator process: network A, then network B (another seed and shape), then A again;
    # each load clears the state, so A's second run repeats its first exactly.
    image_a, inputs_a = random_case("2x2", 8)
    net_b = random_network(9, n_inputs=5, sizes=(16, 16), profiles=2, max_delay=4,
                           outputs="all")
    image_b = nt.compile(net_b, ARCHS["2x2"])
    inputs_b = random_inputs(net_b, 30, 0.4, 10)
    _, first = check(chips, "2x2", image_a, inputs_a, 40)
    check(chips, "2x2", image_b, inputs_b, 30)
    _, again = check(chips, "2x2", image_a, inputs_a, 40)
    assert first_divergence(first, again) is None


def test_builds_are_cached_per_arch_and_shared_by_images(chips):
    chip = chips("2x2")
    again = build_chip(ARCHS["2x2"])
    assert again.cached and again.path == chip.build.path
    # Another name, same fields: the same Verilog, the same build.
    assert build_chip(ARCHS["2x2"].replace(name="renamed")).path == chip.build.path


def test_a_session_refuses_runs_without_an_image_and_traces_without_a_waveform(chips):
    from neurotile.sim.cosim import CosimChip
    with CosimChip(ARCHS["2x1"]) as chip:           # a fresh session: nothing loaded yet
        with pytest.raises(nt.NeurotileValueError, match=r"load an image first: "
                                                         r"chip.load\(image\)"):
            chip.run(steps=3)
        image, inputs = random_case("2x1", 15, steps=5)
        chip.load(image)
        with pytest.raises(nt.NeurotileValueError, match=r"trace_from needs a session with "
                                                         r"waveform='out.fst'"):
            chip.run(inputs, 5, trace_from=2)
        with pytest.raises(nt.NeurotileValueError, match=r"this session records no waveform: "
                                                         r"pass waveform='out.fst' to CosimChip"):
            chip.start_trace()
        assert chip.client.read_reg(0, "step") == 0     # nothing ran
        session = chip._dir
    assert not session.exists()                         # closed, its files removed
    with pytest.raises(nt.NeurotileValueError, match=r"build is for .* with trace=None, not for "
                                                     r".* with trace='fst'"):
        CosimChip(ARCHS["2x1"], build=chip.build, waveform="x.fst")


def test_a_step_longer_than_the_cycle_limit_is_reported_and_ends_the_session(chips):
    # The bench gives up on a frame after its cycle limit; the 2x1 chip's steps take more than
    # the 30 cycles allowed here (U alone is 16 + 6).
    from neurotile.sim.cosim import CosimChip
    image, inputs = random_case("2x1", 16, steps=3)
    with CosimChip(ARCHS["2x1"], step_cycle_limit=0) as chip:
        chip.load(image)
        chip.transport.frame_limit = 30
        with pytest.raises(nt.ToolchainError, match=r"the simulated chip did not answer RUN "
                                                    r"within 30 cycles: the RTL hangs"):
            chip.run(inputs, 3)
        with pytest.raises(nt.ToolchainError, match=r"this co-simulation session is unusable "
                                                    r"since RUN timed out"):
            chip.cycles()


# -- one-call helpers, report and CLI ----------------------------------------------------------------

def test_compare_with_emulator_reports_bit_exact(chips):
    from neurotile.sim import compare_with_emulator
    image, inputs = random_case("2x1", 11, steps=25)
    result = compare_with_emulator(image, inputs, 25)
    r = result.rtl
    assert result.exact and result.divergence is None
    assert str(result) == (f"bit-exact over 25 steps, {r.spike_count()} spikes, "
                           f"{r.total('cycles')} cycles")
    assert r.total("cycles") == result.emulator.total("cycles")


def test_cli_cosim_prints_bit_exact(chips, tmp_path):
    image, inputs = random_case("2x1", 12, steps=15)
    image.save(tmp_path / "net.ntimg")
    np.savez(tmp_path / "in.npz", **inputs)
    run = CliRunner().invoke(cli.main, ["cosim", str(tmp_path / "net.ntimg"), "--inputs",
                                        str(tmp_path / "in.npz"), "--steps", "15"])
    assert run.exit_code == 0, run.output
    expected = nt.Emulator(image, mode="cycle", progress=False).run(inputs, 15)
    assert run.output.strip() == (f"bit-exact over 15 steps, {expected.spike_count()} spikes, "
                                  f"{expected.total('cycles')} cycles")


def test_a_divergence_is_named_and_recorded_in_a_waveform(chips, tmp_path, monkeypatch):
    # The chip is right, so the emulator is made wrong: its synops count of core 0 in step 3 is
    # off by one. The report names step, counter, core and both values; the waveform covers
    # steps 1..5 (window 2) of a second, traced simulation that stops after step 5.
    import neurotile.emulator as emulator_pkg
    from neurotile.sim import compare_with_emulator

    real = emulator_pkg.Emulator

    class Wrong(real):
        def run(self, *args, **kwargs):
            result = super().run(*args, **kwargs)
            result.counters["synops"][3, 0] += 1
            return result

    monkeypatch.setattr(emulator_pkg, "Emulator", Wrong)
    image, inputs = random_case("1x1", 13, steps=12)
    wave = tmp_path / ("div.vcd" if _fst_missing() else "div.fst")
    result = compare_with_emulator(image, inputs, 12, waveform=wave, window=2)
    d = result.divergence
    assert not result.exact
    assert (d.step, d.kind, d.name, d.core) == (3, "counter", "synops", 0)
    assert d.a == d.b + 1
    assert result.waveform_steps == range(1, 6)
    assert wave.is_file() and wave.stat().st_size > 0
    text = str(result)
    assert "step 3" in text and "synops" in text and "core 0" in text and str(wave) in text


@pytest.mark.skipif(simulator_available("icarus") is not None,
                    reason=f"optional second simulator: {simulator_available('icarus')}")
def test_icarus_matches_the_cycle_engine_too():
    from neurotile.sim import cosimulate
    image, inputs = random_case("2x1", 14, steps=10)
    expected = emulate(image, inputs, 10)
    assert_same(expected, cosimulate(image, inputs, 10, simulator="icarus"), image)
