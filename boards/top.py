"""The chip on a board: :class:`BoardCore` (pins as ports) and :class:`BoardTop` (platform pins).

::

    uart rx pin --> UARTRx --> Chip.rx
    uart tx pin <-- UARTTx <-- Chip.tx
                     |  framing error, overrun, error responses  --> error LED (sticky)
    heartbeat counter ------------------------------------------ --> heartbeat LED

Link
----
The host protocol (:mod:`neurotile.hdl.protocol`) runs over a UART, 8N1, at ``baud`` (default
115200; the divisor is ``round(clk_hz / baud)``, checked to be within 1 % by
:func:`~neurotile.boards.uart.uart_divisor`). The FTDI bridges of the boards run 1, 2 or 3 Mbaud
too where the clock divides to it (``neurotile build --baud``). No hardware flow control and no
receive FIFO: the host sends one frame and waits for its response (the protocol's rule), the host
port takes every byte of a frame as it arrives (it buffers the payload until the CRC), and the
receiver's one-character register gives it a whole character time (``10 * divisor`` cycles) to do
so. A character that still finds the register full is an overrun (error LED), never a hang: the
frame then ends in a CRC error or a TRUNCATED response.

Clock and reset
---------------
The design runs from the board oscillator through the platform's default clock domain
(amaranth's power-on reset included: on iCE40 it also covers the block RAMs' 3 us of
unreadability after configuration). No PLL: every board's oscillator (12, 25, 27, 100 MHz) is
below the chip's Fmax on that FPGA except where the report says otherwise, so the design meets
timing at the oscillator and a PLL would only add a timing domain to close. The reset button
(synchronised, active while pressed) resets every register of the board design through a
:class:`~amaranth.hdl.ResetInserter`; memories keep their contents, so after a reset the host
loads its image again (``Host.load_image``), as it does after power-up.

LEDs
----
Heartbeat: blinks at about 1 Hz while the clock runs and lights solid while a RUN executes
(``Chip.engine.running``). Error: sticky until reset, lit by a UART framing error or overrun,
or by any response whose STATUS is not OK (the host's errors, such as a bad CRC, included).
"""

from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..compiler.arch import Arch
from ..compiler.errors import NeurotileTypeError, NeurotileValueError
from ..hdl import protocol as P
from ..hdl.chip import Chip
from ..hdl.hostport import DEFAULT_FRAME_TIMEOUT
from .targets import get_target
from .uart import UARTRx, UARTTx, uart_divisor

__all__ = ["BoardCore", "BoardTop", "ResponseMonitor", "DEFAULT_BAUD"]

#: Default UART baud rate of every board.
DEFAULT_BAUD = 115200


class ResponseMonitor(wiring.Component):
    """Watches the chip's response bytes and flags every response whose STATUS is not OK.

    It follows the response framing (``0x5A STATUS LEN_LO LEN_HI PAYLOAD[LEN] CRC``) byte by
    byte on the transfers of the ``tx`` stream it listens to.

    Members
    -------
    valid, byte : ``In(1)``, ``In(8)``
        A byte was transferred (``valid & ready`` of the stream) and its value.
    error : ``Out(1)``
        Pulses when a STATUS byte other than OK is seen.
    """

    valid: In(1)
    byte: In(8)
    error: Out(1)

    def elaborate(self, platform):
        m = Module()
        left = Signal(17)                                  # payload bytes + CRC still to come
        lo = Signal(8)
        with m.FSM(name="response"):
            with m.State("SYNC"):
                with m.If(self.valid & (self.byte == P.SYNC_RESPONSE)):
                    m.next = "STATUS"
            with m.State("STATUS"):
                with m.If(self.valid):
                    m.d.comb += self.error.eq(self.byte != P.Status.OK)
                    m.next = "LEN_LO"
            with m.State("LEN_LO"):
                with m.If(self.valid):
                    m.d.sync += lo.eq(self.byte)
                    m.next = "LEN_HI"
            with m.State("LEN_HI"):
                with m.If(self.valid):
                    m.d.sync += left.eq((self.byte << 8 | lo) + 1)
                    m.next = "BODY"
            with m.State("BODY"):
                with m.If(self.valid):
                    m.d.sync += left.eq(left - 1)
                    with m.If(left == 1):
                        m.next = "SYNC"
        return m


