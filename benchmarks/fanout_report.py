"""Flip-flops that drive several cores or routers, from a synthesised board design.

Run from the repository root on the ``top.json`` of a board build (after synthesis)::

    python benchmarks/fanout_report.py build/boards/ulx3s-85f/ulx3s-85f-4x4/top.json

A register whose output reaches cells of many cores spans the die once the mesh is placed. Some
do so by design (the host bus's stage A, the step counter, the reset); others are copies yosys
merged because every core's had the same inputs (``opt_merge``; a wire's ``keep`` does not stop
it). This lists, per register (the flip-flops of one name), its bits and the most different
cores/routers any of its bits reaches directly, the widest first. A router's FIFO reaching 5
(its neighbours and its core) is by design.
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="yosys JSON netlist (top.json of a board build)")
    parser.add_argument("--min-units", type=int, default=3,
                        help="List registers reaching at least this many cores/routers.")
    parser.add_argument("--top", default="top", help="Top module name.")
    args = parser.parse_args(argv)
    with open(args.json) as f:
        design = json.load(f)
    if args.top not in design.get("modules", {}):
        sys.exit(f"{args.json} has no module {args.top!r}")
    rows = sorted(((units, bits, name) for name, (units, bits) in spans(design, args.top).items()
                   if units >= args.min_units), reverse=True)
    if not rows:
        print(f"no flip-flop reaches {args.min_units} or more cores/routers")
    for units, bits, name in rows:
        print(f"{units:3d} units  {bits:4d} bits  {name}")


if __name__ == "__main__":
    main()
