import numpy as np
import pytest

from lowbit.ir import BIPOLAR, DataType, IntegerGraph, MatMulThreshold


def _random_graph(rng: np.random.Generator, sizes=(12, 8, 6, 4), in_dtype=DataType.uint(5)) -> IntegerGraph:
    """A random chain of MVTU nodes: thresholds anywhere in the accumulator range, last node scores."""
    nodes, dtype = [], in_dtype
    for k, (mw, mh) in enumerate(zip(sizes, sizes[1:])):
        w = rng.integers(0, 2, (mh, mw))
        last = k == len(sizes) - 2
        if last:
            nodes.append(MatMulThreshold(f"fc{k}", dtype, w, None))
        else:
            lo, hi = MatMulThreshold("probe", dtype, w, None).acc_range
            nodes.append(MatMulThreshold(f"fc{k}", dtype, w, rng.integers(lo, hi + 2, (mh, 1))))
            dtype = BIPOLAR
    return IntegerGraph(in_dtype, tuple(nodes))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def random_graph():
    """Factory: ``random_graph(rng, sizes=..., in_dtype=...)``."""
    return _random_graph


@pytest.fixture(scope="module")
def private_verilator_cache(tmp_path_factory):
    """Point ``LOWBIT_CACHE`` at a fresh directory for one test module."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LOWBIT_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


def _flip_last_layer_weight(graph: IntegerGraph, row: int, col: int) -> IntegerGraph:
    """``graph`` with one weight bit of its last layer flipped: a deliberately wrong design."""
    last = graph.nodes[-1]
    w = last.weights.copy()
    w[row, col] ^= 1
    return IntegerGraph(graph.input_dtype, graph.nodes[:-1] + (MatMulThreshold(last.name, last.input_dtype, w, None),))


@pytest.fixture
def flip_last_layer_weight():
    """Factory: ``flip_last_layer_weight(graph, row, col)``."""
    return _flip_last_layer_weight
