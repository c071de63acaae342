"""Blocks beyond a chain (issue 19): the depthwise engine, the 1-D sliding-window generator, the
streaming 1-D max-pool, the stream fork, the adder/joiner of residual blocks and the global
average pool. Each is a spec (no Amaranth) and its component, built by the spec's ``create()``.

:data:`DAG_FAMILIES` maps the graph's new node types to their specs, in the form of
:data:`lowbit.hw.registry.FAMILIES`. It is kept apart from ``FAMILIES``, which the chain mapper
(``mapping.folding``) folds: a DAG, or a graph holding these nodes, is mapped by
:func:`lowbit.mapping.dag.map_dag` and built by :class:`lowbit.hw.dag.top.DagAccelerator`
(``hw.dag.top``, imported on its own: it loads Amaranth). The fork is no node of the graph (a node
with two consumers is a fork), and the branch FIFO is :class:`~lowbit.hw.stream.fifo.FIFOSpec`
with its depth from :mod:`lowbit.mapping.dag`.
"""

from __future__ import annotations

from typing import Any

from ...ir.graph import Add, DepthwiseConv, GlobalAvgPool, MaxPool1D, SlidingWindow1D
from .branch import AddSpec, ForkSpec
from .depthwise import DepthwiseSpec, depthwise_node
from .gap import GlobalAvgPoolSpec
from .maxpool1d import MaxPool1DSpec
from .swg1d import SWG1DSpec

__all__ = [
    "DAG_FAMILIES",
    "AddSpec",
    "ForkSpec",
    "DepthwiseSpec",
    "depthwise_node",
    "SWG1DSpec",
    "MaxPool1DSpec",
    "GlobalAvgPoolSpec",
]

DAG_FAMILIES: dict[type, tuple[Any, ...]] = {
    DepthwiseConv: (DepthwiseSpec,),
    SlidingWindow1D: (SWG1DSpec,),
    MaxPool1D: (MaxPool1DSpec,),
    Add: (AddSpec,),
    GlobalAvgPool: (GlobalAvgPoolSpec,),
}
"""The graph's node types of issue 19 -> the spec families that implement them."""
