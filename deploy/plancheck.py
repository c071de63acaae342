"""A dry run of a Vivado plan without Vivado: its Tcl executed by ``tclsh`` against stand-ins.

:func:`check_vivado_plan` sources the plan's ``build.tcl`` (which sources ``bd.tcl``) in a Tcl
interpreter where every Vivado command the plan uses is a small procedure that checks its use:

* every cell a pin belongs to was created first, with the IP or module it was created from;
* every pin and interface pin exists: the IP cores' from :data:`IP_PINS` (names from their product
  guides), the ``lowbit_axis`` module's from its Verilog, grouped into interfaces the way Vivado
  infers them from port names (AXI4-Stream ``<name>_tdata/tvalid/tready``; AXI4 or AXI4-Lite
  ``<name>_araddr ... rready`` and the write channels when present), and each such interface named
  in the clock port's ``ASSOCIATED_BUSIF``;
* a PS port is switched on in the PS configuration before it is used (``PCW_USE_S_AXI_HP1``,
  ``PSU__USE__S_AXI_GP3``, ...);
* ``apply_bd_automation`` names a known rule and its Master / Slave are known interface pins;
* every file ``add_files`` adds exists inside the plan's directory (symlinks resolved; so does every
  file the plan sources), and the sources hold module ``lowbit_axis``.

It runs twice, with and without the board files (``board_preset`` 1 and 0). What it cannot check is
Vivado's own behaviour (IP parameter ranges, address maps, timing): that needs Vivado.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .. import LowbitError
from ..sim._harness import parse_ports

__all__ = ["IP_PINS", "module_interfaces", "check_vivado_plan"]

IP_PINS = {
    "xilinx.com:ip:processing_system7": {
        "FCLK_CLK0",
        "FCLK_RESET0_N",
        "M_AXI_GP0",
        "M_AXI_GP0_ACLK",
        "DDR",
        "FIXED_IO",
        *(f"S_AXI_HP{k}" for k in range(4)),
        *(f"S_AXI_HP{k}_ACLK" for k in range(4)),
    },
    "xilinx.com:ip:zynq_ultra_ps_e": {
        "pl_clk0",
        "pl_resetn0",
        "M_AXI_HPM0_FPD",
        "maxihpm0_fpd_aclk",
        *(f"S_AXI_HP{k}_FPD" for k in range(4)),
        *(f"saxihp{k}_fpd_aclk" for k in range(4)),
    },
    "xilinx.com:ip:axi_dma": {
        "s_axi_lite_aclk",
        "m_axi_mm2s_aclk",
        "m_axi_s2mm_aclk",
        "axi_resetn",
        "S_AXI_LITE",
        "M_AXI_MM2S",
        "M_AXI_S2MM",
        "M_AXIS_MM2S",
        "S_AXIS_S2MM",
        "mm2s_introut",
        "s2mm_introut",
    },
    "xilinx.com:ip:proc_sys_reset": {
        "slowest_sync_clk",
        "ext_reset_in",
        "aux_reset_in",
        "dcm_locked",
        "peripheral_aresetn",
        "peripheral_reset",
        "interconnect_aresetn",
        "mb_reset",
        "bus_struct_reset",
    },
}
"""Pins and interface pins of the IP cores the plans instantiate (PG082 processing_system7,
PG201 zynq_ultra_ps_e, PG021 axi_dma, PG164 proc_sys_reset); only the ones a plan may name."""

_ENABLES = {
    **{f"S_AXI_HP{k}": f"CONFIG.PCW_USE_S_AXI_HP{k}" for k in range(4)},
    "M_AXI_GP0": "CONFIG.PCW_USE_M_AXI_GP0",
    **{
        f"S_AXI_HP{k}_FPD": f"CONFIG.PSU__USE__S_AXI_GP{k + 2}" for k in range(4)
    },  # HPk_FPD is saxigp(k+2)
    "M_AXI_HPM0_FPD": "CONFIG.PSU__USE__M_AXI_GP0",
}
"""PS interface pins that exist only once this configuration parameter is 1 (PG082, PG201)."""

_AXIS = {"tdata", "tvalid", "tready"}
_AXI_READ = {"araddr", "arvalid", "arready", "rdata", "rresp", "rvalid", "rready"}
_AXI_WRITE = {
    "awaddr",
    "awvalid",
    "awready",
    "wdata",
    "wvalid",
    "wready",
    "bresp",
    "bvalid",
    "bready",
}


def module_interfaces(
    verilog: str, module: str = "lowbit_axis"
) -> tuple[set[str], set[str], set[str]]:
    """``(ports, interfaces, associated)`` of ``module``: its port names, the bus interfaces Vivado
    infers from them, and the interfaces its clock's ``ASSOCIATED_BUSIF`` names.

    The plan's ``lowbit_axis.v`` is read as the file on disk, since that file is what Vivado will
    read (it may have been edited after ``lowbit build``); its ports come from
    :func:`lowbit.sim._harness.parse_ports`, the one Verilog port parser.
    """
    try:
        ports = [p.name for p in parse_ports(verilog, module)]
    except ValueError as e:  # no such module, or one without ports
        raise LowbitError(f"the plan's sources: {e}") from None
    groups: dict[str, set[str]] = {}
    for p in ports:
        prefix, _, signal = p.rpartition("_")
        if prefix:
            groups.setdefault(prefix, set()).add(signal)
    interfaces = set()
    for prefix, signals in groups.items():
        if _AXIS <= signals:
            interfaces.add(prefix)
        elif _AXI_READ <= signals or _AXI_WRITE <= signals:
            if (_AXI_READ & signals and not _AXI_READ <= signals) or (
                _AXI_WRITE & signals and not _AXI_WRITE <= signals
            ):
                raise LowbitError(
                    f"module {module}: interface {prefix} has part of an AXI channel: "
                    f"{sorted(signals)}"
                )
            interfaces.add(prefix)
    busif = re.search(r"ASSOCIATED_BUSIF ([\w:]+)", verilog)
    associated = set(busif.group(1).split(":")) if busif else set()
    return set(ports), interfaces, associated


_PRELUDE = """
rename file _tcl_file
proc file {sub args} {
  if {$sub eq "copy"} { return }
  return [_tcl_file $sub {*}$args]
}
array set cells {}
array set props {}
set calls 0
set pins_used 0
set automations 0
proc fail {msg} { error "lowbit plan check: $msg" }
proc split_path {path} {
  set path [string trimleft $path /]
  set parts [split $path /]
  if {[llength $parts] != 2} { fail "pin path '$path' is not cell/pin" }
  return $parts
}
proc check_pin {path kind} {
  global cells props ip_pins module_ports module_intfs enables pins_used
  lassign [split_path $path] cell pin
  if {![info exists cells($cell)]} { fail "pin $path: no cell '$cell' was created before" }
  set src $cells($cell)
  incr pins_used
  if {$src eq "module"} {
    if {$kind eq "intf"} {
      if {[lsearch -exact $module_intfs $pin] < 0} { fail "interface pin $path: lowbit_axis has \
no interface '$pin' (inferred: $module_intfs)" }
    } elseif {[lsearch -exact $module_ports $pin] < 0} { \
fail "pin $path: lowbit_axis has no port '$pin'" }
    return
  }
  if {[lsearch -exact $ip_pins($src) $pin] < 0} { fail "pin $path: $src has no pin '$pin'" }
  if {[info exists enables($pin)]} {
    set name $enables($pin)
    if {![info exists props($cell,$name)] || $props($cell,$name) ne "1"} {
      fail "pin $path is used but $name is not set to 1 on $cell"
    }
  }
}
proc create_bd_design {name} { incr ::calls }
proc create_bd_cell {args} {
  global cells
  incr ::calls
  set name [lindex $args end]
  set type [lindex $args [expr {[lsearch -exact $args -type] + 1}]]
  if {$type eq "ip"} {
    set vlnv [lindex $args [expr {[lsearch -exact $args -vlnv] + 1}]]
    set base [join [lrange [split $vlnv :] 0 2] :]
    if {![info exists ::ip_pins($base)]} { fail "cell $name: unknown IP $vlnv" }
    set cells($name) $base
  } elseif {$type eq "module"} {
    set ref [lindex $args [expr {[lsearch -exact $args -reference] + 1}]]
    if {$ref ne "lowbit_axis"} { fail "cell $name: unknown module $ref" }
    set cells($name) module
  } else { fail "cell $name: unknown type $type" }
  return $name
}
proc set_property {args} {
  global props
  incr ::calls
  if {[lindex $args 0] eq "-dict"} {
    set obj [lindex $args 2]
    foreach {k v} [lindex $args 1] { set props($obj,$k) $v }
  } else {
    lassign $args k v obj
    set props($obj,$k) $v
  }
}
proc get_bd_pins {path} { check_pin $path pin; return [string trimleft $path /] }
proc get_bd_intf_pins {path} { check_pin $path intf; return [string trimleft $path /] }
proc connect_bd_net {args} {
  incr ::calls
  if {[lindex $args 0] eq "-net"} { set args [lrange $args 2 end] }
  if {[llength $args] < 2} { fail "connect_bd_net needs at least two pins: $args" }
}
proc connect_bd_intf_net {args} {
  incr ::calls
  if {[llength $args] != 2} { fail "connect_bd_intf_net needs two interface pins: $args" }
}
proc apply_bd_automation {args} {
  incr ::calls
  incr ::automations
  set rule [lindex $args [expr {[lsearch -exact $args -rule] + 1}]]
  set known {xilinx.com:bd_rule:processing_system7 xilinx.com:bd_rule:zynq_ultra_ps_e \
xilinx.com:bd_rule:axi4}
  if {[lsearch -exact $known $rule] < 0} { fail "unknown automation rule $rule" }
  set config [lindex $args [expr {[lsearch -exact $args -config] + 1}]]
  foreach {k v} $config {
    if {$k in {Master Slave} && $v ne "Disable"} { check_pin $v intf }
  }
}
foreach cmd {assign_bd_address validate_bd_design save_bd_design update_compile_order \
generate_target
             launch_runs wait_on_run write_hw_platform} {
  proc $cmd {args} { incr ::calls }
}
proc create_project {args} { incr ::calls }
proc current_project {args} { return lowbit }
proc current_fileset {args} { return sources_1 }
proc get_board_parts {args} { return $::board_part_found }
proc get_files {args} { return [lindex $args end] }
proc make_wrapper {args} { return design_1_wrapper.v }
proc get_runs {name} { return $name }
proc get_property {name obj} {
  if {$name eq "PROGRESS"} { return "100%" }
  return /nonexistent/$obj
}
proc inside_plan {f what} {
  # normalize resolves links in all but the last component: join a dummy one to resolve it too
  set full [_tcl_file dirname [_tcl_file normalize [_tcl_file join $f _]]]
  if {[string first "$::plan_root/" "$full/"] != 0 || $full eq $::plan_root} {
    fail "$what: $f resolves to $full, outside the plan directory $::plan_root"
  }
  return $full
}
rename source _tcl_source
proc source {f} { uplevel 1 [list _tcl_source [inside_plan $f source]] }
proc add_files {args} {
  incr ::calls
  set files [lindex $args end]
  foreach f $files {
    if {$f eq "design_1_wrapper.v"} { continue }
    inside_plan $f add_files
    if {![_tcl_file exists $f]} { fail "add_files: no file $f" }
    lappend ::added [_tcl_file tail $f]
  }
}
set added {}
"""


def check_vivado_plan(plan_dir: str | Path) -> dict:
    """Dry-run the Vivado plan in ``plan_dir`` (see the module docstring).

    Returns
    -------
    dict
        ``{"cells", "pins_checked", "automations", "files_added", "interfaces"}`` of the run with
        the board files; the run without them must pass too.

    Raises
    ------
    LowbitError
        Naming the first problem, or when ``tclsh`` is missing.
    """
    plan_dir = Path(plan_dir)
    tclsh = shutil.which("tclsh")
    if tclsh is None:
        raise LowbitError("checking a Vivado plan needs tclsh (apt-get install tcl)")
    for name in ("build.tcl", "bd.tcl", "lowbit_axis.v"):
        if not (plan_dir / name).is_file():
            raise LowbitError(
                f"{plan_dir}: missing {name}; expected a Vivado plan from 'lowbit build'"
            )
    ports, interfaces, associated = module_interfaces((plan_dir / "lowbit_axis.v").read_text())
    loose = interfaces - associated
    if loose:
        raise LowbitError(
            f"lowbit_axis: interface(s) {sorted(loose)} are not in the clock's ASSOCIATED_BUSIF"
        )
    ip_pins = "\n".join(
        f"set ip_pins({ip}) {{{' '.join(sorted(pins))}}}" for ip, pins in IP_PINS.items()
    )
    enables = " ".join(f"{pin} {param}" for pin, param in _ENABLES.items())
    summary: dict | None = None
    for preset in (1, 0):
        script = (
            _PRELUDE + ip_pins + f"\nset module_ports {{{' '.join(sorted(ports))}}}"
            f"\nset module_intfs {{{' '.join(sorted(interfaces))}}}"
            f"\nset plan_root [_tcl_file normalize {{{plan_dir.resolve()}}}]\narray set enables "
            f"{{{enables}}}\nset board_part_found {{{'board:part' if preset else ''}}}"
            f"\nif {{[catch {{source {{{(plan_dir / 'build.tcl').resolve()}}}}} msg]}} "
            "{ puts stderr $msg; exit 1 }"
            "\nputs [list $calls $pins_used $automations [array size cells] $added]\nexit 0\n"
        )
        proc = subprocess.run([tclsh], input=script, capture_output=True, text=True)
        if proc.returncode != 0:
            msg = next(
                (line for line in proc.stderr.splitlines() if "lowbit plan check" in line),
                proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else "tclsh failed",
            )
            raise LowbitError(
                f"{plan_dir / 'build.tcl'} (board files {'present' if preset else 'absent'}): "
                f"{msg.strip()}"
            )
        fields = proc.stdout.strip().splitlines()[-1].split(" ", 4)
        calls, pins, autos, cells = map(int, fields[:4])
        added = fields[4].strip("{}").split()
        if summary is None:
            summary = {
                "cells": cells,
                "pins_checked": pins,
                "automations": autos,
                "files_added": added,
                "interfaces": sorted(interfaces),
                "vivado_calls": calls,
            }
    if summary is None:  # not reached: the first run above sets it
        raise LowbitError(f"{plan_dir / 'build.tcl'}: the dry run gave no summary")
    missing = [
        n
        for n in ("lowbit_top.v", "lowbit_axis.v", "lowbit_ctrl.v")
        if n not in summary["files_added"]
    ]
    if missing:
        raise LowbitError(f"{plan_dir / 'build.tcl'} does not add {', '.join(missing)}")
    return summary
