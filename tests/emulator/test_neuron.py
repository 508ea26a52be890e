"""Tests for ``emulator/neuron.py``: the LIF arithmetic of docs/architecture.md section 4.

Expected values are derived by hand in the comments from the section-4 equations::

    i = sat18(a);  u' = wrap24(decay_u(u) + (i << 6));  v' = sat24(decay_v(v) + u' + (bm << be))
    spike = v' > (vth << 6);  v'' = spike ? reset(v') : v'

with loihi decay ``sign(x) * ((|x| * (4096 - d)) >> 12)`` (d = du + 1 for u, dv for v) and shift
decay ``x - (x >> k)``.
"""

import numpy as np
import pytest

from neurotile.compiler.errors import NeurotileError
from neurotile.emulator.neuron import (
    INPUT_MAX, INPUT_MIN, STATE_MAX, STATE_MIN, decay_loihi, decay_shift, lif_update, sat18,
    sat24, wrap24,
)

MODES = [(d, r) for d in ("loihi", "shift") for r in ("zero", "subtract")]


def step(u=0, v=0, a=0, du=0, dv=0, vth=100, bm=0, be=0, decay="loihi", reset="zero"):
    """One neuron, one step, scalars out: (u', v'', spike, saturated)."""
    un, vn, s, sat = lif_update(np.array([u]), np.array([v]), np.array([a]), np.array([du]),
                                np.array([dv]), np.array([vth]), np.array([bm]), np.array([be]),
                                decay_mode=decay, reset_mode=reset)
    return int(un[0]), int(vn[0]), bool(s[0]), bool(sat[0])


# -- (a) hand-derived values --------------------------------------------------------------------

def test_constants_are_the_spec_limits():
    # sat18: [-2^17, 2^17 - 1]; sat24 (Lava's): [-(2^23 - 1), 2^23 - 1].
    assert (INPUT_MIN, INPUT_MAX) == (-131072, 131071)
    assert (STATE_MIN, STATE_MAX) == (-8388607, 8388607)


def test_loihi_decay_halves_with_du_2047():
    # u = 640, du = 2047: decay(u, du + 1) = (640 * (4096 - 2048)) >> 12 = 320.
    assert int(decay_loihi(640, 2047 + 1)) == 320
    # Through lif_update, no input, v = 0 kept by dv = 0: u' = 320, v' = 0 + 320 = 320;
    # vth = 100 -> 6400, no spike.
    assert step(u=640, du=2047) == (320, 320, False, False)


def test_loihi_v_decay_has_no_offset():
    # dv = 0 keeps v: (1000 * 4096) >> 12 = 1000. dv = 1024: (1000 * 3072) >> 12 = 750.
    assert int(decay_loihi(1000, 0)) == 1000
    assert step(v=1000, dv=0, du=4095, vth=1000) == (0, 1000, False, False)
    assert step(v=1000, dv=1024, du=4095, vth=1000) == (0, 750, False, False)


def test_loihi_du_4095_clears_u():
    # du = 4095: decay(u, 4096) = (|u| * 0) >> 12 = 0 for every u, even the extremes.
    assert decay_loihi(np.array([8388607, -8388608, 1, -1]), 4096).tolist() == [0, 0, 0, 0]


def test_input_is_shifted_left_by_6():
    # du = 4095 clears u, so u' = i << 6 = 5 * 64 = 320; dv = 0, v' = 320 (vth 100 -> 6400).
    assert step(a=5, du=4095) == (320, 320, False, False)


def test_threshold_is_strictly_greater():
    # v' = 320 and vth << 6: vth = 5 -> 320 (equal: no spike); vth = 4 -> 256 (spike).
    assert step(a=5, du=4095, vth=5)[2] is False
    assert step(a=5, du=4095, vth=4)[2] is True
    # vth = 0: any v' > 0 fires, v' = 0 does not.
    assert step(a=0, du=4095, vth=0)[2] is False
    assert step(a=0, du=4095, vth=0, bm=1)[2] is True


@pytest.mark.parametrize("decay", ["loihi", "shift"])
def test_reset_zero_and_subtract(decay):
    clear_u = 4095 if decay == "loihi" else 0          # shift: k = 0 clears
    keep_v = 0 if decay == "loihi" else 23
    # u' = 5 << 6 = 320, v' = 320 > 4 << 6 = 256: spike; zero -> 0, subtract -> 320 - 256 = 64.
    assert step(a=5, du=clear_u, dv=keep_v, vth=4, decay=decay, reset="zero") == (320, 0, True,
                                                                                   False)
    assert step(a=5, du=clear_u, dv=keep_v, vth=4, decay=decay, reset="subtract") == (320, 64,
                                                                                       True, False)


def test_bias_is_mantissa_shifted_by_exponent():
    # bias = 3 << 4 = 48; u' = 0 (du = 4095), v' = 0 + 48 = 48.
    assert step(du=4095, bm=3, be=4) == (0, 48, False, False)
    # Negative mantissa: -3 << 4 = -48.
    assert step(du=4095, bm=-3, be=4) == (0, -48, False, False)


