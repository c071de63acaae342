"""Quantization: data types, the typed integer graph, training and folding."""

from .datatypes import BIPOLAR, DataType, Kind
from .graph import IntegerGraph, MatMulThreshold

__all__ = ["BIPOLAR", "DataType", "Kind", "IntegerGraph", "MatMulThreshold"]
