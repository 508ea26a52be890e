"""Bit-level tests of the UART (:mod:`neurotile.boards.uart`) in Amaranth's simulator.

The testbench drives the receiver's ``line`` one clock cycle at a time from a waveform that the
plain-Python line model computes (:func:`~neurotile.boards.uart.line_levels`): each character is
a start bit, eight data bits LSB first and a stop bit, every bit ``period`` cycles long, where
``period`` may be a fraction (``divisor * 1.02`` is a sender 2 % slower than the receiver
expects). Expected bytes are the ones the model sent; the transmitter is checked the other way
round, by sampling its line in the middle of each bit
(:func:`~neurotile.boards.uart.decode_levels`).
"""

import random

import pytest
from amaranth.sim import Simulator

from neurotile.boards.uart import (MIN_DIVISOR, UARTRx, UARTTx, decode_levels, line_levels,
                                   uart_divisor)
from neurotile.compiler.errors import NeurotileTypeError, NeurotileValueError


def run_rx(divisor, levels, *, ready=lambda cycle: True):
    """Feed ``levels`` to a UARTRx; return (bytes received, frame errors, overruns)."""
    dut = UARTRx(divisor)
    got, events = [], {"frame_error": 0, "overrun": 0}

    async def bench(ctx):
        for cycle, level in enumerate(levels):
            ctx.set(dut.line, level)
            rdy = ready(cycle)
            ctx.set(dut.data.ready, rdy)
            if ctx.get(dut.data.valid) and rdy:
                got.append(ctx.get(dut.data.payload))
            events["frame_error"] += ctx.get(dut.frame_error)
            events["overrun"] += ctx.get(dut.overrun)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got, events["frame_error"], events["overrun"]


@pytest.mark.parametrize("divisor", [MIN_DIVISOR, 7, 16])
def test_receiver_decodes_start_data_lsb_first_and_stop(divisor):
    data = [0x00, 0xFF, 0x55, 0xAA, 0x01, 0x80, 0xA5, 0x5A]
    got, errors, overruns = run_rx(divisor, line_levels(data, divisor, gap=2 * divisor))
    assert (got, errors, overruns) == (data, 0, 0)


@pytest.mark.parametrize("divisor", [MIN_DIVISOR, 16])
def test_back_to_back_characters_with_no_idle_between_stop_and_start(divisor):
    data = random.Random(divisor).choices(range(256), k=40)
    assert run_rx(divisor, line_levels(data, divisor)) == (data, 0, 0)


@pytest.mark.parametrize("divisor", [8, 16])
@pytest.mark.parametrize("skew", [0.98, 1.02])
def test_sender_two_percent_off_the_nominal_baud_rate_is_received(divisor, skew):
    # 40 back-to-back characters: the slip accumulates only within one character, because each
    # start edge resynchronises the receiver; 2 % of 10 bits is a fifth of a bit.
    data = random.Random(int(skew * 100) + divisor).choices(range(256), k=40)
    assert run_rx(divisor, line_levels(data, divisor * skew)) == (data, 0, 0)


def test_low_stop_bit_is_a_framing_error_and_the_character_is_dropped():
    divisor = 8
    # 0x00 with a low stop bit keeps the line low for 10 bits (a break); the receiver waits
    # for the line to go high, then receives the next character normally.
    levels = line_levels([0x41, (0x00, 0), 0x42, (0x7E, 0), 0x43], divisor, gap=3 * divisor)
    assert run_rx(divisor, levels) == ([0x41, 0x42, 0x43], 2, 0)


def test_a_low_glitch_shorter_than_half_a_bit_is_not_a_start_bit():
    divisor = 16
    levels = [1] * 5 + [0] * 3 + [1] * 40 + line_levels([0x3C], divisor)
    assert run_rx(divisor, levels) == ([0x3C], 0, 0)


def test_a_character_arriving_while_the_previous_one_waits_is_an_overrun():
    divisor = 6
    levels = line_levels([0x11, 0x22, 0x33], divisor)
    # The consumer is not ready until long after the second character: it sees the first, the
    # second is lost (one overrun), the third arrives after the consumer caught up.
    third_start = 3 + 20 * divisor
    got, errors, overruns = run_rx(divisor, levels, ready=lambda c: c > third_start)
    assert (got, errors, overruns) == ([0x11, 0x33], 0, 1)


def sample_tx(divisor, data):
    """Send ``data`` through a UARTTx; return (line levels per cycle, cycles between starts)."""
    dut = UARTTx(divisor)
    levels = []

    async def source(ctx):
        for byte in data:
            await stream_put(ctx, dut.data, byte)

    async def monitor(ctx):
        for _ in range(len(data) * (10 * divisor + 1) + 5 * divisor):
            levels.append(ctx.get(dut.line))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(monitor)
    sim.run()
    return levels


async def stream_put(ctx, port, value):
    ctx.set(port.payload, value)
    ctx.set(port.valid, 1)
    await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


@pytest.mark.parametrize("divisor", [MIN_DIVISOR, 9])
def test_transmitter_sends_8n1_frames_back_to_back(divisor):
    data = [0x00, 0xFF, 0xA5, 0x01, 0x80, 0x3C]
    levels = sample_tx(divisor, data)
    assert levels[0] == 1                                  # idle high before the first start
    got, starts = decode_levels(levels, divisor)
    assert got == data
    # Each bit lasts exactly `divisor` cycles; the transmitter takes the next character in the
    # cycle after the stop bit, so characters start 10 * divisor + 1 cycles apart.
    assert [b - a for a, b in zip(starts, starts[1:])] == [10 * divisor + 1] * (len(data) - 1)
    first = starts[0]
    assert levels[first:first + divisor] == [0] * divisor
    assert levels[first + 9 * divisor:first + 10 * divisor] == [1] * divisor


def test_transmitter_into_receiver_round_trips_every_byte_value():
    divisor = 5
    data = list(range(256))
    levels = sample_tx(divisor, data)
    assert run_rx(divisor, levels) == (data, 0, 0)


def test_uart_divisor_rounds_and_checks_the_rate_error():
    assert uart_divisor(12e6, 115200) == 104              # 12e6 / 115200 = 104.17
    assert uart_divisor(25e6, 115200) == 217
    assert uart_divisor(12e6, 1_000_000) == 12
    with pytest.raises(NeurotileValueError, match=r"baud 4000000 needs 3.00 clock cycles per bit "
                                                  r"at 12 MHz, fewer than 4; the fastest rate "
                                                  r"this clock allows is 3000000 baud"):
        uart_divisor(12e6, 4_000_000)
    with pytest.raises(NeurotileValueError, match=r"baud 46500 is 2.25% away from the nearest "
                                                  r"rate a 1 MHz clock makes \(45455 baud, "
                                                  r"divisor 22\)"):
        uart_divisor(1e6, 46500)                          # 1e6 / 46500 = 21.5 -> 22: 45454.5 baud
    with pytest.raises(NeurotileValueError, match="baud must be a positive number, not 0"):
        uart_divisor(12e6, 0)


def test_divisor_below_the_minimum_or_not_an_int_is_refused():
    with pytest.raises(NeurotileValueError, match=f"divisor must be at least {MIN_DIVISOR} clock "
                                                  f"cycles per bit, not 3"):
        UARTRx(3)
    with pytest.raises(NeurotileTypeError, match="divisor must be an int, not 8.0"):
        UARTTx(8.0)
