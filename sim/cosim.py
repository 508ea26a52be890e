"""Co-simulation: the generated chip in a simulator, driven through its host port like a board.

>>> import neurotile as nt
>>> from neurotile import sim
>>> result = sim.cosimulate(image, {"in": spikes}, steps=50)          # doctest: +SKIP
>>> print(sim.compare_with_emulator(image, {"in": spikes}, steps=50))  # doctest: +SKIP
bit-exact over 50 steps, 165 spikes, 6053 cycles

How it runs
-----------
:func:`~neurotile.sim.build.build_chip` generates the chip for the image's :class:`~neurotile.Arch`
(empty memories) and builds it inside the bench ``sim/cosim_top.v`` once per distinct design
(cached on disk). :class:`CosimChip` starts **one simulator process per session** (cocotb's runner,
test module :mod:`neurotile.sim.cosim_tb`) and keeps the host side here, in the calling process:
a :class:`~neurotile.hdl.protocol.HostClient` whose :class:`BridgeTransport` sends each command
frame over a Unix socket to the cocotb bridge, which writes the frame into the bench in one go,
waits for the one edge that marks the end of the response and sends the response back. The clock
is generated in the HDL; Python runs once per frame and never per clock. A session serves any
number of image loads and runs, so a test can load a second network into a running chip.

Each step of :meth:`CosimChip.run` is what a host does with a board: INJECT the step's input
packets (expanded from the input spikes through ``image.inputs`` exactly as the emulator's host
driver does: input group order, then channel, then list order), RUN 1, READ_OUTPUT when the RUN
reports outputs, READ_COUNTERS. The result is a :class:`~neurotile.emulator.result.RunResult`
(``mode="rtl"``) with the spikes of the output populations, every per-step counter (cycles
included), the sticky flags and the step each was first raised in, so
:func:`~neurotile.emulator.compare.first_divergence` compares it with the emulator's cycle mode.
"""

import dataclasses
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..compiler.errors import (EmulatorError, NeurotileTypeError, NeurotileValueError,
                               ToolchainError)
from ..compiler.image import ChipImage
from ..compiler.layouts import pack, unpack
from ..emulator.result import COUNTERS_CHIP, COUNTERS_CYCLE, COUNTERS_PER_CORE, RunResult
from ..emulator.state import FLAGS
from ..emulator.inputs import input_channels
from ..emulator.tables import concat_ranges
from ..hdl import protocol as P
from . import bridge
from .build import TOPLEVEL, build_chip, trace_format

__all__ = ["CosimChip", "BridgeTransport", "HostTables", "cosimulate", "compare_with_emulator",
           "Comparison", "input_channels"]

#: Cycles the bench waits for the response to a frame other than RUN before declaring the chip
#: hung (a RUN adds :attr:`CosimChip.step_cycle_limit` per step).
FRAME_CYCLE_LIMIT = 1 << 22
#: Seconds to wait for the simulator to start and connect.
START_TIMEOUT = 300.0


class HostTables:
    """The host driver's tables of an image: input packets per channel, outputs per index.

    Parameters
    ----------
    image : ChipImage

    Members
    -------
    image : ChipImage
    outputs : list of (str, int)
        ``(population, neuron)`` of every output index.
    sizes : dict of str to int
        Neurons of every output population.
    """

    def __init__(self, image):
        from ..emulator.tables import ChipTables

        self.image = image
        arch = image.arch
        tb = ChipTables(image)
        fields = {f: getattr(tb, f"in_pk_{f}") for f in ("host", "x", "y", "index")}
        self._words = pack(arch.layouts.packet, fields) if tb.in_pk_index.size else \
            np.zeros(0, np.uint64)
        self._base, self._count = tb.in_base, tb.in_count
        self.outputs = [(tb.out_names[p], int(n)) for p, n in zip(tb.out_pop, tb.out_neuron)]
        self.sizes = {name: int(np.asarray(image.populations[name]["core"]).size)
                      for name in tb.out_names}

    def packets(self, inputs, steps):
        """``(steps, packets)``: the packed input packets the host injects in every step.

        Channels in ``image.inputs`` order, then list order (docs/architecture.md section 7).

        Raises
        ------
        EmulatorError
            Bad inputs (the emulator's own checks and messages), or a step with more packets
            than ``host_in_depth`` (checked for every step before anything runs).
        """
        steps, channels = input_channels(self.image, inputs, steps)
        per_step = [self._words[concat_ranges(self._base[ch], self._count[ch])]
                    for ch in (np.flatnonzero(row) for row in channels)]
        depth = self.image.arch.host_in_depth
        for k, words in enumerate(per_step):
            if words.size > depth:
                raise EmulatorError(f"step {k} injects {words.size} input packets, more than "
                                    f"the host port's host_in_depth ({depth}); spread the input "
                                    f"spikes over more steps or use an Arch with a larger "
                                    f"host_in_depth")
        return steps, per_step


