"""Issue 8: the AXI4-Lite control block, and the generated PYNQ driver against the simulated shell.
Issue 16: the driver encodes float images exactly as the graph's input quantizer (InputQuant.encode),
and its scores output gives the integers and the exact class map (class_scores), whose argmax is the label."""

import dataclasses
import importlib.util
import json
import re

import numpy as np
import pytest

from lowbit.deploy.build import build
from lowbit.deploy.driver import driver_config, driver_files
from lowbit.hw.axi.control import ID_VALUE, REGISTERS
from lowbit.flow.steps import compile_model
from lowbit.ir.boundary import ClassMap, InputQuant
from lowbit.ir.datatypes import DataType
from lowbit.quant.data import load_digits_split
from lowbit.quant.train.binary_mlp import TrainConfig, train_binary_mlp

fast_sim = pytest.mark.fast_sim

# per input channel c of the digits (64 pixels): scale 2^-4 or 2^-3, zero point c % 3 (UINT5 codes)
DIGITS_QUANT = InputQuant(
    DataType.parse("UINT5"), tuple(2.0 ** -(4 - c % 2) for c in range(64)), tuple(c % 3 for c in range(64))
)

# the last layer's per-class scale and bias as exact integers (either sign): it changes some labels
DIGITS_MAP = ClassMap((3, 2, 3, 3, 2, 3, 3, -1, 3, 3), (0, 40, 7, 3, 12, 11, 0, 14, 13, 5))


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    data = load_digits_split()
    graph = train_binary_mlp(data.x_train, data.y_train, TrainConfig(hidden=(32,), epochs=3, seed=2)).to_integer_graph()
    last = dataclasses.replace(graph.nodes[-1], class_map=DIGITS_MAP)
    graph = dataclasses.replace(graph, input_quant=DIGITS_QUANT, nodes=graph.nodes[:-1] + (last,))
    root = tmp_path_factory.mktemp("pynq_driver")
    compile_model(graph, root / "compiled", board="pynq-z2", budget=0.05)
    manifest = build(root / "compiled", "pynq-z2", root / "plan")
    return graph, data, root / "plan", manifest


