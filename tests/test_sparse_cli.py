"""lowbit sparse-bench and the mapper's sparse/dense choice."""

import json

import numpy as np
import pytest

from lowbit.cli import main
from lowbit.ir.resources import Resources
from lowbit.mapping.sparse_choice import choose_engine, dense_array_cycles

BIG = Resources(lut=10**6, ff=10**6, bram36=10**4, dsp=10**4)


def test_sparse_bench_writes_json_consistent_with_the_model(tmp_path, capsys):
    out = tmp_path / "r" / "bench.json"
    assert main(["sparse-bench", "--rows", "70", "--cols", "50", "--density", "0.1", "--act-density", "0.3",
                 "--pes", "4", "--depth", "2", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["dense_cycles"] == dense_array_cycles(70, 50, 4) == 18 * 50
    assert r["speedup"] == r["dense_cycles"] / r["cycles"]
    for v in r["vectors"]:
        assert v["efficiency"] == v["nnz_active"] / 4 / v["cycles"]
        assert v["entries"] >= v["nnz_active"]
    assert r["cycles"] == np.mean([v["cycles"] for v in r["vectors"]])
    text = capsys.readouterr().out
    assert "speed-up" in text and "mapper choice" in text
    assert not list(out.parent.glob(".*tmp"))


@pytest.mark.parametrize("argv, message", [
    (["--rows", "0", "--cols", "4", "--density", "0.1", "--act-density", "0.3"], "--rows must be a positive integer, not 0"),
    (["--rows", "4", "--cols", "4", "--density", "1.5", "--act-density", "0.3"], "--density must lie in (0, 1], not 1.5"),
    (["--rows", "4", "--cols", "4", "--density", "0.5", "--act-density", "0", "--pes", "2"],
     "--act-density must lie in (0, 1], not 0.0"),
    (["--rows", "4", "--cols", "4", "--density", "0.5", "--act-density", "0.5", "--depth", "-1"],
     "--depth must be a positive integer, not -1"),
])
def test_sparse_bench_bad_input_is_one_line_exit_2(argv, message, capsys):
    assert main(["sparse-bench", *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"lowbit sparse-bench: error: {message}\n"


def test_choice_sparse_when_sparse_and_dense_when_dense():
    rng = np.random.default_rng(0)
    sparse_w = rng.integers(1, 5, (64, 96)) * (rng.random((64, 96)) < 0.05)
    c = choose_engine(sparse_w, 0.3, BIG, pes=8)
    assert c.engine == "sparse" and c.reason.startswith("sparse: fewer cycles")
    assert c.sparse_cycles < c.dense_cycles and c.speedup > 1 and c.spec is not None
    dense_w = rng.integers(1, 5, (64, 96))
    c = choose_engine(dense_w, 1.0, BIG, pes=8)
    assert c.engine == "dense" and c.reason.startswith("dense: fewer cycles")
    assert c.sparse_cycles > c.dense_cycles == 8 * 96


def test_choice_names_the_resource_that_does_not_fit():
    rng = np.random.default_rng(1)
    w = rng.integers(1, 5, (512, 512)) * (rng.random((512, 512)) < 0.1)
    c = choose_engine(w, 1.0, BIG, pes=16)
    small = Resources(lut=10**6, ff=10**6, bram36=c.sparse_resources.bram36, dsp=100)
    assert c.dense_resources.bram36 > small.bram36
    c2 = choose_engine(w, 1.0, small, pes=16)
    assert c2.engine == "sparse" and "the dense array exceeds bram36" in c2.reason
    none = choose_engine(w, 1.0, Resources(lut=1, ff=1, bram36=0, dsp=0), pes=16)
    assert none.engine is None and none.reason.startswith("neither fits")
    with pytest.raises(ValueError, match=r"^act_density must lie in \(0, 1\], not 0$"):
        choose_engine(w, 0, BIG)
