"""The mapper's estimate next to what the tools measured, and the shell's bound on images/s.

**Estimate against the tools** (:func:`estimate_vs_tool`). After an open-flow build the mapper's
resources (:meth:`lowbit.mapping.Schedule.report`, the compiled directory's ``report.json``) are
set beside the counts of

* yosys: the cells of the synthesised netlist (``top.json``), per resource kind, for the
  accelerator as a whole and for each of its units (layers, width converters, the label select);
* nextpnr: its utilisation report (``nextpnr_report.json``) for the whole placed design.

Each row is ``{scope, resource, estimate, estimate_unit, tool, tool_unit, source, ratio}`` with
``ratio = tool / estimate`` (``None`` when the estimate is 0 or absent). The units are not
converted into each other: the mapper counts LUT6 equivalents (the cost model is fitted to
7-series LUT6 counts), the tools count the device's LUT4s (iCE40 ``SB_LUT4``; on ECP5 the LUT4
sites of ``LUT4``, carry ``CCU2C`` and LUT-RAM ``TRELLIS_DPR16X4`` cells), and nextpnr's iCE40
figure is logic cells (``ICESTORM_LC``: a LUT4, a flip-flop and a carry each, used by either).
Block RAM is the one kind set on a common footing, in Kb, since block sizes differ (a RAMB36
equivalent is 36 Kb, an iCE40 ``SB_RAM40_4K`` 4 Kb, an ECP5 ``DP16KD`` 18 Kb); the unit says the
product.

**Per unit.** yosys flattens the design (``synth_ice40``/``synth_ecp5``), so its statistics hold
the top module only; the netlist keeps the hierarchical names, though (a cell is named after a net
of the module it was made for, e.g. ``core.accel.fc0.acc_SB_LUT4_O``), and a cell is counted for
the unit whose instance path starts its name. Names are chosen by the net a cell drives or reads,
so a cell at a unit's boundary may be counted with its neighbour; cells with internal names
(``$...``) go to a scope of their own. The tool rows of the accelerator count every cell under its
instance path; the shell's cells (UART, reset) are a scope of their own, which nextpnr's figures
for the whole design include.

**Throughput** (:func:`uart_throughput`, :func:`dma_throughput`). The predicted images/s on the
board are the smaller of the accelerator's (fabric clock / cycles per image) and the shell's:

* UART (open-flow boards): 8N1, ``BITS_PER_BYTE`` = 10 bits a byte at the nominal baud rate; the
  receiver and the transmitter are separate lines, so a host that keeps sending images is bound by
  the larger of the bytes in and out per image, ``baud / (10 * max(in, out))``. A host that sends
  one image and waits for its result gets ``baud / (10 * (in + out))`` at most (also reported);
* DMA (Zynq plans): the mapper's ``input_stream_cycles`` and ``output_stream_cycles`` (the image
  and its result through the AXI-HP port, :func:`lowbit.mapping.schedule.input_stream_cycles`), the
  two DMA channels running side by side: ``clock / max(input, output)``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from .. import LowbitError

__all__ = [
    "BITS_PER_BYTE",
    "ACCELERATOR_SCOPE",
    "DESIGN_SCOPE",
    "SHELL_SCOPE",
    "UNNAMED_SCOPE",
    "netlist_cells",
    "estimate_vs_tool",
    "uart_throughput",
    "dma_throughput",
]

BITS_PER_BYTE = 10
"""UART bits per byte: a start bit, eight data bits and a stop bit (8N1)."""
SHELL_SCOPE = "shell"
"""The scope of the netlist cells outside the accelerator's instance (the UART shell)."""
UNNAMED_SCOPE = "(internal names)"
"""The scope of the netlist cells whose names are yosys's internal ones (``$...``)."""
ACCELERATOR_SCOPE = "accelerator"
"""The scope of the rows for the accelerator as a whole (yosys, every cell under its instance)."""
DESIGN_SCOPE = "whole design"
"""The scope of nextpnr's rows: the placed design, shell and I/O included."""

_ICE40_FF = tuple(
    f"SB_DFF{n}{e}{sr}" for n in ("", "N") for e in ("", "E") for sr in ("", "R", "S", "SR", "SS")
)

