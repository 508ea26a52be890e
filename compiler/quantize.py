"""The quantizer: float weights, thresholds, time constants and biases to the chip's integers.

One float population (:class:`~.float_model.FloatPopulation`) and the projections into it are quantized together,
because they share one **scale** ``s``: chip membrane units (the LSB of the 24-bit ``v``) per float unit of the
population's membrane potential. The chip's ``v`` is ``s * (v_float - v_reset)`` and its ``u`` is
``s * g_mem * r * I_float``; with that, the integer model of docs/architecture.md section 4 follows the float model
of :mod:`.float_model` step for step, up to rounding. Per population and per projection ``q`` into it:

==============  ============================================================================================
parameter       integer value (``round`` rounds half away from zero; ``G = g_mem * r * g_syn * w_in``)
==============  ============================================================================================
weight          ``w = round(s * G[post] * W / 2**(6 + e_q))``, clipped to ``+-(2**(weight_bits-1) - 1)``;
                every synapse then adds ``(w << e_q) << 6 ~= s * G * W`` to ``u``
weight_exp      ``e_q``: the smallest 0..7 for which projection ``q``'s largest weight fits
vth             ``round(s * (v_threshold - v_reset) / 64)``, 0..2**17-1 (readouts: 2**17-1, never reached)
bias            ``B = s * (g_mem * (v_leak - v_reset) + G * b / (1 - a_syn))`` per step, as
                ``bias_mant << bias_exp`` with the smallest ``bias_exp`` keeping ``|bias_mant| <= 4095``
du (loihi)      ``round(4096 * (1 - a_syn)) - 1`` (the chip decays u by ``(4096 - (du + 1)) / 4096``)
dv (loihi)      ``round(4096 * (1 - a_mem))``
du, dv (shift)  ``round(-log2(1 - a))``, 0..23 (the chip decays by ``1 - 2**-k``; a = 0 gives k = 0)
==============  ============================================================================================

The scale is chosen to use the weight range: ``s = wmax * 2**(6 + e) / max|G * W|`` (``wmax = 2**(weight_bits-1)
- 1``) for the largest ``e`` in 0..7 that keeps every other quantity in range, so the largest weight into the
population is exactly ``+-wmax``. The upper bound ``s_max`` on the scale is the smallest of

- threshold: ``s * max(v_threshold - v_reset) / 64 <= 2**17 - 1`` (the 17-bit ``vth``);
- bias: ``s * max|B/s| <= 4095 * 2**7`` (13-bit mantissa, exponent up to 7);
- weight exponent: ``s * max|G * W| / 2**13 <= wmax`` (``e`` at most 7; with ``percentile`` the percentile);
- input: for every neuron, the sum of its positive (and of its negative) ``s * G * W / 64`` is at most
  ``2**17 - 1``: all its synapses of one sign arriving in one step neither wrap the ``acc_bits`` accumulator nor
  saturate the 18-bit input (docs/architecture.md section 5);
- range (leaky readouts only): with all synapses of one sign arriving in every step, ``|v|`` stays below
  ``97 % of 2**23 - 65``, so the readout's threshold ``(2**17 - 1) << 6 = 2**23 - 64`` is never reached
  (``|v| <= (s * max(pos, neg) / (1 - a_syn') + |B|) / (1 - a_mem')`` with the chip's quantized decays).

:func:`precharge` chooses each neuron's initial chip state ``(u0, v0)`` so that after the population's latency it
is in the float model's initial state, with the bias current's rise through ``tau_syn`` (docs/nir.md section 4).

When even ``e = 0`` would exceed ``s_max`` the scale is ``s_max`` and the weights do not use their full range (the
report says which limit set the scale). ``percentile`` below 100 takes that percentile of ``|G * W|`` instead of
the maximum, so that outlying weights clip (reported) and the rest keep more resolution; ``scales`` sets ``s``
per population directly.

:func:`quantization_report` runs the float reference (:mod:`.float_model`) and the integer emulator on the same
inputs and reports, besides every parameter's scale, clipped count and rounding error, how often the two agree.
"""

import dataclasses
import math
import numbers

import numpy as np

from .errors import NetworkError, NeurotileTypeError, NeurotileValueError

__all__ = ["ParamQuant", "PopulationQuant", "quantize_population", "quantization_report", "QuantizationReport",
           "LayerAgreement", "ReadoutAgreement", "round_half_away", "precharge"]

VTH_MAX = (1 << 17) - 1
BIAS_MANT_MAX = (1 << 12) - 1
BIAS_EXP_MAX = 7
WEXP_MAX = 7
DECAY_MAX = 4095
SHIFT_MAX = 23
#: Fraction of the readout range bound used (room for the rounding of weights and biases).
RANGE_MARGIN = 0.97
#: Relative tolerance of ``quantize=False``: a value this close to an integer is taken as that integer.
EXACT_TOL = 1e-6


