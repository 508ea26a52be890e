"""The host side of co-simulation, without a simulator: the socket transport, the host tables, the
argument checks of :mod:`neurotile.sim.cosim` and ``neurotile cosim``.

The transport is checked against a fake bridge: a thread that answers the bridge messages of
:mod:`neurotile.sim.bridge` with :class:`~neurotile.hdl.protocol.HostPortModel`, the host port's
golden model, in place of the simulated chip.
"""

import socket
import threading

import numpy as np
import pytest
from click.testing import CliRunner

import neurotile as nt
import neurotile.__main__ as cli
from neurotile.compiler.errors import (EmulatorError, NeurotileTypeError, NeurotileValueError,
                                       ToolchainError)
from neurotile.compiler.layouts import unpack
from neurotile.emulator.testing import hand_image, random_inputs, random_network
from neurotile.hdl import protocol as P
from neurotile.sim import bridge
from neurotile.sim.build import simulator_available, trace_format
from neurotile.sim.cosim import BridgeTransport, HostTables, cosimulate

ARCH = nt.Arch(mesh_w=2, mesh_h=1, neurons_per_core=16, profiles_per_core=4, axons_per_core=64,
               synapses_per_core=256, fanout_per_core=64, max_delay=4, host_in_depth=8,
               host_out_depth=16)


class FakeBridge:
    """Serves bridge messages from a thread; frames go to a HostPortModel.

    ``hang`` (a command name) is answered with TIMEOUT, ``fail`` with ERROR.
    """

    def __init__(self, arch, hang=None, fail=None):
        self.model = P.HostPortModel(arch, P.DictBackend(arch))
        self.hang, self.fail = hang, fail
        self.messages = []
        self.host, self.sim = socket.socketpair()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            while True:
                op, payload = bridge.recv_message(self.sim)
                self.messages.append((op, payload))
                if op == bridge.OPS["FRAME"]:
                    frame = payload[bridge.U64.size:]
                    name = P.command(frame[1]).name
                    if name == self.hang:
                        bridge.send_message(self.sim, "TIMEOUT")
                    elif name == self.fail:
                        bridge.send_message(self.sim, "ERROR", b"ValueError: boom")
                    else:
                        bridge.send_message(self.sim, "FRAME", self.model.feed(frame))
                elif op == bridge.OPS["RAW"]:
                    self.model.feed(payload)
                    bridge.send_message(self.sim, "RAW")
                elif op == bridge.OPS["CYCLE"]:
                    bridge.send_message(self.sim, "CYCLE", bridge.U64.pack(1234))
                elif op == bridge.OPS["QUIT"]:
                    return
        except (EOFError, OSError):
            return

    def transport(self, **kwargs):
        return BridgeTransport(self.host, **kwargs)


def test_transport_sends_whole_frames_and_passes_other_bytes_through():
    fake = FakeBridge(ARCH)
    transport = fake.transport()
    client = P.HostClient(transport, ARCH)
    assert client.ping()["magic"] == P.MAGIC
    # Two noise bytes and a frame in one write; then a frame split over two writes.
    frame = P.encode_command("PING")
    transport.write(b"\x00\x11" + frame[:2])
    assert transport.read(100, 0) == b""
    transport.write(frame[2:])
    status, payload = P.decode_response(transport.read(100, 0))[:2]
    assert status == P.Status.OK and P.parse_response(ARCH, "PING", payload)["skipped"] == 2
    ops = [op for op, _ in fake.messages]
    assert ops == [bridge.OPS["FRAME"], bridge.OPS["RAW"], bridge.OPS["FRAME"]]
    # Each FRAME carries the bench's cycle limit before the frame.
    assert bridge.U64.unpack_from(fake.messages[0][1])[0] == transport.frame_limit
    assert transport.cycle() == 1234


def test_transport_gives_a_run_time_for_each_step():
    fake = FakeBridge(ARCH)
    transport = fake.transport(frame_limit=100, step_limit=10)
    client = P.HostClient(transport, ARCH)
    client.run(7)
    limit = bridge.U64.unpack_from(fake.messages[-1][1])[0]
    assert limit == 100 + 7 * 10


def test_a_chip_that_never_answers_is_reported_as_hung():
    fake = FakeBridge(ARCH, hang="RUN")
    client = P.HostClient(fake.transport(frame_limit=100, step_limit=10), ARCH)
    with pytest.raises(ToolchainError, match=r"the simulated chip did not answer RUN within 130 "
                                             r"cycles: the RTL hangs"):
        client.run(3)


