"""The fast path: Verilated models in a shared library driven through ctypes (lowbit.sim.fast)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.hw.top import Accelerator, stream_format
from lowbit.hw.codec import pack_fields, unpack_fields
from lowbit.hw.verilog import to_verilog
from lowbit.hw.mvtu.unit import element_shape
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.ir import DataType, IntegerGraph, MatMulThreshold
from lowbit.sim.fast import VerilatedModel
from lowbit.sim.verify import Pattern, verify_fast

pytestmark = pytest.mark.fast_sim


@pytest.fixture(scope="module", autouse=True)
def _private_cache(private_verilator_cache):
    """Every module builds its Verilated models in its own cache (no reuse across test runs)."""


@pytest.fixture(scope="module")
def mvtu():
    rng = np.random.default_rng(3)
    w = rng.integers(0, 2, (6, 12))
    node = MatMulThreshold("fc0", DataType.uint(4), w, None)
    spec = MVTUSpec(node, pe=2, simd=3)
    return spec, VerilatedModel.build(to_verilog(spec.create()))


def test_poke_peek_step(mvtu):
    spec, model = mvtu
    model.reset()
    assert model.peek("i__ready") == 1          # both input banks free after reset
    assert model.peek("o__valid") == 0
    before = model.cycle
    model.step(5)
    assert model.cycle == before + 5
    with pytest.raises(LowbitError, match=r"no port 'nope'"):
        model.peek("nope")
    with pytest.raises(LowbitError, match=r"port 'o__valid' is an output"):
        model.poke("o__valid", 1)
    with pytest.raises(LowbitError, match=r"does not fit port 'o__ready'"):
        model.poke("o__ready", 2)


@pytest.mark.parametrize("valid,ready", [(1.0, 1.0), (0.5, 0.3), (0.2, 0.9)], ids=["steady", "v50-r30", "v20-r90"])
def test_mvtu_stream_matches_reference(mvtu, valid, ready):
    spec, model = mvtu
    rng = np.random.default_rng(11)
    x = rng.integers(0, 16, (50, spec.mw))
    model.reset()
    beats = pack_fields(x.reshape(-1, spec.simd), 4)
    pat = Pattern("p", valid, ready, seed=5)
    v, r = pat.arrays()
    res = model.stream(beats, len(x) * spec.neuron_folds, valid=v, ready=r)
    assert not res.timed_out
    got = unpack_fields(res.outputs, element_shape(spec.node.output_dtype).width, spec.pe, signed=True).reshape(len(x), spec.mh)
    expected = spec.reference(x)
    bad = np.argwhere(got != expected)
    assert len(bad) == 0, f"vector {bad[0][0]} output {bad[0][1]}: got {got[tuple(bad[0])]}, expected {expected[tuple(bad[0])]}"
    if valid == ready == 1.0:
        last_beats = res.out_cycles[spec.neuron_folds - 1::spec.neuron_folds]
        assert set(np.diff(last_beats).tolist()) == {spec.cycles()}


def test_stream_rejects_wrong_beat_shape(mvtu):
    _, model = mvtu
    with pytest.raises(LowbitError, match=r"beats must have shape \(n, 1\)"):
        model.stream(np.zeros((3, 2), dtype=np.uint32), 1)


def test_accelerator_whole_set_and_agreement_with_the_cycle_model(rng, random_graph):
    graph = random_graph(rng, sizes=(24, 16, 12, 10))
    specs = [MVTUSpec(graph.nodes[0], pe=4, simd=6), MVTUSpec(graph.nodes[1], pe=3, simd=4),
             MVTUSpec(graph.nodes[2], pe=5, simd=3)]
    acc = Accelerator(specs)
    x = rng.integers(0, 17, (2000, graph.input_size))
    rep = verify_fast(graph, to_verilog(acc), stream_format(acc), x)
    assert rep.ok, rep.mismatch
    assert [r["mismatched_images"] for r in rep.runs] == [0, 0, 0]
    assert np.array_equal(rep.labels, graph.predict(x))
    assert rep.cycles_per_image == max(s.cycles() for s in specs)


def test_wrong_design_is_named_and_leaves_a_waveform(rng, random_graph, tmp_path):
    graph = random_graph(rng)
    bad_node = graph.nodes[1]
    t = bad_node.thresholds.copy()
    lo, hi = bad_node.acc_range
    t[3, 0] = hi + 1 if t[3, 0] <= (lo + hi) // 2 else lo  # neuron 3 of a hidden layer stuck
    wrong = IntegerGraph(graph.input_dtype, (graph.nodes[0], MatMulThreshold(bad_node.name, bad_node.input_dtype,
                                                                                bad_node.weights, t),
                                             graph.nodes[2]))
    specs = [MVTUSpec(n, pe=1, simd=2) for n in wrong.nodes]
    acc = Accelerator(specs)
    x = rng.integers(0, 17, (400, graph.input_size))
    exp, got = graph.scores(x), wrong.scores(x)
    differs = np.flatnonzero((exp != got).any(axis=1))
    assert len(differs), "the broken threshold must change some output for this test to mean anything"
    rep = verify_fast(graph, to_verilog(acc), stream_format(acc), x, waves_dir=tmp_path)
    assert not rep.ok
    k = int(differs[0])
    j = int(np.flatnonzero(exp[k] != got[k])[0])
    assert (rep.mismatch.run, rep.mismatch.image, rep.mismatch.where, rep.mismatch.index) == \
        ("steady", k, f"{graph.nodes[-1].name}.scores", j)
    assert (rep.mismatch.got, rep.mismatch.expected) == (int(got[k, j]), int(exp[k, j]))
    text = open(rep.waves).read()
    assert "$enddefinitions" in text and "i__valid" in text and text.count("\n#") > 10


def test_concurrent_builds_of_one_design_share_the_cache(tmp_path, mvtu):
    spec, _ = mvtu
    rng = np.random.default_rng(9)
    w = rng.integers(0, 2, (4, 4))
    v = tmp_path / "d.v"
    v.write_text(to_verilog(MVTUSpec(MatMulThreshold("x", DataType.uint(2), w, None), pe=2, simd=2).create()))
    code = ("import sys; from lowbit.sim.fast import VerilatedModel; "
            "m = VerilatedModel.build(sys.argv[1]); m.reset(); print(m.lib_path)")
    env = {**os.environ, "LOWBIT_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(v)], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate()[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1]
    assert not list((tmp_path / "cache" / "verilator").glob(".*.tmp"))
