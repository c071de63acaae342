"""Vivado project plans for the Zynq boards (Zynq-7000 with PS7, Zynq UltraScale+ with ZynqMP).

:func:`write_vivado_plan` writes everything needed to build the accelerator on the board with
Vivado, and nothing that needs Vivado to write:

* ``lowbit_top.v`` (the accelerator) and ``lowbit_axis.v``, an AXI4-Stream adapter
  (:func:`axis_adapter_verilog`, the Amaranth component
  :class:`~lowbit.hw.axi.shells_axis.AXISAdapter`, whose module docstring gives the protocol):
  ``tdata``/``tvalid``/``tready``/``tlast`` in and out, the payload in the low bits of ``tdata``.
  The output beat of an image carries ``tlast`` when the last input beat of the same image did (a
  FIFO of :data:`TLAST_FIFO_DEPTH` flags; input stalls while it is full), so one DMA transfer of N
  images comes back as one transfer of N results;
* ``lowbit_ctrl.v``: the AXI4-Lite control block (:mod:`lowbit.hw.axi.control`, with the register
  map) on ``lowbit_axis``'s ``s_axi``;
* ``lowbit_wfetch.v``, when layers stream their weights from DDR (``"weights": "ddr"`` in the
  schedule): one :class:`~lowbit.hw.axi.wfetch.WeightFetcher` per such layer, an AXI4 read master
  that reads the layer's weight image from DDR pass after pass into the accelerator's ``ws<k>``
  port. ``lowbit_axis`` instantiates them and exposes their AXI ports as ``m_axi_w<k>``; the control
  block holds their DDR addresses (``WBASE``) and run bit (``WCTRL``);
* ``bd.tcl``: the block design: the processing system (``processing_system7`` or
  ``zynq_ultra_ps_e``) with the schedule's fabric clock on FCLK0 / PL0, an AXI DMA (simple mode, no
  scatter-gather) whose control port hangs off GP0 / HPM0_FPD and whose memory ports use HP0, the
  adapter between the DMA's streams, a ``proc_sys_reset``, and each weight fetcher on an AXI-HP
  port of its own (HP1, HP2, HP3: the mapper's DDR model gives each streamed layer one spare port);
* ``build.tcl``: creates the project for the board's part (and its board part, the record's
  ``vivado_board_part``, when the board files are installed; else the PS7 gets the record's
  ``ddr_part``), adds the sources, runs ``bd.tcl``, the wrapper, synthesis, implementation and
  ``write_bitstream``, and copies ``lowbit.bit`` and ``lowbit.hwh`` (the hardware handoff PYNQ
  reads) next to it, plus ``lowbit.xsa`` from ``write_hw_platform``;
* ``lowbit.xdc``: bitstream settings. The block design's top-level ports are the PS's DDR and
  FIXED_IO (MIO) pins, which the PS IP constrains itself; the fabric has no other pins;
* ``build.sh``: ``vivado -mode batch -source build.tcl`` from the plan's directory.
"""

from __future__ import annotations

import math
from typing import Sequence

from .. import LowbitError
from ..boards.records import Board
from ..hw.axi.control import ControlBlock
from ..hw.axi.shells import shell_verilog
from ..hw.axi.shells_axis import TLAST_FIFO_DEPTH, AXISAdapter, WeightPort, axis_width
from ..hw.verilog import TOPLEVEL, to_verilog
from ..limits import LIMITS
from ..sim._harness import parse_ports

__all__ = [
    "TLAST_FIFO_DEPTH",
    "WeightPort",
    "axis_width",
    "axis_adapter_verilog",
    "check_clock_mhz",
    "control_verilog",
    "fetcher_verilog",
    "hp_ports",
    "vivado_plan_files",
]


def check_clock_mhz(mhz: float, where: str) -> float:
    """``mhz`` as a float, when it is a fabric clock lowbit may write into a build: a finite
    number of MHz above 0 and at most ``LIMITS.clock_mhz``; else a :class:`LowbitError` naming
    ``where`` (the parameter or file it came from)."""
    if isinstance(mhz, bool) or not isinstance(mhz, (int, float)):
        raise LowbitError(f"{where}: expected a clock in MHz, not {mhz!r}")
    if not (math.isfinite(mhz) and 0 < mhz <= LIMITS.clock_mhz):
        raise LowbitError(
            f"{where}: a clock must be finite, above 0 and at most {LIMITS.clock_mhz:g} MHz, "
            f"not {mhz!r}"
        )
    return float(mhz)


