"""Vivado project plans for the Zynq boards (Zynq-7000 with PS7, Zynq UltraScale+ with ZynqMP).

:func:`write_vivado_plan` writes everything needed to build the accelerator on the board with
Vivado, and nothing that needs Vivado to write:

* ``lowbit_top.v`` (the accelerator) and ``lowbit_axis.v``, an AXI4-Stream adapter
  (:func:`axis_adapter_verilog`): ``tdata``/``tvalid``/``tready``/``tlast`` in and out, the payload in
  the low bits of ``tdata``. The output beat of an image carries ``tlast`` when the last input beat of
  the same image did (a FIFO of :data:`TLAST_FIFO_DEPTH` flags; input stalls while it is full), so one
  DMA transfer of N images comes back as one transfer of N results;
* ``lowbit_wfetch.v``, when layers stream their weights from DDR (``"weights": "ddr"`` in the
  schedule): one :class:`~lowbit.hw.axi.wfetch.WeightFetcher` per such layer, an AXI4 read master that
  reads the layer's weight image from DDR pass after pass into the accelerator's ``ws<k>`` port.
  ``lowbit_axis`` instantiates them and exposes their AXI ports as ``m_axi_w<k>``; the control
  block holds their DDR addresses (``WBASE``) and run bit (``WCTRL``);
* ``bd.tcl``: the block design: the processing system (``processing_system7`` or
  ``zynq_ultra_ps_e``) with the schedule's fabric clock on FCLK0 / PL0, an AXI DMA (simple mode, no
  scatter-gather) whose control port hangs off GP0 / HPM0_FPD and whose memory ports use HP0, the
  adapter between the DMA's streams, a ``proc_sys_reset``, and each weight fetcher on an AXI-HP
  port of its own (HP1, HP2, HP3: the mapper's DDR model gives each streamed layer one spare port);
* ``build.tcl``: creates the project for the board's part (and its board part when the board files
  are installed), adds the sources, runs ``bd.tcl``, the wrapper, synthesis, implementation and
  ``write_bitstream``, and copies ``lowbit.bit`` and ``lowbit.hwh`` (the hardware handoff PYNQ
  reads) next to it, plus ``lowbit.xsa`` from ``write_hw_platform``;
* ``lowbit.xdc``: bitstream settings. The block design's top-level ports are the PS's DDR and
  FIXED_IO (MIO) pins, which the PS IP constrains itself; the fabric has no other pins;
* ``build.sh``: ``vivado -mode batch -source build.tcl`` from the plan's directory.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

from .. import LowbitError
from ..hw.axi.control import ADDR_BITS
from ..boards.records import Board
from ..hw.axi.wfetch import WeightFetcher
from ..hw.verilog import to_verilog
from ..hw.axi.control import ControlBlock

__all__ = ["TLAST_FIFO_DEPTH", "BOARD_PARTS", "DDR_PARTS", "WeightPort", "axis_width", "axi_read_ports",
           "axis_adapter_verilog", "control_verilog", "fetcher_verilog", "hp_ports", "vivado_plan_files"]

TLAST_FIFO_DEPTH = 64
"""Images in flight the AXI-Stream adapter can track (their ``tlast`` flags)."""

BOARD_PARTS = {"pynq-z1": "*pynq-z1*", "pynq-z2": "*pynq-z2*", "zedboard": "*zedboard*",
               "zybo-z7-10": "*zybo-z7-10*", "zybo-z7-20": "*zybo-z7-20*", "arty-z7-10": "*arty-z7-10*",
               "arty-z7-20": "*arty-z7-20*", "cora-z7-10": "*cora-z7-10*", "zc706": "*zc706*",
               "ultra96-v2": "*ultra96v2*", "zcu104": "*zcu104*", "kv260": "*kv260_som*"}
"""Glob for the Vivado board part of each board, used when those board files are installed."""

DDR_PARTS = {"pynq-z1": "MT41K256M16 RE-125", "pynq-z2": "MT41K256M16 RE-125",
             "zedboard": "MT41K128M16 JT-125", "arty-z7-10": "MT41K256M16 RE-125",
             "arty-z7-20": "MT41K256M16 RE-125", "cora-z7-10": "MT41K256M16 RE-125"}
"""PS7 DDR memory part per board (board reference manuals), set when no board preset is installed."""


def axis_width(bits: int) -> int:
    """The AXI DMA stream width carrying ``bits``: a power of two from 32 to 1024."""
    width = max(32, 1 << max(0, math.ceil(math.log2(bits))))
    if width > 1024:
        raise LowbitError(f"a {bits}-bit stream beat is wider than the AXI DMA's 1024-bit streams; "
                          f"choose a smaller SIMD for the first layer")
    return width


@dataclass(frozen=True)
class WeightPort:
    """A layer whose weights stream from DDR: unit ``unit`` of ``lowbit_top`` (its port ``ws<unit>``)
    reads ``words`` words of ``word_bits`` bits per vector; the shell's fetcher ``lowbit_wfetch<index>``
    reads them over an AXI-HP port of ``data_bits`` bits with ``addr_bits``-bit addresses, keeping
    ``outstanding`` bursts of 16 beats in flight (it holds the port's rate while the DDR's latency
    plus one burst stays under ``outstanding * 16 * data_bits / rate`` cycles; see
    ``benchmarks/results/ddr_fetch.md``)."""

    index: int
    unit: int
    word_bits: int
    words: int
    data_bits: int
    addr_bits: int
    outstanding: int = 8

    @property
    def module(self) -> str:
        return f"lowbit_wfetch{self.index}"

    @property
    def bus(self) -> str:
        """Prefix of the port's AXI4 read-master ports on ``lowbit_axis`` (interface ``m_axi_w<index>``)."""
        return f"m_axi_w{self.index}"

    def fetcher(self):

        return WeightFetcher(word_bits=self.word_bits, words=self.words, data_bits=self.data_bits,
                             addr_bits=self.addr_bits, outstanding=self.outstanding)


