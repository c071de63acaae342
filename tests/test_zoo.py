"""Built-in models (quant/zoo.py): BNN-PYNQ's CNV-W1A1, CNV-W2A2 and LFC-W1A1 as integer graphs."""

import json

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.cli import main
from lowbit.ir import BIPOLAR, DataType, IntegerGraph, MatMulThreshold
from lowbit.quant import builtin as zoo
from lowbit.ir.graph import MaxPool, SlidingWindow


@pytest.fixture(scope="module")
def cnv_small():
    return zoo.build("cnv-w1a1", width=0.125)


def test_cnv_w1a1_topology_and_types():
    g = zoo.cnv("w1a1", width=0.125)
    kinds = [type(n).__name__ for n in g.nodes]
    assert kinds == ["SlidingWindow", "MatMulThreshold", "SlidingWindow", "MatMulThreshold", "MaxPool",
                     "SlidingWindow", "MatMulThreshold", "SlidingWindow", "MatMulThreshold", "MaxPool",
                     "SlidingWindow", "MatMulThreshold", "MatMulThreshold", "MatMulThreshold",
                     "MatMulThreshold", "MatMulThreshold"]
    assert g.input_shape == (32, 32, 3) and g.input_dtype == DataType.uint(8)
    mm = g.matmuls
    assert mm[0].input_dtype == DataType.uint(8) and mm[0].weight_dtype is BIPOLAR
    assert all(n.input_dtype is BIPOLAR and n.weight_dtype is BIPOLAR for n in mm[1:])
    # spatial sizes of the published table: 30, 28, pool 14, 12, 10, pool 5, 3, then 1 (flattened)
    dims = [g.output_shape(i)[0] for i, n in enumerate(g.nodes) if isinstance(n, MatMulThreshold)][:5]
    assert dims == [30, 28, 12, 10, 3]


def test_full_size_shapes_match_the_published_table():
    g = zoo.cnv("w1a1", calibration_images=1)
    mw_mh = [(n.mw, n.mh) for n in g.matmuls]
    assert mw_mh == [(27, 64), (576, 64), (576, 128), (1152, 128), (1152, 256), (2304, 256), (256, 512),
                     (512, 512), (512, 64)]
    g2 = zoo.cnv("w2a2", calibration_images=1)
    assert g2.matmuls[0].weight_dtype == DataType.int(2) and g2.matmuls[1].input_dtype == DataType.uint(2)
    assert all(n.output_dtype == DataType.uint(2) for n in g2.matmuls[:-1])
    lfc = zoo.lfc(calibration_images=4)
    assert [(n.mw, n.mh) for n in lfc.matmuls] == [(832, 1024), (1024, 1024), (1024, 1024), (1024, 64)]


@pytest.mark.parametrize("variant", ["w1a1", "w2a2"])
def test_thresholds_lie_in_the_accumulator_range_and_every_channel_switches(variant):
    g = zoo.cnv(variant, width=0.25, seed=3)
    for n in g.matmuls[:-1]:
        lo, hi = n.acc_range
        assert n.thresholds.min() >= lo and n.thresholds.max() <= hi + 1
    x = np.random.default_rng(11).integers(0, 256, (4, g.input_size))
    trace = g.trace(x)
    for node, h in zip(g.nodes, trace):
        if isinstance(node, MatMulThreshold) and node.thresholds is not None and h.ndim == 4:
            varying = (h.reshape(-1, h.shape[-1]).std(axis=0) > 0).mean()
            assert varying > 0.9, (node.name, varying)


def test_same_seed_same_model_other_seed_other_weights():
    a, b, c = (zoo.cnv("w1a1", width=0.125, seed=s) for s in (1, 1, 2))
    assert all((x.weights == y.weights).all() and (x.thresholds is None or (x.thresholds == y.thresholds).all())
               for x, y in zip(a.matmuls, b.matmuls))
    assert any((x.weights != y.weights).any() for x, y in zip(a.matmuls, c.matmuls))


def test_supplied_weights_and_thresholds_are_used():
    base = zoo.cnv("w1a1", width=0.125)
    weights = [1 - n.weights for n in base.matmuls]
    thresholds = [None if n.thresholds is None else n.thresholds for n in base.matmuls]
    thresholds[2] = None  # calibrated
    g = zoo.cnv("w1a1", width=0.125, weights=weights, thresholds=thresholds)
    assert all((n.weights == w).all() for n, w in zip(g.matmuls, weights))
    assert (g.matmuls[0].thresholds == base.matmuls[0].thresholds).all()


def test_wrong_number_of_supplied_weights_is_refused():
    with pytest.raises(LowbitError, match=r"^cnv-w1a1: weights must be a list of 9 arrays .* not 2$"):
        zoo.cnv("w1a1", weights=[np.zeros((1, 1))] * 2)
    with pytest.raises(LowbitError, match=r"^unknown built-in model 'vgg'; expected one of cnv-w1a1, "):
        zoo.build("vgg")


def test_published_foldings():
    assert zoo.published_folding("cnv-w1a1")[1] == (32, 32)
    assert zoo.published_folding("cnv-w2a2")[3] == (16, 8)
    assert zoo.published_bottleneck("cnv-w2a2") == (115_200, 387.55)


def test_scaled_folding_uses_divisors(cnv_small):
    g = cnv_small.graph
    for (simd, pe), node in zip(cnv_small.matmul_folding, g.matmuls):
        k = g.nodes.index(node)
        conv = isinstance(g.nodes[k - 1], SlidingWindow) if k else False
        cols = g.input_shape_of(k - 1)[-1] if conv else node.mw
        assert cols % simd == 0 and node.mh % pe == 0


def test_zoo_model_round_trips_through_a_file(cnv_small, tmp_path):
    g = cnv_small.graph
    g.save(tmp_path / "m.npz")
    h = IntegerGraph.load(tmp_path / "m.npz")
    x = np.random.default_rng(0).integers(0, 256, (2, g.input_size))
    assert (h.scores(x) == g.scores(x)).all()
    assert any(isinstance(n, MaxPool) for n in h.nodes)


def test_cli_zoo_lists_and_writes(tmp_path, capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert "cnv-w1a1" in out and "32,768" in out and "115,200" in out
    assert main(["zoo", "cnv-w1a1", "--width", "0.125", "-o", str(tmp_path / "cnv.npz")]) == 0
    g = IntegerGraph.load(tmp_path / "cnv.npz")
    sched = json.loads((tmp_path / "cnv.schedule.json").read_text())
    assert [layer["name"] for layer in sched["layers"]] == [n.name for n in g.nodes]
    assert sched["board"] == "ultra96-v2"


def test_cli_compile_zoo_writes_a_conv_design(tmp_path, capsys):
    out = tmp_path / "cnv"
    assert main(["compile", "--zoo", "cnv-w1a1", "--width", "0.125", "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["zoo"]["name"] == "cnv-w1a1" and report["mapping"]["board"] == "ultra96-v2"
    assert report["stream_format"]["input_size"] == 32 * 32 * 3 and report["stream_format"]["simd"] == 3
    assert (out / "lowbit_top.v").read_text().count("module ") > 10
    assert "cycles/image" in capsys.readouterr().out
    assert main(["compile", "-o", str(tmp_path / "x")]) == 2
    assert "give either a model file or --zoo NAME" in capsys.readouterr().err
