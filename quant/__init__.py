"""Quantization: data types, the typed integer graph, training (binary MLP and the zoo), folding, export."""

from .data import DIGITS_DTYPE, Dataset, load_dataset, load_digits_split
from .datatypes import BIPOLAR, TERNARY, DataType, Kind
from .export import to_integer_graph
from .fold import accumulator_range, fold_affine_thresholds, fold_bn_sign
from .graph import GlobalAccPool, IntegerGraph, MatMulThreshold, MaxPool, SlidingWindow
from .models import ActSpec, WeightSpec, ZooNet
from .train import BatchNorm, BinaryMLP, TrainConfig, train_binary_mlp
from .zoo_train import ZooConfig, train_zoo

__all__ = [
    "BIPOLAR", "TERNARY", "DataType", "Kind", "IntegerGraph", "MatMulThreshold", "SlidingWindow", "MaxPool",
    "GlobalAccPool",
    "Dataset", "load_digits_split", "load_dataset", "DIGITS_DTYPE",
    "accumulator_range", "fold_bn_sign", "fold_affine_thresholds",
    "TrainConfig", "BatchNorm", "BinaryMLP", "train_binary_mlp",
    "WeightSpec", "ActSpec", "ZooNet", "ZooConfig", "train_zoo", "to_integer_graph",
]
