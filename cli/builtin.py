"""Sub-commands of ``lowbit`` for the built-in model zoo and dense library (issue 5).

``lowbit zoo`` lists the built-in models; ``lowbit zoo NAME -o model.npz`` writes one as an integer
graph (random weights from ``--seed``, thresholds calibrated inside the accumulator range) and its
published folding as a schedule next to it. ``lowbit compile --zoo NAME -o DIR`` compiles one.
"""

from __future__ import annotations

from pathlib import Path

from ._args import positive, seed
from ._options import board_option, output_option

__all__ = ["register"]


def cmd_zoo(args) -> int:
    from .. import LowbitError
    from ..flow import zoo_schedule
    from ..quant import builtin as zoo

    if args.name is None:
        for name in zoo.ZOO:
            cycles, us = zoo.published_bottleneck(name)
            print(
                f"{name:10s} published bottleneck {cycles:,} cycles, measured {us} us/image "
                "at 299 MHz"
            )
        return 0
    if args.output is None:
        raise LowbitError("zoo: give -o FILE.npz to write the model")
    model = zoo.build(args.name, seed=args.seed, width=args.width)
    out = Path(args.output)
    model.graph.save(out)
    schedule = zoo_schedule(model.name, model.graph, model.matmul_folding, args.board)
    sched_path = out.with_name(out.stem + ".schedule.json")
    schedule.save(sched_path)
    print(
        f"wrote {out} ({len(model.graph.nodes)} nodes) and {sched_path} (published folding on "
        f"{schedule.board})"
    )
    return 0


def register(sub) -> None:
    """Add this module's sub-commands to the ``lowbit`` parser's ``sub`` (an argparse sub-parsers
    object)."""
    z = sub.add_parser(
        "zoo",
        help="list the built-in models (BNN-PYNQ CNV/LFC) or write one as a model file",
        parents=[
            output_option("file", "the model (.npz); its schedule goes next to it"),
            board_option("ultra96-v2", note="default ultra96-v2: the written schedule's board"),
        ],
    )
    z.add_argument("name", nargs="?", help="cnv-w1a1, cnv-w2a2 or lfc-w1a1")
    z.add_argument("--seed", type=seed, default=0, help="seed of the random weights")
    z.add_argument(
        "--width", type=positive, default=1.0, help="scale the channel counts (same topology)"
    )
    z.set_defaults(func=cmd_zoo)
