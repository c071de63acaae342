"""Quantization: data types, the typed integer graph, training and folding."""

from .data import DIGITS_DTYPE, Dataset, load_digits_split
from .datatypes import BIPOLAR, TERNARY, DataType, Kind
from .fold import accumulator_range, fold_bn_sign
from .graph import GlobalAccPool, IntegerGraph, MatMulThreshold, MaxPool, SlidingWindow
from .train import BatchNorm, BinaryMLP, TrainConfig, train_binary_mlp

__all__ = [
    "BIPOLAR", "TERNARY", "DataType", "Kind", "IntegerGraph", "MatMulThreshold", "SlidingWindow", "MaxPool",
    "GlobalAccPool",
    "Dataset", "load_digits_split", "DIGITS_DTYPE",
    "accumulator_range", "fold_bn_sign",
    "TrainConfig", "BatchNorm", "BinaryMLP", "train_binary_mlp",
]
