"""Integer export of the zoo's networks to the typed integer graph (format v2).

Each layer's batch-norm, input and weight scales and activation quantizer fold into integer
MultiThreshold rows (:meth:`~lowbit.quant.train.net.ZooNet.fold`, exact rationals); weights keep
their codes: ``BIPOLAR`` bits, ``TERNARY``, ``POW2_b``, ``INTk``. Channels whose slope is negative
are negated (bits flipped), so the graph only compares with ``>=``. XNOR layers (bipolar inputs and
weights) take thresholds on the popcount ``p``: ``s dot >= T <=> p' >= ceil((T + MW) / 2)`` where
``dot = 2 p - MW``. A convolution is a :class:`~lowbit.ir.graph.SlidingWindow` (padding with level
0, the bit 0 for bipolar activations) followed by a :class:`~lowbit.ir.graph.MatMulThreshold`
and, if any, a :class:`~lowbit.ir.graph.MaxPool`. A low-rank factor (a bottleneck layer) is a
:class:`~lowbit.ir.graph.MatMulThreshold` with ``2^B - 1`` thresholds and UINT ``B`` outputs (the
signed levels plus ``2^(B-1)``), whose offset the next layer's thresholds absorb. A depthwise
layer (``dwconv``, a factor of a CP decomposition) is a :class:`SlidingWindow` followed by a
:class:`~lowbit.ir.graph.DepthwiseConv` with the weights, thresholds and types that a
``MatMulThreshold`` of its ``(C, K * K)`` codes would have (the same accumulators, XNOR counts
included); the graph is then a chain that the DAG flow maps (as the ONNX importer's depthwise
convolutions).
"""

from __future__ import annotations

import numpy as np

from ..ir.datatypes import BIPOLAR, DataType, Kind
from ..ir.graph import DepthwiseConv, IntegerGraph, MatMulThreshold, MaxPool, SlidingWindow
from .train.net import LayerFold, ZooNet

__all__ = ["to_integer_graph", "graph_node_for"]


def graph_node_for(name: str, f: LayerFold, output_dtype) -> MatMulThreshold:
    """The :class:`MatMulThreshold` of one folded layer (negated channels, popcount thresholds)."""
    codes = np.where(f.negate[:, None], -f.codes, f.codes)
    stored = (codes > 0).astype(np.uint8) if f.weight_dtype is BIPOLAR else codes
    t = f.thresholds
    if t is not None and f.weight_dtype is BIPOLAR and f.input_dtype is BIPOLAR:
        mw = codes.shape[1]
        t = np.clip(-((-(t + mw)) // 2), 0, mw + 1)  # ceil((T + MW) / 2), in [0, MW + 1]
    return MatMulThreshold(
        name, f.input_dtype, stored, t, output_dtype if t is not None else BIPOLAR, f.weight_dtype
    )


def to_integer_graph(net: ZooNet) -> IntegerGraph:
    """The integer graph of ``net``; its predictions equal :meth:`ZooNet.predict` on every input."""
    folds = net.folds()
    nodes: list[SlidingWindow | MatMulThreshold | DepthwiseConv | MaxPool] = []
    for i, (L, f) in enumerate(zip(net.layers, folds)):
        out_dtype = DataType.uint(L.bottleneck) if L.bottleneck else net.acts.dtype
        if L.windowed:
            # level 0, the bit 0 (= -1) for bipolar activations, the level of 0 after a bottleneck
            pad_value = net.input_offset(i)
            nodes.append(SlidingWindow(f"sw{i}", L.kernel, L.stride, L.pad, pad_value))
            mm = graph_node_for(f"{L.kind}{i}", f, out_dtype)
            t = mm.thresholds
            if L.kind == "dwconv" and t is not None:  # (the last layer is never a factor)
                nodes.append(
                    DepthwiseConv(
                        mm.name, mm.input_dtype, mm.weights, t, mm.output_dtype, mm.weight_dtype
                    )
                )
            else:
                nodes.append(mm)
        else:
            nodes.append(graph_node_for(f"fc{i}", f, out_dtype))
        if L.pool:
            if out_dtype.kind not in (Kind.BIPOLAR, Kind.UINT):
                raise ValueError(f"layer {i}: max-pool needs BIPOLAR or UINT activations")
            nodes.append(MaxPool(f"pool{i}", L.pool))
    return IntegerGraph(net.input_dtype, tuple(nodes), tuple(net.input_shape))
