"""benchmarks/fanout_report.py on small hand-made yosys netlists (the shape of ``top.json``)."""

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "fanout_report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("fanout_report", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ff(d, q):
    return {"type": "TRELLIS_FF", "port_directions": {"CLK": "input", "DI": "input", "Q": "output"},
            "connections": {"CLK": [1], "DI": [d], "Q": [q]}}


def lut(inputs, z):
    ports = "ABCD"[:len(inputs)]
    return {"type": "LUT4", "port_directions": {**{p: "input" for p in ports}, "Z": "output"},
            "connections": {**{p: [b] for p, b in zip(ports, inputs)}, "Z": [z]}}


def netlist(cells):
    return {"modules": {"top": {"cells": cells}}}


M = "core.chip.engine.mesh."


def test_paths_count_the_levels_and_units_that_start_them(report):
    # Bits: 10, 11, 12 are the outputs of registers in cores 0, 1 and 2; 13 is a chip register.
    # Core 3's register `gather` takes LUT(LUT(10, 11), 12): two levels from cores 0 and 1 (the
    # deepest), one from core 2. Core 1's `near` takes 13 through one LUT. Core 0's `own` takes
    # its own register through three LUTs: no crossing.
    cells = {
        M + "core_0.a": ff(50, 10), M + "core_1.b": ff(51, 11), M + "core_2.c": ff(52, 12),
        "core.chip.engine.ctrl": ff(53, 13),
        M + "core_3.l1": lut([10, 11], 20), M + "core_3.l2": lut([20, 12], 21),
        M + "core_3.gather": ff(21, 30),
        M + "router_1.l3": lut([13], 22), M + "core_1.near": ff(22, 31),
        M + "core_0.l4": lut([10], 23), M + "core_0.l5": lut([23], 24), M + "core_0.l6": lut([24], 25),
        M + "core_0.own": ff(25, 32),
    }
    out = report.crossings(netlist(cells))
    assert out[M + "core_*.gather"] == (2, 3, M + "core_0.a", M + "core_3.gather")
    assert out[M + "core_*.near"] == (1, 1, "core.chip.engine.ctrl", M + "core_1.near")
    assert not any("own" in name for name in out)


def test_a_direct_register_to_register_crossing_has_no_levels(report):
    cells = {M + "core_0.a": ff(50, 10), M + "core_5.b": ff(10, 11)}
    assert report.crossings(netlist(cells)) == {M + "core_*.b": (0, 1, M + "core_0.a",
                                                                 M + "core_5.b")}


def test_a_combinational_loop_ends_the_walk(report):
    # A synthesised design has no combinational loop; should one be there, the walk stops at it
    # (what it reports through the loop depends on where the walk entered it).
    cells = {M + "core_0.a": ff(50, 10), M + "core_1.l1": lut([10, 21], 20),
             M + "core_1.l2": lut([20], 21), M + "core_1.b": ff(21, 30)}
    out = report.crossings(netlist(cells))
    assert set(out) <= {M + "core_*.b"}


def test_the_register_report_counts_the_units_a_register_reaches(report):
    cells = {"core.chip.engine.bus_a_valid": ff(50, 10),
             **{M + f"core_{c}.b": ff(10, 20 + c) for c in range(4)}}
    assert report.spans(netlist(cells)) == {"core.chip.engine.bus_a_valid": (4, 1)} | {
        M + f"core_{c}.b": (0, 1) for c in range(4)}
