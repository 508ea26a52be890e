"""A readable summary of a chip image: memory use per core, where populations sit, and network traffic.

Everything is read from the image's tables (only the naive-placement figure comes from ``image.meta``, since a
placed image no longer knows the naive positions), so the report also checks the compiler's own figures.
"""

import numpy as np

from .errors import NeurotileTypeError, NeurotileValueError

__all__ = ["Report", "image_report", "MEMORIES"]

#: The memories a report lists, as (name, ``Arch`` capacity field).
MEMORIES = (("neurons", "neurons_per_core"), ("profiles", "profiles_per_core"), ("axons", "axons_per_core"),
            ("synapses", "synapses_per_core"), ("fanout", "fanout_per_core"))


class Report:
    """Resource use and traffic of a :class:`~.image.ChipImage`; ``str(report)`` is a multi-line text.

    Members
    -------
    title : str
    usage : list of dict
        One per core in use: ``x``, ``y``, ``populations`` (names) and, per memory of :data:`MEMORIES`, the words
        in use.
    capacity : dict of str to int
        Words of each memory of one core.
    mesh : list of list of str
        ``mesh[y][x]``: the populations on core (x, y), joined by ``+``; ``.`` for an unused core.
    traffic : dict
        Per step if every neuron and every input channel fires once: ``core_packets`` (packets between cores,
        local deliveries included), ``host_out`` (output spikes to the host), ``host_in`` (packets the host
        injects), ``hops`` (every packet's Manhattan route length, summed, host port at (0, 0)).
    rates : list of (float, dict)
        The same figures scaled to firing rates (spikes per neuron and per input channel per step).
    placement : dict
        ``image.meta["placement"]`` plus ``hops_measured``, the hop count recomputed from the tables.
    """

    def __init__(self, title, usage, capacity, mesh, traffic, rates, placement):
        self.title = title
        self.usage = usage
        self.capacity = capacity
        self.mesh = mesh
        self.traffic = traffic
        self.rates = rates
        self.placement = placement

    def totals(self):
        """Words in use of each memory, summed over cores."""
        return {name: int(sum(u[name] for u in self.usage)) for name, _ in MEMORIES}

    def __repr__(self):
        return f"<Report {self.title}>"

    def __str__(self):
        lines = [self.title, ""]
        n = len(self.usage)
        lines.append("memory use (summed over the cores in use; the busiest core against one core's capacity):")
        for name, _ in MEMORIES:
            cap = self.capacity[name]
            total = sum(u[name] for u in self.usage)
            busiest = max(self.usage, key=lambda u: u[name]) if self.usage else None
            worst = busiest[name] if busiest else 0
            where = f"core ({busiest['x']},{busiest['y']})" if busiest else "-"
            lines.append(f"  {name:<9} {total:>10} of {cap * n:>10}   busiest {where:<11} {worst:>7} / {cap:<7} "
                         f"({100 * worst / cap:5.1f}%)")
        lines += ["", "per core (used / capacity):"]
        lines.append(f"  {'core':<8} " + " ".join(f"{name:>15}" for name, _ in MEMORIES) + "  populations")
        for u in self.usage:
            cells = " ".join(f"{u[name]}/{self.capacity[name]}".rjust(15) for name, _ in MEMORIES)
            where = f"({u['x']},{u['y']})"
            lines.append(f"  {where:<8} {cells}  {', '.join(u['populations'])}")
        lines += ["", "mesh map (x to the right, y down; the host port is west of (0,0)):"]
        width = max([len(c) for row in self.mesh for c in row] + [3])
        width = min(width, 14)
        lines.append("        " + " ".join(f"{f'x={x}':<{width}}" for x in range(len(self.mesh[0]))))
        for y, row in enumerate(self.mesh):
            cells = " ".join(f"{c if len(c) <= width else c[:width - 1] + '~':<{width}}" for c in row)
            lines.append(f"  {f'y={y}':<5} {cells}".rstrip())
        t = self.traffic
        lines += ["", "packets per step:"]
        lines.append(f"  {'firing':<22} {'core packets':>13} {'to host':>10} {'from host':>10} {'packet-hops':>12}")
        lines.append(f"  {'every source once':<22} {t['core_packets']:>13} {t['host_out']:>10} {t['host_in']:>10} "
                     f"{t['hops']:>12}")
        for rate, r in self.rates:
            lines.append(f"  {f'at rate {rate:g}':<22} {r['core_packets']:>13.1f} {r['host_out']:>10.1f} "
                         f"{r['host_in']:>10.1f} {r['hops']:>12.1f}")
        p = self.placement
        if "hops_weighted" in p:
            naive = p.get("hops_weighted_naive", p["hops_weighted"])
            gain = 100 * (naive - p["hops_weighted"]) / naive if naive else 0.0
            lines += ["", f"placement ({p.get('method', '?')}, seed {p.get('seed', '?')}): traffic-weighted hops "
                          f"{p['hops_weighted']} vs {naive} naive ({gain:.1f}% fewer); measured from the tables: "
                          f"{p['hops_measured']}"]
        return "\n".join(lines)


