"""The mutable state of a running chip, shared by every execution engine.

Engines (reference, functional, cycle) read a :class:`~neurotile.ChipImage` once and advance a
:class:`ChipState`; two engines that agree leave identical states behind.
"""

import dataclasses

import numpy as np

__all__ = ["ChipState", "FLAGS"]

#: The sticky error flags of docs/architecture.md section 8, in bit order.
FLAGS = ("bad_axon", "acc_sat", "step_timeout", "bad_route")


@dataclasses.dataclass(eq=False)
class ChipState:
    """Neuron state, accumulator rings, step counter and sticky flags of a whole chip.

    Members
    -------
    u, v : ndarray of int64, shape [n_cores, neurons_per_core]
    acc : ndarray of int64, shape [n_cores, max_delay, neurons_per_core]
        ``acc[c, slot, n]``; slot ``t mod max_delay`` is read and cleared in step t's UPDATE.
    t : int
        Steps completed since the image was loaded.
    flags : dict of str to bool
        Sticky flags (:data:`FLAGS`).
    flag_step : dict of str to int
        The step in which each flag was first raised, -1 if never.
    """

    u: np.ndarray
    v: np.ndarray
    acc: np.ndarray
    t: int = 0
    flags: dict = dataclasses.field(default_factory=lambda: {f: False for f in FLAGS})
    flag_step: dict = dataclasses.field(default_factory=lambda: {f: -1 for f in FLAGS})

    @classmethod
    def from_image(cls, image):
        """The state a freshly loaded image starts from (its ``neuron_state`` memories)."""
        a = image.arch
        u = np.stack([c.tables["neuron_state"]["u"] for c in image.cores]).astype(np.int64)
        v = np.stack([c.tables["neuron_state"]["v"] for c in image.cores]).astype(np.int64)
        acc = np.zeros((a.n_cores, a.max_delay, a.neurons_per_core), np.int64)
        return cls(u, v, acc)

    def raise_flag(self, name, step):
        if not self.flags[name]:
            self.flags[name] = True
            self.flag_step[name] = int(step)

    def copy(self):
        return ChipState(self.u.copy(), self.v.copy(), self.acc.copy(), self.t,
                         dict(self.flags), dict(self.flag_step))

    def equals(self, other):
        return (self.t == other.t and np.array_equal(self.u, other.u)
                and np.array_equal(self.v, other.v) and np.array_equal(self.acc, other.acc)
                and self.flags == other.flags and self.flag_step == other.flag_step)
