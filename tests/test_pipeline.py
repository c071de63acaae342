"""Issue 18: ``lowbit run CONFIG``, the flow from a build config (lowbit.pipeline): every step's
outputs, log and time in one output directory that survives a failure, and resuming from a step."""

import json
import threading

import numpy as np
import pytest

from lowbit.cli import main
from lowbit.flow.heartbeat import Heartbeat
from lowbit.pipeline import STEPS, load_config

from onnx_models import qonnx_mlp


def _err(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _write(path, text):
    path.write_text(text)
    return path


DEMO = """\
name: demo
train: {hidden: [16], epochs: 2, seed: 2}
board: pynq-z2
budget: 0.05
simulate: {dataset: digits, count: 40}
"""


def test_demo_config_to_a_vivado_plan_then_a_failed_compile_resumed(tmp_path, capsys):
    cfg = _write(tmp_path / "demo.yaml", DEMO)
    out = tmp_path / "demo_out"
    assert main(["run", str(cfg)]) == 0
    text = capsys.readouterr().out
    steps = ["import", "map", "compile", "simulate", "build"]
    times = json.loads((out / "time_per_step.json").read_text())
    assert list(times) == steps and all(t >= 0 for t in times.values())
    state = json.loads((out / "flow.json").read_text())
    assert [state["steps"][s]["status"] for s in steps] == ["done"] * 5
    for i, s in enumerate(steps, 1):
        log = out / "logs" / f"{i:02d}_{s}.log"
        assert log.is_file() and "lowbit" in log.read_text(), s
    assert "training a binarized MLP" in (out / "logs" / "01_import.log").read_text()
    sim = json.loads((out / "simulate.json").read_text())
    assert sim["bit_exact"] and sim["images"] == 40 and sim["label_mismatches"] == 0
    assert sim["cycles_per_image_measured"] == sim["cycles_per_image_predicted"]
    assert (out / "build" / "build.tcl").is_file() and (out / "build" / "build.json").is_file()
    assert "Vivado plan in build/" in text and "bit-exact on 40 images" in text

    # a hand edit of the folding that the compile step refuses: the run stops there, says where
    # its log is, and keeps everything the earlier steps made
    sched = out / "schedule.json"
    good = sched.read_text()
    doc = json.loads(good)
    doc["layers"][0]["simd"] = 7  # does not divide the 64 inputs
    sched.write_text(json.dumps(doc))
    model_bytes = (out / "model.npz").read_bytes()
    assert main(["run", str(cfg), "--from", "compile"]) == 2
    err = _err(capsys)
    assert len(err.strip().splitlines()) <= 3, err  # progress goes to stdout, the error alone here
    assert "lowbit run: error: step compile failed: layer 'fc0': SIMD (7) must divide MW (64)" in err
    assert f"its log: {out / 'logs' / '03_compile.log'}" in err
    assert "SIMD (7) must divide MW (64)" in (out / "logs" / "03_compile.log").read_text()
    state = json.loads((out / "flow.json").read_text())
    assert state["steps"]["compile"]["status"] == "failed"
    assert state["steps"]["import"]["status"] == "done"
    assert (out / "model.npz").read_bytes() == model_bytes
    # the later steps' records went with the failed compile (their outputs are stale now)
    assert list(json.loads((out / "time_per_step.json").read_text())) == ["import", "map", "compile"]

    # fixed, and resumed from the compile step: import and map are not run again
    sched.write_text(good)
    assert main(["run", str(cfg), "--from", "compile"]) == 0
    state2 = json.loads((out / "flow.json").read_text())
    assert [state2["steps"][s]["status"] for s in steps] == ["done"] * 5
    for s in ("import", "map"):
        assert state2["steps"][s] == state["steps"][s]
    assert json.loads((out / "simulate.json").read_text())["bit_exact"]


def test_onnx_config_to_an_open_flow_bitstream(tmp_path, capsys):
    model = qonnx_mlp(np.random.default_rng(0), sizes=(8, 6, 4))
    (tmp_path / "mlp.onnx").write_bytes(model.SerializeToString())
    cfg = _write(tmp_path / "ice.json", json.dumps({
        "model": "mlp.onnx", "board": "icebreaker", "output": "ice",
        "simulate": {"random": 12, "seed": 3},
        "steps": ["import", "map", "compile", "simulate", "build", "flash"],
    }))
    assert main(["run", str(cfg)]) == 0, capsys.readouterr().err
    out = tmp_path / "ice"
    assert list(json.loads((out / "time_per_step.json").read_text())) == [
        "import", "map", "compile", "simulate", "build", "flash"]
    manifest = json.loads((out / "build" / "build.json").read_text())
    assert manifest["flow"] == "open" and (out / "build" / manifest["bitstream"]).is_file()
    flash = json.loads((out / "flash.json").read_text())
    assert flash["bitstream"].endswith(manifest["bitstream"]) and flash["commands"]
    assert "bitstream build/" in capsys.readouterr().out
    assert json.loads((out / "simulate.json").read_text())["bit_exact"]


def test_the_demo_model_to_a_bitstream_and_the_onnx_model_to_a_vivado_plan(tmp_path, capsys):
    """The other two corners: the demo config on an open-flow board, the ONNX config on a Zynq."""
    cfg = _write(tmp_path / "ice.yaml", DEMO.replace("board: pynq-z2", "board: icebreaker")
                 .replace("budget: 0.05", "budget: 0.5").replace("count: 40", "count: 20"))
    assert main(["run", str(cfg)]) == 0, capsys.readouterr().err
    m = json.loads((tmp_path / "ice_out" / "build" / "build.json").read_text())
    assert m["flow"] == "open" and (tmp_path / "ice_out" / "build" / m["bitstream"]).is_file()
    model = qonnx_mlp(np.random.default_rng(0), sizes=(8, 6, 4))
    (tmp_path / "mlp.onnx").write_bytes(model.SerializeToString())
    cfg = _write(tmp_path / "zynq.yaml", "model: mlp.onnx\nboard: zedboard\nsimulate: {random: 8}\n")
    assert main(["run", str(cfg)]) == 0, capsys.readouterr().err
    out = tmp_path / "zynq_out"
    assert (out / "build" / "build.tcl").is_file()
    assert json.loads((out / "build" / "build.json").read_text())["board"] == "zedboard"
    assert list(json.loads((out / "time_per_step.json").read_text())) == [
        "import", "map", "compile", "simulate", "build"]


@pytest.mark.parametrize("text, message", [
    ("board: pynq-z2\n", r"missing key 'model' \(a model file\) or 'train'"),
    ("model: m.onnx\ntrain: {}\n", r"give either 'model' or 'train', not both"),
    ("train: {}\nbord: pynq-z2\n", r"unknown key 'bord' \(did you mean 'board'\?\)"),
    ("train: {epocs: 3}\n", r"unknown key 'train.epocs' \(did you mean 'epochs'\?\)"),
    ("train: {}\nbudget: 1.5\n", r"key 'budget': 1.5 is greater than the maximum of 1"),
    ("train: {}\nsteps: [import, mapp]\n", r"key 'steps.1': 'mapp' is not one of"),
    ("train: {}\nclock_mhz: 1.0e+12\n", r"key 'clock_mhz': 1000000000000.0 is greater than the maximum of 1000"),
    ("model: ../outside.onnx\n", r"key 'model' names '../outside.onnx', which resolves to .*outside the config's directory"),
    ("model: /etc/hostname\n", r"key 'model' names '/etc/hostname', which resolves to"),
    ("train: {}\nboard: pynq_z3\n", r"key 'board': .*pynq_z3"),
    ("a: &x [1]\nb: *x\n", r"aliases \(\*name\) are not accepted"),
    ("- 1\n- 2\n", r"expected a mapping of keys \(YAML or JSON object\), not list"),
    ("train: {}\nsimulate: {dataset: digits, random: 4}\n", r"give one of 'dataset', 'images' or 'random', not dataset and random"),
    ("train: [\n", r"not a YAML document"),
    # found by the fuzzer: NaN passes JSON Schema's bounds (every comparison with it is false)
    ("train: {}\nclock_mhz: .nan\n", r"key 'clock_mhz' must be a finite number"),
    ("train: {}\nsimulate: {count: 3}\nheartbeat_s: .inf\n", r"key 'heartbeat_s' must be a finite number"),
    ("model: m.onnx\nschedule: missing.json\n", r"key 'schedule' names 'missing.json', which is not a file"),
    ("train: {}\ninput_wire: UINT8\n", r"key 'input_wire': "),
])
def test_a_bad_config_is_refused_naming_the_key(tmp_path, capsys, text, message):
    import re

    (tmp_path / "outside.onnx").write_bytes(b"")
    sub = tmp_path / "cfg"
    sub.mkdir()
    (sub / "m.onnx").write_bytes(b"x")
    cfg = _write(sub / "c.yaml", text)
    assert main(["run", str(cfg)]) == 2
    err = _err(capsys)
    assert len(err.strip().splitlines()) <= 3, err
    assert re.search(message, err), err
    assert not (sub / "c_out").exists()


def test_the_output_must_be_new_empty_or_a_flow_output(tmp_path, capsys):
    cfg = _write(tmp_path / "demo.yaml", DEMO)
    other = tmp_path / "home"
    other.mkdir()
    (other / "model.npz").write_text("the user's own file")
    assert main(["run", str(cfg), "-o", str(other)]) == 2
    assert "not the output of a lowbit flow (no flow.json) and not empty" in _err(capsys)
    assert (other / "model.npz").read_text() == "the user's own file"
    (tmp_path / "file").write_text("x")
    assert main(["run", str(cfg), "-o", str(tmp_path / "file" / "out")]) == 2
    assert f"{tmp_path / 'file'} is not a directory" in _err(capsys)


def test_resume_needs_the_earlier_steps_finished(tmp_path, capsys):
    cfg = _write(tmp_path / "demo.yaml", DEMO)
    assert main(["run", str(cfg), "--from", "compile"]) == 2
    assert "--from compile: step 'import' has not finished in" in _err(capsys)
    assert main(["run", str(cfg), "--from", "build", "--to", "map"]) == 2
    assert "--from 'build' comes after --to 'map'" in _err(capsys)
    steps = _write(tmp_path / "two.yaml", DEMO + "steps: [import, map]\n")
    assert main(["run", str(steps), "--to", "compile"]) == 2
    assert "--to 'compile': not a step of" in _err(capsys)


def test_config_defaults_and_steps_in_flow_order(tmp_path):
    cfg = load_config(_write(tmp_path / "c.yml", "train: {}\nsteps: [build, import]\n"))
    assert cfg.steps == ("import", "build") and cfg.board == "pynq-z2"
    assert cfg.output == tmp_path / "c_out"
    assert STEPS == ("import", "map", "compile", "simulate", "build", "flash")


def test_heartbeat_says_a_long_step_is_still_running():
    said = []
    event = threading.Event()

    def say(msg):
        said.append(msg)
        event.set()

    with Heartbeat("compile", 0.01, say):
        assert event.wait(10)
    assert said[0].startswith("  compile: still running, ")
    n = len(said)
    event.clear()
    assert not event.wait(0.05) and len(said) == n  # stopped with the step


def test_every_command_has_a_heartbeat_on_a_terminal(tmp_path, capsys, monkeypatch):
    """On a terminal, a command that runs long says so (here every 0.01 s, so any command does);
    not on a pipe, where the messages would mix into captured output."""
    import sys

    import lowbit.cli.app as app
    from mapping_models import mlp

    path = mlp((16, 8, 4), seed=1).save(tmp_path / "m.npz")
    monkeypatch.setattr(app, "HEARTBEAT_S", 0.01)
    assert main(["map", str(path), "--budget", "0.9"]) == 0
    assert "still running" not in capsys.readouterr().err  # not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    slow = app.cmd_map

    def cmd_map(args):
        import time

        time.sleep(0.2)
        return slow(args)

    monkeypatch.setattr(app, "cmd_map", cmd_map)
    parser = app.build_parser
    monkeypatch.setattr(app, "build_parser", lambda: _with_func(parser(), "map", cmd_map))
    assert main(["map", str(path), "--budget", "0.9"]) == 0
    assert "  lowbit map: still running, 0 s" in capsys.readouterr().err


def _with_func(parser, name, func):
    import argparse

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices[name].set_defaults(func=func)
    return parser


def test_list_steps_and_schema(capsys):
    assert main(["run", "--list-steps"]) == 0
    assert capsys.readouterr().out.split() == list(STEPS)
    assert main(["run", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "lowbit build config" and "board" in schema["properties"]
    assert main(["run"]) == 2
    assert "give a build config (.yaml, .yml or .json)" in _err(capsys)
