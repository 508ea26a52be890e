// Co-simulation bench for the neurotile chip (module `chip`, written by neurotile.hdl.generate).
//
// The clock and the reset are generated here, so no Python runs per clock. The host (cocotb, see
// neurotile/sim/cosim_tb.py) exchanges whole frames with the chip's byte streams through the bench's
// registers, which it reaches over VPI (sim/cosim_top.vlt keeps exactly these public):
//
//   host -> chip  write the request bytes into `rx_data` (byte i in bits 8i+7:8i) and the count into
//                 `rx_len`, then flip `rx_req`. The bench feeds the bytes to the chip's `rx` stream, one
//                 per cycle as `rx__ready` allows, and sets `rx_ack` equal to `rx_req` after the last one.
//   chip -> host  `tx__ready` is always 1. Every byte the chip sends is stored in `tx_data` at its position
//                 in the current response frame (0x5A STATUS LEN_LO LEN_HI PAYLOAD[LEN] CRC); when the CRC
//                 byte arrives, `tx_len` holds the frame's length and `tx_done` flips. The host waits for
//                 that one edge. (sim/frame_collector.v, shared with boards/board_bench.v.)
//
// The bench has no ports, and the host's registers are only read by clocked processes: Verilator then has no
// input-dependent logic to re-evaluate at every time step (with top-level inputs, most of the chip's
// combinational logic would land in its per-eval "ico" region and halve the speed).
//
// `cycle` counts clock cycles since the start (for speed figures). With COSIM_TRACE defined, the first
// rising edge of `trace_on` opens the waveform file named by +trace_file=... and dumps the whole hierarchy
// from then on, so a host can record a window of steps: start late, end the session early.
`timescale 1ns/1ps
`default_nettype none

module cosim_top #(
    parameter integer FRAME_BYTES = 261        // longest frame: max_payload + 5
);
    // -- written by the host (over VPI) ------------------------------------------------------------------------
    reg [8*FRAME_BYTES-1:0] rx_data = {8*FRAME_BYTES{1'b0}};
    reg [31:0]              rx_len = 32'd0;
    reg                     rx_req = 1'b0;
    reg                     trace_on = 1'b0;

    // -- read by the host --------------------------------------------------------------------------------------
    reg                     rx_ack = 1'b0;
    wire [8*FRAME_BYTES-1:0] tx_data;          // these three: the response frame (frame_collector.v)
    wire [31:0]              tx_len;
    wire                     tx_done;
    reg [63:0]              cycle = 64'd0;

    reg clk = 1'b0;
    always #5 clk = ~clk;

    // Synchronous, active-high reset for the first 4 cycles.
    reg [2:0] rst_count = 3'd4;
    wire rst = rst_count != 3'd0;
    always @(posedge clk) if (rst) rst_count <= rst_count - 3'd1;

    always @(posedge clk) cycle <= cycle + 64'd1;

    // -- host -> chip: a registered byte stream ----------------------------------------------------------------
    reg        rx_valid = 1'b0;
    reg [7:0]  rx_byte = 8'd0;
    reg [31:0] rx_pos = 32'd0;                 // index of the byte presented in rx_byte
    wire       rx_ready;
    always @(posedge clk) begin
        if (rx_valid) begin
            if (rx_ready) begin
                if (rx_pos + 32'd1 >= rx_len) begin
                    rx_valid <= 1'b0;
                    rx_ack <= rx_req;
                end else begin
                    rx_pos <= rx_pos + 32'd1;
                    rx_byte <= rx_data[8*(rx_pos + 32'd1) +: 8];
                end
            end
        end else if (!rst && rx_req != rx_ack) begin
            rx_valid <= 1'b1;
            rx_pos <= 32'd0;
            rx_byte <= rx_data[7:0];
        end
    end

    // -- chip -> host ------------------------------------------------------------------------------------------
    wire       tx_valid;
    wire [7:0] tx_byte;
    frame_collector #(.FRAME_BYTES(FRAME_BYTES)) collect (
        .clk(clk), .valid(tx_valid), .byte_in(tx_byte), .data(tx_data), .len(tx_len), .done(tx_done)
    );

    chip dut (
        .clk(clk),
        .rst(rst),
        .rx__payload(rx_byte),
        .rx__valid(rx_valid),
        .rx__ready(rx_ready),
        .tx__payload(tx_byte),
        .tx__valid(tx_valid),
        .tx__ready(1'b1)
    );

`ifdef COSIM_TRACE
    // Recording starts at the first rising edge of trace_on and lasts until the simulation ends (Verilator ignores
    // $dumpoff, so the host bounds a window by ending the session).
    reg [8*1024-1:0] trace_file;
    reg trace_opened = 1'b0;
    initial begin
        if (!$value$plusargs("trace_file=%s", trace_file)) trace_file = "cosim.fst";
    end
    always @(posedge clk) begin
        if (trace_on && !trace_opened) begin
            $dumpfile(trace_file);
            $dumpvars(0, cosim_top);
            trace_opened <= 1'b1;
        end
    end
`endif
endmodule

`default_nettype wire
