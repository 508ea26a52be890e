"""The public emulator: load a chip image, feed it input spikes, read spikes, probes and counters.

>>> import numpy as np, neurotile as nt
>>> net = nt.Network()
>>> x = net.input(2, name="x")
>>> h = net.population(3, nt.LIF(du=4095, dv=0, vth=10), name="h")
>>> _ = net.connect(x, h, weights=np.array([[20, 0, 0], [0, 20, 0]]))
>>> emu = nt.Emulator(nt.compile(net), progress=False)
>>> res = emu.run({"x": [[0], [2]]}, steps=4)        # channel 0 spikes in step 0, channel 1 in 2
>>> res.spikes["h"].nonzero()                       # one step later (delay 1) each fires
(array([1, 3]), array([0, 1]))
"""

import os
import sys

import numpy as np

from ..compiler.errors import EmulatorError, NeurotileTypeError
from ..compiler.image import ChipImage
from .energy import EnergyTable, result_energy
from .inputs import input_channels
from .state import ChipState

__all__ = ["Emulator", "MODES", "PROGRESS_MIN_STEPS"]

#: Execution modes: the engine each one runs.
MODES = ("functional", "cycle", "reference")

#: With ``progress=None`` a progress bar is shown, when stderr is a terminal, for runs of at least
#: this many steps (the engines differ in speed by orders of magnitude).
PROGRESS_MIN_STEPS = {"functional": 20_000, "cycle": 500, "reference": 50}

_BACKENDS = ("auto", "numba", "numpy")


