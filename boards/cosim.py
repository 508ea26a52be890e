"""A simulated board: the board design in Verilator behind a bit-level UART, as a serial port.

>>> from neurotile.boards.cosim import SimulatedBoard
>>> with SimulatedBoard(arch, divisor=8) as board:             # doctest: +SKIP
...     with Host(board.port, timeout=60) as host:             # pyserial on a pseudo-terminal
...         host.load(image)
...         result = host.run({"in": spikes}, steps=20)

:class:`SimulatedBoard` builds :class:`~neurotile.boards.top.BoardCore` (the chip, its UART and
LEDs: the board design without its pads) into the bench ``boards/board_bench.v``, whose UART model
serialises the host's bytes bit by bit onto the board's RX pin and deserialises its TX pin. The
build and the simulation are those of :mod:`neurotile.sim`: the same Verilator recipe and cache
(:mod:`neurotile.sim.build`), the same cocotb bridge and frame transport
(:class:`neurotile.sim.cosim.CosimChip`, :class:`~neurotile.sim.cosim.BridgeTransport`); the bench
speaks the bridge's frame handshake, so only the Verilog differs. A relay thread serves the
bridge on the master side of a pseudo-terminal, so a :class:`~neurotile.boards.host.Host` opens
``board.port`` with pyserial exactly as it opens ``/dev/ttyUSB1``.

The simulated UART runs at ``divisor`` clock cycles per bit (4..16 keeps a session quick); the
baud rate set on the pseudo-terminal does not matter.
"""

import contextlib
import hashlib
import importlib.metadata
import json
import os
import select
import shutil
import tempfile
import threading
import time
from pathlib import Path

from ..compiler.arch import Arch
from ..compiler.errors import NeurotileTypeError, ToolchainError
from ..hdl import protocol as P

__all__ = ["SimulatedBoard", "build_board", "board_verilog", "BENCH", "DEFAULT_DIVISOR"]

#: The bench around ``board_core``.
BENCH = Path(__file__).with_name("board_bench.v")
#: Clock cycles per UART bit in simulation.
DEFAULT_DIVISOR = 8
_RECIPE = 1
_MARKER = "build.json"
_GENERATED = {}
_LOCK = threading.Lock()


def board_verilog(arch, *, divisor=DEFAULT_DIVISOR, max_payload=None):
    """Verilog of :class:`~neurotile.boards.top.BoardCore` as module ``board_core`` (memoised)."""
    from amaranth.back import verilog

    from ..sim.toolchain import prepare_environment
    from .top import BoardCore

    if not isinstance(arch, Arch):
        raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
    max_payload = P.DEFAULT_MAX_PAYLOAD if max_payload is None else max_payload
    key = (arch.replace(name="board"), divisor, max_payload)
    with _LOCK:
        if key not in _GENERATED:
            prepare_environment()
            core = BoardCore(arch, divisor=divisor, max_payload=max_payload)
            _GENERATED[key] = verilog.convert(core, name="board_core", emit_src=False)
        return _GENERATED[key]


