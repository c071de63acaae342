"""Random-weight graphs for the mapping tests: the digits MLP and BNN-PYNQ's layers."""

import numpy as np

from lowbit.ir import BIPOLAR, DataType, IntegerGraph, MatMulThreshold

UINT5 = DataType.uint(5)


def random_node(rng, name, mw, mh, input_dtype=BIPOLAR, n_thresholds=1):
    """A node with random bit weights and sorted thresholds in the accumulator range (None: scores)."""
    weights = rng.integers(0, 2, size=(mh, mw))
    if not n_thresholds:
        return MatMulThreshold(name, input_dtype, weights, None)
    lo, hi = MatMulThreshold(name, input_dtype, weights, None).acc_range
    thresholds = np.sort(rng.integers(lo, hi + 2, size=(mh, n_thresholds)), axis=1)
    out = BIPOLAR if n_thresholds == 1 else DataType.uint(n_thresholds.bit_length())
    return MatMulThreshold(name, input_dtype, weights, thresholds, out)


def mlp(sizes=(64, 256, 256, 10), input_dtype=UINT5, seed=0) -> IntegerGraph:
    """A binarized MLP like ``lowbit train`` makes: integer input, bipolar hidden layers, scores out."""
    rng = np.random.default_rng(seed)
    nodes, dtype = [], input_dtype
    pairs = list(zip(sizes, sizes[1:]))
    for i, (mw, mh) in enumerate(pairs):
        last = i == len(pairs) - 1
        nodes.append(random_node(rng, f"fc{i}", mw, mh, dtype, 0 if last else 1))
        dtype = BIPOLAR
    return IntegerGraph(input_dtype, tuple(nodes))


def digits_mlp(seed=0) -> IntegerGraph:
    """The digits MLP of the demo, ``64 -> 256 -> 256 -> 10``, with random weights."""
    return mlp((64, 256, 256, 10), UINT5, seed)