class BoardCore(wiring.Component):
    """The chip behind a UART, with its status LEDs: everything of a board design but the pads.

    Verilator co-simulation and the bit-level tests use this component directly (its ports are
    the pins); :class:`BoardTop` connects it to a platform's resources.

    Parameters
    ----------
    arch : Arch
    image : ChipImage, optional
        Initial memory contents (zeros if omitted; the host normally loads the image).
    clk_hz : float
        Clock frequency (for the baud divisor and the heartbeat).
    baud : int
        UART baud rate.
    divisor : int, optional
        Clock cycles per bit, instead of ``clk_hz / baud`` (simulation uses 4..16).
    frame_timeout, max_payload : int
        Host port parameters (:class:`~neurotile.hdl.chip.Chip`).
    registered_bus : bool
        The chip's host-bus registers (:class:`~neurotile.hdl.chip.ChipEngine`).
    heartbeat_hz : float
        Blink rate of the heartbeat LED.

    Members
    -------
    uart_rx : ``In(1)``, idle 1
    uart_tx : ``Out(1)``, idle 1
    led_heartbeat, led_error : ``Out(1)``
    chip : Chip
    divisor : int

    Raises
    ------
    NeurotileTypeError, NeurotileValueError
        A bad ``arch``, ``divisor``, or a baud rate the clock cannot make (and everything
        :class:`~neurotile.hdl.chip.Chip` raises).
    """

    def __init__(self, arch, image=None, *, clk_hz=12e6, baud=DEFAULT_BAUD, divisor=None,
                 frame_timeout=DEFAULT_FRAME_TIMEOUT, max_payload=P.DEFAULT_MAX_PAYLOAD,
                 registered_bus=True, heartbeat_hz=1.0):
        try:
            if not heartbeat_hz > 0:
                raise NeurotileValueError(f"heartbeat_hz must be positive, not {heartbeat_hz!r}")
            self.divisor = uart_divisor(clk_hz, baud) if divisor is None else divisor
            self.rx = UARTRx(self.divisor)
            self.tx = UARTTx(self.divisor)
            self.chip = Chip(arch, image, frame_timeout=frame_timeout, max_payload=max_payload,
                             registered_bus=registered_bus)
        except Exception:
            for part in (self, getattr(self, "rx", None), getattr(self, "tx", None)):
                if part is not None:
                    part._MustUse__silence = True
            raise
        self.arch = arch
        self.clk_hz = clk_hz
        self.baud = clk_hz / self.divisor
        self.heartbeat_cycles = max(2, int(clk_hz / heartbeat_hz / 2))
        super().__init__({
            "uart_rx": In(1, init=1),
            "uart_tx": Out(1, init=1),
            "led_heartbeat": Out(1),
            "led_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = rx = self.rx
        m.submodules.uart_tx = tx = self.tx
        m.submodules.chip = chip = self.chip
        m.submodules.monitor = mon = ResponseMonitor()

        m.d.comb += [rx.line.eq(self.uart_rx), self.uart_tx.eq(tx.line)]
        wiring.connect(m, rx.data, chip.rx)
        wiring.connect(m, chip.tx, tx.data)
        m.d.comb += [mon.valid.eq(chip.tx.valid & chip.tx.ready), mon.byte.eq(chip.tx.payload)]

        error = Signal()
        with m.If(rx.frame_error | rx.overrun | mon.error):
            m.d.sync += error.eq(1)

        beat = Signal(range(self.heartbeat_cycles))
        blink = Signal()
        with m.If(beat == self.heartbeat_cycles - 1):
            m.d.sync += [beat.eq(0), blink.eq(~blink)]
        with m.Else():
            m.d.sync += beat.eq(beat + 1)
        m.d.comb += [
            self.led_heartbeat.eq(blink | chip.engine.running),
            self.led_error.eq(error),
        ]
        return m


class BoardTop(wiring.Component):
    """The chip on a board: a :class:`BoardCore` wired to the board's pins (module docstring).

    Parameters
    ----------
    board : str or Target
        A name of :data:`~neurotile.boards.targets.TARGETS`.
    arch : Arch
    image : ChipImage, optional
    baud : int, optional
        UART baud rate (default: the target's, 115200).
    max_payload : int
        Host port payload buffer.

    Members
    -------
    target : Target
    core : BoardCore (created in ``elaborate``, when the platform's clock is known)

    Raises
    ------
    BoardError
        Unknown board.
    NeurotileTypeError
        ``arch`` is not an Arch.
    NeurotileValueError
        A baud rate the board's clock cannot make (when elaborated).
    """

    def __init__(self, board, arch, image=None, *, baud=None, max_payload=P.DEFAULT_MAX_PAYLOAD):
        try:
            self.target = get_target(board)
            if not isinstance(arch, Arch):
                raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
        except Exception:
            self._MustUse__silence = True
            raise
        self.arch = arch
        self.image = image
        self.baud = self.target.baud if baud is None else baud
        self.max_payload = max_payload
        self.core = None
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        t = self.target
        self.core = core = BoardCore(self.arch, self.image, clk_hz=platform.default_clk_frequency,
                                     baud=self.baud, max_payload=self.max_payload,
                                     registered_bus=t.registered_bus)
        uart = platform.request(*t.uart, dir="-")
        m.submodules.uart_rx_pin = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_pin = tx = io.Buffer("o", uart.tx)
        m.submodules.heartbeat_pin = heartbeat = io.Buffer("o", platform.request(*t.leds[0],
                                                                                   dir="-"))
        m.submodules.error_pin = error = io.Buffer("o", platform.request(*t.leds[1], dir="-"))
        m.d.comb += [
            core.uart_rx.eq(rx.i),
            tx.o.eq(core.uart_tx),
            heartbeat.o.eq(core.led_heartbeat),
            error.o.eq(core.led_error),
        ]
        if t.reset_button is None:
            m.submodules.core = core
        else:
            m.submodules.button_pin = button = io.Buffer("i", platform.request(*t.reset_button,
                                                                                dir="-"))
            pressed = Signal()
            m.submodules.button_sync = FFSynchronizer(button.i, pressed)
            m.submodules.core = ResetInserter(pressed)(core)
        return m