_AR = (("araddr", "output", "A"), ("arlen", "output", 8), ("arsize", "output", 3), ("arburst", "output", 2),
       ("arcache", "output", 4), ("arprot", "output", 3), ("arvalid", "output", 1), ("arready", "input", 1),
       ("rdata", "input", "D"), ("rresp", "input", 2), ("rlast", "input", 1), ("rvalid", "input", 1),
       ("rready", "output", 1))
"""The AXI4 read channels of a weight port: (name, direction on ``lowbit_axis``, width; A/D = address/data)."""


def axi_read_ports(port: WeightPort) -> list[tuple[str, str, int]]:
    """``(name, direction, width)`` of ``port``'s AXI4 read-master ports on ``lowbit_axis``."""
    sizes = {"A": port.addr_bits, "D": port.data_bits}
    return [(f"{port.bus}_{n}", d, sizes.get(w, w)) for n, d, w in _AR]


def _vec(width: int) -> str:
    return f"[{width - 1}:0] " if width > 1 else ""


def _weight_port_verilog(ports: Sequence[WeightPort]) -> tuple[str, str, str]:
    """(port declarations, wires and fetcher instances, control-block connections) of the weight ports."""
    decls, wires, insts = [], [], []
    for p in ports:
        decls.append(f"  // weight port {p.index}: layer unit {p.unit}, {p.words} words of {p.word_bits} bits per "
                     f"vector, read over AXI4 ({p.data_bits}-bit data)")
        decls += [f"  {d} wire {_vec(w)}{n}," for n, d, w in axi_read_ports(p)]
        wires += [f"  wire [63:0] wbase{p.index};", f"  wire ws{p.unit}_valid, ws{p.unit}_ready;",
                  f"  wire [{p.word_bits - 1}:0] ws{p.unit}_payload;"]
        axi = ", ".join(f".axi__{n}({p.bus}_{n})" for n, _, _ in _AR)
        insts.append(f"""  {p.module} wfetch{p.index} (
    .clk(aclk), .rst(rst), .base(wbase{p.index}[{p.addr_bits - 1}:0]), .enable(wen),
    .error(werror[{p.index}]), .busy(wbusy[{p.index}]),
    {axi},
    .o__valid(ws{p.unit}_valid), .o__ready(ws{p.unit}_ready), .o__payload(ws{p.unit}_payload)
  );""")
    if not ports:
        return "", "", ""
    n = len(ports)
    wires.insert(0, f"  wire wen;\n  wire [{n - 1}:0] werror, wbusy;")
    ctrl = "".join(f", .wbase{p.index}(wbase{p.index})" for p in ports)
    ctrl = f",\n    .wen(wen), .werror(werror), .wbusy(wbusy){ctrl}"
    body = "  // weight fetchers: the layers' weight images from DDR, pass after pass\n" + "\n".join(wires + insts) + "\n"
    return "\n".join(decls), body, ctrl


