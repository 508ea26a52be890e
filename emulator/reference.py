"""The reference engine: the spec of docs/architecture.md written out as plain Python.

This engine is deliberately slow and plain. It walks the chip image's own tables
(``image.cores[c].tables[...]``) neuron by neuron and synapse by synapse on Python integers, and it
writes the neuron arithmetic of section 4 inline instead of calling :mod:`.neuron`, so that it is
an independent check of the vectorised engines. It models no clock cycles: packets are delivered
one by one, each walked hop by hop along its XY route (section 6), which is enough for every
counter of section 8 that does not depend on timing.
"""

import numpy as np

from ..compiler.errors import EmulatorError, NeurotileTypeError
from .result import COUNTERS_CHIP, COUNTERS_PER_CORE, RunResult, wrap_counters
from .state import ChipState

__all__ = ["ReferenceEngine"]

# Router ports (section 6).
N_PORT, E_PORT, S_PORT, W_PORT, L_PORT = 0, 1, 2, 3, 4


def _ints(arr):
    return [int(x) for x in np.asarray(arr).ravel()]


class ReferenceEngine:
    """Runs a chip image step by step, straight from the spec.

    Parameters
    ----------
    image : ChipImage
        The image to run; it is read, never changed.

    Members
    -------
    image : ChipImage
    mode : str
        ``"reference"``.
    """

    mode = "reference"

    def __init__(self, image):
        from ..compiler.image import ChipImage
        if not isinstance(image, ChipImage):
            raise NeurotileTypeError(f"image must be an nt.ChipImage, not {type(image).__name__}")
        self.image = image
        a = self.arch = image.arch
        # Python-int copies of every table, core by core: plain lists are what the loops index.
        self.cores = []
        for core in image.cores:
            t = core.tables
            self.cores.append({
                "n_neurons": int(core.n_neurons),
                "n_axons": int(core.n_axons),
                "profile_of": _ints(t["neuron_cfg"]["profile"]),
                "profile": {f: _ints(t["profile"][f])
                            for f in ("du", "dv", "vth", "bias_mant", "bias_exp")},
                "axon_base": _ints(t["axon"]["base"]),
                "axon_count": _ints(t["axon"]["count"]),
                "syn_target": _ints(t["synapse"]["target"]),
                "syn_weight": _ints(t["synapse"]["weight"]),
                "syn_delay": _ints(t["synapse"]["delay"]),     # stored as delay - 1
                "syn_wexp": _ints(t["synapse"]["wexp"]),
                "fo_base": _ints(t["fanout_index"]["base"]),
                "fo_count": _ints(t["fanout_index"]["count"]),
                "fanout": list(zip(_ints(t["fanout"]["host"]), _ints(t["fanout"]["x"]),
                                   _ints(t["fanout"]["y"]), _ints(t["fanout"]["index"]))),
            })
        # Host input packets, per channel, in ChipImage.inputs order (section 7, host injector).
        self.channel_packets = []
        for name, inp in image.inputs.items():
            pk = inp["packets"]
            packets = list(zip(_ints(pk["host"]), _ints(pk["x"]), _ints(pk["y"]),
                               _ints(pk["index"])))
            for base, count in zip(_ints(inp["base"]), _ints(inp["count"])):
                self.channel_packets.append(packets[base:base + count])
        self.n_channels = len(self.channel_packets)

    # -- input checks ----------------------------------------------------------------------------

    def _check(self, state, channels, probes):
        if not isinstance(state, ChipState):
            raise NeurotileTypeError(f"state must be a ChipState, not {type(state).__name__}")
        channels = np.asarray(channels)
        if channels.dtype != bool:
            raise EmulatorError(f"channels must be a bool array, not an array of {channels.dtype}")
        if channels.ndim != 2 or channels.shape[1] != self.n_channels:
            raise EmulatorError(f"channels must have shape [steps, {self.n_channels}] (the input "
                                f"channels of {list(self.image.inputs)} concatenated), not "
                                f"{channels.shape}")
        checked = []
        for probe in probes:
            if not (isinstance(probe, tuple) and len(probe) == 2):
                raise EmulatorError(f"a probe must be a (population, 'u' or 'v') tuple, "
                                    f"not {probe!r}")
            name, var = probe
            if name not in self.image.populations:
                raise EmulatorError(f"probe names population {name!r}, which the image does not "
                                    f"hold; populations: {', '.join(self.image.populations)}")
            if var not in ("u", "v"):
                raise EmulatorError(f"probe variable must be 'u' or 'v', not {var!r}")
            checked.append((name, var))
        return channels, checked

    # -- running ---------------------------------------------------------------------------------

    def run(self, state, channels, probes=(), progress=None):
        """Run ``len(channels)`` steps from ``state``, which is advanced in place.

        Parameters
        ----------
        state : ChipState
        channels : ndarray of bool, shape [steps, n_channels]
            Input spikes; the channels of the image's input groups concatenated in
            ``image.inputs`` order.
        probes : sequence of (population name, "u" or "v")
            State recorded after every step's UPDATE (after reset).
        progress : callable, optional
            Called as ``progress(steps_done, steps)`` after every step.

        Returns
        -------
        RunResult
            ``mode="reference"``; spikes of every population, the probes, the counters of
            :data:`~.result.COUNTERS_PER_CORE` and :data:`~.result.COUNTERS_CHIP` and ``link``,
            and the sticky flags.

        Raises
        ------
        EmulatorError
            Channels of the wrong dtype or shape, unknown probes, or more input packets in one
            step than the host port's ``host_in_depth``.
        """
        channels, probes = self._check(state, channels, probes)
        a = self.arch
        per_channel = np.array([len(p) for p in self.channel_packets], np.int64)
        injected = channels.astype(np.int64) @ per_channel if self.n_channels else \
            np.zeros(channels.shape[0], np.int64)
        if injected.size and injected.max() > a.host_in_depth:
            k = int(np.argmax(injected > a.host_in_depth))
            raise EmulatorError(f"step {int(state.t) + k} injects {int(injected[k])} input "
                                f"packets, more than the host port's host_in_depth "
                                f"({a.host_in_depth}); "
                                f"spread the input spikes over more steps or use an Arch with a "
                                f"larger host_in_depth")
        steps = channels.shape[0]
        n_cores, N, D = a.n_cores, a.neurons_per_core, a.max_delay
        start = int(state.t)

        # Working state as Python ints: u[c][n], v[c][n], acc[c][slot][n].
        u = [_ints(state.u[c]) for c in range(n_cores)]
        v = [_ints(state.v[c]) for c in range(n_cores)]
        acc = [[_ints(state.acc[c, s]) for s in range(D)] for c in range(n_cores)]

        pops = self.image.populations
        where = {name: list(zip(_ints(p["core"]), _ints(p["local"]))) for name, p in pops.items()}
        spikes = {name: np.zeros((steps, len(w)), bool) for name, w in where.items()}
        probe_out = {f"{name}.{var}": np.zeros((steps, len(where[name])), np.int64)
                     for name, var in probes}
        counters = {k: np.zeros((steps, n_cores), np.int64) for k in COUNTERS_PER_CORE}
        counters.update({k: np.zeros(steps, np.int64) for k in COUNTERS_CHIP})
        counters["link"] = np.zeros((steps, n_cores, 5), np.int64)

        for k in range(steps):
            t = start + k
            fired = self._update(t, u, v, acc, state, counters, k)
            for name, w in where.items():
                spikes[name][k] = [fired[c][n] for c, n in w]
            for key in probe_out:
                name, var = key.rsplit(".", 1)
                src = u if var == "u" else v
                probe_out[key][k] = [src[c][n] for c, n in where[name]]
            self._spike_phase(t, k, fired, channels[k], acc, state, counters)
            if progress is not None:
                progress(k + 1, steps)

        state.u[:] = np.array(u, np.int64).reshape(n_cores, N)
        state.v[:] = np.array(v, np.int64).reshape(n_cores, N)
        state.acc[:] = np.array(acc, np.int64).reshape(n_cores, D, N)
        state.t = start + steps
        return RunResult(mode=self.mode, steps=steps, start_step=start, spikes=spikes,
                         probes=probe_out, counters=wrap_counters(counters, self.arch),
                         flags=dict(state.flags),
                         flag_step=dict(state.flag_step))

    # -- UPDATE phase (sections 4 and 5) ---------------------------------------------------------

    def _update(self, t, u, v, acc, state, counters, k):
        """Update every neuron in use; returns ``fired[c][n]`` (bool lists)."""
        a = self.arch
        D, N = a.max_delay, a.neurons_per_core
        decay_mode, reset_mode = a.decay_mode, a.reset_mode
        in_max = (1 << (a.input_bits - 1)) - 1        # 2^17 - 1
        in_min = -(1 << (a.input_bits - 1))           # -2^17
        half = 1 << (a.STATE_BITS - 1)                # 2^23
        v_max = half - 1                              # sat24: +-(2^23 - 1)
        one = 1 << a.DECAY_SHIFT                      # 4096: decay factors are d / 4096
        act = 1 << a.ACT_SHIFT                        # 64: i << 6
        vth_scale = 1 << a.VTH_SHIFT                  # 64: vth << 6
        slot = t % D
        fired = []
        for c, core in enumerate(self.cores):
            f = [False] * N
            prof = core["profile"]
            n_fired = 0
            for n in range(core["n_neurons"]):
                p = core["profile_of"][n]
                du, dv = prof["du"][p], prof["dv"][p]
                vth, bias_mant, bias_exp = prof["vth"][p], prof["bias_mant"][p], prof["bias_exp"][p]
                # Read and clear this step's accumulator slot.
                x = acc[c][slot][n]
                acc[c][slot][n] = 0
                # sat18
                if x > in_max:
                    i = in_max
                elif x < in_min:
                    i = in_min
                else:
                    i = x
                if i != x:
                    state.raise_flag("acc_sat", t)
                uu, vv = u[c][n], v[c][n]
                if decay_mode == "loihi":
                    # sign(x) * ((|x| * (4096 - d)) >> 12); u has the one-bit offset (du + 1).
                    mag_u = (abs(uu) * (one - (du + 1))) // one
                    mag_v = (abs(vv) * (one - dv)) // one
                    du_u = -mag_u if uu < 0 else mag_u
                    dv_v = -mag_v if vv < 0 else mag_v
                else:
                    # x - floor(x / 2^k); Python's >> on ints is the arithmetic shift.
                    du_u = uu - (uu >> du)
                    dv_v = vv - (vv >> dv)
                # u: 24-bit two's-complement wrap.
                un = du_u + i * act
                un = (un + half) % (2 * half) - half
                # v: saturate to +-(2^23 - 1).
                vn = dv_v + un + bias_mant * (2 ** bias_exp)
                vn = max(-v_max, min(v_max, vn))
                theta = vth * vth_scale
                if vn > theta:
                    f[n] = True
                    n_fired += 1
                    vn = 0 if reset_mode == "zero" else vn - theta
                u[c][n], v[c][n] = un, vn
            counters["updates"][k, c] = core["n_neurons"]
            counters["spikes"][k, c] = n_fired
            fired.append(f)
        return fired

    # -- SPIKE phase (sections 5, 6, 8) ----------------------------------------------------------

    def _spike_phase(self, t, k, fired, chans, acc, state, counters):
        a = self.arch
        # Fan-out of every firing neuron, core by core, neurons in increasing order.
        for c, core in enumerate(self.cores):
            for n in range(core["n_neurons"]):
                if not fired[c][n]:
                    continue
                base, count = core["fo_base"][n], core["fo_count"][n]
                for ptr in range(base, base + count):
                    counters["packets_out"][k, c] += 1
                    x, y = c % a.mesh_w, c // a.mesh_w
                    self._deliver(t, k, core["fanout"][ptr], x, y, acc, state, counters)
        # Host input spikes, in channel order, entering router (0, 0) through its W port.
        for ch in range(self.n_channels):
            if chans[ch]:
                for packet in self.channel_packets[ch]:
                    counters["host_in"][k] += 1
                    self._deliver(t, k, packet, 0, 0, acc, state, counters)

    def _deliver(self, t, k, packet, x, y, acc, state, counters):
        """Walk one packet from router (x, y) to its sink; then expand it at its core."""
        a = self.arch
        host, dx, dy, index = packet
        if host:
            dx, dy = 0, 0
        link = counters["link"][k]
        while True:
            r = y * a.mesh_w + x
            if dx > x:
                port, nx, ny = E_PORT, x + 1, y
            elif dx < x:
                port, nx, ny = W_PORT, x - 1, y
            elif dy > y:
                port, nx, ny = S_PORT, x, y + 1
            elif dy < y:
                port, nx, ny = N_PORT, x, y - 1
            elif host:
                # Host exit: the W port of router (0, 0).
                link[r, W_PORT] += 1
                counters["host_out"][k] += 1
                return
            else:
                link[r, L_PORT] += 1
                break
            if not (0 <= nx < a.mesh_w and 0 <= ny < a.mesh_h):
                # Only a corrupt image routes off the mesh: the packet is discarded.
                state.raise_flag("bad_route", t)
                return
            link[r, port] += 1
            counters["hops"][k] += 1
            x, y = nx, ny
        # The synapse unit of core (x, y): axon lookup, then its synapses.
        c = y * a.mesh_w + x
        core = self.cores[c]
        counters["packets_in"][k, c] += 1
        if index >= core["n_axons"]:
            state.raise_flag("bad_axon", t)
            return
        base, count = core["axon_base"][index], core["axon_count"][index]
        D = a.max_delay
        half = 1 << (a.acc_bits - 1)
        for s in range(base, base + count):
            counters["synops"][k, c] += 1
            target = core["syn_target"][s]
            slot = (t + core["syn_delay"][s] + 1) % D
            value = acc[c][slot][target] + core["syn_weight"][s] * (2 ** core["syn_wexp"][s])
            acc[c][slot][target] = (value + half) % (2 * half) - half   # wraps to acc_bits
