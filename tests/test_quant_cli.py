"""``lowbit train`` with the zoo's options, run as a user runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from lowbit.ir import IntegerGraph
from lowbit.quant.data import load_digits_split

LOWBIT = [str(Path(sys.executable).with_name("lowbit"))]


def run(*args):
    return subprocess.run(LOWBIT + [str(a) for a in args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_train_ternary_pruned_shared_writes_graph_report_and_codebooks(tmp_path):
    out, rep = tmp_path / "m.npz", tmp_path / "r.json"
    proc = run("train", "--arch", "mlp:32", "--weights", "ternary", "--acts", "int:2", "--epochs", "2",
               "--prune", "0.5", "--share", "4", "-o", out, "--json", rep)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(rep.read_text())
    graph = IntegerGraph.load(out)
    data = load_digits_split()
    assert r["integer_graph_disagreements"] == 0
    assert r["integer_graph_accuracy"] == r["accuracy"] == float(np.mean(graph.predict(data.x_test) == data.y_test))
    assert r["weights"] == ["int:8", "int:8"] and r["acts"] == "int:2"
    assert r["weight_zeros"] == 32 * 64 // 2 and set(r["ops"]) == {"xnor", "add", "shift", "multiply"}
    assert Path(r["codebooks"]).is_file()
    assert "operations per inference" in proc.stdout and "bits of weight memory" in proc.stdout


def test_train_legacy_hidden_is_all_binary(tmp_path):
    out = tmp_path / "b.npz"
    proc = run("train", "-o", out, "--hidden", "16", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    g = IntegerGraph.load(out)
    assert [n.weight_dtype.name for n in g.matmuls] == ["BIPOLAR", "BIPOLAR"]
    assert g.matmuls[0].input_dtype.name == "UINT5" and g.matmuls[1].input_dtype.name == "BIPOLAR"


def test_train_errors_are_one_line(tmp_path):
    for args, msg in ((("--weights", "log2:9"), "--weights 'log2:9': POW2 takes a bit width in 2..6"),
                      (("--dataset", f"idx:{tmp_path / 'none'}"), "no such directory"),
                      (("--acts", "float", "-o", tmp_path / "x.npz"), "have no integer graph")):
        proc = run("train", *args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and msg in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.npz").exists()
