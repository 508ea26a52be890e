"""The chip image: the complete contents of every memory of every core, plus the host's maps.

A :class:`ChipImage` is data (the "what"); the emulator and the RTL are two implementations that
consume it. Memory contents are held as integer field arrays, one dict per memory keyed by the
field names of the layouts in :mod:`.layouts`, so that :func:`~.layouts.pack` turns any of them
into the exact words the hardware holds.
"""

import dataclasses
import hashlib
import io
import json

import numpy as np

from .arch import Arch
from .errors import ImageError, NeurotileTypeError
from .layouts import pack, unpack

__all__ = ["ChipImage", "CoreImage", "FORMAT_VERSION", "CORE_TABLES"]

#: Version of the saved-file format; :meth:`ChipImage.load` refuses any other.
FORMAT_VERSION = 1

#: The memories of a core, by layout name.
CORE_TABLES = ("neuron_state", "neuron_cfg", "profile", "axon", "synapse", "fanout_index", "fanout")


def _depths(arch, core):
    """Number of words each memory of ``core`` must hold (used ones for the variable tables)."""
    return {
        "neuron_state": arch.neurons_per_core, "neuron_cfg": arch.neurons_per_core,
        "profile": arch.profiles_per_core, "axon": core.n_axons,
        "synapse": None, "fanout_index": arch.neurons_per_core, "fanout": None,
    }


def _capacity(arch):
    return {
        "neuron_state": arch.neurons_per_core, "neuron_cfg": arch.neurons_per_core,
        "profile": arch.profiles_per_core, "axon": arch.axons_per_core,
        "synapse": arch.synapses_per_core, "fanout_index": arch.neurons_per_core,
        "fanout": arch.fanout_per_core,
    }


@dataclasses.dataclass(eq=False)
class CoreImage:
    """The memories of the core at mesh position (x, y).

    Members
    -------
    x, y : int
    n_neurons : int
        Neurons in use (0 .. neurons_per_core); the UPDATE phase updates only these.
    n_axons : int
        Axon-table entries in use; a packet naming a larger axon raises ``bad_axon``.
    tables : dict of str to dict of str to ndarray
        ``tables[memory][field]``: int64 arrays, one entry per word. ``neuron_state``,
        ``neuron_cfg`` and ``fanout_index`` have ``neurons_per_core`` words, ``profile`` has
        ``profiles_per_core``, ``axon`` has ``n_axons``, ``synapse`` and ``fanout`` the used words.
    """

    x: int
    y: int
    n_neurons: int
    n_axons: int
    tables: dict

    @classmethod
    def empty(cls, arch, x, y):
        """A core with no neurons, no axons and zeroed memories."""
        lay = arch.layouts
        tables = {}
        for name, depth in (("neuron_state", arch.neurons_per_core),
                            ("neuron_cfg", arch.neurons_per_core),
                            ("profile", arch.profiles_per_core), ("axon", 0), ("synapse", 0),
                            ("fanout_index", arch.neurons_per_core), ("fanout", 0)):
            tables[name] = {f: np.zeros(depth, np.int64) for f, _ in lay[name]}
        return cls(x, y, 0, 0, tables)

    def words(self, arch, table):
        """The packed ``uint64`` words of one memory."""
        return pack(arch.layouts[table], self.tables[table])

    @property
    def n_synapses(self):
        return int(self.tables["synapse"]["target"].size)

    @property
    def n_fanout(self):
        return int(self.tables["fanout"]["index"].size)


