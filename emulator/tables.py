"""A chip image decoded into flat numpy arrays, the form the fast engines compute on.

The per-core memories of a :class:`~neurotile.ChipImage` are concatenated over cores; an
``*_off`` array of length ``n_cores + 1`` gives where each core's words start, and the ``base``
fields inside a core stay core-local, exactly as the hardware addresses them.
"""

import numpy as np

__all__ = ["ChipTables", "concat_ranges"]


def concat_ranges(starts, lengths):
    """Concatenated ranges ``starts[i] .. starts[i] + lengths[i] - 1`` (int64): the words of
    every table entry ``(base, count)`` at once."""
    lengths = np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(lengths)
    return np.repeat(np.asarray(starts, np.int64) - ends + lengths, lengths) + np.arange(total)


def _cat(cores, table, field):
    parts = [np.asarray(c.tables[table][field], np.int64) for c in cores]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _offsets(sizes):
    off = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=off[1:])
    return off


class ChipTables:
    """Flat views of every memory of a chip image.

    Members
    -------
    arch : Arch
    n_neurons, n_axons : int64 [n_cores]
    du, dv, vth, bias_mant, bias_exp : int64 [n_cores, N]
        Each neuron's profile fields, resolved through ``neuron_cfg``.
    axon_off : int64 [n_cores + 1]; axon_base, axon_count : int64 [total axons]
    syn_off : int64 [n_cores + 1]; syn_target, syn_weight, syn_wexp : int64 [total synapses]
    syn_delay : int64
        The actual delay in steps (the stored field plus one).
    syn_value : int64
        ``weight << wexp``, what each synapse adds.
    fo_base, fo_count : int64 [n_cores, N]
    fo_off : int64 [n_cores + 1]; fo_host, fo_x, fo_y, fo_index : int64 [total fan-out words]
    in_names : list of str; in_off : int64 [groups + 1], channel offsets of each input group
    in_base, in_count : int64 [channels]
        Global (over all groups) index into the ``in_pk_*`` packet arrays.
    in_pk_host, in_pk_x, in_pk_y, in_pk_index : int64 [total input packets]
    out_names : list of str; out_pop, out_neuron : int64 [outputs]
    populations : dict of str to (core, local) int64 arrays
    """

    def __init__(self, image):
        a = self.arch = image.arch
        cores = image.cores
        self.n_cores = a.n_cores
        self.N = a.neurons_per_core
        self.D = a.max_delay
        self.n_neurons = np.array([c.n_neurons for c in cores], np.int64)
        self.n_axons = np.array([c.n_axons for c in cores], np.int64)

        prof_idx = np.stack([np.asarray(c.tables["neuron_cfg"]["profile"], np.int64)
                             for c in cores])
        for f in ("du", "dv", "vth", "bias_mant", "bias_exp"):
            table = np.stack([np.asarray(c.tables["profile"][f], np.int64) for c in cores])
            setattr(self, f, np.take_along_axis(table, prof_idx, axis=1))

        self.axon_off = _offsets([c.n_axons for c in cores])
        self.axon_base = _cat(cores, "axon", "base")
        self.axon_count = _cat(cores, "axon", "count")

        self.syn_off = _offsets([c.n_synapses for c in cores])
        self.syn_target = _cat(cores, "synapse", "target")
        self.syn_weight = _cat(cores, "synapse", "weight")
        self.syn_wexp = _cat(cores, "synapse", "wexp")
        self.syn_delay = _cat(cores, "synapse", "delay") + 1
        self.syn_value = self.syn_weight << self.syn_wexp

        self.fo_base = np.stack([np.asarray(c.tables["fanout_index"]["base"], np.int64)
                                 for c in cores])
        self.fo_count = np.stack([np.asarray(c.tables["fanout_index"]["count"], np.int64)
                                  for c in cores])
        self.fo_off = _offsets([c.n_fanout for c in cores])
        for f in ("host", "x", "y", "index"):
            setattr(self, f"fo_{f}", _cat(cores, "fanout", f))

        self.in_names = list(image.inputs)
        sizes = [int(image.inputs[n]["n"]) for n in self.in_names]
        self.in_off = _offsets(sizes)
        pk_sizes = [np.asarray(image.inputs[n]["packets"]["index"]).size for n in self.in_names]
        pk_off = _offsets(pk_sizes)
        base, count = [], []
        for g, name in enumerate(self.in_names):
            base.append(np.asarray(image.inputs[name]["base"], np.int64) + pk_off[g])
            count.append(np.asarray(image.inputs[name]["count"], np.int64))
        self.in_base = np.concatenate(base) if base else np.zeros(0, np.int64)
        self.in_count = np.concatenate(count) if count else np.zeros(0, np.int64)
        for f in ("host", "x", "y", "index"):
            parts = [np.asarray(image.inputs[n]["packets"][f], np.int64) for n in self.in_names]
            setattr(self, f"in_pk_{f}",
                    np.concatenate(parts) if parts else np.zeros(0, np.int64))

        self.out_names = list(image.outputs["names"])
        self.out_pop = np.asarray(image.outputs["pop"], np.int64)
        self.out_neuron = np.asarray(image.outputs["neuron"], np.int64)
        self.populations = {name: (np.asarray(p["core"], np.int64),
                                   np.asarray(p["local"], np.int64))
                            for name, p in image.populations.items()}

    @property
    def n_channels(self):
        """Input channels over all input groups, in ``in_names`` order."""
        return int(self.in_off[-1])
