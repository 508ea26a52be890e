"""Tests for the board host (:mod:`neurotile.boards.host`) and the simulated board
(:mod:`neurotile.boards.cosim`).

Three kinds of far end:

- fake serial ports: an object with pyserial's calls in front of the host port's golden model
  (:class:`~neurotile.hdl.protocol.HostPortModel` over a
  :class:`~neurotile.hdl.protocol.DictBackend`, whose RUN is a documented stand-in), pyserial's
  own ``loop://`` (it echoes, so no response ever comes), and a real pseudo-terminal served by
  the golden model, which the host opens by name like ``/dev/ttyUSB1``;
- the board design in Verilator (:class:`~neurotile.boards.cosim.SimulatedBoard`): bytes go bit
  by bit through the bench's UART model into the board's RX pin and back from its TX pin, and the
  host's results are compared with the emulator's cycle mode on the same image and inputs.
"""

import os
import select
import threading
import time

import numpy as np
import pytest

import neurotile as nt
from neurotile.boards.host import BoardLinkError, Host, SerialTransport, identify_arch
from neurotile.emulator import Emulator, first_divergence
from neurotile.emulator.testing import random_inputs, random_network
from neurotile.hdl import protocol as P


def tiny_arch(**kw):
    """A chip small enough for a quick Verilator build; one core, so one image fits it."""
    fields = dict(mesh_w=1, mesh_h=1, neurons_per_core=16, axons_per_core=32,
                  synapses_per_core=256, fanout_per_core=32, max_delay=4, host_in_depth=32,
                  host_out_depth=32, profiles_per_core=4)
    fields.update(kw)
    return nt.Arch(**fields)


def tiny_net(seed=1):
    return random_network(seed, n_inputs=6, sizes=(8, 6), p=0.4, max_delay=3, profiles=2)


def tiny_image(arch, seed=1):
    return nt.compile(tiny_net(seed), arch)


class FakeSerial:
    """pyserial's calls in front of a HostPortModel: what a board does, minus the wires."""

    def __init__(self, model, *, corrupt=False):
        self.model = model
        self.port = "fake0"
        self.timeout = None
        self.rx = bytearray()
        self.corrupt = corrupt
        self.unplugged = False

    def write(self, data):
        if self.unplugged:
            import serial
            raise serial.SerialException("device reports readiness to read but returned no data")
        answer = bytearray(self.model.feed(bytes(data)))
        if self.corrupt and answer:
            answer[-1] ^= 0xFF                       # flip the CRC byte
        self.rx += answer
        return len(data)

    def flush(self):
        pass

    @property
    def in_waiting(self):
        return len(self.rx)

    def read(self, n):
        out = bytes(self.rx[:n])
        del self.rx[:n]
        if not out:
            time.sleep(self.timeout or 0)
        return out

    def close(self):
        pass


def fake_host(arch, **kw):
    backend = P.DictBackend(arch)
    serial = FakeSerial(P.HostPortModel(arch, backend), **kw)
    return SerialTransport(serial), backend, serial


# -- a missing or silent board never hangs ----------------------------------------------------

def test_a_port_that_does_not_exist_is_named_with_the_ports_there_are():
    with pytest.raises(BoardLinkError, match=r"cannot open serial port '/dev/ttyNEUROTILE9' "
                                             r"\(.*\); serial ports here: .*Is the board plugged "
                                             r"in"):
        Host("/dev/ttyNEUROTILE9")


def test_a_port_with_nothing_answering_times_out_with_a_clear_error():
    # loop:// echoes what the host writes: the PING frame comes back, never a response (0x5A).
    start = time.monotonic()
    with pytest.raises(BoardLinkError, match=r"no valid answer from the board on 'loop://' at "
                                             r"115200 baud within 0.3 s: no complete response to "
                                             r"PING within the timeout \(5 bytes received\)"):
        Host("loop://", timeout=0.3)
    assert time.monotonic() - start < 3


def test_a_corrupted_response_is_reported_as_a_link_error():
    transport, _, _ = fake_host(tiny_arch(), corrupt=True)
    with pytest.raises(BoardLinkError, match="the response to PING fails its CRC"):
        Host(transport)