@dataclasses.dataclass(eq=False)
class ChipImage:
    """Everything needed to run a network on a chip.

    Members
    -------
    arch : Arch
    cores : list of CoreImage
        One per mesh position, at index ``y * mesh_w + x``.
    inputs : dict
        Per input group name: ``{"n": n, "base": [n], "count": [n], "packets": {field: [...]}}``,
        the packets (layout ``packet``) the host injects when input channel ``i`` spikes are
        ``packets[base[i] : base[i] + count[i]]``.
    outputs : dict
        ``{"names": [population names], "pop": [k], "neuron": [k]}``: a host-bound packet with
        index ``k`` is a spike of neuron ``neuron[k]`` of population ``names[pop[k]]``.
    populations : dict
        Per population name: ``{"core": [n], "local": [n]}``, where each neuron lives.
    meta : dict
        JSON-serialisable facts from the compiler (network name, placement figures, ...).
    """

    arch: Arch
    cores: list
    inputs: dict
    outputs: dict
    populations: dict
    meta: dict = dataclasses.field(default_factory=dict)
    version: int = FORMAT_VERSION

    def __post_init__(self):
        if not isinstance(self.arch, Arch):
            raise NeurotileTypeError(f"ChipImage.arch must be an nt.Arch, not "
                                     f"{type(self.arch).__name__}")

    # -- access ----------------------------------------------------------------------------------

    def core(self, x, y):
        return self.cores[y * self.arch.mesh_w + x]

    @property
    def output_names(self):
        return list(self.outputs["names"])

    # -- validation ------------------------------------------------------------------------------

    def validate(self):
        """Check every table against the architecture; raise :class:`ImageError` on the first fault.

        Checks: table sizes within capacity, every field within its width, axon and fan-out lists
        inside their memories, packets addressing existing cores and axons, each (core, axon) fed
        by exactly one source, and that no dendritic accumulator can wrap (the sum of the positive,
        and of the negative, ``weight << wexp`` into any neuron fits ``acc_bits``).
        """
        a = self.arch
        if self.version != FORMAT_VERSION:
            raise ImageError(f"chip image format version {self.version} is not supported; this "
                             f"neurotile reads version {FORMAT_VERSION}: recompile the network")
        if len(self.cores) != a.n_cores:
            raise ImageError(f"chip image has {len(self.cores)} cores but its {a.mesh_w}x{a.mesh_h} "
                             f"mesh has {a.n_cores}")
        cap = _capacity(a)
        feeders = []   # (core, axon) of every packet that can be sent to a core
        for c, core in enumerate(self.cores):
            where = f"core ({core.x}, {core.y})"
            if (core.x, core.y) != (c % a.mesh_w, c // a.mesh_w):
                raise ImageError(f"core {c} claims position ({core.x}, {core.y}); expected "
                                 f"({c % a.mesh_w}, {c // a.mesh_w})")
            if not 0 <= core.n_neurons <= a.neurons_per_core:
                raise ImageError(f"{where}: n_neurons {core.n_neurons} outside "
                                 f"0..{a.neurons_per_core}")
            for name in CORE_TABLES:
                fields = core.tables.get(name)
                lay = a.layouts[name]
                if fields is None or set(fields) != {f for f, _ in lay}:
                    raise ImageError(f"{where}: memory {name!r} must have fields "
                                     f"{[f for f, _ in lay]}")
                sizes = {np.asarray(v).size for v in fields.values()}
                if len(sizes) != 1:
                    raise ImageError(f"{where}: fields of memory {name!r} differ in length")
                size = sizes.pop()
                want = _depths(a, core)[name]
                if want is not None and size != want:
                    raise ImageError(f"{where}: memory {name!r} has {size} words, expected {want}")
                if size > cap[name]:
                    raise ImageError(f"{where}: memory {name!r} has {size} words, capacity "
                                     f"{cap[name]}")
                pack(lay, fields)   # raises ImageError naming the field that does not fit
            t = core.tables
            prof = t["neuron_cfg"]["profile"]
            if prof.size and prof.max() >= a.profiles_per_core:
                raise ImageError(f"{where}: a neuron uses profile {int(prof.max())}, but the table "
                                 f"has {a.profiles_per_core} entries")
            if a.decay_mode == "shift":
                for f in ("du", "dv"):
                    if t["profile"][f].max(initial=0) > 23:
                        raise ImageError(f"{where}: shift decay mode needs {f} <= 23 (a shift "
                                         f"amount), not {int(t['profile'][f].max())}")
            ends = t["axon"]["base"] + t["axon"]["count"]
            if ends.size and ends.max() > core.n_synapses:
                raise ImageError(f"{where}: an axon's synapse list ends at {int(ends.max())}, past "
                                 f"the {core.n_synapses} synapses stored")
            if core.n_synapses and t["synapse"]["target"].max() >= max(core.n_neurons, 1):
                raise ImageError(f"{where}: a synapse targets neuron "
                                 f"{int(t['synapse']['target'].max())} but the core uses "
                                 f"{core.n_neurons}")
            fends = t["fanout_index"]["base"] + t["fanout_index"]["count"]
            if fends.size and fends.max() > core.n_fanout:
                raise ImageError(f"{where}: a fan-out list ends at {int(fends.max())}, past the "
                                 f"{core.n_fanout} entries stored")
            feeders.append(self._packet_targets(t["fanout"], where))
            self._check_accumulators(core, where)
        for name, inp in self.inputs.items():
            ends = inp["base"] + inp["count"]
            npk = np.asarray(inp["packets"]["index"]).size
            if ends.size and ends.max() > npk:
                raise ImageError(f"input {name!r}: a packet list ends past the {npk} packets")
            pack(a.layouts.packet, inp["packets"])
            if np.any(inp["packets"]["host"]):
                raise ImageError(f"input {name!r}: host input packets must address cores")
            feeders.append(self._packet_targets(inp["packets"], f"input {name!r}"))
        total = np.concatenate([f for f in feeders if f.size] or [np.zeros(0, np.int64)])
        uniq, counts = np.unique(total, return_counts=True)
        if np.any(counts > 1):
            key = int(uniq[counts > 1][0])
            c, axon = divmod(key, 1 << 32)
            raise ImageError(f"axon {axon} of core ({c % a.mesh_w}, {c // a.mesh_w}) is fed by "
                             f"{int(counts[counts > 1][0])} sources; each axon must have one, so "
                             f"that it receives at most one packet per step")
        n_out = len(np.asarray(self.outputs["pop"]))
        if n_out > a.host_out_depth:
            raise ImageError(f"{n_out} output neurons exceed the host output buffer "
                             f"({a.host_out_depth})")

    def _packet_targets(self, fields, where):
        """Keys ``core << 32 | axon`` of the core-bound packets in ``fields``; checks them."""
        a = self.arch
        host = np.asarray(fields["host"]).astype(bool)
        x, y, idx = (np.asarray(fields[f])[~host] for f in ("x", "y", "index"))
        if x.size and (x.max() >= a.mesh_w or y.max() >= a.mesh_h):
            raise ImageError(f"{where}: a packet addresses core ({int(x.max())}, {int(y.max())}) "
                             f"outside the {a.mesh_w}x{a.mesh_h} mesh")
        c = y * a.mesh_w + x
        n_axons = np.array([core.n_axons for core in self.cores], np.int64)
        if idx.size and np.any(idx >= n_axons[c]):
            k = np.flatnonzero(idx >= n_axons[c])[0]
            raise ImageError(f"{where}: a packet addresses axon {int(idx[k])} of core "
                             f"({int(x[k])}, {int(y[k])}), which has {int(n_axons[c[k]])} axons")
        hidx = np.asarray(fields["index"])[host]
        n_out = len(np.asarray(self.outputs["pop"]))
        if hidx.size and hidx.max() >= n_out:
            raise ImageError(f"{where}: a host-bound packet names output {int(hidx.max())} of "
                             f"{n_out}")
        return (c << 32) | idx

    def _check_accumulators(self, core, where):
        a = self.arch
        syn = core.tables["synapse"]
        if not syn["target"].size:
            return
        contrib = syn["weight"] << syn["wexp"]
        n = a.neurons_per_core
        pos = np.bincount(syn["target"], weights=np.maximum(contrib, 0), minlength=n)
        neg = np.bincount(syn["target"], weights=np.maximum(-contrib, 0), minlength=n)
        worst = max(pos.max(), neg.max())
        if worst > a.max_acc:
            k = int(np.argmax(np.maximum(pos, neg)))
            raise ImageError(f"{where}: neuron {k} can receive {int(worst)} in one step, beyond its "
                             f"{a.acc_bits}-bit accumulator (max {a.max_acc})")

    # -- persistence -----------------------------------------------------------------------------

    def _arrays(self):
        """Every array of the image under a stable name, in a stable order."""
        out = {}
        for c, core in enumerate(self.cores):
            for table in CORE_TABLES:
                for field, arr in core.tables[table].items():
                    out[f"core{c}/{table}/{field}"] = np.asarray(arr, np.int64)
        for name, inp in self.inputs.items():
            out[f"input/{name}/base"] = np.asarray(inp["base"], np.int64)
            out[f"input/{name}/count"] = np.asarray(inp["count"], np.int64)
            for field, arr in inp["packets"].items():
                out[f"input/{name}/packets/{field}"] = np.asarray(arr, np.int64)
        out["outputs/pop"] = np.asarray(self.outputs["pop"], np.int64)
        out["outputs/neuron"] = np.asarray(self.outputs["neuron"], np.int64)
        for name, pop in self.populations.items():
            out[f"population/{name}/core"] = np.asarray(pop["core"], np.int64)
            out[f"population/{name}/local"] = np.asarray(pop["local"], np.int64)
        return dict(sorted(out.items()))

    def _header(self):
        return {
            "format": "neurotile-chip-image",
            "version": self.version,
            "arch": self.arch.to_dict(),
            "cores": [[c.x, c.y, c.n_neurons, c.n_axons] for c in self.cores],
            "inputs": {name: int(inp["n"]) for name, inp in self.inputs.items()},
            "outputs": list(self.outputs["names"]),
            "populations": list(self.populations),
            "meta": self.meta,
        }

    def checksum(self):
        """SHA-256 over the header and every array (hex)."""
        h = hashlib.sha256(json.dumps(self._header(), sort_keys=True).encode())
        for key, arr in self._arrays().items():
            h.update(key.encode())
            h.update(np.ascontiguousarray(arr, "<i8").tobytes())
        return h.hexdigest()

    def save(self, path):
        """Write the image to ``path`` (a compressed ``.npz`` with a JSON header and checksum)."""
        header = self._header()
        header["checksum"] = self.checksum()
        buf = io.BytesIO()
        np.savez_compressed(buf, __header__=np.frombuffer(json.dumps(header).encode(), np.uint8),
                            **self._arrays())
        with open(path, "wb") as f:
            f.write(buf.getvalue())

    @classmethod
    def load(cls, path):
        """Read an image written by :meth:`save`; verify its version and checksum."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise ImageError(f"no chip image at {str(path)!r}") from None
        except Exception as e:   # zip/npz decoding errors of many kinds
            raise ImageError(f"{str(path)!r} is not a readable chip image ({e})") from None
        try:
            header = json.loads(arrays.pop("__header__").tobytes().decode())
        except Exception:
            raise ImageError(f"{str(path)!r} has no chip-image header") from None
        if header.get("format") != "neurotile-chip-image":
            raise ImageError(f"{str(path)!r} is not a neurotile chip image")
        if header.get("version") != FORMAT_VERSION:
            raise ImageError(f"{str(path)!r} has format version {header.get('version')}; this "
                             f"neurotile reads version {FORMAT_VERSION}: recompile the network")
        arch = Arch.from_dict(header["arch"])
        try:
            cores = []
            for c, (x, y, nn, na) in enumerate(header["cores"]):
                tables = {t: {f: arrays.pop(f"core{c}/{t}/{f}") for f, _ in arch.layouts[t]}
                          for t in CORE_TABLES}
                cores.append(CoreImage(x, y, nn, na, tables))
            inputs = {}
            for name, n in header["inputs"].items():
                inputs[name] = {
                    "n": n, "base": arrays.pop(f"input/{name}/base"),
                    "count": arrays.pop(f"input/{name}/count"),
                    "packets": {f: arrays.pop(f"input/{name}/packets/{f}")
                                for f, _ in arch.layouts.packet},
                }
            outputs = {"names": header["outputs"], "pop": arrays.pop("outputs/pop"),
                       "neuron": arrays.pop("outputs/neuron")}
            populations = {name: {"core": arrays.pop(f"population/{name}/core"),
                                  "local": arrays.pop(f"population/{name}/local")}
                           for name in header["populations"]}
        except KeyError as e:
            raise ImageError(f"{str(path)!r} is missing array {e.args[0]!r}: the file is "
                             f"truncated or corrupted") from None
        if arrays:
            raise ImageError(f"{str(path)!r} holds unexpected arrays {sorted(arrays)[:3]}")
        image = cls(arch, cores, inputs, outputs, populations, header.get("meta", {}))
        if image.checksum() != header.get("checksum"):
            raise ImageError(f"{str(path)!r} fails its checksum: the file was changed or corrupted")
        return image

    # -- reports ---------------------------------------------------------------------------------

    def report(self, rates=(0.01, 0.07, 0.1)):
        """Memory use, mesh map and traffic of this image (see :func:`~.report.image_report`)."""
        from .report import image_report
        return image_report(self, rates)

    # -- words -----------------------------------------------------------------------------------

    def words(self, core_index, table):
        """Packed words of memory ``table`` of core ``core_index``."""
        return self.cores[core_index].words(self.arch, table)

    @staticmethod
    def unpack(arch, table, words):
        return unpack(arch.layouts[table], words)