def axis_adapter_verilog(in_bits: int, out_bits: int, beats_per_image: int,
                         weight_ports: Sequence[WeightPort] = ()) -> str:
    """The Verilog of ``lowbit_axis`` (see the module docstring)."""
    tin, tout = axis_width(in_bits), axis_width(out_bits)
    depth_bits = int(math.log2(TLAST_FIFO_DEPTH))
    a = ADDR_BITS
    w_decls, w_insts, w_ctrl = _weight_port_verilog(weight_ports)
    busif = "".join(f":{p.bus}" for p in weight_ports)
    w_top = "".join(f", .ws{p.unit}__valid(ws{p.unit}_valid), .ws{p.unit}__ready(ws{p.unit}_ready), "
                    f".ws{p.unit}__payload(ws{p.unit}_payload)" for p in weight_ports)
    return f"""// lowbit_axis: lowbit_top with AXI4-Stream ports for an AXI DMA.
// s_axis: {beats_per_image} beats per image, payload in tdata[{in_bits - 1}:0].
// m_axis: one beat per image, {{label, scores}} in tdata[{out_bits - 1}:0]; tlast as on the image's last input beat.
// m_axi_w<k>: AXI4 read masters of the weight fetchers (weights streamed from DDR), if any.
`default_nettype none
module lowbit_axis (
  (* X_INTERFACE_INFO = "xilinx.com:signal:clock:1.0 aclk CLK" *)
  (* X_INTERFACE_PARAMETER = "ASSOCIATED_BUSIF s_axis:m_axis:s_axi{busif}, ASSOCIATED_RESET aresetn" *)
  input  wire aclk,
  (* X_INTERFACE_INFO = "xilinx.com:signal:reset:1.0 aresetn RST" *)
  (* X_INTERFACE_PARAMETER = "POLARITY ACTIVE_LOW" *)
  input  wire aresetn,
  input  wire [{tin - 1}:0] s_axis_tdata,
  input  wire s_axis_tvalid,
  output wire s_axis_tready,
  input  wire s_axis_tlast,
  output wire [{tout - 1}:0] m_axis_tdata,
  output wire m_axis_tvalid,
  input  wire m_axis_tready,
  output wire m_axis_tlast,
{w_decls}
  // AXI4-Lite control block (lowbit_ctrl; register map in lowbit.hw.axi.control)
  input  wire [{a - 1}:0] s_axi_awaddr,
  input  wire s_axi_awvalid,
  output wire s_axi_awready,
  input  wire [31:0] s_axi_wdata,
  input  wire [3:0] s_axi_wstrb,
  input  wire s_axi_wvalid,
  output wire s_axi_wready,
  output wire [1:0] s_axi_bresp,
  output wire s_axi_bvalid,
  input  wire s_axi_bready,
  input  wire [{a - 1}:0] s_axi_araddr,
  input  wire s_axi_arvalid,
  output wire s_axi_arready,
  output wire [31:0] s_axi_rdata,
  output wire [1:0] s_axi_rresp,
  output wire s_axi_rvalid,
  input  wire s_axi_rready
);
  wire rst = !aresetn;
  wire i_ready;
  wire [{out_bits - 1}:0] o_payload;

  // tlast flags of the images in flight
  reg [{TLAST_FIFO_DEPTH - 1}:0] flags = 0;
  reg [{depth_bits}:0] wr = 0, rd = 0;
  wire [{depth_bits}:0] used = wr - rd;         // sized: modulo 2 * depth, also once wr has wrapped
  wire full = used == {TLAST_FIFO_DEPTH};
  reg [31:0] beat = 0;
  wire in_fire = s_axis_tvalid && s_axis_tready;
  wire last_beat = beat == {beats_per_image - 1};
  wire out_fire = m_axis_tvalid && m_axis_tready;
  always @(posedge aclk) begin
    if (rst) begin
      wr <= 0; rd <= 0; beat <= 0;
    end else begin
      if (in_fire) begin
        beat <= last_beat ? 0 : beat + 1;
        if (last_beat) begin
          flags[wr[{depth_bits - 1}:0]] <= s_axis_tlast;
          wr <= wr + 1;
        end
      end
      if (out_fire) rd <= rd + 1;
    end
  end
  assign s_axis_tready = i_ready && !full;
  assign m_axis_tlast = flags[rd[{depth_bits - 1}:0]];
  assign m_axis_tdata = {{{{{tout - out_bits}{{1'b0}}}}, o_payload}};

{w_insts}
  lowbit_ctrl ctrl (
    .clk(aclk), .rst(rst), .in_beat(in_fire), .out_result(out_fire),
    .axil__awaddr(s_axi_awaddr), .axil__awvalid(s_axi_awvalid), .axil__awready(s_axi_awready),
    .axil__wdata(s_axi_wdata), .axil__wstrb(s_axi_wstrb), .axil__wvalid(s_axi_wvalid), .axil__wready(s_axi_wready),
    .axil__bresp(s_axi_bresp), .axil__bvalid(s_axi_bvalid), .axil__bready(s_axi_bready),
    .axil__araddr(s_axi_araddr), .axil__arvalid(s_axi_arvalid), .axil__arready(s_axi_arready),
    .axil__rdata(s_axi_rdata), .axil__rresp(s_axi_rresp), .axil__rvalid(s_axi_rvalid), .axil__rready(s_axi_rready){w_ctrl}
  );

  lowbit_top accel (
    .clk(aclk), .rst(rst),
    .i__valid(s_axis_tvalid && !full), .i__ready(i_ready), .i__payload(s_axis_tdata[{in_bits - 1}:0]),
    .o__valid(m_axis_tvalid), .o__ready(m_axis_tready), .o__payload(o_payload){w_top}
  );
endmodule
`default_nettype wire
"""


