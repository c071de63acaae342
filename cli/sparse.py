"""Sub-commands of ``lowbit`` for the EIE-style sparse engine (issue 6): ``sparse-bench``."""

from __future__ import annotations

import json

import numpy as np

from .. import LowbitError
from ._args import seed
from ._options import board_option, json_option

__all__ = ["register", "cmd_sparse_bench", "sparse_bench"]


def _positive(name: str, value, kind=int):
    if not isinstance(value, kind) or isinstance(value, bool) or value < 1:
        raise LowbitError(f"{name} must be a positive integer, not {value!r}")
    return value


def sparse_bench(
    *,
    rows: int,
    cols: int,
    density: float,
    act_density: float,
    pes: int,
    depth: int,
    lanes: int = 4,
    vectors: int = 4,
    seed: int = 0,
    board: str = "pynq-z2",
) -> dict:
    """Cycle-model benchmark of one random layer: efficiency, speed-up over a dense array,
    resources.

    Efficiency is the ideal ``nnz_active / N`` (non-zero weights in the columns of non-zero
    activations, over the PEs) divided by the engine's cycles per vector; ``entry_efficiency`` is
    stored entries (padding included) per PE per cycle, above 1 when the padding skip saves cycles.
    """
    for name, v in (
        ("--rows", rows),
        ("--cols", cols),
        ("--pes", pes),
        ("--depth", depth),
        ("--lanes", lanes),
        ("--vectors", vectors),
    ):
        _positive(name, v)
    for name, share in (("--density", density), ("--act-density", act_density)):
        if not 0.0 < share <= 1.0:
            raise LowbitError(f"{name} must lie in (0, 1], not {share!r}")
    from ..boards import get_board
    from ..hw.sparse.engine_spec import SparseEngineSpec
    from ..mapping.sparse_choice import choose_engine, dense_array_cycles
    from ..sw_reference.sparse import encode_sparse

    budget = get_board(board)  # a LowbitError naming the known boards
    rng = np.random.default_rng(seed)
    mask = rng.random((rows, cols)) < density
    image = encode_sparse(mask.astype(np.int64), np.arange(16), pes)
    spec = SparseEngineSpec(
        rows=rows,
        cols=cols,
        pes=pes,
        depth=depth,
        lanes=lanes,
        image=image,
        capacity=max(1, image.max_entries),
    )
    per_vector = []
    for _ in range(vectors):
        x = (rng.random(cols) < act_density).astype(np.int64)
        t = spec.timing(x)
        nnz_active = int(mask[:, x != 0].sum())
        stored = int(image.column_entries()[:, x != 0].sum())
        per_vector.append(
            {
                "cycles": t.cycles,
                "compute_cycles": t.compute,
                "stall_cycles": t.stall,
                "nnz_active": nnz_active,
                "entries": stored,
                "efficiency": nnz_active / pes / t.cycles,
                "entry_efficiency": stored / pes / t.cycles,
            }
        )
    cycles = float(np.mean([v["cycles"] for v in per_vector]))
    dense = dense_array_cycles(rows, cols, pes)
    choice = choose_engine(mask, act_density, budget, pes=pes, depth=depth, seed=seed)
    return {
        "rows": rows,
        "cols": cols,
        "density": density,
        "act_density": act_density,
        "pes": pes,
        "depth": depth,
        "lanes": lanes,
        "seed": seed,
        "nnz": int(mask.sum()),
        "entries": image.total_entries,
        "padding_entries": image.total_entries - int(mask.sum()),
        "cycles": cycles,
        "efficiency": float(np.mean([v["efficiency"] for v in per_vector])),
        "entry_efficiency": float(np.mean([v["entry_efficiency"] for v in per_vector])),
        "dense_cycles": dense,
        "speedup": dense / cycles,
        "resources": spec.resources().as_dict(),
        "board": budget.name,
        "choice": {"engine": choice.engine, "reason": choice.reason},
        "vectors": per_vector,
    }


def cmd_sparse_bench(args) -> int:
    from .._io import atomic_write

    r = sparse_bench(
        rows=args.rows,
        cols=args.cols,
        density=args.density,
        act_density=args.act_density,
        pes=args.pes,
        depth=args.depth,
        lanes=args.lanes,
        vectors=args.vectors,
        seed=args.seed,
        board=args.board,
    )
    print(
        f"sparse engine {r['rows']}x{r['cols']}, weight density {100 * r['density']:g} %, "
        f"activations {100 * r['act_density']:g} %, {r['pes']} PEs, queue depth {r['depth']} "
        f"(cycle model, {len(r['vectors'])} vectors)"
    )
    print(
        f"  cycles per vector : {r['cycles']:.1f}   (dense array with {r['pes']} multipliers: "
        f"{r['dense_cycles']}, speed-up {r['speedup']:.2f}x)"
    )
    print(
        f"  efficiency        : {r['efficiency']:.3f} (nnz_active / N / cycles); "
        f"{r['entry_efficiency']:.3f} stored entries per PE-cycle "
        f"({r['padding_entries']} padding entries)"
    )
    res = r["resources"]
    print(
        f"  resources (est.)  : LUT {res['lut']:g}, FF {res['ff']:g}, BRAM36 {res['bram36']:g}, "
        f"DSP {res['dsp']:g}"
    )
    print(f"  mapper choice     : {r['choice']['reason']} [{r['board']}]")
    if args.json:
        atomic_write(args.json, json.dumps(r, indent=1))
        print(f"  json              : {args.json}")
    return 0


def register(sub) -> None:
    """Add this module's sub-commands to the ``lowbit`` parser's ``sub`` (an argparse sub-parsers
    object)."""
    p = sub.add_parser(
        "sparse-bench",
        help="cycle-model benchmark of the EIE-style sparse engine on a random layer",
        parents=[
            board_option("pynq-z2", note="default pynq-z2; its resources budget the choice"),
            json_option("the results"),
        ],
    )
    # the sizes and densities are checked by sparse_bench, naming the flag
    p.add_argument("--rows", type=int, required=True, help="rows (outputs) of the random layer")
    p.add_argument("--cols", type=int, required=True, help="columns (inputs) of the random layer")
    p.add_argument("--density", type=float, required=True, help="weight density in (0, 1]")
    p.add_argument("--act-density", type=float, required=True, help="activation density in (0, 1]")
    p.add_argument("--pes", type=int, default=16, help="processing elements of the engine")
    p.add_argument("--depth", type=int, default=8, help="activation-queue depth")
    p.add_argument("--lanes", type=int, default=4, help="activations per input beat")
    p.add_argument("--vectors", type=int, default=4, help="input vectors to run")
    p.add_argument("--seed", type=seed, default=0, help="seed of the random layer and inputs")
    p.set_defaults(func=cmd_sparse_bench)
