"""Reports of a schedule: the whole report (:func:`mapping_report`), a per-layer table (terminal
and Markdown) and PNG plots.

:func:`mapping_report` is :meth:`lowbit.mapping.Schedule.report` with the modelled energy, the
placement of every matrix product and the graph's boundary: what ``lowbit map`` prints and what
``lowbit compile`` stores in ``report.json``. The other functions take that dictionary; nothing in
them recomputes a cost.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..ir.graph import IntegerGraph
from ..ir.resources import RESOURCE_KINDS
from .energy import energy_per_inference
from .placement import placement_reasons
from .schedule import Schedule

__all__ = [
    "layer_rows",
    "format_text",
    "format_markdown",
    "mapping_report",
    "write_plots",
    "COLUMNS",
]

logger = logging.getLogger(__name__)

COLUMNS = (
    "layer",
    "MWxMH",
    "engine",
    "PE",
    "SIMD",
    "cycles",
    "LUT",
    "FF",
    "BRAM36",
    "DSP",
    "of bottleneck",
)
"""Columns of the per-layer table."""


def mapping_report(graph: IntegerGraph, schedule: Schedule, *, act_density=0.5) -> dict:
    """``schedule.report(graph)`` with ``energy`` (:func:`~lowbit.mapping.energy.
    energy_per_inference`, the DDR layers off chip), ``placement``
    (:func:`~lowbit.mapping.placement.placement_reasons` at ``act_density``: one value or per
    layer) and the graph's boundary (``input_dtype``, ``input_quant``, ``class_map``)."""
    report = schedule.report(graph)
    report["energy"] = energy_per_inference(graph, off_chip=set(schedule.ddr_layers)).as_dict()
    report["placement"] = placement_reasons(graph, schedule, act_density=act_density)
    report.update(graph.boundary())
    return report


def _num(v) -> str:
    return f"{v:,.1f}" if isinstance(v, float) and not v.is_integer() else f"{int(v):,}"


def layer_rows(report: dict) -> list[list[str]]:
    """One row per layer (see :data:`COLUMNS`), then the input stream and the total."""
    rows = []
    for layer in report["layers"]:
        r = layer["resources"]
        rows.append(
            [
                layer["name"],
                f"{layer['mw']}x{layer['mh']}",
                layer.get("engine", "-"),
                str(layer["pe"]),
                str(layer["simd"]),
                _num(layer["cycles"]),
                _num(r["lut"]),
                _num(r["ff"]),
                _num(r["bram36"]),
                _num(r["dsp"]),
                f"{100 * layer['share_of_bottleneck']:.0f} %",
            ]
        )
    conv = {k: sum(c["resources"][k] for c in report["width_converters"]) for k in RESOURCE_KINDS}
    rows.append(
        [
            "converters",
            "",
            "",
            "",
            "",
            "",
            _num(conv["lut"]),
            _num(conv["ff"]),
            _num(conv["bram36"]),
            _num(conv["dsp"]),
            "",
        ]
    )
    rows.append(
        [
            "input stream",
            "",
            "",
            "",
            "",
            _num(report["input_stream_cycles"]),
            "",
            "",
            "",
            "",
            f"{100 * report['input_stream_cycles'] / report['cycles_per_image']:.0f} %",
        ]
    )
    res = report["resources"]
    rows.append(
        [
            "total",
            "",
            "",
            "",
            "",
            _num(report["cycles_per_image"]),
            *(_num(res[k]["used"]) for k in RESOURCE_KINDS),
            "",
        ]
    )
    return rows


def _summary_lines(report: dict) -> list[str]:
    util = ", ".join(
        f"{k} {_num(v['used'])}/{_num(v['available'])} ({100 * v['fraction']:.1f} %)"
        for k, v in report["resources"].items()
    )
    return (
        [
            f"board {report['board']} at {report['clock_mhz']:g} MHz: "
            f"{report['cycles_per_image']:,} cycles per image (bottleneck {report['bottleneck']}), "
            f"{report['throughput_fps']:,.0f} images/s, {report['time_per_image_us']:.2f} us per "
            f"image, latency <= {report['latency_us']:.2f} us",
            f"utilisation (estimated): {util}",
        ]
        + _fmax_line(report)
        + _memory_line(report)
        + _energy_line(report)
        + _sparse_lines(report)
    )


def _fmax_line(report: dict) -> list[str]:
    f = report.get("fmax")
    if not f:
        return []
    if f["fmax_mhz"] is None:
        return [f"Fmax: {f['note']}"]
    deep = sum(u["pipeline"] for u in f["units"])
    return [
        f"Fmax (estimated, {f['family']}, within {100 * f['model_bound']:.0f} % on its calibration"
        f" points): {f['fmax_mhz']:.1f} MHz, slowest {f['slowest']}; "
        f"{f['throughput_fps_at_fmax']:,.0f} images/s at that Fmax "
        f"({'meets' if f['meets_clock'] else 'below'} the {report['clock_mhz']:g} MHz clock"
        + (f"; {deep} pipeline stages" if deep else "")
        + ")"
    ]


