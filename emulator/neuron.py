"""The LIF neuron arithmetic of docs/architecture.md section 4, vectorised over numpy int64 arrays.

The functional and cycle engines and the RTL tests all call :func:`lif_update`; the reference
engine (:mod:`.reference`) deliberately re-derives the same arithmetic in scalar Python instead, so
the two check each other.

Widths (``Arch`` constants): u and v are signed 24 bits (``STATE_BITS``), the dendritic input is
saturated to 18 bits (``input_bits``) and shifted left by 6 (``ACT_SHIFT``) so that its MSB
lines up with u's, decay factors are 12-bit fractions (``DECAY_SHIFT``) and the threshold is
compared as ``vth << 6`` (``VTH_SHIFT``). Every intermediate fits int64 with room to spare: the
widest is ``|x| * 4096 < 2^36``.
"""

import numpy as np

from ..compiler.arch import Arch
from ..compiler.errors import NeurotileValueError

__all__ = ["lif_update", "wrap24", "sat", "sat18", "sat24", "decay_loihi", "decay_shift",
           "STATE_MIN", "STATE_MAX", "INPUT_MIN", "INPUT_MAX"]

_STATE = Arch.STATE_BITS                              # 24
_INPUT = Arch.STATE_BITS - Arch.ACT_SHIFT             # 18

#: sat24 limits, Lava's: the most negative value is -2^23 + 1, not -2^23.
STATE_MAX = (1 << (_STATE - 1)) - 1
STATE_MIN = -STATE_MAX
#: sat18 limits of the dendritic input (two's-complement 18 bits).
INPUT_MAX = (1 << (_INPUT - 1)) - 1
INPUT_MIN = -(1 << (_INPUT - 1))


def wrap24(x):
    """Two's-complement wrap to 24 bits: ``((x + 2^23) mod 2^24) - 2^23``.

    This is what a 24-bit register does with a wider sum (u's update never saturates).

    >>> int(wrap24(np.int64(1 << 23)))
    -8388608
    """
    half = 1 << (_STATE - 1)
    return ((np.asarray(x, np.int64) + half) & ((1 << _STATE) - 1)) - half


def sat(x, lo, hi):
    """Clamp ``x`` to ``[lo, hi]``; returns ``(clamped, changed)`` with a boolean mask."""
    x = np.asarray(x, np.int64)
    y = np.clip(x, lo, hi)
    return y, y != x


def sat18(a):
    """Saturate the dendritic accumulator to the 18-bit input ``[-2^17, 2^17 - 1]``.

    Returns ``(input, saturated)``; ``saturated`` marks the neurons that raise ``acc_sat``.
    """
    return sat(a, INPUT_MIN, INPUT_MAX)


def sat24(x):
    """Clamp v to ``[-(2^23 - 1), 2^23 - 1]`` (Lava's limits)."""
    return np.clip(np.asarray(x, np.int64), STATE_MIN, STATE_MAX)


def decay_loihi(x, d):
    """``sign(x) * ((|x| * (4096 - d)) >> 12)``: multiply by ``1 - d/4096``, rounded toward zero.

    Sign-magnitude, as Loihi (and Lava's ``PyLifModelBitAcc``) do: the magnitude is shifted, so
    ``-x`` decays to exactly ``-decay(x)``. ``d`` is the decay in 1/4096 (0..4096): pass
    ``du + 1`` for u (Loihi's ``ds_offset``; du = 4095 clears u) and ``dv`` for v.
    """
    x = np.asarray(x, np.int64)
    d = np.asarray(d, np.int64)
    mag = (np.abs(x) * ((1 << Arch.DECAY_SHIFT) - d)) >> Arch.DECAY_SHIFT
    return np.where(x < 0, -mag, mag)


def decay_shift(x, k):
    """``x - (x >> k)`` with an arithmetic shift: the multiplier-free decay (``k = 0`` clears).

    The shift rounds toward minus infinity, so the subtracted part of a negative value is larger
    in magnitude: positive values keep their rounding-up remainder, negative values move toward
    zero (e.g. ``-5 - (-5 >> 1) = -5 + 3 = -2``).
    """
    x = np.asarray(x, np.int64)
    return x - (x >> np.asarray(k, np.int64))


def lif_update(u, v, a, du, dv, vth, bias_mant, bias_exp, *, decay_mode, reset_mode):
    """One step of the LIF neurons of docs/architecture.md section 4.

    .. math::

        i &= \\mathrm{sat18}(a) \\\\
        u' &= \\mathrm{wrap24}(\\mathrm{decay}_u(u) + (i \\ll 6)) \\\\
        v' &= \\mathrm{sat24}(\\mathrm{decay}_v(v) + u' + (\\mathit{bias\\_mant} \\ll
              \\mathit{bias\\_exp})) \\\\
        \\mathit{spike} &= v' > (\\mathit{vth} \\ll 6) \\\\
        v'' &= \\mathit{spike}\\ ?\\ \\mathrm{reset}(v') : v'

    with ``loihi`` decays ``decay_u(u) = decay_loihi(u, du + 1)``, ``decay_v(v) =
    decay_loihi(v, dv)``, ``shift`` decays ``decay_shift(u, du)``, ``decay_shift(v, dv)``, and
    ``reset(v') = 0`` (``zero``) or ``v' - (vth << 6)`` (``subtract``).

    Parameters
    ----------
    u, v : array of int
        Current state (signed 24-bit values).
    a : array of int
        This step's dendritic accumulator slot (``acc_bits`` wide).
    du, dv, vth, bias_mant, bias_exp : array of int
        Each neuron's profile fields (broadcast against ``u``).
    decay_mode : {"loihi", "shift"}
    reset_mode : {"zero", "subtract"}

    Returns
    -------
    u_new, v_new : ndarray of int64
        The state to store (v after reset).
    spike : ndarray of bool
    saturated : ndarray of bool
        Neurons whose input ``a`` was outside 18 bits (they raise ``acc_sat``).

    Raises
    ------
    NeurotileValueError
        An unknown mode.
    """
    u = np.asarray(u, np.int64)
    v = np.asarray(v, np.int64)
    i, saturated = sat18(a)
    if decay_mode == "loihi":
        du_u = decay_loihi(u, np.asarray(du, np.int64) + 1)
        dv_v = decay_loihi(v, dv)
    elif decay_mode == "shift":
        du_u = decay_shift(u, du)
        dv_v = decay_shift(v, dv)
    else:
        raise NeurotileValueError(f"decay_mode must be 'loihi' or 'shift', not {decay_mode!r}")
    if reset_mode not in ("zero", "subtract"):
        raise NeurotileValueError(f"reset_mode must be 'zero' or 'subtract', not {reset_mode!r}")
    # The 18-bit input is MSB-aligned with the 24-bit u; the sum wraps like a 24-bit register.
    u_new = wrap24(du_u + (i << Arch.ACT_SHIFT))
    bias = np.asarray(bias_mant, np.int64) << np.asarray(bias_exp, np.int64)
    # v saturates (Lava's sat24) rather than wrapping.
    v_new = sat24(dv_v + u_new + bias)
    theta = np.asarray(vth, np.int64) << Arch.VTH_SHIFT
    spike = v_new > theta
    if reset_mode == "zero":
        v_new = np.where(spike, 0, v_new)
    else:
        v_new = np.where(spike, v_new - theta, v_new)
    return u_new, np.asarray(v_new, np.int64), np.asarray(spike, bool), np.asarray(saturated, bool)