# -- the transport -----------------------------------------------------------------------------------

class BridgeTransport(P.Transport):
    """A :class:`~neurotile.hdl.protocol.Transport` to the cocotb bridge of a running simulation.

    Bytes written are cut into frames (SYNC, CMD, LEN, payload, CRC); each complete frame makes
    one round trip to the simulator, so by the time :meth:`write` returns the response is
    waiting for :meth:`read`. Bytes outside frames are sent as they are (the chip skips them).

    Parameters
    ----------
    sock : socket.socket
        Connected to :func:`neurotile.sim.cosim_tb.run_bridge` (messages: :mod:`neurotile.sim.bridge`).
    frame_limit : int
        Cycles to wait for the response to one frame; RUN adds ``step_limit`` per step.
    step_limit : int
    describe : callable, optional
        Returns text (the simulator log's tail) appended to errors.
    """

    def __init__(self, sock, *, frame_limit=FRAME_CYCLE_LIMIT, step_limit=0, describe=None):
        self.sock = sock
        self.frame_limit = int(frame_limit)
        self.step_limit = int(step_limit)
        self.describe = describe or (lambda: "")
        self._pending = bytearray()
        self._rx = bytearray()
        self.frames = 0
        self.broken = None

    def _limit(self, frame):
        if frame[1] == P.command("RUN").code and len(frame) >= 7:
            steps = int.from_bytes(frame[4:6], "little")
            return self.frame_limit + steps * self.step_limit
        return self.frame_limit

    def _exchange(self, op, payload=b""):
        if self.broken is not None:
            raise ToolchainError(f"this co-simulation session is unusable since {self.broken}: "
                                 f"close it and start another")
        try:
            bridge.send_message(self.sock, op, payload)
            return bridge.recv_message(self.sock)
        except (OSError, EOFError) as error:
            raise ToolchainError(f"the simulator went away ({error}){self.describe()}") from None

    def write(self, data):
        self._pending += bytes(data)
        while self._pending:
            if self._pending[0] != P.SYNC_COMMAND:
                cut = self._pending.find(bytes([P.SYNC_COMMAND]))
                cut = len(self._pending) if cut < 0 else cut
                self.send_raw(bytes(self._pending[:cut]))
                del self._pending[:cut]
                continue
            if len(self._pending) < 4:
                return
            n = 5 + (self._pending[2] | self._pending[3] << 8)
            if len(self._pending) < n:
                return
            frame = bytes(self._pending[:n])
            del self._pending[:n]
            self._rx += self.frame(frame)

    def frame(self, frame):
        """One request frame to the chip, its response frame back."""
        op, payload = self._exchange("FRAME", bridge.U64.pack(self._limit(frame)) + frame)
        self.frames += 1
        if op == bridge.OPS["TIMEOUT"]:
            try:
                name = P.command(frame[1]).name
            except NeurotileValueError:
                name = f"command 0x{frame[1]:02x}"
            # A late response would be taken for the answer to the next frame.
            self.broken = f"{name} timed out"
            raise ToolchainError(f"the simulated chip did not answer {name} within "
                                 f"{self._limit(frame)} cycles: the RTL hangs{self.describe()}")
        self._check(op, "FRAME", payload)
        return payload

    def send_raw(self, data):
        """Send bytes without waiting for a response."""
        if data:
            op, payload = self._exchange("RAW", bytes(data))
            self._check(op, "RAW", payload)

    def flush(self):
        """Send any bytes of an incomplete frame as they are."""
        data, self._pending = bytes(self._pending), bytearray()
        self.send_raw(data)

    def _check(self, op, want, payload=b""):
        if op == bridge.OPS["ERROR"]:
            raise ToolchainError(f"the co-simulation bridge failed: "
                                 f"{payload.decode(errors='replace')}{self.describe()}")
        if op != bridge.OPS[want]:
            raise ToolchainError(f"the co-simulation bridge answered op {op} to {want}"
                                 f"{self.describe()}")

    def read(self, n, timeout):
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out

    def start_trace(self):
        """Start recording the bench's waveform."""
        op, payload = self._exchange("TRACE")
        self._check(op, "TRACE", payload)

    def cycle(self):
        op, payload = self._exchange("CYCLE")
        self._check(op, "CYCLE", payload)
        return bridge.U64.unpack(payload)[0]

    def quit(self):
        """End the simulation."""
        bridge.send_message(self.sock, "QUIT")


