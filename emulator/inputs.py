"""Input spikes as users give them, checked and turned into the engines' channel array.

Every front end that runs a chip image (the emulator, the RTL co-simulation, a board) accepts the
same inputs and refuses bad ones with the same messages, through :func:`input_channels`.
"""

import numbers
from collections.abc import Mapping

import numpy as np

from ..compiler.errors import EmulatorError, NeurotileTypeError

__all__ = ["input_channels"]


def _is_int(x):
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def input_channels(image, inputs, steps=None):
    """Check ``inputs`` against ``image`` and give every step's input spikes as one array.

    Parameters
    ----------
    image : ChipImage
    inputs : dict or None
        Input spikes by input-group name, in any form :meth:`neurotile.Emulator.run` accepts
        (arrays ``[steps, n]``, spike-time lists, ``{"times", "channels"}`` events); a group left
        out is silent.
    steps : int, optional
        Steps to run; taken from the arrays of ``inputs`` when omitted.

    Returns
    -------
    (int, ndarray of bool)
        The steps and the channels ``[steps, n_channels]``: the image's input groups concatenated
        in ``image.inputs`` order.

    Raises
    ------
    EmulatorError
        Unknown input names, arrays of the wrong shape or dtype, spike times outside
        ``0 .. steps - 1`` or repeated, channel numbers out of range, a bad ``steps``.
    NeurotileTypeError
        ``inputs`` is not a dict.
    """
    known = {name: int(inp["n"]) for name, inp in image.inputs.items()}
    steps = _steps(known, inputs, steps)
    return steps, _channels(known, inputs, steps)


def _group_items(known_inputs, inputs):
    if inputs is None:
        return {}
    if not isinstance(inputs, Mapping):
        raise NeurotileTypeError(f"inputs must be a dict of input name to spikes, "
                                 f"not {type(inputs).__name__}")
    for name in inputs:
        if name not in known_inputs:
            known = ", ".join(map(repr, known_inputs)) or "none"
            raise EmulatorError(f"unknown input {name!r}; the image's inputs are {known}")
    return inputs


def _steps(known_inputs, inputs, steps):
    if steps is None:
        lengths = {name: np.shape(value)[0]
                   for name, value in _group_items(known_inputs, inputs).items()
                   if isinstance(value, np.ndarray) and value.ndim == 2}
        if not lengths:
            raise EmulatorError("steps=... is needed: it can only be taken from input "
                                "arrays, and none was given")
        if len(set(lengths.values())) > 1:
            raise EmulatorError(f"input arrays differ in length ({lengths}); pass steps=... "
                                f"and arrays of exactly that many rows")
        steps = next(iter(lengths.values()))
    if not _is_int(steps):
        raise EmulatorError(f"steps must be an int, not {steps!r}")
    if steps <= 0:
        raise EmulatorError(f"steps must be at least 1, not {steps}")
    return int(steps)


def _channels(known_inputs, inputs, steps):
    groups = _group_items(known_inputs, inputs)
    parts = []
    for name, n in known_inputs.items():
        value = groups.get(name)
        if value is None:
            parts.append(np.zeros((steps, n), bool))
        elif isinstance(value, Mapping):
            parts.append(_from_events(name, n, steps, value))
        elif isinstance(value, (list, tuple)):
            parts.append(_from_times(name, n, steps, value))
        else:
            parts.append(_from_array(name, n, steps, value))
    if not parts:
        return np.zeros((steps, 0), bool)
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def _from_array(name, n, steps, value):
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[1] != n:
        raise EmulatorError(f"input {name!r} must be an array of shape [steps, {n}] "
                            f"(one column per channel), not {arr.shape}")
    if arr.shape[0] != steps:
        raise EmulatorError(f"input {name!r} has {arr.shape[0]} rows but steps={steps}; give "
                            f"exactly one row per step (nothing is truncated or padded)")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "iuf":
        raise EmulatorError(f"input {name!r} must hold bools (or 0/1 numbers), not "
                            f"{arr.dtype}")
    binary = (arr == 0) | (arr == 1)
    if not binary.all():
        step, ch = (int(k[0]) for k in np.nonzero(~binary))
        raise EmulatorError(f"input {name!r} must hold only 0 and 1 (spike or not), but step "
                            f"{step} channel {ch} holds {arr[step, ch].item()!r}")
    return arr == 1


def _int_values(name, what, values):
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise EmulatorError(f"input {name!r}: {what} must be a flat list of integers, "
                            f"not {values!r}"[:300])
    return arr.astype(np.int64)


def _place(name, n, steps, times, chans):
    bad_t = (times < 0) | (times >= steps)
    if bad_t.any():
        k = int(np.flatnonzero(bad_t)[0])
        raise EmulatorError(f"input {name!r}: channel {int(chans[k])} spikes at step "
                            f"{int(times[k])}, outside 0..{steps - 1} (steps={steps})")
    out = np.zeros((steps, n), bool)
    key = times * n + chans
    uniq, counts = np.unique(key, return_counts=True)
    if np.any(counts > 1):
        t, c = divmod(int(uniq[counts > 1][0]), n)
        raise EmulatorError(f"input {name!r}: channel {c} spikes twice in step {t}; a channel "
                            f"spikes at most once per step")
    out[times, chans] = True
    return out


def _from_times(name, n, steps, value):
    if len(value) != n:
        raise EmulatorError(f"input {name!r} as spike times must be a list of {n} lists (one "
                            f"per channel), not of {len(value)}")
    times, chans = [], []
    for c, ts in enumerate(value):
        if np.ndim(ts) != 1:
            raise EmulatorError(f"input {name!r}: channel {c}'s spike times must be a list "
                                f"of steps, not {ts!r}")
        t = _int_values(name, f"channel {c}'s spike times", ts)
        times.append(t)
        chans.append(np.full(t.size, c, np.int64))
    return _place(name, n, steps, np.concatenate(times), np.concatenate(chans))


def _from_events(name, n, steps, value):
    if set(value) != {"times", "channels"}:
        raise EmulatorError(f"input {name!r} as events must be a dict with keys 'times' and "
                            f"'channels', not {sorted(map(str, value))}")
    times = _int_values(name, "'times'", value["times"])
    chans = _int_values(name, "'channels'", value["channels"])
    if times.size != chans.size:
        raise EmulatorError(f"input {name!r}: 'times' has {times.size} entries but "
                            f"'channels' has {chans.size}; they must pair up")
    bad = (chans < 0) | (chans >= n)
    if bad.any():
        raise EmulatorError(f"input {name!r}: channel {int(chans[bad][0])} does not exist; "
                            f"channels are 0..{n - 1}")
    return _place(name, n, steps, times, chans)
