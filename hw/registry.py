"""Which hardware implements which IR node: one table from node type to its spec families.

:data:`FAMILIES` lists, for each IR node type, the spec classes (:mod:`lowbit.hw.unit` protocol)
that can implement it, the first being the default engine. The mapper asks each family for
candidate foldings (``family.candidates(node, ctx)``) and :func:`unit_spec` turns a folding into a
spec; the stitched accelerator adds the width converters and the label select
(:func:`stitching`). Adding a layer type is: its IR node, its spec and component in
``hw/stream/``, and one line here.
"""

from __future__ import annotations

import math
from typing import Any, TypeAlias

from ..ir.graph import GlobalAccPool, MatMulThreshold, MaxPool, SlidingWindow, Threshold
from .mvtu.spec import MVTUSpec
from .sparse.layer_spec import SparseLayerSpec
from .stream.dwc import WidthConverterSpec
from .stream.label import LabelSelectSpec
from .stream.pool import AccPoolSpec, MaxPoolSpec
from .stream.swg import SWGSpec
from .stream.threshold import ThresholdNodeSpec
from .unit import SearchContext

__all__ = [
    "FAMILIES",
    "ENGINES",
    "MatMulSpec",
    "NodeSpec",
    "unit_spec",
    "candidates",
    "stitching",
    "SearchContext",
]

MatMulSpec: TypeAlias = MVTUSpec | SparseLayerSpec
"""The spec of a matrix product (the families of :class:`MatMulThreshold`)."""
NodeSpec: TypeAlias = MatMulSpec | SWGSpec | MaxPoolSpec | AccPoolSpec | ThresholdNodeSpec
"""The spec of any graph node (what :func:`unit_spec` returns)."""

FAMILIES: dict[type, tuple[Any, ...]] = {
    MatMulThreshold: (MVTUSpec, SparseLayerSpec),
    SlidingWindow: (SWGSpec,),
    MaxPool: (MaxPoolSpec,),
    GlobalAccPool: (AccPoolSpec,),
    Threshold: (ThresholdNodeSpec,),
}
"""IR node type -> spec families that implement it (the first is the default engine)."""

ENGINES: dict[str, type] = {f.ENGINE: f for f in FAMILIES[MatMulThreshold]}
"""Engine names of a schedule (``LayerFolding.engine``) -> the matrix-product family."""


def unit_spec(
    node,
    in_shape: tuple[int, ...],
    dtype,
    *,
    pe: int,
    simd: int,
    engine: str = "mvtu",
    depth: int = 8,
    act_density: float | tuple[float, ...] = 0.5,
    weights: str = "onchip",
    pipeline: int = 0,
) -> NodeSpec:
    """The spec of ``node`` folded by ``pe``/``simd`` on ``engine``.

    A :class:`MatMulThreshold` becomes an :class:`~lowbit.hw.mvtu.spec.MVTUSpec` (weights streamed
    from DDR with ``weights="ddr"``), or with ``engine="sparse"`` a
    :class:`~lowbit.hw.sparse.layer_spec.SparseLayerSpec` (fully connected layers only); a block
    node (sliding window, pools) its family's spec with ``simd`` channels per beat in and out (its
    ``pe`` must equal ``simd``). ``pipeline`` register stages are for an MVTU or a threshold
    unit.
    """
    families = FAMILIES.get(type(node))
    if families is None:
        raise TypeError(f"no hardware for node {node.name!r} of type {type(node).__name__}")
    if pipeline and MVTUSpec not in families and ThresholdNodeSpec not in families:
        raise ValueError(
            f"pipeline={pipeline} takes an MVTU or a threshold unit, not a {type(node).__name__}"
        )
    if engine == "sparse":
        if pipeline:
            raise ValueError(f"pipeline={pipeline} takes the MVTU engine, not 'sparse'")
        if SparseLayerSpec not in families:
            raise ValueError(f"engine 'sparse' takes a matrix product, not a {type(node).__name__}")
        if math.prod(in_shape) != node.mw:
            raise ValueError(
                f"engine 'sparse' takes a fully connected layer (one vector per image), but the "
                f"input is {tuple(in_shape)}"
            )
        return SparseLayerSpec(node, pes=pe, lanes=simd, depth=depth, act_density=act_density)
    if MVTUSpec in families:
        return MVTUSpec(
            node,
            pe=pe,
            simd=simd,
            weight_ram="external" if weights == "ddr" else "auto",
            pipeline=pipeline,
        )
    if weights == "ddr":
        raise ValueError(f"weights='ddr' takes a matrix product, not a {type(node).__name__}")
    if pe != simd:
        raise ValueError(
            f"PE ({pe}) must equal SIMD ({simd}) for a {type(node).__name__} "
            "(channels per beat in and out)"
        )
    if pipeline:
        return ThresholdNodeSpec(node, tuple(in_shape), dtype, simd, pipeline)
    return families[0](node, tuple(in_shape), dtype, simd)


def candidates(node, ctx: SearchContext) -> list[NodeSpec]:
    """Every candidate folding of ``node`` over all its families, in family order."""
    out: list[NodeSpec] = []
    for family in FAMILIES[type(node)]:
        out += family.candidates(node, ctx)
    return out


def stitching(specs) -> tuple[list[WidthConverterSpec | None], LabelSelectSpec]:
    """What the accelerator adds around the units ``specs``: the width converter between each
    consecutive pair (``None`` where the beats agree) and the label select after the last unit."""
    specs = list(specs)
    return (
        [WidthConverterSpec.between(a, b) for a, b in zip(specs, specs[1:])],
        LabelSelectSpec.after(specs[-1]),
    )
