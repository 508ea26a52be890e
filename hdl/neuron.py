"""The pipelined LIF update of docs/architecture.md section 4, one neuron per clock.

:class:`NeuronDatapath` is the arithmetic only: the neuron core (:mod:`.core`) feeds it one neuron
per cycle from its memories and writes the result back. Its golden model is
:func:`neurotile.emulator.neuron.lif_update`; the two agree bit for bit on every input, including
the wrap of u, the clamps of v and the saturation of the dendritic input.

Pipeline (``LATENCY = 5`` register stages; at most one carry chain per stage, plus LUT-level
logic)::

    stage | loihi mode                            | shift mode
    ------+---------------------------------------+---------------------------------------
      1   | |u|, |v| (negate)   4096 - dv (13 b)  | k_u, k_v = min(du, 24), min(dv, 24)
          | i = sat18(a)  bias = mant << exp (mux)| i = sat18(a)  bias = mant << exp (mux)
      2   | |u| * (4095 - du)  |v| * (4096 - dv)  | u >> k_u, v >> k_v (barrel, mux only)
          | bias + sign(v)                        | bias + 1
      3   | u' = wrap24(+-(P_u >> 12) + (i << 6)) | u' = wrap24(u + ~(u >> k_u) + (i << 6) + 1)
          | w  = +-(P_v >> 12) + bias             | w  = v + ~(v >> k_v) + bias + 1
          |   (-x = ~x + 1, the +1 folded into    |   (3:2 carry-save, then one adder)
          |    the other operand's free LSB)      |
      4   | w + u' (adder), clamped to [-2^23, 2^23 - 1] (decided from its top four bits: LUTs)
      5   | spike = sign(theta - v') with theta = vth << 6 (a subtraction: one carry chain);
          | v' = -2^23 becomes Lava's -(2^23 - 1) (a wide AND, in parallel: it cannot fire);
          | reset "subtract": v' - theta (a second chain, in parallel); v'' = spike ? reset : v'

Measured with YoWASP (yosys 0.70 + nextpnr 0.11; the datapath alone, between registers):
iCE40UP5K 39-41 MHz after routing (loihi: 4 SB_MAC16, ~480 LUT4, ~350 flip-flops) / 42 MHz (shift: ~530 LUT4,
~290 flip-flops); ECP5-85F 113 MHz (loihi: 4 MULT18X18D; the multiply stage is the critical one) /
172 MHz (shift).

Widths (signed unless noted): u, v 24; the dendritic input i 18 (``input_bits``) and ``i << 6`` 24;
|u|, |v| unsigned 24 (|-2^23| = 2^23 still fits); decay factors unsigned 12 (u: ``4095 - du``, Loihi's
``du + 1`` offset) and 13 (v: ``4096 - dv`` reaches 4096); products unsigned 36 / 37, of which bits
12 and up are kept (the ``>> 12`` rounds the magnitude toward zero, as Lava does); bias
``mant << exp`` 20; the v sums 26 and 27 bits, wide enough never to wrap, so that ``sat24`` sees the
true value.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..compiler.arch import Arch
from ..compiler.errors import NeurotileTypeError

__all__ = ["NeuronDatapath"]


def _csa_add(a, b, c, width):
    """``a + b + c`` modulo ``2^width`` (signed) with one carry chain: a 3:2 carry-save stage
    (bitwise, LUT level) followed by a single adder."""
    ext = [_sext(x, width) for x in (a, b, c)]
    s = ext[0] ^ ext[1] ^ ext[2]
    cy = (ext[0] & ext[1]) | (ext[0] & ext[2]) | (ext[1] & ext[2])
    return (s + Cat(Const(0, 1), cy[:width - 1]))[:width].as_signed()


def _sext(x, width):
    """``x`` sign- (or zero-) extended to exactly ``width`` bits, as a raw unsigned bit vector."""
    if x.shape().signed:
        return Cat(x, x[-1].replicate(width - len(x)))[:width]
    return Cat(x, Const(0, width - len(x)))[:width]


class NeuronDatapath(wiring.Component):
    """Pipelined LIF neuron update (docs/architecture.md section 4), one neuron per clock.

    .. math::

        i &= \\mathrm{sat}_{18}(a) \\\\
        u' &= \\mathrm{wrap}_{24}(\\mathrm{decay}_u(u) + (i \\ll 6)) \\\\
        v' &= \\mathrm{sat}_{24}(\\mathrm{decay}_v(v) + u' + (\\mathit{bias\\_mant} \\ll
              \\mathit{bias\\_exp})) \\\\
        \\mathit{spike} &= v' > (\\mathit{vth} \\ll 6), \\qquad
        v'' = \\mathit{spike}\\ ?\\ \\mathrm{reset}(v') : v'

    The decay and reset rules are chosen at elaboration time from ``arch.decay_mode``
    (``loihi``: ``sign(x) * ((|x| * (4096 - d)) >> 12)`` with ``d = du + 1`` for u and ``dv`` for v;
    ``shift``: ``x - (x >> k)``) and ``arch.reset_mode`` (``zero`` or ``subtract``). In ``shift``
    mode a shift amount ``k >= 24`` acts as the arithmetic shift it is (``x >> k`` is the sign),
    which is what the golden model computes for the whole 12-bit field too; the compiler only
    emits ``k <= 23``.

    The pipeline has no stall: a neuron presented with ``valid`` in cycle k leaves with
    ``out_valid`` in cycle ``k + LATENCY``; the outputs are registers. Inputs are sampled every
    cycle (``valid`` only travels along), so back-to-back neurons need no handshake.

    Parameters
    ----------
    arch : Arch
        Supplies ``decay_mode``, ``reset_mode``, ``acc_bits`` and the layouts.

    Members
    -------
    valid : ``In(1)``
        A neuron is presented this cycle.
    state : ``In(arch.layouts.neuron_state)``
        Its ``u`` and ``v``.
    acc : ``In(arch.layouts.acc)``
        Its dendritic accumulator slot of this step (``value``, ``acc_bits`` wide).
    profile : ``In(arch.layouts.profile)``
        Its profile fields ``du``, ``dv``, ``vth``, ``bias_mant``, ``bias_exp``.
    out_valid : ``Out(1)``
        The neuron presented ``LATENCY`` cycles ago leaves now.
    out_state : ``Out(arch.layouts.neuron_state)``
        ``u'`` and ``v''`` (after reset): the state to store.
    spike : ``Out(1)``
        ``v' > (vth << 6)``.
    saturated : ``Out(1)``
        The accumulator was outside 18 bits (``sat18`` changed it): raises ``acc_sat``.

    Raises
    ------
    NeurotileTypeError
        ``arch`` is not an :class:`~neurotile.Arch`.
    """

    #: Register stages from ``valid`` to ``out_valid``.
    LATENCY = 5

    def __init__(self, arch):
        if not isinstance(arch, Arch):
            self._MustUse__silence = True       # no "created but never used" warning on failure
            raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
        self.arch = arch
        lay = arch.layouts
        super().__init__({
            "valid": In(1),
            "state": In(lay.neuron_state),
            "acc": In(lay.acc),
            "profile": In(lay.profile),
            "out_valid": Out(1),
            "out_state": Out(lay.neuron_state),
            "spike": Out(1),
            "saturated": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        W = a.STATE_BITS                        # 24
        IB = a.input_bits                       # 18
        loihi = a.decay_mode == "loihi"
        p = self.profile

        def reg(shape, name):
            return Signal(shape, name=name)

        # -- stage 1 ----------------------------------------------------------------------------
        u, v, acc = self.state.u, self.state.v, self.acc.value
        # sat18: in range iff the bits from 17 up are all equal (pure logic, no compare chain).
        top = acc[IB - 1:]
        in_range = top.all() | ~top.any()
        i_max, i_min = (1 << (IB - 1)) - 1, -(1 << (IB - 1))
        s1_valid = reg(1, "s1_valid")
        s1_i = reg(signed(IB), "s1_i")
        s1_sat = reg(1, "s1_sat")
        s1_bias = reg(signed(a.BIAS_MANT_BITS + (1 << a.BIAS_EXP_BITS) - 1), "s1_bias")
        s1_vth = reg(unsigned(a.VTH_BITS), "s1_vth")
        s1_neg_v = reg(1, "s1_neg_v")
        m.d.sync += [
            s1_valid.eq(self.valid),
            s1_i.eq(Mux(in_range, acc[:IB].as_signed(), Mux(acc[-1], i_min, i_max))),
            s1_sat.eq(~in_range),
            s1_bias.eq(p.bias_mant << p.bias_exp),          # barrel shift: muxes only
            s1_vth.eq(p.vth),
            s1_neg_v.eq(v[-1]),
        ]
        if loihi:
            s1_mag_u = reg(unsigned(W), "s1_mag_u")
            s1_mag_v = reg(unsigned(W), "s1_mag_v")
            s1_neg_u = reg(1, "s1_neg_u")
            s1_fu = reg(unsigned(a.DECAY_BITS), "s1_fu")
            s1_fv = reg(unsigned(a.DECAY_BITS + 1), "s1_fv")
            m.d.sync += [
                s1_mag_u.eq(abs(u)),
                s1_mag_v.eq(abs(v)),
                s1_neg_u.eq(u[-1]),
                # 4096 - (du + 1) = 4095 - du: the bitwise complement of the 12-bit du.
                s1_fu.eq(~p.du),
                s1_fv.eq((1 << a.DECAY_SHIFT) - p.dv),
            ]
        else:
            # x >> k for k >= 24 equals x >> 24 (the sign): clamp the shift amount to 5 bits.
            s1_u = reg(signed(W), "s1_u")
            s1_v = reg(signed(W), "s1_v")
            s1_ku = reg(unsigned(5), "s1_ku")
            s1_kv = reg(unsigned(5), "s1_kv")
            m.d.sync += [
                s1_u.eq(u), s1_v.eq(v),
                s1_ku.eq(Mux(p.du >= W, W, p.du[:5])),
                s1_kv.eq(Mux(p.dv >= W, W, p.dv[:5])),
            ]

        # -- stage 2 ----------------------------------------------------------------------------
        s2_valid = reg(1, "s2_valid")
        s2_i = reg(signed(IB), "s2_i")
        s2_sat = reg(1, "s2_sat")
        s2_vth = reg(unsigned(a.VTH_BITS), "s2_vth")
        s2_bias = reg(signed(len(s1_bias) + 1), "s2_bias")
        m.d.sync += [s2_valid.eq(s1_valid), s2_i.eq(s1_i), s2_sat.eq(s1_sat), s2_vth.eq(s1_vth)]
        if loihi:
            s2_pu = reg(unsigned(W + a.DECAY_BITS), "s2_pu")
            s2_pv = reg(unsigned(W + a.DECAY_BITS + 1), "s2_pv")
            s2_neg_u = reg(1, "s2_neg_u")
            s2_neg_v = reg(1, "s2_neg_v")
            m.d.sync += [
                s2_pu.eq(s1_mag_u * s1_fu),                 # the only multipliers of the core
                s2_pv.eq(s1_mag_v * s1_fv),
                s2_neg_u.eq(s1_neg_u),
                s2_neg_v.eq(s1_neg_v),
                # The +1 of -(P_v >> 12) = ~(P_v >> 12) + 1 rides on the bias here.
                s2_bias.eq(s1_bias + s1_neg_v),
            ]
        else:
            s2_u = reg(signed(W), "s2_u")
            s2_v = reg(signed(W), "s2_v")
            s2_su = reg(signed(W), "s2_su")
            s2_sv = reg(signed(W), "s2_sv")
            m.d.sync += [
                s2_u.eq(s1_u), s2_v.eq(s1_v),
                s2_su.eq(s1_u >> s1_ku),                    # arithmetic: s1_u is signed
                s2_sv.eq(s1_v >> s1_kv),
                # x - s = x + ~s + 1: the +1 of the v sum rides on the bias.
                s2_bias.eq(s1_bias + 1),
            ]

        # -- stage 3 ----------------------------------------------------------------------------
        VW = W + 2                              # 26: holds decay_v + bias without wrapping
        s3_valid = reg(1, "s3_valid")
        s3_u = reg(signed(W), "s3_u")
        s3_w = reg(signed(VW), "s3_w")
        s3_sat = reg(1, "s3_sat")
        s3_vth = reg(unsigned(a.VTH_BITS), "s3_vth")
        m.d.sync += [s3_valid.eq(s2_valid), s3_sat.eq(s2_sat), s3_vth.eq(s2_vth)]
        if loihi:
            # Magnitudes after >> 12 (rounded toward zero); at most 2^23, so VW bits hold +-.
            qu = _sext(s2_pu[a.DECAY_SHIFT:], VW).as_signed()
            qv = _sext(s2_pv[a.DECAY_SHIFT:], VW).as_signed()
            xu = Mux(s2_neg_u, ~qu, qu)         # -q = ~q + 1: the +1 is added below
            xv = Mux(s2_neg_v, ~qv, qv)
            # i << 6 has six zero LSBs: the +1 of the negation of u's decay fills bit 0.
            inp = Cat(s2_neg_u, Const(0, a.ACT_SHIFT - 1), s2_i).as_signed()
            m.d.sync += [
                s3_u.eq((xu + inp)[:W]),                    # wrap24: keep the low 24 bits
                s3_w.eq(xv + s2_bias),
            ]
        else:
            inp = Cat(Const(1, 1), Const(0, a.ACT_SHIFT - 1), s2_i).as_signed()
            m.d.sync += [
                s3_u.eq(_csa_add(s2_u, ~s2_su, inp, W)),   # wrap24 is the width of the sum
                s3_w.eq(_csa_add(s2_v, ~s2_sv, s2_bias, VW)),
            ]

        # -- stage 4: v' = sat24(w + u'), in two steps ---------------------------------------------
        # Here the sum is clamped to the 24-bit range [-2^23, 2^23 - 1], which needs only its top
        # four bits after the adder; stage 5 then moves -2^23 up to Lava's -(2^23 - 1) (a wide
        # AND, in parallel with the threshold compare, which it cannot change: both are < 0).
        s4_valid = reg(1, "s4_valid")
        s4_u = reg(signed(W), "s4_u")
        s4_v = reg(signed(W), "s4_v")
        s4_sat = reg(1, "s4_sat")
        s4_vth = reg(unsigned(a.VTH_BITS), "s4_vth")
        vs = Signal(signed(VW + 1), name="s4_sum")
        m.d.comb += vs.eq(s3_w + s3_u)
        v_max = (1 << (W - 1)) - 1
        over = ~vs[-1] & vs[W - 1:].any()       # vs >= 2^23
        under = vs[-1] & ~vs[W - 1:].all()      # vs < -2^23
        m.d.sync += [
            s4_valid.eq(s3_valid), s4_u.eq(s3_u), s4_sat.eq(s3_sat), s4_vth.eq(s3_vth),
            s4_v.eq(Mux(over, v_max, Mux(under, -v_max - 1, vs[:W].as_signed()))),
        ]

        # -- stage 5: the clamp's last step, threshold and reset ----------------------------------
        theta = Cat(Const(0, a.VTH_SHIFT), s4_vth)          # vth << 6, unsigned 23 bits
        # v' > theta as the sign of theta - v' (one subtraction: a plain carry chain).
        diff = Signal(signed(W + 1), name="s5_diff")
        spike = Signal(name="s5_spike")
        m.d.comb += [diff.eq(theta - s4_v), spike.eq(diff[-1])]
        v_sat = Mux(s4_v == -v_max - 1, -v_max, s4_v)
        if a.reset_mode == "zero":
            v_reset = Const(0, signed(W))
        else:
            v_reset = (s4_v - theta)[:W]        # spike implies 0 < v' - theta < 2^23
        m.d.sync += [
            self.out_valid.eq(s4_valid),
            self.out_state.u.eq(s4_u),
            self.out_state.v.eq(Mux(spike, v_reset, v_sat)),
            self.spike.eq(spike),
            self.saturated.eq(s4_sat),
        ]
        return m