def _rates(rates):
    if isinstance(rates, (int, float)):
        rates = (rates,)
    out = []
    for r in rates:
        if isinstance(r, bool) or not isinstance(r, (int, float, np.integer, np.floating)):
            raise NeurotileTypeError(f"rates must be numbers, not {r!r}")
        if not 0 <= r <= 1:
            raise NeurotileValueError(f"rates must be between 0 and 1 (spikes per neuron per step), not {r!r}")
        out.append(float(r))
    return out


def image_report(image, rates=(0.01, 0.07, 0.1)):
    """Summarise ``image`` (a :class:`~.image.ChipImage`).

    Parameters
    ----------
    image : ChipImage
    rates : float or sequence of float
        Firing rates (spikes per neuron and per input channel per step) to scale the traffic figures to.

    Returns
    -------
    Report
    """
    from .image import ChipImage
    if not isinstance(image, ChipImage):
        raise NeurotileTypeError(f"image must be an nt.ChipImage, not {type(image).__name__}")
    rates = _rates(rates)
    a = image.arch
    capacity = {name: getattr(a, field) for name, field in MEMORIES}

    pops_on = [[] for _ in range(a.n_cores)]
    for name, where in image.populations.items():
        for c in np.unique(np.asarray(where["core"], np.int64)):
            pops_on[int(c)].append(name)

    usage = []
    hops = core_packets = host_out = 0
    for c, core in enumerate(image.cores):
        t = core.tables
        fo = t["fanout"]
        host = np.asarray(fo["host"], bool)
        dist = np.abs(np.asarray(fo["x"]) - core.x) + np.abs(np.asarray(fo["y"]) - core.y)
        hops += int(dist[~host].sum()) + int(host.sum()) * (core.x + core.y)
        core_packets += int((~host).sum())
        host_out += int(host.sum())
        if core.n_neurons == 0 and core.n_axons == 0:
            continue
        profiles = np.unique(np.asarray(t["neuron_cfg"]["profile"])[:core.n_neurons]).size
        usage.append({"x": core.x, "y": core.y, "populations": pops_on[c], "neurons": core.n_neurons,
                      "profiles": profiles, "axons": core.n_axons, "synapses": core.n_synapses,
                      "fanout": core.n_fanout})
    host_in = 0
    for inp in image.inputs.values():
        pk = inp["packets"]
        host_in += int(np.asarray(pk["index"]).size)
        hops += int(np.sum(np.asarray(pk["x"]) + np.asarray(pk["y"])))
    traffic = {"core_packets": core_packets, "host_out": host_out, "host_in": host_in, "hops": hops}
    scaled = [(r, {k: r * v for k, v in traffic.items()}) for r in rates]

    mesh = [["+".join(pops_on[y * a.mesh_w + x]) or "." for x in range(a.mesh_w)] for y in range(a.mesh_h)]
    placement = dict(image.meta.get("placement", {}))
    placement["hops_measured"] = hops
    net = image.meta.get("network", "?")
    title = (f"chip image of network {net!r} on arch {a.name!r}: {a.mesh_w}x{a.mesh_h} mesh, {len(usage)} of "
             f"{a.n_cores} cores in use")
    return Report(title, usage, capacity, mesh, traffic, scaled, placement)