# -- a session -----------------------------------------------------------------------------------

class CosimChip:
    """A generated chip running in a simulator, driven only through its host port.

    One simulator process serves the whole session; use it as a context manager (or call
    :meth:`close`).

    >>> with CosimChip(image.arch) as chip:                        # doctest: +SKIP
    ...     chip.load(image)
    ...     first = chip.run({"in": spikes}, steps=20)
    ...     chip.load(other_image)                                 # same Arch, same build
    ...     second = chip.run(steps=10)

    Parameters
    ----------
    arch : Arch
    simulator : {"verilator", "icarus"}
    build_dir : str or path, optional
        Cache of builds (default :func:`~neurotile.sim.build.default_cache_dir`).
    waveform : str or path, optional
        Build with waveform support and write the waveform here: FST, or VCD if the name ends in
        ``.vcd`` (FST needs the lz4 headers: ``apt-get install liblz4-dev``). Recording starts
        with :meth:`start_trace` (or ``run(..., trace_from=...)``) and lasts until the session
        ends (Verilator has no ``$dumpoff``): end the session to end a window.
    max_payload : int, optional
        The host port's payload buffer (default as ``neurotile rtl`` builds the chip).
    step_cycle_limit : int, optional
        Cycles a step may take before the session declares the RTL hung (default
        ``2 * (arch.step_timeout + arch.update_cycles) + 2**16``).
    build : Build, optional
        A build from :func:`~neurotile.sim.build.build_chip` to run (then ``simulator``,
        ``build_dir`` and ``max_payload`` are not used).

    Members
    -------
    arch : Arch
    build : Build
    client : HostClient
    image : ChipImage or None
        The image loaded last.
    log : Path
        The simulator's log (kept after :meth:`close` only when the simulation failed).

    Raises
    ------
    ToolchainError
        The simulator or cocotb is missing, the build failed, or the simulator did not start.
    """

    def __init__(self, arch, *, simulator="verilator", build_dir=None, waveform=None,
                 max_payload=None, step_cycle_limit=None, build=None):
        from ..compiler.arch import Arch
        if not isinstance(arch, Arch):
            raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
        self.arch = arch
        self.waveform = None if waveform is None else Path(waveform).resolve()
        fmt = None if waveform is None else trace_format(waveform)
        if build is None:
            build = build_chip(arch, simulator=simulator, trace=fmt, cache_dir=build_dir,
                               max_payload=max_payload)
        elif P.arch_hash(build.arch) != P.arch_hash(arch) or build.trace != fmt:
            raise NeurotileValueError(f"build is for {build.arch!r} with trace={build.trace!r}, "
                                      f"not for {arch!r} with trace={fmt!r}")
        self.simulator = build.simulator
        self.build = build
        if step_cycle_limit is None:
            step_cycle_limit = 2 * (arch.step_timeout + arch.update_cycles) + (1 << 16)
        self.step_cycle_limit = int(step_cycle_limit)
        self.image = None
        self.tracing = False
        self._closed = False
        self._failed = False
        self._thread = None
        self._error = None
        self._dir = Path(tempfile.mkdtemp(prefix="ntcosim-"))   # short: AF_UNIX paths <= 107
        self.log = self._dir / "sim.log"
        self._results = self._dir / "results.xml"
        try:
            self._start()
        except BaseException:
            self._failed = True
            self.close()
            raise

    # -- process ------------------------------------------------------------------------------

    def _log_tail(self, lines=25):
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        tail = "\n".join(text[-lines:])
        return f"\n--- simulator log {self.log} (last {lines} lines) ---\n{tail}" if tail else ""

    def _simulate(self, path):
        from cocotb_tools.runner import get_runner
        try:
            runner = get_runner(self.simulator)
            plusargs = [f"+trace_file={self.waveform}"] if self.waveform is not None else []
            if self.simulator == "icarus" and self.build.trace == "fst":
                plusargs.append("-fst")          # a vvp extended argument, after the .vvp file
            runner.test(test_module=f"{__package__}.cosim_tb", hdl_toplevel=TOPLEVEL,
                        hdl_toplevel_lang="verilog", build_dir=str(self.build.path),
                        test_dir=str(self._dir), results_xml=str(self._results),
                        extra_env={"NEUROTILE_COSIM_SOCKET": path}, plusargs=plusargs,
                        log_file=str(self.log))
        except BaseException as error:       # SystemExit from the runner under pytest, too
            self._error = error

    def _start(self):
        path = str(self._dir / "s")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(1)
            listener.settimeout(0.2)
            self._thread = threading.Thread(target=self._simulate, args=(path,), daemon=True,
                                            name="neurotile-cosim")
            self._thread.start()
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                try:
                    sock, _ = listener.accept()
                    break
                except socket.timeout:
                    if not self._thread.is_alive():
                        raise ToolchainError(f"the simulator stopped before connecting "
                                             f"({self._error!r}){self._log_tail()}") from None
                    if time.monotonic() > deadline:
                        raise ToolchainError(f"the simulator did not connect within "
                                             f"{START_TIMEOUT:.0f} s{self._log_tail()}") from None
        finally:
            listener.close()
        sock.settimeout(None)
        self.transport = BridgeTransport(sock, step_limit=self.step_cycle_limit,
                                         describe=self._log_tail)
        # The transport answers at once (write() waits for the chip), so the client's wall-clock
        # timeouts never matter; the bench's cycle limits catch a hung chip instead.
        self.client = P.HostClient(self.transport, self.arch, timeout=60.0)
        self.client.ping()

    def close(self):
        """End the simulation (flushing the waveform) and remove the session's files."""
        if self._closed:
            return
        self._closed = True
        transport = getattr(self, "transport", None)
        if transport is not None:
            try:
                transport.quit()
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=60)
        if transport is not None:
            transport.sock.close()
        ok = self._error is None and self._results_ok()
        if ok:            # the log is kept only when the simulation itself failed
            shutil.rmtree(self._dir, ignore_errors=True)
        elif not self._failed:
            self._failed = True
            raise ToolchainError(f"the simulation ended with an error ({self._error!r})"
                                 f"{self._log_tail()}")

    def _results_ok(self):
        try:
            from cocotb_tools.check_results import get_results
            _, failed = get_results(self._results)
        except Exception:
            return False
        return failed == 0

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is not None:
            self._failed = True
        self.close()

    # -- host operations ------------------------------------------------------------------------

    def load(self, image, *, validate=True):
        """Load ``image`` through the host port (CLEAR_STATE, every word of every memory).

        ``validate=False`` skips :meth:`ChipImage.validate`, to load a deliberately corrupt image
        (bad axons, packets that leave the mesh) and watch the chip raise its flags.
        """
        if not isinstance(image, ChipImage):
            raise NeurotileTypeError(f"image must be an nt.ChipImage, not {type(image).__name__}")
        if validate:
            image.validate()
        self.client.load_image(image)
        self.image = image
        self._prepare(image)

    def _prepare(self, image):
        self._host = HostTables(image)

    def _read_output_index(self, n):
        # HostClient.read_output, without its READ_REG of n_output (RUN has just reported it).
        info = self.client.info["output"]
        per = self.client._payload_limit() // info.nbytes
        shift = 8 * self.client.info["inject"].nbytes
        entries = []
        for k in range(0, n, per):
            body = self.client.command("READ_OUTPUT", P.command_payload(
                self.arch, "READ_OUTPUT", start=k, count=min(per, n - k)))
            entries += P.parse_response(self.arch, "READ_OUTPUT", body)["items"]
        words = np.array([e & ((1 << shift) - 1) for e in entries], np.uint64)
        return unpack(self.arch.layouts.packet, words)["index"]

    def start_trace(self):
        """Start recording the waveform, until the session ends (needs ``waveform=``)."""
        if self.waveform is None:
            raise NeurotileValueError("this session records no waveform: pass waveform='out.fst' "
                                      "to CosimChip")
        if not self.tracing:
            self.transport.start_trace()
            self.tracing = True

    def cycles(self):
        """Clock cycles simulated since the session started (host-port traffic included)."""
        return self.transport.cycle()

    def run(self, inputs=None, steps=None, *, trace_from=None):
        """Run ``steps`` steps of the loaded image, one RUN per step, and read everything back.

        Parameters
        ----------
        inputs, steps
            As :meth:`nt.Emulator.run <neurotile.emulator.Emulator.run>`.
        trace_from : int, optional
            Step of this run (0-based) from which the waveform is recorded (``waveform=``
            needed); default 0 when the session records a waveform.

        Returns
        -------
        RunResult
            ``mode="rtl"``: spikes of the output populations, the counters of
            :data:`~neurotile.emulator.result.COUNTERS_PER_CORE`, ``COUNTERS_CHIP``,
            ``COUNTERS_CYCLE`` and ``link`` for every step, the sticky flags and their first
            steps. ``result.out_dropped`` [steps] counts host-bound packets the output buffer
            could not hold.

        Raises
        ------
        EmulatorError
            Bad inputs (the emulator's checks), or a step with more input packets than
            ``host_in_depth`` (nothing has run then).
        ToolchainError
            The chip answered with an error status, hung, or the simulator died.
        """
        if self.image is None:
            raise NeurotileValueError("load an image first: chip.load(image)")
        host = self._host
        steps, per_step = host.packets(inputs, steps)
        if trace_from is None:
            trace_from = 0 if self.waveform is not None else steps
        elif self.waveform is None:
            raise NeurotileValueError("trace_from needs a session with waveform='out.fst'")

        n = self.arch.n_cores
        spikes = {name: np.zeros((steps, size), bool) for name, size in host.sizes.items()}
        counters = {k: np.zeros((steps, n), np.int64) for k in COUNTERS_PER_CORE}
        counters.update({k: np.zeros(steps, np.int64) for k in COUNTERS_CHIP})
        counters.update({k: np.zeros(steps, np.int64) for k in COUNTERS_CYCLE[:3]})
        counters.update({k: np.zeros((steps, n), np.int64) for k in COUNTERS_CYCLE[3:]})
        counters["link"] = np.zeros((steps, n, len(P.LINK_PORTS)), np.int64)
        out_dropped = np.zeros(steps, np.int64)
        start = self.client.read_reg(0, "step")
        flags = {f: False for f in FLAGS}
        flag_step = {f: -1 for f in FLAGS}
        client = self.client
        for k in range(steps):
            if k == trace_from:
                self.start_trace()
            if per_step[k].size:
                client.inject(per_step[k])
            status = client.run(1)
            out_dropped[k] = status.out_dropped
            if status.n_output:
                for index in self._read_output_index(status.n_output):
                    if index < len(host.outputs):     # else a corrupt fan-out entry
                        pop, neuron = host.outputs[index]
                        spikes[pop][k, neuron] = True
            c = client.read_counters()
            for name in COUNTERS_PER_CORE + COUNTERS_CYCLE[3:] + ("link",):
                counters[name][k] = c[name]
            for name in COUNTERS_CHIP + COUNTERS_CYCLE[:3]:
                counters[name][k] = c[name]
            flags, flag_step = c["flags"], c["flag_step"]
        result = RunResult(mode="rtl", steps=steps, start_step=int(start), spikes=spikes,
                           counters=counters, flags=dict(flags), flag_step=dict(flag_step))
        result.out_dropped = out_dropped
        return result