def axis_adapter_verilog(
    in_bits: int, out_bits: int, beats_per_image: int, weight_ports: Sequence[WeightPort] = ()
) -> str:
    """The Verilog of ``lowbit_axis``: the :class:`~lowbit.hw.axi.shells_axis.AXISAdapter` of
    ``in_bits``/``out_bits``-bit payloads, ``beats_per_image`` input beats per image and
    ``weight_ports``."""
    shell = AXISAdapter(
        in_bits=in_bits,
        out_bits=out_bits,
        beats_per_image=beats_per_image,
        weight_ports=weight_ports,
    )
    tin, tout = shell.in_tdata_bits, shell.out_tdata_bits
    return shell_verilog(
        shell,
        "lowbit_axis",
        header=[
            "lowbit_axis: lowbit_top with AXI4-Stream ports for an AXI DMA.",
            f"s_axis: {beats_per_image} beats per image, payload in tdata[{in_bits - 1}:0] of "
            f"{tin}.",
            f"m_axis: one beat per image, {{label, scores}} in tdata[{out_bits - 1}:0] of {tout}; "
            "tlast as on the image's last input beat.",
            f"m_axi_w<k>: AXI4 read masters of the weight fetchers (weights streamed from DDR): "
            f"{len(shell.weight_ports)}.",
            "s_axi: the AXI4-Lite control block lowbit_ctrl (register map in "
            "lowbit.hw.axi.control).",
            "Protocol: lowbit.hw.axi.shells_axis.",
        ],
    )


def control_verilog(beats_per_image: int, weight_ports: int = 0) -> str:
    """The Verilog of ``lowbit_ctrl``, the AXI4-Lite control block
    (:mod:`lowbit.hw.axi.control`)."""

    return to_verilog(ControlBlock(beats_per_image, weight_ports), name="lowbit_ctrl")


def fetcher_verilog(ports: Sequence[WeightPort]) -> str:
    """The Verilog of the weight fetchers ``lowbit_wfetch<k>`` (:mod:`lowbit.hw.axi.wfetch`), one
    module each."""

    return "\n".join(to_verilog(p.fetcher(), name=p.module) for p in ports)


def _ps7_tcl(board: Board, clock_mhz: float) -> tuple[str, dict]:
    ddr = board.ddr_part
    ddr_line = f"\n  lappend cfg CONFIG.PCW_UIPARAM_DDR_PARTNO {{{ddr}}}" if ddr else ""
    tcl = f"""set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7:5.5 ps7]
apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \\
  -config [list make_external "FIXED_IO, DDR" apply_board_preset $board_preset Master Disable \
Slave Disable] $ps
set cfg [list CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {{{clock_mhz:g}}} CONFIG.PCW_EN_CLK0_PORT {{1}} \\
  CONFIG.PCW_EN_RST0_PORT {{1}} CONFIG.PCW_USE_M_AXI_GP0 {{1}} CONFIG.PCW_USE_S_AXI_HP0 {{1}} \\
  CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {{64}}]
if {{!$board_preset}} {{{ddr_line}
}}
set_property -dict $cfg $ps
"""
    pins = {
        "ps": "ps7",
        "clk": "ps7/FCLK_CLK0",
        "resetn": "ps7/FCLK_RESET0_N",
        "gp": "/ps7/M_AXI_GP0",
        "hp": "/ps7/S_AXI_HP0",
    }
    return tcl, pins


def _zynqmp_tcl(board: Board, clock_mhz: float) -> tuple[str, dict]:
    tcl = f"""set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e:3.5 zynq_ps]
apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e \
-config [list apply_board_preset $board_preset] $ps
set_property -dict [list CONFIG.PSU__FPGA_PL0_ENABLE {{1}} \
CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ {{{clock_mhz:g}}} \\
  CONFIG.PSU__USE__M_AXI_GP0 {{1}} \
CONFIG.PSU__USE__M_AXI_GP1 {{0}} CONFIG.PSU__USE__M_AXI_GP2 {{0}} \\
  CONFIG.PSU__USE__S_AXI_GP2 {{1}} CONFIG.PSU__SAXIGP2__DATA_WIDTH {{128}}] $ps
"""
    pins = {
        "ps": "zynq_ps",
        "clk": "zynq_ps/pl_clk0",
        "resetn": "zynq_ps/pl_resetn0",
        "gp": "/zynq_ps/M_AXI_HPM0_FPD",
        "hp": "/zynq_ps/S_AXI_HP0_FPD",
    }
    return tcl, pins


