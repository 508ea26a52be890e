"""Drive a chip on an FPGA board over its USB-serial port: :class:`Host`.

>>> from neurotile.boards import Host
>>> with Host("/dev/ttyUSB1") as board:                          # doctest: +SKIP
...     board.load(image)
...     result = board.run({"in": spikes}, steps=100)
...     print(result.spike_count(), result.flags)

The host protocol itself (framing, CRC, timeouts, chunking of large transfers) is
:class:`~neurotile.hdl.protocol.HostClient`'s; this module gives it a pyserial transport
(:class:`SerialTransport`) and the session calls the co-simulation has
(:class:`neurotile.sim.cosim.CosimChip`): :meth:`Host.load`, :meth:`Host.run` returning a
:class:`~neurotile.emulator.result.RunResult` (``mode="board"``), and the protocol's own calls
through :attr:`Host.client` (``inject``, ``run``, ``read_output``, ``read_counters``, ``read_reg``).

Every call ends: a port that does not exist or cannot be opened, a board that does not answer
within ``timeout`` seconds, a link that corrupts bytes, all raise :class:`BoardLinkError` (a
:class:`~neurotile.ToolchainError`) naming the port, the baud rate and what to check.
"""

import time

import numpy as np

from ..compiler.arch import PROFILES, Arch
from ..compiler.errors import NeurotileTypeError, NeurotileValueError, ToolchainError
from ..compiler.image import ChipImage
from ..emulator.result import COUNTERS_CHIP, COUNTERS_CYCLE, COUNTERS_PER_CORE, RunResult
from ..emulator.state import FLAGS
from ..hdl import protocol as P

__all__ = ["Host", "SerialTransport", "BoardLinkError", "open_serial", "identify_arch",
           "DEFAULT_BAUD", "POLL_INTERVAL"]

#: The boards' default baud rate (:data:`neurotile.boards.top.DEFAULT_BAUD`).
DEFAULT_BAUD = 115200
#: Longest single wait of :meth:`SerialTransport.read` (seconds); the total wait is the caller's.
POLL_INTERVAL = 0.02


class BoardLinkError(ToolchainError):
    """The board cannot be reached: no such port, the port cannot be opened, or no answer."""


def _pyserial():
    try:
        import serial
    except ImportError:
        raise ToolchainError("talking to a board needs pyserial: pip install 'pyserial>=3.5' "
                             "(or 'neurotile[boards]')") from None
    return serial


def _ports_text():
    try:
        from serial.tools import list_ports
        ports = sorted(p.device for p in list_ports.comports())
    except Exception:                                       # pragma: no cover - platform specific
        ports = []
    return ", ".join(ports) if ports else "none found"


def open_serial(port, baudrate=DEFAULT_BAUD):
    """Open ``port`` (a device such as ``/dev/ttyUSB1`` or ``COM3``, or a pyserial URL such as
    ``loop://``) for the host link: 8N1, no flow control.

    Raises
    ------
    BoardLinkError
        The port does not exist or cannot be opened; the message lists the serial ports there are.
    """
    serial = _pyserial()
    try:
        return serial.serial_for_url(port, baudrate=baudrate, bytesize=8, parity="N",
                                     stopbits=1, timeout=POLL_INTERVAL, write_timeout=10,
                                     xonxoff=False, rtscts=False, dsrdtr=False)
    except (serial.SerialException, ValueError, OSError) as error:
        raise BoardLinkError(f"cannot open serial port {port!r} ({error}); serial ports here: "
                             f"{_ports_text()}. Is the board plugged in, and is the port "
                             f"name right?") from None


