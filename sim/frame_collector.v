// The host side of a response stream: collects the bytes of one response frame for the host.
//
// Shared by the two co-simulation benches, sim/cosim_top.v (bytes from the chip's tx stream) and
// boards/board_bench.v (bytes from its UART receiver model). Each byte offered with `valid` goes
// into `data` at its position in the current frame (0x5A STATUS LEN_LO LEN_HI PAYLOAD[LEN] CRC,
// byte i in bits 8i+7:8i); when the CRC byte arrives, `len` holds the frame's length and `done`
// flips, the one edge the host waits for. The frame's length comes from its own LEN bytes, so
// the collector needs no knowledge of the commands.
`timescale 1ns/1ps
`default_nettype none

module frame_collector #(
    parameter integer FRAME_BYTES = 261        // longest frame: max_payload + 5
) (
    input  wire                     clk,
    input  wire                     valid,     // `byte_in` is the frame's next byte
    input  wire [7:0]               byte_in,
    output reg  [8*FRAME_BYTES-1:0] data = {8*FRAME_BYTES{1'b0}},
    output reg  [31:0]              len = 32'd0,
    output reg                      done = 1'b0
);
    reg [31:0] pos = 32'd0;                    // position of the next byte in the frame
    reg [15:0] plen = 16'd0;                   // the frame's payload length, from LEN_LO, LEN_HI
    always @(posedge clk) begin
        if (valid) begin
            data[8*pos +: 8] <= byte_in;
            if (pos == 32'd2) plen[7:0] <= byte_in;
            if (pos == 32'd3) plen[15:8] <= byte_in;
            if (pos >= 32'd4 && pos == {16'd0, plen} + 32'd4) begin   // the CRC byte
                len <= pos + 32'd1;
                pos <= 32'd0;
                done <= !done;
            end else begin
                pos <= pos + 32'd1;
            end
        end
    end
endmodule

`default_nettype wire
