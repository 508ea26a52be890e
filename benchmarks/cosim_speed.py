"""Speed of the co-simulated chip (Verilator) next to the emulator's cycle mode, on one 2x2 run.

The chip is a 2x2 mesh of 64-neuron cores (``ARCH`` below, small memories so that it builds in
well under a minute) running a seeded random recurrent network of 3 x 64 LIF neurons driven by
Bernoulli input spikes. The script prints:

- Verilator: simulated clock cycles per second of wall time inside one RUN of ``--steps`` steps
  (one frame, no input: the chip runs the steps back to back from the state the co-simulated
  run left, no host traffic in between), i.e. the raw speed of the Verilator model with its HDL
  clock;
- co-simulation: the full ``CosimChip.run`` loop (INJECT, RUN 1, READ_OUTPUT, READ_COUNTERS per
  step, every frame a round trip to the cocotb bridge): steps per second and chip cycles per
  second, and the share of wall time that is Python and socket overhead;
- emulator: ``nt.Emulator(image, mode="cycle")`` on the same run: steps per second and chip
  cycles per second (numba backend unless ``--backend python``; one warm-up run first);
- the build time (0 when the build was cached) and the session start time.

Both runs are checked to agree (spikes, every counter, flags) before the figures are printed.

Run from the repository root::

    python benchmarks/cosim_speed.py                 # 300 steps
    python benchmarks/cosim_speed.py --steps 1000 --rate 0.2
"""

import argparse
import os
import sys
import time

try:
    import neurotile as nt
except ImportError:   # run as a script from a checkout: the repository root is the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    import neurotile as nt

from neurotile.emulator import Emulator, first_divergence  # noqa: E402
from neurotile.emulator.testing import random_inputs, random_network  # noqa: E402
from neurotile.sim.build import build_chip, simulator_available  # noqa: E402
from neurotile.sim.cosim import CosimChip  # noqa: E402

ARCH = nt.Arch(mesh_w=2, mesh_h=2, neurons_per_core=64, profiles_per_core=8, axons_per_core=256,
               synapses_per_core=2048, fanout_per_core=256, max_delay=8, host_in_depth=256,
               host_out_depth=256, name="bench-2x2")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rate", type=float, default=0.3, help="input spike probability per step")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--backend", default="auto", choices=("auto", "numba", "python"))
    ap.add_argument("--build-dir", default=None, help="Verilator build cache")
    args = ap.parse_args(argv)

    reason = simulator_available("verilator")
    if reason:
        sys.exit(f"cannot co-simulate: {reason}")
    net = random_network(args.seed, n_inputs=32, sizes=(64, 64, 64), p=0.15, max_delay=8,
                         profiles=4, outputs="all")
    image = nt.compile(net, ARCH)
    inputs = random_inputs(net, args.steps, args.rate, args.seed + 1)

    t0 = time.perf_counter()
    build = build_chip(ARCH, cache_dir=args.build_dir)
    t_build = time.perf_counter() - t0

    backend = {"python": "numpy"}.get(args.backend, args.backend)
    emu = Emulator(image, mode="cycle", backend=backend, progress=False)
    emu.run(inputs, args.steps)                      # warm-up (numba compilation)
    emu.reset()
    t0 = time.perf_counter()
    expected = emu.run(inputs, args.steps)
    t_emu = time.perf_counter() - t0

    t0 = time.perf_counter()
    with CosimChip(ARCH, build=build) as chip:
        t_start = time.perf_counter() - t0
        t0 = time.perf_counter()
        chip.load(image)
        t_load = time.perf_counter() - t0
        frames0, c0 = chip.transport.frames, chip.cycles()
        t0 = time.perf_counter()
        rtl = chip.run(inputs, args.steps)
        t_cosim = time.perf_counter() - t0
        c1, frames = chip.cycles(), chip.transport.frames - frames0

        # Raw model speed: as many steps again in one RUN frame, without input (the state
        # continues; only the cycle count matters here).
        c2 = chip.cycles()
        t0 = time.perf_counter()
        chip.client.run(args.steps, timeout=3600)
        t_raw = time.perf_counter() - t0
        raw_cycles = chip.cycles() - c2

    d = first_divergence(expected, rtl, image)
    if d is not None:
        sys.exit(f"RTL and emulator diverge: {d}")
    step_cycles = rtl.total("cycles")
    print(f"chip: {ARCH.mesh_w}x{ARCH.mesh_h}, {ARCH.neurons_per_core} neurons per core; network "
          f"{sum(p.n for p in net.populations)} neurons; {args.steps} steps, "
          f"{rtl.spike_count()} spikes, {rtl.total('synops')} synops, {step_cycles} chip cycles "
          f"({step_cycles / args.steps:.0f} per step); bit-exact")
    print(f"build: {t_build:.1f} s ({'cached' if build.cached else 'built'}); session start "
          f"{t_start:.2f} s; image load {t_load:.2f} s")
    print(f"Verilator model, one RUN of {args.steps} steps: {raw_cycles} cycles in {t_raw:.3f} s "
          f"= {raw_cycles / t_raw:,.0f} cycles/s")
    print(f"co-simulation loop: {args.steps / t_cosim:,.0f} steps/s, "
          f"{step_cycles / t_cosim:,.0f} chip cycles/s ({c1 - c0} bench cycles incl. host "
          f"traffic; {frames} frames, {t_cosim / frames * 1e3:.2f} ms per frame)")
    print(f"emulator cycle mode ({emu.engine.backend}): {args.steps / t_emu:,.0f} steps/s, "
          f"{step_cycles / t_emu:,.0f} chip cycles/s")
    print(f"ratio: emulator / Verilator model = {(step_cycles / t_emu) / (raw_cycles / t_raw):.1f}x")


if __name__ == "__main__":
    main()