class SerialTransport(P.Transport):
    """A :class:`~neurotile.hdl.protocol.Transport` over a pyserial port.

    Parameters
    ----------
    serial : serial.Serial
        An open port (its ``timeout`` is set to :data:`POLL_INTERVAL`).
    """

    def __init__(self, serial):
        self.serial = serial
        serial.timeout = POLL_INTERVAL
        self._errors = (_pyserial().SerialException, OSError)

    def _fail(self, what, error):
        raise BoardLinkError(f"the serial port {self.serial.port!r} failed while {what} "
                             f"({error}): was the board unplugged?") from None

    def write(self, data):
        try:
            self.serial.write(bytes(data))
            self.serial.flush()
        except self._errors as error:
            self._fail("writing", error)

    def read(self, n, timeout):
        """Up to ``n`` bytes; returns early once ``n`` arrived, or after ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        out = bytearray()
        try:
            while True:
                if timeout <= 0:
                    waiting = self.serial.in_waiting
                    return bytes(self.serial.read(min(n, waiting))) if waiting else b""
                out += self.serial.read(n - len(out))
                if len(out) >= n or time.monotonic() >= deadline:
                    return bytes(out)
        except self._errors as error:
            self._fail("reading", error)


def identify_arch(hash_value, *, max_side=16):
    """Profile and mesh of the :data:`~neurotile.PROFILES` Arch with this ``arch_hash``, if any.

    Returns
    -------
    Arch or None
    """
    for name in sorted(PROFILES):
        base = Arch.profile(name)
        for w in range(1, max_side + 1):
            for h in range(1, max_side + 1):
                arch = base.with_mesh(w, h)
                if P.arch_hash(arch) == hash_value:
                    return arch
    return None


class Host:
    """A chip on a board, through its USB-serial port (module docstring).

    Parameters
    ----------
    port : str or Transport
        Serial device (``/dev/ttyUSB1``, ``COM3``), pyserial URL, or an already open
        :class:`~neurotile.hdl.protocol.Transport` (tests, other links).
    arch : Arch, optional
        The chip's architecture; by default taken from the first image :meth:`load` loads. The
        board's PING must report the same ``arch_hash``.
    baudrate : int
        The board's UART rate (:data:`DEFAULT_BAUD` unless built with ``--baud``).
    timeout : float
        Seconds to wait for any response (RUN adds ``run_timeout_per_step`` per step).
    run_timeout_per_step : float
    check : bool
        PING the board when opening (default): a missing or silent board fails here, not at the
        first real command.

    Members
    -------
    transport : Transport
    client : HostClient or None
        The protocol client (``None`` until the Arch is known).
    board_arch_hash : int or None
        What the board's PING reported.
    image : ChipImage or None
        The image loaded last.

    Raises
    ------
    BoardLinkError
        The port cannot be opened, or (``check``) the board does not answer PING within
        ``timeout``, or answers like something that is not a neurotile chip.
    NeurotileTypeError
        ``arch`` is not an Arch.
    """

    def __init__(self, port, arch=None, *, baudrate=DEFAULT_BAUD, timeout=2.0,
                 run_timeout_per_step=0.05, check=True):
        if arch is not None and not isinstance(arch, Arch):
            raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise NeurotileValueError(f"timeout must be a positive number of seconds, "
                                      f"not {timeout!r}")
        if isinstance(port, str):
            self.port = port
        elif isinstance(port, SerialTransport):
            self.port = port.serial.port
        else:
            self.port = type(port).__name__
        self.baudrate = baudrate
        self.timeout = float(timeout)
        self.run_timeout_per_step = float(run_timeout_per_step)
        self._serial = None
        if isinstance(port, str):
            self._serial = open_serial(port, baudrate)
            self.transport = SerialTransport(self._serial)
        elif hasattr(port, "write") and hasattr(port, "read"):
            self.transport = port
        else:
            raise NeurotileTypeError(f"port must be a serial port name or URL, or a Transport, "
                                     f"not {port!r}")
        self.arch = arch
        self.client = None
        self.image = None
        self.board_arch_hash = None
        if arch is not None:
            self._make_client(arch)
        if check:
            try:
                self.ping()
            except BaseException:
                self.close()
                raise

    # -- connection ----------------------------------------------------------------------------

    def _make_client(self, arch):
        self.arch = arch
        self.client = P.HostClient(self.transport, arch, timeout=self.timeout,
                                   run_timeout_per_step=self.run_timeout_per_step)

    def _where(self):
        return f"on {self.port!r} at {self.baudrate} baud"

    def ping(self):
        """PING the board; return its fields (``magic``, ``version``, ``arch_hash``, ...).

        Raises
        ------
        BoardLinkError
            No answer within ``timeout``, a corrupted answer, or not a neurotile chip (or one
            built for another Arch than this Host's).
        """
        client = self.client or P.HostClient(self.transport, Arch(), timeout=self.timeout)
        try:
            body = client.command("PING")
            fields = P.parse_response(client.arch, "PING", body)
        except ToolchainError as error:
            raise BoardLinkError(f"no valid answer from the board {self._where()} within "
                                 f"{self.timeout:g} s: {error}. Check the port, the baud rate "
                                 f"and that the FPGA holds a neurotile bitstream (press its "
                                 f"reset button if it was mid-frame).") from None
        if fields["magic"] != P.MAGIC or fields["version"] != P.PROTOCOL_VERSION:
            raise BoardLinkError(f"the device {self._where()} answers PING with magic "
                                 f"{fields['magic']!r} version {fields['version']}, not a "
                                 f"neurotile chip of protocol version {P.PROTOCOL_VERSION}")
        self.board_arch_hash = fields["arch_hash"]
        if self.client is not None:
            self._check_hash(self.arch)
            self.client.max_payload = fields["max_payload"]
        return fields

    def _check_hash(self, arch):
        if self.board_arch_hash is None or self.board_arch_hash == P.arch_hash(arch):
            return
        known = identify_arch(self.board_arch_hash)
        which = (f"profile {known.name!r} on a {known.mesh_w}x{known.mesh_h} mesh" if known
                 else f"an Arch of hash 0x{self.board_arch_hash:08x}")
        raise BoardLinkError(f"the board {self._where()} holds a chip of {which}, but this host "
                             f"expects {arch.name!r} on {arch.mesh_w}x{arch.mesh_h} (hash "
                             f"0x{P.arch_hash(arch):08x}): compile for the board's Arch or "
                             f"rebuild the bitstream")

    def close(self):
        """Close the serial port (if this Host opened it)."""
        if self._serial is not None:
            try:
                self._serial.close()
            finally:
                self._serial = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        arch = "unknown Arch" if self.arch is None else \
            f"{self.arch.name} {self.arch.mesh_w}x{self.arch.mesh_h}"
        return f"<neurotile.boards.Host {self.port!r} {self.baudrate} baud, {arch}>"

    # -- session -------------------------------------------------------------------------------

    def load(self, image, *, full=False):
        """Load a :class:`~neurotile.ChipImage` into the chip (CLEAR_STATE, then its memories).

        Parameters
        ----------
        image : ChipImage or path
        full : bool
            Write every word of every memory (as the co-simulation does); by default only the
            words the image uses, which is all the chip reads (CLEAR_STATE zeroes u, v and the
            accumulators) and much less to send over a UART.

        Raises
        ------
        BoardLinkError
            The board holds a chip of another Arch, or stops answering.
        ImageError
            The image fails validation.
        """
        if not isinstance(image, ChipImage):
            image = ChipImage.load(image)
        image.validate()
        if self.client is None:
            self._check_hash(image.arch)
            self._make_client(image.arch)
        elif P.arch_hash(image.arch) != P.arch_hash(self.arch):
            raise NeurotileValueError(f"the image was compiled for {image.arch.name!r} on "
                                      f"{image.arch.mesh_w}x{image.arch.mesh_h}, this host's "
                                      f"board is {self.arch.name!r} on "
                                      f"{self.arch.mesh_w}x{self.arch.mesh_h}")
        self.client.load_image(image, full=full)
        self.image = image
        from ..sim.cosim import HostTables
        self._host = HostTables(image)

    def run(self, inputs=None, steps=None, *, counters=True):
        """Run ``steps`` steps of the loaded image; one INJECT + RUN per step, like the emulator.

        Parameters
        ----------
        inputs, steps
            As :meth:`nt.Emulator.run <neurotile.emulator.Emulator.run>` (same forms, checks and
            messages).
        counters : bool
            Read every counter after every step (READ_COUNTERS: ``12 + 12 * cores`` words); off,
            the result has only spikes and flags, which saves most of the UART time per step.

        Returns
        -------
        RunResult
            ``mode="board"``: spikes of the output populations, the per-step counters (cycle
            counts included), the sticky flags and the step each was first raised in;
            ``result.out_dropped`` [steps].

        Raises
        ------
        EmulatorError
            Bad inputs, or a step with more input packets than ``host_in_depth``.
        BoardLinkError, ToolchainError
            The board stopped answering, or answered with an error status.
        """
        if self.image is None:
            raise NeurotileValueError("load an image first: host.load(image)")
        host = self._host
        steps, per_step = host.packets(inputs, steps)
        n = self.arch.n_cores
        spikes = {name: np.zeros((steps, size), bool) for name, size in host.sizes.items()}
        result_counters = {}
        if counters:
            result_counters = {k: np.zeros((steps, n), np.int64)
                               for k in COUNTERS_PER_CORE + COUNTERS_CYCLE[3:]}
            result_counters.update({k: np.zeros(steps, np.int64)
                                    for k in COUNTERS_CHIP + COUNTERS_CYCLE[:3]})
            result_counters["link"] = np.zeros((steps, n, len(P.LINK_PORTS)), np.int64)
        out_dropped = np.zeros(steps, np.int64)
        client = self.client
        start = client.read_reg(0, "step")
        status = None
        flag_step = {f: -1 for f in FLAGS}
        for k in range(steps):
            if per_step[k].size:
                client.inject(per_step[k])
            status = client.run(1)
            out_dropped[k] = status.out_dropped
            if status.n_output:
                for index in client.read_output()["index"]:
                    if index < len(host.outputs):          # else a corrupt fan-out entry
                        pop, neuron = host.outputs[index]
                        spikes[pop][k, neuron] = True
            if counters:
                c = client.read_counters()
                for name in result_counters:
                    result_counters[name][k] = c[name]
                flag_step = c["flag_step"]
        flags = dict(status.flags) if status is not None else {f: False for f in FLAGS}
        if not counters and any(flags.values()):
            flag_step = client.read_counters()["flag_step"]
        result = RunResult(mode="board", steps=steps, start_step=int(start), spikes=spikes,
                           counters=result_counters, flags=flags, flag_step=dict(flag_step))
        result.out_dropped = out_dropped
        return result

    def flags(self):
        """The chip's sticky flags and the step each was first raised in: ``(flags, flag_step)``."""
        c = self._need_client().read_counters()
        return c["flags"], c["flag_step"]

    def clear_flags(self):
        """Clear every sticky flag of the chip (and the steps they were first raised in)."""
        self._need_client().write_reg(0, "flags", 0)

    def _need_client(self):
        if self.client is None:
            raise NeurotileValueError("the board's Arch is not known yet: pass arch= to Host or "
                                      "load an image first")
        return self.client