def control_verilog(beats_per_image: int, weight_ports: int = 0) -> str:
    """The Verilog of ``lowbit_ctrl``, the AXI4-Lite control block (:mod:`lowbit.hw.axi.control`)."""

    return to_verilog(ControlBlock(beats_per_image, weight_ports), name="lowbit_ctrl")


def fetcher_verilog(ports: Sequence[WeightPort]) -> str:
    """The Verilog of the weight fetchers ``lowbit_wfetch<k>`` (:mod:`lowbit.hw.axi.wfetch`), one module each."""

    return "\n".join(to_verilog(p.fetcher(), name=p.module) for p in ports)


def _ps7_tcl(board: Board, clock_mhz: float) -> tuple[str, dict]:
    ddr = DDR_PARTS.get(board.name)
    ddr_line = f"\n  lappend cfg CONFIG.PCW_UIPARAM_DDR_PARTNO {{{ddr}}}" if ddr else ""
    tcl = f"""set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7:5.5 ps7]
apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \\
  -config [list make_external "FIXED_IO, DDR" apply_board_preset $board_preset Master Disable Slave Disable] $ps
set cfg [list CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {{{clock_mhz:g}}} CONFIG.PCW_EN_CLK0_PORT {{1}} \\
  CONFIG.PCW_EN_RST0_PORT {{1}} CONFIG.PCW_USE_M_AXI_GP0 {{1}} CONFIG.PCW_USE_S_AXI_HP0 {{1}} \\
  CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {{64}}]
if {{!$board_preset}} {{{ddr_line}
}}
set_property -dict $cfg $ps
"""
    pins = {"ps": "ps7", "clk": "ps7/FCLK_CLK0", "resetn": "ps7/FCLK_RESET0_N", "gp": "/ps7/M_AXI_GP0",
            "hp": "/ps7/S_AXI_HP0"}
    return tcl, pins


