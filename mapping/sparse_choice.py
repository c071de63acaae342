"""Sparse engine or dense array for a fully connected layer: the mapper's choice, with its reason.

:func:`choose_engine` compares, for the same number of multipliers ``pes``:

* the **sparse engine** (:class:`~lowbit.hw.sparse.engine_spec.SparseEngineSpec`): cycles from its
  cycle model on the layer's own sparsity pattern and random activations of the given density, and
  its resource estimate;
* a **dense integer array**: ``pes`` multiply-accumulate lanes over the whole matrix,
  ``ceil(rows / pes) * cols`` cycles per vector (no zero skipping), with the dense weights in
  memory (:func:`dense_array_resources`).

Each candidate must fit ``fraction`` of ``budget`` (a board or any object with ``lut``, ``ff``,
``bram36`` and ``dsp``); among those that fit, the one with fewer cycles wins (fewer LUTs on a tie).
The decision says which and why.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ..hw.cost import memory_resources
from ..hw.sparse.engine_spec import SparseEngineSpec
from ..ir.datatypes import Kind
from ..ir.graph import MatMulThreshold
from ..ir.resources import Resources
from ..sw_reference.sparse import encode_sparse

__all__ = [
    "EngineChoice",
    "choose_engine",
    "dense_array_cycles",
    "dense_array_resources",
    "sparse_advice",
]

log = logging.getLogger(__name__)


def dense_array_cycles(rows: int, cols: int, pes: int) -> int:
    """Cycles per vector of a dense array of ``pes`` MAC lanes (one weight per lane per cycle)."""
    return math.ceil(rows / pes) * cols


def dense_array_resources(
    rows: int, cols: int, pes: int, *, weight_bits: int = 8, act_bits: int = 16
) -> Resources:
    """Resources of the dense array: weights ``ceil(rows/pes) * cols`` words of
    ``pes * weight_bits``, one DSP and one accumulator per lane, an input buffer of ``cols``
    activations."""
    acc = weight_bits + act_bits + max(1, (cols - 1).bit_length())
    return (
        memory_resources(math.ceil(rows / pes) * cols, pes * weight_bits)
        + memory_resources(cols, act_bits)
        + Resources(
            lut=pes * (acc + 10) + 80, ff=pes * (2 * acc + weight_bits) + act_bits + 80, dsp=pes
        )
    )


@dataclass(frozen=True)
class EngineChoice:
    """The mapper's decision for one layer."""

    engine: str | None  # "sparse", "dense" or None (neither fits)
    reason: str
    sparse_cycles: float
    dense_cycles: int
    sparse_resources: Resources
    dense_resources: Resources
    spec: SparseEngineSpec | None = None

    @property
    def speedup(self) -> float:
        """Dense cycles over sparse cycles."""
        return self.dense_cycles / self.sparse_cycles


def choose_engine(
    weights,
    act_density: float,
    budget,
    *,
    pes: int = 16,
    depth: int = 8,
    fraction: float = 1.0,
    weight_bits: int = 8,
    act_bits: int = 16,
    samples: int = 4,
    seed: int = 0,
) -> EngineChoice:
    """Place the ``(rows, cols)`` layer ``weights`` (zeros are pruned weights) on the cheaper
    engine.

    Parameters
    ----------
    weights : 2-D array
        The layer's weights; only which are non-zero matters here.
    act_density : float
        Expected fraction of non-zero input activations, in (0, 1].
    budget : Board, Resources or mapping
        Resources available to this layer (``fraction`` of each kind may be used).
    """
    w = np.asarray(weights)
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 2-D (rows, cols) array, not shape {w.shape}")
    if not 0.0 < act_density <= 1.0:
        raise ValueError(f"act_density must lie in (0, 1], not {act_density!r}")
    rows, cols = w.shape
    image = encode_sparse((w != 0).astype(np.int64), np.arange(16), pes)
    spec = SparseEngineSpec(
        rows=rows,
        cols=cols,
        pes=pes,
        depth=depth,
        weight_bits=weight_bits,
        act_bits=act_bits,
        out_bits=act_bits,
        capacity=max(1, image.max_entries),
        image=image,
    )
    s_cyc = spec.cycles(act_density, samples=samples, seed=seed)
    d_cyc = dense_array_cycles(rows, cols, pes)
    s_res = spec.resources()
    d_res = dense_array_resources(rows, cols, pes, weight_bits=weight_bits, act_bits=act_bits)
    s_over, d_over = s_res.exceeded(budget, fraction), d_res.exceeded(budget, fraction)
    density = float(np.count_nonzero(w)) / w.size
    facts = (
        f"{rows}x{cols}, weight density {100 * density:.1f} %, "
        f"activations {100 * act_density:.0f} %, {pes} multipliers each: sparse {s_cyc:.0f} "
        f"cycles/vector, dense {d_cyc} ({d_cyc / s_cyc:.2f}x)"
    )
    if s_over and d_over:
        engine = None
        reason = (
            f"neither fits: sparse exceeds {', '.join(s_over)}, dense exceeds "
            f"{', '.join(d_over)} ({facts})"
        )
    elif s_over:
        engine, reason = "dense", f"dense: the sparse engine exceeds {', '.join(s_over)} ({facts})"
    elif d_over:
        engine, reason = "sparse", f"sparse: the dense array exceeds {', '.join(d_over)} ({facts})"
    elif s_cyc < d_cyc or (s_cyc == d_cyc and s_res.lut <= d_res.lut):
        engine, reason = "sparse", f"sparse: fewer cycles ({facts})"
    else:
        engine, reason = "dense", f"dense: fewer cycles ({facts})"
    log.info("layer %dx%d: %s", rows, cols, reason)
    return EngineChoice(
        engine, reason, s_cyc, d_cyc, s_res, d_res, spec if engine == "sparse" else None
    )


def sparse_advice(
    graph,
    board,
    *,
    act_density: float = 0.5,
    max_density: float = 0.5,
    pes: int = 16,
    depth: int = 8,
) -> list[dict]:
    """For each fully connected layer with pruned (non-binary) weights, the engine that runs it
    cheaper.

    Layers with binary weights have no zeros to skip and stay on the dense MVTU; layers denser than
    ``max_density`` too. Every entry names the layer, the choice and the reason. This compares
    against a generic dense integer array with as many multipliers (EIE's comparison); the folding
    search itself places layers by comparing with the MVTU foldings
    (:func:`lowbit.mapping.placement.placement_reasons`).
    """

    out = []
    for i, node in enumerate(graph.nodes):
        if not isinstance(node, MatMulThreshold) or len(graph.input_shape_of(i)) != 1:
            continue
        if node.weight_dtype.kind is Kind.BIPOLAR:
            continue
        w = node.weight_values
        density = float(np.count_nonzero(w)) / w.size
        if density > max_density:
            out.append(
                {
                    "layer": node.name,
                    "engine": "dense",
                    "weight_density": density,
                    "reason": f"dense: weight density {100 * density:.1f} % is above "
                    f"{100 * max_density:.0f} %",
                }
            )
            continue
        choice = choose_engine(
            w, act_density, board, pes=pes, depth=depth, weight_bits=max(8, node.weight_dtype.bits)
        )
        out.append(
            {
                "layer": node.name,
                "engine": choice.engine,
                "weight_density": density,
                "reason": choice.reason,
                "sparse_cycles": choice.sparse_cycles,
                "dense_cycles": choice.dense_cycles,
            }
        )
    return out