def test_a_bridge_error_and_a_lost_simulator_are_reported():
    fake = FakeBridge(ARCH, fail="PING")
    client = P.HostClient(fake.transport(describe=lambda: " [log]"), ARCH)
    with pytest.raises(ToolchainError, match=r"the co-simulation bridge failed: ValueError: boom "
                                             r"\[log\]"):
        client.ping()
    fake.sim.shutdown(socket.SHUT_RDWR)      # the simulator process ends
    fake.thread.join()
    with pytest.raises(ToolchainError, match=r"the simulator went away"):
        P.HostClient(fake.transport(), ARCH).ping()


def test_host_tables_inject_in_group_then_channel_then_list_order():
    # Two input groups; the packets of a step follow image.inputs order, then channel, then the
    # order of each channel's list (docs/architecture.md section 7), as the cycle engine's.
    image = hand_image(ARCH, [{"pop": "p", "core": (1, 0)}],
                       axons={(1, 0): [[(0, 1, 1, 0)]] * 5},
                       inputs={"a": [[(1, 0, 0), (1, 0, 1)], [(1, 0, 2)]],
                               "b": [[(1, 0, 3)], [(1, 0, 4), (0, 0, 0)]]})
    steps, packets = HostTables(image).packets(
        {"a": [[0], [0, 1]], "b": {"times": [1, 0], "channels": [1, 0]}}, 2)
    got = [unpack(ARCH.layouts.packet, w)["index"].tolist() for w in packets]
    assert steps == 2
    # a: channel 0 spikes in step 0, channel 1 in steps 0 and 1; b: channel 0 in step 0,
    # channel 1 in step 1. Step 0: a0 (0, 1), a1 (2), b0 (3); step 1: a1 (2), b1 (4, then 0).
    assert got == [[0, 1, 2, 3], [2, 4, 0]]


def test_a_step_with_more_packets_than_host_in_depth_is_refused_before_simulating():
    # The compiler never makes such an image: written by hand, 2 channels of 5 packets each
    # (axons 0..9 of core (1, 0)); both spike in step 2: 10 packets > host_in_depth 8.
    image = hand_image(ARCH, [{"pop": "p", "core": (1, 0)}],
                       axons={(1, 0): [[(0, 1, 1, 0)]] * 10},
                       inputs={"in": [[(1, 0, a) for a in range(5)],
                                      [(1, 0, a) for a in range(5, 10)]]})
    spikes = np.zeros((3, 2), bool)
    spikes[2] = spikes[0, 0] = True
    with pytest.raises(EmulatorError, match=r"step 2 injects 10 input packets, more than the host "
                                            r"port's host_in_depth \(8\)"):
        cosimulate(image, {"in": spikes}, 3)


def test_bad_inputs_get_the_emulators_messages():
    net = random_network(2, n_inputs=4, sizes=(8,), profiles=2)
    image = nt.compile(net, ARCH)
    with pytest.raises(EmulatorError, match=r"unknown input 'x'; the image's inputs are 'in'"):
        cosimulate(image, {"x": np.zeros((3, 4), bool)}, 3)
    with pytest.raises(EmulatorError, match=r"input 'in' has 2 rows but steps=3"):
        cosimulate(image, {"in": np.zeros((2, 4), bool)}, 3)


def test_cosimulate_needs_an_image():
    with pytest.raises(NeurotileTypeError, match=r"image must be an nt.ChipImage or the path of a "
                                                 r"saved one, not Arch"):
        cosimulate(ARCH, None, 3)


def test_simulator_names_and_waveform_formats():
    with pytest.raises(NeurotileValueError, match=r"simulator must be one of 'verilator', "
                                                  r"'icarus', not 'xsim'"):
        simulator_available("xsim")
    assert trace_format("run.vcd") == "vcd" and trace_format("run.fst") == "fst"
    assert trace_format("run") == "fst"


def test_cli_refuses_an_inputs_file_that_is_not_npz(tmp_path):
    net = random_network(3, n_inputs=4, sizes=(8,), profiles=2)
    nt.compile(net, ARCH).save(tmp_path / "net.ntimg")
    (tmp_path / "in.npz").write_text("not numpy")
    run = CliRunner().invoke(cli.main, ["cosim", str(tmp_path / "net.ntimg"), "--inputs",
                                        str(tmp_path / "in.npz")])
    assert run.exit_code == 2
    assert "is not a readable .npz file of input arrays" in run.output


def test_cli_reports_bad_inputs_as_an_error(tmp_path):
    net = random_network(4, n_inputs=4, sizes=(8,), profiles=2)
    nt.compile(net, ARCH).save(tmp_path / "net.ntimg")
    np.savez(tmp_path / "in.npz", wrong=random_inputs(net, 5, 0.5, 1)["in"])
    run = CliRunner().invoke(cli.main, ["cosim", str(tmp_path / "net.ntimg"), "--inputs",
                                        str(tmp_path / "in.npz")])
    assert run.exit_code == 1
    assert "Error: unknown input 'wrong'; the image's inputs are 'in'" in run.output
