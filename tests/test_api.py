"""The Python API (``lowbit.load``, :mod:`lowbit.api`): the README's example runs as written and
gives the command line's numbers; bad parameters are refused naming them."""

import contextlib
import dataclasses
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lowbit
from lowbit import LowbitError
from lowbit.cli.app import main
from lowbit.ir import DataType, IntegerGraph
from lowbit.ir.boundary import ClassMap, InputQuant
from lowbit.quant.onnx.writer import save_model, to_qonnx

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- test_api: example -->"


def readme_example() -> str:
    """The README's code block right after ``MARKER``."""
    text = (ROOT / "README.md").read_text()
    m = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, re.S)
    assert m, f"README.md: no python block after {MARKER}"
    return m.group(1)


def _cli(argv) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(argv)
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The README example executed in a fresh directory: its namespace and the directory."""
    where = tmp_path_factory.mktemp("readme")
    ns: dict = {"__name__": "readme_example"}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(where)
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(readme_example(), "README.md:example", "exec"), ns)
    return ns, where


@pytest.mark.fast_sim
def test_readme_example_gives_the_cli_numbers(example, monkeypatch):
    ns, where = example
    monkeypatch.chdir(where)
    m, mapped, design, sim, built = (ns[k] for k in ("m", "mapped", "design", "sim", "built"))
    data = ns["data"]

    # the reference: the graph's own class decision, and the first layer's output shape
    graph = IntegerGraph.load("digits.npz")
    assert np.array_equal(ns["labels"], graph.predict(data.x_test))
    assert ns["first"].shape == (1, 32)

    # lowbit map: the same cycles per image, rate and resources
    rc, out = _cli(["map", "digits.npz", "--board", "pynq-z2", "--budget", "0.05", "--json"])
    assert rc == 0
    doc = json.loads(out)
    assert mapped.cycles_per_image == doc["cycles_per_image"]
    assert mapped.images_per_second == doc["throughput_fps"]
    assert mapped.resources == doc["resources"]
    assert design.cycles_per_image == doc["cycles_per_image"]

    # lowbit sim --fast on the compiled directory (the default images: the digits test split)
    rc, _ = _cli(["sim", "digits_build", "--fast", "--json", "sim.json"])
    assert rc == 0
    s = json.loads(Path("sim.json").read_text())
    assert sim.bit_exact is True and s["ok"] is True
    assert sim.images == s["images"] == len(data.x_test)
    assert sim.label_mismatches == s["label_mismatches"] == 0
    assert sim.cycles_per_image_measured == s["cycles_per_image_measured"]
    assert sim.cycles_per_image_predicted == s["cycles_predicted"]["estimate"]
    assert sim.accuracy_reference == s["accuracy"]["reference"]
    assert sim.accuracy_rtl == s["accuracy"]["rtl"]
    assert sim.accuracy_rtl == np.mean(ns["labels"] == data.y_test)

    # lowbit build: the manifest it returns is the one it wrote
    assert built.manifest_path == where / "digits_out" / "build.json"
    assert json.loads(built.manifest_path.read_text()) == json.loads(json.dumps(built.manifest))
    assert built.manifest["cycles_per_image"] == mapped.cycles_per_image
    assert built.flow == "vivado"

    # a compiled design builds for its own board only
    with pytest.raises(LowbitError, match="compiled for pynq-z2, not ultra96-v2"):
        design.build("other", board="ultra96-v2")
    again = design.build("from_compiled")
    assert design.dir == where / "digits_build"
    assert again.manifest["source"] == str(where / "digits_build")
    assert again.manifest["cycles_per_image"] == mapped.cycles_per_image


def test_import_lowbit_does_not_load_the_api():
    code = (
        "import sys, lowbit\n"
        "assert 'lowbit.api' not in sys.modules and 'lowbit.flow' not in sys.modules\n"
        "assert lowbit.load.__module__ == 'lowbit.api'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parent)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lowbit.nope  # noqa: B018


@pytest.fixture
def small(tmp_path, rng, random_graph):
    """A random 12-8-6-4 graph (UINT5 inputs) saved as a lowbit model file, and its path."""
    graph = random_graph(rng)
    path = graph.save(tmp_path / "small.npz")
    return graph, path


def test_predict_scores_trace_are_the_references(small, rng):
    graph, path = small
    m = lowbit.load(path)
    x = rng.integers(0, 32, (7, 12))
    assert np.array_equal(m.predict(x), graph.predict(x))
    assert np.array_equal(m.scores(x), graph.scores(x))
    assert all(np.array_equal(a, b) for a, b in zip(m.trace(x), graph.trace(x), strict=True))


def test_class_scores_apply_the_exact_class_map(small, tmp_path, rng):
    """Scores out: the integers and the exact map; without a map the scores themselves."""
    graph, path = small
    x = rng.integers(0, 32, (9, 12))
    plain = lowbit.load(path)
    assert plain.class_map is None and np.array_equal(plain.class_scores(x), graph.scores(x))
    cm = ClassMap((3, -2, 1, 5), (0, 9, 7, -4))
    nodes = graph.nodes[:-1] + (dataclasses.replace(graph.nodes[-1], class_map=cm),)
    m = lowbit.load(IntegerGraph(graph.input_dtype, nodes).save(tmp_path / "cm.npz"))
    assert m.class_map == cm
    s = graph.scores(x)
    want = [[3 * r[0], -2 * r[1] + 9, r[2] + 7, 5 * r[3] - 4] for r in s.tolist()]  # by hand
    assert m.class_scores(x).tolist() == want
    assert np.array_equal(np.argmax(m.class_scores(x), axis=1), m.predict(x))


def test_float_inputs_are_encoded_by_the_input_quantizer(small, tmp_path):
    graph, _ = small
    q = InputQuant(DataType.uint(5), (0.5,), (0.0,))
    path = IntegerGraph(graph.input_dtype, graph.nodes, input_quant=q).save(tmp_path / "q.npz")
    m = lowbit.load(path)
    x = np.full((1, 12), 1.0)  # 1.0 / 0.5 = code 2; 100.0 clips to 31
    x[0, 0] = 100.0
    assert m.codes(x).tolist() == [[31] + [2] * 11]
    assert np.array_equal(m.predict(x), graph.predict(np.array([[31] + [2] * 11])))


def test_onnx_models_load_through_the_importer(small, tmp_path, rng):
    graph, _ = small
    path = save_model(to_qonnx(graph), tmp_path / "small.onnx")
    m = lowbit.load(path)
    x = rng.integers(0, 32, (5, 12))
    assert m.nchw is True and m.file is None
    assert np.array_equal(m.predict(x), graph.predict(x))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m.map(budget=0), r"budget must be a fraction in \(0, 1\]"),
        (lambda m: m.map(budget=1.5), r"budget must be a fraction in \(0, 1\]"),
        (lambda m: m.map(budget=True), r"budget must be a fraction in \(0, 1\]"),
        (lambda m: m.map(board=3), r"board must be a board name"),
        (lambda m: m.map(board="nope"), r"nope"),
        (lambda m: m.map(target_fps=-1), r"^target_fps must be a positive number"),
        (lambda m: m.map(act_density=2.0), r"^act_density must lie in \(0, 1\]"),
        (lambda m: m.build("out", clock_mhz=0), r"^clock_mhz: a clock must be finite, above 0"),
        (lambda m: m.compile(7), r"out_dir must be a path"),
        (lambda m: m.predict(np.zeros((2, 12))), r"^x: 'x' holds floats"),
        (lambda m: m.predict(np.zeros((2, 5), dtype=int)), r"^x: 'x' must have shape \(B, 12\)"),
        (lambda m: m.predict(np.full((2, 12), 32)), r"^x: input values must lie in \[0, 31\]"),
    ],
)
def test_bad_parameters_are_refused_naming_them(small, call, match):
    m = lowbit.load(small[1])
    with pytest.raises(LowbitError, match=match):
        call(m)


def test_bad_load_arguments_are_refused(small, tmp_path):
    with pytest.raises(LowbitError, match="missing.npz: no such model file"):
        lowbit.load(tmp_path / "missing.npz")
    with pytest.raises(LowbitError, match="^input_quant applies to ONNX models only"):
        lowbit.load(small[1], input_quant="UINT8:1/255")
    with pytest.raises(LowbitError, match="^input_quant: expected TYPE:SCALE"):
        lowbit.load(small[1], input_quant="UINT8")


def test_compile_checks_board_against_the_schedule_and_simulate_checks_labels(small, tmp_path):
    m = lowbit.load(small[1])
    mapped = m.map(board="pynq-z2", budget=0.05)
    with pytest.raises(LowbitError, match="^board 'ultra96-v2': the schedule was made for pynq-z2"):
        m.compile(tmp_path / "c", board="ultra96-v2", schedule=mapped)
    assert not (tmp_path / "c").exists()
    design = m.compile(tmp_path / "c", schedule=mapped)
    assert design.cycles_per_image == mapped.cycles_per_image
    assert lowbit.api.open_compiled(tmp_path / "c").report == design.report
    x = np.zeros((3, 12), dtype=int)
    with pytest.raises(LowbitError, match=r"^y must hold one integer label per image, shape \(3"):
        design.simulate(x, np.zeros(2, dtype=int))
    with pytest.raises(LowbitError, match=r"^y: labels 'y' must lie in \[0, 3\]"):
        design.simulate(x, np.array([0, 1, 4]))
    with pytest.raises(LowbitError, match="^x: no images to simulate"):
        design.simulate(np.zeros((0, 12), dtype=int))
