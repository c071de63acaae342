"""The command line refuses bad numbers, boards and output paths where they enter (issue 17).

Every refusal: exit status 2, at most three lines on stderr naming the flag or path and what was
expected, no traceback, and nothing written or deleted. Run in process through ``lowbit.cli.main``
on a 64 -> 16 -> 10 model (no Verilator, no training beyond one epoch of a tiny MLP).
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from mapping_models import UINT5, mlp

from lowbit import LowbitError
from lowbit._io import atomic_write
from lowbit.cli import main
from lowbit.flow import compile_model
from lowbit.mapping import Schedule, search_folding

PRECIOUS = "the user's own file\n"


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    d = tmp_path_factory.mktemp("in")
    graph = mlp((64, 16, 10), UINT5, 0)
    model = graph.save(d / "m.npz")
    search_folding(graph, "pynq-z2", budget=0.05).save(d / "s.json")
    search_folding(graph, "zedboard", budget=0.05).save(d / "zed.json")
    compile_model(graph, d / "compiled", board="pynq-z2")
    np.savez(d / "empty.npz", x=np.zeros((0, 64), dtype=np.int64), y=np.zeros(0, dtype=np.int64))
    x = np.random.default_rng(0).integers(0, 17, (4, 64))
    np.savez(d / "xy.npz", x=x, y=np.arange(4))
    return {
        "model": str(model),
        "sched": str(d / "s.json"),
        "zed": str(d / "zed.json"),
        "compiled": str(d / "compiled"),
        "empty": str(d / "empty.npz"),
        "xy": str(d / "xy.npz"),
    }


@pytest.fixture
def work(paths, tmp_path):
    """``paths`` plus this test's own: an output name, a regular file, a directory of the user's."""
    (tmp_path / "file").write_text(PRECIOUS)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text(PRECIOUS)
    return {**paths, "out": str(tmp_path / "out"), "file": str(tmp_path / "file"),
            "mine": str(tmp_path / "mine"), "tmp": str(tmp_path)}


def run(capsys, argv, p):
    try:
        rc = main([a.format(**p) for a in argv])
    except SystemExit as e:  # argparse's own exits
        rc = e.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_refused(rc, err, fragments):
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 3, err
    for f in fragments:
        assert f in err, (f, err)


C, M, S, B = "compile {model} -o {out}", "map {model}", "sim {compiled}", "build {compiled}"
SPARSE = "sparse-bench --rows 8 --cols 8 --density 0.5 --act-density 0.5"

# (argv, fragments the message must hold); every one is refused with exit status 2
REFUSED = {
    # numbers, validated where they enter
    "compile-schedule-budget-2": (C + " --schedule {sched} --budget 2", ["--budget", "(0, 1]"]),
    "compile-schedule-budget-neg": (C + " --schedule {sched} --budget -0.5",
                                    ["--budget", "(0, 1]"]),
    "compile-budget-neg": (C + " --budget -0.5", ["--budget", "(0, 1]"]),
    "compile-budget-nan": (C + " --budget nan", ["--budget", "(0, 1]"]),
    "compile-budget-word": (C + " --budget lots", ["--budget", "not 'lots'"]),
    "compile-zoo-seed-neg": ("compile --zoo lfc-w1a1 -o {out} --seed -1", ["--seed", ">= 0"]),
    "compile-zoo-width-0": ("compile --zoo lfc-w1a1 -o {out} --width 0", ["--width", "> 0"]),
    "map-budget-2": (M + " --budget 2", ["--budget", "(0, 1]"]),
    "map-fps-0": (M + " --target-fps 0", ["--target-fps", "> 0"]),
    "map-fps-inf": (M + " --target-fps inf", ["--target-fps", "finite"]),
    "map-act-density-0": (M + " --act-density 0", ["--act-density", "(0, 1]"]),
    "sim-images-0": (S + " --images 0", ["--images", ">= 1"]),
    "sim-images-neg": (S + " --images -5", ["--images", ">= 1"]),
    "sim-images-huge": (S + " --images 99999999", ["--images", "1048576"]),
    "sim-count-neg": (S + " --count -5", ["--count", ">= 1"]),
    "sim-count-huge": (S + " --count 2000000", ["--count", "1048576"]),
    "sim-throttled-0": (S + " --throttled 0", ["--throttled", ">= 1"]),
    "sim-zero-images": (S + " --images {empty}", ["{empty}", "zero images"]),
    "build-clock-0": (B + " --board pynq-z2 -o {out} --clock 0", ["--clock", "MHz"]),
    "build-clock-neg": (B + " --board pynq-z2 -o {out} --clock -5", ["--clock", "MHz"]),
    "build-clock-nan": (B + " --board pynq-z2 -o {out} --clock nan", ["--clock", "finite"]),
    "build-clock-huge": (B + " --board pynq-z2 -o {out} --clock 1e9", ["--clock", "1000"]),
    "build-budget-0": (B + " --board pynq-z2 -o {out} --budget 0", ["--budget", "(0, 1]"]),
    "train-epochs-0": ("train --hidden 8 --epochs 0", ["--epochs", ">= 1"]),
    "train-seed-neg": ("train --hidden 8 --epochs 1 --seed -1", ["--seed", ">= 0"]),
    "train-batch-0": ("train --hidden 8 --epochs 1 --batch-size 0", ["--batch-size", ">= 1"]),
    "train-lr-0": ("train --hidden 8 --epochs 1 --lr 0", ["--lr", "> 0"]),
    "demo-epochs-neg": ("demo --epochs -1 --out {out}", ["--epochs", ">= 1"]),
    "demo-budget-0": ("demo --budget 0 --out {out}", ["--budget", "(0, 1]"]),
    "zoo-seed-neg": ("zoo lfc-w1a1 --seed -1 -o {tmp}/z.npz", ["--seed", ">= 0"]),
    "sparse-pes-neg": (SPARSE + " --pes -1", ["--pes", "positive integer"]),
    "sparse-seed-neg": (SPARSE + " --seed -1", ["--seed", ">= 0"]),
    "sparse-density-2": ("sparse-bench --rows 8 --cols 8 --density 2 --act-density 0.5",
                         ["--density", "(0, 1]"]),
    "eval-count-neg": ("eval {model} --images {xy} --count -5", ["--count", ">= 1"]),
    "sweep-workers-0": ("sweep {model} --workers 0 -o {out}", ["--workers", ">= 1"]),
    # boards
    "compile-board-empty": (C + " --board=", ["--board", "pynq-z2"]),
    "map-board-empty": (M + " --board=", ["--board", "pynq-z2"]),
    "build-board-empty": (B + " --board= -o {out}", ["--board", "pynq-z2"]),
    "compile-board-vs-schedule": (C + " --schedule {sched} --board zedboard",
                                  ["--board zedboard", "pynq-z2", "{sched}"]),
    "compile-schedule-over-budget": (C + " --schedule {sched} --budget 0.001",
                                     ["--budget 0.001", "does not fit pynq-z2"]),
    # output paths
    "compile-onto-file": ("compile {model} -o {file}", ["{file}", "exists and is not a directory"]),
    "compile-under-file": ("compile {model} -o {file}/sub", ["{file}", "not a directory"]),
    "compile-onto-users-dir": ("compile {model} -o {mine}", ["{mine}", "not a lowbit output"]),
    "build-under-file": (B + " --board pynq-z2 -o {file}/b", ["{file}", "not a directory"]),
    "demo-onto-file": ("demo --out {file}", ["{file}", "exists and is not a directory"]),
    "map-plots-onto-file": (M + " --plots {file}", ["--plots", "exists and is not a directory"]),
    "map-markdown-onto-dir": (M + " --markdown {mine}", ["--markdown", "is a directory"]),
    "map-output-onto-dir": (M + " -o {mine}", ["--output", "is a directory"]),
    "eval-json-onto-dir": ("eval {model} --images {xy} --json {mine}",
                           ["--json", "is a directory"]),
    "export-onto-dir": ("export {model} -o {mine}", ["{mine}", "is a directory"]),
    "sweep-onto-file": ("sweep {model} -o {file}", ["{file}", "exists and is not a directory"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_with_a_clear_message(case, work, capsys):
    argv, fragments = REFUSED[case]
    argv = argv.split()
    rc, out, err = run(capsys, argv, work)
    assert_refused(rc, err, [f.format(**work) for f in fragments])
    assert "PASS" not in out
    # nothing written, nothing of the user's deleted or changed
    assert not Path(work["out"]).exists()
    assert Path(work["file"]).read_text() == PRECIOUS
    assert (Path(work["mine"]) / "notes.txt").read_text() == PRECIOUS
    assert sorted(p.name for p in Path(work["mine"]).iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in Path(work["tmp"]).iterdir()) == ["file", "mine"]


def test_map_checks_every_output_before_writing_any(work, capsys):
    rc, _, err = run(capsys, ["map", "{model}", "-o", "{tmp}/s.json", "--plots", "{file}"], work)
    assert_refused(rc, err, ["--plots", work["file"]])
    assert not (Path(work["tmp"]) / "s.json").exists()


# -- boards: aliases read as the canonical name, a schedule's board adopted ----------------------

@pytest.mark.parametrize("argv", [
    ["map", "{model}", "--board", "PYNQ_Z2", "--budget", "0.05", "-o", "{tmp}/s.json"],
    ["compile", "{model}", "-o", "{out}", "--board", "pynq_z2", "--budget", "0.05"],
])
def test_board_aliases_are_read_as_the_canonical_name(argv, work, capsys):
    rc, out, err = run(capsys, argv, work)
    assert rc == 0, err
    assert "board 'PYNQ_Z2' read as 'pynq-z2'" in err or "board 'pynq_z2' read as 'pynq-z2'" in err
    assert "pynq-z2" in out


def test_compile_adopts_the_schedules_board(work, capsys):
    rc, out, err = run(capsys, ["compile", "{model}", "-o", "{out}", "--schedule", "{zed}"], work)
    assert rc == 0, err
    assert Schedule.load(Path(work["out"]) / "schedule.json").board == "zedboard"
    assert "on zedboard" in out


def test_compile_with_the_schedules_own_board_and_a_budget_it_fits(work, capsys):
    argv = ["compile", "{model}", "-o", "{out}", "--schedule", "{zed}", "--board", "ZedBoard",
            "--budget", "0.5"]
    rc, out, err = run(capsys, argv, work)
    assert rc == 0, err
    assert "on zedboard" in out


# -- output directories: a previous output is replaced, anything else is kept --------------------

def test_compile_replaces_its_own_previous_output(work, capsys):
    argv = ["compile", "{model}", "-o", "{out}", "--budget", "0.05"]
    assert run(capsys, argv, work)[0] == 0
    (Path(work["out"]) / "stale.txt").write_text("old")
    assert run(capsys, argv, work)[0] == 0
    assert not (Path(work["out"]) / "stale.txt").exists()
    assert (Path(work["out"]) / "report.json").is_file()
    assert sorted(p.name for p in Path(work["tmp"]).iterdir()) == ["file", "mine", "out"]


def test_an_empty_directory_is_a_fine_output(work, capsys):
    Path(work["out"]).mkdir()
    assert run(capsys, ["compile", "{model}", "-o", "{out}"], work)[0] == 0
    assert (Path(work["out"]) / "lowbit_top.v").is_file()


def test_compile_model_refuses_a_regular_file_and_keeps_it(tmp_path):
    target = tmp_path / "f"
    target.write_text(PRECIOUS)
    with pytest.raises(LowbitError, match="exists and is not a directory"):
        compile_model(mlp((64, 16, 10), UINT5, 0), target, board="pynq-z2")
    assert target.read_text() == PRECIOUS
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


# -- unwritable places: a clean error naming the path ---------------------------------------------

def test_atomic_write_onto_a_directory_or_under_a_file(tmp_path):
    with pytest.raises(LowbitError, match=f"^{tmp_path}: is a directory"):
        atomic_write(tmp_path, "x")
    (tmp_path / "f").write_text(PRECIOUS)
    with pytest.raises(LowbitError, match="not a directory"):
        atomic_write(tmp_path / "f" / "g.json", "x")
    assert (tmp_path / "f").read_text() == PRECIOUS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_temporary_file_refused_by_the_system(tmp_path, monkeypatch):
    """What a read-only directory does, also when running as root: the OS refuses the temporary."""
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(LowbitError, match=f"^{tmp_path / 'a.json'}: cannot write .*denied"):
        atomic_write(tmp_path / "a.json", "x")
    with pytest.raises(LowbitError, match=f"^{tmp_path / 'o'}: cannot write .*Permission denied"):
        compile_model(mlp((64, 16, 10), UINT5, 0), tmp_path / "o", board="pynq-z2")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def read_only(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    os.chmod(d, 0o555)
    if os.access(d, os.W_OK):
        os.chmod(d, 0o755)
        pytest.skip("running as a user who may write into a read-only directory (root)")
    yield d
    os.chmod(d, 0o755)


@pytest.mark.parametrize("argv", [
    ["compile", "{model}", "-o", "{ro}/o"],
    ["map", "{model}", "-o", "{ro}/s.json"],
    ["eval", "{model}", "--images", "{xy}", "--json", "{ro}/r.json"],
    ["zoo", "lfc-w1a1", "-o", "{ro}/z.npz"],
])
def test_read_only_directory(argv, paths, read_only, capsys):
    rc, _, err = run(capsys, argv, {**paths, "ro": str(read_only)})
    assert_refused(rc, err, [str(read_only)])
    assert list(read_only.iterdir()) == []


# -- the library's own checks (the CLI is one caller) ---------------------------------------------

@pytest.mark.parametrize("clock", [0.0, -5.0, float("nan"), float("inf"), 1e9])
def test_build_refuses_a_clock_outside_its_range(clock, paths, tmp_path):
    from lowbit.deploy.build import build

    with pytest.raises(LowbitError, match="clock"):
        build(paths["compiled"], "pynq-z2", tmp_path / "b", clock_mhz=clock)
    assert list(tmp_path.iterdir()) == []


def test_build_writes_a_valid_clock_into_the_plan(paths, tmp_path, capsys):
    rc, _, err = run(capsys, ["build", "{compiled}", "--board", "pynq_z2", "-o", "{tmp}/b",
                              "--clock", "50"], {**paths, "tmp": str(tmp_path)})
    assert rc == 0, err
    manifest = json.loads((tmp_path / "b" / "build.json").read_text())
    assert manifest["clock_mhz"] == 50.0 and manifest["board"] == "pynq-z2"