def test_a_device_that_is_not_a_neurotile_chip_is_refused():
    class Impostor(P.Transport):
        """Answers every frame with a well-formed PING response of another magic."""

        def __init__(self):
            self.rx = bytearray()

        def write(self, data):
            fields = b"ACME" + bytes([1]) + bytes(4) + (256).to_bytes(2, "little") + bytes(4)
            self.rx += P.encode_response(P.Status.OK, fields)

        def read(self, n, timeout):
            out = bytes(self.rx[:n])
            del self.rx[:n]
            return out

    with pytest.raises(BoardLinkError, match=r"answers PING with magic b'ACME' version 1, not a "
                                             r"neurotile chip"):
        Host(Impostor(), timeout=0.5)


def test_a_board_of_another_arch_is_named_by_its_profile():
    transport, _, _ = fake_host(nt.Arch.profile("ice40up5k"))
    with pytest.raises(BoardLinkError, match=r"holds a chip of profile 'ice40up5k' on a 1x1 "
                                             r"mesh, but this host expects 'custom' on 1x1"):
        Host(transport, tiny_arch())
    assert identify_arch(P.arch_hash(nt.Arch.profile("ecp5-85f").with_mesh(3, 2))) == \
        nt.Arch.profile("ecp5-85f").with_mesh(3, 2)
    assert identify_arch(0x1234) is None


def test_an_unplugged_board_fails_the_next_call():
    arch = tiny_arch()
    transport, _, serial = fake_host(arch)
    host = Host(transport, arch)
    serial.unplugged = True
    with pytest.raises(BoardLinkError, match=r"the serial port 'fake0' failed while writing .*"
                                             r"was the board unplugged"):
        host.client.read_reg(0, "step")


def test_bad_arguments():
    with pytest.raises(nt.NeurotileTypeError, match="port must be a serial port name or URL, or "
                                                    "a Transport, not 3"):
        Host(3)
    with pytest.raises(nt.NeurotileValueError, match="timeout must be a positive number of "
                                                     "seconds, not 0"):
        Host("loop://", timeout=0)
    transport, _, _ = fake_host(tiny_arch())
    host = Host(transport)
    with pytest.raises(nt.NeurotileValueError, match=r"load an image first: host.load\(image\)"):
        host.run(steps=1)
    with pytest.raises(nt.NeurotileValueError, match="the board's Arch is not known yet"):
        host.flags()


# -- the session calls over the golden model ----------------------------------------------------

def test_load_writes_the_used_words_and_run_reads_every_step_back():
    arch = tiny_arch()
    image = tiny_image(arch)
    transport, backend, _ = fake_host(arch)
    host = Host(transport)                             # the Arch comes with the image
    assert host.client is None and host.board_arch_hash == P.arch_hash(arch)
    host.load(image)
    syn = image.cores[0].words(arch, "synapse")
    got = [backend.mem.get(("synapse", 0, a), 0) for a in range(syn.size)]
    assert got == [int(w) for w in syn]
    assert ("synapse", 0, syn.size) not in backend.mem      # only the used words (full=False)
    assert backend.regs[0, "n_neurons"] == image.cores[0].n_neurons

    spikes = np.zeros((3, 6), bool)
    spikes[0, :3] = True
    result = host.run({"in": spikes}, steps=3)
    assert result.mode == "board" and result.steps == 3 and result.start_step == 0
    # DictBackend's RUN: counter word k after a RUN that leaves the step counter at s is
    # s * 1000 + k; "cycles" is word 6, so step k (counter k + 1) reads (k + 1) * 1000 + 6.
    assert list(result.counters["cycles"]) == [1006, 2006, 3006]
    runs = [e for e in backend.log if e[0] == "run"]
    per_channel = np.asarray(image.inputs["in"]["count"])
    assert runs == [("run", 1, int(per_channel[:3].sum())), ("run", 1, 0), ("run", 1, 0)]
    assert set(result.spikes) == set(image.outputs["names"])
    host.clear_flags()                                  # WRITE_REG flags 0: chip register 1
    assert backend.log[-1] == ("write", "chip_reg", 0, P.register("flags").addr, 0)