def _zynqmp_tcl(board: Board, clock_mhz: float) -> tuple[str, dict]:
    tcl = f"""set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e:3.5 zynq_ps]
apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config [list apply_board_preset $board_preset] $ps
set_property -dict [list CONFIG.PSU__FPGA_PL0_ENABLE {{1}} CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ {{{clock_mhz:g}}} \\
  CONFIG.PSU__USE__M_AXI_GP0 {{1}} CONFIG.PSU__USE__M_AXI_GP1 {{0}} CONFIG.PSU__USE__M_AXI_GP2 {{0}} \\
  CONFIG.PSU__USE__S_AXI_GP2 {{1}} CONFIG.PSU__SAXIGP2__DATA_WIDTH {{128}}] $ps
"""
    pins = {"ps": "zynq_ps", "clk": "zynq_ps/pl_clk0", "resetn": "zynq_ps/pl_resetn0",
            "gp": "/zynq_ps/M_AXI_HPM0_FPD", "hp": "/zynq_ps/S_AXI_HP0_FPD"}
    return tcl, pins


def hp_ports(board: Board, n: int) -> list[tuple[str, str]]:
    """``(PS configuration, interface pin)`` of the ``n`` AXI-HP ports the weight fetchers use: HP1,
    HP2, ... (HP0 carries the image DMA). Raises LowbitError when the board has too few."""
    spare = max(0, board.axi_hp_ports - 1)
    if n > spare:
        raise LowbitError(f"{n} layers stream their weights from DDR, but board {board.name!r} has only {spare} "
                          f"AXI-HP ports besides the image DMA's; keep more weights on chip")
    width = board.axi_hp_width_bits
    if board.ps == "PS7":
        return [(f"CONFIG.PCW_USE_S_AXI_HP{j} {{1}} CONFIG.PCW_S_AXI_HP{j}_DATA_WIDTH {{{width}}}", f"/ps7/S_AXI_HP{j}")
                for j in range(1, n + 1)]
    # ZynqMP: S_AXI_HPj_FPD is saxigp(j + 2)
    return [(f"CONFIG.PSU__USE__S_AXI_GP{j + 2} {{1}} CONFIG.PSU__SAXIGP{j + 2}__DATA_WIDTH {{{width}}}",
             f"/zynq_ps/S_AXI_HP{j}_FPD") for j in range(1, n + 1)]


def weight_port_address_bits(board: Board) -> int:
    """Address width of a weight fetcher's AXI port: 32 on PS7, 40 on ZynqMP (its DDR lies below 2^40)."""
    return 32 if board.ps == "PS7" else 40


