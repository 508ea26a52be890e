"""Tests for ``emulator/functional.py``, the fast bit-exact engine.

Expected values come from the reference engine (``emulator/reference.py``, the spec written out
as plain loops): on seeded random networks, the edge networks of ``emulator.testing`` and hand-
built corrupt images, the functional engine must leave every spike, probe, counter of section 8
(but the cycle-level ones), flag and the final ChipState identical. Its two backends (numba with
1 or 2 threads, numpy) must agree with each other exactly. A few values are derived by hand in
the comments (docs/architecture.md sections 4 to 6).
"""

import zlib

import numpy as np
import pytest

import neurotile as nt
from neurotile.compiler.errors import EmulatorError, NeurotileTypeError
from neurotile.emulator import testing as T
from neurotile.emulator.compare import first_divergence
from neurotile.emulator.functional import CHUNK, FunctionalEngine, numba_available
from neurotile.emulator.reference import ReferenceEngine
from neurotile.emulator.state import ChipState

MODES = [(d, r) for d in ("loihi", "shift") for r in ("zero", "subtract")]

# (backend, threads): every functional variant that must equal the reference.
VARIANTS = [("numpy", None)]
if numba_available():
    VARIANTS += [("numba", 1), ("numba", 2)]


def channels_of(image, inputs, steps):
    parts = [np.asarray(inputs[name], bool) if name in inputs else np.zeros((steps, inp["n"]), bool)
             for name, inp in image.inputs.items()]
    return np.concatenate(parts, axis=1) if parts else np.zeros((steps, 0), bool)


def run(engine, image, channels, probes=(), state=None):
    state = state if state is not None else ChipState.from_image(image)
    return engine.run(state, channels, list(probes)), state


def assert_identical(ref, ref_state, res, res_state, image, what=""):
    """Every spike, probe, functional counter, flag and the final state agree."""
    div = first_divergence(ref, res, image)
    assert div is None, f"{what}: {div}"
    assert set(res.spikes) == set(ref.spikes)
    assert set(res.probes) == set(ref.probes)
    assert set(res.counters) == set(ref.counters), (set(res.counters) ^ set(ref.counters))
    for name in ref.counters:
        assert res.counters[name].dtype == np.int64
        np.testing.assert_array_equal(res.counters[name], ref.counters[name], err_msg=name)
    assert res.flags == ref.flags and res.flag_step == ref.flag_step
    assert (res.steps, res.start_step, res.mode) == (ref.steps, ref.start_step, "functional")
    assert res_state.equals(ref_state), f"{what}: final ChipState differs"


def check_all(image, channels, probes=(), state=None):
    """Run the reference and every functional variant; returns the reference result."""
    ref, ref_state = run(ReferenceEngine(image), image, channels, probes,
                         state.copy() if state is not None else None)
    for backend, threads in VARIANTS:
        eng = FunctionalEngine(image, backend=backend, threads=threads)
        res, res_state = run(eng, image, channels, probes,
                             state.copy() if state is not None else None)
        assert_identical(ref, ref_state, res, res_state, image, f"{backend}/{threads}")
    return ref


def all_probes(image):
    return [(p, v) for p in image.populations for v in ("u", "v")]


# -- random networks ---------------------------------------------------------------------------

@pytest.mark.parametrize("decay_mode,reset_mode", MODES)
@pytest.mark.parametrize("mesh,sizes", [((2, 2), (24, 16)), ((3, 2), (40, 30)),
                                        ((1, 4), (30, 20)), ((4, 1), (30, 20)),
                                        ((4, 4), (60, 50, 40))])
def test_random_networks_match_reference(decay_mode, reset_mode, mesh, sizes):
    arch = nt.Arch(mesh_w=mesh[0], mesh_h=mesh[1], decay_mode=decay_mode, reset_mode=reset_mode,
                   max_delay=8)
    seed = zlib.crc32(repr((decay_mode, reset_mode, mesh)).encode()) % 1000
    # profiles=None: every neuron its own profile, so a core holds 16 and the net spreads out.
    net = T.random_network(seed, sizes=sizes, max_delay=8, decay_mode=decay_mode, outputs="all",
                           profiles=None)
    image = nt.compile(net, arch)
    steps = 40
    ch = channels_of(image, T.random_inputs(net, steps, 0.3, seed + 1), steps)
    ref = check_all(image, ch, all_probes(image))
    # The workload is not trivial: spikes, synaptic events, hops and host traffic all happen.
    assert ref.spike_count() > 50 and ref.total("synops") > 0 and ref.total("host_out") > 0
    assert image.meta["cores_used"] >= 3 and ref.total("hops") > 0