# resource kind -> (unit, {cell type: weight}), per family and tool
_YOSYS = {
    "ice40": {
        "lut": ("LUT4 (SB_LUT4)", {"SB_LUT4": 1}),
        "ff": ("FF (SB_DFF*)", {t: 1 for t in _ICE40_FF}),
        "bram": ("Kb (SB_RAM40_4K x 4)", {"SB_RAM40_4K": 4}),
        "dsp": ("SB_MAC16", {"SB_MAC16": 1}),
    },
    "ecp5": {
        "lut": (
            "LUT4 (LUT4, CCU2C x 2, TRELLIS_DPR16X4 x 4)",
            {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 4},
        ),
        "ff": ("FF (TRELLIS_FF)", {"TRELLIS_FF": 1}),
        "bram": ("Kb (DP16KD or PDPW16KD x 18)", {"DP16KD": 18, "PDPW16KD": 18}),
        "dsp": ("MULT18X18D", {"MULT18X18D": 1}),
    },
}
_NEXTPNR = {
    "ice40": {
        "lut": ("logic cells (ICESTORM_LC)", {"ICESTORM_LC": 1}),
        "bram": ("Kb (ICESTORM_RAM x 4)", {"ICESTORM_RAM": 4}),
        "dsp": ("ICESTORM_DSP", {"ICESTORM_DSP": 1}),
    },
    "ecp5": {
        "lut": ("LUT4 sites (TRELLIS_COMB)", {"TRELLIS_COMB": 1}),
        "ff": ("FF (TRELLIS_FF)", {"TRELLIS_FF": 1}),
        "bram": ("Kb (DP16KD x 18)", {"DP16KD": 18}),
        "dsp": ("MULT18X18D", {"MULT18X18D": 1}),
    },
}
# resource kind -> (unit, the mapper's kind, factor)
_ESTIMATE = {
    "lut": ("LUT6-eq", "lut", 1),
    "ff": ("FF", "ff", 1),
    "bram": ("Kb (RAMB36-eq x 36)", "bram36", 36),
    "dsp": ("DSP", "dsp", 1),
}