def _bd_tcl(board: Board, clock_mhz: float, tin: int, tout: int,
            weight_ports: Sequence[WeightPort] = (), hps: Sequence[tuple[str, str]] = ()) -> tuple[str, dict]:
    """The block design; ``hps`` are the weight ports' AXI-HP ports (:func:`hp_ports`)."""
    ps_tcl, p = (_ps7_tcl if board.ps == "PS7" else _zynqmp_tcl)(board, clock_mhz)
    if hps:
        ps_tcl += f"# weight fetchers: one AXI-HP port each\nset_property -dict [list {' '.join(c for c, _ in hps)}] $ps\n"
    w_tcl = "".join(f"""apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
  -config [list Slave {pin} Clk Auto] [get_bd_intf_pins accel/{wp.bus}]
""" for wp, (_, pin) in zip(weight_ports, hps))
    mm = max(tin, tout, 64 if board.ps == "PS7" else 128)
    tcl = f"""# lowbit block design: {board.ps} + AXI DMA (HP0) + lowbit_axis; DMA control on the GP port.
# Weight fetchers (layers whose weights stream from DDR): {len(weight_ports)}, on HP1 and up.
# Sourced by build.tcl with board_preset set (1 when the board files are installed).
create_bd_design design_1
{ps_tcl}
set dma [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma:7.1 axi_dma]
set_property -dict [list CONFIG.c_include_sg {{0}} CONFIG.c_sg_length_width {{26}} \\
  CONFIG.c_sg_include_stscntrl_strm {{0}} \\
  CONFIG.c_m_axi_mm2s_data_width {{{mm}}} CONFIG.c_m_axis_mm2s_tdata_width {{{tin}}} \\
  CONFIG.c_m_axi_s2mm_data_width {{{mm}}} CONFIG.c_s_axis_s2mm_tdata_width {{{tout}}} \\
  CONFIG.c_mm2s_burst_size {{16}} CONFIG.c_s2mm_burst_size {{16}}] $dma
set accel [create_bd_cell -type module -reference lowbit_axis accel]
set rst [create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset:5.0 rst_pl]
connect_bd_net [get_bd_pins {p['clk']}] [get_bd_pins rst_pl/slowest_sync_clk] [get_bd_pins accel/aclk] \\
  [get_bd_pins axi_dma/s_axi_lite_aclk] [get_bd_pins axi_dma/m_axi_mm2s_aclk] [get_bd_pins axi_dma/m_axi_s2mm_aclk]
connect_bd_net [get_bd_pins {p['resetn']}] [get_bd_pins rst_pl/ext_reset_in]
connect_bd_net [get_bd_pins rst_pl/peripheral_aresetn] [get_bd_pins accel/aresetn] [get_bd_pins axi_dma/axi_resetn]
connect_bd_intf_net [get_bd_intf_pins axi_dma/M_AXIS_MM2S] [get_bd_intf_pins accel/s_axis]
connect_bd_intf_net [get_bd_intf_pins accel/m_axis] [get_bd_intf_pins axi_dma/S_AXIS_S2MM]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
  -config [list Master {p['gp']} Clk Auto] [get_bd_intf_pins axi_dma/S_AXI_LITE]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
  -config [list Master {p['gp']} Clk Auto] [get_bd_intf_pins accel/s_axi]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
  -config [list Slave {p['hp']} Clk Auto] [get_bd_intf_pins axi_dma/M_AXI_MM2S]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
  -config [list Slave {p['hp']} Clk Auto] [get_bd_intf_pins axi_dma/M_AXI_S2MM]
{w_tcl}assign_bd_address
validate_bd_design
save_bd_design
"""
    return tcl, p


def _build_tcl(board: Board, clock_mhz: float, sources: Sequence[str]) -> str:
    return f"""# lowbit Vivado plan for {board.name}: part {board.part}, {board.ps}, fabric clock {clock_mhz:g} MHz.
# Run from any directory: vivado -mode batch -source build.tcl (or ./build.sh).
set here [file dirname [file normalize [info script]]]
set proj_dir [file join $here vivado]
create_project -force lowbit $proj_dir -part {board.part}
set board_preset 0
set board_part [lindex [get_board_parts -quiet -latest_file_version {{{BOARD_PARTS.get(board.name, '-')}}}] 0]
if {{$board_part ne ""}} {{
  set_property board_part $board_part [current_project]
  set board_preset 1
}}
set_property target_language Verilog [current_project]
add_files -norecurse [list {" ".join(f"[file join $here {f}]" for f in sources)}]
add_files -fileset constrs_1 -norecurse [file join $here lowbit.xdc]
update_compile_order -fileset sources_1
source [file join $here bd.tcl]
set bd_file [get_files design_1.bd]
generate_target all $bd_file
set wrapper [make_wrapper -files $bd_file -top]
add_files -norecurse $wrapper
set_property top design_1_wrapper [current_fileset]
update_compile_order -fileset sources_1
launch_runs impl_1 -to_step write_bitstream -jobs 4
wait_on_run impl_1
if {{[get_property PROGRESS [get_runs impl_1]] ne "100%"}} {{
  error "lowbit: implementation did not complete; see [file join $proj_dir lowbit.runs impl_1 runme.log]"
}}
file copy -force [file join [get_property DIRECTORY [get_runs impl_1]] design_1_wrapper.bit] [file join $here lowbit.bit]
file copy -force [lindex [get_files -all design_1.hwh] 0] [file join $here lowbit.hwh]
write_hw_platform -fixed -include_bit -force [file join $here lowbit.xsa]
puts "lowbit: wrote [file join $here lowbit.bit], lowbit.hwh and lowbit.xsa"
"""


