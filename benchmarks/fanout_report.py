"""Registers and logic paths of a synthesised board design that span several cores or routers.

Run from the repository root on the ``top.json`` of a board build (after synthesis)::

    python benchmarks/fanout_report.py build/boards/ulx3s-85f/ulx3s-85f-4x4/top.json
    python benchmarks/fanout_report.py --paths build/boards/ulx3s-85f/ulx3s-85f-4x4/top.json

A register whose output reaches cells of many cores spans the die once the mesh is placed. Some
do so by design (the host bus's stage A, the step counter, the reset); others are copies yosys
merged because every core's had the same inputs (``opt_merge``; a wire's ``keep`` does not stop
it). The default report lists, per register (the flip-flops of one name), its bits and the most
different cores/routers any of its bits reaches directly, the widest first. A router's FIFO
reaching 5 (its neighbours and its core) is by design.

``--paths`` lists the *combinational* paths that start at a register or memory of one unit (a
core with its router, or the chip) and end at one of another: per endpoint register, the most
logic levels (LUT4, carry, mux; a multiplier counts 3) on such a path and how many other units
start one. A path from many units through several levels crosses the die with its logic; that is
what to register (the OR of every core's stage B into the host port's state was one: 13 levels
from 16 units). Router-to-router paths (the handshake between neighbours) are there by design.
Names are yosys' and may mislead: a merged register keeps one copy's name.
"""

import argparse
import collections
import json
import re
import sys

#: Where a cell belongs to core/router c: inside the mesh, or one of the chip's per-core host-bus
#: and link-counter registers (``bus_b_addr_3``, ``link_3_N``).
UNITS = (re.compile(r"mesh\.(?:core|router)_(\d+)(?![0-9])"),
         re.compile(r"engine\.bus_[bcr]_[a-z]+(?:_[a-z]+)*_(\d+)(?![0-9])"),
         re.compile(r"engine\.link_(\d+)_"))


def unit_of(cell_name):
    """The core/router index a cell belongs to, or None for chip-level cells."""
    for pattern in UNITS:
        m = pattern.search(cell_name)
        if m is not None:
            return int(m.group(1))
    return None


def spans(design, top="top", ff_types=("TRELLIS_FF", "SB_DFF", "SB_DFFE", "SB_DFFR", "SB_DFFER",
                                        "SB_DFFSR", "SB_DFFESR", "SB_DFFS", "SB_DFFES")):
    """``{register name: (units reached, bits)}`` for every flip-flop output of ``top``."""
    module = design["modules"][top]
    sinks = collections.defaultdict(set)
    drivers = {}
    for name, cell in module["cells"].items():
        directions = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            for bit in bits:
                if not isinstance(bit, int):
                    continue
                if directions.get(port) == "input":
                    sinks[bit].add(name)
                elif directions.get(port) == "output" and cell["type"] in ff_types:
                    drivers[bit] = name
    out = {}
    for bit, name in drivers.items():
        units = {unit_of(s) for s in sinks.get(bit, ())} - {None}
        stem = re.sub(r"_\d+$", "", name)
        reached, count = out.get(stem, (0, 0))
        out[stem] = (max(reached, len(units)), count + 1)
    return out


#: Cells whose outputs follow their inputs within the cycle, with the logic levels they count.
#: A distributed RAM's read (RAD -> DO) is one; its contents start a path like a register.
COMBINATIONAL = {"LUT4": 1, "CCU2C": 1, "PFUMX": 1, "L6MUX21": 1, "MULT18X18D": 3,
                 "TRELLIS_DPR16X4": 1, "SB_LUT4": 1, "SB_CARRY": 1, "SB_MAC16": 3}
_CLOCKS = {"CLK", "WCK", "CLKA", "CLKB", "RCLK", "WCLK"}
_CHIP = -1