def hp_ports(board: Board, n: int) -> list[tuple[str, str]]:
    """``(PS configuration, interface pin)`` of the ``n`` AXI-HP ports the weight fetchers use: HP1,
    HP2, ... (HP0 carries the image DMA). Raises LowbitError when the board has too few."""
    spare = max(0, board.axi_hp_ports - 1)
    if n > spare:
        raise LowbitError(
            f"{n} layers stream their weights from DDR, but board {board.name!r} has only {spare} "
            f"AXI-HP ports besides the image DMA's; keep more weights on chip"
        )
    width = board.axi_hp_width_bits
    if board.ps == "PS7":
        return [
            (
                f"CONFIG.PCW_USE_S_AXI_HP{j} {{1}} CONFIG.PCW_S_AXI_HP{j}_DATA_WIDTH {{{width}}}",
                f"/ps7/S_AXI_HP{j}",
            )
            for j in range(1, n + 1)
        ]
    # ZynqMP: S_AXI_HPj_FPD is saxigp(j + 2)
    return [
        (
            f"CONFIG.PSU__USE__S_AXI_GP{j + 2} {{1}} CONFIG.PSU__SAXIGP{j + 2}__DATA_WIDTH "
            f"{{{width}}}",
            f"/zynq_ps/S_AXI_HP{j}_FPD",
        )
        for j in range(1, n + 1)
    ]


def weight_port_address_bits(board: Board) -> int:
    """Address width of a weight fetcher's AXI port: 32 on PS7, 40 on ZynqMP (its DDR lies below
    2^40)."""
    return 32 if board.ps == "PS7" else 40


def _bd_tcl(
    board: Board,
    clock_mhz: float,
    tin: int,
    tout: int,
    weight_ports: Sequence[WeightPort] = (),
    hps: Sequence[tuple[str, str]] = (),
) -> tuple[str, dict]:
    """The block design; ``hps`` are the weight ports' AXI-HP ports (:func:`hp_ports`)."""
    ps_tcl, p = (_ps7_tcl if board.ps == "PS7" else _zynqmp_tcl)(board, clock_mhz)
    if hps:
        ps_tcl += (
            "# weight fetchers: one AXI-HP port each\n"
            f"set_property -dict [list {' '.join(c for c, _ in hps)}] $ps\n"
        )
    w_tcl = "".join(
        f"""apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
  -config [list Slave {pin} Clk Auto] [get_bd_intf_pins accel/{wp.bus}]
"""
        for wp, (_, pin) in zip(weight_ports, hps)
    )
    mm = max(tin, tout, 64 if board.ps == "PS7" else 128)
    tcl = f"""# lowbit block design: {board.ps} + AXI DMA (HP0) + lowbit_axis; DMA control on \
the GP port.
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
connect_bd_net [get_bd_pins {p["clk"]}] [get_bd_pins rst_pl/slowest_sync_clk] \
[get_bd_pins accel/aclk] \\
  [get_bd_pins axi_dma/s_axi_lite_aclk] [get_bd_pins axi_dma/m_axi_mm2s_aclk] \
[get_bd_pins axi_dma/m_axi_s2mm_aclk]
connect_bd_net [get_bd_pins {p["resetn"]}] [get_bd_pins rst_pl/ext_reset_in]
connect_bd_net [get_bd_pins rst_pl/peripheral_aresetn] [get_bd_pins accel/aresetn] \
[get_bd_pins axi_dma/axi_resetn]
connect_bd_intf_net [get_bd_intf_pins axi_dma/M_AXIS_MM2S] [get_bd_intf_pins accel/s_axis]
connect_bd_intf_net [get_bd_intf_pins accel/m_axis] [get_bd_intf_pins axi_dma/S_AXIS_S2MM]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
  -config [list Master {p["gp"]} Clk Auto] [get_bd_intf_pins axi_dma/S_AXI_LITE]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
  -config [list Master {p["gp"]} Clk Auto] [get_bd_intf_pins accel/s_axi]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
  -config [list Slave {p["hp"]} Clk Auto] [get_bd_intf_pins axi_dma/M_AXI_MM2S]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
  -config [list Slave {p["hp"]} Clk Auto] [get_bd_intf_pins axi_dma/M_AXI_S2MM]
{w_tcl}assign_bd_address
validate_bd_design
save_bd_design
"""
    return tcl, p


def _build_tcl(board: Board, clock_mhz: float, sources: Sequence[str]) -> str:
    return f"""# lowbit Vivado plan for {board.name}: part {board.part}, {board.ps}, fabric clock \
{clock_mhz:g} MHz.
# Run from any directory: vivado -mode batch -source build.tcl (or ./build.sh).
set here [file dirname [file normalize [info script]]]
set proj_dir [file join $here vivado]
create_project -force lowbit $proj_dir -part {board.part}
set board_preset 0
set board_part [lindex [get_board_parts -quiet -latest_file_version \
{{{board.vivado_board_part or "-"}}}] 0]
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
  error "lowbit: implementation did not complete; see \
[file join $proj_dir lowbit.runs impl_1 runme.log]"
}}
file copy -force [file join [get_property DIRECTORY [get_runs impl_1]] design_1_wrapper.bit] \
[file join $here lowbit.bit]
file copy -force [lindex [get_files -all design_1.hwh] 0] [file join $here lowbit.hwh]
write_hw_platform -fixed -include_bit -force [file join $here lowbit.xsa]
puts "lowbit: wrote [file join $here lowbit.bit], lowbit.hwh and lowbit.xsa"
"""