def _driver(plan_dir, name="lowbit_driver_under_test"):
    spec = importlib.util.spec_from_file_location(name, plan_dir / "driver" / "lowbit_driver.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def overlay(plan):
    from lowbit.deploy.simbackend import SimulatedOverlay

    return SimulatedOverlay(plan[2])


@fast_sim
def test_plan_ships_the_driver_and_the_control_block(plan):
    _, _, out, manifest = plan
    assert manifest["driver"] == ["driver/__init__.py", "driver/lowbit_driver.py"]
    assert "lowbit_ctrl.v" in manifest["files"]
    assert "accel/s_axi" in (out / "bd.tcl").read_text()
    src = (out / "driver" / "lowbit_driver.py").read_text()
    assert not re.search(r"^\s*(import lowbit\b|from lowbit[. ])", src, re.M)  # runs on the board without lowbit


@fast_sim
def test_driver_packing_equals_the_codec(plan):
    from lowbit.hw.codec import StreamFormat, input_words

    graph, data, out, manifest = plan
    drv = _driver(out)
    fmt = StreamFormat(**json.loads((out / "compiled" / "report.json").read_text())["stream_format"])
    x = data.x_test[:7]
    packed = drv.pack_images(x).reshape(len(x) * fmt.beats_per_image, -1)
    words = input_words(fmt, x)
    ib = (fmt.simd * fmt.in_bits + 7) // 8
    assert (packed[:, :ib] == words.view(np.uint8)[:, :ib]).all() and not packed[:, ib:].any()
    with pytest.raises(ValueError, match="values must lie in"):
        drv.pack_images(x + 100)


@fast_sim
def test_control_registers(overlay):
    ctrl = overlay.accel
    assert ctrl.read(REGISTERS["ID"]) == ID_VALUE
    assert ctrl.read(REGISTERS["STATUS"]) & 1  # idle after reset
    ctrl.write(REGISTERS["TARGET"], 0x1234)
    assert ctrl.read(REGISTERS["TARGET"]) == 0x1234
    assert ctrl.read(REGISTERS["CTRL"]) == 0  # write-only: reads 0
    assert ctrl.read(REGISTERS["WPORTS"]) == 0  # no layer streams its weights from DDR
    ctrl.write(REGISTERS["WCTRL"], 1)
    assert ctrl.read(REGISTERS["WCTRL"]) == 0  # no weight fetchers: nothing to switch on


@fast_sim
def test_driver_classifies_the_digits_test_split_like_the_reference(plan, overlay):
    graph, data, out, _ = plan
    drv = _driver(out)
    acc = drv.LowbitAccelerator(overlay=overlay, batch_size=200)
    labels, scores = acc.run(data.x_test)
    ref_scores = graph.scores(data.x_test)
    bad = np.flatnonzero((scores != ref_scores).any(axis=1))
    assert bad.size == 0, f"image {bad[0]}: scores {scores[bad[0]].tolist()} != reference {ref_scores[bad[0]].tolist()}"
    assert (labels == graph.predict(data.x_test)).all()
    # the scores stay the integers; the class map turns them into the values the label decides by
    assert drv.CONFIG["class_map"] == DIGITS_MAP.to_json()
    values = acc.class_scores(scores)
    assert (values == DIGITS_MAP.apply(ref_scores)).all()
    assert (np.argmax(values, axis=1) == labels).all()
    assert (np.argmax(scores, axis=1) != labels).any()  # the map decides some labels
    assert overlay.accel.read(REGISTERS["IMAGES_OUT"]) == len(data.x_test) - 400  # the last batch: 450 - 2 * 200
    assert overlay.accel.read(REGISTERS["STATUS"]) & 2  # done


@fast_sim
def test_throughput_test_reads_the_cycle_counter(plan, overlay):
    _, _, out, _ = plan
    drv = _driver(out)
    t = drv.LowbitAccelerator(overlay=overlay).throughput_test(300)
    pred = t["predicted_cycles_per_image"]
    # back-to-back images: the counter sees the pipeline fill once, then one image per bottleneck period
    assert pred <= t["cycles_per_image"] <= pred + 200 / 300 * 10 + 60
    assert t["accelerator_images_per_s"] > 0 and t["images"] == 300


def _written_driver(tmp_path, config, name):
    """The driver module ``driver_files`` writes for ``config``, imported from ``tmp_path``."""
    for rel, text in driver_files(config).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return _driver(tmp_path, name)


def _small_driver(tmp_path, input_quant, input_dtype="UINT5"):
    fmt = {"input_size": 4, "simd": 1, "in_bits": 5, "classes": 2, "score_bits": 8}
    config = driver_config(fmt, {"in_tdata_bits": 8, "out_tdata_bits": 24}, clock_mhz=100.0, predicted_cycles=4,
                           input_dtype=DataType.parse(input_dtype), input_quant=input_quant)
    return _written_driver(tmp_path, config, "lowbit_small_driver")


def _q(dtype, scale, zero_point=0.0, **kw):
    return InputQuant(DataType.parse(dtype), scale if isinstance(scale, tuple) else (scale,),
                      zero_point if isinstance(zero_point, tuple) else (zero_point,), **kw)


# (quantizer, float inputs, codes worked by hand)
HAND_WORKED = [
    (_q("UINT4", 0.5), [0.25, 0.75, 1.25, -1.0, 100.0], [0, 2, 2, 0, 15]),  # x/s .5, 1.5, 2.5: half to even; clip
    (_q("UINT8", 0.1), [0.35, 0.85], [4, 8]),  # float32: 0.35/0.1 is 3.5 (float64: 3.4999999), 0.85/0.1 is 8.5
    (_q("INT4", 1.0, 3.0), [-0.5, 0.5, -20.0, 20.0], [2, 4, -8, 7]),  # + zero point 3: 2.5, 3.5, -17, 23
    (_q("INT4", 1.0, narrow=True), [-7.5, -20.0, 6.5], [-7, -7, 6]),  # -7.5 -> -8, narrow clips to -7
    (_q("INT4", 1.0, rounding="HALF_UP"), [2.5, -2.5, 0.5], [3, -3, 1]),  # half away from zero
    (_q("INT4", 1.0, rounding="FLOOR"), [2.5, -2.5, 0.5], [2, -3, 0]),
    (_q("BIPOLAR", 1.0), [-0.1, 0.0, 0.2, -0.0], [0, 1, 1, 1]),  # code bit 1 for x >= 0
    (_q("UINT4", (1.0, 0.5), (0.0, 1.0)), [[1.5, 1.0, 2.5, 0.25]], [[2, 3, 2, 2]]),  # channels last: 1.5, 3, 2.5, 1.5
]


@pytest.mark.parametrize("k", range(len(HAND_WORKED)))
def test_driver_encode_on_hand_worked_values(tmp_path, k):
    q, x, codes = HAND_WORKED[k]
    drv = _small_driver(tmp_path, None)
    assert q.encode(x).tolist() == codes  # the reference
    out = drv.encode_images(np.array(x), q.to_json())
    assert out.dtype == np.int64 and out.tolist() == codes


RANDOM_QUANTS = [
    _q("UINT8", 1 / 255),
    _q("INT8", 0.0173, -3.0, narrow=True),
    _q("INT4", 0.37, 2.0, rounding="HALF_UP"),
    _q("INT3", 0.25, rounding="HALF_DOWN"),
    _q("UINT2", 0.3, 1.0, rounding="DOWN"),
    _q("INT5", 0.11, rounding="UP"),
    _q("UINT5", 0.1, rounding="CEIL"),
    _q("UINT5", (0.0625, 0.1, 0.3), (0.0, 1.0, 2.0)),
    _q("INT6", (0.2, 0.7, 0.05), (-1.0, 0.0, 3.0), narrow=True),
    _q("BIPOLAR", (0.5, 2.0, 1.0)),
]


@pytest.mark.parametrize("q", RANDOM_QUANTS, ids=lambda q: q.describe())
def test_driver_encode_equals_the_input_quantizer(tmp_path, q):
    rng = np.random.default_rng(16)
    drv = _small_driver(tmp_path, None)
    s, z = np.array(q.scale), np.array(q.zero_point)
    wide = rng.normal(0, 20, (50, 4, 3)) * s
    ties = (rng.integers(-80, 80, (50, 4, 3)) / 2 - z) * s  # x / s + z on .5 (up to float32 rounding)
    for x in (wide, ties, wide.reshape(50, 12), ties.astype(np.float32)):
        np.testing.assert_array_equal(drv.encode_images(x, q.to_json()), q.encode(x))


def test_driver_class_scores_on_hand_worked_values(tmp_path):
    """mult (3, -2), offset (0, 5): scores (1, 2) -> (3, 1), (4, -1) -> (12, 7); beyond 64 bits
    the values are exact Python integers; without a class map the scores decide as they are."""
    drv = _small_driver(tmp_path, None)
    assert drv.CONFIG["class_map"] is None
    assert drv.class_scores([[1, 2], [4, -1]]).tolist() == [[1, 2], [4, -1]]
    hand = {"mult": [3, -2], "offset": [0, 5]}
    out = drv.class_scores(np.array([[1, 2], [4, -1]]), hand)
    assert out.dtype == np.int64 and out.tolist() == [[3, 1], [12, 7]]
    wide = ClassMap((2**70, -(2**70) + 1), (2**95, 0))
    got = drv.class_scores([[1, 2], [-3, 0]], wide.to_json())
    assert got.tolist() == [[2**70 + 2**95, -(2**71) + 2], [-3 * 2**70 + 2**95, 0]]
    assert (got == wide.apply([[1, 2], [-3, 0]])).all()
    with pytest.raises(ValueError, match=r"^scores have 3 classes and the class map 2$"):
        drv.class_scores([[1, 2, 3]], hand)


def test_float_images_without_an_input_quantizer_are_refused(tmp_path):
    drv = _small_driver(tmp_path, None, "INT4")
    with pytest.raises(ValueError, match=r"^float images need an input quantizer, and this driver has none: "
                                         r"give integer INT4 codes in \[-8, 7\]$"):
        drv.encode_images(np.zeros((2, 4)))


@fast_sim
def test_driver_encodes_float_images_like_the_graph(plan, overlay, tmp_path):
    """Float images through the driver on the simulated overlay: the labels and scores of the graph
    on graph.encode of the same floats."""
    graph, data, out, _ = plan
    drv = _driver(out)
    assert drv.CONFIG["input_quant"] == DIGITS_QUANT.to_json()
    acc = drv.LowbitAccelerator(overlay=overlay, batch_size=200)
    on_grid = DIGITS_QUANT.decode(data.x_test)  # the values the test split's codes stand for
    off_grid = np.random.default_rng(16).uniform(-0.5, 2.5, (60, graph.input_size))
    x = np.concatenate([on_grid, off_grid]).astype(np.float32)
    codes = graph.encode(x)
    assert (codes[: len(data.x_test)] == data.x_test).all()
    assert codes.min() == 0 and codes.max() == 31  # off the grid, clipped at both ends
    labels, scores = acc.run(x)
    ref = graph.scores(codes)
    bad = np.flatnonzero((scores != ref).any(axis=1))
    assert bad.size == 0, f"image {bad[0]}: scores {scores[bad[0]].tolist()} != reference {ref[bad[0]].tolist()}"
    assert (labels == graph.predict(codes)).all()
    assert (acc.classify(x[:5]) == labels[:5]).all()
    assert (acc.classify(data.x_test[:5]) == labels[:5]).all()  # integer arrays stay codes
    # the same driver without the quantizer refuses the floats before touching the overlay
    plain = _written_driver(tmp_path, dict(drv.CONFIG, input_quant=None), "lowbit_plain_driver")
    with pytest.raises(ValueError, match=r"^float images need an input quantizer, and this driver has none: "
                                         r"give integer UINT5 codes in \[0, 31\]$"):
        plain.LowbitAccelerator(overlay=overlay).run(x)


@pytest.mark.parametrize("edit, message", [
    (lambda m: [1], r"build.json: expected a JSON object, not list$"),
    (lambda m: {**m, "axis": None}, r"key 'axis' must be an object, not None$"),
    (lambda m: {**m, "axis": {**m["axis"], "in_tdata_bits": 1 << 40}},
     r"key 'axis.in_tdata_bits' must be a multiple of 8 in \[8, 4096\], not 1099511627776$"),
    (lambda m: {**m, "weight_ports": [{"index": "../../x"}]},
     r"key 'weight_ports' must be a list of objects with an integer 'index' in \[0, 8\)"),
])
def test_simulated_overlay_refuses_a_bad_manifest_naming_the_key(plan, tmp_path, edit, message):
    """The simulated overlay reads build.json like every other reader (issue 17): a checked JSON
    object whose keys are named when wrong, not a KeyError or a path built from a string index."""
    import shutil

    from lowbit import LowbitError
    from lowbit.deploy.simbackend import SimulatedOverlay

    out = tmp_path / "plan"
    shutil.copytree(plan[2], out)
    manifest = json.loads((out / "build.json").read_text())
    (out / "build.json").write_text(json.dumps(edit(manifest)))
    with pytest.raises(LowbitError, match=message):
        SimulatedOverlay(out)


def test_simulated_overlay_reads_no_source_outside_the_plan(plan, tmp_path):
    import shutil

    from lowbit import LowbitError
    from lowbit.deploy.simbackend import SimulatedOverlay

    out = tmp_path / "plan"
    shutil.copytree(plan[2], out)
    outside = tmp_path / "outside.v"
    outside.write_text("module outside; endmodule\n")
    (out / "lowbit_ctrl.v").unlink()
    (out / "lowbit_ctrl.v").symlink_to(outside)
    with pytest.raises(LowbitError, match=re.escape(f"lowbit_ctrl.v resolves to {outside}, outside the plan directory")):
        SimulatedOverlay(out)
