"""What ``lowbit build`` prints from ``build.json`` after its summary: the mapper's estimate
against the tools' counts and the predicted images/s with the shell's bound
(:mod:`lowbit.deploy.estimate` computes both)."""

from __future__ import annotations

__all__ = ["estimate_lines", "throughput_lines"]


def _number(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def estimate_lines(manifest: dict) -> list[str]:
    """The ``estimate_vs_tool`` rows of ``manifest`` as a table (none when it has none)."""
    rows = manifest.get("estimate_vs_tool")
    if not rows:
        return []
    table = [("scope", "kind", "mapper estimate", "tool", "tool/mapper")]
    for r in rows:
        estimate = (
            "-" if r["estimate"] is None else f"{_number(r['estimate'])} {r['estimate_unit']}"
        )
        table.append(
            (
                r["scope"],
                r["resource"],
                estimate,
                f"{r['source']}: {_number(r['tool'])} {r['tool_unit']}",
                "-" if r["ratio"] is None else f"{r['ratio']:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [
        "  the mapper's estimate against the tools, in the units each counts (not converted: the",
        "  mapper's LUT6 equivalents, the device's LUT4s; block RAM in Kb on both sides):",
    ]
    for row in table:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths)] + [row[-1].rjust(widths[-1])]
        lines.append("    " + "  ".join(cells).rstrip())
    lines.append("    per unit: yosys's cells by hierarchical name (a cell at a unit's edge may")
    lines.append("    count for its neighbour); nextpnr's 'whole design' includes the shell")
    return lines


def throughput_lines(manifest: dict) -> list[str]:
    """The predicted images/s of ``manifest`` (``throughput``), the accelerator's and the shell's
    (none when it has none)."""
    t = manifest.get("throughput")
    if not t:
        return []
    acc, shell = t["accelerator"], t["shell"]
    which = f"the {shell['kind'].upper()} shell" if t["bound_by"] == "shell" else "the accelerator"
    lines = [f"  predicted {t['images_per_s']:,.0f} images/s, bound by {which}"]
    lines.append(
        f"    accelerator: {acc['images_per_s']:,.0f} images/s ({acc['cycles_per_image']} "
        f"cycle(s) per image at {acc['clock_mhz']:g} MHz)"
    )
    if shell["kind"] == "uart":
        lines.append(
            f"    UART shell: {shell['images_per_s']:,.0f} images/s ({shell['baud']} baud, "
            f"{shell['bits_per_byte']} bits a byte, {shell['in_bytes_per_image']} bytes in and "
            f"{shell['out_bytes_per_image']} out per image)"
        )
        lines.append(
            f"      {shell['one_at_a_time_images_per_s']:,.0f} images/s if the host awaits each "
            "result before it sends the next image"
        )
    else:
        port = shell["port_bits"]
        port = "the accelerator's ports" if port is None else f"{port}-bit AXI-HP port"
        lines.append(
            f"    DMA shell: {shell['images_per_s']:,.0f} images/s ({port}: image in "
            f"{shell['input_stream_cycles']} cycles, result out {shell['output_stream_cycles']})"
        )
    fmax = manifest.get("throughput_at_fmax")
    if fmax:
        lines.append(
            f"    at the achieved Fmax ({fmax['accelerator']['clock_mhz']:.1f} MHz): accelerator "
            f"{fmax['accelerator']['images_per_s']:,.0f} images/s, {fmax['images_per_s']:,.0f} "
            "through the shell"
        )
    return lines