def test_u_before_v_uses_new_u():
    # u = 1000, du = 2047: u' = (1000 * 2048) >> 12 = 500; v' = v + u' = 10 + 500 = 510.
    assert step(u=1000, v=10, du=2047, vth=1000) == (500, 510, False, False)


def test_shift_decay_examples():
    # x - (x >> k): 100 - (100 >> 2) = 75; 5 - (5 >> 1) = 5 - 2 = 3 (positive rounds up).
    assert int(decay_shift(100, 2)) == 75
    assert int(decay_shift(5, 1)) == 3
    # k = 0 clears: x - x = 0.
    assert int(decay_shift(12345, 0)) == 0
    assert int(decay_shift(-12345, 0)) == 0
    # lif_update in shift mode: u = 1000, du = 1: u' = 1000 - 500 = 500; v = 400, dv = 2:
    # v' = 400 - 100 + 500 = 800.
    assert step(u=1000, v=400, du=1, dv=2, vth=100, decay="shift") == (500, 800, False, False)


# -- (b) edges ----------------------------------------------------------------------------------

def test_decay_of_negative_values_rounds_toward_zero_in_loihi_mode():
    # sign-magnitude: -5 * 2048 / 4096 = -2.5 -> -2 (a floor would give -3).
    assert int(decay_loihi(-5, 2048)) == -2
    assert int(decay_loihi(-640, 2048)) == -320
    # -1 with the smallest decay: (1 * 4095) >> 12 = 0.
    assert int(decay_loihi(-1, 1)) == 0
    # Symmetric: decay(-x) = -decay(x).
    x = np.arange(-5000, 5000, 7)
    assert np.array_equal(decay_loihi(-x, 1234), -decay_loihi(x, 1234))


def test_decay_of_negative_values_is_an_arithmetic_shift_in_shift_mode():
    # -5 >> 1 = -3 (toward minus infinity), so -5 - (-3) = -2: toward zero.
    assert int(decay_shift(-5, 1)) == -2
    # -1 >> k = -1 for every k, so -1 decays to 0 whatever k.
    assert decay_shift(np.array([-1, -1, -1]), np.array([1, 12, 23])).tolist() == [0, 0, 0]
    # -100 - (-100 >> 2) = -100 + 25 = -75.
    assert int(decay_shift(-100, 2)) == -75


def test_wrap24_at_the_exact_boundaries():
    # ((x + 2^23) mod 2^24) - 2^23.
    assert wrap24(np.array([8388607, 8388608, -8388608, -8388609, 1 << 24, 3 << 23])).tolist() == [
        8388607, -8388608, -8388608, 8388607, 0, -8388608]


def test_u_wraps_at_exactly_plus_2_23():
    # shift, du = 23: u = 2^23 - 64 keeps (u >> 23 = 0); + (1 << 6) = 2^23 -> wraps to -2^23.
    assert step(u=8388544, a=1, du=23, dv=23, vth=131071, decay="shift")[0] == -8388608


def test_u_wraps_past_plus_2_23_in_loihi_mode():
    # u = 2^23 - 4096 = 2047 * 4096, du = 0: decay(u, 1) = 2047 * 4095 = 8382465;
    # input 2^17 - 64 -> 8384512; sum 16766977 - 2^24 = -10239.
    assert step(u=8384512, a=131008, du=0, vth=131071)[0] == -10239


def test_u_wraps_below_minus_2_23():
    # u = -2047 * 4096, du = 0: decay = -2047 * 4095 = -8382465; input -2^17 -> -2^23;
    # sum -16771073 + 2^24 = 6143.
    assert step(u=-8384512, a=-131072, du=0, vth=131071)[0] == 6143
    # Exactly -2^23 is representable and does not wrap: u cleared, input -2^17 << 6.
    assert step(a=-131072, du=4095, vth=131071)[0] == -8388608


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_v_clamps_at_plus_2_23_minus_1_before_the_threshold(reset):
    # v = 8388000, bias 4095 << 7 = 524160: 8912160 -> clamp 8388607 > 131071 << 6 = 8388544:
    # spike; zero -> 0, subtract -> 8388607 - 8388544 = 63 (without the clamp it would be 523616).
    want = 0 if reset == "zero" else 63
    assert step(v=8388000, du=4095, vth=131071, bm=4095, be=7, reset=reset) == (0, want, True,
                                                                                 False)


def test_v_clamps_at_minus_2_23_plus_1():
    # v = -8388000, bias -4096 << 7 = -524288: -8912288 -> clamp -8388607 (not -2^23).
    assert step(v=-8388000, du=4095, vth=0, bm=-4096, be=7) == (0, -8388607, False, False)
    # It stays there: dv = 0 keeps -8388607, the bias pushes it down again, the clamp holds.
    assert step(v=-8388607, du=4095, vth=0, bm=-4096, be=7) == (0, -8388607, False, False)
    # u' = -2^23 (input -2^17, u cleared) plus v = -1: -8388609 -> -8388607.
    assert step(v=-1, a=-131072, du=4095, vth=0) == (-8388608, -8388607, False, False)
    assert int(sat24(-(1 << 23))) == -8388607