_XDC = """# lowbit: the block design's top-level ports are the PS's DDR and FIXED_IO (MIO) pins, \
constrained
# by the PS IP itself; the accelerator, DMA and reset are internal. Clocks come from the PS \
(FCLK/PL0).
set_property BITSTREAM.GENERAL.COMPRESS TRUE [current_design]
"""

_BUILD_SH = """#!/bin/sh
# lowbit Vivado plan: builds lowbit.bit, lowbit.hwh and lowbit.xsa next to this script.
set -e
cd "$(dirname "$0")"
exec vivado -mode batch -nojournal -log vivado.log -source build.tcl
"""


def vivado_plan_files(
    board: Board,
    verilog: str,
    *,
    clock_mhz: float,
    in_bits: int,
    out_bits: int,
    beats_per_image: int,
    weight_ports: Sequence[WeightPort] = (),
) -> tuple[dict[str, str], dict]:
    """The files of a Vivado plan (name -> text) and its summary.

    ``weight_ports`` are the layers whose weights stream from DDR (``ws<unit>`` ports of
    ``lowbit_top``): each gets a fetcher in ``lowbit_wfetch.v`` and an AXI-HP port of its own.

    Raises
    ------
    LowbitError
        If ``board`` has no Zynq processing system, too few AXI-HP ports for ``weight_ports``, or
        ``clock_mhz`` is no clock (:func:`check_clock_mhz`).
    """
    if not board.has_ps:
        raise LowbitError(
            f"board {board.name!r} has no Zynq processing system (ps {board.ps!r}); "
            f"a Vivado plan needs PS7 or ZynqMP"
        )
    clock_mhz = check_clock_mhz(clock_mhz, "clock_mhz")
    try:  # the accelerator is only at hand as its Verilog (a compiled directory's lowbit_top.v)
        top_ports = {port.name: port.width for port in parse_ports(verilog, TOPLEVEL)}
    except ValueError:
        raise LowbitError(f"the accelerator's Verilog has no module {TOPLEVEL}") from None
    for p in weight_ports:
        width = top_ports.get(f"ws{p.unit}__payload")
        layer = f" of layer {p.layer!r}" if p.layer else ""
        if width is None:
            raise LowbitError(
                f"the accelerator's Verilog has no weight port ws{p.unit} (weight port {p.index}"
                f"{layer})"
            )
        if width != p.word_bits:
            raise LowbitError(
                f"the accelerator's weight port ws{p.unit} takes {width}-bit words, "
                f"not the {p.word_bits}-bit words of weight port {p.index}{layer}"
            )
    tin, tout = axis_width(in_bits), axis_width(out_bits)
    hps = hp_ports(board, len(weight_ports))
    bd, pins = _bd_tcl(board, clock_mhz, tin, tout, weight_ports, hps)
    files = {
        f"{TOPLEVEL}.v": verilog,
        "lowbit_axis.v": axis_adapter_verilog(in_bits, out_bits, beats_per_image, weight_ports),
        "lowbit_ctrl.v": control_verilog(beats_per_image, len(weight_ports)),
    }
    if weight_ports:
        files["lowbit_wfetch.v"] = fetcher_verilog(weight_ports)
    sources = list(files)
    files.update(
        {
            "bd.tcl": bd,
            "build.tcl": _build_tcl(board, clock_mhz, sources),
            "lowbit.xdc": _XDC,
            "build.sh": _BUILD_SH,
        }
    )
    summary = {
        "flow": "vivado",
        "part": board.part,
        "ps": board.ps,
        "ps_cell": pins["ps"],
        "clock_mhz": clock_mhz,
        "axis": {
            "in_tdata_bits": tin,
            "in_payload_bits": in_bits,
            "out_tdata_bits": tout,
            "out_payload_bits": out_bits,
            "beats_per_image": beats_per_image,
        },
        "control_port": pins["gp"].strip("/"),
        "data_port": pins["hp"].strip("/"),
        "control_registers": "lowbit.hw.axi.control.REGISTERS (accel/s_axi)",
        "weight_ports": [
            {
                "index": p.index,
                "layer": p.layer,
                "unit": p.unit,
                "word_bits": p.word_bits,
                "words": p.words,
                "data_bits": p.data_bits,
                "addr_bits": p.addr_bits,
                "outstanding": p.outstanding,
                "interface": f"accel/{p.bus}",
                "hp_port": pin.strip("/"),
            }
            for p, (_, pin) in zip(weight_ports, hps)
        ],
        "bitstream": "lowbit.bit",
        "hwh": "lowbit.hwh",
        "xsa": "lowbit.xsa",
        "run": "sh build.sh  (in this directory, with vivado on PATH)",
    }
    return files, summary