def netlist_cells(netlist: Path, top: str, scopes: Sequence[str]) -> dict[str, Counter[str]]:
    """Cell types by scope in the flattened yosys netlist ``netlist`` (``write_json``).

    A cell belongs to the longest of ``scopes`` (hierarchical instance paths such as
    ``core.accel.fc0``) that starts its name followed by a dot; a cell of an internal name
    (``$...``) to :data:`UNNAMED_SCOPE`; any other to :data:`SHELL_SCOPE`. yosys's own cells
    (types ``$...``, e.g. ``$scopeinfo``) are not counted.
    """
    try:
        doc = json.loads(netlist.read_text())
        cells = doc["modules"][top]["cells"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LowbitError(f"{netlist}: no cells of module {top!r} ({e})") from None
    ordered = sorted(scopes, key=len, reverse=True)
    out: dict[str, Counter[str]] = {}
    for name, cell in cells.items():
        kind = cell.get("type", "")
        if kind.startswith("$"):
            continue
        if name.startswith("$"):
            scope = UNNAMED_SCOPE
        else:
            scope = next((s for s in ordered if name.startswith(s + ".")), SHELL_SCOPE)
        out.setdefault(scope, Counter())[kind] += 1
    return out


def _count(weights: Mapping[str, int], cells: Mapping[str, int]) -> int:
    return sum(w * cells.get(t, 0) for t, w in weights.items())


def _row(scope, resource, estimate, estimate_unit, tool, tool_unit, source) -> dict:
    return {
        "scope": scope,
        "resource": resource,
        "estimate": estimate,
        "estimate_unit": estimate_unit,
        "tool": tool,
        "tool_unit": tool_unit,
        "source": source,
        "ratio": tool / estimate if estimate else None,
    }


def _units(mapping: dict) -> list[tuple[str, dict[str, float], bool]]:
    """The accelerator's units as the mapper prices them: ``(instance name, resources, always)``,
    ``always`` false for the width converters (``dwc<k>``, a unit only where widths differ)."""
    units = [(layer["name"], layer["resources"], True) for layer in mapping["layers"]]
    units += [
        (f"dwc{k}", conv["resources"], False)
        for k, conv in enumerate(mapping.get("width_converters", []))
    ]
    label = mapping.get("label_select")
    if label is not None:
        units.append(("label", label["resources"], True))
    return units


def estimate_vs_tool(
    mapping: dict,
    family: str,
    netlist: Path,
    utilisation: Mapping[str, int],
    *,
    top: str,
    accelerator: str,
) -> list[dict]:
    """The mapper's resources next to yosys's and nextpnr's (see the module docstring).

    Parameters
    ----------
    mapping : dict
        :meth:`lowbit.mapping.Schedule.report` of the built design.
    family : str
        ``ice40`` or ``ecp5``.
    netlist : Path
        yosys's netlist of the design (``write_json``), module ``top``.
    utilisation : mapping
        nextpnr's used count per bel type.
    top, accelerator : str
        The design's top module, and the accelerator's instance path in it (``core.accel``).

    Returns
    -------
    list of dict
        Rows ``{scope, resource, estimate, estimate_unit, tool, tool_unit, source, ratio}``: the
        accelerator (yosys), the whole design (nextpnr), each unit (yosys; block RAM and DSP only
        when either side counts some), the shell and internally named cells (yosys, no estimate).
    """
    if family not in _YOSYS:
        raise LowbitError(f"family {family!r}: estimates are compared for ice40 or ecp5")
    yosys, nextpnr = _YOSYS[family], _NEXTPNR[family]

    def estimate(resources: Mapping[str, float], kind: str) -> float:
        _, key, factor = _ESTIMATE[kind]
        return resources[key] * factor

    units = _units(mapping)
    scopes = [accelerator] + [f"{accelerator}.{name}" for name, _, _ in units]
    cells = netlist_cells(netlist, top, scopes)
    total = {key: v["used"] for key, v in mapping["resources"].items()}
    in_accel: Counter[str] = Counter()
    for scope, counts in cells.items():
        if scope == accelerator or scope.startswith(accelerator + "."):
            in_accel.update(counts)
    rows = []
    for kind, (unit, weights) in yosys.items():
        rows.append(
            _row(
                ACCELERATOR_SCOPE,
                kind,
                estimate(total, kind),
                _ESTIMATE[kind][0],
                _count(weights, in_accel),
                unit,
                "yosys",
            )
        )
    for kind, (unit, weights) in nextpnr.items():
        rows.append(
            _row(
                DESIGN_SCOPE,
                kind,
                estimate(total, kind),
                _ESTIMATE[kind][0],
                _count(weights, utilisation),
                unit,
                "nextpnr",
            )
        )
    for name, resources, always in units:
        counts = cells.get(f"{accelerator}.{name}", Counter())
        for kind, (unit, weights) in yosys.items():
            est, tool = estimate(resources, kind), _count(weights, counts)
            if (always and kind in ("lut", "ff")) or est or tool:
                rows.append(_row(name, kind, est, _ESTIMATE[kind][0], tool, unit, "yosys"))
    rest = [(f"{ACCELERATOR_SCOPE} (other)", cells.get(accelerator, Counter()))]
    rest += [(SHELL_SCOPE, cells.get(SHELL_SCOPE, Counter()))]
    rest += [(UNNAMED_SCOPE, cells.get(UNNAMED_SCOPE, Counter()))]
    for scope, counts in rest:
        for kind, (unit, weights) in yosys.items():
            tool = _count(weights, counts)
            if tool:
                rows.append(_row(scope, kind, None, None, tool, unit, "yosys"))
    return rows


def _bounded(clock_mhz: float, cycles_per_image: int, shell: dict) -> dict:
    accelerator = clock_mhz * 1e6 / cycles_per_image
    binds = "shell" if shell["images_per_s"] < accelerator else "accelerator"
    return {
        "images_per_s": min(accelerator, shell["images_per_s"]),
        "bound_by": binds,
        "accelerator": {
            "images_per_s": accelerator,
            "cycles_per_image": cycles_per_image,
            "clock_mhz": clock_mhz,
        },
        "shell": shell,
    }


def uart_throughput(
    clock_mhz: float,
    cycles_per_image: int,
    *,
    baud: int,
    in_bytes_per_image: int,
    out_bytes_per_image: int,
) -> dict:
    """Predicted images/s through the UART shell: the accelerator's or the UART's, whichever is
    lower (see the module docstring).

    Returns
    -------
    dict
        ``images_per_s``, ``bound_by`` (``"accelerator"`` or ``"shell"``), ``accelerator``
        (``images_per_s``, ``cycles_per_image``, ``clock_mhz``) and ``shell`` (``kind`` ``"uart"``,
        ``baud``, ``bits_per_byte``, ``in_bytes_per_image``, ``out_bytes_per_image``,
        ``images_per_s`` for a host that keeps sending, ``one_at_a_time_images_per_s`` for a host
        that waits for each result).
    """
    per_image = max(in_bytes_per_image, out_bytes_per_image)
    shell = {
        "kind": "uart",
        "baud": baud,
        "bits_per_byte": BITS_PER_BYTE,
        "in_bytes_per_image": in_bytes_per_image,
        "out_bytes_per_image": out_bytes_per_image,
        "images_per_s": baud / (BITS_PER_BYTE * per_image),
        "one_at_a_time_images_per_s": baud
        / (BITS_PER_BYTE * (in_bytes_per_image + out_bytes_per_image)),
    }
    return _bounded(clock_mhz, cycles_per_image, shell)


def dma_throughput(clock_mhz: float, mapping: dict, port_bits: int | None) -> dict:
    """Predicted images/s through the Zynq plan's AXI DMA: the accelerator's or the DMA's, whichever
    is lower, from the mapper's ``input_stream_cycles`` and ``output_stream_cycles`` (see the
    module docstring); ``port_bits`` is the AXI-HP width they assume (``None``: the accelerator's
    own port widths).

    Returns
    -------
    dict
        As :func:`uart_throughput`, with ``shell`` = ``kind`` ``"dma"``, ``port_bits``,
        ``input_stream_cycles``, ``output_stream_cycles``, ``images_per_s``.
    """
    cycles_in, cycles_out = mapping["input_stream_cycles"], mapping["output_stream_cycles"]
    shell = {
        "kind": "dma",
        "port_bits": port_bits,
        "input_stream_cycles": cycles_in,
        "output_stream_cycles": cycles_out,
        "images_per_s": clock_mhz * 1e6 / max(cycles_in, cycles_out),
    }
    return _bounded(clock_mhz, mapping["cycles_per_image"], shell)
