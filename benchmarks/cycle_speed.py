"""Speed of the cycle-accurate emulator (``mode="cycle"``) on the W2 workload.

W2 (/work/shared/WORKLOADS.md, built by ``benchmarks/workloads.py``): 4096 LIF neurons, 80 %
excitatory and 20 % inhibitory, random connectivity p = 0.1, external Poisson drive through the
host port, about 7 % firing per step, compiled on ``Arch.profile("large", mesh_w=8, mesh_h=4)``
(32 cores). The script runs the steps in cycle mode and prints the simulated clock cycles per
step and per second of wall time, steps per second and synaptic operations per second, next to
the activity (firing rate, packets and synops per step) they were measured at.

Run from the repository root::

    python benchmarks/cycle_speed.py                  # 200 steps, numba backend
    python benchmarks/cycle_speed.py --drive 0.38     # thin the input to ~7 % firing
    python benchmarks/cycle_speed.py --steps 50 --backend python

``--drive q`` keeps each input spike of the workload with probability q (seeded), to measure at
another activity: the cycle count of a step grows with its traffic, so compare figures only at
equal firing rates (printed).

The first run of the numba backend compiles the SPIKE-phase kernel (cached on disk afterwards);
one warm-up step on a copy of the state keeps that out of the timing.
"""

import argparse
import os
import sys
import time

import numpy as np

try:
    import neurotile as nt
except ImportError:   # run as a script from a checkout: the repository root is the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    import neurotile as nt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import build  # noqa: E402

from neurotile.emulator.cycle import CycleEngine  # noqa: E402
from neurotile.emulator.state import ChipState  # noqa: E402


def channels_of(image, inputs):
    """The [steps, n_channels] channel array (input groups in image.inputs order)."""
    return np.concatenate([np.asarray(inputs[name], bool) for name in image.inputs], axis=1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="W2")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--backend", default="auto", choices=("auto", "numba", "python"))
    ap.add_argument("--repeat", type=int, default=1, help="timed runs (median is reported)")
    ap.add_argument("--drive", type=float, default=1.0,
                    help="fraction of the workload's input spikes kept (default: all)")
    args = ap.parse_args(argv)

    w = build(args.workload, steps=args.steps)
    t0 = time.perf_counter()
    image = nt.compile(w.network, w.arch)
    t_compile = time.perf_counter() - t0
    ch = channels_of(image, w.inputs)
    if args.drive < 1.0:
        ch &= np.random.default_rng(12345).random(ch.shape) < args.drive
    engine = CycleEngine(image, backend=args.backend)
    print(f"{w.name}: {w.network!r}")
    print(f"arch {w.arch.name} {w.arch.mesh_w}x{w.arch.mesh_h}, fifo_depth {w.arch.fifo_depth}, "
          f"core_fifo_depth {w.arch.core_fifo_depth}; compile {t_compile:.2f} s; "
          f"backend {engine.backend}")

    t0 = time.perf_counter()
    engine.run(ChipState.from_image(image), ch[:1])
    print(f"warm-up (kernel compile or cache load): {time.perf_counter() - t0:.2f} s")

    times, result = [], None
    for _ in range(args.repeat):
        engine.reset()
        state = ChipState.from_image(image)
        t0 = time.perf_counter()
        result = engine.run(state, ch)
        times.append(time.perf_counter() - t0)
    dt = float(np.median(times))

    steps = result.steps
    c = result.counters
    cycles = c["cycles"]
    n_neurons = sum(len(p["core"]) for p in image.populations.values())
    rate = result.spike_count() / steps / n_neurons
    print(f"activity: {rate * 100:.2f} % firing per step; packets/step "
          f"{(c['packets_out'].sum() + c['host_in'].sum()) / steps:.0f} "
          f"({c['host_in'].sum() / steps:.0f} from the host); synops/step "
          f"{c['synops'].sum() / steps:.0f}; hops/step {c['hops'].sum() / steps:.0f}")
    print(f"cycles/step: mean {cycles.mean():.0f}, min {cycles.min()}, max {cycles.max()} "
          f"(UPDATE {int(c['update_cycles'][0])}, SPIKE mean {c['spike_cycles'].mean():.0f})")
    print(f"{steps} steps in {dt:.2f} s: {steps / dt:.1f} steps/s, "
          f"{cycles.sum() / dt / 1e6:.3f} M simulated cycles/s, "
          f"{c['synops'].sum() / dt / 1e6:.2f} M synops/s")


if __name__ == "__main__":
    main()
