"""Why each matrix product of a schedule runs where it does: the dense MVTU or the sparse engine.

For every :class:`~lowbit.ir.graph.MatMulThreshold` of the graph, :func:`placement_reasons`
states the engine the schedule uses and the reason, in the search's own terms
(:mod:`lowbit.mapping.folding`): a layer that cannot use the sparse engine says why not (bipolar
weights, a convolution, too dense, too many distinct weights); an eligible layer compares the
cheapest sparse-engine folding and the cheapest MVTU folding that each meet the schedule's
bottleneck (cycles per image), by the share of the board they use.
"""

from __future__ import annotations

from ..boards import Board, get_board
from ..hw.sparse.layer_spec import sparse_eligible
from ..ir.graph import IntegerGraph, MatMulThreshold
from .folding import SPARSE_MAX_DENSITY, cheapness, layer_options
from .schedule import Schedule, ddr_stream_bits, pipeline_cycles, vectors_per_image

__all__ = ["placement_reasons"]


def _res(r) -> str:
    return f"{r.lut:,.0f} LUT, {r.ff:,.0f} FF, {r.bram36:g} BRAM36, {r.dsp:g} DSP"


def placement_reasons(
    graph: IntegerGraph, schedule: Schedule, *, board: Board | None = None, act_density=0.5
) -> list[dict]:
    """One entry per matrix product: ``layer``, ``engine`` (``"mvtu"`` or ``"sparse"``), ``reason``.

    ``act_density`` (one value, or per layer name) is the activation density assumed for layers the
    schedule keeps on the MVTU (a sparse layer's own ``act_density`` is used for it).
    """
    board = get_board(schedule.board) if board is None else board
    specs = schedule.apply(graph)
    port = board.axi_hp_width_bits
    ddr = ddr_stream_bits(board, schedule.clock_mhz)
    vectors = vectors_per_image(graph)
    bottleneck = max(pipeline_cycles(specs, port, vectors, ddr))
    out = []
    for i, (node, spec, layer) in enumerate(zip(graph.nodes, specs, schedule.layers)):
        if not isinstance(node, MatMulThreshold):
            continue
        engine = spec.ENGINE
        entry = {"layer": node.name, "engine": engine}
        why = sparse_eligible(node)
        w = node.weight_values
        density = float((w != 0).mean()) if w.size else 0.0
        if vectors[i] > 1:
            entry["reason"] = (
                f"mvtu: a convolution ({vectors[i]} vectors per image); the sparse engine takes "
                "fully connected layers"
            )
        elif why is not None:
            entry["reason"] = f"mvtu: {why}"
        elif density > SPARSE_MAX_DENSITY and engine == "mvtu":
            entry["reason"] = (
                f"mvtu: weight density {100 * density:.1f} % is above "
                f"{100 * SPARSE_MAX_DENSITY:.0f} %; too few zeros to skip"
            )
        else:
            entry.update(
                _compare(graph, i, spec, layer, bottleneck, board, port, act_density, density)
            )
        out.append(entry)
    return out


def _compare(graph, i, spec, layer, bottleneck, board, port, act_density, density) -> dict:
    if spec.ENGINE == "sparse":
        density_act = layer.act_density
    else:
        density_act = (
            act_density
            if isinstance(act_density, (int, float))
            else act_density.get(layer.name, 0.5)
        )
    options = layer_options(graph, i, port, density_act)
    meet = [c for c in options if c.cycles <= bottleneck]

    def best(engine):
        pool = [c for c in meet if c.spec.ENGINE == engine]
        return (
            min(pool, key=lambda c: (cheapness(c.resources, board), c.resources.lut))
            if pool
            else None
        )

    sparse, dense = best("sparse"), best("mvtu")
    mean_act = (
        sum(density_act) / len(density_act) if isinstance(density_act, tuple) else density_act
    )
    profile = " (per-column profile)" if isinstance(density_act, tuple) else ""
    facts = (
        f"weight density {100 * density:.1f} %, activations {100 * mean_act:.0f} %{profile}, "
        f"bottleneck {bottleneck:,} cycles"
    )
    engine = spec.ENGINE
    if sparse is None:
        return {"reason": f"{engine}: no sparse-engine folding meets the bottleneck ({facts})"}
    if dense is None:
        return {
            "reason": f"{engine}: no MVTU folding meets the bottleneck; "
            f"{sparse.spec.folding_label()} does in {sparse.cycles:,} cycles ({facts})"
        }
    cheaper = (
        "sparse engine"
        if cheapness(sparse.resources, board) < cheapness(dense.resources, board)
        else "MVTU"
    )
    return {
        "reason": (
            f"{engine}: {sparse.spec.folding_label()} meets it in {sparse.cycles:,} cycles with "
            f"{_res(sparse.resources)} ({100 * cheapness(sparse.resources, board):.1f} % of the "
            f"board); {dense.spec.folding_label()} in {dense.cycles:,} cycles with "
            f"{_res(dense.resources)} ({100 * cheapness(dense.resources, board):.1f} %): the "
            f"{cheaper} is cheaper ({facts})"
        ),
        "sparse_cycles": sparse.cycles,
        "mvtu_cycles": dense.cycles,
        "sparse_resources": sparse.resources.as_dict(),
        "mvtu_resources": dense.resources.as_dict(),
    }