def crossings(design, top="top"):
    """Combinational paths between units: ``{endpoint: (levels, n_units, source, sink)}``.

    ``endpoint`` is a register name with unit indices replaced by ``*``; ``levels`` is the most
    logic levels on a path into it that starts in another unit, ``n_units`` how many other units
    (the chip counts as one) start such a path, ``source`` and ``sink`` the cells of the deepest.
    """
    module = design["modules"][top]
    cells = module["cells"]
    driver = {}
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(port) == "output":
                driver.update((bit, name) for bit in bits if isinstance(bit, int))

    def unit(name):
        u = unit_of(name)
        return _CHIP if u is None else u

    def inputs(cell):
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) == "input" and port not in _CLOCKS:
                if cell["type"] != "TRELLIS_DPR16X4" or port == "RAD":
                    yield from (b for b in bits if isinstance(b, int))

    # {bit: {source unit: (levels, source cell)}}, depth-first with an explicit stack (carry
    # chains are thousands of cells deep).
    cone, visiting = {}, set()
    for start in driver:
        stack = [start]
        while stack:
            bit = stack[-1]
            if bit in cone:
                stack.pop()
                continue
            name = driver.get(bit)
            cell = cells[name] if name is not None else None
            if cell is None or cell["type"] not in COMBINATIONAL:
                cone[bit] = {} if cell is None else {unit(name): (0, name)}
                stack.pop()
                continue
            todo = [b for b in inputs(cell) if b not in cone and b in driver]
            fresh = [b for b in todo if b not in visiting]
            if fresh:
                visiting.add(bit)
                stack.extend(fresh)
                continue
            if todo:                                     # only a combinational loop is left
                cone[bit] = {}
                stack.pop()
                continue
            paths = {}
            for b in inputs(cell):
                for u, (levels, source) in cone.get(b, {}).items():
                    if levels > paths.get(u, (-1, None))[0]:
                        paths[u] = (levels, source)
            step = COMBINATIONAL[cell["type"]]
            cone[bit] = {u: (levels + step, source) for u, (levels, source) in paths.items()}
            if cell["type"] == "TRELLIS_DPR16X4":
                u = unit(name)
                cone[bit][u] = max(cone[bit].get(u, (0, name)), (1, name))
            stack.pop()

    out = {}
    for name, cell in cells.items():
        if cell["type"] in COMBINATIONAL and cell["type"] != "TRELLIS_DPR16X4":
            continue
        own = unit(name)
        for bit in inputs(cell) if "port_directions" in cell else ():
            foreign = {u: p for u, p in cone.get(bit, {}).items() if u != own}
            if not foreign:
                continue
            levels, source = max(foreign.values(), key=lambda p: p[0])
            stem = re.sub(r"_\d+$", "", name)
            stem = re.sub(r"(core|router|hops|link|bus_[a-z_]+?)_\d+", r"\1_*", stem)
            best = out.get(stem, (-1, 0, None, None))
            out[stem] = ((levels, max(best[1], len(foreign)), source, name) if levels > best[0]
                         else (best[0], max(best[1], len(foreign)), best[2], best[3]))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="yosys JSON netlist (top.json of a board build)")
    parser.add_argument("--min-units", type=int, default=3,
                        help="List registers reaching at least this many cores/routers.")
    parser.add_argument("--top", default="top", help="Top module name.")
    parser.add_argument("--paths", action="store_true",
                        help="List combinational paths from one unit into another instead.")
    parser.add_argument("--min-levels", type=int, default=2,
                        help="With --paths: list endpoints with at least this many levels.")
    args = parser.parse_args(argv)
    with open(args.json) as f:
        design = json.load(f)
    if args.top not in design.get("modules", {}):
        sys.exit(f"{args.json} has no module {args.top!r}")
    if args.paths:
        rows = sorted(((levels, units, stem, source, sink)
                       for stem, (levels, units, source, sink) in crossings(design, args.top).items()
                       if levels >= args.min_levels), reverse=True)
        if not rows:
            print(f"no path of {args.min_levels} or more levels crosses from one unit to another")
        for levels, units, stem, source, sink in rows:
            print(f"{levels:3d} levels  from {units:2d} units  {stem}\n"
                  f"           deepest: {source} -> {sink}")
        return
    rows = sorted(((units, bits, name) for name, (units, bits) in spans(design, args.top).items()
                   if units >= args.min_units), reverse=True)
    if not rows:
        print(f"no flip-flop reaches {args.min_units} or more cores/routers")
    for units, bits, name in rows:
        print(f"{units:3d} units  {bits:4d} bits  {name}")


if __name__ == "__main__":
    main()
