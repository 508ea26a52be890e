"""A UART (8N1) for the boards' USB-serial link: :class:`UARTRx` and :class:`UARTTx`.

Both sides count a fixed ``divisor`` of clock cycles per bit (:func:`uart_divisor` derives it
from the clock and the baud rate). The line is idle high; a character is::

    bit   0      1 .. 8               9
          start  data, LSB first      stop
          0      d0 d1 ... d7         1

The receiver synchronises the line (two flip-flops), waits for a falling edge, checks that the
line is still low half a bit later (otherwise the edge was a glitch), and samples the eight data
bits and the stop bit in the middle of each bit. Sampling the stop bit at its middle and looking
for the next start edge right after it lets a sender run up to half a bit fast over ten bits:
the receiver tolerates a baud rate mismatch of about +/-4 % (the tests check +/-2 %).
A low stop bit is a framing error: the character is dropped, ``frame_error`` pulses, and the
receiver waits for the line to return high (a break) before looking for the next start bit.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..compiler.errors import NeurotileTypeError, NeurotileValueError

__all__ = ["UARTRx", "UARTTx", "uart_divisor", "line_levels", "decode_levels", "MIN_DIVISOR",
           "BAUD_TOLERANCE"]

#: Smallest clock cycles per bit: the receiver needs a half-bit count of at least 2.
MIN_DIVISOR = 4
#: Largest relative difference between the requested and the generated baud rate that
#: :func:`uart_divisor` accepts (a quarter of what the receiver on the other side tolerates).
BAUD_TOLERANCE = 0.01


def _check_divisor(divisor):
    if isinstance(divisor, bool) or not isinstance(divisor, int):
        raise NeurotileTypeError(f"divisor must be an int, not {divisor!r}")
    if divisor < MIN_DIVISOR:
        raise NeurotileValueError(f"divisor must be at least {MIN_DIVISOR} clock cycles per bit, "
                                  f"not {divisor!r}")
    return divisor


def uart_divisor(clk_hz, baud):
    """Clock cycles per bit for ``baud`` at ``clk_hz``.

    >>> uart_divisor(12e6, 115200)
    104

    Raises
    ------
    NeurotileValueError
        A non-positive clock or baud rate, fewer than :data:`MIN_DIVISOR` cycles per bit, or a
        rounded divisor whose baud rate differs from ``baud`` by more than
        :data:`BAUD_TOLERANCE` (say which rates the clock can make).
    """
    for name, value in (("clk_hz", clk_hz), ("baud", baud)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise NeurotileValueError(f"{name} must be a positive number, not {value!r}")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise NeurotileValueError(
            f"baud {baud} needs {clk_hz / baud:.2f} clock cycles per bit at {clk_hz / 1e6:g} MHz, "
            f"fewer than {MIN_DIVISOR}; the fastest rate this clock allows is "
            f"{clk_hz / MIN_DIVISOR:.0f} baud")
    error = abs(clk_hz / divisor - baud) / baud
    if error > BAUD_TOLERANCE:
        raise NeurotileValueError(
            f"baud {baud} is {error:.2%} away from the nearest rate a {clk_hz / 1e6:g} MHz clock "
            f"makes ({clk_hz / divisor:.0f} baud, divisor {divisor}); the limit is "
            f"{BAUD_TOLERANCE:.0%}: choose a baud rate near clk_hz / n")
    return divisor


class UARTRx(wiring.Component):
    """UART receiver, 8N1 (module docstring).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (at least :data:`MIN_DIVISOR`).

    Members
    -------
    line : ``In(1)``, idle 1
        The serial input pin (asynchronous; synchronised inside).
    data : ``Out(stream.Signature(8))``
        Received characters. A character is held until ``ready``.
    frame_error : ``Out(1)``
        Pulses for one cycle when a character ends in a low stop bit (the character is dropped).
    overrun : ``Out(1)``
        Pulses for one cycle when a character is complete while the previous one is still
        waiting for ``ready`` (the new character is dropped).

    Raises
    ------
    NeurotileTypeError, NeurotileValueError
        ``divisor`` is not an int of at least :data:`MIN_DIVISOR`.
    """

    def __init__(self, divisor):
        try:
            self.divisor = _check_divisor(divisor)
        except Exception:
            self._MustUse__silence = True
            raise
        super().__init__({
            "line": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "frame_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.line, line, init=1)

        timer = Signal(range(d))
        shift = Signal(8)
        bits = Signal(range(8))
        full = Signal()
        byte = Signal(8)
        m.d.comb += [self.data.valid.eq(full), self.data.payload.eq(byte)]
        with m.If(self.data.ready):
            m.d.sync += full.eq(0)

        with m.FSM(name="rx"):
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(d // 2 - 1)          # to the middle of the start bit
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):                             # high again: a glitch, not a start
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), shift.eq(Cat(shift[1:], line)), bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    with m.If(full & ~self.data.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [byte.eq(shift), full.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.frame_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):                             # wait for the idle level
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """UART transmitter, 8N1 (module docstring).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (at least :data:`MIN_DIVISOR`).

    Members
    -------
    data : ``In(stream.Signature(8))``
        Characters to send; one is taken (``ready``) whenever the transmitter is idle, so
        back-to-back characters are ``10 * divisor + 1`` cycles apart.
    line : ``Out(1)``, idle 1
        The serial output pin.

    Raises
    ------
    NeurotileTypeError, NeurotileValueError
        ``divisor`` is not an int of at least :data:`MIN_DIVISOR`.
    """

    def __init__(self, divisor):
        try:
            self.divisor = _check_divisor(divisor)
        except Exception:
            self._MustUse__silence = True
            raise
        super().__init__({
            "data": In(stream.Signature(8)),
            "line": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        shift = Signal(10, init=1)                             # bit 0 is on the line
        timer = Signal(range(d))
        left = Signal(range(11))                               # bits still to send
        m.d.comb += self.line.eq(shift[0])
        with m.If(left == 0):
            m.d.comb += self.data.ready.eq(1)
            with m.If(self.data.valid):
                m.d.sync += [shift.eq(Cat(0, self.data.payload, 1)), left.eq(10), timer.eq(d - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [shift.eq(Cat(shift[1:], 1)), left.eq(left - 1), timer.eq(d - 1)]
        return m


# -- golden model of the line ----------------------------------------------------------------------

def line_levels(chars, period, *, idle=3, gap=0.0, tail=None):
    """The line level in every clock cycle while a sender transmits ``chars`` (8N1).

    Parameters
    ----------
    chars : iterable of int or (int, int)
        Bytes, or ``(byte, stop_level)`` pairs (a stop level of 0 makes a framing error).
    period : float
        Clock cycles per bit; a fraction models a sender off the receiver's rate (``divisor *
        1.02`` is 2 % slow). Bit edges fall on the nearest cycle.
    idle : int
        Idle (high) cycles before the first start bit.
    gap : float
        Idle time between characters, in cycles.
    tail : int, optional
        Idle cycles after the last stop bit (default ``2 * period + 4``).

    Returns
    -------
    list of int
    """
    levels = [1] * idle
    t = 0.0                                           # start time of the next bit, in cycles
    for ch in chars:
        value, stop = (ch, 1) if isinstance(ch, int) else ch
        bits = [0] + [value >> k & 1 for k in range(8)] + [stop]
        for level, length in [(b, period) for b in bits] + [(1, gap)]:
            t += length
            levels += [level] * (round(t) - (len(levels) - idle))
    return levels + [1] * (int(2 * period) + 4 if tail is None else tail)


def decode_levels(levels, divisor):
    """The characters on a line (a list of levels per cycle), sampled in the middle of each bit.

    Returns
    -------
    (list of int, list of int)
        The bytes and the cycle of each start edge.

    Raises
    ------
    NeurotileValueError
        A character whose start bit is not low or whose stop bit is not high in its middle.
    """
    out, starts, k = [], [], 1
    while k < len(levels):
        if levels[k - 1] == 1 and levels[k] == 0:
            mid = [k + divisor // 2 + divisor * b for b in range(10)]
            if mid[-1] >= len(levels):
                break
            bits = [levels[p] for p in mid]
            if bits[0] != 0 or bits[9] != 1:
                raise NeurotileValueError(f"bad character at cycle {k}: bits {bits}")
            out.append(sum(b << i for i, b in enumerate(bits[1:9])))
            starts.append(k)
            k = mid[-1]
        k += 1
    return out, starts
