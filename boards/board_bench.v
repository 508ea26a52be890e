// Co-simulation bench for a board design: the chip behind its UART (module `board_core`, from
// neurotile.boards.top.BoardCore), with a bit-level UART model on the host side.
//
// Same ports and handshakes as sim/cosim_top.v, so the co-simulation bridge of neurotile.sim
// (cosim_tb.py, BridgeTransport) drives it unchanged:
//
//   host -> board  write the request bytes into `rx_data` (byte i in bits 8i+7:8i) and the count
//                  into `rx_len`, then flip `rx_req`. The bench serialises each byte onto the
//                  board's `uart_rx` pin, 8N1 at DIVISOR cycles per bit (start bit 0, data LSB
//                  first, stop bit 1, one idle cycle between characters), and flips `rx_ack` to
//                  equal `rx_req` when it starts on the last byte.
//   board -> host  a reference receiver watches `uart_tx`: after each falling edge it samples the
//                  middle of the ten bits. Every byte goes into `tx_data` at its position in the
//                  current response frame (0x5A STATUS LEN_LO LEN_HI PAYLOAD[LEN] CRC); when the
//                  CRC byte arrives `tx_len` holds the frame's length and `tx_done` flips
//                  (sim/frame_collector.v, as in sim/cosim_top.v). A start bit that is not low in
//                  its middle, or a low stop bit, counts in `line_errors`.
//
// `cycle` counts clock cycles since the start. `led_error` and `led_heartbeat` are the board's
// LEDs. With COSIM_TRACE defined, `trace_on` opens / resumes / pauses an FST waveform as in
// sim/cosim_top.v.
`timescale 1ns/1ps
`default_nettype none

module cosim_top #(
    parameter integer FRAME_BYTES = 261,        // longest frame: max_payload + 5
    parameter integer DIVISOR = 8               // clock cycles per UART bit (board_core's too)
) (
    input  wire [8*FRAME_BYTES-1:0] rx_data,
    input  wire [31:0]              rx_len,
    input  wire                     rx_req,
    input  wire                     trace_on,
    output reg                      rx_ack = 1'b0,
    output wire [8*FRAME_BYTES-1:0] tx_data,    // these three: sim/frame_collector.v
    output wire [31:0]              tx_len,
    output wire                     tx_done,
    output reg  [63:0]              cycle = 64'd0,
    output reg  [31:0]              line_errors = 32'd0,
    output wire                     led_error,
    output wire                     led_heartbeat
);
    reg clk = 1'b0;
    always #5 clk = ~clk;

    // Synchronous, active-high reset for the first 4 cycles.
    reg [2:0] rst_count = 3'd4;
    wire rst = rst_count != 3'd0;
    always @(posedge clk) if (rst) rst_count <= rst_count - 3'd1;

    always @(posedge clk) cycle <= cycle + 64'd1;

    // -- host -> board: UART transmitter model ---------------------------------------------------
    reg [31:0] rx_pos = 32'd0;
    reg [9:0]  sh = 10'h3ff;                   // the character, bit 0 on the line
    reg [3:0]  nbits = 4'd0;                   // bits of it still to send
    reg [31:0] timer = 32'd0;
    wire       uart_rx = (nbits != 4'd0) ? sh[0] : 1'b1;
    always @(posedge clk) begin
        if (nbits != 4'd0) begin
            if (timer == DIVISOR - 1) begin
                timer <= 32'd0;
                sh <= {1'b1, sh[9:1]};
                nbits <= nbits - 4'd1;
            end else begin
                timer <= timer + 32'd1;
            end
        end else if (rx_req != rx_ack && !rst) begin
            sh <= {1'b1, rx_data[8*rx_pos +: 8], 1'b0};
            nbits <= 4'd10;
            timer <= 32'd0;
            if (rx_pos + 32'd1 >= rx_len) begin
                rx_pos <= 32'd0;
                rx_ack <= rx_req;
            end else begin
                rx_pos <= rx_pos + 32'd1;
            end
        end
    end

    // -- board -> host: UART receiver model ------------------------------------------------------
    wire       uart_tx;
    reg        prev = 1'b1;
    reg        busy = 1'b0;
    reg [31:0] since = 32'd0;                  // cycles since the falling edge
    reg [3:0]  bitno = 4'd0;
    reg [7:0]  rbyte = 8'd0;
    reg        got = 1'b0;                     // a byte is complete this cycle
    always @(posedge clk) begin
        prev <= uart_tx;
        got <= 1'b0;
        if (!busy) begin
            if (prev && !uart_tx && !rst) begin
                busy <= 1'b1;
                since <= 32'd1;
                bitno <= 4'd0;
            end
        end else begin
            since <= since + 32'd1;
            if (since == DIVISOR / 2 + bitno * DIVISOR) begin
                if (bitno == 4'd0) begin
                    if (uart_tx) begin             // not a start bit after all
                        line_errors <= line_errors + 32'd1;
                        busy <= 1'b0;
                    end
                end else if (bitno <= 4'd8) begin
                    rbyte <= {uart_tx, rbyte[7:1]};
                end else begin
                    if (!uart_tx) line_errors <= line_errors + 32'd1;
                    got <= 1'b1;
                    busy <= 1'b0;
                end
                bitno <= bitno + 4'd1;
            end
        end
    end

    // -- response frames -------------------------------------------------------------------------
    frame_collector #(.FRAME_BYTES(FRAME_BYTES)) collect (
        .clk(clk), .valid(got), .byte_in(rbyte), .data(tx_data), .len(tx_len), .done(tx_done)
    );

    board_core dut (
        .clk(clk),
        .rst(rst),
        .uart_rx(uart_rx),
        .uart_tx(uart_tx),
        .led_heartbeat(led_heartbeat),
        .led_error(led_error)
    );

`ifdef COSIM_TRACE
    reg [8*1024-1:0] trace_file;
    reg trace_opened = 1'b0;
    initial begin
        if (!$value$plusargs("trace_file=%s", trace_file)) trace_file = "cosim.fst";
    end
    always @(posedge trace_on) begin
        if (!trace_opened) begin
            $dumpfile(trace_file);
            $dumpvars(0, cosim_top);
            trace_opened = 1'b1;
        end else begin
            $dumpon;
        end
    end
    always @(negedge trace_on) if (trace_opened) $dumpoff;
`endif
endmodule

`default_nettype wire
