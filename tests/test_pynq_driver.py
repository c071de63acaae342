"""Issue 8: the AXI4-Lite control block, and the generated PYNQ driver against the simulated shell."""

import importlib.util
import json
import re

import numpy as np
import pytest

from lowbit.deploy.build import build
from lowbit.hw.axi.control import ID_VALUE, REGISTERS
from lowbit.flow.steps import compile_model
from lowbit.quant.data import load_digits_split
from lowbit.quant.train.binary_mlp import TrainConfig, train_binary_mlp

pytestmark = pytest.mark.fast_sim


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    data = load_digits_split()
    graph = train_binary_mlp(data.x_train, data.y_train, TrainConfig(hidden=(32,), epochs=3, seed=2)).to_integer_graph()
    root = tmp_path_factory.mktemp("pynq_driver")
    compile_model(graph, root / "compiled", board="pynq-z2", budget=0.05)
    manifest = build(root / "compiled", "pynq-z2", root / "plan")
    return graph, data, root / "plan", manifest


def _driver(plan_dir):
    spec = importlib.util.spec_from_file_location("lowbit_driver_under_test", plan_dir / "driver" / "lowbit_driver.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def overlay(plan):
    from lowbit.deploy.simbackend import SimulatedOverlay

    return SimulatedOverlay(plan[2])


def test_plan_ships_the_driver_and_the_control_block(plan):
    _, _, out, manifest = plan
    assert manifest["driver"] == ["driver/__init__.py", "driver/lowbit_driver.py"]
    assert "lowbit_ctrl.v" in manifest["files"]
    assert "accel/s_axi" in (out / "bd.tcl").read_text()
    src = (out / "driver" / "lowbit_driver.py").read_text()
    assert not re.search(r"^\s*(import lowbit\b|from lowbit[. ])", src, re.M)  # runs on the board without lowbit


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


def test_driver_classifies_the_digits_test_split_like_the_reference(plan, overlay):
    graph, data, out, _ = plan
    drv = _driver(out)
    acc = drv.LowbitAccelerator(overlay=overlay, batch_size=200)
    labels, scores = acc.run(data.x_test)
    ref_scores = graph.scores(data.x_test)
    bad = np.flatnonzero((scores != ref_scores).any(axis=1))
    assert bad.size == 0, f"image {bad[0]}: scores {scores[bad[0]].tolist()} != reference {ref_scores[bad[0]].tolist()}"
    assert (labels == graph.predict(data.x_test)).all()
    assert overlay.accel.read(REGISTERS["IMAGES_OUT"]) == len(data.x_test) - 400  # the last batch: 450 - 2 * 200
    assert overlay.accel.read(REGISTERS["STATUS"]) & 2  # done


def test_throughput_test_reads_the_cycle_counter(plan, overlay):
    _, _, out, _ = plan
    drv = _driver(out)
    t = drv.LowbitAccelerator(overlay=overlay).throughput_test(300)
    pred = t["predicted_cycles_per_image"]
    # back-to-back images: the counter sees the pipeline fill once, then one image per bottleneck period
    assert pred <= t["cycles_per_image"] <= pred + 200 / 300 * 10 + 60
    assert t["accelerator_images_per_s"] > 0 and t["images"] == 300