def _sparse_lines(report: dict) -> list[str]:
    placement = report.get("placement")
    if not placement:
        return []
    return ["placement (dense MVTU or sparse engine, and why):"] + [
        f"  {a['layer']}: {a['reason']}" for a in placement
    ]


def _energy_line(report: dict) -> list[str]:
    e = report.get("energy")
    if not e:
        return []
    macs = ", ".join(f"{n:,} {k}" for k, n in e["macs_by_kind"].items())
    return [f"energy per inference: {e['total_uj']:.4f} uJ ({e['label']}); MACs: {macs}"]


def _memory_line(report: dict) -> list[str]:
    mem = report.get("memory")
    if not mem:
        return []
    ddr = [e for e in mem.get("layers", []) if e["placement"] == "ddr"]
    on_chip = mem["weight_bits"] - sum(e["weight_bits"] for e in ddr)
    line = f"weights: {on_chip:,} bits on chip"
    if mem["streamed_fps_bound"] is not None:
        line += (
            f"; all {mem['weight_bits']:,} streamed from DDR ({mem['ddr_bandwidth_gbps']:g} "
            f"Gbit/s) would bound throughput at {mem['streamed_fps_bound']:,.0f} images/s "
            "(roofline)"
        )
    lines = [line]
    for k, e in enumerate(ddr):
        lines.append(
            f"  {e['layer']}: weights in DDR (AXI-HP{k + 1} on Zynq builds), "
            f"{e['ddr_bits_per_image']:,} bits per image at "
            f"{e['stream_bits_per_cycle']} bits/cycle = {e['stream_cycles']:,} cycles per image "
            f"(bound {e['stream_fps_bound']:,.0f} images/s)"
        )
    if ddr:
        lines.append(
            f"  DDR traffic {mem['ddr_gbps_used']:.3f} Gbit/s = "
            f"{100 * mem['ddr_fraction_used']:.1f} % of the board's DDR bandwidth"
        )
    return lines


def format_text(report: dict) -> str:
    """The table and summary as aligned plain text for a terminal."""
    rows = [list(COLUMNS)] + layer_rows(report)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    for j, r in enumerate(rows):
        cells = [c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines + [""] + _summary_lines(report)) + "\n"


def format_markdown(report: dict) -> str:
    """The table and summary as a Markdown document."""
    out = [f"# lowbit schedule on {report['board']}", ""]
    out += [f"- {line}" for line in _summary_lines(report)]
    out += ["", "| " + " | ".join(COLUMNS) + " |", "| " + " | ".join(["---"] * len(COLUMNS)) + " |"]
    for r in layer_rows(report):
        out.append("| " + " | ".join(r) + " |")
    out += ["", "| resource | used | available | share |", "| --- | --- | --- | --- |"]
    for k, v in report["resources"].items():
        out.append(
            f"| {k} | {_num(v['used'])} | {_num(v['available'])} | {100 * v['fraction']:.1f} % |"
        )
    out += [
        "",
        "Resources are estimates of the cost model (`lowbit.hw.cost`, coefficients fitted to yosys "
        "synthesis), not a utilisation report.",
    ]
    return "\n".join(out) + "\n"


def write_plots(report: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``cycles.png`` (cycles per layer, the bottleneck marked) and ``resources.png``
    (estimated use against the board's capacity, per kind) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [layer["name"] for layer in report["layers"]] + ["input"]
    cycles = [layer["cycles"] for layer in report["layers"]] + [report["input_stream_cycles"]]
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(names) + 2), 3.5))
    colors = ["tab:red" if c == report["cycles_per_image"] else "tab:blue" for c in cycles]
    ax.bar(names, cycles, color=colors)
    ax.set_ylabel("cycles per image")
    ax.set_title(f"{report['board']}: cycles per layer (red: bottleneck)")
    fig.tight_layout()
    cycles_png = out_dir / "cycles.png"
    fig.savefig(cycles_png, dpi=100)
    plt.close(fig)

    kinds = list(report["resources"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    shares = [100 * report["resources"][k]["fraction"] for k in kinds]
    ax.bar(kinds, shares, color=["tab:red" if s > 100 else "tab:green" for s in shares])
    ax.axhline(100, color="black", linewidth=1)
    ax.set_ylabel("% of board capacity")
    ax.set_title(f"{report['board']}: estimated resources vs capacity")
    for i, k in enumerate(kinds):
        v = report["resources"][k]
        ax.annotate(
            f"{_num(v['used'])}/{_num(v['available'])}",
            (i, shares[i]),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    fig.tight_layout()
    res_png = out_dir / "resources.png"
    fig.savefig(res_png, dpi=100)
    plt.close(fig)
    logger.info("wrote %s and %s", cycles_png, res_png)
    return [cycles_png, res_png]
