"""The intermediate representation every stage shares: integer data types, the typed integer graph
(nodes, chain, ``.npz`` format), the MAC kind of a layer and resource counts.

Front ends (:mod:`lowbit.quant`) produce an :class:`IntegerGraph`; the hardware (:mod:`lowbit.hw`),
the mapper (:mod:`lowbit.mapping`), the simulators and the deployment read it. This package imports
only :mod:`lowbit.sw_reference` and the package root.
"""

from .datatypes import BIPOLAR, TERNARY, DataType, Kind, clog2, index_bits, signed_bits
from .graph import (
    DAG_OPS,
    FORMAT_VERSION,
    GRAPH_INPUT,
    Add,
    Concat,
    DepthwiseConv,
    GlobalAccPool,
    GlobalAvgPool,
    IntegerGraph,
    MatMulThreshold,
    MaxPool,
    MaxPool1D,
    SlidingWindow,
    SlidingWindow1D,
    Threshold,
)
from .mac import MacKind, MacOp, mac_kind
from .resources import RESOURCE_KINDS, Resources

__all__ = [
    "Kind",
    "DataType",
    "BIPOLAR",
    "TERNARY",
    "signed_bits",
    "index_bits",
    "clog2",
    "MacKind",
    "MacOp",
    "mac_kind",
    "MatMulThreshold",
    "SlidingWindow",
    "MaxPool",
    "GlobalAccPool",
    "Threshold",
    "DepthwiseConv",
    "SlidingWindow1D",
    "MaxPool1D",
    "GlobalAvgPool",
    "Add",
    "Concat",
    "DAG_OPS",
    "GRAPH_INPUT",
    "IntegerGraph",
    "FORMAT_VERSION",
    "Resources",
    "RESOURCE_KINDS",
]