def round_half_away(x):
    """Round to the nearest integer, halves away from zero (``round(2.5) = 3``, ``round(-2.5) = -3``)."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


@dataclasses.dataclass
class ParamQuant:
    """How one parameter (of one population or projection) was quantized.

    Members
    -------
    name : str
        ``"pop.vth"``, ``"pop.bias"``, ``"pop.du"``, ``"pop.dv"`` or ``"pre->post.weight"``.
    kind : str
        ``"weight"``, ``"vth"``, ``"bias"``, ``"du"`` or ``"dv"``.
    scale : float
        Integer LSBs per float unit (weights: of the target's ``x``; vth and bias: of ``v``; decays: per unit of
        decay factor). For weights of a population with per-neuron gains, the median over neurons.
    exp : int or None
        ``weight_exp`` of a projection, the largest ``bias_exp`` of a population.
    n : int
        Values quantized.
    clipped : int
        Values that did not fit their field and were clipped to its end.
    max_err, mean_err : float
        Largest and mean ``|dequantized - float|``, in the float unit (``unit``); clipped values included.
    max_abs : float
        Largest ``|float|`` value, to put the errors in proportion.
    unit : str
    note : str
    """

    name: str
    kind: str
    scale: float
    exp: object
    n: int
    clipped: int
    max_err: float
    mean_err: float
    max_abs: float
    unit: str
    note: str = ""

    @property
    def rel_err(self):
        """``max_err / max_abs`` (0 when every value is 0)."""
        return self.max_err / self.max_abs if self.max_abs > 0 else 0.0


@dataclasses.dataclass(eq=False)
class PopulationQuant:
    """The quantization of one population and the projections into it.

    Members
    -------
    name : str
    scale : float
        ``s``: chip ``v`` LSBs per float unit of membrane potential.
    limit : str
        What set the scale: ``"weights"`` (the largest weight is exactly full range), ``"threshold"``, ``"bias"``,
        ``"weight_exp"``, ``"input"``, ``"range"`` (readouts), ``"given"`` (``scales=``), ``"exact"``
        (``quantize=False``) or ``"none"``.
    params : dict of str to int64 array
        ``du``, ``dv``, ``vth``, ``bias_mant``, ``bias_exp``, one per neuron.
    weights : dict of str to (int64 array, int)
        Per projection name, the integer weights (one per synapse of the float projection) and its weight_exp.
    records : list of ParamQuant
    bias_u : float64 array
        Per neuron, the part of the chip bias that the float model passes through the synaptic current,
        ``s * G * b / (1 - a_syn)`` (chip units of ``u``; 0 without a constant input ``b``). It is what the chip's
        ``u`` must start below its steady state by for the bias current to rise through ``tau_syn``
        (:func:`precharge`).
    """

    name: str
    scale: float
    limit: str
    params: dict
    weights: dict
    records: list
    bias_u: np.ndarray = None


def _err(name, kind, scale, exp, fl, dq, clipped, unit, note=""):
    fl = np.asarray(fl, np.float64)
    dq = np.asarray(dq, np.float64)
    ok = np.isfinite(fl) & np.isfinite(dq)
    err = np.abs(dq[ok] - fl[ok])
    return ParamQuant(name, kind, float(scale), exp, int(fl.size), int(clipped),
                      float(err.max()) if err.size else 0.0, float(err.mean()) if err.size else 0.0,
                      float(np.abs(fl[ok]).max()) if ok.any() else 0.0, unit, note)


def _exact(x, what):
    """``x`` as integers, refusing values that are not integers within :data:`EXACT_TOL`."""
    x = np.asarray(x, np.float64)
    r = round_half_away(x)
    bad = np.abs(x - r) > EXACT_TOL * np.maximum(1.0, np.abs(x))
    if bad.any():
        raise NetworkError(f"quantize=False needs exact chip values, but {what} is {float(x[bad].flat[0]):.6g}, "
                           f"not an integer: import with quantize=True (graphs written by nt.to_nir hold exact "
                           f"values)")
    return r


def _decays(pop, arch, exact):
    """du, dv as integers, their clip counts and the decay factors they give."""
    out = {}
    for key, a in (("du", pop.a_syn), ("dv", pop.a_mem)):
        if arch.decay_mode == "loihi":
            raw = 4096.0 * (1.0 - a) - (1.0 if key == "du" else 0.0)
            val = _exact(raw, f"population {pop.name!r} {key} (4096 * (1 - decay))") if exact else \
                round_half_away(raw)
            lo, hi = 0, DECAY_MAX
        else:
            with np.errstate(divide="ignore"):
                raw = np.where(a <= 0, 0.0, -np.log2(np.maximum(1.0 - a, 0.0)))
            val = _exact(raw, f"population {pop.name!r} {key} (shift -log2(1 - decay))") if exact else \
                round_half_away(np.minimum(raw, 1e9))
            lo, hi = 0, SHIFT_MAX
        clipped = int(np.count_nonzero((val < lo) | (val > hi)))
        if exact and clipped:
            raise NetworkError(f"quantize=False: population {pop.name!r} {key} would be "
                               f"{int(val[(val < lo) | (val > hi)][0])}, outside {lo}..{hi}")
        val = np.clip(val, lo, hi).astype(np.int64)
        if arch.decay_mode == "loihi":
            factor = (4096 - val - (1 if key == "du" else 0)) / 4096.0
        else:
            factor = np.where(val == 0, 0.0, 1.0 - np.exp2(-val.astype(np.float64)))
        out[key] = (val, clipped, factor, a)
    return out


def quantize_population(pop, projections, arch, *, percentile=100.0, scale=None, exact=False, hints=None,
                        bias_exp=None):
    """Quantize one population and the projections into it.

    Parameters
    ----------
    pop : FloatPopulation
    projections : list of FloatProjection
        The projections whose ``post`` is ``pop``.
    arch : Arch
        Supplies ``weight_bits`` and ``decay_mode``.
    percentile : float
        Percentile of ``|G * W|`` mapped to the full weight range (100: the largest weight, nothing clips).
    scale : float, optional
        Use this scale ``s`` instead of choosing one.
    exact : bool
        ``quantize=False``: ``s = 1`` and every value must already be an integer (graphs written by
        :func:`~neurotile.to_nir`); anything else raises.
    hints : dict of str to int, optional
        weight_exp per projection name (from ``to_nir`` metadata), used with ``exact``.
    bias_exp : int or array of int, optional
        bias_exp per neuron (from ``to_nir`` metadata), used with ``exact``: ``bias_mant << bias_exp`` is not
        unique, and this keeps the exported split.

    Returns
    -------
    PopulationQuant

    Raises
    ------
    NetworkError
        ``exact`` and a value that is not an exact chip integer; a constant input into a current that never
        decays (``a_syn = 1`` with a bias).
    """
    wmax = (1 << (arch.weight_bits - 1)) - 1
    gain = pop.gain
    if np.any((pop.bias != 0) & (pop.a_syn >= 1.0)):
        raise NetworkError(f"population {pop.name!r} has a constant input (bias) into a synaptic current that "
                           f"never decays (tau_syn = inf): its current grows without bound; give tau_syn a "
                           f"finite value or remove the bias")
    with np.errstate(divide="ignore", invalid="ignore"):
        i_ss = np.where(pop.bias != 0, pop.g_syn * pop.w_in * pop.bias / (1.0 - pop.a_syn), 0.0)
    bias_v = pop.g_mem * pop.v_leak - (1.0 - pop.a_mem) * pop.v_reset + pop.g_mem * pop.r * i_ss
    theta = pop.v_threshold - pop.v_reset if pop.spiking else np.zeros(pop.n)
    eff = [gain[q.post_idx] * q.weight for q in projections]

    # -- the scale ------------------------------------------------------------------------------------------
    bounds = {}
    if pop.spiking and theta.size and theta.max() > 0:
        bounds["threshold"] = 64.0 * VTH_MAX / theta.max()
    if np.abs(bias_v).max(initial=0) > 0:
        bounds["bias"] = BIAS_MANT_MAX * 2.0 ** BIAS_EXP_MAX / np.abs(bias_v).max()
    all_eff = np.concatenate(eff) if eff else np.zeros(0)
    ref = 0.0
    pos = np.zeros(pop.n)
    neg = np.zeros(pop.n)
    if all_eff.size and np.abs(all_eff).max() > 0:
        ref = float(np.percentile(np.abs(all_eff[all_eff != 0]), percentile))
        bounds["weight_exp"] = wmax * 2.0 ** (6 + WEXP_MAX) / ref      # beyond ref, weights clip on purpose
        for q, e in zip(projections, eff):
            pos += np.bincount(q.post_idx, np.maximum(e, 0), pop.n)
            neg += np.bincount(q.post_idx, np.maximum(-e, 0), pop.n)
        worst = max(pos.max(), neg.max())
        if worst > 0:
            bounds["input"] = 64.0 * arch.max_input / worst
    dec = _decays(pop, arch, exact)
    if not pop.spiking and np.all(dec["dv"][2] < 1):
        # A readout's threshold (vth = 2**17 - 1, compared as 2**23 - 64) must stay out of reach: bound |v| by
        # every synapse of one sign arriving in every step, through the chip's own (quantized) decays.
        worst = np.zeros(pop.n)
        if all_eff.size:
            worst = np.maximum(pos, neg)
        worst_v = (worst / (1.0 - dec["du"][2]) + np.abs(bias_v)) / (1.0 - dec["dv"][2])
        if worst_v.max() > 0:
            bounds["range"] = RANGE_MARGIN * ((1 << 23) - 65) / worst_v.max()
    if exact:
        s, limit = 1.0, "exact"
    elif scale is not None:
        s, limit = float(scale), "given"
    else:
        s_max = min(bounds.values()) if bounds else math.inf
        limit = min(bounds, key=bounds.get) if bounds else "none"
        s = None
        if ref > 0:
            for e in range(WEXP_MAX, -1, -1):
                cand = wmax * 2.0 ** (6 + e) / ref
                if cand <= s_max * (1 + 1e-12):
                    s, limit = cand, "weights"
                    break
        if s is None:
            s = s_max if math.isfinite(s_max) else 64.0

    # -- weights --------------------------------------------------------------------------------------------
    records = []
    weights = {}
    for q, e_eff in zip(projections, eff):
        x = s * e_eff
        nz = e_eff[e_eff != 0]
        if exact:
            hint = (hints or {}).get(q.name)
            cands = ([hint] if hint is not None else []) + [e for e in range(WEXP_MAX + 1) if e != hint]
            for e in cands:
                w = x / 2.0 ** (6 + e)
                r = round_half_away(w)
                if np.all(np.abs(w - r) <= EXACT_TOL * np.maximum(1.0, np.abs(w))) and np.all(np.abs(r) <= wmax):
                    break
            else:
                _exact(x / 2.0 ** (6 + (hint or 0)), f"projection {q.name!r} weight (s * G * W / 2**(6 + "
                       f"weight_exp))")
                raise NetworkError(f"quantize=False: projection {q.name!r} has a weight of {np.abs(x).max() / 64:g} "
                                   f"(weight << weight_exp), which no weight_exp 0..7 makes a "
                                   f"{arch.weight_bits}-bit weight")
            wexp = int(e)
        else:
            qref = np.abs(nz).max() if nz.size else 0.0
            if percentile < 100 and nz.size:
                qref = float(np.percentile(np.abs(nz), percentile))
            wexp = WEXP_MAX
            for e in range(WEXP_MAX + 1):
                if round_half_away(s * qref / 2.0 ** (6 + e)) <= wmax:
                    wexp = e
                    break
        raw = round_half_away(x / 2.0 ** (6 + wexp))
        clipped = int(np.count_nonzero(np.abs(raw) > wmax))
        w = np.clip(raw, -wmax, wmax).astype(np.int64)
        g = gain[q.post_idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            deq = np.where(g != 0, w * 2.0 ** (6 + wexp) / (s * g), np.nan)
        zeroed = int(np.count_nonzero((w == 0) & (q.weight != 0)))
        note = f"{zeroed} rounded to 0 (dropped)" if zeroed else ""
        if np.any(g == 0):
            note = (note + "; " if note else "") + "gain 0 (input ignored by the float model)"
        wscale = s * float(np.median(gain)) / 2.0 ** (6 + wexp) if gain.size else 0.0
        records.append(_err(f"{q.name}.weight", "weight", wscale, wexp, q.weight, deq, clipped, "x", note))
        weights[q.name] = (w, wexp)

    # -- threshold ------------------------------------------------------------------------------------------
    if pop.spiking:
        raw = s * theta / 64.0
        raw = _exact(raw, f"population {pop.name!r} threshold (v_threshold - v_reset) / 64") if exact else \
            round_half_away(raw)
        clipped = int(np.count_nonzero((raw < 0) | (raw > VTH_MAX)))
        vth = np.clip(raw, 0, VTH_MAX).astype(np.int64)
        records.append(_err(f"{pop.name}.vth", "vth", s / 64.0, None, theta, vth * 64.0 / s, clipped, "v"))
    else:
        vth = np.full(pop.n, VTH_MAX, np.int64)

    # -- bias -----------------------------------------------------------------------------------------------
    b = s * bias_v
    if exact:
        b = _exact(b, f"population {pop.name!r} bias per step")
        bexp = np.zeros(pop.n, np.int64)
        if bias_exp is not None:
            hint = np.broadcast_to(np.asarray(bias_exp, np.int64).ravel() if np.size(bias_exp) > 1 else
                                   np.asarray(bias_exp, np.int64).reshape(()), (pop.n,))
            fits = (hint >= 0) & (hint <= BIAS_EXP_MAX) & (b % 2.0 ** np.clip(hint, 0, BIAS_EXP_MAX) == 0)
            bexp = np.where(fits, hint, 0).astype(np.int64)
        for _ in range(BIAS_EXP_MAX):
            step = (np.abs(b) > BIAS_MANT_MAX * 2.0 ** bexp) & (b % 2.0 ** (bexp + 1) == 0)
            if not step.any():
                break
            bexp += step
        mant = b / 2.0 ** bexp
        if np.any(np.abs(mant) > BIAS_MANT_MAX):
            raise NetworkError(f"quantize=False: population {pop.name!r} bias {b[np.abs(mant) > BIAS_MANT_MAX][0]:g} "
                               f"is not bias_mant << bias_exp with a 13-bit mantissa")
        bclip = 0
    else:
        with np.errstate(divide="ignore"):
            need = np.where(np.abs(b) > BIAS_MANT_MAX,
                            np.ceil(np.log2(np.maximum(np.abs(b), 1) / (BIAS_MANT_MAX + 0.5))), 0)
        bexp = np.clip(need, 0, BIAS_EXP_MAX).astype(np.int64)
        mant = round_half_away(b / 2.0 ** bexp)
        over = np.abs(mant) > BIAS_MANT_MAX
        bexp = np.where(over & (bexp < BIAS_EXP_MAX), bexp + 1, bexp)       # rounding up crossed 4095.5
        mant = round_half_away(b / 2.0 ** bexp)
        bclip = int(np.count_nonzero(np.abs(mant) > BIAS_MANT_MAX))
        mant = np.clip(mant, -BIAS_MANT_MAX, BIAS_MANT_MAX)
    bias_mant = mant.astype(np.int64)
    bexp = bexp.astype(np.int64)
    note = ""
    if np.any((pop.bias != 0) & (pop.a_syn > 0)):
        note = ("constant input added to v at its steady state; its rise through tau_syn comes from the "
                "pre-charged u0 (from_nir precharge=True)")
    records.append(_err(f"{pop.name}.bias", "bias", s, int(bexp.max(initial=0)), bias_v,
                        bias_mant * 2.0 ** bexp / s, bclip, "v/step", note))

    # -- decays ---------------------------------------------------------------------------------------------
    for key in ("du", "dv"):
        val, clipped, factor, a = dec[key]
        records.append(_err(f"{pop.name}.{key}", key, 4096.0 if arch.decay_mode == "loihi" else 1.0, None,
                            a, factor, clipped, "decay factor"))
    params = {"du": dec["du"][0], "dv": dec["dv"][0], "vth": vth, "bias_mant": bias_mant, "bias_exp": bexp}
    bias_u = s * pop.g_mem * pop.r * i_ss
    return PopulationQuant(pop.name, float(s), limit, params, weights, records, bias_u)


# -- pre-charged initial state --------------------------------------------------------------------------------------

#: A threshold mantissa no v reaches (compared as ``vth << 6 = 2**46``): the pre-roll searches run without resets.
_NO_SPIKE = 1 << 40


def _first_at_least(f, k, lo, hi):
    """Per neuron the smallest integer ``x`` in ``lo..hi`` with ``f(x) >= k`` (``hi + 1`` if none), for ``f``
    non-decreasing in ``x``: a vectorised bisection, 25 evaluations of ``f`` for the 24-bit state."""
    k = np.asarray(k, np.int64)
    a = np.full(k.shape, lo, np.int64)
    b = np.full(k.shape, hi + 1, np.int64)
    while np.any(a < b):
        m = (a + b) // 2
        ok = f(np.clip(m, lo, hi)) >= k
        open_ = a < b
        b = np.where(open_ & ok, m, b)
        a = np.where(open_ & ~ok, m + 1, a)
    return a


def _nearest_zero_hitting(f, k, lo, hi):
    """Per neuron the ``x`` in ``lo..hi`` with ``f(x) == k`` nearest 0, and whether there is one.

    ``f`` is non-decreasing with steps of 0 or 1 (a decay is a contraction with integer rounding, so every integer
    between ``f(lo)`` and ``f(hi)`` is attained): the ``x`` with ``f(x) == k`` form the interval
    ``first(f >= k) .. first(f >= k + 1) - 1``, empty exactly when ``k`` is out of reach of the state width.
    """
    a = _first_at_least(f, k, lo, hi)
    b = _first_at_least(f, np.asarray(k, np.int64) + 1, lo, hi) - 1
    fits = a <= b
    return np.where(fits, np.clip(0, a, b), 0), fits


def precharge(params, latency, bias_u, arch):
    """The initial chip state that makes up for the pre-roll and the bias current's transient (docs/nir.md, 4).

    The chip runs a population ``latency`` steps behind the float model, with its bias on from chip step 0, while
    nothing else reaches it before chip step ``latency`` (float step 0): chip steps ``0 .. latency - 1`` are a
    pre-roll. The initial state ``(u0, v0)`` is chosen so that after the pre-roll the state is the float model's
    initial state, with the bias current's transient included:

    - ``u`` at float step -1 is ``-bias_u`` (the part of the chip bias the float model passes through the synaptic
      current; only where the chip's ``u`` decays rather than clears, ``a_syn > 0``), so that the drive
      ``u + bias`` rises as ``bias_u (1 - a_syn**(t + 1))``, the float current from ``I[-1] = 0``; ``u0`` is the
      integer whose ``u`` after ``latency`` decays is nearest ``-bias_u`` (at latency 0: ``round(-bias_u)``);
    - ``v`` at float step -1 is the float ``v_reset``, chip 0: ``v0`` is the integer whose ``v`` after the pre-roll
      (``u`` decaying from ``u0``, the bias added every step) is 0.

    Both are found with the chip's own integer update (:func:`neurotile.emulator.neuron.lif_update`, the function
    every engine runs), not by float algebra: the state after ``latency`` steps is non-decreasing in ``u0`` (and in
    ``v0``) in steps of 0 or 1, so a per-neuron bisection finds the exact integer (of several that hit the target,
    the one nearest 0). Either decay mode and either reset mode (no reset happens in a pre-roll without spikes).

    Parameters
    ----------
    params : dict of str to int64 array [n]
        ``du``, ``dv``, ``vth``, ``bias_mant``, ``bias_exp`` (:attr:`PopulationQuant.params`).
    latency : int
        Pre-roll steps (``NIRNetwork.latency``; 0 with ``order="delayed"``).
    bias_u : float array [n]
        :attr:`PopulationQuant.bias_u`.
    arch : Arch
        Supplies ``decay_mode`` and ``reset_mode``.

    Returns
    -------
    u0, v0 : int64 arrays [n]
    fallback : dict of str to bool array [n]
        Neurons that did not get the state described above: ``"u_range"``, the ``u`` pre-charge does not fit 24
        bits (a small ``a_syn`` and a long latency; ``u0 = 0``, the bias reaches ``v`` at its steady state at once,
        and ``v0`` is solved with ``u0 = 0``); ``"v_range"``, the ``v`` pre-charge does not fit (``v0 = 0``, as
        without pre-charge; ``u0`` is kept, it is right whatever ``v`` does); ``"spike"``, the pre-roll would fire
        the neuron (e.g. a negative bias needing ``v0`` above the threshold): ``v0`` is the largest that does not
        fire in the pre-roll, so ``v`` starts below the float model's (``u0 = v0 = 0`` if none does). A ``v`` that
        forgets its start within the pre-roll (``decay_mode="shift"`` with ``dv = 0`` clears it every step) gets
        ``v0 = 0``: there is nothing to make up, and that is no fallback.
    """
    from ..emulator.neuron import STATE_MAX, STATE_MIN, lif_update

    latency = int(latency)
    prm = {k: np.asarray(params[k], np.int64) for k in ("du", "dv", "vth", "bias_mant", "bias_exp")}
    bias_u = np.broadcast_to(np.asarray(bias_u, np.float64), prm["du"].shape)
    # Only neurons with a bias (or a current to pre-charge) have anything to make up: solve for those alone.
    need = (prm["bias_mant"] != 0) | (bias_u != 0)
    if not need.all():
        n_all = prm["du"].size
        u_s, v_s, fb_s = precharge({k: x[need] for k, x in prm.items()}, latency, bias_u[need], arch)
        u0, v0 = np.zeros(n_all, np.int64), np.zeros(n_all, np.int64)
        u0[need], v0[need] = u_s, v_s
        fallback = {}
        for k, m in fb_s.items():
            fallback[k] = np.zeros(n_all, bool)
            fallback[k][need] = m
        return u0, v0, fallback
    n = prm["du"].size
    modes = {"decay_mode": arch.decay_mode, "reset_mode": arch.reset_mode}
    zero = np.zeros(n, np.int64)

    def roll(u, v):
        """``latency`` steps without input and without resets; the state and the largest ``v`` on the way."""
        u, v = np.asarray(u, np.int64), np.asarray(v, np.int64)
        vmax = np.full(n, np.iinfo(np.int64).min)
        for _ in range(latency):
            u, v, _, _ = lif_update(u, v, zero, prm["du"], prm["dv"], _NO_SPIKE, prm["bias_mant"],
                                    prm["bias_exp"], **modes)
            vmax = np.maximum(vmax, v)
        return u, v, vmax

    # u: only where the chip keeps u from step to step (du = 4095 / shift k = 0 clear it: LIF, IF, LI, I)
    keeps_u = prm["du"] < 4095 if arch.decay_mode == "loihi" else prm["du"] > 0
    target = np.where(keeps_u, -np.asarray(bias_u, np.float64), 0.0)
    k_u = round_half_away(np.clip(target, -2.0 ** 40, 2.0 ** 40)).astype(np.int64)
    u_lo, u_hi = -(1 << 23), (1 << 23) - 1
    u0, fits_u = _nearest_zero_hitting(lambda x: roll(x, zero)[0], k_u, u_lo, u_hi)
    # v: after the pre-roll (u decaying from u0, the bias every step) v is 0, the float v_reset
    v_of = lambda x: roll(u0, x)[1]                                               # noqa: E731
    v0, fits_v = _nearest_zero_hitting(v_of, zero, STATE_MIN, STATE_MAX)
    # a v that forgets its start within the pre-roll (shift k = 0 clears it; dv near 4096) has nothing to make up
    forgets = v_of(np.full(n, STATE_MIN)) == v_of(np.full(n, STATE_MAX))
    fits_v |= forgets
    v0 = np.where(fits_v, v0, 0)
    # a pre-roll that fires: the largest v0 that does not (firing is monotone in v0 as well)
    theta = prm["vth"] << arch.VTH_SHIFT
    fires = roll(u0, v0)[2] > theta
    if fires.any():
        first = _first_at_least(lambda x: (roll(u0, x)[2] > theta).astype(np.int64), np.ones(n, np.int64),
                                STATE_MIN, STATE_MAX)
        none = fires & (first <= STATE_MIN)
        v0 = np.where(fires, first - 1, v0)
        u0, v0 = np.where(none, 0, u0), np.where(none, 0, v0)
    fallback = {"u_range": ~fits_u, "v_range": ~fits_v, "spike": fires}
    return u0.astype(np.int64), v0.astype(np.int64), fallback


# -- behavioural comparison ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class LayerAgreement:
    """Spikes of one population, float reference against the chip (aligned by the population's latency).

    Members
    -------
    name : str
    n : int
    float_spikes, chip_spikes : int
        Spikes in the compared window.
    agreement : float
        Fraction of (step, neuron) cells equal in both.
    match : float
        ``2 |F & C| / (|F| + |C|)``: the fraction of spikes at the same step and neuron in both (1 if neither
        spikes). Unlike ``agreement`` it is not inflated by silent cells.
    count_match : float
        ``1 - sum_n |cF_n - cC_n| / sum_n (cF_n + cC_n)`` on per-neuron spike counts (rates).
    """

    name: str
    n: int
    float_spikes: int
    chip_spikes: int
    agreement: float
    match: float
    count_match: float


@dataclasses.dataclass
class ReadoutAgreement:
    """A non-spiking readout: its ``v`` in float units, reference against chip.

    Members
    -------
    name : str
    n : int
    rmse : float
        Root-mean-square difference, float units of ``v``.
    rel_rmse : float
        ``rmse`` over the standard deviation of the float ``v``.
    corr : float
        Correlation of the two traces (all steps and neurons).
    argmax_agreement : float
        Fraction of steps where both pick the same neuron as largest (1 for a single neuron).
    """

    name: str
    n: int
    rmse: float
    rel_rmse: float
    corr: float
    argmax_agreement: float


def _layer(name, f, c):
    f, c = np.asarray(f, bool), np.asarray(c, bool)
    nf, nc = int(f.sum()), int(c.sum())
    both = int((f & c).sum())
    cf, cc = f.sum(0), c.sum(0)
    tot = int((cf + cc).sum())
    return LayerAgreement(name, f.shape[1], nf, nc, float((f == c).mean()) if f.size else 1.0,
                          2 * both / (nf + nc) if nf + nc else 1.0,
                          1.0 - float(np.abs(cf - cc).sum()) / tot if tot else 1.0)


def _readout(name, f, c):
    f, c = np.asarray(f, np.float64), np.asarray(c, np.float64)
    rmse = float(np.sqrt(np.mean((f - c) ** 2))) if f.size else 0.0
    sd = float(f.std())
    if f.std() > 0 and c.std() > 0:
        corr = float(np.corrcoef(f.ravel(), c.ravel())[0, 1])
    else:
        corr = 1.0 if np.allclose(f, c) else 0.0
    am = float((f.argmax(1) == c.argmax(1)).mean()) if f.shape[1] > 1 else 1.0
    return ReadoutAgreement(name, f.shape[1], rmse, rmse / sd if sd > 0 else (0.0 if rmse == 0 else math.inf),
                            corr, am)


def _winner_agreement(f, c):
    """Fraction of the steps with a unique float winner on which the chip picks the same neuron.

    A single neuron "wins" where both values agree within 5 %.
    """
    f, c = np.asarray(f, np.float64), np.asarray(c, np.float64)
    if f.shape[1] == 1:
        return float(np.mean(np.isclose(f, c, rtol=0.05, atol=1e-9))) if f.size else 1.0
    top = np.sort(f, 1)
    decided = top[:, -1] > top[:, -2]
    if not decided.any():
        return 1.0
    return float((f.argmax(1) == c.argmax(1))[decided].mean())


@dataclasses.dataclass(eq=False)
class QuantizationReport:
    """What changed when a float NIR model became chip integers, and how much it matters.

    Members
    -------
    params : list of ParamQuant
        Every quantized parameter.
    scales : dict of str to (float, str)
        Per population its scale ``s`` and what set it (see :class:`PopulationQuant`).
    layers : list of LayerAgreement
        Every spiking population.
    readouts : list of ReadoutAgreement
        Every non-spiking readout.
    outputs : dict of str to float
        Per output population (spiking outputs and readouts) the fraction of steps on which the chip picks the
        float model's winning neuron: the largest spike count so far (spiking) or the largest ``v`` (readout),
        over the steps where the float winner is unique (a single neuron: where both agree within 5 %).
    steps : int
    notes : list of str
        What the import changed beyond rounding (from the imported network).
    """

    params: list
    scales: dict
    layers: list
    readouts: list
    outputs: dict
    steps: int
    notes: list

    def param(self, name):
        """The :class:`ParamQuant` called ``name`` (e.g. ``"h.vth"``, ``"x->h.weight"``)."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"no parameter {name!r}; parameters: {', '.join(p.name for p in self.params)}")

    def layer(self, name):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no spiking population {name!r}")

    @property
    def clipped(self):
        """Clipped values over all parameters."""
        return sum(p.clipped for p in self.params)

    def __str__(self):
        out = [f"Quantization report ({self.steps} steps)", "",
               f"{'parameter':<28} {'scale':>11} {'exp':>4} {'n':>7} {'clipped':>7} {'max err':>10} "
               f"{'mean err':>10} {'max |x|':>10}  unit"]
        for p in self.params:
            exp = "" if p.exp is None else str(p.exp)
            out.append(f"{p.name:<28} {p.scale:>11.4g} {exp:>4} {p.n:>7} {p.clipped:>7} {p.max_err:>10.3g} "
                       f"{p.mean_err:>10.3g} {p.max_abs:>10.3g}  {p.unit}" + (f"  ({p.note})" if p.note else ""))
        out += ["", f"{'population':<20} {'scale':>11}  set by"]
        out += [f"{k:<20} {s:>11.4g}  {lim}" for k, (s, lim) in self.scales.items()]
        if self.layers:
            out += ["", f"{'spiking population':<20} {'n':>6} {'float':>8} {'chip':>8} {'agree':>7} {'match':>7} "
                        f"{'rates':>7}"]
            out += [f"{x.name:<20} {x.n:>6} {x.float_spikes:>8} {x.chip_spikes:>8} {x.agreement:>7.3f} "
                    f"{x.match:>7.3f} {x.count_match:>7.3f}" for x in self.layers]
        if self.readouts:
            out += ["", f"{'readout':<20} {'n':>6} {'rmse':>10} {'rel rmse':>9} {'corr':>7} {'argmax':>7}"]
            out += [f"{x.name:<20} {x.n:>6} {x.rmse:>10.3g} {x.rel_rmse:>9.3g} {x.corr:>7.3f} "
                    f"{x.argmax_agreement:>7.3f}" for x in self.readouts]
        if self.outputs:
            out += ["", "output agreement (same winner): " +
                    ", ".join(f"{k} {v:.3f}" for k, v in self.outputs.items())]
        if self.notes:
            out += ["", "notes:"] + [f"- {n}" for n in self.notes]
        return "\n".join(out)

    def __repr__(self):
        return (f"<QuantizationReport {len(self.params)} parameters, {self.clipped} clipped, "
                f"{len(self.layers)} layers, {len(self.readouts)} readouts>")


def quantization_report(net, inputs=None, *, steps=100, rate=0.1, seed=0, arch=None, mode="functional", **kwargs):
    """Compare an imported network's float reference with its integer version on the chip.

    Parameters
    ----------
    net : NIRNetwork, nir.NIRGraph or path
        What :func:`~neurotile.from_nir` returned; a graph or file is imported first with ``kwargs``.
    inputs : dict of str to bool array [steps, n], optional
        Input spikes; by default every input channel spikes with probability ``rate`` per step (seeded).
    steps : int
        Steps to compare (taken from ``inputs`` when given).
    rate : float
        Spike probability per channel and step of the default inputs.
    seed : int
    arch : Arch, optional
        Chip to compile for (default ``net.arch``).
    mode : {"functional", "cycle", "reference"}
        Emulator mode.

    Returns
    -------
    QuantizationReport
        ``print(report)`` gives the tables.
    """
    from .nir_io import NIRNetwork, from_nir
    if not isinstance(net, NIRNetwork):
        net = from_nir(net, **kwargs)
    elif kwargs:
        raise NeurotileTypeError(f"import options ({', '.join(kwargs)}) only apply when a graph is given, not an "
                                 f"imported network")
    if not isinstance(rate, numbers.Real) or not 0 <= rate <= 1:
        raise NeurotileValueError(f"rate must be a probability between 0 and 1, not {rate!r}")
    if inputs is None:
        rng = np.random.default_rng(seed)
        inputs = {g.name: rng.random((steps, g.n)) < rate for g in net.inputs}
    else:
        inputs = {k: np.asarray(v).astype(bool) for k, v in inputs.items()}
        if inputs:
            steps = next(iter(inputs.values())).shape[0]
    ref = net.float_model.run(inputs, steps)
    chip = net.run_chip(inputs, steps, arch=arch, mode=mode)
    layers, readouts, outputs = [], [], {}
    for pop in net.populations:
        name = pop.name
        if name in net.readouts:
            readouts.append(_readout(name, ref.v[name], chip.v[name]))
        else:
            layers.append(_layer(name, ref.spikes[name], chip.spikes[name]))
    for name in [p.name for p in net.outputs] + list(net.readouts):
        if name in net.readouts:
            f, c = ref.v[name], chip.v[name]
        else:
            f, c = np.cumsum(ref.spikes[name], 0), np.cumsum(chip.spikes[name], 0)
        outputs[name] = _winner_agreement(f, c)
    params = [r for q in net.quantization.values() for r in q.records]
    scales = {k: (q.scale, q.limit) for k, q in net.quantization.items()}
    return QuantizationReport(params, scales, layers, readouts, outputs, steps, list(net.notes))
