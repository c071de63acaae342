"""Issue 6/7: the mapper's advice between the sparse engine and the dense array, with its reason."""

import numpy as np

from lowbit.boards import get_board
from lowbit.cli import main
from lowbit.mapping.sparse_choice import sparse_advice
from lowbit.ir import BIPOLAR, DataType, IntegerGraph, MatMulThreshold


def _graph(rng, density):
    w0 = rng.integers(-7, 8, (96, 128)) * (rng.random((96, 128)) < density)
    lo, hi = MatMulThreshold("p", DataType.uint(4), w0, None, weight_dtype=DataType.int(4)).acc_range
    t0 = np.sort(rng.integers(lo // 8, hi // 8, (96, 3)), axis=1)
    fc0 = MatMulThreshold("fc0", DataType.uint(4), w0, t0, DataType.uint(2), weight_dtype=DataType.int(4))
    fc1 = MatMulThreshold("fc1", DataType.uint(2), rng.integers(0, 2, (10, 96)), None)  # bipolar: no advice
    return IntegerGraph(DataType.uint(4), (fc0, fc1))


def test_sparse_layer_goes_to_the_sparse_engine_with_a_reason(rng):
    advice = sparse_advice(_graph(rng, 0.08), get_board("zcu104"), act_density=0.3)
    assert [a["layer"] for a in advice] == ["fc0"]
    a = advice[0]
    assert a["engine"] == "sparse" and a["sparse_cycles"] < a["dense_cycles"]
    assert a["reason"].startswith("sparse: fewer cycles (96x128, weight density")


def test_dense_layer_stays_dense(rng):
    advice = sparse_advice(_graph(rng, 0.9), get_board("zcu104"))
    assert advice[0]["engine"] == "dense" and "above 50 %" in advice[0]["reason"]


def test_map_prints_the_advice(rng, tmp_path, capsys):
    path = _graph(rng, 0.08).save(tmp_path / "g.npz")
    assert main(["map", str(path), "--board", "zcu104", "--act-density", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "placement (dense MVTU or sparse engine, and why):" in out
    assert "fc1: mvtu: node 'fc1' has bipolar weights: no zero weights to skip" in out
    assert main(["map", str(path), "--board", "zcu104", "--act-density", "0.3", "--budget", "0.01"]) == 0
    assert "fc0: sparse: sparse engine N=" in capsys.readouterr().out
    assert main(["map", str(path), "--act-density", "1.5"]) == 2
    assert "argument --act-density: expected a share in (0, 1], not 1.5" in capsys.readouterr().err
