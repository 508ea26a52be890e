"""The cocotb side of a co-simulation: a bridge from a socket to the chip's host port.

This module runs inside the simulator process (``COCOTB_TEST_MODULES=neurotile.sim.cosim_tb``),
started by :class:`neurotile.sim.cosim.CosimChip`. The host-side Python process keeps the
:class:`~neurotile.hdl.protocol.HostClient`; its transport sends each command frame over a Unix
socket (path in ``$NEUROTILE_COSIM_SOCKET``) to :func:`run_bridge`, which hands the frame's bytes
to the bench (``sim/cosim_top.v``) in one write, waits for the bench's single "response complete"
edge and sends the response back. The clock runs in HDL; Python runs once per frame, never per
clock, and one simulator process serves a whole session (load, any number of steps, reloads).

The messages on the socket are those of :mod:`neurotile.sim.bridge`.
"""

import os
import socket

import cocotb
from cocotb.triggers import First, Timer

from .bridge import OPS, U64, recv_message, send_message

__all__ = ["TB", "run_bridge", "CLOCK_NS"]

#: Clock period of the bench, in ns (``always #5 clk = ~clk``).
CLOCK_NS = 10


class TB:
    """The bench's host link: writes whole frames into ``rx``, collects whole responses from ``tx``.

    Members
    -------
    dut
        The ``cosim_top`` handle.
    frame_bytes : int
        Capacity of the bench's frame buffers (``FRAME_BYTES``).
    """

    def __init__(self, dut):
        self.dut = dut
        self.frame_bytes = len(dut.rx_data) // 8
        self.req = 0
        dut.rx_data.value = 0
        dut.rx_len.value = 0
        dut.rx_req.value = 0
        dut.trace_on.value = 0

    def _send(self, data):
        if not 0 < len(data) <= self.frame_bytes:
            raise ValueError(f"a frame of {len(data)} bytes does not fit the bench's "
                             f"{self.frame_bytes}-byte buffer")
        self.dut.rx_data.value = int.from_bytes(data, "little")
        self.dut.rx_len.value = len(data)
        self.req ^= 1
        self.dut.rx_req.value = self.req

    async def frame(self, data, limit):
        """Send a command frame and return the response frame (``None`` after ``limit`` cycles)."""
        self._send(data)
        done = self.dut.tx_done.value_change
        if limit:
            fired = await First(done, Timer(limit * CLOCK_NS, unit="ns"))
            if fired is not done:
                return None
        else:
            await done
        n = int(self.dut.tx_len.value)
        return int(self.dut.tx_data.value).to_bytes(self.frame_bytes, "little")[:n]

    async def raw(self, data):
        """Send bytes (not a whole frame: no response is awaited); return once all are taken."""
        for k in range(0, len(data), self.frame_bytes):
            self._send(data[k:k + self.frame_bytes])
            while int(self.dut.rx_ack.value) != self.req:
                await self.dut.rx_ack.value_change

    async def trace(self):
        """Start recording the waveform (a bench built with ``COSIM_TRACE``)."""
        self.dut.trace_on.value = 1
        await Timer(2 * CLOCK_NS, unit="ns")     # the bench samples trace_on at a clock edge

    def cycle(self):
        return int(self.dut.cycle.value)


async def run_bridge(dut, path):
    """Serve the host process on the socket at ``path`` until it sends QUIT or disconnects."""
    tb = TB(dut)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    try:
        while True:
            try:
                op, payload = recv_message(sock)
            except EOFError:
                return
            try:
                if op == OPS["FRAME"]:
                    (limit,) = U64.unpack_from(payload)
                    response = await tb.frame(payload[U64.size:], limit)
                    if response is None:
                        send_message(sock, "TIMEOUT")
                    else:
                        send_message(sock, "FRAME", response)
                elif op == OPS["RAW"]:
                    await tb.raw(payload)
                    send_message(sock, "RAW")
                elif op == OPS["TRACE"]:
                    await tb.trace()
                    send_message(sock, "TRACE")
                elif op == OPS["CYCLE"]:
                    send_message(sock, "CYCLE", U64.pack(tb.cycle()))
                elif op == OPS["QUIT"]:
                    return
                else:
                    raise ValueError(f"unknown co-simulation op {op}")
            except Exception as error:      # report it to the host, then end the simulation
                send_message(sock, "ERROR", f"{type(error).__name__}: {error}".encode())
                raise
    finally:
        sock.close()


@cocotb.test()
async def cosim_bridge(dut):
    """Serve one co-simulation session (see the module docstring)."""
    path = os.environ.get("NEUROTILE_COSIM_SOCKET")
    if not path:
        raise RuntimeError("NEUROTILE_COSIM_SOCKET is not set: this test is started by "
                           "neurotile.sim.cosim.CosimChip, not on its own")
    await run_bridge(dut, path)
