"""Compile time and peak memory of the W2 and W3 workloads (/work/shared/WORKLOADS.md).

Run from the repository root::

    python benchmarks/compile_speed.py                       # W2 and W3, 3 runs each
    python benchmarks/compile_speed.py --workload W3 --repeat 1

The networks and architectures are those of :mod:`workloads` (next to this file): W2 is 4096 LIF neurons with
p = 0.1 recurrent connectivity on the ``large`` profile's memories with an 8x4 mesh; W3 is 32768 neurons with
p = 0.01 on the full 16x16 ``large`` mesh; each has one external input channel per neuron. Building a workload is
not timed. The compile is timed with ``time.perf_counter`` (wall) and ``time.process_time`` (CPU, steadier on a
shared machine). Its peak memory is measured with ``tracemalloc`` (numpy reports its buffers to it) in a separate
run, since tracing slows allocation; the process's peak resident set (``ru_maxrss``) is printed too, and includes
the network itself.
"""

import argparse
import resource
import time
import tracemalloc

import numpy as np

import neurotile as nt
from workloads import build

WORKLOADS = ("W2", "W3")


def run(name, repeat):
    w = build(name, steps=1)        # the input spikes are not used here
    net, arch = w.network, w.arch
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        image = nt.compile(net, arch)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        del image
    tracemalloc.start()
    image = nt.compile(net, arch)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    pl = image.meta["placement"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # ru_maxrss is in KiB on Linux
    print(f"{name}: {net.n_neurons} neurons, {net.n_synapses} synapses on {arch.name} {arch.mesh_w}x{arch.mesh_h} "
          f"({image.meta['cores_used']} cores used)")
    print(f"  compile time: median {np.median(times):.2f} s wall (runs: {', '.join(f'{t:.2f}' for t in times)}), "
          f"median {np.median(cpu):.2f} s CPU (user + system, all threads)")
    print(f"  compile peak traced memory: {peak / 2**20:.0f} MiB; process peak RSS so far: {rss:.0f} MiB")
    print(f"  traffic-weighted hops: {pl['hops_weighted']} optimized vs {pl['hops_weighted_naive']} naive "
          f"({pl['swaps']} swaps)")
    return image


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=WORKLOADS, action="append")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    for name in args.workload or WORKLOADS:
        run(name, args.repeat)


if __name__ == "__main__":
    main()
