"""The message format between the host process and the cocotb bridge (:mod:`neurotile.sim.cosim_tb`).

Messages travel both ways over a Unix socket: a header ``<BI`` (op, payload length) and the
payload.

====  ========  ===================================================  ===========================
op    name      request payload                                      reply
====  ========  ===================================================  ===========================
1     FRAME     ``<Q`` cycle limit (0: none), then one command        FRAME: the response frame,
                frame                                                or TIMEOUT (empty) once the
                                                                     limit has passed
2     RAW       bytes to send without waiting for a response         RAW (empty) once the chip
                                                                     took them all
3     TRACE     (empty): start recording the waveform                TRACE (empty)
4     CYCLE     (empty)                                              CYCLE: ``<Q`` clock cycles
                                                                     so far
5     QUIT      (empty)                                              none; the simulation ends
6     TIMEOUT   (reply only)
7     ERROR     (reply only): a message                              the simulation ends
====  ========  ===================================================  ===========================

This module needs neither cocotb nor a simulator.
"""

import struct

__all__ = ["OPS", "HEADER", "U64", "send_message", "recv_message"]

OPS = {"FRAME": 1, "RAW": 2, "TRACE": 3, "CYCLE": 4, "QUIT": 5, "TIMEOUT": 6, "ERROR": 7}
HEADER = struct.Struct("<BI")
#: The cycle limit of FRAME and the reply of CYCLE.
U64 = struct.Struct("<Q")


def _recv_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError("the co-simulation socket closed")
        out += chunk
    return bytes(out)


def send_message(sock, op, payload=b""):
    """Send one message (``op`` a name of :data:`OPS` or its code)."""
    code = OPS[op] if isinstance(op, str) else op
    sock.sendall(HEADER.pack(code, len(payload)) + payload)


def recv_message(sock):
    """Receive one message: ``(op code, payload)``.

    Raises
    ------
    EOFError
        The other side closed the socket.
    """
    op, n = HEADER.unpack(_recv_exact(sock, HEADER.size))
    return op, _recv_exact(sock, n)