class Emulator:
    """Run a compiled chip image.

    Parameters
    ----------
    image : ChipImage or path
        The chip image, or the path of one saved with :meth:`ChipImage.save`. It is validated
        (:meth:`ChipImage.validate`) here.
    mode : {"functional", "cycle", "reference"}
        ``functional``: fast and bit-exact, every spike, state bit and counter except the
        cycle-level ones. ``cycle``: also every clock cycle, as the RTL counts them.
        ``reference``: the spec as plain Python loops (slow; for cross-checking).
    backend : {"auto", "numba", "numpy"}
        Kernel of the ``functional`` engine (``cycle`` mode: ``numpy`` selects its plain-Python
        loop). All backends give identical results.
    progress : bool or None
        ``True`` always shows a tqdm progress bar, ``False`` never, ``None`` shows one for long
        runs (see :data:`PROGRESS_MIN_STEPS`) when stderr is a terminal.
    energy : EnergyTable, optional
        Per-operation energies for :meth:`energy` (default: :class:`EnergyTable`'s Loihi figures).

    Members
    -------
    image : ChipImage
    mode : str
    engine
        The engine running the image (``FunctionalEngine``, ``CycleEngine`` or
        ``ReferenceEngine``).
    state : ChipState
        The chip's current state; :meth:`run` continues from it.
    energy_table : EnergyTable

    Raises
    ------
    NeurotileTypeError
        ``image`` is neither a ChipImage nor a path; ``energy`` is not an EnergyTable.
    ImageError
        The image fails validation, or the file is not a readable chip image.
    EmulatorError
        Unknown mode or backend, or a ``progress`` that is not True, False or None.
    """

    def __init__(self, image, mode="functional", backend="auto", progress=None, energy=None):
        if isinstance(image, (str, os.PathLike)):
            image = ChipImage.load(image)
        if not isinstance(image, ChipImage):
            raise NeurotileTypeError(f"Emulator needs an nt.ChipImage or the path of a saved one, "
                                     f"not {type(image).__name__}")
        if mode not in MODES:
            raise EmulatorError(f"mode must be one of {', '.join(map(repr, MODES))}, "
                                f"not {mode!r}")
        if backend not in _BACKENDS:
            raise EmulatorError(f"backend must be one of {', '.join(map(repr, _BACKENDS))}, "
                                f"not {backend!r}")
        if progress not in (None, True, False):
            raise EmulatorError(f"progress must be True, False or None (automatic), "
                                f"not {progress!r}")
        if energy is None:
            energy = EnergyTable()
        if not isinstance(energy, EnergyTable):
            raise NeurotileTypeError(f"energy must be an EnergyTable, not "
                                     f"{type(energy).__name__}")
        image.validate()
        self.image = image
        self.mode = mode
        self.progress = progress
        self.energy_table = energy
        if mode == "functional":
            from .functional import FunctionalEngine
            self.engine = FunctionalEngine(image, backend=backend)
        elif mode == "cycle":
            from .cycle import CycleEngine
            self.engine = CycleEngine(image, backend={"numpy": "python"}.get(backend, backend))
        else:
            from .reference import ReferenceEngine
            self.engine = ReferenceEngine(image)
        self._initial = ChipState.from_image(image)
        self.state = self._initial.copy()

    @property
    def arch(self):
        return self.image.arch

    def __repr__(self):
        return (f"<Emulator mode={self.mode!r} {self.arch.mesh_w}x{self.arch.mesh_h} "
                f"{self.image.meta.get('network', '')!r} at step {self.state.t}>")

    # -- state -------------------------------------------------------------------------------------

    def reset(self):
        """Restore the state of the freshly loaded image: neuron state, accumulators, step 0, flags.

        The :attr:`state` object is updated in place (references to it stay valid).
        """
        s, s0 = self.state, self._initial
        s.u[...] = s0.u
        s.v[...] = s0.v
        s.acc[...] = s0.acc
        s.t = s0.t
        s.flags.clear()
        s.flags.update(s0.flags)
        s.flag_step.clear()
        s.flag_step.update(s0.flag_step)
        if hasattr(self.engine, "reset"):
            self.engine.reset()

    # -- running -----------------------------------------------------------------------------------

    def run(self, inputs=None, steps=None, probes=()):
        """Run ``steps`` steps from the current state.

        Parameters
        ----------
        inputs : dict, optional
            Input spikes by input-group name (``image.inputs``); a group left out is silent.
            Each value is one of:

            - an array ``[steps, n]`` of bool, or of integers or floats that are all 0 or 1;
            - a list of ``n`` lists, the steps (0 .. steps - 1) at which each channel spikes;
            - ``{"times": [...], "channels": [...]}``: one spike per (time, channel) pair.

            Arrays must have exactly ``steps`` rows: nothing is truncated or padded.
        steps : int, optional
            Steps to run (at least 1). Taken from the arrays of ``inputs`` when omitted.
        probes : sequence of str or (str, str)
            ``"pop.v"`` / ``"pop.u"`` (or ``("pop", "v")``): state recorded after each step's
            UPDATE, in ``result.probes["pop.v"]``.

        Returns
        -------
        RunResult
            Steps are numbered from ``result.start_step``, the chip's step counter before the run.

        Raises
        ------
        EmulatorError
            Unknown input or probe names, arrays of the wrong shape or dtype, spike times outside
            ``0 .. steps - 1`` or repeated, channel numbers out of range, a bad ``steps``, or a
            step that injects more input packets than the host port's ``host_in_depth``.
        NeurotileTypeError
            ``inputs`` is not a dict.
        """
        steps, channels = input_channels(self.image, inputs, steps)
        probes = self._probes(probes)
        bar = self._bar(steps)
        if bar is None:
            return self.engine.run(self.state, channels, probes)

        def report(done, *total):
            bar.update(int(done) - bar.n if total else int(done))
        try:
            return self.engine.run(self.state, channels, probes, progress=report)
        finally:
            bar.close()

    def energy(self, result):
        """Energy of ``result`` by category, in joules (see :func:`~.energy.result_energy`)."""
        return result_energy(result, self.energy_table)

    # -- argument checks ---------------------------------------------------------------------------

    def _bar(self, steps):
        show = self.progress
        if show is None:
            isatty = getattr(sys.stderr, "isatty", None)
            show = bool(isatty and isatty()) and steps >= PROGRESS_MIN_STEPS[self.mode]
        if not show:
            return None
        from tqdm.auto import tqdm
        return tqdm(total=steps, unit="step", desc=f"neurotile {self.mode}", leave=False)

    def _probes(self, probes):
        if isinstance(probes, str) or (isinstance(probes, tuple) and len(probes) == 2 and
                                       all(isinstance(x, str) for x in probes) and
                                       probes[1] in ("u", "v")):
            probes = [probes]        # one probe given on its own
        out = []
        pops = self.image.populations
        for p in probes:
            if isinstance(p, str):
                pop, dot, var = p.rpartition(".")
                if not dot:
                    raise EmulatorError(f"probe {p!r} must be 'population.u' or 'population.v'")
            elif isinstance(p, tuple) and len(p) == 2 and all(isinstance(s, str) for s in p):
                pop, var = p
            else:
                raise EmulatorError(f"a probe must be 'population.v' (or .u) or a "
                                    f"(population, variable) pair, not {p!r}")
            if pop not in pops:
                raise EmulatorError(f"probe {pop}.{var}: no population {pop!r}; populations: "
                                    f"{', '.join(map(repr, pops)) or 'none'}")
            if var not in ("u", "v"):
                raise EmulatorError(f"probe {pop}.{var}: the variable must be 'u' or 'v', "
                                    f"not {var!r}")
            if (pop, var) not in out:
                out.append((pop, var))
        return out
