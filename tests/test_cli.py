"""The ``lowbit`` command line, run as a user runs it (a subprocess of the installed script)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

LOWBIT = [str(Path(sys.executable).with_name("lowbit"))]  # the installed console script


def run(*args, cwd=None):
    return subprocess.run(LOWBIT + [str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def assert_clean_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for f in fragments:
        assert f in proc.stderr, (f, proc.stderr)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.npz"
    proc = run("train", "-o", path, "--hidden", "32", "--epochs", "3")
    assert proc.returncode == 0, proc.stderr
    return path


@pytest.mark.cocotb
def test_demo_meets_the_walking_skeleton_targets(tmp_path):
    out = tmp_path / "report.json"
    proc = run("demo", "--json", out, "--out", tmp_path / "demo_out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads(out.read_text())
    acc = r["accuracy"]
    assert r["mismatches"] == 0
    assert acc["reference"] == acc["rtl"]
    assert acc["rtl"] >= 0.90
    assert acc["float"] == acc["reference"]
    assert r["float_vs_reference_disagreements"] == 0
    cyc = r["cycles_per_image"]
    assert cyc["measured"] == cyc["predicted"]  # the steady run's mean interval: exact, no DDR term
    assert r["throughput_fps"] == r["clock_mhz"] * 1e6 / cyc["measured"]
    assert set(r["resources"]) == {"lut", "ff", "bram36", "dsp"}
    assert r["resources"]["lut"]["available"] == 53200
    assert all(v["used"] <= v["available"] for v in r["resources"].values())
    assert [run_["mismatched_images"] for run_ in r["rtl_runs"]] == [0, 0, 0]
    assert r["rtl_runs"][0]["images"] == r["test_images"] == 450
    assert "accuracy" in proc.stdout and "mismatches       : 0" in proc.stdout


@pytest.mark.cocotb
def test_train_map_compile_sim_round_trip(small_model, tmp_path):
    sched = tmp_path / "schedule.json"
    proc = run("map", small_model, "--budget", "0.05", "-o", sched, "--json")
    assert proc.returncode == 0, proc.stderr
    predicted = json.loads(proc.stdout)["cycles_per_image"]
    out = tmp_path / "build"
    proc = run("compile", small_model, "-o", out, "--schedule", sched)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == {"model.npz", "schedule.json", "lowbit_top.v", "report.json"}
    assert json.loads((out / "schedule.json").read_text()) == json.loads(sched.read_text())
    images = tmp_path / "x.npz"
    x = np.random.default_rng(5).integers(0, 17, (24, 64))
    np.savez(images, x=x)
    res = tmp_path / "sim.json"
    proc = run("sim", out, "--images", images, "--throttled", "12", "--json", res)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads(res.read_text())
    assert r["mismatches"] == 0 and r["labels_equal_reference"] is True and r["images"] == 24
    assert r["cycles_per_image_measured"] == predicted
    assert "PASS: bit-exact" in proc.stdout

    # The fast path on the same compiled Verilog agrees with cocotb cycle for cycle.
    fast = tmp_path / "fast.json"
    proc = run("sim", out, "--images", images, "--fast", "--json", fast)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    f = json.loads(fast.read_text())
    assert f["ok"] is True and f["mismatch"] is None and f["labels_equal_reference"] is True
    assert f["cycles_per_image_measured"] == r["cycles_per_image_measured"]
    assert f["first_output_cycle"] == r["runs"][0]["first_output_cycle"]


def test_missing_and_corrupt_model_files(tmp_path):
    missing = tmp_path / "nope.npz"
    assert_clean_error(run("compile", missing, "-o", tmp_path / "o"), str(missing), "no such model file")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip")
    assert_clean_error(run("compile", corrupt, "-o", tmp_path / "o"), str(corrupt), "not a lowbit model")
    assert not (tmp_path / "o").exists()


def test_invalid_schedule_names_the_parameter_and_writes_nothing(small_model, tmp_path):
    sched = tmp_path / "bad.json"
    proc = run("map", small_model, "--budget", "0.05", "-o", sched)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(sched.read_text())
    doc["layers"][0]["simd"] = 5
    sched.write_text(json.dumps(doc))
    out = tmp_path / "out"
    assert_clean_error(run("compile", small_model, "-o", out, "--schedule", sched),
                       "layer 'fc0'", "SIMD (5) must divide MW (64)")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_unknown_board_and_bad_sim_dir(small_model, tmp_path):
    assert_clean_error(run("map", small_model, "--board", "pynq-z9"), "pynq-z9", "pynq-z2")
    assert_clean_error(run("sim", tmp_path / "missing"), str(tmp_path / "missing"), "lowbit compile")


def test_boards_lists_the_pynq_z2():
    proc = run("boards")
    assert proc.returncode == 0
    line = next(l for l in proc.stdout.splitlines() if l.startswith("pynq-z2"))
    assert "xc7z020" in line and "53200" in line and "140" in line and "220" in line
