"""What the commands share about a graph's boundary with the outside world: the lines that say how
float inputs become codes and how the scores become a class (:func:`boundary_lines`; as JSON:
:meth:`lowbit.ir.IntegerGraph.boundary`), labelled image files (:func:`read_images`), inputs
turned into the graph's codes (:func:`graph_codes`) and accuracies.

An image file is an ``.npz`` with an array ``x`` (``B`` images) and, optionally, integer labels
``y`` ``(B,)``. Integer ``x`` are the graph's input codes; float ``x`` are the model's inputs,
encoded by the graph's input quantizer (:meth:`lowbit.ir.IntegerGraph.encode`).
"""

from __future__ import annotations

from ..ir.inputs import accuracy, check_labels, graph_codes, read_images

__all__ = [
    "accuracy",
    "boundary_lines",
    "check_labels",
    "graph_codes",
    "is_identity",
    "read_images",
]


def boundary_lines(g) -> str:
    """Two lines: the graph's input quantizer (and input threshold unit) and its class decision
    (raw scores or class map)."""
    from ..ir.graph import Threshold

    q = g.input_quant
    first = (
        f"input quantizer: {q.describe()}"
        if q is not None
        else f"input quantizer: none stored (the graph takes {g.input_dtype} codes)"
    )
    if isinstance(g.nodes[0], Threshold):
        t = g.nodes[0]
        first += (
            f"\ninput threshold unit: {t.input_dtype} pixels on the wire -> the model's "
            f"{t.output_dtype} codes ({t.thresholds.shape[1]} thresholds"
            + (")" if t.thresholds.shape[0] == 1 else f", {t.thresholds.shape[0]} channels)")
        )
    last = g.nodes[-1]
    cm = last.class_map
    if cm is None:
        second = "class decision: argmax of the integer scores"
    else:
        lo, hi = last.score_range
        second = (
            f"class decision: argmax of the class map mult * score + offset ({cm.classes} "
            f"classes, {cm.bits(lo, hi)}-bit values), folded exactly from the model's tail "
            "into the label select"
        )
    return first + "\n" + second


def is_identity(q) -> bool:
    """True when the input quantizer ``q`` is absent or maps value ``v`` to code ``v`` (scale 1,
    zero point 0)."""
    return q is None or (all(s == 1 for s in q.scale) and all(z == 0 for z in q.zero_point))