@pytest.mark.parametrize("seed", range(3))
def test_feed_forward_and_recurrent_with_all_delays(seed):
    # Delays 1..max_delay (16) all occur, including delay = D, which lands in the slot the
    # UPDATE of the same step has just cleared (it is read D steps later).
    arch = nt.Arch(mesh_w=3, mesh_h=3, max_delay=16)
    for recurrent in (False, True):
        net = T.random_network(seed, sizes=(30, 30, 20), max_delay=16, recurrent=recurrent,
                               p=0.4, profiles=None)
        image = nt.compile(net, arch)
        delays = np.concatenate([c.tables["synapse"]["delay"] for c in image.cores]) + 1
        assert delays.min() == 1 and delays.max() == 16
        steps = 60
        ch = channels_of(image, T.random_inputs(net, steps, 0.25, seed), steps)
        check_all(image, ch, all_probes(image))


def test_acc_bits_32_and_wide_weights():
    # acc_bits = 32: the ring's int32 arithmetic is the accumulator register itself.
    arch = nt.Arch(mesh_w=2, mesh_h=3, acc_bits=32, max_delay=4)
    net = T.random_network(7, sizes=(40, 24), weight_range=(-128, 127), weight_exp_max=7,
                           max_delay=4)
    image = nt.compile(net, arch)
    ch = channels_of(image, T.random_inputs(net, 30, 0.4, 7), 30)
    check_all(image, ch, all_probes(image))


def test_empty_inputs_and_silent_steps():
    arch = nt.Arch(mesh_w=2, mesh_h=2)
    net = T.random_network(3, sizes=(24, 16))
    image = nt.compile(net, arch)
    ref = check_all(image, np.zeros((25, 8), bool), all_probes(image))
    # No input: only the neurons' biases drive them, no host_in packets.
    assert ref.total("host_in") == 0


def test_network_without_inputs():
    # A population driven by its bias alone: bias 50 << 3 = 400 per step against vth 10 << 6 =
    # 640 with v kept (dv = 0): v = 400, 800 -> spike in step 1, reset, and so on every 2 steps.
    net = nt.Network()
    a = net.population(5, nt.LIF(du=4095, dv=0, vth=10, bias_mant=50, bias_exp=3), name="a")
    b = net.population(3, nt.LIF(du=4095, dv=0, vth=10), name="b")
    net.connect(a, b, np.full((5, 3), 3))
    net.output(b)
    image = nt.compile(net, nt.Arch())
    assert image.inputs == {}
    ref = check_all(image, np.zeros((10, 0), bool), all_probes(image))
    assert ref.spikes["a"][:, 0].tolist() == [False, True] * 5


@pytest.mark.parametrize("decay_mode,reset_mode", MODES)
@pytest.mark.parametrize("kind", T.EDGE_KINDS)
def test_edge_networks_match_reference(kind, decay_mode, reset_mode):
    arch = nt.Arch(mesh_w=3, mesh_h=2, decay_mode=decay_mode, reset_mode=reset_mode)
    case = T.edge_network(kind, arch)
    image = nt.compile(case.network, arch)
    ref = check_all(image, channels_of(image, case.inputs, case.steps), all_probes(image))
    # The edges are reached (testing.edge_network's docstring says how).
    if kind == "acc_sat":
        assert ref.flags["acc_sat"] and ref.flag_step["acc_sat"] == 1
    if kind == "u_wrap":
        u = ref.probes["edge.u"]
        assert u.max() == (1 << 23) - 4096 or u.min() < 0
    if kind == "v_sat":
        # Neuron 1's bias -4096 << 7 per step pins v at sat24's lower limit -(2^23 - 1).
        assert ref.probes["edge.v"][:, 1].min() == -((1 << 23) - 1)
    if kind == "congestion":
        assert ref.total("host_out") > 0 and ref.total("hops") > 0


