"""Quantization: data types, the typed integer graph, training and folding."""

from .data import DIGITS_DTYPE, Dataset, load_digits_split
from .datatypes import BIPOLAR, DataType, Kind
from .fold import accumulator_range, fold_bn_sign
from .graph import IntegerGraph, MatMulThreshold
from .train import BatchNorm, BinaryMLP, TrainConfig, train_binary_mlp

__all__ = [
    "BIPOLAR", "DataType", "Kind", "IntegerGraph", "MatMulThreshold",
    "Dataset", "load_digits_split", "DIGITS_DTYPE",
    "accumulator_range", "fold_bn_sign",
    "TrainConfig", "BatchNorm", "BinaryMLP", "train_binary_mlp",
]
