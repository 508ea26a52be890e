"""Tests for the board design (:mod:`neurotile.boards.top`) in Amaranth's simulator.

:class:`~neurotile.boards.top.BoardCore` is driven at its pins: request frames from the protocol's
encoder (:mod:`neurotile.hdl.protocol`) go bit by bit into ``uart_rx`` through the line model of
:mod:`neurotile.boards.uart`, and ``uart_tx`` is decoded by the same model. Expected responses come
from the protocol's golden model, :class:`~neurotile.hdl.protocol.HostPortModel`.
"""

import pytest
from amaranth.sim import Simulator

import neurotile as nt
from neurotile.boards.top import BoardCore, ResponseMonitor
from neurotile.boards.uart import decode_levels, line_levels
from neurotile.hdl import protocol as P

DIVISOR = 4


def tiny_arch():
    return nt.Arch(mesh_w=1, mesh_h=1, neurons_per_core=8, profiles_per_core=2, axons_per_core=16,
                   synapses_per_core=32, fanout_per_core=16, max_delay=2, host_in_depth=8,
                   host_out_depth=8)


def run_board(frames, *, gap=1500, cycles_after=3000, heartbeat_hz=None):
    """Send ``frames`` (bytes) to a BoardCore, ``gap`` idle cycles apart (the host waits for each
    response, as the protocol requires); return (tx levels, led_error, led_heartbeat)."""
    kwargs = {} if heartbeat_hz is None else {"clk_hz": 1000.0, "heartbeat_hz": heartbeat_hz}
    dut = BoardCore(tiny_arch(), divisor=DIVISOR, max_payload=32, **kwargs)
    rx = []
    for frame in frames:
        rx += line_levels(frame, DIVISOR, tail=gap)
    tx, err, beat = [], [], []

    async def bench(ctx):
        for level in rx + [1] * cycles_after:
            ctx.set(dut.uart_rx, level)
            tx.append(ctx.get(dut.uart_tx))
            err.append(ctx.get(dut.led_error))
            beat.append(ctx.get(dut.led_heartbeat))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return tx, err, beat


def responses(levels):
    data = bytes(decode_levels(levels, DIVISOR)[0])
    out = []
    while data:
        n = 5 + (data[2] | data[3] << 8)
        out.append(P.decode_response(data[:n]))
        data = data[n:]
    return out


def test_a_ping_over_the_uart_pins_gets_the_golden_models_answer_and_no_error_led():
    arch = tiny_arch()
    ping = P.encode_command("PING")
    tx, err, _ = run_board([ping])
    model = P.HostPortModel(arch, P.DictBackend(arch), max_payload=32)
    assert responses(tx) == [P.decode_response(model.feed(ping))]
    assert responses(tx)[0][1][:4] == P.MAGIC
    assert max(err) == 0


def test_an_error_response_lights_the_error_led_and_it_stays_lit():
    arch = tiny_arch()
    bad = bytearray(P.encode_command("PING"))
    bad[-1] ^= 0x01                                       # wrong CRC: answered with BAD_CRC
    tx, err, _ = run_board([bytes(bad), P.encode_command("PING")])
    status = [s for s, _ in responses(tx)]
    assert status == [P.Status.BAD_CRC, P.Status.OK]
    first_lit = err.index(1)
    assert all(err[first_lit:])                           # sticky through the good PING
    # The LED lights when the STATUS byte leaves the chip, before the UART has sent it.
    assert first_lit < len(tx) - 1000


def test_heartbeat_toggles_every_half_period():
    # 1000 Hz clock, 100 Hz heartbeat: the LED toggles every 1000 / 100 / 2 = 5 cycles.
    _, _, beat = run_board([], cycles_after=40, heartbeat_hz=100.0)
    edges = [k for k in range(1, len(beat)) if beat[k] != beat[k - 1]]
    assert [b - a for a, b in zip(edges, edges[1:])] == [5] * (len(edges) - 1)
    assert len(edges) >= 6


def test_response_monitor_follows_frame_lengths_and_flags_error_statuses():
    # Junk, an OK response whose payload holds 0x5A and 0x01 (not a frame start: skipped by
    # length), a BAD_ARGUMENT response, another OK: exactly one error pulse, at the second
    # STATUS byte.
    ok = P.encode_response(P.Status.OK, bytes([0x5A, 0x01, 0x5A]))
    bad = P.encode_response(P.Status.BAD_ARGUMENT, bytes([0x02]))
    stream = bytes([0x00, 0x13]) + ok + bad + P.encode_response(P.Status.OK)
    dut = ResponseMonitor()
    pulses = []

    async def bench(ctx):
        for k, byte in enumerate(stream):
            ctx.set(dut.valid, 1)
            ctx.set(dut.byte, byte)
            if ctx.get(dut.error):
                pulses.append(k)
            await ctx.tick()
            ctx.set(dut.valid, 0)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert pulses == [2 + len(ok) + 1]


def test_board_core_checks_its_arguments():
    with pytest.raises(nt.NeurotileValueError, match="heartbeat_hz must be positive, not 0"):
        BoardCore(tiny_arch(), divisor=4, heartbeat_hz=0)
    with pytest.raises(nt.NeurotileValueError, match="baud 4000000 needs 2.50 clock cycles per "
                                                     "bit at 10 MHz, fewer than 4"):
        BoardCore(tiny_arch(), clk_hz=10e6, baud=4_000_000)