def test_an_image_for_another_arch_is_refused_before_anything_is_sent():
    arch = tiny_arch()
    transport, backend, _ = fake_host(arch)
    host = Host(transport, arch)
    other = tiny_image(tiny_arch(max_delay=8))
    with pytest.raises(nt.NeurotileValueError, match="the image was compiled for 'custom' on 1x1, "
                                                     "this host's board is 'custom' on 1x1"):
        host.load(other)
    assert not [e for e in backend.log if e[0] == "write"]


class PtyBoard:
    """The golden model on the master side of a pseudo-terminal: a board the host opens by name."""

    def __init__(self, arch):
        self.model = P.HostPortModel(arch, P.DictBackend(arch))
        self.master, self.slave = os.openpty()
        self.port = os.ttyname(self.slave)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop.is_set():
            if select.select([self.master], [], [], 0.05)[0]:
                answer = self.model.feed(os.read(self.master, 4096))
                if answer:
                    os.write(self.master, answer)

    def close(self):
        self.stop.set()
        self.thread.join()
        os.close(self.master)
        os.close(self.slave)


def test_host_opens_a_real_tty_by_name_and_talks_through_pyserial():
    arch = tiny_arch()
    board = PtyBoard(arch)
    try:
        with Host(board.port, arch, baudrate=1_000_000, timeout=5) as host:
            assert repr(host) == f"<neurotile.boards.Host {board.port!r} 1000000 baud, custom 1x1>"
            host.client.write_reg(0, "step", 41)
            assert host.client.read_reg(0, "step") == 41
            # 200 words take several 256-byte frames each way.
            words = np.arange(200, dtype=np.uint64)
            host.client.write_mem(0, "synapse", 0, words)
            assert list(host.client.read_mem(0, "synapse", 0, 200)) == list(words)
    finally:
        board.close()


# -- the board design in Verilator, through a bit-level UART --------------------------------------

@pytest.fixture(scope="module")
def simulated_board():
    from neurotile.sim.build import simulator_available
    reason = simulator_available("verilator")
    if reason is not None:
        pytest.skip(f"no Verilator co-simulation: {reason}")
    from neurotile.boards.cosim import SimulatedBoard
    # 8 clock cycles per bit: a 261-byte frame is ~21k cycles.
    with SimulatedBoard(tiny_arch(), divisor=8) as board:
        yield board


def test_simulated_board_runs_an_image_like_the_cycle_emulator(simulated_board):
    arch = tiny_arch()
    net = tiny_net(seed=2)                     # 17 output spikes in 12 steps (emulator)
    image = nt.compile(net, arch)
    steps = 12
    inputs = random_inputs(net, steps, rate=0.4, seed=2)
    with Host(simulated_board.port, timeout=60) as host:
        host.load(image)
        got = host.run(inputs, steps)
    expected = Emulator(image, mode="cycle", progress=False).run(inputs, steps)
    assert got.spikes["p1"].sum() == expected.spikes["p1"].sum() > 0
    # Spikes, every counter of every step (cycle counts included), flags: all identical.
    assert first_divergence(expected, got, image) is None


def test_simulated_board_answers_a_corrupted_frame_and_keeps_working(simulated_board):
    arch = tiny_arch()
    with Host(simulated_board.port, arch, timeout=60) as host:
        frame = bytearray(P.encode_command("READ_REG", P.command_payload(
            arch, "READ_REG", core=0, register="step")))
        frame[-1] ^= 0x55
        host.transport.write(bytes(frame))
        deadline = time.monotonic() + 60
        answer = b""
        while len(answer) < 6 and time.monotonic() < deadline:
            answer += host.transport.read(6 - len(answer), 1.0)
        status, payload = P.decode_response(answer)
        assert (status, payload) == (P.Status.BAD_CRC, bytes([P.command("READ_REG").code]))
        assert host.ping()["magic"] == P.MAGIC