_XDC = """# lowbit: the block design's top-level ports are the PS's DDR and FIXED_IO (MIO) pins, constrained
# by the PS IP itself; the accelerator, DMA and reset are internal. Clocks come from the PS (FCLK/PL0).
set_property BITSTREAM.GENERAL.COMPRESS TRUE [current_design]
"""

_BUILD_SH = """#!/bin/sh
# lowbit Vivado plan: builds lowbit.bit, lowbit.hwh and lowbit.xsa next to this script.
set -e
cd "$(dirname "$0")"
exec vivado -mode batch -nojournal -log vivado.log -source build.tcl
"""


def vivado_plan_files(board: Board, verilog: str, *, clock_mhz: float, in_bits: int, out_bits: int,
                      beats_per_image: int, weight_ports: Sequence[WeightPort] = ()) -> tuple[dict[str, str], dict]:
    """The files of a Vivado plan (name -> text) and its summary.

    ``weight_ports`` are the layers whose weights stream from DDR (``ws<unit>`` ports of
    ``lowbit_top``): each gets a fetcher in ``lowbit_wfetch.v`` and an AXI-HP port of its own.

    Raises
    ------
    LowbitError
        If ``board`` has no Zynq processing system, or too few AXI-HP ports for ``weight_ports``.
    """
    if board.ps not in ("PS7", "ZynqMP"):
        raise LowbitError(f"board {board.name!r} has no Zynq processing system (ps {board.ps!r}); "
                          f"a Vivado plan needs PS7 or ZynqMP")
    if not re.search(r"^module lowbit_top\b", verilog, re.M):
        raise LowbitError("the accelerator's Verilog has no module lowbit_top")
    for p in weight_ports:
        if not re.search(rf"\bws{p.unit}__payload\b", verilog):
            raise LowbitError(f"the accelerator's Verilog has no weight port ws{p.unit} (weight port {p.index})")
    tin, tout = axis_width(in_bits), axis_width(out_bits)
    hps = hp_ports(board, len(weight_ports))
    bd, pins = _bd_tcl(board, clock_mhz, tin, tout, weight_ports, hps)
    files = {
        "lowbit_top.v": verilog,
        "lowbit_axis.v": axis_adapter_verilog(in_bits, out_bits, beats_per_image, weight_ports),
        "lowbit_ctrl.v": control_verilog(beats_per_image, len(weight_ports)),
    }
    if weight_ports:
        files["lowbit_wfetch.v"] = fetcher_verilog(weight_ports)
    sources = list(files)
    files.update({
        "bd.tcl": bd,
        "build.tcl": _build_tcl(board, clock_mhz, sources),
        "lowbit.xdc": _XDC,
        "build.sh": _BUILD_SH,
    })
    summary = {
        "flow": "vivado", "part": board.part, "ps": board.ps, "ps_cell": pins["ps"], "clock_mhz": clock_mhz,
        "axis": {"in_tdata_bits": tin, "in_payload_bits": in_bits, "out_tdata_bits": tout,
                 "out_payload_bits": out_bits, "beats_per_image": beats_per_image},
        "control_port": pins["gp"].strip("/"), "data_port": pins["hp"].strip("/"),
        "control_registers": "lowbit.hw.axi.control.REGISTERS (accel/s_axi)",
        "weight_ports": [{"index": p.index, "unit": p.unit, "word_bits": p.word_bits, "words": p.words,
                          "data_bits": p.data_bits, "addr_bits": p.addr_bits, "outstanding": p.outstanding,
                          "interface": f"accel/{p.bus}",
                          "hp_port": pin.strip("/")} for p, (_, pin) in zip(weight_ports, hps)],
        "bitstream": "lowbit.bit", "hwh": "lowbit.hwh", "xsa": "lowbit.xsa",
        "run": "sh build.sh  (in this directory, with vivado on PATH)",
    }
    return files, summary