# -- one-call helpers ------------------------------------------------------------------------------

def _check_image(image):
    if isinstance(image, (str, os.PathLike)):
        image = ChipImage.load(image)
    if not isinstance(image, ChipImage):
        raise NeurotileTypeError(f"image must be an nt.ChipImage or the path of a saved one, "
                                 f"not {type(image).__name__}")
    return image


def cosimulate(image, inputs=None, steps=None, *, waveform=None, trace_from=0,
               simulator="verilator", build_dir=None):
    """Run ``image`` on the generated chip in a simulator, through the host port only.

    Parameters
    ----------
    image : ChipImage or path
    inputs, steps
        As :meth:`nt.Emulator.run <neurotile.emulator.Emulator.run>`.
    waveform : str or path, optional
        Write a waveform (FST; VCD for ``*.vcd``) of the steps from ``trace_from`` on here. Off by
        default: it needs a separate build with tracing compiled in and slows the simulation.
    trace_from : int
    simulator : {"verilator", "icarus"}
    build_dir : str or path, optional
        Cache of simulator builds (default ``~/.cache/neurotile/verilator``).

    Returns
    -------
    RunResult
        ``mode="rtl"``, see :meth:`CosimChip.run`.
    """
    image = _check_image(image)
    image.validate()
    HostTables(image).packets(inputs, steps)      # bad inputs fail before a simulator starts
    with CosimChip(image.arch, simulator=simulator, build_dir=build_dir,
                   waveform=waveform) as chip:
        chip.load(image)
        return chip.run(inputs, steps, trace_from=trace_from if waveform is not None else None)