@pytest.mark.parametrize("decay_mode", ["loihi", "shift"])
@pytest.mark.parametrize("reset_mode", ["zero", "subtract"])
def test_arithmetic_at_random_extremes(decay_mode, reset_mode):
    # Neurons with random parameters over their full ranges, random u and v over the whole
    # 24-bit range, and accumulators over the whole acc_bits range: sat18, wrap24, sat24 and
    # both decays are hit in the first steps. Each neuron has its own profile (16 per core).
    rng = np.random.default_rng(zlib.crc32(f"{decay_mode}/{reset_mode}".encode()))
    arch = nt.Arch(mesh_w=2, mesh_h=2, decay_mode=decay_mode, reset_mode=reset_mode,
                   acc_bits=24, max_delay=4)
    dmax = 4095 if decay_mode == "loihi" else 23
    neurons = []
    for c in range(4):
        for _ in range(16):
            neurons.append(dict(pop="p", core=(c % 2, c // 2),
                                du=int(rng.integers(0, dmax + 1)),
                                dv=int(rng.integers(0, dmax + 1)),
                                vth=int(rng.choice([0, 1, rng.integers(0, 1 << 17),
                                                    (1 << 17) - 1])),
                                bias_mant=int(rng.integers(-4096, 4096)),
                                bias_exp=int(rng.integers(0, 8)),
                                u=int(rng.integers(-(1 << 23), 1 << 23)),
                                v=int(rng.integers(-(1 << 23) + 1, 1 << 23))))
    image = T.hand_image(arch, neurons)
    state = ChipState.from_image(image)
    state.acc[...] = rng.integers(-(1 << 23), 1 << 23, state.acc.shape)
    state.acc[:, :, ::5] = rng.choice([-(1 << 17) - 1, -(1 << 17), (1 << 17) - 1, 1 << 17],
                                      state.acc[:, :, ::5].shape)
    ref = check_all(image, np.zeros((6, 0), bool), [("p", "u"), ("p", "v")], state=state)
    assert ref.flags["acc_sat"] and ref.flag_step["acc_sat"] == 0


# -- corrupt images (hand-built, not validated) ----------------------------------------------------

def test_bad_axon_and_bad_route_match_reference():
    # On a 3x3 mesh (2-bit x and y fields, so x = 3 and y = 3 are representable but off the mesh)
    # neuron 0 of core (0, 0) fires every step (bias 100 << 7 = 12800 > vth << 6 = 64) and sends
    # four packets: to axon 0 of core (1, 1) (valid); to axon 5 of core (1, 0), which has one
    # axon (bad_axon: counted in packets_in, no synops); to x = 3 (bad_route: two E hops, then
    # discarded at router (2, 0)); and to the host. Input channel 1 sends to y = 3 (bad_route).
    arch = nt.Arch(mesh_w=3, mesh_h=3, max_delay=4)
    image = T.hand_image(
        arch,
        [dict(pop="src", core=(0, 0), vth=1, bias_mant=100, bias_exp=7,
              fanout=[(0, 1, 1, 0), (0, 1, 0, 5), (0, 3, 0, 0), (1, 0, 0, 0)]),
         dict(pop="dst", core=(1, 1), vth=1000),
         dict(pop="dst2", core=(1, 0), vth=1000)],
        axons={(1, 1): [[(0, 7, 2, 1)]], (1, 0): [[(0, 1, 1, 0)]]},
        inputs={"in": [[(1, 0, 0)], [(0, 3, 0)]]})
    steps = 5
    ch = np.zeros((steps, 2), bool)
    ch[1, 0] = ch[3, 1] = True
    ref = check_all(image, ch, all_probes(image))
    assert ref.flags["bad_axon"] and ref.flag_step["bad_axon"] == 0
    assert ref.flags["bad_route"] and ref.flag_step["bad_route"] == 0
    assert ref.counters["packets_out"][:, 0].tolist() == [4] * steps
    assert ref.counters["packets_in"][:, 4].tolist() == [1] * steps          # core (1, 1)
    assert ref.counters["packets_in"][:, 1].tolist() == [1, 2, 1, 1, 1]      # core (1, 0)
    assert ref.counters["synops"][:, 1].tolist() == [0, 1, 0, 0, 0]          # only channel 0's
    # E transfers out of router (1, 0): the packets to (1, 1)? No: XY goes E first along row 0
    # only for x > 1, i.e. the packet to x = 3, once per step.
    assert ref.counters["link"][:, 1, 1].tolist() == [1] * steps


def test_accumulator_wraps_modulo_acc_bits():
    # acc_bits = 18 and nine synapses of 127 << 7 = 16256 into one neuron: 9 * 16256 = 146304 >=
    # 2^17, so the 18-bit register wraps to 146304 - 2^18 = -115840 (section 5: additions wrap,
    # they never saturate), which is inside the 18-bit input: no acc_sat. validate() would
    # refuse this image; the engines must still agree on it.
    arch = nt.Arch(mesh_w=1, mesh_h=1, acc_bits=18, max_delay=2)
    image = T.hand_image(arch, [dict(pop="p", core=(0, 0), du=4095, dv=4095, vth=1 << 16)],
                         axons={(0, 0): [[(0, 127, 1, 7)] * 9]}, inputs={"in": [[(0, 0, 0)]]})
    ch = np.array([[True], [False], [False]])
    ref = check_all(image, ch, [("p", "u")])
    assert ref.probes["p.u"][1, 0] == (9 * 16256 - (1 << 18)) << 6


# -- backends, chunks, continuation ----------------------------------------------------------------

@pytest.mark.skipif(not numba_available(), reason="needs numba")
def test_numba_and_numpy_backends_agree_on_a_larger_network():
    # Larger than the reference can run quickly: 4 populations over a 4x4 mesh, more steps than
    # one kernel chunk, so chunk boundaries are crossed.
    arch = nt.Arch(mesh_w=4, mesh_h=4, max_delay=8)
    net = T.random_network(11, sizes=(60, 60, 60, 40), p=0.5, max_delay=8, profiles=None)
    image = nt.compile(net, arch)
    steps = CHUNK + 44
    ch = channels_of(image, T.random_inputs(net, steps, 0.3, 11), steps)
    probes = all_probes(image)
    results = []
    for backend, threads in VARIANTS:
        res, state = run(FunctionalEngine(image, backend=backend, threads=threads), image, ch,
                         probes)
        results.append((res, state))
    ref, ref_state = results[0]
    assert ref.spike_count() > 1000
    for res, state in results[1:]:
        assert_identical(ref, ref_state, res, state, image)


@pytest.mark.parametrize("backend,threads", VARIANTS)
def test_continuation_equals_one_run(backend, threads):
    # run(10) then run(15) from the state it left equals run(25): the state carries everything.
    arch = nt.Arch(mesh_w=2, mesh_h=2, max_delay=8)
    net = T.random_network(5, sizes=(24, 16), max_delay=8)
    image = nt.compile(net, arch)
    ch = channels_of(image, T.random_inputs(net, 25, 0.3, 5), 25)
    eng = FunctionalEngine(image, backend=backend, threads=threads)
    whole, whole_state = run(eng, image, ch, [("p1", "v")])
    state = ChipState.from_image(image)
    first, _ = run(eng, image, ch[:10], [("p1", "v")], state)
    second, _ = run(eng, image, ch[10:], [("p1", "v")], state)
    assert (first.start_step, second.start_step, state.t) == (0, 10, 25)
    assert state.equals(whole_state)
    for name in whole.counters:
        np.testing.assert_array_equal(np.concatenate([first.counters[name],
                                                      second.counters[name]]),
                                      whole.counters[name])
    for pop in whole.spikes:
        np.testing.assert_array_equal(np.concatenate([first.spikes[pop], second.spikes[pop]]),
                                      whole.spikes[pop])


def test_continues_from_another_engines_state():
    # The reference runs 7 steps, the functional engine the next 9 from the state it left
    # (pending accumulator slots included): the same as the reference running all 16.
    arch = nt.Arch(mesh_w=2, mesh_h=2, max_delay=8)
    net = T.random_network(9, sizes=(24, 16), max_delay=8)
    image = nt.compile(net, arch)
    ch = channels_of(image, T.random_inputs(net, 16, 0.3, 9), 16)
    ref_all, ref_state = run(ReferenceEngine(image), image, ch)
    for backend, threads in VARIANTS:
        state = ChipState.from_image(image)
        run(ReferenceEngine(image), image, ch[:7], state=state)
        assert state.acc.any()
        rest, _ = run(FunctionalEngine(image, backend=backend, threads=threads), image, ch[7:],
                      state=state)
        assert state.equals(ref_state)
        for pop in rest.spikes:
            np.testing.assert_array_equal(rest.spikes[pop], ref_all.spikes[pop][7:])


def test_progress_reports_steps_done():
    image = nt.compile(T.random_network(1), nt.Arch())
    calls = []
    steps = 2 * CHUNK + 3
    FunctionalEngine(image).run(ChipState.from_image(image), np.zeros((steps, 8), bool),
                                progress=lambda done, total: calls.append((done, total)))
    # One call per chunk, as (steps done, steps) like the other engines.
    assert calls == [(CHUNK, steps), (2 * CHUNK, steps), (steps, steps)]


def test_flags_already_raised_keep_their_step():
    # A sticky flag raised by an earlier run keeps its first step.
    arch = nt.Arch(mesh_w=3, mesh_h=2)
    case = T.edge_network("acc_sat", arch)
    image = nt.compile(case.network, arch)
    ch = channels_of(image, case.inputs, case.steps)
    eng = FunctionalEngine(image)
    state = ChipState.from_image(image)
    eng.run(state, ch)
    eng.run(state, ch)
    assert state.flags["acc_sat"] and state.flag_step["acc_sat"] == 1


# -- errors ----------------------------------------------------------------------------------------

def test_engine_errors():
    image = nt.compile(T.random_network(1), nt.Arch())
    state = ChipState.from_image(image)
    with pytest.raises(NeurotileTypeError, match=r"FunctionalEngine needs an nt.ChipImage, not "
                                                 r"str"):
        FunctionalEngine("image")
    with pytest.raises(EmulatorError, match=r"backend must be one of 'auto', 'numba', 'numpy', "
                                            r"not 'gpu'"):
        FunctionalEngine(image, backend="gpu")
    for bad in (0, 1.5, True):
        with pytest.raises(EmulatorError, match=r"threads must be an int >= 1, not "):
            FunctionalEngine(image, threads=bad)
    eng = FunctionalEngine(image)
    with pytest.raises(EmulatorError, match=r"channels must be a \[steps, 8\] array .* not of "
                                            r"shape \(4, 3\)"):
        eng.run(state, np.zeros((4, 3), bool))
    with pytest.raises(EmulatorError, match=r"channels must be a bool array, not int64"):
        eng.run(state, np.zeros((4, 8), np.int64))
    with pytest.raises(EmulatorError, match=r"probe 'nope': no such population; populations: "
                                            r"p0, p1"):
        eng.run(state, np.zeros((4, 8), bool), [("nope", "v")])
    with pytest.raises(EmulatorError, match=r"probe p0.w: the variable must be 'u' or 'v'"):
        eng.run(state, np.zeros((4, 8), bool), [("p0", "w")])
    with pytest.raises(EmulatorError, match=r"a probe must be a \(population, 'u' or 'v'\) pair, "
                                            r"not 'p0.v'"):
        eng.run(state, np.zeros((4, 8), bool), ["p0.v"])
    other = ChipState.from_image(nt.compile(T.random_network(1), nt.Arch(mesh_w=3)))
    with pytest.raises(EmulatorError, match=r"state does not belong to this image"):
        eng.run(other, np.zeros((4, 8), bool))
    assert state.t == 0       # nothing ran


def test_host_in_depth_is_enforced_like_the_reference():
    # Two channels with 3 packets each against host_in_depth 4: a step where both spike
    # injects 6 packets (section 7: the host port holds host_in_depth per step).
    arch = nt.Arch(mesh_w=2, mesh_h=2, host_in_depth=4)
    image = T.hand_image(arch, [dict(pop="p", core=(c % 2, c // 2)) for c in range(3)],
                         axons={(c % 2, c // 2): [[(0, 1, 1, 0)], [(0, 1, 1, 0)]]
                                for c in range(3)},
                         inputs={"in": [[(0, 0, 0), (1, 0, 0), (0, 1, 0)],
                                        [(0, 0, 1), (1, 0, 1), (0, 1, 1)]]})
    ch = np.zeros((3, 2), bool)
    ch[0, 0] = ch[2] = True
    for eng in (ReferenceEngine(image), FunctionalEngine(image)):
        with pytest.raises(EmulatorError, match=r"step 2 injects 6 input packets, more than the "
                                                r"host port's host_in_depth \(4\)"):
            eng.run(ChipState.from_image(image), ch)


def test_small_images_run_on_one_thread_by_default():
    # Threads synchronise twice per step; below THREADS_MIN_SYNAPSES they never pay off.
    from neurotile.emulator.functional import THREADS_MIN_SYNAPSES
    image = nt.compile(T.random_network(1), nt.Arch())
    assert sum(c.n_synapses for c in image.cores) < THREADS_MIN_SYNAPSES
    assert FunctionalEngine(image).plan.P == 1
    assert FunctionalEngine(image, backend="numpy", threads=2).plan.P == 1   # numpy: no threads


@pytest.mark.skipif(not numba_available(), reason="needs numba")
@pytest.mark.parametrize("mesh,neurons_per_core", [((6, 4), 16), ((16, 16), 512)])
def test_every_table_layout_of_the_numba_kernel_matches_the_reference(mesh, neurons_per_core):
    # The numba kernel stores a source's packets as a list or, when it reaches at least a quarter
    # of the destinations, as a dense row; a group of synapses that add the same value keeps only
    # its targets; other synapses keep value << 16 | target, or value << 32 | target on chips of
    # more than 65536 neurons (16 x 16 cores x 512). This network has all of them: "one" fans out
    # with a constant weight (uniform groups), "few" has random weights; every population is
    # spread over several cores (8 distinct neuron profiles per core at most), so some sources
    # reach many destinations (dense rows, on the smaller mesh) and others few (packet lists).
    rng = np.random.default_rng(5)
    net = nt.Network()
    net.input(10, "in")
    pops = [net.population(40, nt.LIF(du=4095, dv=rng.integers(200, 400, 40), vth=60),
                           f"p{k}") for k in range(4)]
    net.connect("in", "p0", rng.integers(-20, 60, (10, 40)) * (rng.random((10, 40)) < 0.6),
                weight_exp=1)
    for k, pop in enumerate(pops):
        if k < 3:                               # (p3 has only "few": it reaches few cores)
            net.connect(pop, pops[k + 1], np.full((40, 40), 3) * (rng.random((40, 40)) < 0.3),
                        delay=rng.integers(1, 4, (40, 40)), name=f"one{k}")
        net.connect(pop, pops[(k + 2) % 4], rng.integers(-30, 30, (40, 40))
                    * (rng.random((40, 40)) < 0.2), name=f"few{k}")
    for pop in pops:
        net.output(pop)
    arch = nt.Arch(mesh_w=mesh[0], mesh_h=mesh[1], neurons_per_core=neurons_per_core,
                   profiles_per_core=8, max_delay=4)
    image = nt.compile(net, arch)
    plan = FunctionalEngine(image, backend="numba", threads=2).plan
    n_uniform = int((plan.grp.reshape(-1, 4)[:-1, 1] != 0).sum())
    n_pk = np.diff(plan.pk_ptr).reshape(plan.P, plan.S).sum(axis=0)[:plan.NT]
    listed = (n_pk > 0) & (plan.drow[:plan.NT] < 0)
    assert listed.any(), "packet lists occur"
    if plan.C < 64:                 # (on the 16 x 16 mesh no source reaches 64 destinations)
        assert plan.n_dense > 0, "dense rows occur"
    assert n_uniform > 0 and plan.syn_word.size > 0, "uniform and per-synapse groups both occur"
    assert plan.syn_shift == (16 if plan.NT <= 1 << 16 else 32)
    steps = 50
    ch = channels_of(image, T.random_inputs(net, steps, 0.4, 5), steps)
    ref = check_all(image, ch, all_probes(image))
    assert ref.spike_count() > 200 and ref.total("hops") > 0