def test_acc_input_saturates_to_18_bits_and_flags_it():
    # sat18 limits +2^17 - 1 / -2^17, flagged only when the value changes.
    i, s = sat18(np.array([131071, 131072, -131072, -131073, 1 << 30, -(1 << 30)]))
    assert i.tolist() == [131071, 131071, -131072, -131072, 131071, -131072]
    assert s.tolist() == [False, True, False, True, True, True]
    # Through lif_update (u cleared): u' = 131071 << 6 = 8388544 with a = 2^17 (saturated) and
    # a = 2^17 - 1 (not); -131072 << 6 = -8388608 with a = -2^17 - 1 (saturated).
    assert step(a=131072, du=4095, vth=131071) == (8388544, 8388544, False, True)
    assert step(a=131071, du=4095, vth=131071) == (8388544, 8388544, False, False)
    assert step(a=-131073, du=4095, vth=131071) == (-8388608, -8388607, False, True)
    assert step(a=-131072, du=4095, vth=131071) == (-8388608, -8388607, False, False)


def test_unknown_modes_are_refused():
    with pytest.raises(NeurotileError, match="decay_mode must be 'loihi' or 'shift', not 'exp'"):
        step(decay="exp")
    with pytest.raises(NeurotileError, match="reset_mode must be 'zero' or 'subtract', not 'hold'"):
        step(reset="hold")


# -- (c) lif_update against a scalar re-derivation ----------------------------------------------

def scalar_lif(u, v, a, du, dv, vth, bm, be, decay, reset):
    """Section 4 once more, one neuron, Python ints, no numpy and no shared helper."""
    i = min(max(a, -(1 << 17)), (1 << 17) - 1)
    sat = i != a
    if decay == "loihi":
        def dec(x, d):
            m = abs(x) * (4096 - d) // 4096
            return m if x >= 0 else -m
        du_u, dv_v = dec(u, du + 1), dec(v, dv)
    else:
        du_u, dv_v = u - (u >> du), v - (v >> dv)
    un = du_u + i * 64
    while un >= 1 << 23:
        un -= 1 << 24
    while un < -(1 << 23):
        un += 1 << 24
    vn = min(max(dv_v + un + bm * 2 ** be, -(2 ** 23 - 1)), 2 ** 23 - 1)
    spike = vn > vth * 64
    if spike:
        vn = 0 if reset == "zero" else vn - vth * 64
    return un, vn, spike, sat


def random_states(rng, n, decay):
    """Random neuron states, 1 in 4 of each field drawn from its extremes."""
    def field(lo, hi, extremes):
        x = rng.integers(lo, hi + 1, n)
        pick = rng.random(n) < 0.25
        x[pick] = rng.choice(np.array(extremes, np.int64), pick.sum())
        return x
    dmax = 4095 if decay == "loihi" else 23
    u = field(-(1 << 23), (1 << 23) - 1, [-(1 << 23), -(1 << 23) + 1, -1, 0, 1, (1 << 23) - 1])
    v = field(-(1 << 23) + 1, (1 << 23) - 1, [-(1 << 23) + 1, -1, 0, 1, (1 << 23) - 1])
    # a spans a 24-bit accumulator and well beyond the 18-bit input.
    a = field(-(1 << 23), (1 << 23) - 1, [-(1 << 17) - 1, -(1 << 17), -1, 0, 1, (1 << 17) - 1,
                                          1 << 17, (1 << 23) - 1, -(1 << 23)])
    du = field(0, dmax, [0, 1, dmax - 1, dmax])
    dv = field(0, dmax, [0, 1, dmax - 1, dmax])
    vth = field(0, (1 << 17) - 1, [0, 1, (1 << 17) - 1])
    bm = field(-(1 << 12), (1 << 12) - 1, [-(1 << 12), -1, 0, 1, (1 << 12) - 1])
    be = field(0, 7, [0, 7])
    return u, v, a, du, dv, vth, bm, be


@pytest.mark.parametrize("decay,reset", MODES)
def test_lif_update_matches_scalar_model_on_random_states(decay, reset):
    rng = np.random.default_rng(20240 + MODES.index((decay, reset)))
    n = 100_000
    args = random_states(rng, n, decay)
    un, vn, spike, sat = lif_update(*args, decay_mode=decay, reset_mode=reset)
    assert un.dtype == vn.dtype == np.int64 and spike.dtype == sat.dtype == bool
    cols = [arr.tolist() for arr in args]
    want = [scalar_lif(*row, decay, reset) for row in zip(*cols)]
    wu, wv, ws, wsat = (list(col) for col in zip(*want))
    assert un.tolist() == wu
    assert vn.tolist() == wv
    assert spike.tolist() == ws
    assert sat.tolist() == wsat
    # The sample really reaches the edges it is meant to cover.
    assert sat.any() and spike.any() and (~spike).any()
    assert (vn == STATE_MIN).any()
