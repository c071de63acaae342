"""Issue 19, DAG networks in RTL: the zoo's ResNet (three residual blocks, one with a stride-2
projection shortcut) and MobileNet (three depthwise-separable blocks, native depthwise and global
average pool nodes), imported from their cached Brevitas exports, mapped by
:func:`lowbit.mapping.dag.map_dag`, stitched by :class:`lowbit.hw.dag.top.DagAccelerator` and run on
the fast path (Verilator) on test images: integer scores and labels equal to the graph's oracle
under random input and output throttling, measured cycles per image equal to the model's (==).
"""

from __future__ import annotations

import json

import brevitas_zoo as zoo
import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.hw.dag.top import DagAccelerator, dag_stream_format
from lowbit.hw.verilog import write_verilog
from lowbit.ir import Add, Concat, DataType, IntegerGraph, MatMulThreshold
from lowbit.mapping.dag import DagSchedule, map_dag, shortcut_fifo_edges, shortcut_inputs
from lowbit.quant.data import load_digits_split
from lowbit.quant.onnx.importer import import_onnx
from lowbit.sim.verify import default_patterns, verify_fast

TARGET = 2304
"""Cycles per image the tests map to (the benchmark's: one Verilator build, cached, serves both)."""


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def _imported(name, tmp_path):
    path = zoo.export(name, tmp_path, False)
    return import_onnx(path, native_nodes=True, **zoo.import_kwargs(name))


def test_map_dag_resnet(tmp_path):
    g = _imported("resnet_w4a4", tmp_path).graph
    s = map_dag(g, max_cycles=TARGET)
    stages = s.stage_cycles(g)
    assert s.cycles_per_image(g) == max(stages.values()) <= TARGET
    # every join's shortcut: the identity blocks' requantizers and the projection
    adds = [i for i, n in enumerate(g.nodes) if isinstance(n, Add)]
    assert [i for i, _ in shortcut_inputs(g)] == adds
    short = [g.inputs_of(i)[slot] for i, slot in shortcut_inputs(g)]
    assert [p.split("/")[2] for p in short] == ["q_short", "proj", "q_short"]
    # each shortcut's FIFO right after its fork: into the requantizer, the projection's window
    firsts = [g.nodes[i].name for i, _ in shortcut_fifo_edges(g)]
    assert [f[0] for f in s.fifos] == firsts
    assert [n.split("/")[2] for n in firsts] == ["q_short", "proj", "q_short"]
    forks = {n.name for n in g.nodes if len(g.consumers(n.name)) == 2}
    assert len(forks) == 3
    assert all(g.inputs_of(i)[slot] in forks for i, slot in shortcut_fifo_edges(g))
    # the schedule is an artefact: JSON and back, the same units
    back = DagSchedule.load(s.save(tmp_path / "schedule.json"))
    assert back == s and json.loads((tmp_path / "schedule.json").read_text())["kind"] == "dag"
    assert back.resources(g) == s.resources(g)
    # a faster target costs more
    fast = map_dag(g, max_cycles=TARGET // 4)
    assert fast.cycles_per_image(g) <= TARGET // 4
    assert fast.resources(g).lut > s.resources(g).lut
    with pytest.raises(LowbitError, match=r"^max_cycles \(10\) is below the fastest"):
        map_dag(g, max_cycles=10)


def test_map_dag_refuses_naming_the_node():
    u2 = DataType.uint(2)
    fc0 = MatMulThreshold("fc0", u2, np.eye(2, dtype=int), np.array([[1, 2, 3]] * 2), u2,
                          DataType.int(2))
    cat = Concat("cat")
    fc1 = MatMulThreshold("fc1", u2, np.ones((2, 4), dtype=int), None,
                          weight_dtype=DataType.int(2))
    g = IntegerGraph(u2, (fc0, cat, fc1), (2,), None, (("",), ("fc0", ""), ("cat",)))
    with pytest.raises(LowbitError, match=r"^map: node 'cat' \(Concat\) has no hardware in a DAG"):
        map_dag(g)


@pytest.mark.fast_sim
@pytest.mark.parametrize("name", list(zoo.DAG_MODELS))
def test_dag_network_in_rtl(name, digits, tmp_path):
    res = _imported(name, tmp_path)
    g = res.graph
    s = map_dag(g, max_cycles=TARGET)
    specs, fifos = s.apply(g)
    acc = DagAccelerator(g, specs, fifos)
    verilog = tmp_path / "lowbit_top.v"
    write_verilog(acc, verilog)
    x = res.encode(zoo.model_input(name, digits.x_test[:24]))
    report = verify_fast(g, verilog, dag_stream_format(acc), x, patterns=default_patterns((1, 2)))
    for run in report.runs:
        assert not run["timed_out"] and run["mismatched_images"] == 0, run
    assert np.array_equal(report.labels, g.predict(x))
    predicted = s.cycles_per_image(g)
    assert report.cycles_per_image == predicted