@dataclasses.dataclass
class Comparison:
    """The outcome of :func:`compare_with_emulator`.

    Members
    -------
    divergence : Divergence or None
        The first difference (``a`` = emulator, ``b`` = RTL), ``None`` when bit-exact.
    rtl, emulator : RunResult
    waveform : Path or None
        The FST file written around the divergence, if one was requested and needed.
    waveform_steps : range or None
    """

    divergence: object
    rtl: RunResult
    emulator: RunResult
    waveform: object = None
    waveform_steps: object = None

    @property
    def exact(self):
        return self.divergence is None

    def __bool__(self):
        return self.exact

    def __str__(self):
        r = self.rtl
        if self.exact:
            return (f"bit-exact over {r.steps} steps, {r.spike_count()} spikes, "
                    f"{r.total('cycles')} cycles")
        text = f"RTL diverges from the emulator (a = emulator, b = RTL) at {self.divergence}"
        if self.waveform is not None:
            w = self.waveform_steps
            text += f"\nwaveform of steps {w.start}..{w.stop - 1}: {self.waveform}"
        return text


def compare_with_emulator(image, inputs=None, steps=None, *, waveform=None, window=2,
                          simulator="verilator", build_dir=None):
    """Run ``image`` on the emulator (cycle mode) and on the simulated chip; find the first difference.

    Compares the spikes of the output populations, every counter of every step (cycles included)
    and the sticky flags with their first steps (:func:`~neurotile.emulator.first_divergence`).

    Parameters
    ----------
    image, inputs, steps, simulator, build_dir
        As :func:`cosimulate`.
    waveform : str or path, optional
        If the runs diverge, simulate again with tracing and write the steps
        ``divergence - window .. divergence + window`` to this file (FST; VCD for ``*.vcd``).
        The second run stops after the window.
    window : int
        Steps recorded on each side of the divergent one.

    Returns
    -------
    Comparison
        ``str(comparison)`` is ``"bit-exact over N steps, M spikes, C cycles"`` or names the
        first divergence (step, core, neuron or counter, both values).
    """
    from ..emulator import Emulator, first_divergence

    image = _check_image(image)
    emu = Emulator(image, mode="cycle", progress=False)
    expected = emu.run(inputs, steps)
    rtl = cosimulate(image, inputs, steps, simulator=simulator, build_dir=build_dir)
    divergence = first_divergence(expected, rtl, image)
    comparison = Comparison(divergence, rtl, expected)
    if divergence is not None and waveform is not None:
        total = expected.steps
        first = max(0, divergence.step - int(window))
        last = min(total, divergence.step + int(window) + 1)
        _, channels = input_channels(image, inputs, expected.steps)
        with CosimChip(image.arch, simulator=simulator, build_dir=build_dir,
                       waveform=waveform) as chip:
            chip.load(image)
            chip.run(_channel_inputs(image, channels[:last]), last, trace_from=first)
        comparison.waveform = Path(waveform).resolve()
        comparison.waveform_steps = range(first, last)
    return comparison


def _channel_inputs(image, channels):
    """The channel array back as per-group input arrays."""
    out, off = {}, 0
    for name, inp in image.inputs.items():
        n = int(inp["n"])
        out[name] = channels[:, off:off + n]
        off += n
    return out