def build_board(arch, *, divisor=DEFAULT_DIVISOR, max_payload=None, cache_dir=None, jobs=None):
    """Build (or find in the cache) the board bench for Verilator.

    Uses :mod:`neurotile.sim.build`'s Verilator recipe and cache folder with this module's bench
    in place of ``sim/cosim_top.v``.

    Returns
    -------
    neurotile.sim.build.Build

    Raises
    ------
    ToolchainError
        Verilator or cocotb is missing, or the build failed.
    """
    from ..sim import build as sb
    from ..sim import toolchain

    start = time.perf_counter()
    reason = sb.simulator_available("verilator")
    if reason is not None:
        raise ToolchainError(f"cannot simulate the board: {reason}")
    max_payload = P.DEFAULT_MAX_PAYLOAD if max_payload is None else max_payload
    jobs = sb.DEFAULT_JOBS if jobs is None else jobs
    text = board_verilog(arch, divisor=divisor, max_payload=max_payload)
    frame_bytes = max_payload + 5
    h = hashlib.sha256()
    for part in (f"board recipe {_RECIPE}", sb._tool_version("verilator"),
                 importlib.metadata.version("cocotb"), f"frame_bytes {frame_bytes}",
                 f"divisor {divisor}", json.dumps(sb.VERILATOR_OPT, sort_keys=True),
                 BENCH.read_text(), sb.BENCH_VLT.read_text(),
                 sb.FRAME_COLLECTOR.read_text(), text):
        h.update(part.encode())
        h.update(b"\0")
    key = h.hexdigest()
    root = Path(cache_dir) if cache_dir is not None else sb.default_cache_dir()
    final = root / f"board-verilator-{key[:20]}"
    info = dict(arch=arch, simulator="verilator", path=final, key=key, trace=None,
                max_payload=max_payload)
    if (final / _MARKER).is_file():
        return sb.Build(**info, cached=True, seconds=time.perf_counter() - start)
    root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        verilog = stage / "board_core.v"
        verilog.write_text(text)
        log = stage / "build.log"
        commands = sb._verilator_commands(stage, verilog, frame_bytes, None, jobs,
                                          dict(sb.VERILATOR_OPT))
        verilate = [str(BENCH) if arg == str(sb.BENCH) else arg for arg in commands[0]]
        verilate.insert(verilate.index(f"-GFRAME_BYTES={frame_bytes}") + 1,
                        f"-GDIVISOR={divisor}")
        env = toolchain.prepare_environment(dict(os.environ))
        failed = sb._run([verilate, *commands[1:]], env, log)
        if failed is not None:
            raise ToolchainError(f"the Verilator build of the board failed ({failed[0]}); log "
                                 f"{log}:\n{sb._log_tail(log)}")
        (stage / _MARKER).write_text(json.dumps({"key": key, "arch": arch.to_dict(),
                                                 "divisor": divisor,
                                                 "max_payload": max_payload}, indent=2) + "\n")
        try:
            stage.rename(final)
        except OSError:
            if not (final / _MARKER).is_file():
                raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return sb.Build(**info, cached=False, seconds=time.perf_counter() - start)


class SimulatedBoard:
    """The board design in Verilator, reachable as a serial port (module docstring).

    Parameters
    ----------
    arch : Arch
    divisor : int
        Clock cycles per UART bit.
    max_payload : int, optional
    cache_dir : str or path, optional
        Verilator build cache (default :func:`neurotile.sim.build.default_cache_dir`).

    Members
    -------
    port : str
        The pseudo-terminal to open (``/dev/pts/N``).
    session : neurotile.sim.cosim.CosimChip
        The simulation (its ``transport`` carries the frames; ``session.cycles()``).
    build : neurotile.sim.build.Build
    relay_error : Exception or None
        What stopped the relay thread, if anything did.

    Raises
    ------
    ToolchainError
        No Verilator or cocotb, a failed build, or a simulation that does not start.
    """

    def __init__(self, arch, *, divisor=DEFAULT_DIVISOR, max_payload=None, cache_dir=None):
        from ..sim import cosim

        self.build = build_board(arch, divisor=divisor, max_payload=max_payload,
                                 cache_dir=cache_dir)
        self.arch = arch
        self.divisor = divisor
        self.session = cosim.CosimChip(arch, build=self.build)
        self.relay_error = None
        self._stop = threading.Event()
        self._master, slave = os.openpty()
        self.port = os.ttyname(slave)
        self._slave = slave                       # kept open so the pty survives reopening
        self._thread = threading.Thread(target=self._relay, daemon=True,
                                        name="neurotile-board-relay")
        self._thread.start()

    def _relay(self):
        transport = self.session.transport
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self._master, 4096)
                if not data:
                    continue
                transport.write(data)
                answer = transport.read(1 << 20, 0)
                if answer:
                    os.write(self._master, answer)
        except Exception as error:                # reported by close() and the Host's timeout
            self.relay_error = error

    def cycles(self):
        """Clock cycles simulated so far."""
        return self.session.cycles()

    def close(self):
        """Stop the relay and the simulation."""
        self._stop.set()
        self._thread.join(timeout=10)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.session.close()
        if self.relay_error is not None:
            raise ToolchainError(f"the simulated board's relay stopped: {self.relay_error}")

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        try:
            self.close()
        except ToolchainError:
            if kind is None:
                raise
