"""Speed of the functional emulator on the standard workloads (W1, W2, W3 of WORKLOADS.md).

For every workload and backend the run is repeated in fresh processes (so numba's on-disk cache
is loaded, not a warm in-process state) and the median is printed: steps/s, synaptic events/s
(``synops``: every synapse that a spike, or an input spike, triggered), the firing rate (spikes
per neuron per step, which must be quoted with every figure) and the peak resident memory of the
process (compilation included). Steps/s are wall-clock; the CPU-time figure next to them shows
how much the run was slowed by other load on the machine (``os.getloadavg`` is printed too).

    python benchmarks/emulator_speed.py                      # W1 W2 W3, numba and numpy, 3 runs
    python benchmarks/emulator_speed.py --workloads W2 --steps 500 --backends numba --repeats 5
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def child(name, backend, steps, threads):
    """One measurement in this process; prints one JSON line."""
    sys.path.insert(0, HERE)
    import workloads
    import neurotile as nt

    w = workloads.build(name, steps)
    t = time.perf_counter()
    image = nt.compile(w.network, w.arch)
    t_compile = time.perf_counter() - t
    t = time.perf_counter()
    emu = nt.Emulator(image, backend=backend, progress=False)
    if threads is not None:
        from neurotile.emulator.functional import FunctionalEngine
        emu.engine = FunctionalEngine(image, backend=backend, threads=threads)
    t_load = time.perf_counter() - t
    emu.run(steps=2)                    # loads (or compiles) the kernel
    emu.reset()
    t, c = time.perf_counter(), time.process_time()
    res = emu.run(w.inputs, steps=w.steps)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    n = sum(s.shape[1] for s in res.spikes.values())
    out = dict(
        workload=name, backend=emu.engine.backend, threads=emu.engine.plan.P, steps=w.steps,
        neurons=n, synapses=int(image.meta["n_synapses"]), cores=int(image.meta["cores_used"]),
        mesh=f"{w.arch.mesh_w}x{w.arch.mesh_h}", wall=wall, cpu=cpu,
        steps_per_s=w.steps / wall, cpu_steps_per_s=w.steps / cpu,
        events_per_s=res.total("synops") / wall, synops=res.total("synops"),
        rate=res.spike_count() / (n * w.steps),
        rates={k: float(s.mean()) for k, s in res.spikes.items()},
        compile_s=t_compile, load_s=t_load,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    print(json.dumps(out))


def measure(name, backend, steps, threads, repeats):
    runs = []
    for _ in range(repeats):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--backends", backend]
        if steps is not None:
            cmd += ["--steps", str(steps)]
        if threads is not None:
            cmd += ["--threads", str(threads)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            sys.stderr.write(p.stderr)
            raise SystemExit(f"{name}/{backend}: the measuring process failed")
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in runs)
           for k in ("steps_per_s", "cpu_steps_per_s", "events_per_s", "peak_rss_mib",
                     "compile_s")}
    return runs[0], med, runs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", nargs="+", default=["W1", "W2", "W3"])
    ap.add_argument("--backends", nargs="+", default=["numba", "numpy"],
                    choices=["numba", "numpy"])
    ap.add_argument("--steps", type=int, default=None, help="default: each workload's own")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None,
                    help="numba backend: threads (default: the engine's choice)")
    ap.add_argument("--json", help="also write every run to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.backends[0], args.steps, args.threads)
        return
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores; >1 means other jobs "
          f"competed)")
    print(f"{'workload':8} {'backend':7} {'thr':>3} {'steps':>6} {'rate':>7} {'steps/s':>9} "
          f"{'cpu st/s':>9} {'events/s':>10} {'peak RSS':>9} {'compile':>8}")
    every = []
    for name in args.workloads:
        for backend in args.backends:
            info, med, runs = measure(name, backend, args.steps, args.threads, args.repeats)
            every += runs
            print(f"{name:8} {backend:7} {info['threads']:>3} {info['steps']:>6} "
                  f"{info['rate']:>7.4f} {med['steps_per_s']:>9.0f} {med['cpu_steps_per_s']:>9.0f} "
                  f"{med['events_per_s'] / 1e6:>9.1f}M {med['peak_rss_mib']:>7.0f}Mi "
                  f"{med['compile_s']:>7.1f}s", flush=True)
            rates = ", ".join(f"{k} {v:.4f}" for k, v in info["rates"].items())
            print(f"{'':17}{info['neurons']} neurons, {info['synapses']} synapses on "
                  f"{info['cores']} cores of {info['mesh']}; rates {rates}; median of "
                  f"{len(runs)} runs", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(every, f, indent=1)


if __name__ == "__main__":
    main()
