"""Front ends: quantizers, training (binary MLP and the zoo), exact folding, pruning, weight
sharing, the built-in models and ONNX; each produces a :class:`lowbit.ir.IntegerGraph`."""

from .data import DIGITS_DTYPE, Dataset, load_dataset, load_digits_split
from .export import to_integer_graph
from .fold import accumulator_range, fold_affine_thresholds, fold_bn_sign
from .train.binary_mlp import BatchNorm, BinaryMLP, TrainConfig, train_binary_mlp
from .train.loop import ZooConfig, train_zoo
from .train.net import ActSpec, WeightSpec, ZooNet

__all__ = [
    "Dataset",
    "load_digits_split",
    "load_dataset",
    "DIGITS_DTYPE",
    "accumulator_range",
    "fold_bn_sign",
    "fold_affine_thresholds",
    "TrainConfig",
    "BatchNorm",
    "BinaryMLP",
    "train_binary_mlp",
    "WeightSpec",
    "ActSpec",
    "ZooNet",
    "ZooConfig",
    "train_zoo",
    "to_integer_graph",
]
